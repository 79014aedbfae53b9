// The attention normalisers as policies for the CUDA attention kernels: softmax, softpick and rectified
// softmax (docs/attention.md §2-§5). A policy says what ONE score contributes; the kernels own the tiling,
// the masking and the running state, so a tensor-core kernel can reuse these structs unchanged.
//
// The conventions are the CPU reference's (src/cpu/attention.cpp), which the kernels are tested against:
//   * forward, online over key tiles. Per query row: a running shift c, starting at kInitialShift (-inf for
//     softmax; 0 for softpick and rectified, so that c = max(0, running max), docs §3.3), a running
//     denominator l and an accumulator acc. When a tile moves the shift from c to c', l and acc are
//     multiplied by exp(c - c') (exact for every normaliser, §3.2), then each VISIBLE score x of the tile
//     adds term(x, c', exp(-c')): w to the weight of its value row, den to l. Masked keys never reach a
//     policy: softpick would count them in its denominator (§3.1).
//   * end of a row: row_end(c, l, eps) gives 1 / denominator and lse. An empty row (softpick: no score
//     > 0; rectified: no score >= 0) gets 0 and lse = +inf: it outputs exact zeros (§5).
//   * backward, from the recomputed score x, the row's lse, base = exp(-lse), dp = dO . v and
//     delta = rowsum(O * dO): grad() gives the weight p (for dv) and the score gradient ds = dL/dx (for dq
//     and dk). lse = +inf makes both exactly 0. Softpick takes H(0) = 0 and sgn(0) = -1 (§3.4).
#pragma once

#include "common.cuh"

#include "backend/op_args.h"

#include <cmath>

namespace sp::cuda::attn {

struct Term {
  float w;    // weight of the key's value row, relative to the current shift
  float den;  // the key's term of the running denominator, same shift
};

struct ScoreGrad {
  float p;   // normalised weight of the key's value row (dv += p dO)
  float ds;  // dL/dx for the score x (dq += ds k / sqrt(D), dk += ds q / sqrt(D))
};

struct Softmax {
  static constexpr float kInitialShift = -INFINITY;
  __device__ static Term term(float x, float c, float /*base*/) {
    const float w = expf(x - c);
    return {w, w};
  }
  __device__ static float denominator(float l, float /*eps*/) { return l; }
  __device__ static bool empty(float /*c*/, float den) { return !(den > 0.0f); }
  __device__ static ScoreGrad grad(float x, float lse, float /*base*/, float dp, float delta) {
    const float y = expf(x - lse);
    return {y, y * (dp - delta)};
  }
};

struct Softpick {
  static constexpr float kInitialShift = 0.0f;
  __device__ static Term term(float x, float c, float base) {
    const float e = expf(x - c) - base;  // e^{-c} (e^x - 1)
    return {fmaxf(e, 0.0f), fabsf(e)};
  }
  __device__ static float denominator(float l, float eps) { return l + eps; }  // eps after the shift
  __device__ static bool empty(float c, float den) { return !(c > 0.0f && den > 0.0f); }
  __device__ static ScoreGrad grad(float x, float lse, float base, float dp, float delta) {
    const float e = expf(x - lse);  // e^x / Den
    return {fmaxf(e - base, 0.0f), x > 0.0f ? e * (dp - delta) : e * delta};
  }
};

// Softmax over the scores >= 0 (docs §4): the negative ones act as -inf. Its denominator and its empty
// rule are softmax's.
struct Rectified : Softmax {
  static constexpr float kInitialShift = 0.0f;
  __device__ static Term term(float x, float c, float /*base*/) {
    const float w = x >= 0.0f ? expf(x - c) : 0.0f;
    return {w, w};
  }
  __device__ static ScoreGrad grad(float x, float lse, float /*base*/, float dp, float delta) {
    const float y = x >= 0.0f ? expf(x - lse) : 0.0f;
    return {y, y * (dp - delta)};
  }
};

struct RowEnd {
  float inv_den;  // output = acc * inv_den; 0 for an empty row, whose acc is 0: the output is exact zeros
  float lse;      // saved for the backward pass
};

template <class N>
__device__ RowEnd row_end(float c, float l, float eps) {
  const float den = N::denominator(l, eps);
  if (N::empty(c, den)) return {0.0f, INFINITY};
  return {1.0f / den, c + logf(den)};
}

// The one list of normalisers: calls f(Softmax{}), f(Softpick{}) or f(Rectified{}) for the runtime value,
// so a launcher instantiates its kernel on the policy type.
template <class F>
void dispatch_normaliser(Normaliser n, F&& f) {
  switch (n) {
    case Normaliser::Softmax: f(Softmax{}); return;
    case Normaliser::Softpick: f(Softpick{}); return;
    case Normaliser::Rectified: f(Rectified{}); return;
  }
  SP_ASSERT(false, "unknown normaliser {}", int(n));
}

}  // namespace sp::cuda::attn
