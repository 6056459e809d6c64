// A team of threads for many short data-parallel loops in quick succession.
//
// A decode step of a language model runs some fifty matrix products, each
// tens of microseconds long. Started as OpenMP parallel regions, each one
// costs a futex wake and a join once libgomp throttles its spinning (it does
// whenever a process has more than one thread team, as a server does): tens
// of microseconds on a VM, a third of a quantized model's step. A SpinTeam's
// workers spin on a shared counter between loops, so starting one is a
// cache-line handoff; a worker that finds no loop for `spin` goes to sleep
// (std::atomic::wait) until the next one.
#ifndef QUIVER_COMMON_SPIN_TEAM_H_
#define QUIVER_COMMON_SPIN_TEAM_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

namespace quiver {

// Thread-safe in the sense that one caller at a time uses the team: a
// ParallelFor that finds the team busy (another caller's loop, or a loop
// started from inside one of its bodies) returns false without running
// anything, and the caller runs its loop some other way.
class SpinTeam {
 public:
  // `threads` counts the caller: threads - 1 workers are started.
  // REQUIRES: threads >= 1.
  explicit SpinTeam(int threads, std::chrono::microseconds spin = std::chrono::microseconds(2000));
  ~SpinTeam();  // Joins the workers. REQUIRES: no loop is running.

  SpinTeam(const SpinTeam&) = delete;
  SpinTeam& operator=(const SpinTeam&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  enum class Schedule {
    kStatic,   // Participant t of T runs [n*t/T, n*(t+1)/T): the same indices every call.
    kDynamic,  // Indices are claimed one at a time.
  };

  // Runs body(i) for every i in [0, n) on the caller and the workers, and
  // returns true when all have finished. Returns false, having run nothing,
  // when the team is busy. body must not throw.
  template <typename Body>
  bool ParallelFor(int64_t n, Schedule schedule, const Body& body) {
    // A participant's indices go through one call, which loops over them
    // with the body inlined (an elementwise body then vectorises).
    return Run(
        n, schedule,
        [](const void* b, int64_t begin, int64_t end) {
          const Body& f = *static_cast<const Body*>(b);
          for (int64_t i = begin; i < end; ++i) f(i);
        },
        &body);
  }

 private:
  // Runs body(i) for i in [begin, end).
  using Thunk = void (*)(const void* body, int64_t begin, int64_t end);

  bool Run(int64_t n, Schedule schedule, Thunk thunk, const void* body);
  void RunShare(int participant);
  void WorkerLoop(int participant);
  // Spins, then sleeps, until generation_ differs from `seen`; returns it.
  uint32_t AwaitGeneration(uint32_t seen);

  const std::chrono::microseconds spin_;
  std::vector<std::thread> workers_;  // Constant after construction.

  std::atomic<bool> busy_{false};
  // The current loop: written by its caller before generation_ moves on,
  // read by the workers after they see it move.
  Thunk thunk_ = nullptr;
  const void* body_ = nullptr;
  int64_t n_ = 0;
  Schedule schedule_ = Schedule::kStatic;
  bool stopping_ = false;
  std::atomic<int64_t> next_{0};  // kDynamic: the next unclaimed index.
  std::atomic<int> pending_{0};   // Workers still in the current loop.
  std::atomic<uint32_t> generation_{0};
  std::atomic<int> sleepers_{0};  // Workers in generation_.wait().
};

}  // namespace quiver

#endif  // QUIVER_COMMON_SPIN_TEAM_H_
