#include "backend/peak.h"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <vector>

namespace sp {

namespace {

// sgemm on n x n matrices for about `seconds`: FLOP/s, 2 n^3 per product.
double measure_sgemm_flops(int n, double seconds) {
  std::vector<float> a(size_t(n) * n, 0.5f), b(size_t(n) * n, 0.25f), c(size_t(n) * n, 0.f);
  auto product = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, c.data(), n);
  };
  product();  // warm up: thread pool start, page faults
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(clock::now() - start).count(); };
  int reps = 0;
  do {
    product();
    ++reps;
  } while (elapsed() < seconds);
  return 2.0 * double(n) * n * n * reps / elapsed();
}

struct GpuPeak {
  const char* name;       // a substring of the device name
  const char* qualifier;  // and this one too ("" for none)
  double flops;
};

// Dense bf16 tensor-core peaks from NVIDIA's data sheets; a qualified row comes before its plain one.
constexpr GpuPeak kGpuPeaks[] = {
    {"H100", "PCIe", 756e12},
    {"H100", "", 989e12},  // SXM
    {"H200", "", 989e12},
    {"A100", "", 312e12},
    {"L40S", "", 362e12},
    {"RTX 4090", "", 165e12},
};

}  // namespace

double cpu_peak_fp32_flops() {
  // the best of two sizes: small products under-use the cores, large ones the caches
  static const double peak = std::max(measure_sgemm_flops(1024, 0.3), measure_sgemm_flops(2048, 0.3));
  return peak;
}

double gpu_peak_bf16_flops(const std::string& device_name) {
  for (const GpuPeak& g : kGpuPeaks)
    if (device_name.find(g.name) != std::string::npos && device_name.find(g.qualifier) != std::string::npos)
      return g.flops;
  return 0;
}

}  // namespace sp
