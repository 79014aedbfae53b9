#include "train/perf.h"

#include <cblas.h>

#include <algorithm>
#include <vector>

namespace sp {

double measure_gemm_gflops_at(int n, double seconds) {
  std::vector<float> a(size_t(n) * n, 0.5f), b(size_t(n) * n, 0.25f), c(size_t(n) * n, 0.f);
  auto product = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, c.data(), n);
  };
  product();  // warm up: thread pool start, page faults
  int reps = 0;
  Stopwatch sw;
  do {
    product();
    ++reps;
  } while (sw.seconds() < seconds);
  return 2.0 * double(n) * n * n * reps / sw.seconds() / 1e9;
}

double measure_gemm_gflops(double seconds) {
  // the best of two sizes: small products under-use the cores, large ones the caches
  return std::max(measure_gemm_gflops_at(1024, seconds / 2), measure_gemm_gflops_at(2048, seconds / 2));
}

}  // namespace sp
