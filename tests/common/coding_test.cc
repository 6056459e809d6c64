#include "common/coding.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"

namespace quiver {
namespace {

TEST(CodingTest, VarintsRoundTripAtEveryWidth) {
  std::string buf;
  std::vector<uint64_t> values = {0,          1,
                                  127,        128,
                                  300,        16383,
                                  16384,      (1ull << 32) - 1,
                                  1ull << 35, std::numeric_limits<uint64_t>::max()};
  for (uint64_t v : values) PutVarint64(&buf, v);
  std::string_view in(buf);
  for (uint64_t v : values) {
    uint64_t got;
    ASSERT_TRUE(GetVarint64(&in, &got));
    EXPECT_EQ(got, v);
  }
  EXPECT_TRUE(in.empty());
}

TEST(CodingTest, TruncatedInputIsRejectedNotOverread) {
  std::string buf;
  PutVarint64(&buf, 1ull << 40);
  PutLengthPrefixed(&buf, "hello");
  for (size_t cut = 0; cut < buf.size(); ++cut) {
    std::string_view in(buf.data(), cut);
    uint64_t v;
    std::string_view s;
    const bool ok = GetVarint64(&in, &v) && GetLengthPrefixed(&in, &s);
    EXPECT_FALSE(ok) << "cut at " << cut;
  }
}

TEST(CodingTest, BigEndianOrdersLikeIntegers) {
  std::string a, b;
  PutBigEndian32(&a, 255);
  PutBigEndian32(&b, 256);
  EXPECT_LT(a, b);
  std::string_view in(b);
  uint32_t v;
  ASSERT_TRUE(GetBigEndian32(&in, &v));
  EXPECT_EQ(v, 256u);
}

TEST(CodingTest, FloatsAndDoublesKeepTheirBits) {
  std::string buf;
  PutFloat(&buf, -0.0f);
  PutFloat(&buf, std::numeric_limits<float>::denorm_min());
  PutDouble(&buf, 1.0 / 3);
  std::string_view in(buf);
  float f;
  double d;
  ASSERT_TRUE(GetFloat(&in, &f));
  EXPECT_TRUE(std::signbit(f));
  ASSERT_TRUE(GetFloat(&in, &f));
  EXPECT_EQ(f, std::numeric_limits<float>::denorm_min());
  ASSERT_TRUE(GetDouble(&in, &d));
  EXPECT_EQ(d, 1.0 / 3);
}

TEST(CodingTest, Crc32cMatchesTheStandardCheckValue) {
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(Crc32cExtend(Crc32c("1234"), "56789"), Crc32c("123456789"));
}

TEST(CodingTest, Utf8Validation) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4"));  // Korean.
  EXPECT_TRUE(IsValidUtf8("\xF0\x9F\x98\x80"));                      // Emoji.
  EXPECT_FALSE(IsValidUtf8("\xC3"));                                 // Truncated.
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));                             // Overlong.
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));                         // Surrogate.
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));                     // > U+10FFFF.
  EXPECT_FALSE(IsValidUtf8("\xFF"));
}

}  // namespace
}  // namespace quiver
