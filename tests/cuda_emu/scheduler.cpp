// Runs kernel launches: blocks over the host's cores, each block's threads as fibers (docs/cuda_harness.md).
//
// A block runs on one host thread. Its fibers are resumed one at a time in a seeded random order; each
// runs until it arrives at a barrier or a warp collective, or exits. A warp collective completes when the
// last lane named in its mask arrives (that lane computes every lane's result); __syncthreads releases
// when every thread that has not exited is waiting at a barrier. When no fiber can run and the block is not
// done, the block has deadlocked, and the report says where each thread waits.
#include "fiber.h"
#include "runtime.h"
#include "device.h"
#include "streams.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

namespace emu {

thread_local ThreadCtx* tl_thread = nullptr;

namespace {

enum class State : uint8_t { Runnable, AtBarrier, AtWarp, Exited };

struct Block;

struct Thread : ThreadCtx {
  Block* block = nullptr;
  Fiber* fiber = nullptr;
  int linear = 0, warp = 0;  // lane is ThreadCtx::lane
  State state = State::Runnable;
  // where it waits, and the operands of its barrier or collective
  Loc wait_loc;
  WarpOp op = WarpOp::Sync;
  BarrierKind barrier = BarrierKind::Plain;
  unsigned mask = 0, b = 0, c = 0;
  uint64_t value = 0, result = 0;
  const char* instruction = nullptr;  // WarpOp::Instruction: its name and computation
  WarpCompute compute = nullptr;
};

struct Launch {
  const char* name;
  Site site;
  dim3 grid, block;
  size_t dynamic_smem;
  const KernelBody* body;
  uint64_t seed;
};

struct StaticVar {
  const char* file;
  unsigned line;
  const char* name;
  size_t offset;
};

// splitmix64: a small, good generator for the fiber order
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return size_t((unsigned __int128)next() * n >> 64); }  // no division: this is hot
};

constexpr size_t kArenaBytes = kMaxSmemPerBlockOptin + 1024;
constexpr unsigned char kPoison = 0xff;  // every float, double and bf16 made of these bytes is a NaN

// Everything a host thread needs to run blocks: fibers, their thread states, the shared-memory arena.
struct Block {
  const Launch* launch = nullptr;
  uint3 idx{};
  int nthreads = 0, exited = 0;
  std::vector<std::unique_ptr<Fiber>> fibers;
  std::vector<Thread> threads;
  struct WarpMasks {
    unsigned waiting = 0;  // lanes waiting at a warp collective
    unsigned exited = 0;   // lanes that have exited
  };
  std::vector<WarpMasks> warps;
  std::vector<int> runnable;
  Rng rng{0};
  std::string error;
  std::unique_ptr<unsigned char[]> arena{new unsigned char[kArenaBytes]};
  size_t arena_touched = 0;  // bytes poisoned so far: a block poisons what any earlier block used
  size_t static_bytes = 0;   // static shared variables, after the dynamic part
  std::vector<StaticVar> statics;

  void make_runnable(Thread& t) {
    t.state = State::Runnable;
    runnable.push_back(t.linear);
  }
};

thread_local Block* tl_block = nullptr;

Block& worker_block() {
  if (!tl_block) tl_block = new Block();  // one per host thread, kept for the life of the process
  return *tl_block;
}

Thread& current() { return *static_cast<Thread*>(tl_thread); }

std::string dim_str(uint3 d) {
  char s[48];
  std::snprintf(s, sizeof s, "(%u,%u,%u)", d.x, d.y, d.z);
  return s;
}

std::string loc_str(const Loc& l) {
  std::string f = l.file_name();
  return f.substr(f.find_last_of('/') + 1) + ":" + std::to_string(l.line());
}

// The same source line (file names are usually the same pointer; compare the text only when not).
bool same_line(const Loc& a, const Loc& b) {
  return a.line() == b.line() && (a.file_name() == b.file_name() || std::strcmp(a.file_name(), b.file_name()) == 0);
}

const char* op_name(WarpOp op) {
  switch (op) {
    case WarpOp::Sync: return "__syncwarp";
    case WarpOp::ShflIdx: return "__shfl_sync";
    case WarpOp::ShflUp: return "__shfl_up_sync";
    case WarpOp::ShflDown: return "__shfl_down_sync";
    case WarpOp::ShflXor: return "__shfl_xor_sync";
    case WarpOp::Ballot: return "__ballot_sync";
    case WarpOp::Any: return "__any_sync";
    case WarpOp::All: return "__all_sync";
    case WarpOp::ReduceAdd: return "__reduce_add_sync";
    case WarpOp::ReduceMin: return "__reduce_min_sync";
    case WarpOp::ReduceMax: return "__reduce_max_sync";
    case WarpOp::Instruction: return "a warp-wide instruction";
  }
  return "?";
}

std::string hex(unsigned m) {
  char s[16];
  std::snprintf(s, sizeof s, "0x%08x", m);
  return s;
}

std::string site_str(Site s) {
  std::string f = s.file;
  return f.substr(f.find_last_of('/') + 1) + ":" + std::to_string(s.line);
}

std::string kernel_prefix(const Block& b) {
  return "kernel " + std::string(b.launch->name) + " (launched at " + site_str(b.launch->site) + ")";
}

// From a fiber: records the fault of thread `who` (default: the running one) and returns to the scheduler
// for good.
[[noreturn]] void fault_here(const std::string& what, const Thread* who = nullptr) {
  Thread& t = current();
  Block& b = *t.block;
  if (!who) who = &t;
  if (b.error.empty())
    b.error = kernel_prefix(b) + ", block " + dim_str(b.idx) + " thread " + dim_str(who->thread_idx) + ": " + what;
  t.fiber->yield();
  std::abort();  // never resumed: the scheduler resets the fiber
}

void thread_main(Fiber* f) {
  for (;;) {
    Thread& t = *static_cast<Thread*>(f->user());
    (*t.block->launch->body)();
    // exiting while lanes of this warp wait for this one at a collective is a wrong mask
    Block& b = *t.block;
    Block::WarpMasks& w = b.warps[size_t(t.warp)];
    for (unsigned waiting = w.waiting; waiting; waiting &= waiting - 1) {
      const Thread& o = b.threads[size_t(t.warp) * 32 + size_t(__builtin_ctz(waiting))];
      if (o.mask >> t.lane & 1u)
        fault_here("exited while lane " + std::to_string(o.lane) + " waits for it in " + op_name(o.op) + " at " +
                   loc_str(o.wait_loc) + " with mask " + hex(o.mask));
    }
    w.exited |= 1u << t.lane;
    if (!t.copies.empty())
      fault_here("exited with " + std::to_string(t.copies.size()) + " cp.async copies never waited for");
    t.state = State::Exited;
    ++b.exited;
    f->yield();
  }
}

// Result of one lane of a shuffle, with the PTX rules (see docs/cuda_harness.md); sets *src to the lane read.
uint64_t shuffle_result(const Thread* warp, const Thread& t, int* src) {
  const unsigned lane = unsigned(t.lane), bval = t.b & 0x1f, cval = t.c & 0x1f, seg = (t.c >> 8) & 0x1f;
  const unsigned max_lane = (lane & seg) | (cval & ~seg), min_lane = lane & seg;
  int j = 0;
  bool valid = false;
  switch (t.op) {
    case WarpOp::ShflUp: j = int(lane) - int(bval); valid = j >= int(max_lane); break;
    case WarpOp::ShflDown: j = int(lane + bval); valid = j <= int(max_lane); break;
    case WarpOp::ShflXor: j = int(lane ^ bval); valid = j <= int(max_lane); break;
    default: j = int(min_lane | (bval & ~seg)); valid = j <= int(max_lane); break;
  }
  if (!valid) j = int(lane);
  *src = j;
  return warp[j].value;
}

void complete_collective(Block& b, Thread& last) {
  Thread* warp = &b.threads[size_t(last.warp) * 32];
  const unsigned mask = last.mask;
  if (last.op == WarpOp::Instruction) {
    void* lanes[32] = {};
    for (int l = 0; l < 32; ++l)
      if (mask >> l & 1u) lanes[l] = reinterpret_cast<void*>(warp[l].value);
    last.compute(lanes, mask);
    for (int l = 0; l < 32; ++l)
      if (mask >> l & 1u) b.make_runnable(warp[l]);
    b.warps[size_t(last.warp)].waiting &= ~mask;
    return;
  }
  uint64_t ballot = 0, sum = 0, mn = ~0ull, mx = 0;
  for (int l = 0; l < 32; ++l)
    if (mask >> l & 1u) {
      const uint64_t v = warp[l].value;
      ballot |= uint64_t(v != 0) << l;
      sum += uint32_t(v);
      mn = std::min<uint64_t>(mn, uint32_t(v));
      mx = std::max<uint64_t>(mx, uint32_t(v));
    }
  for (int l = 0; l < 32; ++l) {
    if (!(mask >> l & 1u)) continue;
    Thread& t = warp[l];
    switch (t.op) {
      case WarpOp::Sync: t.result = 0; break;
      case WarpOp::Ballot: t.result = ballot; break;
      case WarpOp::Any: t.result = ballot != 0; break;
      case WarpOp::All: t.result = ballot == uint64_t(mask); break;
      case WarpOp::ReduceAdd: t.result = uint32_t(sum); break;
      case WarpOp::ReduceMin: t.result = mn; break;
      case WarpOp::ReduceMax: t.result = mx; break;
      default: {
        int src = 0;
        t.result = shuffle_result(warp, t, &src);
        if (!(mask >> src & 1u))  // name the lane that reads, not the one that completed the rendezvous
          fault_here(std::string(op_name(t.op)) + " reads lane " + std::to_string(src) +
                         ", which is not in the member mask " + hex(mask) + " at " + loc_str(t.wait_loc),
                     &t);
      }
    }
  }
  for (int l = 0; l < 32; ++l)
    if (mask >> l & 1u) b.make_runnable(warp[l]);
  b.warps[size_t(last.warp)].waiting &= ~mask;
}

// The lanes of this thread's warp that exist (a block's last warp may be partial).
unsigned existing_lanes(const Block& b, const Thread& t) {
  const int n = std::min(32, b.nthreads - t.warp * 32);
  return n >= 32 ? 0xffffffffu : ((1u << n) - 1);
}

void reset_fibers(Block& b) {
  for (int i = 0; i < b.nthreads; ++i)
    if (b.threads[size_t(i)].state != State::Exited) b.fibers[size_t(i)]->reset();
}

std::string deadlock_report(const Block& b) {
  // group the waiting threads by where they wait
  std::map<std::string, std::pair<int, std::string>> sites;  // "what at line" -> (count, first thread)
  for (int i = 0; i < b.nthreads; ++i) {
    const Thread& t = b.threads[size_t(i)];
    if (t.state == State::Exited) continue;
    const std::string what = t.state == State::AtBarrier ? "__syncthreads" : std::string(op_name(t.op)) + " (mask " + hex(t.mask) + ")";
    auto& s = sites[what + " at " + loc_str(t.wait_loc)];
    if (s.first++ == 0) s.second = dim_str(t.thread_idx);
  }
  std::string r = kernel_prefix(b) + ", block " + dim_str(b.idx) + ": deadlock: no thread can proceed;";
  for (const auto& [where, s] : sites)
    r.append(" ").append(std::to_string(s.first)).append(" thread(s) wait in ").append(where)
        .append(" (first: thread ").append(s.second).append(");");
  r += " " + std::to_string(b.exited) + " exited";
  return r;
}

// "" when every waiting thread waits at the same __syncthreads; else where they wait, with counts.
std::string barrier_sites(const Block& b) {
  const Thread* first = nullptr;
  bool differ = false;
  for (int i = 0; i < b.nthreads && !differ; ++i) {
    const Thread& t = b.threads[size_t(i)];
    if (t.state != State::AtBarrier) continue;
    if (!first) first = &t;
    else differ = !same_line(first->wait_loc, t.wait_loc);
  }
  if (!differ) return "";
  std::map<std::string, int> sites;
  for (int i = 0; i < b.nthreads; ++i)
    if (b.threads[size_t(i)].state == State::AtBarrier) ++sites[loc_str(b.threads[size_t(i)].wait_loc)];
  if (sites.size() <= 1) return "";
  std::string r;
  for (const auto& [where, count] : sites) r += (r.empty() ? "" : ", ") + std::to_string(count) + " at " + where;
  return r;
}

void run_block(Block& b, const Launch& L, uint3 idx, uint64_t linear_block) {
  const int n = int(L.block.x * L.block.y * L.block.z);
  while (int(b.fibers.size()) < n) {
    b.threads.reserve(size_t(kMaxThreadsPerBlock));  // fibers hold pointers to their Thread: never reallocate
    b.threads.emplace_back();
    b.fibers.push_back(std::make_unique<Fiber>(&thread_main, &b.threads.back()));
  }
  b.launch = &L;
  b.idx = idx;
  b.nthreads = n;
  b.exited = 0;
  b.error.clear();
  b.rng = Rng{L.seed ^ (linear_block * 0x2545f4914f6cdd1dull)};
  b.static_bytes = 0;
  b.statics.clear();
  std::memset(b.arena.get(), kPoison, std::max(b.arena_touched, L.dynamic_smem));
  b.arena_touched = std::max(b.arena_touched, L.dynamic_smem);
  b.runnable.clear();
  b.warps.assign(size_t(n + 31) / 32, Block::WarpMasks{});
  for (int i = 0; i < n; ++i) {
    Thread& t = b.threads[size_t(i)];
    t.block = &b;
    t.fiber = b.fibers[size_t(i)].get();
    t.linear = i;
    t.warp = i / 32;
    t.lane = i % 32;
    t.thread_idx = uint3{unsigned(i) % L.block.x, unsigned(i) / L.block.x % L.block.y, unsigned(i) / (L.block.x * L.block.y)};
    t.block_idx = idx;
    t.block_dim = L.block;
    t.grid_dim = L.grid;
    t.copies.clear();
    t.groups_committed = 0;
    t.instruction = nullptr;
    t.state = State::Runnable;
    b.runnable.push_back(i);
  }
  for (;;) {
    while (!b.runnable.empty()) {
      const size_t k = b.rng.below(b.runnable.size());
      const int i = b.runnable[k];
      b.runnable[k] = b.runnable.back();
      b.runnable.pop_back();
      Thread& t = b.threads[size_t(i)];
      tl_thread = &t;
      t.fiber->resume();
      tl_thread = nullptr;
      if (!b.error.empty()) {
        reset_fibers(b);
        throw KernelError(b.error);
      }
    }
    if (b.exited == n) return;
    int at_barrier = 0, count = 0;
    for (int i = 0; i < n; ++i) {
      const Thread& t = b.threads[size_t(i)];
      if (t.state == State::AtBarrier) {
        ++at_barrier;
        count += t.value != 0;
      }
    }
    if (at_barrier != n - b.exited) {
      const std::string report = deadlock_report(b);
      reset_fibers(b);
      throw KernelError(report);
    }
    if (const std::string sites = barrier_sites(b); !sites.empty()) {
      reset_fibers(b);
      throw KernelError(kernel_prefix(b) + ", block " + dim_str(b.idx) + ": threads wait at different __syncthreads (" +
                        sites + "): a barrier in code that not every thread of the block runs alike");
    }
    for (int i = 0; i < n; ++i) {
      Thread& t = b.threads[size_t(i)];
      if (t.state != State::AtBarrier) continue;
      switch (t.barrier) {
        case BarrierKind::Plain: t.result = 0; break;
        case BarrierKind::Count: t.result = uint64_t(count); break;
        case BarrierKind::And: t.result = count == at_barrier; break;
        case BarrierKind::Or: t.result = count > 0; break;
      }
      b.make_runnable(t);
    }
  }
}

// ---- launch bookkeeping ----
std::atomic<uint64_t> g_seed{[] {
  const char* s = std::getenv("SOFTPICK_EMU_SEED");
  return s ? std::strtoull(s, nullptr, 10) : 1ull;
}()};
std::atomic<uint64_t> g_launches{0};
std::mutex g_mutex;  // guards the two maps below
std::map<const void*, size_t> g_max_dynamic_smem;
std::string g_last_diagnostic;
thread_local cudaError_t tl_last_error = cudaSuccess;

bool reject(cudaError_t e, const std::string& why) {
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_last_diagnostic = why;
  }
  std::fprintf(stderr, "cuda-emu: %s\n", why.c_str());
  tl_last_error = e;
  return false;
}

bool check_launch(const void* func, const Launch& L) {
  const std::string who = "launch of kernel " + std::string(L.name) + " at " + site_str(L.site) + ": ";
  const dim3 g = L.grid, k = L.block;
  const uint64_t threads = uint64_t(k.x) * k.y * k.z;
  if (threads == 0 || g.x == 0 || g.y == 0 || g.z == 0)
    return reject(cudaErrorInvalidConfiguration, who + "an empty grid or block");
  if (threads > uint64_t(kMaxThreadsPerBlock) || k.x > 1024 || k.y > 1024 || k.z > 64)
    return reject(cudaErrorInvalidConfiguration,
                  who + "block (" + std::to_string(k.x) + "," + std::to_string(k.y) + "," + std::to_string(k.z) +
                      ") has " + std::to_string(threads) + " threads; the device allows 1024 (z at most 64)");
  if (g.x > 0x7fffffffu || g.y > 65535 || g.z > 65535)
    return reject(cudaErrorInvalidConfiguration, who + "grid beyond (2^31-1, 65535, 65535)");
  if (L.dynamic_smem > kMaxSmemPerBlockOptin)
    return reject(cudaErrorInvalidValue, who + std::to_string(L.dynamic_smem) +
                                             " bytes of dynamic shared memory; the device has at most 227 KiB per block");
  const size_t limit = max_dynamic_smem(func);
  if (L.dynamic_smem > limit)
    return reject(cudaErrorInvalidValue,
                  who + std::to_string(L.dynamic_smem) + " bytes of dynamic shared memory above the kernel's limit of " +
                      std::to_string(limit) + " (raise it with cudaFuncSetAttribute(..., "
                      "cudaFuncAttributeMaxDynamicSharedMemorySize, bytes))");
  return true;
}

}  // namespace

// ---- device-side entry points (device.h) ----

void fault(const std::string& what, const Loc& loc) { fault_here(what + " at " + loc_str(loc)); }

int block_barrier(BarrierKind kind, int pred, const Loc& loc) {
  Thread& t = current();
  t.state = State::AtBarrier;
  t.barrier = kind;
  t.value = pred != 0;
  t.wait_loc = loc;
  t.fiber->yield();
  return int(t.result);
}

namespace {
uint64_t rendezvous(WarpOp op, const char* instruction, WarpCompute compute, unsigned mask, uint64_t value,
                    unsigned b, unsigned c, const Loc& loc) {
  Thread& t = current();
  Block& blk = *t.block;
  auto what = [&] {  // built only for a fault
    return std::string(instruction ? instruction : op_name(op)) + " with mask " + hex(mask);
  };
  if (!(mask >> t.lane & 1u)) fault(what() + " does not name the calling lane " + std::to_string(t.lane), loc);
  if (mask & ~existing_lanes(blk, t)) fault(what() + " names lanes beyond the block's last thread", loc);
  Block::WarpMasks& w = blk.warps[size_t(t.warp)];
  if (const unsigned gone = mask & w.exited)
    fault(what() + " names lane " + std::to_string(__builtin_ctz(gone)) + ", which has exited", loc);
  // Lanes of the mask already waiting were checked against each other as they arrived: compare with one.
  if (const unsigned others = mask & w.waiting) {
    const int l = __builtin_ctz(others);
    const Thread& o = blk.threads[size_t(t.warp) * 32 + size_t(l)];
    if (o.op != op || o.mask != mask || o.instruction != instruction || !same_line(o.wait_loc, loc))
      fault(what() + " while lane " + std::to_string(l) + " waits in " + (o.instruction ? o.instruction : op_name(o.op)) +
                " with mask " + hex(o.mask) + " at " + loc_str(o.wait_loc) + ": divergent warp collectives",
            loc);
  }
  w.waiting |= 1u << t.lane;
  t.state = State::AtWarp;
  t.op = op;
  t.mask = mask;
  t.value = value;
  t.b = b;
  t.c = c;
  t.wait_loc = loc;
  t.instruction = instruction;
  t.compute = compute;
  if ((w.waiting & mask) == mask) complete_collective(blk, t);
  t.fiber->yield();
  return t.result;
}
}  // namespace

uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, unsigned b, unsigned c, const Loc& loc) {
  return rendezvous(op, nullptr, nullptr, mask, value, b, c, loc);
}

void warp_instruction(const char* name, unsigned mask, void* lane_operands, WarpCompute compute, const Loc& loc) {
  rendezvous(WarpOp::Instruction, name, compute, mask, reinterpret_cast<uint64_t>(lane_operands), 0, 0, loc);
}

void* static_shared_bytes(const char* name, size_t bytes, size_t align, const Loc& loc) {
  Block& b = *current().block;
  for (const StaticVar& v : b.statics)
    if (v.name == name && v.line == loc.line() && v.file == loc.file_name()) return b.arena.get() + v.offset;
  // dynamic memory first, then the static variables in the order the block first reaches them
  const size_t offset = (b.launch->dynamic_smem + b.static_bytes + align - 1) / align * align;
  const size_t end = offset + bytes;
  if (end - b.launch->dynamic_smem > kDefaultSmemPerBlock)
    fault("static shared memory of the kernel exceeds 48 KiB with " + std::string(name) +
              " (nvcc refuses this; use dynamic shared memory and cudaFuncSetAttribute)",
          loc);
  if (end > kMaxSmemPerBlockOptin)
    fault("shared memory of the block exceeds 227 KiB with " + std::string(name), loc);
  b.static_bytes = end - b.launch->dynamic_smem;
  if (end > b.arena_touched) {
    std::memset(b.arena.get() + b.arena_touched, kPoison, end - b.arena_touched);
    b.arena_touched = end;
  }
  b.statics.push_back(StaticVar{loc.file_name(), loc.line(), name, offset});
  return b.arena.get() + offset;
}

void* dynamic_shared_bytes(size_t* bytes) {
  Block& b = *current().block;
  *bytes = b.launch->dynamic_smem;
  return b.arena.get();
}

bool in_shared(const void* p, size_t bytes) {
  const Block& b = *current().block;
  const auto* c = static_cast<const unsigned char*>(p);
  return c >= b.arena.get() && c + bytes <= b.arena.get() + b.launch->dynamic_smem + b.static_bytes;
}

// ---- host-side entry points (runtime.h) ----

namespace {
// SOFTPICK_EMU_PROFILE=1: the launches and emulated time per kernel, printed at exit (for sizing tests).
struct Profile {
  struct Entry {
    uint64_t launches = 0;
    double seconds = 0;
  };
  std::mutex mutex;
  std::map<std::string, Entry> kernels;
  const bool on = std::getenv("SOFTPICK_EMU_PROFILE") != nullptr;
  ~Profile() {
    if (!on || kernels.empty()) return;
    std::vector<std::pair<std::string, Entry>> rows(kernels.begin(), kernels.end());
    std::sort(rows.begin(), rows.end(), [](auto& a, auto& b) { return a.second.seconds > b.second.seconds; });
    std::fprintf(stderr, "cuda-emu profile (emulated time, not a GPU's):\n");
    for (const auto& [name, e] : rows)
      std::fprintf(stderr, "  %10.3f s %8llu launches  %s\n", e.seconds, (unsigned long long)e.launches, name.c_str());
  }
};
Profile g_profile;
}  // namespace

namespace {

void run_grid(const Launch& L) {
  const auto start = std::chrono::steady_clock::now();
  struct Record {  // on every way out, faults included
    const char* name;
    std::chrono::steady_clock::time_point start;
    ~Record() {
      if (!g_profile.on) return;
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::lock_guard<std::mutex> lock(g_profile.mutex);
      auto& e = g_profile.kernels[name];
      ++e.launches;
      e.seconds += s;
    }
  } record{L.name, start};
  Launch run_launch = L;
  run_launch.seed = g_seed.load() * 0x9e3779b97f4a7c15ull + g_launches.fetch_add(1);
  const dim3 grid = L.grid;
  const uint64_t nblocks = uint64_t(grid.x) * grid.y * grid.z;
  auto run = [&](uint64_t i) {
    const uint3 idx{unsigned(i % grid.x), unsigned(i / grid.x % grid.y), unsigned(i / (uint64_t(grid.x) * grid.y))};
    run_block(worker_block(), run_launch, idx, i);
  };
  if (nblocks == 1 || omp_in_parallel()) {
    for (uint64_t i = 0; i < nblocks; ++i) run(i);
    return;
  }
  std::string first_error;
  std::mutex error_mutex;
#pragma omp parallel for schedule(dynamic, 1)
  for (uint64_t i = 0; i < nblocks; ++i) {
    try {
      run(i);
    } catch (const KernelError& e) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (first_error.empty()) first_error = e.what();
    }
  }
  if (!first_error.empty()) throw KernelError(first_error);
}

}  // namespace

void launch_kernel(const void* func, const char* name, dim3 grid, dim3 block, size_t dynamic_smem, cudaStream_t stream,
                   Site site, KernelBody body) {
  auto owned = std::make_shared<KernelBody>(std::move(body));
  Launch L{name, site, grid, block, dynamic_smem, owned.get(), 0};
  if (!check_launch(func, L)) return;
  enqueue(stream, [L, owned] { run_grid(L); });
}

void set_schedule_seed(uint64_t seed) { g_seed = seed; }
uint64_t schedule_seed() { return g_seed.load(); }

std::string last_launch_diagnostic() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_last_diagnostic;
}

size_t max_dynamic_smem(const void* func) {
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_max_dynamic_smem.find(func);
  return it == g_max_dynamic_smem.end() ? kDefaultSmemPerBlock : it->second;
}

void set_max_dynamic_smem(const void* func, size_t bytes) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_max_dynamic_smem[func] = bytes;
}

void set_last_error(cudaError_t e) { tl_last_error = e; }
cudaError_t take_last_error(bool reset) {
  const cudaError_t e = tl_last_error;
  if (reset) tl_last_error = cudaSuccess;
  return e;
}

}  // namespace emu
