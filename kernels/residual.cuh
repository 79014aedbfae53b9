// Residual add on the GPU: out = a + b, and its backward (the incoming gradient flows to both inputs
// unchanged, so the backward is an accumulate: da += dout, db += dout).
// Layer 1 (kernels) takes raw pointers and sizes; layer 2 (the *_cuda launchers below) checks arguments,
// picks the grid and launches on a stream. Model code calls launchers only.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace sp::cuda {

// out (N) = a (N) + b (N); out may alias a or b.
void residual_forward_cuda(float* out, const float* a, const float* b, size_t n, cudaStream_t stream);

// dst (N) += src (N): the gradient accumulation used by the residual backward.
void accumulate_cuda(float* dst, const float* src, size_t n, cudaStream_t stream);

}  // namespace sp::cuda
