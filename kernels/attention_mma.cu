// The tensor-core attention forward: bf16 q, k, v through mma.sync m16n8k16 with fp32 accumulation,
// FlashAttention-2's work split (one block per query block, online normaliser over key tiles). The
// normalisers are attention_policy.cuh's, fed scores in base-2 units (log2(e) is folded into the score
// scale, so every exponential is one exp2); docs/kernels.md walks through the kernel.
//
// A block is 4 warps and owns 64 query rows, 16 per warp. Per key tile of 64 keys:
//   S = Q K^T       each warp's (16, 64) scores as 8 mma accumulator tiles (16x8) in registers; the warp's
//                   Q fragments are loaded once (ldmatrix), the K fragments per tile (ldmatrix, no .trans);
//   normaliser      the new running shift per row (a max over the 4 lanes that hold a row), each visible
//                   score's weight and denominator term from the policy, the rescaling of the output;
//   O += P V        the weights never leave registers: the accumulator tiles of S, rounded to bf16, are
//                   the A fragments of P (two adjacent 16x8 C tiles are one 16x16 A tile); V's fragments
//                   come from ldmatrix .trans.
// K and V tiles stream through two shared-memory stages: cp.async brings tile j + 1 while tile j is used.
// Shared rows are padded by 16 bytes, so the 8 rows one ldmatrix matrix reads start in different bank
// groups. Key tiles past a block's last row are never visited (causal block skipping); masking runs only on
// the tiles that cross the diagonal. Rows and keys past the ends are zero-filled by cp.async and their
// results are not stored.
#include "common.cuh"

#include "attention_mma.cuh"
#include "attention_policy.cuh"
#include "ptx.cuh"

#include <cmath>
#include <cstdint>
#include <cstring>

namespace sp::cuda {
namespace {

using bf16 = __nv_bfloat16;

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kRowsPerWarp = 16;                  // the M of one mma
constexpr int kBlockQ = kWarps * kRowsPerWarp;    // 64 query rows per block
constexpr int kBlockK = 64;                       // keys per tile
constexpr int kKeyTiles = kBlockK / 8;            // n8 accumulator tiles of S per warp
constexpr int kStages = 2;                        // K/V tiles in flight
constexpr int kChunk = 8;                         // bf16 per 16-byte cp.async / ldmatrix row
static_assert(kBlockK % 16 == 0 && kKeyTiles % 2 == 0, "P V takes the keys 16 at a time, S tiles in pairs");

template <int D>
constexpr int kStride = D + kChunk;  // bf16 per shared row: 16 bytes of padding

// The block's shared memory: the query tile, then kStages (K, V) tile pairs. 45 KiB at D = 64, 85 KiB at 128.
template <int D>
struct Tiles {
  static constexpr int kTile = kBlockK * kStride<D>;
  static constexpr int kElems = kBlockQ * kStride<D> + 2 * kStages * kTile;
  bf16* q;  // (kBlockQ, D)
  bf16* base;
  __device__ explicit Tiles(bf16* smem) : q(smem), base(smem + kBlockQ * kStride<D>) {}
  __device__ bf16* k(int stage) const { return base + (2 * stage) * kTile; }      // (kBlockK, D)
  __device__ bf16* v(int stage) const { return base + (2 * stage + 1) * kTile; }  // (kBlockK, D)
};

// Issues the cp.async copies of rows [0, kRows) of a (kRows, D) block of global memory (row stride ld
// elements) into a padded shared tile; rows from n on are zero-filled (no global read). Consecutive threads
// copy consecutive 16-byte chunks of a row: coalesced.
template <int kRows, int D>
__device__ void copy_tile(bf16* tile, const bf16* src, int64_t ld, int64_t n) {
  constexpr int kChunksPerRow = D / kChunk;
  for (int i = int(threadIdx.x); i < kRows * kChunksPerRow; i += kThreads) {
    const int r = i / kChunksPerRow, c = (i % kChunksPerRow) * kChunk;
    const bool in = r < n;
    cp_async_cg16(tile + r * kStride<D> + c, src + (in ? r * ld + c : 0), in ? 16 : 0);
  }
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 p = __floats2bfloat162_rn(lo, hi);  // .x (low half) = lo
  uint32_t u;
  memcpy(&u, &p, sizeof u);
  return u;
}

// Max and sum over the 4 lanes of a quad (lanes 4g .. 4g + 3 hold the columns of rows g and g + 8).
__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// Rows g and g + 8 of a warp's (16, D) accumulator, times scale, to global memory: dst is the warp's row 0,
// ld the row stride, rows >= n are not stored. Each lane writes bf16 pairs (4-byte aligned: D, 2 tq even).
template <int D>
__device__ __forceinline__ void store_acc(bf16* dst, int64_t ld, int64_t n, const float (&acc)[D / 8][4],
                                          const float (&scale)[2], int lane) {
  const int g = lane / 4, tq = lane % 4;
  SP_UNROLL
  for (int r = 0; r < 2; ++r) {
    if (g + 8 * r >= n) continue;
    bf16* row = dst + (g + 8 * r) * ld;
    SP_UNROLL
    for (int d = 0; d < D / 8; ++d)
      *reinterpret_cast<__nv_bfloat162*>(row + 8 * d + 2 * tq) =
          __floats2bfloat162_rn(acc[d][2 * r] * scale[r], acc[d][2 * r + 1] * scale[r]);
  }
}

// ---- fragments of padded shared tiles (the PTX layouts: kernels/ptx.cuh) ----
// A (16x16) = tile rows r0 .. r0 + 15, columns c0 .. c0 + 15.
template <int D>
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const bf16* tile, int r0, int c0, int lane) {
  ldmatrix_x4(a, tile + (r0 + lane % 16) * kStride<D> + c0 + 8 * (lane / 16));
}
// A (16x16) = the transpose of tile rows c0 .. c0 + 15, columns r0 .. r0 + 15: A(m, k) = tile[c0 + k][r0 + m]
// (dS from the dS^T tile that the dk/dv kernel stores).
template <int W>
__device__ __forceinline__ void load_a_trans(uint32_t (&a)[4], const bf16* tile, int r0, int c0, int lane) {
  const int m = lane / 8;  // a[m]: rows 8 (m % 2) .., columns 8 (m / 2) .. of A
  ldmatrix_x4_trans(a, tile + (c0 + 8 * (m / 2) + lane % 8) * kStride<W> + r0 + 8 * (m % 2));
}
// B (16x8) of two n8 tiles, B(k, n) = tile[n0 + n][k0 + k]: the tile's rows are B's columns (K for Q K^T).
// b[0..1] is the tile of columns n0 .., b[2..3] that of n0 + 8 ...
template <int D>
__device__ __forceinline__ void load_b_rows(uint32_t (&b)[4], const bf16* tile, int n0, int k0, int lane) {
  ldmatrix_x4(b, tile + (n0 + 8 * (lane / 16) + lane % 8) * kStride<D> + k0 + 8 * (lane / 8 % 2));
}
// B (16x8) of two n8 tiles, B(k, n) = tile[k0 + k][n0 + n]: the tile's rows are B's rows (V for P V).
template <int D>
__device__ __forceinline__ void load_b_cols(uint32_t (&b)[4], const bf16* tile, int k0, int n0, int lane) {
  ldmatrix_x4_trans(b, tile + (k0 + 8 * (lane / 8 % 2) + lane % 8) * kStride<D> + n0 + 8 * (lane / 16));
}
// The A fragment of the 16x16 tile whose two 16x8 halves are the accumulators c0 (columns 0..7) and c1
// (8..15), rounded to bf16: a matrix computed by one mma feeds the next without leaving registers.
__device__ __forceinline__ void a_from_c(uint32_t (&a)[4], const float (&c0)[4], const float (&c1)[4]) {
  a[0] = pack_bf16(c0[0], c0[1]);
  a[1] = pack_bf16(c0[2], c0[3]);
  a[2] = pack_bf16(c1[0], c1[1]);
  a[3] = pack_bf16(c1[2], c1[3]);
}
// acc[n], acc[n + 1] += A times the two B tiles of b.
__device__ __forceinline__ void mma_pair(float (&c0)[4], float (&c1)[4], const uint32_t (&a)[4],
                                         const uint32_t (&b)[4]) {
  mma_m16n8k16_bf16(c0, a, {b[0], b[1]}, c0);
  mma_m16n8k16_bf16(c1, a, {b[2], b[3]}, c1);
}
// acc (16 rows x 8 kTiles columns) += A B over kK columns of A: A's rows from tile a (rows ra ..), B's
// columns from the rows of tile b (rows 0 .., the n dimension): S = Q K^T, dP = dO V^T and their transposes.
template <int D, int kTiles>
__device__ __forceinline__ void add_abt(float (&acc)[kTiles][4], const bf16* a, int ra, const bf16* b, int lane) {
  SP_UNROLL
  for (int s = 0; s < D / 16; ++s) {
    uint32_t af[4];
    load_a<D>(af, a, ra, 16 * s, lane);
    SP_UNROLL
    for (int n = 0; n < kTiles; n += 2) {
      uint32_t bf[4];
      load_b_rows<D>(bf, b, 8 * n, 16 * s, lane);
      mma_pair(acc[n], acc[n + 1], af, bf);
    }
  }
}
// acc (16 rows x D) += W X, W (16 x 8 kTiles) in accumulator layout w (rounded to bf16 here), X the rows
// 0 .. 8 kTiles - 1 of tile x: O += P V, dV += P^T dO, dK += dS^T Q, dQ += dS K.
template <int D, int kTiles>
__device__ __forceinline__ void add_wx(float (&acc)[D / 8][4], const float (&w)[kTiles][4], const bf16* x, int lane) {
  SP_UNROLL
  for (int s = 0; s < kTiles / 2; ++s) {
    uint32_t wf[4];
    a_from_c(wf, w[2 * s], w[2 * s + 1]);
    SP_UNROLL
    for (int d = 0; d < D / 8; d += 2) {
      uint32_t xf[4];
      load_b_cols<D>(xf, x, 16 * s, 8 * d, lane);
      mma_pair(acc[d], acc[d + 1], wf, xf);
    }
  }
}

// out, lse for query rows i0 .. i0 + 63 of head blockIdx.y in batch blockIdx.z.
template <class N, int D>
__global__ void __launch_bounds__(kThreads) attention_forward_mma_kernel(
    const bf16* q, const bf16* k, const bf16* v, const bf16* sinks, bf16* out, float* lse, int64_t Tq, int64_t Tk,
    int64_t H, int64_t Hkv, int64_t q_offset, float eps) {
  constexpr int kDimTiles = D / 8;  // n8 accumulator tiles of O
  static_assert(D % 16 == 0 && kDimTiles % 2 == 0, "head dims are multiples of 16");
  using U = attn::Base2;
  SP_DYNAMIC_SHARED(bf16, smem);
  const Tiles<D> t(&smem[0]);
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int g = lane / 4, tq = lane % 4;  // the mma's groupID and threadID_in_group
  // The last query blocks see the most keys; the lowest block indices give them the earliest start.
  const int64_t i0 = (int64_t(gridDim.x) - 1 - blockIdx.x) * kBlockQ;
  const int64_t h = blockIdx.y, b = blockIdx.z, hk = h / (H / Hkv);
  const int64_t ldq = H * D, ldk = Hkv * D;
  const int64_t nq = Tq - i0 < kBlockQ ? Tq - i0 : kBlockQ;
  const int64_t kend = q_offset + i0 + nq;            // the block's last row sees keys 0 .. kend - 1
  const int tiles = int((kend + kBlockK - 1) / kBlockK);
  const bf16* qblock = q + ((size_t(b) * Tq + i0) * H + h) * D;
  const bf16* kseq = k + (size_t(b) * Tk * Hkv + hk) * D;  // key 0 of the sequence, row stride ldk
  const bf16* vseq = v + (size_t(b) * Tk * Hkv + hk) * D;
  const float scale = 1.4426950408889634f / sqrtf(float(D));  // log2(e) / sqrt(D): scores in base 2

  copy_tile<kBlockQ, D>(t.q, qblock, ldq, nq);
  copy_tile<kBlockK, D>(t.k(0), kseq, ldk, Tk);
  copy_tile<kBlockK, D>(t.v(0), vseq, ldk, Tk);
  cp_async_commit();

  float o[kDimTiles][4] = {};       // output accumulator: rows g, g + 8; columns 8 n + 2 tq, + 1
  float shift[2], den[2];  // per row (g, g + 8): running shift, this lane's part of the denominator
  const attn::RowStart start = attn::row_start<N, U>(attn::sink_logit(sinks, h));
  shift[0] = shift[1] = start.c;
  den[0] = den[1] = tq == 0 ? start.l : 0.0f;  // the sink's term counts once, in the quad's first lane
  const int64_t row0 = q_offset + i0 + warp * kRowsPerWarp + g;  // position of this lane's row g

  for (int j = 0; j < tiles; ++j) {
    const int64_t j0 = int64_t(j) * kBlockK;
    const int stage = j % kStages;
    cp_async_wait<0>();
    // tile j (and, at j = 0, the queries) landed for every thread; every warp is done with tile j - 1,
    // whose stage the next copies overwrite
    __syncthreads();
    if (j + 1 < tiles) {
      copy_tile<kBlockK, D>(t.k((j + 1) % kStages), kseq + (j0 + kBlockK) * ldk, ldk, Tk - j0 - kBlockK);
      copy_tile<kBlockK, D>(t.v((j + 1) % kStages), vseq + (j0 + kBlockK) * ldk, ldk, Tk - j0 - kBlockK);
    }
    cp_async_commit();

    // S = Q K^T for this warp's rows
    float sc[kKeyTiles][4] = {};
    add_abt<D, kKeyTiles>(sc, t.q, warp * kRowsPerWarp, t.k(stage), lane);

    // the normaliser: masked entries (future keys, keys past Tk) take no part; only diagonal tiles have any
    const bool diagonal = j0 + kBlockK - 1 > q_offset + i0 + warp * kRowsPerWarp;
    auto visible = [&](int n, int i) {
      return !diagonal || j0 + 8 * n + 2 * tq + (i % 2) <= row0 + 8 * (i / 2);
    };
    float next[2] = {shift[0], shift[1]};
    SP_UNROLL
    for (int n = 0; n < kKeyTiles; ++n)
      SP_UNROLL
      for (int i = 0; i < 4; ++i) {
        sc[n][i] *= scale;
        if (visible(n, i)) next[i / 2] = fmaxf(next[i / 2], sc[n][i]);
      }
    float base[2], alpha[2];
    SP_UNROLL
    for (int r = 0; r < 2; ++r) {
      next[r] = quad_max(next[r]);
      alpha[r] = next[r] == shift[r] ? 1.0f : U::exp(shift[r] - next[r]);  // also for -inf == -inf
      base[r] = U::exp(-next[r]);
      shift[r] = next[r];
      den[r] *= alpha[r];
    }
    SP_UNROLL
    for (int n = 0; n < kKeyTiles; ++n)
      SP_UNROLL
      for (int i = 0; i < 4; ++i) {
        float w = 0.0f;
        if (visible(n, i)) {
          const attn::Term term = N::template term<U>(sc[n][i], shift[i / 2], base[i / 2]);
          w = term.w;
          den[i / 2] += term.den;
        }
        sc[n][i] = w;
      }
    SP_UNROLL
    for (int d = 0; d < kDimTiles; ++d)
      SP_UNROLL
      for (int i = 0; i < 4; ++i) o[d][i] *= alpha[i / 2];

    // O += P V: the weights stay in registers, V's fragments come from ldmatrix .trans
    add_wx<D, kKeyTiles>(o, sc, t.v(stage), lane);
  }
  cp_async_wait<0>();  // the last (empty) group: nothing may be pending when the block exits

  // out = O / denominator, lse per row; rows past Tq are not stored
  const int64_t wrow = i0 + warp * kRowsPerWarp;  // the warp's first query row within the sequence's Tq
  float inv_den[2];
  SP_UNROLL
  for (int r = 0; r < 2; ++r) {
    const attn::RowEnd end = attn::row_end<N, U>(shift[r], quad_sum(den[r]), eps);
    inv_den[r] = end.inv_den;
    if (tq == 0 && wrow + g + 8 * r < Tq) lse[(size_t(b) * H + h) * Tq + wrow + g + 8 * r] = end.lse;
  }
  if (wrow < Tq) store_acc<D>(out + ((size_t(b) * Tq + wrow) * H + h) * D, ldq, Tq - wrow, o, inv_den, lane);
}

// ---- backward: dq per query block, dk and dv per key block (each output owned by one block) ----

// The dq kernel's shared memory: the block's queries and output gradients, then kStages (K, V) pairs.
template <int D>
struct DqTiles {
  static constexpr int kTile = kBlockK * kStride<D>;
  static constexpr int kElems = 2 * kBlockQ * kStride<D> + 2 * kStages * kTile;
  bf16 *q, *dout, *base;
  __device__ explicit DqTiles(bf16* smem)
      : q(smem), dout(q + kBlockQ * kStride<D>), base(dout + kBlockQ * kStride<D>) {}
  __device__ bf16* k(int stage) const { return base + (2 * stage) * kTile; }
  __device__ bf16* v(int stage) const { return base + (2 * stage + 1) * kTile; }
};

// dq for query rows i0 .. i0 + 63 of head blockIdx.y in batch blockIdx.z, over the key tiles they see:
// per tile S = Q K^T and dP = dO V^T (each warp its 16 rows), dS from the policy, dQ += dS K with dS kept in
// registers. lse2 and delta of the lane's two rows are read once; rows past Tq get lse = +inf (zeros).
template <class N, int D>
__global__ void __launch_bounds__(kThreads) attention_dq_mma_kernel(
    const bf16* q, const bf16* k, const bf16* v, const bf16* dout, const float* lse, const float* delta, bf16* dq,
    int64_t Tq, int64_t Tk, int64_t H, int64_t Hkv, int64_t q_offset) {
  using U = attn::Base2;
  SP_DYNAMIC_SHARED(bf16, smem);
  const DqTiles<D> t(&smem[0]);
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32, g = lane / 4, tq = lane % 4;
  const int64_t i0 = (int64_t(gridDim.x) - 1 - blockIdx.x) * kBlockQ;  // longest rows first
  const int64_t h = blockIdx.y, b = blockIdx.z, hk = h / (H / Hkv);
  const int64_t ldq = H * D, ldk = Hkv * D;
  const int64_t nq = Tq - i0 < kBlockQ ? Tq - i0 : kBlockQ;
  const int64_t kend = q_offset + i0 + nq;
  const int tiles = int((kend + kBlockK - 1) / kBlockK);
  const size_t qrow = (size_t(b) * Tq + i0) * H + h;
  const bf16* kseq = k + (size_t(b) * Tk * Hkv + hk) * D;
  const bf16* vseq = v + (size_t(b) * Tk * Hkv + hk) * D;
  const float scale2 = 1.4426950408889634f / sqrtf(float(D));

  copy_tile<kBlockQ, D>(t.q, q + qrow * D, ldq, nq);
  copy_tile<kBlockQ, D>(t.dout, dout + qrow * D, ldq, nq);
  copy_tile<kBlockK, D>(t.k(0), kseq, ldk, Tk);
  copy_tile<kBlockK, D>(t.v(0), vseq, ldk, Tk);
  cp_async_commit();

  const int64_t wrow = i0 + warp * kRowsPerWarp;  // the warp's first query row
  float lse2[2], base[2], dl[2];                  // per row g, g + 8: lse in base 2, exp(-lse), delta
  SP_UNROLL
  for (int r = 0; r < 2; ++r) {
    const int64_t row = wrow + g + 8 * r;
    const size_t at = (size_t(b) * H + h) * Tq + size_t(row);
    const float l = row < Tq ? lse[at] : INFINITY;
    lse2[r] = l * 1.4426950408889634f;
    base[r] = expf(-l);
    dl[r] = row < Tq ? delta[at] : 0.0f;
  }
  float dqa[D / 8][4] = {};
  for (int j = 0; j < tiles; ++j) {
    const int64_t j0 = int64_t(j) * kBlockK;
    const int stage = j % kStages;
    cp_async_wait<0>();
    __syncthreads();  // tile j landed everywhere; every warp is done with tile j - 1 (the stage refilled next)
    if (j + 1 < tiles) {
      copy_tile<kBlockK, D>(t.k((j + 1) % kStages), kseq + (j0 + kBlockK) * ldk, ldk, Tk - j0 - kBlockK);
      copy_tile<kBlockK, D>(t.v((j + 1) % kStages), vseq + (j0 + kBlockK) * ldk, ldk, Tk - j0 - kBlockK);
    }
    cp_async_commit();
    float x[kKeyTiles][4] = {}, dp[kKeyTiles][4] = {};
    add_abt<D, kKeyTiles>(x, t.q, warp * kRowsPerWarp, t.k(stage), lane);      // S
    add_abt<D, kKeyTiles>(dp, t.dout, warp * kRowsPerWarp, t.v(stage), lane);  // dP = dO V^T
    const bool diagonal = j0 + kBlockK - 1 > q_offset + wrow;
    SP_UNROLL
    for (int n = 0; n < kKeyTiles; ++n)
      SP_UNROLL
      for (int i = 0; i < 4; ++i) {
        const bool visible = !diagonal || j0 + 8 * n + 2 * tq + (i % 2) <= q_offset + wrow + g + 8 * (i / 2);
        x[n][i] = visible ? N::template grad<U>(x[n][i] * scale2, lse2[i / 2], base[i / 2], dp[n][i], dl[i / 2]).ds
                          : 0.0f;
      }
    add_wx<D, kKeyTiles>(dqa, x, t.k(stage), lane);  // dQ += dS K
  }
  cp_async_wait<0>();
  const float scale[2] = {1.0f / sqrtf(float(D)), 1.0f / sqrtf(float(D))};
  if (wrow < Tq) store_acc<D>(dq + ((size_t(b) * Tq + wrow) * H + h) * D, ldq, Tq - wrow, dqa, scale, lane);
}

// The dk/dv kernel's shared memory: the block's keys and values, then kStages (Q, dO) pairs and their
// per-query statistics (lse in base 2, exp(-lse), delta; fp32); with kAtomicDq, the step's dS^T tile
// (kBlockK keys x kBlockQ queries) after them.
template <int D, bool kAtomicDq>
struct DkvTiles {
  static constexpr int kTile = kBlockQ * kStride<D>;
  static constexpr int kStatFloats = 3 * kBlockQ;  // per stage
  static constexpr int kDsElems = kAtomicDq ? kBlockK * kStride<kBlockQ> : 0;
  static constexpr int kElems = 2 * kBlockK * kStride<D> + 2 * kStages * kTile + kStages * kStatFloats * 2 + kDsElems;
  bf16 *k, *v, *base;
  float* stats;
  bf16* ds;
  __device__ explicit DkvTiles(bf16* smem)
      : k(smem), v(k + kBlockK * kStride<D>), base(v + kBlockK * kStride<D>),
        stats(reinterpret_cast<float*>(base + 2 * kStages * kTile)),
        ds(reinterpret_cast<bf16*>(stats + kStages * kStatFloats)) {}
  __device__ bf16* q(int stage) const { return base + (2 * stage) * kTile; }
  __device__ bf16* dout(int stage) const { return base + (2 * stage + 1) * kTile; }
  __device__ float* lse2(int stage) const { return stats + stage * kStatFloats; }
  __device__ float* exp_neg_lse(int stage) const { return lse2(stage) + kBlockQ; }
  __device__ float* delta(int stage) const { return lse2(stage) + 2 * kBlockQ; }
};

// dk, dv for keys j0 .. j0 + 63 of kv head blockIdx.y in batch blockIdx.z: every query block of the
// group's heads that sees them, head by head and block by block, in that fixed order. Per query block,
// each warp its 16 keys: S^T = K Q^T and dP^T = V dO^T, P^T and dS^T from the policy (kept in registers),
// dV += P^T dO, dK += dS^T Q. With kAtomicDq the kernel also does the dq kernel's work: the warps store
// dS^T to shared memory, each warp takes 16 of the query block's rows, dQ = dS K (ldmatrix .trans gives dS's
// fragments), and adds them to dq_acc (B, Tq, H, D) fp32 with atomics; the order of those additions across
// key blocks is the hardware's, so dq is not bit-reproducible.
template <class N, int D, bool kAtomicDq>
__global__ void __launch_bounds__(kThreads) attention_dkdv_mma_kernel(
    const bf16* q, const bf16* k, const bf16* v, const bf16* dout, const float* lse, const float* delta, bf16* dk,
    bf16* dv, float* dq_acc, int64_t Tq, int64_t Tk, int64_t H, int64_t Hkv, int64_t q_offset) {
  using U = attn::Base2;
  SP_DYNAMIC_SHARED(bf16, smem);
  const DkvTiles<D, kAtomicDq> t(&smem[0]);
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32, g = lane / 4, tq = lane % 4;
  const int64_t j0 = int64_t(blockIdx.x) * kBlockK, hk = blockIdx.y, b = blockIdx.z, group = H / Hkv;
  const int64_t ldq = H * D, ldk = Hkv * D;
  const int64_t nk = Tk - j0 < kBlockK ? Tk - j0 : kBlockK;
  const size_t krow = (size_t(b) * Tk + j0) * Hkv + hk;  // first (b, j, hk) row of k, v, dk, dv
  const float scale2 = 1.4426950408889634f / sqrtf(float(D));
  // Query row i sees key j iff j <= q_offset + i: the query blocks before `first` see none of these keys.
  const int64_t first = (j0 > q_offset ? j0 - q_offset : 0) / kBlockQ * kBlockQ;
  const int64_t blocks = (Tq - first + kBlockQ - 1) / kBlockQ, steps = group * blocks;

  // (Q, dO) tiles and statistics of step s: head hk * group + s / blocks, query block first + (s % blocks) 64
  auto issue = [&](int64_t s, int stage) {
    const int64_t h = hk * group + s / blocks, i0 = first + (s % blocks) * kBlockQ;
    const int64_t nq = Tq - i0 < kBlockQ ? Tq - i0 : kBlockQ;
    const size_t qrow = (size_t(b) * Tq + i0) * H + h;
    copy_tile<kBlockQ, D>(t.q(stage), q + qrow * D, ldq, nq);
    copy_tile<kBlockQ, D>(t.dout(stage), dout + qrow * D, ldq, nq);
    for (int i = int(threadIdx.x); i < kBlockQ; i += kThreads) {  // rows past Tq: lse = +inf, zeros
      const size_t at = (size_t(b) * H + h) * Tq + size_t(i0 + i);
      const float l = i < nq ? lse[at] : INFINITY;
      t.lse2(stage)[i] = l * 1.4426950408889634f;
      t.exp_neg_lse(stage)[i] = expf(-l);
      t.delta(stage)[i] = i < nq ? delta[at] : 0.0f;
    }
  };
  copy_tile<kBlockK, D>(t.k, k + krow * D, ldk, nk);
  copy_tile<kBlockK, D>(t.v, v + krow * D, ldk, nk);
  issue(0, 0);
  cp_async_commit();

  const int64_t wkey = j0 + warp * kRowsPerWarp;  // the warp's first key
  float dka[D / 8][4] = {}, dva[D / 8][4] = {};
  for (int64_t s = 0; s < steps; ++s) {
    const int stage = int(s % kStages);
    const int64_t i0 = first + (s % blocks) * kBlockQ;
    cp_async_wait<0>();
    // step s's tiles landed and its statistics are written, for every thread; every warp is done with
    // step s - 1, whose stage is refilled next
    __syncthreads();
    if (s + 1 < steps) issue(s + 1, (stage + 1) % kStages);
    cp_async_commit();
    float x[kKeyTiles][4] = {}, dp[kKeyTiles][4] = {};  // rows: the warp's keys; columns: the 64 queries
    add_abt<D, kKeyTiles>(x, t.k, warp * kRowsPerWarp, t.q(stage), lane);      // S^T
    add_abt<D, kKeyTiles>(dp, t.v, warp * kRowsPerWarp, t.dout(stage), lane);  // dP^T = V dO^T
    const bool diagonal = wkey + kRowsPerWarp - 1 > q_offset + i0;
    const float *lse2 = t.lse2(stage), *enl = t.exp_neg_lse(stage), *dl = t.delta(stage);
    SP_UNROLL
    for (int n = 0; n < kKeyTiles; ++n)
      SP_UNROLL
      for (int i = 0; i < 4; ++i) {
        const int c = 8 * n + 2 * tq + (i % 2);  // the query within the block
        const bool visible = !diagonal || wkey + g + 8 * (i / 2) <= q_offset + i0 + c;
        const attn::ScoreGrad gr = visible ? N::template grad<U>(x[n][i] * scale2, lse2[c], enl[c], dp[n][i], dl[c])
                                           : attn::ScoreGrad{0.0f, 0.0f};
        x[n][i] = gr.p;
        dp[n][i] = gr.ds;
      }
    add_wx<D, kKeyTiles>(dva, x, t.dout(stage), lane);  // dV += P^T dO
    add_wx<D, kKeyTiles>(dka, dp, t.q(stage), lane);    // dK += dS^T Q
    if constexpr (kAtomicDq) {
      const int64_t h = hk * group + s / blocks;
      SP_UNROLL
      for (int n = 0; n < kKeyTiles; ++n)  // this warp's 16 rows of dS^T (keys) x 64 columns (queries)
        SP_UNROLL
        for (int r = 0; r < 2; ++r)
          *reinterpret_cast<uint32_t*>(t.ds + (warp * kRowsPerWarp + g + 8 * r) * kStride<kBlockQ> + 8 * n + 2 * tq) =
              pack_bf16(dp[n][2 * r], dp[n][2 * r + 1]);
      __syncthreads();  // the whole dS^T tile is written (the next write waits for the loop's barrier)
      float dqa[D / 8][4] = {};
      SP_UNROLL
      for (int c = 0; c < kBlockK / 16; ++c) {  // dQ (this warp's 16 queries, D) += dS (16, 64 keys) K
        uint32_t af[4];
        load_a_trans<kBlockQ>(af, t.ds, warp * kRowsPerWarp, 16 * c, lane);
        SP_UNROLL
        for (int d = 0; d < D / 8; d += 2) {
          uint32_t xf[4];
          load_b_cols<D>(xf, t.k, 16 * c, 8 * d, lane);
          mma_pair(dqa[d], dqa[d + 1], af, xf);
        }
      }
      SP_UNROLL
      for (int r = 0; r < 2; ++r) {
        const int64_t row = i0 + warp * kRowsPerWarp + g + 8 * r;
        if (row >= Tq) continue;
        float* dst = dq_acc + ((size_t(b) * Tq + row) * H + h) * D + 2 * tq;
        SP_UNROLL
        for (int d = 0; d < D / 8; ++d) {
          atomicAdd(dst + 8 * d, dqa[d][2 * r]);
          atomicAdd(dst + 8 * d + 1, dqa[d][2 * r + 1]);
        }
      }
    }
  }
  cp_async_wait<0>();
  const float ones[2] = {1.0f, 1.0f}, scale[2] = {1.0f / sqrtf(float(D)), 1.0f / sqrtf(float(D))};
  if (wkey < Tk) {
    const size_t wrow = krow + size_t(warp * kRowsPerWarp) * size_t(Hkv);
    store_acc<D>(dk + wrow * D, ldk, Tk - wkey, dka, scale, lane);
    store_acc<D>(dv + wrow * D, ldk, Tk - wkey, dva, ones, lane);
  }
}

// dq = dq_acc * scale in bf16, n elements.
__global__ void __launch_bounds__(256) scale_to_bf16_kernel(const float* acc, bf16* out, float scale, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = __float2bfloat16(acc[i] * scale);
}

}  // namespace

void attention_forward_mma_cuda(const AttentionArgs& a, const bf16* q, const bf16* k, const bf16* v,
                                const bf16* sinks, bf16* out, float* lse, cudaStream_t s) {
  const dim3 grid(blocks_for(size_t(a.Tq), kBlockQ), unsigned(a.H), unsigned(a.B));
  attn::dispatch_attention(a.norm, a.D, [&](auto norm, auto head_dim) {
    using N = decltype(norm);
    constexpr int D = decltype(head_dim)::value;
    constexpr size_t smem = Tiles<D>::kElems * sizeof(bf16);
    allow_dynamic_smem(attention_forward_mma_kernel<N, D>, smem);
    SP_LAUNCH((attention_forward_mma_kernel<N, D>), grid, dim3(kThreads), smem, s, q, k, v, sinks, out, lse, a.Tq,
              a.Tk, a.H, a.Hkv, a.q_offset, a.softpick_eps);
  });
}


size_t attention_backward_mma_scratch_bytes(const AttentionArgs& a) {
  return a.atomic_dq ? size_t(a.B * a.Tq * a.H * a.D) * sizeof(float) : 0;
}

void attention_backward_mma_cuda(const AttentionArgs& a, const bf16* q, const bf16* k, const bf16* v,
                                 const bf16* dout, const float* lse, const float* delta, bf16* dq, bf16* dk,
                                 bf16* dv, float* dq_acc, cudaStream_t s) {
  const dim3 kv_grid(blocks_for(size_t(a.Tk), kBlockK), unsigned(a.Hkv), unsigned(a.B));
  const dim3 q_grid(blocks_for(size_t(a.Tq), kBlockQ), unsigned(a.H), unsigned(a.B));
  const size_t nq = size_t(a.B * a.Tq * a.H * a.D);
  const float inv_sqrt_d = 1.0f / std::sqrt(float(a.D));
  attn::dispatch_attention(a.norm, a.D, [&](auto norm, auto head_dim) {
    using N = decltype(norm);
    constexpr int D = decltype(head_dim)::value;
    if (a.atomic_dq) {  // one kernel; dq through an fp32 accumulator
      SP_ASSERT(dq_acc, "attention_backward_mma_cuda: atomic dq needs its accumulator");
      constexpr size_t smem = DkvTiles<D, true>::kElems * sizeof(bf16);
      allow_dynamic_smem(attention_dkdv_mma_kernel<N, D, true>, smem);
      CUDA_CHECK(cudaMemsetAsync(dq_acc, 0, nq * sizeof(float), s));
      SP_LAUNCH((attention_dkdv_mma_kernel<N, D, true>), kv_grid, dim3(kThreads), smem, s, q, k, v, dout, lse, delta,
                dk, dv, dq_acc, a.Tq, a.Tk, a.H, a.Hkv, a.q_offset);
      SP_LAUNCH(scale_to_bf16_kernel, dim3(blocks_for(nq, 256)), dim3(256), 0, s, dq_acc, dq, inv_sqrt_d, int64_t(nq));
      return;
    }
    constexpr size_t kv_smem = DkvTiles<D, false>::kElems * sizeof(bf16), q_smem = DqTiles<D>::kElems * sizeof(bf16);
    allow_dynamic_smem(attention_dkdv_mma_kernel<N, D, false>, kv_smem);
    allow_dynamic_smem(attention_dq_mma_kernel<N, D>, q_smem);
    SP_LAUNCH((attention_dkdv_mma_kernel<N, D, false>), kv_grid, dim3(kThreads), kv_smem, s, q, k, v, dout, lse, delta,
              dk, dv, static_cast<float*>(nullptr), a.Tq, a.Tk, a.H, a.Hkv, a.q_offset);
    SP_LAUNCH((attention_dq_mma_kernel<N, D>), q_grid, dim3(kThreads), q_smem, s, q, k, v, dout, lse, delta, dq, a.Tq,
              a.Tk, a.H, a.Hkv, a.q_offset);
  });
}

}  // namespace sp::cuda
