// Three passes over x (N, C):
//   1. with an outlier threshold, one thread per column marks the columns holding any |x| >= threshold;
//   2. one block per row reduces the row's absmax over the unmarked columns (and, per tensor, one block
//      then reduces the rows' absmax to one);
//   3. one block per row rewrites its values: q(x * L / m) * (m / L) with q = rint or the e4m3 rounding,
//      fp16 rounding in the marked columns.
// Scratch: the column marks (C unsigned), then the row absmax values (N + 1 floats, the last per tensor).
#include "act_quant.cuh"
#include "common.cuh"
#include "device_util.cuh"
#include "reduce.cuh"

namespace sp::cuda {

namespace {

constexpr unsigned kThreads = 256;
constexpr size_t kMaxGrid = (size_t(1) << 31) - 1;

// As sp::round_to_format (src/cpu/act_quant.cpp): the nearest value of a float format with `mantissa`
// bits and normal exponents down to min_exp, halves to even, saturating at max_value.
__device__ __forceinline__ float round_to_format(float v, int mantissa, int min_exp, float max_value) {
  const float a = fminf(fabsf(v), max_value);
  int e = 0;
  frexpf(a, &e);
  const int binade = e - 1 > min_exp ? e - 1 : min_exp;
  const float step = ldexpf(1.0f, binade - mantissa);
  return copysignf(fminf(rintf(a / step) * step, max_value), v);
}

template <class T>
__global__ void mark_outlier_columns_kernel(unsigned* marks, const T* x, size_t N, size_t C, float threshold) {
  const size_t c = blockIdx.x * size_t(kThreads) + threadIdx.x;
  if (c >= C) return;
  unsigned mark = 0;
  for (size_t n = 0; n < N && !mark; ++n) mark = fabsf(to_f32(x[n * C + c])) >= threshold;
  marks[c] = mark;
}

template <class T>
__global__ void row_absmax_kernel(float* absmax, const T* x, const unsigned* marks, size_t C) {
  SP_SHARED(float, warp_results, kThreads / kWarpSize);
  const T* xr = x + blockIdx.x * C;  // (C)
  float m = 0;
  for (size_t c = threadIdx.x; c < C; c += kThreads)
    if (!marks || !marks[c]) m = fmaxf(m, fabsf(to_f32(xr[c])));
  m = block_reduce<kThreads>(m, &warp_results[0], MaxOp{});
  if (threadIdx.x == 0) absmax[blockIdx.x] = m;
}

__global__ void tensor_absmax_kernel(float* absmax, size_t N) {  // absmax[N] = max of absmax[0 .. N)
  SP_SHARED(float, warp_results, kThreads / kWarpSize);
  float m = 0;
  for (size_t n = threadIdx.x; n < N; n += kThreads) m = fmaxf(m, absmax[n]);
  m = block_reduce<kThreads>(m, &warp_results[0], MaxOp{});
  if (threadIdx.x == 0) absmax[N] = m;
}

template <class T>
__global__ void fake_quant_kernel(T* x, const float* absmax, const unsigned* marks, size_t C, ActQuant kind,
                                  bool per_tensor, size_t N) {
  T* xr = x + blockIdx.x * C;  // (C)
  const float m = absmax[per_tensor ? N : blockIdx.x];
  const float L = float(act_quant_levels(kind));
  for (size_t c = threadIdx.x; c < C; c += kThreads) {
    const float v = to_f32(xr[c]);
    if (marks && marks[c]) {
      xr[c] = from_f32<T>(round_to_format(v, 10, -14, 65504.0f));
    } else if (m > 0) {
      const float s = v * L / m;  // as the CPU reference: v * L exact for bf16 values, one rounding
      xr[c] = from_f32<T>((kind == ActQuant::Int8 ? rintf(s) : round_to_format(s, 3, -6, 448.0f)) * (m / L));
    }
  }
}

}  // namespace

size_t act_quant_scratch_bytes(size_t N, size_t C) { return C * sizeof(unsigned) + (N + 1) * sizeof(float) + 16; }

template <class T>
void act_quant_cuda(T* x, size_t N, size_t C, const ActQuantArgs& a, void* scratch, cudaStream_t stream) {
  SP_ASSERT(x && scratch, "act_quant_cuda: null pointer");
  SP_ASSERT(N <= kMaxGrid && C > 0, "act_quant_cuda: N={} C={}", N, C);
  if (a.kind == ActQuant::None || N == 0) return;
  unsigned* marks = a.outlier_threshold > 0 ? static_cast<unsigned*>(scratch) : nullptr;  // (C)
  float* absmax = reinterpret_cast<float*>(static_cast<char*>(scratch) + ((C * sizeof(unsigned) + 15) / 16) * 16);
  if (marks)
    SP_LAUNCH(mark_outlier_columns_kernel<T>, unsigned((C + kThreads - 1) / kThreads), kThreads, 0, stream, marks, x,
              N, C, float(a.outlier_threshold));
  SP_LAUNCH(row_absmax_kernel<T>, unsigned(N), kThreads, 0, stream, absmax, static_cast<const T*>(x),
            static_cast<const unsigned*>(marks), C);
  if (a.per_tensor) SP_LAUNCH(tensor_absmax_kernel, 1u, kThreads, 0, stream, absmax, N);
  SP_LAUNCH(fake_quant_kernel<T>, unsigned(N), kThreads, 0, stream, x, static_cast<const float*>(absmax),
            static_cast<const unsigned*>(marks), C, a.kind, a.per_tensor, N);
}

template void act_quant_cuda<float>(float*, size_t, size_t, const ActQuantArgs&, void*, cudaStream_t);
template void act_quant_cuda<__nv_bfloat16>(__nv_bfloat16*, size_t, size_t, const ActQuantArgs&, void*,
                                            cudaStream_t);

}  // namespace sp::cuda
