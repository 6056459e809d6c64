#include "text/sparse_index.h"

#include <map>
#include <random>

#include "common/status_macros.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace quiver::text {
namespace {

using Indices = std::vector<uint32_t>;
using Values = std::vector<float>;

TEST(SparseIndexTest, ScoresAreDotProducts) {
  SparseIndex index;
  index.Upsert(1, Indices{3, 10}, Values{0.5f, 2.0f});
  index.Upsert(2, Indices{10, 99}, Values{1.0f, 4.0f});
  index.Upsert(3, Indices{7}, Values{1.0f});
  auto hits = index.Search(Indices{10, 99, 3}, Values{1.0f, 0.5f, 2.0f}, 10);
  ASSERT_EQ(hits.size(), 2u);  // Document 3 shares no dimension.
  EXPECT_EQ(hits[0].label, 1u);
  EXPECT_FLOAT_EQ(hits[0].score, 2.0f * 1.0f + 0.5f * 2.0f);
  EXPECT_EQ(hits[1].label, 2u);
  EXPECT_FLOAT_EQ(hits[1].score, 1.0f + 4.0f * 0.5f);
  // Re-indexing replaces; an empty vector removes.
  index.Upsert(1, Indices{99}, Values{10.0f});
  EXPECT_EQ(index.Search(Indices{99}, Values{1.0f}, 1)[0].label, 1u);
  index.Upsert(1, Indices{}, Values{});
  EXPECT_EQ(index.doc_count(), 2u);
  EXPECT_EQ(index.Search(Indices{99}, Values{1.0f}, 5).size(), 1u);
  uint64_t fp;
  ASSERT_TRUE(index.FindFingerprint(2, &fp));
  EXPECT_EQ(fp, SparseIndex::Fingerprint(Indices{10, 99}, Values{1.0f, 4.0f}));
  EXPECT_NE(fp, SparseIndex::Fingerprint(Indices{10, 99}, Values{1.0f, 4.5f}));
}

// Negative values and negative query weights included: MaxScore bounds must
// still hold, so pruning returns the exhaustive top k.
TEST(SparseIndexTest, PrunedSearchEqualsExhaustiveSearch) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> value(-0.5f, 2.0f);
  std::vector<double> popularity;
  for (int i = 0; i < 2000; ++i) popularity.push_back(1.0 / (i + 1));
  std::discrete_distribution<uint32_t> dim(popularity.begin(), popularity.end());
  SparseIndex index;
  for (uint64_t d = 1; d <= 4000; ++d) {
    std::map<uint32_t, float> v;
    for (int k = 0; k < 5 + static_cast<int>(rng() % 40); ++k) v[dim(rng)] = value(rng);
    Indices idx;
    Values val;
    for (auto [i, x] : v) {
      idx.push_back(i);
      val.push_back(x);
    }
    index.Upsert(d, idx, val);
  }
  for (uint64_t d = 1; d <= 4000; d += 5) index.Remove(d);
  LabelFilter odd = [](uint64_t doc) { return doc % 2 == 1; };
  for (int q = 0; q < 150; ++q) {
    std::map<uint32_t, float> v;
    for (int k = 0; k < 1 + static_cast<int>(rng() % 12); ++k) v[dim(rng)] = value(rng);
    Indices idx;
    Values val;
    for (auto [i, x] : v) {
      idx.push_back(i);
      val.push_back(x);
    }
    for (size_t k : {1, 10, 50}) {
      const LabelFilter* filters[] = {nullptr, &odd};
      for (const LabelFilter* filter : filters) {
        auto pruned = index.Search(idx, val, k, filter);
        auto exact = index.SearchExhaustive(idx, val, k, filter);
        ASSERT_EQ(pruned.size(), exact.size());
        for (size_t i = 0; i < exact.size(); ++i) {
          EXPECT_EQ(pruned[i].label, exact[i].label) << "query " << q << " k " << k;
          EXPECT_EQ(pruned[i].score, exact[i].score);
        }
      }
    }
  }
}

TEST(SparseIndexTest, SavedIndexLoadsEqual) {
  class Kv : public KvSink {
   public:
    absl::Status Put(std::string_view k, std::string_view v) override {
      kv[std::string(k)] = std::string(v);
      return absl::OkStatus();
    }
    std::map<std::string, std::string> kv;
  } kv;
  SparseIndex index;
  index.Upsert(4, Indices{1, 70000}, Values{-1.25f, 3.5f});
  index.Upsert(9, Indices{70000}, Values{0.125f});
  QUIVER_ASSERT_OK(index.Save(kv));
  auto loaded = SparseIndex::Load([&](const InvertedIndex::KvVisitor& visit) {
    for (const auto& [k, v] : kv.kv) RETURN_IF_ERROR(visit(k, v));
    return absl::OkStatus();
  });
  QUIVER_ASSERT_OK(loaded.status());
  auto hits = (*loaded)->Search(Indices{1, 70000}, Values{1.0f, 1.0f}, 5);
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0].label, 4u);
  EXPECT_FLOAT_EQ(hits[0].score, 2.25f);
  EXPECT_FLOAT_EQ(hits[1].score, 0.125f);
}

}  // namespace
}  // namespace quiver::text
