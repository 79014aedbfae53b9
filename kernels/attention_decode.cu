// Split-K decode attention (attention_decode.cuh). Two kernels:
//   partial  a block of 4 warps per (query row, key split, head, batch). Each warp walks every 4th key of the
//            split: the score q . k / sqrt(D) is a warp sum over the lanes' D / 32 dims each (coalesced
//            loads of the key row), the policy's term updates the warp's running shift c, denominator l and
//            unnormalised output acc (each lane its D / 32 dims), rescaled by exp(c - c') when the shift
//            moves. The 4 warps' states merge through shared memory into the split's (c, l, acc), stored
//            to scratch.
//   merge    a block per (query row, head, batch): c = max over the splits, l and acc summed with the
//            factors exp(c_s - c), then row_end gives 1 / denominator and lse, as in the training kernels.
//            A sink (softmax1, learned sinks) is one more state, (s, 1, 0), merged here once per row.
// Every sum runs in an order fixed by the sizes: the results are deterministic.
#include "common.cuh"

#include "attention_decode.cuh"
#include "attention_policy.cuh"
#include "device_util.cuh"

#include <algorithm>
#include <cmath>

namespace sp::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int64_t kMinKeysPerSplit = 128;  // fewer keys per block would not pay for the merge
constexpr int64_t kMaxSplits = 64;
constexpr int64_t kTargetBlocks = 264;     // two blocks per SM on a 132-SM H100 / H200
constexpr int64_t kMaxRows = 4;            // decode rows; longer chunks fill the GPU with the training kernel

__device__ __forceinline__ float warp_sum(float x) {
  SP_UNROLL
  for (int o = 16; o > 0; o /= 2) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

// The state of a split (or of the rows merged so far), in scratch: [c, l, acc (D)].
template <int D>
constexpr int kStateFloats = D + 2;

template <class N, int D, class T>
__global__ void __launch_bounds__(kThreads) attention_decode_partial_kernel(
    const T* q, const T* k, const T* v, float* part, int64_t Tq, int64_t Tk, int64_t H, int64_t Hkv,
    int64_t q_offset, int splits) {
  constexpr int kPer = D / 32;  // dims per lane
  SP_SHARED(float, state, kWarps * kStateFloats<D>);
  const int t = int(blockIdx.x) / splits, split = int(blockIdx.x) % splits;
  const int64_t h = blockIdx.y, b = blockIdx.z, hk = h / (H / Hkv);
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int64_t per = (Tk + splits - 1) / splits;
  const int64_t j0 = int64_t(split) * per, kend = q_offset + t + 1;  // row t sees keys 0 .. kend - 1
  const int64_t j1 = j0 + per < kend ? j0 + per : kend;               // the visible keys of the split
  const float scale = 1.0f / sqrtf(float(D));

  float qr[kPer], acc[kPer];
  const T* qrow = q + ((size_t(b) * Tq + t) * H + h) * D;
  SP_UNROLL
  for (int i = 0; i < kPer; ++i) {
    qr[i] = to_f32(qrow[lane + 32 * i]) * scale;
    acc[i] = 0.0f;
  }
  float c = N::kInitialShift, l = 0.0f;
  for (int64_t j = j0 + warp; j < j1; j += kWarps) {
    const size_t row = ((size_t(b) * Tk + j) * Hkv + hk) * D;
    float x = 0.0f;
    SP_UNROLL
    for (int i = 0; i < kPer; ++i) x += qr[i] * to_f32(k[row + lane + 32 * i]);
    x = warp_sum(x);
    const float next = fmaxf(c, x);
    if (next != c) {
      const float alpha = expf(c - next);
      l *= alpha;
      SP_UNROLL
      for (int i = 0; i < kPer; ++i) acc[i] *= alpha;
      c = next;
    }
    const attn::Term term = N::term(x, c, expf(-c));
    l += term.den;
    SP_UNROLL
    for (int i = 0; i < kPer; ++i) acc[i] += term.w * to_f32(v[row + lane + 32 * i]);
  }
  float* mine = &state[warp * kStateFloats<D>];
  if (lane == 0) {
    mine[0] = c;
    mine[1] = l;
  }
  SP_UNROLL
  for (int i = 0; i < kPer; ++i) mine[2 + lane + 32 * i] = acc[i];
  __syncthreads();  // every warp's state is in shared memory

  float* out = part + ((((size_t(b) * H + h) * Tq + t) * splits) + split) * kStateFloats<D>;
  float cmax = state[0];
  for (int w = 1; w < kWarps; ++w) cmax = fmaxf(cmax, state[w * kStateFloats<D>]);
  for (int d = int(threadIdx.x); d < D + 1; d += kThreads) {  // d < D: acc[d]; d == D: l
    float sum = 0.0f;
    for (int w = 0; w < kWarps; ++w) {
      const float* s = &state[w * kStateFloats<D>];
      const float f = s[0] == cmax ? 1.0f : expf(s[0] - cmax);  // also when both are -inf
      sum += f * (d < D ? s[2 + d] : s[1]);
    }
    if (d < D) out[2 + d] = sum;
    else out[1] = sum;
  }
  if (threadIdx.x == 0) out[0] = cmax;
}

template <class N, int D, class T>
__global__ void __launch_bounds__(kThreads) attention_decode_merge_kernel(const float* part, const T* sinks, T* out,
                                                                          float* lse, int64_t Tq, int64_t H, int splits,
                                                                          float eps) {
  const int64_t t = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const float* states = part + (((size_t(b) * H + h) * Tq + t) * splits) * kStateFloats<D>;
  const attn::RowStart start = attn::row_start<N>(attn::sink_logit(sinks, h));  // (c, l) of no key, or the sink
  float cmax = start.c;
  for (int s = 0; s < splits; ++s) cmax = fmaxf(cmax, states[s * kStateFloats<D>]);
  float l = start.l == 0.0f ? 0.0f : (start.c == cmax ? 1.0f : expf(start.c - cmax)) * start.l;
  for (int s = 0; s < splits; ++s) {
    const float* st = states + s * kStateFloats<D>;
    l += (st[0] == cmax ? 1.0f : expf(st[0] - cmax)) * st[1];
  }
  const attn::RowEnd end = attn::row_end<N>(cmax, l, eps);
  T* orow = out + ((size_t(b) * Tq + t) * H + h) * D;
  for (int d = int(threadIdx.x); d < D; d += kThreads) {
    float sum = 0.0f;
    for (int s = 0; s < splits; ++s) {
      const float* st = states + s * kStateFloats<D>;
      sum += (st[0] == cmax ? 1.0f : expf(st[0] - cmax)) * st[2 + d];
    }
    orow[d] = from_f32<T>(sum * end.inv_den);
  }
  if (threadIdx.x == 0) lse[(size_t(b) * H + h) * Tq + t] = end.lse;
}

}  // namespace

bool attention_decode_applies(const AttentionArgs& a) { return a.Tq <= kMaxRows && a.Tk >= 2 * kMinKeysPerSplit; }

int attention_decode_splits(const AttentionArgs& a) {
  const int64_t rows = std::max<int64_t>(1, a.B * a.H * a.Tq);
  const int64_t by_keys = (a.Tk + kMinKeysPerSplit - 1) / kMinKeysPerSplit;
  const int64_t by_blocks = (kTargetBlocks + rows - 1) / rows;
  return int(std::max<int64_t>(1, std::min({by_keys, by_blocks, kMaxSplits})));
}

size_t attention_decode_scratch_bytes(const AttentionArgs& a) {
  return size_t(a.B * a.H * a.Tq) * size_t(attention_decode_splits(a)) * size_t(a.D + 2) * sizeof(float);
}

template <class T>
void attention_decode_cuda(const AttentionArgs& a, const T* q, const T* k, const T* v, const T* sinks, T* out,
                           float* lse, void* scratch, cudaStream_t s) {
  SP_ASSERT(a.B >= 1 && a.Tq >= 1 && a.Tq <= a.Tk && a.q_offset == a.Tk - a.Tq && a.H % a.Hkv == 0,
            "attention_decode_cuda: B={} Tq={} Tk={} H={} Hkv={} q_offset={}", a.B, a.Tq, a.Tk, a.H, a.Hkv, a.q_offset);
  SP_ASSERT(q && k && v && out && lse && scratch, "attention_decode_cuda: null pointer");
  const int splits = attention_decode_splits(a);
  float* part = static_cast<float*>(scratch);
  attn::dispatch_attention(a.norm, a.D, [&](auto norm, auto head_dim) {
    using N = decltype(norm);
    constexpr int D = decltype(head_dim)::value;
    SP_LAUNCH((attention_decode_partial_kernel<N, D, T>), dim3(unsigned(a.Tq * splits), unsigned(a.H), unsigned(a.B)),
              dim3(kThreads), 0, s, q, k, v, part, a.Tq, a.Tk, a.H, a.Hkv, a.q_offset, splits);
    SP_LAUNCH((attention_decode_merge_kernel<N, D, T>), dim3(unsigned(a.Tq), unsigned(a.H), unsigned(a.B)),
              dim3(kThreads), 0, s, part, sinks, out, lse, a.Tq, a.H, splits, a.softpick_eps);
  });
}

template void attention_decode_cuda<float>(const AttentionArgs&, const float*, const float*, const float*,
                                           const float*, float*, float*, void*, cudaStream_t);
template void attention_decode_cuda<__nv_bfloat16>(const AttentionArgs&, const __nv_bfloat16*, const __nv_bfloat16*,
                                                   const __nv_bfloat16*, const __nv_bfloat16*, __nv_bfloat16*, float*,
                                                   void*, cudaStream_t);

}  // namespace sp::cuda
