// A fixed pool of worker threads for data-parallel loops.
#ifndef QUIVER_COMMON_THREAD_POOL_H_
#define QUIVER_COMMON_THREAD_POOL_H_

#include <cstddef>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace quiver {

// Thread-safe: any number of callers may submit work concurrently; their
// tasks share the workers.
class ThreadPool {
 public:
  // REQUIRES: num_threads >= 1.
  explicit ThreadPool(size_t num_threads);
  ~ThreadPool();  // Finishes queued tasks, then joins.

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  size_t size() const { return workers_.size(); }

  // Runs fn(i) for i in [0, n) on the pool and the calling thread, and
  // returns when all have finished. Tasks must not throw.
  void ParallelFor(size_t n, const std::function<void(size_t)>& fn);

 private:
  void WorkerLoop();

  absl::Mutex mu_;
  std::vector<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;  // Constant after construction.
};

}  // namespace quiver

#endif  // QUIVER_COMMON_THREAD_POOL_H_
