// A row sum in double with a summation order fixed by this code, for the CPU ops' reductions.
//
// Why not `#pragma omp simd reduction`: the compiler then picks the order, and where it peels iterations to
// align the loads that order depends on the buffer's address, so two runs of a training step could differ
// in the last bit. Here each of kLanes accumulators takes every kLanes-th term, which the compiler can put
// in vector lanes without reassociating anything, and the lanes are added in a fixed tree (the build does
// not use -ffast-math, which would license the compiler to reorder these sums again).
#pragma once

#include <cstddef>

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

}  // namespace sp
