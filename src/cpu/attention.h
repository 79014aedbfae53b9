// Causal multi-head attention on the CPU, forward and backward, for every normaliser: the paper's softmax,
// softpick and rectified softmax, and softmax1 and learned sinks (the derivations are in docs/attention.md).
//
// Two implementations with the same contract:
//   * attention_forward / attention_backward: flash-style, tiled over keys with an online (running-max)
//     normaliser. The T x T score matrix is never stored; the backward pass recomputes scores from q, k and
//     the per-row statistic `lse` that the forward pass saves.
//   * attention_naive_forward / attention_naive_backward: materialise the full probability matrix. Used by
//     tests as the reference and by analysis tools that need attention maps.
//
// Layouts (row-major, contiguous), Tq = s.Tq() query rows per sequence (T in training):
//   q, out, dq, dout : (B, Tq, H, D)
//   k, v, dk, dv     : (B, T, Hkv, D)     query head h reads kv head h / (H / Hkv)
//   lse              : (B, H, Tq)         per-row log-normaliser saved for the backward pass; +inf for
//                                         rows that output zero (softpick: no score > 0; rectified: no
//                                         score >= 0), which makes their gradient exactly zero
//   probs            : (B, H, T, T)       naive only; zero above the diagonal
//   sinks, dsinks    : (H)                Sink only: the per-head sink logits and their gradient (which
//                                         accumulates, as parameter gradients do); nullptr otherwise
// Scores are s = (q . k) / sqrt(D), causal: the query at position t sees keys 0..t; with a query offset
// (op_args.h; the decoder's new rows over its cache) query row i is at position q_offset + i. Only the
// flash forward takes an offset; the backward passes and the naive reference need q_offset = 0.
// Future keys take no part at all (for softpick they are left out of the denominator, not masked with
// -inf). softpick_eps is added to the denominator after the max shift, as in the paper's kernel.
// Backward convention: dq, dk and dv are overwritten (they are activation gradients). With a sink
// (Softmax1, Sink) the scores' gradient is softmax's given the saved lse, which includes the sink's term;
// the sink logits' own gradient is attention_sink_backward.
// The flash functions parallelise with OpenMP (forward over (b, h, query block), backward over (b, kv head))
// and give the same bits for any thread count; extra memory is O(tile) per thread.
// Templated on the element type; instantiated for float (training) and double (gradient checks).
#pragma once

#include "backend/op_args.h"

#include <cstddef>
#include <cstdint>

namespace sp {

// Normaliser and AttentionShape are defined in backend/op_args.h.

template <class T>
void attention_forward(const AttentionShape& s, const T* q, const T* k, const T* v, const T* sinks, T* out,
                       T* lse);

template <class T>
void attention_backward(const AttentionShape& s, const T* q, const T* k, const T* v, const T* out,
                        const T* dout, const T* lse, T* dq, T* dk, T* dv);

// dsinks (H) += dL/dsinks = -sum over (b, t) of exp(sinks[h] - lse) rowsum(out * dout); Sink only.
template <class T>
void attention_sink_backward(const AttentionShape& s, const T* out, const T* dout, const T* lse, const T* sinks,
                             T* dsinks);

template <class T>
void attention_naive_forward(const AttentionShape& s, const T* q, const T* k, const T* v, const T* sinks, T* out,
                             T* probs);

// dsinks may be nullptr (no sink gradient wanted).
template <class T>
void attention_naive_backward(const AttentionShape& s, const T* q, const T* k, const T* v, const T* sinks,
                              const T* probs, const T* dout, T* dq, T* dk, T* dv, T* dsinks);

}  // namespace sp
