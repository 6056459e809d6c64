#include "common/spin_team.h"

#include "common/status_macros.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace quiver {
namespace {

// Tells the core this is a spin loop (frees the sibling hyperthread, saves
// power); a no-op elsewhere.
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

}  // namespace

SpinTeam::SpinTeam(int threads, std::chrono::microseconds spin) : spin_(spin) {
  QUIVER_CHECK(threads >= 1);
  workers_.reserve(threads - 1);
  for (int t = 1; t < threads; ++t) workers_.emplace_back([this, t] { WorkerLoop(t); });
}

SpinTeam::~SpinTeam() {
  stopping_ = true;
  generation_.fetch_add(1);
  generation_.notify_all();
  for (std::thread& w : workers_) w.join();
}

uint32_t SpinTeam::AwaitGeneration(uint32_t seen) {
  const auto deadline = std::chrono::steady_clock::now() + spin_;
  for (uint32_t i = 1;; ++i) {
    const uint32_t g = generation_.load(std::memory_order_acquire);
    if (g != seen) return g;
    CpuRelax();
    if (i % 256 == 0 && std::chrono::steady_clock::now() > deadline) break;
  }
  // Sleep. The caller bumps generation_ before it reads sleepers_, and this
  // thread counts itself before it checks generation_ (both sequentially
  // consistent), so either the caller sees the sleeper and notifies, or this
  // check sees the new generation.
  sleepers_.fetch_add(1);
  uint32_t g;
  while ((g = generation_.load()) == seen) generation_.wait(seen);
  sleepers_.fetch_sub(1);
  return g;
}

void SpinTeam::RunShare(int participant) {
  if (schedule_ == Schedule::kDynamic) {
    for (int64_t i; (i = next_.fetch_add(1, std::memory_order_relaxed)) < n_;) {
      thunk_(body_, i, i + 1);
    }
    return;
  }
  const int64_t parts = size();
  const int64_t begin = n_ * participant / parts, end = n_ * (participant + 1) / parts;
  if (begin < end) thunk_(body_, begin, end);
}

void SpinTeam::WorkerLoop(int participant) {
  uint32_t seen = 0;
  while (true) {
    seen = AwaitGeneration(seen);
    if (stopping_) return;
    RunShare(participant);
    pending_.fetch_sub(1, std::memory_order_release);
  }
}

bool SpinTeam::Run(int64_t n, Schedule schedule, Thunk thunk, const void* body) {
  if (busy_.exchange(true, std::memory_order_acquire)) return false;
  if (workers_.empty() || n <= 1) {
    if (n > 0) thunk(body, 0, n);
    busy_.store(false, std::memory_order_release);
    return true;
  }
  thunk_ = thunk;
  body_ = body;
  n_ = n;
  schedule_ = schedule;
  next_.store(0, std::memory_order_relaxed);
  pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  generation_.fetch_add(1);  // Sequentially consistent: see AwaitGeneration.
  if (sleepers_.load() > 0) generation_.notify_all();
  RunShare(0);
  // The workers' shares end about when ours does, unless one was asleep or
  // descheduled: after a while, give the core away between looks.
  for (int i = 0; pending_.load(std::memory_order_acquire) != 0; ++i) {
    if (i < 4096) {
      CpuRelax();
    } else {
      std::this_thread::yield();
    }
  }
  busy_.store(false, std::memory_order_release);
  return true;
}

}  // namespace quiver
