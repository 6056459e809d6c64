#include "text/analyzer.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace quiver::text {
namespace {

using ::quiver::testing::StatusIs;
using ::testing::ElementsAre;

std::vector<std::string> Terms(const char* analyzer, std::string_view text) {
  auto a = Analyzer::Named(analyzer);
  EXPECT_TRUE(a.ok());
  auto terms = a->Analyze(text);
  EXPECT_TRUE(terms.ok()) << terms.status();
  return terms.ok() ? *terms : std::vector<std::string>{};
}

TEST(AnalyzerTest, StandardLowercasesAndSplitsOnUnicodeClasses) {
  EXPECT_THAT(Terms("standard", "The Quick-brown fox, v2.5 & 1,000 don't!"),
              ElementsAre("the", "quick", "brown", "fox", "v2.5", "1,000", "don't"));
}

TEST(AnalyzerTest, NfkcFoldsCompatibilityForms) {
  // Fullwidth letters, the "ﬁ" ligature, a circled digit, German sharp s.
  EXPECT_THAT(Terms("standard", "ＡＢＣ ﬁle ① Straße"), ElementsAre("abc", "file", "1", "strasse"));
  // Decomposed é (e + U+0301) composes to the same term as precomposed é.
  EXPECT_EQ(Terms("standard", "cafe\xCC\x81"), Terms("standard", "caf\xC3\xA9"));
}

TEST(AnalyzerTest, EnglishRemovesStopWordsPossessivesAndStems) {
  EXPECT_THAT(Terms("english", "The quick brown foxes jumped over the lazy dog's kennels"),
              ElementsAre("quick", "brown", "fox", "jump", "over", "lazi", "dog", "kennel"));
}

TEST(AnalyzerTest, KoreanBecomesOverlappingBigrams) {
  // 안녕하세요 세계 ("hello world").
  EXPECT_THAT(Terms("standard", "안녕하세요 세계"),
              ElementsAre("안녕", "녕하", "하세", "세요", "세계"));
  // A query shares bigrams with the document without a dictionary.
  EXPECT_THAT(Terms("cjk", "하세요"), ElementsAre("하세", "세요"));
}

TEST(AnalyzerTest, ChineseAndJapaneseBigramsAndLoneCharacters) {
  EXPECT_THAT(Terms("standard", "北京大学"), ElementsAre("北京", "京大", "大学"));
  EXPECT_THAT(Terms("standard", "東京タワー"), ElementsAre("東京", "京タ", "タワ", "ワー"));
  EXPECT_THAT(Terms("standard", "猫"), ElementsAre("猫"));
}

TEST(AnalyzerTest, MixedScriptsSplitAtScriptBoundaries) {
  // "Quiver는 벡터DB다" : Latin and Hangul runs become separate terms.
  EXPECT_THAT(Terms("standard", "Quiver는 벡터DB다"),
              ElementsAre("quiver", "는", "벡터", "db", "다"));
}

TEST(AnalyzerTest, EmojiAndPunctuationAreSeparators) {
  EXPECT_THAT(Terms("standard", "love 😀 it!!! ★ 。、"), ElementsAre("love", "it"));
}

TEST(AnalyzerTest, InvalidUtf8IsAnErrorNotACrash) {
  auto a = Analyzer::Named("english");
  ASSERT_TRUE(a.ok());
  EXPECT_THAT(a->Analyze("abc \xff\xfe def"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(a->Analyze("\xC3"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Analyzer::Named("klingon"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(AnalyzerTest, OverlongTokensAreDropped) {
  Analyzer a(AnalyzerOptions{.max_token_bytes = 5});
  auto terms = a.Analyze("short muchtoolong ok");
  ASSERT_TRUE(terms.ok());
  EXPECT_THAT(*terms, ElementsAre("short", "ok"));
}

}  // namespace
}  // namespace quiver::text
