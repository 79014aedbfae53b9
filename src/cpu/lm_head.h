// The LM head and cross-entropy, fused and computed in chunks of rows, so the (N, V) logits never exist
// at once: per chunk, logits = x w^T, loss = logsumexp(logits) - logits[target], and when gradients are
// wanted, dlogits = (softmax(logits) - onehot(target)) * grad_scale, dx = dlogits w, dw += dlogits^T x.
// Targets < 0 are ignored (no loss, no gradient).
// Backward conventions: dx is overwritten; dw accumulates (+=).
#pragma once

#include "backend/op_args.h"

#include <cstddef>
#include <cstdint>

namespace sp {

// Rows per chunk: (kLmHeadChunk, V) logits are the only large temporary.
constexpr size_t kLmHeadChunk = 256;

// x (N, C), w (V, C), targets (N), scratch (kLmHeadChunk, V).
// dx (N, C) and dw (V, C) may be null for a forward-only (evaluation) call.
template <class T>
LossSum lm_head_cross_entropy(const T* x, const T* w, const int32_t* targets, size_t N, size_t C, size_t V,
                              T* scratch, T* dx, T* dw, double grad_scale);

// Logits of the last row only, for sampling: logits (V) = x[N-1] (C) w^T.
template <class T>
void lm_head_logits(T* logits, const T* x_row, const T* w, size_t C, size_t V);

}  // namespace sp
