// Binary quantization: the Hamming kernels against the reference, the bit
// codes, and binary HNSW graphs (recall with rescoring at oversampling 2, 4
// and 8, exact rescored scores, checkpoints, full vectors on disk).
#include <bit>
#include <filesystem>
#include <map>
#include <random>
#include <sstream>

#include "ann/distance.h"
#include "ann/flat_index.h"
#include "ann/hnsw.h"
#include "ann/sq8.h"
#include "common/strings.h"
#include "common/thread_pool.h"
#include "gtest/gtest.h"
#include "tests/ann/ann_test_util.h"
#include "tests/testing/test_util.h"

namespace quiver::ann {
namespace {

TEST(BinaryKernelTest, EveryKernelCountsTheDifferingBits) {
  std::mt19937_64 rng(11);
  std::vector<uint64_t> a(40), b(40);
  for (auto& x : a) x = rng();
  for (auto& x : b) x = rng();
  b[3] = a[3];        // Equal words,
  b[4] = ~a[4];       // opposite words,
  a[5] = b[5] = ~0u;  // and both full.
  for (const DistanceKernels* k : SupportedKernels()) {
    for (size_t words = 0; words <= 33; ++words) {
      for (size_t off : {0, 1, 3}) {
        uint32_t want = 0;
        for (size_t i = 0; i < words; ++i) want += std::popcount(a[off + i] ^ b[off + i]);
        ASSERT_EQ(k->hamming(a.data() + off, b.data() + off, words), want)
            << k->name << " words=" << words << " off=" << off;
      }
    }
  }
}

TEST(BinaryCodeTest, OneBitPerDimensionSetAboveItsThreshold) {
  std::vector<float> x(130), threshold(130);
  for (size_t d = 0; d < x.size(); ++d) {
    threshold[d] = 0.25f * static_cast<float>(d % 5) - 0.5f;
    x[d] = threshold[d] + (d % 3 == 0 ? 0.125f : (d % 3 == 1 ? -0.125f : 0.0f));
  }
  std::vector<uint64_t> words(3, ~uint64_t{0});
  EncodeBinary(x.data(), threshold.data(), x.size(), words.data());
  for (size_t d = 0; d < 192; ++d) {
    const bool bit = (words[d / 64] >> (d % 64)) & 1;
    EXPECT_EQ(bit, d < x.size() && d % 3 == 0) << "dimension " << d;  // Bits past dim: 0.
  }
}

HnswOptions BinaryOptions(size_t dim, Metric metric, float oversampling) {
  HnswOptions o;
  o.dimension = dim;
  o.metric = metric;
  o.quantization = Quantization::kBinary;
  o.oversampling = oversampling;
  return o;
}

// Embedding-like data: clusters close to the origin relative to their spread,
// so signs carry information within a cluster (what sign bits need).
std::vector<std::vector<float>> EmbeddingLike(size_t n, size_t dim, uint32_t seed) {
  return Clustered(n, dim, seed, 40, 0.7f);
}

class BinaryRecallTest : public ::testing::TestWithParam<Metric> {};

TEST_P(BinaryRecallTest, RecallGrowsWithOversamplingAndScoresAreExact) {
  const Metric metric = GetParam();
  const size_t dim = 256, n = 3000;
  const auto base = EmbeddingLike(n, dim, 1);
  const auto queries = EmbeddingLike(100, dim, 2);
  ThreadPool pool(2);
  FlatIndex exact(dim, metric);
  for (size_t i = 0; i < n; ++i) exact.Upsert(i, base[i]);
  std::map<float, double> recall;
  for (float oversampling : {2.0f, 4.0f, 8.0f}) {
    HnswIndex index(BinaryOptions(dim, metric, oversampling));
    Fill(&index, base, &pool);
    EXPECT_TRUE(index.AllLiveReachable());
    recall[oversampling] = Recall(index, exact, queries, 10, 64);
    if (oversampling == 8.0f) {
      // Rescored scores are the full vectors' scores, to the last bit.
      for (size_t q = 0; q < 20; ++q) {
        const auto hits = index.Search(queries[q], {.top_k = 5});
        std::map<uint64_t, float> score;
        for (const Hit& h : index.SearchExact(queries[q], {.top_k = n})) score[h.label] = h.score;
        for (const Hit& h : hits) EXPECT_EQ(h.score, score.at(h.label));
      }
      // Codes: dim / 8 bytes padded to 64, plus the full vectors apart.
      EXPECT_EQ(index.VectorBytesPerVector(), 64 + dim * sizeof(float));
    }
  }
  // Measured (2-core Zen 5): l2 0.58 / 0.82 / 0.98, cosine 0.63 / 0.86 / 0.99,
  // dot 0.63 / 0.85 / 0.99 at oversampling 2 / 4 / 8 (ef 64).
  RecordProperty("recall_2_4_8", StrCat(recall[2.0f], " ", recall[4.0f], " ", recall[8.0f]));
  EXPECT_GE(recall[8.0f], 0.95) << MetricName(metric);
  EXPECT_GE(recall[8.0f], recall[4.0f]) << MetricName(metric);
  EXPECT_GE(recall[4.0f], recall[2.0f]) << MetricName(metric);
  EXPECT_GE(recall[2.0f], 0.45) << MetricName(metric);
}

INSTANTIATE_TEST_SUITE_P(Metrics, BinaryRecallTest,
                         ::testing::Values(Metric::kL2, Metric::kCosine, Metric::kDot),
                         [](const auto& info) { return std::string(MetricName(info.param)); });

TEST(BinaryHnswTest, CheckpointsAndDiskResidentVectorsSearchTheSame) {
  const size_t dim = 96, n = 2000;
  const auto base = EmbeddingLike(n, dim, 4);
  HnswIndex index(BinaryOptions(dim, Metric::kCosine, 4));
  Fill(&index, base, nullptr);
  for (size_t i = 0; i < n; i += 5) index.Remove(i);
  std::stringstream buf;
  QUIVER_ASSERT_OK(index.Save(buf));
  std::istringstream in(buf.str());
  auto loaded = HnswIndex::Load(in);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->options().quantization, Quantization::kBinary);
  EXPECT_EQ((*loaded)->size(), index.size());
  const std::filesystem::path dir = ::testing::TempDir() + "/binary_full_vectors";
  std::filesystem::create_directories(dir);
  HnswOptions disk_options = BinaryOptions(dim, Metric::kCosine, 4);
  disk_options.full_vectors_dir = dir.string();
  HnswIndex disk(disk_options);
  Fill(&disk, base, nullptr);
  for (size_t i = 0; i < n; i += 5) disk.Remove(i);
  EXPECT_EQ(disk.full_vector_segments_in_memory(), 0u);
  EXPECT_LT(disk.VectorBytesPerVector(), dim * sizeof(float));
  for (const auto& q : EmbeddingLike(20, dim, 5)) {
    const auto a = index.Search(q, {.top_k = 10});
    const auto b = (*loaded)->Search(q, {.top_k = 10});
    const auto c = disk.Search(q, {.top_k = 10});
    ASSERT_EQ(a.size(), b.size());
    ASSERT_EQ(a.size(), c.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].label, b[i].label);
      EXPECT_EQ(a[i].score, b[i].score);
      EXPECT_EQ(a[i].label, c[i].label);
      EXPECT_EQ(a[i].label % 5 == 0, false);  // Removed nodes never come back.
    }
  }
  // Compaction keeps the quantization and the results' quality.
  auto compacted = index.Compact(nullptr);
  EXPECT_EQ(compacted->quantization(), Quantization::kBinary);
  EXPECT_EQ(compacted->size(), index.size());
  std::filesystem::remove_all(dir);
}

// Data far from the origin (every value positive): sign bits would all be
// 1 and the walk blind. The thresholds are each dimension's mean, so the bits
// split the data; one learned from a single first vector is relearned by
// compaction once the graph is four times larger.
TEST(BinaryHnswTest, ThresholdsAreTheDataMeansAndAreRelearned) {
  const size_t dim = 128, n = 3000;
  const auto shifted = [&](size_t count, uint32_t seed) {
    auto v = EmbeddingLike(count, dim, seed);
    for (auto& row : v) {
      for (float& x : row) x += 10.0f;
    }
    return v;
  };
  const auto base = shifted(n, 7), queries = shifted(50, 8);
  FlatIndex exact(dim, Metric::kL2);
  for (size_t i = 0; i < n; ++i) exact.Upsert(i, base[i]);
  HnswIndex batch(BinaryOptions(dim, Metric::kL2, 8));
  Fill(&batch, base, nullptr);
  const std::vector<float> t = batch.binary_thresholds();
  ASSERT_EQ(t.size(), dim);
  for (float x : t) EXPECT_NEAR(x, 10.0f, 1.0f);
  EXPECT_FALSE(batch.NeedsCompaction());                   // Learned from 1,024 of the batch.
  EXPECT_GE(Recall(batch, exact, queries, 10, 64), 0.85);  // Measured 0.88.

  HnswIndex single(BinaryOptions(dim, Metric::kL2, 8));
  single.Upsert(0, base[0]);  // Thresholds from one vector.
  EXPECT_EQ(single.binary_thresholds(), base[0]);
  Fill(&single, base, nullptr, /*from=*/1);
  ASSERT_TRUE(single.NeedsCompaction());
  auto relearned = single.Compact(nullptr);
  EXPECT_FALSE(relearned->NeedsCompaction());
  EXPECT_GE(Recall(*relearned, exact, queries, 10, 64), 0.85);
}

TEST(BinaryHnswTest, ParsesAndNamesTheQuantization) {
  EXPECT_EQ(*ParseQuantization("binary"), Quantization::kBinary);
  EXPECT_EQ(QuantizationName(Quantization::kBinary), "binary");
  EXPECT_FALSE(ParseQuantization("bits").ok());
}

}  // namespace
}  // namespace quiver::ann
