// Fibers: the threads of one emulated CUDA block, run cooperatively on one host thread.
//
// A fiber runs until it reaches a barrier or a warp collective, then switches back to the block's scheduler
// (scheduler.cpp). Switching saves only the callee-saved registers and the floating-point control words
// (x86-64 System V; a few nanoseconds, no system call), so a barrier-heavy kernel stays cheap to emulate.
#pragma once

#include <cstddef>

namespace emu {

class Fiber {
public:
  using Entry = void (*)(Fiber*);
  Fiber(Entry entry, void* user);
  ~Fiber();
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;

  // From the scheduler: runs the fiber until it calls yield(); returns then.
  void resume();
  // From inside the fiber: back to the scheduler that resumed it.
  void yield();
  // Starts the fiber over at its entry (after a fault left it suspended mid-kernel).
  void reset();

  void* user() const { return user_; }

  static constexpr size_t kStackBytes = 256 * 1024;  // reserved lazily; kernels keep register tiles here

private:
  Entry entry_;
  void* user_;
  char* stack_ = nullptr;  // mmap'd, with a guard page below
  void* sp_ = nullptr;     // the fiber's saved stack pointer while it is suspended
  void* caller_sp_ = nullptr;
  friend void fiber_start(Fiber* f);
};

}  // namespace emu
