// The emulation's thread model (emulator.h): a block's threads are fibers
// with their own stacks, switched by a few lines of x86-64 assembly (glibc's
// swapcontext makes a system call per switch, and a decode step makes
// millions of switches). A scheduler runs every runnable fiber until it
// waits on a barrier or exits, then releases whichever barrier all its
// threads have reached.
#include "tests/cuda_emulation/emulator.h"

#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <vector>

#if !defined(__x86_64__)
#error "the CUDA emulation's fiber switch is written for x86-64"
#endif

// quiver_emu_switch(save, load): saves the callee-saved registers on the
// current stack, stores the stack pointer in *save,
// and resumes the fiber whose stack pointer is `load` (the FP control
// words are never changed, so not switched). quiver_emu_fiber_start is where
// a new fiber's first switch returns to: it calls r13(r12) and never returns.
extern "C" void quiver_emu_switch(void** save, void* load);
extern "C" void quiver_emu_fiber_start();
asm(R"(
  .text
  .p2align 4
  .globl quiver_emu_switch
  .type quiver_emu_switch, @function
quiver_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size quiver_emu_switch, .-quiver_emu_switch

  .p2align 4
  .globl quiver_emu_fiber_start
  .type quiver_emu_fiber_start, @function
quiver_emu_fiber_start:
  movq %r12, %rdi
  call *%r13
  ud2
  .size quiver_emu_fiber_start, .-quiver_emu_fiber_start
)");

namespace quiver::cuda_emulation {

uint3 thread_idx, block_idx;
dim3 block_dim, grid_dim;

void Fail(const char* what) {
  std::fprintf(stderr, "CUDA emulation: %s (block %u,%u,%u thread %u,%u,%u)\n", what, block_idx.x,
               block_idx.y, block_idx.z, thread_idx.x, thread_idx.y, thread_idx.z);
  std::abort();
}

namespace {

constexpr int kWarpSize = 32;
constexpr int kMaxThreads = 1024;
constexpr size_t kStackBytes = 128 << 10;
constexpr size_t kGuardBytes = 4096;  // An unmapped page below each stack.

enum class State { kRunnable, kShuffle, kBarrier, kDone };

struct Fiber {
  void* sp = nullptr;
  char* stack = nullptr;  // Lowest usable byte (the guard page is below).
  State state = State::kRunnable;
  uint3 idx{};
  uint32_t shuffle_bits = 0;
  int lane_mask = 0;
};

struct Scheduler {
  std::vector<Fiber> fibers;
  Fiber* current = nullptr;
  void* main_sp = nullptr;
  size_t threads = 0;  // Per block, of the running launch.
  int live = 0;        // Fibers of the running block that have not exited.
  const std::function<void()>* body = nullptr;

  void EnsureStacks(size_t n) {
    while (fibers.size() < n) {
      void* mem = mmap(nullptr, kStackBytes + kGuardBytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (mem == MAP_FAILED) Fail("cannot map a fiber stack");
      mprotect(mem, kGuardBytes, PROT_NONE);
      Fiber f;
      f.stack = static_cast<char*>(mem) + kGuardBytes;
      fibers.push_back(f);
    }
  }

  // The frame quiver_emu_switch pops: r15, r14, r13 (entry), r12
  // (argument), rbx, rbp, return address (quiver_emu_fiber_start); after
  // those pops the stack pointer is the 16-byte aligned top, as the call
  // to the entry wants.
  void Prepare(Fiber* f) {
    auto* top = reinterpret_cast<uint64_t*>(f->stack + kStackBytes);  // 16-byte aligned.
    uint64_t* sp = top - 7;
    sp[0] = 0;                                       // r15
    sp[1] = 0;                                       // r14
    sp[2] = reinterpret_cast<uint64_t>(&FiberMain);  // r13
    sp[3] = reinterpret_cast<uint64_t>(this);        // r12
    sp[4] = 0;                                       // rbx
    sp[5] = 0;                                       // rbp
    sp[6] = reinterpret_cast<uint64_t>(&quiver_emu_fiber_start);
    f->sp = sp;
    f->state = State::kRunnable;
  }

  static void FiberMain(Scheduler* s) {
    (*s->body)();
    --s->live;
    s->Park(State::kDone);
    __builtin_trap();  // A finished fiber is never resumed.
  }

  // Switches from the current fiber to `next` (or to the scheduler).
  void SwitchTo(Fiber* next) {
    Fiber* me = current;
    current = next;
    if (next != nullptr) thread_idx = next->idx;
    quiver_emu_switch(&me->sp, next != nullptr ? next->sp : main_sp);
  }

  // Called on a fiber: parks it in `state` and passes control straight to
  // the next runnable fiber of the block (each one switch instead of two
  // through the scheduler); the last one of a pass returns to RunBlock,
  // which releases barriers. Returns when this fiber is released.
  void Park(State state) {
    current->state = state;
    const int n = static_cast<int>(threads);
    for (int t = static_cast<int>(current - fibers.data()) + 1; t < n; ++t) {
      if (fibers[t].state == State::kRunnable) return SwitchTo(&fibers[t]);
    }
    SwitchTo(nullptr);
  }

  void RunBlock() {
    const int n = static_cast<int>(threads);
    for (int t = 0; t < n; ++t) {
      Fiber& f = fibers[t];
      Prepare(&f);
      f.idx = {t % block_dim.x, (t / block_dim.x) % block_dim.y, t / (block_dim.x * block_dim.y)};
    }
    live = n;
    while (live > 0) {
      // A pass: runs the runnable fibers in order until each waits or exits
      // (only RunBlock makes a fiber runnable, so none is left behind).
      for (int t = 0; t < n; ++t) {
        if (fibers[t].state != State::kRunnable) continue;
        current = &fibers[t];
        thread_idx = current->idx;
        quiver_emu_switch(&main_sp, current->sp);
        break;
      }
      current = nullptr;
      if (live == 0) break;
      bool released = false;
      for (int w = 0; w * kWarpSize < n; ++w) released |= ReleaseShuffle(w, n);
      if (!released) released = ReleaseBarrier(n);
      if (!released) Fail("deadlock: threads wait on barriers that can never release");
    }
  }

  // Releases warp w's shuffle when every lane waits on it.
  bool ReleaseShuffle(int w, int n) {
    const int first = w * kWarpSize, last = std::min(n, first + kWarpSize);
    int waiting = 0;
    for (int t = first; t < last; ++t) waiting += fibers[t].state == State::kShuffle;
    if (waiting == 0) return false;
    if (last - first != kWarpSize)
      Fail("a full-warp shuffle in a block whose last warp is partial");
    if (waiting != kWarpSize) {
      Fail(
          "__shfl_xor_sync not reached by every lane of the warp (some exited or wait on "
          "__syncthreads)");
    }
    uint32_t bits[kWarpSize];
    for (int l = 0; l < kWarpSize; ++l) {
      const Fiber& f = fibers[first + l];
      if (f.lane_mask != fibers[first].lane_mask)
        Fail("the lanes of a shuffle disagree on the lane mask");
      bits[l] = fibers[first + (l ^ f.lane_mask)].shuffle_bits;
    }
    for (int l = 0; l < kWarpSize; ++l) {
      fibers[first + l].shuffle_bits = bits[l];
      fibers[first + l].state = State::kRunnable;
    }
    return true;
  }

  bool ReleaseBarrier(int n) {
    int waiting = 0, done = 0;
    for (int t = 0; t < n; ++t) {
      waiting += fibers[t].state == State::kBarrier;
      done += fibers[t].state == State::kDone;
    }
    if (waiting == 0) return false;
    if (done > 0) Fail("__syncthreads reached by some threads after others of the block exited");
    for (int t = 0; t < n; ++t) fibers[t].state = State::kRunnable;
    return true;
  }
};

Scheduler& TheScheduler() {
  static Scheduler s;
  return s;
}

// Launches come from any host thread; the GPU they emulate runs one at a time.
std::mutex& LaunchMutex() {
  static std::mutex mu;
  return mu;
}

}  // namespace

void SyncThreads() {
  Scheduler& s = TheScheduler();
  if (s.current == nullptr) Fail("__syncthreads outside a kernel");
  s.Park(State::kBarrier);
}

uint32_t ShuffleXor(uint32_t bits, int lane_mask) {
  Scheduler& s = TheScheduler();
  if (s.current == nullptr) Fail("__shfl_xor_sync outside a kernel");
  if (lane_mask < 0 || lane_mask >= kWarpSize) Fail("__shfl_xor_sync lane mask outside the warp");
  s.current->shuffle_bits = bits;
  s.current->lane_mask = lane_mask;
  s.Park(State::kShuffle);
  return s.current->shuffle_bits;
}

void RunGrid(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& body) {
  std::lock_guard<std::mutex> lock(LaunchMutex());
  const uint64_t threads = static_cast<uint64_t>(block.x) * block.y * block.z;
  if (threads == 0 || threads > kMaxThreads || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
      grid.y > 65535 || grid.z > 65535) {
    Fail("invalid launch configuration");
  }
  if (shared_bytes != 0) Fail("dynamic shared memory is not emulated");
  Scheduler& s = TheScheduler();
  s.EnsureStacks(threads);
  s.body = &body;
  s.threads = threads;
  grid_dim = grid;
  block_dim = block;
  for (unsigned z = 0; z < grid.z; ++z) {
    for (unsigned y = 0; y < grid.y; ++y) {
      for (unsigned x = 0; x < grid.x; ++x) {
        block_idx = {x, y, z};
        s.RunBlock();
      }
    }
  }
  s.body = nullptr;
  CheckDeviceGuards();
}

}  // namespace quiver::cuda_emulation
