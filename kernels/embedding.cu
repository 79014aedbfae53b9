// Backward: block n owns the dwte row of tokens[n] if n is that token's first row. It scans the tokens
// kThreads at a time: a match before n means another block owns the row (it leaves); the matches from n on
// are compacted into shared memory in row order, and every thread adds those dout rows to its channels of
// the dwte row. So each dwte row has one writer and sums its rows in order. The price is that every block
// reads the N token ids (N^2 / kThreads steps in all, from cache: the ids are 4N bytes), a fraction of a
// millisecond at N = 16k rows.
#include "common.cuh"
#include "device_util.cuh"
#include "embedding.cuh"
#include "reduce.cuh"

namespace sp::cuda {

namespace {

constexpr unsigned kThreads = 256;  // channels per step of a row, and token ids per step of the scan
constexpr unsigned kWarps = kThreads / kWarpSize;
constexpr size_t kMaxRows = (size_t(1) << 31) - 1;  // one block per row: the grid's x limit

template <class T>
__global__ void embedding_forward_kernel(T* out, const int32_t* tokens, const T* wte, size_t C) {
  const size_t n = blockIdx.x;
  const T* row = wte + size_t(tokens[n]) * C;  // (C)
  for (size_t c = threadIdx.x; c < C; c += kThreads) out[n * C + c] = row[c];
}

template <class T>
__global__ void embedding_backward_kernel(float* dwte, const T* dout, const int32_t* tokens, size_t N, size_t C) {
  SP_SHARED(unsigned, rows, kThreads);          // this step's rows of the token, in row order
  SP_SHARED(unsigned, warp_matches, kWarps);  // matches per warp of this step
  const size_t n = blockIdx.x;
  const int32_t token = tokens[n];
  float* drow = dwte + size_t(token) * C;  // (C)
  const unsigned lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  for (size_t base = 0; base < N; base += kThreads) {
    const size_t m = base + threadIdx.x;
    const bool match = m < N && tokens[m] == token;
    // An earlier row of the token: its block owns the dwte row. This barrier also keeps the previous
    // step's readers of rows and warp_matches ahead of the writes below.
    if (__syncthreads_or(match && m < n)) return;
    const unsigned ballot = __ballot_sync(kFullWarp, match);
    if (lane == 0) warp_matches[warp] = unsigned(__popc(ballot));
    __syncthreads();  // every warp's match count is visible before the offsets are taken
    unsigned offset = 0, count = 0;
    for (unsigned w = 0; w < kWarps; ++w) {
      offset += w < warp ? warp_matches[w] : 0;
      count += warp_matches[w];
    }
    if (match) rows[offset + unsigned(__popc(ballot & ((1u << lane) - 1)))] = unsigned(m);
    __syncthreads();  // the step's rows are in shared memory before any thread reads them
    if (count == 0) continue;
    for (size_t c = threadIdx.x; c < C; c += kThreads) {
      float acc = drow[c];
      for (unsigned j = 0; j < count; ++j) acc += to_f32(dout[size_t(rows[j]) * C + c]);
      drow[c] = acc;
    }
  }
}

}  // namespace

template <class T>
void embedding_forward_cuda(T* out, const int32_t* tokens, const T* wte, size_t N, size_t C, cudaStream_t stream) {
  SP_ASSERT(out && tokens && wte, "embedding_forward_cuda: null pointer");
  SP_ASSERT(N <= kMaxRows, "embedding_forward_cuda: N={} rows, at most {}", N, kMaxRows);
  if (N == 0) return;
  SP_LAUNCH(embedding_forward_kernel<T>, unsigned(N), kThreads, 0, stream, out, tokens, wte, C);
}

template <class T>
void embedding_backward_cuda(float* dwte, const T* dout, const int32_t* tokens, size_t N, size_t C,
                             cudaStream_t stream) {
  SP_ASSERT(dwte && dout && tokens, "embedding_backward_cuda: null pointer");
  SP_ASSERT(N <= kMaxRows, "embedding_backward_cuda: N={} rows, at most {}", N, kMaxRows);
  if (N == 0) return;
  SP_LAUNCH(embedding_backward_kernel<T>, unsigned(N), kThreads, 0, stream, dwte, dout, tokens, N, C);
}

using bf16 = __nv_bfloat16;
template void embedding_forward_cuda<float>(float*, const int32_t*, const float*, size_t, size_t, cudaStream_t);
template void embedding_forward_cuda<bf16>(bf16*, const int32_t*, const bf16*, size_t, size_t, cudaStream_t);
template void embedding_backward_cuda<float>(float*, const float*, const int32_t*, size_t, size_t, cudaStream_t);
template void embedding_backward_cuda<bf16>(float*, const bf16*, const int32_t*, size_t, size_t, cudaStream_t);

}  // namespace sp::cuda
