// Expected tokens are worked out from the tokenizer.json rules (BertNormalizer:
// clean text, CJK characters split, NFD accent stripping, lowercasing;
// BertPreTokenizer; WordPiece greedy longest match; Unigram Viterbi).
#include "nn/tokenizer.h"

#include <map>

#include "absl/strings/escaping.h"
#include "common/json.h"
#include "common/strings.h"
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
  EXPECT_THAT(t->Encode("bad \xC3\x28", false).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
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
  EXPECT_EQ(Tok(*t, "Hello,  World!"),
            (Tokens{"\u2581hello", "\u2581,", "\u2581world", "\u2581!"}));
  EXPECT_EQ(Tok(*t, "hello", true), (Tokens{"\u2581hello"}));  // No specials in its template.
}

TEST(TokenizerJsonTest, UnsupportedPartsAreNamed) {
  auto j = ParseJson(R"({"model": {"type": "WordLevel", "vocab": {}}})");
  EXPECT_THAT(Tokenizer::FromJson(*j).status(), StatusIs(absl::StatusCode::kInvalidArgument));
  auto k = ParseJson(R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0, "a": 1}},
                         "normalizer": {"type": "Nmt"}})");
  auto s = Tokenizer::FromJson(*k);
  EXPECT_THAT(s.status(), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_NE(s.status().message().find("Nmt"), std::string::npos);
  // A Precompiled normalizer without its rules.
  auto p = ParseJson(R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0, "a": 1}},
                         "normalizer": {"type": "Precompiled", "precompiled_charsmap": "AQI="}})");
  s = Tokenizer::FromJson(*p);
  EXPECT_THAT(s.status(), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_NE(s.status().message().find("Precompiled"), std::string::npos);
}

// ---- SentencePiece's Precompiled normalizer ----------------------------------

// A darts-clone double array for `rules` (key bytes -> replacement), built
// the simplest way: every node with children or a value gets a block of 256
// units of its own, so a child's position is its block's base + its byte and
// a node's value sits at its block's base. Returns precompiled_charsmap.
std::string CharsMap(const std::vector<std::pair<std::string, std::string>>& rules) {
  struct Node {
    std::map<unsigned char, int> children;
    int value = -1;
  };
  std::vector<Node> nodes(1);
  std::string replacements;
  for (const auto& [key, replacement] : rules) {
    int n = 0;
    for (unsigned char c : key) {
      auto it = nodes[n].children.find(c);
      if (it == nodes[n].children.end()) {
        nodes.push_back({});
        it = nodes[n].children.emplace(c, static_cast<int>(nodes.size()) - 1).first;
      }
      n = it->second;
    }
    nodes[n].value = static_cast<int>(replacements.size());
    replacements += replacement;
    replacements.push_back('\0');
  }
  std::vector<uint32_t> units(256 * (nodes.size() + 1), 0);
  // Node i's block starts at 256 * (i + 1); the root's own unit is at 0.
  auto base = [](int node) { return static_cast<uint32_t>(256 * (node + 1)); };
  units[0] = (0 ^ base(0)) << 10;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].value >= 0) units[base(static_cast<int>(i))] = nodes[i].value | (1u << 31);
    for (const auto& [c, child] : nodes[i].children) {
      const uint32_t pos = base(static_cast<int>(i)) + c;
      units[pos] = c | (nodes[child].value >= 0 ? 1u << 8 : 0) | ((pos ^ base(child)) << 10);
    }
  }
  std::string raw;
  const uint32_t size = static_cast<uint32_t>(units.size() * 4);
  raw.append(reinterpret_cast<const char*>(&size), 4);
  raw.append(reinterpret_cast<const char*>(units.data()), units.size() * 4);
  raw += replacements;
  std::string out;
  absl::Base64Escape(raw, &out);
  return out;
}

std::unique_ptr<Tokenizer> PrecompiledTokenizer(const std::string& charsmap) {
  const std::string json = StrCat(R"({
    "normalizer": {"type": "Sequence", "normalizers": [
      {"type": "Precompiled", "precompiled_charsmap": ")",
                                  charsmap, R"("},
      {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]},
    "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always"},
    "model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0], ["\u2581", -2],
      ["\u2581fine", -1], ["\u2581x", -1], ["f", -5], ["i", -5], ["n", -5], ["e", -5],
      ["x", -5], ["\u0301", -5], ["\u0302", -5], ["\u0303", -5], ["a", -5]]}})");
  auto j = ParseJson(json);
  EXPECT_TRUE(j.ok()) << j.status();
  auto t = Tokenizer::FromJson(*j);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

TEST(PrecompiledTest, RulesApplyPerGraphemeClusterAsHuggingFaceDoes) {
  const std::string rules = CharsMap({{"\uFB01", "fi"},         // The ligature.
                                      {"a", "x"},               // A plain letter.
                                      {"\u200D", " "},          // Zero-width joiner.
                                      {"\u00E9", "e\u0301"}});  // Precomposed e-acute.
  auto t = PrecompiledTokenizer(rules);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(Tok(*t, "\uFB01ne"), (Tokens{"\u2581fine"}));
  EXPECT_EQ(Tok(*t, "a"), (Tokens{"\u2581x"}));
  // A cluster under 6 bytes that starts with a key is replaced whole (the
  // combining mark goes with it): "a" + U+0301 is 3 bytes.
  EXPECT_EQ(Tok(*t, "a\u0301"), (Tokens{"\u2581x"}));
  // From 6 bytes on, character by character: "a" + three marks is 7 bytes.
  EXPECT_EQ(Tok(*t, "a\u0301\u0302\u0303"), (Tokens{"\u2581x", "\u0301", "\u0302", "\u0303"}));
  // Replacements then meet the Replace step: the joiner's space joins the
  // others and runs collapse.
  EXPECT_EQ(Tok(*t, "a \u200D fine"), (Tokens{"\u2581x", "\u2581fine"}));
  // No rule: unchanged.
  EXPECT_EQ(Tok(*t, "fine"), (Tokens{"\u2581fine"}));
  EXPECT_EQ(Tok(*t, "\u00E9"), (Tokens{"\u2581", "e", "\u0301"}));
}

// ---- Byte-level BPE (GPT-2 / Llama 3 / Qwen2 style) ----------------------------

// GPT-2's byte alphabet, written out independently of the library: bytes
// that print map to themselves, the others to U+0100.. in byte order.
std::vector<std::string> ByteChars() {
  std::vector<std::string> out(256);
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool prints = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    const int c = prints ? b : next++;
    std::string u;
    if (c < 0x80) {
      u.push_back(static_cast<char>(c));
    } else {
      u.push_back(static_cast<char>(0xC0 | (c >> 6)));
      u.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
    out[b] = u;
  }
  return out;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

// A byte-level BPE tokenizer.json: the 256 byte characters, then the merged
// tokens of `merges` ("a b", in rank order), with `pre` as pre-tokenizer.
std::unique_ptr<Tokenizer> ByteLevelBpe(const std::vector<std::string>& merges,
                                        const std::string& pre, const std::string& extra = "") {
  std::string vocab;
  int id = 0;
  for (const std::string& c : ByteChars()) {
    vocab += (id ? "," : "") + JsonString(c) + ":" + std::to_string(id);
    ++id;
  }
  std::string merge_list;
  for (const std::string& m : merges) {
    const size_t sp = m.find(' ');
    vocab += "," + JsonString(m.substr(0, sp) + m.substr(sp + 1)) + ":" + std::to_string(id);
    ++id;
    merge_list += (merge_list.empty() ? "" : ",") + JsonString(m);
  }
  const std::string json = R"({"model": {"type": "BPE", "vocab": {)" + vocab + R"(}, "merges": [)" +
                           merge_list + R"(]}, "pre_tokenizer": )" + pre +
                           R"(, "decoder": {"type": "ByteLevel"})" + extra + "}";
  auto j = ParseJson(json);
  EXPECT_TRUE(j.ok()) << j.status();
  auto t = Tokenizer::FromJson(*j);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

TEST(BpeTest, Gpt2ByteLevelSplitAndMerges) {
  auto t = ByteLevelBpe({"\u0120 w", "o r", "\u0120w or", "l d", "\u0120wor ld", "H e", "l l",
                         "He ll", "Hell o", "' s"},
                        R"({"type": "ByteLevel", "add_prefix_space": false})");
  ASSERT_NE(t, nullptr);
  // 's | Hello | " world": the regex pieces; spaces are U+0120 in the alphabet.
  EXPECT_EQ(Tok(*t, "Hello world's"), (Tokens{"Hello", "\u0120world", "'s"}));
  // Two spaces: \s+(?!\S) takes the first alone, the second joins the word.
  EXPECT_EQ(Tok(*t, "Hello  world"), (Tokens{"Hello", "\u0120", "\u0120world"}));
  // Non-ASCII text is its UTF-8 bytes in the alphabet: 한 = ED 95 9C.
  EXPECT_EQ(Tok(*t, "\xED\x95\x9C"), (Tokens{"\u00ED", "\u0137", "\u013E"}));
  auto prefixed = ByteLevelBpe({"\u0120 w", "o r", "\u0120w or", "l d", "\u0120wor ld"},
                               R"({"type": "ByteLevel", "add_prefix_space": true})");
  EXPECT_EQ(Tok(*prefixed, "world"), (Tokens{"\u0120world"}));
}

TEST(BpeTest, LowestRankMergesFirst) {
  // b+c ranks before a+b: "abc" -> a, bc -> abc; the other order gives ab, c.
  auto bc_first = ByteLevelBpe({"b c", "a bc"}, "null");
  auto ab_first = ByteLevelBpe({"a b", "b c"}, "null");
  EXPECT_EQ(Tok(*bc_first, "abc"), (Tokens{"abc"}));
  EXPECT_EQ(Tok(*ab_first, "abc"), (Tokens{"ab", "c"}));
  // Equal pairs merge leftmost first: "aaa" with a+a -> aa, a.
  auto aa = ByteLevelBpe({"a a"}, "null");
  EXPECT_EQ(Tok(*aa, "aaa"), (Tokens{"aa", "a"}));
  EXPECT_EQ(Tok(*aa, "aaaa"), (Tokens{"aa", "aa"}));
}

TEST(BpeTest, Llama3SplitPattern) {
  // Llama 3's pre-tokenizer: the Split regex (isolated), then byte-level
  // without its own regex. Merges that would cross a wrong split rank first.
  const std::string pre = R"({"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
       "behavior": "Isolated", "invert": false},
      {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]})";
  auto t = ByteLevelBpe(
      {"3 4", "\u0120 1", "1 2", "12 3", "4 5", "\u0120 o", "\u0120o k", "\u010A \u010A", "' M"},
      pre);
  ASSERT_NE(t, nullptr);
  // I | 'M (case-insensitive contraction) | " " | 123 | 45 (digits in
  // threes) | " ok" | "\n\n" | yes.
  EXPECT_EQ(Tok(*t, "I'M 12345 ok\n\nyes"),
            (Tokens{"I", "'M", "\u0120", "123", "45", "\u0120ok", "\u010A\u010A", "y", "e", "s"}));
}

TEST(BpeTest, ByteLevelRoundTrip) {
  auto t = ByteLevelBpe({"\u0120 t", "h e", "\u0120t he"},
                        R"({"type": "ByteLevel", "add_prefix_space": false})");
  for (const std::string text :
       {"the cat  sat\n\non the mat", "\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4 text",
        "caf\xC3\xA9 \xF0\x9F\x98\x80!", " leading and trailing  "}) {
    auto e = t->Encode(text, false);
    QUIVER_ASSERT_OK(e.status());
    EXPECT_EQ(t->Decode(e->ids, true), text);
    std::string streamed;
    for (size_t i = 0; i < e->ids.size(); ++i) streamed += t->DecodeToken(e->ids[i], i == 0);
    EXPECT_EQ(streamed, text);
  }
}

// Found by the long tokenizer_json_fuzz run (UBSan): an added token id of 8.9e30
// was converted to int32. Every id and count read from the file is now checked.
TEST(TokenizerJsonTest, NumbersOutOfRangeAreRefused) {
  const std::string base = R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0, "a": 1}})";
  for (
      const char* extra :
      {R"(, "added_tokens": [{"id": 8.9e30, "content": "x"}]})",
       R"(, "added_tokens": [{"id": -1, "content": "x"}]})",
       R"(, "added_tokens": [{"id": 1.5, "content": "x"}]})",
       R"(, "added_tokens": [{"id": "1", "content": "x"}]})",
       R"(, "post_processor": {"type": "BertProcessing", "cls": ["[CLS]", 1e40], "sep": ["[SEP]", 1]}})",
       R"(, "post_processor": {"type": "BertProcessing", "cls": ["[CLS]", "0"], "sep": ["[SEP]", 1]}})",
       R"(, "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "x", "type_id": 0}}],
              "special_tokens": {"x": {"id": "x", "ids": [1e20], "tokens": ["x"]}}}})",
       R"(, "post_processor": {"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A", "type_id": -4e30}}]}})",
       R"(, "decoder": {"type": "Strip", "content": " ", "start": 1e19, "stop": 0}})"}) {
    auto j = ParseJson(base + std::string(extra));
    QUIVER_ASSERT_OK(j.status());
    EXPECT_THAT(Tokenizer::FromJson(*j).status(), StatusIs(absl::StatusCode::kInvalidArgument))
        << extra;
  }
  auto wp = ParseJson(
      R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0}, "max_input_chars_per_word": 1e99}})");
  EXPECT_THAT(Tokenizer::FromJson(*wp).status(), StatusIs(absl::StatusCode::kInvalidArgument));
  auto uni = ParseJson(R"({"model": {"type": "Unigram", "vocab": [["a", -1.0]], "unk_id": 5}})");
  EXPECT_THAT(Tokenizer::FromJson(*uni).status(), StatusIs(absl::StatusCode::kInvalidArgument));
  auto ok = ParseJson(base + R"(, "added_tokens": [{"id": 7, "content": "xyz"}]})");
  QUIVER_ASSERT_OK(Tokenizer::FromJson(*ok).status());
}

TEST(BpeTest, SentencePieceStyleByteFallback) {
  // TinyLlama's tokenizer.json shape: "▁" prepended and spaces replaced by
  // the normalizer, no pre-tokenizer, BPE with byte fallback; the decoder
  // undoes it and strips the one leading space.
  std::string vocab = R"("<unk>": 0, "<s>": 1, "</s>": 2)";
  for (int b = 0; b < 256; ++b) {
    char name[16];
    std::snprintf(name, sizeof name, ",\"<0x%02X>\": %d", b, 3 + b);
    vocab += name;
  }
  vocab += R"(, "▁": 259, "h": 260, "i": 261, "▁h": 262, "▁hi": 263)";
  const std::string json =
      R"({"model": {"type": "BPE", "vocab": {)" + vocab +
      R"(}, "merges": ["▁ h", "▁h i"], "byte_fallback": true, "fuse_unk": true, "unk_token": "<unk>"},
      "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                     {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
      "pre_tokenizer": null,
      "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                         {"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
      "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                  {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
      "added_tokens": [{"id": 1, "content": "<s>", "special": true}, {"id": 2, "content": "</s>", "special": true}]})";
  auto j = ParseJson(json);
  QUIVER_ASSERT_OK(j.status());
  auto t = Tokenizer::FromJson(*j);
  QUIVER_ASSERT_OK(t.status());
  auto e = (*t)->Encode("hi \xED\x95\x9C", true);
  QUIVER_ASSERT_OK(e.status());
  EXPECT_EQ(e->ids, (std::vector<int32_t>{1, 263, 259, 3 + 0xED, 3 + 0x95, 3 + 0x9C}));
  EXPECT_EQ((*t)->Decode(e->ids, true), "hi \xED\x95\x9C");
  EXPECT_EQ((*t)->Decode(e->ids, false), "<s> hi \xED\x95\x9C");
  EXPECT_TRUE((*t)->IsSpecial(1));
  EXPECT_FALSE((*t)->IsSpecial(263));
  // Streaming: the first token loses its space, later ones keep it; byte
  // tokens give raw bytes.
  EXPECT_EQ((*t)->DecodeToken(263, true), "hi");
  EXPECT_EQ((*t)->DecodeToken(263, false), " hi");
  EXPECT_EQ((*t)->DecodeToken(3 + 0xED, false), "\xED");
  // A lone partial character decodes to U+FFFD in whole-text decoding.
  EXPECT_EQ((*t)->Decode({3 + 0xED}, true), "\xEF\xBF\xBD");
  EXPECT_EQ((*t)->vocab_size(), 264u);
}

TEST(BpeTest, SplitBehaviours) {
  // The Hugging Face documentation's example, "the-final--countdown" at "-".
  // Every piece is in the vocabulary and ignore_merges maps it whole.
  auto with_vocab = [](const std::string& behavior, const Tokens& pieces) {
    std::string vocab;
    int id = 0;
    for (const std::string& p : pieces) {
      vocab += (id ? "," : "") + JsonString(p) + ":" + std::to_string(id);
      ++id;
    }
    auto j = ParseJson(R"({"model": {"type": "BPE", "vocab": {)" + vocab +
                       R"(}, "merges": [], "ignore_merges": true},
        "pre_tokenizer": {"type": "Split", "pattern": {"String": "-"}, "behavior": ")" +
                       behavior + R"(", "invert": false}})");
    auto t = Tokenizer::FromJson(*j);
    EXPECT_TRUE(t.ok()) << t.status();
    return Tok(**t, "the-final--countdown");
  };
  const Tokens isolated = {"the", "-", "final", "-", "-", "countdown"};
  EXPECT_EQ(with_vocab("Isolated", isolated), isolated);
  const Tokens removed = {"the", "final", "countdown"};
  EXPECT_EQ(with_vocab("Removed", removed), removed);
  const Tokens previous = {"the-", "final-", "-", "countdown"};
  EXPECT_EQ(with_vocab("MergedWithPrevious", previous), previous);
  const Tokens next = {"the", "-final", "-", "-countdown"};
  EXPECT_EQ(with_vocab("MergedWithNext", next), next);
  const Tokens contiguous = {"the", "-", "final", "--", "countdown"};
  EXPECT_EQ(with_vocab("Contiguous", contiguous), contiguous);
}

}  // namespace
}  // namespace quiver::nn
