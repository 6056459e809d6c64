#include "nn/half.h"

#include <cmath>

#include "gtest/gtest.h"

namespace quiver {
using ::quiver::nn::Bf16ToFloat;
using ::quiver::nn::FloatToHalf;
using ::quiver::nn::HalfToFloat;
namespace {

TEST(HalfTest, RoundTripsEveryHalfAndRoundsToNearestEven) {
  // Every finite half converts to float and back to itself.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = HalfToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(FloatToHalf(f), h) << std::hex << h;
  }
  EXPECT_EQ(FloatToHalf(1.0f), 0x3C00);
  EXPECT_EQ(FloatToHalf(-2.0f), 0xC000);
  EXPECT_EQ(FloatToHalf(1e6f), 0x7C00);                // Overflow: infinity.
  EXPECT_EQ(FloatToHalf(1.0f + 1.0f / 2048), 0x3C00);  // Halfway: to even.
  EXPECT_EQ(FloatToHalf(1.0f + 3.0f / 2048), 0x3C02);  // Halfway: to even (up).
  EXPECT_EQ(FloatToHalf(1e-9f), 0x0000);               // Underflow to zero.
  EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(std::nanf("")))));
  EXPECT_EQ(Bf16ToFloat(0x3FC0), 1.5f);
}

}  // namespace
}  // namespace quiver
