// Shared by the CUDA kernel tests (harness build, and a GPU where one is visible): device buffers filled
// from host vectors, bf16 rounding, and the tolerances, stated once per dtype.
//
// Errors are measured over a whole tensor as max|a - b| / max|b| (as in the CPU op tests). A CUDA kernel is
// compared with the CPU reference op run on the SAME inputs (bf16 inputs are rounded first, and the CPU
// reference gets the rounded values in fp32), so what is left is the kernel's own rounding:
//   * fp32 kernels differ only in summation order (and, with nvcc, FMA contraction): a few ulps.
//   * bf16 outputs are rounded to nearest once, a relative error of at most u = 2^-8 of the value, plus the
//     fp32 work before it; 2.5 u bounds that with room for the fp32 part.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace sp::test {

constexpr double kTolCudaF32 = 2e-5;
constexpr double kTolCudaBF16 = 2.5 / 256;
// Outputs computed from bf16-rounded intermediates as well: the tensor-core attention backward multiplies
// P and dS rounded to bf16 (mma operands, as FlashAttention does), two roundings more than the inputs' and
// the output's; with a row's terms cancelling (softmax's dS sums to 0) they show at up to ~1.4% of max|ref|.
constexpr double kTolCudaBF16Operands = 4.0 / 256;

template <class T>
constexpr double cuda_tolerance() {
  return std::is_same_v<T, float> ? kTolCudaF32 : kTolCudaBF16;
}

inline float round_bf16(float x) { return __bfloat162float(__float2bfloat16(x)); }

template <class T>
T from_float(float x) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) return __float2bfloat16(x);
  else return T(x);
}
template <class T>
float to_float(T x) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) return __bfloat162float(x);
  else return float(x);
}

// Normal values, already representable in T (so host reference and kernel see the same numbers).
template <class T>
std::vector<float> randn_as(size_t n, std::mt19937_64& rng, double scale = 1.0) {
  std::normal_distribution<double> d(0.0, scale);
  std::vector<float> x(n);
  for (auto& e : x) e = to_float(from_float<T>(float(d(rng))));
  return x;
}

// A device allocation of n elements of T, uploaded from and downloaded to float vectors.
template <class T>
struct DeviceArray {
  T* p = nullptr;
  size_t n = 0;
  explicit DeviceArray(size_t n_) : n(n_) { cudaMalloc(reinterpret_cast<void**>(&p), std::max<size_t>(n, 1) * sizeof(T)); }
  explicit DeviceArray(const std::vector<float>& host) : DeviceArray(host.size()) { upload(host); }
  ~DeviceArray() { cudaFree(p); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  void upload(const std::vector<float>& host) {
    std::vector<T> h(host.size());
    for (size_t i = 0; i < h.size(); ++i) h[i] = from_float<T>(host[i]);
    cudaMemcpy(p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice);
  }
  std::vector<float> host() const {
    std::vector<T> h(n);
    cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
    cudaDeviceSynchronize();
    std::vector<float> out(n);
    for (size_t i = 0; i < n; ++i) out[i] = to_float(h[i]);
    return out;
  }
};

// max|a - ref| / max|ref| (infinity if a holds a NaN where ref does not)
inline double rel_err(const std::vector<float>& a, const std::vector<float>& ref) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size() && i < ref.size(); ++i) {
    if (std::isnan(a[i]) != std::isnan(ref[i])) return std::numeric_limits<double>::infinity();
    if (std::isnan(ref[i])) continue;
    if (std::isinf(ref[i]) || std::isinf(a[i])) {
      if (a[i] != ref[i]) return std::numeric_limits<double>::infinity();
      continue;
    }
    diff = std::max(diff, std::abs(double(a[i]) - double(ref[i])));
    scale = std::max(scale, std::abs(double(ref[i])));
  }
  if (a.size() != ref.size()) return std::numeric_limits<double>::infinity();
  return scale > 0 ? diff / scale : diff;
}

}  // namespace sp::test
