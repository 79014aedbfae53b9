// What a kernel sees when it is compiled with g++ for the CUDA execution harness (docs/cuda_harness.md).
//
// kernels/common.cuh includes this header instead of relying on nvcc. It supplies the built-in variables
// (threadIdx, blockIdx, blockDim, gridDim, warpSize), block barriers, warp collectives, atomics, shared
// memory and the device intrinsics the kernels use, each with CUDA's semantics. Barriers and collectives
// take the caller's source location (a defaulted argument), so a fault names the line that caused it.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <source_location>
#include <string>
#include <type_traits>
#include <vector>

namespace emu {

using Loc = std::source_location;

// A cp.async copy issued but not yet waited for (ptx.cpp).
struct PendingCopy {
  void* dst;
  const void* src;
  uint32_t bytes, src_bytes;  // src_bytes < bytes: the rest is zero-filled
  uint32_t group;             // the commit group it belongs to (the uncommitted one until committed)
};

// The per-thread state the scheduler keeps; kernels reach it only through the macros and helpers below.
struct ThreadCtx {
  uint3 thread_idx;
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
  int lane = 0;
  std::vector<PendingCopy> copies;  // cleared at block start
  uint32_t groups_committed = 0;
};
extern thread_local ThreadCtx* tl_thread;  // the fiber now running on this host thread
inline ThreadCtx& self() { return *tl_thread; }

// Ends the kernel with an error that names the kernel, the block, the thread and `loc`. Never returns.
[[noreturn]] void fault(const std::string& what, const Loc& loc);

// ---- barriers and warp collectives (scheduler.cpp) ----
enum class BarrierKind : uint8_t { Plain, Count, And, Or };
int block_barrier(BarrierKind kind, int pred, const Loc& loc);

enum class WarpOp : uint8_t {
  Sync, ShflIdx, ShflUp, ShflDown, ShflXor, Ballot, Any, All, ReduceAdd, ReduceMin, ReduceMax,
  Instruction,  // a warp-wide PTX instruction (warp_instruction below)
};
// Rendezvous of the lanes named in `mask`; returns this lane's result. For shuffles b and c are the PTX
// operands (source lane or offset, and the packed clamp/segment mask), value the lane's bits.
uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, unsigned b, unsigned c, const Loc& loc);

// A warp-wide instruction (mma.sync, ldmatrix, ...): every lane of `mask` arrives with a pointer to its own
// operands; the last to arrive calls compute(lanes, mask), where lanes[l] is lane l's pointer (null for
// lanes outside the mask), before any lane continues. `name` identifies the instruction in messages and
// in the check that every lane runs the same one.
using WarpCompute = void (*)(void* const* lanes, unsigned mask);
void warp_instruction(const char* name, unsigned mask, void* lane_operands, WarpCompute compute, const Loc& loc);

template <class T>
T shuffle(WarpOp op, unsigned mask, T var, int b, int width, const Loc& loc) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "shuffles move at most 64 bits");
  if (width < 1 || width > 32 || (width & (width - 1)))
    fault("shuffle width " + std::to_string(width) + " is not a power of two in [1, 32]", loc);
  const unsigned seg = unsigned(32 - width) << 8;
  const unsigned c = op == WarpOp::ShflUp ? seg : (seg | 0x1f);
  uint64_t bits = 0;
  std::memcpy(&bits, static_cast<const void*>(&var), sizeof(T));
  bits = warp_collective(op, mask, bits, unsigned(b), c, loc);
  T out;
  std::memcpy(static_cast<void*>(&out), &bits, sizeof(T));
  return out;
}

// ---- shared memory (scheduler.cpp owns each block's arena) ----
// A block's static shared variable, allocated when its first thread reaches the declaration.
void* static_shared_bytes(const char* name, size_t bytes, size_t align, const Loc& loc);
// The launch's dynamic shared memory and its size.
void* dynamic_shared_bytes(size_t* bytes);
// Whether [p, p + bytes) lies inside this block's shared memory (for the PTX helpers' address checks).
bool in_shared(const void* p, size_t bytes);

// An index that remembers where it was used, so an out-of-bounds access names its line.
struct Index {
  int64_t v;
  Loc loc;
  template <std::integral I>
  Index(I i, Loc l = Loc::current()) : v(int64_t(i)), loc(l) {}  // NOLINT: implicit on purpose
};

// A bounds-checked view of a block's shared array; `&a[i]` is a plain pointer into it.
template <class T>
class SharedArray {
public:
  SharedArray(T* p, size_t n, const char* name) : p_(p), n_(n), name_(name) {}
  T& operator[](Index i) const {
    if (i.v < 0 || uint64_t(i.v) >= n_)
      fault("shared array " + std::string(name_) + "[" + std::to_string(n_) + "]: index " + std::to_string(i.v) +
                " is out of bounds", i.loc);
    return p_[i.v];
  }
  size_t size() const { return n_; }

private:
  T* p_;
  size_t n_;
  const char* name_;
};

template <class T>
SharedArray<T> static_shared(const char* name, size_t n, Loc loc = Loc::current()) {
  return SharedArray<T>(static_cast<T*>(static_shared_bytes(name, n * sizeof(T), alignof(T) < 16 ? 16 : alignof(T), loc)),
                        n, name);
}
template <class T>
SharedArray<T> dynamic_shared(const char* name) {
  size_t bytes = 0;
  void* p = dynamic_shared_bytes(&bytes);
  return SharedArray<T>(static_cast<T*>(p), bytes / sizeof(T), name);
}

}  // namespace emu

// ---- qualifiers outside nvcc: crt/host_defines.h empties __global__ and friends, not this one ----
#ifndef __launch_bounds__
#define __launch_bounds__(...)  // a register-allocation hint for nvcc; nothing to emulate
#endif

// ---- built-in variables ----
#define threadIdx (::emu::self().thread_idx)
#define blockIdx (::emu::self().block_idx)
#define blockDim (::emu::self().block_dim)
#define gridDim (::emu::self().grid_dim)
#define warpSize 32

// ---- barriers and collectives ----
inline void __syncthreads(emu::Loc loc = emu::Loc::current()) { emu::block_barrier(emu::BarrierKind::Plain, 0, loc); }
inline int __syncthreads_count(int pred, emu::Loc loc = emu::Loc::current()) {
  return emu::block_barrier(emu::BarrierKind::Count, pred, loc);
}
inline int __syncthreads_and(int pred, emu::Loc loc = emu::Loc::current()) {
  return emu::block_barrier(emu::BarrierKind::And, pred, loc);
}
inline int __syncthreads_or(int pred, emu::Loc loc = emu::Loc::current()) {
  return emu::block_barrier(emu::BarrierKind::Or, pred, loc);
}
inline void __syncwarp(unsigned mask = 0xffffffffu, emu::Loc loc = emu::Loc::current()) {
  emu::warp_collective(emu::WarpOp::Sync, mask, 0, 0, 0, loc);
}
template <class T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = 32, emu::Loc loc = emu::Loc::current()) {
  return emu::shuffle(emu::WarpOp::ShflIdx, mask, var, src_lane, width, loc);
}
template <class T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32, emu::Loc loc = emu::Loc::current()) {
  return emu::shuffle(emu::WarpOp::ShflUp, mask, var, int(delta), width, loc);
}
template <class T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32, emu::Loc loc = emu::Loc::current()) {
  return emu::shuffle(emu::WarpOp::ShflDown, mask, var, int(delta), width, loc);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32, emu::Loc loc = emu::Loc::current()) {
  return emu::shuffle(emu::WarpOp::ShflXor, mask, var, lane_mask, width, loc);
}
inline unsigned __ballot_sync(unsigned mask, int pred, emu::Loc loc = emu::Loc::current()) {
  return unsigned(emu::warp_collective(emu::WarpOp::Ballot, mask, pred != 0, 0, 0, loc));
}
inline int __any_sync(unsigned mask, int pred, emu::Loc loc = emu::Loc::current()) {
  return int(emu::warp_collective(emu::WarpOp::Any, mask, pred != 0, 0, 0, loc));
}
inline int __all_sync(unsigned mask, int pred, emu::Loc loc = emu::Loc::current()) {
  return int(emu::warp_collective(emu::WarpOp::All, mask, pred != 0, 0, 0, loc));
}
inline unsigned __reduce_add_sync(unsigned mask, unsigned v, emu::Loc loc = emu::Loc::current()) {
  return unsigned(emu::warp_collective(emu::WarpOp::ReduceAdd, mask, v, 0, 0, loc));
}
inline unsigned __reduce_min_sync(unsigned mask, unsigned v, emu::Loc loc = emu::Loc::current()) {
  return unsigned(emu::warp_collective(emu::WarpOp::ReduceMin, mask, v, 0, 0, loc));
}
inline unsigned __reduce_max_sync(unsigned mask, unsigned v, emu::Loc loc = emu::Loc::current()) {
  return unsigned(emu::warp_collective(emu::WarpOp::ReduceMax, mask, v, 0, 0, loc));
}
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }

// ---- atomics: blocks run on several host threads, so these are real atomics ----
template <class T>
T atomicAdd(T* p, T v) {
  return std::atomic_ref<T>(*p).fetch_add(v);
}
template <class T>
T atomicSub(T* p, T v) {
  return std::atomic_ref<T>(*p).fetch_sub(v);
}
template <class T>
T atomicExch(T* p, T v) {
  return std::atomic_ref<T>(*p).exchange(v);
}
template <class T>
T atomicCAS(T* p, T expected, T desired) {
  std::atomic_ref<T>(*p).compare_exchange_strong(expected, desired);
  return expected;  // the old value, whether or not the swap happened
}
namespace emu {
// Stores v where replaces(old, v) holds, atomically; returns the old value (atomicMax, atomicMin).
template <class T, class Replaces>
T atomic_replace_if(T* p, T v, Replaces replaces) {
  std::atomic_ref<T> a(*p);
  T old = a.load();
  while (replaces(old, v) && !a.compare_exchange_weak(old, v)) {
  }
  return old;
}
}  // namespace emu
template <class T>
T atomicMax(T* p, T v) {
  return emu::atomic_replace_if(p, v, [](T old, T x) { return old < x; });
}
template <class T>
T atomicMin(T* p, T v) {
  return emu::atomic_replace_if(p, v, [](T old, T x) { return x < old; });
}

// ---- intrinsics with host equivalents ----
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __saturatef(float x) { return x < 0 ? 0.0f : (x > 1 ? 1.0f : x); }
inline unsigned __float_as_uint(float x) {
  unsigned u;
  std::memcpy(&u, &x, 4);
  return u;
}
inline float __uint_as_float(unsigned u) {
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}
inline int __float_as_int(float x) { return int(__float_as_uint(x)); }
inline float __int_as_float(int i) { return __uint_as_float(unsigned(i)); }
template <class T>
T __ldg(const T* p) {
  return *p;
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(unsigned(x)); }
