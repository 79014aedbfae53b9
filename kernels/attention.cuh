// Causal attention on the GPU, forward and backward, for softmax, softpick, rectified softmax and softmax with a
// sink (softmax1, learned sinks: one more denominator term exp(s_h), docs/attention.md §10), with the
// conventions of docs/attention.md and the CPU reference src/cpu/attention.h: scores s = q . k / sqrt(D),
// masked keys take no part (not even in softpick's denominator), the shift is floored at 0 for softpick and
// rectified, eps is added after the shift, empty rows output exact zeros with lse = +inf.
// The normalisers are policies (kernels/attention_policy.cuh); the kernels are fp32 SIMT tiles in shared
// memory (kernels/attention.cu) and a tensor-core version can take their place behind these launchers.
//
// Layouts (row-major, contiguous):
//   q, out, dq, dout : (B, Tq, H, D)
//   k, v, dk, dv     : (B, Tk, Hkv, D)    query head h reads kv head h / (H / Hkv)
//   lse              : (B, H, Tq)         fp32; +inf for rows that output zero
// Query row t sits at absolute position q_offset + t and sees keys 0 .. q_offset + t. Training has
// Tq == Tk and q_offset = 0; decoding the last Tq rows of a sequence has q_offset = Tk - Tq.
// Head dims: 32, 64 and 128. Element types: float (verification) and __nv_bfloat16 (training); every sum
// is fp32 whatever the element type.
// Backward convention: dq, dk and dv are overwritten (activation gradients). By default the backward pass
// is deterministic: no atomics, every sum in a fixed order, so two runs give the same bits. With
// atomic_dq, the bf16 (tensor-core) backward adds dq in fp32 with atomics instead (one kernel instead of
// two, 5 tile products per query-key tile pair instead of 7; the bits of dq depend on the hardware's order).
// The fp32 backward is always deterministic.
#pragma once

#include "backend/op_args.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace sp::cuda {

struct AttentionArgs {
  int64_t B, Tq, Tk, H, Hkv, D;   // q, out, dq, dout: (B, Tq, H, D); k, v, dk, dv: (B, Tk, Hkv, D); lse: (B, H, Tq)
  int64_t q_offset;               // absolute position of query row 0 (Tk - Tq for the decoder's last rows; 0 in training, Tq == Tk)
  Normaliser norm;
  float softpick_eps;
  bool atomic_dq = false;         // backward, bf16: dq by fp32 atomics (training.attention_backward = atomic)
};

// out (B, Tq, H, D) and lse (B, H, Tq) from q (B, Tq, H, D), k and v (B, Tk, Hkv, D); sinks (H): the sink
// logits for Normaliser::Sink, nullptr otherwise (softmax1's are 0).
template <class T>
void attention_forward_cuda(const AttentionArgs& a, const T* q, const T* k, const T* v, const T* sinks, T* out,
                            float* lse, cudaStream_t s);

// Learned sinks: dsinks (H) += -sum over (b, t) of exp(sinks[h] - lse) rowsum(out * dout), in a fixed order
// (deterministic). scratch: attention_sink_backward_scratch_bytes(a) bytes of device memory.
size_t attention_sink_backward_scratch_bytes(const AttentionArgs& a);
template <class T>
void attention_sink_backward_cuda(const AttentionArgs& a, const T* out, const T* dout, const float* lse,
                                  const T* sinks, float* dsinks, void* scratch, cudaStream_t s);

// Bytes of device scratch the backward pass needs: delta = rowsum(out * dout), (B, H, Tq) fp32, and with
// atomic_dq the fp32 dq accumulator (B, Tq, H, D).
size_t attention_backward_scratch_bytes(const AttentionArgs& a);

// dq (B, Tq, H, D), dk and dv (B, Tk, Hkv, D) from the forward's inputs, its out and lse, and dout
// (B, Tq, H, D). scratch: attention_backward_scratch_bytes(a) bytes of device memory.
template <class T>
void attention_backward_cuda(const AttentionArgs& a, const T* q, const T* k, const T* v, const T* out,
                             const T* dout, const float* lse, T* dq, T* dk, T* dv, void* scratch, cudaStream_t s);

}  // namespace sp::cuda
