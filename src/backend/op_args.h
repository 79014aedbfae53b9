// Small argument and result types shared by the backend interface and the op implementations.
#pragma once

#include <cstdint>

namespace sp {

enum class Normaliser { Softmax, Softpick, Rectified };

// Attention problem: q (B, T, H, D), k and v (B, T, Hkv, D), causal.
struct AttentionShape {
  int64_t B, T, H, Hkv, D;
  Normaliser norm = Normaliser::Softmax;
  double softpick_eps = 1e-6;
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
