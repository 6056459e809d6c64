#include "ann/distance.h"

#include <cmath>
#include <random>

#include "gtest/gtest.h"

namespace quiver::ann {
namespace {

double RefDot(const float* a, const float* b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}
double RefL2(const float* a, const float* b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += (static_cast<double>(a[i]) - b[i]) * (a[i] - b[i]);
  return s;
}

TEST(DistanceTest, ScalarIsAlwaysSupportedAndBestIsOneOfThem) {
  auto all = SupportedKernels();
  ASSERT_FALSE(all.empty());
  EXPECT_STREQ(all[0]->name, "scalar");
  bool found = false;
  for (auto* k : all) found = found || k == &BestKernels();
  EXPECT_TRUE(found);
}

// Every kernel, every length 0..300, at unaligned start offsets, against a
// float64 reference.
TEST(DistanceTest, EveryKernelMatchesTheReferenceAtOddSizesAndOffsets) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-2, 2);
  std::vector<float> a(400), b(400);
  for (auto& x : a) x = u(rng);
  for (auto& x : b) x = u(rng);
  for (const DistanceKernels* k : SupportedKernels()) {
    for (size_t n = 0; n <= 300; ++n) {
      for (size_t off : {0, 1, 3}) {
        const float* pa = a.data() + off;
        const float* pb = b.data() + (off * 2) % 5;
        const double dot = RefDot(pa, pb, n), l2 = RefL2(pa, pb, n);
        // float32 accumulation: error grows with n and the magnitudes summed.
        const double tol = 1e-5 * (1 + n * 4);
        EXPECT_NEAR(k->dot(pa, pb, n), dot, tol) << k->name << " n=" << n << " off=" << off;
        EXPECT_NEAR(k->l2_squared(pa, pb, n), l2, tol) << k->name << " n=" << n;
      }
    }
  }
}

TEST(DistanceTest, SimilarityIsHigherForCloserVectors) {
  const float q[] = {1, 0}, near[] = {0.9f, 0.1f}, far[] = {-1, 0};
  const auto& k = BestKernels();
  for (Metric m : {Metric::kDot, Metric::kL2, Metric::kCosine}) {
    EXPECT_GT(Similarity(k, m, q, near, 2), Similarity(k, m, q, far, 2)) << MetricName(m);
  }
  EXPECT_FLOAT_EQ(Similarity(k, Metric::kL2, q, far, 2), -4.0f);
}

TEST(DistanceTest, NormalizeInPlace) {
  std::vector<float> v = {3, 4};
  EXPECT_FLOAT_EQ(NormalizeInPlace(v), 5);
  EXPECT_FLOAT_EQ(v[0], 0.6f);
  EXPECT_FLOAT_EQ(v[1], 0.8f);
  std::vector<float> z = {0, 0};
  EXPECT_EQ(NormalizeInPlace(z), 0);
  EXPECT_EQ(z[0], 0);
}

}  // namespace
}  // namespace quiver::ann
