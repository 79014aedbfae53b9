#include "fiber.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#if !defined(__x86_64__)
#error "the CUDA execution harness switches fibers with x86-64 code; port emu_switch for this CPU"
#endif

// emu_switch(save, next): pushes the callee-saved registers and the SSE/x87 control words, stores the stack
// pointer in *save, loads `next` and pops the same frame from it.
extern "C" void emu_switch(void** save, void* next);
// The first frame of a fiber returns here: r12 holds the entry, r13 its argument.
extern "C" void emu_fiber_trampoline();

asm(R"(
  .text
  .globl emu_switch
  .type emu_switch, @function
emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size emu_switch, .-emu_switch

  .globl emu_fiber_trampoline
  .type emu_fiber_trampoline, @function
emu_fiber_trampoline:
  movq %r13, %rdi
  callq *%r12
  ud2
  .size emu_fiber_trampoline, .-emu_fiber_trampoline
)");

namespace emu {

namespace {
constexpr size_t kGuardBytes = 4096;
}

void fiber_start(Fiber* f) {
  f->entry_(f);
  std::fprintf(stderr, "cuda-emu: a fiber's entry returned\n");
  std::abort();
}

Fiber::Fiber(Entry entry, void* user) : entry_(entry), user_(user) {
  void* p = mmap(nullptr, kStackBytes + kGuardBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  if (p == MAP_FAILED) {
    std::perror("cuda-emu: mmap of a fiber stack");
    std::abort();
  }
  stack_ = static_cast<char*>(p);
  mprotect(stack_, kGuardBytes, PROT_NONE);  // an overflowing kernel faults instead of corrupting a neighbour
  reset();
}

Fiber::~Fiber() { munmap(stack_, kStackBytes + kGuardBytes); }

void Fiber::reset() {
  // The frame emu_switch pops: control words, r15, r14, r13, r12, rbx, rbp, return address. After the
  // `ret` into the trampoline the stack pointer must be 16-byte aligned for its call.
  auto top = reinterpret_cast<uintptr_t>(stack_ + kGuardBytes + kStackBytes) & ~uintptr_t(15);
  auto* frame = reinterpret_cast<uint64_t*>(top) - 8;
  uint32_t csr = 0x1f80;   // MXCSR default: all exceptions masked, round to nearest
  uint16_t cw = 0x037f;    // x87 default control word
  frame[0] = uint64_t(csr) | (uint64_t(cw) << 32);
  frame[1] = 0;                                             // r15
  frame[2] = 0;                                             // r14
  frame[3] = reinterpret_cast<uint64_t>(this);              // r13: the entry's argument
  frame[4] = reinterpret_cast<uint64_t>(&fiber_start);      // r12: the entry
  frame[5] = 0;                                             // rbx
  frame[6] = 0;                                             // rbp
  frame[7] = reinterpret_cast<uint64_t>(&emu_fiber_trampoline);
  sp_ = frame;
}

void Fiber::resume() { emu_switch(&caller_sp_, sp_); }

void Fiber::yield() { emu_switch(&sp_, caller_sp_); }

}  // namespace emu
