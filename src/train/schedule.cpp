#include "train/schedule.h"

#include <algorithm>
#include <cmath>

namespace sp {

double learning_rate(const Config& c, int64_t step) {
  const double peak = c.optimizer.lr, floor = c.lr_scheduler.lr_min * peak;
  const int64_t warmup = c.lr_scheduler.warmup_steps, total = c.training.steps;
  if (step < warmup) return peak * double(step + 1) / double(warmup);
  const std::string& kind = c.lr_scheduler.name;
  if (kind == "constant") return peak;
  if (kind == "cosine") {
    const double progress = std::clamp(double(step - warmup) / double(std::max<int64_t>(1, total - warmup)), 0.0, 1.0);
    return floor + (peak - floor) * 0.5 * (1.0 + std::cos(M_PI * progress));
  }
  // wsd: stable at the peak, then a linear decay over the last decay_ratio of the run
  const int64_t decay_steps = std::max<int64_t>(1, int64_t(std::llround(c.lr_scheduler.decay_ratio * double(total))));
  const int64_t decay_start = std::max(warmup, total - decay_steps);
  if (step < decay_start) return peak;
  const double progress = std::clamp(double(step - decay_start) / double(std::max<int64_t>(1, total - decay_start)), 0.0, 1.0);
  return peak + (floor - peak) * progress;
}

}  // namespace sp
