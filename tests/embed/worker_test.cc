#include "embed/worker.h"

#include <atomic>
#include <future>
#include <thread>

#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace quiver::embed {
namespace {

using ::quiver::testing::StatusIs;

nn::Encoding Seq(size_t len, int32_t tag) {
  nn::Encoding e;
  e.ids.assign(len, tag);
  return e;
}

// Echoes (length, tag) and records each batch's padded size.
struct Echo {
  std::mutex mu;
  std::vector<std::pair<size_t, size_t>> batches;  // (sequences, longest)
  absl::StatusOr<std::vector<std::vector<float>>> operator()(const std::vector<nn::Encoding>& in) {
    std::vector<std::vector<float>> out;
    size_t longest = 0;
    for (const auto& e : in) {
      out.push_back({static_cast<float>(e.ids.size()), static_cast<float>(e.ids[0])});
      longest = std::max(longest, e.ids.size());
    }
    std::lock_guard<std::mutex> l(mu);
    batches.emplace_back(in.size(), longest);
    return out;
  }
};

TEST(BatchingWorkerTest, ConcurrentCallersShareBatchesAndGetTheirOwnOutputs) {
  Echo echo;
  WorkerOptions o;
  o.max_batch_tokens = 64;
  o.max_wait_us = 20000;
  BatchingWorker w([&](const auto& in) { return echo(in); }, o);
  std::vector<std::thread> callers;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 8; ++t) {
    callers.emplace_back([&, t] {
      for (int r = 0; r < 20; ++r) {
        std::vector<nn::Encoding> in;
        for (int i = 0; i < 3; ++i)
          in.push_back(Seq(1 + (t * 7 + r + i) % 15, t * 1000 + r * 10 + i));
        auto out = w.Run(in);
        if (!out.ok() || out->size() != 3) {
          ++wrong;
          continue;
        }
        for (int i = 0; i < 3; ++i) {
          if ((*out)[i][0] != in[i].ids.size() || (*out)[i][1] != t * 1000 + r * 10 + i) ++wrong;
        }
      }
    });
  }
  for (auto& c : callers) c.join();
  EXPECT_EQ(wrong.load(), 0);
  const WorkerStats s = w.stats();
  EXPECT_EQ(s.sequences, 8u * 20 * 3);
  EXPECT_LT(s.batches, s.sequences / 2) << "requests were not batched together";
  for (const auto& [n, longest] : echo.batches) EXPECT_LE(n * longest, 64u);
}

TEST(BatchingWorkerTest, SimilarLengthsGoTogether) {
  Echo echo;
  WorkerOptions o;
  o.max_batch_tokens = 400;
  o.max_wait_us = 50000;
  BatchingWorker w([&](const auto& in) { return echo(in); }, o);
  // Interleaved short and long sequences arriving together.
  std::vector<nn::Encoding> in;
  for (int i = 0; i < 40; ++i) in.push_back(Seq(i % 2 ? 100 : 4, i));
  QUIVER_ASSERT_OK(w.Run(in).status());
  const WorkerStats s = w.stats();
  EXPECT_EQ(s.real_tokens, 20u * 100 + 20u * 4);
  // Without bucketing every batch would pad the short ones to 100.
  EXPECT_LT(s.padded_tokens, s.real_tokens * 13 / 10);
}

// Waits (up to 10 s, then fails the test) until `done()` holds.
template <typename Pred>
bool Eventually(Pred done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

// A model that blocks until released, and says when a batch entered it.
struct GatedModel {
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::atomic<int> entered{0};
  BatchingWorker::BatchFn Fn() {
    return [this](const std::vector<nn::Encoding>& in)
               -> absl::StatusOr<std::vector<std::vector<float>>> {
      ++entered;
      gate.wait();
      return std::vector<std::vector<float>>(in.size(), std::vector<float>{1});
    };
  }
};

WorkerOptions OneSequencePerBatch(size_t max_queue) {
  WorkerOptions o;
  o.max_queue = max_queue;
  o.max_wait_us = 0;
  o.max_batch_tokens = 1;
  return o;
}

TEST(BatchingWorkerTest, FullQueueIsResourceExhausted) {
  GatedModel model;
  BatchingWorker w(model.Fn(), OneSequencePerBatch(4));
  // The first call occupies the model; the next four fill the queue.
  std::vector<std::future<absl::Status>> pending;
  pending.push_back(std::async(std::launch::async, [&] { return w.Run({Seq(1, 0)}).status(); }));
  ASSERT_TRUE(Eventually([&] { return model.entered == 1; }));
  for (int i = 0; i < 4; ++i) {
    pending.push_back(std::async(std::launch::async, [&] { return w.Run({Seq(1, 0)}).status(); }));
  }
  ASSERT_TRUE(Eventually([&] { return w.queued() == 4; }));
  const absl::Status full = w.Run({Seq(1, 0)}).status();
  EXPECT_THAT(full, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(full.message(),
            "the model's queue is full (4 sequences waiting, limit 4); retry later");
  model.release.set_value();
  for (auto& p : pending) EXPECT_TRUE(p.get().ok());
}

TEST(BatchingWorkerTest, ShutdownFinishesTheBatchInTheModelAndFailsTheRest) {
  GatedModel model;
  // A queue of three, so the probe below is refused (full) rather than queued
  // until the shutdown begins.
  BatchingWorker w(model.Fn(), OneSequencePerBatch(3));
  auto in_model = std::async(std::launch::async, [&] { return w.Run({Seq(1, 0)}).status(); });
  ASSERT_TRUE(Eventually([&] { return model.entered == 1; }));
  std::vector<std::future<absl::Status>> queued;
  for (int i = 0; i < 3; ++i) {
    queued.push_back(std::async(std::launch::async, [&] { return w.Run({Seq(1, 0)}).status(); }));
  }
  ASSERT_TRUE(Eventually([&] { return w.queued() == 3; }));
  auto stopper = std::async(std::launch::async, [&] { w.Shutdown(); });
  // Shutting down: new calls are refused at once.
  ASSERT_TRUE(Eventually([&] { return absl::IsUnavailable(w.Run({Seq(1, 0)}).status()); }));
  model.release.set_value();
  stopper.get();
  EXPECT_TRUE(in_model.get().ok());
  for (auto& q : queued) {
    const absl::Status s = q.get();
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable));
    EXPECT_EQ(s.message(), "the model is shutting down");
  }
  EXPECT_EQ(model.entered, 1);  // The queued ones never reached the model.
  w.Shutdown();                 // Idempotent.
}

TEST(BatchingWorkerTest, AFailingModelFailsItsCallersNotTheWorker) {
  BatchingWorker failing(
      [](const auto&) -> absl::StatusOr<std::vector<std::vector<float>>> {
        return absl::InternalError("boom");
      },
      WorkerOptions{});
  EXPECT_THAT(failing.Run({Seq(2, 1)}).status(), StatusIs(absl::StatusCode::kInternal));
  EXPECT_THAT(failing.Run({Seq(2, 1)}).status(), StatusIs(absl::StatusCode::kInternal));
}

}  // namespace
}  // namespace quiver::embed
