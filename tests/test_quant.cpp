// The weight quantizers (quant/quantizers.h), GPTQ (quant/gptq.h) and the activations' fake quantization
// (cpu/act_quant.h) by their properties and against naive formulas; tests/test_quant.py compares them with the hqq and bitsandbytes packages and runs
// `softpick quantize` end to end.
#include "checkpoint/safetensors.h"
#include "core/bf16.h"
#include "cpu/act_quant.h"
#include "core/rng.h"
#include "quant/gptq.h"
#include "quant/quantizers.h"
#include "test_util.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <set>

using namespace sp;
using namespace sp::quant;

namespace {

// Weights like a trained layer's: Gaussian with a few large entries.
std::vector<float> weights(int64_t rows, int64_t cols, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> w(size_t(rows * cols));
  for (auto& x : w) x = float(rng.normal() * 0.05);
  for (size_t i = 0; i < w.size(); i += 97) w[i] *= 6;
  return w;
}

// Inputs with correlated columns (a shared factor plus noise), x (n, cols).
std::vector<float> correlated_inputs(int64_t n, int64_t cols, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> x(size_t(n * cols));
  for (int64_t r = 0; r < n; ++r) {
    const double f1 = rng.normal(), f2 = rng.normal();
    for (int64_t c = 0; c < cols; ++c)
      x[size_t(r * cols + c)] = float(f1 * std::sin(0.3 * double(c)) + f2 * (c % 3 == 0) + 0.3 * rng.normal());
  }
  return x;
}

QuantizedMatrix quantize_with(Method m, std::span<const float> w, int64_t rows, int64_t cols, int bits, int64_t group) {
  switch (m) {
    case Method::Rtn: return quantize_rtn(w, rows, cols, bits, group);
    case Method::Hqq: return quantize_hqq(w, rows, cols, bits, group);
    case Method::Nf4: return quantize_codebook(w, rows, cols, Codebook::Nf4, group);
    case Method::Fp4: return quantize_codebook(w, rows, cols, Codebook::Fp4, group);
    case Method::Int8: return quantize_int8(w, rows, cols);
    case Method::Gptq: break;
  }
  FAIL("no weight-only form");
  return {};
}

// Every (method, bits) of the weight-only quantizers.
std::vector<std::pair<Method, int>> weight_only_cases() {
  std::vector<std::pair<Method, int>> out;
  for (Method m : {Method::Rtn, Method::Hqq, Method::Nf4, Method::Fp4, Method::Int8}) {
    const MethodInfo& i = method_info(m);
    for (int b = i.min_bits; b <= i.max_bits; ++b) out.push_back({m, b});
  }
  return out;
}

}  // namespace

TEST_CASE("float_to_fp16 rounds to nearest even and inverts fp16_to_float", "[quant]") {
  CHECK(float_to_fp16(1.0f) == 0x3C00);
  CHECK(float_to_fp16(-2.0f) == 0xC000);
  CHECK(float_to_fp16(65504.0f) == 0x7BFF);
  CHECK(float_to_fp16(65519.0f) == 0x7BFF);                  // below the tie with 65536
  CHECK(float_to_fp16(65520.0f) == 0x7C00);                  // the tie rounds to even: infinity
  CHECK(float_to_fp16(1.0f + 0x1p-11f) == 0x3C00);           // a tie, to the even 1.0
  CHECK(float_to_fp16(1.0f + 3 * 0x1p-11f) == 0x3C02);       // a tie, to the even 1 + 2^-9
  CHECK(float_to_fp16(0x1p-24f) == 0x0001);                  // the smallest subnormal
  CHECK(float_to_fp16(0x1p-25f) == 0x0000);                  // half of it: a tie, to the even 0
  CHECK(float_to_fp16(3 * 0x1p-25f) == 0x0002);              // 1.5 units: to the even 2
  CHECK(float_to_fp16(0x1p-14f - 0x1p-26f) == 0x0400);       // rounds up into the normals
  CHECK(std::isnan(fp16_to_float(float_to_fp16(NAN))));
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = fp16_to_float(uint16_t(h));
    if (!std::isnan(f)) REQUIRE(float_to_fp16(f) == h);
  }
}

TEST_CASE("the min-max grid is GPTQ's: the range widened to 0, an integer zero, codes round(w / scale) + zero", "[quant]") {
  const std::vector<float> g = {-1.0f, 0.5f, 2.0f, 1.4f};  // 2 bits: scale (2 - -1) / 3 = 1, zero 1
  const Affine p = minmax_params(g.data(), 4, 2);
  CHECK(p.scale == 1.0f);
  CHECK(p.zero == 1.0f);
  const QuantizedMatrix q = quantize_rtn(g, 1, 4, 2, 4);
  CHECK(q.codes == std::vector<uint8_t>{0, 1, 3, 2});  // round(0.5) = 0 (halves to even): code 1
  CHECK(q.dequantize() == std::vector<float>{-1.0f, 0.0f, 2.0f, 1.0f});
  const std::vector<float> pos = {0.5f, 1.0f, 3.0f, 2.0f};  // all positive: the range starts at 0
  const Affine pp = minmax_params(pos.data(), 4, 2);
  CHECK(pp.zero == 0.0f);
  CHECK(pp.scale == 1.0f);
  const std::vector<float> zeros(4, 0.0f);  // all zero: the range [-1, 1]
  CHECK(minmax_params(zeros.data(), 4, 3).scale == fp16_to_float(float_to_fp16(2.0f / 7)));
}

TEST_CASE("every quantizer keeps 2^bits levels per group, its codes in range and its scales per group", "[quant]") {
  const int64_t rows = 8, cols = 128;
  const std::vector<float> w = weights(rows, cols, 1);
  for (auto [m, bits] : weight_only_cases()) {
    INFO(method_info(m).name << " at " << bits << " bits");
    const int64_t group = m == Method::Int8 ? cols : 64;
    const QuantizedMatrix q = quantize_with(m, w, rows, cols, bits, group);
    REQUIRE(q.codes.size() == w.size());
    REQUIRE(q.scale.size() == size_t(rows * cols / group));
    for (uint8_t c : q.codes) REQUIRE(int(c) < (1 << bits));
    const std::vector<float> d = q.dequantize();
    for (int64_t g = 0; g < rows * cols / group; ++g) {
      std::set<float> levels(d.begin() + g * group, d.begin() + (g + 1) * group);
      REQUIRE(levels.size() <= size_t(1) << bits);
    }
    if (m == Method::Int8)  // the row's largest magnitude maps to +-127 exactly
      for (int64_t r = 0; r < rows; ++r) {
        int extreme = 0;
        for (int64_t c = 0; c < cols; ++c) extreme = std::max(extreme, std::abs(int(q.codes[size_t(r * cols + c)]) - 128));
        REQUIRE(extreme == 127);
      }
  }
}

TEST_CASE("quantization is idempotent: its values encode to themselves, and absmax quantizers reproduce them", "[quant]") {
  const int64_t rows = 6, cols = 128;
  const std::vector<float> w = weights(rows, cols, 2);
  for (auto [m, bits] : weight_only_cases()) {
    INFO(method_info(m).name << " at " << bits << " bits");
    const int64_t group = m == Method::Int8 ? cols : 64;
    const QuantizedMatrix q = quantize_with(m, w, rows, cols, bits, group);
    const std::vector<float> once = q.dequantize();
    // On its own grid every dequantized value is a fixed point (the projection property).
    QuantizedMatrix again = q;
    for (int64_t i = 0; i < rows * cols; ++i) {
      const size_t g = size_t(i / group);
      const float v = once[size_t(i)];
      if (q.decode == Decode::Affine) {
        again.codes[size_t(i)] = uint8_t(std::clamp(std::nearbyint(v / q.scale[g] + q.zero[g]), 0.0f, float((1 << bits) - 1)));
      } else {
        size_t best = 0;
        for (size_t k = 1; k < q.book.size(); ++k)
          if (std::fabs(v / q.scale[g] - q.book[k]) < std::fabs(v / q.scale[g] - q.book[best])) best = k;
        again.codes[size_t(i)] = uint8_t(best);
      }
    }
    REQUIRE(again.dequantize() == once);
    // Where the grid comes from the absmax, the largest value is kept, so the whole quantizer is
    // idempotent (the min-max grids of rtn and hqq move with their rounded zero points).
    if (m == Method::Nf4 || m == Method::Fp4 || m == Method::Int8) {
      const std::vector<float> twice = quantize_with(m, once, rows, cols, bits, group).dequantize();
      for (size_t i = 0; i < w.size(); ++i) REQUIRE(twice[i] == Approx(once[i]).margin(1e-7).epsilon(1e-6));
    }
  }
}

TEST_CASE("the reconstruction error falls with the bit width", "[quant]") {
  const int64_t rows = 16, cols = 128;
  const std::vector<float> w = weights(rows, cols, 3);
  for (Method m : {Method::Rtn, Method::Hqq}) {
    double prev = 1e9;
    for (int bits = 2; bits <= 8; ++bits) {
      const double e = reconstruction_error(w, quantize_with(m, w, rows, cols, bits, 64)).relative;
      INFO(method_info(m).name << " at " << bits << " bits: " << e);
      CHECK(e < 0.75 * prev);
      prev = e;
    }
  }
  const double nf4 = reconstruction_error(w, quantize_with(Method::Nf4, w, rows, cols, 4, 64)).relative;
  const double int8 = reconstruction_error(w, quantize_with(Method::Int8, w, rows, cols, 8, cols)).relative;
  CHECK(int8 < 0.2 * nf4);
}

TEST_CASE("nf4 and fp4 give each value the nearest entry of the code book times the block's absmax", "[quant]") {
  const int64_t rows = 4, cols = 128;
  const std::vector<float> w = weights(rows, cols, 4);
  for (Codebook b : {Codebook::Nf4, Codebook::Fp4}) {
    const auto book = codebook_values(b);
    REQUIRE(book.size() == 16);
    const QuantizedMatrix q = quantize_codebook(w, rows, cols, b, 64);
    for (int64_t blk = 0; blk < rows * cols / 64; ++blk) {
      float absmax = 0;
      for (int64_t i = blk * 64; i < (blk + 1) * 64; ++i) absmax = std::max(absmax, std::fabs(w[size_t(i)]));
      REQUIRE(q.scale[size_t(blk)] == absmax);
      for (int64_t i = blk * 64; i < (blk + 1) * 64; ++i) {
        const float v = w[size_t(i)] / absmax;
        float best = 1e9f;
        for (float c : book) best = std::min(best, std::fabs(v - c));
        REQUIRE(std::fabs(v - book[q.codes[size_t(i)]]) <= best + 1e-6f);
      }
    }
  }
  CHECK(codebook_values(Codebook::Nf4)[7] == 0.0f);  // exact zeros stay zero
  CHECK(codebook_values(Codebook::Fp4)[3] == 1.0f);
}

TEST_CASE("codes pack to bits per code, LSB first, and unpack to the same codes", "[quant]") {
  Rng rng(5);
  for (int bits = 1; bits <= 8; ++bits) {
    QuantizedMatrix q = affine_matrix(3, 13, bits, 13);
    for (auto& c : q.codes) c = uint8_t(rng.below(uint64_t(1) << bits));
    const std::vector<uint8_t> packed = pack_codes(q);
    REQUIRE(packed.size() == size_t(3 * ((13 * bits + 7) / 8)));
    REQUIRE(unpack_codes(packed, 3, 13, bits) == q.codes);
  }
  QuantizedMatrix q = affine_matrix(1, 4, 3, 4);
  q.codes = {1, 2, 7, 5};  // 001 010 111 101 -> bits 0..11: 1,0,0, 0,1,0, 1,1,1, 1,0,1
  CHECK(pack_codes(q) == std::vector<uint8_t>{0b11010001, 0b1011});
}

TEST_CASE("U8 and F16 tensors round-trip through safetensors as raw bytes", "[quant]") {
  test::TempDir d;
  std::vector<RawTensor> t = {{"a.qweight", TensorDtype::U8, {2, 3}, {1, 2, 3, 250, 251, 252}},
                              {"a.scale", TensorDtype::F16, {1, 2}, {0x00, 0x3C, 0x00, 0xC0}}};
  write_safetensors(d / "q.safetensors", t, {{"format", "test"}});
  SafetensorsReader r(d / "q.safetensors");
  CHECK(r.read_bytes("a.qweight") == t[0].bytes);
  std::vector<float> f(2);
  r.read("a.scale", f);
  CHECK(f == std::vector<float>{1.0f, -2.0f});
  std::vector<float> u(6);
  r.read("a.qweight", u);
  CHECK(u[3] == 250.0f);
}

TEST_CASE("the output error of InputStatistics is the mean squared error of the layer outputs", "[quant]") {
  const int64_t n = 50, cols = 12, out = 5;
  const std::vector<float> x = correlated_inputs(n, cols, 6), w = weights(out, cols, 7);
  const std::vector<float> wq = quantize_rtn(w, out, cols, 2, cols).dequantize();
  InputStatistics st(cols);
  st.add(std::span<const float>(x).first(size_t(20 * cols)), 20);
  st.add(std::span<const float>(x).subspan(size_t(20 * cols)), n - 20);
  double naive = 0;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double y = 0;
      for (int64_t c = 0; c < cols; ++c) y += (double(w[size_t(o * cols + c)]) - wq[size_t(o * cols + c)]) * x[size_t(r * cols + c)];
      naive += y * y;
    }
  CHECK(st.output_error(w, wq, out) == Approx(naive / double(n)).epsilon(1e-9));
  const std::vector<double> H = st.hessian();
  double xx = 0;
  for (int64_t r = 0; r < n; ++r) xx += double(x[size_t(r * cols + 3)]) * x[size_t(r * cols + 7)];
  CHECK(H[size_t(3 * cols + 7)] == Approx(2 * xx / double(n)).epsilon(1e-12));
  CHECK(H[size_t(7 * cols + 3)] == H[size_t(3 * cols + 7)]);
}

TEST_CASE("GPTQ with uncorrelated inputs is round-to-nearest", "[quant]") {
  const int64_t rows = 8, cols = 256;
  const std::vector<float> w = weights(rows, cols, 8);
  std::vector<double> H(size_t(cols * cols), 0.0);
  for (int64_t i = 0; i < cols; ++i) H[size_t(i * cols + i)] = 3.0;  // no correlation: no error to move
  for (int bits : {2, 4}) {
    for (int64_t group : {64, 128}) {
      GptqOptions o;
      o.bits = bits;
      o.group = group;
      const QuantizedMatrix g = quantize_gptq(w, rows, cols, H, o), r = quantize_rtn(w, rows, cols, bits, group);
      CHECK(g.codes == r.codes);
      CHECK(g.scale == r.scale);
    }
  }
}

TEST_CASE("GPTQ equals the one-column-at-a-time optimal brain quantizer it accelerates", "[quant]") {
  // The naive form: after each column, the error e = (w - q) / Hinv[i][i] moves onto the later columns by
  // Hinv[i][j], and column i is removed from the inverse Hessian (Hinv -= Hinv[:, i] Hinv[i, :] / Hinv[i][i]).
  // GPTQ's Cholesky rows and lazy block updates give the same numbers when groups start on block edges.
  const int64_t rows = 6, cols = 48, group = 16, n = 200;
  const std::vector<float> w = weights(rows, cols, 9), x = correlated_inputs(n, cols, 10);
  InputStatistics st(cols);
  st.add(x, n);
  std::vector<double> H = st.hessian();
  GptqOptions o;
  o.bits = 3;
  o.group = group;
  o.block = 16;
  const QuantizedMatrix g = quantize_gptq(w, rows, cols, H, o);

  double mean_diag = 0;
  for (int64_t i = 0; i < cols; ++i) mean_diag += H[size_t(i * cols + i)] / double(cols);
  for (int64_t i = 0; i < cols; ++i) H[size_t(i * cols + i)] += 0.01 * mean_diag;
  // Hinv by Gauss-Jordan elimination
  std::vector<double> a = H, inv(size_t(cols * cols), 0.0);
  for (int64_t i = 0; i < cols; ++i) inv[size_t(i * cols + i)] = 1;
  for (int64_t c = 0; c < cols; ++c) {
    const double p = a[size_t(c * cols + c)];
    for (int64_t j = 0; j < cols; ++j) a[size_t(c * cols + j)] /= p, inv[size_t(c * cols + j)] /= p;
    for (int64_t r = 0; r < cols; ++r)
      if (r != c) {
        const double f = a[size_t(r * cols + c)];
        for (int64_t j = 0; j < cols; ++j) a[size_t(r * cols + j)] -= f * a[size_t(c * cols + j)], inv[size_t(r * cols + j)] -= f * inv[size_t(c * cols + j)];
      }
  }
  int64_t differing = 0;
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<double> wr(w.begin() + r * cols, w.begin() + (r + 1) * cols), hinv = inv;
    Affine p;
    for (int64_t i = 0; i < cols; ++i) {
      if (i % group == 0) {
        std::vector<float> seg(wr.begin() + i, wr.begin() + i + group);
        p = minmax_params(seg.data(), group, 3);
        REQUIRE(g.scale[size_t(r * (cols / group) + i / group)] == Approx(p.scale).epsilon(1e-3));
      }
      const uint8_t q = affine_code(float(wr[size_t(i)]), p, 3);
      differing += q != g.codes[size_t(r * cols + i)];
      const double d = hinv[size_t(i * cols + i)], e = (wr[size_t(i)] - affine_value(q, p)) / d;
      for (int64_t j = i + 1; j < cols; ++j) wr[size_t(j)] -= e * hinv[size_t(i * cols + j)];
      const std::vector<double> col_i(hinv.begin() + i * cols, hinv.begin() + (i + 1) * cols);
      for (int64_t a2 = 0; a2 < cols; ++a2)
        for (int64_t b2 = 0; b2 < cols; ++b2) hinv[size_t(a2 * cols + b2)] -= col_i[size_t(a2)] * col_i[size_t(b2)] / d;
    }
  }
  CHECK(differing <= 1);  // a code may flip where a value sits on a rounding boundary
}

TEST_CASE("GPTQ's layer objective is below round-to-nearest's on the same calibration inputs", "[quant]") {
  const int64_t rows = 32, cols = 256, n = 600;
  const std::vector<float> w = weights(rows, cols, 11), x = correlated_inputs(n, cols, 12);
  InputStatistics st(cols);
  st.add(x, n);
  const std::vector<double> H = st.hessian();
  for (int bits : {2, 3, 4, 8})
    for (bool act_order : {false, true}) {
      GptqOptions o;
      o.bits = bits;
      o.group = 128;
      o.act_order = act_order;
      const double gptq = st.output_error(w, quantize_gptq(w, rows, cols, H, o).dequantize(), rows);
      const double rtn = st.output_error(w, quantize_rtn(w, rows, cols, bits, 128).dequantize(), rows);
      INFO(bits << " bits, act order " << act_order << ": gptq " << gptq << ", rtn " << rtn);
      CHECK(gptq < 0.8 * rtn);
    }
}

TEST_CASE("GPTQ zeroes the weights of inputs that never occur", "[quant]") {
  const int64_t rows = 4, cols = 64, n = 100;
  std::vector<float> x = correlated_inputs(n, cols, 13);
  for (int64_t r = 0; r < n; ++r) x[size_t(r * cols + 5)] = 0;
  InputStatistics st(cols);
  st.add(x, n);
  GptqOptions o;
  o.group = 64;
  const std::vector<float> d = quantize_gptq(weights(rows, cols, 14), rows, cols, st.hessian(), o).dequantize();
  for (int64_t r = 0; r < rows; ++r) CHECK(d[size_t(r * cols + 5)] == 0.0f);
}

TEST_CASE("round_to_format is e4m3 and fp16 rounding: nearest value, halves to even, saturating", "[quant]") {
  // Every finite e4m3 value from its bits (1 sign, 4 exponent with bias 7, 3 mantissa; S.1111.111 is NaN).
  std::vector<std::pair<double, int>> e4m3;  // (value, code): an even code has an even mantissa
  for (int code = 0; code < 127; ++code) {
    const int E = code >> 3, m = code & 7;
    e4m3.push_back({E == 0 ? m / 8.0 * std::ldexp(1.0, -6) : (1 + m / 8.0) * std::ldexp(1.0, E - 7), code});
  }
  REQUIRE(e4m3.back().first == 448.0);
  Rng rng(15);
  std::vector<double> probes;
  for (int i = 0; i < 20000; ++i) probes.push_back(std::ldexp(rng.uniform() * 2 - 1, int(rng.below(20)) - 10));
  for (size_t i = 0; i + 1 < e4m3.size(); ++i) probes.push_back((e4m3[i].first + e4m3[i + 1].first) / 2);  // ties
  probes.push_back(470.0);  // saturates
  for (double v : probes) {
    const double a = std::fabs(v);
    double best = 448;
    int best_code = 126;
    for (auto [x, code] : e4m3) {
      const double d = std::fabs(a - x), bd = std::fabs(a - best);
      if (d < bd || (d == bd && code % 2 == 0 && best_code % 2 == 1)) best = x, best_code = code;
    }
    INFO("v = " << v);
    REQUIRE(round_to_format(v, 3, -6, 448.0) == std::copysign(best, v));
    REQUIRE(round_to_format(float(v), 3, -6, 448.0f) == float(std::copysign(best, v)));
  }
  for (int i = 0; i < 20000; ++i) {
    const float v = float(std::ldexp(rng.uniform() * 2 - 1, int(rng.below(40)) - 24));
    REQUIRE(round_to_format(v, 10, -14, 65504.0f) == fp16_to_float(float_to_fp16(v)));
  }
}

TEST_CASE("act_quant puts each row on 255 levels of its absmax, keeps outlier columns, and is idempotent", "[quant]") {
  const size_t N = 5, C = 40;
  Rng rng(16);
  std::vector<double> x(N * C);
  for (auto& v : x) v = rng.normal();
  x[2 * C + 9] = 8.0;  // column 9 is an outlier column at threshold 6
  for (bool per_tensor : {false, true})
    for (double threshold : {0.0, 6.0}) {
      INFO("per tensor " << per_tensor << ", threshold " << threshold);
      std::vector<double> q = x;
      act_quant(q.data(), N, C, ActQuantArgs{ActQuant::Int8, per_tensor, threshold});
      double tensor_max = 0;
      for (size_t i = 0; i < N * C; ++i)
        if (threshold == 0 || i % C != 9) tensor_max = std::max(tensor_max, std::fabs(x[i]));
      for (size_t n = 0; n < N; ++n) {
        double m = 0;
        for (size_t c = 0; c < C; ++c)
          if (threshold == 0 || c != 9) m = std::max(m, std::fabs(x[n * C + c]));
        if (per_tensor) m = tensor_max;
        for (size_t c = 0; c < C; ++c) {
          const double v = x[n * C + c], got = q[n * C + c];
          if (threshold > 0 && c == 9) {
            REQUIRE(got == double(fp16_to_float(float_to_fp16(float(v)))));
            continue;
          }
          const double k = got * 127 / m;
          REQUIRE(std::fabs(k - std::nearbyint(k)) < 1e-9);  // on the grid
          REQUIRE(std::fabs(got - v) <= m / 254 * (1 + 1e-12));  // the nearest level
        }
      }
      std::vector<double> again = q;
      act_quant(again.data(), N, C, ActQuantArgs{ActQuant::Int8, per_tensor, threshold});
      for (size_t i = 0; i < N * C; ++i) REQUIRE(again[i] == Approx(q[i]).margin(1e-12));
    }
  std::vector<double> f = x;
  act_quant(f.data(), N, C, ActQuantArgs{ActQuant::Fp8, false, 0});
  for (size_t n = 0; n < N; ++n) {
    double m = 0;
    for (size_t c = 0; c < C; ++c) m = std::max(m, std::fabs(x[n * C + c]));
    for (size_t c = 0; c < C; ++c)
      REQUIRE(f[n * C + c] == Approx(round_to_format(x[n * C + c] * 448 / m, 3, -6, 448.0) * (m / 448)).epsilon(1e-12));
  }
}
