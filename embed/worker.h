// A queue in front of one model that batches concurrent requests
// dynamically: the first waiting sequence waits at most max_wait_us for
// company; a batch holds at most max_batch_tokens padded tokens; sequences
// of similar length go together (the oldest one always goes first, so none
// starves); a full queue answers RESOURCE_EXHAUSTED at once (backpressure).
#ifndef QUIVER_EMBED_WORKER_H_
#define QUIVER_EMBED_WORKER_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "nn/tokenizer.h"

namespace quiver::embed {

struct WorkerOptions {
  size_t max_batch_tokens = 16384;  // Padded tokens per forward pass. >= 1.
  int64_t max_wait_us = 2000;       // >= 0.
  size_t max_queue = 4096;          // Sequences waiting. >= 1.
  absl::Status Validate() const;
};

struct WorkerStats {
  uint64_t batches = 0, sequences = 0, real_tokens = 0, padded_tokens = 0;
};

class BatchingWorker {
 public:
  // Runs one batch; returns one output per input, in order.
  using BatchFn = std::function<absl::StatusOr<std::vector<std::vector<float>>>(
      const std::vector<nn::Encoding>&)>;

  BatchingWorker(BatchFn fn, WorkerOptions options);
  ~BatchingWorker();  // Shutdown().

  // Lets the batch in the model finish, fails what is still queued with
  // UNAVAILABLE and stops the thread; later Run calls fail UNAVAILABLE.
  // Idempotent; blocks until the thread has stopped.
  void Shutdown();

  // Runs every input through the model (sharing batches with concurrent
  // callers) and returns their outputs in order. Blocks.
  absl::StatusOr<std::vector<std::vector<float>>> Run(std::vector<nn::Encoding> inputs);
  WorkerStats stats() const;
  // Sequences waiting for a batch (not those in the model).
  size_t queued() const;
  const WorkerOptions& options() const { return options_; }

 private:
  struct Request;
  struct Item {
    nn::Encoding input;
    Request* request;
    size_t index;
    std::chrono::steady_clock::time_point enqueued;
  };
  void Loop();

  const BatchFn fn_;
  const WorkerOptions options_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_;  // Signals the worker thread.
  std::condition_variable done_cv_;  // Signals callers.
  std::deque<Item> queue_;
  size_t queued_tokens_ = 0;
  bool stopping_ = false;
  WorkerStats stats_;
  std::thread thread_;
  std::once_flag joined_;  // Shutdown joins thread_ once.
};

}  // namespace quiver::embed

#endif  // QUIVER_EMBED_WORKER_H_
