#include "cpu/adamw.h"

#include <algorithm>
#include <cmath>

namespace sp {

template <class T>
void adamw_update(T* master, const T* grad, T* m, T* v, size_t n, const AdamWArgs& a) {
  const double bc1 = 1.0 - std::pow(a.beta1, double(a.step)), bc2 = 1.0 - std::pow(a.beta2, double(a.step));
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) {
    const double g = double(grad[i]) * a.grad_scale;
    const double mi = a.beta1 * double(m[i]) + (1.0 - a.beta1) * g;
    const double vi = a.beta2 * double(v[i]) + (1.0 - a.beta2) * g * g;
    m[i] = T(mi);
    v[i] = T(vi);
    const double update = (mi / bc1) / (std::sqrt(vi / bc2) + a.eps) + a.weight_decay * double(master[i]);
    master[i] = T(double(master[i]) - a.lr * update);
  }
}

template <class T>
double sum_squares(const T* x, size_t n) {
  // Fixed blocks summed in a fixed order: the result does not depend on the thread count or scheduling,
  // which exact resume relies on (an OpenMP reduction combines partials in arrival order).
  constexpr size_t kBlocks = 64;
  double partial[kBlocks] = {};
  const size_t per = (n + kBlocks - 1) / kBlocks;
#pragma omp parallel for schedule(static)
  for (size_t b = 0; b < kBlocks; ++b) {
    double s = 0;
    for (size_t i = b * per; i < std::min(n, (b + 1) * per); ++i) s += double(x[i]) * double(x[i]);
    partial[b] = s;
  }
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

template void adamw_update<float>(float*, const float*, float*, float*, size_t, const AdamWArgs&);
template void adamw_update<double>(double*, const double*, double*, double*, size_t, const AdamWArgs&);
template double sum_squares<float>(const float*, size_t);
template double sum_squares<double>(const double*, size_t);

}  // namespace sp
