// The CUDA attention kernels (kernels/attention.cu; the bf16 forward is the tensor-core kernel of
// kernels/attention_mma.cu) against the CPU flash reference (src/cpu/attention.h)
// run on the same inputs (bf16 inputs are rounded first): every normaliser, float and bf16, head dims 64
// and 128 (and 32), multi-head, grouped and multi-query attention, lengths with masked tails, decoding rows
// (Tq < Tk), rows that output zero, scores far below -88 before positive ones, the determinism of the
// backward pass under several fiber schedules of the harness, and the bf16 backward's atomic-dq mode.
//
// Each problem is a full causal sequence of Tk rows on the CPU; the kernels get its last Tq query rows
// (all of them in training). dout is zero on the rows before those, so the CPU's dk and dv are exactly the
// gradients of the rows the kernels see. The kernels' backward pass gets the CPU's out (as T) and lse, the
// same numbers the CPU backward uses, so each pass is judged on its own rounding.
#include <catch2/catch.hpp>

#include "attention.cuh"
#include "attention_decode.cuh"
#include "cpu/attention.h"
#include "cuda_test_util.h"
#include "runtime.h"  // emu::set_schedule_seed: the harness schedules fibers from a seed

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <type_traits>
#include <vector>

namespace {

using sp::AttentionShape;
using sp::Normaliser;
using sp::cuda::AttentionArgs;
using namespace sp::test;

struct Problem {
  AttentionArgs a;
  std::vector<float> q, dout;  // (B, Tk, H, D); dout is zero on the rows before the last Tq
  std::vector<float> k, v;     // (B, Tk, Hkv, D)
  std::vector<float> sinks;    // (H) sink logits, used for Normaliser::Sink
};

bool learned_sinks(const AttentionArgs& a) { return a.norm == Normaliser::Sink; }

AttentionArgs args(Normaliser norm, int64_t B, int64_t Tq, int64_t Tk, int64_t H, int64_t Hkv, int64_t D) {
  return {B, Tq, Tk, H, Hkv, D, Tk - Tq, norm, 1e-6f};
}

size_t q_size(const AttentionArgs& a) { return size_t(a.B * a.Tk * a.H * a.D); }
size_t k_size(const AttentionArgs& a) { return size_t(a.B * a.Tk * a.Hkv * a.D); }

void zero_rows_before_last(const AttentionArgs& a, std::vector<float>& dout) {
  for (int64_t b = 0; b < a.B; ++b)
    for (int64_t t = 0; t < a.q_offset; ++t)
      std::fill_n(dout.begin() + (b * a.Tk + t) * a.H * a.D, a.H * a.D, 0.0f);
}

template <class T>
Problem random_problem(const AttentionArgs& a, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Problem p{a, randn_as<T>(q_size(a), rng), randn_as<T>(q_size(a), rng), randn_as<T>(k_size(a), rng),
            randn_as<T>(k_size(a), rng), randn_as<T>(size_t(a.H), rng)};
  zero_rows_before_last(a, p.dout);
  return p;
}

// The last n of every group of `rows` rows of width w: (G, rows, w) -> (G, n, w).
std::vector<float> last_rows(const std::vector<float>& x, int64_t groups, int64_t rows, int64_t n, int64_t w) {
  std::vector<float> y(size_t(groups * n * w));
  for (int64_t g = 0; g < groups; ++g)
    std::copy_n(x.begin() + (g * rows + rows - n) * w, n * w, y.begin() + g * n * w);
  return y;
}

struct Outputs {
  std::vector<float> out, lse, dq;  // out, dq (B, Tq, H, D); lse (B, H, Tq)
  std::vector<float> dk, dv;        // (B, Tk, Hkv, D)
  std::vector<float> dsinks;        // (H): learned sinks, training rows (Tq == Tk) only
};

// The CPU's results for the kernels' rows, and what the kernels' backward pass gets from it: out (as T)
// and lse, last Tq rows.
struct Reference {
  Outputs want;
  std::vector<float> out_saved, lse_saved;
};

template <class T>
Reference cpu_reference(const Problem& p) {
  const AttentionArgs& a = p.a;
  const AttentionShape s{a.B, a.Tk, a.H, a.Hkv, a.D, a.norm, a.softpick_eps};
  std::vector<float> out(q_size(a)), lse(size_t(a.B * a.H * a.Tk)), dq(q_size(a)), dk(k_size(a)), dv(k_size(a));
  const float* sinks = learned_sinks(a) ? p.sinks.data() : nullptr;
  sp::attention_forward<float>(s, p.q.data(), p.k.data(), p.v.data(), sinks, out.data(), lse.data());
  std::vector<float> saved = out;
  for (float& x : saved) x = to_float(from_float<T>(x));
  sp::attention_backward<float>(s, p.q.data(), p.k.data(), p.v.data(), saved.data(), p.dout.data(), lse.data(),
                                dq.data(), dk.data(), dv.data());
  const int64_t width = a.H * a.D;
  Reference r;
  r.want = {last_rows(out, a.B, a.Tk, a.Tq, width), last_rows(lse, a.B * a.H, a.Tk, a.Tq, 1),
            last_rows(dq, a.B, a.Tk, a.Tq, width), dk, dv, {}};
  if (learned_sinks(a) && a.Tq == a.Tk) {
    r.want.dsinks.assign(size_t(a.H), 0.0f);
    sp::attention_sink_backward<float>(s, saved.data(), p.dout.data(), lse.data(), sinks, r.want.dsinks.data());
  }
  r.out_saved = last_rows(saved, a.B, a.Tk, a.Tq, width);
  r.lse_saved = last_rows(lse, a.B * a.H, a.Tk, a.Tq, 1);
  return r;
}

template <class T>
Outputs run_cuda(const Problem& p, const Reference& ref) {
  const AttentionArgs& a = p.a;
  const int64_t width = a.H * a.D;
  DeviceArray<T> q(last_rows(p.q, a.B, a.Tk, a.Tq, width)), k(p.k), v(p.v);
  DeviceArray<T> dout(last_rows(p.dout, a.B, a.Tk, a.Tq, width)), saved_out(ref.out_saved);
  DeviceArray<float> saved_lse(ref.lse_saved);
  DeviceArray<T> out(q.n), dq(q.n), dk(k.n), dv(k.n);
  DeviceArray<float> lse(size_t(a.B * a.H * a.Tq));
  DeviceArray<float> scratch(sp::cuda::attention_backward_scratch_bytes(a) / sizeof(float));
  DeviceArray<T> sinks(p.sinks);
  const T* sk = learned_sinks(a) ? sinks.p : nullptr;
  sp::cuda::attention_forward_cuda<T>(a, q.p, k.p, v.p, sk, out.p, lse.p, nullptr);
  sp::cuda::attention_backward_cuda<T>(a, q.p, k.p, v.p, saved_out.p, dout.p, saved_lse.p, dq.p, dk.p, dv.p,
                                       scratch.p, nullptr);
  Outputs got{out.host(), lse.host(), dq.host(), dk.host(), dv.host(), {}};
  if (learned_sinks(a) && a.Tq == a.Tk) {
    DeviceArray<float> dsinks(std::vector<float>(size_t(a.H), 0.0f));
    DeviceArray<float> sink_scratch(sp::cuda::attention_sink_backward_scratch_bytes(a) / sizeof(float) + 1);
    sp::cuda::attention_sink_backward_cuda<T>(a, saved_out.p, dout.p, saved_lse.p, sk, dsinks.p, sink_scratch.p,
                                              nullptr);
    got.dsinks = dsinks.host();
  }
  return got;
}

double max_abs(const std::vector<float>& x) {
  double m = 0;
  for (float e : x) m = std::max(m, double(std::abs(e)));
  return m;
}

// lse is fp32 from fp32 arithmetic on the same inputs whatever T is, so it is held to the fp32 tolerance.
// With a single key (Tk = 1) and no sink, dq and dk come from dp - delta, two O(1) numbers that cancel: the
// gradient is exactly 0 for softmax and rectified (both sides return rounding noise, checked to be 0 on the
// scale 1 of the inputs), and O(eps) with few correct digits in fp32 for softpick (docs/attention.md §3.4,
// end), where two implementations cannot be compared digit by digit.
// The gradients of the bf16 path come from the tensor-core backward, whose P and dS are bf16 mma operands:
// they are held to kTolCudaBF16Operands (tests/cuda_test_util.h).
template <class T>
void check_against_reference(const AttentionArgs& a, const Outputs& got, const Outputs& want) {
  const double grad_tol = std::is_same_v<T, float> ? kTolCudaF32 : kTolCudaBF16Operands;
  CHECK(rel_err(got.out, want.out) <= cuda_tolerance<T>());
  CHECK(rel_err(got.lse, want.lse) <= kTolCudaF32);
  if (a.Tk > 1 || sp::has_sink(a.norm)) {  // with a sink, a lone key's weight e^x / (e^s + e^x) moves with x
    CHECK(rel_err(got.dq, want.dq) <= grad_tol);
    CHECK(rel_err(got.dk, want.dk) <= grad_tol);
  } else if (a.norm != Normaliser::Softpick) {
    CHECK(max_abs(got.dq) <= grad_tol);
    CHECK(max_abs(got.dk) <= grad_tol);
  }
  CHECK(rel_err(got.dv, want.dv) <= grad_tol);
  REQUIRE(got.dsinks.size() == want.dsinks.size());
  if (!want.dsinks.empty()) CHECK(rel_err(got.dsinks, want.dsinks) <= kTolCudaF32);
}

template <class T>
Outputs check_problem(const Problem& p) {
  const Reference ref = cpu_reference<T>(p);
  Outputs got = run_cuda<T>(p, ref);
  check_against_reference<T>(p.a, got, ref.want);
  return got;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

struct SeedGuard {
  uint64_t saved = emu::schedule_seed();
  ~SeedGuard() { emu::set_schedule_seed(saved); }
};

}  // namespace

TEMPLATE_TEST_CASE("cuda attention matches the CPU reference: normalisers, head dims, GQA, masked tails", "[cuda]",
                   float, __nv_bfloat16) {
  struct Heads {
    int64_t H, Hkv;
  };
  uint64_t seed = 1;
  for (Normaliser norm : sp::kNormalisers)
    for (int64_t D : {64, 128})
      for (Heads g : {Heads{4, 4}, Heads{4, 2}, Heads{4, 1}})
        for (int64_t T : {1, 17, 67}) {
          const int64_t B = T == 67 ? 1 : 2;
          INFO(sp::normaliser_name(norm) << " D=" << D << " H=" << g.H << " Hkv=" << g.Hkv << " T=" << T << " B=" << B);
          check_problem<TestType>(random_problem<TestType>(args(norm, B, T, T, g.H, g.Hkv, D), seed++));
        }
  for (Normaliser norm : sp::kNormalisers) {
    INFO(sp::normaliser_name(norm) << " D=32");
    check_problem<TestType>(random_problem<TestType>(args(norm, 2, 40, 40, 4, 2, 32), seed++));
  }
}

TEMPLATE_TEST_CASE("cuda attention on decoding rows: the last Tq of Tk rows, q_offset = Tk - Tq", "[cuda]", float,
                   __nv_bfloat16) {
  struct Rows {
    int64_t Tq, Tk;
  };
  uint64_t seed = 100;
  for (Normaliser norm : sp::kNormalisers)
    for (int64_t D : {64, 128})
      for (Rows r : {Rows{1, 17}, Rows{1, 67}, Rows{5, 67}, Rows{33, 80}, Rows{70, 200}}) {
        INFO(sp::normaliser_name(norm) << " D=" << D << " Tq=" << r.Tq << " Tk=" << r.Tk);
        check_problem<TestType>(random_problem<TestType>(args(norm, 2, r.Tq, r.Tk, 4, 2, D), seed++));
      }
}

// Keys with positive entries and, on every third row, a query with negative ones: those rows have no
// score >= 0, so softpick and rectified output exact zeros there, lse = +inf, and the rows send nothing
// to dq, dk or dv (docs/attention.md §3.4, §4).
TEMPLATE_TEST_CASE("cuda attention: rows without a positive score output zero, lse = +inf, zero gradients",
                   "[cuda]", float, __nv_bfloat16) {
  for (Normaliser norm : {Normaliser::Softpick, Normaliser::Rectified})
    for (int64_t D : {64, 128}) {
      INFO(sp::normaliser_name(norm) << " D=" << D);
      const AttentionArgs a = args(norm, 2, 67, 67, 4, 2, D);
      Problem p = random_problem<TestType>(a, 7);
      for (float& x : p.k) x = std::abs(x);
      auto empty = [&](int64_t t) { return t % 3 == 0; };
      for (int64_t b = 0; b < a.B; ++b)
        for (int64_t t = 0; t < a.Tk; ++t)
          if (empty(t))
            for (int64_t e = 0; e < a.H * a.D; ++e) {
              float& x = p.q[size_t((b * a.Tk + t) * a.H * a.D + e)];
              x = -std::abs(x);
            }
      const Outputs got = check_problem<TestType>(p);

      size_t empty_rows = 0;
      for (int64_t b = 0; b < a.B; ++b)
        for (int64_t h = 0; h < a.H; ++h)
          for (int64_t t = 0; t < a.Tq; ++t) {
            if (!empty(t)) continue;
            ++empty_rows;
            REQUIRE(got.lse[size_t((b * a.H + h) * a.Tq + t)] == INFINITY);
            for (int64_t d = 0; d < a.D; ++d) {
              const size_t at = size_t(((b * a.Tq + t) * a.H + h) * a.D + d);
              REQUIRE(got.out[at] == 0.0f);
              REQUIRE(got.dq[at] == 0.0f);
            }
          }
      REQUIRE(empty_rows == size_t(a.B * a.H * 23));

      // Another dout on the empty rows leaves dk and dv exactly as they were.
      Problem other = p;
      std::mt19937_64 rng(8);
      const std::vector<float> noise = randn_as<TestType>(other.dout.size(), rng);
      for (size_t i = 0; i < other.dout.size(); ++i)
        if (empty(int64_t(i / size_t(a.H * a.D)) % a.Tk)) other.dout[i] = noise[i];
      const Outputs again = run_cuda<TestType>(other, cpu_reference<TestType>(other));
      REQUIRE(again.dk == got.dk);
      REQUIRE(again.dv == got.dv);
    }
}

// The first 64 keys (the first key tile of both kernels: 32 keys for fp32, 64 for the tensor-core bf16
// one) score -96 exactly for every query (q = 1, k = -12 at D = 64): the unfloored shift would overflow
// exp(-m) there, and the later keys bring positive scores (docs/attention.md §3.3).
TEMPLATE_TEST_CASE("cuda attention: scores far below -88 on the first key tile, positive ones after it", "[cuda]",
                   float, __nv_bfloat16) {
  for (Normaliser norm : sp::kNormalisers)
    for (int64_t D : {64, 128}) {
      INFO(sp::normaliser_name(norm) << " D=" << D);
      const AttentionArgs a = args(norm, 1, 67, 67, 4, 2, D);
      Problem p = random_problem<TestType>(a, 11);
      std::fill(p.q.begin(), p.q.end(), 1.0f);
      for (int64_t t = 0; t < 64; ++t)
        std::fill_n(p.k.begin() + t * a.Hkv * a.D, a.Hkv * a.D, -12.0f);
      const Outputs got = check_problem<TestType>(p);
      // row 0 sees only key 0: softpick and rectified abstain; with a sink the row keeps the sink's term
      if (norm == Normaliser::Softpick || norm == Normaliser::Rectified) REQUIRE(got.lse[0] == INFINITY);
      if (sp::has_sink(norm)) REQUIRE(std::isfinite(got.lse[0]));
    }
}

// The split-K decode kernel (attention_decode.cuh) on the last Tq rows of Tk, against the CPU: every
// normaliser, float and bf16, head dims 32, 64, 128, GQA, from one key (one split) to 1000 keys (8 splits of
// 125, the last ones partly masked for the earlier rows); same bits on a second run.
TEMPLATE_TEST_CASE("cuda decode attention (split-K) matches the CPU reference", "[cuda]", float, __nv_bfloat16) {
  struct Rows {
    int64_t Tq, Tk, Hkv, D;
  };
  REQUIRE(sp::cuda::attention_decode_applies(args(Normaliser::Softmax, 1, 1, 1000, 4, 2, 64)));
  REQUIRE(sp::cuda::attention_decode_splits(args(Normaliser::Softmax, 1, 1, 1000, 4, 2, 64)) == 8);
  REQUIRE(!sp::cuda::attention_decode_applies(args(Normaliser::Softmax, 1, 64, 1000, 4, 2, 64)));
  uint64_t seed = 500;
  for (Normaliser norm : sp::kNormalisers)
    for (Rows r : {Rows{1, 1, 2, 64}, Rows{1, 17, 1, 32}, Rows{2, 300, 2, 64}, Rows{1, 1000, 2, 128},
                   Rows{4, 1000, 4, 64}, Rows{3, 260, 1, 128}}) {
      INFO(sp::normaliser_name(norm) << " Tq=" << r.Tq << " Tk=" << r.Tk << " Hkv=" << r.Hkv << " D=" << r.D);
      const Problem p = random_problem<TestType>(args(norm, 2, r.Tq, r.Tk, 4, r.Hkv, r.D), seed++);
      const Reference ref = cpu_reference<TestType>(p);
      const AttentionArgs& a = p.a;
      DeviceArray<TestType> q(last_rows(p.q, a.B, a.Tk, a.Tq, a.H * a.D)), k(p.k), v(p.v), out(q.n);
      DeviceArray<TestType> sinks(p.sinks);
      const TestType* sk = learned_sinks(a) ? sinks.p : nullptr;
      DeviceArray<float> lse(size_t(a.B * a.H * a.Tq));
      DeviceArray<float> scratch(sp::cuda::attention_decode_scratch_bytes(a) / sizeof(float));
      sp::cuda::attention_decode_cuda<TestType>(a, q.p, k.p, v.p, sk, out.p, lse.p, scratch.p, nullptr);
      const std::vector<float> first = out.host(), first_lse = lse.host();
      CHECK(rel_err(first, ref.want.out) <= cuda_tolerance<TestType>());
      CHECK(rel_err(first_lse, ref.want.lse) <= kTolCudaF32);
      sp::cuda::attention_decode_cuda<TestType>(a, q.p, k.p, v.p, sk, out.p, lse.p, scratch.p, nullptr);
      CHECK(same_bits(out.host(), first));
      CHECK(same_bits(lse.host(), first_lse));
    }
}

// The atomic mode (one kernel per key block; dq added in fp32 with atomics) against the CPU at the same
// tolerance, and against the deterministic mode: dk and dv are computed the same way in both (same bits),
// dq differs only in the order of its fp32 sums.
TEST_CASE("cuda attention: the atomic-dq backward matches the CPU and the deterministic mode", "[cuda]") {
  using T = __nv_bfloat16;
  struct Shape {
    int64_t B, Tq, Tk, H, Hkv, D;
  };
  uint64_t seed = 300;
  for (Normaliser norm : sp::kNormalisers)
    for (Shape sh : {Shape{2, 17, 17, 4, 4, 64}, Shape{1, 150, 150, 4, 2, 64}, Shape{2, 67, 67, 4, 1, 128},
                     Shape{1, 70, 70, 4, 2, 128}, Shape{2, 40, 40, 4, 2, 32}, Shape{2, 33, 80, 4, 2, 64}}) {
      INFO(sp::normaliser_name(norm) << " B=" << sh.B << " Tq=" << sh.Tq << " Tk=" << sh.Tk << " H=" << sh.H << " Hkv=" << sh.Hkv
                      << " D=" << sh.D);
      Problem p = random_problem<T>(args(norm, sh.B, sh.Tq, sh.Tk, sh.H, sh.Hkv, sh.D), seed++);
      const Reference ref = cpu_reference<T>(p);
      const Outputs deterministic = run_cuda<T>(p, ref);
      p.a.atomic_dq = true;
      const Outputs atomic = run_cuda<T>(p, ref);
      check_against_reference<T>(p.a, atomic, ref.want);
      CHECK(same_bits(atomic.dk, deterministic.dk));
      CHECK(same_bits(atomic.dv, deterministic.dv));
      CHECK(rel_err(atomic.dq, deterministic.dq) <= kTolCudaBF16Operands);
    }
}

TEMPLATE_TEST_CASE("cuda attention is deterministic: same bits across runs and fiber schedules", "[cuda]", float,
                   __nv_bfloat16) {
  SeedGuard guard;
  for (Normaliser norm : sp::kNormalisers) {
    INFO(sp::normaliser_name(norm));
    const Problem p = random_problem<TestType>(args(norm, 2, 67, 67, 4, 2, 64), 21);
    const Reference ref = cpu_reference<TestType>(p);
    emu::set_schedule_seed(1);
    const Outputs first = run_cuda<TestType>(p, ref);
    check_against_reference<TestType>(p.a, first, ref.want);
    for (uint64_t seed : {1, 2, 3, 17, 12345}) {
      INFO("schedule seed " << seed);
      emu::set_schedule_seed(seed);
      const Outputs again = run_cuda<TestType>(p, ref);
      REQUIRE(same_bits(again.out, first.out));
      REQUIRE(same_bits(again.lse, first.lse));
      REQUIRE(same_bits(again.dq, first.dq));
      REQUIRE(same_bits(again.dk, first.dk));
      REQUIRE(same_bits(again.dv, first.dv));
    }
  }
}
