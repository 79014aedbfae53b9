// Elementwise ops on the GPU: dtype conversion, the residual add and gradient accumulation.
// The residual add out = a + b passes its incoming gradient to both inputs unchanged, so its backward is
// accumulate_cuda (da += dout, db += dout); there is no separate backward launcher.
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

// out (n) = a (n) + b (n); out may alias a or b.
template <class T>
void add_cuda(T* out, const T* a, const T* b, size_t n, cudaStream_t stream);

// dst (n) += src (n)
template <class T>
void accumulate_cuda(T* dst, const T* src, size_t n, cudaStream_t stream);

}  // namespace sp::cuda
