#include "common/thread_pool.h"

#include <atomic>
#include <memory>

#include "common/status_macros.h"

namespace quiver {

ThreadPool::ThreadPool(size_t num_threads) {
  QUIVER_CHECK(num_threads >= 1);
  workers_.reserve(num_threads);
  for (size_t i = 0; i < num_threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::WorkerLoop() {
  while (true) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](ThreadPool* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
            return p->stopping_ || !p->queue_.empty();
          },
          this));
      if (queue_.empty()) return;  // Stopping and drained.
      task = std::move(queue_.back());
      queue_.pop_back();
    }
    task();
  }
}

void ThreadPool::ParallelFor(size_t n, const std::function<void(size_t)>& fn) {
  if (n == 0) return;
  if (n == 1) {
    fn(0);
    return;
  }
  // Work is claimed through a shared counter, so the caller helps and the
  // loop finishes even when every worker is busy with other callers' tasks.
  struct State {
    std::atomic<size_t> next{0};
    absl::Mutex mu;
    size_t done ABSL_GUARDED_BY(mu) = 0;
  };
  auto state = std::make_shared<State>();
  auto run = [state, n, &fn] {
    size_t i;
    while ((i = state->next.fetch_add(1)) < n) {
      fn(i);
      absl::MutexLock lock(&state->mu);
      ++state->done;
    }
  };
  const size_t helpers = std::min(n - 1, workers_.size());
  {
    absl::MutexLock lock(&mu_);
    for (size_t k = 0; k < helpers; ++k) queue_.push_back(run);
  }
  run();
  // Helpers that start after every item is claimed exit without touching fn,
  // so waiting for completed items is enough.
  absl::MutexLock lock(&state->mu);
  std::pair<State*, size_t> wait_arg(state.get(), n);
  state->mu.Await(absl::Condition(
      +[](std::pair<State*, size_t>* p) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return p->first->done == p->second;
      },
      &wait_arg));
}

}  // namespace quiver
