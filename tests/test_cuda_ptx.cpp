// The PTX helpers of kernels/ptx.cuh on the CUDA execution harness, against the PTX ISA's tables
// (docs/cuda_harness.md, "PTX instructions"): mma.m16n8k16 bf16 fragments on hand-built matrices, ldmatrix
// with and without .trans on coded shared tiles, cp.async groups, poisoning and zero-fill, the faults the
// harness reports, and the cp.async -> ldmatrix -> mma pattern of the attention kernel.
//
// The layouts are written here from the matrix element's side (which lane and register holds element
// (row, col)), the inverse of how tests/cuda_emu/ptx.cpp writes them, so the two are independent.
#include <catch2/catch.hpp>

#include "common.cuh"
#include "cuda_test_util.h"
#include "ptx.cuh"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace {

using namespace sp::cuda;
using Catch::Matchers::Contains;
using sp::test::DeviceArray;

// ---- host side ----

// Device memory holding raw bits (fragments, codes, poison), which DeviceArray's float round trip would
// not keep.
template <class T>
struct DeviceBuffer {
  T* p = nullptr;
  size_t n = 0;
  explicit DeviceBuffer(const std::vector<T>& from) : n(from.size()) {
    REQUIRE(cudaMalloc(reinterpret_cast<void**>(&p), n * sizeof(T)) == cudaSuccess);
    REQUIRE(cudaMemcpy(p, from.data(), n * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess);
  }
  explicit DeviceBuffer(size_t count) : DeviceBuffer(std::vector<T>(count, T{})) {}
  ~DeviceBuffer() { cudaFree(p); }
  std::vector<T> read() const {
    std::vector<T> to(n);
    REQUIRE(cudaMemcpy(to.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
    return to;
  }
};

template <class... P, class... A>
void run_kernel(void (*kernel)(P...), unsigned threads, A&&... args) {
  emu::launch(kernel, "ptx test kernel", 1, threads, 0, nullptr, emu::Site{__FILE__, __LINE__},
              std::forward<A>(args)...);
}

// A row-major matrix of floats.
struct Mat {
  int rows, cols;
  std::vector<float> v;
  Mat(int r, int c) : rows(r), cols(c), v(size_t(r) * size_t(c)) {}
  float& at(int r, int c) { return v[size_t(r) * size_t(cols) + size_t(c)]; }
  float at(int r, int c) const { return v[size_t(r) * size_t(cols) + size_t(c)]; }
  Mat transposed() const {
    Mat t(cols, rows);
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) t.at(c, r) = at(r, c);
    return t;
  }
};

uint16_t bf16_bits(float x) {
  const __nv_bfloat16 h = __float2bfloat16_rn(x);
  uint16_t u;
  std::memcpy(&u, &h, 2);
  return u;
}

// Where element (row, col) of an operand sits: its lane, and its index i in the lane's fragment (register
// i / 2, low half for even i).
struct Slot {
  int lane, i;
};
Slot a_slot(int row, int k) { return {4 * (row % 8) + k % 8 / 2, k % 2 + 2 * (row / 8) + 4 * (k / 8)}; }
Slot b_slot(int k, int n) { return {4 * n + k % 8 / 2, k % 2 + 2 * (k / 8)}; }
Slot cd_slot(int row, int col) { return {4 * (row % 8) + col / 2, col % 2 + 2 * (row / 8)}; }

// Fragments of packed bf16 pairs for all 32 lanes: lane l's registers are [l * regs, (l + 1) * regs).
std::vector<uint32_t> bf16_fragments(const Mat& m, int regs, Slot (*slot)(int, int)) {
  std::vector<uint32_t> f(32 * size_t(regs), 0);
  std::vector<int> hits(f.size() * 2, 0);
  for (int r = 0; r < m.rows; ++r)
    for (int c = 0; c < m.cols; ++c) {
      const Slot s = slot(r, c);
      f[size_t(s.lane * regs + s.i / 2)] |= uint32_t(bf16_bits(m.at(r, c))) << (16 * (s.i % 2));
      ++hits[size_t(s.lane * regs * 2 + s.i)];
    }
  for (int h : hits) REQUIRE(h == 1);  // the test's own layout covers every slot once
  return f;
}

std::vector<float> cd_fragments(const Mat& m) {
  std::vector<float> f(32 * 4);
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 8; ++c) f[size_t(cd_slot(r, c).lane * 4 + cd_slot(r, c).i)] = m.at(r, c);
  return f;
}

Mat from_cd_fragments(const std::vector<float>& f) {
  Mat m(16, 8);
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 8; ++c) m.at(r, c) = f[size_t(cd_slot(r, c).lane * 4 + cd_slot(r, c).i)];
  return m;
}

// The reference D = A B + C, in double.
Mat matmul_add(const Mat& a, const Mat& b, const Mat& c) {
  Mat d(a.rows, b.cols);
  for (int r = 0; r < a.rows; ++r)
    for (int n = 0; n < b.cols; ++n) {
      double s = c.at(r, n);
      for (int k = 0; k < a.cols; ++k) s += double(a.at(r, k)) * double(b.at(k, n));
      d.at(r, n) = float(s);
    }
  return d;
}

Mat random_bf16(int rows, int cols, std::mt19937_64& rng) {
  Mat m(rows, cols);
  m.v = sp::test::randn_as<__nv_bfloat16>(m.v.size(), rng);
  return m;
}

// ---- kernels ----

// One warp: lane l loads its fragments from a (4 per lane), b (2) and c (4), runs the mma, stores d (4).
__global__ void mma_kernel(float* d, const uint32_t* a, const uint32_t* b, const float* c, bool in_place) {
  const unsigned l = threadIdx.x;
  uint32_t fa[4], fb[2];
  float fc[4], fd[4];
  for (int i = 0; i < 4; ++i) fa[i] = a[4 * l + i];
  for (int i = 0; i < 2; ++i) fb[i] = b[2 * l + i];
  for (int i = 0; i < 4; ++i) fc[i] = c[4 * l + i];
  if (in_place) {  // the accumulator pattern: d and c are the same registers
    mma_m16n8k16_bf16(fc, fa, fb, fc);
    for (int i = 0; i < 4; ++i) fd[i] = fc[i];
  } else {
    mma_m16n8k16_bf16(fd, fa, fb, fc);
  }
  for (int i = 0; i < 4; ++i) d[4 * l + i] = fd[i];
}

// A shared tile of 4 coded 8x8 matrices, each row followed by 8 padding values.
constexpr int kRowStride = 16;  // b16 values per stored row
constexpr int kTileValues = 4 * 8 * kRowStride;
// Lane 8j + r points at stored matrix 3 - j, stored row 7 - r: each lane's row address is its own.
constexpr int stored_row(int j, int r) { return ((3 - j) * 8 + (7 - r)) * kRowStride; }

__global__ void ldmatrix_kernel(uint32_t* out, const uint16_t* codes, int matrices, bool trans) {
  SP_SHARED(uint16_t, tile, kTileValues);
  const int lane = int(threadIdx.x);
  for (int i = lane; i < kTileValues; i += 32) tile[i] = codes[i];
  __syncwarp();  // rows written by other lanes
  // lanes beyond the used ones pass an address ldmatrix would refuse: it must ignore them
  const void* row = lane < 8 * matrices ? static_cast<const void*>(&tile[stored_row(lane / 8, lane % 8)]) : codes + 1;
  uint32_t r[4] = {0, 0, 0, 0}, r1[1] = {0}, r2[2] = {0, 0};
  if (matrices == 1 && !trans) ldmatrix_x1(r1, row);
  if (matrices == 1 && trans) ldmatrix_x1_trans(r1, row);
  if (matrices == 2 && !trans) ldmatrix_x2(r2, row);
  if (matrices == 2 && trans) ldmatrix_x2_trans(r2, row);
  if (matrices == 4 && !trans) ldmatrix_x4(r, row);
  if (matrices == 4 && trans) ldmatrix_x4_trans(r, row);
  if (matrices == 1) r[0] = r1[0];
  if (matrices == 2) std::memcpy(r, r2, sizeof r2);
  for (int j = 0; j < 4; ++j) out[4 * lane + j] = r[j];
}

// A 16x16 bf16 A tile in shared memory (rows padded to 24 values, 48 bytes) loaded as mma's A fragment.
constexpr int kAStride = 24;
__global__ void ldmatrix_a_tile_kernel(uint32_t* out, const __nv_bfloat16* a) {
  SP_SHARED(__nv_bfloat16, tile, 16 * kAStride);
  const int lane = int(threadIdx.x);
  for (int i = lane; i < 16 * 16; i += 32) tile[i / 16 * kAStride + i % 16] = a[i];
  __syncwarp();  // rows written by other lanes
  uint32_t r[4];
  ldmatrix_x4(r, &tile[lane % 16 * kAStride + 8 * (lane / 16)]);
  for (int j = 0; j < 4; ++j) out[4 * lane + j] = r[j];
}

enum class BadAddress { Misaligned, Global, PastTheEnd };

__global__ void ldmatrix_bad_address_kernel(uint32_t* out, const uint16_t* global, int bad_lane, BadAddress bad) {
  SP_SHARED(uint16_t, tile, 16 * 8);  // 16 rows of 16 bytes, the block's only shared memory
  const int lane = int(threadIdx.x);
  const unsigned char* base = reinterpret_cast<const unsigned char*>(&tile[0]);
  const void* row = base + 16 * (lane % 16);
  if (lane == bad_lane)
    row = bad == BadAddress::Misaligned ? base + 16 * (lane % 16) + 8
        : bad == BadAddress::Global     ? static_cast<const void*>(global)
                                        : base + 16 * 16 - 8;  // its last 8 bytes lie past the tile
  uint32_t r[2];
  ldmatrix_x2(r, row);
  out[2 * lane] = r[0];
}

__global__ void mma_partial_warp_kernel(float* d) {
  const uint32_t a[4] = {}, b[2] = {};
  const float c[4] = {};
  float fd[4];
  mma_m16n8k16_bf16(fd, a, b, c);
  d[threadIdx.x] = fd[0];
}

__global__ void ldmatrix_divergent_kernel(uint32_t* out) {
  SP_SHARED(uint16_t, tile, 32 * 8);
  const void* row = &tile[8 * threadIdx.x];
  uint32_t r[4] = {};
  if (threadIdx.x < 16) ldmatrix_x4(r, row);
  else ldmatrix_x4_trans(r, row);
  out[threadIdx.x] = r[0];
}

// Each thread copies its kBytes chunk over zeros and reads the destination before and after the wait.
template <int kBytes, bool kCg>
__global__ void cp_async_kernel(uint32_t* before, uint32_t* after, const uint32_t* src) {
  constexpr int kWords = kBytes / 4;
  SP_SHARED(uint32_t, buf, 32 * kWords);
  const int t = int(threadIdx.x);
  for (int i = 0; i < kWords; ++i) buf[t * kWords + i] = 0;  // not the block-start poison: the issue's own
  if constexpr (kCg) cp_async_cg16(&buf[t * kWords], src + t * kWords);
  else cp_async_ca<kBytes>(&buf[t * kWords], src + t * kWords);
  cp_async_commit();
  for (int i = 0; i < kWords; ++i) before[t * kWords + i] = buf[t * kWords + i];
  cp_async_wait<0>();
  for (int i = 0; i < kWords; ++i) after[t * kWords + i] = buf[t * kWords + i];
}

// Three copies per thread: group 0, group 1 and the open group; a snapshot of all three after each wait.
constexpr int kSnapshots = 5;
__global__ void cp_async_groups_kernel(uint32_t* seen, const uint32_t* src) {
  SP_SHARED(uint32_t, buf, 3 * 32);
  const int t = int(threadIdx.x);
  for (int g = 0; g < 3; ++g) buf[g * 32 + t] = 0;  // poison after this comes from the issue
  auto snapshot = [&](int step) {
    for (int g = 0; g < 3; ++g) seen[(t * kSnapshots + step) * 3 + g] = buf[g * 32 + t];
  };
  cp_async_ca<4>(&buf[t], src + t);
  cp_async_commit();
  cp_async_ca<4>(&buf[32 + t], src + 32 + t);
  cp_async_commit();
  cp_async_ca<4>(&buf[64 + t], src + 64 + t);  // never committed before the wait_all
  snapshot(0);
  cp_async_wait<2>();  // two groups committed, two may stay in flight: nothing lands
  snapshot(1);
  cp_async_wait<1>();  // the older group lands
  snapshot(2);
  cp_async_wait<0>();  // both committed groups; the open one is not waited for
  snapshot(3);
  cp_async_wait_all();
  snapshot(4);
}

// Thread t reads t % 17 of its 16 bytes (cg for even t, ca for odd); the rest must be zero.
__global__ void cp_async_zero_fill_kernel(unsigned char* out, const unsigned char* src) {
  SP_SHARED(unsigned char, buf, 32 * 16);
  const int t = int(threadIdx.x);
  if (t % 2 == 0) cp_async_cg16(&buf[16 * t], src + 16 * t, t % 17);
  else cp_async_ca<16>(&buf[16 * t], src + 16 * t, t % 17);
  cp_async_wait_all();
  for (int i = 0; i < 16; ++i) out[16 * t + i] = buf[16 * t + i];
}

__global__ void cp_async_exit_pending_kernel(const uint32_t* src, bool wait_older) {
  SP_SHARED(uint32_t, buf, 8);
  cp_async_ca<16>(&buf[0], src);
  cp_async_commit();
  cp_async_ca<16>(&buf[4], src + 4);
  cp_async_commit();
  if (wait_older) cp_async_wait<1>();  // the newer group is still in flight at the exit
}

enum class BadCopy { DstMisaligned, DstGlobal, SrcMisaligned, SrcBytesTooMany, SrcShared };

__global__ void cp_async_bad_kernel(uint32_t* global, BadCopy bad) {
  SP_SHARED(uint32_t, buf, 16);
  switch (bad) {
    case BadCopy::DstMisaligned: cp_async_ca<16>(&buf[1], global); break;
    case BadCopy::DstGlobal: cp_async_ca<8>(global + 2, global); break;
    case BadCopy::SrcMisaligned: cp_async_cg16(&buf[0], global + 1); break;
    case BadCopy::SrcBytesTooMany: cp_async_ca<8>(&buf[0], global, 9); break;
    case BadCopy::SrcShared: cp_async_ca<4>(&buf[0], &buf[4]); break;
  }
  cp_async_wait_all();
}

// The attention kernel's pattern on one warp: A (16x16) and B tiles land in shared memory by cp.async,
// ldmatrix turns them into fragments, mma multiplies, D (16x8) is stored. B is either (K, N) row-major,
// as V is (ldmatrix .trans), or (N, K) row-major, as K is for Q K^T (plain ldmatrix).
constexpr int kM = 16, kN = 8, kK = 16;
__global__ void tile_mma_kernel(float* d, const __nv_bfloat16* a, const __nv_bfloat16* b, bool b_is_nk) {
  SP_SHARED(__nv_bfloat16, sa, kM * kK);  // 16 rows of 32 bytes
  SP_SHARED(__nv_bfloat16, sb, kK * kN);  // 16 rows of 16 bytes (K, N) or 8 rows of 32 bytes (N, K)
  const int lane = int(threadIdx.x);
  // 16-byte chunks: 32 of A, one a lane; 16 of B
  cp_async_cg16(&sa[8 * lane], a + 8 * lane);
  cp_async_commit();
  if (lane < 16) cp_async_ca<16>(&sb[8 * lane], b + 8 * lane);
  cp_async_commit();
  cp_async_wait<0>();
  __syncwarp();  // ldmatrix reads rows that other lanes copied
  uint32_t fa[4], fb[2];
  ldmatrix_x4(fa, &sa[lane % 16 * kK + 8 * (lane / 16)]);
  if (b_is_nk) ldmatrix_x2(fb, &sb[lane % 8 * kK + 8 * (lane / 8 % 2)]);
  else ldmatrix_x2_trans(fb, &sb[lane % 16 * kN]);
  float acc[4] = {0, 0, 0, 0};
  mma_m16n8k16_bf16(acc, fa, fb, acc);
  const int g = lane / 4, t = lane % 4;
  for (int i = 0; i < 4; ++i) d[(g + 8 * (i / 2)) * kN + 2 * t + i % 2] = acc[i];
}

Mat run_mma(const Mat& a, const Mat& b, const Mat& c, bool in_place = false) {
  DeviceBuffer<uint32_t> fa(bf16_fragments(a, 4, a_slot)), fb(bf16_fragments(b, 2, b_slot));
  DeviceArray<float> fc(cd_fragments(c)), fd(32 * 4);
  run_kernel(mma_kernel, 32, fd.p, fa.p, fb.p, fc.p, in_place);
  return from_cd_fragments(fd.host());
}

// Distinct integers in scrambled order (37 is prime to rows * cols), exact in bf16 while |x| <= 256, with
// exact fp32 sums: inputs whose product and sums every element of D must reproduce exactly.
Mat coded(int rows, int cols, int scale, int offset) {
  Mat m(rows, cols);
  for (int i = 0; i < rows * cols; ++i) m.v[size_t(i)] = float(scale * (37 * i % (rows * cols)) + offset);
  return m;
}

void require_equal(const Mat& got, const Mat& want) {
  for (int r = 0; r < want.rows; ++r)
    for (int c = 0; c < want.cols; ++c) {
      INFO("D(" << r << ", " << c << ")");
      REQUIRE(got.at(r, c) == want.at(r, c));
    }
}

}  // namespace

TEST_CASE("ptx: mma.m16n8k16 bf16 places every element of A, B, C and D by the PTX tables", "[cuda]") {
  const Mat a = coded(16, 16, 1, -128), b = coded(16, 8, 1, 1), c = coded(16, 8, -3, 7);
  require_equal(run_mma(a, b, c), matmul_add(a, b, c));
  require_equal(run_mma(a, b, c, true), matmul_add(a, b, c));  // d aliasing c
}

TEST_CASE("ptx: mma with one-hot operands reads each fragment slot at its own place", "[cuda]") {
  // A = I gives D = B + C: every B slot lands at its (k, n); picking column k of A checks every A slot.
  Mat eye(16, 16), zero_c(16, 8);
  for (int i = 0; i < 16; ++i) eye.at(i, i) = 1;
  const Mat a = coded(16, 16, 1, -100), b = coded(16, 8, 2, -120), c = coded(16, 8, 1, 0);
  require_equal(run_mma(eye, b, c), matmul_add(eye, b, c));
  for (int half = 0; half < 2; ++half) {
    Mat pick(16, 8);  // column n picks column n + 8 * half of A
    for (int n = 0; n < 8; ++n) pick.at(n + 8 * half, n) = 1;
    const Mat d = run_mma(a, pick, zero_c);
    for (int r = 0; r < 16; ++r)
      for (int n = 0; n < 8; ++n) REQUIRE(d.at(r, n) == a.at(r, n + 8 * half));
  }
}

TEST_CASE("ptx: mma fragments of the transposed A compute A^T B, not A B", "[cuda]") {
  const Mat a = coded(16, 16, 1, -128), b = coded(16, 8, 1, 1), c(16, 8);
  const Mat d = run_mma(a.transposed(), b, c);
  require_equal(d, matmul_add(a.transposed(), b, c));
  int differ = 0;
  const Mat ab = matmul_add(a, b, c);
  for (size_t i = 0; i < d.v.size(); ++i) differ += d.v[i] != ab.v[i];
  REQUIRE(differ == int(d.v.size()));  // the layout is not symmetric: no element survives the mix-up
}

TEST_CASE("ptx: mma on random bf16 values agrees with the fp64 product within the fp32 tolerance", "[cuda]") {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 8; ++trial) {
    const Mat a = random_bf16(16, 16, rng), b = random_bf16(16, 8, rng), c = random_bf16(16, 8, rng);
    REQUIRE(sp::test::rel_err(run_mma(a, b, c).v, matmul_add(a, b, c).v) <= sp::test::kTolCudaF32);
  }
}

TEST_CASE("ptx: ldmatrix x1, x2, x4 with and without .trans deliver each b16 by the PTX table", "[cuda]") {
  auto code = [](int m, int row, int col) { return uint16_t(1000 * m + 10 * row + col); };
  std::vector<uint16_t> codes(kTileValues, 9999);  // padding: a read of it shows as 9999
  for (int m = 0; m < 4; ++m)
    for (int row = 0; row < 8; ++row)
      for (int col = 0; col < 8; ++col) codes[size_t((m * 8 + row) * kRowStride + col)] = code(m, row, col);
  DeviceBuffer<uint16_t> dcodes(codes);
  for (int matrices : {1, 2, 4})
    for (bool trans : {false, true}) {
      DeviceBuffer<uint32_t> out(32 * 4);
      run_kernel(ldmatrix_kernel, 32, out.p, dcodes.p, matrices, trans);
      // element (row, col) of matrix j goes to lane 4 row + col / 2, half col % 2; .trans swaps row and col
      std::vector<uint32_t> want(32 * 4, 0);
      for (int j = 0; j < matrices; ++j)
        for (int row = 0; row < 8; ++row)
          for (int col = 0; col < 8; ++col) {
            const int lane = trans ? 4 * col + row / 2 : 4 * row + col / 2, half = trans ? row % 2 : col % 2;
            // matrix j's row r is stored matrix 3 - j, stored row 7 - r
            want[size_t(4 * lane + j)] |= uint32_t(code(3 - j, 7 - row, col)) << (16 * half);
          }
      const auto got = out.read();
      for (size_t i = 0; i < want.size(); ++i) {
        INFO("x" << matrices << (trans ? ".trans" : "") << " lane " << i / 4 << " r[" << i % 4 << "]");
        REQUIRE(got[i] == want[i]);
      }
    }
}

TEST_CASE("ptx: ldmatrix x4 of an A tile (lane l at row l % 16, column 8 (l / 16)) is mma's A fragment", "[cuda]") {
  const Mat a = coded(16, 16, 1, -128);
  DeviceArray<__nv_bfloat16> da(a.v);
  DeviceBuffer<uint32_t> out(32 * 4);
  run_kernel(ldmatrix_a_tile_kernel, 32, out.p, da.p);
  REQUIRE(out.read() == bf16_fragments(a, 4, a_slot));
}

TEST_CASE("ptx: ldmatrix reports a misaligned row address and one outside shared memory", "[cuda]") {
  DeviceBuffer<uint16_t> global(64);
  DeviceBuffer<uint32_t> out(64);
  REQUIRE_THROWS_WITH(run_kernel(ldmatrix_bad_address_kernel, 32, out.p, global.p, 3, BadAddress::Misaligned),
                      Contains("ldmatrix.sync.aligned.m8n8.x2.shared.b16: lane 3's row address") &&
                          Contains("is not 16-byte aligned at test_cuda_ptx.cpp:") && Contains("thread (3,0,0)"));
  REQUIRE_THROWS_WITH(run_kernel(ldmatrix_bad_address_kernel, 32, out.p, global.p, 9, BadAddress::Global),
                      Contains("lane 9's row address") && Contains("outside the block's shared memory"));
  REQUIRE_THROWS_WITH(run_kernel(ldmatrix_bad_address_kernel, 32, out.p, global.p, 15, BadAddress::PastTheEnd),
                      Contains("lane 15's row address") && Contains("outside the block's shared memory"));
  // x2 ignores lanes 16-31
  run_kernel(ldmatrix_bad_address_kernel, 32, out.p, global.p, 20, BadAddress::Global);
}

TEST_CASE("ptx: mma and ldmatrix need the whole warp at the same instruction", "[cuda]") {
  DeviceArray<float> d(32);
  DeviceBuffer<uint32_t> out(32);
  REQUIRE_THROWS_WITH(run_kernel(mma_partial_warp_kernel, 16, d.p),
                      Contains("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32") &&
                          Contains("beyond the block's last thread"));
  REQUIRE_THROWS_WITH(run_kernel(ldmatrix_divergent_kernel, 32, out.p), Contains("divergent warp collectives"));
}

TEST_CASE("ptx: cp.async destinations read as poison until the wait, then hold the data", "[cuda]") {
  std::vector<uint32_t> src(32 * 4);
  for (size_t i = 0; i < src.size(); ++i) src[i] = uint32_t(0x1000 + i);
  DeviceBuffer<uint32_t> dsrc(src), before(src.size()), after(src.size());
  auto check = [&](size_t words) {
    const auto b = before.read(), a = after.read();
    for (size_t i = 0; i < words; ++i) {
      REQUIRE(b[i] == 0xffffffffu);
      REQUIRE(a[i] == src[i]);
    }
  };
  run_kernel(cp_async_kernel<4, false>, 32, before.p, after.p, dsrc.p);
  check(32);
  run_kernel(cp_async_kernel<8, false>, 32, before.p, after.p, dsrc.p);
  check(64);
  run_kernel(cp_async_kernel<16, false>, 32, before.p, after.p, dsrc.p);
  check(128);
  run_kernel(cp_async_kernel<16, true>, 32, before.p, after.p, dsrc.p);
  check(128);
}

TEST_CASE("ptx: cp.async.wait_group N completes all but the N newest committed groups", "[cuda]") {
  std::vector<uint32_t> src(3 * 32);
  for (size_t i = 0; i < src.size(); ++i) src[i] = uint32_t(7 * i + 1);
  DeviceBuffer<uint32_t> dsrc(src), seen(32 * kSnapshots * 3);
  run_kernel(cp_async_groups_kernel, 32, seen.p, dsrc.p);
  const auto s = seen.read();
  // landed[step][group] after each snapshot: group 0, group 1, the open group
  const int landed[kSnapshots][3] = {{0, 0, 0}, {0, 0, 0}, {1, 0, 0}, {1, 1, 0}, {1, 1, 1}};
  for (int t = 0; t < 32; ++t)
    for (int step = 0; step < kSnapshots; ++step)
      for (int g = 0; g < 3; ++g) {
        INFO("thread " << t << " snapshot " << step << " group " << g);
        const uint32_t want = landed[step][g] ? src[size_t(g * 32 + t)] : 0xffffffffu;
        REQUIRE(s[size_t((t * kSnapshots + step) * 3 + g)] == want);
      }
}

TEST_CASE("ptx: cp.async with src_bytes < 16 zero-fills the rest", "[cuda]") {
  std::vector<unsigned char> src(32 * 16);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<unsigned char>(i % 251 + 1);
  DeviceBuffer<unsigned char> dsrc(src), out(src.size());
  run_kernel(cp_async_zero_fill_kernel, 32, out.p, dsrc.p);
  const auto o = out.read();
  for (int t = 0; t < 32; ++t)
    for (int i = 0; i < 16; ++i) {
      INFO("thread " << t << " byte " << i);
      REQUIRE(o[size_t(16 * t + i)] == (i < t % 17 ? src[size_t(16 * t + i)] : 0));
    }
}

TEST_CASE("ptx: cp.async copies never waited for, and bad cp.async operands, are reported", "[cuda]") {
  DeviceBuffer<uint32_t> global(64);
  REQUIRE_THROWS_WITH(run_kernel(cp_async_exit_pending_kernel, 32, global.p, false),
                      Contains("exited with 2 cp.async copies never waited for"));
  REQUIRE_THROWS_WITH(run_kernel(cp_async_exit_pending_kernel, 32, global.p, true),
                      Contains("exited with 1 cp.async copies never waited for"));
  REQUIRE_THROWS_WITH(run_kernel(cp_async_bad_kernel, 1, global.p, BadCopy::DstMisaligned),
                      Contains("cp.async.ca.shared.global of 16 bytes: destination") &&
                          Contains("is not 16-byte aligned at test_cuda_ptx.cpp:"));
  REQUIRE_THROWS_WITH(run_kernel(cp_async_bad_kernel, 1, global.p, BadCopy::DstGlobal),
                      Contains("destination") && Contains("outside the block's shared memory"));
  REQUIRE_THROWS_WITH(run_kernel(cp_async_bad_kernel, 1, global.p, BadCopy::SrcMisaligned),
                      Contains("cp.async.cg.shared.global of 16 bytes: source") && Contains("is not 16-byte aligned"));
  REQUIRE_THROWS_WITH(run_kernel(cp_async_bad_kernel, 1, global.p, BadCopy::SrcBytesTooMany),
                      Contains("src-size 9 is outside [0, 8]"));
  REQUIRE_THROWS_WITH(run_kernel(cp_async_bad_kernel, 1, global.p, BadCopy::SrcShared),
                      Contains("is not in global memory"));
}

TEST_CASE("ptx: cp.async -> ldmatrix -> mma on one warp matches a CPU matmul", "[cuda]") {
  std::mt19937_64 rng(11);
  for (bool b_is_nk : {false, true}) {
    const Mat a = random_bf16(kM, kK, rng), b = random_bf16(kK, kN, rng), zero(kM, kN);
    DeviceArray<__nv_bfloat16> da(a.v), db(b_is_nk ? b.transposed().v : b.v);
    DeviceArray<float> dd(kM * kN);
    run_kernel(tile_mma_kernel, 32, dd.p, da.p, db.p, b_is_nk);
    INFO((b_is_nk ? "B stored (N, K)" : "B stored (K, N)"));
    REQUIRE(sp::test::rel_err(dd.host(), matmul_add(a, b, zero).v) <= sp::test::kTolCudaF32);
  }
}
