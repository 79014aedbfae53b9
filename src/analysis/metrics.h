// What the paper measures on a trained model (definitions and their match to the paper in
// docs/analysis.md), as plain functions over host arrays so each can be checked on hand-built inputs.
//
//   * sink score of one attention map: the mean over query positions of the weight on the first key; a
//     (sequence, layer, head) cell is a sink when its score exceeds sink_eps (the paper's 0.3);
//   * sparsity of one attention map: exact zeros, and entries with |a| <= a threshold, counted over the
//     causal lower triangle (diagonal included);
//   * moments of hidden states: count, mean, central sums M2..M4 in float64, mergeable across chunks, for
//     the Pearson (non-excess) kurtosis mu4 / mu2^2, plus min and max.
//
// Masks: `valid` marks the real (non-padding) positions of one sequence, (T) with 1 = real; an empty span
// means every position is real. Padded queries, padded keys and padded hidden rows are left out; the sink
// key is the first real position. Packed pretraining windows have no padding, but the definitions allow it.
#pragma once

#include <cstdint>
#include <limits>
#include <span>

namespace sp {

// Mean over the real query positions t of map[t, k0], k0 the first real position; NaN if no position is
// real. map is (T, T), row t = query t.
double sink_score(std::span<const float> map, int64_t T, std::span<const uint8_t> valid = {});

struct SparsityCounts {
  uint64_t zeros = 0;       // entries exactly 0 (either sign)
  uint64_t near_zeros = 0;  // entries with |a| <= near_zero (a superset of zeros)
  uint64_t total = 0;       // entries counted: the causal lower triangle over real positions

  void merge(const SparsityCounts& o) {
    zeros += o.zeros;
    near_zeros += o.near_zeros;
    total += o.total;
  }
  double zero_fraction() const { return total ? double(zeros) / double(total) : 0.0; }
  double near_zero_fraction() const { return total ? double(near_zeros) / double(total) : 0.0; }
};

// Counts over the entries (t, j), j <= t, of a (T, T) map whose query t and key j are both real.
SparsityCounts sparsity_counts(std::span<const float> map, int64_t T, double near_zero,
                               std::span<const uint8_t> valid = {});

// Central moments of a set of values, accumulated in float64. Chunks are summed exactly by two passes
// (mean first, then the central powers) and combined with the pairwise update of Chan et al. / Pebay, so
// pooling a whole model's hidden states loses no accuracy to a large mean or a long sum.
struct Moments {
  double n = 0;                 // count
  double mean = 0;
  double m2 = 0, m3 = 0, m4 = 0;  // sums of (x - mean)^2, ^3, ^4
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();

  void merge(const Moments& o);
  // mu4 / mu2^2 = n M4 / M2^2 (3 for a normal distribution); NaN when fewer than 2 distinct values.
  double kurtosis() const;
  double variance() const { return n > 0 ? m2 / n : 0.0; }  // population variance mu2
  double max_abs() const;                                      // 0 when empty
};

// Moments of every element of x.
Moments moments_of(std::span<const float> x);

// Moments of the real rows of x (rows, cols), row-major; valid is (rows) or empty.
Moments moments_of_rows(std::span<const float> x, int64_t rows, int64_t cols, std::span<const uint8_t> valid = {});

}  // namespace sp
