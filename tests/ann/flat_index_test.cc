#include "ann/flat_index.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace quiver::ann {
namespace {

std::vector<std::vector<float>> RandomVectors(size_t n, size_t dim, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g;
  std::vector<std::vector<float>> out(n, std::vector<float>(dim));
  for (auto& v : out) {
    for (auto& x : v) x = g(rng);
  }
  return out;
}

// Float64 brute force: the best k as (negated score, label), best first.
std::vector<std::pair<double, uint64_t>> ReferenceScored(
    const std::vector<std::vector<float>>& base, const std::vector<float>& q, Metric m, size_t k,
    const std::function<bool(uint64_t)>& keep = nullptr) {
  std::vector<std::pair<double, uint64_t>> scored;
  double qn = 0;
  for (float x : q) qn += double(x) * x;
  for (size_t i = 0; i < base.size(); ++i) {
    if (keep && !keep(i)) continue;
    double dot = 0, l2 = 0, bn = 0;
    for (size_t d = 0; d < q.size(); ++d) {
      dot += double(q[d]) * base[i][d];
      l2 += (double(q[d]) - base[i][d]) * (double(q[d]) - base[i][d]);
      bn += double(base[i][d]) * base[i][d];
    }
    double s = m == Metric::kDot ? dot : m == Metric::kL2 ? -l2 : dot / std::sqrt(qn * bn);
    scored.push_back({-s, i});
  }
  std::sort(scored.begin(), scored.end());
  scored.resize(std::min(k, scored.size()));
  return scored;
}

std::vector<uint64_t> Reference(const std::vector<std::vector<float>>& base,
                                const std::vector<float>& q, Metric m, size_t k,
                                const std::function<bool(uint64_t)>& keep = nullptr) {
  std::vector<uint64_t> out;
  for (const auto& [neg, label] : ReferenceScored(base, q, m, k, keep)) out.push_back(label);
  return out;
}

std::vector<uint64_t> Labels(const std::vector<Hit>& hits) {
  std::vector<uint64_t> out;
  for (const Hit& h : hits) out.push_back(h.label);
  return out;
}

class FlatIndexMetricTest : public ::testing::TestWithParam<Metric> {};

TEST_P(FlatIndexMetricTest, TopKMatchesFloat64BruteForce) {
  const Metric m = GetParam();
  for (size_t dim : {1, 7, 16, 33, 128}) {
    auto base = RandomVectors(500, dim, 11 + dim);
    FlatIndex index(dim, m);
    for (size_t i = 0; i < base.size(); ++i) index.Upsert(i, base[i]);
    auto queries = RandomVectors(20, dim, 99);
    for (const auto& q : queries) {
      auto hits = index.Search(q, {.top_k = 10});
      ASSERT_EQ(hits.size(), 10u);
      EXPECT_TRUE(std::is_sorted(hits.begin(), hits.end(), HitBefore));
      auto want = ReferenceScored(base, q, m, 10);
      for (size_t i = 0; i < hits.size(); ++i) {
        EXPECT_NEAR(hits[i].score, -want[i].first, 1e-4 * (1 + std::fabs(want[i].first)))
            << "rank " << i << " dim " << dim << " metric " << MetricName(m);
      }
      // At dimension 1 cosine scores are all +-1 (ties everywhere), so only
      // the scores are comparable; elsewhere the order must match exactly.
      if (dim > 1) {
        EXPECT_EQ(Labels(hits), Reference(base, q, m, 10))
            << "dim " << dim << " metric " << MetricName(m);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllMetrics, FlatIndexMetricTest,
                         ::testing::Values(Metric::kCosine, Metric::kDot, Metric::kL2));

TEST(FlatIndexTest, FilterKeepsOnlyMatchingLabelsAndStillFillsTopK) {
  const size_t dim = 24;
  auto base = RandomVectors(2000, dim, 5);
  FlatIndex index(dim, Metric::kL2);
  for (size_t i = 0; i < base.size(); ++i) index.Upsert(i, base[i]);
  LabelFilter keep = [](uint64_t label) { return label % 100 == 3; };  // 1%.
  auto q = RandomVectors(1, dim, 6)[0];
  auto hits = index.Search(q, {.top_k = 10, .filter = &keep});
  ASSERT_EQ(hits.size(), 10u);
  EXPECT_EQ(Labels(hits), Reference(base, q, Metric::kL2, 10, keep));
}

TEST(FlatIndexTest, RemoveAndReplaceAreReflectedImmediately) {
  FlatIndex index(2, Metric::kDot);
  index.Upsert(1, std::vector<float>{1, 0});
  index.Upsert(2, std::vector<float>{0, 1});
  index.Upsert(3, std::vector<float>{0.5f, 0.5f});
  const std::vector<float> q = {1, 0};
  EXPECT_EQ(index.Search(q, {.top_k = 1})[0].label, 1u);
  EXPECT_TRUE(index.Remove(1));
  EXPECT_FALSE(index.Remove(1));
  EXPECT_EQ(index.size(), 2u);
  EXPECT_EQ(index.Search(q, {.top_k = 1})[0].label, 3u);
  index.Upsert(2, std::vector<float>{2, 0});  // Replace: no duplicate label.
  auto hits = index.Search(q, {.top_k = 5});
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0].label, 2u);
  EXPECT_FLOAT_EQ(hits[0].score, 2);
  float score;
  EXPECT_TRUE(index.Score(q, 3, &score));
  EXPECT_FLOAT_EQ(score, 0.5f);
  EXPECT_FALSE(index.Score(q, 1, &score));
}

TEST(FlatIndexTest, FewerRecordsThanTopKReturnsAll) {
  FlatIndex index(3, Metric::kCosine);
  EXPECT_TRUE(index.Search(std::vector<float>{1, 2, 3}, {.top_k = 10}).empty());
  index.Upsert(9, std::vector<float>{1, 2, 3});
  auto hits = index.Search(std::vector<float>{2, 4, 6}, {.top_k = 10});
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_NEAR(hits[0].score, 1.0f, 1e-6);
}

TEST(FlatIndexTest, ParallelSearchEqualsSerialSearch) {
  const size_t dim = 64;
  auto base = RandomVectors(20000, dim, 1);
  FlatIndex index(dim, Metric::kCosine);
  for (size_t i = 0; i < base.size(); ++i) index.Upsert(i, base[i]);
  ThreadPool pool(3);
  LabelFilter keep = [](uint64_t label) { return label % 3 != 0; };
  for (const auto& q : RandomVectors(10, dim, 2)) {
    auto serial = index.Search(q, {.top_k = 50, .filter = &keep});
    auto parallel = index.Search(q, {.top_k = 50, .filter = &keep, .pool = &pool});
    EXPECT_EQ(Labels(serial), Labels(parallel));
  }
}

// Real data: GloVe vectors with exact ground truth computed outside our code.
TEST(FlatIndexTest, ReproducesGloveGroundTruth) {
  const std::string dir = testing::FixturePath("glove50-ann-derived");
  if (dir.empty()) GTEST_SKIP() << "fixture glove50-ann-derived not found under $QUIVER_FIXTURES";
  auto base = testing::ReadFvecs(dir + "/base.fvecs");
  auto queries = testing::ReadFvecs(dir + "/query.fvecs");
  ASSERT_EQ(base.size(), 9900u);
  ASSERT_EQ(queries.size(), 100u);
  for (auto [metric, file] : {std::pair{Metric::kL2, "groundtruth.l2.top100.ivecs"},
                              std::pair{Metric::kCosine, "groundtruth.angular.top100.ivecs"}}) {
    auto truth = testing::ReadIvecs(dir + "/" + file);
    ASSERT_EQ(truth.size(), queries.size());
    FlatIndex index(50, metric);
    for (size_t i = 0; i < base.size(); ++i) index.Upsert(i, base[i]);
    size_t found = 0;
    for (size_t q = 0; q < queries.size(); ++q) {
      std::set<uint64_t> want(truth[q].begin(), truth[q].begin() + 10);
      for (const Hit& h : index.Search(queries[q], {.top_k = 10})) found += want.count(h.label);
    }
    // Exact search: only float32 near-ties (documented in SOURCE.txt) may
    // swap a 10th neighbour.
    EXPECT_GE(found, 998u) << MetricName(metric);
  }
}

}  // namespace
}  // namespace quiver::ann
