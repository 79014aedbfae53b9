// The tensor-core attention (kernels/attention_mma.cu): bf16 inputs, mma.sync m16n8k16 with fp32
// accumulation. attention_forward_cuda and attention_backward_cuda (attention.cuh) call these for bf16;
// the contracts are those launchers'.
#pragma once

#include "attention.cuh"

namespace sp::cuda {

// out (B, Tq, H, D) and lse (B, H, Tq) from q (B, Tq, H, D), k and v (B, Tk, Hkv, D); D in {32, 64, 128}.
void attention_forward_mma_cuda(const AttentionArgs& a, const __nv_bfloat16* q, const __nv_bfloat16* k,
                                const __nv_bfloat16* v, __nv_bfloat16* out, float* lse, cudaStream_t s);

// dq (B, Tq, H, D), dk and dv (B, Tk, Hkv, D) from the forward's inputs, its lse, dout and delta =
// rowsum(out * dout) (B, H, Tq); deterministic (every output is owned by one block; sums in a fixed order).
void attention_backward_mma_cuda(const AttentionArgs& a, const __nv_bfloat16* q, const __nv_bfloat16* k,
                                 const __nv_bfloat16* v, const __nv_bfloat16* dout, const float* lse,
                                 const float* delta, __nv_bfloat16* dq, __nv_bfloat16* dk, __nv_bfloat16* dv,
                                 cudaStream_t s);

}  // namespace sp::cuda
