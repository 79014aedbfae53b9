// Linear layer without bias, PyTorch layout (weight is (out, in)), on BLAS (sgemm/dgemm).
// Backward conventions: dinp is overwritten, or accumulated when `accumulate_dinp` (for inputs that feed
// several projections, like q, k and v); dw accumulates (+=).
#pragma once

#include <cstddef>

namespace sp {

// out (N, OC) = inp (N, IC) @ w^T, w (OC, IC)
template <class T>
void matmul_forward(T* out, const T* inp, const T* w, size_t N, size_t IC, size_t OC);

// dinp (N, IC) = dout @ w, dw (OC, IC) += dout^T @ inp
template <class T>
void matmul_backward(T* dinp, T* dw, const T* dout, const T* inp, const T* w, size_t N, size_t IC, size_t OC,
                     bool accumulate_dinp);

}  // namespace sp
