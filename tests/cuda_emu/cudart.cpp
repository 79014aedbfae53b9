// The CUDA runtime calls the CUDA backend uses, for the harness (docs/cuda_harness.md).
//
// Device memory is host memory (one address space, so every cudaMemcpyKind is a memcpy); new allocations
// are filled with NaN bytes, as an uninitialised GPU buffer holds garbage. Streams are queues that run on
// demand in any order their events allow (streams.cpp); events record the host time at which they run.
// The emulated machine has SOFTPICK_EMU_DEVICES (default 8) devices of an H100 SXM's description.
#include "runtime.h"
#include "streams.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

namespace {

constexpr size_t kDeviceBytes = size_t(80) << 30;
std::mutex g_mutex;
std::map<void*, size_t> g_allocations;  // guarded by g_mutex
std::map<void*, size_t> g_pinned;       // cudaMallocHost blocks, guarded by g_mutex
size_t g_allocated = 0;
thread_local int tl_device = 0;

int device_count() {
  static const int n = [] {
    const char* s = std::getenv("SOFTPICK_EMU_DEVICES");
    const int v = s ? std::atoi(s) : 8;
    return v > 0 ? v : 8;
  }();
  return n;
}

// Whether p lies in host memory that is not page-locked: async copies from it are staged at the call, and
// async copies into it complete before the call returns, as CUDA does for pageable memory.
bool pageable(const void* p) {
  std::lock_guard<std::mutex> lock(g_mutex);
  for (const auto* m : {&g_allocations, &g_pinned}) {
    auto it = m->upper_bound(const_cast<void*>(p));
    if (it == m->begin()) continue;
    --it;
    if (static_cast<const char*>(p) < static_cast<const char*>(it->first) + std::max<size_t>(it->second, 1))
      return false;
  }
  return true;
}

cudaError_t ok() { return cudaSuccess; }
cudaError_t fail(cudaError_t e) {
  emu::set_last_error(e);
  return e;
}

}  // namespace

extern "C" {

cudaError_t cudaMalloc(void** p, size_t bytes) {
  if (!p) return fail(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_allocated + bytes > kDeviceBytes) return fail(cudaErrorMemoryAllocation);
  const size_t rounded = (bytes + 255) / 256 * 256;
  *p = std::aligned_alloc(256, rounded ? rounded : 256);
  if (!*p) return fail(cudaErrorMemoryAllocation);
  std::memset(*p, 0xff, rounded);
  g_allocations[*p] = bytes;
  g_allocated += bytes;
  return ok();
}

cudaError_t cudaFree(void* p) {
  if (!p) return ok();
  emu::synchronize_device();  // cudaFree waits for the device, so no queued work can still use the block
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_allocations.find(p);
  if (it == g_allocations.end()) return fail(cudaErrorInvalidDevicePointer);
  g_allocated -= it->second;
  g_allocations.erase(it);
  std::free(p);
  return ok();
}

cudaError_t cudaMallocHost(void** p, size_t bytes) {
  *p = std::malloc(bytes ? bytes : 1);
  if (!*p) return fail(cudaErrorMemoryAllocation);
  std::lock_guard<std::mutex> lock(g_mutex);
  g_pinned[*p] = bytes;
  return ok();
}
cudaError_t cudaFreeHost(void* p) {
  emu::synchronize_device();
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_pinned.erase(p);
  }
  std::free(p);
  return ok();
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total) {
  std::lock_guard<std::mutex> lock(g_mutex);
  *total = kDeviceBytes;
  *free_bytes = kDeviceBytes - g_allocated;
  return ok();
}

// cudaMemcpy and cudaMemset run on the legacy stream: after the blocking streams' work, before returning.
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  emu::synchronize_blocking_streams();
  if (bytes) std::memmove(dst, src, bytes);
  return ok();
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind, cudaStream_t s) {
  if (!bytes) return ok();
  if (pageable(dst)) {  // into pageable memory: complete when the call returns
    emu::synchronize_stream(s);
    std::memmove(dst, src, bytes);
    return ok();
  }
  if (pageable(src)) {  // from pageable memory: staged now, so the caller may reuse its buffer at once
    auto staged = std::make_shared<std::vector<char>>(static_cast<const char*>(src), static_cast<const char*>(src) + bytes);
    emu::enqueue(s, [dst, staged] { std::memcpy(dst, staged->data(), staged->size()); });
    return ok();
  }
  emu::enqueue(s, [dst, src, bytes] { std::memmove(dst, src, bytes); });
  return ok();
}
cudaError_t cudaMemset(void* p, int value, size_t bytes) {
  emu::synchronize_blocking_streams();
  if (bytes) std::memset(p, value, bytes);
  return ok();
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s) {
  if (bytes) emu::enqueue(s, [p, value, bytes] { std::memset(p, value, bytes); });
  return ok();
}

cudaError_t cudaStreamCreate(cudaStream_t* s) {
  emu::stream_create(s, /*blocking=*/true);
  return ok();
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
  emu::stream_create(s, /*blocking=*/!(flags & cudaStreamNonBlocking));
  return ok();
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  emu::stream_destroy(s);
  return ok();
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  emu::synchronize_stream(s);
  return ok();
}
// A query never waits: done, or (drawn) finished just now, or not ready yet (streams.h).
cudaError_t cudaStreamQuery(cudaStream_t s) { return emu::query_stream(s) ? ok() : cudaErrorNotReady; }
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned) {
  emu::stream_wait_event(s, e);
  return ok();
}
cudaError_t cudaDeviceSynchronize() {
  emu::synchronize_device();
  return ok();
}

cudaError_t cudaEventCreate(cudaEvent_t* e) {
  emu::event_create(e);
  return ok();
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) { return cudaEventCreate(e); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  emu::event_destroy(e);
  return ok();
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  emu::event_record(e, s);
  return ok();
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  emu::synchronize_event(e);
  return ok();
}
cudaError_t cudaEventQuery(cudaEvent_t e) { return emu::query_event(e) ? ok() : cudaErrorNotReady; }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  *ms = emu::event_elapsed_ms(start, end);
  return ok();
}

cudaError_t cudaGetDeviceCount(int* n) {
  *n = device_count();
  return ok();
}
cudaError_t cudaSetDevice(int d) {
  if (d < 0 || d >= device_count()) return fail(cudaErrorInvalidDevice);
  tl_device = d;
  return ok();
}
cudaError_t cudaGetDevice(int* d) {
  *d = tl_device;
  return ok();
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d) {
  if (d < 0 || d >= device_count()) return fail(cudaErrorInvalidDevice);
  std::memset(p, 0, sizeof *p);
  std::snprintf(p->name, sizeof p->name, "NVIDIA H100 80GB HBM3 (cuda-emu)");
  p->totalGlobalMem = kDeviceBytes;
  p->sharedMemPerBlock = emu::kDefaultSmemPerBlock;
  p->sharedMemPerBlockOptin = emu::kMaxSmemPerBlockOptin;
  p->sharedMemPerMultiprocessor = 228 * 1024;
  p->regsPerBlock = 65536;
  p->regsPerMultiprocessor = 65536;
  p->warpSize = 32;
  p->maxThreadsPerBlock = emu::kMaxThreadsPerBlock;
  p->maxThreadsDim[0] = 1024;
  p->maxThreadsDim[1] = 1024;
  p->maxThreadsDim[2] = 64;
  p->maxGridSize[0] = 0x7fffffff;
  p->maxGridSize[1] = 65535;
  p->maxGridSize[2] = 65535;
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = 132;
  p->maxThreadsPerMultiProcessor = 2048;
  p->maxBlocksPerMultiProcessor = 32;
  p->l2CacheSize = 50 * 1024 * 1024;
  p->memoryBusWidth = 5120;
  p->concurrentKernels = 1;
  p->unifiedAddressing = 1;
  p->pciBusID = d;
  return ok();
}

cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr attr, int d) {
  cudaDeviceProp p;
  if (cudaGetDeviceProperties(&p, d) != cudaSuccess) return cudaErrorInvalidDevice;
  switch (attr) {
    case cudaDevAttrMultiProcessorCount: *v = p.multiProcessorCount; break;
    case cudaDevAttrComputeCapabilityMajor: *v = p.major; break;
    case cudaDevAttrComputeCapabilityMinor: *v = p.minor; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = int(p.sharedMemPerBlockOptin); break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *v = int(p.sharedMemPerBlock); break;
    case cudaDevAttrMaxThreadsPerBlock: *v = p.maxThreadsPerBlock; break;
    case cudaDevAttrWarpSize: *v = 32; break;
    default: return fail(cudaErrorInvalidValue);
  }
  return ok();
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return ok();  // carveout hints change nothing here
  if (value < 0 || size_t(value) > emu::kMaxSmemPerBlockOptin) return fail(cudaErrorInvalidValue);
  emu::set_max_dynamic_smem(func, size_t(value));
  return ok();
}

cudaError_t cudaGetLastError() { return emu::take_last_error(true); }
cudaError_t cudaPeekAtLastError() { return emu::take_last_error(false); }

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    default: return "cudaErrorUnknown";
  }
}
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    default: return "unknown error";
  }
}

cudaError_t cudaDriverGetVersion(int* v) {
  *v = CUDART_VERSION;
  return ok();
}
cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = CUDART_VERSION;
  return ok();
}

}  // extern "C"
