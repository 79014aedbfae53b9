// The host side of the CUDA execution harness: kernel launches and the harness's own controls.
//
// kernels/launch.cuh routes every launch here when built with SOFTPICK_CUDA_EMU. A launch is checked when
// it is issued and queued on its stream (streams.h), which runs it when the host must see it: the grid's
// blocks are spread over the host's cores, and each block's threads run as fibers on one core
// (scheduler.cpp).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>

namespace emu {

// A fault inside a kernel (deadlock, wrong warp mask, out-of-bounds shared access, ...). The message names
// the kernel, the block and thread, and the source line.
struct KernelError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

using KernelBody = std::function<void()>;

// Checks the launch against the device limits (a violation becomes the sticky error cudaGetLastError()
// returns, as on a GPU, with the reason in last_launch_diagnostic()), then queues the grid on the stream.
// Running it throws KernelError if a block faults, from the call that made it run (on the legacy stream,
// the launch itself; else the synchronising call).
struct Site {
  const char* file;
  int line;
};
void launch_kernel(const void* func, const char* name, dim3 grid, dim3 block, size_t dynamic_smem,
                   cudaStream_t stream, Site site, KernelBody body);

template <class... P, class... A>
void launch(void (*kernel)(P...), const char* name, dim3 grid, dim3 block, size_t dynamic_smem, cudaStream_t stream,
            Site site, A&&... args) {
  // Arguments are copied once per launch, as CUDA copies them into the parameter space.
  auto params = std::make_shared<std::tuple<std::decay_t<P>...>>(std::forward<A>(args)...);
  launch_kernel(reinterpret_cast<const void*>(kernel), name, grid, block, dynamic_smem, stream, site,
                [kernel, params] { std::apply(kernel, *params); });
}

// Fibers of a block run in an order drawn from this seed (and the launch and block index) between barriers,
// so a missing barrier changes results instead of hiding behind a fixed order. Default: the environment
// variable SOFTPICK_EMU_SEED, else 1.
void set_schedule_seed(uint64_t seed);
uint64_t schedule_seed();

// Why the last rejected launch was rejected ("" if none was).
std::string last_launch_diagnostic();

// The kernel's dynamic shared memory limit (cudaFuncSetAttribute raises it from the default 48 KiB).
size_t max_dynamic_smem(const void* func);
void set_max_dynamic_smem(const void* func, size_t bytes);
void set_last_error(cudaError_t e);
cudaError_t take_last_error(bool reset);  // cudaGetLastError (reset) and cudaPeekAtLastError

// Device limits of the emulated H100-class GPU.
constexpr size_t kDefaultSmemPerBlock = 48 * 1024;
constexpr size_t kMaxSmemPerBlockOptin = 227 * 1024;
constexpr int kMaxThreadsPerBlock = 1024;

}  // namespace emu
