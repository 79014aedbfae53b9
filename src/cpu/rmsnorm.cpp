// RMSNorm on the CPU, forward and backward. With xhat = x * rstd and g = dout * w, per row:
//   dx = rstd * (g - xhat * mean(g * xhat)),    dw = sum over rows of dout * xhat
// Inside this file F is the element type (float or double). Conventions (rmsnorm.h): dx +=, dw +=.
#include "cpu/rmsnorm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/check.h"
#include "cpu/reduce.h"

namespace sp {

template <class F>
void rmsnorm_forward(F* out, F* rstd, const F* x, const F* w, size_t N, size_t C, double eps) {
  SP_ASSERT(C > 0 && eps >= 0, "rmsnorm C={} eps={}", C, eps);
#pragma omp parallel for schedule(static)
  for (size_t n = 0; n < N; n++) {
    const F* xr = x + n * C;  // (C)
    F* outr = out + n * C;    // (C)
    // In double: a float sum of C squares would lose digits as C grows.
    const double ss = lane_sum(C, [&](size_t c) { return double(xr[c]) * xr[c]; });
    const double r = 1.0 / std::sqrt(ss / double(C) + eps);
    rstd[n] = F(r);
    const F rf = F(r);
    for (size_t c = 0; c < C; c++) outr[c] = xr[c] * rf * w[c];
  }
}

template <class F>
void rmsnorm_backward(F* dx, F* dw, const F* dout, const F* x, const F* w, const F* rstd, size_t N, size_t C) {
  SP_ASSERT(C > 0, "rmsnorm C={}", C);
  // dw sums over rows in a fixed order (reduce.h); dx is per row
  chunked_row_reduce(N, C, dw, [&](size_t n, double* dw_part /* (C) */) {
    const F* xr = x + n * C;      // (C)
    const F* dor = dout + n * C;  // (C)
    F* dxr = dx + n * C;          // (C)
    const double r = double(rstd[n]);
    // sum_c g * xhat, in double like the forward's sum of squares
    const double gx = r * lane_sum(C, [&](size_t c) { return double(dor[c]) * w[c] * xr[c]; });
    for (size_t c = 0; c < C; c++) dw_part[c] += double(dor[c]) * (double(xr[c]) * r);
    const F mean_gx = F(gx / double(C));
    const F rf = F(r);
    for (size_t c = 0; c < C; c++) dxr[c] += rf * (dor[c] * w[c] - xr[c] * rf * mean_gx);
  });
}

template void rmsnorm_forward<float>(float*, float*, const float*, const float*, size_t, size_t, double);
template void rmsnorm_forward<double>(double*, double*, const double*, const double*, size_t, size_t, double);
template void rmsnorm_backward<float>(float*, float*, const float*, const float*, const float*, const float*,
                                      size_t, size_t);
template void rmsnorm_backward<double>(double*, double*, const double*, const double*, const double*,
                                       const double*, size_t, size_t);

}  // namespace sp
