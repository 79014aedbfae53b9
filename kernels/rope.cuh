// Rotary position embedding on the GPU (rotate-half, as in Hugging Face Llama), forward and backward.
// Row t of each sequence is at absolute position pos = pos0 + t (pos0 = 0 in training; the decoder passes
// the position of its first new row). For i < D/2 and angle a = pos * theta^(-2i/D):
//   out[i]       = x[i] cos a - x[i + D/2] sin a
//   out[i + D/2] = x[i + D/2] cos a + x[i] sin a
// Both passes work in place; the backward rotates the gradient by -a (a rotation's transpose is its
// inverse), so it overwrites: the gradient w.r.t. the rotated tensor in, w.r.t. the unrotated one out.
// The angle arithmetic is the CPU table's (src/cpu/rope.cpp): inverse frequencies on the host in double,
// angles and their cos/sin in double, rounded to fp32, so long positions stay accurate.
// T is float or __nv_bfloat16; the rotation is fp32.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>

namespace sp::cuda {

// x (B, T, Hx, D), rotated in place; D even, at most 256
template <class T>
void rope_forward_cuda(T* x, size_t B, size_t T_, size_t Hx, size_t D, double theta, size_t pos0,
                       cudaStream_t stream);

// dx (B, T, Hx, D), rotated back in place
template <class T>
void rope_backward_cuda(T* dx, size_t B, size_t T_, size_t Hx, size_t D, double theta, size_t pos0,
                        cudaStream_t stream);

}  // namespace sp::cuda
