#include "cuda/device_buffers.h"

#include <vector>

namespace sp::cuda {

namespace {

// Host values converted to the buffer's dtype, then copied; the copy completes before the call returns, so
// the staging vector may go.
template <class S>
void upload_as(Buffer dst, std::span<const S> src, cudaStream_t stream) {
  SP_ASSERT(src.size() <= dst.numel, "upload of {} values into a buffer of {}", src.size(), dst.numel);
  auto put = [&](const auto& staged) {
    CUDA_CHECK(cudaMemcpyAsync(dst.ptr, staged.data(), staged.size() * sizeof(staged[0]), cudaMemcpyHostToDevice, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
  };
  switch (dst.dtype) {
    case DType::F32: put(std::vector<float>(src.begin(), src.end())); return;
    case DType::F64: put(std::vector<double>(src.begin(), src.end())); return;
    case DType::BF16: {
      std::vector<__nv_bfloat16> h(src.size());
      for (size_t i = 0; i < h.size(); ++i) h[i] = __float2bfloat16(float(src[i]));
      put(h);
      return;
    }
    case DType::I32: SP_ASSERT(false, "upload of floating-point values into an i32 buffer");
  }
}

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

void upload(Buffer dst, std::span<const float> src, cudaStream_t stream) { upload_as(dst, src, stream); }
void upload(Buffer dst, std::span<const double> src, cudaStream_t stream) { upload_as(dst, src, stream); }
void upload(Buffer dst, std::span<const int32_t> src, cudaStream_t stream) {
  SP_ASSERT(dst.dtype == DType::I32 && src.size() <= dst.numel, "upload of {} token ids into a {} buffer of {}",
            src.size(), dtype_name(dst.dtype), dst.numel);
  CUDA_CHECK(cudaMemcpyAsync(dst.ptr, src.data(), src.size_bytes(), cudaMemcpyHostToDevice, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
}
void download(std::span<float> dst, Buffer src, cudaStream_t stream) { download_as(dst, src, stream); }
void download(std::span<double> dst, Buffer src, cudaStream_t stream) { download_as(dst, src, stream); }

}  // namespace sp::cuda
