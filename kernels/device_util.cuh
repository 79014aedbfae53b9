// Device helpers shared by the kernels (included after common.cuh): conversion between the element type T
// (float or __nv_bfloat16) and the fp32 every kernel computes in, and the grid of elementwise kernels.
#pragma once

#include "common.cuh"

#include <algorithm>
#include <type_traits>

namespace sp::cuda {

template <class T>
__device__ __forceinline__ float to_f32(T x) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) return __bfloat162float(x);
  else return x;
}

// fp32 to T, rounded to nearest even for bf16
template <class T>
__device__ __forceinline__ T from_f32(float x) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) return __float2bfloat16_rn(x);
  else return x;
}

// Elementwise kernels run grid-stride loops: 256 threads a block and enough blocks to fill the chip, never
// more, so a thread handles several elements of a large tensor.
constexpr unsigned kElementwiseThreads = 256;
constexpr size_t kMaxElementwiseBlocks = 65535;

inline unsigned elementwise_grid(size_t n) {
  return unsigned(std::min<size_t>(blocks_for(n, kElementwiseThreads), kMaxElementwiseBlocks));
}

// for (size_t i = grid_start(); i < n; i += grid_stride()) visits every i < n once over the grid
__device__ __forceinline__ size_t grid_start() { return blockIdx.x * size_t(blockDim.x) + threadIdx.x; }
__device__ __forceinline__ size_t grid_stride() { return size_t(gridDim.x) * blockDim.x; }

}  // namespace sp::cuda
