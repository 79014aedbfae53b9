// RMSNorm on the GPU, forward and backward:  out = x / sqrt(mean(x^2) + eps) * w  per row of C elements.
// The forward saves rstd = 1 / sqrt(mean(x^2) + eps) per row (fp32) for the backward.
// Backward conventions (as src/cpu/rmsnorm.h): dx ACCUMULATES (+=), because it feeds the residual stream
// whose gradient already holds the skip path; dw accumulates (+=) like every parameter gradient.
// dw is summed over rows deterministically through per-part partials in a caller-allocated scratch of
// rmsnorm_backward_scratch_bytes(N, C) bytes (kernels/reduce.cuh, split_rows).
// T (activations and w) is float or __nv_bfloat16; rstd and dw are fp32, and so is the arithmetic, but for
// the fp64 sum of dw's parts.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>

namespace sp::cuda {

// out (N, C), rstd (N), x (N, C), w (C)
template <class T>
void rmsnorm_forward_cuda(T* out, float* rstd, const T* x, const T* w, size_t N, size_t C, double eps,
                          cudaStream_t stream);

size_t rmsnorm_backward_scratch_bytes(size_t N, size_t C);

// dx (N, C) +=, dw (C) +=, dout (N, C), x (N, C), w (C), rstd (N); scratch of the size above
template <class T>
void rmsnorm_backward_cuda(T* dx, float* dw, const T* dout, const T* x, const T* w, const float* rstd, size_t N,
                           size_t C, void* scratch, cudaStream_t stream);

}  // namespace sp::cuda
