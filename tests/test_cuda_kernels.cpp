// The CUDA kernels of kernels/ other than attention, on the CUDA execution harness, against the CPU
// reference ops of src/cpu/ run in fp32 on the same inputs (bf16 inputs are drawn as bf16 values, so the
// reference sees exactly what the kernel sees). Every launcher runs for T = float and bf16 over small and
// odd shapes, under two schedule seeds of the harness (a missing barrier changes results), twice where it
// reduces (the same bits both times), with non-zero initial values where an output accumulates.
//
// Tolerances (tests/cuda_test_util.h): outputs of type T at cuda_tolerance<T>(). Outputs in fp32 (rstd,
// dw, ds, dwte, optimizer state, losses) are at kTolCudaF32 whatever T is: their inputs are the reference's
// own values, so what is left is fp32 arithmetic and summation order, never a bf16 rounding.
#include <catch2/catch.hpp>

#include "cuda_test_util.h"
#include "runtime.h"

#include "adamw.cuh"
#include "cross_entropy.cuh"
#include "elementwise.cuh"
#include "embedding.cuh"
#include "rmsnorm.cuh"
#include "rope.cuh"
#include "ssmax.cuh"
#include "glu.cuh"

#include "cpu/adamw.h"
#include "cpu/embedding.h"
#include "cpu/lm_head.h"
#include "cpu/rmsnorm.h"
#include "cpu/rope.h"
#include "cpu/ssmax.h"
#include "cpu/glu.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <utility>
#include <vector>

namespace {

using bf16 = __nv_bfloat16;
using sp::test::cuda_tolerance;
using sp::test::DeviceArray;
using sp::test::kTolCudaF32;
using sp::test::randn_as;
using sp::test::rel_err;
using sp::test::round_bf16;
using Vec = std::vector<float>;

constexpr cudaStream_t kStream = nullptr;
const uint64_t kScheduleSeeds[] = {1, 7};

// Runs body once under each schedule seed, restoring the harness's seed afterwards.
template <class Body>
void for_each_schedule(Body body) {
  const uint64_t saved = emu::schedule_seed();
  for (uint64_t seed : kScheduleSeeds) {
    emu::set_schedule_seed(seed);
    INFO("schedule seed " << seed);
    body();
  }
  emu::set_schedule_seed(saved);
}

void check_close(const char* what, const Vec& got, const Vec& ref, double tol) {
  const double err = rel_err(got, ref);
  INFO(what << ": relative error " << err << ", tolerance " << tol);
  CHECK(err <= tol);
}

bool same_bits(const Vec& a, const Vec& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Runs a backward twice; run() returns its activation gradient (T) and parameter gradient (fp32). Both are
// checked against the reference, and must come out with the same bits each time.
template <class T, class Run>
void check_backward(Run run, const char* act, const Vec& act_ref, const char* param, const Vec& param_ref) {
  const auto [a, p] = run();
  check_close(act, a, act_ref, cuda_tolerance<T>());
  check_close(param, p, param_ref, kTolCudaF32);
  const auto [a2, p2] = run();
  CHECK(same_bits(a, a2));
  CHECK(same_bits(p, p2));
}

// Device scratch of at least `bytes` bytes.
struct Scratch {
  DeviceArray<double> a;
  explicit Scratch(size_t bytes) : a((bytes + sizeof(double) - 1) / sizeof(double)) {}
  void* p() const { return a.p; }
};

// Token ids or targets on the device.
struct DeviceInts {
  DeviceArray<int32_t> a;
  explicit DeviceInts(const std::vector<int32_t>& host) : a(host.size()) {
    cudaMemcpy(a.p, host.data(), host.size() * sizeof(int32_t), cudaMemcpyHostToDevice);
  }
};

double device_double(const double* p) {
  double x = 0;
  cudaMemcpy(&x, p, sizeof(double), cudaMemcpyDeviceToHost);
  return x;
}

}  // namespace

TEST_CASE("cuda kernels: convert rounds fp32 to bf16 to nearest even and copies the same type", "[cuda]") {
  std::mt19937_64 rng(1);
  for (size_t n : {1, 7, 1000, 4099}) {
    INFO("n " << n);
    Vec x = randn_as<float>(n, rng, 10.0);
    // ties between two bf16 values, which go to the even one: 1 + 2^-8 -> 1, 1 + 3 * 2^-8 -> 1 + 2^-6
    const Vec ties = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -(1.0f + 0x1p-8f)};
    const Vec tie_values = {1.0f, 1.0f + 0x1p-6f, -1.0f};
    std::copy(ties.begin(), ties.begin() + std::min(n, ties.size()), x.begin());
    DeviceArray<float> xf(x), back(n), copy(n);
    DeviceArray<bf16> xb(n), copy_b(n);
    sp::cuda::convert_cuda(xb.p, xf.p, n, kStream);
    const Vec rounded = xb.host();
    for (size_t i = 0; i < n; ++i) REQUIRE(rounded[i] == round_bf16(x[i]));
    for (size_t i = 0; i < std::min(n, ties.size()); ++i) REQUIRE(rounded[i] == tie_values[i]);
    sp::cuda::convert_cuda(back.p, xb.p, n, kStream);
    REQUIRE(same_bits(back.host(), rounded));
    sp::cuda::convert_cuda(copy.p, xf.p, n, kStream);
    REQUIRE(same_bits(copy.host(), x));
    sp::cuda::convert_cuda(copy_b.p, xb.p, n, kStream);
    REQUIRE(same_bits(copy_b.host(), rounded));
  }
}

TEMPLATE_TEST_CASE("cuda kernels: accumulate in fp32, rounded once", "[cuda]", float, bf16) {
  using T = TestType;
  std::mt19937_64 rng(2);
  for (size_t n : {1, 7, 1000, 4099}) {
    INFO("n " << n);
    const Vec a = randn_as<T>(n, rng), b = randn_as<T>(n, rng);
    Vec sum(n);
    for (size_t i = 0; i < n; ++i) sum[i] = sp::test::to_float(sp::test::from_float<T>(a[i] + b[i]));
    DeviceArray<T> da(a), db(b);
    sp::cuda::accumulate_cuda(da.p, db.p, n, kStream);  // a += b
    REQUIRE(same_bits(da.host(), sum));
  }
}

TEMPLATE_TEST_CASE("cuda kernels: embedding forward, and backward accumulating into dwte in row order", "[cuda]",
                   float, bf16) {
  using T = TestType;
  std::mt19937_64 rng(3);
  for_each_schedule([&] {
    for (size_t N : {1, 7, 33, 300})  // 300: the backward's scan of the tokens takes two steps
      for (size_t C : {64, 96, 130})
        for (size_t V : {5, 50}) {  // 5: most tokens repeat
          INFO("N " << N << " C " << C << " V " << V);
          std::vector<int32_t> tokens(N);
          std::uniform_int_distribution<int32_t> pick(0, int32_t(V) - 1);
          for (auto& t : tokens) t = pick(rng);
          const Vec wte = randn_as<T>(V * C, rng), dout = randn_as<T>(N * C, rng);
          const Vec dwte0 = randn_as<float>(V * C, rng);
          const DeviceInts d_tokens(tokens);

          Vec out_ref(N * C);
          sp::embedding_forward(out_ref.data(), tokens.data(), wte.data(), N, C);
          DeviceArray<T> d_wte(wte), out(N * C);
          sp::cuda::embedding_forward_cuda(out.p, d_tokens.a.p, d_wte.p, N, C, kStream);
          REQUIRE(same_bits(out.host(), out_ref));  // a gather copies

          Vec dwte_ref = dwte0;
          sp::embedding_backward(dwte_ref.data(), dout.data(), tokens.data(), N, C);
          const DeviceArray<T> d_dout(dout);
          auto backward = [&] {
            DeviceArray<float> dwte(dwte0);
            sp::cuda::embedding_backward_cuda(dwte.p, d_dout.p, d_tokens.a.p, N, C, kStream);
            return dwte.host();
          };
          const Vec first = backward();
          check_close("dwte", first, dwte_ref, kTolCudaF32);
          CHECK(same_bits(first, backward()));
        }
  });
}

TEMPLATE_TEST_CASE("cuda kernels: rmsnorm forward, and backward accumulating into dx and dw", "[cuda]", float,
                   bf16) {
  using T = TestType;
  constexpr double kEps = 1e-5;
  std::mt19937_64 rng(4);
  for_each_schedule([&] {
    for (size_t N : {1, 7, 33, 600})  // 600: more rows than dw parts, two rows a part
      for (size_t C : {64, 96, 130}) {
        INFO("N " << N << " C " << C);
        const Vec x = randn_as<T>(N * C, rng), w = randn_as<T>(C, rng), dout = randn_as<T>(N * C, rng);
        const Vec dx0 = randn_as<T>(N * C, rng), dw0 = randn_as<float>(C, rng);
        Vec out_ref(N * C), rstd_ref(N);
        sp::rmsnorm_forward(out_ref.data(), rstd_ref.data(), x.data(), w.data(), N, C, kEps);
        DeviceArray<T> d_x(x), d_w(w), d_dout(dout), out(N * C);
        DeviceArray<float> rstd(N);
        sp::cuda::rmsnorm_forward_cuda(out.p, rstd.p, d_x.p, d_w.p, N, C, kEps, kStream);
        check_close("out", out.host(), out_ref, cuda_tolerance<T>());
        check_close("rstd", rstd.host(), rstd_ref, kTolCudaF32);

        Vec dx_ref = dx0, dw_ref = dw0;
        sp::rmsnorm_backward(dx_ref.data(), dw_ref.data(), dout.data(), x.data(), w.data(), rstd_ref.data(), N, C);
        const DeviceArray<float> d_rstd(rstd_ref);  // the reference's rstd, so both backwards start alike
        const Scratch scratch(sp::cuda::rmsnorm_backward_scratch_bytes(N, C));
        auto backward = [&] {
          DeviceArray<T> dx(dx0);
          DeviceArray<float> dw(dw0);
          sp::cuda::rmsnorm_backward_cuda(dx.p, dw.p, d_dout.p, d_x.p, d_w.p, d_rstd.p, N, C, scratch.p(), kStream);
          return std::pair{dx.host(), dw.host()};
        };
        check_backward<T>(backward, "dx", dx_ref, "dw", dw_ref);
      }
  });
}

TEMPLATE_TEST_CASE("cuda kernels: rope forward and backward, from position 0 and from pos0", "[cuda]", float,
                   bf16) {
  using T = TestType;
  constexpr double kTheta = 10000;
  std::mt19937_64 rng(5);
  for_each_schedule([&] {
    for (size_t B : {1, 2})
      for (size_t Tn : {1, 7, 33})
        for (size_t Hx : {1, 3})
          for (size_t D : {64, 130})
            for (size_t pos0 : {0, 5, 100000}) {  // 100000: angles far beyond 2 pi keep their accuracy
              INFO("B " << B << " T " << Tn << " Hx " << Hx << " D " << D << " pos0 " << pos0);
              const size_t seq = Tn * Hx * D, n = B * seq;
              const Vec x = randn_as<T>(n, rng);
              Vec ref = x;  // each sequence's rows at positions pos0..
              sp::rope_forward(ref.data(), B, Tn, Hx, D, kTheta, pos0);
              DeviceArray<T> dx(x);
              sp::cuda::rope_forward_cuda(dx.p, B, Tn, Hx, D, kTheta, pos0, kStream);
              const Vec rotated = dx.host();
              check_close("forward", rotated, ref, cuda_tolerance<T>());

              // the backward rotates back: against the reference's backward at position 0, and as the
              // inverse of the forward at every pos0 (two roundings to T: still within the tolerance)
              sp::cuda::rope_backward_cuda(dx.p, B, Tn, Hx, D, kTheta, pos0, kStream);
              check_close("backward of forward", dx.host(), x, cuda_tolerance<T>());
              if (pos0 == 0) {
                Vec back_ref = x;
                sp::rope_backward(back_ref.data(), B, Tn, Hx, D, kTheta);
                DeviceArray<T> g(x);
                sp::cuda::rope_backward_cuda(g.p, B, Tn, Hx, D, kTheta, 0, kStream);
                check_close("backward", g.host(), back_ref, cuda_tolerance<T>());
              }
            }
  });
}

TEMPLATE_TEST_CASE("cuda kernels: ssmax forward from pos0, and backward overwriting dq_in, accumulating ds",
                   "[cuda]", float, bf16) {
  using T = TestType;
  std::mt19937_64 rng(6);
  struct Shape {
    size_t B, T, H, D;
  };
  std::vector<Shape> shapes;
  for (size_t B : {1, 2})
    for (size_t Tn : {1, 7, 33})
      for (size_t H : {1, 3, 12})  // 12: lanes 0 and 1 of a warp each own a head's ds
        for (size_t D : {64, 96}) shapes.push_back({B, Tn, H, D});
  shapes.push_back({2, 300, 2, 32});  // 600 positions: more than the ds parts, two positions a part
  for_each_schedule([&] {
    for (const Shape& sh : shapes) {
      const size_t B = sh.B, Tn = sh.T, H = sh.H, D = sh.D, seq = Tn * H * D, n = B * seq;
      INFO("B " << B << " T " << Tn << " H " << H << " D " << D);
      const Vec q = randn_as<T>(n, rng), s = randn_as<T>(H, rng), dq_out = randn_as<T>(n, rng);
      const Vec ds0 = randn_as<float>(H, rng), garbage = randn_as<T>(n, rng, 1e3);
      DeviceArray<T> d_q(q), d_s(s), d_dq_out(dq_out), out(n);
      for (size_t pos0 : {0, 9}) {
        INFO("pos0 " << pos0);
        Vec ref(n);
        sp::ssmax_forward(ref.data(), q.data(), s.data(), B, Tn, H, D, pos0);
        sp::cuda::ssmax_forward_cuda(out.p, d_q.p, d_s.p, B, Tn, H, D, pos0, kStream);
        const Vec scaled = out.host();
        check_close("q_out", scaled, ref, cuda_tolerance<T>());
        DeviceArray<T> in_place(q);
        sp::cuda::ssmax_forward_cuda(in_place.p, in_place.p, d_s.p, B, Tn, H, D, pos0, kStream);
        CHECK(same_bits(in_place.host(), scaled));
      }

      Vec dq_ref(n), ds_ref = ds0;
      sp::ssmax_backward(dq_ref.data(), ds_ref.data(), dq_out.data(), q.data(), s.data(), B, Tn, H, D);
      const Scratch scratch(sp::cuda::ssmax_backward_scratch_bytes(B, Tn, H));
      auto backward = [&] {
        DeviceArray<T> dq_in(garbage);  // overwritten
        DeviceArray<float> ds(ds0);
        sp::cuda::ssmax_backward_cuda(dq_in.p, ds.p, d_dq_out.p, d_q.p, d_s.p, B, Tn, H, D, scratch.p(), kStream);
        return std::pair{dq_in.host(), ds.host()};
      };
      check_backward<T>(backward, "dq_in", dq_ref, "ds", ds_ref);
    }
  });
}

TEMPLATE_TEST_CASE("cuda kernels: glu forward, and backward overwriting dgate and dup", "[cuda]", float, bf16) {
  using T = TestType;
  std::mt19937_64 rng(7);
  for (sp::Glu act : {sp::Glu::Swish, sp::Glu::Sigmoid})
  for (size_t n : {1, 7, 1000, 4099}) {
    INFO((act == sp::Glu::Swish ? "swish" : "sigmoid") << ", n " << n);
    Vec gate = randn_as<T>(n, rng, 3.0);
    const Vec extremes = {-100.0f, 100.0f, -30.0f, 30.0f};  // sigmoid's two saturated ends
    std::copy(extremes.begin(), extremes.begin() + std::min(n, extremes.size()), gate.begin());
    const Vec up = randn_as<T>(n, rng), dout = randn_as<T>(n, rng), garbage = randn_as<T>(n, rng, 1e3);
    Vec out_ref(n), dgate_ref(n), dup_ref(n);
    sp::glu_forward(out_ref.data(), gate.data(), up.data(), n, act);
    sp::glu_backward(dgate_ref.data(), dup_ref.data(), dout.data(), gate.data(), up.data(), n, act);
    DeviceArray<T> d_gate(gate), d_up(up), d_dout(dout), out(n), dgate(garbage), dup(garbage);
    sp::cuda::glu_forward_cuda(out.p, d_gate.p, d_up.p, n, act, kStream);
    check_close("out", out.host(), out_ref, cuda_tolerance<T>());
    sp::cuda::glu_backward_cuda(dgate.p, dup.p, d_dout.p, d_gate.p, d_up.p, n, act, kStream);
    check_close("dgate", dgate.host(), dgate_ref, cuda_tolerance<T>());
    check_close("dup", dup.host(), dup_ref, cuda_tolerance<T>());
  }
}

TEMPLATE_TEST_CASE("cuda kernels: adamw follows the CPU update over steps, weights are the rounded master",
                   "[cuda]", float, bf16) {
  using W = TestType;
  std::mt19937_64 rng(8);
  for (size_t n : {1, 7, 1000}) {
    INFO("n " << n);
    Vec master_ref = randn_as<float>(n, rng), m_ref(n, 0.0f), v_ref(n, 0.0f);
    DeviceArray<float> master(master_ref), m(m_ref), v(v_ref), plain(master_ref), plain_m(m_ref), plain_v(v_ref);
    DeviceArray<W> weights(n);
    for (int64_t step = 1; step <= 3; ++step) {
      INFO("step " << step);
      const sp::AdamWArgs args{1e-2, 0.9, 0.95, 1e-8, 0.1, step, step == 2 ? 0.5 : 1.0};  // clipped at step 2
      const Vec grad = randn_as<float>(n, rng);
      sp::adamw_update(master_ref.data(), grad.data(), m_ref.data(), v_ref.data(), n, args);
      const DeviceArray<float> d_grad(grad);
      const sp::cuda::AdamWStep a = sp::cuda::adamw_step(args);
      sp::cuda::adamw_cuda(master.p, weights.p, d_grad.p, m.p, v.p, n, a, kStream);
      const Vec got = master.host();
      check_close("master", got, master_ref, kTolCudaF32);
      check_close("m", m.host(), m_ref, kTolCudaF32);
      check_close("v", v.host(), v_ref, kTolCudaF32);
      const Vec w = weights.host();
      for (size_t i = 0; i < n; ++i) REQUIRE(w[i] == sp::test::to_float(sp::test::from_float<W>(got[i])));
      // without a working copy: the same master, m and v
      sp::cuda::adamw_cuda<W>(plain.p, nullptr, d_grad.p, plain_m.p, plain_v.p, n, a, kStream);
      REQUIRE(same_bits(plain.host(), got));
      REQUIRE(same_bits(plain_v.host(), v.host()));
    }
  }
}

TEST_CASE("cuda kernels: sum_squares and sum accumulate in fp64 in a fixed order", "[cuda]") {
  std::mt19937_64 rng(9);
  for_each_schedule([&] {
    for (size_t n : {0, 1, 7, 1000, 70000}) {  // 70000: several blocks of partial sums
      INFO("n " << n);
      const Vec x = randn_as<float>(n, rng);
      double sum_ref = 0;
      for (float xi : x) sum_ref += xi;
      const double squares_ref = sp::sum_squares(x.data(), n);
      const DeviceArray<float> d_x(x);
      DeviceArray<double> out(2);
      const Scratch scratch(sp::cuda::sum_squares_scratch_bytes(n));
      double first[2] = {};
      for (int run = 0; run < 2; ++run) {
        cudaMemset(out.p, 0, 2 * sizeof(double));  // the sums accumulate into out
        sp::cuda::sum_squares_cuda(out.p, d_x.p, n, scratch.p(), kStream);
        sp::cuda::sum_cuda(out.p + 1, d_x.p, n, scratch.p(), kStream);
        const double squares = device_double(out.p), sum = device_double(out.p + 1);
        CHECK(std::abs(squares - squares_ref) <= kTolCudaF32 * squares_ref);
        CHECK(std::abs(sum - sum_ref) <= kTolCudaF32 * std::abs(sum_ref) + 1e-12);
        if (run == 0) {
          first[0] = squares;
          first[1] = sum;
        } else {
          CHECK(std::memcmp(&first[0], &squares, sizeof(double)) == 0);
          CHECK(std::memcmp(&first[1], &sum, sizeof(double)) == 0);
        }
      }
    }
  });
}

TEST_CASE("cuda kernels: cross_entropy loss and dlogits, ignored rows, as the CPU LM head", "[cuda]") {
  std::mt19937_64 rng(10);
  for_each_schedule([&] {
    for (size_t rows : {1, 7, 33})
      for (size_t V : {1000, 1031}) {
        INFO("rows " << rows << " V " << V);
        Vec logits = randn_as<float>(rows * V, rng, 3.0);
        for (size_t v = 0; v < V; ++v) logits[v] += 1000.0f;  // row 0: a large offset logsumexp must absorb
        std::vector<int32_t> targets(rows);
        std::uniform_int_distribution<int32_t> pick(0, int32_t(V) - 1);
        for (size_t r = 0; r < rows; ++r) targets[r] = r % 3 == 2 ? -1 : pick(rng);  // every third ignored
        constexpr float kGradScale = 0.37f;

        // The CPU LM head with C = V and w = I has logits = x and dx = dlogits, exactly (products with 0
        // and 1); one call per row gives each row's loss.
        Vec identity(V * V, 0.0f), dw(V * V), lm_scratch(sp::kLmHeadChunk * V);
        for (size_t v = 0; v < V; ++v) identity[v * V + v] = 1.0f;
        Vec loss_ref(rows), valid_ref(rows), dlogits_ref(rows * V);
        double total_ref = 0;
        for (size_t r = 0; r < rows; ++r) {
          const sp::LossSum ls = sp::lm_head_cross_entropy(logits.data() + r * V, identity.data(), &targets[r],
                                                           1, V, V, lm_scratch.data(), dlogits_ref.data() + r * V,
                                                           dw.data(), double(kGradScale));
          loss_ref[r] = float(ls.sum);
          valid_ref[r] = float(ls.count);
          total_ref += ls.sum;
        }

        const DeviceInts d_targets(targets);
        DeviceArray<float> row_loss(rows), row_valid(rows);
        for (bool with_grad : {false, true}) {
          INFO("with_grad " << with_grad);
          DeviceArray<float> d(logits);
          sp::cuda::cross_entropy_cuda(d.p, row_loss.p, row_valid.p, d_targets.a.p, rows, V, kGradScale, with_grad,
                                       kStream);
          const Vec loss = row_loss.host(), out = d.host();
          check_close("row_loss", loss, loss_ref, kTolCudaF32);
          REQUIRE(same_bits(row_valid.host(), valid_ref));
          if (!with_grad) {
            REQUIRE(same_bits(out, logits));
            continue;
          }
          check_close("dlogits", out, dlogits_ref, kTolCudaF32);
          for (size_t r = 0; r < rows; ++r)
            if (targets[r] < 0)
              for (size_t v = 0; v < V; ++v) REQUIRE(out[r * V + v] == 0.0f);
          DeviceArray<float> again(logits);
          sp::cuda::cross_entropy_cuda(again.p, row_loss.p, row_valid.p, d_targets.a.p, rows, V, kGradScale, true,
                                       kStream);
          CHECK(same_bits(again.host(), out));
          CHECK(same_bits(row_loss.host(), loss));

          // the per-row losses add up on the device
          DeviceArray<double> total(1);
          const double start = 0.5;  // sum_cuda adds to what is there
          cudaMemcpy(total.p, &start, sizeof start, cudaMemcpyHostToDevice);
          const Scratch scratch(sp::cuda::sum_squares_scratch_bytes(rows));
          sp::cuda::sum_cuda(total.p, row_loss.p, rows, scratch.p(), kStream);
          CHECK(std::abs(device_double(total.p) - start - total_ref) <= kTolCudaF32 * total_ref);
        }
      }
  });
}
