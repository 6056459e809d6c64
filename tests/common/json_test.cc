#include "common/json.h"

#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace quiver {
namespace {

using ::quiver::testing::StatusIs;

TEST(JsonTest, ParsesEveryValueType) {
  auto j = ParseJson(R"( {"a": 1.5, "b": [true, false, null], "c": "x\ny", "d": {"e": -2e3}} )");
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ(j->Find("a")->as_number(), 1.5);
  ASSERT_TRUE(j->Find("b")->is_array());
  EXPECT_TRUE(j->Find("b")->as_array()[0].as_bool());
  EXPECT_TRUE(j->Find("b")->as_array()[2].is_null());
  EXPECT_EQ(j->Find("c")->as_string(), "x\ny");
  EXPECT_EQ(j->Find("d")->Find("e")->as_number(), -2000);
  EXPECT_EQ(j->Find("missing"), nullptr);
}

TEST(JsonTest, DecodesUnicodeEscapesIncludingSurrogatePairs) {
  auto j = ParseJson(R"("\u00e9\uD83D\uDE00\u d")");
  EXPECT_FALSE(j.ok());
  j = ParseJson(R"("\u00e9\ud83d\ude00")");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->as_string(), "\xC3\xA9\xF0\x9F\x98\x80");
}

TEST(JsonTest, RejectsMalformedDocumentsWithOffset) {
  for (const char* bad : {"", "{", "[1,]", "{\"a\" 1}", "01", "1.", "tru", "\"abc", "{} x",
                          "\"\\ud800\"", "\"a\tb\""}) {
    auto j = ParseJson(bad);
    EXPECT_THAT(j, StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
  EXPECT_NE(ParseJson("[1,]").status().message().find("byte 3"), std::string::npos);
}

TEST(JsonTest, RejectsNestingDeeperThanTheLimit) {
  std::string deep(100, '[');
  deep += std::string(100, ']');
  EXPECT_FALSE(ParseJson(deep, 64).ok());
  EXPECT_TRUE(ParseJson(deep, 100).ok());
}

TEST(JsonTest, DumpRoundTrips) {
  const std::string text = R"({"a":[1,2.5,"s\"q"],"b":true,"c":null,"d":{}})";
  auto j = ParseJson(text);
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->Dump(), text);
  EXPECT_EQ(*ParseJson(j->Dump()), *j);
}

}  // namespace
}  // namespace quiver
