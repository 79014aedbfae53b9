// The sums run in two kernels: block b of a grid whose size depends on n only adds its grid-stride
// elements in fp64 into parts[b], then one block adds the parts in a fixed order.
#include "common.cuh"
#include "adamw.cuh"
#include "device_util.cuh"
#include "reduce.cuh"

#include <algorithm>

namespace sp::cuda {

namespace {

constexpr unsigned kSumThreads = 256;
constexpr unsigned kSumWarps = kSumThreads / kWarpSize;
constexpr size_t kSumItemsPerThread = 8;  // at least this many per thread before another block is added
constexpr size_t kMaxSumBlocks = 1024;    // enough to fill the chip; the parts are 8 KiB

size_t sum_blocks(size_t n) {
  return std::min<size_t>(blocks_for(n, unsigned(kSumThreads * kSumItemsPerThread)), kMaxSumBlocks);
}

template <class W>
__global__ void adamw_kernel(float* master, W* weights, const float* grad, float* m, float* v, size_t n,
                             AdamWStep a) {
  for (size_t i = grid_start(); i < n; i += grid_stride()) {
    const float g = grad[i] * a.grad_scale;
    const float mi = a.beta1 * m[i] + a.one_minus_beta1 * g;
    const float vi = a.beta2 * v[i] + a.one_minus_beta2 * g * g;
    m[i] = mi;
    v[i] = vi;
    const float p = master[i];
    const float update = (mi / a.bias_correction1) / (sqrtf(vi / a.bias_correction2) + a.eps) + a.weight_decay * p;
    const float p_new = p - a.lr * update;
    master[i] = p_new;
    if (weights) weights[i] = from_f32<W>(p_new);
  }
}

template <bool kSquares>
__global__ void block_sums_kernel(double* parts /* (gridDim.x) */, const float* x, size_t n) {
  SP_SHARED(double, warp_results, kSumWarps);
  double acc = 0;
  for (size_t i = grid_start(); i < n; i += grid_stride()) {
    const double xi = x[i];
    if constexpr (kSquares) acc += xi * xi;
    else acc += xi;
  }
  acc = block_reduce<kSumThreads>(acc, &warp_results[0], SumOp{});
  if (threadIdx.x == 0) parts[blockIdx.x] = acc;
}

__global__ void sum_parts_kernel(double* out, const double* parts, size_t count) {
  SP_SHARED(double, warp_results, kSumWarps);
  double acc = 0;
  for (size_t b = threadIdx.x; b < count; b += kSumThreads) acc += parts[b];
  acc = block_reduce<kSumThreads>(acc, &warp_results[0], SumOp{});
  if (threadIdx.x == 0) *out += acc;  // the accumulators of a step add up over its calls
}

template <bool kSquares>
void sum_to_device(double* out, const float* x, size_t n, void* scratch, cudaStream_t stream) {
  SP_ASSERT(out && x && scratch, "sum_cuda / sum_squares_cuda: null pointer");
  const size_t blocks = sum_blocks(n);
  double* parts = static_cast<double*>(scratch);  // (blocks)
  SP_LAUNCH(block_sums_kernel<kSquares>, unsigned(blocks), kSumThreads, 0, stream, parts, x, n);
  SP_LAUNCH(sum_parts_kernel, 1, kSumThreads, 0, stream, out, parts, blocks);
}

}  // namespace

template <class W>
void adamw_cuda(float* master, W* weights, const float* grad, float* m, float* v, size_t n, AdamWStep a,
                cudaStream_t stream) {
  SP_ASSERT(master && grad && m && v, "adamw_cuda: null pointer");
  SP_ASSERT(a.bias_correction1 > 0 && a.bias_correction2 > 0, "adamw_cuda: bias corrections {} {} (step < 1?)",
            a.bias_correction1, a.bias_correction2);
  SP_LAUNCH(adamw_kernel<W>, elementwise_grid(n), kElementwiseThreads, 0, stream, master, weights, grad, m, v, n, a);
}

size_t sum_scratch_bytes(size_t n) { return sum_blocks(n) * sizeof(double); }

void sum_squares_cuda(double* out, const float* x, size_t n, void* scratch, cudaStream_t stream) {
  sum_to_device<true>(out, x, n, scratch, stream);
}

void sum_cuda(double* out, const float* x, size_t n, void* scratch, cudaStream_t stream) {
  sum_to_device<false>(out, x, n, scratch, stream);
}

template void adamw_cuda<float>(float*, float*, const float*, float*, float*, size_t, AdamWStep,
                                cudaStream_t);
template void adamw_cuda<__nv_bfloat16>(float*, __nv_bfloat16*, const float*, float*, float*, size_t,
                                        AdamWStep, cudaStream_t);

}  // namespace sp::cuda
