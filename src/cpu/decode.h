// Ops for inference with a key/value cache (src/model/decode.h): the new rows of one sequence at absolute
// positions pos0 .. pos0 + n - 1 go through RoPE, SSMax and attention over every cached key.
//
//   rope_forward_at   x (n, Hx, D) rotated in place by the angles of positions pos0..pos0+n-1; the same
//                     numbers as rope_forward on rows pos0.. of a longer sequence (same table arithmetic)
//   ssmax_forward_at  q_out = q_in * s_h * log(pos + 2), q (n, H, D), s (H)
//   attention_cached  the last n query rows of the causal problem s (s.B = 1, s.T keys):
//                     q, out (n, H, D) at positions s.T - n .. s.T - 1; k, v (s.T, Hkv, D), the first s.T
//                     rows of the cache. Every normaliser with the conventions of docs/attention.md:
//                     softpick's eps after the shift (floored at 0), rows with no positive (softpick) or
//                     non-negative (rectified) score output exactly zero, future keys take no part.
//
// Forward only: nothing here is differentiated. Templated on the element type (float, double).
// attention_cached materialises the scores of a block of up to 64 query rows against all visible keys,
// (64, s.T) per thread: with a cache the key count is bounded by the context, and the products run in BLAS.
#pragma once

#include "backend/op_args.h"

#include <cstddef>

namespace sp {

template <class T>
void rope_forward_at(T* x, size_t n, size_t Hx, size_t D, double theta, size_t pos0);

template <class T>
void ssmax_forward_at(T* q_out, const T* q_in, const T* s, size_t n, size_t H, size_t D, size_t pos0);

template <class T>
void attention_cached(const AttentionShape& s, size_t n, const T* q, const T* k, const T* v, T* out);

}  // namespace sp
