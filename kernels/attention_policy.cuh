// The attention normalisers as policies for the CUDA attention kernels: softmax, softpick, rectified
// softmax, and softmax with a sink (softmax1, learned sinks) (docs/attention.md §2-§5, §10). A policy says
// what ONE score contributes; the kernels own the tiling, the masking and the running state, so a
// tensor-core kernel can reuse these structs unchanged.
//
// The conventions are the CPU reference's (src/cpu/attention.cpp), which the kernels are tested against:
//   * forward, online over key tiles. Per query row: a running shift c, starting at kInitialShift (-inf for
//     softmax; 0 for softpick and rectified, so that c = max(0, running max), docs §3.3), a running
//     denominator l starting at 0, and an accumulator acc; with a sink (kSink), c starts at the sink logit
//     and l at 1, the sink's own term (row_start). When a tile moves the shift from c to c', l and acc are
//     multiplied by exp(c - c') (exact for every normaliser, §3.2), then each VISIBLE score x of the tile
//     adds term(x, c', exp(-c')): w to the weight of its value row, den to l (in either unit of scores,
//     Natural or Base2 below). Masked keys never reach a
//     policy: softpick would count them in its denominator (§3.1).
//   * end of a row: row_end(c, l, eps) gives 1 / denominator and lse. An empty row (softpick: no score
//     > 0; rectified: no score >= 0) gets 0 and lse = +inf: it outputs exact zeros (§5).
//   * backward, from the recomputed score x, the row's lse, base = exp(-lse), dp = dO . v and
//     delta = rowsum(O * dO): grad() gives the weight p (for dv) and the score gradient ds = dL/dx (for dq
//     and dk). lse = +inf makes both exactly 0. Softpick takes H(0) = 0 and sgn(0) = -1 (§3.4). x and lse
//     in the same units (Natural or Base2 below); base and the returned gradient are unit-free: ds is
//     dL/dx for the natural score x either way.
#pragma once

#include "common.cuh"
#include "device_util.cuh"

#include "backend/op_args.h"

#include <cmath>
#include <cstdint>
#include <type_traits>

namespace sp::cuda::attn {

// The units scores reach a policy in. Natural: x = q . k / sqrt(D), exp is expf. Base2: x2 = x log2(e),
// so exp(x) = exp2(x2), one instruction (the tensor-core kernel folds log2(e) into the score scale). The
// policies' formulas hold in either unit with its exponential: a shift and a max commute with the scaling,
// the denominator terms are exponentials (unit-free), and the thresholds at 0 keep their sign.
struct Natural {
  __device__ static float exp(float x) { return expf(x); }
  __device__ static float from_natural(float x) { return x; }
  __device__ static float natural_log(float c, float den) { return c + logf(den); }  // ln(e^c den)
};
struct Base2 {
  __device__ static float exp(float x) { return exp2f(x); }
  __device__ static float from_natural(float x) { return x * 1.4426950408889634f; }  // x log2(e)
  // ln(2^c den) = (c + log2(den)) ln 2: lse is saved in natural units whatever the kernel's
  __device__ static float natural_log(float c, float den) { return (c + log2f(den)) * 0.693147180559945309f; }
};

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
  static constexpr bool kSink = false;
  template <class U = Natural>
  __device__ static Term term(float x, float c, float /*base*/) {
    const float w = U::exp(x - c);
    return {w, w};
  }
  __device__ static float denominator(float l, float /*eps*/) { return l; }
  __device__ static bool empty(float /*c*/, float den) { return !(den > 0.0f); }
  template <class U = Natural>
  __device__ static ScoreGrad grad(float x, float lse, float /*base*/, float dp, float delta) {
    const float y = U::exp(x - lse);
    return {y, y * (dp - delta)};
  }
};

struct Softpick {
  static constexpr float kInitialShift = 0.0f;
  static constexpr bool kSink = false;
  template <class U = Natural>
  __device__ static Term term(float x, float c, float base) {
    const float e = U::exp(x - c) - base;  // e^{-c} (e^x - 1)
    return {fmaxf(e, 0.0f), fabsf(e)};
  }
  __device__ static float denominator(float l, float eps) { return l + eps; }  // eps after the shift
  __device__ static bool empty(float c, float den) { return !(c > 0.0f && den > 0.0f); }
  template <class U = Natural>
  __device__ static ScoreGrad grad(float x, float lse, float base, float dp, float delta) {
    const float e = U::exp(x - lse);  // e^x / Den
    return {fmaxf(e - base, 0.0f), x > 0.0f ? e * (dp - delta) : e * delta};
  }
};

// Softmax over the scores >= 0 (docs §4): the negative ones act as -inf. Its denominator and its empty
// rule are softmax's.
struct Rectified : Softmax {
  static constexpr float kInitialShift = 0.0f;
  template <class U = Natural>
  __device__ static Term term(float x, float c, float /*base*/) {
    const float w = x >= 0.0f ? U::exp(x - c) : 0.0f;
    return {w, w};
  }
  template <class U = Natural>
  __device__ static ScoreGrad grad(float x, float lse, float /*base*/, float dp, float delta) {
    const float y = x >= 0.0f ? U::exp(x - lse) : 0.0f;
    return {y, y * (dp - delta)};
  }
};

// Softmax with one more denominator term exp(s), s the head's sink logit (docs §10): a key with score s and
// a zero value row. Softmax1 is s = 0; Sink learns s. Every score's term and gradient is softmax's (the
// gradient through lse, which holds the sink); only the row's start differs (row_start). The row is never
// empty: its denominator is at least exp(s - c) > 0.
struct SinkSoftmax : Softmax {
  static constexpr bool kSink = true;
};

// The running state a row starts from, in units U: (kInitialShift, 0), or with a sink (s, 1): the sink's
// term exp(s - c) = 1 at c = s, which the rescaling by exp(c - c') then carries like any other. `sink` is
// the logit in natural units (0 for softmax1); the other policies ignore it.
struct RowStart {
  float c, l;
};
template <class N, class U = Natural>
__device__ RowStart row_start(float sink) {
  if constexpr (N::kSink) return {U::from_natural(sink), 1.0f};
  else return {N::kInitialShift, 0.0f};
}

// The sink logit of head h: sinks[h] for learned sinks, 0 for softmax1 (sinks == nullptr).
template <class T>
__device__ float sink_logit(const T* sinks, int64_t h) {
  return sinks ? to_f32(sinks[h]) : 0.0f;
}

struct RowEnd {
  float inv_den;  // output = acc * inv_den; 0 for an empty row, whose acc is 0: the output is exact zeros
  float lse;      // saved for the backward pass
};

// c in the units U; lse comes out in natural units.
template <class N, class U = Natural>
__device__ RowEnd row_end(float c, float l, float eps) {
  const float den = N::denominator(l, eps);
  if (N::empty(c, den)) return {0.0f, INFINITY};
  return {1.0f / den, U::natural_log(c, den)};
}

// The one list of normalisers: calls f(Softmax{}), f(Softpick{}), f(Rectified{}) or f(SinkSoftmax{}) for
// the runtime value, so a launcher instantiates its kernel on the policy type.
template <class F>
void dispatch_normaliser(Normaliser n, F&& f) {
  switch (n) {
    case Normaliser::Softmax: f(Softmax{}); return;
    case Normaliser::Softpick: f(Softpick{}); return;
    case Normaliser::Rectified: f(Rectified{}); return;
    case Normaliser::Softmax1:
    case Normaliser::Sink: f(SinkSoftmax{}); return;
  }
  SP_ASSERT(false, "unknown normaliser {}", int(n));
}

// The same over the normaliser and the head dim (32, 64 or 128): f(policy, std::integral_constant<int, D>).
template <class F>
void dispatch_attention(Normaliser n, int64_t D, F&& f) {
  dispatch_normaliser(n, [&](auto norm) {
    switch (D) {
      case 32: f(norm, std::integral_constant<int, 32>{}); return;
      case 64: f(norm, std::integral_constant<int, 64>{}); return;
      case 128: f(norm, std::integral_constant<int, 128>{}); return;
    }
    SP_ASSERT(false, "attention: head dim D = {} is not supported (32, 64 or 128)", D);
  });
}

}  // namespace sp::cuda::attn
