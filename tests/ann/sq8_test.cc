// Scalar quantisation (SQ8): the int8 kernels against the reference, the
// quantizer, and quantized HNSW graphs (recall with rescoring, exact scores,
// checkpoints, retraining, full vectors on disk).
#include "ann/sq8.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "ann/distance.h"
#include "ann/flat_index.h"
#include "ann/hnsw.h"
#include "common/coding.h"
#include "common/strings.h"
#include "common/thread_pool.h"
#include "gtest/gtest.h"
#include "tests/ann/ann_test_util.h"
#include "tests/testing/test_util.h"

namespace quiver::ann {
namespace {

using ::quiver::testing::StatusIs;

TEST(Sq8KernelTest, EveryKernelEqualsTheReferenceExactly) {
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> u(-127, 127);
  std::vector<int8_t> a(400), b(400);
  for (auto& x : a) x = static_cast<int8_t>(u(rng));
  for (auto& x : b) x = static_cast<int8_t>(u(rng));
  for (const DistanceKernels* k : SupportedKernels()) {
    for (size_t n = 0; n <= 300; ++n) {
      for (size_t off : {0, 1, 7}) {
        const int8_t* pa = a.data() + off;
        const int8_t* pb = b.data() + (off * 3) % 5;
        int64_t dot = 0, l2 = 0;
        for (size_t i = 0; i < n; ++i) {
          dot += int64_t{pa[i]} * pb[i];
          l2 += (int64_t{pa[i]} - pb[i]) * (int64_t{pa[i]} - pb[i]);
        }
        ASSERT_EQ(k->dot_i8(pa, pb, n), dot) << k->name << " n=" << n << " off=" << off;
        ASSERT_EQ(k->l2_squared_i8(pa, pb, n), l2) << k->name << " n=" << n << " off=" << off;
      }
    }
    // The extremes at the largest dimension a quantized index takes.
    std::vector<int8_t> hi(32768, 127), lo(32768, -127);
    EXPECT_EQ(k->l2_squared_i8(hi.data(), lo.data(), hi.size()), 32768 * 254 * 254) << k->name;
    EXPECT_EQ(k->dot_i8(hi.data(), lo.data(), hi.size()), -32768 * 127 * 127) << k->name;
  }
}

TEST(Sq8ParamsTest, EncodesWithinHalfAStepAndCountsClamping) {
  std::mt19937 rng(5);
  std::normal_distribution<float> g(2.0f, 3.0f);
  std::vector<float> values(20000);
  for (float& v : values) v = g(rng);
  const Sq8Params p = Sq8Params::Train(values);
  ASSERT_TRUE(p.trained());
  EXPECT_NEAR(p.center, 2.0f, 0.5f);
  std::vector<int8_t> codes(values.size());
  uint64_t clamped = 0;
  const int32_t sum = p.Encode(values.data(), values.size(), codes.data(), &clamped);
  int64_t want_sum = 0;
  size_t outside = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    want_sum += codes[i];
    if (std::abs(values[i] - p.center) > 127.5f * p.scale) {
      ++outside;
      EXPECT_EQ(std::abs(codes[i]), 127);
    } else {
      EXPECT_LE(std::abs(p.Decode(codes[i]) - values[i]), p.scale * 0.5f + 1e-5f) << values[i];
    }
  }
  EXPECT_EQ(sum, want_sum);
  EXPECT_EQ(clamped, outside);
  EXPECT_GT(outside, 0u);  // The 0.05 % tails.
  EXPECT_LT(outside, values.size() / 500);

  // Every value the same: one code, nothing clamped, no division by zero.
  std::vector<float> same(100, 7.5f);
  const Sq8Params q = Sq8Params::Train(same);
  clamped = 0;
  q.Encode(same.data(), same.size(), codes.data(), &clamped);
  EXPECT_EQ(clamped, 0u);
  EXPECT_FLOAT_EQ(q.Decode(codes[0]), 7.5f);
  EXPECT_EQ(ParseQuantization("sq8").value(), Quantization::kSq8);
  EXPECT_EQ(ParseQuantization("").value(), Quantization::kNone);
  EXPECT_THAT(ParseQuantization("pq"), StatusIs(absl::StatusCode::kInvalidArgument));
}

HnswOptions Sq8Options(size_t dim, Metric metric) {
  HnswOptions o;
  o.dimension = dim;
  o.metric = metric;
  o.ef_construction = 100;
  o.quantization = Quantization::kSq8;
  return o;
}

class Sq8RecallTest : public ::testing::TestWithParam<Metric> {};

TEST_P(Sq8RecallTest, RescoredSearchMatchesFloatRecallWithExactScores) {
  const Metric metric = GetParam();
  const size_t dim = 64, n = 5000;
  auto base = Clustered(n, dim, 1, 40, 3);
  const auto queries = Clustered(100, dim, 2, 40, 3);
  ThreadPool pool(2);
  FlatIndex exact(dim, metric);
  for (size_t i = 0; i < n; ++i) exact.Upsert(i, base[i]);
  HnswOptions fo = Sq8Options(dim, metric);
  fo.quantization = Quantization::kNone;
  HnswIndex floats(fo);
  Fill(&floats, base, &pool);
  HnswIndex sq8(Sq8Options(dim, metric));
  Fill(&sq8, base, &pool);
  ASSERT_TRUE(sq8.sq8_params().trained());

  const double float_recall = Recall(floats, exact, queries, 10, 32);
  const double sq8_recall = Recall(sq8, exact, queries, 10, 32);
  EXPECT_GE(sq8_recall, 0.95) << MetricName(metric);
  EXPECT_GE(sq8_recall, float_recall - 0.01) << MetricName(metric);
  // Rescored scores are the full vectors' scores, to the last bit.
  for (const auto& q : queries) {
    const auto hits = sq8.Search(q, {.top_k = 5});
    const auto want = sq8.SearchExact(q, {.top_k = n});
    std::map<uint64_t, float> score;
    for (const Hit& h : want) score[h.label] = h.score;
    for (const Hit& h : hits) EXPECT_EQ(h.score, score.at(h.label));
  }
  // Without rescoring the codes' own scores come back: close, not exact.
  HnswOptions raw_options = Sq8Options(dim, metric);
  raw_options.rescore = false;
  HnswIndex raw(raw_options);
  Fill(&raw, base, &pool);
  EXPECT_GE(Recall(raw, exact, queries, 10, 64), 0.75) << MetricName(metric);
  // The graph's vector memory: a quarter of float's codes plus the full
  // vectors apart.
  EXPECT_EQ(sq8.VectorBytesPerVector(), 64 + dim * sizeof(float));
  EXPECT_EQ(floats.VectorBytesPerVector(), dim * sizeof(float));
}

INSTANTIATE_TEST_SUITE_P(Metrics, Sq8RecallTest,
                         ::testing::Values(Metric::kL2, Metric::kCosine, Metric::kDot),
                         [](const auto& info) { return std::string(MetricName(info.param)); });

TEST(Sq8HnswTest, CheckpointsKeepTheRangeAndTheResults) {
  const size_t dim = 24, n = 3000;
  const auto base = Clustered(n, dim, 4, 40, 3);
  HnswIndex index(Sq8Options(dim, Metric::kL2));
  Fill(&index, base, nullptr);
  for (size_t i = 0; i < n; i += 7) index.Remove(i);
  std::stringstream buf;
  QUIVER_ASSERT_OK(index.Save(buf));
  const std::string bytes = buf.str();
  std::istringstream in(bytes);
  auto loaded = HnswIndex::Load(in);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->options().quantization, Quantization::kSq8);
  EXPECT_EQ((*loaded)->sq8_params().center, index.sq8_params().center);
  EXPECT_EQ((*loaded)->sq8_params().scale, index.sq8_params().scale);
  EXPECT_EQ((*loaded)->size(), index.size());
  for (const auto& q : Clustered(20, dim, 5, 40, 3)) {
    const auto a = index.Search(q, {.top_k = 10});
    const auto b = (*loaded)->Search(q, {.top_k = 10});
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].label, b[i].label);
      EXPECT_EQ(a[i].score, b[i].score);
    }
  }
  for (size_t pos : {size_t{70}, size_t{80}, size_t{90}, bytes.size() / 2}) {
    std::string damaged = bytes;
    damaged[pos] ^= 0x21;
    std::istringstream din(damaged);
    EXPECT_THAT(HnswIndex::Load(din), StatusIs(absl::StatusCode::kDataLoss)) << "byte " << pos;
  }
}

// A version 1 checkpoint (72-byte header, before quantization) still loads.
TEST(Sq8HnswTest, VersionOneCheckpointsStillLoad) {
  const size_t dim = 8, n = 300;
  const auto base = Clustered(n, dim, 6, 40, 3);
  HnswOptions o = Sq8Options(dim, Metric::kCosine);
  o.quantization = Quantization::kNone;
  HnswIndex index(o);
  Fill(&index, base, nullptr);
  std::stringstream buf;
  QUIVER_ASSERT_OK(index.Save(buf));
  std::string v2 = buf.str();
  // Rewrite the header as version 1 wrote it: 72 bytes, version 1.
  std::string v1 = v2.substr(0, 72) + v2.substr(96);
  const uint32_t version = 1, header_bytes = 72, zero = 0;
  std::memcpy(v1.data() + 8, &version, 4);
  std::memcpy(v1.data() + 12, &header_bytes, 4);
  std::memcpy(v1.data() + 64, &zero, 4);
  std::memcpy(v1.data() + 68, &zero, 4);
  const uint32_t crc = Crc32c(std::string_view(v1.data(), 72));
  std::memcpy(v1.data() + 64, &crc, 4);
  std::istringstream in(v1);
  auto loaded = HnswIndex::Load(in);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->size(), n);
  EXPECT_EQ((*loaded)->options().quantization, Quantization::kNone);
  EXPECT_EQ((*loaded)->Search(base[17], {.top_k = 1})[0].label, 17u);
}

// Trained on the first vector alone, then fed data with ten times its
// spread: the clamping is seen, compaction retrains on everything, and the
// rebuilt graph finds the neighbours again.
TEST(Sq8HnswTest, ARangeLearnedFromTooLittleDataIsRelearnedByCompaction) {
  const size_t dim = 16;
  HnswIndex index(Sq8Options(dim, Metric::kL2));
  std::vector<float> first(dim, 0.0f);
  first[0] = 0.1f;
  index.Upsert(0, first);
  auto base = Clustered(3000, dim, 8, 40, 3);
  for (auto& v : base) {
    for (float& x : v) x *= 10;
  }
  for (size_t i = 0; i < base.size(); ++i) index.Upsert(i + 1, base[i]);
  EXPECT_GT(index.clamped_values(), 1000u);
  ASSERT_TRUE(index.NeedsCompaction());
  ThreadPool pool(2);
  auto compacted = index.Compact(&pool);
  auto* fresh = dynamic_cast<HnswIndex*>(compacted.get());
  ASSERT_NE(fresh, nullptr);
  EXPECT_GT(fresh->sq8_params().scale, index.sq8_params().scale * 10);
  EXPECT_LT(fresh->clamped_values(), base.size() * dim / 1000);
  EXPECT_FALSE(fresh->NeedsCompaction());
  FlatIndex exact(dim, Metric::kL2);
  exact.Upsert(0, first);
  for (size_t i = 0; i < base.size(); ++i) exact.Upsert(i + 1, base[i]);
  auto queries = Clustered(50, dim, 9, 40, 3);
  for (auto& v : queries) {
    for (float& x : v) x *= 10;
  }
  EXPECT_GE(Recall(*fresh, exact, queries, 10, 64), 0.95);
}

TEST(Sq8HnswTest, FullVectorsOnDiskAreMappedAndSearchTheSame) {
  testing::TempDir dir;
  const size_t dim = 32, n = 2000;
  const auto base = Clustered(n, dim, 10, 40, 3);
  HnswIndex memory(Sq8Options(dim, Metric::kCosine));
  HnswOptions o = Sq8Options(dim, Metric::kCosine);
  o.full_vectors_dir = dir.path();
  HnswIndex disk(o);
  Fill(&memory, base, nullptr);
  Fill(&disk, base, nullptr);
  EXPECT_EQ(disk.full_vector_segments_in_memory(), 0u);
  EXPECT_EQ(disk.VectorBytesPerVector(), 64u);  // Codes only; the rest is page cache.
  EXPECT_EQ(disk.BytesPerVector() + dim * sizeof(float), memory.BytesPerVector());
  for (const auto& q : Clustered(20, dim, 11, 40, 3)) {
    const auto a = memory.Search(q, {.top_k = 10});
    const auto b = disk.Search(q, {.top_k = 10});
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].score, b[i].score);
  }
  // The scratch files are unlinked at once: nothing is left in the directory.
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
  // A directory that cannot hold them: memory instead, counted.
  HnswOptions bad = o;
  bad.full_vectors_dir = dir.path() + "/missing";
  HnswIndex fallback(bad);
  Fill(&fallback, base, nullptr);
  EXPECT_GT(fallback.full_vector_segments_in_memory(), 0u);
  EXPECT_EQ(fallback.Search(base[3], {.top_k = 1})[0].label, 3u);
}

TEST(Sq8HnswTest, OptionsAreValidated) {
  HnswOptions o = Sq8Options(8, Metric::kL2);
  o.oversampling = 0.5f;
  EXPECT_FALSE(o.Validate().ok());
  o.oversampling = 101;
  EXPECT_FALSE(o.Validate().ok());
  o.oversampling = std::nanf("");
  EXPECT_FALSE(o.Validate().ok());
  o.oversampling = 1;
  EXPECT_TRUE(o.Validate().ok());
}

}  // namespace
}  // namespace quiver::ann
