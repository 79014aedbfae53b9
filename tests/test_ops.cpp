// CPU ops around attention and the MLP: rmsnorm, rope, ssmax, glu, embedding. Each forward against a
// naive formula written here, each backward against central finite differences in double, the backward
// conventions (which gradients overwrite and which accumulate), float against double, and bit-identical
// gradients across runs and thread counts.
#include <catch2/catch.hpp>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "cpu/embedding.h"
#include "cpu/rmsnorm.h"
#include "cpu/rope.h"
#include "cpu/ssmax.h"
#include "cpu/glu.h"

namespace {

// ---- tolerances, stated once ----
// Errors are measured over a whole tensor as max|a - b| / max|b|.
// Op against formula, and float against double: the two differ only in rounding and summation order, a few
// units of the precision's epsilon per element.
template <class F>
constexpr double kTol = 64 * double(std::numeric_limits<F>::epsilon());
// Finite differences (double, central): truncation ~ step^2 ~ 1e-12, rounding ~ 1e-16 |L| / step ~ 1e-9.
constexpr double kFdStep = 1e-6;
constexpr double kFdTol = 1e-6;

using Vec = std::vector<double>;
using Tensors = std::map<std::string, Vec>;  // outputs and gradients of one run, by name

// Inputs are drawn in double and rounded through float, so both precisions see exactly the same values.
Vec randn(size_t n, std::mt19937_64& rng, double scale = 1) {
  std::normal_distribution<double> dist(0.0, scale);
  Vec x(n);
  for (double& e : x) e = double(float(dist(rng)));
  return x;
}

template <class F>
std::vector<F> to(const Vec& x) {
  return std::vector<F>(x.begin(), x.end());
}
template <class F>
Vec back(const std::vector<F>& x) {
  return Vec(x.begin(), x.end());
}

double rel_err(const Vec& a, const Vec& ref) {
  REQUIRE(a.size() == ref.size());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); i++) {
    diff = std::max(diff, std::abs(a[i] - ref[i]));
    scale = std::max(scale, std::abs(ref[i]));
  }
  if (std::isnan(diff)) return std::numeric_limits<double>::infinity();
  return scale > 0 ? diff / scale : diff;
}

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); i++) s += a[i] * b[i];
  return s;
}

bool same_bits(const Vec& a, const Vec& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

// Sets the OpenMP thread count for the lifetime of the object.
struct Threads {
  int saved = omp_get_max_threads();
  explicit Threads(int n) { omp_set_num_threads(n); }
  ~Threads() { omp_set_num_threads(saved); }
};

// Central differences of loss() with respect to every entry of p (which loss() reads). Single-threaded: the
// hundreds of tiny runs would otherwise pay a thread fork and join each, which is slow on a loaded machine.
Vec fd_grad(Vec& p, const std::function<double()>& loss) {
  const Threads one(1);
  Vec g(p.size());
  for (size_t i = 0; i < p.size(); i++) {
    const double keep = p[i];
    p[i] = keep + kFdStep;
    const double lp = loss();
    p[i] = keep - kFdStep;
    const double lm = loss();
    p[i] = keep;
    g[i] = (lp - lm) / (2 * kFdStep);
  }
  return g;
}

// Every tensor of a float run against the double run on the same inputs.
void require_float_matches_double(const Tensors& f, const Tensors& d) {
  for (const auto& [name, ref] : d) {
    INFO(name);
    CHECK(rel_err(f.at(name), ref) <= kTol<float>);
  }
}

// Gradients were pre-filled with 1 in `filled`: accumulated ones must read 1 + the fresh gradient,
// overwritten ones exactly the fresh gradient.
void require_conventions(const Tensors& fresh, const Tensors& filled, const std::vector<std::string>& accumulate,
                         const std::vector<std::string>& overwrite, double tol) {
  for (const std::string& name : accumulate) {
    INFO(name << " accumulates");
    Vec expect = fresh.at(name);
    for (double& e : expect) e += 1;
    CHECK(rel_err(filled.at(name), expect) <= tol);
  }
  for (const std::string& name : overwrite) {
    INFO(name << " is overwritten");
    CHECK(same_bits(filled.at(name), fresh.at(name)));
  }
}

// Runs `grads` twice at the default thread count and once at each of 1, 2 and 3 threads; every run must give
// bit-identical tensors. The double runs are the sharper check: the ops sum in double, so a float result
// would often hide a changed summation order in its rounding.
void require_deterministic(const std::function<Tensors()>& grads) {
  const Tensors ref = grads();
  for (int threads : {omp_get_max_threads(), 1, 2, 3}) {
    const Tensors again = [&] {
      const Threads n(threads);
      return grads();
    }();
    for (const auto& [name, t] : ref) {
      INFO(name << " with " << threads << " threads");
      CHECK(same_bits(again.at(name), t));
    }
  }
}

// ---- rmsnorm ----
struct RmsCase {
  size_t N, C;
  double eps;
  Vec x, w, dout;  // (N, C), (C), (N, C); dout is R in L = sum(out * R)
};

RmsCase rms_case(size_t N, size_t C, uint64_t seed) {
  std::mt19937_64 rng(seed);
  RmsCase c{N, C, 1e-6, randn(N * C, rng), randn(C, rng), randn(N * C, rng)};
  for (double& e : c.w) e = double(float(1 + 0.3 * e));  // weights near 1, as after init
  return c;
}

template <class F>
Tensors run_rmsnorm(const RmsCase& c, double prefill = 0) {
  auto x = to<F>(c.x), w = to<F>(c.w), dout = to<F>(c.dout);
  std::vector<F> out(c.N * c.C), rstd(c.N), dx(c.N * c.C, F(prefill)), dw(c.C, F(prefill));
  sp::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), c.N, c.C, c.eps);
  sp::rmsnorm_backward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), rstd.data(), c.N, c.C);
  return {{"out", back(out)}, {"rstd", back(rstd)}, {"dx", back(dx)}, {"dw", back(dw)}};
}

// ---- rope ----
struct RopeCase {
  size_t B, T, H, D;
  double theta;
  Vec x, dout;  // (B, T, H, D)
};

RopeCase rope_case(size_t B, size_t T, size_t H, size_t D, double theta, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const size_t n = B * T * H * D;
  return {B, T, H, D, theta, randn(n, rng), randn(n, rng)};
}

template <class F>
Tensors run_rope(const RopeCase& c) {
  auto x = to<F>(c.x), dx = to<F>(c.dout);
  sp::rope_forward(x.data(), c.B, c.T, c.H, c.D, c.theta, 0);
  sp::rope_backward(dx.data(), c.B, c.T, c.H, c.D, c.theta);
  return {{"out", back(x)}, {"dx", back(dx)}};
}

// ---- ssmax ----
struct SsmaxCase {
  size_t B, T, H, D;
  Vec q, s, dout;  // (B, T, H, D), (H), (B, T, H, D)
};

SsmaxCase ssmax_case(size_t B, size_t T, size_t H, size_t D, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const size_t n = B * T * H * D;
  SsmaxCase c{B, T, H, D, randn(n, rng), randn(H, rng), randn(n, rng)};
  for (double& e : c.s) e = double(float(0.3 + 0.2 * e));  // around the paper's init 0.3
  return c;
}

template <class F>
Tensors run_ssmax(const SsmaxCase& c, double prefill = 0) {
  auto q = to<F>(c.q), s = to<F>(c.s), dout = to<F>(c.dout);
  std::vector<F> out(q.size()), dq(q.size(), F(prefill)), ds(c.H, F(prefill));
  sp::ssmax_forward(out.data(), q.data(), s.data(), c.B, c.T, c.H, c.D, 0);
  sp::ssmax_backward(dq.data(), ds.data(), dout.data(), q.data(), s.data(), c.B, c.T, c.H, c.D);
  return {{"out", back(out)}, {"dq", back(dq)}, {"ds", back(ds)}};
}

// ---- glu ----
struct GluCase {
  Vec gate, up, dout;  // (n) each
  sp::Glu act;
};

GluCase glu_case(size_t n, uint64_t seed, sp::Glu act) {
  std::mt19937_64 rng(seed);
  return {randn(n, rng, 3), randn(n, rng), randn(n, rng), act};
}

template <class F>
Tensors run_glu(const GluCase& c, double prefill = 0) {
  auto g = to<F>(c.gate), u = to<F>(c.up), dout = to<F>(c.dout);
  const size_t n = g.size();
  std::vector<F> out(n), dg(n, F(prefill)), du(n, F(prefill));
  sp::glu_forward(out.data(), g.data(), u.data(), n, c.act);
  sp::glu_backward(dg.data(), du.data(), dout.data(), g.data(), u.data(), n, c.act);
  return {{"out", back(out)}, {"dgate", back(dg)}, {"dup", back(du)}};
}

const char* glu_name(sp::Glu act) { return act == sp::Glu::Swish ? "swish" : "sigmoid"; }

// ---- embedding ----
struct EmbCase {
  size_t V, C;
  std::vector<int32_t> tokens;  // (N)
  Vec wte, dout;                // (V, C), (N, C)
};

EmbCase emb_case(size_t N, size_t V, size_t C, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> tok(0, int32_t(V) - 1);
  EmbCase c{V, C, std::vector<int32_t>(N), randn(V * C, rng), randn(N * C, rng)};
  for (int32_t& t : c.tokens) t = tok(rng);
  return c;
}

template <class F>
Tensors run_embedding(const EmbCase& c, double prefill = 0) {
  const size_t N = c.tokens.size();
  auto wte = to<F>(c.wte), dout = to<F>(c.dout);
  std::vector<F> out(N * c.C), dwte(c.V * c.C, F(prefill));
  sp::embedding_forward(out.data(), c.tokens.data(), wte.data(), N, c.C);
  sp::embedding_backward(dwte.data(), dout.data(), c.tokens.data(), N, c.C);
  return {{"out", back(out)}, {"dwte", back(dwte)}};
}

}  // namespace

// ================================ rmsnorm ================================

TEMPLATE_TEST_CASE("rmsnorm forward matches the row-by-row formula", "[unit][ops]", float, double) {
  RmsCase c = rms_case(6, 40, 1);
  std::fill(c.x.begin() + 2 * 40, c.x.begin() + 3 * 40, 0.0);  // an all-zero row: only eps keeps rstd finite
  const Tensors got = run_rmsnorm<TestType>(c);
  Vec out(c.N * c.C), rstd(c.N);
  for (size_t n = 0; n < c.N; n++) {
    double ms = 0;
    for (size_t j = 0; j < c.C; j++) ms += c.x[n * c.C + j] * c.x[n * c.C + j] / double(c.C);
    rstd[n] = 1 / std::sqrt(ms + c.eps);
    for (size_t j = 0; j < c.C; j++) out[n * c.C + j] = c.x[n * c.C + j] * rstd[n] * c.w[j];
  }
  CHECK(rel_err(got.at("out"), out) <= kTol<TestType>);
  CHECK(rel_err(got.at("rstd"), rstd) <= kTol<TestType>);
  CHECK(std::abs(got.at("rstd")[2] - 1e3) <= 1e3 * kTol<TestType>);  // 1 / sqrt(1e-6)
}

TEST_CASE("rmsnorm gradients match finite differences", "[unit][ops]") {
  RmsCase c = rms_case(5, 12, 2);
  const Tensors an = run_rmsnorm<double>(c);
  auto loss = [&] { return dot(run_rmsnorm<double>(c).at("out"), c.dout); };
  CHECK(rel_err(an.at("dx"), fd_grad(c.x, loss)) <= kFdTol);
  CHECK(rel_err(an.at("dw"), fd_grad(c.w, loss)) <= kFdTol);
}

TEMPLATE_TEST_CASE("rmsnorm backward accumulates into dx and dw", "[unit][ops]", float, double) {
  const RmsCase c = rms_case(7, 24, 3);
  require_conventions(run_rmsnorm<TestType>(c), run_rmsnorm<TestType>(c, 1), {"dx", "dw"}, {}, kTol<TestType>);
}

TEST_CASE("rmsnorm in float agrees with double", "[unit][ops]") {
  const RmsCase c = rms_case(33, 200, 4);
  require_float_matches_double(run_rmsnorm<float>(c), run_rmsnorm<double>(c));
}

TEMPLATE_TEST_CASE("rmsnorm gradients are bit-identical across runs and thread counts", "[unit][ops]", float,
                   double) {
  const RmsCase c = rms_case(1000, 83, 5);  // more rows than reduction chunks, C not a multiple of the lanes
  require_deterministic([&] { return run_rmsnorm<TestType>(c); });
}

// ================================ rope ================================

TEMPLATE_TEST_CASE("rope forward matches the complex rotation formula", "[unit][ops]", float, double) {
  for (double theta : {10000.0, 500000.0}) {
    const RopeCase c = rope_case(2, 9, 3, 16, theta, 6);
    const Tensors got = run_rope<TestType>(c);
    // Pair i of a head is the complex number x[i] + i x[i + D/2], multiplied by e^(i t theta^(-2i/D)).
    const size_t half = c.D / 2;
    Vec out(c.x.size());
    for (size_t b = 0; b < c.B; b++)
      for (size_t t = 0; t < c.T; t++)
        for (size_t h = 0; h < c.H; h++)
          for (size_t i = 0; i < half; i++) {
            const size_t lo = ((b * c.T + t) * c.H + h) * c.D + i, hi = lo + half;
            const double freq = 1 / std::pow(theta, double(2 * i) / double(c.D));
            const std::complex<double> z =
                std::complex<double>(c.x[lo], c.x[hi]) * std::polar(1.0, double(t) * freq);
            out[lo] = z.real();
            out[hi] = z.imag();
          }
    INFO("theta " << theta);
    CHECK(rel_err(got.at("out"), out) <= kTol<TestType>);
  }
}

TEST_CASE("rope pairs x[i] with x[i + D/2], as in Hugging Face Llama", "[unit][ops]") {
  // D = 4, position 1: pair 0 turns by 1 radian, pair 1 by theta^(-1/2) = 0.01 radian.
  // (T=2, D=4); at position 1 both pairs (x[0], x[2]) and (x[1], x[3]) are (1, 0).
  std::vector<double> x = {0, 0, 0, 0, 1, 1, 0, 0};
  sp::rope_forward(x.data(), 1, 2, 1, 4, 10000.0, 0);
  const std::vector<double> expect = {0, 0, 0, 0, std::cos(1.0), std::cos(0.01), std::sin(1.0), std::sin(0.01)};
  CHECK(rel_err(x, expect) <= kTol<double>);
}

TEMPLATE_TEST_CASE("rope leaves position 0 unchanged and preserves each pair's norm", "[unit][ops]", float,
                   double) {
  const RopeCase c = rope_case(2, 50, 2, 8, 10000.0, 7);
  const Vec in = back(to<TestType>(c.x));
  const Vec out = run_rope<TestType>(c).at("out");
  const size_t half = c.D / 2, row = c.H * c.D;  // row: one position of all heads
  Vec norm_in, norm_out;
  for (size_t b = 0; b < c.B; b++) {
    const size_t p0 = b * c.T * row;  // position 0 of sequence b
    CHECK(same_bits(Vec(out.begin() + p0, out.begin() + p0 + row), Vec(in.begin() + p0, in.begin() + p0 + row)));
  }
  for (size_t v = 0; v < c.B * c.T * c.H; v++)
    for (size_t i = 0; i < half; i++) {
      const size_t lo = v * c.D + i, hi = lo + half;
      norm_in.push_back(std::hypot(in[lo], in[hi]));
      norm_out.push_back(std::hypot(out[lo], out[hi]));
    }
  CHECK(rel_err(norm_out, norm_in) <= kTol<TestType>);
  // The rotation must actually move the later positions.
  CHECK(rel_err(out, in) > 0.1);
}

TEST_CASE("rope gradient matches finite differences and inverts the forward", "[unit][ops]") {
  RopeCase c = rope_case(2, 6, 2, 8, 10000.0, 8);
  const Tensors an = run_rope<double>(c);
  auto loss = [&] { return dot(run_rope<double>(c).at("out"), c.dout); };
  CHECK(rel_err(an.at("dx"), fd_grad(c.x, loss)) <= kFdTol);
  // backward(forward(x)) = x: the backward is the inverse rotation.
  Vec x = c.x;
  sp::rope_forward(x.data(), c.B, c.T, c.H, c.D, c.theta, 0);
  sp::rope_backward(x.data(), c.B, c.T, c.H, c.D, c.theta);
  CHECK(rel_err(x, c.x) <= kTol<double>);
}

TEST_CASE("rope in float agrees with double", "[unit][ops]") {
  const RopeCase c = rope_case(2, 300, 4, 64, 10000.0, 9);  // angles up to 299 radians
  require_float_matches_double(run_rope<float>(c), run_rope<double>(c));
}

// ================================ ssmax ================================

TEMPLATE_TEST_CASE("ssmax forward multiplies q by s_h log(t + 2)", "[unit][ops]", float, double) {
  const SsmaxCase c = ssmax_case(2, 7, 3, 8, 10);
  const Tensors got = run_ssmax<TestType>(c);
  Vec out(c.q.size());
  for (size_t b = 0; b < c.B; b++)
    for (size_t t = 0; t < c.T; t++)
      for (size_t h = 0; h < c.H; h++)
        for (size_t d = 0; d < c.D; d++) {
          const size_t i = ((b * c.T + t) * c.H + h) * c.D + d;
          out[i] = c.q[i] * c.s[h] * std::log(double(t) + 2);
        }
  CHECK(rel_err(got.at("out"), out) <= kTol<TestType>);
}

TEST_CASE("ssmax gradients match finite differences", "[unit][ops]") {
  SsmaxCase c = ssmax_case(2, 5, 3, 4, 11);
  const Tensors an = run_ssmax<double>(c);
  auto loss = [&] { return dot(run_ssmax<double>(c).at("out"), c.dout); };
  CHECK(rel_err(an.at("dq"), fd_grad(c.q, loss)) <= kFdTol);
  CHECK(rel_err(an.at("ds"), fd_grad(c.s, loss)) <= kFdTol);
}

TEMPLATE_TEST_CASE("ssmax backward overwrites dq and accumulates ds", "[unit][ops]", float, double) {
  const SsmaxCase c = ssmax_case(2, 9, 4, 8, 12);
  require_conventions(run_ssmax<TestType>(c), run_ssmax<TestType>(c, 1), {"ds"}, {"dq"}, kTol<TestType>);
}

TEST_CASE("ssmax in float agrees with double", "[unit][ops]") {
  const SsmaxCase c = ssmax_case(3, 100, 4, 32, 13);
  require_float_matches_double(run_ssmax<float>(c), run_ssmax<double>(c));
}

TEMPLATE_TEST_CASE("ssmax gradients are bit-identical across runs and thread counts", "[unit][ops]", float,
                   double) {
  const SsmaxCase c = ssmax_case(3, 211, 4, 20, 14);  // 633 positions: several per reduction chunk
  require_deterministic([&] { return run_ssmax<TestType>(c); });
}

// ================================ glu ================================

TEMPLATE_TEST_CASE("glu forward is silu(gate) * up (swish) or sigmoid(gate) * up (sigmoid)", "[unit][ops]", float,
                   double) {
  for (sp::Glu act : {sp::Glu::Swish, sp::Glu::Sigmoid}) {
    INFO(glu_name(act));
    const GluCase c = glu_case(500, 15, act);
    Vec out(c.gate.size());
    for (size_t i = 0; i < out.size(); i++) {
      const double sig = 1 / (1 + std::exp(-c.gate[i]));
      out[i] = (act == sp::Glu::Swish ? c.gate[i] * sig : sig) * c.up[i];
    }
    CHECK(rel_err(run_glu<TestType>(c).at("out"), out) <= kTol<TestType>);
  }
}

TEST_CASE("glu gradients match finite differences", "[unit][ops]") {
  for (sp::Glu act : {sp::Glu::Swish, sp::Glu::Sigmoid}) {
    INFO(glu_name(act));
    GluCase c = glu_case(40, 16, act);
    const Tensors an = run_glu<double>(c);
    auto loss = [&] { return dot(run_glu<double>(c).at("out"), c.dout); };
    CHECK(rel_err(an.at("dgate"), fd_grad(c.gate, loss)) <= kFdTol);
    CHECK(rel_err(an.at("dup"), fd_grad(c.up, loss)) <= kFdTol);
  }
}

TEMPLATE_TEST_CASE("glu backward overwrites dgate and dup", "[unit][ops]", float, double) {
  for (sp::Glu act : {sp::Glu::Swish, sp::Glu::Sigmoid}) {
    const GluCase c = glu_case(100, 17, act);
    require_conventions(run_glu<TestType>(c), run_glu<TestType>(c, 1), {}, {"dgate", "dup"}, 0);
  }
}

TEMPLATE_TEST_CASE("glu stays finite and takes its limits at extreme gates", "[unit][ops]", float, double) {
  // silu(g) -> g and its derivative -> 1 as g -> +inf; sigmoid(g) -> 1 and its derivative -> 0; all -> 0 as
  // g -> -inf, where e^-g overflows.
  const Vec gate = {-1000, -100, 100, 1000}, up = {2, 2, 2, 2}, dout = {1, 1, 1, 1};
  const Tensors swish = run_glu<TestType>(GluCase{gate, up, dout, sp::Glu::Swish});
  CHECK(rel_err(swish.at("out"), {0, 0, 200, 2000}) <= kTol<TestType>);
  CHECK(rel_err(swish.at("dgate"), {0, 0, 2, 2}) <= kTol<TestType>);
  CHECK(rel_err(swish.at("dup"), {0, 0, 100, 1000}) <= kTol<TestType>);
  const Tensors sigmoid = run_glu<TestType>(GluCase{gate, up, dout, sp::Glu::Sigmoid});
  CHECK(rel_err(sigmoid.at("out"), {0, 0, 2, 2}) <= kTol<TestType>);
  CHECK(rel_err(sigmoid.at("dgate"), {0, 0, 0, 0}) <= kTol<TestType>);
  CHECK(rel_err(sigmoid.at("dup"), {0, 0, 1, 1}) <= kTol<TestType>);
}

TEST_CASE("glu in float agrees with double", "[unit][ops]") {
  for (sp::Glu act : {sp::Glu::Swish, sp::Glu::Sigmoid}) {
    const GluCase c = glu_case(2000, 18, act);
    require_float_matches_double(run_glu<float>(c), run_glu<double>(c));
  }
}

// ================================ embedding ================================

TEMPLATE_TEST_CASE("embedding forward copies the token rows", "[unit][ops]", float, double) {
  const EmbCase c = emb_case(20, 7, 9, 19);
  const Vec out = run_embedding<TestType>(c).at("out");
  const Vec wte = back(to<TestType>(c.wte));
  for (size_t n = 0; n < c.tokens.size(); n++) {
    const size_t src = size_t(c.tokens[n]) * c.C;
    CHECK(same_bits(Vec(out.begin() + n * c.C, out.begin() + (n + 1) * c.C),
                    Vec(wte.begin() + src, wte.begin() + src + c.C)));
  }
}

TEST_CASE("embedding gradient matches finite differences, with repeated tokens", "[unit][ops]") {
  std::mt19937_64 rng(20);
  const std::vector<int32_t> tokens = {3, 1, 3, 0, 5, 3, 1, 1, 2};  // token 3 three times, token 4 never
  EmbCase c{6, 5, tokens, randn(6 * 5, rng), randn(tokens.size() * 5, rng)};
  const Tensors an = run_embedding<double>(c);
  auto loss = [&] { return dot(run_embedding<double>(c).at("out"), c.dout); };
  CHECK(rel_err(an.at("dwte"), fd_grad(c.wte, loss)) <= kFdTol);
  // Row 3 is the sum of three dout rows; row 4 gets nothing.
  for (size_t j = 0; j < c.C; j++) {
    CHECK(an.at("dwte")[3 * c.C + j] == Approx(c.dout[0 * c.C + j] + c.dout[2 * c.C + j] + c.dout[5 * c.C + j]));
    CHECK(an.at("dwte")[4 * c.C + j] == 0);
  }
}

TEMPLATE_TEST_CASE("embedding backward accumulates into dwte", "[unit][ops]", float, double) {
  const EmbCase c = emb_case(40, 10, 70, 22);
  require_conventions(run_embedding<TestType>(c), run_embedding<TestType>(c, 1), {"dwte"}, {}, kTol<TestType>);
}

TEST_CASE("embedding in float agrees with double", "[unit][ops]") {
  const EmbCase c = emb_case(300, 20, 64, 23);  // about 15 repeats per token
  require_float_matches_double(run_embedding<float>(c), run_embedding<double>(c));
}

TEMPLATE_TEST_CASE("embedding gradient is bit-identical across runs and thread counts", "[unit][ops]", float,
                   double) {
  const EmbCase c = emb_case(2000, 37, 150, 24);  // many repeats; C spans several column blocks and a tail
  require_deterministic([&] { return run_embedding<TestType>(c); });
}
