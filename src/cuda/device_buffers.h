// Device memory for the CUDA backend: allocations with accounting, grow-only scratch slots, typed views of
// Buffers, host <-> device transfers with dtype conversion (uploads staged in pinned memory, downloads as
// sync points), and the dtype dispatch of the launchers.
#pragma once

#include "backend/backend.h"
#include "core/check.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <array>
#include <cstdint>
#include <span>
#include <vector>

namespace sp::cuda {

template <class T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>) return DType::F32;
  else if constexpr (std::is_same_v<T, double>) return DType::F64;
  else if constexpr (std::is_same_v<T, __nv_bfloat16>) return DType::BF16;
  else return DType::I32;
}

// The typed device pointer of a buffer holding at least n elements.
template <class T>
T* at(Buffer b, size_t n) {
  SP_ASSERT(b.dtype == dtype_of<T>(), "a {} buffer where {} is expected", dtype_name(b.dtype), dtype_name(dtype_of<T>()));
  SP_ASSERT(b.numel >= n, "a buffer of {} elements where {} are needed", b.numel, n);
  return static_cast<T*>(b.ptr);
}

// Calls f(T{}) with T the element type of a floating-point dtype the kernels are instantiated for.
template <class F>
void with_float_type(DType dt, F&& f) {
  switch (dt) {
    case DType::F32: f(float{}); return;
    case DType::BF16: f(__nv_bfloat16{}); return;
    default: SP_ASSERT(false, "the CUDA kernels take f32 or bf16 buffers, not {}", dtype_name(dt));
  }
}

// Zero-filled device allocations, with the bytes in use and their peak.
class DeviceMemory {
public:
  Buffer alloc(size_t numel, DType dt, cudaStream_t stream);
  void release(Buffer b);
  size_t in_use() const { return in_use_; }
  size_t peak() const { return peak_; }
  void count(size_t bytes);    // memory allocated elsewhere (the scratch slots)
  void uncount(size_t bytes);

private:
  size_t in_use_ = 0, peak_ = 0;
};

// Grow-only scratch memory in a few independent slots (one op may need several at once). Work on the one
// stream is ordered, so a slot is free again as soon as the next op is enqueued.
class Scratch {
public:
  static constexpr size_t kSlots = 4;
  explicit Scratch(DeviceMemory& accounting) : accounting_(accounting) {}
  void* get(size_t bytes, cudaStream_t stream, size_t slot = 0);
  Buffer buffer(size_t numel, DType dt, cudaStream_t stream, size_t slot = 0) {
    return Buffer{get(numel * dtype_size(dt), stream, slot), numel, dt};
  }
  void release();
  size_t bytes() const;

private:
  DeviceMemory& accounting_;
  std::array<void*, kSlots> ptr_{};
  std::array<size_t, kSlots> size_{};
};

// Uploads through page-locked staging memory, so the host never waits for the stream: each upload converts
// its values into a free slot of pinned memory, queues the copy from it and records an event after the
// copy; a slot is free again once its event has completed. When none is free (the first steps, or more
// uploads in flight than slots) a new slot is added, up to kMaxSlots; only beyond that does an upload wait,
// for the oldest slot. A training step uploads its tokens and targets per micro-batch, so after the first
// step the ring holds a slot per upload in flight and uploads never wait.
class HostStaging {
public:
  static constexpr size_t kMaxSlots = 64;
  HostStaging() = default;
  HostStaging(const HostStaging&) = delete;
  HostStaging& operator=(const HostStaging&) = delete;
  ~HostStaging();
  void upload(Buffer dst, std::span<const float> src, cudaStream_t stream);  // converts to dst's dtype
  void upload(Buffer dst, std::span<const double> src, cudaStream_t stream);
  void upload(Buffer dst, std::span<const int32_t> src, cudaStream_t stream);
  size_t slots() const { return slots_.size(); }

private:
  struct Slot {
    void* host = nullptr;  // pinned
    size_t bytes = 0;
    cudaEvent_t copied = nullptr;  // recorded after the slot's latest copy
  };
  template <class S>
  void upload_as(Buffer dst, std::span<const S> src, cudaStream_t stream);
  // a free slot of at least `bytes`, filled by the caller and then handed to copy()
  Slot& acquire(size_t bytes);
  void copy(Slot& slot, Buffer dst, size_t bytes, cudaStream_t stream);

  std::vector<Slot> slots_;
  size_t next_ = 0;  // where the search for a free slot starts (the oldest, in steady state)
};

void download(std::span<float> dst, Buffer src, cudaStream_t stream);  // sync point
void download(std::span<double> dst, Buffer src, cudaStream_t stream);  // sync point

}  // namespace sp::cuda
