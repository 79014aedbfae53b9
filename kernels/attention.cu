// Causal attention on the GPU: the kernels (layer 1) and their launchers (layer 2). The contract is in
// attention.cuh, the math in docs/attention.md, the normalisers in attention_policy.cuh.
//
// Every kernel runs 128 threads as a 16 x 8 grid: thread (ty, tx) owns rows ty + 16 r and columns tx + 8 c
// of each register tile, so the columns of a tile row lie in 8 consecutive lanes of one warp: a row
// reduction is three xor shuffles, and a row's weights written to shared memory are read back by the warp
// that wrote them. Tiles live in shared memory as fp32 with rows padded by one float, so walking down a
// column touches 32 different banks. Inputs become fp32 when a tile is loaded; every sum is fp32.
//
// Forward: one block per (query block of 64 rows, head, batch) walks the key tiles of 32 keys up to its
// last row; the running shift, denominator and output accumulator stay in registers.
// Backward: delta = rowsum(O * dO) first (one warp per row), then two kernels that each own their outputs,
// so nothing is summed across blocks and two runs give the same bits:
//   * dk, dv: one block per (key block of 32, kv head, batch) walks the group's query heads and query
//     blocks in a fixed order;
//   * dq: one block per (query block of 32, head, batch) walks the key tiles.
// The price of that ownership: both kernels recompute S = Q K^T and dP = dO V^T, so a (query, key) tile
// pair costs 7 tile products instead of the 5 of a kernel that adds dq atomically (1.4x the FLOPs).
#include "common.cuh"

#include "attention.cuh"
#include "attention_mma.cuh"
#include "attention_policy.cuh"
#include "reduce.cuh"

#include <algorithm>
#include <cmath>
#include <type_traits>

namespace sp::cuda {
namespace {

constexpr int kThreads = 128;                        // every attention kernel: 4 warps
constexpr int kLanesPerRow = 8;                      // the columns of a tile row: 8 consecutive lanes
constexpr int kRowGroups = kThreads / kLanesPerRow;  // 16: thread (ty, tx) owns rows ty + 16 r
constexpr int kFwdBlockQ = 64;                       // forward: query rows per block
constexpr int kFwdBlockK = 32;                       // forward: keys per tile
constexpr int kBwdBlock = 32;                        // backward: query rows and keys per tile
constexpr int kDeltaRows = kThreads / 32;            // delta: one warp per row
static_assert(kFwdBlockQ % kRowGroups == 0 && kBwdBlock % kRowGroups == 0, "tile rows split over 16 groups");
static_assert(kFwdBlockK % kLanesPerRow == 0 && kBwdBlock % kLanesPerRow == 0, "tile columns split over 8 lanes");

constexpr int padded(int n) { return n + 1; }  // row stride of a shared tile with n columns

// Each kernel's tiles, one after the other in its dynamic shared memory (73 KiB at D = 128, 41 KiB at 64).
template <int D>
struct ForwardTiles {
  float* q;  // (kFwdBlockQ, D) queries, then the output block
  float* k;  // (kFwdBlockK, D) keys
  float* v;  // (kFwdBlockK, D) values
  float* p;  // (kFwdBlockQ, kFwdBlockK) weights
  static constexpr int kFloats = (kFwdBlockQ + 2 * kFwdBlockK) * padded(D) + kFwdBlockQ * padded(kFwdBlockK);
  __device__ explicit ForwardTiles(float* smem)
      : q(smem), k(q + kFwdBlockQ * padded(D)), v(k + kFwdBlockK * padded(D)), p(v + kFwdBlockK * padded(D)) {}
};

// Both backward kernels; the dq kernel leaves p unused.
template <int D>
struct BackwardTiles {
  float* q;      // (kBwdBlock, D) queries, then dq
  float* dout;   // (kBwdBlock, D) output gradients
  float* k;      // (kBwdBlock, D) keys, then dk
  float* v;      // (kBwdBlock, D) values, then dv
  float* p;      // (kBwdBlock, kBwdBlock) weights
  float* ds;     // (kBwdBlock, kBwdBlock) score gradients
  float* lse;    // (kBwdBlock) per query row
  float* base;   // (kBwdBlock) exp(-lse)
  float* delta;  // (kBwdBlock) rowsum(O * dO)
  static constexpr int kFloats = 4 * kBwdBlock * padded(D) + 2 * kBwdBlock * padded(kBwdBlock) + 3 * kBwdBlock;
  __device__ explicit BackwardTiles(float* smem)
      : q(smem), dout(q + kBwdBlock * padded(D)), k(dout + kBwdBlock * padded(D)), v(k + kBwdBlock * padded(D)),
        p(v + kBwdBlock * padded(D)), ds(p + kBwdBlock * padded(kBwdBlock)), lse(ds + kBwdBlock * padded(kBwdBlock)),
        base(lse + kBwdBlock), delta(base + kBwdBlock) {}
};

// ---- loads, stores and tile products ----

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ void store(float* p, float x) { *p = x; }
__device__ __forceinline__ void store(__nv_bfloat16* p, float x) { *p = __float2bfloat16(x); }

// Rows [0, n) of a (kRows, D) block of global memory (row stride ld) into a padded fp32 tile. Rows from n
// on become zeros, so the products of masked entries never meet uninitialised memory (0 * NaN = NaN).
// Consecutive threads read consecutive elements of a row: the reads are coalesced.
template <int kRows, int D, class T>
__device__ void load_tile(float* tile, const T* src, int64_t ld, int64_t n) {
  for (int i = int(threadIdx.x); i < kRows * D; i += kThreads) {
    const int r = i / D, d = i % D;
    tile[r * padded(D) + d] = r < n ? to_float(src[r * ld + d]) : 0.0f;
  }
}

// Rows [0, n) of a padded fp32 tile to a block of global memory (row stride ld), as T; coalesced writes.
template <int kRows, int D, class T>
__device__ void store_tile(T* dst, int64_t ld, int64_t n, const float* tile) {
  for (int i = int(threadIdx.x); i < kRows * D; i += kThreads) {
    const int r = i / D, d = i % D;
    if (r < n) store(dst + r * ld + d, tile[r * padded(D) + d]);
  }
}

// lse, exp(-lse) and delta of query rows [0, n) into the backward tiles; the rows from n on get lse = +inf
// and delta = 0, the statistics of an empty row (every weight and gradient exactly 0).
template <int D>
__device__ void load_row_stats(const BackwardTiles<D>& t, const float* lse, const float* delta, int64_t n) {
  for (int i = int(threadIdx.x); i < kBwdBlock; i += kThreads) {
    t.lse[i] = i < n ? lse[i] : INFINITY;
    t.base[i] = expf(-t.lse[i]);
    t.delta[i] = i < n ? delta[i] : 0.0f;
  }
}

// acc (kR, kC) += A (kR, n) B (n, kC) over this thread's rows and columns, with A(r, i) = a[r * kAr + i]
// and B(i, c) = b[i * kBi + c * kBc]. Each step loads kR + kC floats for kR * kC multiply-adds.
template <int n, int kAr, int kBi, int kBc, int kR, int kC>
__device__ __forceinline__ void add_product(float (&acc)[kR][kC], const float* a, const float* b) {
  for (int i = 0; i < n; ++i) {
    float x[kR], y[kC];
    for (int r = 0; r < kR; ++r) x[r] = a[r * kAr + i];
    for (int c = 0; c < kC; ++c) y[c] = b[i * kBi + c * kBc];
    for (int r = 0; r < kR; ++r)
      for (int c = 0; c < kC; ++c) acc[r][c] += x[r] * y[c];
  }
}

// This thread's part of A B^T for two padded (rows, D) tiles; a points at its first row (ty), b at its
// first column's row (tx). Every kernel forms scores this way, so they come out with the same bits.
template <int D, int kR, int kC>
__device__ __forceinline__ void add_abt(float (&acc)[kR][kC], const float* a, const float* b) {
  add_product<D, kRowGroups * padded(D), 1, kLanesPerRow * padded(D)>(acc, a, b);
}

// This thread's part of W X for a padded (rows, n) weight tile W and a padded (n, D) tile X; w points at
// its first row (ty), x at its first column (tx).
template <int n, int D, int kR, int kC>
__device__ __forceinline__ void add_ab(float (&acc)[kR][kC], const float* w, const float* x) {
  add_product<n, kRowGroups * padded(n), padded(D), kLanesPerRow>(acc, w, x);
}

// Max and sum over the 8 lanes of a tile row. Every lane ends with the same bits: each step combines the
// same two values, in either order, with a commutative operation.
__device__ __forceinline__ float row_max(float x) {
  for (int o = kLanesPerRow / 2; o > 0; o /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
__device__ __forceinline__ float row_sum(float x) {
  for (int o = kLanesPerRow / 2; o > 0; o /= 2) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

// This thread's rows ty + 16 r and columns tx + 8 c of a (rows, D) register tile, times `scale`, into a
// padded shared tile (to be stored with store_tile).
template <int D, int kR, int kCd>
__device__ void stage_rows(float* tile, const float (&acc)[kR][kCd], float scale) {
  const int ty = int(threadIdx.x) / kLanesPerRow, tx = int(threadIdx.x) % kLanesPerRow;
  for (int r = 0; r < kR; ++r)
    for (int d = 0; d < kCd; ++d) tile[(ty + kRowGroups * r) * padded(D) + tx + kLanesPerRow * d] = acc[r][d] * scale;
}

// ---- kernels ----

// out, lse for query rows i0 .. i0 + 63 of head blockIdx.y in batch blockIdx.z (docs/attention.md §8).
template <class N, int D, class T>
__global__ void attention_forward_kernel(const T* q, const T* k, const T* v, const T* sinks, T* out, float* lse,
                                         int64_t Tq, int64_t Tk, int64_t H, int64_t Hkv, int64_t q_offset,
                                         float eps) {
  constexpr int kR = kFwdBlockQ / kRowGroups, kC = kFwdBlockK / kLanesPerRow, kCd = D / kLanesPerRow;
  SP_DYNAMIC_SHARED(float, smem);
  const ForwardTiles<D> t(&smem[0]);
  const int ty = int(threadIdx.x) / kLanesPerRow, tx = int(threadIdx.x) % kLanesPerRow;
  // The last query blocks see the most keys; the lowest block indices give them the earliest start.
  const int64_t i0 = (int64_t(gridDim.x) - 1 - blockIdx.x) * kFwdBlockQ;
  const int64_t h = blockIdx.y, b = blockIdx.z, hk = h / (H / Hkv);
  const int64_t ldq = H * D, ldk = Hkv * D;  // row strides of q, out and of k, v
  const int64_t nq = std::min<int64_t>(kFwdBlockQ, Tq - i0);
  const int64_t kend = q_offset + i0 + nq;  // the block's last row sees keys 0 .. kend - 1; kend <= Tk
  const size_t qrow = (size_t(b) * Tq + i0) * H + h;      // first (b, t, h) row of q and out
  const size_t krow = size_t(b) * Tk * Hkv + size_t(hk);  // first (b, j, hk) row of k and v
  const float scale = 1.0f / sqrtf(float(D));

  load_tile<kFwdBlockQ, D>(t.q, q + qrow * D, ldq, nq);
  float shift[kR], den[kR], acc[kR][kCd] = {};  // den: this lane's part of the row's denominator
  const attn::RowStart start = attn::row_start<N>(attn::sink_logit(sinks, h));
  for (int r = 0; r < kR; ++r) {
    shift[r] = start.c;
    den[r] = tx == 0 ? start.l : 0.0f;  // the sink's term counts once, in lane 0's part
  }
  // Key 0 is in the first tile and every row sees it, so every shift is finite after that tile.
  for (int64_t j0 = 0; j0 < kend; j0 += kFwdBlockK) {
    const int64_t nk = std::min<int64_t>(kFwdBlockK, kend - j0);
    __syncthreads();  // every warp is done with the previous tile's keys, values and weights
    load_tile<kFwdBlockK, D>(t.k, k + (krow + j0 * Hkv) * D, ldk, nk);
    load_tile<kFwdBlockK, D>(t.v, v + (krow + j0 * Hkv) * D, ldk, nk);
    __syncthreads();  // the tile's keys and values, and the first time the queries, are in place
    float x[kR][kC] = {};
    add_abt<D>(x, t.q + ty * padded(D), t.k + tx * padded(D));
    for (int r = 0; r < kR; ++r) {
      const int i = ty + kRowGroups * r;
      const int64_t last = q_offset + i0 + i - j0;  // row i sees the tile's keys 0 .. last
      float m = -INFINITY;
      for (int c = 0; c < kC; ++c) {
        const int j = tx + kLanesPerRow * c;
        x[r][c] *= scale;
        if (j < nk && j <= last) m = fmaxf(m, x[r][c]);
      }
      const float next = fmaxf(shift[r], row_max(m));
      const float alpha = expf(shift[r] - next), base = expf(-next);
      float sum = 0.0f;
      for (int c = 0; c < kC; ++c) {
        const int j = tx + kLanesPerRow * c;
        float w = 0.0f;  // masked keys: no weight and no denominator term
        if (j < nk && j <= last) {
          const attn::Term term = N::term(x[r][c], next, base);
          w = term.w;
          sum += term.den;
        }
        t.p[i * padded(kFwdBlockK) + j] = w;
      }
      den[r] = den[r] * alpha + sum;
      for (int d = 0; d < kCd; ++d) acc[r][d] *= alpha;
      shift[r] = next;
    }
    __syncwarp();  // a row's weights are read back by the 8 lanes, of this warp, that wrote them
    add_ab<kFwdBlockK, D>(acc, t.p + ty * padded(kFwdBlockK), t.v + tx);
  }

  for (int r = 0; r < kR; ++r) {
    const int i = ty + kRowGroups * r;
    const attn::RowEnd e = attn::row_end<N>(shift[r], row_sum(den[r]), eps);
    for (int d = 0; d < kCd; ++d) acc[r][d] *= e.inv_den;
    if (tx == 0 && i < nq) lse[(size_t(b) * H + h) * Tq + i0 + i] = e.lse;
  }
  __syncthreads();  // every warp is done with the queries: their tile now stages the output block
  stage_rows<D>(t.q, acc, 1.0f);
  __syncthreads();  // the output block is staged
  store_tile<kFwdBlockQ, D>(out + qrow * D, ldq, nq, t.q);
}

// delta (B, H, Tq) = rowsum(out * dout) over the D entries of each (b, t, h) row, one warp per row.
template <class T>
__global__ void attention_delta_kernel(const T* out, const T* dout, float* delta, int64_t rows, int64_t Tq,
                                       int64_t H, int D) {
  const int64_t row = int64_t(blockIdx.x) * kDeltaRows + threadIdx.x / 32;  // (b * Tq + t) * H + h
  const int lane = int(threadIdx.x % 32);
  float sum = 0.0f;
  if (row < rows)
    for (int d = lane; d < D; d += 32) sum += to_float(out[row * D + d]) * to_float(dout[row * D + d]);
  for (int o = 16; o > 0; o /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if (row < rows && lane == 0) {
    const int64_t h = row % H, t = row / H % Tq, b = row / H / Tq;
    delta[(b * H + h) * Tq + t] = sum;
  }
}

// The sink logits' gradient by parts of consecutive positions (reduce.cuh's split_rows): block p sums, for
// each head, -exp(s_h - lse) rowsum(out * dout) over its positions in order, in fp64, into row p of
// ds_parts (parts, H); warp w takes heads w, w + 4, ..., its lanes the D entries, and lane k keeps head
// w + 4 k, so no two threads add to the same sum.
template <class T>
__global__ void attention_sink_backward_kernel(double* ds_parts, const T* out, const T* dout, const float* lse,
                                               const T* sinks, int64_t BT, int64_t Tq, int64_t H, int D,
                                               int64_t rows_per_part) {
  constexpr int kWarps = kThreads / 32;
  const int lane = int(threadIdx.x % 32), warp = int(threadIdx.x / 32);
  const int64_t p0 = int64_t(blockIdx.x) * rows_per_part, p1 = p0 + rows_per_part < BT ? p0 + rows_per_part : BT;
  double ds = 0;  // of head warp + lane * kWarps
  for (int64_t bt = p0; bt < p1; ++bt) {
    const int64_t b = bt / Tq, t = bt % Tq;
    for (int64_t h = warp; h < H; h += kWarps) {
      const size_t row = size_t(bt * H + h) * size_t(D);  // (b, t, h)
      float dot = 0.0f;  // delta, as attention_delta_kernel forms it
      for (int d = lane; d < D; d += 32) dot += to_float(out[row + d]) * to_float(dout[row + d]);
      dot = warp_reduce(dot, SumOp{});
      const float p_sink = expf(to_float(sinks[h]) - lse[(b * H + h) * Tq + t]);
      if (h / kWarps == lane) ds -= double(p_sink) * double(dot);
    }
  }
  const int64_t h = warp + int64_t(lane) * kWarps;
  if (h < H) ds_parts[blockIdx.x * H + h] = ds;
}

// dk, dv for keys j0 .. j0 + 31 of kv head blockIdx.y in batch blockIdx.z: every query row of the group's
// heads that sees them, head by head and query block by query block, always in that order.
template <class N, int D, class T>
__global__ void attention_dkdv_kernel(const T* q, const T* k, const T* v, const T* dout, const float* lse,
                                      const float* delta, T* dk, T* dv, int64_t Tq, int64_t Tk, int64_t H,
                                      int64_t Hkv, int64_t q_offset) {
  constexpr int kR = kBwdBlock / kRowGroups, kC = kBwdBlock / kLanesPerRow, kCd = D / kLanesPerRow;
  SP_DYNAMIC_SHARED(float, smem);
  const BackwardTiles<D> t(&smem[0]);  // t.p and t.ds hold P^T and dS^T: keys by queries
  const int ty = int(threadIdx.x) / kLanesPerRow, tx = int(threadIdx.x) % kLanesPerRow;
  const int64_t j0 = int64_t(blockIdx.x) * kBwdBlock, hk = blockIdx.y, b = blockIdx.z, group = H / Hkv;
  const int64_t ldq = H * D, ldk = Hkv * D;
  const int64_t nk = std::min<int64_t>(kBwdBlock, Tk - j0);
  const size_t krow = (size_t(b) * Tk + j0) * Hkv + hk;  // first (b, j, hk) row of k, v, dk, dv
  const float scale = 1.0f / sqrtf(float(D));

  load_tile<kBwdBlock, D>(t.k, k + krow * D, ldk, nk);
  load_tile<kBwdBlock, D>(t.v, v + krow * D, ldk, nk);
  float dk_acc[kR][kCd] = {}, dv_acc[kR][kCd] = {};
  // Query row i sees key j iff j <= q_offset + i: the blocks before `first` see none of these keys.
  const int64_t first = std::max<int64_t>(0, j0 - q_offset) / kBwdBlock * kBwdBlock;
  for (int64_t h = hk * group; h < (hk + 1) * group; ++h)
    for (int64_t i0 = first; i0 < Tq; i0 += kBwdBlock) {
      const int64_t nq = std::min<int64_t>(kBwdBlock, Tq - i0);
      const size_t qrow = (size_t(b) * Tq + i0) * H + h;  // first (b, t, h) row of q and dout
      const size_t srow = (size_t(b) * H + h) * Tq + i0;  // first entry of lse and delta
      __syncthreads();  // every warp is done with the previous query block
      load_tile<kBwdBlock, D>(t.q, q + qrow * D, ldq, nq);
      load_tile<kBwdBlock, D>(t.dout, dout + qrow * D, ldq, nq);
      load_row_stats(t, lse + srow, delta + srow, nq);
      __syncthreads();  // the query block, and the first time the keys and values, are in place
      float x[kR][kC] = {}, dp[kR][kC] = {};
      add_abt<D>(x, t.k + ty * padded(D), t.q + tx * padded(D));      // S^T
      add_abt<D>(dp, t.v + ty * padded(D), t.dout + tx * padded(D));  // dP^T = (dO V^T)^T
      for (int r = 0; r < kR; ++r)
        for (int c = 0; c < kC; ++c) {
          const int j = ty + kRowGroups * r, i = tx + kLanesPerRow * c;
          const bool visible = j < nk && i < nq && j0 + j <= q_offset + i0 + i;
          const attn::ScoreGrad g = visible ? N::grad(x[r][c] * scale, t.lse[i], t.base[i], dp[r][c], t.delta[i])
                                            : attn::ScoreGrad{0.0f, 0.0f};
          t.p[j * padded(kBwdBlock) + i] = g.p;
          t.ds[j * padded(kBwdBlock) + i] = g.ds;
        }
      __syncwarp();  // a key row's P^T and dS^T are read back by the 8 lanes, of this warp, that wrote them
      add_ab<kBwdBlock, D>(dv_acc, t.p + ty * padded(kBwdBlock), t.dout + tx);  // dV += P^T dO
      add_ab<kBwdBlock, D>(dk_acc, t.ds + ty * padded(kBwdBlock), t.q + tx);    // dK += dS^T Q
    }

  __syncthreads();  // every warp is done with the keys and values: their tiles now stage dk and dv
  stage_rows<D>(t.k, dk_acc, scale);
  stage_rows<D>(t.v, dv_acc, 1.0f);
  __syncthreads();  // dk and dv are staged
  store_tile<kBwdBlock, D>(dk + krow * D, ldk, nk, t.k);
  store_tile<kBwdBlock, D>(dv + krow * D, ldk, nk, t.v);
}

// dq for query rows i0 .. i0 + 31 of head blockIdx.y in batch blockIdx.z, over the key tiles they see.
template <class N, int D, class T>
__global__ void attention_dq_kernel(const T* q, const T* k, const T* v, const T* dout, const float* lse,
                                    const float* delta, T* dq, int64_t Tq, int64_t Tk, int64_t H, int64_t Hkv,
                                    int64_t q_offset) {
  constexpr int kR = kBwdBlock / kRowGroups, kC = kBwdBlock / kLanesPerRow, kCd = D / kLanesPerRow;
  SP_DYNAMIC_SHARED(float, smem);
  const BackwardTiles<D> t(&smem[0]);  // t.ds holds dS: queries by keys
  const int ty = int(threadIdx.x) / kLanesPerRow, tx = int(threadIdx.x) % kLanesPerRow;
  const int64_t i0 = (int64_t(gridDim.x) - 1 - blockIdx.x) * kBwdBlock;  // longest rows first, as forward
  const int64_t h = blockIdx.y, b = blockIdx.z, hk = h / (H / Hkv);
  const int64_t ldq = H * D, ldk = Hkv * D;
  const int64_t nq = std::min<int64_t>(kBwdBlock, Tq - i0);
  const int64_t kend = q_offset + i0 + nq;
  const size_t qrow = (size_t(b) * Tq + i0) * H + h;
  const size_t srow = (size_t(b) * H + h) * Tq + i0;
  const size_t krow = size_t(b) * Tk * Hkv + size_t(hk);
  const float scale = 1.0f / sqrtf(float(D));

  load_tile<kBwdBlock, D>(t.q, q + qrow * D, ldq, nq);
  load_tile<kBwdBlock, D>(t.dout, dout + qrow * D, ldq, nq);
  load_row_stats(t, lse + srow, delta + srow, nq);
  float dq_acc[kR][kCd] = {};
  for (int64_t j0 = 0; j0 < kend; j0 += kBwdBlock) {
    const int64_t nk = std::min<int64_t>(kBwdBlock, kend - j0);
    __syncthreads();  // every warp is done with the previous key tile and its dS
    load_tile<kBwdBlock, D>(t.k, k + (krow + j0 * Hkv) * D, ldk, nk);
    load_tile<kBwdBlock, D>(t.v, v + (krow + j0 * Hkv) * D, ldk, nk);
    __syncthreads();  // the key tile, and the first time the query block, are in place
    float x[kR][kC] = {}, dp[kR][kC] = {};
    add_abt<D>(x, t.q + ty * padded(D), t.k + tx * padded(D));      // S
    add_abt<D>(dp, t.dout + ty * padded(D), t.v + tx * padded(D));  // dP = dO V^T
    for (int r = 0; r < kR; ++r)
      for (int c = 0; c < kC; ++c) {
        const int i = ty + kRowGroups * r, j = tx + kLanesPerRow * c;
        const bool visible = i < nq && j < nk && j0 + j <= q_offset + i0 + i;
        t.ds[i * padded(kBwdBlock) + j] =
            visible ? N::grad(x[r][c] * scale, t.lse[i], t.base[i], dp[r][c], t.delta[i]).ds : 0.0f;
      }
    __syncwarp();  // a query row's dS is read back by the 8 lanes, of this warp, that wrote it
    add_ab<kBwdBlock, D>(dq_acc, t.ds + ty * padded(kBwdBlock), t.k + tx);  // dQ += dS K
  }

  __syncthreads();  // every warp is done with the queries: their tile now stages dq
  stage_rows<D>(t.q, dq_acc, scale);
  __syncthreads();  // dq is staged
  store_tile<kBwdBlock, D>(dq + qrow * D, ldq, nq, t.q);
}

// ---- launchers ----

void check_args(const AttentionArgs& a) {
  SP_ASSERT(a.B > 0 && a.Tq > 0 && a.Tk > 0 && a.H > 0 && a.Hkv > 0,
            "attention shape B={} Tq={} Tk={} H={} Hkv={}", a.B, a.Tq, a.Tk, a.H, a.Hkv);
  SP_ASSERT(a.H % a.Hkv == 0, "{} query heads cannot be grouped over {} kv heads", a.H, a.Hkv);
  SP_ASSERT(a.q_offset >= 0 && a.q_offset + a.Tq <= a.Tk,
            "query rows at positions {} .. {} need keys that {} key rows do not have", a.q_offset,
            a.q_offset + a.Tq - 1, a.Tk);
  SP_ASSERT(a.H <= 65535 && a.B <= 65535, "attention grid: H = {} and B = {} must be at most 65535", a.H, a.B);
  SP_ASSERT(a.softpick_eps >= 0, "softpick_eps = {} must be >= 0", a.softpick_eps);
}

unsigned blocks_of(int64_t n, int64_t block) { return unsigned((n + block - 1) / block); }

}  // namespace

template <class T>
void attention_forward_cuda(const AttentionArgs& a, const T* q, const T* k, const T* v, const T* sinks, T* out,
                            float* lse, cudaStream_t s) {
  check_args(a);
  SP_ASSERT(q && k && v && out && lse, "attention_forward_cuda: null pointer");
  SP_ASSERT(a.norm != Normaliser::Sink || sinks, "attention_forward_cuda: learned sinks need their logits");
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return attention_forward_mma_cuda(a, q, k, v, sinks, out, lse, s);  // tensor cores (attention_mma.cu)
  }
  const dim3 grid(blocks_of(a.Tq, kFwdBlockQ), unsigned(a.H), unsigned(a.B));
  attn::dispatch_attention(a.norm, a.D, [&](auto norm, auto head_dim) {
    using N = decltype(norm);
    constexpr int D = decltype(head_dim)::value;
    constexpr size_t smem = ForwardTiles<D>::kFloats * sizeof(float);
    allow_dynamic_smem(attention_forward_kernel<N, D, T>, smem);
    SP_LAUNCH((attention_forward_kernel<N, D, T>), grid, dim3(kThreads), smem, s, q, k, v, sinks, out, lse, a.Tq,
              a.Tk, a.H, a.Hkv, a.q_offset, a.softpick_eps);
  });
}

size_t attention_backward_scratch_bytes(const AttentionArgs& a) {
  return size_t(a.B) * a.H * a.Tq * sizeof(float) + attention_backward_mma_scratch_bytes(a);
}

template <class T>
void attention_backward_cuda(const AttentionArgs& a, const T* q, const T* k, const T* v, const T* out,
                             const T* dout, const float* lse, T* dq, T* dk, T* dv, void* scratch, cudaStream_t s) {
  check_args(a);
  SP_ASSERT(q && k && v && out && dout && lse && dq && dk && dv && scratch, "attention_backward_cuda: null pointer");
  float* delta = static_cast<float*>(scratch);  // (B, H, Tq)
  const int64_t rows = a.B * a.Tq * a.H;
  SP_LAUNCH(attention_delta_kernel<T>, blocks_of(rows, kDeltaRows), dim3(kThreads), 0, s, out, dout, delta, rows,
            a.Tq, a.H, int(a.D));
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return attention_backward_mma_cuda(a, q, k, v, dout, lse, delta, dq, dk, dv, delta + rows, s);  // tensor cores
  }
  const dim3 kv_grid(blocks_of(a.Tk, kBwdBlock), unsigned(a.Hkv), unsigned(a.B));
  const dim3 q_grid(blocks_of(a.Tq, kBwdBlock), unsigned(a.H), unsigned(a.B));
  attn::dispatch_attention(a.norm, a.D, [&](auto norm, auto head_dim) {
    using N = decltype(norm);
    constexpr int D = decltype(head_dim)::value;
    constexpr size_t smem = BackwardTiles<D>::kFloats * sizeof(float);
    allow_dynamic_smem(attention_dkdv_kernel<N, D, T>, smem);
    allow_dynamic_smem(attention_dq_kernel<N, D, T>, smem);
    SP_LAUNCH((attention_dkdv_kernel<N, D, T>), kv_grid, dim3(kThreads), smem, s, q, k, v, dout, lse, delta, dk, dv,
              a.Tq, a.Tk, a.H, a.Hkv, a.q_offset);
    SP_LAUNCH((attention_dq_kernel<N, D, T>), q_grid, dim3(kThreads), smem, s, q, k, v, dout, lse, delta, dq, a.Tq,
              a.Tk, a.H, a.Hkv, a.q_offset);
  });
}

size_t attention_sink_backward_scratch_bytes(const AttentionArgs& a) {
  return split_rows(size_t(a.B * a.Tq)).count * size_t(a.H) * sizeof(double);
}

template <class T>
void attention_sink_backward_cuda(const AttentionArgs& a, const T* out, const T* dout, const float* lse,
                                  const T* sinks, float* dsinks, void* scratch, cudaStream_t s) {
  check_args(a);
  SP_ASSERT(a.norm == Normaliser::Sink && a.q_offset == 0, "attention_sink_backward_cuda: learned sinks, training");
  SP_ASSERT(out && dout && lse && sinks && dsinks && scratch, "attention_sink_backward_cuda: null pointer");
  SP_ASSERT(a.H <= kThreads, "attention_sink_backward_cuda: H={} heads, at most {}", a.H, kThreads);
  const RowParts parts = split_rows(size_t(a.B * a.Tq));
  double* ds_parts = static_cast<double*>(scratch);  // (parts.count, H)
  SP_LAUNCH(attention_sink_backward_kernel<T>, unsigned(parts.count), dim3(kThreads), 0, s, ds_parts, out, dout, lse,
            sinks, a.B * a.Tq, a.Tq, a.H, int(a.D), int64_t(parts.rows_per_part));
  sum_row_parts_cuda(dsinks, ds_parts, parts.count, size_t(a.H), s);
}

template void attention_forward_cuda<float>(const AttentionArgs&, const float*, const float*, const float*,
                                            const float*, float*, float*, cudaStream_t);
template void attention_forward_cuda<__nv_bfloat16>(const AttentionArgs&, const __nv_bfloat16*, const __nv_bfloat16*,
                                                    const __nv_bfloat16*, const __nv_bfloat16*, __nv_bfloat16*,
                                                    float*, cudaStream_t);
template void attention_sink_backward_cuda<float>(const AttentionArgs&, const float*, const float*, const float*,
                                                  const float*, float*, void*, cudaStream_t);
template void attention_sink_backward_cuda<__nv_bfloat16>(const AttentionArgs&, const __nv_bfloat16*,
                                                          const __nv_bfloat16*, const float*, const __nv_bfloat16*,
                                                          float*, void*, cudaStream_t);
template void attention_backward_cuda<float>(const AttentionArgs&, const float*, const float*, const float*,
                                             const float*, const float*, const float*, float*, float*, float*, void*,
                                             cudaStream_t);
template void attention_backward_cuda<__nv_bfloat16>(const AttentionArgs&, const __nv_bfloat16*,
                                                     const __nv_bfloat16*, const __nv_bfloat16*,
                                                     const __nv_bfloat16*, const __nv_bfloat16*, const float*,
                                                     __nv_bfloat16*, __nv_bfloat16*, __nv_bfloat16*, void*,
                                                     cudaStream_t);

}  // namespace sp::cuda
