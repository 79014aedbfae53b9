// One block per row. Each thread keeps an online maximum and sum of exp(x - maximum) over its logits (one
// pass over the row); the block combines them into the row's logsumexp, then rewrites the row as dlogits.
#include "common.cuh"
#include "cross_entropy.cuh"
#include "reduce.cuh"

#include <cmath>

namespace sp::cuda {

namespace {

// A chunk of kLmHeadChunkRows rows is that many blocks: 512 threads a row keep enough loads in flight to
// fill the chip's memory pipeline.
constexpr unsigned kThreads = 512;
constexpr unsigned kWarps = kThreads / kWarpSize;
constexpr size_t kMaxGrid = (size_t(1) << 31) - 1;  // the grid's x limit

__global__ void cross_entropy_kernel(float* logits, float* row_loss, float* row_valid, const int32_t* targets,
                                     size_t V, float grad_scale, bool with_grad) {
  SP_SHARED(float, warp_results, kWarps);
  const size_t r = blockIdx.x;
  float* row = logits + r * V;  // (V)
  const int32_t target = targets[r];
  if (target < 0) {  // ignored: no loss, and a zero gradient row
    if (threadIdx.x == 0) row_loss[r] = row_valid[r] = 0;
    if (with_grad)
      for (size_t v = threadIdx.x; v < V; v += kThreads) row[v] = 0;
    return;
  }
  // read before the barriers of the reductions, so before any thread overwrites the row
  const float x_target = row[target];
  float m = -INFINITY, s = 0;  // this thread's maximum, and its sum of exp(x - m)
  for (size_t v = threadIdx.x; v < V; v += kThreads) {
    const float x = row[v];
    if (x > m) {
      s = s * expf(m - x) + 1.0f;
      m = x;
    } else {
      s += expf(x - m);
    }
  }
  const float row_max = block_reduce<kThreads>(m, &warp_results[0], MaxOp{});
  const float scaled = m == -INFINITY ? 0.0f : s * expf(m - row_max);  // a thread without logits adds 0
  const float log_sum = logf(block_reduce<kThreads>(scaled, &warp_results[0], SumOp{}));
  // lse = row_max + log_sum is never rounded as a whole: at large logits its ulp would be the error of the
  // loss and of every probability
  if (threadIdx.x == 0) {
    row_loss[r] = (row_max - x_target) + log_sum;
    row_valid[r] = 1;
  }
  if (!with_grad) return;
  for (size_t v = threadIdx.x; v < V; v += kThreads) {
    float d = expf((row[v] - row_max) - log_sum) * grad_scale;
    if (v == size_t(target)) d -= grad_scale;
    row[v] = d;
  }
}

}  // namespace

void cross_entropy_cuda(float* logits, float* row_loss, float* row_valid, const int32_t* targets, size_t rows,
                        size_t V, float grad_scale, bool with_grad, cudaStream_t stream) {
  SP_ASSERT(logits && row_loss && row_valid && targets, "cross_entropy_cuda: null pointer");
  SP_ASSERT(V > 0 && rows <= kMaxGrid, "cross_entropy_cuda: rows={} V={}", rows, V);
  if (rows == 0) return;
  SP_LAUNCH(cross_entropy_kernel, unsigned(rows), kThreads, 0, stream, logits, row_loss, row_valid, targets, V,
            grad_scale, with_grad);
}

}  // namespace sp::cuda
