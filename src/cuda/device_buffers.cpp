#include "cuda/device_buffers.h"

#include <algorithm>
#include <vector>

namespace sp::cuda {

namespace {

template <class D>
void download_as(std::span<D> dst, Buffer src, cudaStream_t stream) {
  SP_ASSERT(dst.size() <= src.numel, "download of {} values from a buffer of {}", dst.size(), src.numel);
  // the device values as H on the host, then widened into dst; the copy completes before the call returns
  auto fetch = [&]<class H>(H) {
    std::vector<H> h(dst.size());
    CUDA_CHECK(cudaMemcpyAsync(h.data(), src.ptr, h.size() * sizeof(H), cudaMemcpyDeviceToHost, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
    for (size_t i = 0; i < h.size(); ++i) {
      if constexpr (std::is_same_v<H, __nv_bfloat16>) dst[i] = D(__bfloat162float(h[i]));
      else dst[i] = D(h[i]);
    }
  };
  switch (src.dtype) {
    case DType::F32: return fetch(float{});
    case DType::F64: return fetch(double{});
    case DType::BF16: return fetch(__nv_bfloat16{});
    case DType::I32: return fetch(int32_t{});
  }
}

}  // namespace

Buffer DeviceMemory::alloc(size_t numel, DType dt, cudaStream_t stream) {
  const size_t bytes = std::max<size_t>(1, numel * dtype_size(dt));
  void* p = nullptr;
  if (cudaMalloc(&p, bytes) != cudaSuccess) {
    (void)cudaGetLastError();
    size_t free_b = 0, total = 0;
    cudaMemGetInfo(&free_b, &total);
    fail("out of GPU memory: cannot allocate {:.1f} MiB ({:.1f} MiB in use by softpick, {:.1f} of {:.1f} MiB free); "
         "set training.activation_checkpointing (attention or full), or use a smaller training.batch_size with more "
         "gradient_accumulation_steps; `softpick config` estimates each", double(bytes) / (1 << 20),
         double(in_use_) / (1 << 20), double(free_b) / (1 << 20), double(total) / (1 << 20));
  }
  CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream));
  in_use_ += bytes;
  peak_ = std::max(peak_, in_use_);
  return Buffer{p, numel, dt};
}

void DeviceMemory::release(Buffer b) {
  if (!b.ptr) return;
  CUDA_CHECK(cudaFree(b.ptr));
  in_use_ -= std::max<size_t>(1, b.numel * dtype_size(b.dtype));
}

void DeviceMemory::count(size_t bytes) {
  in_use_ += bytes;
  peak_ = std::max(peak_, in_use_);
}

void DeviceMemory::uncount(size_t bytes) { in_use_ -= bytes; }

void* Scratch::get(size_t bytes, cudaStream_t stream, size_t slot) {
  SP_ASSERT(slot < kSlots, "scratch slot {}", slot);
  if (bytes > size_[slot]) {
    CUDA_CHECK(cudaStreamSynchronize(stream));  // earlier work may still read the old block
    if (ptr_[slot]) CUDA_CHECK(cudaFree(ptr_[slot]));
    accounting_.uncount(size_[slot]);
    const size_t grown = std::max(bytes, size_[slot] * 3 / 2);
    CUDA_CHECK(cudaMalloc(&ptr_[slot], grown));
    size_[slot] = grown;
    accounting_.count(grown);
  }
  return ptr_[slot];
}

void Scratch::release() {
  for (size_t i = 0; i < kSlots; ++i) {
    if (ptr_[i]) cudaFree(ptr_[i]);
    accounting_.uncount(size_[i]);
    ptr_[i] = nullptr;
    size_[i] = 0;
  }
}

size_t Scratch::bytes() const {
  size_t b = 0;
  for (size_t s : size_) b += s;
  return b;
}

HostStaging::~HostStaging() {
  for (Slot& s : slots_) {
    if (s.copied) {
      cudaEventSynchronize(s.copied);
      cudaEventDestroy(s.copied);
    }
    if (s.host) cudaFreeHost(s.host);
  }
}

HostStaging::Slot& HostStaging::acquire(size_t bytes) {
  auto fits = [&](Slot& s) -> Slot& {
    if (s.bytes < bytes) {  // grow (a slot is sized once, in the first steps)
      if (s.host) CUDA_CHECK(cudaFreeHost(s.host));
      s.bytes = std::max<size_t>(bytes, size_t(1) << 16);
      CUDA_CHECK(cudaMallocHost(&s.host, s.bytes));
    }
    return s;
  };
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& s = slots_[(next_ + i) % slots_.size()];
    const cudaError_t q = cudaEventQuery(s.copied);
    if (q == cudaErrorNotReady) continue;
    CUDA_CHECK(q);
    next_ = (next_ + i + 1) % slots_.size();
    return fits(s);
  }
  if (slots_.size() < kMaxSlots) {
    Slot s;
    CUDA_CHECK(cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming));
    slots_.push_back(s);
    next_ = 0;  // the oldest slot
    return fits(slots_.back());
  }
  Slot& oldest = slots_[next_];  // every slot in flight: wait for the oldest copy
  CUDA_CHECK(cudaEventSynchronize(oldest.copied));
  next_ = (next_ + 1) % slots_.size();
  return fits(oldest);
}

void HostStaging::copy(Slot& slot, Buffer dst, size_t bytes, cudaStream_t stream) {
  CUDA_CHECK(cudaMemcpyAsync(dst.ptr, slot.host, bytes, cudaMemcpyHostToDevice, stream));
  CUDA_CHECK(cudaEventRecord(slot.copied, stream));
}

// Host values converted to the buffer's dtype in a pinned slot, then copied from it.
template <class S>
void HostStaging::upload_as(Buffer dst, std::span<const S> src, cudaStream_t stream) {
  SP_ASSERT(src.size() <= dst.numel, "upload of {} values into a buffer of {}", src.size(), dst.numel);
  const size_t bytes = src.size() * dtype_size(dst.dtype);
  Slot& slot = acquire(bytes);
  auto put = [&]<class D>(D) {
    D* h = static_cast<D*>(slot.host);
    for (size_t i = 0; i < src.size(); ++i) {
      if constexpr (std::is_same_v<D, __nv_bfloat16>) h[i] = __float2bfloat16(float(src[i]));
      else h[i] = D(src[i]);
    }
  };
  switch (dst.dtype) {
    case DType::F32: put(float{}); break;
    case DType::F64: put(double{}); break;
    case DType::BF16: put(__nv_bfloat16{}); break;
    case DType::I32:
      SP_ASSERT((std::is_same_v<S, int32_t>), "upload of floating-point values into an i32 buffer");
      put(int32_t{});
      break;
  }
  copy(slot, dst, bytes, stream);
}

void HostStaging::upload(Buffer dst, std::span<const float> src, cudaStream_t stream) { upload_as(dst, src, stream); }
void HostStaging::upload(Buffer dst, std::span<const double> src, cudaStream_t stream) {
  upload_as(dst, src, stream);
}
void HostStaging::upload(Buffer dst, std::span<const int32_t> src, cudaStream_t stream) {
  SP_ASSERT(dst.dtype == DType::I32, "upload of {} token ids into a {} buffer", src.size(), dtype_name(dst.dtype));
  upload_as(dst, src, stream);
}
void download(std::span<float> dst, Buffer src, cudaStream_t stream) { download_as(dst, src, stream); }
void download(std::span<double> dst, Buffer src, cudaStream_t stream) { download_as(dst, src, stream); }

}  // namespace sp::cuda
