#include "common.cuh"
#include "reduce.cuh"

namespace sp::cuda {

namespace {

// A block sums kColumns columns: warp w takes parts w, w + kGroups, ... in order, then one warp adds the
// kGroups sums in order. Lanes walk adjacent columns, so each row of parts is read coalesced.
constexpr unsigned kColumns = kWarpSize;
constexpr unsigned kGroups = 8;

__global__ void sum_row_parts_kernel(float* out, const double* parts, size_t count, size_t width) {
  SP_SHARED(double, group_sums, kGroups * kColumns);
  const unsigned lane = threadIdx.x % kWarpSize, group = threadIdx.x / kWarpSize;
  const size_t col = blockIdx.x * size_t(kColumns) + lane;
  double sum = 0;
  if (col < width)
    for (size_t p = group; p < count; p += kGroups) sum += parts[p * width + col];
  group_sums[group * kColumns + lane] = sum;
  __syncthreads();  // every group's sums are in shared memory before warp 0 adds them
  if (group == 0 && col < width) {
    double total = group_sums[lane];
    for (unsigned g = 1; g < kGroups; ++g) total += group_sums[g * kColumns + lane];
    out[col] = float(out[col] + total);
  }
}

}  // namespace

void sum_row_parts_cuda(float* out, const double* parts, size_t count, size_t width, cudaStream_t stream) {
  SP_ASSERT(out && parts, "sum_row_parts_cuda: null pointer");
  if (width == 0) return;
  SP_LAUNCH(sum_row_parts_kernel, blocks_for(width, kColumns), kGroups * kColumns, 0, stream, out, parts, count,
            width);
}

}  // namespace sp::cuda
