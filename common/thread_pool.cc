#include "common/thread_pool.h"

#include <algorithm>
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
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::WorkerLoop() {
  while (true) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
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
    std::mutex mu;
    std::condition_variable done_cv;
    size_t done = 0;  // Guarded by mu.
  };
  auto state = std::make_shared<State>();
  auto run = [state, n, &fn] {
    size_t i;
    while ((i = state->next.fetch_add(1)) < n) {
      fn(i);
      std::lock_guard<std::mutex> lock(state->mu);
      if (++state->done == n) state->done_cv.notify_all();
    }
  };
  const size_t helpers = std::min(n - 1, workers_.size());
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t k = 0; k < helpers; ++k) queue_.push_back(run);
  }
  wake_.notify_all();
  run();
  // Helpers that start after every item is claimed exit without touching fn,
  // so waiting for completed items is enough.
  std::unique_lock<std::mutex> lock(state->mu);
  state->done_cv.wait(lock, [&] { return state->done == n; });
}

}  // namespace quiver
