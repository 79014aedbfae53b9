// Scaled attention (SSMax, the paper's appendix): before attention, the query at 0-based position t of head
// h is multiplied by s_h * log(t + 2), with s_h a learnable per-head scalar. Row t of each sequence is at
// position pos0 + t in the forward (the decoder's first new position; 0 in training) and at t in the backward.
// Backward conventions: dq_in is overwritten; ds accumulates (+=).
#pragma once

#include <cstddef>

namespace sp {

// q_out, q_in (B, T, H, D), s (H)
template <class T>
void ssmax_forward(T* q_out, const T* q_in, const T* s, size_t B, size_t T_, size_t H, size_t D, size_t pos0);

// dq_in (B, T, H, D) =, ds (H) +=, dq_out (B, T, H, D), q_in (B, T, H, D), s (H)
template <class T>
void ssmax_backward(T* dq_in, T* ds, const T* dq_out, const T* q_in, const T* s, size_t B, size_t T_, size_t H,
                    size_t D);

}  // namespace sp
