// nn/gemm.h: our AVX-512 GEMM (float32 and bfloat16) and its fallbacks
// against a double-precision reference, over shapes that leave partial
// register blocks and panels, with and without a bias.
#include "nn/gemm.h"

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "nn/half.h"

namespace quiver::nn {
namespace {

struct Shape {
  int64_t m, n, k;
};

std::vector<float> Random(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& f : v) f = uni(rng);
  return v;
}

float RoundBf16(float v) { return Bf16ToFloat(FloatToBf16(v)); }

// y = x w^T + bias in double (x and w rounded to bfloat16 first when
// `bf16`), and per output the sum of |products| (the scale float32
// rounding works at).
struct Reference {
  std::vector<double> y, magnitude;
};
Reference Compute(const std::vector<float>& x, const std::vector<float>& w,
                  const std::vector<float>& bias, Shape s, bool bf16) {
  Reference r;
  for (int64_t i = 0; i < s.m; ++i) {
    for (int64_t j = 0; j < s.n; ++j) {
      double want = bias.empty() ? 0.0 : bias[j], magnitude = std::fabs(want);
      for (int64_t kk = 0; kk < s.k; ++kk) {
        float a = x[i * s.k + kk], b = w[j * s.k + kk];
        if (bf16) {
          a = RoundBf16(a);
          b = RoundBf16(b);
        }
        want += double{a} * b;
        magnitude += std::fabs(double{a} * b);
      }
      r.y.push_back(want);
      r.magnitude.push_back(std::max(magnitude, 1e-30));
    }
  }
  return r;
}

// Largest |got - want| over its output's magnitude.
double RelativeError(const Reference& want, const std::vector<float>& y) {
  double worst = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    worst = std::max(worst, std::fabs(y[i] - want.y[i]) / want.magnitude[i]);
  }
  return worst;
}

TEST(GemmTest, EveryKernelMatchesTheReferenceOnAwkwardShapes) {
  std::printf("GEMM kernels: float32 %s, bfloat16 %s\n", std::string(GemmName(false)).c_str(),
              std::string(GemmName(true)).c_str());
  std::mt19937 rng(7);
  const Shape shapes[] = {{1, 1, 1},     {1, 33, 7},      {5, 31, 16},
                          {12, 32, 384}, {13, 64, 3},     {25, 100, 65},
                          {37, 17, 129}, {128, 384, 384}, {300, 96, 1536}};
  for (const Shape& s : shapes) {
    const auto x = Random(s.m * s.k, rng), w = Random(s.n * s.k, rng), b = Random(s.n, rng);
    for (bool bf16 : {false, true}) {
      for (bool with_bias : {false, true}) {
        const Reference want = Compute(x, w, with_bias ? b : std::vector<float>{}, s, bf16);
        for (bool portable : {false, true}) {
          const PackedWeights p = portable ? internal::PackWeightsPortable(w.data(), s.n, s.k, bf16)
                                           : PackWeights(w.data(), s.n, s.k, bf16);
          std::vector<float> y(s.m * s.n, 12345.0f);
          Gemm(x.data(), p, with_bias ? b.data() : nullptr, s.m, y.data());
          const double err = RelativeError(want, y);
          // float32 sums of up to 1,536 terms: well under 1e-5 of their magnitude.
          EXPECT_LT(err, 1e-5) << s.m << "x" << s.n << "x" << s.k << (bf16 ? " bf16" : " f32")
                               << (portable ? " portable" : "") << (with_bias ? " bias" : "");
        }
      }
    }
  }
}

// bfloat16 products differ from float32 ones by about 2^-8 relative: the
// path must not be float32 in disguise, nor worse than the rounding.
TEST(GemmTest, Bf16IsRoundedNotFloat32) {
  std::mt19937 rng(9);
  const Shape s{16, 64, 256};
  const auto x = Random(s.m * s.k, rng), w = Random(s.n * s.k, rng);
  std::vector<float> b16(s.m * s.n);
  Gemm(x.data(), PackWeights(w.data(), s.n, s.k, true), nullptr, s.m, b16.data());
  const double err = RelativeError(Compute(x, w, {}, s, /*bf16=*/false), b16);
  EXPECT_GT(err, 1e-5);
  EXPECT_LT(err, 2e-2);
}

TEST(GemmTest, Bf16RoundsToNearestEven) {
  EXPECT_EQ(FloatToBf16(1.0f), 0x3F80);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0).
  EXPECT_EQ(FloatToBf16(1.00390625f), 0x3F80);
  // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: to the even 1 + 2^-6.
  EXPECT_EQ(FloatToBf16(1.01171875f), 0x3F82);
  EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(std::nanf("")))));
  EXPECT_EQ(Bf16ToFloat(FloatToBf16(-INFINITY)), -INFINITY);
}

}  // namespace
}  // namespace quiver::nn
