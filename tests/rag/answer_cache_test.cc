#include "rag/answer_cache.h"

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "rag/pipeline.h"
#include "storage/store.h"
#include "tests/testing/test_util.h"

namespace quiver::rag {
namespace {

CachedAnswer Answer(std::string question, std::string text) {
  CachedAnswer a;
  a.question = std::move(question);
  a.answer = std::move(text);
  a.prompt_tokens = 11;
  a.completion_tokens = 7;
  a.model = "m";
  Source s;
  s.number = 1;
  s.document_id = "doc";
  s.chunk = 2;
  s.record_id = "doc#2";
  s.text = "source text";
  s.heading = "A > B";
  s.score = 0.5f;
  s.rerank_score = 0.9f;
  s.start_byte = 10;
  s.end_byte = 21;
  s.metadata["document_id"] = std::string("doc");
  a.sources.push_back(s);
  return a;
}

std::unique_ptr<storage::Store> OpenStore(const std::string& path) {
  storage::StoreOptions o;
  o.path = path;
  auto store = storage::Store::Open(o);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

TEST(AnswerCacheTest, ExactAndSemanticLayersSurviveARestart) {
  testing::TempDir dir;
  {
    auto store = OpenStore(dir.path());
    auto cache = AnswerCache::Open({}, store.get());
    ASSERT_TRUE(cache.ok());
    (*cache)->Put(42, "scope", 7, {1, 0, 0}, Answer("q?", "the answer [1]"));
    ASSERT_TRUE((*cache)->GetExact(42).has_value());
    EXPECT_FALSE((*cache)->GetExact(43).has_value());
  }
  auto store = OpenStore(dir.path());
  AnswerCacheOptions opt;
  opt.semantic_threshold = 0.9f;
  auto cache = AnswerCache::Open(opt, store.get());
  ASSERT_TRUE(cache.ok());
  auto hit = (*cache)->GetExact(42);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->question, "q?");
  EXPECT_EQ(hit->answer, "the answer [1]");
  EXPECT_EQ(hit->prompt_tokens, 11u);
  ASSERT_EQ(hit->sources.size(), 1u);
  EXPECT_EQ(hit->sources[0].record_id, "doc#2");
  EXPECT_EQ(hit->sources[0].heading, "A > B");
  EXPECT_FLOAT_EQ(hit->sources[0].rerank_score, 0.9f);
  EXPECT_EQ(hit->sources[0].end_byte, 21u);
  // Semantic: similar enough, same scope and epoch only.
  const float c = 0.95f, s = 0.31224990f;  // cos = 0.95
  EXPECT_TRUE((*cache)->GetSemantic("scope", 7, {c, s, 0}).has_value());
  EXPECT_FALSE((*cache)->GetSemantic("scope", 8, {c, s, 0}).has_value()) << "another epoch";
  EXPECT_FALSE((*cache)->GetSemantic("other", 7, {c, s, 0}).has_value()) << "another scope";
  EXPECT_FALSE((*cache)->GetSemantic("scope", 7, {0.8f, 0.6f, 0}).has_value()) << "cos 0.8";
  EXPECT_EQ((*cache)->stats().entries, 1u);
}

TEST(AnswerCacheTest, LeastRecentlyUsedGoFirstAndEvictionsLeaveTheStore) {
  testing::TempDir dir;
  AnswerCacheOptions opt;
  opt.max_entries = 2;
  {
    auto store = OpenStore(dir.path());
    auto cache = AnswerCache::Open(opt, store.get());
    ASSERT_TRUE(cache.ok());
    (*cache)->Put(1, "s", 1, {}, Answer("a", "1"));
    (*cache)->Put(2, "s", 1, {}, Answer("b", "2"));
    ASSERT_TRUE((*cache)->GetExact(1).has_value());  // 2 is now the least recent.
    (*cache)->Put(3, "s", 1, {}, Answer("c", "3"));
    EXPECT_TRUE((*cache)->GetExact(1).has_value());
    EXPECT_FALSE((*cache)->GetExact(2).has_value());
    EXPECT_TRUE((*cache)->GetExact(3).has_value());
  }
  auto store = OpenStore(dir.path());
  auto cache = AnswerCache::Open(opt, store.get());
  ASSERT_TRUE(cache.ok());
  EXPECT_EQ((*cache)->stats().entries, 2u);
  EXPECT_FALSE((*cache)->GetExact(2).has_value());
}

TEST(AnswerCacheTest, ExpiredEntriesMissAndAZeroSizedCacheKeepsNothing) {
  AnswerCacheOptions opt;
  opt.ttl_seconds = 1;
  auto cache = AnswerCache::Open(opt, nullptr);
  ASSERT_TRUE(cache.ok());
  (*cache)->Put(1, "s", 1, {}, Answer("a", "1"));
  EXPECT_TRUE((*cache)->GetExact(1).has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_FALSE((*cache)->GetExact(1).has_value());

  opt.max_entries = 0;
  auto none = AnswerCache::Open(opt, nullptr);
  ASSERT_TRUE(none.ok());
  (*none)->Put(1, "s", 1, {}, Answer("a", "1"));
  EXPECT_FALSE((*none)->GetExact(1).has_value());
}

TEST(CitationsTest, FindsCitedNumbersAndUnknownOnes) {
  std::vector<uint32_t> cited, unknown;
  FindCitations("Seoul [2] is large [1, 3][2]. See [7] and [x] or [ ] and [12a] [0].", 3, &cited,
                &unknown);
  EXPECT_EQ(cited, (std::vector<uint32_t>{2, 1, 3}));
  EXPECT_EQ(unknown, (std::vector<uint32_t>{7, 0}));
  cited.clear();
  unknown.clear();
  FindCitations("no citations here [", 3, &cited, &unknown);
  EXPECT_TRUE(cited.empty());
  EXPECT_TRUE(unknown.empty());
}

}  // namespace
}  // namespace quiver::rag
