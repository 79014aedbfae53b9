// Rotary position embedding, rotate-half convention as in Hugging Face Llama, forward and backward.
// For position t and i < D/2, with angle a = t * theta^(-2i/D):
//   out[i]       = x[i] cos a - x[i + D/2] sin a
//   out[i + D/2] = x[i + D/2] cos a + x[i] sin a
// Row t of each sequence is at position pos0 + t (pos0 = 0 in training; the key/value-cached decoder passes
// the position of its first new row). Both passes work in place; the backward applies the inverse rotation
// to the incoming gradient (a rotation's Jacobian transpose is its inverse).
#pragma once

#include <cstddef>

namespace sp {

// x (B, T, Hx, D), rotated in place
template <class T>
void rope_forward(T* x, size_t B, size_t T_, size_t Hx, size_t D, double theta, size_t pos0);

// dx (B, T, Hx, D): the gradient w.r.t. the rotated tensor in, w.r.t. the unrotated tensor out (in place)
template <class T>
void rope_backward(T* dx, size_t B, size_t T_, size_t Hx, size_t D, double theta);

}  // namespace sp
