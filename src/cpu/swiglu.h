// SwiGLU gate: out = silu(gate) * up, silu(g) = g * sigmoid(g). Elementwise over n values.
// Backward convention: dgate and dup are overwritten.
#pragma once

#include <cstddef>

namespace sp {

// out, gate, up (N, F) flattened to n = N * F
template <class T>
void swiglu_forward(T* out, const T* gate, const T* up, size_t n);

template <class T>
void swiglu_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, size_t n);

}  // namespace sp
