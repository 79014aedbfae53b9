// The PTX instructions of kernels/ptx.cuh on the harness (ptx.h; the layouts are those of the PTX ISA's
// tables for mma.m16n8k16 and ldmatrix, see docs/cuda_harness.md, "PTX instructions").
#include "ptx.h"

#include <cstdio>
#include <cstring>

namespace emu {

namespace {

constexpr unsigned kFullWarp = 0xffffffffu;   // .sync.aligned: every lane of the warp, in convergence
constexpr unsigned char kPoison = 0xff;       // as uninitialised shared memory: NaN in every float type

std::string addr(const void* p) {
  char s[32];
  std::snprintf(s, sizeof s, "%p", p);
  return s;
}

// ---- mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 ----

struct MmaLane {
  float* d;
  const uint32_t* a;
  const uint32_t* b;
  const float* c;
};

// Element i of a fragment of packed bf16 pairs: register i / 2, low half first.
float bf16_element(const uint32_t* regs, int i) {
  return __uint_as_float((regs[i / 2] >> (16 * (i % 2)) & 0xffffu) << 16);
}

// With g = lane / 4 and t = lane % 4 (PTX ISA, "Matrix Fragments for mma.m16n8k16"):
//   A a_i: row g + 8 * (i / 2 % 2), column 2t + i % 2 + 8 * (i / 4)
//   B b_i: row (k) 2t + i % 2 + 8 * (i / 2), column (n) g
//   C c_i: row g + 8 * (i / 2), column 2t + i % 2 (D likewise)
void mma_compute(void* const* lanes, unsigned) {
  float A[16][16], B[16][8], C[16][8];
  for (int l = 0; l < 32; ++l) {
    const MmaLane& op = *static_cast<const MmaLane*>(lanes[l]);
    const int g = l / 4, t = l % 4;
    for (int i = 0; i < 8; ++i) A[g + 8 * (i / 2 % 2)][2 * t + i % 2 + 8 * (i / 4)] = bf16_element(op.a, i);
    for (int i = 0; i < 4; ++i) B[2 * t + i % 2 + 8 * (i / 2)][g] = bf16_element(op.b, i);
    for (int i = 0; i < 4; ++i) C[g + 8 * (i / 2)][2 * t + i % 2] = op.c[i];
  }
  // every operand is read above before any d is written, so d may alias c
  for (int l = 0; l < 32; ++l) {
    const MmaLane& op = *static_cast<const MmaLane*>(lanes[l]);
    const int g = l / 4, t = l % 4;
    for (int i = 0; i < 4; ++i) {
      const int row = g + 8 * (i / 2), col = 2 * t + i % 2;
      // bf16 products are exact in double; the hardware's summation order is unspecified, so sum exactly
      // enough to round once
      double s = C[row][col];
      for (int k = 0; k < 16; ++k) s += double(A[row][k]) * double(B[k][col]);
      op.d[i] = float(s);
    }
  }
}

// ---- ldmatrix.sync.aligned.m8n8.x{1,2,4}{.trans}.shared.b16 ----

struct LdmatrixLane {
  uint32_t* r;
  const void* row;
  int matrices;
  bool trans;
};

// Lanes 8j .. 8j+7 address the rows of matrix j; lane l receives into r[j] the pair of row l / 4 at columns
// 2 (l % 4) and 2 (l % 4) + 1, or with .trans the pair of column l / 4 at rows 2 (l % 4) and 2 (l % 4) + 1.
void ldmatrix_compute(void* const* lanes, unsigned) {
  const LdmatrixLane& first = *static_cast<const LdmatrixLane*>(lanes[0]);
  const int n = first.matrices;
  const bool trans = first.trans;  // the same in every lane: the instruction's name includes both
  uint16_t m[4][8][8];
  for (int j = 0; j < n; ++j)
    for (int row = 0; row < 8; ++row)
      std::memcpy(m[j][row], static_cast<const LdmatrixLane*>(lanes[8 * j + row])->row, 16);
  for (int l = 0; l < 32; ++l) {
    const LdmatrixLane& op = *static_cast<const LdmatrixLane*>(lanes[l]);
    const int q = l / 4, p = 2 * (l % 4);
    for (int j = 0; j < n; ++j) {
      const uint32_t lo = trans ? m[j][p][q] : m[j][q][p];
      const uint32_t hi = trans ? m[j][p + 1][q] : m[j][q][p + 1];
      op.r[j] = lo | hi << 16;
    }
  }
}

const char* ldmatrix_name(int matrices, bool trans) {
  static const char* const names[2][3] = {
      {"ldmatrix.sync.aligned.m8n8.x1.shared.b16", "ldmatrix.sync.aligned.m8n8.x2.shared.b16",
       "ldmatrix.sync.aligned.m8n8.x4.shared.b16"},
      {"ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16", "ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16",
       "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16"}};
  return names[trans][matrices == 1 ? 0 : (matrices == 2 ? 1 : 2)];
}

// ---- cp.async ----

void perform(const PendingCopy& c) {
  std::memcpy(c.dst, c.src, c.src_bytes);
  std::memset(static_cast<unsigned char*>(c.dst) + c.src_bytes, 0, c.bytes - c.src_bytes);
}

// Performs, in issue order, the copies of the groups committed before group `end`; keeps the rest.
void complete_groups_before(uint32_t end) {
  std::vector<PendingCopy>& copies = self().copies;
  size_t kept = 0;
  for (const PendingCopy& c : copies) {
    if (c.group < end) perform(c);
    else copies[kept++] = c;
  }
  copies.resize(kept);
}

}  // namespace

void mma_m16n8k16_bf16(float* d, const uint32_t* a, const uint32_t* b, const float* c, const Loc& loc) {
  MmaLane op{d, a, b, c};
  warp_instruction("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32", kFullWarp, &op, &mma_compute, loc);
}

void ldmatrix(int matrices, bool trans, uint32_t* r, const void* smem_row, const Loc& loc) {
  const char* name = ldmatrix_name(matrices, trans);
  const int lane = self().lane;
  if (lane < 8 * matrices) {  // the other lanes' addresses are ignored
    const std::string who = std::string(name) + ": lane " + std::to_string(lane) + "'s row address " + addr(smem_row);
    if (!in_shared(smem_row, 16)) fault(who + " is outside the block's shared memory", loc);
    if (reinterpret_cast<uintptr_t>(smem_row) % 16) fault(who + " is not 16-byte aligned", loc);
  }
  LdmatrixLane op{r, smem_row, matrices, trans};
  warp_instruction(name, kFullWarp, &op, &ldmatrix_compute, loc);
}

void cp_async(CacheOp op, uint32_t cp_size, void* smem_dst, const void* gmem_src, int src_bytes, const Loc& loc) {
  const std::string name = std::string(op == CacheOp::Cg ? "cp.async.cg" : "cp.async.ca") + ".shared.global of " +
                           std::to_string(cp_size) + " bytes";
  if (op == CacheOp::Cg ? cp_size != 16 : (cp_size != 4 && cp_size != 8 && cp_size != 16))
    fault(name + ": .cg copies 16 bytes, .ca 4, 8 or 16", loc);
  if (src_bytes < 0 || uint32_t(src_bytes) > cp_size)
    fault(name + ": src-size " + std::to_string(src_bytes) + " is outside [0, " + std::to_string(cp_size) + "]", loc);
  if (!in_shared(smem_dst, cp_size))
    fault(name + ": destination " + addr(smem_dst) + " is outside the block's shared memory", loc);
  if (reinterpret_cast<uintptr_t>(smem_dst) % cp_size)
    fault(name + ": destination " + addr(smem_dst) + " is not " + std::to_string(cp_size) + "-byte aligned", loc);
  if (reinterpret_cast<uintptr_t>(gmem_src) % cp_size)
    fault(name + ": source " + addr(gmem_src) + " is not " + std::to_string(cp_size) + "-byte aligned", loc);
  if (src_bytes > 0 && (!gmem_src || in_shared(gmem_src, 1)))
    fault(name + ": source " + addr(gmem_src) + " is not in global memory", loc);
  // until the wait, the destination holds neither its old bytes nor the new ones
  std::memset(smem_dst, kPoison, cp_size);
  ThreadCtx& t = self();
  t.copies.push_back(PendingCopy{smem_dst, gmem_src, cp_size, uint32_t(src_bytes), t.groups_committed});
}

void cp_async_commit(const Loc&) { ++self().groups_committed; }

void cp_async_wait(uint32_t newest_pending, const Loc&) {
  const uint32_t committed = self().groups_committed;
  if (committed > newest_pending) complete_groups_before(committed - newest_pending);
}

void cp_async_wait_all(const Loc& loc) {  // PTX: commit_group, then wait_group 0
  cp_async_commit(loc);
  cp_async_wait(0, loc);
}

}  // namespace emu
