// Elementwise ops on the GPU: dtype conversion and accumulation. The model's residual add is an accumulate
// (x += f(x)); its backward passes the gradient through unchanged, so it needs no launcher of its own.
// T is float or __nv_bfloat16; the arithmetic is fp32 and bf16 results are rounded to nearest even.
// Layer 1 (kernels, in the .cu) takes raw pointers and sizes; layer 2 (the *_cuda launchers below) checks
// arguments, picks the grid and launches on a stream. Model code calls launchers only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>

namespace sp::cuda {

// dst (n) = src (n) converted, float <-> bf16 rounded to nearest even; the same type is a copy.
template <class Dst, class Src>
void convert_cuda(Dst* dst, const Src* src, size_t n, cudaStream_t stream);

// dst (n) += src (n)
template <class T>
void accumulate_cuda(T* dst, const T* src, size_t n, cudaStream_t stream);

}  // namespace sp::cuda
