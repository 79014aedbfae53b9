// Ops for inference with a key/value cache on the CPU: RoPE and SSMax at absolute positions, and attention
// of new query rows over the cached keys. Inside this file F is the element type (float or double).
#include "cpu/decode.h"

#include "core/check.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace sp {
namespace {

// Query rows per attention task: a (64, T) score block per thread stays small (1 MiB at T = 4096 in fp32)
// while the two products per block are large enough for BLAS.
constexpr size_t kRows = 64;

void gemm(bool tb, size_t m, size_t n, size_t k, float alpha, const float* A, size_t lda, const float* B,
          size_t ldb, float* C, size_t ldc) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n), int(k), alpha, A,
              int(lda), B, int(ldb), 0.0f, C, int(ldc));
}
void gemm(bool tb, size_t m, size_t n, size_t k, double alpha, const double* A, size_t lda, const double* B,
          size_t ldb, double* C, size_t ldc) {
  cblas_dgemm(CblasRowMajor, CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n), int(k), alpha, A,
              int(lda), B, int(ldb), 0.0, C, int(ldc));
}

// Turns the scores x[0..visible) of one query row into its weights, in place, with the formulas of
// docs/attention.md §2-§4; the max, the denominator and each exp in double (one exp per score). Entries at
// and after `visible` are future keys: they become 0 and enter no sum.
template <class F>
void normalise_row(F* x, size_t visible, size_t len, Normaliser norm, double eps) {
  std::fill(x + visible, x + len, F(0));
  double m = -INFINITY;
  for (size_t j = 0; j < visible; ++j) m = std::max(m, double(x[j]));
  // softpick rows with no positive score and rectified rows with no non-negative one abstain: zeros
  if ((norm == Normaliser::Softpick && !(m > 0)) || (norm == Normaliser::Rectified && !(m >= 0))) {
    std::fill(x, x + visible, F(0));
    return;
  }
  // softpick: shift by the max (> 0 here, so the flash kernel's floor at 0 changes nothing), eps after it
  const double base = norm == Normaliser::Softpick ? std::exp(-m) : 0.0;
  double den = 0;
  for (size_t j = 0; j < visible; ++j) {
    const double e = std::exp(double(x[j]) - m);
    double w = e;  // unnormalised weight
    switch (norm) {
      case Normaliser::Softmax: den += e; break;
      case Normaliser::Softpick:
        w = e - base;  // e^{-m} (e^{x} - 1)
        den += std::abs(w);
        w = std::max(w, 0.0);
        break;
      case Normaliser::Rectified:
        w = x[j] >= 0 ? e : 0.0;  // negative scores act as -inf
        den += w;
        break;
    }
    x[j] = F(w);
  }
  if (norm == Normaliser::Softpick) den += eps;
  for (size_t j = 0; j < visible; ++j) x[j] = F(double(x[j]) / den);
}

}  // namespace

template <class F>
void rope_forward_at(F* x, size_t n, size_t Hx, size_t D, double theta, size_t pos0) {
  SP_ASSERT(D > 0 && D % 2 == 0, "rope needs an even head dimension, got D={}", D);
  SP_ASSERT(theta > 0, "rope theta={} must be > 0", theta);
  const size_t half = D / 2;
  // The angle, its cos/sin in double and their rounding to F are those of rope_forward's table, so a row
  // rotated here equals the same row rotated inside a whole sequence, bit for bit.
  std::vector<double> inv_freq(half);  // (D/2)
  for (size_t i = 0; i < half; i++) inv_freq[i] = std::pow(theta, -2.0 * double(i) / double(D));
  std::vector<F> cs(half), sn(half);  // (D/2) of the current row's position
  for (size_t r = 0; r < n; r++) {
    for (size_t i = 0; i < half; i++) {
      const double a = double(pos0 + r) * inv_freq[i];
      cs[i] = F(std::cos(a));
      sn[i] = F(std::sin(a));
    }
    for (size_t h = 0; h < Hx; h++) {
      F* lo = x + (r * Hx + h) * D;  // (D/2): first halves of the pairs
      F* hi = lo + half;             // (D/2): second halves
      for (size_t i = 0; i < half; i++) {
        const F x0 = lo[i], x1 = hi[i];
        lo[i] = x0 * cs[i] - x1 * sn[i];
        hi[i] = x1 * cs[i] + x0 * sn[i];
      }
    }
  }
}

template <class F>
void ssmax_forward_at(F* q_out, const F* q_in, const F* s, size_t n, size_t H, size_t D, size_t pos0) {
  for (size_t r = 0; r < n; r++) {
    const double log_t = std::log(double(pos0 + r) + 2.0);
    for (size_t h = 0; h < H; h++) {
      const F a = F(double(s[h]) * log_t);
      const size_t off = (r * H + h) * D;  // head vector (D) at (row, h)
      for (size_t d = 0; d < D; d++) q_out[off + d] = a * q_in[off + d];
    }
  }
}

template <class F>
void attention_cached(const AttentionShape& s, size_t n, const F* q, const F* k, const F* v, F* out) {
  SP_ASSERT(s.B == 1, "attention_cached serves one sequence, got B={}", s.B);
  SP_ASSERT(n >= 1 && n <= size_t(s.T), "attention_cached: {} new rows of a sequence of {}", n, s.T);
  SP_ASSERT(s.H % s.Hkv == 0, "H={} is not a multiple of Hkv={}", s.H, s.Hkv);
  const size_t T = size_t(s.T), H = size_t(s.H), Hkv = size_t(s.Hkv), D = size_t(s.D);
  const size_t group = H / Hkv, first = T - n;  // first: position of new row 0
  const size_t blocks = (n + kRows - 1) / kRows;
  const F scale = F(1.0 / std::sqrt(double(D)));
  // One task per (head, block of query rows); inside our OpenMP region OpenBLAS runs single-threaded.
#pragma omp parallel
  {
    std::vector<F> S(std::min(n, kRows) * T);  // (rows, keys) scores, then weights
#pragma omp for schedule(dynamic)
    for (size_t task = 0; task < H * blocks; ++task) {
      const size_t h = task / blocks, i0 = (task % blocks) * kRows;
      const size_t rows = std::min(kRows, n - i0);
      const size_t keys = first + i0 + rows;  // keys visible to the block's last row
      const F* qh = q + i0 * H * D + h * D;   // (rows, D), row stride H * D
      const F* kh = k + (h / group) * D;      // (keys, D), row stride Hkv * D
      const F* vh = v + (h / group) * D;      // (keys, D), row stride Hkv * D
      gemm(true, rows, keys, D, scale, qh, H * D, kh, Hkv * D, S.data(), keys);  // S = q k^T / sqrt(D)
      for (size_t r = 0; r < rows; ++r)
        normalise_row(S.data() + r * keys, first + i0 + r + 1, keys, s.norm, s.softpick_eps);
      gemm(false, rows, D, keys, F(1), S.data(), keys, vh, Hkv * D, out + i0 * H * D + h * D, H * D);  // P v
    }
  }
}

template void rope_forward_at<float>(float*, size_t, size_t, size_t, double, size_t);
template void rope_forward_at<double>(double*, size_t, size_t, size_t, double, size_t);
template void ssmax_forward_at<float>(float*, const float*, const float*, size_t, size_t, size_t, size_t);
template void ssmax_forward_at<double>(double*, const double*, const double*, size_t, size_t, size_t, size_t);
template void attention_cached<float>(const AttentionShape&, size_t, const float*, const float*, const float*,
                                      float*);
template void attention_cached<double>(const AttentionShape&, size_t, const double*, const double*,
                                       const double*, double*);

}  // namespace sp
