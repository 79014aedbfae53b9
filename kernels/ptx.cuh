// The PTX instructions tensor-core kernels use, and the only way kernels reach PTX (included after
// common.cuh). Under nvcc each helper is one inline asm instruction (sm_80 and newer); in the CUDA
// execution harness it calls the emulation in tests/cuda_emu/ptx.cpp, which reproduces the PTX ISA's
// semantics and fragment layouts and checks the addresses. docs/cuda_harness.md, "PTX instructions",
// gives the layouts and what the harness checks.
#pragma once

#include "common.cuh"

#include <cstdint>

#if defined(SOFTPICK_CUDA_EMU)
#include "ptx.h"
// In the harness each helper also takes its caller's line, so a fault names the kernel's line: as its
// last parameter (SP_PTX_CALLER) or its only one (SP_PTX_CALLER_ONLY), passed on by SP_PTX_FORWARD.
#define SP_PTX_CALLER , SP_PTX_CALLER_ONLY
#define SP_PTX_CALLER_ONLY ::emu::Loc caller = ::emu::Loc::current()
#define SP_PTX_FORWARD , caller
#else
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error "kernels/ptx.cuh: mma.sync bf16, ldmatrix and cp.async need sm_80 or newer"
#endif
#define SP_PTX_CALLER
#define SP_PTX_CALLER_ONLY
#define SP_PTX_FORWARD
#endif

namespace sp::cuda {

#if !defined(SOFTPICK_CUDA_EMU)
// The 32-bit shared-state-space address that ldmatrix and cp.async take.
__device__ __forceinline__ uint32_t smem_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
#endif

// ---- mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32: d = a * b + c for one warp ----
// With g = lane / 4, t = lane % 4, fragments of packed bf16 pairs (low half first):
//   a (A 16x16): a_i at row g + 8 (i / 2 % 2), column 2t + i % 2 + 8 (i / 4), i = 0..7
//   b (B 16x8):  b_i at row 2t + i % 2 + 8 (i / 2), column g, i = 0..3
//   c, d (16x8 f32): c_i at row g + 8 (i / 2), column 2t + i % 2
// Every lane of the warp must run it together; d may alias c.
__device__ __forceinline__ void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                                  const float (&c)[4] SP_PTX_CALLER) {
#if defined(SOFTPICK_CUDA_EMU)
  emu::mma_m16n8k16_bf16(d, a, b, c, caller);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
#endif
}

// ---- ldmatrix.sync.aligned.m8n8.x{1,2,4}{.trans}.shared.b16: 8x8 b16 matrices from shared memory ----
// Lanes 8j .. 8j+7 pass the addresses of matrix j's 8 rows (16 bytes each, 16-byte aligned; the other
// lanes' addresses are ignored). Lane l receives in r[j] row l / 4, columns 2 (l % 4) and 2 (l % 4) + 1 of
// matrix j; with .trans, column l / 4 at rows 2 (l % 4) and 2 (l % 4) + 1. Every lane of the warp must
// run it together. The rows are written by other lanes, so a __syncwarp or __syncthreads precedes it;
// that barrier also fences the compiler, so the asm needs no "memory" clobber.
// The six variants, listed once; kernels call the named helpers below.
template <int kMatrices, bool kTrans>
__device__ __forceinline__ void ldmatrix(uint32_t (&r)[kMatrices], const void* smem_row SP_PTX_CALLER) {
  static_assert(kMatrices == 1 || kMatrices == 2 || kMatrices == 4, "ldmatrix loads 1, 2 or 4 matrices");
#if defined(SOFTPICK_CUDA_EMU)
  emu::ldmatrix(kMatrices, kTrans, r, smem_row, caller);
#else
  const uint32_t a = smem_address(smem_row);
  if constexpr (kMatrices == 1 && !kTrans)
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(a));
  else if constexpr (kMatrices == 1)
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(a));
  else if constexpr (kMatrices == 2 && !kTrans)
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(a));
  else if constexpr (kMatrices == 2)
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(a));
  else if constexpr (!kTrans)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
#endif
}

__device__ __forceinline__ void ldmatrix_x1(uint32_t (&r)[1], const void* p SP_PTX_CALLER) {
  ldmatrix<1, false>(r, p SP_PTX_FORWARD);
}
__device__ __forceinline__ void ldmatrix_x2(uint32_t (&r)[2], const void* p SP_PTX_CALLER) {
  ldmatrix<2, false>(r, p SP_PTX_FORWARD);
}
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p SP_PTX_CALLER) {
  ldmatrix<4, false>(r, p SP_PTX_FORWARD);
}
__device__ __forceinline__ void ldmatrix_x1_trans(uint32_t (&r)[1], const void* p SP_PTX_CALLER) {
  ldmatrix<1, true>(r, p SP_PTX_FORWARD);
}
__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t (&r)[2], const void* p SP_PTX_CALLER) {
  ldmatrix<2, true>(r, p SP_PTX_FORWARD);
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p SP_PTX_CALLER) {
  ldmatrix<4, true>(r, p SP_PTX_FORWARD);
}

// ---- cp.async: asynchronous global -> shared copies, per thread ----
// Copies kBytes from gmem_src to smem_dst (both aligned to kBytes); with src_bytes < kBytes only src_bytes
// are read and the rest is zero-filled (the tail of a tile). The data is there only after the
// cp_async_wait that covers its group, and for other threads after a barrier that follows that wait.
// The "memory" clobbers keep the compiler from moving shared-memory accesses across the issue and the wait.
template <int kBytes>
__device__ __forceinline__ void cp_async_ca(void* smem_dst, const void* gmem_src,
                                            int src_bytes = kBytes SP_PTX_CALLER) {
  static_assert(kBytes == 4 || kBytes == 8 || kBytes == 16, "cp.async.ca copies 4, 8 or 16 bytes");
#if defined(SOFTPICK_CUDA_EMU)
  emu::cp_async(emu::CacheOp::Ca, kBytes, smem_dst, gmem_src, src_bytes, caller);
#else
  asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(smem_address(smem_dst)), "l"(gmem_src),
               "n"(kBytes), "r"(src_bytes)
               : "memory");
#endif
}

// The same through L2 only (.cg: data read once per block, such as K and V tiles, need not stay in L1).
__device__ __forceinline__ void cp_async_cg16(void* smem_dst, const void* gmem_src, int src_bytes = 16 SP_PTX_CALLER) {
#if defined(SOFTPICK_CUDA_EMU)
  emu::cp_async(emu::CacheOp::Cg, 16, smem_dst, gmem_src, src_bytes, caller);
#else
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_address(smem_dst)), "l"(gmem_src),
               "r"(src_bytes)
               : "memory");
#endif
}

// Closes this thread's current group of copies (an empty group counts too).
__device__ __forceinline__ void cp_async_commit(SP_PTX_CALLER_ONLY) {
#if defined(SOFTPICK_CUDA_EMU)
  emu::cp_async_commit(caller);
#else
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

// Waits until at most kPending of this thread's most recently committed groups are still in flight: the
// older groups' copies have landed. The open (uncommitted) group is not waited for.
template <int kPending>
__device__ __forceinline__ void cp_async_wait(SP_PTX_CALLER_ONLY) {
  static_assert(kPending >= 0, "cp.async.wait_group takes a count of groups");
#if defined(SOFTPICK_CUDA_EMU)
  emu::cp_async_wait(kPending, caller);
#else
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
#endif
}

// Commits the open group and waits for every copy of this thread.
__device__ __forceinline__ void cp_async_wait_all(SP_PTX_CALLER_ONLY) {
#if defined(SOFTPICK_CUDA_EMU)
  emu::cp_async_wait_all(caller);
#else
  asm volatile("cp.async.wait_all;\n" ::: "memory");
#endif
}

}  // namespace sp::cuda

#undef SP_PTX_CALLER
#undef SP_PTX_CALLER_ONLY
#undef SP_PTX_FORWARD
