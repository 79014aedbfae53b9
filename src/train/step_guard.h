// Decides whether a step's update is applied: a step whose loss or gradient norm is not finite is skipped
// (the paper's recipe), skips are counted, and the run ends after `max_consecutive` skips in a row.
#pragma once

#include "core/check.h"

#include <cmath>
#include <cstdint>

namespace sp {

class NonFiniteGuard {
public:
  explicit NonFiniteGuard(int64_t max_consecutive) : max_consecutive_(max_consecutive) {}

  // True if the update may be applied. Throws an Error once max_consecutive steps in a row were skipped.
  bool accept(double loss, double grad_norm) {
    if (std::isfinite(loss) && std::isfinite(grad_norm)) {
      consecutive_ = 0;
      return true;
    }
    ++total_;
    if (++consecutive_ >= max_consecutive_)
      fail("{} consecutive steps with a non-finite loss or gradient norm (training.max_skipped_steps = {}); the "
           "run diverged: lower optimizer.lr, check the data, or resume from an earlier checkpoint",
           consecutive_, max_consecutive_);
    return false;
  }

  // Continues counting from a checkpoint.
  void restore(int64_t total, int64_t consecutive) {
    total_ = total;
    consecutive_ = consecutive;
  }

  int64_t total_skipped() const { return total_; }
  int64_t consecutive() const { return consecutive_; }

private:
  int64_t max_consecutive_;
  int64_t consecutive_ = 0, total_ = 0;
};

}  // namespace sp
