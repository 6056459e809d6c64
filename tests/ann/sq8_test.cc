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
  std::uniform_int_distribution<int> u(-127, 127), s(0, 255);
  std::vector<uint8_t> a(400);
  std::vector<int8_t> b(400);
  for (auto& x : a) x = static_cast<uint8_t>(s(rng));
  for (auto& x : b) x = static_cast<int8_t>(u(rng));
  for (const DistanceKernels* k : SupportedKernels()) {
    // Lengths past two 128-byte VNNI steps, every tail, unaligned starts.
    for (size_t n = 0; n <= 300; ++n) {
      for (size_t off : {0, 1, 7}) {
        const uint8_t* pa = a.data() + off;
        const int8_t* pb = b.data() + (off * 3) % 5;
        int64_t dot = 0;
        for (size_t i = 0; i < n; ++i) dot += int64_t{pa[i]} * pb[i];
        ASSERT_EQ(k->dot_u8i8(pa, pb, n), dot) << k->name << " n=" << n << " off=" << off;
      }
    }
    // The extremes at the largest dimension a quantized index takes.
    std::vector<uint8_t> hi(32768, 255);
    std::vector<int8_t> lo(32768, -127), top(32768, 127);
    EXPECT_EQ(k->dot_u8i8(hi.data(), lo.data(), hi.size()), -32768 * 255 * 127) << k->name;
    EXPECT_EQ(k->dot_u8i8(hi.data(), top.data(), hi.size()), 32768 * 255 * 127) << k->name;
  }
  // Node-to-node distances on decoded codes: every kernel against a double
  // reference, to float rounding.
  std::vector<float> center(300), scale(300);
  for (size_t d = 0; d < center.size(); ++d) {
    center[d] = 0.01f * static_cast<float>(d) - 1.0f;
    scale[d] = 0.001f + 0.0001f * static_cast<float>(d % 17);
  }
  for (const DistanceKernels* k : SupportedKernels()) {
    for (size_t n : {0, 1, 15, 16, 17, 50, 128, 300}) {
      double dot = 0, l2 = 0, mag = 0;
      for (size_t i = 0; i < n; ++i) {
        const double x = center[i] + double{scale[i]} * (int{a[i]} - 128);
        const double y = center[i] + double{scale[i]} * (int{a[(i * 7 + 3) % 300]} - 128);
        dot += x * y;
        mag += std::abs(x * y);
        l2 += (x - y) * (x - y);
      }
      std::vector<uint8_t> b2(n);
      for (size_t i = 0; i < n; ++i) b2[i] = a[(i * 7 + 3) % 300];
      EXPECT_NEAR(k->sq8_dot(a.data(), b2.data(), center.data(), scale.data(), n), dot,
                  1e-5 * mag + 1e-6)
          << k->name << " n=" << n;
      EXPECT_NEAR(k->sq8_l2_squared(a.data(), b2.data(), scale.data(), n), l2, 1e-5 * l2 + 1e-9)
          << k->name << " n=" << n;
    }
  }
#if defined(__x86_64__)
  // A CPU with AVX512-VNNI searches with vpdpbusd.
  if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma")) {
    EXPECT_STREQ(BestKernels().name, "avx512vnni");
  }
#endif
}

TEST(Sq8ParamsTest, EachDimensionGetsItsOwnRangeAndClampsItsTails) {
  // Four dimensions of very different spread; the last one constant.
  std::mt19937 rng(5);
  std::normal_distribution<float> g0(2.0f, 3.0f), g1(-50.0f, 0.01f), g2(0.0f, 100.0f);
  const size_t dim = 4, count = 30000;
  std::vector<float> values(count * dim);
  for (size_t i = 0; i < count; ++i) {
    values[i * dim] = g0(rng);
    values[i * dim + 1] = g1(rng);
    values[i * dim + 2] = g2(rng);
    values[i * dim + 3] = 7.5f;
  }
  const Sq8Params p = Sq8Params::Train(values.data(), count, dim);
  ASSERT_TRUE(p.trained());
  ASSERT_EQ(p.dimension(), dim);
  EXPECT_NEAR(p.center[0], 2.0f, 0.5f);
  EXPECT_NEAR(p.center[1], -50.0f, 0.01f);
  EXPECT_NEAR(p.center[2], 0.0f, 20.0f);
  EXPECT_FLOAT_EQ(p.center[3], 7.5f);
  // The narrow dimension's step is its own: 4 sigma / 127 or so, not the
  // wide one's.
  EXPECT_LT(p.scale[1], 0.01f * 10 / 127);
  EXPECT_GT(p.scale[2], 100.0f * 3 / 127);
  EXPECT_GT(p.scale[2], p.scale[1] * 1000);
  std::vector<uint8_t> codes(dim);
  uint64_t clamped = 0;
  std::vector<size_t> outside(dim, 0);
  for (size_t i = 0; i < count; ++i) {
    const float* x = &values[i * dim];
    const uint64_t before = clamped;
    const float norm2 = p.Encode(x, codes.data(), &clamped);
    double want_norm2 = 0;
    size_t out = 0;
    for (size_t d = 0; d < dim; ++d) {
      want_norm2 += double{p.Decode(d, codes[d])} * p.Decode(d, codes[d]);
      if (std::abs(x[d] - p.center[d]) > 127.5f * p.scale[d]) {
        ++out;
        ++outside[d];
        EXPECT_TRUE(codes[d] == 1 || codes[d] == 255) << int{codes[d]};
      } else {
        EXPECT_LE(std::abs(p.Decode(d, codes[d]) - x[d]),
                  p.scale[d] * 0.5f + 1e-5f * std::abs(x[d]))
            << "dimension " << d << " value " << x[d];
      }
    }
    EXPECT_EQ(clamped - before, out);
    EXPECT_NEAR(norm2, want_norm2, 1e-5 * want_norm2);
  }
  // 0.01 % of each side of the three varying dimensions (3 of 30,000 each),
  // nothing of the constant one.
  for (size_t d = 0; d < 3; ++d) {
    EXPECT_GT(outside[d], 0u) << d;
    EXPECT_LE(outside[d], 8u) << d;
  }
  EXPECT_EQ(outside[3], 0u);

  // A range from one vector: nothing clamped for that vector, no division
  // by zero.
  const Sq8Params one = Sq8Params::Train(values.data(), 1, dim);
  clamped = 0;
  one.Encode(values.data(), codes.data(), &clamped);
  EXPECT_EQ(clamped, 0u);
  for (size_t d = 0; d < dim; ++d) EXPECT_FLOAT_EQ(one.Decode(d, codes[d]), values[d]) << d;
  const Sq8Params uniform = Sq8Params::Uniform(1.0f, 0.5f, 3);
  EXPECT_EQ(uniform.center, std::vector<float>(3, 1.0f));
  EXPECT_EQ(uniform.scale, std::vector<float>(3, 0.5f));
  EXPECT_EQ(ParseQuantization("sq8").value(), Quantization::kSq8);
  EXPECT_EQ(ParseQuantization("").value(), Quantization::kNone);
  EXPECT_THAT(ParseQuantization("pq"), StatusIs(absl::StatusCode::kInvalidArgument));
}

// A query's codes give q . x for any coded x within the rounding of one
// step per query; a node's query form made from its codes is the query
// form of the vector they stand for.
TEST(Sq8ParamsTest, QueryCodesGiveDotProductsWithinTheirRounding) {
  std::mt19937 rng(7);
  const size_t dim = 96, count = 2000;
  std::vector<float> values(count * dim);
  for (size_t i = 0; i < count; ++i) {
    for (size_t d = 0; d < dim; ++d) {
      values[i * dim + d] = std::normal_distribution<float>(0.1f * d, 0.05f + 0.02f * d)(rng);
    }
  }
  const Sq8Params p = Sq8Params::Train(values.data(), count, dim);
  std::vector<int8_t> q_codes(dim), from_codes(dim);
  std::vector<uint8_t> x_codes(dim);
  uint64_t clamped = 0;
  for (size_t trial = 0; trial < 200; ++trial) {
    const float* q = &values[(trial * 7) % count * dim];
    const float* x = &values[(trial * 13 + 1) % count * dim];
    const Sq8Query t = p.EncodeQuery(q, q_codes.data());
    p.Encode(x, x_codes.data(), &clamped);
    double want = 0, norm2 = 0, slack = 0;
    int64_t sum = 0;
    for (size_t d = 0; d < dim; ++d) {
      want += double{q[d]} * p.Decode(d, x_codes[d]);
      norm2 += double{q[d]} * q[d];
      sum += int64_t{q_codes[d]} * x_codes[d];
      slack += 0.5 * t.step * std::abs(int{x_codes[d]} - 128);  // Half a step per term.
    }
    const double got = t.offset + double{t.step} * static_cast<double>(sum);
    EXPECT_NEAR(got, want, slack + 1e-4 * std::abs(want)) << trial;
    EXPECT_NEAR(t.norm2, norm2, 1e-5 * norm2);
    // From codes: exactly the query form of the decoded vector.
    std::vector<float> decoded(dim);
    for (size_t d = 0; d < dim; ++d) decoded[d] = p.Decode(d, x_codes[d]);
    const Sq8Query a = p.EncodeQueryFromCodes(x_codes.data(), from_codes.data());
    const Sq8Query b = p.EncodeQuery(decoded.data(), q_codes.data());
    EXPECT_EQ(from_codes, q_codes);
    EXPECT_EQ(a.step, b.step);
    EXPECT_EQ(a.offset, b.offset);
    EXPECT_EQ(a.norm2, b.norm2);
  }
  // A zero query: no step, every code 0, no division by zero.
  const std::vector<float> zero(dim, 0.0f);
  const Sq8Query z = p.EncodeQuery(zero.data(), q_codes.data());
  EXPECT_EQ(z.step, 0.0f);
  EXPECT_EQ(z.norm2, 0.0f);
  EXPECT_EQ(q_codes, std::vector<int8_t>(dim, 0));
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

// Overwrites the 4 bytes at `at` of a checkpoint.
template <typename T>
void PutAt(std::string* file, size_t at, T value) {
  static_assert(sizeof(T) == 4);
  std::memcpy(file->data() + at, &value, 4);
}

// Recomputes the CRC of a header of `header_bytes` (the field at offset 64).
void SealHeader(std::string* file, size_t header_bytes) {
  PutAt(file, 64, uint32_t{0});
  PutAt(file, 64, Crc32c(std::string_view(file->data(), header_bytes)));
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
  PutAt(&v1, 8, uint32_t{1});    // Version.
  PutAt(&v1, 12, uint32_t{72});  // Header bytes.
  PutAt(&v1, 68, uint32_t{0});   // Reserved in version 1.
  SealHeader(&v1, 72);
  std::istringstream in(v1);
  auto loaded = HnswIndex::Load(in);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->size(), n);
  EXPECT_EQ((*loaded)->options().quantization, Quantization::kNone);
  EXPECT_EQ((*loaded)->Search(base[17], {.top_k = 1})[0].label, 17u);
}

// A version 2 checkpoint of an SQ8 graph held one range for the index in
// its header: it loads as that range in every dimension.
TEST(Sq8HnswTest, VersionTwoCheckpointsLoadWithTheirOneRange) {
  const size_t dim = 16, n = 2000;
  const auto base = Clustered(n, dim, 12, 40, 3);
  HnswIndex index(Sq8Options(dim, Metric::kL2));
  Fill(&index, base, nullptr);
  std::stringstream buf;
  QUIVER_ASSERT_OK(index.Save(buf));
  const std::string v3 = buf.str();
  // Version 2: the same header with version 2 and the range at 80, and a
  // body without the quantizer that leads version 3's (u64 sample, then
  // centers and scales).
  float lo = base[0][0], hi = base[0][0];
  for (const auto& v : base) {
    for (float x : v) {
      lo = std::min(lo, x);
      hi = std::max(hi, x);
    }
  }
  const float center = (lo + hi) / 2, scale = (hi - lo) / 2 / 127;
  std::string body = v3.substr(96 + 8 + 2 * dim * sizeof(float));
  std::string v2 = v3.substr(0, 96) + body;
  PutAt(&v2, 8, uint32_t{2});  // Version.
  PutAt(&v2, 44, Crc32c(body));
  PutAt(&v2, 80, center);
  PutAt(&v2, 84, scale);
  SealHeader(&v2, 96);
  std::istringstream in(v2);
  auto loaded = HnswIndex::Load(in);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->sq8_params().center, std::vector<float>(dim, center));
  EXPECT_EQ((*loaded)->sq8_params().scale, std::vector<float>(dim, scale));
  EXPECT_EQ((*loaded)->size(), n);
  FlatIndex exact(dim, Metric::kL2);
  for (size_t i = 0; i < n; ++i) exact.Upsert(i, base[i]);
  EXPECT_GE(Recall(**loaded, exact, Clustered(50, dim, 13, 40, 3), 10, 64), 0.95);
  // Saved again, it is version 3 with the same range per dimension.
  std::stringstream again;
  QUIVER_ASSERT_OK((*loaded)->Save(again));
  uint32_t saved_version;
  std::memcpy(&saved_version, again.str().data() + 8, 4);
  EXPECT_EQ(saved_version, 3u);
  std::istringstream again_in(again.str());
  auto reloaded = HnswIndex::Load(again_in);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  EXPECT_EQ((*reloaded)->sq8_params().scale, std::vector<float>(dim, scale));
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
  for (size_t d = 0; d < dim; ++d) {
    EXPECT_GT(fresh->sq8_params().scale[d], index.sq8_params().scale[d] * 10) << d;
  }
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
