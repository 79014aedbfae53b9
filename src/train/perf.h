// Throughput accounting: MFU against the backend's peak (Backend::peak_flops), as the trainer
// and `softpick bench` report it, a stopwatch, and the training loop's remaining-time estimate.
#pragma once

#include "backend/backend.h"

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace sp {

// Model FLOPs utilisation: achieved FLOP/s over the peak of the devices that achieved them. NaN when the
// peak is unknown (0): logs print it as "n/a", metrics.jsonl as null.
double mfu(double achieved_flops, double peak_flops);
std::string format_mfu(double mfu);  // "41.2%", or "n/a"

// "CPU peak (measured fp32 GEMM): 95.1 GFLOP/s", or with an unknown peak "...: unknown, MFU is n/a".
std::string peak_summary(const Backend& b);

class Stopwatch {
public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  void reset() { start_ = std::chrono::steady_clock::now(); }

private:
  std::chrono::steady_clock::time_point start_;
};

// The progress line's remaining time: the training steps left at the mean time of the steps timed so far,
// plus the periodic work left (evaluations, analyses, samples, checkpoints) at the mean time of each kind
// done so far (a kind not done yet counts as free). The first step after a start or a resume warms up
// (allocations, first launches, page faults) and is not counted, and there is no estimate until two more
// steps are timed, so the first lines never extrapolate from one step.
class RunEta {
public:
  enum Work { kStep, kEval, kAnalysis, kSample, kCheckpoint, kWorkKinds };
  using Counts = std::array<int64_t, kWorkKinds>;

  void add(Work w, double seconds);
  std::optional<double> seconds_left(const Counts& remaining) const;

private:
  bool warmed_up_ = false;
  std::array<double, kWorkKinds> seconds_{};
  Counts done_{};
};

// How many of the steps s in [first, last) have s % interval == 0 (interval > 0); 0 for an empty range.
int64_t multiples_in(int64_t first, int64_t last, int64_t interval);

}  // namespace sp
