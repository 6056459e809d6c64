#include "rag/chunker.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quiver::rag {
namespace {

// A whitespace word counter: one token per whitespace-separated word, and
// one per Chinese or Japanese character (U+3000..U+9FFF: lead bytes
// 0xE3..0xE9), which are written without spaces. Korean is spaced: words.
absl::StatusOr<size_t> CountWords(std::string_view s) {
  size_t n = 0;
  bool in_word = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
      in_word = false;
    } else if (c >= 0xE3 && c <= 0xE9) {
      ++n;  // A CJK ideograph or kana counts alone.
      in_word = false;
      i += 2;
    } else if (!in_word) {
      ++n;
      in_word = true;
    }
  }
  return n;
}

std::string Sentence(int words, int tag) {
  std::string s;
  // Capitalised, as sentences are (Unicode's rules see no sentence end
  // before a lower-case word).
  for (int i = 0; i < words; ++i) {
    s += (i == 0 ? "W" : "w") + std::to_string(tag) + "_" + std::to_string(i) + " ";
  }
  s.back() = '.';
  return s;
}

std::string_view Text(std::string_view doc, const Chunk& c) {
  return doc.substr(c.begin, c.end - c.begin);
}

TEST(ChunkerTest, EveryChunkFitsAndTheChunksCoverTheText) {
  std::string doc;
  for (int p = 0; p < 6; ++p) {
    for (int s = 0; s < 5; ++s) doc += Sentence(7 + (p * 5 + s) % 9, p * 5 + s) + " ";
    doc += "\n\n";
  }
  ChunkOptions opt{.chunk_tokens = 40, .overlap_tokens = 8};
  auto chunks = ChunkText(doc, opt, CountWords);
  ASSERT_TRUE(chunks.ok()) << chunks.status();
  ASSERT_GT(chunks->size(), 3u);
  size_t covered = 0;
  for (const Chunk& c : *chunks) {
    EXPECT_LE(c.tokens, opt.chunk_tokens);
    EXPECT_EQ(c.tokens, *CountWords(Text(doc, c)));
    EXPECT_LE(c.begin, covered) << "a gap before " << c.begin;
    covered = std::max(covered, c.end);
  }
  EXPECT_EQ(doc.find_first_not_of(" \n", covered), std::string::npos);
  for (size_t i = 1; i < chunks->size(); ++i) {
    const Chunk& prev = (*chunks)[i - 1];
    const Chunk& c = (*chunks)[i];
    EXPECT_GT(c.begin, prev.begin);
    // Overlap: the next chunk starts inside the previous one, by at most
    // overlap_tokens tokens, at a sentence start.
    ASSERT_LT(c.begin, prev.end);
    EXPECT_LE(*CountWords(doc.substr(c.begin, prev.end - c.begin)), opt.overlap_tokens);
    EXPECT_TRUE(doc[c.begin] == 'W' || doc[c.begin] == 'w');
    EXPECT_TRUE(doc[c.begin - 1] == ' ' || doc[c.begin - 1] == '\n');
  }
}

TEST(ChunkerTest, PrefersParagraphThenSentenceBoundaries) {
  // Paragraphs of 12 words: chunks of 30 hold two whole paragraphs.
  std::string doc;
  for (int p = 0; p < 8; ++p) doc += Sentence(6, 2 * p) + " " + Sentence(6, 2 * p + 1) + "\n\n";
  auto chunks = ChunkText(doc, {.chunk_tokens = 30, .overlap_tokens = 0}, CountWords);
  ASSERT_TRUE(chunks.ok());
  for (const Chunk& c : *chunks) {
    EXPECT_EQ(c.tokens, 24u) << Text(doc, c);
    EXPECT_EQ(doc.substr(c.end, 2), "\n\n");
  }
  // One paragraph of long sentences: cuts at sentence ends.
  std::string para;
  for (int s = 0; s < 10; ++s) para += Sentence(9, s) + " ";
  chunks = ChunkText(para, {.chunk_tokens = 40, .overlap_tokens = 0}, CountWords);
  ASSERT_TRUE(chunks.ok());
  ASSERT_GT(chunks->size(), 2u);
  for (const Chunk& c : *chunks) {
    EXPECT_EQ(para[c.end - 1], '.') << Text(para, c);
    EXPECT_EQ(c.tokens % 9, 0u);
  }
  // The overlap is whole sentences when they fit in it: two of four words.
  para.clear();
  for (int s = 0; s < 20; ++s) para += Sentence(4, s) + " ";
  chunks = ChunkText(para, {.chunk_tokens = 20, .overlap_tokens = 9}, CountWords);
  ASSERT_TRUE(chunks.ok());
  for (size_t i = 1; i < chunks->size(); ++i) {
    const Chunk& prev = (*chunks)[i - 1];
    const Chunk& c = (*chunks)[i];
    EXPECT_EQ(para[c.begin], 'W');
    EXPECT_EQ(*CountWords(para.substr(c.begin, prev.end - c.begin)), 8u);
  }
}

TEST(ChunkerTest, SplitsLongSentencesAtWordsAndUnbrokenTextAtCharacters) {
  std::string doc = Sentence(100, 1);
  auto chunks = ChunkText(doc, {.chunk_tokens = 16, .overlap_tokens = 4}, CountWords);
  ASSERT_TRUE(chunks.ok());
  for (const Chunk& c : *chunks) {
    EXPECT_LE(c.tokens, 16u);
    EXPECT_TRUE(doc[c.begin] == 'w' || doc[c.begin] == 'W');
  }
  // Punctuation stays with the word before it.
  doc.clear();
  for (int i = 0; i < 40; ++i) doc += "word, (another) word; ";
  chunks = ChunkText(doc, {.chunk_tokens = 10, .overlap_tokens = 3}, CountWords);
  ASSERT_TRUE(chunks.ok());
  for (const Chunk& c : *chunks) {
    EXPECT_TRUE(doc[c.begin] == 'w' || doc[c.begin] == '(') << Text(doc, c);
  }
  // 3,000 letters with no break count one token each (a counter that
  // charges per 10 bytes): only characters are left to cut at.
  std::string blob(3000, 'x');
  auto per10 = [](std::string_view s) -> absl::StatusOr<size_t> { return (s.size() + 9) / 10; };
  chunks = ChunkText(blob, {.chunk_tokens = 32, .overlap_tokens = 0}, per10);
  ASSERT_TRUE(chunks.ok());
  size_t total = 0;
  for (const Chunk& c : *chunks) {
    EXPECT_LE(c.tokens, 32u);
    total += c.end - c.begin;
  }
  EXPECT_EQ(total, blob.size());
}

TEST(ChunkerTest, KoreanChineseAndJapaneseSentenceEnds) {
  const std::string ko =
      "서울은 한국의 수도입니다. 부산은 항구 도시입니다! 제주도에 가 본 적이 있나요? 네.";
  std::vector<size_t> breaks = SentenceBreaks(ko);
  ASSERT_EQ(breaks.size(), 3u);
  EXPECT_EQ(ko.substr(breaks[0]).rfind("부산은", 0), 0u);
  EXPECT_EQ(ko.substr(breaks[1]).rfind("제주도에", 0), 0u);
  EXPECT_EQ(ko.substr(breaks[2]).rfind("네.", 0), 0u);
  const std::string zh = "北京是中国的首都。上海很大！你去过吗？";
  EXPECT_EQ(SentenceBreaks(zh).size(), 2u);
  const std::string ja = "東京は日本の首都です。大阪にも行きました。";
  ASSERT_EQ(SentenceBreaks(ja).size(), 1u);
  EXPECT_EQ(ja.substr(SentenceBreaks(ja)[0]), "大阪にも行きました。");

  // A Korean paragraph too long for one chunk is cut at its sentence ends.
  std::string doc;
  for (int i = 0; i < 12; ++i) doc += "오늘은 날씨가 정말 좋아서 공원에 산책을 갔습니다. ";
  auto chunks = ChunkText(doc, {.chunk_tokens = 20, .overlap_tokens = 0}, CountWords);
  ASSERT_TRUE(chunks.ok());
  ASSERT_GT(chunks->size(), 3u);
  for (const Chunk& c : *chunks) {
    EXPECT_TRUE(Text(doc, c).ends_with("갔습니다.")) << Text(doc, c);
    EXPECT_TRUE(Text(doc, c).starts_with("오늘은")) << "[" << Text(doc, c) << "] " << c.begin;
  }
}

TEST(ChunkerTest, MarkdownHeadingsStayWithTheirTextAndNameTheSection) {
  std::string doc = "# Guide\n\nIntro words here.\n\n## Install\n\n";
  for (int i = 0; i < 6; ++i) doc += Sentence(5, i) + "\n\n";
  doc += "## Use\n";
  for (int i = 6; i < 12; ++i) doc += Sentence(5, i) + "\n\n";
  doc += "```\n# not a heading\n```\n";
  auto chunks = ChunkText(doc, {.chunk_tokens = 14, .overlap_tokens = 0}, CountWords);
  ASSERT_TRUE(chunks.ok());
  bool saw_install = false, saw_use = false;
  for (const Chunk& c : *chunks) {
    const std::string_view t = Text(doc, c);
    // A chunk never ends with a heading line.
    const size_t last_line = t.rfind('\n');
    const std::string_view tail = last_line == std::string_view::npos ? t : t.substr(last_line + 1);
    EXPECT_FALSE(tail.starts_with("#")) << t;
    if (t.find("W3_0") != std::string_view::npos) {
      saw_install = true;
      EXPECT_EQ(c.heading, "Guide > Install");
    }
    if (t.find("W11_0") != std::string_view::npos) {
      saw_use = true;
      EXPECT_EQ(c.heading, "Guide > Use");
    }
  }
  EXPECT_TRUE(saw_install && saw_use);
  EXPECT_EQ(chunks->back().heading, "Guide > Use");  // The fence's "#" is code.
}

TEST(ChunkerTest, WhitespaceOnlyTextHasNoChunks) {
  auto chunks = ChunkText(" \n\n\t ", {}, CountWords);
  ASSERT_TRUE(chunks.ok());
  EXPECT_TRUE(chunks->empty());
}

}  // namespace
}  // namespace quiver::rag
