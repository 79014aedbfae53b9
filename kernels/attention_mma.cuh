// The tensor-core attention (kernels/attention_mma.cu): bf16 inputs, mma.sync m16n8k16 with fp32
// accumulation. attention_forward_cuda and attention_backward_cuda (attention.cuh) call these for bf16;
// the contracts are those launchers'.
#pragma once

#include "attention.cuh"

namespace sp::cuda {

// out (B, Tq, H, D) and lse (B, H, Tq) from q (B, Tq, H, D), k and v (B, Tk, Hkv, D); D in {32, 64, 128};
// sinks (H) or nullptr, as for attention_forward_cuda.
void attention_forward_mma_cuda(const AttentionArgs& a, const __nv_bfloat16* q, const __nv_bfloat16* k,
                                const __nv_bfloat16* v, const __nv_bfloat16* sinks, __nv_bfloat16* out, float* lse,
                                cudaStream_t s);

// Bytes of the fp32 dq accumulator the atomic mode needs (a.atomic_dq: (B, Tq, H, D) fp32), else 0.
size_t attention_backward_mma_scratch_bytes(const AttentionArgs& a);

// dq (B, Tq, H, D), dk and dv (B, Tk, Hkv, D) from the forward's inputs, its lse, dout and delta =
// rowsum(out * dout) (B, H, Tq). Deterministic by default (every output is owned by one block; sums in a
// fixed order: a dk/dv kernel per key block and a dq kernel per query block); with a.atomic_dq, one kernel
// per key block that adds dq into dq_acc (attention_backward_mma_scratch_bytes) with fp32 atomics.
void attention_backward_mma_cuda(const AttentionArgs& a, const __nv_bfloat16* q, const __nv_bfloat16* k,
                                 const __nv_bfloat16* v, const __nv_bfloat16* dout, const float* lse,
                                 const float* delta, __nv_bfloat16* dq, __nv_bfloat16* dk, __nv_bfloat16* dv,
                                 float* dq_acc, cudaStream_t s);

}  // namespace sp::cuda
