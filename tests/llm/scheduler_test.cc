#include "llm/scheduler.h"

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>

#include "gtest/gtest.h"
#include "llm/cuda_engine.h"
#include "tests/llm/stories_fixture.h"
#include "tests/testing/test_util.h"

namespace quiver::llm {
namespace {

struct Result {
  std::vector<int> ids;
  std::string text;
  FinishReason reason = FinishReason::kNone;
  int prompt_tokens = 0, completion_tokens = 0;
  int cached_prompt_tokens = 0;
};

// Collects one generation's events; Wait() returns when it is done.
class Collector {
 public:
  std::function<void(const TokenEvent&)> Callback() {
    return [this](const TokenEvent& e) {
      std::lock_guard<std::mutex> l(mu_);
      if (e.token >= 0) r_.ids.push_back(e.token);
      r_.text += e.text;
      if (e.done) {
        r_.reason = e.reason;
        r_.prompt_tokens = e.prompt_tokens;
        r_.completion_tokens = e.completion_tokens;
        r_.cached_prompt_tokens = e.cached_prompt_tokens;
        done_ = true;
        cv_.notify_all();
      }
    };
  }
  Result Wait() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return done_; });
    return r_;
  }
  size_t tokens() {
    std::lock_guard<std::mutex> l(mu_);
    return r_.ids.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  Result r_;
  bool done_ = false;
};

class SchedulerTest : public StoriesModelTest {
 protected:
  Result RunOne(Scheduler& s, GenerateParams p) {
    Collector c;
    auto h = s.Submit(std::move(p), c.Callback());
    EXPECT_TRUE(h.ok()) << h.status();
    return c.Wait();
  }
};

// The same on each engine: "cpu", and "cuda" where a GPU is visible.
class SchedulerDeviceTest : public SchedulerTest,
                            public ::testing::WithParamInterface<const char*> {
 protected:
  void SetUp() override {
    SchedulerTest::SetUp();
    if (IsSkipped()) return;
    if (std::string(GetParam()) == "cuda" && !CudaDeviceVisible()) {
      GTEST_SKIP() << "no CUDA GPU visible to this process (or a build without CUDA)";
    }
  }
  std::unique_ptr<Scheduler> NewScheduler(SchedulerOptions o) {
    auto engine =
        NewDecodeEngine(model_.get(), GetParam(), KvCacheBlocks(model_->config(), o), o.block_size);
    EXPECT_TRUE(engine.ok()) << engine.status();
    if (!engine.ok()) return nullptr;
    EXPECT_EQ((*engine)->device(), GetParam());
    return std::make_unique<Scheduler>(*std::move(engine), tokenizer_.get(), o);
  }
};

INSTANTIATE_TEST_SUITE_P(Devices, SchedulerDeviceTest, ::testing::Values("cpu", "cuda"),
                         [](const auto& info) { return std::string(info.param); });

TEST_P(SchedulerDeviceTest, ReproducesLlama2cThroughTheBatchedPath) {
  std::unique_ptr<Scheduler> sp = NewScheduler(SchedulerOptions{});
  ASSERT_NE(sp, nullptr);
  Scheduler& s = *sp;
  GenerateParams greedy;
  greedy.max_tokens = 200;
  Result r = RunOne(s, greedy);
  EXPECT_EQ(r.ids, GeneratedIds(dir_ + "/expected_greedy_n200.ids"));
  EXPECT_EQ(r.reason, FinishReason::kLength);
  EXPECT_EQ(r.completion_tokens, 200);
  GenerateParams topp;
  topp.max_tokens = 256;
  topp.temperature = 1.0f;
  topp.top_p = 0.9f;
  topp.seed = 133742;
  EXPECT_EQ(RunOne(s, topp).ids, GeneratedIds(dir_ + "/expected_t1.0_p0.9_s133742_n256.ids"));
  GenerateParams zoo;
  zoo.prompt = "Zoo";
  zoo.max_tokens = 60 - 4 + 1;  // run.c's 60 steps less the prompt's forced ones.
  Result z = RunOne(s, zoo);
  std::vector<int> want = GeneratedIds(dir_ + "/expected_zoo_greedy_n60.ids");
  want.erase(want.begin(), want.begin() + 3);
  EXPECT_EQ(z.ids, want);
  EXPECT_EQ(z.prompt_tokens, 4);
  EXPECT_EQ(" was a little girl named Lily.", z.text.substr(0, 30));
}

TEST_P(SchedulerDeviceTest, BatchedGenerationsEqualSoloOnes) {
  std::vector<GenerateParams> reqs;
  // The last prompt is long enough (kLongPromptTokens) for the matrix
  // kernel: chunked differently alone and batched, its rows must still
  // give the same tokens.
  std::string long_prompt;
  while (static_cast<int>(tokenizer_->Encode(long_prompt, true, false).size()) <
         kLongPromptTokens + 20) {
    long_prompt +=
        "Once upon a time, there was a little girl named Lily. She liked to play outside. ";
  }
  const std::string prompts[] = {
      "", "Zoo", "Once upon a time", "The cat", "Tom and Sue went", "A big red", long_prompt};
  for (int i = 0; i < 7; ++i) {
    GenerateParams p;
    p.prompt = prompts[i];
    p.max_tokens = 40 + 13 * i;
    if (i % 2 == 1) {
      p.temperature = 0.8f;
      p.top_p = 0.9f;
      p.seed = 100 + i;
    }
    if (i == 4) {
      p.top_k = 5;
      p.repetition_penalty = 1.3f;
    }
    reqs.push_back(p);
  }
  std::vector<Result> solo;
  {
    std::unique_ptr<Scheduler> s = NewScheduler(SchedulerOptions{});
    ASSERT_NE(s, nullptr);
    for (const auto& p : reqs) solo.push_back(RunOne(*s, p));
  }
  // All at once, with a small row budget so prefill chunks interleave with
  // decoding.
  SchedulerOptions o;
  o.max_batch_tokens = 8;
  std::unique_ptr<Scheduler> sp = NewScheduler(o);
  ASSERT_NE(sp, nullptr);
  Scheduler& s = *sp;
  std::vector<std::unique_ptr<Collector>> cs;
  for (const auto& p : reqs) {
    cs.push_back(std::make_unique<Collector>());
    ASSERT_TRUE(s.Submit(p, cs.back()->Callback()).ok());
  }
  for (size_t i = 0; i < reqs.size(); ++i) {
    Result r = cs[i]->Wait();
    EXPECT_EQ(r.ids, solo[i].ids) << "request " << i;
    EXPECT_EQ(r.text, solo[i].text) << "request " << i;
  }
  EXPECT_GT(s.stats().max_active, 1u);
}

TEST_P(SchedulerDeviceTest, PrefixReuseGivesTheSameTokens) {
  // A long shared head (a system prompt, a template, the same sources), then
  // different tails.
  std::string head;
  for (int i = 0; i < 12; ++i) head += "Once upon a time there was a little girl named Lily. ";
  std::vector<GenerateParams> reqs;
  for (const char* tail : {"She", "She", "One day", "The dog"}) {
    GenerateParams p;
    p.prompt = head + tail;
    p.max_tokens = 40;
    reqs.push_back(p);
  }
  reqs.push_back(reqs[2]);
  reqs.back().temperature = 0.9f;
  reqs.back().top_p = 0.9f;
  reqs.back().seed = 77;
  reqs.push_back(reqs.back());

  SchedulerOptions off;
  off.prefix_cache = false;
  std::unique_ptr<Scheduler> plain = NewScheduler(off);
  ASSERT_NE(plain, nullptr);
  std::vector<Result> expected;
  for (const auto& p : reqs) expected.push_back(RunOne(*plain, p));
  EXPECT_EQ(plain->stats().cached_prompt_tokens, 0u);

  std::unique_ptr<Scheduler> sp = NewScheduler(SchedulerOptions{});
  ASSERT_NE(sp, nullptr);
  for (size_t i = 0; i < reqs.size(); ++i) {
    Result r = RunOne(*sp, reqs[i]);
    EXPECT_EQ(r.ids, expected[i].ids) << "request " << i;
    EXPECT_EQ(r.text, expected[i].text) << "request " << i;
    EXPECT_EQ(r.prompt_tokens, expected[i].prompt_tokens);
    if (i == 0) {
      EXPECT_EQ(r.cached_prompt_tokens, 0);
    } else {
      // Every full block of the shared head is reused (all but the last
      // position for the identical prompt).
      EXPECT_GE(r.cached_prompt_tokens, r.prompt_tokens - 40) << "request " << i;
      EXPECT_EQ(r.cached_prompt_tokens % 16, 0);
      EXPECT_LT(r.cached_prompt_tokens, r.prompt_tokens);
    }
  }
  EXPECT_GT(sp->stats().cached_prompt_tokens, 0u);

  // All at once: requests admitted together compute their own blocks or
  // take those published meanwhile; the tokens are the same.
  std::vector<std::unique_ptr<Collector>> cs;
  for (const auto& p : reqs) {
    cs.push_back(std::make_unique<Collector>());
    ASSERT_TRUE(sp->Submit(p, cs.back()->Callback()).ok());
  }
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(cs[i]->Wait().ids, expected[i].ids) << "concurrent request " << i;
  }
}

TEST_F(SchedulerTest, CachedPrefixBlocksAreEvictedWhenTheCacheIsFull) {
  // One context's worth of blocks: cached prefixes of earlier prompts must
  // give way to new requests, and answers stay those of a cache-less run.
  SchedulerOptions o;
  o.kv_cache_bytes = 1;
  Scheduler s(model_.get(), tokenizer_.get(), o);
  o.prefix_cache = false;
  Scheduler plain(model_.get(), tokenizer_.get(), o);
  for (int round = 0; round < 2; ++round) {
    for (int k = 0; k < 6; ++k) {
      const int i = round == 0 ? k : 5 - k;  // Back again: the freshest first.
      GenerateParams p;
      for (int k = 0; k < 8; ++k) p.prompt += "Tom had " + std::to_string(i) + " red balls. ";
      p.max_tokens = 120;
      Result want = RunOne(plain, p);
      Result got = RunOne(s, p);
      EXPECT_EQ(got.ids, want.ids) << "round " << round << " prompt " << i;
    }
  }
  EXPECT_GT(s.stats().cached_prompt_tokens, 0u);
}

TEST_F(SchedulerTest, RequestsWaitForKvCacheRoom) {
  // Room for one full context (32 blocks of 16): eight requests reserving
  // 10 blocks each run at most three at a time, and all finish.
  SchedulerOptions o;
  o.kv_cache_bytes = 1;  // Clamped up to one full context.
  Scheduler s(model_.get(), tokenizer_.get(), o);
  std::vector<std::unique_ptr<Collector>> cs;
  GenerateParams p;
  p.max_tokens = 150;
  p.temperature = 0.5f;
  for (int i = 0; i < 8; ++i) {
    p.seed = i + 1;
    cs.push_back(std::make_unique<Collector>());
    ASSERT_TRUE(s.Submit(p, cs.back()->Callback()).ok());
  }
  for (auto& c : cs) {
    Result r = c->Wait();
    EXPECT_TRUE(r.reason == FinishReason::kLength || r.reason == FinishReason::kStop);
  }
  EXPECT_LE(s.stats().max_active, 3u);
  EXPECT_GE(s.stats().max_active, 2u);
}

TEST_F(SchedulerTest, StreamHandsOutTheSameEventsAsTheCallback) {
  Scheduler s(model_.get(), tokenizer_.get(), SchedulerOptions{});
  GenerateParams p;
  p.max_tokens = 40;
  const Result expected = RunOne(s, p);
  auto stream = s.Stream(p);
  ASSERT_TRUE(stream.ok()) << stream.status();
  Result got;
  for (TokenEvent e = (*stream)->Next();; e = (*stream)->Next()) {
    if (e.token >= 0) got.ids.push_back(e.token);
    got.text += e.text;
    if (e.done) {
      got.reason = e.reason;
      break;
    }
  }
  EXPECT_EQ(got.ids, expected.ids);
  EXPECT_EQ(got.text, expected.text);
  EXPECT_EQ(got.reason, expected.reason);
}

TEST_F(SchedulerTest, AClientThatWentAwayCancelsItsGeneration) {
  // One sequence at a time, so the second request waits in the queue.
  SchedulerOptions o;
  o.max_seqs = 1;
  Scheduler s(model_.get(), tokenizer_.get(), o);
  GenerateParams longer;
  longer.max_tokens = 500;
  std::atomic<bool> first_gone{false}, second_gone{false};
  auto first = s.Stream(longer, [&] { return first_gone.load(); });
  auto second = s.Stream(longer, [&] { return second_gone.load(); });
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_FALSE((*first)->Next().done);
  // Gone while queued: ends without ever running.
  second_gone = true;
  TokenEvent e = (*second)->Next();
  EXPECT_TRUE(e.done);
  EXPECT_EQ(e.reason, FinishReason::kCancelled);
  EXPECT_EQ(e.completion_tokens, 0);
  // ... at once, not when the running one finishes and frees its place.
  EXPECT_FALSE((*first)->Next().done);
  // Gone while running: ends before its budget.
  first_gone = true;
  int tokens = 2;
  for (e = (*first)->Next(); !e.done; e = (*first)->Next()) ++tokens;
  EXPECT_EQ(e.reason, FinishReason::kCancelled);
  EXPECT_LT(tokens, 500);
  // A stream dropped unread cancels its generation, and the scheduler goes on.
  { auto dropped = s.Stream(longer); }
  GenerateParams few;
  few.max_tokens = 5;
  EXPECT_EQ(RunOne(s, few).ids.size(), 5u);
}

TEST_F(SchedulerTest, StopSequencesCancellationAndLimits) {
  Scheduler s(model_.get(), tokenizer_.get(), SchedulerOptions{});
  GenerateParams p;
  p.max_tokens = 200;
  p.stop = {"Lily"};
  Result r = RunOne(s, p);
  EXPECT_EQ(r.reason, FinishReason::kStop);
  EXPECT_EQ(r.text.find("Lily"), std::string::npos);
  GenerateParams full;
  full.max_tokens = 200;
  const std::string all = RunOne(s, full).text;
  EXPECT_EQ(all.substr(0, r.text.size()), r.text);
  EXPECT_EQ(all.substr(r.text.size(), 4), "Lily");
  // Cancel mid-way.
  Collector c;
  GenerateParams longer;
  longer.max_tokens = 500;
  auto h = s.Submit(longer, c.Callback());
  ASSERT_TRUE(h.ok());
  while (c.tokens() < 3) std::this_thread::yield();
  (*h)->Cancel();
  Result cancelled = c.Wait();
  EXPECT_EQ(cancelled.reason, FinishReason::kCancelled);
  EXPECT_LT(cancelled.ids.size(), 500u);
  // max_tokens, and the context, end generation with kLength.
  GenerateParams few;
  few.max_tokens = 5;
  Result five = RunOne(s, few);
  EXPECT_EQ(five.reason, FinishReason::kLength);
  EXPECT_EQ(five.ids.size(), 5u);
  GenerateParams huge;
  for (int i = 0; i < 120; ++i) huge.prompt += "Once upon a time ";
  huge.max_tokens = 100000;
  Result capped = RunOne(s, huge);
  EXPECT_GT(capped.prompt_tokens, 400);
  EXPECT_LE(capped.prompt_tokens + capped.completion_tokens, 512 + 1);
  if (capped.reason == FinishReason::kLength) {
    EXPECT_EQ(capped.prompt_tokens + capped.completion_tokens, 512 + 1);
  } else {
    EXPECT_EQ(capped.reason, FinishReason::kStop);  // BOS or EOS came first.
  }
  // Bad requests.
  GenerateParams bad;
  bad.temperature = -1;
  EXPECT_EQ(s.Submit(bad, [](const TokenEvent&) {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  bad = GenerateParams();
  bad.prompt = std::string(3000, 'x');
  EXPECT_EQ(s.Submit(bad, [](const TokenEvent&) {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  for (float top_p : {-0.1f, 1.5f, std::nanf("")}) {
    bad = GenerateParams();
    bad.top_p = top_p;
    EXPECT_EQ(s.Submit(bad, [](const TokenEvent&) {}).status().code(),
              absl::StatusCode::kInvalidArgument)
        << top_p;
  }
}

}  // namespace
}  // namespace quiver::llm
