// Scaled attention (SSMax) query scaling on the CPU, forward and backward. With a = s_h * log(t + 2):
//   q_out = a * q_in,    dq_in = a * dq_out,    ds_h = sum over (b, t) of log(t + 2) * (dq_out . q_in)
// Inside this file F is the element type (float or double); T is the sequence length.
// Conventions (ssmax.h): dq_in is overwritten, ds +=.
#include "cpu/ssmax.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/reduce.h"

namespace sp {

template <class F>
void ssmax_forward(F* q_out, const F* q_in, const F* s, size_t B, size_t T, size_t H, size_t D, size_t pos0) {
#pragma omp parallel for schedule(static)
  for (size_t bt = 0; bt < B * T; bt++) {
    const double log_t = std::log(double(pos0 + bt % T) + 2.0);
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
  if (H == 0) return;
  // ds sums over the B * T positions in a fixed order (reduce.h); dq_in is per position
  chunked_row_reduce(B * T, H, ds, [&](size_t bt, double* ds_part /* (H) */) {
    const double log_t = std::log(double(bt % T) + 2.0);
    for (size_t h = 0; h < H; h++) {
      const F a = F(double(s[h]) * log_t);
      const size_t off = (bt * H + h) * D;  // head vector (D) at (b, t, h)
      for (size_t d = 0; d < D; d++) dq_in[off + d] = a * dq_out[off + d];
      ds_part[h] += log_t * lane_sum(D, [&](size_t d) { return double(dq_out[off + d]) * q_in[off + d]; });
    }
  });
}

template void ssmax_forward<float>(float*, const float*, const float*, size_t, size_t, size_t, size_t, size_t);
template void ssmax_forward<double>(double*, const double*, const double*, size_t, size_t, size_t, size_t,
                                    size_t);
template void ssmax_backward<float>(float*, float*, const float*, const float*, const float*, size_t, size_t,
                                    size_t, size_t);
template void ssmax_backward<double>(double*, double*, const double*, const double*, const double*, size_t,
                                     size_t, size_t, size_t);

}  // namespace sp
