// A fixed pool of worker threads for data-parallel loops.
#ifndef QUIVER_COMMON_THREAD_POOL_H_
#define QUIVER_COMMON_THREAD_POOL_H_

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace quiver {

// Thread-safe: any number of callers may submit work concurrently; their
// tasks share the workers. Uses std::mutex (not absl::Mutex) so that
// ThreadSanitizer, which cannot see inside Debian's uninstrumented Abseil,
// checks the code running on it.
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

  std::mutex mu_;
  std::condition_variable wake_;
  std::vector<std::function<void()>> queue_;  // Guarded by mu_.
  bool stopping_ = false;                     // Guarded by mu_.
  std::vector<std::thread> workers_;          // Constant after construction.
};

}  // namespace quiver

#endif  // QUIVER_COMMON_THREAD_POOL_H_
