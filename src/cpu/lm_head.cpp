#include "cpu/lm_head.h"

#include "cpu/matmul.h"

#include <algorithm>
#include <cmath>

namespace sp {

template <class T>
LossSum lm_head_cross_entropy(const T* x, const T* w, const int32_t* targets, size_t N, size_t C, size_t V,
                              T* scratch, T* dx, T* dw, double grad_scale) {
  LossSum total;
  for (size_t r0 = 0; r0 < N; r0 += kLmHeadChunk) {
    const size_t rows = std::min(kLmHeadChunk, N - r0);
    T* logits = scratch;  // (rows, V)
    matmul_forward(logits, x + r0 * C, w, rows, C, V);
    double row_loss[kLmHeadChunk];  // summed in order below, so the loss is bit-reproducible
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; ++r) {
      row_loss[r] = NAN;
      T* row = logits + r * V;
      const int32_t target = targets[r0 + r];
      if (target < 0) {  // ignored: no loss and a zero gradient row
        if (dx) std::fill(row, row + V, T(0));
        continue;
      }
      double m = -INFINITY;
      for (size_t v = 0; v < V; ++v) m = std::max(m, double(row[v]));
      double sum = 0;
      for (size_t v = 0; v < V; ++v) sum += std::exp(double(row[v]) - m);
      const double lse = m + std::log(sum);
      row_loss[r] = lse - double(row[size_t(target)]);
      if (dx) {  // row becomes dlogits
        for (size_t v = 0; v < V; ++v) row[v] = T(std::exp(double(row[v]) - lse) * grad_scale);
        row[size_t(target)] -= T(grad_scale);
      }
    }
    for (size_t r = 0; r < rows; ++r)
      if (targets[r0 + r] >= 0) {
        total.sum += row_loss[r];
        total.count += 1;
      }
    if (dx) matmul_backward(dx + r0 * C, dw, logits, x + r0 * C, w, rows, C, V, /*accumulate_dinp=*/false);
  }
  return total;
}

template <class T>
void lm_head_logits(T* logits, const T* x_row, const T* w, size_t C, size_t V) {
  matmul_forward(logits, x_row, w, 1, C, V);
}

template LossSum lm_head_cross_entropy<float>(const float*, const float*, const int32_t*, size_t, size_t, size_t,
                                              float*, float*, float*, double);
template LossSum lm_head_cross_entropy<double>(const double*, const double*, const int32_t*, size_t, size_t,
                                               size_t, double*, double*, double*, double);
template void lm_head_logits<float>(float*, const float*, const float*, size_t, size_t);
template void lm_head_logits<double>(double*, const double*, const double*, size_t, size_t);

}  // namespace sp
