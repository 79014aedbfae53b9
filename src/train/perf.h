// Throughput accounting: MFU against the backend's peak (Backend::peak_flops), as the trainer
// and `softpick bench` report it, and a stopwatch.
#pragma once

#include "backend/backend.h"

#include <chrono>
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

}  // namespace sp
