#include "quant/quantizers.h"

#include "core/bf16.h"
#include "core/check.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>

namespace sp::quant {

namespace {

constexpr MethodInfo kMethods[] = {
    {Method::Rtn, "rtn", 2, 8, 64, "round-to-nearest onto the per-group min-max grid"},
    {Method::Hqq, "hqq", 2, 8, 64, "Half-Quadratic Quantization: the min-max grid with an optimised zero point"},
    {Method::Nf4, "nf4", 4, 4, 64, "bitsandbytes NF4: blockwise absmax onto the NormalFloat4 code book"},
    {Method::Fp4, "fp4", 4, 4, 64, "bitsandbytes FP4: blockwise absmax onto the 4-bit float code book"},
    {Method::Int8, "int8", 8, 8, 0, "LLM.int8: row-wise absmax int8 weights, 16-bit outlier activation columns"},
    {Method::Gptq, "gptq", 2, 8, 128, "GPTQ: column by column onto the min-max grid, the error pushed forward"},
};

// bitsandbytes' code books, in code order. NF4: the quantiles of N(0, 1) scaled to [-1, 1] with an exact
// zero; FP4: the values of a 1-bit sign, 2-bit exponent, 1-bit mantissa float divided by their largest (12).
constexpr std::array<float, 16> kNf4 = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
    -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
    0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f,
    1.0f};
constexpr std::array<float, 16> kFp4 = {
    0.0f / 12, 0.0625f / 12, 8.0f / 12, 12.0f / 12, 4.0f / 12, 6.0f / 12, 2.0f / 12, 3.0f / 12,
    -0.0f / 12, -0.0625f / 12, -8.0f / 12, -12.0f / 12, -4.0f / 12, -6.0f / 12, -2.0f / 12, -3.0f / 12};

float to_fp16(float x) { return fp16_to_float(float_to_fp16(x)); }

// A scale as stored: fp16, and never 0 (the smallest fp16 subnormal at least), so codes stay finite.
float stored_scale(float s) { return std::max(to_fp16(s), 5.9604645e-8f); }

QuantizedMatrix empty_matrix(int64_t rows, int64_t cols, int bits, int64_t group, Decode decode) {
  SP_ASSERT(rows > 0 && cols > 0 && group > 0 && cols % group == 0 && bits >= 1 && bits <= 8,
            "quantize ({}, {}) in groups of {} at {} bits", rows, cols, group, bits);
  QuantizedMatrix q;
  q.rows = rows;
  q.cols = cols;
  q.group = group;
  q.bits = bits;
  q.decode = decode;
  q.codes.resize(size_t(rows * cols));
  q.scale.resize(size_t(rows * cols / group));
  if (decode == Decode::Affine) q.zero.resize(q.scale.size());
  return q;
}

QuantizedMatrix empty_matrix(std::span<const float> w, int64_t rows, int64_t cols, int bits, int64_t group,
                             Decode decode) {
  SP_ASSERT(w.size() == size_t(rows * cols), "quantize: {} values for ({}, {})", w.size(), rows, cols);
  return empty_matrix(rows, cols, bits, group, decode);
}

// Codes of group g (elements [g * group, (g + 1) * group) of the flat matrix) on the affine grid p.
void set_affine_group(QuantizedMatrix& q, std::span<const float> w, int64_t g, const Affine& p) {
  q.scale[size_t(g)] = p.scale;
  q.zero[size_t(g)] = p.zero;
  for (int64_t i = g * q.group; i < (g + 1) * q.group; ++i) q.codes[size_t(i)] = affine_code(w[size_t(i)], p, q.bits);
}

}  // namespace

QuantizedMatrix affine_matrix(int64_t rows, int64_t cols, int bits, int64_t group) {
  return empty_matrix(rows, cols, bits, group, Decode::Affine);
}

const MethodInfo& method_info(Method m) {
  for (const auto& i : kMethods)
    if (i.method == m) return i;
  SP_ASSERT(false, "unknown quantization method {}", int(m));
  return kMethods[0];
}

std::optional<Method> method_from_name(std::string_view name) {
  for (const auto& i : kMethods)
    if (name == i.name) return i.method;
  return std::nullopt;
}

std::string method_names() {
  std::string s;
  for (const auto& i : kMethods) s += (s.empty() ? "" : ", ") + std::string(i.name);
  return s;
}

float QuantizedMatrix::value(int64_t r, int64_t c) const {
  const size_t i = size_t(r * cols + c), g = size_t((r * cols + c) / group);
  if (decode == Decode::Codebook) return book[codes[i]] * scale[g];
  return (float(codes[i]) - zero[g]) * scale[g];
}

std::vector<float> QuantizedMatrix::dequantize() const {
  std::vector<float> out(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out[size_t(r * cols + c)] = value(r, c);
  return out;
}

Affine minmax_params(const float* x, int64_t n, int bits) {
  float lo = 0, hi = 0;
  for (int64_t i = 0; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  if (lo == 0 && hi == 0) {
    lo = -1;
    hi = 1;
  }
  const float maxq = float((1 << bits) - 1);
  Affine p;
  p.scale = stored_scale((hi - lo) / maxq);
  p.zero = std::clamp(std::nearbyint(-lo / p.scale), 0.0f, maxq);
  return p;
}

uint8_t affine_code(float w, const Affine& p, int bits) {
  const float q = std::nearbyint(w / p.scale) + p.zero;  // torch.round: halves to even
  return uint8_t(std::clamp(q, 0.0f, float((1 << bits) - 1)));
}

QuantizedMatrix quantize_rtn(std::span<const float> w, int64_t rows, int64_t cols, int bits, int64_t group) {
  QuantizedMatrix q = empty_matrix(w, rows, cols, bits, group, Decode::Affine);
  const int64_t groups = rows * cols / group;
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < groups; ++g) set_affine_group(q, w, g, minmax_params(&w[size_t(g * group)], group, bits));
  return q;
}

QuantizedMatrix quantize_hqq(std::span<const float> w, int64_t rows, int64_t cols, int bits, int64_t group,
                             const HqqOptions& opt) {
  QuantizedMatrix q = empty_matrix(w, rows, cols, bits, group, Decode::Affine);
  const int64_t groups = rows * cols / group;
  const float maxq = float((1 << bits) - 1);
  // HQQ's parametrisation: code = round(w * inv + zero), w ~ (code - zero) / inv, per group.
  std::vector<float> inv(static_cast<size_t>(groups)), zero(static_cast<size_t>(groups));
  for (int64_t g = 0; g < groups; ++g) {
    const float* x = &w[size_t(g * group)];
    const auto [lo, hi] = std::minmax_element(x, x + group);
    const float range = *hi - *lo;
    inv[size_t(g)] = std::min(std::fabs(range) <= 1e-4f ? 1.0f : maxq / range, 2e4f);  // HQQ's guards
    zero[size_t(g)] = -*lo * inv[size_t(g)];
    if (bits == 4) zero[size_t(g)] = std::nearbyint(zero[size_t(g)]);  // HQQ rounds the initial zero at 4 bits
  }
  const auto code = [&](int64_t g, float x) { return std::clamp(std::nearbyint(x * inv[size_t(g)] + zero[size_t(g)]), 0.0f, maxq); };
  // The proximal solver: shrink the error with the lp operator, refit the zero point to the shrunk
  // weights, grow beta by kappa; the whole matrix's mean absolute error decides when to stop, and the
  // zero point of the last step taken is kept (the hqq package's solver, step for step).
  double beta = opt.beta, best = 1e4;
  for (int it = 0; it < opt.iters; ++it) {
    double err = 0;
#pragma omp parallel for reduction(+ : err) schedule(static)
    for (int64_t g = 0; g < groups; ++g) {
      const float* x = &w[size_t(g * group)];
      double zsum = 0;
      for (int64_t i = 0; i < group; ++i) {
        const float wq = code(g, x[i]);
        const float wr = (wq - zero[size_t(g)]) / inv[size_t(g)];
        const float e = x[i] - wr;
        const float ae = std::fabs(e);
        const float shrunk = std::copysign(std::max(ae - float(1.0 / beta) * std::pow(ae, float(opt.lp_norm - 1)), 0.0f), e);
        zsum += wq - (x[i] - shrunk) * inv[size_t(g)];
        err += ae;
      }
      zero[size_t(g)] = float(zsum / double(group));
    }
    beta *= opt.kappa;
    err /= double(rows * cols);
    if (err < best) best = err;
    else break;
  }
  // Scale and zero stay fp32, as the hqq package keeps them on the CPU: at 8 bits a fractional zero near 128
  // would move codes in fp16.
  for (int64_t g = 0; g < groups; ++g) {  // the zero is fractional: code = round(w / scale + zero)
    const float scale = 1.0f / inv[size_t(g)], z = zero[size_t(g)];
    q.scale[size_t(g)] = scale;
    q.zero[size_t(g)] = z;
    for (int64_t i = g * group; i < (g + 1) * group; ++i)
      q.codes[size_t(i)] = uint8_t(std::clamp(std::nearbyint(w[size_t(i)] / scale + z), 0.0f, maxq));
  }
  return q;
}

std::span<const float> codebook_values(Codebook b) { return b == Codebook::Nf4 ? std::span<const float>(kNf4) : std::span<const float>(kFp4); }

QuantizedMatrix quantize_codebook(std::span<const float> w, int64_t rows, int64_t cols, Codebook book,
                                  int64_t block) {
  QuantizedMatrix q = empty_matrix(w, rows, cols, 4, block, Decode::Codebook);
  q.book = codebook_values(book);
  // bitsandbytes' rule: the code whose value is nearest, found as the bucket of the value among the
  // midpoints of the sorted code book (a value on a midpoint takes the lower code).
  std::array<uint8_t, 16> order;
  std::iota(order.begin(), order.end(), uint8_t(0));
  std::stable_sort(order.begin(), order.end(), [&](uint8_t a, uint8_t b) { return q.book[a] < q.book[b]; });
  std::array<float, 15> mid;
  for (size_t k = 0; k < mid.size(); ++k) mid[k] = (q.book[order[k]] + q.book[order[k + 1]]) / 2;
  const int64_t blocks = rows * cols / block;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    const float* x = &w[size_t(b * block)];
    float absmax = 0;
    for (int64_t i = 0; i < block; ++i) absmax = std::max(absmax, std::fabs(x[i]));
    q.scale[size_t(b)] = absmax;
    const float inv = 1.0f / std::max(absmax, 1e-38f);
    for (int64_t i = 0; i < block; ++i) {
      const float v = std::clamp(x[i] * inv, -1.0f, 1.0f);
      const size_t k = size_t(std::lower_bound(mid.begin(), mid.end(), v) - mid.begin());  // midpoints < v
      q.codes[size_t(b * block + i)] = order[k];
    }
  }
  return q;
}

QuantizedMatrix quantize_int8(std::span<const float> w, int64_t rows, int64_t cols) {
  QuantizedMatrix q = empty_matrix(w, rows, cols, 8, cols, Decode::Affine);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = &w[size_t(r * cols)];
    float absmax = 0;
    for (int64_t c = 0; c < cols; ++c) absmax = std::max(absmax, std::fabs(x[c]));
    q.scale[size_t(r)] = absmax / 127.0f;
    q.zero[size_t(r)] = 128.0f;
    for (int64_t c = 0; c < cols; ++c) {
      const float v = absmax > 0 ? std::nearbyint(x[c] * (127.0f / absmax)) : 0.0f;
      q.codes[size_t(r * cols + c)] = uint8_t(128.0f + std::clamp(v, -127.0f, 127.0f));
    }
  }
  return q;
}

ReconstructionError reconstruction_error(std::span<const float> w, const QuantizedMatrix& q) {
  SP_ASSERT(w.size() == q.codes.size(), "reconstruction_error: {} values for {} codes", w.size(), q.codes.size());
  double se = 0, ss = 0;
  for (int64_t r = 0; r < q.rows; ++r)
    for (int64_t c = 0; c < q.cols; ++c) {
      const double x = w[size_t(r * q.cols + c)], d = x - double(q.value(r, c));
      se += d * d;
      ss += x * x;
    }
  return {se / double(w.size()), ss > 0 ? std::sqrt(se / ss) : 0.0};
}

std::vector<uint8_t> pack_codes(const QuantizedMatrix& q) {
  const size_t row_bytes = size_t((q.cols * q.bits + 7) / 8);
  std::vector<uint8_t> out(row_bytes * size_t(q.rows), 0);
  for (int64_t r = 0; r < q.rows; ++r)
    for (int64_t c = 0; c < q.cols; ++c) {
      const uint32_t v = q.codes[size_t(r * q.cols + c)];
      for (int b = 0; b < q.bits; ++b) {
        const size_t bit = size_t(c * q.bits + b);
        if (v >> b & 1u) out[size_t(r) * row_bytes + bit / 8] |= uint8_t(1u << (bit % 8));
      }
    }
  return out;
}

std::vector<uint8_t> unpack_codes(std::span<const uint8_t> packed, int64_t rows, int64_t cols, int bits) {
  const size_t row_bytes = size_t((cols * bits + 7) / 8);
  SP_ASSERT(packed.size() == row_bytes * size_t(rows), "unpack_codes: {} bytes for ({}, {}) at {} bits",
            packed.size(), rows, cols, bits);
  std::vector<uint8_t> out(size_t(rows * cols), 0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      uint32_t v = 0;
      for (int b = 0; b < bits; ++b) {
        const size_t bit = size_t(c * bits + b);
        v |= uint32_t(packed[size_t(r) * row_bytes + bit / 8] >> (bit % 8) & 1u) << b;
      }
      out[size_t(r * cols + c)] = uint8_t(v);
    }
  return out;
}

}  // namespace sp::quant
