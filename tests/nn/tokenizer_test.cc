// Expected tokens are worked out from the tokenizer.json rules (BertNormalizer:
// clean text, CJK characters split, NFD accent stripping, lowercasing;
// BertPreTokenizer; WordPiece greedy longest match; Unigram Viterbi).
#include "nn/tokenizer.h"

#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace quiver::nn {
namespace {

using ::quiver::testing::StatusIs;
using Tokens = std::vector<std::string>;

std::unique_ptr<Tokenizer> Load(const std::string& model) {
  const std::string dir = testing::FixturePath("model2vec-rs-fixtures");
  if (dir.empty()) return nullptr;
  auto t = Tokenizer::FromFile(dir + "/" + model + "/tokenizer.json");
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

Tokens Tok(const Tokenizer& t, std::string_view text, bool special = false) {
  auto e = t.Encode(text, special);
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? e->tokens : Tokens{};
}

TEST(WordPieceTest, BertUncasedRules) {
  auto t = Load("test-model-float32");
  if (t == nullptr) GTEST_SKIP() << "fixture model2vec-rs-fixtures not found ($QUIVER_FIXTURES)";
  auto e = t->Encode("Hello, World!", /*add_special=*/true);
  QUIVER_ASSERT_OK(e.status());
  EXPECT_EQ(e->tokens, (Tokens{"[CLS]", "hello", ",", "world", "!", "[SEP]"}));
  // The post-processor names [CLS] and [SEP] with ids 101 and 102 (bge's
  // full vocabulary; this trimmed one has them at 2 and 3): the template's
  // ids win, as in Hugging Face's tokenizers.
  EXPECT_EQ(e->ids, (std::vector<int32_t>{101, 6598, 16, 1094, 5, 102}));
  EXPECT_EQ(e->type_ids, (std::vector<int32_t>(6, 0)));
  // Accents stripped (lowercase implies it), subwords, unknown words.
  EXPECT_EQ(Tok(*t, "Café NAÏVE"), (Tokens{"cafe", "naive"}));
  EXPECT_EQ(Tok(*t, "embedding quivers"), (Tokens{"em", "##bed", "##ding", "quiver", "##s"}));
  EXPECT_EQ(Tok(*t, "unaffable"), (Tokens{"una", "##ffa", "##ble"}));
  // Chinese characters are words of their own; one missing from the vocab
  // is [UNK].
  EXPECT_EQ(Tok(*t, "我爱北京"), (Tokens{"我", "[UNK]", "北", "京"}));
  // Hangul: NFD turns syllables into conjoining jamo (letters, not marks,
  // so they stay), then WordPiece matches them.
  EXPECT_EQ(Tok(*t, "안녕"), (Tokens{"ᄋ", "##ᅡ", "##ᆫ", "##ᄂ", "##ᅧ", "##ᆼ"}));
  // Control characters vanish; any whitespace separates; emoji is unknown.
  EXPECT_EQ(Tok(*t, "hello\x01\tworld\xE2\x80\x83!"), (Tokens{"hello", "world", "!"}));
  EXPECT_EQ(Tok(*t, "hello \xF0\x9F\x98\x80"), (Tokens{"hello", "[UNK]"}));
  // Special tokens typed in the text are recognised.
  EXPECT_EQ(Tok(*t, "hello [SEP] world"), (Tokens{"hello", "[SEP]", "world"}));
  EXPECT_THAT(t->Encode("bad \xC3\x28", false).status(), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(t->pad_id(), 0);
}

TEST(WordPieceTest, PairsAndTruncation) {
  auto t = Load("test-model-float32");
  if (t == nullptr) GTEST_SKIP() << "fixture model2vec-rs-fixtures not found ($QUIVER_FIXTURES)";
  auto e = t->EncodePair("hello world", "quivers", true);
  QUIVER_ASSERT_OK(e.status());
  EXPECT_EQ(e->tokens, (Tokens{"[CLS]", "hello", "world", "[SEP]", "quiver", "##s", "[SEP]"}));
  EXPECT_EQ(e->type_ids, (std::vector<int32_t>{0, 0, 0, 0, 1, 1, 1}));
  // Longest first: the longer text loses tokens first; specials always fit.
  auto cut = t->EncodePair("hello world hello world", "quivers", true, 7);
  QUIVER_ASSERT_OK(cut.status());
  EXPECT_EQ(cut->tokens, (Tokens{"[CLS]", "hello", "world", "[SEP]", "quiver", "##s", "[SEP]"}));
  auto single = t->Encode("hello world hello", true, 4);
  EXPECT_EQ(single->tokens, (Tokens{"[CLS]", "hello", "world", "[SEP]"}));
}

TEST(UnigramTest, MetaspaceAndViterbi) {
  auto t = Load("test-model-vocab-quantized");
  if (t == nullptr) GTEST_SKIP() << "fixture model2vec-rs-fixtures not found ($QUIVER_FIXTURES)";
  // Lowercased; punctuation padded with spaces, runs of spaces collapsed,
  // stripped; spaces become U+2581 with one prepended; the best split.
  EXPECT_EQ(Tok(*t, "Hello,  World!"), (Tokens{"\u2581hello", "\u2581,", "\u2581world", "\u2581!"}));
  EXPECT_EQ(Tok(*t, "hello", true), (Tokens{"\u2581hello"}));  // No specials in its template.
}

TEST(TokenizerJsonTest, UnsupportedPartsAreNamed) {
  auto j = ParseJson(R"({"model": {"type": "BPE", "vocab": {}, "merges": []}})");
  EXPECT_THAT(Tokenizer::FromJson(*j).status(), StatusIs(absl::StatusCode::kInvalidArgument));
  auto k = ParseJson(R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0, "a": 1}},
                         "normalizer": {"type": "Precompiled"}})");
  auto s = Tokenizer::FromJson(*k);
  EXPECT_THAT(s.status(), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_NE(s.status().message().find("Precompiled"), std::string::npos);
}

}  // namespace
}  // namespace quiver::nn
