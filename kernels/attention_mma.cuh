// The tensor-core attention forward (kernels/attention_mma.cu): bf16 inputs, mma.sync m16n8k16 with fp32
// accumulation. attention_forward_cuda (attention.cuh) calls it for bf16; the contract is that launcher's.
#pragma once

#include "attention.cuh"

namespace sp::cuda {

// out (B, Tq, H, D) and lse (B, H, Tq) from q (B, Tq, H, D), k and v (B, Tk, Hkv, D); D in {32, 64, 128}.
void attention_forward_mma_cuda(const AttentionArgs& a, const __nv_bfloat16* q, const __nv_bfloat16* k,
                                const __nv_bfloat16* v, __nv_bfloat16* out, float* lse, cudaStream_t s);

}  // namespace sp::cuda
