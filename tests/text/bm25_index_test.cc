#include "text/bm25_index.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "common/status_macros.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace quiver::text {
namespace {

using Terms = std::vector<std::string>;
using ::quiver::testing::StatusIs;

// Three documents, worked out by hand with k1 = 1.2, b = 0.75:
//   d1 = "a b", d2 = "a c c c", d3 = "b b"; N = 3, avg length = 8/3.
TEST(Bm25IndexTest, ScoresMatchAHandComputedExample) {
  Bm25Index index({.k1 = 1.2f, .b = 0.75f});
  index.Upsert(1, {"a", "b"});
  index.Upsert(2, {"a", "c", "c", "c"});
  index.Upsert(3, {"b", "b"});
  auto bm25 = [](double tf, double df, double len) {
    const double idf = std::log(1 + (3 - df + 0.5) / (df + 0.5));
    return idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * len / (8.0 / 3)));
  };
  auto hits = index.SearchExhaustive({"a", "c"}, 10);
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0].label, 2u);
  EXPECT_NEAR(hits[0].score, bm25(1, 2, 4) + bm25(3, 1, 4), 1e-5);
  EXPECT_EQ(hits[1].label, 1u);
  EXPECT_NEAR(hits[1].score, bm25(1, 2, 2), 1e-5);
  // A term repeated in the query counts twice.
  auto twice = index.SearchExhaustive({"b", "b"}, 1);
  EXPECT_NEAR(twice[0].score, 2 * bm25(2, 2, 2), 1e-5);
  EXPECT_TRUE(index.Search({"zzz"}, 5).empty());
}

TEST(Bm25IndexTest, StatisticsStayExactAcrossUpdatesAndDeletes) {
  Bm25Index index;
  index.Upsert(1, {"x", "y", "y"});
  index.Upsert(2, {"y", "z"});
  EXPECT_EQ(index.doc_count(), 2u);
  EXPECT_EQ(index.total_length(), 5u);
  EXPECT_EQ(index.doc_frequency("y"), 2u);
  index.Upsert(1, {"z"});  // Replace.
  EXPECT_EQ(index.doc_count(), 2u);
  EXPECT_EQ(index.total_length(), 3u);
  EXPECT_EQ(index.doc_frequency("y"), 1u);
  EXPECT_EQ(index.doc_frequency("x"), 0u);
  EXPECT_EQ(index.doc_frequency("z"), 2u);
  EXPECT_TRUE(index.Remove(2));
  EXPECT_FALSE(index.Remove(2));
  EXPECT_EQ(index.doc_count(), 1u);
  EXPECT_EQ(index.total_length(), 1u);
  EXPECT_EQ(index.term_count(), 1u);
  // Same scores as an index built from scratch with the final documents.
  Bm25Index fresh;
  fresh.Upsert(1, {"z"});
  EXPECT_EQ(index.Search({"z"}, 1)[0].score, fresh.Search({"z"}, 1)[0].score);
}

// MaxScore pruning must return exactly the exhaustive top k.
TEST(Bm25IndexTest, PrunedSearchEqualsExhaustiveSearch) {
  std::mt19937 rng(5);
  // Zipf-like vocabulary: frequent and rare terms.
  std::vector<std::string> vocab;
  for (int i = 0; i < 400; ++i) vocab.push_back("t" + std::to_string(i));
  std::vector<double> weights;
  for (int i = 0; i < 400; ++i) weights.push_back(1.0 / (i + 1));
  std::discrete_distribution<int> pick(weights.begin(), weights.end());
  Bm25Index index;
  for (uint64_t d = 0; d < 3000; ++d) {
    Terms doc;
    const int len = 5 + static_cast<int>(rng() % 60);
    for (int k = 0; k < len; ++k) doc.push_back(vocab[pick(rng)]);
    index.Upsert(d * 3, doc);  // Sparse, increasing labels.
  }
  for (uint64_t d = 0; d < 3000; d += 7) index.Remove(d * 3);
  // Re-adding removed documents revives their tombstoned postings; removing
  // most of a list compacts it.
  for (uint64_t d = 0; d < 3000; d += 14) index.Upsert(d * 3, {vocab[d % 50], vocab[1]});
  for (uint64_t d = 1; d < 3000; d += 3) index.Remove(d * 3);
  std::function<bool(uint64_t)> even = [](uint64_t doc) { return doc % 2 == 0; };
  for (int q = 0; q < 200; ++q) {
    Terms query;
    const int len = 1 + static_cast<int>(rng() % 6);
    for (int k = 0; k < len; ++k) query.push_back(vocab[pick(rng)]);
    for (size_t k : {1, 10, 100}) {
      const std::function<bool(uint64_t)>* filters[] = {nullptr, &even};
      for (const auto* filter : filters) {
        auto pruned = index.Search(query, k, filter);
        auto exact = index.SearchExhaustive(query, k, filter);
        ASSERT_EQ(pruned.size(), exact.size());
        for (size_t i = 0; i < exact.size(); ++i) {
          EXPECT_EQ(pruned[i].label, exact[i].label)
              << "query " << q << " k " << k << " rank " << i;
          EXPECT_FLOAT_EQ(pruned[i].score, exact[i].score);
        }
      }
    }
  }
}

// An in-memory key/value store standing in for RocksDB.
class MemoryKv : public KvSink {
 public:
  absl::Status Put(std::string_view key, std::string_view value) override {
    EXPECT_TRUE(kv_.emplace(std::string(key), std::string(value)).second) << "repeated key";
    return absl::OkStatus();
  }
  InvertedIndex::KvScan Scan() const {
    return [this](const InvertedIndex::KvVisitor& visit) {
      for (const auto& [k, v] : kv_) RETURN_IF_ERROR(visit(k, v));
      return absl::OkStatus();
    };
  }
  std::map<std::string, std::string>& pairs() { return kv_; }

 private:
  std::map<std::string, std::string> kv_;
};

TEST(Bm25IndexTest, SavedIndexLoadsWithTheSameStatisticsAndScores) {
  std::mt19937 rng(9);
  Bm25Index index({.k1 = 1.1f, .b = 0.6f});
  for (uint64_t d = 1; d <= 9000; ++d) {  // Lists longer than one block.
    Terms doc;
    for (int k = 0; k < 3 + static_cast<int>(rng() % 20); ++k) {
      doc.push_back("w" + std::to_string(rng() % (k == 0 ? 3 : 500)));
    }
    index.Upsert(d * 5, doc, /*fingerprint=*/d * 77);
  }
  for (uint64_t d = 1; d <= 9000; d += 4) index.Remove(d * 5);
  MemoryKv kv;
  QUIVER_ASSERT_OK(index.Save(kv));
  auto loaded = Bm25Index::Load({.k1 = 1.1f, .b = 0.6f}, kv.Scan());
  QUIVER_ASSERT_OK(loaded.status());
  EXPECT_EQ((*loaded)->doc_count(), index.doc_count());
  EXPECT_EQ((*loaded)->term_count(), index.term_count());
  EXPECT_EQ((*loaded)->total_length(), index.total_length());
  EXPECT_EQ((*loaded)->doc_frequency("w1"), index.doc_frequency("w1"));
  uint64_t fp = 0;
  ASSERT_TRUE((*loaded)->FindFingerprint(10, &fp));
  EXPECT_EQ(fp, 2u * 77);
  EXPECT_FALSE((*loaded)->FindFingerprint(5, &fp));  // Removed before the save.
  for (const Terms& q : {Terms{"w0", "w17"}, Terms{"w2", "w400", "w33", "w1"}}) {
    auto a = index.Search(q, 20);
    auto b = (*loaded)->Search(q, 20);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].label, b[i].label);
      EXPECT_EQ(a[i].score, b[i].score);
    }
  }
  // The loaded index keeps working incrementally.
  (*loaded)->Upsert(7, {"w17", "w17"});
  EXPECT_EQ((*loaded)->Search({"w17"}, 1)[0].label, 7u);
}

TEST(Bm25IndexTest, MemoryFollowsTheIndexThroughUpdatesDeletesAndLoads) {
  std::mt19937 rng(4);
  Bm25Index index(Bm25Params{});
  const size_t empty = index.MemoryBytes();
  auto doc = [&rng] {
    Terms d;
    for (int k = 0; k < 5 + static_cast<int>(rng() % 30); ++k) {
      d.push_back("term" + std::to_string(rng() % 700));
    }
    return d;
  };
  size_t last = empty;
  for (uint64_t d = 1; d <= 6000; ++d) {
    index.Upsert(d, doc(), d);
    if (d % 1000 == 0) {
      EXPECT_GT(index.MemoryBytes(), last);
      last = index.MemoryBytes();
    }
  }
  // At least a posting (label, weight, length) per distinct term per doc.
  EXPECT_GT(index.MemoryBytes(), 6000u * 5 * 16);
  // A loaded copy (no tombstones either) counts the same.
  MemoryKv kv;
  QUIVER_ASSERT_OK(index.Save(kv));
  auto loaded = Bm25Index::Load(Bm25Params{}, kv.Scan());
  QUIVER_ASSERT_OK(loaded.status());
  EXPECT_EQ((*loaded)->MemoryBytes(), index.MemoryBytes());
  // Re-indexing in place, deleting (tombstones, compactions, freed terms):
  // once every document is gone only the freed term slots are left.
  for (uint64_t d = 1; d <= 6000; d += 3) index.Upsert(d, doc(), d + 1);
  const size_t peak = index.MemoryBytes();
  std::vector<uint64_t> order(6000);
  for (uint64_t d = 0; d < 6000; ++d) order[d] = d + 1;
  std::shuffle(order.begin(), order.end(), rng);
  for (size_t i = 0; i < order.size(); ++i) {
    index.Remove(order[i]);
    if (i == 3000) {
      EXPECT_LT(index.MemoryBytes(), peak);
    }
  }
  EXPECT_EQ(index.doc_count(), 0u);
  EXPECT_LT(index.MemoryBytes(), 700u * 256) << "postings or documents still counted";
}

TEST(Bm25IndexTest, DamagedOrMissingSaveIsReported) {
  Bm25Index index;
  index.Upsert(1, {"a", "b"});
  index.Upsert(2, {"b"});
  MemoryKv empty;
  EXPECT_THAT(Bm25Index::Load({}, empty.Scan()).status(), StatusIs(absl::StatusCode::kNotFound));
  MemoryKv kv;
  QUIVER_ASSERT_OK(index.Save(kv));
  for (auto& [key, value] : kv.pairs()) {
    MemoryKv damaged;
    for (const auto& [k, v] : kv.pairs()) {
      std::string copy = v;
      if (k == key) copy.back() ^= 1;
      QUIVER_ASSERT_OK(damaged.Put(k, copy));
    }
    EXPECT_THAT(Bm25Index::Load({}, damaged.Scan()).status(), StatusIs(absl::StatusCode::kDataLoss))
        << "flipped a bit of key " << key.size() << " bytes long";
  }
  // A lost posting block.
  MemoryKv missing;
  for (const auto& [k, v] : kv.pairs()) {
    if (k[0] != 'T' || k.find('a') == std::string::npos) QUIVER_ASSERT_OK(missing.Put(k, v));
  }
  EXPECT_THAT(Bm25Index::Load({}, missing.Scan()).status(), StatusIs(absl::StatusCode::kDataLoss));
}

}  // namespace
}  // namespace quiver::text
