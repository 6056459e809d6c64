#include "text/analyzer.h"

#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/uscript.h>

#include <algorithm>
#include <array>

#include "common/coding.h"
#include "common/strings.h"
#include "text/porter_stemmer.h"

namespace quiver::text {
namespace {

// Lucene's EnglishAnalyzer stop words.
constexpr std::array<std::string_view, 33> kEnglishStopWords = {
    "a",   "an",    "and",  "are",   "as",    "at",   "be",   "but", "by",  "for",  "if",
    "in",  "into",  "is",   "it",    "no",    "not",  "of",   "on",  "or",  "such", "that",
    "the", "their", "then", "there", "these", "they", "this", "to",  "was", "will", "with"};

bool IsStopWord(std::string_view w) {
  return std::find(kEnglishStopWords.begin(), kEnglishStopWords.end(), w) !=
         kEnglishStopWords.end();
}

enum class Kind { kSeparator, kWord, kCjk };

Kind Classify(UChar32 c) {
  // The prolonged sound mark (and its halfwidth form) belongs to the Common
  // script but is part of Katakana and Hiragana words.
  if (c == 0x30FC || c == 0xFF70) return Kind::kCjk;
  UErrorCode err = U_ZERO_ERROR;
  const UScriptCode script = uscript_getScript(c, &err);
  if (U_SUCCESS(err) && (script == USCRIPT_HAN || script == USCRIPT_HIRAGANA ||
                         script == USCRIPT_KATAKANA || script == USCRIPT_HANGUL)) {
    // Only letters: CJK punctuation shares the scripts' blocks.
    if (u_isalpha(c)) return Kind::kCjk;
  }
  if (u_isalnum(c)) return Kind::kWord;
  const int8_t type = u_charType(c);
  if (type == U_NON_SPACING_MARK || type == U_COMBINING_SPACING_MARK || type == U_ENCLOSING_MARK) {
    return Kind::kWord;
  }
  return Kind::kSeparator;
}

void AppendUtf8(std::string* out, UChar32 c) {
  char buf[4];
  int32_t len = 0;
  UBool error = false;
  U8_APPEND(reinterpret_cast<uint8_t*>(buf), len, 4, c, error);
  if (!error) out->append(buf, len);
}

}  // namespace

absl::StatusOr<Analyzer> Analyzer::Named(std::string_view name) {
  if (name == "standard" || name == "cjk" || name.empty()) return Analyzer(AnalyzerOptions{});
  if (name == "english") return Analyzer(AnalyzerOptions{.english = true});
  return absl::InvalidArgumentError(
      StrCat("unknown analyzer ", Quoted(name), "; expected standard, english or cjk"));
}

absl::StatusOr<std::vector<std::string>> Analyzer::Analyze(std::string_view text) const {
  if (!IsValidUtf8(text)) return absl::InvalidArgumentError("text is not valid UTF-8");
  UErrorCode err = U_ZERO_ERROR;
  const icu::Normalizer2* nfkc = icu::Normalizer2::getNFKCCasefoldInstance(err);
  if (U_FAILURE(err)) return absl::InternalError("ICU NFKC_Casefold is unavailable");
  const icu::UnicodeString input = icu::UnicodeString::fromUTF8(
      icu::StringPiece(text.data(), static_cast<int32_t>(text.size())));
  const icu::UnicodeString normal = nfkc->normalize(input, err);
  if (U_FAILURE(err)) return absl::InternalError("ICU normalisation failed");

  // Code points with their classes.
  std::vector<UChar32> cps;
  for (int32_t i = 0; i < normal.length();) {
    const UChar32 c = normal.char32At(i);
    cps.push_back(c);
    i += U16_LENGTH(c);
  }
  std::vector<Kind> kinds(cps.size());
  for (size_t i = 0; i < cps.size(); ++i) kinds[i] = Classify(cps[i]);
  // Joiners inside words: an apostrophe between letters, '.' or ','
  // between digits (UAX #29's MidLetter / MidNum).
  for (size_t i = 1; i + 1 < cps.size(); ++i) {
    if (kinds[i] != Kind::kSeparator || kinds[i - 1] != Kind::kWord ||
        kinds[i + 1] != Kind::kWord) {
      continue;
    }
    const UChar32 c = cps[i];
    if ((c == '\'' || c == 0x2019) && u_isalpha(cps[i - 1]) && u_isalpha(cps[i + 1])) {
      kinds[i] = Kind::kWord;
    } else if ((c == '.' || c == ',') && u_isdigit(cps[i - 1]) && u_isdigit(cps[i + 1])) {
      kinds[i] = Kind::kWord;
    }
  }

  std::vector<std::string> tokens;
  auto emit = [&](std::string token) {
    if (token.empty() || token.size() > options_.max_token_bytes) return;
    if (options_.english) {
      // Possessives: "quiver's" -> "quiver".
      if (token.size() > 2 && token.compare(token.size() - 2, 2, "'s") == 0) {
        token.resize(token.size() - 2);
      } else if (token.size() > 4 && token.compare(token.size() - 4, 4, "\xE2\x80\x99s") == 0) {
        token.resize(token.size() - 4);
      }
      if (IsStopWord(token)) return;
      token = PorterStem(token);
    }
    tokens.push_back(std::move(token));
  };
  size_t i = 0;
  while (i < cps.size()) {
    if (kinds[i] == Kind::kSeparator) {
      ++i;
      continue;
    }
    const Kind kind = kinds[i];
    size_t end = i;
    while (end < cps.size() && kinds[end] == kind) ++end;
    if (kind == Kind::kWord) {
      std::string word;
      for (size_t k = i; k < end; ++k) AppendUtf8(&word, cps[k]);
      emit(std::move(word));
    } else if (end - i == 1) {
      std::string uni;
      AppendUtf8(&uni, cps[i]);
      emit(std::move(uni));
    } else {
      for (size_t k = i; k + 1 < end; ++k) {
        std::string bigram;
        AppendUtf8(&bigram, cps[k]);
        AppendUtf8(&bigram, cps[k + 1]);
        emit(std::move(bigram));
      }
    }
    i = end;
  }
  return tokens;
}

}  // namespace quiver::text
