// Scaled attention (SSMax) query scaling on the CPU, forward and backward. With a = s_h * log(t + 2):
//   q_out = a * q_in,    dq_in = a * dq_out,    ds_h = sum over (b, t) of log(t + 2) * (dq_out . q_in)
// Inside this file F is the element type (float or double); T is the sequence length.
// Conventions (ssmax.h): dq_in is overwritten, ds +=.
#include "cpu/ssmax.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/lane_sum.h"

namespace sp {
namespace {

// ds is a sum over all B * T positions. Positions are cut into at most kMaxChunks chunks whose bounds
// depend on B * T only; each chunk sums in order and the partials are added in chunk order, so ds is
// bit-identical for any thread count and schedule.
constexpr size_t kMaxChunks = 256;

}  // namespace

template <class F>
void ssmax_forward(F* q_out, const F* q_in, const F* s, size_t B, size_t T, size_t H, size_t D) {
#pragma omp parallel for schedule(static)
  for (size_t bt = 0; bt < B * T; bt++) {
    const double log_t = std::log(double(bt % T) + 2.0);
    for (size_t h = 0; h < H; h++) {
      const F a = F(double(s[h]) * log_t);
      const size_t off = (bt * H + h) * D;  // head vector (D) at (b, t, h)
      for (size_t d = 0; d < D; d++) q_out[off + d] = a * q_in[off + d];
    }
  }
}

template <class F>
void ssmax_backward(F* dq_in, F* ds, const F* dq_out, const F* q_in, const F* s, size_t B, size_t T, size_t H,
                    size_t D) {
  const size_t BT = B * T;
  if (BT == 0 || H == 0) return;
  const size_t nchunks = std::min(BT, kMaxChunks);
  const size_t rows_per_chunk = (BT + nchunks - 1) / nchunks;
  std::vector<double> ds_part(nchunks * H, 0.0);  // (nchunks, H)

#pragma omp parallel for schedule(static)
  for (size_t k = 0; k < nchunks; k++) {
    double* part = ds_part.data() + k * H;  // (H)
    const size_t bt1 = std::min(BT, (k + 1) * rows_per_chunk);
    for (size_t bt = k * rows_per_chunk; bt < bt1; bt++) {
      const double log_t = std::log(double(bt % T) + 2.0);
      for (size_t h = 0; h < H; h++) {
        const F a = F(double(s[h]) * log_t);
        const size_t off = (bt * H + h) * D;  // head vector (D) at (b, t, h)
        for (size_t d = 0; d < D; d++) dq_in[off + d] = a * dq_out[off + d];
        part[h] += log_t * lane_sum(D, [&](size_t d) { return double(dq_out[off + d]) * q_in[off + d]; });
      }
    }
  }

  for (size_t h = 0; h < H; h++) {
    double sum = 0;
    for (size_t k = 0; k < nchunks; k++) sum += ds_part[k * H + h];
    ds[h] += F(sum);
  }
}

template void ssmax_forward<float>(float*, const float*, const float*, size_t, size_t, size_t, size_t);
template void ssmax_forward<double>(double*, const double*, const double*, size_t, size_t, size_t, size_t);
template void ssmax_backward<float>(float*, float*, const float*, const float*, const float*, size_t, size_t,
                                    size_t, size_t);
template void ssmax_backward<double>(double*, double*, const double*, const double*, const double*, size_t,
                                     size_t, size_t, size_t);

}  // namespace sp
