#include "embed/worker.h"

#include <algorithm>

#include "common/strings.h"

namespace quiver::embed {

struct BatchingWorker::Request {
  std::vector<std::vector<float>> outputs;
  size_t remaining = 0;
  absl::Status status;
};

absl::Status WorkerOptions::Validate() const {
  if (max_batch_tokens < 1) return absl::InvalidArgumentError("max_batch_tokens must be >= 1");
  if (max_wait_us < 0) return absl::InvalidArgumentError("max_wait_us must be >= 0");
  if (max_queue < 1) return absl::InvalidArgumentError("max_queue must be >= 1");
  return absl::OkStatus();
}

BatchingWorker::BatchingWorker(BatchFn fn, WorkerOptions options)
    : fn_(std::move(fn)), options_(options), thread_([this] { Loop(); }) {}

BatchingWorker::~BatchingWorker() { Shutdown(); }

void BatchingWorker::Shutdown() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  std::call_once(joined_, [this] { thread_.join(); });
}

size_t BatchingWorker::queued() const {
  std::lock_guard<std::mutex> l(mu_);
  return queue_.size();
}

absl::StatusOr<std::vector<std::vector<float>>> BatchingWorker::Run(
    std::vector<nn::Encoding> inputs) {
  Request req;
  req.outputs.resize(inputs.size());
  req.remaining = inputs.size();
  if (inputs.empty()) return req.outputs;
  std::unique_lock<std::mutex> l(mu_);
  if (stopping_) return absl::UnavailableError("the model is shutting down");
  if (queue_.size() + inputs.size() > options_.max_queue) {
    return absl::ResourceExhaustedError(StrCat("the model's queue is full (", queue_.size(),
                                               " sequences waiting, limit ", options_.max_queue,
                                               "); retry later"));
  }
  const auto now = std::chrono::steady_clock::now();
  for (size_t i = 0; i < inputs.size(); ++i) {
    queued_tokens_ += inputs[i].ids.size();
    queue_.push_back(Item{std::move(inputs[i]), &req, i, now});
  }
  work_cv_.notify_one();
  done_cv_.wait(l, [&] { return req.remaining == 0; });
  if (!req.status.ok()) return req.status;
  return std::move(req.outputs);
}

WorkerStats BatchingWorker::stats() const {
  std::lock_guard<std::mutex> l(mu_);
  return stats_;
}

void BatchingWorker::Loop() {
  std::unique_lock<std::mutex> l(mu_);
  while (true) {
    work_cv_.wait(l, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) break;
    // Wait for company, up to max_wait_us after the oldest arrived, unless
    // a full batch is already there.
    const auto deadline = queue_.front().enqueued + std::chrono::microseconds(options_.max_wait_us);
    work_cv_.wait_until(l, deadline,
                        [&] { return stopping_ || queued_tokens_ >= options_.max_batch_tokens; });
    if (stopping_) break;
    // The oldest sequence, then the queued ones closest to its length while
    // the padded batch fits.
    std::vector<Item> batch;
    batch.push_back(std::move(queue_.front()));
    queue_.pop_front();
    size_t longest = batch[0].input.ids.size();
    const size_t anchor = longest;
    std::vector<size_t> order(queue_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      const auto da =
          static_cast<int64_t>(queue_[a].input.ids.size()) - static_cast<int64_t>(anchor);
      const auto db =
          static_cast<int64_t>(queue_[b].input.ids.size()) - static_cast<int64_t>(anchor);
      return std::llabs(da) != std::llabs(db) ? std::llabs(da) < std::llabs(db) : a < b;
    });
    std::vector<bool> taken(queue_.size(), false);
    for (size_t i : order) {
      const size_t len = std::max(longest, queue_[i].input.ids.size());
      if (len * (batch.size() + 1) > options_.max_batch_tokens) continue;
      longest = len;
      taken[i] = true;
      batch.push_back(std::move(queue_[i]));
    }
    std::deque<Item> rest;
    for (size_t i = 0; i < queue_.size(); ++i) {
      if (!taken[i]) rest.push_back(std::move(queue_[i]));
    }
    queue_ = std::move(rest);
    std::vector<nn::Encoding> inputs;
    size_t real = 0;
    for (Item& it : batch) {
      queued_tokens_ -= it.input.ids.size();
      real += it.input.ids.size();
      inputs.push_back(std::move(it.input));
    }
    l.unlock();
    absl::StatusOr<std::vector<std::vector<float>>> out = fn_(inputs);
    l.lock();
    stats_.batches += 1;
    stats_.sequences += batch.size();
    stats_.real_tokens += real;
    stats_.padded_tokens += longest * batch.size();
    for (size_t i = 0; i < batch.size(); ++i) {
      Request* r = batch[i].request;
      if (!out.ok() || out->size() != batch.size()) {
        r->status = out.ok() ? absl::InternalError("model returned the wrong number of outputs")
                             : out.status();
      } else {
        r->outputs[batch[i].index] = std::move((*out)[i]);
      }
      --r->remaining;
    }
    done_cv_.notify_all();
  }
  // Stopping: fail whatever is still queued.
  for (Item& it : queue_) {
    it.request->status = absl::UnavailableError("the model is shutting down");
    --it.request->remaining;
  }
  queue_.clear();
  done_cv_.notify_all();
}

}  // namespace quiver::embed
