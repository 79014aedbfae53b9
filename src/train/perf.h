// Throughput accounting (design §5): FLOPs per token, the CPU's measured fp32 GEMM rate as its "peak",
// and MFU.
#pragma once

#include <chrono>

namespace sp {

// Measures sgemm on n x n matrices for about `seconds` and returns GFLOP/s (2 n^3 per product).
double measure_gemm_gflops_at(int n, double seconds);
// The CPU's fp32 "peak": the best sgemm rate of 1024^3 and 2048^3 products, about `seconds` in all.
double measure_gemm_gflops(double seconds = 0.6);

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
