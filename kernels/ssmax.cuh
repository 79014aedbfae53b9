// Scaled attention (SSMax, the paper's appendix) on the GPU: before attention, the query of head h at
// absolute position pos = pos0 + t is multiplied by s_h * log(pos + 2), with s_h a learnable per-head scalar.
// pos0 = 0 in training; the decoder passes the position of its first new row (forward only).
// Backward conventions (as src/cpu/ssmax.h): dq_in is overwritten; ds accumulates (+=), summed over the
// positions deterministically through per-part partials in a caller-allocated scratch of
// ssmax_backward_scratch_bytes(B, T, H) bytes (kernels/reduce.cuh, split_rows).
// T (queries and s) is float or __nv_bfloat16; ds is fp32. The scale s_h * log(pos + 2) is formed in double
// and rounded to fp32, as the CPU reference does; q_out and dq_in are computed in fp32, ds in fp64.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>

namespace sp::cuda {

// q_out (B, T, H, D) = q_in (B, T, H, D) * s_h * log(pos0 + t + 2), s (H); q_out may alias q_in
template <class T>
void ssmax_forward_cuda(T* q_out, const T* q_in, const T* s, size_t B, size_t T_, size_t H, size_t D, size_t pos0,
                        cudaStream_t stream);

size_t ssmax_backward_scratch_bytes(size_t B, size_t T_, size_t H);

// dq_in (B, T, H, D) =, ds (H) +=, dq_out (B, T, H, D), q_in (B, T, H, D), s (H); scratch of the size above
template <class T>
void ssmax_backward_cuda(T* dq_in, float* ds, const T* dq_out, const T* q_in, const T* s, size_t B, size_t T_,
                         size_t H, size_t D, void* scratch, cudaStream_t stream);

}  // namespace sp::cuda
