// Fake quantization on the CPU. For a row (or the whole tensor) with absmax m over its non-outlier
// columns and L levels (act_quant_levels): x = q(x * L / m) * (m / L), q = round half to even (int8) or
// round_to_format(e4m3); outlier columns x = round_to_format(x, fp16). A row with m = 0 keeps its values.
#include "cpu/act_quant.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace sp {

template <class T>
T round_to_format(T v, int mantissa, int min_exp, T max_value) {
  const T a = std::min(std::fabs(v), max_value);
  int e = 0;
  std::frexp(a, &e);                               // a = f * 2^e with f in [0.5, 1): a's binade is 2^(e - 1)
  const int binade = std::max(e - 1, min_exp);     // subnormals share the lowest normal binade's spacing
  const T step = std::ldexp(T(1), binade - mantissa);
  const T r = std::min(std::nearbyint(a / step) * step, max_value);  // a / step: exact (a power of two)
  return std::copysign(r, v);
}

template <class T>
void act_quant(T* x, size_t N, size_t C, const ActQuantArgs& a) {
  if (a.kind == ActQuant::None || N == 0) return;
  std::vector<char> outlier(C, 0);
  if (a.outlier_threshold > 0)
    for (size_t n = 0; n < N; ++n)
      for (size_t c = 0; c < C; ++c)
        if (std::fabs(double(x[n * C + c])) >= a.outlier_threshold) outlier[c] = 1;
  std::vector<T> absmax(N, T(0));
  for (size_t n = 0; n < N; ++n)
    for (size_t c = 0; c < C; ++c)
      if (!outlier[c]) absmax[n] = std::max(absmax[n], T(std::fabs(x[n * C + c])));
  if (a.per_tensor) absmax.assign(N, *std::max_element(absmax.begin(), absmax.end()));
  const T L = T(act_quant_levels(a.kind));
#pragma omp parallel for schedule(static)
  for (size_t n = 0; n < N; ++n) {
    const T m = absmax[n];
    for (size_t c = 0; c < C; ++c) {
      T& v = x[n * C + c];
      if (outlier[c]) {
        v = round_to_format(v, 10, -14, T(65504));
      } else if (m > 0) {
        const T s = v * L / m;  // v * L is exact for bf16-held v: a halfway case stays one
        v = (a.kind == ActQuant::Int8 ? std::nearbyint(s) : round_to_format(s, 3, -6, T(448))) * (m / L);
      }
    }
  }
}

template void act_quant<float>(float*, size_t, size_t, const ActQuantArgs&);
template void act_quant<double>(double*, size_t, size_t, const ActQuantArgs&);
template float round_to_format<float>(float, int, int, float);
template double round_to_format<double>(double, int, int, double);

}  // namespace sp
