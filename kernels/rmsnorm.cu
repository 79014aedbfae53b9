// With xhat = x * rstd and g = dout * w, per row:
//   dx += rstd * (g - xhat * mean(g * xhat)),    dw += sum over rows of dout * xhat
// The forward gives each row to one warp. The backward gives each part of consecutive rows (split_rows) to
// one block, which walks its rows in order: the block reduces a row's sum(g * x), then every thread
// updates its channels of dx and of the part's dw, kept in fp32 in shared memory (a part has at most
// N / 512 rows, rounded up); sum_row_parts_cuda adds the parts in fp64.
#include "common.cuh"
#include "device_util.cuh"
#include "reduce.cuh"
#include "rmsnorm.cuh"

namespace sp::cuda {

namespace {

constexpr unsigned kThreads = 256;
constexpr unsigned kWarps = kThreads / kWarpSize;
constexpr unsigned kForwardRowsPerBlock = kWarps;          // one warp per row
constexpr size_t kMaxC = 8192;                             // the backward's dw part: 32 KiB of shared memory
constexpr size_t kMaxGrid = (size_t(1) << 31) - 1;         // the grid's x limit

template <class T>
__global__ void rmsnorm_forward_kernel(T* out, float* rstd, const T* x, const T* w, size_t N, size_t C, float eps) {
  const unsigned lane = threadIdx.x % kWarpSize;
  const size_t n = blockIdx.x * size_t(kForwardRowsPerBlock) + threadIdx.x / kWarpSize;
  if (n >= N) return;  // the whole warp leaves: no lane of it takes part in a shuffle
  const T* xr = x + n * C;  // (C)
  T* outr = out + n * C;    // (C)
  float ss = 0;
  for (size_t c = lane; c < C; c += kWarpSize) ss += to_f32(xr[c]) * to_f32(xr[c]);
  ss = warp_reduce(ss, SumOp{});
  const float r = 1.0f / sqrtf(ss / float(C) + eps);
  if (lane == 0) rstd[n] = r;
  for (size_t c = lane; c < C; c += kWarpSize) outr[c] = from_f32<T>(to_f32(xr[c]) * r * to_f32(w[c]));
}

template <class T>
__global__ void rmsnorm_backward_kernel(T* dx, double* dw_parts /* (parts, C) */, const T* dout, const T* x,
                                        const T* w, const float* rstd, size_t N, size_t C, size_t rows_per_part) {
  SP_DYNAMIC_SHARED(float, dw_part);  // (C): thread t alone touches channels t, t + kThreads, ...
  SP_SHARED(float, warp_results, kWarps);
  const size_t n0 = blockIdx.x * rows_per_part, n1 = n0 + rows_per_part < N ? n0 + rows_per_part : N;
  for (size_t c = threadIdx.x; c < C; c += kThreads) dw_part[c] = 0;
  for (size_t n = n0; n < n1; ++n) {
    const T* xr = x + n * C;      // (C)
    const T* dor = dout + n * C;  // (C)
    T* dxr = dx + n * C;          // (C)
    const float r = rstd[n];
    float gx = 0;  // sum of g * x over the thread's channels
    for (size_t c = threadIdx.x; c < C; c += kThreads) gx += to_f32(dor[c]) * to_f32(w[c]) * to_f32(xr[c]);
    const float mean_gx = r * block_reduce<kThreads>(gx, &warp_results[0], SumOp{}) / float(C);
    for (size_t c = threadIdx.x; c < C; c += kThreads) {
      const float g = to_f32(dor[c]), xhat = to_f32(xr[c]) * r;
      dw_part[c] += g * xhat;
      dxr[c] = from_f32<T>(to_f32(dxr[c]) + r * (g * to_f32(w[c]) - xhat * mean_gx));
    }
  }
  for (size_t c = threadIdx.x; c < C; c += kThreads) dw_parts[blockIdx.x * C + c] = double(dw_part[c]);
}

}  // namespace

template <class T>
void rmsnorm_forward_cuda(T* out, float* rstd, const T* x, const T* w, size_t N, size_t C, double eps,
                          cudaStream_t stream) {
  SP_ASSERT(out && rstd && x && w, "rmsnorm_forward_cuda: null pointer");
  SP_ASSERT(C > 0 && eps >= 0, "rmsnorm_forward_cuda: C={} eps={}", C, eps);
  const size_t blocks = (N + kForwardRowsPerBlock - 1) / kForwardRowsPerBlock;
  SP_ASSERT(blocks <= kMaxGrid, "rmsnorm_forward_cuda: N={} rows", N);
  if (N == 0) return;
  SP_LAUNCH(rmsnorm_forward_kernel<T>, unsigned(blocks), kThreads, 0, stream, out, rstd, x, w, N, C, float(eps));
}

size_t rmsnorm_backward_scratch_bytes(size_t N, size_t C) { return split_rows(N).count * C * sizeof(double); }

template <class T>
void rmsnorm_backward_cuda(T* dx, float* dw, const T* dout, const T* x, const T* w, const float* rstd, size_t N,
                           size_t C, void* scratch, cudaStream_t stream) {
  SP_ASSERT(dx && dw && dout && x && w && rstd && scratch, "rmsnorm_backward_cuda: null pointer");
  SP_ASSERT(C > 0 && C <= kMaxC, "rmsnorm_backward_cuda: C={} must be in [1, {}]", C, kMaxC);
  if (N == 0) return;
  const RowParts parts = split_rows(N);
  double* dw_parts = static_cast<double*>(scratch);  // (parts.count, C)
  SP_LAUNCH(rmsnorm_backward_kernel<T>, unsigned(parts.count), kThreads, C * sizeof(float), stream, dx, dw_parts,
            dout, x, w, rstd, N, C, parts.rows_per_part);
  sum_row_parts_cuda(dw, dw_parts, parts.count, C, stream);
}

using bf16 = __nv_bfloat16;
template void rmsnorm_forward_cuda<float>(float*, float*, const float*, const float*, size_t, size_t, double,
                                          cudaStream_t);
template void rmsnorm_forward_cuda<bf16>(bf16*, float*, const bf16*, const bf16*, size_t, size_t, double,
                                         cudaStream_t);
template void rmsnorm_backward_cuda<float>(float*, float*, const float*, const float*, const float*, const float*,
                                           size_t, size_t, void*, cudaStream_t);
template void rmsnorm_backward_cuda<bf16>(bf16*, float*, const bf16*, const bf16*, const bf16*, const float*,
                                          size_t, size_t, void*, cudaStream_t);

}  // namespace sp::cuda
