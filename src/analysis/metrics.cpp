#include "analysis/metrics.h"

#include "core/check.h"

#include <algorithm>
#include <cmath>

namespace sp {

namespace {

bool is_real(std::span<const uint8_t> valid, int64_t t) { return valid.empty() || valid[size_t(t)] != 0; }

void check_map(std::span<const float> map, int64_t T, std::span<const uint8_t> valid) {
  SP_ASSERT(T >= 1 && map.size() == size_t(T) * size_t(T), "attention map of {} elements for T = {}", map.size(), T);
  SP_ASSERT(valid.empty() || valid.size() == size_t(T), "mask of {} positions for T = {}", valid.size(), T);
}

}  // namespace

double sink_score(std::span<const float> map, int64_t T, std::span<const uint8_t> valid) {
  check_map(map, T, valid);
  int64_t k0 = 0;
  while (k0 < T && !is_real(valid, k0)) ++k0;
  if (k0 == T) return std::numeric_limits<double>::quiet_NaN();
  double sum = 0;
  int64_t count = 0;
  for (int64_t t = k0; t < T; ++t) {  // queries before k0 cannot see it (and are padding anyway)
    if (!is_real(valid, t)) continue;
    sum += map[size_t(t) * size_t(T) + size_t(k0)];
    ++count;
  }
  return sum / double(count);
}

SparsityCounts sparsity_counts(std::span<const float> map, int64_t T, double near_zero,
                               std::span<const uint8_t> valid) {
  check_map(map, T, valid);
  SparsityCounts c;
  const float thr = float(near_zero);
  for (int64_t t = 0; t < T; ++t) {
    if (!is_real(valid, t)) continue;
    const float* row = map.data() + size_t(t) * size_t(T);  // (T) query t; keys 0..t are the causal part
    for (int64_t j = 0; j <= t; ++j) {
      if (!is_real(valid, j)) continue;
      const float a = std::abs(row[j]);
      c.zeros += a == 0.0f;
      c.near_zeros += a <= thr;
      ++c.total;
    }
  }
  return c;
}

void Moments::merge(const Moments& o) {
  if (o.n == 0) return;
  if (n == 0) {
    *this = o;
    return;
  }
  // Pairwise combination of central sums (Pebay 2008, eq. 2.1 and its third and fourth-order analogues).
  const double na = n, nb = o.n, nn = na + nb, d = o.mean - mean;
  const double d2 = d * d, d3 = d2 * d, d4 = d2 * d2;
  const double M2 = m2 + o.m2 + d2 * na * nb / nn;
  const double M3 = m3 + o.m3 + d3 * na * nb * (na - nb) / (nn * nn) + 3.0 * d * (na * o.m2 - nb * m2) / nn;
  const double M4 = m4 + o.m4 + d4 * na * nb * (na * na - na * nb + nb * nb) / (nn * nn * nn) +
                    6.0 * d2 * (na * na * o.m2 + nb * nb * m2) / (nn * nn) + 4.0 * d * (na * o.m3 - nb * m3) / nn;
  mean += d * nb / nn;
  n = nn;
  m2 = M2;
  m3 = M3;
  m4 = M4;
  min = std::min(min, o.min);
  max = std::max(max, o.max);
}

double Moments::kurtosis() const {
  if (n == 0 || m2 <= 0) return std::numeric_limits<double>::quiet_NaN();
  return n * m4 / (m2 * m2);
}

double Moments::max_abs() const { return n > 0 ? std::max(std::abs(min), std::abs(max)) : 0.0; }

Moments moments_of_rows(std::span<const float> x, int64_t rows, int64_t cols, std::span<const uint8_t> valid) {
  SP_ASSERT(rows >= 0 && cols >= 1 && x.size() == size_t(rows) * size_t(cols), "{} values for ({}, {})", x.size(),
            rows, cols);
  SP_ASSERT(valid.empty() || valid.size() == size_t(rows), "mask of {} rows for {}", valid.size(), rows);
  Moments m;
  double sum = 0;
  for (int64_t r = 0; r < rows; ++r) {
    if (!is_real(valid, r)) continue;
    const float* row = x.data() + size_t(r) * size_t(cols);  // (cols)
    for (int64_t c = 0; c < cols; ++c) {
      const double v = row[c];
      sum += v;
      m.min = std::min(m.min, v);
      m.max = std::max(m.max, v);
    }
    m.n += double(cols);
  }
  if (m.n == 0) return Moments{};
  m.mean = sum / m.n;
  for (int64_t r = 0; r < rows; ++r) {
    if (!is_real(valid, r)) continue;
    const float* row = x.data() + size_t(r) * size_t(cols);
    for (int64_t c = 0; c < cols; ++c) {
      const double d = double(row[c]) - m.mean, d2 = d * d;
      m.m2 += d2;
      m.m3 += d2 * d;
      m.m4 += d2 * d2;
    }
  }
  return m;
}

Moments moments_of(std::span<const float> x) {
  return x.empty() ? Moments{} : moments_of_rows(x, 1, int64_t(x.size()));
}

}  // namespace sp
