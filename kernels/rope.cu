// One block per (b, t) row: its threads first fill the row's cos/sin table (D/2 angles, shared by the Hx
// heads), then rotate the Hx * D/2 pairs. The inverse frequencies travel by value in the kernel's
// parameters, so a launch needs no device buffer and no copy.
#include "common.cuh"
#include "device_util.cuh"
#include "rope.cuh"

#include <cmath>

namespace sp::cuda {

namespace {

constexpr unsigned kThreads = 256;
constexpr size_t kMaxHalf = 128;                      // D <= 256; the frequencies are 1 KiB of parameters
constexpr size_t kMaxGrid = (size_t(1) << 31) - 1;  // the grid's x limit

struct InvFreq {
  double f[kMaxHalf];  // (D/2): theta^(-2i/D)
};

template <class T>
__global__ void rope_kernel(T* x /* (B, T, Hx, D) */, size_t T_, unsigned Hx, unsigned D, InvFreq inv_freq,
                            size_t pos0, float sign) {
  SP_SHARED(float, cos_a, kMaxHalf);  // (D/2) of this row's position
  SP_SHARED(float, sin_a, kMaxHalf);  // (D/2), times sign
  const unsigned half = D / 2;
  const size_t bt = blockIdx.x;
  const double pos = double(pos0 + bt % T_);
  for (unsigned i = threadIdx.x; i < half; i += kThreads) {
    const double a = pos * inv_freq.f[i];
    cos_a[i] = float(cos(a));
    sin_a[i] = sign * float(sin(a));
  }
  __syncthreads();  // the row's table is complete before any thread rotates with it
  T* row = x + bt * Hx * D;  // (Hx, D)
  for (unsigned j = threadIdx.x; j < Hx * half; j += kThreads) {
    const unsigned h = j / half, i = j % half;
    T* lo = row + h * D + i;  // first half of the pair
    T* hi = lo + half;        // second half
    const float x0 = to_f32(*lo), x1 = to_f32(*hi);
    *lo = from_f32<T>(x0 * cos_a[i] - x1 * sin_a[i]);
    *hi = from_f32<T>(x1 * cos_a[i] + x0 * sin_a[i]);
  }
}

template <class T>
void rope_cuda(T* x, size_t B, size_t T_, size_t Hx, size_t D, double theta, size_t pos0, float sign,
               cudaStream_t stream) {
  SP_ASSERT(x, "rope_cuda: null pointer");
  SP_ASSERT(D > 0 && D % 2 == 0 && D / 2 <= kMaxHalf, "rope needs an even head dimension <= {}, got D={}",
            2 * kMaxHalf, D);
  SP_ASSERT(theta > 0, "rope theta={} must be > 0", theta);
  SP_ASSERT(B * T_ <= kMaxGrid && Hx * D < (size_t(1) << 32), "rope: B={} T={} Hx={} D={} too large", B, T_, Hx, D);
  if (B * T_ == 0) return;
  InvFreq inv_freq{};
  for (size_t i = 0; i < D / 2; i++) inv_freq.f[i] = std::pow(theta, -2.0 * double(i) / double(D));
  SP_LAUNCH(rope_kernel<T>, unsigned(B * T_), kThreads, 0, stream, x, T_, unsigned(Hx), unsigned(D), inv_freq,
            pos0, sign);
}

}  // namespace

template <class T>
void rope_forward_cuda(T* x, size_t B, size_t T_, size_t Hx, size_t D, double theta, size_t pos0,
                       cudaStream_t stream) {
  rope_cuda(x, B, T_, Hx, D, theta, pos0, 1.0f, stream);
}

template <class T>
void rope_backward_cuda(T* dx, size_t B, size_t T_, size_t Hx, size_t D, double theta, size_t pos0,
                        cudaStream_t stream) {
  rope_cuda(dx, B, T_, Hx, D, theta, pos0, -1.0f, stream);
}

using bf16 = __nv_bfloat16;
template void rope_forward_cuda<float>(float*, size_t, size_t, size_t, size_t, double, size_t, cudaStream_t);
template void rope_forward_cuda<bf16>(bf16*, size_t, size_t, size_t, size_t, double, size_t, cudaStream_t);
template void rope_backward_cuda<float>(float*, size_t, size_t, size_t, size_t, double, size_t, cudaStream_t);
template void rope_backward_cuda<bf16>(bf16*, size_t, size_t, size_t, size_t, double, size_t, cudaStream_t);

}  // namespace sp::cuda
