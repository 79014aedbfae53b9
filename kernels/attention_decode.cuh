// Split-K attention for decoding: a few query rows (the sampler's one new token per step) over a long
// key/value cache. The training kernels give one block per 64 query rows and head, so one row over a cache
// of 16k keys would run on H blocks, each walking every key; here the keys are cut into splits, one block
// per (row, split, head, batch) computes the split's partial state (running shift, denominator, unnormalised
// output) with the normaliser policies of attention_policy.cuh, and a second kernel merges the splits of a
// row (the shift rescaling is exact for every normaliser, docs/kernels.md) and writes out and lse.
// Same layouts, masking and conventions as attention.cuh (forward only).
#pragma once

#include "attention.cuh"

namespace sp::cuda {

// Whether attention_forward_cuda's callers should take this path for a: few query rows over many keys.
bool attention_decode_applies(const AttentionArgs& a);

// The number of key splits for a, and the bytes of device scratch the partial states take.
int attention_decode_splits(const AttentionArgs& a);
size_t attention_decode_scratch_bytes(const AttentionArgs& a);

// out (B, Tq, H, D) and lse (B, H, Tq), as attention_forward_cuda (sinks likewise); scratch:
// attention_decode_scratch_bytes(a).
template <class T>
void attention_decode_cuda(const AttentionArgs& a, const T* q, const T* k, const T* v, const T* sinks, T* out,
                           float* lse, void* scratch, cudaStream_t s);

}  // namespace sp::cuda
