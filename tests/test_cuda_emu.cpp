// The CUDA execution harness's own tests (docs/cuda_harness.md): launch geometry, barriers, the seeded
// fiber order exposing a missing barrier, shared-memory poisoning and bounds, warp collectives against the
// shuffle rules of the CUDA programming guide, the faults it must report (deadlock, wrong masks, divergent
// collectives, launch limits), atomics, and streams as queues run in any order their events allow.
#include <catch2/catch.hpp>

#include "common.cuh"
#include "streams.h"  // emu::host_waits

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <set>
#include <vector>

namespace {

using Catch::Matchers::Contains;

// Device buffers for a test: cudaMalloc'd, filled from and read back into host vectors.
template <class T>
struct DeviceVec {
  T* p = nullptr;
  size_t n;
  explicit DeviceVec(size_t n_, T fill = T{}) : n(n_) {
    REQUIRE(cudaMalloc(reinterpret_cast<void**>(&p), n * sizeof(T)) == cudaSuccess);
    std::vector<T> h(n, fill);
    cudaMemcpy(p, h.data(), n * sizeof(T), cudaMemcpyHostToDevice);
  }
  ~DeviceVec() { cudaFree(p); }
  std::vector<T> host() const {
    std::vector<T> h(n);
    cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
    return h;
  }
};

template <class... P, class... A>
void run_on(cudaStream_t stream, void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, A&&... args) {
  emu::launch(kernel, "test kernel", grid, block, smem, stream, emu::Site{__FILE__, __LINE__}, std::forward<A>(args)...);
}
template <class... P, class... A>
void run(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, A&&... args) {
  run_on(nullptr, kernel, grid, block, smem, std::forward<A>(args)...);
}

// ---- kernels ----

__global__ void geometry_kernel(int* hits) {
  const unsigned bx = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned tx = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  atomicAdd(&hits[bx * (blockDim.x * blockDim.y * blockDim.z) + tx], 1);
}

// Reverses each block's slice through shared memory; without the barrier a thread may read its partner's
// slot before the partner wrote it.
template <bool kSync>
__global__ void reverse_kernel(float* out, const float* in) {
  SP_SHARED(float, buf, 256);
  const unsigned i = threadIdx.x;
  buf[i] = in[blockIdx.x * blockDim.x + i];
  if (kSync) __syncthreads();
  out[blockIdx.x * blockDim.x + i] = buf[blockDim.x - 1 - i];
}

__global__ void read_before_write_kernel(uint32_t* out) {
  SP_SHARED(float, buf, 64);
  SP_DYNAMIC_SHARED(float, dyn);
  float a = buf[threadIdx.x], b = dyn[threadIdx.x];
  uint32_t ua, ub;
  std::memcpy(&ua, &a, 4);
  std::memcpy(&ub, &b, 4);
  out[2 * (blockIdx.x * blockDim.x + threadIdx.x)] = ua;
  out[2 * (blockIdx.x * blockDim.x + threadIdx.x) + 1] = ub;
  buf[threadIdx.x] = 1.0f;  // the next block on this host thread must see poison again, not this
  dyn[threadIdx.x] = 2.0f;
}

enum Mode { Idx, Up, Down, Xor };

__global__ void shuffle_kernel(int* out, int mode, int b, int width) {
  const int lane = int(threadIdx.x), v = 100 + lane;
  int r = 0;
  switch (mode) {
    case Idx: r = __shfl_sync(0xffffffffu, v, b, width); break;
    case Up: r = __shfl_up_sync(0xffffffffu, v, unsigned(b), width); break;
    case Down: r = __shfl_down_sync(0xffffffffu, v, unsigned(b), width); break;
    default: r = __shfl_xor_sync(0xffffffffu, v, b, width); break;
  }
  out[lane] = r;
}

__global__ void wide_shuffle_kernel(double* d_out, __nv_bfloat16* h_out) {
  const int lane = int(threadIdx.x);
  d_out[lane] = __shfl_xor_sync(0xffffffffu, 1.0 / 3.0 + lane, 5);
  h_out[lane] = __shfl_down_sync(0xffffffffu, __float2bfloat16(float(lane)), 3);
}

__global__ void vote_kernel(unsigned* out, unsigned mask) {
  const unsigned lane = threadIdx.x;
  if (!(mask >> lane & 1u)) return;
  const int pred = lane % 3 == 0;
  out[4 * lane + 0] = __ballot_sync(mask, pred);
  out[4 * lane + 1] = unsigned(__any_sync(mask, pred));
  out[4 * lane + 2] = unsigned(__all_sync(mask, lane < 64));
  out[4 * lane + 3] = __reduce_add_sync(mask, lane);
}

__global__ void syncthreads_count_kernel(int* out) {
  const int n = __syncthreads_count(threadIdx.x % 4 == 0);
  const int all = __syncthreads_and(threadIdx.x < 1000);
  const int any = __syncthreads_or(threadIdx.x == 77);
  if (threadIdx.x == 0) {
    out[0] = n;
    out[1] = all;
    out[2] = any;
  }
}

__global__ void deadlock_kernel() {
  if (threadIdx.x < 16) {
    __syncthreads();
  } else {
    (void)__shfl_sync(0xffffffffu, 1, 0);
  }
}

__global__ void divergent_barrier_kernel() {
  if (threadIdx.x < 32) __syncthreads();
  else __syncthreads();
}

__global__ void mask_without_self_kernel() { (void)__shfl_xor_sync(0x0000ffffu, 1, 1); }

__global__ void full_mask_kernel() { (void)__shfl_xor_sync(0xffffffffu, 1, 1); }

__global__ void mask_with_exited_lane_kernel(int* out) {
  if (threadIdx.x >= 30) return;  // lanes 30 and 31 leave, the reduction still names them
  out[threadIdx.x] = __shfl_down_sync(0xffffffffu, int(threadIdx.x), 1);
}

__global__ void divergent_collectives_kernel(int* out) {
  int v = int(threadIdx.x);
  if (threadIdx.x % 2) v = __shfl_xor_sync(0xffffffffu, v, 1);
  else v = __shfl_xor_sync(0xffffffffu, v, 2);
  out[threadIdx.x] = v;
}

__global__ void read_outside_mask_kernel(int* out) {
  if (threadIdx.x < 8) out[threadIdx.x] = __shfl_sync(0x000000ffu, int(threadIdx.x), 9);
}

__global__ void shared_oob_kernel(float* out) {
  SP_SHARED(float, tile, 32);
  tile[threadIdx.x] = 1.0f;  // 33 threads: thread 32 writes past the end
  out[threadIdx.x] = 0;
}

__global__ void big_static_shared_kernel(float* out) {
  SP_SHARED(float, huge, 13 * 1024);  // 52 KiB
  huge[threadIdx.x] = 0;
  out[0] = huge[0];
}

__global__ void dynamic_smem_kernel(float* out) {
  SP_DYNAMIC_SHARED(float, dyn);
  dyn[threadIdx.x] = float(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = dyn[(threadIdx.x + 1) % blockDim.x] + float(dyn.size());
}

__global__ void fill_kernel(int* x, int value) { x[blockIdx.x * blockDim.x + threadIdx.x] = value; }
__global__ void copy_kernel(int* y, const int* x) { y[blockIdx.x * blockDim.x + threadIdx.x] = x[blockIdx.x * blockDim.x + threadIdx.x]; }

__global__ void stack_kernel(float* out) {
  float regs[4096];  // a 16 KiB register tile spilled to the fiber's stack
  for (int i = 0; i < 4096; ++i) regs[i] = float(i % 7) + float(threadIdx.x);
  float s = 0;
  for (int i = 0; i < 4096; ++i) s += regs[i];
  out[threadIdx.x] = s;
}

// ---- the independent shuffle rules, from the CUDA programming guide's description ----
int expected_source(Mode m, int lane, int b, int width) {
  const int seg = lane & ~(width - 1);
  switch (m) {
    case Idx: return seg + (b % width);
    case Up: return lane - b >= seg ? lane - b : lane;
    case Down: return lane + b < seg + width ? lane + b : lane;
    default: return (lane ^ b) < seg + width ? (lane ^ b) : lane;  // xor may read an earlier segment, not a later one
  }
}

const uint64_t kSeeds[] = {1, 2, 3, 17, 12345};

struct SeedGuard {
  uint64_t saved = emu::schedule_seed();
  ~SeedGuard() { emu::set_schedule_seed(saved); }
};

}  // namespace

TEST_CASE("harness: 3-D grids and blocks cover every thread once", "[cuda]") {
  const dim3 grid(3, 2, 2), block(8, 4, 2);
  DeviceVec<int> hits(3 * 2 * 2 * 8 * 4 * 2, 0);
  run(geometry_kernel, grid, block, 0, hits.p);
  for (int h : hits.host()) REQUIRE(h == 1);
}

TEST_CASE("harness: __syncthreads orders shared memory, and without it the random fiber order shows the race", "[cuda]") {
  SeedGuard guard;
  const int blocks = 4, threads = 256;
  std::vector<float> in(blocks * threads);
  std::iota(in.begin(), in.end(), 0.0f);
  DeviceVec<float> din(in.size()), dout(in.size());
  cudaMemcpy(din.p, in.data(), in.size() * 4, cudaMemcpyHostToDevice);
  auto correct = [&] {
    auto o = dout.host();
    for (int b = 0; b < blocks; ++b)
      for (int i = 0; i < threads; ++i)
        if (o[b * threads + i] != in[b * threads + threads - 1 - i]) return false;
    return true;
  };
  int racy_wrong = 0;
  for (uint64_t seed : kSeeds) {
    emu::set_schedule_seed(seed);
    run(reverse_kernel<true>, blocks, threads, 0, dout.p, din.p);
    REQUIRE(correct());
    run(reverse_kernel<false>, blocks, threads, 0, dout.p, din.p);
    racy_wrong += !correct();
  }
  REQUIRE(racy_wrong == int(std::size(kSeeds)));  // every seed exposes the missing barrier
}

TEST_CASE("harness: shared memory reads as NaN bytes until written, in every block", "[cuda]") {
  const int blocks = 8, threads = 64;
  DeviceVec<uint32_t> out(2 * blocks * threads, 0);
  run(read_before_write_kernel, blocks, threads, threads * sizeof(float), out.p);
  for (uint32_t u : out.host()) REQUIRE(u == 0xffffffffu);
  float f;
  const uint32_t poison = 0xffffffffu;
  std::memcpy(&f, &poison, 4);
  REQUIRE(std::isnan(f));
}

TEST_CASE("harness: shuffles follow the PTX rules for every mode, width and offset", "[cuda]") {
  DeviceVec<int> out(32);
  for (Mode m : {Idx, Up, Down, Xor})
    for (int width : {1, 2, 4, 8, 16, 32})
      for (int b = 0; b < 32; ++b) {
        run(shuffle_kernel, 1, 32, 0, out.p, int(m), b, width);
        const auto r = out.host();
        for (int lane = 0; lane < 32; ++lane) {
          INFO("mode " << m << " width " << width << " b " << b << " lane " << lane);
          REQUIRE(r[size_t(lane)] == 100 + expected_source(m, lane, b, width));
        }
      }
}

TEST_CASE("harness: 64-bit and bf16 shuffles move whole values", "[cuda]") {
  DeviceVec<double> d(32);
  DeviceVec<__nv_bfloat16> h(32);
  run(wide_shuffle_kernel, 1, 32, 0, d.p, h.p);
  const auto dr = d.host();
  const auto hr = h.host();
  for (int lane = 0; lane < 32; ++lane) {
    REQUIRE(dr[size_t(lane)] == 1.0 / 3.0 + (lane ^ 5));
    REQUIRE(__bfloat162float(hr[size_t(lane)]) == float(lane + 3 < 32 ? lane + 3 : lane));
  }
}

TEST_CASE("harness: ballot, any, all and reduce over full and partial masks", "[cuda]") {
  for (unsigned mask : {0xffffffffu, 0x0000ff0fu, 0x80000001u}) {
    DeviceVec<unsigned> out(4 * 32, 0);
    run(vote_kernel, 1, 32, 0, out.p, mask);
    const auto r = out.host();
    unsigned ballot = 0, sum = 0;
    for (unsigned l = 0; l < 32; ++l)
      if (mask >> l & 1u) {
        ballot |= unsigned(l % 3 == 0) << l;
        sum += l;
      }
    for (unsigned l = 0; l < 32; ++l) {
      if (!(mask >> l & 1u)) continue;
      REQUIRE(r[4 * l] == ballot);
      REQUIRE(r[4 * l + 1] == unsigned(ballot != 0));
      REQUIRE(r[4 * l + 2] == 1u);
      REQUIRE(r[4 * l + 3] == sum);
    }
  }
}

TEST_CASE("harness: __syncthreads_count, _and and _or", "[cuda]") {
  DeviceVec<int> out(3, -1);
  run(syncthreads_count_kernel, 1, 200, 0, out.p);
  const auto r = out.host();
  REQUIRE(r[0] == 50);
  REQUIRE(r[1] == 1);
  REQUIRE(r[2] == 1);
}

TEST_CASE("harness: a barrier that can never be released is reported as a deadlock", "[cuda]") {
  REQUIRE_THROWS_WITH(run(deadlock_kernel, 2, 32, 0),
                      Contains("deadlock") && Contains("__syncthreads at test_cuda_emu.cpp:") &&
                          Contains("__shfl_sync (mask 0xffffffff) at test_cuda_emu.cpp:") && Contains("test kernel"));
  // the harness is usable after a fault
  DeviceVec<int> hits(64, 0);
  run(geometry_kernel, 1, 64, 0, hits.p);
  for (int h : hits.host()) REQUIRE(h == 1);
}

TEST_CASE("harness: __syncthreads reached at different lines is reported", "[cuda]") {
  REQUIRE_THROWS_WITH(run(divergent_barrier_kernel, 1, 64, 0), Contains("different __syncthreads"));
}

TEST_CASE("harness: warp collectives with a wrong mask are reported with their line", "[cuda]") {
  DeviceVec<int> out(32, 0);
  REQUIRE_THROWS_WITH(run(mask_without_self_kernel, 1, 32, 0), Contains("does not name the calling lane"));
  REQUIRE_THROWS_WITH(run(mask_with_exited_lane_kernel, 1, 32, 0, out.p),
                      Contains("exited") && Contains("__shfl_down_sync") && Contains("test_cuda_emu.cpp:"));
  REQUIRE_THROWS_WITH(run(divergent_collectives_kernel, 1, 32, 0, out.p), Contains("divergent warp collectives"));
  REQUIRE_THROWS_WITH(run(read_outside_mask_kernel, 1, 32, 0, out.p), Contains("reads lane 9, which is not in the member mask"));
  REQUIRE_THROWS_WITH(run(full_mask_kernel, 1, 16, 0), Contains("beyond the block's last thread"));
}

TEST_CASE("harness: out-of-bounds shared memory and oversized static shared memory are reported", "[cuda]") {
  DeviceVec<float> out(64);
  REQUIRE_THROWS_WITH(run(shared_oob_kernel, 1, 33, 0, out.p),
                      Contains("tile[32]: index 32 is out of bounds at test_cuda_emu.cpp:") && Contains("thread (32,0,0)"));
  REQUIRE_THROWS_WITH(run(big_static_shared_kernel, 1, 32, 0, out.p), Contains("exceeds 48 KiB"));
}

TEST_CASE("harness: launches beyond the device limits fail like on a GPU", "[cuda]") {
  DeviceVec<float> out(1024);
  (void)cudaGetLastError();
  run(dynamic_smem_kernel, 1, 1025, 0, out.p);
  REQUIRE(cudaGetLastError() == cudaErrorInvalidConfiguration);
  REQUIRE_THAT(emu::last_launch_diagnostic(), Contains("1025 threads") && Contains("test kernel"));
  REQUIRE(cudaGetLastError() == cudaSuccess);  // the error is taken by the first read

  const void* k = reinterpret_cast<const void*>(&dynamic_smem_kernel);
  run(dynamic_smem_kernel, 1, 64, 64 * 1024, out.p);
  REQUIRE(cudaGetLastError() == cudaErrorInvalidValue);
  REQUIRE_THAT(emu::last_launch_diagnostic(), Contains("cudaFuncSetAttribute"));
  REQUIRE(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024) == cudaSuccess);
  run(dynamic_smem_kernel, 1, 64, 64 * 1024, out.p);
  REQUIRE(cudaGetLastError() == cudaSuccess);
  const auto r = out.host();
  for (int i = 0; i < 64; ++i) REQUIRE(r[size_t(i)] == float((i + 1) % 64) + 16384.0f);
  REQUIRE(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, 228 * 1024) == cudaErrorInvalidValue);
  run(dynamic_smem_kernel, 1, 64, 228 * 1024, out.p);
  REQUIRE(cudaGetLastError() == cudaErrorInvalidValue);
  REQUIRE_THAT(emu::last_launch_diagnostic(), Contains("227 KiB"));
}

TEST_CASE("harness: atomics from many blocks on several host threads", "[cuda]") {
  DeviceVec<int> hits(1, 0);
  DeviceVec<float> sum(1, 0.0f);
  struct K {
    static __global__ void add(int* h, float* s) {
      atomicAdd(h, 1);
      atomicAdd(s, 0.5f);
    }
  };
  run(K::add, 64, 128, 0, hits.p, sum.p);
  REQUIRE(hits.host()[0] == 64 * 128);
  REQUIRE(sum.host()[0] == 64 * 128 * 0.5f);  // exact: every partial sum is representable
}

TEST_CASE("harness: kernels may keep large register tiles (fiber stacks)", "[cuda]") {
  DeviceVec<float> out(128);
  run(stack_kernel, 2, 128, 0, out.p);
  const auto r = out.host();
  float base = 0;
  for (int i = 0; i < 4096; ++i) base += float(i % 7);
  for (int t = 0; t < 128; ++t) REQUIRE(r[size_t(t)] == base + 4096.0f * float(t));
}

TEST_CASE("harness: device memory starts as NaN bytes and the runtime calls behave", "[cuda]") {
  float* p = nullptr;
  REQUIRE(cudaMalloc(reinterpret_cast<void**>(&p), 16) == cudaSuccess);
  uint32_t u;
  std::memcpy(&u, p, 4);
  REQUIRE(u == 0xffffffffu);
  REQUIRE(cudaFree(p) == cudaSuccess);
  int n = 0;
  REQUIRE(cudaGetDeviceCount(&n) == cudaSuccess);
  REQUIRE(n >= 1);
  cudaDeviceProp prop;
  REQUIRE(cudaGetDeviceProperties(&prop, 0) == cudaSuccess);
  REQUIRE(prop.major == 9);
  REQUIRE(prop.sharedMemPerBlockOptin == 227 * 1024);
  REQUIRE(cudaSetDevice(n) == cudaErrorInvalidDevice);
  (void)cudaGetLastError();
}

// ---- streams ----

namespace {

struct Streams {
  cudaStream_t a = nullptr, b = nullptr;
  explicit Streams(unsigned flags = cudaStreamNonBlocking) {
    cudaStreamCreateWithFlags(&a, flags);
    cudaStreamCreateWithFlags(&b, flags);
  }
  ~Streams() {
    cudaStreamDestroy(a);
    cudaStreamDestroy(b);
  }
};

bool all_equal(const std::vector<int>& v, int value) {
  return std::all_of(v.begin(), v.end(), [&](int e) { return e == value; });
}

}  // namespace

TEST_CASE("harness: two streams run in any order their events allow, so a missing event wait shows", "[cuda]") {
  SeedGuard guard;
  const int n = 64;
  int right = 0, wrong = 0;
  for (uint64_t seed = 1; seed <= 16; ++seed) {
    emu::set_schedule_seed(seed);
    DeviceVec<int> x(n, 0), y(n, -1), u(n, 0), z(n, -1);
    Streams s;
    cudaEvent_t ready;
    cudaEventCreateWithFlags(&ready, cudaEventDisableTiming);
    // with the wait: stream b's copy always sees stream a's fill
    run_on(s.a, fill_kernel, 1, n, 0, x.p, 7);
    cudaEventRecord(ready, s.a);
    cudaStreamWaitEvent(s.b, ready, 0);
    run_on(s.b, copy_kernel, 1, n, 0, y.p, x.p);
    // without one: the copy of u may run before u's fill
    run_on(s.a, fill_kernel, 1, n, 0, u.p, 8);
    run_on(s.b, copy_kernel, 1, n, 0, z.p, u.p);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    REQUIRE(all_equal(y.host(), 7));
    const auto zh = z.host();
    REQUIRE((all_equal(zh, 0) || all_equal(zh, 8)));
    (all_equal(zh, 8) ? right : wrong) += 1;
    cudaEventDestroy(ready);
  }
  // both orders occur over the seeds
  REQUIRE(right > 0);
  REQUIRE(wrong > 0);
}

TEST_CASE("harness: synchronising a stream runs its queue and, through events, what it waits for", "[cuda]") {
  const int n = 32;
  DeviceVec<int> x(n, 0), y(n, 0), w(n, 0);
  Streams s;
  cudaEvent_t ready;
  cudaEventCreate(&ready);
  run_on(s.a, fill_kernel, 1, n, 0, x.p, 5);
  cudaEventRecord(ready, s.a);
  run_on(s.a, fill_kernel, 1, n, 0, w.p, 9);  // after the record: stream b does not wait for it
  cudaStreamWaitEvent(s.b, ready, 0);
  run_on(s.b, copy_kernel, 1, n, 0, y.p, x.p);
  // cudaMemcpy runs on the legacy stream, which does not wait for non-blocking streams: nothing ran yet
  REQUIRE(all_equal(y.host(), 0));
  REQUIRE(cudaStreamSynchronize(s.b) == cudaSuccess);
  REQUIRE(all_equal(y.host(), 5));
  // stream a's work after the event was not needed: it may have run meanwhile (as on a GPU), or not
  const auto wh = w.host();
  REQUIRE((all_equal(wh, 0) || all_equal(wh, 9)));
  REQUIRE(cudaStreamSynchronize(s.a) == cudaSuccess);
  REQUIRE(all_equal(w.host(), 9));
  cudaEventDestroy(ready);
}

TEST_CASE("harness: queries never wait, answer both ways over the seeds, and waits are counted", "[cuda]") {
  SeedGuard guard;
  const int n = 8;
  int done_at_once = 0, not_ready = 0;
  for (uint64_t seed = 1; seed <= 16; ++seed) {
    emu::set_schedule_seed(seed);
    DeviceVec<int> x(n, 0);
    Streams s;
    cudaEvent_t e;
    cudaEventCreate(&e);
    REQUIRE(cudaEventQuery(e) == cudaSuccess);  // never recorded: complete
    const unsigned long long waits = emu::host_waits();
    run_on(s.a, fill_kernel, 1, n, 0, x.p, 2);
    cudaEventRecord(e, s.a);
    const cudaError_t first = cudaEventQuery(e);
    REQUIRE((first == cudaSuccess || first == cudaErrorNotReady));
    (first == cudaSuccess ? done_at_once : not_ready) += 1;
    while (cudaEventQuery(e) == cudaErrorNotReady) {
    }
    REQUIRE(emu::host_waits() == waits);     // polling is not waiting
    REQUIRE(cudaStreamQuery(s.a) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(s.a) == cudaSuccess);
    REQUIRE(emu::host_waits() == waits);     // nothing was left to run
    run_on(s.a, fill_kernel, 1, n, 0, x.p, 3);
    REQUIRE(cudaStreamSynchronize(s.a) == cudaSuccess);
    REQUIRE(emu::host_waits() == waits + 1);  // this one had work to wait for
    REQUIRE(all_equal(x.host(), 3));
    cudaEventDestroy(e);
  }
  REQUIRE(done_at_once > 0);
  REQUIRE(not_ready > 0);
}

TEST_CASE("harness: the legacy stream waits for blocking streams, async copies follow pageable-memory rules", "[cuda]") {
  const int n = 16;
  DeviceVec<int> x(n, 0);
  {
    Streams blocking(cudaStreamDefault);
    run_on(blocking.a, fill_kernel, 1, n, 0, x.p, 3);
    REQUIRE(all_equal(x.host(), 3));  // cudaMemcpy on the legacy stream ran the blocking stream's work first
  }
  Streams s;
  // from pageable memory: staged at the call, so the host buffer may change at once
  std::vector<int> host(n, 4);
  REQUIRE(cudaMemcpyAsync(x.p, host.data(), n * sizeof(int), cudaMemcpyHostToDevice, s.a) == cudaSuccess);
  std::fill(host.begin(), host.end(), -1);
  // into pageable memory: complete when the call returns, after the stream's earlier work
  std::vector<int> back(n, 0);
  REQUIRE(cudaMemcpyAsync(back.data(), x.p, n * sizeof(int), cudaMemcpyDeviceToHost, s.a) == cudaSuccess);
  REQUIRE(all_equal(back, 4));
  // a fault in queued work surfaces at the call that runs it, and the stream goes on afterwards
  run_on(s.b, deadlock_kernel, 1, 32, 0);
  REQUIRE_THROWS_WITH(cudaStreamSynchronize(s.b), Contains("deadlock"));
  run_on(s.b, fill_kernel, 1, n, 0, x.p, 6);
  REQUIRE(cudaStreamSynchronize(s.b) == cudaSuccess);
  REQUIRE(all_equal(x.host(), 6));
}
