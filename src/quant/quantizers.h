// Weight-only quantizers (docs/quantization.md): round-to-nearest, HQQ, bitsandbytes-style NF4 / FP4 /
// int8, and the grid GPTQ (quant/gptq.h) quantizes onto.
//
// A weight is an (out, in) row-major matrix, PyTorch's Linear layout. A group is `group` consecutive
// elements of one row (the input dimension), as HQQ, bitsandbytes and GPTQ group them. Every quantizer
// returns a QuantizedMatrix: the integer codes and per-group parameters, stored at the precision a packed
// file keeps them in, so dequantize() is exactly what a model loading the packed weights would run with.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sp::quant {

enum class Method { Rtn, Hqq, Nf4, Fp4, Int8, Gptq };

struct MethodInfo {
  Method method;
  const char* name;       // the --method spelling
  int min_bits, max_bits;
  int64_t default_group;  // 0 = one group per row (int8's vector-wise scale)
  const char* summary;
};
const MethodInfo& method_info(Method m);
std::optional<Method> method_from_name(std::string_view name);
std::string method_names();  // "rtn, hqq, nf4, fp4, int8, gptq"

// How a code maps back to a weight.
enum class Decode {
  Affine,    // w = (q - zero) * scale: rtn, hqq, gptq; int8 with zero = 128 (q = 128 + round(w / scale))
  Codebook,  // w = book[q] * scale, scale = the block's absmax: nf4, fp4
};

struct QuantizedMatrix {
  int64_t rows = 0, cols = 0, group = 0;  // group divides cols
  int bits = 0;
  Decode decode = Decode::Affine;
  std::span<const float> book;      // 2^bits values, for Decode::Codebook
  std::vector<uint8_t> codes;       // (rows, cols), each < 2^bits
  std::vector<float> scale, zero;   // (rows, cols / group); zero is empty for a code book

  int64_t groups_per_row() const { return cols / group; }
  float value(int64_t r, int64_t c) const;  // the dequantized weight
  std::vector<float> dequantize() const;    // (rows, cols)
};

// An affine matrix of (rows, cols) codes with a grid per group, all zero: what a quantizer fills in.
QuantizedMatrix affine_matrix(int64_t rows, int64_t cols, int bits, int64_t group);

// ---- the affine grid of rtn and gptq (GPTQ's asymmetric min-max quantizer) ----
struct Affine {
  float scale = 1, zero = 0;  // both rounded to fp16, the precision a packed file stores them in
};
// The grid of 2^bits levels spanning [min(x, 0), max(x, 0)] of x[0 .. n): scale = (max - min) / (2^bits - 1),
// zero = round(-min / scale), an integer; an all-zero group gets the range [-1, 1].
Affine minmax_params(const float* x, int64_t n, int bits);
uint8_t affine_code(float w, const Affine& p, int bits);  // clamp(round(w / scale) + zero, 0, 2^bits - 1)
inline float affine_value(uint8_t q, const Affine& p) { return (float(q) - p.zero) * p.scale; }

// Round-to-nearest onto minmax_params of each group.
QuantizedMatrix quantize_rtn(std::span<const float> w, int64_t rows, int64_t cols, int bits, int64_t group);

// Half-Quadratic Quantization: the plain min-max grid of each group (the initial zero rounded at 4 bits),
// then the zero point optimised by HQQ's proximal solver: an lp (p < 1) shrinkage of the error, the zero
// refitted to the shrunk weights, stopping when the matrix's mean absolute error stops falling. p, beta and
// the 20 iterations are HQQ's published defaults. The paper grows beta by kappa = 1.01 per step; the hqq
// package's default solver keeps beta fixed, and so does kappa = 1 here (the package is the reference).
// Scale and zero are kept in fp32 (a fractional zero near 128 loses codes in fp16).
struct HqqOptions {
  double lp_norm = 0.7, beta = 10.0, kappa = 1.0;
  int iters = 20;
};
QuantizedMatrix quantize_hqq(std::span<const float> w, int64_t rows, int64_t cols, int bits, int64_t group,
                             const HqqOptions& opt = {});

// bitsandbytes' blockwise absmax 4-bit quantizers: each block of `block` elements scaled by its absmax
// (fp32), every value to the nearest entry of the NF4 or FP4 code book.
enum class Codebook { Nf4, Fp4 };
std::span<const float> codebook_values(Codebook b);  // 16 values, in code order
QuantizedMatrix quantize_codebook(std::span<const float> w, int64_t rows, int64_t cols, Codebook book,
                                  int64_t block);

// LLM.int8's weight half: vector-wise (one scale per row) absmax int8, q = round(127 w / absmax).
QuantizedMatrix quantize_int8(std::span<const float> w, int64_t rows, int64_t cols);

// Mean over the matrix of (w - dequantized)^2, and ||w - dequantized|| / ||w||: the reconstruction errors
// quantization.json records.
struct ReconstructionError {
  double mse = 0, relative = 0;
};
ReconstructionError reconstruction_error(std::span<const float> w, const QuantizedMatrix& q);

// The packed form of a matrix's codes: bits per code, codes in row-major order, LSB first, a row starting
// on a byte boundary (ceil(cols * bits / 8) bytes per row). pack and unpack are inverse.
std::vector<uint8_t> pack_codes(const QuantizedMatrix& q);
std::vector<uint8_t> unpack_codes(std::span<const uint8_t> packed, int64_t rows, int64_t cols, int bits);

}  // namespace sp::quant
