// The PTX instructions of kernels/ptx.cuh, emulated with their PTX ISA semantics for the CUDA execution
// harness (docs/cuda_harness.md, "PTX instructions").
//
// mma.sync and ldmatrix are warp-wide: every lane of the warp arrives (emu::warp_instruction) and the
// last one computes the whole warp's result from the fragment layouts of the PTX ISA. cp.async is
// per-thread: a copy is recorded at issue, its destination poisoned, and it lands at the wait that
// completes its group, so a read before the wait sees NaN bytes instead of the data.
// Each function takes its caller's source location, so a fault names the kernel's line.
#pragma once

#include "device.h"

#include <cstdint>

namespace emu {

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32: D (16x8) = A (16x16) * B (16x8) + C, this lane's
// fragments. d may alias c.
void mma_m16n8k16_bf16(float* d, const uint32_t* a, const uint32_t* b, const float* c, const Loc& loc);

// ldmatrix.sync.aligned.m8n8.x{matrices}{.trans}.shared.b16: this lane's row address (used by lanes
// 0 .. 8 * matrices - 1) and its `matrices` destination registers.
void ldmatrix(int matrices, bool trans, uint32_t* r, const void* smem_row, const Loc& loc);

// cp.async.{ca,cg}.shared.global [dst], [src], cp_size, src_bytes.
enum class CacheOp : uint8_t { Ca, Cg };  // .ca: through L1 and L2; .cg: L2 only (16-byte copies)
void cp_async(CacheOp op, uint32_t cp_size, void* smem_dst, const void* gmem_src, int src_bytes, const Loc& loc);
void cp_async_commit(const Loc& loc);                      // cp.async.commit_group
void cp_async_wait(uint32_t newest_pending, const Loc& loc);  // cp.async.wait_group newest_pending
void cp_async_wait_all(const Loc& loc);                    // cp.async.wait_all

}  // namespace emu
