// RMSNorm, forward and backward (CPU reference).
//   out = x / sqrt(mean(x^2) + eps) * w          per row of C elements
// The forward saves rstd = 1 / sqrt(mean(x^2) + eps) per row for the backward.
// Backward conventions: dx ACCUMULATES (+=) because it feeds the residual stream, whose gradient already
// holds the skip path; dw accumulates (+=) like every parameter gradient.
#pragma once

#include <cstddef>

namespace sp {

// out (N, C), rstd (N), x (N, C), w (C)
template <class T>
void rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, size_t N, size_t C, double eps);

// dx (N, C) +=, dw (C) +=, dout (N, C), x (N, C), w (C), rstd (N)
template <class T>
void rmsnorm_backward(T* dx, T* dw, const T* dout, const T* x, const T* w, const T* rstd, size_t N, size_t C);

}  // namespace sp
