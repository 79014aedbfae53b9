// Small argument and result types shared by the backend interface and the op implementations.
#pragma once

#include <cstdint>

namespace sp {

// The attention normalisers (docs/attention.md). Softmax1 and Sink are softmax with one more term in the
// denominator, exp(s) for a per-head sink logit s: a key with score s and a zero value row. Softmax1 fixes
// s = 0 (exp(x_i) / (1 + sum_j exp(x_j))); Sink learns s per head (a model parameter, `sinks`).
enum class Normaliser { Softmax, Softpick, Rectified, Softmax1, Sink };

inline bool has_sink(Normaliser n) { return n == Normaliser::Softmax1 || n == Normaliser::Sink; }

constexpr Normaliser kNormalisers[] = {Normaliser::Softmax, Normaliser::Softpick, Normaliser::Rectified,
                                       Normaliser::Softmax1, Normaliser::Sink};

// As model.attention spells it (normaliser_from_name in model/model.h reads it).
constexpr const char* normaliser_name(Normaliser n) {
  switch (n) {
    case Normaliser::Softmax: return "softmax";
    case Normaliser::Softpick: return "softpick";
    case Normaliser::Rectified: return "rectified";
    case Normaliser::Softmax1: return "softmax1";
    case Normaliser::Sink: return "sink";
  }
  return "?";
}

// Fake quantization of a linear layer's input at evaluation (docs/quantization.md), in place on x (N, C):
// with L = 127 (Int8) or 448 (Fp8, the largest e4m3 value) and absmax over the row (or, per_tensor, the
// whole tensor), x = round(x * L / absmax) * (absmax / L), rounding to an integer (halves to even) or to the
// nearest e4m3 value (halves to even). With outlier_threshold > 0 (LLM.int8's decomposition) the columns
// holding any |x| >= threshold stay in 16-bit (rounded to fp16) and are left out of the absmax.
enum class ActQuant { None, Int8, Fp8 };

struct ActQuantArgs {
  ActQuant kind = ActQuant::None;
  bool per_tensor = false;
  double outlier_threshold = 0;
};

constexpr double act_quant_levels(ActQuant k) { return k == ActQuant::Int8 ? 127.0 : 448.0; }

// The gated linear units, out = act(gate) * up: Swish is the MLP's SwiGLU (act = silu), Sigmoid the
// original GLU (act = sigmoid), which the attention output gate applies (model.attention_gate).
enum class Glu { Sigmoid, Swish };

// Attention problem, causal: k and v (B, T, Hkv, D); the queries are the last Tq() = T - q_offset positions
// of each sequence, q and out (B, Tq, H, D), lse (B, H, Tq). Query row i sits at position q_offset + i and
// sees keys 0 .. q_offset + i. Training has q_offset = 0 (Tq = T); the key/value-cached decoder passes the
// position of its first new row, with the cache's first T rows as k and v.
struct AttentionShape {
  int64_t B, T, H, Hkv, D;
  Normaliser norm = Normaliser::Softmax;
  double softpick_eps = 1e-6;
  int64_t q_offset = 0;
  int64_t Tq() const { return T - q_offset; }
};

// Cross-entropy summed over the rows that have a target.
struct LossSum {
  double sum = 0;     // nats
  int64_t count = 0;  // rows with a target >= 0
};

struct AdamWArgs {
  double lr, beta1, beta2, eps, weight_decay;
  int64_t step;        // 1-based, for bias correction
  double grad_scale;   // multiplies the gradient first (1, or the clipping factor)
};

}  // namespace sp
