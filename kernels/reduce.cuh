// Deterministic reductions for the kernels (included after common.cuh). Every sum has an order fixed by
// the code and the sizes alone, so results are the same bits on every run; no kernel adds floating-point
// values with atomics.
//
//   warp_reduce / block_reduce   a butterfly over the warp's lanes, then the warps' results in warp order
//   split_rows + sum_row_parts   parameter-gradient sums over rows (RMSNorm's dw, SSMax's ds): the rows are
//                                cut into at most kMaxRowParts consecutive parts whose bounds depend on the
//                                row count only; block p sums part p in row order into row p of an fp64
//                                scratch (parts, width), and sum_row_parts_cuda adds the parts in order, in
//                                fp64 (a sum over all rows can cancel far below its terms).
#pragma once

#include "common.cuh"

#include <algorithm>
#include <cmath>

namespace sp::cuda {

constexpr unsigned kWarpSize = 32;
constexpr unsigned kFullWarp = 0xffffffffu;

struct SumOp {
  template <class F>
  __device__ __forceinline__ F operator()(F a, F b) const { return a + b; }
};
struct MaxOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

// Every lane of the (full) warp gets the same bits: at each step both partners combine the same two values.
template <class F, class Op>
__device__ __forceinline__ F warp_reduce(F v, Op op) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v = op(v, __shfl_xor_sync(kFullWarp, v, offset));
  return v;
}

// Over a block of kThreads threads, all of which call it; every thread gets the same bits.
// warp_results: shared, kThreads / 32 entries.
template <unsigned kThreads, class F, class Op>
__device__ F block_reduce(F v, F* warp_results, Op op) {
  static_assert(kThreads % kWarpSize == 0 && kThreads <= 1024, "whole warps, at most 1024 threads");
  constexpr unsigned kWarps = kThreads / kWarpSize;
  v = warp_reduce(v, op);
  if (threadIdx.x % kWarpSize == 0) warp_results[threadIdx.x / kWarpSize] = v;
  __syncthreads();  // every warp's result is in shared memory before any thread combines them
  F total = warp_results[0];
  for (unsigned w = 1; w < kWarps; ++w) total = op(total, warp_results[w]);
  __syncthreads();  // every thread has read warp_results before a following call overwrites it
  return total;
}

// Enough parts to fill a GPU with one block each; their (parts, width) scratch stays a few MiB.
constexpr size_t kMaxRowParts = 512;

struct RowParts {
  size_t count;          // parts, each at least one row
  size_t rows_per_part;  // the last part may have fewer
};

inline RowParts split_rows(size_t rows) {
  const size_t per = std::max<size_t>(1, (rows + kMaxRowParts - 1) / kMaxRowParts);
  return {std::max<size_t>(1, (rows + per - 1) / per), per};
}

// out (width) += sum over p of parts (count, width), added in fp64 in order p = 0, 1, ...
void sum_row_parts_cuda(float* out, const double* parts, size_t count, size_t width, cudaStream_t stream);

}  // namespace sp::cuda
