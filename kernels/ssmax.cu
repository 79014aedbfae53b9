// With a = s_h * log(pos + 2):  q_out = a * q_in,  dq_in = a * dq_out,  ds_h += sum over (b, t) of
// log(t + 2) * (dq_out . q_in). Warp w of a block takes heads w, w + kWarps, ... of a position, its lanes
// the head's D elements. The forward gives each position to one block; the backward gives each part of
// consecutive positions (split_rows) to one block, and lane k of warp w keeps the part's ds of head
// w + k * kWarps in a register, so no two threads add to the same ds; sum_row_parts_cuda adds the parts.
// ds is formed in fp64 throughout, as the CPU reference does: a head's ds is one number summed over
// B * T dot products of D terms, and it can cancel far below them.
#include "common.cuh"
#include "device_util.cuh"
#include "reduce.cuh"
#include "ssmax.cuh"

#include <cmath>

namespace sp::cuda {

namespace {

constexpr unsigned kThreads = 256;
constexpr unsigned kWarps = kThreads / kWarpSize;
constexpr size_t kMaxHeads = kWarps * kWarpSize;    // the backward's ds: one register of each thread
constexpr size_t kMaxGrid = (size_t(1) << 31) - 1;  // the grid's x limit

template <class T>
__device__ __forceinline__ float head_scale(T s_h, double log_pos) {
  return float(double(to_f32(s_h)) * log_pos);
}

template <class T>
__global__ void ssmax_forward_kernel(T* q_out, const T* q_in, const T* s, size_t T_, size_t H, size_t D,
                                     size_t pos0) {
  const unsigned lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const size_t bt = blockIdx.x;
  const double log_pos = log(double(pos0 + bt % T_) + 2.0);
  for (size_t h = warp; h < H; h += kWarps) {
    const float a = head_scale(s[h], log_pos);
    const size_t off = (bt * H + h) * D;  // head vector (D) at (b, t, h)
    for (size_t d = lane; d < D; d += kWarpSize) q_out[off + d] = from_f32<T>(a * to_f32(q_in[off + d]));
  }
}

template <class T>
__global__ void ssmax_backward_kernel(T* dq_in, double* ds_parts /* (parts, H) */, const T* dq_out, const T* q_in,
                                      const T* s, size_t BT, size_t T_, size_t H, size_t D, size_t rows_per_part) {
  const unsigned lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const size_t p0 = blockIdx.x * rows_per_part, p1 = p0 + rows_per_part < BT ? p0 + rows_per_part : BT;
  double ds = 0;  // of head warp + lane * kWarps, over this part's positions
  for (size_t bt = p0; bt < p1; ++bt) {
    const double log_pos = log(double(bt % T_) + 2.0);
    for (size_t h = warp; h < H; h += kWarps) {
      const float a = head_scale(s[h], log_pos);
      const size_t off = (bt * H + h) * D;  // head vector (D) at (b, t, h)
      double dot = 0;
      for (size_t d = lane; d < D; d += kWarpSize) {
        const float g = to_f32(dq_out[off + d]);
        dq_in[off + d] = from_f32<T>(a * g);
        dot += double(g) * double(to_f32(q_in[off + d]));
      }
      dot = warp_reduce(dot, SumOp{});
      if (h / kWarps == lane) ds += log_pos * dot;
    }
  }
  const size_t h = warp + size_t(lane) * kWarps;
  if (h < H) ds_parts[blockIdx.x * H + h] = ds;
}

}  // namespace

template <class T>
void ssmax_forward_cuda(T* q_out, const T* q_in, const T* s, size_t B, size_t T_, size_t H, size_t D, size_t pos0,
                        cudaStream_t stream) {
  SP_ASSERT(q_out && q_in && s, "ssmax_forward_cuda: null pointer");
  SP_ASSERT(B * T_ <= kMaxGrid, "ssmax_forward_cuda: B={} T={}", B, T_);
  if (B * T_ == 0) return;
  SP_LAUNCH(ssmax_forward_kernel<T>, unsigned(B * T_), kThreads, 0, stream, q_out, q_in, s, T_, H, D, pos0);
}

size_t ssmax_backward_scratch_bytes(size_t B, size_t T_, size_t H) {
  return split_rows(B * T_).count * H * sizeof(double);
}

template <class T>
void ssmax_backward_cuda(T* dq_in, float* ds, const T* dq_out, const T* q_in, const T* s, size_t B, size_t T_,
                         size_t H, size_t D, void* scratch, cudaStream_t stream) {
  SP_ASSERT(dq_in && ds && dq_out && q_in && s && scratch, "ssmax_backward_cuda: null pointer");
  SP_ASSERT(H <= kMaxHeads, "ssmax_backward_cuda: H={} heads, at most {}", H, kMaxHeads);
  if (B * T_ == 0 || H == 0) return;
  const RowParts parts = split_rows(B * T_);
  double* ds_parts = static_cast<double*>(scratch);  // (parts.count, H)
  SP_LAUNCH(ssmax_backward_kernel<T>, unsigned(parts.count), kThreads, 0, stream, dq_in, ds_parts, dq_out, q_in, s,
            B * T_, T_, H, D, parts.rows_per_part);
  sum_row_parts_cuda(ds, ds_parts, parts.count, H, stream);
}

using bf16 = __nv_bfloat16;
template void ssmax_forward_cuda<float>(float*, const float*, const float*, size_t, size_t, size_t, size_t, size_t,
                                        cudaStream_t);
template void ssmax_forward_cuda<bf16>(bf16*, const bf16*, const bf16*, size_t, size_t, size_t, size_t, size_t,
                                       cudaStream_t);
template void ssmax_backward_cuda<float>(float*, float*, const float*, const float*, const float*, size_t, size_t,
                                         size_t, size_t, void*, cudaStream_t);
template void ssmax_backward_cuda<bf16>(bf16*, float*, const bf16*, const bf16*, const bf16*, size_t, size_t,
                                        size_t, size_t, void*, cudaStream_t);

}  // namespace sp::cuda
