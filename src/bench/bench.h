// `softpick bench`: training-step throughput on training.device against the backend's peak (on the CPU,
// its fp32 GEMM rate measured in the same run), and the CPU's attention throughput against its peers
// (softmax attention, the naive attention).
#pragma once

#include "config/config.h"

#include <vector>

namespace sp {

struct BenchOptions {
  int64_t steps = 3;                       // timed training steps (after one warm-up step)
  std::vector<int64_t> attention_T = {256, 512, 1024, 2048, 4096};
  int64_t naive_max_T = 2048;              // the naive reference materialises (B, H, T, T)
  bool train = true, attention = true;
};

void run_bench(const Config& cfg, const BenchOptions& opt);

}  // namespace sp
