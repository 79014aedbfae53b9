// Included first by every kernel source. It makes one source serve both builds: nvcc for a GPU, and g++
// for the CUDA execution harness (SOFTPICK_CUDA_EMU, docs/cuda_harness.md), which runs the same kernels
// on the CPU in CI.
//
// Kernel sources therefore follow three rules:
//   * shared memory is declared with SP_SHARED(T, name, n) or SP_DYNAMIC_SHARED(T, name) (one dynamic array
//     per kernel), indexed as name[i], and passed on as &name[i];
//   * kernels are launched with SP_LAUNCH, never with <<<>>>;
//   * PTX is reached only through the helpers of kernels/ptx.cuh, which the harness emulates.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#if defined(SOFTPICK_CUDA_EMU)
#include "device.h"
#include "runtime.h"
#endif

#include "core/check.h"

#include <cstddef>
#include <utility>

#if defined(SOFTPICK_CUDA_EMU)
#define SP_SHARED(T, name, n) const auto name = ::emu::static_shared<T>(#name, (n))
#define SP_DYNAMIC_SHARED(T, name) const auto name = ::emu::dynamic_shared<T>(#name)
#else
#define SP_SHARED(T, name, n) __shared__ T name[n]
#define SP_DYNAMIC_SHARED(T, name)                                  \
  extern __shared__ __align__(16) unsigned char sp_dynamic_smem_[]; \
  T* const name = reinterpret_cast<T*>(sp_dynamic_smem_)
#endif

// SP_UNROLL before a loop over a register array: nvcc unrolls it fully, so the array stays in registers.
#if defined(SOFTPICK_CUDA_EMU)
#define SP_UNROLL
#else
#define SP_UNROLL _Pragma("unroll")
#endif

// SP_LAUNCH(kernel, grid, block, dynamic_smem, stream, args...): launches and checks the launch, naming
// this line if it fails. A template kernel goes in parentheses: SP_LAUNCH((k<64, true>), ...).
#define SP_LAUNCH(kernel, grid, block, smem, stream, ...) \
  ::sp::cuda::launch(kernel, #kernel, grid, block, smem, stream, __FILE__, __LINE__, __VA_ARGS__)

namespace sp::cuda {

template <class... P, class... A>
void launch(void (*kernel)(P...), const char* name, dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
            const char* file, int line, A&&... args) {
#if defined(SOFTPICK_CUDA_EMU)
  ::emu::launch(kernel, name, grid, block, smem, stream, ::emu::Site{file, line}, std::forward<A>(args)...);
#else
  kernel<<<grid, block, smem, stream>>>(std::forward<A>(args)...);
#endif
  const cudaError_t rc = cudaGetLastError();
  if (rc != cudaSuccess) ::sp::check_failed("CUDA", name, file, line, cudaGetErrorString(rc));
}

// Lets `kernel` launch with `bytes` of dynamic shared memory (above the default 48 KiB needs this opt-in).
template <class... P>
void allow_dynamic_smem(void (*kernel)(P...), size_t bytes) {
  CUDA_CHECK(cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  int(bytes)));
}

// Blocks of `threads` threads to cover n items once (at least one block).
inline unsigned blocks_for(size_t n, unsigned threads) {
  const size_t b = (n + threads - 1) / threads;
  return unsigned(b ? b : 1);
}

}  // namespace sp::cuda
