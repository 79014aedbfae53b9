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

// out, lse for query rows i0 .. i0 + 63 of head blockIdx.y in batch blockIdx.z.
template <class N, int D>
__global__ void __launch_bounds__(kThreads) attention_forward_mma_kernel(
    const bf16* q, const bf16* k, const bf16* v, bf16* out, float* lse, int64_t Tq, int64_t Tk, int64_t H,
    int64_t Hkv, int64_t q_offset, float eps) {
  constexpr int kSteps = D / 16;  // k16 steps of Q K^T
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

  uint32_t qf[kSteps][4];           // the warp's 16 query rows as A fragments
  float o[kDimTiles][4] = {};       // output accumulator: rows g, g + 8; columns 8 n + 2 tq, + 1
  float shift[2], den[2] = {0, 0};  // per row (g, g + 8): running shift, this lane's part of the denominator
  shift[0] = shift[1] = N::kInitialShift;
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
    if (j == 0)
      SP_UNROLL
      for (int s = 0; s < kSteps; ++s)
        ldmatrix_x4(qf[s], t.q + (warp * kRowsPerWarp + lane % 16) * kStride<D> + 16 * s + 8 * (lane / 16));

    // S = Q K^T for this warp's rows: ldmatrix .x4 gives the B fragments of two key tiles
    float sc[kKeyTiles][4] = {};
    const bf16* kt = t.k(stage);
    SP_UNROLL
    for (int s = 0; s < kSteps; ++s)
      SP_UNROLL
      for (int n = 0; n < kKeyTiles; n += 2) {
        uint32_t kf[4];  // matrices: keys 8n.. at columns 16s.., 16s+8..; keys 8(n+1).. likewise
        ldmatrix_x4(kf, kt + (8 * (n + lane / 16) + lane % 8) * kStride<D> + 16 * s + 8 * (lane / 8 % 2));
        mma_m16n8k16_bf16(sc[n], qf[s], {kf[0], kf[1]}, sc[n]);
        mma_m16n8k16_bf16(sc[n + 1], qf[s], {kf[2], kf[3]}, sc[n + 1]);
      }

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

    // O += P V: P's A fragments from two adjacent S tiles; ldmatrix .x4 .trans gives the B fragments of
    // two dimension tiles of V
    const bf16* vt = t.v(stage);
    SP_UNROLL
    for (int s = 0; s < kBlockK / 16; ++s) {
      const uint32_t pf[4] = {pack_bf16(sc[2 * s][0], sc[2 * s][1]), pack_bf16(sc[2 * s][2], sc[2 * s][3]),
                              pack_bf16(sc[2 * s + 1][0], sc[2 * s + 1][1]),
                              pack_bf16(sc[2 * s + 1][2], sc[2 * s + 1][3])};
      SP_UNROLL
      for (int d = 0; d < kDimTiles; d += 2) {
        uint32_t vf[4];  // matrices: keys 16s.., 16s+8.. at columns 8d..; the same at columns 8(d+1)..
        ldmatrix_x4_trans(vf, vt + (16 * s + 8 * (lane / 8 % 2) + lane % 8) * kStride<D> + 8 * (d + lane / 16));
        mma_m16n8k16_bf16(o[d], pf, {vf[0], vf[1]}, o[d]);
        mma_m16n8k16_bf16(o[d + 1], pf, {vf[2], vf[3]}, o[d + 1]);
      }
    }
  }
  cp_async_wait<0>();  // the last (empty) group: nothing may be pending when the block exits

  // out = O / denominator, lse per row; rows past Tq are not stored
  SP_UNROLL
  for (int r = 0; r < 2; ++r) {
    const int64_t row = i0 + warp * kRowsPerWarp + g + 8 * r;  // query row within the sequence's Tq
    const attn::RowEnd end = attn::row_end<N, U>(shift[r], quad_sum(den[r]), eps);
    if (row >= Tq) continue;
    bf16* orow = out + ((size_t(b) * Tq + row) * H + h) * D;
    SP_UNROLL
    for (int d = 0; d < kDimTiles; ++d) {
      const __nv_bfloat162 pair = __floats2bfloat162_rn(o[d][2 * r] * end.inv_den, o[d][2 * r + 1] * end.inv_den);
      *reinterpret_cast<__nv_bfloat162*>(orow + 8 * d + 2 * tq) = pair;  // 4-byte aligned: D and 2 tq are even
    }
    if (tq == 0) lse[(size_t(b) * H + h) * Tq + row] = end.lse;
  }
}

}  // namespace

void attention_forward_mma_cuda(const AttentionArgs& a, const bf16* q, const bf16* k, const bf16* v, bf16* out,
                                float* lse, cudaStream_t s) {
  const dim3 grid(blocks_for(size_t(a.Tq), kBlockQ), unsigned(a.H), unsigned(a.B));
  attn::dispatch_attention(a.norm, a.D, [&](auto norm, auto head_dim) {
    using N = decltype(norm);
    constexpr int D = decltype(head_dim)::value;
    constexpr size_t smem = Tiles<D>::kElems * sizeof(bf16);
    allow_dynamic_smem(attention_forward_mma_kernel<N, D>, smem);
    SP_LAUNCH((attention_forward_mma_kernel<N, D>), grid, dim3(kThreads), smem, s, q, k, v, out, lse, a.Tq, a.Tk,
              a.H, a.Hkv, a.q_offset, a.softpick_eps);
  });
}

}  // namespace sp::cuda
