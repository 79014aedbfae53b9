// One table of backend ops, run through `Backend&` on every backend and compared with the double-precision
// CPU reference "cpu-f64" (in the spirit of ggml's test-backend-ops). Each case draws its inputs from a
// seeded generator, so every backend sees the same numbers; inputs are rounded to values bf16 can hold, so
// a bf16 backend starts from exactly the reference's inputs and what remains is its own rounding.
//
// Tolerance, stated once per dtype of the backend's activations, on max|a - ref| / max|ref| per output:
//   f32  64 ulps (summation order; cf. tests/test_ops.cpp);
//   bf16 kTolCudaBF16 of tests/cuda_test_util.h (outputs rounded to bf16 once, fp32 inside), and for the
//        outputs a bf16 backend computes from bf16-rounded intermediates (the attention gradients: P and dS
//        are tensor-core operands, as in FlashAttention) kTolCudaBF16Operands.
// Finite-difference checks of the reference itself live in tests/test_ops.cpp and tests/test_attention.cpp.
#include <catch2/catch.hpp>

#include "backend/backend.h"
#include "backend/op_args.h"

#ifdef SOFTPICK_CUDA_EMU
#include "runtime.h"  // the harness's fiber-order seed
#endif

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace {

using sp::Backend;
using sp::Buffer;
using sp::DType;
using Vec = std::vector<double>;

// = sp::test::kTolCudaBF16 and kTolCudaBF16Operands (that header needs the CUDA headers)
constexpr double kTolBF16 = 2.5 / 256, kTolBF16Operands = 4.0 / 256;

// How many roundings an output of a bf16 backend may carry.
enum class Rounding { Once, Operands };

double tolerance(DType activations, Rounding rounding) {
  switch (activations) {
    case DType::F64: return 0;
    case DType::F32: return 64 * double(std::numeric_limits<float>::epsilon());
    default: return rounding == Rounding::Once ? kTolBF16 : kTolBF16Operands;
  }
}

// Round to the nearest bf16 value (ties to even), kept as a double.
double bf16_value(double x) {
  float f = float(x);
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000u;
  std::memcpy(&f, &u, 4);
  return f;
}

// The dtypes a backend wants for each kind of buffer.
struct Kinds {
  DType act, weight, grad, stat, master;
  explicit Kinds(const Backend& be)
      : act(be.activation_dtype()), weight(be.weight_dtype()), grad(be.grad_dtype()), stat(be.stat_dtype()),
        master(be.master_dtype()) {}
};

// One op case on one backend: its buffers (released at the end) and its outputs, by name.
class OpRun {
public:
  OpRun(Backend& be, uint64_t seed) : be(be), kinds(be), rng_(seed) {}
  ~OpRun() {
    for (Buffer b : owned_) be.release(b);
  }
  OpRun(const OpRun&) = delete;
  OpRun& operator=(const OpRun&) = delete;

  Vec randn(size_t n, double scale = 1.0, double mean = 0.0) {
    std::normal_distribution<double> d(mean, scale);
    Vec v(n);
    for (double& x : v) x = bf16_value(d(rng_));
    return v;
  }
  std::vector<int32_t> ints(size_t n, int32_t lo, int32_t hi) {
    std::uniform_int_distribution<int32_t> d(lo, hi);
    std::vector<int32_t> v(n);
    for (auto& x : v) x = d(rng_);
    return v;
  }
  Buffer input(const Vec& host, DType dt) {
    Buffer b = be.alloc(host.size(), dt);
    owned_.push_back(b);
    be.upload(b, std::span<const double>(host));
    return b;
  }
  Buffer tokens(const std::vector<int32_t>& host) {
    Buffer b = be.alloc(host.size(), DType::I32);
    owned_.push_back(b);
    be.upload(b, std::span<const int32_t>(host));
    return b;
  }
  Buffer zeros(size_t n, DType dt) {
    Buffer b = be.alloc(n, dt);
    owned_.push_back(b);
    return b;
  }
  void read(const std::string& name, Buffer b, Rounding rounding = Rounding::Once) {
    Vec v(b.numel);
    be.download(std::span<double>(v), b);
    out[name] = v;
    roundings[name] = rounding;
  }

  Backend& be;
  Kinds kinds;
  std::map<std::string, Vec> out;
  std::map<std::string, Rounding> roundings;

private:
  std::mt19937_64 rng_;
  std::vector<Buffer> owned_;
};

struct OpCase {
  std::string name;
  std::function<void(OpRun&)> run;
};

sp::AttentionShape shape(int64_t B, int64_t T, int64_t H, int64_t Hkv, int64_t D, sp::Normaliser n) {
  return sp::AttentionShape{B, T, H, Hkv, D, n, 1e-6};
}

// Learned sink logits of both signs for Normaliser::Sink, no buffer otherwise.
Buffer sink_logits(OpRun& r, const sp::AttentionShape& s) {
  return s.norm == sp::Normaliser::Sink ? r.input(r.randn(size_t(s.H), 1.5), r.kinds.weight) : Buffer{};
}

void attention_case(OpRun& r, const sp::AttentionShape& s) {
  const size_t nq = size_t(s.B * s.T * s.H * s.D), nk = size_t(s.B * s.T * s.Hkv * s.D);
  const auto K = r.kinds;
  // scores of both signs and a spread that makes some softpick rows abstain
  Buffer q = r.input(r.randn(nq, 1.2), K.act), k = r.input(r.randn(nk, 1.2), K.act), v = r.input(r.randn(nk), K.act);
  Buffer sinks = sink_logits(r, s);
  Buffer out = r.zeros(nq, K.act), lse = r.zeros(size_t(s.B * s.H * s.T), K.stat);
  r.be.attention_forward(out, lse, q, k, v, sinks, s);
  Buffer dout = r.input(r.randn(nq), K.act);
  Buffer dq = r.zeros(nq, K.act), dk = r.zeros(nk, K.act), dv = r.zeros(nk, K.act);
  r.be.attention_backward(dq, dk, dv, q, k, v, out, dout, lse, s);
  r.read("out", out);
  r.read("dq", dq, Rounding::Operands);
  r.read("dk", dk, Rounding::Operands);
  r.read("dv", dv, Rounding::Operands);
  if (sinks) {
    Buffer dsinks = r.input(r.randn(size_t(s.H)), K.grad);  // it accumulates
    r.be.attention_sink_backward(dsinks, out, dout, lse, sinks, s);
    r.read("dsinks", dsinks, Rounding::Operands);
  }
}

// act(gate) * up and its backward, on 101 values.
OpCase glu_case(sp::Glu act) {
  return {std::string("glu ") + (act == sp::Glu::Swish ? "swish" : "sigmoid") + " forward and backward (n 101)",
          [act](OpRun& r) {
            const size_t n = 101;
            const auto K = r.kinds;
            Buffer g = r.input(r.randn(n, 2.0), K.act), u = r.input(r.randn(n), K.act);
            Buffer out = r.zeros(n, K.act), dg = r.zeros(n, K.act), du = r.zeros(n, K.act);
            r.be.glu_forward(out, g, u, n, act);
            r.be.glu_backward(dg, du, r.input(r.randn(n), K.act), g, u, n, act);
            r.read("out", out);
            r.read("dgate", dg);
            r.read("dup", du);
          }};
}

std::vector<OpCase> op_table() {
  std::vector<OpCase> t;
  t.push_back({"embedding (N 7, C 33, V 11)", [](OpRun& r) {
                 const size_t N = 7, C = 33, V = 11;
                 const auto K = r.kinds;
                 Buffer tok = r.tokens(r.ints(N, 0, int32_t(V) - 1)), wte = r.input(r.randn(V * C), K.weight);
                 Buffer out = r.zeros(N * C, K.act), dwte = r.input(r.randn(V * C), K.grad);  // dwte accumulates
                 r.be.embedding_forward(out, tok, wte, N, C);
                 r.be.embedding_backward(dwte, r.input(r.randn(N * C), K.act), tok, N, C);
                 r.read("out", out);
                 r.read("dwte", dwte);
               }});
  for (auto [N, C] : {std::pair<size_t, size_t>{5, 96}, {3, 130}, {1, 64}})
    t.push_back({"rmsnorm (N " + std::to_string(N) + ", C " + std::to_string(C) + ")", [N, C](OpRun& r) {
                   const auto K = r.kinds;
                   Buffer x = r.input(r.randn(N * C, 2.0), K.act), w = r.input(r.randn(C, 0.5, 1.0), K.weight);
                   Buffer out = r.zeros(N * C, K.act), rstd = r.zeros(N, K.stat);
                   r.be.rmsnorm_forward(out, rstd, x, w, N, C, 1e-6);
                   Buffer dx = r.input(r.randn(N * C), K.act), dw = r.input(r.randn(C), K.grad);  // both accumulate
                   r.be.rmsnorm_backward(dx, dw, r.input(r.randn(N * C), K.act), x, w, rstd, N, C);
                   r.read("out", out);
                   r.read("rstd", rstd);
                   r.read("dx", dx);
                   r.read("dw", dw);
                 }});
  for (bool acc : {false, true})
    t.push_back({std::string("matmul (N 6, IC 40, OC 24)") + (acc ? ", dinp accumulates" : ""), [acc](OpRun& r) {
                   const size_t N = 6, IC = 40, OC = 24;
                   const auto K = r.kinds;
                   Buffer inp = r.input(r.randn(N * IC), K.act), w = r.input(r.randn(OC * IC, 0.2), K.weight);
                   Buffer out = r.zeros(N * OC, K.act);
                   r.be.matmul_forward(out, inp, w, N, IC, OC);
                   Buffer dinp = r.input(r.randn(N * IC), K.act), dw = r.input(r.randn(OC * IC), K.grad);
                   r.be.matmul_backward(dinp, dw, r.input(r.randn(N * OC), K.act), inp, w, N, IC, OC, acc);
                   r.read("out", out);
                   r.read("dinp", dinp);
                   r.read("dw", dw);
                 }});
  t.push_back({"matmul with the residual added (N 7, IC 48, OC 40)", [](OpRun& r) {
                 const size_t N = 7, IC = 48, OC = 40;
                 const auto K = r.kinds;
                 Buffer inp = r.input(r.randn(N * IC), K.act), w = r.input(r.randn(OC * IC, 0.2), K.weight);
                 Buffer res = r.input(r.randn(N * OC, 2.0), K.act), out = r.zeros(N * OC, K.act);
                 r.be.matmul_forward_residual(out, inp, w, res, N, IC, OC);
                 r.read("out", out);
                 r.read("residual (unchanged)", res);
               }});
  t.push_back({"rope forward and backward (B 2, T 5, Hx 3, D 16)", [](OpRun& r) {
                 const size_t B = 2, T = 5, Hx = 3, D = 16, n = B * T * Hx * D;
                 Buffer x = r.input(r.randn(n), r.kinds.act), dx = r.input(r.randn(n), r.kinds.act);
                 Buffer x_at = r.input(r.randn(n), r.kinds.act);
                 r.be.rope_forward(x, B, T, Hx, D, 10000.0, 0);
                 r.be.rope_forward(x_at, B, T, Hx, D, 10000.0, 8);  // rows at positions 8..12 (decoding)
                 r.be.rope_backward(dx, B, T, Hx, D, 10000.0);
                 r.read("x", x);
                 r.read("x from position 8", x_at);
                 r.read("dx", dx);
               }});
  t.push_back({"ssmax forward and backward (B 2, T 5, H 3, D 8)", [](OpRun& r) {
                 const size_t B = 2, T = 5, H = 3, D = 8, n = B * T * H * D;
                 const auto K = r.kinds;
                 Buffer q = r.input(r.randn(n), K.act), s = r.input(r.randn(H, 0.1, 0.3), K.weight);
                 Buffer q_out = r.zeros(n, K.act), dq = r.zeros(n, K.act), ds = r.input(r.randn(H), K.grad);
                 Buffer q_out_at = r.zeros(n, K.act);
                 r.be.ssmax_forward(q_out, q, s, B, T, H, D, 0);
                 r.be.ssmax_forward(q_out_at, q, s, B, T, H, D, 8);  // rows at positions 8..12 (decoding)
                 r.be.ssmax_backward(dq, ds, r.input(r.randn(n), K.act), q, s, B, T, H, D);
                 r.read("q_out", q_out);
                 r.read("q_out from position 8", q_out_at);
                 r.read("dq_in", dq);
                 r.read("ds", ds);
               }});
  t.push_back(glu_case(sp::Glu::Swish));
  for (sp::Normaliser nm : sp::kNormalisers)
    for (auto [H, Hkv] : {std::pair<int64_t, int64_t>{4, 4}, {4, 2}, {4, 1}})
      for (int64_t T : {2, 13, 37})  // (a softpick row with one visible key has dq ~ eps: all cancellation)
        t.push_back({std::string("attention ") + sp::normaliser_name(nm) + " (B 2, T " + std::to_string(T) + ", H " +
                         std::to_string(H) + ", Hkv " + std::to_string(Hkv) + ", D 64)",
                     [=](OpRun& r) { attention_case(r, shape(2, T, H, Hkv, 64, nm)); }});
  // Every head dim, and lengths past the tensor-core kernels' 64-row tiles: several query blocks and key
  // tiles, both cp.async stages, fully visible tiles next to diagonal ones, a masked tail.
  struct Long {
    int64_t B, T, H, Hkv, D;
  };
  for (sp::Normaliser nm : sp::kNormalisers)
    for (Long c : {Long{1, 21, 2, 1, 128}, Long{1, 70, 2, 1, 128}, Long{1, 150, 4, 2, 64}, Long{2, 40, 4, 2, 32}})
      t.push_back({std::string("attention ") + sp::normaliser_name(nm) + " (B " + std::to_string(c.B) + ", T " +
                       std::to_string(c.T) + ", H " + std::to_string(c.H) + ", Hkv " + std::to_string(c.Hkv) +
                       ", D " + std::to_string(c.D) + ")",
                   [=](OpRun& r) { attention_case(r, shape(c.B, c.T, c.H, c.Hkv, c.D, nm)); }});
  t.push_back({"lm head + cross-entropy (N 9, C 24, V 50, ignored targets)", [](OpRun& r) {
                 const size_t N = 9, C = 24, V = 50;
                 const auto K = r.kinds;
                 auto targets = r.ints(N, 0, int32_t(V) - 1);
                 targets[2] = targets[7] = -1;
                 Buffer x = r.input(r.randn(N * C), K.act), w = r.input(r.randn(V * C, 0.5), K.weight);
                 Buffer dx = r.zeros(N * C, K.act), dw = r.input(r.randn(V * C), K.grad);  // dw accumulates
                 // the accumulators add up: with gradients into one, twice without into the other
                 Buffer with_grad = r.zeros(2, sp::kAccumDType), no_grad = r.zeros(2, sp::kAccumDType);
                 r.be.lm_head_loss(with_grad, x, w, r.tokens(targets), N, C, V, dx, dw, 1.0 / 7);
                 for (int i = 0; i < 2; ++i)
                   r.be.lm_head_loss(no_grad, x, w, r.tokens(targets), N, C, V, Buffer{}, Buffer{}, 0.0);
                 r.read("loss with gradients", with_grad);
                 r.read("loss without gradients, twice", no_grad);
                 r.read("dx", dx);
                 r.read("dw", dw);
                 Buffer logits = r.zeros(V, K.stat);
                 r.be.lm_head_logits(logits, x.slice(3 * C, C), w, C, V);
                 r.read("logits", logits);
               }});
  // the decoder's attention: the last Tq rows of each sequence over all T keys; at T 600 the CUDA backend
  // takes its split-K decode kernel for 1 and 3 rows
  struct Decode {
    int64_t T, new_rows;
  };
  for (sp::Normaliser nm : sp::kNormalisers)
    for (Decode c : {Decode{75, 1}, Decode{75, 3}, Decode{75, 70}, Decode{600, 1}, Decode{600, 3}})
      t.push_back({std::string("attention ") + sp::normaliser_name(nm) + " forward with a query offset (T " +
                       std::to_string(c.T) + ", last " + std::to_string(c.new_rows) + " rows, H 4, Hkv 2, D 64)",
                   [=](OpRun& r) {
                     const int64_t new_rows = c.new_rows;
                     sp::AttentionShape s = shape(1, c.T, 4, 2, 64, nm);
                     s.q_offset = s.T - new_rows;
                     const size_t nq = size_t(s.Tq() * s.H * s.D), nk = size_t(s.T * s.Hkv * s.D);
                     const auto K = r.kinds;
                     Buffer q = r.input(r.randn(nq, 1.2), K.act), k = r.input(r.randn(nk, 1.2), K.act);
                     Buffer v = r.input(r.randn(nk), K.act);
                     Buffer out = r.zeros(nq, K.act), lse = r.zeros(size_t(s.H * s.Tq()), K.stat);
                     r.be.attention_forward(out, lse, q, k, v, sink_logits(r, s), s);
                     r.read("out", out);
                     r.read("lse", lse);
                   }});
  t.push_back({"adamw (n 37, two steps, weight decay, clipping) and sum of squares", [](OpRun& r) {
                 const size_t n = 37;
                 const auto K = r.kinds;
                 const Vec init = r.randn(n);
                 Buffer master = r.input(init, K.master), g = r.input(r.randn(n), K.grad);
                 Buffer m = r.zeros(n, K.master), v = r.zeros(n, K.master);
                 // the working copy: a buffer of its own where its dtype differs, else the master itself
                 Buffer w = K.weight == K.master ? master : r.input(init, K.weight);
                 for (int64_t step = 1; step <= 2; ++step)
                   r.be.adamw_update(master, w, g, m, v, sp::AdamWArgs{1e-2, 0.9, 0.95, 1e-8, 0.1, step, 0.5});
                 r.read("master", master);
                 r.read("weights", w);
                 r.read("m", m);
                 r.read("v", v);
                 Buffer acc = r.input({0.25}, sp::kAccumDType);  // it accumulates
                 r.be.sum_squares(acc, g);
                 r.read("sum_squares", acc);
               }});
  t.push_back({"copy, converting copy and accumulate (n 1000)", [](OpRun& r) {
                 const size_t n = 1000;
                 Buffer a = r.input(r.randn(n), r.kinds.act), b = r.input(r.randn(n), r.kinds.act), c = r.zeros(n, r.kinds.act);
                 r.be.accumulate(a, b);
                 r.be.copy(c, a);
                 // activations into statistics' dtype and back (bf16 <-> fp32 on the GPU)
                 Buffer wide = r.zeros(n, r.kinds.stat), back = r.zeros(n, r.kinds.act);
                 r.be.copy(wide, a);
                 r.be.copy(back, wide);
                 r.read("a", a);
                 r.read("c", c);
                 r.read("a as stat", wide);
                 r.read("a and back", back);
               }});
  t.push_back(glu_case(sp::Glu::Sigmoid));
  // Fake quantization at evaluation: int8 and fp8, per row and per tensor, LLM.int8's outlier columns.
  // Inputs of spread 2 with a few columns pushed past the threshold of 6.
  for (auto kind : {sp::ActQuant::Int8, sp::ActQuant::Fp8})
    for (bool per_tensor : {false, true})
      for (double threshold : {0.0, 6.0}) {
        if (kind == sp::ActQuant::Fp8 && threshold > 0) continue;
        const std::string name = std::string("act_quant ") + (kind == sp::ActQuant::Int8 ? "int8" : "fp8") +
                                 (per_tensor ? " per tensor" : " per row") + (threshold > 0 ? " with outliers" : "") +
                                 " (N 9, C 300)";
        t.push_back({name, [=](OpRun& r) {
                       const size_t N = 9, C = 300;
                       Vec host = r.randn(N * C, 2.0);
                       for (size_t c : {7, 150, 299}) host[4 * C + c] = bf16_value(7.5 + double(c) / 100);
                       host[2 * C + 5] = 0;  // a zero stays zero
                       Buffer x = r.input(host, r.kinds.act);
                       r.be.act_quant(x, N, C, sp::ActQuantArgs{kind, per_tensor, threshold});
                       r.read("x", x);
                     }});
      }
  return t;
}

double rel_err(const Vec& a, const Vec& ref) {
  if (a.size() != ref.size()) return std::numeric_limits<double>::infinity();
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isinf(ref[i]) || std::isinf(a[i])) {  // lse of rows that output nothing
      if (a[i] != ref[i]) return std::numeric_limits<double>::infinity();
      continue;
    }
    diff = std::max(diff, std::abs(a[i] - ref[i]));
    scale = std::max(scale, std::abs(ref[i]));
  }
  if (std::isnan(diff)) return std::numeric_limits<double>::infinity();
  return scale > 0 ? diff / scale : diff;
}

// Every case of the table on `device` (those whose name starts with `only`), against cpu-f64.
void check_backend(const std::string& device, bool deterministic = true, const std::string& only = "") {
  auto ref_be = sp::make_backend({"cpu-f64", 2});
  auto be = sp::make_backend({device, 2, 0, deterministic});
  uint64_t seed = 1;
  for (const OpCase& c : op_table()) {
    ++seed;  // a case's inputs are seeded by its place in the table: new cases go at the end
    if (!c.name.starts_with(only)) continue;
    OpRun ref(*ref_be, seed), got(*be, seed);
    c.run(ref);
    c.run(got);
    for (const auto& [name, values] : ref.out) {
      INFO(device << ": " << c.name << ": " << name);
      REQUIRE(got.out.count(name));
      const double err = rel_err(got.out.at(name), values);
      const double tol = tolerance(be->activation_dtype(), ref.roundings.at(name));
      CAPTURE(err, tol);
      CHECK(err <= tol);
    }
  }
}

}  // namespace

TEST_CASE("backend ops: cpu (f32) against cpu-f64", "[unit]") { check_backend("cpu"); }

#ifdef SOFTPICK_HAVE_CUDA_BACKEND
#ifdef SOFTPICK_CUDA_EMU
// Under several fiber orders of the harness (a missing barrier in a kernel shows up as a wrong result).
TEST_CASE("backend ops: cuda (on the CUDA execution harness) against cpu-f64", "[cuda]") {
  const uint64_t saved = emu::schedule_seed();
  for (uint64_t seed : {1, 2, 3}) {
    emu::set_schedule_seed(seed);
    INFO("fiber-order seed " << seed);
    check_backend("cuda");
    check_backend("cuda-f32");
  }
  emu::set_schedule_seed(saved);
}

// Under several fiber orders, as above: the atomic additions land in another order under each.
TEST_CASE("backend ops: cuda with the atomic attention backward against cpu-f64", "[cuda]") {
  const uint64_t saved = emu::schedule_seed();
  for (uint64_t seed : {1, 2, 3}) {
    emu::set_schedule_seed(seed);
    INFO("fiber-order seed " << seed);
    check_backend("cuda", /*deterministic=*/false, "attention");
  }
  emu::set_schedule_seed(saved);
}
#else
TEST_CASE("backend ops: cuda against cpu-f64", "[gpu]") {
  check_backend("cuda");
  check_backend("cuda-f32");
  check_backend("cuda", /*deterministic=*/false, "attention");
}
#endif
#endif
