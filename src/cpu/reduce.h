// Deterministic reductions for the CPU ops: every sum has an order fixed by this code, so results are
// bit-identical run to run and for any thread count (exact resume depends on it).
//
// lane_sum: a row sum in double.
//
// Why not `#pragma omp simd reduction`: the compiler then picks the order, and where it peels iterations to
// align the loads that order depends on the buffer's address, so two runs of a training step could differ
// in the last bit. Here each of kLanes accumulators takes every kLanes-th term, which the compiler can put
// in vector lanes without reassociating anything, and the lanes are added in a fixed tree (the build does
// not use -ffast-math, which would license the compiler to reorder these sums again).
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace sp {

// sum_{i < n} term(i), with term(i) a double.
template <class Term>
inline double lane_sum(size_t n, Term term) {
  constexpr size_t kLanes = 8;
  double acc[kLanes] = {};
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (size_t j = 0; j < kLanes; j++) acc[j] += term(i + j);
  double tail = 0;
  for (; i < n; i++) tail += term(i);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

// Parameter-gradient sums over rows (RMSNorm's dw, SSMax's ds). Calls row(n, part) for every row n < N,
// where part (width doubles) is the accumulator of the row's chunk; rows are cut into at most kMaxChunks
// chunks whose bounds depend on N only, each summed in row order (chunks in parallel), and the chunk
// accumulators are then added in chunk order into out (width), out += total. The cap bounds the scratch at
// kMaxChunks * width doubles.
template <class F, class Row>
void chunked_row_reduce(size_t N, size_t width, F* out, Row&& row) {
  constexpr size_t kMaxChunks = 256;
  if (N == 0) return;
  const size_t nchunks = std::min(N, kMaxChunks);
  const size_t rows_per_chunk = (N + nchunks - 1) / nchunks;
  std::vector<double> parts(nchunks * width, 0.0);  // (nchunks, width)
#pragma omp parallel for schedule(static)
  for (size_t k = 0; k < nchunks; k++) {
    double* part = parts.data() + k * width;
    for (size_t n = k * rows_per_chunk; n < std::min(N, (k + 1) * rows_per_chunk); n++) row(n, part);
  }
  for (size_t i = 0; i < width; i++) {
    double sum = 0;
    for (size_t k = 0; k < nchunks; k++) sum += parts[k * width + i];
    out[i] += F(sum);
  }
}

}  // namespace sp
