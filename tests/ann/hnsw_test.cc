#include "ann/hnsw.h"

#include <algorithm>
#include <atomic>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "ann/flat_index.h"
#include "common/strings.h"
#include "common/thread_pool.h"
#include "gtest/gtest.h"
#include "tests/ann/ann_test_util.h"
#include "tests/testing/test_util.h"

namespace quiver::ann {
namespace {

using ::quiver::testing::StatusIs;

HnswOptions Options(size_t dim, Metric metric, uint32_t m = 16, uint32_t efc = 100) {
  HnswOptions o;
  o.dimension = dim;
  o.metric = metric;
  o.m = m;
  o.ef_construction = efc;
  o.ef_search = 64;
  return o;
}

TEST(HnswTest, OptionsAreValidated) {
  EXPECT_TRUE(Options(8, Metric::kL2).Validate().ok());
  EXPECT_FALSE(Options(0, Metric::kL2).Validate().ok());
  EXPECT_FALSE(Options(8, Metric::kL2, 1).Validate().ok());
  EXPECT_FALSE(Options(8, Metric::kL2, 16, 0).Validate().ok());
}

TEST(HnswTest, EmptyAndSingleNode) {
  HnswIndex index(Options(3, Metric::kL2));
  EXPECT_TRUE(index.Search(std::vector<float>{1, 2, 3}, {.top_k = 5}).empty());
  index.Upsert(7, std::vector<float>{1, 2, 3});
  auto hits = index.Search(std::vector<float>{1, 2, 4}, {.top_k = 5});
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].label, 7u);
  EXPECT_FLOAT_EQ(hits[0].score, -1.0f);
}

// Exact scans (used while a rebuilt graph catches up) run while inserts
// allocate new node segments: an id handed out before its segment exists
// must read as not ready, never as a crash.
TEST(HnswTest, ExactScansDuringInsertsThatAllocateSegments) {
  for (int round = 0; round < 5; ++round) {
    HnswIndex index(Options(32, Metric::kL2));
    std::atomic<bool> done{false};
    std::thread writer([&] {
      std::vector<float> v(32);
      for (uint64_t i = 0; i < 3000; ++i) {  // Crosses segment starts at 64, 192, 448, ...
        for (size_t d = 0; d < v.size(); ++d) v[d] = static_cast<float>((i * 31 + d) % 97);
        index.Upsert(i, v);
      }
      done.store(true);
    });
    const std::vector<float> q(32, 1.0f);
    size_t scans = 0;
    while (!done.load()) {
      auto hits = index.SearchExact(q, {.top_k = 3});
      EXPECT_LE(hits.size(), 3u);
      ++scans;
    }
    writer.join();
    EXPECT_GT(scans, 0u);
    EXPECT_EQ(index.SearchExact(q, {.top_k = 3}).size(), 3u);
  }
}

class HnswRecallTest : public ::testing::TestWithParam<Metric> {};

TEST_P(HnswRecallTest, RecallAgainstTheFlatOracleOnClusteredData) {
  const size_t dim = 32, n = 6000;
  auto base = Clustered(n, dim, 1);
  HnswIndex index(Options(dim, GetParam()));
  FlatIndex flat(dim, GetParam());
  for (size_t i = 0; i < n; ++i) {
    index.Upsert(i, base[i]);
    flat.Upsert(i, base[i]);
  }
  auto queries = Clustered(100, dim, 2);
  EXPECT_GE(Recall(index, flat, queries, 10, 64), 0.95) << MetricName(GetParam());
  EXPECT_GE(Recall(index, flat, queries, 10, 256), 0.99) << MetricName(GetParam());
  // Exact search over the graph's own vectors is the oracle itself.
  EXPECT_EQ(Recall(flat, index, queries, 10, 0), 1.0);
}

INSTANTIATE_TEST_SUITE_P(AllMetrics, HnswRecallTest,
                         ::testing::Values(Metric::kCosine, Metric::kDot, Metric::kL2));

TEST(HnswTest, GloveFixtureReaches099Recall) {
  const std::string dir = testing::FixturePath("glove50-ann-derived");
  if (dir.empty()) GTEST_SKIP() << "fixture glove50-ann-derived not found under $QUIVER_FIXTURES";
  auto base = testing::ReadFvecs(dir + "/base.fvecs");
  auto queries = testing::ReadFvecs(dir + "/query.fvecs");
  for (auto [metric, file] : {std::pair{Metric::kCosine, "groundtruth.angular.top100.ivecs"},
                              std::pair{Metric::kL2, "groundtruth.l2.top100.ivecs"}}) {
    auto truth = testing::ReadIvecs(dir + "/" + file);
    HnswIndex index(Options(50, metric, 16, 200));
    ThreadPool pool(2);
    Fill(&index, base, &pool);
    for (auto [ef, floor] : {std::pair{size_t{64}, 0.90}, std::pair{size_t{400}, 0.99}}) {
      size_t found = 0;
      for (size_t q = 0; q < queries.size(); ++q) {
        std::set<uint64_t> want(truth[q].begin(), truth[q].begin() + 10);
        for (const Hit& h : index.Search(queries[q], {.top_k = 10, .ef = ef})) {
          found += want.count(h.label);
        }
      }
      EXPECT_GE(found / 1000.0, floor) << MetricName(metric) << " ef=" << ef;
    }
  }
}

class HnswFilterTest : public ::testing::TestWithParam<int> {};

// The filter is applied while walking the graph, so even a filter that keeps
// a small fraction of records fills top_k with correct matches.
TEST_P(HnswFilterTest, FilteredSearchFindsTheFilteredNeighbours) {
  const int keep_per_mille = GetParam();
  const size_t dim = 24, n = 8000;
  auto base = Clustered(n, dim, 3);
  HnswIndex index(Options(dim, Metric::kL2));
  FlatIndex flat(dim, Metric::kL2);
  for (size_t i = 0; i < n; ++i) {
    index.Upsert(i, base[i]);
    flat.Upsert(i, base[i]);
  }
  LabelFilter keep = [&](uint64_t label) {
    return static_cast<int>((label * 7919) % 1000) < keep_per_mille;
  };
  auto queries = Clustered(50, dim, 4);
  for (const auto& q : queries) {
    auto hits = index.Search(q, {.top_k = 10, .ef = 64, .filter = &keep});
    EXPECT_EQ(hits.size(), 10u);
    for (const Hit& h : hits) EXPECT_TRUE(keep(h.label));
  }
  EXPECT_GE(Recall(index, flat, queries, 10, 64, &keep), 0.90) << keep_per_mille << "/1000";
}

INSTANTIATE_TEST_SUITE_P(Selectivity, HnswFilterTest, ::testing::Values(500, 50, 5));

TEST(HnswTest, DeletedAndReplacedVectorsAreNeverReturned) {
  const size_t dim = 16, n = 3000;
  auto base = Clustered(n, dim, 5);
  HnswIndex index(Options(dim, Metric::kDot));
  for (size_t i = 0; i < n; ++i) index.Upsert(i, base[i]);
  for (size_t i = 0; i < n; i += 2) ASSERT_TRUE(index.Remove(i));
  EXPECT_FALSE(index.Remove(0));
  // Re-upsert some odd labels with new vectors.
  auto fresh = Clustered(200, dim, 99);
  auto far = [&](size_t label) { return fresh[label]; };
  for (size_t i = 1; i < 200; i += 2) index.Upsert(i, far(i));
  EXPECT_EQ(index.size(), n / 2);
  EXPECT_EQ(index.deleted_count(), n / 2 + 100);
  for (const auto& q : Clustered(50, dim, 6)) {
    for (const Hit& h : index.Search(q, {.top_k = 20, .ef = 100})) {
      EXPECT_EQ(h.label % 2, 1u) << "deleted label returned";
      if (h.label < 200) {
        // The only vector left for a re-upserted label is the new one.
        float dot = 0;
        for (size_t d = 0; d < dim; ++d) dot += far(h.label)[d] * q[d];
        EXPECT_NEAR(h.score, dot, 1e-2 * std::fabs(dot) + 1e-3);
      }
    }
  }
  // Compaction drops deleted nodes and keeps answering the same.
  ThreadPool pool(2);
  // More than half the nodes are deleted: the index asks for compaction.
  EXPECT_TRUE(index.NeedsCompaction());
  HnswIndex small(Options(dim, Metric::kDot));  // Under kCompactMinNodes: never.
  for (size_t i = 0; i < 10; ++i) small.Upsert(i, base[i]);
  for (size_t i = 0; i < 9; ++i) small.Remove(i);
  EXPECT_FALSE(small.NeedsCompaction());
  auto compacted = index.Compact(&pool);
  EXPECT_EQ(compacted->stored_count(), n / 2);
  EXPECT_EQ(compacted->size(), n / 2);
  EXPECT_FALSE(compacted->NeedsCompaction());
  FlatIndex flat(dim, Metric::kDot);
  for (size_t i = 1; i < n; i += 2) flat.Upsert(i, i < 200 ? far(i) : base[i]);
  EXPECT_GE(Recall(*compacted, flat, Clustered(50, dim, 7), 10, 100), 0.95);
}

TEST(HnswTest, ConcurrentInsertsAndSearches) {
  const size_t dim = 16, n = 8000;
  auto base = Clustered(n, dim, 8);
  HnswIndex index(Options(dim, Metric::kL2, 12, 64));
  std::atomic<size_t> next{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int w = 0; w < 3; ++w) {
    threads.emplace_back([&] {
      for (size_t i; (i = next.fetch_add(1)) < n;) index.Upsert(i, base[i]);
    });
  }
  std::atomic<size_t> searches{0};
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      std::mt19937 rng(r);
      while (!done.load()) {
        const auto& q = base[rng() % n];
        for (const Hit& h : index.Search(q, {.top_k = 5, .ef = 32})) {
          ASSERT_LT(h.label, n);
        }
        searches.fetch_add(1);
      }
    });
  }
  for (int w = 0; w < 3; ++w) threads[w].join();
  done = true;
  for (size_t t = 3; t < threads.size(); ++t) threads[t].join();
  EXPECT_GT(searches.load(), 0u);
  EXPECT_EQ(index.size(), n);
  FlatIndex flat(dim, Metric::kL2);
  for (size_t i = 0; i < n; ++i) flat.Upsert(i, base[i]);
  // Concurrent inserts make a graph that depends on the threads'
  // interleaving, so recall varies run to run: a fresh-clone CI run once
  // measured 0.922 against the former 0.93 bound, which 40 reruns here all
  // met. Sequential builds are held to 0.95+ by the recall tests above.
  EXPECT_GE(Recall(index, flat, Clustered(50, dim, 9), 10, 64), 0.90);
}

// Node Z has linked its upper level (so searches reach it there) and is
// about to write its level-0 links when X, almost at Z's position, is
// inserted: X's search descends to Z, finds nothing else at level 0 (Z's
// list is still empty), and links only to Z, which links back. Z's own
// level-0 links must keep that back-link: overwriting it left X with no
// way in, so a search for X's own vector found Z instead (seen as a few
// unreachable records per 10,000 after multi-threaded bulk inserts).
TEST(HnswTest, BatchUpsertLeavesEveryNodeReachable) {
  HnswIndex index(Options(2, Metric::kL2));
  const uint64_t kX = 1000000;
  std::vector<float> x;
  bool inserted = false;
  uint64_t upper = kX;  // The label last seen linking above level 0.
  index.SetLinkHookForTest([&](uint64_t label, int level) {
    if (level > 0) upper = label;
    if (level != 0 || label != upper || label == kX || inserted) return;
    inserted = true;
    // Z = `label` (the i-th node sits at (i, 0)), X just beside it.
    x = {static_cast<float>(label) + 0.01f, 0.0f};
    std::thread([&] { index.Upsert(kX, x); }).join();
  });
  for (uint64_t i = 0; i < 200 && !inserted; ++i) {
    index.Upsert(i, std::vector<float>{static_cast<float>(i), 0.0f});
  }
  ASSERT_TRUE(inserted) << "no node above level 0 among the first 200";
  ASSERT_FALSE(x.empty());
  const auto hits = index.Search(x, {.top_k = 1, .ef = 100});
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].label, kX);
}

// Found from outside: with one dominant dimension, dot products let the
// selection heuristic prune every way into most nodes (35 of 250 found by a
// search as wide as the graph), and random data lost a few too. Every live
// node must be reachable, for every metric, so top_k = n with ef >= n
// returns all n.
struct ReachCase {
  const char* name;
  size_t n, dim;
  bool dominant;  // First dimension 1..1000, the rest N(0, 1).
};
void PrintTo(const ReachCase& c, std::ostream* os) { *os << c.name; }

class HnswReachabilityTest
    : public ::testing::TestWithParam<std::tuple<ReachCase, Metric, bool, Quantization>> {};

TEST_P(HnswReachabilityTest, TopKOfEveryNodeReturnsEveryNode) {
  const auto& [c, metric, parallel, quantization] = GetParam();
  std::mt19937 rng(42);
  std::normal_distribution<float> g;
  std::uniform_real_distribution<float> big(1, 1000);
  std::vector<uint64_t> labels(c.n);
  std::vector<float> flat(c.n * c.dim);
  for (size_t i = 0; i < c.n; ++i) {
    labels[i] = i;
    for (size_t d = 0; d < c.dim; ++d) {
      flat[i * c.dim + d] = c.dominant && d == 0 ? big(rng) : g(rng);
    }
  }
  HnswOptions options = Options(c.dim, metric, 16, 200);
  options.quantization = quantization;
  HnswIndex index(options);
  ThreadPool pool(4);
  // In batches, as the engine inserts.
  for (size_t start = 0; start < c.n; start += 100) {
    const size_t end = std::min(c.n, start + 100);
    index.UpsertBatch(std::span<const uint64_t>(labels.data() + start, end - start),
                      flat.data() + start * c.dim, parallel ? &pool : nullptr);
  }
  EXPECT_TRUE(index.AllLiveReachable());
  for (int q = 0; q < 5; ++q) {
    std::vector<float> query(c.dim);
    for (float& x : query) x = g(rng);
    if (c.dominant) query[0] = big(rng);
    const auto hits = index.Search(query, {.top_k = c.n, .ef = c.n});
    EXPECT_EQ(hits.size(), c.n) << "query " << q;
  }
  // Deleting a third keeps the rest reachable; a save and load too.
  for (size_t i = 0; i < c.n; i += 3) index.Remove(i);
  index.RepairReachability();
  EXPECT_TRUE(index.AllLiveReachable());
  const size_t live = index.size();
  std::stringstream buf;
  QUIVER_ASSERT_OK(index.Save(buf));
  auto loaded = HnswIndex::Load(buf);
  QUIVER_ASSERT_OK(loaded.status());
  EXPECT_TRUE((*loaded)->AllLiveReachable());
  std::vector<float> query(c.dim, 1.0f);
  EXPECT_EQ((*loaded)->Search(query, {.top_k = live, .ef = live}).size(), live);
}

INSTANTIATE_TEST_SUITE_P(
    AdversarialAndRandom, HnswReachabilityTest,
    ::testing::Combine(::testing::Values(ReachCase{"dominant250x4", 250, 4, true},
                                         ReachCase{"gaussian2000x8", 2000, 8, false},
                                         ReachCase{"dominant3000x8", 3000, 8, true}),
                       ::testing::Values(Metric::kL2, Metric::kCosine, Metric::kDot),
                       ::testing::Bool(),
                       ::testing::Values(Quantization::kNone, Quantization::kSq8,
                                         Quantization::kBinary)),
    [](const auto& info) {
      return StrCat(std::get<0>(info.param).name, "_", MetricName(std::get<1>(info.param)),
                    std::get<2>(info.param) ? "_parallel" : "_serial", "_",
                    QuantizationName(std::get<3>(info.param)));
    });

TEST(HnswTest, SaveAndLoadRoundTripExactly) {
  const size_t dim = 20, n = 2500;
  auto base = Clustered(n, dim, 10);
  HnswIndex index(Options(dim, Metric::kCosine));
  for (size_t i = 0; i < n; ++i) index.Upsert(1000 + i, base[i]);
  for (size_t i = 0; i < n; i += 10) index.Remove(1000 + i);
  std::stringstream buf;
  QUIVER_ASSERT_OK(index.Save(buf));
  const std::string bytes = buf.str();
  std::istringstream in(bytes);
  auto loaded = HnswIndex::Load(in);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->size(), index.size());
  EXPECT_EQ((*loaded)->node_count(), index.node_count());
  EXPECT_EQ((*loaded)->options().m, 16u);
  for (const auto& q : Clustered(20, dim, 11)) {
    auto a = index.Search(q, {.top_k = 10});
    auto b = (*loaded)->Search(q, {.top_k = 10});
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].label, b[i].label);
      EXPECT_EQ(a[i].score, b[i].score);
    }
  }
  // The loaded graph keeps growing like the original.
  (*loaded)->Upsert(1, base[0]);
  EXPECT_TRUE((*loaded)->Contains(1));

  // Any flipped byte or missing tail is detected, never a crash.
  for (size_t pos : {size_t{3}, size_t{40}, size_t{100}, bytes.size() / 2, bytes.size() - 1}) {
    std::string damaged = bytes;
    damaged[pos] ^= 0x5a;
    std::istringstream din(damaged);
    EXPECT_THAT(HnswIndex::Load(din), StatusIs(absl::StatusCode::kDataLoss)) << "byte " << pos;
  }
  std::istringstream tin(bytes.substr(0, bytes.size() - 7));
  EXPECT_THAT(HnswIndex::Load(tin), StatusIs(absl::StatusCode::kDataLoss));
  std::string future = bytes;
  future[8] = 9;  // Version field; the header checksum catches it first.
  std::istringstream fin(future);
  EXPECT_FALSE(HnswIndex::Load(fin).ok());
}

TEST(HnswTest, BulkBuildMatchesSerialQuality) {
  const size_t dim = 32, n = 6000;
  auto base = Clustered(n, dim, 12);
  ThreadPool pool(3);
  HnswIndex index(Options(dim, Metric::kL2));
  Fill(&index, base, &pool);
  EXPECT_EQ(index.size(), n);
  FlatIndex flat(dim, Metric::kL2);
  for (size_t i = 0; i < n; ++i) flat.Upsert(i, base[i]);
  EXPECT_GE(Recall(index, flat, Clustered(100, dim, 13), 10, 64), 0.95);
}

}  // namespace
}  // namespace quiver::ann
