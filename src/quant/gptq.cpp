#include "quant/gptq.h"

#include "core/check.h"

#include <cblas.h>

#include <algorithm>
#include <numeric>

// LAPACK's Cholesky factorisation and inverse, from OpenBLAS (column-major; the trailing length is
// gfortran's hidden argument for the character).
extern "C" {
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info, size_t uplo_len);
void dpotri_(const char* uplo, const int* n, double* a, const int* lda, int* info, size_t uplo_len);
}

namespace sp::quant {

namespace {

// The upper Cholesky factor U of H^-1 (H^-1 = U^T U), row-major (cols, cols), zero below the diagonal:
// row i holds what GPTQ divides column i's error by (U[i][i]) and spreads it with (U[i][j], j > i).
std::vector<double> inverse_cholesky_upper(std::vector<double> h, int64_t n) {
  const int nn = int(n);
  int info = 0;
  // h is symmetric, so its row-major and column-major readings agree.
  dpotrf_("L", &nn, h.data(), &nn, &info, 1);
  if (info == 0) dpotri_("L", &nn, h.data(), &nn, &info, 1);
  if (info != 0)
    fail("GPTQ: the damped Hessian of the layer inputs is not positive definite (LAPACK info {}); raise --damp "
         "or give more calibration tokens", info);
  for (int64_t j = 0; j < n; ++j)  // the lower triangle (column-major) holds H^-1: mirror it
    for (int64_t i = j + 1; i < n; ++i) h[size_t(j + i * n)] = h[size_t(i + j * n)];
  dpotrf_("U", &nn, h.data(), &nn, &info, 1);
  if (info != 0) fail("GPTQ: the inverse Hessian is not positive definite (LAPACK info {}); raise --damp", info);
  std::vector<double> u(size_t(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i; j < n; ++j) u[size_t(i * n + j)] = h[size_t(i + j * n)];  // U(i, j), column-major
  return u;
}

}  // namespace

InputStatistics::InputStatistics(int64_t cols) : cols_(cols), s_(size_t(cols * cols), 0.0) {}

void InputStatistics::add(std::span<const float> x, int64_t rows) {
  SP_ASSERT(x.size() == size_t(rows * cols_), "InputStatistics::add: {} values for ({}, {})", x.size(), rows, cols_);
  constexpr int64_t kChunk = 512;
  std::vector<double> xd;
  for (int64_t r0 = 0; r0 < rows; r0 += kChunk) {
    const int64_t k = std::min(kChunk, rows - r0);
    xd.assign(x.begin() + ptrdiff_t(r0 * cols_), x.begin() + ptrdiff_t((r0 + k) * cols_));
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, int(cols_), int(k), 1.0, xd.data(), int(cols_), 1.0,
                s_.data(), int(cols_));
  }
  n_ += rows;
}

std::vector<double> InputStatistics::hessian() const {
  SP_ASSERT(n_ > 0, "InputStatistics::hessian with no rows");
  std::vector<double> h(s_.size());
  for (int64_t i = 0; i < cols_; ++i)
    for (int64_t j = i; j < cols_; ++j)
      h[size_t(i * cols_ + j)] = h[size_t(j * cols_ + i)] = 2.0 * s_[size_t(i * cols_ + j)] / double(n_);
  return h;
}

double InputStatistics::output_error(std::span<const float> w, std::span<const float> wq, int64_t out) const {
  SP_ASSERT(w.size() == size_t(out * cols_) && wq.size() == w.size() && n_ > 0, "output_error: sizes");
  std::vector<double> d(w.size()), ds(w.size());
  for (size_t i = 0; i < w.size(); ++i) d[i] = double(w[i]) - double(wq[i]);
  // ds = d S (S symmetric, its upper triangle filled)
  cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, int(out), int(cols_), 1.0, s_.data(), int(cols_), d.data(),
              int(cols_), 0.0, ds.data(), int(cols_));
  double sum = 0;
  for (size_t i = 0; i < d.size(); ++i) sum += d[i] * ds[i];
  return sum / double(n_);
}

QuantizedMatrix quantize_gptq(std::span<const float> w, int64_t rows, int64_t cols, std::span<const double> H,
                              const GptqOptions& opt) {
  SP_ASSERT(w.size() == size_t(rows * cols) && H.size() == size_t(cols * cols) && opt.block > 0,
            "quantize_gptq: sizes");
  const int64_t n = cols, gpr = cols / opt.group;
  QuantizedMatrix q = affine_matrix(rows, cols, opt.bits, opt.group);
  std::vector<double> W(w.begin(), w.end()), h(H.begin(), H.end());
  for (int64_t i = 0; i < n; ++i)
    if (h[size_t(i * n + i)] == 0) {  // an input that is always 0: its weights cannot matter
      h[size_t(i * n + i)] = 1;
      for (int64_t r = 0; r < rows; ++r) W[size_t(r * n + i)] = 0;
    }
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), 0);
  const auto grid = [&](int64_t r, int64_t g, const double* x) {  // the min-max grid of x[0 .. group)
    std::vector<float> seg(x, x + opt.group);
    const Affine p = minmax_params(seg.data(), opt.group, opt.bits);
    q.scale[size_t(r * gpr + g)] = p.scale;
    q.zero[size_t(r * gpr + g)] = p.zero;
  };
  if (opt.act_order) {
    std::stable_sort(perm.begin(), perm.end(),
                     [&](int64_t a, int64_t b) { return h[size_t(a * n + a)] > h[size_t(b * n + b)]; });
    // Static groups: each group's grid from the weights before any update, so groups stay consecutive
    // columns of the original order.
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t g = 0; g < gpr; ++g) grid(r, g, &W[size_t(r * n + g * opt.group)]);
    std::vector<double> Wp(W.size()), hp(h.size());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < n; ++j) Wp[size_t(r * n + j)] = W[size_t(r * n + perm[size_t(j)])];
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) hp[size_t(i * n + j)] = h[size_t(perm[size_t(i)] * n + perm[size_t(j)])];
    W.swap(Wp);
    h.swap(hp);
  }
  double mean_diag = 0;
  for (int64_t i = 0; i < n; ++i) mean_diag += h[size_t(i * n + i)];
  mean_diag /= double(n);
  for (int64_t i = 0; i < n; ++i) h[size_t(i * n + i)] += opt.damp * mean_diag;
  const std::vector<double> U = inverse_cholesky_upper(std::move(h), n);

  std::vector<double> err;
  for (int64_t i1 = 0; i1 < n; i1 += opt.block) {
    const int64_t i2 = std::min(i1 + opt.block, n), cnt = i2 - i1;
    err.assign(size_t(rows * cnt), 0.0);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      double* wr = &W[size_t(r * n)];
      std::vector<double> w1(wr + i1, wr + i2);  // this block of the row, updated column by column
      for (int64_t i = 0; i < cnt; ++i) {
        const int64_t col = i1 + i, orig = perm[size_t(col)];
        // Without act order a group's grid comes from the row as the earlier blocks left it.
        if (!opt.act_order && col % opt.group == 0) grid(r, col / opt.group, wr + col);
        const size_t g = size_t(r * gpr + orig / opt.group);
        const Affine p{q.scale[g], q.zero[g]};
        const uint8_t code = affine_code(float(w1[size_t(i)]), p, opt.bits);
        q.codes[size_t(r * n + orig)] = code;
        const double e = (w1[size_t(i)] - double(affine_value(code, p))) / U[size_t(col * n + col)];
        for (int64_t j = i + 1; j < cnt; ++j) w1[size_t(j)] -= e * U[size_t(col * n + i1 + j)];
        err[size_t(r * cnt + i)] = e;
      }
    }
    if (i2 < n)  // the later columns: W[:, i2:] -= err U[i1:i2, i2:]
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows), int(n - i2), int(cnt), -1.0, err.data(),
                  int(cnt), &U[size_t(i1 * n + i2)], int(n), 1.0, &W[size_t(i2)], int(n));
  }
  return q;
}

}  // namespace sp::quant
