// SwiGLU gate on the GPU: out = silu(gate) * up, silu(g) = g * sigmoid(g), elementwise over n values.
// Backward convention (as src/cpu/swiglu.h): dgate and dup are overwritten.
// T is float or __nv_bfloat16; the arithmetic is fp32.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>

namespace sp::cuda {

// out, gate, up (N, F) flattened to n = N * F
template <class T>
void swiglu_forward_cuda(T* out, const T* gate, const T* up, size_t n, cudaStream_t stream);

// dgate, dup, dout, gate, up (n)
template <class T>
void swiglu_backward_cuda(T* dgate, T* dup, const T* dout, const T* gate, const T* up, size_t n,
                          cudaStream_t stream);

}  // namespace sp::cuda
