#include "common/strings.h"

#include "common/log.h"
#include "gtest/gtest.h"

namespace quiver {
namespace {

TEST(StringsTest, StrCatFormatsMixedArguments) {
  std::string_view sv = "view";
  EXPECT_EQ(StrCat("a", sv, std::string("s"), 42, -7L, 'c', true, 1.5f, uint64_t{18}),
            "aviews42-7ctrue1.518");
}

TEST(StringsTest, StripWhitespace) {
  EXPECT_EQ(StripWhitespace("  a b \t\n"), "a b");
  EXPECT_EQ(StripWhitespace(" \t "), "");
}

TEST(StringsTest, LastPathComponent) {
  EXPECT_EQ(LastPathComponent("models/all-MiniLM-L6-v2"), "all-MiniLM-L6-v2");
  EXPECT_EQ(LastPathComponent("models/bge-small/"), "bge-small");
  EXPECT_EQ(LastPathComponent("stories260K.bin"), "stories260K.bin");
  EXPECT_EQ(LastPathComponent("/"), "");
}

TEST(LogTest, FormatsLogfmtWithQuotingWhereNeeded) {
  const std::string line =
      FormatLogLine(LogLevel::kWarning, "disk slow", {{"path", "/a b"}, {"ms", 12}, {"ok", true}});
  EXPECT_NE(line.find(" level=warn msg=\"disk slow\" path=\"/a b\" ms=12 ok=true\n"),
            std::string::npos)
      << line;
  EXPECT_EQ(line.rfind("ts=", 0), 0u);
}

}  // namespace
}  // namespace quiver
