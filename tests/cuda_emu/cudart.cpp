// The CUDA runtime calls the CUDA backend uses, for the harness (docs/cuda_harness.md).
//
// Device memory is host memory (one address space, so every cudaMemcpyKind is a memcpy); new allocations
// are filled with NaN bytes, as an uninitialised GPU buffer holds garbage. Work on a stream runs when it
// is issued, so streams and events only order what is already ordered; events record host time.
// The emulated machine has SOFTPICK_EMU_DEVICES (default 8) devices of an H100 SXM's description.
#include "runtime.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

struct CUstream_st {
  int id;
};
struct CUevent_st {
  std::chrono::steady_clock::time_point t;
};

namespace {

constexpr size_t kDeviceBytes = size_t(80) << 30;
std::mutex g_mutex;
std::map<void*, size_t> g_allocations;  // guarded by g_mutex
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
  return *p ? ok() : fail(cudaErrorMemoryAllocation);
}
cudaError_t cudaFreeHost(void* p) {
  std::free(p);
  return ok();
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total) {
  std::lock_guard<std::mutex> lock(g_mutex);
  *total = kDeviceBytes;
  *free_bytes = kDeviceBytes - g_allocated;
  return ok();
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  if (bytes) std::memmove(dst, src, bytes);
  return ok();
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
  return cudaMemcpy(dst, src, bytes, kind);
}
cudaError_t cudaMemset(void* p, int value, size_t bytes) {
  if (bytes) std::memset(p, value, bytes);
  return ok();
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t) { return cudaMemset(p, value, bytes); }

cudaError_t cudaStreamCreate(cudaStream_t* s) {
  static int next = 1;
  *s = new CUstream_st{next++};
  return ok();
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) { return cudaStreamCreate(s); }
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  delete s;
  return ok();
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return ok(); }
cudaError_t cudaStreamQuery(cudaStream_t) { return ok(); }  // issued work is already done
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) { return ok(); }
cudaError_t cudaDeviceSynchronize() { return ok(); }

cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = new CUevent_st{std::chrono::steady_clock::now()};
  return ok();
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) { return cudaEventCreate(e); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return ok();
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
  e->t = std::chrono::steady_clock::now();
  return ok();
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { return ok(); }
cudaError_t cudaEventQuery(cudaEvent_t) { return ok(); }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  *ms = std::chrono::duration<float, std::milli>(end->t - start->t).count();
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
