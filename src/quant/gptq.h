// GPTQ (Frantar et al., 2022) for one weight, and the statistics of its inputs it needs.
//
// The layer objective is ||W X - Q X||^2 over the calibration inputs X (in, n). GPTQ quantizes W (out, in)
// one input column at a time onto the min-max grid of its group (quant/quantizers.h) and moves each
// column's error onto the columns not yet quantized, weighted by the inverse of H = 2/n X X^T, so the
// output error of the whole row shrinks; columns are processed in blocks with the updates of later blocks
// applied once per block (lazy batch updates), as the reference implementation does.
#pragma once

#include "quant/quantizers.h"

#include <cstdint>
#include <span>
#include <vector>

namespace sp::quant {

// S = sum over rows x of x x^T (cols, cols) in fp64, and the row count n: one per distinct layer input.
class InputStatistics {
public:
  explicit InputStatistics(int64_t cols);
  void add(std::span<const float> x, int64_t rows);  // x (rows, cols)
  int64_t cols() const { return cols_; }
  int64_t count() const { return n_; }
  std::vector<double> hessian() const;  // H = 2 S / n (cols, cols)
  // ||(w - wq) X||^2 / n: the mean squared output error per input row (w, wq (out, cols)).
  double output_error(std::span<const float> w, std::span<const float> wq, int64_t out) const;

private:
  int64_t cols_, n_ = 0;
  std::vector<double> s_;  // (cols, cols), symmetric
};

struct GptqOptions {
  int bits = 4;
  int64_t group = 128;     // consecutive input columns sharing a grid; divides cols
  double damp = 0.01;      // added to H's diagonal, times its mean
  int64_t block = 128;     // columns per lazy batch update
  bool act_order = false;  // columns in order of decreasing H diagonal; the grids fixed up front per group
};

// Quantizes w (rows, cols) given H (cols, cols) from InputStatistics::hessian(). Inputs that never occur
// (zero diagonal) get zero weights. An Error when H + damping is not positive definite (raise the damping).
QuantizedMatrix quantize_gptq(std::span<const float> w, int64_t rows, int64_t cols, std::span<const double> H,
                              const GptqOptions& opt);

}  // namespace sp::quant
