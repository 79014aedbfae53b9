// Times the CPU flash attention (forward, backward) for each normaliser against the fp32 GEMM rate of the
// same machine, in the FlashAttention FLOP convention: forward 4 B T^2 H D / 2 (causal),
// backward 2.5x forward. Prints numbers and ratios; asserts nothing.
//
// Build (one line): g++ -O3 -march=native -fopenmp -std=c++20 -Isrc
//   -I/usr/include/x86_64-linux-gnu/openblas-openmp dev/bench_attention.cpp src/cpu/attention.cpp
//   src/core/check.cpp -o /tmp/bench_attention /usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so -lfmt
//   OMP_NUM_THREADS=1 /tmp/bench_attention [T ...]      (B = 1, H = Hkv = 16, D = 64)
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "cpu/attention.h"

namespace {

template <class Fn>
double time_ms(Fn&& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

double gemm_gflops() {  // fp32 GEMM at 2048^3 with the current thread count
  const int n = 2048;
  std::vector<float> a(size_t(n) * n, 1.0f), b(size_t(n) * n, 0.5f), c(size_t(n) * n);
  double ms = 1e30;
  for (int r = 0; r < 4; ++r)  // best of 4, the first one included as warm-up
    ms = std::min(ms, time_ms([&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f,
                  c.data(), n);
    }));
  return 2.0 * n * n * n / (ms * 1e6);
}

const char* name(sp::Normaliser n) {
  return n == sp::Normaliser::Softmax ? "softmax" : n == sp::Normaliser::Softpick ? "softpick" : "rectified";
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> Ts;
  for (int i = 1; i < argc; ++i) Ts.push_back(std::atoll(argv[i]));
  if (Ts.empty()) Ts = {1024, 2048};
  const int64_t B = 1, H = 16, Hkv = 16, D = 64;
  const double gemm = gemm_gflops();
  std::printf("threads %d, fp32 GEMM %.1f GFLOP/s\n", omp_get_max_threads(), gemm);
  std::printf("%6s %-10s %8s %8s %9s %9s %8s %8s %8s %8s\n", "T", "norm", "fwd ms", "bwd ms", "fwd GF/s",
              "bwd GF/s", "fwd/gemm", "bwd/gemm", "fwd/smax", "bwd/smax");
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (int64_t T : Ts) {
    const size_t nq = size_t(B) * T * H * D, nk = size_t(B) * T * Hkv * D;
    std::vector<float> q(nq), k(nk), v(nk), out(nq), dout(nq), dq(nq), dk(nk), dv(nk);
    std::vector<float> lse(size_t(B) * H * T);
    for (auto* x : {&q, &k, &v, &dout})
      for (float& e : *x) e = dist(rng);
    const double fwd_gflop = 4.0 * B * T * T * H * D / 2 / 1e9, bwd_gflop = 2.5 * fwd_gflop;
    // Normalisers are timed interleaved, best of `reps` each, so a burst of machine noise hits all of them.
    const sp::Normaliser norms[] = {sp::Normaliser::Softmax, sp::Normaliser::Softpick,
                                    sp::Normaliser::Rectified};
    double fwd_ms[3] = {1e30, 1e30, 1e30}, bwd_ms[3] = {1e30, 1e30, 1e30};
    const int reps = T <= 1024 ? 8 : 4;
    for (int r = 0; r <= reps; ++r)
      for (int n = 0; n < 3; ++n) {
        sp::AttentionShape s{B, T, H, Hkv, D};
        s.norm = norms[n];
        const double f = time_ms([&] {
          sp::attention_forward(s, q.data(), k.data(), v.data(), out.data(), lse.data());
        });
        const double b = time_ms([&] {
          sp::attention_backward(s, q.data(), k.data(), v.data(), out.data(), dout.data(), lse.data(),
                                 dq.data(), dk.data(), dv.data());
        });
        if (r == 0) continue;  // warm-up
        fwd_ms[n] = std::min(fwd_ms[n], f);
        bwd_ms[n] = std::min(bwd_ms[n], b);
      }
    for (int n = 0; n < 3; ++n) {
      const double fr = fwd_gflop / fwd_ms[n] * 1e3, br = bwd_gflop / bwd_ms[n] * 1e3;  // GFLOP/s
      std::printf("%6lld %-10s %8.2f %8.2f %9.1f %9.1f %8.2f %8.2f %8.3f %8.3f\n", static_cast<long long>(T),
                  name(norms[n]), fwd_ms[n], bwd_ms[n], fr, br, fr / gemm, br / gemm, fwd_ms[n] / fwd_ms[0],
                  bwd_ms[n] / bwd_ms[0]);
    }
  }
}
