// Causal attention on the CPU: flash-style forward and backward, and the naive materialising reference.
// The math (stable forms, online rescaling, gradients, conventions at x = 0, lse per normaliser) is derived
// in docs/attention.md; comments here point to it.
//
// Inside this file F is the element type (float or double); T keeps its meaning of sequence length (s.T).
// Backward convention (attention.h): dq, dk, dv are overwritten.
#include "cpu/attention.h"

#include <cblas.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/check.h"

namespace sp {
namespace {

// A 64 x 64 score tile is 16 KiB in fp32: with the transposed query block and the output accumulator it
// stays in L1/L2 while key tiles stream past, and BLAS runs 64 x 64 x 64 products near its large-size rate.
constexpr int64_t kBlockQ = 64;  // query rows per tile
constexpr int64_t kBlockK = 64;  // keys per tile
// Without a query offset (training) query blocks start on key-tile boundaries, so every key tile a block
// visits has a visible key for each of its rows. With one (decoding) a row may see no key of a block's last
// tile: its weights there are 0 and its running shift stays as it was, finite since every row sees key 0.
static_assert(kBlockQ % kBlockK == 0, "query blocks must start on key-tile boundaries");

// ---- tile products ----
// C = alpha * op(A) * op(B) + beta * C, row-major. BLAS is used for every tile product: a plain loop nest
// reaches about a quarter of its speed at these sizes. Inside our OpenMP regions the OpenMP build of
// OpenBLAS runs single-threaded, so there is no oversubscription.
inline void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n),
              int(k), alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
}
inline void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* A,
                 int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n),
              int(k), alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
}

// ---- exp over score tiles ----
// glibc's expf is a scalar call unless -ffast-math is on, and at one call per score it would cost more
// than the tile products. This one is plain arithmetic the compiler vectorises: x = n ln2 + r with
// |r| <= ln2/2 (ln2 split in two so n * hi is exact), e^r by its degree-7 Taylor polynomial (truncation
// below 1e-8 relative), 2^n built in the exponent bits. Measured error under 1.5 ulp, and exp(x) <= 1
// for x <= 0. Arguments below -87.3 give 0 (so exp(-inf) = 0, which empty rows rely on); NaN stays NaN.
inline float exp_tile(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;           // 9 significant bits: n * kLn2Hi is exact
  constexpr float kLn2Lo = -2.12194440054691e-4f;  // ln2 - kLn2Hi
  constexpr float kRound = 12582912.0f;            // 1.5 * 2^23: adding and subtracting it rounds to integer
  constexpr float kLo = -87.3f, kHi = 88.0f;       // keeps 2^n a normal float
  const float xc = std::min(std::max(x, kLo), kHi);
  const float n = (xc * kLog2e + kRound) - kRound;
  const float r = std::fma(-n, kLn2Lo, std::fma(-n, kLn2Hi, xc));
  float p = 1.0f / 5040.0f;
  p = std::fma(p, r, 1.0f / 720.0f);
  p = std::fma(p, r, 1.0f / 120.0f);
  p = std::fma(p, r, 1.0f / 24.0f);
  p = std::fma(p, r, 1.0f / 6.0f);
  p = std::fma(p, r, 0.5f);
  p = std::fma(p, r, 1.0f);
  p = std::fma(p, r, 1.0f);
  const float two_n = std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  return x < kLo ? 0.0f : p * two_n;
}
// Double is the gradient-check precision: exactness matters there, speed does not.
inline double exp_tile(double x) { return std::exp(x); }

// ---- tiles ----
// Score tiles are held transposed, S^T (nk keys, nq queries), with row stride kBlockQ. Then all five tile
// products are NN or TN products, the forms OpenBLAS runs through its small-matrix kernels (an NT product
// takes its packing path, measured about 1.8x slower per 64^3 tile), and the per-row statistics (running
// max, denominator, lse, delta) are vectors along a tile row, so no step needs a horizontal reduction.
// Causality inside a tile: key j0 + j is visible to query i0 + i iff i >= j0 + j - i0.
inline int64_t first_visible(int64_t j0, int64_t j, int64_t i0) { return std::max<int64_t>(0, j0 + j - i0); }

// dst = src^T: src is (rows, cols) with row stride lds, dst (cols, rows) with row stride ld.
template <class F>
void transpose(const F* src, int64_t lds, int64_t rows, int64_t cols, F* dst, int64_t ld) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * ld + r] = src[r * lds + c];
}

// ---- normaliser steps (docs/attention.md §2-§4) ----
// The shift c starts at -inf for softmax and at 0 for softpick and rectified: for those two the shift is
// max(0, running max), which equals the running max whenever the row has a positive score and keeps
// exp(-c) <= 1 otherwise (docs/attention.md §3.3).
template <Normaliser N, class F>
constexpr F initial_shift() {
  return N == Normaliser::Softmax ? -std::numeric_limits<F>::infinity() : F(0);
}

// Softmax1 runs as Sink with every sink logit 0 (docs/attention.md §10): inside the tiles both are softmax;
// only the running state starts at the sink, c = s and l = exp(s - c) = 1, the sink's denominator term,
// which the rescaling by exp(c_old - c_new) then carries along like any other.
template <Normaliser N>
constexpr bool softmax_tiles() {
  return N == Normaliser::Softmax || N == Normaliser::Sink;
}

// Per-thread scratch; O(tile) memory, independent of T.
template <class F>
struct Workspace {
  std::vector<F> S;    // (kBlockK, kBlockQ) scores S^T, then weights P^T
  std::vector<F> dP;   // (kBlockK, kBlockQ) (dO V^T)^T, then score gradients dS^T   [backward]
  std::vector<F> QT;   // (D, kBlockQ) the query block, transposed
  std::vector<F> dOT;  // (D, kBlockQ) the output-gradient block, transposed          [backward]
  std::vector<F> acc;  // (kBlockQ, D) output accumulator                             [forward]
  // (kBlockQ) each: running shift, running denominator, new shift, rescale factor, tile sum, exp(-shift)
  // in the forward; lse, rowsum(O * dO), exp(-lse) in the backward.
  std::vector<F> c, l, c_new, alpha, sum, base, lse, delta;
  explicit Workspace(int64_t D)
      : S(kBlockK * kBlockQ), dP(kBlockK * kBlockQ), QT(size_t(D * kBlockQ)), dOT(size_t(D * kBlockQ)),
        acc(size_t(kBlockQ * D)), c(kBlockQ), l(kBlockQ), c_new(kBlockQ), alpha(kBlockQ), sum(kBlockQ),
        base(kBlockQ), lse(kBlockQ), delta(kBlockQ) {}
};

// Forward step over one key tile: turns the scores S^T (nk, nq) into unnormalised weights relative to the
// new shift, adds their denominator terms to w.l and leaves in w.alpha = exp(c_old - c_new) the factor by
// which each query's accumulator must be rescaled. Masked entries become 0 and touch nothing else.
template <Normaliser N, class F>
void online_tile(F* st, int64_t nk, int64_t nq, int64_t j0, int64_t i0, Workspace<F>& w) {
  F *c = w.c.data(), *c_new = w.c_new.data(), *alpha = w.alpha.data();
  F *sum = w.sum.data(), *base = w.base.data();
  std::copy(c, c + nq, c_new);
  for (int64_t j = 0; j < nk; ++j) {
    const F* x = st + j * kBlockQ;
#pragma omp simd
    for (int64_t i = first_visible(j0, j, i0); i < nq; ++i) c_new[i] = std::max(c_new[i], x[i]);
  }
#pragma omp simd
  for (int64_t i = 0; i < nq; ++i) {
    alpha[i] = exp_tile(c[i] - c_new[i]);  // 0 on a softmax row's first tile (c = -inf)
    base[i] = exp_tile(-c_new[i]);         // softpick only; <= 1 since c_new >= 0
    sum[i] = 0;
  }
  for (int64_t j = 0; j < nk; ++j) {
    F* x = st + j * kBlockQ;
    const int64_t i1 = first_visible(j0, j, i0);
    std::fill(x, x + i1, F(0));  // masked keys: no weight and, for softpick, no denominator term
#pragma omp simd
    for (int64_t i = i1; i < nq; ++i) {
      if constexpr (softmax_tiles<N>()) {
        x[i] = exp_tile(x[i] - c_new[i]);
        sum[i] += x[i];
      } else if constexpr (N == Normaliser::Softpick) {
        const F e = exp_tile(x[i] - c_new[i]) - base[i];  // e^{-c} (e^{x} - 1)
        x[i] = std::max(e, F(0));
        sum[i] += std::abs(e);
      } else {
        x[i] = x[i] >= 0 ? exp_tile(x[i] - c_new[i]) : F(0);  // negative scores act as -inf
        sum[i] += x[i];
      }
    }
  }
#pragma omp simd
  for (int64_t i = 0; i < nq; ++i) {
    w.l[i] = w.l[i] * alpha[i] + sum[i];
    c[i] = c_new[i];
  }
}

// Backward step over one key tile: S^T becomes the weights P^T (for dv) and dP^T = (dO . v) becomes the
// score gradients dS^T (for dq, dk). lse = +inf marks an empty query (zero output): every weight and
// gradient then comes out as exactly 0.
template <Normaliser N, class F>
void gradient_tile(F* st, F* dpt, int64_t nk, int64_t nq, int64_t j0, int64_t i0, const Workspace<F>& w) {
  const F *lse = w.lse.data(), *delta = w.delta.data(), *base = w.base.data();
  for (int64_t j = 0; j < nk; ++j) {
    F *x = st + j * kBlockQ, *dp = dpt + j * kBlockQ;
    const int64_t i1 = first_visible(j0, j, i0);
    std::fill(x, x + i1, F(0));
    std::fill(dp, dp + i1, F(0));
#pragma omp simd
    for (int64_t i = i1; i < nq; ++i) {
      if constexpr (N == Normaliser::Softpick) {
        const F e = exp_tile(x[i] - lse[i]);  // e^{x} / Den
        const bool pos = x[i] > 0;            // at x = 0: H = 0 and sgn = -1 (docs/attention.md §3.4)
        dp[i] = pos ? e * (dp[i] - delta[i]) : e * delta[i];
        x[i] = std::max(e - base[i], F(0));
      } else {
        const bool kept = softmax_tiles<N>() || x[i] >= 0;
        const F y = kept ? exp_tile(x[i] - lse[i]) : F(0);
        dp[i] = y * (dp[i] - delta[i]);
        x[i] = y;
      }
    }
  }
}

// Ends a query row: output = accumulator / denominator, and the lse the backward pass needs. Empty rows
// (softpick: no positive score; rectified: no non-negative score) output 0 and get lse = +inf.
template <Normaliser N, class F>
void finish_row(F* out_row, const F* acc_row, int64_t D, F c, F l, F eps, F* lse) {
  F den = N == Normaliser::Softpick ? l + eps : l;
  const bool empty = N == Normaliser::Softpick ? !(c > 0 && den > 0) : !(den > 0);
  if (empty) {
    std::fill(out_row, out_row + D, F(0));
    *lse = std::numeric_limits<F>::infinity();
    return;
  }
  const F inv = F(1) / den;
  for (int64_t d = 0; d < D; ++d) out_row[d] = acc_row[d] * inv;
  *lse = c + std::log(den);
}

// Forward for query rows i0 .. i0+nq-1 of head h in batch b (positions q_offset + i0 onwards). sinks: (H)
// sink logits for N = Sink, nullptr for Softmax1's zeros.
template <Normaliser N, class F>
void forward_block(const AttentionShape& s, const F* q, const F* k, const F* v, const F* sinks, F* out, F* lse,
                   int64_t b, int64_t h, int64_t i0, Workspace<F>& w) {
  const int64_t Tq = s.Tq(), D = s.D, nq = std::min(kBlockQ, Tq - i0), hk = h / (s.H / s.Hkv);
  const int64_t p0 = s.q_offset + i0;            // position of the block's first row
  const int64_t ldq = s.H * D, ldk = s.Hkv * D;  // row strides of q/out and k/v
  const F scale = F(1) / std::sqrt(F(D));
  const F* K = k + (size_t(b) * s.T * s.Hkv + hk) * D;  // (T, D), stride ldk
  const F* V = v + (size_t(b) * s.T * s.Hkv + hk) * D;  // (T, D), stride ldk
  F *S = w.S.data(), *acc = w.acc.data();
  transpose(q + ((size_t(b) * Tq + i0) * s.H + h) * D, ldq, nq, D, w.QT.data(), kBlockQ);
  if constexpr (N == Normaliser::Sink) {
    std::fill(w.c.begin(), w.c.end(), sinks ? sinks[h] : F(0));
    std::fill(w.l.begin(), w.l.end(), F(1));
  } else {
    std::fill(w.c.begin(), w.c.end(), initial_shift<N, F>());
    std::fill(w.l.begin(), w.l.end(), F(0));
  }
  std::fill(acc, acc + nq * D, F(0));

  const int64_t kend = p0 + nq;  // the last row sees keys 0 .. kend-1
  for (int64_t j0 = 0; j0 < kend; j0 += kBlockK) {
    const int64_t nk = std::min(kBlockK, kend - j0);
    gemm(false, false, nk, nq, D, scale, K + j0 * ldk, ldk, w.QT.data(), kBlockQ, F(0), S, kBlockQ);  // S^T
    online_tile<N>(S, nk, nq, j0, p0, w);
    for (int64_t i = 0; i < nq; ++i)
      if (w.alpha[i] != F(1))
        for (int64_t d = 0; d < D; ++d) acc[i * D + d] *= w.alpha[i];
    gemm(true, false, nq, D, nk, F(1), S, kBlockQ, V + j0 * ldk, ldk, F(1), acc, D);  // acc += P V
  }
  for (int64_t i = 0; i < nq; ++i)
    finish_row<N>(out + ((size_t(b) * Tq + i0 + i) * s.H + h) * D, acc + i * D, D, w.c[i], w.l[i],
                  F(s.softpick_eps), lse + (size_t(b) * s.H + h) * Tq + i0 + i);
}

// Backward for query rows i0 .. i0+nq-1 of head h in batch b: writes their dq rows and accumulates into
// dk, dv of kv head h / (H / Hkv). The caller owns those dk, dv rows (one task per (b, kv head)).
template <Normaliser N, class F>
void backward_block(const AttentionShape& s, const F* q, const F* k, const F* v, const F* out, const F* dout,
                    const F* lse, F* dq, F* dk, F* dv, int64_t b, int64_t h, int64_t i0, Workspace<F>& w) {
  const int64_t D = s.D, nq = std::min(kBlockQ, s.T - i0), hk = h / (s.H / s.Hkv);
  const int64_t ldq = s.H * D, ldk = s.Hkv * D;
  const F scale = F(1) / std::sqrt(F(D));
  const size_t qoff = ((size_t(b) * s.T + i0) * s.H + h) * D;  // rows of q, out, dout, dq: (nq, D)
  const size_t koff = (size_t(b) * s.T * s.Hkv + hk) * D;      // rows of k, v, dk, dv: (T, D)
  const F *Q = q + qoff, *O = out + qoff, *dO = dout + qoff;
  F *S = w.S.data(), *dP = w.dP.data();
  transpose(Q, ldq, nq, D, w.QT.data(), kBlockQ);
  transpose(dO, ldq, nq, D, w.dOT.data(), kBlockQ);
  for (int64_t i = 0; i < nq; ++i) {
    F sum = 0;
    for (int64_t d = 0; d < D; ++d) sum += O[i * ldq + d] * dO[i * ldq + d];
    w.delta[i] = sum;  // = sum_j y_j dp_j
    w.lse[i] = lse[(size_t(b) * s.H + h) * s.T + i0 + i];
    w.base[i] = std::exp(-w.lse[i]);  // softpick: e^{-c} / (l + eps), the weight of a zero score
  }

  const int64_t kend = i0 + nq;
  for (int64_t j0 = 0; j0 < kend; j0 += kBlockK) {
    const int64_t nk = std::min(kBlockK, kend - j0);
    const F *Kj = k + koff + j0 * ldk, *Vj = v + koff + j0 * ldk;
    // Same call as in the forward pass, so the recomputed scores match it.
    gemm(false, false, nk, nq, D, scale, Kj, ldk, w.QT.data(), kBlockQ, F(0), S, kBlockQ);  // S^T
    gemm(false, false, nk, nq, D, F(1), Vj, ldk, w.dOT.data(), kBlockQ, F(0), dP, kBlockQ);  // (dO V^T)^T
    gradient_tile<N>(S, dP, nk, nq, j0, i0, w);
    F *dVj = dv + koff + j0 * ldk, *dKj = dk + koff + j0 * ldk;
    gemm(false, false, nk, D, nq, F(1), S, kBlockQ, dO, ldq, F(1), dVj, ldk);   // dV += P^T dO
    gemm(false, false, nk, D, nq, scale, dP, kBlockQ, Q, ldq, F(1), dKj, ldk);  // dK += dS^T Q
    gemm(true, false, nq, D, nk, scale, dP, kBlockQ, Kj, ldk, F(j0 == 0 ? 0 : 1), dq + qoff, ldq);  // dQ
  }
}

void check_shape(const AttentionShape& s) {
  SP_ASSERT(s.B > 0 && s.T > 0 && s.H > 0 && s.Hkv > 0 && s.D > 0,
            "attention shape B={} T={} H={} Hkv={} D={}", s.B, s.T, s.H, s.Hkv, s.D);
  SP_ASSERT(s.H % s.Hkv == 0, "{} query heads cannot be grouped over {} kv heads", s.H, s.Hkv);
  SP_ASSERT(s.softpick_eps >= 0, "softpick_eps = {} must be >= 0", s.softpick_eps);
  SP_ASSERT(s.q_offset >= 0 && s.q_offset < s.T, "attention query offset {} for T={}", s.q_offset, s.T);
}

// The backward passes and the naive reference serve training shapes: every position has a query.
void check_training_shape(const AttentionShape& s) {
  check_shape(s);
  SP_ASSERT(s.q_offset == 0, "attention with a query offset ({}) runs forward only", s.q_offset);
}

template <Normaliser N, class F>
void forward_flash(const AttentionShape& s, const F* q, const F* k, const F* v, const F* sinks, F* out, F* lse) {
  const int64_t nqb = (s.Tq() + kBlockQ - 1) / kBlockQ;
  const int64_t ntasks = s.B * s.H * nqb;
#pragma omp parallel
  {
    Workspace<F> w(s.D);
    // Dynamic: a block's cost grows with its position; blocks are handed out last (largest) first.
#pragma omp for schedule(dynamic)
    for (int64_t t = 0; t < ntasks; ++t) {
      const int64_t qb = nqb - 1 - t / (s.B * s.H), bh = t % (s.B * s.H);
      forward_block<N>(s, q, k, v, sinks, out, lse, bh / s.H, bh % s.H, qb * kBlockQ, w);
    }
  }
}

template <Normaliser N, class F>
void backward_flash(const AttentionShape& s, const F* q, const F* k, const F* v, const F* out, const F* dout,
                    const F* lse, F* dq, F* dk, F* dv) {
  const int64_t group = s.H / s.Hkv;
  // One task per (b, kv head): it handles every query head of its group, so it alone writes those dq rows
  // and the kv head's dk, dv rows. No atomics, no per-thread copies; parallelism is B * Hkv.
#pragma omp parallel
  {
    Workspace<F> w(s.D);
#pragma omp for schedule(dynamic)
    for (int64_t t = 0; t < s.B * s.Hkv; ++t) {
      const int64_t b = t / s.Hkv, hk = t % s.Hkv;
      for (int64_t i = 0; i < s.T; ++i) {
        const size_t row = ((size_t(b) * s.T + i) * s.Hkv + hk) * s.D;
        std::fill(dk + row, dk + row + s.D, F(0));
        std::fill(dv + row, dv + row + s.D, F(0));
      }
      for (int64_t h = hk * group; h < (hk + 1) * group; ++h)
        for (int64_t i0 = 0; i0 < s.T; i0 += kBlockQ)
          backward_block<N>(s, q, k, v, out, dout, lse, dq, dk, dv, b, h, i0, w);
    }
  }
}

// ---- naive reference: one query row at a time, formulas as in docs/attention.md §2-§4 ----

// Normalises the n visible scores x of one row into weights y; `sink` is the row's sink logit (Softmax1:
// 0, Sink: the head's), unused by the other normalisers. Returns the sink's weight (0 without a sink).
template <class F>
F naive_row(Normaliser norm, F eps, F sink, const F* x, int64_t n, F* y) {
  F m = x[0];
  for (int64_t j = 1; j < n; ++j) m = std::max(m, x[j]);
  F sum = 0;
  switch (norm) {
    case Normaliser::Softmax1:
    case Normaliser::Sink:
      m = std::max(m, sink);
      sum = std::exp(sink - m);
      for (int64_t j = 0; j < n; ++j) sum += std::exp(x[j] - m);
      for (int64_t j = 0; j < n; ++j) y[j] = std::exp(x[j] - m) / sum;
      return std::exp(sink - m) / sum;
    case Normaliser::Softmax:
      for (int64_t j = 0; j < n; ++j) sum += std::exp(x[j] - m);
      for (int64_t j = 0; j < n; ++j) y[j] = std::exp(x[j] - m) / sum;
      break;
    case Normaliser::Softpick:
      // All scores <= 0: every relu(e^x - 1) is 0. Stated as the rule rather than left to arithmetic
      // with an overflowed exp(-m) (m below about -88 in float).
      if (m <= 0) {
        std::fill(y, y + n, F(0));
        break;
      }
      for (int64_t j = 0; j < n; ++j) sum += std::abs(std::exp(x[j] - m) - std::exp(-m));
      for (int64_t j = 0; j < n; ++j) y[j] = std::max(std::exp(x[j] - m) - std::exp(-m), F(0)) / (sum + eps);
      break;
    case Normaliser::Rectified:
      if (m < 0) {  // no non-negative score
        std::fill(y, y + n, F(0));
        break;
      }
      for (int64_t j = 0; j < n; ++j) sum += x[j] >= 0 ? std::exp(x[j] - m) : F(0);
      for (int64_t j = 0; j < n; ++j) y[j] = x[j] >= 0 ? std::exp(x[j] - m) / sum : F(0);
      break;
  }
  return F(0);
}

// The sink logit of head h: the parameter for Sink, 0 for Softmax1 (and unused by the rest).
template <class F>
F sink_logit(const AttentionShape& s, const F* sinks, int64_t h) {
  SP_ASSERT(s.norm != Normaliser::Sink || sinks, "attention with learned sinks needs their logits");
  return s.norm == Normaliser::Sink ? sinks[h] : F(0);
}

template <class F>
F dot(const F* a, const F* b, int64_t n) {
  F sum = 0;
  for (int64_t d = 0; d < n; ++d) sum += a[d] * b[d];
  return sum;
}

}  // namespace

// ---- public entry points ----

template <class F>
void attention_forward(const AttentionShape& s, const F* q, const F* k, const F* v, const F* sinks, F* out,
                       F* lse) {
  check_shape(s);
  SP_ASSERT(s.norm != Normaliser::Sink || sinks, "attention with learned sinks needs their logits");
  switch (s.norm) {
    case Normaliser::Softmax: return forward_flash<Normaliser::Softmax>(s, q, k, v, sinks, out, lse);
    case Normaliser::Softpick: return forward_flash<Normaliser::Softpick>(s, q, k, v, sinks, out, lse);
    case Normaliser::Rectified: return forward_flash<Normaliser::Rectified>(s, q, k, v, sinks, out, lse);
    case Normaliser::Softmax1: return forward_flash<Normaliser::Sink, F>(s, q, k, v, nullptr, out, lse);
    case Normaliser::Sink: return forward_flash<Normaliser::Sink>(s, q, k, v, sinks, out, lse);
  }
}

template <class F>
void attention_backward(const AttentionShape& s, const F* q, const F* k, const F* v, const F* out,
                        const F* dout, const F* lse, F* dq, F* dk, F* dv) {
  check_training_shape(s);
  switch (s.norm) {
    case Normaliser::Softmax:
      return backward_flash<Normaliser::Softmax>(s, q, k, v, out, dout, lse, dq, dk, dv);
    case Normaliser::Softpick:
      return backward_flash<Normaliser::Softpick>(s, q, k, v, out, dout, lse, dq, dk, dv);
    case Normaliser::Rectified:
      return backward_flash<Normaliser::Rectified>(s, q, k, v, out, dout, lse, dq, dk, dv);
    case Normaliser::Softmax1:  // the scores' gradient is softmax's given lse, which holds the sink
    case Normaliser::Sink:
      return backward_flash<Normaliser::Sink>(s, q, k, v, out, dout, lse, dq, dk, dv);
  }
}

template <class F>
void attention_sink_backward(const AttentionShape& s, const F* out, const F* dout, const F* lse, const F* sinks,
                             F* dsinks) {
  check_training_shape(s);
  SP_ASSERT(s.norm == Normaliser::Sink && sinks && dsinks, "attention_sink_backward is for learned sinks");
  const int64_t T = s.T, H = s.H, D = s.D;
  // dL/ds_h = -sum over rows of p_sink delta, p_sink = exp(s_h - lse), delta = rowsum(O * dO)
  // (docs/attention.md §10); per head in (b, t) order, so the bits do not depend on the thread count.
#pragma omp parallel for if (double(s.B) * T * H * D > 1e6)
  for (int64_t h = 0; h < H; ++h) {
    F sum = 0;
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t t = 0; t < T; ++t) {
        const size_t row = ((size_t(b) * T + t) * H + h) * D;
        const F l = lse[(size_t(b) * H + h) * T + t];
        sum += std::exp(sinks[h] - l) * dot(out + row, dout + row, D);
      }
    dsinks[h] -= sum;
  }
}

template <class F>
void attention_naive_forward(const AttentionShape& s, const F* q, const F* k, const F* v, const F* sinks, F* out,
                             F* probs) {
  check_training_shape(s);
  const int64_t T = s.T, H = s.H, Hkv = s.Hkv, D = s.D;
  const F scale = F(1) / std::sqrt(F(D));
  // Threads only pay off on attention maps of real size; tests call this on tiny shapes many times.
  const bool big = double(s.B) * H * T * T * D > 1e6;
#pragma omp parallel for collapse(2) if (big)
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t hk = h / (H / Hkv);
      std::vector<F> x(static_cast<size_t>(T));  // (T) scores of one row
      for (int64_t i = 0; i < T; ++i) {
        const F* qi = q + ((size_t(b) * T + i) * H + h) * D;
        for (int64_t j = 0; j <= i; ++j) x[j] = scale * dot(qi, k + ((size_t(b) * T + j) * Hkv + hk) * D, D);
        F* y = probs + ((size_t(b) * H + h) * T + i) * T;  // (T) row i of the attention map
        naive_row(s.norm, F(s.softpick_eps), sink_logit(s, sinks, h), x.data(), i + 1, y);
        std::fill(y + i + 1, y + T, F(0));
        F* oi = out + ((size_t(b) * T + i) * H + h) * D;
        std::fill(oi, oi + D, F(0));
        for (int64_t j = 0; j <= i; ++j)
          for (int64_t d = 0; d < D; ++d) oi[d] += y[j] * v[((size_t(b) * T + j) * Hkv + hk) * D + d];
      }
    }
}

template <class F>
void attention_naive_backward(const AttentionShape& s, const F* q, const F* k, const F* v, const F* sinks,
                              const F* probs, const F* dout, F* dq, F* dk, F* dv, F* dsinks) {
  check_training_shape(s);
  const int64_t T = s.T, H = s.H, Hkv = s.Hkv, D = s.D;
  const F scale = F(1) / std::sqrt(F(D)), eps = F(s.softpick_eps);
  std::fill(dq, dq + size_t(s.B) * T * H * D, F(0));
  std::fill(dk, dk + size_t(s.B) * T * Hkv * D, F(0));
  std::fill(dv, dv + size_t(s.B) * T * Hkv * D, F(0));
  const size_t n = static_cast<size_t>(T);
  std::vector<F> dp(n), dx(n), x(n);  // (T) per row
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t hk = h / (H / Hkv);
      auto K = [&](int64_t j) { return k + ((size_t(b) * T + j) * Hkv + hk) * D; };
      auto V = [&](int64_t j) { return v + ((size_t(b) * T + j) * Hkv + hk) * D; };
      for (int64_t i = 0; i < T; ++i) {
        const size_t qi = ((size_t(b) * T + i) * H + h) * D;
        const F* y = probs + ((size_t(b) * H + h) * T + i) * T;
        F delta = 0;  // sum_j y_j dp_j
        for (int64_t j = 0; j <= i; ++j) {
          dp[j] = dot(dout + qi, V(j), D);
          delta += y[j] * dp[j];
        }
        if (s.norm == Normaliser::Softpick) {
          // dx_k = (e^{x_k} / Den) (H(x_k) dp_k - sgn(x_k) delta), Den = sum_j |e^{x_j} - 1| + eps e^m.
          for (int64_t j = 0; j <= i; ++j) x[j] = scale * dot(q + qi, K(j), D);
          F m = x[0];
          for (int64_t j = 1; j <= i; ++j) m = std::max(m, x[j]);
          F den = 0;
          if (m > 0) {
            for (int64_t j = 0; j <= i; ++j) den += std::abs(std::exp(x[j] - m) - std::exp(-m));
            den += eps;
          }
          for (int64_t j = 0; j <= i; ++j) {
            const F r = m > 0 ? std::exp(x[j] - m) / den : F(0);  // all scores <= 0: zero gradient
            dx[j] = x[j] > 0 ? r * (dp[j] - delta) : r * delta;
          }
        } else {
          for (int64_t j = 0; j <= i; ++j) dx[j] = y[j] * (dp[j] - delta);
        }
        if (s.norm == Normaliser::Sink && dsinks) {
          // the sink is one more key with score s_h and a zero value: dL/ds_h = p_sink (0 - delta)
          for (int64_t j = 0; j <= i; ++j) x[j] = scale * dot(q + qi, K(j), D);
          std::vector<F> yy(size_t(i + 1));
          const F p_sink = naive_row(s.norm, eps, sinks[h], x.data(), i + 1, yy.data());
          dsinks[h] -= p_sink * delta;
        }
        for (int64_t j = 0; j <= i; ++j)
          for (int64_t d = 0; d < D; ++d) {
            dv[((size_t(b) * T + j) * Hkv + hk) * D + d] += y[j] * dout[qi + d];
            dq[qi + d] += scale * dx[j] * K(j)[d];
            dk[((size_t(b) * T + j) * Hkv + hk) * D + d] += scale * dx[j] * q[qi + d];
          }
      }
    }
}

template void attention_forward<float>(const AttentionShape&, const float*, const float*, const float*,
                                       const float*, float*, float*);
template void attention_forward<double>(const AttentionShape&, const double*, const double*, const double*,
                                        const double*, double*, double*);
template void attention_sink_backward<float>(const AttentionShape&, const float*, const float*, const float*,
                                             const float*, float*);
template void attention_sink_backward<double>(const AttentionShape&, const double*, const double*,
                                              const double*, const double*, double*);
template void attention_backward<float>(const AttentionShape&, const float*, const float*, const float*,
                                        const float*, const float*, const float*, float*, float*, float*);
template void attention_backward<double>(const AttentionShape&, const double*, const double*, const double*,
                                         const double*, const double*, const double*, double*, double*,
                                         double*);
template void attention_naive_forward<float>(const AttentionShape&, const float*, const float*, const float*,
                                             const float*, float*, float*);
template void attention_naive_forward<double>(const AttentionShape&, const double*, const double*,
                                              const double*, const double*, double*, double*);
template void attention_naive_backward<float>(const AttentionShape&, const float*, const float*, const float*,
                                              const float*, const float*, const float*, float*, float*, float*,
                                              float*);
template void attention_naive_backward<double>(const AttentionShape&, const double*, const double*,
                                               const double*, const double*, const double*, const double*,
                                               double*, double*, double*, double*);

}  // namespace sp
