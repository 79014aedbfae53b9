// Gated linear units on the GPU, elementwise over n values: out = act(gate) * up with act = sigmoid
// (Glu::Sigmoid) or silu(g) = g * sigmoid(g) (Glu::Swish). Backward convention (as src/cpu/glu.h): dgate
// and dup are overwritten. T is float or __nv_bfloat16; the arithmetic is fp32.
#pragma once

#include "backend/op_args.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>

namespace sp::cuda {

// out, gate, up (N, F) flattened to n = N * F
template <class T>
void glu_forward_cuda(T* out, const T* gate, const T* up, size_t n, Glu act, cudaStream_t stream);

// dgate, dup, dout, gate, up (n)
template <class T>
void glu_backward_cuda(T* dgate, T* dup, const T* dout, const T* gate, const T* up, size_t n, Glu act,
                       cudaStream_t stream);

}  // namespace sp::cuda
