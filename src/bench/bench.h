// `softpick bench`: training-step throughput on training.device against the backend's peak (on the CPU,
// its fp32 GEMM rate measured in the same run), and the attention's throughput on the same backend,
// forward and backward, softpick against softmax (on the CPU also against the naive attention).
#pragma once

#include "config/config.h"

#include <vector>

namespace sp {

struct BenchOptions {
  int64_t steps = 3;                       // timed training steps (after one warm-up step)
  // empty: chosen by the backend (CPU 256..4096; GPU 512..16384; the CUDA execution harness 64, 128)
  std::vector<int64_t> attention_T;
  std::vector<int64_t> attention_D;        // head dims of the attention table; empty: the config's
  int64_t naive_max_T = 2048;              // the naive reference materialises (B, H, T, T)
  bool train = true, attention = true;
};

void run_bench(const Config& cfg, const BenchOptions& opt);

}  // namespace sp
