// CPU attention: the naive reference against finite differences and hand-written formulas, the flash
// version against the naive one, and the edge cases of softpick, rectified softmax and the sinks
// (docs/attention.md).
#include <catch2/catch.hpp>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "cpu/attention.h"

namespace {

using sp::AttentionShape;
using sp::Normaliser;

// ---- tolerances, stated once ----
// Errors are measured over a whole tensor as max|a - b| / max(max|b|, 1). Inputs are O(1), so 1 is the
// natural scale of every output and gradient; the floor keeps a gradient that is small only through
// cancellation (a softpick row with one positive score and nothing else has an O(eps) gradient, the
// difference of two O(1) terms) from being judged on digits no precision can deliver.
// flash vs naive: both are exact up to rounding and differ only in summation order and in exp/log round
// trips, so they must agree to a few hundred units of the precision's epsilon; where scores are large the
// weights exp(s - m) inherit an absolute error |s| * epsilon from the scores, so the bound grows with the
// condition |s|.
template <class F>
double tol(double cond = 1) {
  return 512 * double(std::numeric_limits<F>::epsilon()) * std::max(1.0, cond);
}
// Finite differences (double, central): truncation ~ step^2 ~ 1e-12, rounding ~ 1e-16 |L| / step ~ 1e-9.
constexpr double kFdStep = 1e-6;
constexpr double kFdTol = 1e-6;

// Inputs are drawn in double and rounded through float, so both precisions see exactly the same values
// and a float run can be judged against the double reference.
struct Data {
  AttentionShape s;
  std::vector<double> q, k, v, dout;  // (B,T,H,D), (B,T,Hkv,D) x2, (B,T,H,D)
  std::vector<double> sinks;          // (H) sink logits, read for Normaliser::Sink only
};

std::vector<double> randn(size_t n, std::mt19937_64& rng, double scale = 1) {
  std::normal_distribution<double> dist(0.0, scale);
  std::vector<double> x(n);
  for (double& e : x) e = double(float(dist(rng)));
  return x;
}

Data make_data(AttentionShape s, uint64_t seed, double q_scale = 1) {
  std::mt19937_64 rng(seed);
  const size_t nq = size_t(s.B) * s.T * s.H * s.D, nk = size_t(s.B) * s.T * s.Hkv * s.D;
  Data d{s, randn(nq, rng, q_scale), randn(nk, rng), randn(nk, rng), randn(nq, rng), {}};
  d.sinks = randn(size_t(s.H), rng);
  return d;
}

struct Result {
  std::vector<double> out, dq, dk, dv;
  std::vector<double> dsinks;  // (H), Sink only
  std::vector<double> lse;    // (B,H,T), flash only
  std::vector<double> probs;  // (B,H,T,T), naive only
};

template <class F>
std::vector<F> to(const std::vector<double>& x) {
  return std::vector<F>(x.begin(), x.end());
}
template <class F>
std::vector<double> back(const std::vector<F>& x) {
  return std::vector<double>(x.begin(), x.end());
}

// The sink logits an attention call takes: the data's for Sink, none otherwise.
template <class F>
const F* sinks_for(const AttentionShape& s, const std::vector<F>& sinks) {
  return s.norm == Normaliser::Sink ? sinks.data() : nullptr;
}

template <class F>
Result run_flash(const Data& d) {
  const AttentionShape& s = d.s;
  auto q = to<F>(d.q), k = to<F>(d.k), v = to<F>(d.v), dout = to<F>(d.dout), sinks = to<F>(d.sinks);
  std::vector<F> out(q.size()), lse(size_t(s.B) * s.H * s.T), dq(q.size()), dk(k.size()), dv(v.size());
  std::vector<F> dsinks(sinks.size(), F(0));
  sp::attention_forward(s, q.data(), k.data(), v.data(), sinks_for(s, sinks), out.data(), lse.data());
  sp::attention_backward(s, q.data(), k.data(), v.data(), out.data(), dout.data(), lse.data(), dq.data(),
                         dk.data(), dv.data());
  if (s.norm == Normaliser::Sink)
    sp::attention_sink_backward(s, out.data(), dout.data(), lse.data(), sinks.data(), dsinks.data());
  Result r{back(out), back(dq), back(dk), back(dv), {}, back(lse), {}};
  if (s.norm == Normaliser::Sink) r.dsinks = back(dsinks);
  return r;
}

template <class F>
Result run_naive(const Data& d) {
  const AttentionShape& s = d.s;
  auto q = to<F>(d.q), k = to<F>(d.k), v = to<F>(d.v), dout = to<F>(d.dout), sinks = to<F>(d.sinks);
  std::vector<F> out(q.size()), probs(size_t(s.B) * s.H * s.T * s.T), dq(q.size()), dk(k.size()),
      dv(v.size()), dsinks(sinks.size(), F(0));
  sp::attention_naive_forward(s, q.data(), k.data(), v.data(), sinks_for(s, sinks), out.data(), probs.data());
  sp::attention_naive_backward(s, q.data(), k.data(), v.data(), sinks_for(s, sinks), probs.data(), dout.data(),
                               dq.data(), dk.data(), dv.data(), dsinks.data());
  Result r{back(out), back(dq), back(dk), back(dv), {}, {}, back(probs)};
  if (s.norm == Normaliser::Sink) r.dsinks = back(dsinks);
  return r;
}

double rel_err(const std::vector<double>& a, const std::vector<double>& ref) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(a[i] - ref[i]));
    scale = std::max(scale, std::abs(ref[i]));
  }
  if (std::isnan(diff)) return std::numeric_limits<double>::infinity();
  return diff / std::max(scale, 1.0);
}

bool all_finite(const Result& r) {
  for (const auto* x : {&r.out, &r.dq, &r.dk, &r.dv})
    for (double e : *x)
      if (!std::isfinite(e)) return false;
  return true;
}

// Flash (precision F) against the double naive reference, every output and gradient.
template <class F>
void check_flash_matches(const Data& d, double cond = 1) {
  const Result ref = run_naive<double>(d), got = run_flash<F>(d);
  REQUIRE(all_finite(got));
  CHECK(rel_err(got.out, ref.out) <= tol<F>(cond));
  CHECK(rel_err(got.dq, ref.dq) <= tol<F>(cond));
  CHECK(rel_err(got.dk, ref.dk) <= tol<F>(cond));
  CHECK(rel_err(got.dv, ref.dv) <= tol<F>(cond));
  CHECK(got.dsinks.size() == ref.dsinks.size());
  if (!ref.dsinks.empty()) CHECK(rel_err(got.dsinks, ref.dsinks) <= tol<F>(cond) * double(d.s.B * d.s.T));
}

// Smallest and largest |score| over the visible (b, h, i, j).
std::pair<double, double> score_range(const Data& d) {
  const AttentionShape& s = d.s;
  double lo = std::numeric_limits<double>::infinity(), hi = 0;
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.H; ++h)
      for (int64_t i = 0; i < s.T; ++i)
        for (int64_t j = 0; j <= i; ++j) {
          const double* qi = d.q.data() + ((b * s.T + i) * s.H + h) * s.D;
          const double* kj = d.k.data() + ((b * s.T + j) * s.Hkv + h / (s.H / s.Hkv)) * s.D;
          const double x = std::abs(std::inner_product(qi, qi + s.D, kj, 0.0)) / std::sqrt(double(s.D));
          lo = std::min(lo, x);
          hi = std::max(hi, x);
        }
  return {lo, hi};
}

}  // namespace

TEST_CASE("naive attention gradients match finite differences", "[unit][attention]") {
  // softpick: the analytic gradient treats the shift m as a constant, as the reference kernel does, which
  // drops a term of size eps * delta / (l + eps) (docs/attention.md §3.4); a tiny eps keeps it far below
  // the finite-difference tolerance while still exercising the eps path.
  AttentionShape s{2, 6, 4, 2, 4};
  s.softpick_eps = 1e-12;
  for (Normaliser norm : sp::kNormalisers) {
    s.norm = norm;
    Data d = make_data(s, 7);
    INFO(sp::normaliser_name(norm));
    // Softpick and rectified have a kink at score 0; keep every score well away from it.
    REQUIRE(score_range(d).first > 1e-3);
    const Result an = run_naive<double>(d);

    std::vector<double> out(d.q.size()), probs(size_t(s.B) * s.H * s.T * s.T);
    auto loss = [&](const Data& x) {  // L = sum(out * R), R = d.dout
      sp::attention_naive_forward(s, x.q.data(), x.k.data(), x.v.data(), sinks_for(s, x.sinks), out.data(),
                                  probs.data());
      return std::inner_product(out.begin(), out.end(), d.dout.begin(), 0.0);
    };
    auto fd_check = [&](std::vector<double> Data::*field, const std::vector<double>& analytic) {
      std::vector<double> fd(analytic.size());
      for (size_t i = 0; i < fd.size(); ++i) {
        Data p = d, m = d;
        (p.*field)[i] += kFdStep;
        (m.*field)[i] -= kFdStep;
        fd[i] = (loss(p) - loss(m)) / (2 * kFdStep);
      }
      return rel_err(analytic, fd);
    };
    CHECK(fd_check(&Data::q, an.dq) <= kFdTol);
    CHECK(fd_check(&Data::k, an.dk) <= kFdTol);
    CHECK(fd_check(&Data::v, an.dv) <= kFdTol);
    if (norm == Normaliser::Sink) {
      CHECK(fd_check(&Data::sinks, an.dsinks) <= kFdTol);
      CHECK(*std::max_element(an.dsinks.begin(), an.dsinks.end(), [](double a, double b) {
        return std::abs(a) < std::abs(b);
      }) != 0);
    }
    // The gradients are not trivially zero.
    CHECK(*std::max_element(an.dq.begin(), an.dq.end()) > 1e-3);
  }
}

TEST_CASE("flash attention matches naive, every normaliser, precision and tile edge", "[unit][attention]") {
  for (Normaliser norm : sp::kNormalisers)
    for (int64_t T : {1, 7, 64, 65, 130})
      for (int64_t Hkv : {2, 1}) {
        AttentionShape s{2, T, 4, Hkv, 32};
        s.norm = norm;
        INFO(sp::normaliser_name(norm) << " T=" << T << " Hkv=" << Hkv);
        const Data d = make_data(s, 100 + uint64_t(T) * 3 + uint64_t(Hkv));
        check_flash_matches<double>(d);
        check_flash_matches<float>(d);
        // The float naive path (analysis tools use it) against the double one.
        const Result nf = run_naive<float>(d), nd = run_naive<double>(d);
        CHECK(rel_err(nf.out, nd.out) <= tol<float>());
        CHECK(rel_err(nf.dq, nd.dq) <= tol<float>());
        CHECK(rel_err(nf.probs, nd.probs) <= tol<float>());
      }
}

TEST_CASE("flash attention is deterministic across thread counts", "[unit][attention]") {
  AttentionShape s{2, 150, 4, 2, 16};
  s.norm = Normaliser::Softpick;
  const Data d = make_data(s, 11);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const Result one = run_flash<float>(d);
  omp_set_num_threads(std::max(2, omp_get_num_procs()));
  const Result many = run_flash<float>(d);
  omp_set_num_threads(saved);
  CHECK(one.out == many.out);
  CHECK(one.lse == many.lse);
  CHECK(one.dq == many.dq);
  CHECK(one.dk == many.dk);
  CHECK(one.dv == many.dv);
}

// Rows whose scores are all <= 0 (softpick) or all < 0 (rectified) output exactly zero and pass exactly
// zero gradient to q, k and v.
template <class F>
void check_empty_rows(Normaliser norm) {
  AttentionShape s{2, 70, 4, 2, 8};
  s.norm = norm;
  Data d = make_data(s, 21);
  // k > 0 elementwise; q < 0 on "negative" rows gives scores < 0, q = 0 on "zero" rows gives scores = 0.
  for (double& x : d.k) x = std::abs(x) + 0.1;
  auto is_negative_row = [](int64_t i) { return i % 3 == 1; };
  auto is_zero_row = [](int64_t i) { return i % 5 == 2; };
  auto is_positive_row = [](int64_t i) { return i % 3 == 0; };  // all scores > 0: output must be non-zero
  std::vector<char> empty(size_t(s.B * s.T * s.H));  // (B,T,H) rows expected to output 0
  for (int64_t r = 0; r < s.B * s.T * s.H; ++r) {
    const int64_t i = (r / s.H) % s.T;
    double* qr = d.q.data() + r * s.D;
    if (is_positive_row(i)) {
      for (int64_t c = 0; c < s.D; ++c) qr[c] = std::abs(qr[c]) + 0.1;
    } else if (is_negative_row(i)) {
      for (int64_t c = 0; c < s.D; ++c) qr[c] = -std::abs(qr[c]) - 0.1;
      empty[r] = 1;
    } else if (is_zero_row(i)) {
      std::fill(qr, qr + s.D, 0.0);
      empty[r] = norm == Normaliser::Softpick;  // rectified keeps zero scores: uniform weights
    }
  }
  for (int pass = 0; pass < 2; ++pass) {
    const Result r = pass == 0 ? run_flash<F>(d) : run_naive<F>(d);
    INFO(sp::normaliser_name(norm) << (pass == 0 ? " flash" : " naive"));
    int64_t n_empty = 0;
    bool zero_out = true, zero_dq = true, lse_inf = true, positive_nonzero = true;
    for (int64_t row = 0; row < s.B * s.T * s.H; ++row) {
      const auto o = r.out.begin() + row * s.D, g = r.dq.begin() + row * s.D;
      const bool out_is_zero = std::all_of(o, o + s.D, [](double x) { return x == 0; });
      if (!empty[row]) {
        if (is_positive_row((row / s.H) % s.T)) positive_nonzero = positive_nonzero && !out_is_zero;
        continue;
      }
      ++n_empty;
      zero_out = zero_out && out_is_zero;
      zero_dq = zero_dq && std::all_of(g, g + s.D, [](double x) { return x == 0; });
      if (pass == 0) {
        const int64_t b = row / (s.T * s.H), i = (row / s.H) % s.T, h = row % s.H;
        lse_inf = lse_inf && std::isinf(r.lse[(b * s.H + h) * s.T + i]) && r.lse[(b * s.H + h) * s.T + i] > 0;
      }
    }
    REQUIRE(n_empty > 0);
    CHECK(zero_out);
    CHECK(zero_dq);
    CHECK(lse_inf);
    CHECK(positive_nonzero);
    // dk, dv do not depend on dout of the empty rows at all: changing it leaves them bit-identical.
    Data d2 = d;
    for (int64_t row = 0; row < s.B * s.T * s.H; ++row)
      if (empty[row])
        for (int64_t c = 0; c < s.D; ++c) d2.dout[row * s.D + c] = 1e3 * (c + 1);
    const Result r2 = pass == 0 ? run_flash<F>(d2) : run_naive<F>(d2);
    CHECK(r2.dk == r.dk);
    CHECK(r2.dv == r.dv);
  }
  check_flash_matches<F>(d);
}

TEST_CASE("softpick and rectified rows with no positive score output and pass exactly zero",
          "[unit][attention]") {
  for (Normaliser norm : {Normaliser::Softpick, Normaliser::Rectified}) {
    check_empty_rows<double>(norm);
    check_empty_rows<float>(norm);
  }
}

TEST_CASE("very large and very negative scores stay finite and match naive", "[unit][attention]") {
  for (Normaliser norm : sp::kNormalisers) {
    AttentionShape s{2, 67, 4, 2, 16};
    s.norm = norm;
    INFO(sp::normaliser_name(norm));
    // Large: scores q.k / sqrt(D) ~ 1e3 with both signs.
    const Data big = make_data(s, 31, 1e3);
    const double big_cond = score_range(big).second;
    REQUIRE(big_cond > 1e3);
    check_flash_matches<double>(big, big_cond);
    check_flash_matches<float>(big, big_cond);
    // Very negative: every score below -1e3 (q < 0, k > 0); only softmax has a non-zero output then.
    Data d = make_data(s, 32);
    for (double& x : d.k) x = std::abs(x) + 0.1;
    for (double& x : d.q) x = -(std::abs(x) + 0.1) * 1e3;
    const double neg_cond = score_range(d).second;
    REQUIRE(score_range(d).first > 1e3);
    check_flash_matches<double>(d, neg_cond);
    check_flash_matches<float>(d, neg_cond);
    const Result r = run_flash<float>(d);
    const bool zero = std::all_of(r.out.begin(), r.out.end(), [](double x) { return x == 0; });
    CHECK(zero == (norm != Normaliser::Softmax));
    // Very negative scores on the first key tile, small positive ones after it: the online state must
    // cross from "nothing positive yet" to a positive max without overflow (q > 0; k < 0 on keys 0..63).
    for (int64_t t = 0; t < s.T; ++t)
      for (int64_t c = 0; c < s.Hkv * s.D; ++c) {
        double& x = d.k[size_t(t * s.Hkv * s.D + c)];
        x = t < 64 ? -std::abs(x) : std::abs(x) * 1e-3;
      }
    for (double& x : d.q) x = -x;
    check_flash_matches<double>(d, neg_cond);
    check_flash_matches<float>(d, neg_cond);
  }
}

TEST_CASE("attention weights are distributions where they should be", "[unit][attention]") {
  AttentionShape s{2, 40, 4, 2, 8};
  for (Normaliser norm : sp::kNormalisers) {
    s.norm = norm;
    INFO(sp::normaliser_name(norm));
    Data d = make_data(s, 41, 2.0);
    std::fill(d.v.begin(), d.v.end(), 1.0);  // then every output entry is its row's weight sum
    const Result naive = run_naive<float>(d), flash = run_flash<float>(d);
    bool nonneg = true, bounded = true, normalised = true;
    for (size_t row = 0; row < naive.probs.size() / s.T; ++row) {
      double sum = 0;
      for (int64_t j = 0; j < s.T; ++j) {
        const double p = naive.probs[row * s.T + j];
        nonneg = nonneg && p >= 0;
        sum += p;
      }
      bounded = bounded && sum <= 1 + tol<float>();
      if (norm == Normaliser::Softmax) normalised = normalised && std::abs(sum - 1) <= tol<float>();
      if (norm == Normaliser::Rectified)
        normalised = normalised && (sum == 0 || std::abs(sum - 1) <= tol<float>());
    }
    for (double o : flash.out) bounded = bounded && o >= 0 && o <= 1 + tol<float>();
    CHECK(nonneg);
    CHECK(bounded);
    CHECK(normalised);
  }
}

TEST_CASE("softpick by hand: masked keys stay out, x = 0 takes sgn = -1", "[unit][attention]") {
  // T = 2, D = 2, one head. k0 = (1, 0), k1 = (0, 1), so the score x_ij = q_i[j] / sqrt(2).
  // Row 0 sees key 0 only. Had the masked key 1 (score -inf) entered the denominator it would have added
  // |e^{-inf} - 1| = 1 (exp(-m) in the shifted form), and y00 would drop from ~1 to 1 - e^{-x00} ~ 0.43.
  // Row 1 has x10 = 0 exactly: zero weight, and gradient e^0 / Den * delta (sgn(0) = -1, H(0) = 0).
  AttentionShape s{1, 2, 1, 1, 2};
  s.norm = Normaliser::Softpick;
  const double eps = s.softpick_eps, c = 1 / std::sqrt(2.0);
  const Data d{s, {0.8, 0.3, 0.0, 1.2}, {1, 0, 0, 1}, {1, 2, 3, -1}, {0.5, -1, 2, 0.25}, {}};
  const double x00 = 0.8 * c, x11 = 1.2 * c;
  const double den0 = (std::exp(x00) - 1) + eps * std::exp(x00);  // unshifted: sum |e^x - 1| + eps e^m
  const double den1 = 0 + (std::exp(x11) - 1) + eps * std::exp(x11);
  const double y00 = (std::exp(x00) - 1) / den0, y11 = (std::exp(x11) - 1) / den1;
  const std::vector<double> out = {y00 * 1, y00 * 2, y11 * 3, y11 * -1};
  // Gradient of L = sum(out * R): dp_ij = R_i . v_j, delta_1 = y11 dp_11.
  const double dp11 = 2 * 3 + 0.25 * -1, delta1 = y11 * dp11;
  const double dx10 = 1 / den1 * delta1, dx11 = std::exp(x11) / den1 * (dp11 - delta1);
  const double dq1_0 = c * dx10, dq1_1 = c * dx11;  // dq_1 = c (dx10 k0 + dx11 k1)
  const double lse1 = std::log(den1);
  CHECK(y00 > 0.99);

  for (int pass = 0; pass < 2; ++pass) {
    const Result r = pass == 0 ? run_flash<double>(d) : run_naive<double>(d);
    INFO((pass == 0 ? "flash" : "naive"));
    CHECK(rel_err(r.out, out) <= tol<double>());
    CHECK(std::abs(r.dq[2] - dq1_0) <= tol<double>() * std::abs(dq1_0));
    CHECK(std::abs(r.dq[3] - dq1_1) <= tol<double>() * std::abs(dq1_1));
    if (pass == 0) CHECK(std::abs(r.lse[1] - lse1) <= tol<double>() * std::max(1.0, std::abs(lse1)));
    if (pass == 1) CHECK(rel_err(r.probs, {y00, 0, 0, y11}) <= tol<double>());
  }
}

TEST_CASE("softmax1 and learned sinks by hand: the sink's term in every denominator, its gradient",
          "[unit][attention]") {
  // T = 2, D = 2, one head, k0 = (1, 0), k1 = (0, 1): x_ij = q_i[j] / sqrt(2). With sink logit s (0 for
  // softmax1) row i's weights are y_ij = e^{x_ij} / (e^s + sum_{j <= i} e^{x_ij}): the sink takes
  // p_i = e^s / den_i of the mass and adds nothing to the output. dL/ds = -sum_i p_i delta_i.
  for (Normaliser norm : {Normaliser::Softmax1, Normaliser::Sink}) {
    AttentionShape s{1, 2, 1, 1, 2};
    s.norm = norm;
    const double c = 1 / std::sqrt(2.0), sink = norm == Normaliser::Sink ? 0.7 : 0.0;
    const Data d{s, {0.8, 0.3, -0.4, 1.2}, {1, 0, 0, 1}, {1, 2, 3, -1}, {0.5, -1, 2, 0.25}, {sink}};
    const double x00 = 0.8 * c, x10 = -0.4 * c, x11 = 1.2 * c;
    const double den0 = std::exp(sink) + std::exp(x00), den1 = std::exp(sink) + std::exp(x10) + std::exp(x11);
    const double y00 = std::exp(x00) / den0, y10 = std::exp(x10) / den1, y11 = std::exp(x11) / den1;
    const std::vector<double> out = {y00 * 1, y00 * 2, y10 * 1 + y11 * 3, y10 * 2 + y11 * -1};
    const double dp00 = 0.5 * 1 + -1 * 2, dp10 = 2 * 1 + 0.25 * 2, dp11 = 2 * 3 + 0.25 * -1;
    const double delta0 = y00 * dp00, delta1 = y10 * dp10 + y11 * dp11;
    const double dsink = -(std::exp(sink) / den0 * delta0 + std::exp(sink) / den1 * delta1);
    const double dx11 = y11 * (dp11 - delta1);  // softmax's gradient, given the denominators
    INFO(sp::normaliser_name(norm));
    for (int pass = 0; pass < 2; ++pass) {
      const Result r = pass == 0 ? run_flash<double>(d) : run_naive<double>(d);
      INFO((pass == 0 ? "flash" : "naive"));
      CHECK(rel_err(r.out, out) <= tol<double>());
      CHECK(std::abs(r.dq[3] - c * dx11) <= tol<double>());
      if (pass == 0) CHECK(std::abs(r.lse[1] - std::log(den1)) <= tol<double>());
      if (pass == 1) CHECK(rel_err(r.probs, {y00, 0, y10, y11}) <= tol<double>());
      if (norm == Normaliser::Sink) {
        REQUIRE(r.dsinks.size() == 1);
        CHECK(std::abs(r.dsinks[0] - dsink) <= tol<double>());
      }
    }
    CHECK(y00 + 0 < 1 - 0.1);  // the weights of a row sum to 1 - p_i < 1
  }
}
