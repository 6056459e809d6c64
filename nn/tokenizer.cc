#include "nn/tokenizer.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <memory>
#include <queue>
#include <regex>
#include <sstream>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "common/coding.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "unicode/brkiter.h"
#include "unicode/locid.h"
#include "unicode/normalizer2.h"
#include "unicode/regex.h"
#include "unicode/uchar.h"
#include "unicode/unistr.h"
#include "unicode/utf8.h"

namespace quiver::nn {
namespace {

using U32 = std::u32string;

U32 Decode(std::string_view s) {
  U32 out;
  out.reserve(s.size());
  int32_t i = 0;
  const int32_t n = static_cast<int32_t>(s.size());
  while (i < n) {
    UChar32 c;
    U8_NEXT(reinterpret_cast<const uint8_t*>(s.data()), i, n, c);
    out.push_back(static_cast<char32_t>(c < 0 ? 0xFFFD : c));
  }
  return out;
}

void AppendUtf8(std::string* out, char32_t c) {
  uint8_t buf[4];
  int32_t len = 0;
  UBool error = false;
  U8_APPEND(buf, len, 4, static_cast<UChar32>(c), error);
  if (!error) out->append(reinterpret_cast<const char*>(buf), len);
}

std::string Encode(const U32& s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) AppendUtf8(&out, c);
  return out;
}

icu::UnicodeString ToIcu(const U32& s) {
  icu::UnicodeString u;
  for (char32_t c : s) u.append(static_cast<UChar32>(c));
  return u;
}

U32 FromIcu(const icu::UnicodeString& u) {
  U32 out;
  for (int32_t i = 0; i < u.length();) {
    const UChar32 c = u.char32At(i);
    out.push_back(static_cast<char32_t>(c));
    i += U16_LENGTH(c);
  }
  return out;
}

// Unicode predicates as Hugging Face's tokenizers (Rust char methods) use them.
bool IsWhitespace(char32_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
         u_isUWhiteSpace(static_cast<UChar32>(c));
}
bool IsOther(char32_t c) {  // General category C*.
  const int8_t t = u_charType(static_cast<UChar32>(c));
  return t == U_CONTROL_CHAR || t == U_FORMAT_CHAR || t == U_SURROGATE || t == U_PRIVATE_USE_CHAR ||
         t == U_UNASSIGNED;
}
bool IsPunctuation(char32_t c) {  // ASCII punctuation or category P*.
  if (c < 128)
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
           (c >= 123 && c <= 126);
  return u_ispunct(static_cast<UChar32>(c));
}
bool IsChineseChar(char32_t c) {  // BERT's CJK Unified Ideographs blocks.
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}
bool IsWordChar(char32_t c) {  // Regex \w (Unicode): letters, marks, digits, connectors.
  return u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_POSIX_ALNUM) || c == '_' ||
         u_charType(static_cast<UChar32>(c)) == U_CONNECTOR_PUNCTUATION ||
         (U_GET_GC_MASK(static_cast<UChar32>(c)) & U_GC_M_MASK) != 0;
}

absl::Status Unsupported(std::string_view kind, const Json& j) {
  const Json* type = j.Find("type");
  return absl::InvalidArgumentError(
      StrCat("tokenizer.json: unsupported ", kind, " ",
             type != nullptr && type->is_string() ? type->as_string() : std::string("(no type)")));
}

bool BoolField(const Json& j, std::string_view key, bool fallback) {
  const Json* v = j.Find(key);
  return v != nullptr && v->is_bool() ? v->as_bool() : fallback;
}
std::string StringField(const Json& j, std::string_view key, std::string fallback = "") {
  const Json* v = j.Find(key);
  return v != nullptr && v->is_string() ? v->as_string() : fallback;
}

constexpr int64_t kMaxTokenId = (1 << 26) - 1;

// A whole number in [lo, hi]; anything else (a string, 1.5, 8.9e30, NaN) is an error naming
// what it was meant to be, never a conversion out of range.
absl::StatusOr<int32_t> IntValue(const Json& v, std::string_view what, int64_t lo, int64_t hi) {
  if (!v.is_number() || !(v.as_number() >= static_cast<double>(lo)) ||
      !(v.as_number() <= static_cast<double>(hi)) || v.as_number() != std::floor(v.as_number())) {
    return absl::InvalidArgumentError(
        StrCat("tokenizer.json: ", what, " must be a whole number in [", lo, ", ", hi, "]"));
  }
  return static_cast<int32_t>(v.as_number());
}
absl::StatusOr<int32_t> IntField(const Json& j, std::string_view key, int64_t lo, int64_t hi,
                                 int32_t fallback) {
  const Json* v = j.Find(key);
  if (v == nullptr || v->is_null()) return fallback;
  return IntValue(*v, key, lo, hi);
}

// ---- Normalizers ------------------------------------------------------------

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void Apply(U32* s) const = 0;
};

U32 Nfd(const U32& s, const char* form, UNormalization2Mode mode) {
  UErrorCode err = U_ZERO_ERROR;
  const icu::Normalizer2* n = icu::Normalizer2::getInstance(nullptr, form, mode, err);
  if (U_FAILURE(err)) return s;
  icu::UnicodeString out = n->normalize(ToIcu(s), err);
  return U_FAILURE(err) ? s : FromIcu(out);
}

void Lowercase(U32* s) {
  icu::UnicodeString u = ToIcu(*s);
  u.toLower(icu::Locale::getRoot());
  *s = FromIcu(u);
}

void StripAccents(U32* s) {  // NFD, then drop nonspacing marks.
  U32 d = Nfd(*s, "nfc", UNORM2_DECOMPOSE);
  s->clear();
  for (char32_t c : d) {
    if (u_charType(static_cast<UChar32>(c)) != U_NON_SPACING_MARK) s->push_back(c);
  }
}

class BertNormalizer : public Normalizer {
 public:
  explicit BertNormalizer(const Json& j)
      : clean_(BoolField(j, "clean_text", true)),
        chinese_(BoolField(j, "handle_chinese_chars", true)),
        lowercase_(BoolField(j, "lowercase", true)) {
    const Json* sa = j.Find("strip_accents");
    strip_ = sa != nullptr && sa->is_bool() ? sa->as_bool() : lowercase_;
  }
  void Apply(U32* s) const override {
    U32 out;
    out.reserve(s->size());
    for (char32_t c : *s) {
      if (clean_) {
        if (c == 0 || c == 0xFFFD || (c != '\t' && c != '\n' && c != '\r' && IsOther(c))) continue;
        if (IsWhitespace(c)) c = ' ';
      }
      if (chinese_ && IsChineseChar(c)) {
        out.push_back(' ');
        out.push_back(c);
        out.push_back(' ');
      } else {
        out.push_back(c);
      }
    }
    if (strip_) StripAccents(&out);
    if (lowercase_) Lowercase(&out);
    *s = std::move(out);
  }

 private:
  bool clean_, chinese_, lowercase_, strip_;
};

class FnNormalizer : public Normalizer {
 public:
  explicit FnNormalizer(std::function<void(U32*)> fn) : fn_(std::move(fn)) {}
  void Apply(U32* s) const override { fn_(s); }

 private:
  std::function<void(U32*)> fn_;
};

class ReplaceNormalizer : public Normalizer {
 public:
  static absl::StatusOr<std::unique_ptr<Normalizer>> Make(const Json& j) {
    auto r = std::make_unique<ReplaceNormalizer>();
    const Json* pattern = j.Find("pattern");
    r->content_ = StringField(j, "content");
    if (pattern == nullptr) return Unsupported("normalizer", j);
    if (const Json* s = pattern->Find("String"); s != nullptr && s->is_string()) {
      r->literal_ = s->as_string();
    } else if (const Json* re = pattern->Find("Regex"); re != nullptr && re->is_string()) {
      try {
        r->regex_ = std::regex(re->as_string(), std::regex::ECMAScript);
        r->is_regex_ = true;
      } catch (const std::regex_error&) {
        return absl::InvalidArgumentError(
            StrCat("tokenizer.json: Replace regex not supported: ", re->as_string()));
      }
    } else {
      return Unsupported("normalizer pattern", j);
    }
    return std::unique_ptr<Normalizer>(std::move(r));
  }
  void Apply(U32* s) const override {
    std::string text = Encode(*s);
    if (is_regex_) {
      text = std::regex_replace(text, regex_, content_);
    } else if (!literal_.empty()) {
      std::string out;
      size_t pos = 0;
      for (size_t hit; (hit = text.find(literal_, pos)) != std::string::npos;
           pos = hit + literal_.size()) {
        out.append(text, pos, hit - pos);
        out.append(content_);
      }
      out.append(text, pos);
      text = std::move(out);
    }
    *s = Decode(text);
  }

 private:
  std::string literal_, content_;
  std::regex regex_;
  bool is_regex_ = false;
};

// SentencePiece's compiled normalisation rules ("Precompiled", as XLM-R,
// mBART and Marian tokenizers carry them): precompiled_charsmap, base64 of
// a little-endian u32 trie size in bytes, a darts-clone double-array trie
// over UTF-8 bytes, then the replacement strings, each NUL-terminated; a
// key's value is the offset of its replacement. Applied as Hugging Face's
// tokenizers applies it: per extended grapheme cluster, a cluster shorter
// than 6 bytes whose bytes start with a key is replaced whole by the
// shortest such key's replacement; otherwise each character is replaced
// when it is a key itself.
class PrecompiledNormalizer : public Normalizer {
 public:
  static absl::StatusOr<std::unique_ptr<Normalizer>> Make(const Json& j) {
    std::string raw;
    if (!absl::Base64Unescape(StringField(j, "precompiled_charsmap"), &raw)) {
      return absl::InvalidArgumentError(
          "tokenizer.json: Precompiled normalizer: precompiled_charsmap is not base64");
    }
    auto n = std::make_unique<PrecompiledNormalizer>();
    std::string_view in(raw);
    uint32_t trie_bytes = 0;
    if (!GetFixed32(&in, &trie_bytes) || trie_bytes % 4 != 0 || trie_bytes > in.size()) {
      return absl::InvalidArgumentError(
          "tokenizer.json: Precompiled normalizer: precompiled_charsmap is truncated");
    }
    n->units_.resize(trie_bytes / 4);
    for (uint32_t& u : n->units_) (void)GetFixed32(&in, &u);
    n->replacements_ = std::string(in);
    if (n->units_.empty()) n->units_.push_back(0);
    return std::unique_ptr<Normalizer>(std::move(n));
  }

  void Apply(U32* s) const override {
    if (s->empty()) return;
    const icu::UnicodeString u = ToIcu(*s);
    UErrorCode err = U_ZERO_ERROR;
    std::unique_ptr<icu::BreakIterator> graphemes(
        icu::BreakIterator::createCharacterInstance(icu::Locale::getRoot(), err));
    if (U_FAILURE(err)) return;
    graphemes->setText(u);
    U32 out;
    out.reserve(s->size());
    size_t at = 0;  // In code points.
    for (int32_t b = graphemes->first(), e = graphemes->next(); e != icu::BreakIterator::DONE;
         b = e, e = graphemes->next()) {
      const size_t count = static_cast<size_t>(u.countChar32(b, e - b));
      const U32 cluster = s->substr(at, count);
      at += count;
      const std::string bytes = Encode(cluster);
      if (bytes.size() < 6) {
        if (const char* r = Shortest(bytes)) {
          out += Decode(r);
          continue;
        }
      }
      for (char32_t c : cluster) {
        const std::string one = Encode(U32(1, c));
        if (const char* r = Shortest(one)) {
          out += Decode(r);
        } else {
          out.push_back(c);
        }
      }
    }
    *s = std::move(out);
  }

 private:
  // darts-clone unit fields.
  static bool HasLeaf(uint32_t u) { return (u >> 8) & 1; }
  static uint32_t Value(uint32_t u) { return u & ((1u << 31) - 1); }
  static uint32_t Label(uint32_t u) { return u & ((1u << 31) | 0xFF); }
  static uint32_t Offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }

  // The replacement of the shortest key that `key` starts with; null when
  // none.
  const char* Shortest(const std::string& key) const {
    size_t pos = Offset(units_[0]);
    for (unsigned char c : key) {
      if (c == 0) break;
      pos ^= c;
      if (pos >= units_.size() || Label(units_[pos]) != c) return nullptr;
      const uint32_t unit = units_[pos];
      pos ^= Offset(unit);
      if (pos >= units_.size()) return nullptr;
      if (HasLeaf(unit)) {
        const uint32_t v = Value(units_[pos]);
        return v < replacements_.size() ? replacements_.c_str() + v : nullptr;
      }
    }
    return nullptr;
  }

  std::vector<uint32_t> units_;
  std::string replacements_;
};

class SequenceNormalizer : public Normalizer {
 public:
  std::vector<std::unique_ptr<Normalizer>> steps;
  void Apply(U32* s) const override {
    for (const auto& n : steps) n->Apply(s);
  }
};

absl::StatusOr<std::unique_ptr<Normalizer>> MakeNormalizer(const Json& j) {
  const std::string type = StringField(j, "type");
  if (type == "BertNormalizer") return std::unique_ptr<Normalizer>(new BertNormalizer(j));
  if (type == "Lowercase") return std::unique_ptr<Normalizer>(new FnNormalizer(Lowercase));
  if (type == "StripAccents") return std::unique_ptr<Normalizer>(new FnNormalizer(StripAccents));
  if (type == "NFD" || type == "NFC" || type == "NFKD" || type == "NFKC") {
    const bool k = type[2] == 'K';
    const bool decompose = type.back() == 'D';
    return std::unique_ptr<Normalizer>(new FnNormalizer([k, decompose](U32* s) {
      *s = Nfd(*s, k ? "nfkc" : "nfc", decompose ? UNORM2_DECOMPOSE : UNORM2_COMPOSE);
    }));
  }
  if (type == "Strip") {
    const bool left = BoolField(j, "strip_left", true), right = BoolField(j, "strip_right", true);
    return std::unique_ptr<Normalizer>(new FnNormalizer([left, right](U32* s) {
      size_t b = 0, e = s->size();
      while (left && b < e && IsWhitespace((*s)[b])) ++b;
      while (right && e > b && IsWhitespace((*s)[e - 1])) --e;
      *s = s->substr(b, e - b);
    }));
  }
  if (type == "Prepend") {
    const U32 prefix = Decode(StringField(j, "prepend"));
    return std::unique_ptr<Normalizer>(new FnNormalizer([prefix](U32* s) {
      if (!s->empty()) *s = prefix + *s;
    }));
  }
  if (type == "Replace") return ReplaceNormalizer::Make(j);
  if (type == "Precompiled") return PrecompiledNormalizer::Make(j);
  if (type == "Sequence") {
    auto seq = std::make_unique<SequenceNormalizer>();
    const Json* list = j.Find("normalizers");
    if (list == nullptr || !list->is_array()) return Unsupported("normalizer", j);
    for (const Json& n : list->as_array()) {
      ASSIGN_OR_RETURN(auto step, MakeNormalizer(n));
      seq->steps.push_back(std::move(step));
    }
    return std::unique_ptr<Normalizer>(std::move(seq));
  }
  return Unsupported("normalizer", j);
}

// ---- Pre-tokenizers ---------------------------------------------------------

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits every piece further.
  virtual void Split(std::vector<U32>* pieces) const = 0;
};

// Splits each piece where `split_at` says: kRemove drops the character,
// kIsolate makes it its own piece.
enum class CharRole { kKeep, kRemove, kIsolate };
void SplitBy(std::vector<U32>* pieces, const std::function<CharRole(char32_t)>& role) {
  std::vector<U32> out;
  for (const U32& p : *pieces) {
    U32 cur;
    for (char32_t c : p) {
      const CharRole r = role(c);
      if (r == CharRole::kKeep) {
        cur.push_back(c);
        continue;
      }
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
      if (r == CharRole::kIsolate) out.push_back(U32(1, c));
    }
    if (!cur.empty()) out.push_back(std::move(cur));
  }
  *pieces = std::move(out);
}

class FnPreTokenizer : public PreTokenizer {
 public:
  explicit FnPreTokenizer(std::function<void(std::vector<U32>*)> fn) : fn_(std::move(fn)) {}
  void Split(std::vector<U32>* pieces) const override { fn_(pieces); }

 private:
  std::function<void(std::vector<U32>*)> fn_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  std::vector<std::unique_ptr<PreTokenizer>> steps;
  void Split(std::vector<U32>* pieces) const override {
    for (const auto& s : steps) s->Split(pieces);
  }
};

// GPT-2's byte-level alphabet: every byte as a printable character (bytes
// that print stay themselves, the rest map to U+0100 onwards in order).
struct ByteAlphabet {
  char32_t to_char[256];
  absl::flat_hash_map<char32_t, uint8_t> to_byte;
  ByteAlphabet() {
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool prints = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      to_char[b] = prints ? static_cast<char32_t>(b) : static_cast<char32_t>(next++);
      to_byte[to_char[b]] = static_cast<uint8_t>(b);
    }
  }
};
const ByteAlphabet& Bytes() {
  static const ByteAlphabet* const kAlphabet = new ByteAlphabet();
  return *kAlphabet;
}

// GPT-2's split: contractions, letters, numbers, other symbols (each with
// an optional leading space), then whitespace.
constexpr char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Splits pieces at the matches of a regular expression (ICU's engine, which
// has the Unicode classes and look-ahead the Hugging Face patterns use).
class RegexSplit : public PreTokenizer {
 public:
  enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
  static absl::StatusOr<std::unique_ptr<PreTokenizer>> Make(const std::string& pattern,
                                                            bool literal, Behavior behavior,
                                                            bool invert) {
    UErrorCode status = U_ZERO_ERROR;
    UParseError parse;
    const icu::UnicodeString u = icu::UnicodeString::fromUTF8(pattern);
    std::unique_ptr<icu::RegexPattern> re(
        icu::RegexPattern::compile(u, literal ? UREGEX_LITERAL : 0, parse, status));
    if (U_FAILURE(status)) {
      return absl::InvalidArgumentError(StrCat("tokenizer.json: cannot compile split pattern ",
                                               pattern, ": ", u_errorName(status)));
    }
    auto s = std::make_unique<RegexSplit>();
    s->re_ = std::move(re);
    s->behavior_ = behavior;
    s->invert_ = invert;
    return std::unique_ptr<PreTokenizer>(std::move(s));
  }
  void Split(std::vector<U32>* pieces) const override {
    std::vector<U32> out;
    for (const U32& p : *pieces) {
      const icu::UnicodeString u = ToIcu(p);
      UErrorCode status = U_ZERO_ERROR;
      std::unique_ptr<icu::RegexMatcher> m(re_->matcher(u, status));
      // (start, end, is_match) spans in UTF-16 units covering the piece.
      std::vector<std::tuple<int32_t, int32_t, bool>> spans;
      int32_t at = 0;
      while (U_SUCCESS(status) && m->find(status) && U_SUCCESS(status)) {
        const int32_t b = m->start(status), e = m->end(status);
        if (e == b) continue;  // Empty matches split nothing.
        if (b > at) spans.emplace_back(at, b, false);
        spans.emplace_back(b, e, true);
        at = e;
      }
      if (at < u.length()) spans.emplace_back(at, u.length(), false);
      if (invert_) {
        for (auto& s : spans) std::get<2>(s) = !std::get<2>(s);
      }
      // Hugging Face's split behaviours, e.g. "the-final--countdown" at "-":
      // isolated the,-,final,-,-,countdown; merged with previous the-,final-,-,
      // countdown; merged with next the,-final,-,-countdown; contiguous
      // the,-,final,--,countdown; removed the,final,countdown.
      std::vector<icu::UnicodeString> parts;
      bool merge_next = false, prev_match = false;
      for (const auto& [b, e, match] : spans) {
        const icu::UnicodeString piece = u.tempSubStringBetween(b, e);
        if (!match) {
          if (merge_next) {
            parts.back().append(piece);
          } else {
            parts.push_back(piece);
          }
          merge_next = prev_match = false;
          continue;
        }
        const bool join = (behavior_ == Behavior::kMergedWithPrevious && !prev_match) ||
                          (behavior_ == Behavior::kContiguous && prev_match);
        if (behavior_ != Behavior::kRemoved) {
          if (join && !parts.empty()) {
            parts.back().append(piece);
          } else {
            parts.push_back(piece);
          }
        }
        merge_next = behavior_ == Behavior::kMergedWithNext;
        prev_match = true;
      }
      for (const auto& part : parts) {
        if (!part.isEmpty()) out.push_back(FromIcu(part));
      }
    }
    *pieces = std::move(out);
  }

 private:
  std::unique_ptr<icu::RegexPattern> re_;
  Behavior behavior_ = Behavior::kIsolated;
  bool invert_ = false;
};

absl::StatusOr<std::unique_ptr<PreTokenizer>> MakePreTokenizer(const Json& j) {
  const std::string type = StringField(j, "type");
  if (type == "BertPreTokenizer") {
    return std::unique_ptr<PreTokenizer>(new FnPreTokenizer([](std::vector<U32>* p) {
      SplitBy(p, [](char32_t c) {
        return IsWhitespace(c)    ? CharRole::kRemove
               : IsPunctuation(c) ? CharRole::kIsolate
                                  : CharRole::kKeep;
      });
    }));
  }
  if (type == "WhitespaceSplit") {
    return std::unique_ptr<PreTokenizer>(new FnPreTokenizer([](std::vector<U32>* p) {
      SplitBy(p, [](char32_t c) { return IsWhitespace(c) ? CharRole::kRemove : CharRole::kKeep; });
    }));
  }
  if (type == "Punctuation") {
    return std::unique_ptr<PreTokenizer>(new FnPreTokenizer([](std::vector<U32>* p) {
      SplitBy(p,
              [](char32_t c) { return IsPunctuation(c) ? CharRole::kIsolate : CharRole::kKeep; });
    }));
  }
  if (type == "Whitespace") {  // \w+|[^\w\s]+
    return std::unique_ptr<PreTokenizer>(new FnPreTokenizer([](std::vector<U32>* pieces) {
      std::vector<U32> out;
      for (const U32& p : *pieces) {
        U32 cur;
        int cur_kind = 0;  // 1 word, 2 other.
        for (char32_t c : p) {
          const int kind = IsWhitespace(c) ? 0 : IsWordChar(c) ? 1 : 2;
          if (kind != cur_kind && !cur.empty()) {
            out.push_back(std::move(cur));
            cur.clear();
          }
          cur_kind = kind;
          if (kind != 0) cur.push_back(c);
        }
        if (!cur.empty()) out.push_back(std::move(cur));
      }
      *pieces = std::move(out);
    }));
  }
  if (type == "Metaspace") {
    const U32 rep = Decode(StringField(j, "replacement", "\xE2\x96\x81"));
    if (rep.size() != 1) return Unsupported("pre-tokenizer", j);
    const char32_t r = rep[0];
    std::string scheme = StringField(j, "prepend_scheme", "");
    if (scheme.empty()) scheme = BoolField(j, "add_prefix_space", true) ? "always" : "never";
    const bool split = BoolField(j, "split", true);
    return std::unique_ptr<PreTokenizer>(
        new FnPreTokenizer([r, scheme, split](std::vector<U32>* pieces) {
          std::vector<U32> out;
          for (size_t pi = 0; pi < pieces->size(); ++pi) {
            U32 s = (*pieces)[pi];
            for (char32_t& c : s) {
              if (c == ' ') c = r;
            }
            const bool prepend = scheme == "always" || (scheme == "first" && pi == 0);
            if (prepend && !s.empty() && s[0] != r) s.insert(s.begin(), r);
            if (!split) {
              out.push_back(std::move(s));
              continue;
            }
            U32 cur;  // Each replacement starts a piece (merged with the next).
            for (char32_t c : s) {
              if (c == r && !cur.empty()) {
                out.push_back(std::move(cur));
                cur.clear();
              }
              cur.push_back(c);
            }
            if (!cur.empty()) out.push_back(std::move(cur));
          }
          *pieces = std::move(out);
        }));
  }
  if (type == "ByteLevel") {
    const bool prefix = BoolField(j, "add_prefix_space", true);
    std::unique_ptr<PreTokenizer> regex;
    if (BoolField(j, "use_regex", true)) {
      ASSIGN_OR_RETURN(
          regex, RegexSplit::Make(kGpt2Pattern, false, RegexSplit::Behavior::kIsolated, false));
    }
    std::shared_ptr<PreTokenizer> split(std::move(regex));
    return std::unique_ptr<PreTokenizer>(
        new FnPreTokenizer([prefix, split](std::vector<U32>* pieces) {
          if (prefix) {
            for (U32& p : *pieces) {
              if (!p.empty() && p[0] != ' ') p.insert(p.begin(), U' ');
            }
          }
          if (split) split->Split(pieces);
          const ByteAlphabet& alphabet = Bytes();
          for (U32& p : *pieces) {
            const std::string utf8 = Encode(p);
            p.clear();
            for (unsigned char b : utf8) p.push_back(alphabet.to_char[b]);
          }
        }));
  }
  if (type == "Split") {
    const Json* pattern = j.Find("pattern");
    const Json* str = pattern != nullptr ? pattern->Find("String") : nullptr;
    const Json* re = pattern != nullptr ? pattern->Find("Regex") : nullptr;
    if ((str == nullptr || !str->is_string()) && (re == nullptr || !re->is_string())) {
      return Unsupported("pre-tokenizer", j);
    }
    const std::string behavior = StringField(j, "behavior", "Isolated");
    RegexSplit::Behavior b;
    if (behavior == "Removed") {
      b = RegexSplit::Behavior::kRemoved;
    } else if (behavior == "Isolated") {
      b = RegexSplit::Behavior::kIsolated;
    } else if (behavior == "MergedWithPrevious") {
      b = RegexSplit::Behavior::kMergedWithPrevious;
    } else if (behavior == "MergedWithNext") {
      b = RegexSplit::Behavior::kMergedWithNext;
    } else if (behavior == "Contiguous") {
      b = RegexSplit::Behavior::kContiguous;
    } else {
      return absl::InvalidArgumentError(
          StrCat("tokenizer.json: unsupported split behavior ", behavior));
    }
    const bool literal = str != nullptr && str->is_string();
    return RegexSplit::Make(literal ? str->as_string() : re->as_string(), literal, b,
                            BoolField(j, "invert", false));
  }
  if (type == "Digits") {
    const bool each = BoolField(j, "individual_digits", false);
    return RegexSplit::Make(each ? "\\p{N}" : "\\p{N}+", false, RegexSplit::Behavior::kIsolated,
                            false);
  }
  if (type == "Sequence") {
    auto seq = std::make_unique<SequencePreTokenizer>();
    const Json* list = j.Find("pretokenizers");
    if (list == nullptr || !list->is_array()) return Unsupported("pre-tokenizer", j);
    for (const Json& p : list->as_array()) {
      ASSIGN_OR_RETURN(auto step, MakePreTokenizer(p));
      seq->steps.push_back(std::move(step));
    }
    return std::unique_ptr<PreTokenizer>(std::move(seq));
  }
  return Unsupported("pre-tokenizer", j);
}

// ---- Models -------------------------------------------------------------------

class Model {
 public:
  virtual ~Model() = default;
  virtual void Tokenize(const U32& piece, std::vector<int32_t>* ids) const = 0;
  // A {"token": id} vocabulary object (WordPiece, BPE).
  absl::Status AddVocab(const Json& object) {
    for (const auto& [token, id] : object.as_object()) {
      ASSIGN_OR_RETURN(const int32_t i, IntValue(id, "vocab id", 0, kMaxTokenId));
      vocab[token] = i;
      if (static_cast<size_t>(i) >= id_to_token.size()) id_to_token.resize(i + 1);
      id_to_token[i] = token;
    }
    return absl::OkStatus();
  }
  absl::flat_hash_map<std::string, int32_t> vocab;
  std::vector<std::string> id_to_token;
};

class WordPiece : public Model {
 public:
  static absl::StatusOr<std::unique_ptr<Model>> Make(const Json& j) {
    auto m = std::make_unique<WordPiece>();
    const Json* vocab = j.Find("vocab");
    if (vocab == nullptr || !vocab->is_object()) {
      return absl::InvalidArgumentError("tokenizer.json: WordPiece needs a vocab object");
    }
    RETURN_IF_ERROR(m->AddVocab(*vocab));
    m->prefix_ = StringField(j, "continuing_subword_prefix", "##");
    ASSIGN_OR_RETURN(m->max_chars_, IntField(j, "max_input_chars_per_word", 0, INT32_MAX,
                                             static_cast<int32_t>(m->max_chars_)));
    const std::string unk = StringField(j, "unk_token", "[UNK]");
    auto it = m->vocab.find(unk);
    if (it == m->vocab.end()) {
      return absl::InvalidArgumentError(StrCat("tokenizer.json: unk token ", unk, " not in vocab"));
    }
    m->unk_ = it->second;
    return std::unique_ptr<Model>(std::move(m));
  }
  void Tokenize(const U32& word, std::vector<int32_t>* ids) const override {
    if (word.size() > max_chars_) {
      ids->push_back(unk_);
      return;
    }
    std::vector<int32_t> out;
    size_t start = 0;
    std::string piece;
    while (start < word.size()) {
      size_t end = word.size();
      int32_t found = -1;
      while (start < end) {
        piece = start > 0 ? prefix_ : std::string();
        piece += Encode(word.substr(start, end - start));
        auto it = vocab.find(piece);
        if (it != vocab.end()) {
          found = it->second;
          break;
        }
        --end;
      }
      if (found < 0) {  // Greedy match failed: the whole word is unknown.
        ids->push_back(unk_);
        return;
      }
      out.push_back(found);
      start = end;
    }
    ids->insert(ids->end(), out.begin(), out.end());
  }

 private:
  std::string prefix_;
  size_t max_chars_ = 100;
  int32_t unk_ = 0;
};

class Unigram : public Model {
 public:
  static absl::StatusOr<std::unique_ptr<Model>> Make(const Json& j) {
    auto m = std::make_unique<Unigram>();
    const Json* vocab = j.Find("vocab");
    if (vocab == nullptr || !vocab->is_array()) {
      return absl::InvalidArgumentError("tokenizer.json: Unigram needs a vocab list");
    }
    double min_score = std::numeric_limits<double>::infinity();
    for (const Json& e : vocab->as_array()) {
      if (!e.is_array() || e.as_array().size() != 2 || !e.as_array()[0].is_string() ||
          !e.as_array()[1].is_number()) {
        return absl::InvalidArgumentError(
            "tokenizer.json: Unigram vocab entries are [piece, score]");
      }
      const std::string& piece = e.as_array()[0].as_string();
      const int32_t id = static_cast<int32_t>(m->id_to_token.size());
      m->vocab.emplace(piece, id);
      m->id_to_token.push_back(piece);
      m->scores_.push_back(e.as_array()[1].as_number());
      min_score = std::min(min_score, m->scores_.back());
      m->max_len_ = std::max(m->max_len_, Decode(piece).size());
    }
    ASSIGN_OR_RETURN(m->unk_,
                     IntField(j, "unk_id", 0, static_cast<int64_t>(m->id_to_token.size()) - 1, -1));
    if (BoolField(j, "byte_fallback", false)) {
      return absl::InvalidArgumentError("tokenizer.json: Unigram byte_fallback is not supported");
    }
    m->unk_score_ = min_score - 10.0;  // As sentencepiece / tokenizers.
    return std::unique_ptr<Model>(std::move(m));
  }
  // Viterbi: the segmentation with the largest total log-probability.
  void Tokenize(const U32& piece, std::vector<int32_t>* ids) const override {
    const size_t n = piece.size();
    std::vector<double> best(n + 1, -std::numeric_limits<double>::infinity());
    std::vector<int32_t> tok(n + 1, -1);
    std::vector<size_t> from(n + 1, 0);
    best[0] = 0;
    std::vector<std::string> prefixes;
    for (size_t s = 0; s < n; ++s) {
      if (best[s] == -std::numeric_limits<double>::infinity()) continue;
      std::string sub;
      bool single = false;
      for (size_t len = 1; len <= max_len_ && s + len <= n; ++len) {
        AppendUtf8(&sub, piece[s + len - 1]);
        auto it = vocab.find(sub);
        if (it == vocab.end()) continue;
        if (len == 1) single = true;
        const double score = best[s] + scores_[it->second];
        if (score > best[s + len]) {
          best[s + len] = score;
          tok[s + len] = it->second;
          from[s + len] = s;
        }
      }
      if (!single) {  // An unknown character.
        const double score = best[s] + unk_score_;
        if (score > best[s + 1]) {
          best[s + 1] = score;
          tok[s + 1] = -1;
          from[s + 1] = s;
        }
      }
    }
    std::vector<int32_t> rev;
    for (size_t e = n; e > 0; e = from[e]) rev.push_back(tok[e]);
    bool last_unk = false;
    for (auto it = rev.rbegin(); it != rev.rend(); ++it) {
      const bool is_unk = *it < 0 || *it == unk_;
      if (is_unk && last_unk) continue;  // Consecutive unknowns fuse.
      ids->push_back(is_unk ? (unk_ >= 0 ? unk_ : 0) : *it);
      last_unk = is_unk;
    }
  }

 private:
  std::vector<double> scores_;
  size_t max_len_ = 1;
  int32_t unk_ = -1;
  double unk_score_ = 0;
};

// Byte-pair encoding as Hugging Face's BPE model: a word starts as its
// characters (unknown ones as <0xXX> byte tokens with byte_fallback, else
// the unk token), then the pair with the lowest merge rank is merged,
// leftmost first, until no pair has a merge.
class Bpe : public Model {
 public:
  static absl::StatusOr<std::unique_ptr<Model>> Make(const Json& j) {
    auto m = std::make_unique<Bpe>();
    const Json* vocab = j.Find("vocab");
    const Json* merges = j.Find("merges");
    if (vocab == nullptr || !vocab->is_object() || merges == nullptr || !merges->is_array()) {
      return absl::InvalidArgumentError(
          "tokenizer.json: BPE needs a vocab object and a merges list");
    }
    RETURN_IF_ERROR(m->AddVocab(*vocab));
    const std::string prefix = StringField(j, "continuing_subword_prefix");
    int32_t rank = 0;
    for (const Json& e : merges->as_array()) {
      std::string a, b;
      if (e.is_string()) {  // "a b"
        const std::string& pair = e.as_string();
        const size_t sp = pair.find(' ', 1);
        if (sp == std::string::npos)
          return absl::InvalidArgumentError(StrCat("tokenizer.json: bad merge \"", pair, "\""));
        a = pair.substr(0, sp);
        b = pair.substr(sp + 1);
      } else if (e.is_array() && e.as_array().size() == 2 && e.as_array()[0].is_string() &&
                 e.as_array()[1].is_string()) {  // ["a", "b"]
        a = e.as_array()[0].as_string();
        b = e.as_array()[1].as_string();
      } else {
        return absl::InvalidArgumentError("tokenizer.json: bad merge entry");
      }
      // The merged token drops b's continuing-subword prefix.
      std::string merged =
          a + (prefix.empty() || !b.starts_with(prefix) ? b : b.substr(prefix.size()));
      auto ia = m->vocab.find(a), ib = m->vocab.find(b), im = m->vocab.find(merged);
      if (ia == m->vocab.end() || ib == m->vocab.end() || im == m->vocab.end()) {
        return absl::InvalidArgumentError(
            StrCat("tokenizer.json: merge \"", a, " ", b, "\" uses tokens not in the vocab"));
      }
      m->merges_.try_emplace(PairKey(ia->second, ib->second), rank++, im->second);
    }
    m->prefix_ = prefix;
    m->suffix_ = StringField(j, "end_of_word_suffix");
    m->byte_fallback_ = BoolField(j, "byte_fallback", false);
    m->fuse_unk_ = BoolField(j, "fuse_unk", false);
    m->ignore_merges_ = BoolField(j, "ignore_merges", false);
    const std::string unk = StringField(j, "unk_token");
    if (!unk.empty()) {
      auto it = m->vocab.find(unk);
      if (it == m->vocab.end())
        return absl::InvalidArgumentError(
            StrCat("tokenizer.json: unk token ", unk, " not in vocab"));
      m->unk_ = it->second;
    }
    if (const Json* d = j.Find("dropout"); d != nullptr && d->is_number() && d->as_number() > 0) {
      return absl::InvalidArgumentError("tokenizer.json: BPE dropout is not supported");
    }
    return std::unique_ptr<Model>(std::move(m));
  }

  void Tokenize(const U32& word, std::vector<int32_t>* ids) const override {
    if (ignore_merges_) {
      if (auto it = vocab.find(Encode(word)); it != vocab.end()) {
        ids->push_back(it->second);
        return;
      }
    }
    // Initial symbols.
    std::vector<int32_t> sym;
    bool last_unk = false;
    for (size_t i = 0; i < word.size(); ++i) {
      std::string ch;
      AppendUtf8(&ch, word[i]);
      std::string key = (i > 0 ? prefix_ : std::string()) + ch;
      if (i + 1 == word.size()) key += suffix_;
      if (auto it = vocab.find(key); it != vocab.end()) {
        sym.push_back(it->second);
        last_unk = false;
        continue;
      }
      if (byte_fallback_) {
        std::vector<int32_t> bytes;
        for (unsigned char b : ch) {
          char name[8];
          std::snprintf(name, sizeof name, "<0x%02X>", b);
          auto it = vocab.find(name);
          if (it == vocab.end()) break;
          bytes.push_back(it->second);
        }
        if (bytes.size() == ch.size()) {
          sym.insert(sym.end(), bytes.begin(), bytes.end());
          last_unk = false;
          continue;
        }
      }
      if (unk_ < 0) continue;  // No unk token: the character is dropped, as HF does.
      if (!(fuse_unk_ && last_unk)) sym.push_back(unk_);
      last_unk = true;
    }
    // Merges: a heap of (rank, position) over a linked list of symbols.
    const size_t n = sym.size();
    std::vector<int> prev(n), next(n);
    for (size_t i = 0; i < n; ++i) {
      prev[i] = static_cast<int>(i) - 1;
      next[i] = i + 1 < n ? static_cast<int>(i + 1) : -1;
    }
    using Entry = std::tuple<int32_t, int, int32_t, int32_t>;  // rank, left pos, left id, right id
    std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
    auto push = [&](int i) {
      if (i < 0 || next[i] < 0) return;
      auto it = merges_.find(PairKey(sym[i], sym[next[i]]));
      if (it != merges_.end()) heap.emplace(it->second.first, i, sym[i], sym[next[i]]);
    };
    for (size_t i = 0; i + 1 < n; ++i) push(static_cast<int>(i));
    std::vector<bool> gone(n, false);
    while (!heap.empty()) {
      const auto [rank, i, left, right] = heap.top();
      heap.pop();
      // Stale: a neighbour changed since this pair was queued.
      if (gone[i] || next[i] < 0 || sym[i] != left || sym[next[i]] != right) continue;
      const int r = next[i];
      sym[i] = merges_.at(PairKey(left, right)).second;
      gone[r] = true;
      next[i] = next[r];
      if (next[r] >= 0) prev[next[r]] = i;
      push(prev[i]);
      push(i);
    }
    for (size_t i = 0; i < n; ++i) {
      if (!gone[i]) ids->push_back(sym[i]);
    }
  }

 private:
  static uint64_t PairKey(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  absl::flat_hash_map<uint64_t, std::pair<int32_t, int32_t>> merges_;  // -> (rank, merged id)
  std::string prefix_, suffix_;
  bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
  int32_t unk_ = -1;
};

// ---- Decoders --------------------------------------------------------------

// One step of a decoder chain, applied to the list of token strings.
struct DecodeStep {
  enum class Kind { kByteLevel, kMetaspace, kReplace, kByteFallback, kFuse, kStrip, kWordPiece };
  Kind kind;
  std::string from, to;     // Replace; Metaspace (from: the replacement); WordPiece (from: prefix).
  int start = 0, stop = 0;  // Strip.
  bool flag = false;        // Metaspace: strip the first space; WordPiece: cleanup.
};

absl::StatusOr<std::vector<DecodeStep>> MakeDecoder(const Json& j) {
  using K = DecodeStep::Kind;
  const std::string type = StringField(j, "type");
  if (type == "Sequence") {
    std::vector<DecodeStep> out;
    const Json* list = j.Find("decoders");
    if (list == nullptr || !list->is_array()) return Unsupported("decoder", j);
    for (const Json& d : list->as_array()) {
      ASSIGN_OR_RETURN(std::vector<DecodeStep> steps, MakeDecoder(d));
      out.insert(out.end(), steps.begin(), steps.end());
    }
    return out;
  }
  DecodeStep d{};
  if (type == "ByteLevel") {
    d.kind = K::kByteLevel;
  } else if (type == "ByteFallback") {
    d.kind = K::kByteFallback;
  } else if (type == "Fuse") {
    d.kind = K::kFuse;
  } else if (type == "Metaspace") {
    d.kind = K::kMetaspace;
    d.from = StringField(j, "replacement", "\xE2\x96\x81");
    std::string scheme = StringField(j, "prepend_scheme", "");
    if (scheme.empty()) scheme = BoolField(j, "add_prefix_space", true) ? "always" : "never";
    d.flag = scheme != "never";
  } else if (type == "Replace") {
    d.kind = K::kReplace;
    const Json* pattern = j.Find("pattern");
    const Json* str = pattern != nullptr ? pattern->Find("String") : nullptr;
    if (str == nullptr || !str->is_string() || str->as_string().empty())
      return Unsupported("decoder", j);
    d.from = str->as_string();
    d.to = StringField(j, "content");
  } else if (type == "Strip") {
    d.kind = K::kStrip;
    d.from = StringField(j, "content", " ");
    ASSIGN_OR_RETURN(d.start, IntField(j, "start", 0, INT32_MAX, 0));
    ASSIGN_OR_RETURN(d.stop, IntField(j, "stop", 0, INT32_MAX, 0));
  } else if (type == "WordPiece") {
    d.kind = K::kWordPiece;
    d.from = StringField(j, "prefix", "##");
    d.flag = BoolField(j, "cleanup", true);
  } else {
    return Unsupported("decoder", j);
  }
  return std::vector<DecodeStep>{d};
}

void ReplaceAll(std::string* s, std::string_view from, std::string_view to) {
  for (size_t at = s->find(from); at != std::string::npos; at = s->find(from, at + to.size())) {
    s->replace(at, from.size(), to);
  }
}

// Runs the chain over `tokens`; `starts` when tokens[0] begins the text,
// `ends` when the last token ends it (a streamed token knows the first, not
// the second).
std::string RunDecoder(const std::vector<DecodeStep>& steps, std::vector<std::string> tokens,
                       bool starts, bool ends) {
  using K = DecodeStep::Kind;
  if (steps.empty()) {  // No decoder: tokens joined by spaces, as Hugging Face does.
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0 || !starts) out += ' ';
      out += tokens[i];
    }
    return out;
  }
  bool fused = false;
  for (const DecodeStep& d : steps) {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string& t = tokens[i];
      const bool first = i == 0 && starts;
      switch (d.kind) {
        case K::kByteLevel: {
          const ByteAlphabet& alphabet = Bytes();
          std::string bytes;
          for (char32_t c : Decode(t)) {
            auto it = alphabet.to_byte.find(c);
            if (it != alphabet.to_byte.end()) {
              bytes.push_back(static_cast<char>(it->second));
            } else {
              AppendUtf8(&bytes, c);
            }
          }
          t = std::move(bytes);
          break;
        }
        case K::kByteFallback:
          if (t.size() == 6 && t.starts_with("<0x") && t[5] == '>' && std::isxdigit(t[3]) &&
              std::isxdigit(t[4])) {
            t = std::string(1, static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16)));
          }
          break;
        case K::kReplace:
          ReplaceAll(&t, d.from, d.to);
          break;
        case K::kMetaspace:
          ReplaceAll(&t, d.from, " ");
          if (first && d.flag && t.starts_with(' ')) t.erase(0, 1);
          break;
        case K::kStrip: {
          // After Fuse the list is one text: only its true start and end strip.
          if (!fused || first) {
            for (int k = 0; k < d.start && t.starts_with(d.from); ++k) t.erase(0, d.from.size());
          }
          if (!fused || (ends && i + 1 == tokens.size())) {
            for (int k = 0; k < d.stop && t.ends_with(d.from); ++k)
              t.erase(t.size() - d.from.size());
          }
          break;
        }
        case K::kWordPiece:
          if (!first) {
            if (t.starts_with(d.from)) {
              t.erase(0, d.from.size());
            } else {
              t.insert(0, " ");
            }
          }
          if (d.flag) {
            for (const auto& [from, to] :
                 std::initializer_list<std::pair<const char*, const char*>>{{" .", "."},
                                                                            {" ?", "?"},
                                                                            {" !", "!"},
                                                                            {" ,", ","},
                                                                            {" ' ", "'"},
                                                                            {" n't", "n't"},
                                                                            {" 'm", "'m"},
                                                                            {" do not", " don't"},
                                                                            {" 's", "'s"},
                                                                            {" 've", "'ve"},
                                                                            {" 're", "'re"}}) {
              ReplaceAll(&t, from, to);
            }
          }
          break;
        case K::kFuse:
          break;
      }
    }
    if (d.kind == K::kFuse && tokens.size() > 1) {
      std::string all;
      for (const std::string& t : tokens) all += t;
      tokens = {std::move(all)};
    }
    if (d.kind == K::kFuse) fused = true;
  }
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

// ---- Post-processing ------------------------------------------------------

// A template item: a special token's ids, or sequence A / B, with a type id.
struct TemplateItem {
  std::vector<int32_t> special;             // Empty: a sequence.
  std::vector<std::string> special_tokens;  // Their strings, as the template names them.
  int sequence = 0;                         // 0: A, 1: B.
  int32_t type_id = 0;
};

}  // namespace

struct Tokenizer::Impl {
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<Model> model;
  std::vector<TemplateItem> single, pair;
  std::vector<std::pair<std::string, int32_t>> added;  // Longest first.
  absl::flat_hash_map<int32_t, std::string> added_by_id;
  absl::flat_hash_set<int32_t> special;  // Added tokens marked special.
  std::vector<DecodeStep> decoder;
  int32_t pad = 0;

  std::string TokenString(int32_t id) const {
    if (auto it = added_by_id.find(id); it != added_by_id.end()) return it->second;
    return id >= 0 && static_cast<size_t>(id) < model->id_to_token.size() ? model->id_to_token[id]
                                                                          : std::string();
  }

  void TokenizeText(std::string_view text, std::vector<int32_t>* ids) const;
  absl::StatusOr<Encoding> Run(std::string_view a, const std::string_view* b, bool add_special,
                               size_t max_tokens) const;
};

void Tokenizer::Impl::TokenizeText(std::string_view text, std::vector<int32_t>* ids) const {
  // Added tokens first: they split the text and map straight to their ids.
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t hit = std::string_view::npos;
    int32_t hit_id = -1;
    size_t hit_len = 0;
    for (const auto& [content, id] : added) {
      const size_t f = text.find(content, pos);
      if (f != std::string_view::npos && (f < hit || (f == hit && content.size() > hit_len))) {
        hit = f;
        hit_id = id;
        hit_len = content.size();
      }
    }
    const std::string_view chunk =
        text.substr(pos, hit == std::string_view::npos ? text.npos : hit - pos);
    if (!chunk.empty()) {
      U32 s = quiver::nn::Decode(chunk);
      if (normalizer) normalizer->Apply(&s);
      std::vector<U32> pieces;
      if (!s.empty()) pieces.push_back(std::move(s));
      if (pre_tokenizer) pre_tokenizer->Split(&pieces);
      for (const U32& p : pieces) {
        if (!p.empty()) model->Tokenize(p, ids);
      }
    }
    if (hit == std::string_view::npos) break;
    ids->push_back(hit_id);
    pos = hit + hit_len;
  }
}

absl::StatusOr<Encoding> Tokenizer::Impl::Run(std::string_view a, const std::string_view* b,
                                              bool add_special, size_t max_tokens) const {
  if (!IsValidUtf8(a) || (b != nullptr && !IsValidUtf8(*b))) {
    return absl::InvalidArgumentError("text is not valid UTF-8");
  }
  std::vector<int32_t> seq[2];
  TokenizeText(a, &seq[0]);
  if (b != nullptr) TokenizeText(*b, &seq[1]);
  const std::vector<TemplateItem>& tmpl = b != nullptr ? pair : single;
  size_t specials = 0;
  if (add_special) {
    for (const TemplateItem& t : tmpl) specials += t.special.size();
  }
  if (max_tokens > 0) {
    const size_t budget = max_tokens > specials ? max_tokens - specials : 0;
    // Longest first: trim the longer sequence one token at a time.
    while (seq[0].size() + seq[1].size() > budget) {
      if (seq[0].size() >= seq[1].size()) {
        seq[0].pop_back();
      } else {
        seq[1].pop_back();
      }
    }
  }
  Encoding e;
  auto append = [&](const std::vector<int32_t>& ids, int32_t type,
                    const std::vector<std::string>* names = nullptr) {
    for (size_t k = 0; k < ids.size(); ++k) {
      const int32_t id = ids[k];
      e.ids.push_back(id);
      e.type_ids.push_back(type);
      if (names != nullptr) {
        e.tokens.push_back((*names)[k]);
      } else {
        e.tokens.push_back(id >= 0 && static_cast<size_t>(id) < model->id_to_token.size()
                               ? model->id_to_token[id]
                               : std::string());
      }
    }
  };
  if (!add_special || tmpl.empty()) {
    append(seq[0], 0);
    append(seq[1], 1);
  } else {
    for (const TemplateItem& t : tmpl) {
      if (!t.special.empty()) {
        append(t.special, t.type_id, &t.special_tokens);
      } else if (t.sequence == 0 || b != nullptr) {
        append(seq[t.sequence], t.type_id);
      }
    }
  }
  return e;
}

namespace {

absl::StatusOr<std::vector<TemplateItem>> ParseTemplate(const Json& list, const Json& specials,
                                                        const Model& model) {
  std::vector<TemplateItem> out;
  if (!list.is_array()) return absl::InvalidArgumentError("tokenizer.json: bad template");
  for (const Json& item : list.as_array()) {
    TemplateItem t;
    if (const Json* s = item.Find("SpecialToken"); s != nullptr) {
      const std::string id = StringField(*s, "id");
      ASSIGN_OR_RETURN(t.type_id, IntField(*s, "type_id", 0, INT32_MAX, 0));
      const Json* entry = specials.is_object() ? specials.Find(id) : nullptr;
      const Json* ids = entry != nullptr ? entry->Find("ids") : nullptr;
      const Json* tokens = entry != nullptr ? entry->Find("tokens") : nullptr;
      if (ids != nullptr && ids->is_array()) {
        for (const Json& i : ids->as_array()) {
          ASSIGN_OR_RETURN(const int32_t special, IntValue(i, "special token id", 0, kMaxTokenId));
          t.special.push_back(special);
        }
        for (size_t k = 0; k < t.special.size(); ++k) {
          const bool named = tokens != nullptr && tokens->is_array() &&
                             k < tokens->as_array().size() && tokens->as_array()[k].is_string();
          t.special_tokens.push_back(named ? tokens->as_array()[k].as_string() : id);
        }
      } else if (auto it = model.vocab.find(id); it != model.vocab.end()) {
        t.special.push_back(it->second);
        t.special_tokens.push_back(id);
      } else {
        return absl::InvalidArgumentError(StrCat("tokenizer.json: unknown special token ", id));
      }
    } else if (const Json* s = item.Find("Sequence"); s != nullptr) {
      t.sequence = StringField(*s, "id", "A") == "B" ? 1 : 0;
      ASSIGN_OR_RETURN(t.type_id, IntField(*s, "type_id", 0, INT32_MAX, 0));
    } else {
      return absl::InvalidArgumentError("tokenizer.json: bad template item");
    }
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  auto json = ParseJson(ss.str());
  if (!json.ok()) {
    return absl::InvalidArgumentError(StrCat(path, ": ", std::string(json.status().message())));
  }
  auto t = FromJson(*json);
  if (!t.ok())
    return absl::Status(t.status().code(), StrCat(path, ": ", std::string(t.status().message())));
  return t;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(const Json& j) {
  auto impl = std::make_unique<Impl>();
  const Json* model = j.Find("model");
  if (model == nullptr || !model->is_object()) {
    return absl::InvalidArgumentError("tokenizer.json: no model");
  }
  std::string type = StringField(*model, "type");
  if (type.empty()) {  // Older files leave the type out; the vocab shape tells.
    const Json* v = model->Find("vocab");
    type = v != nullptr && v->is_array() ? "Unigram" : "WordPiece";
  }
  if (type == "WordPiece") {
    ASSIGN_OR_RETURN(impl->model, WordPiece::Make(*model));
  } else if (type == "Unigram") {
    ASSIGN_OR_RETURN(impl->model, Unigram::Make(*model));
  } else if (type == "BPE") {
    ASSIGN_OR_RETURN(impl->model, Bpe::Make(*model));
  } else {
    return Unsupported("model", *model);
  }
  if (const Json* n = j.Find("normalizer"); n != nullptr && !n->is_null()) {
    ASSIGN_OR_RETURN(impl->normalizer, MakeNormalizer(*n));
  }
  if (const Json* p = j.Find("pre_tokenizer"); p != nullptr && !p->is_null()) {
    ASSIGN_OR_RETURN(impl->pre_tokenizer, MakePreTokenizer(*p));
  }
  std::function<absl::Status(const Json*)> post = [&](const Json* pp) -> absl::Status {
    const std::string pt = StringField(*pp, "type");
    if (pt == "TemplateProcessing") {
      const Json empty;
      const Json* specials = pp->Find("special_tokens");
      const Json& sp = specials != nullptr ? *specials : empty;
      if (const Json* s = pp->Find("single"); s != nullptr) {
        ASSIGN_OR_RETURN(impl->single, ParseTemplate(*s, sp, *impl->model));
      }
      if (const Json* s = pp->Find("pair"); s != nullptr) {
        ASSIGN_OR_RETURN(impl->pair, ParseTemplate(*s, sp, *impl->model));
      }
    } else if (pt == "ByteLevel") {
      // Only moves offsets, which we do not report.
    } else if (pt == "Sequence") {
      const Json* list = pp->Find("processors");
      if (list == nullptr || !list->is_array()) return Unsupported("post-processor", *pp);
      for (const Json& p : list->as_array()) RETURN_IF_ERROR(post(&p));
    } else if (pt == "BertProcessing") {
      const Json* cls = pp->Find("cls");
      const Json* sep = pp->Find("sep");
      if (cls == nullptr || sep == nullptr || !cls->is_array() || !sep->is_array() ||
          cls->as_array().size() != 2 || sep->as_array().size() != 2) {
        return Unsupported("post-processor", *pp);
      }
      ASSIGN_OR_RETURN(const int32_t c, IntValue(cls->as_array()[1], "cls id", 0, kMaxTokenId));
      ASSIGN_OR_RETURN(const int32_t s, IntValue(sep->as_array()[1], "sep id", 0, kMaxTokenId));
      const std::vector<std::string> cn = {
          cls->as_array()[0].is_string() ? cls->as_array()[0].as_string() : ""};
      const std::vector<std::string> sn = {
          sep->as_array()[0].is_string() ? sep->as_array()[0].as_string() : ""};
      impl->single = {{{c}, cn, 0, 0}, {{}, {}, 0, 0}, {{s}, sn, 0, 0}};
      impl->pair = {
          {{c}, cn, 0, 0}, {{}, {}, 0, 0}, {{s}, sn, 0, 0}, {{}, {}, 1, 1}, {{s}, sn, 0, 1}};
    } else {
      return Unsupported("post-processor", *pp);
    }
    return absl::OkStatus();
  };
  if (const Json* pp = j.Find("post_processor"); pp != nullptr && !pp->is_null()) {
    RETURN_IF_ERROR(post(pp));
  }
  if (const Json* added = j.Find("added_tokens"); added != nullptr && added->is_array()) {
    for (const Json& a : added->as_array()) {
      const Json* id = a.Find("id");
      const std::string content = StringField(a, "content");
      if (id == nullptr || content.empty()) continue;
      ASSIGN_OR_RETURN(const int32_t i, IntValue(*id, "added token id", 0, kMaxTokenId));
      impl->added.emplace_back(content, i);
      impl->added_by_id[i] = content;
      if (BoolField(a, "special", false)) impl->special.insert(i);
    }
  }
  if (const Json* d = j.Find("decoder"); d != nullptr && !d->is_null()) {
    ASSIGN_OR_RETURN(impl->decoder, MakeDecoder(*d));
  }
  for (const char* p : {"[PAD]", "<pad>"}) {
    if (auto it = impl->model->vocab.find(p); it != impl->model->vocab.end()) {
      impl->pad = it->second;
      break;
    }
  }
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(impl)));
}

absl::StatusOr<Encoding> Tokenizer::Encode(std::string_view text, bool add_special,
                                           size_t max_tokens) const {
  return impl_->Run(text, nullptr, add_special, max_tokens);
}

absl::StatusOr<Encoding> Tokenizer::EncodePair(std::string_view text, std::string_view pair,
                                               bool add_special, size_t max_tokens) const {
  return impl_->Run(text, &pair, add_special, max_tokens);
}

int32_t Tokenizer::TokenToId(std::string_view token) const {
  for (const auto& [content, id] : impl_->added) {
    if (content == token) return id;
  }
  auto it = impl_->model->vocab.find(std::string(token));
  return it == impl_->model->vocab.end() ? -1 : it->second;
}

size_t Tokenizer::vocab_size() const {
  size_t n = impl_->model->id_to_token.size();
  for (const auto& [id, content] : impl_->added_by_id) n = std::max(n, static_cast<size_t>(id) + 1);
  return n;
}

std::string Tokenizer::IdToToken(int32_t id) const { return impl_->TokenString(id); }
bool Tokenizer::IsSpecial(int32_t id) const { return impl_->special.contains(id); }

std::string Tokenizer::Decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::vector<std::string> tokens;
  for (int32_t id : ids) {
    if (skip_special && impl_->special.contains(id)) continue;
    tokens.push_back(impl_->TokenString(id));
  }
  if (tokens.empty()) return "";
  // Byte tokens may leave partial characters: those become U+FFFD.
  return quiver::nn::Encode(
      quiver::nn::Decode(RunDecoder(impl_->decoder, std::move(tokens), true, true)));
}

std::string Tokenizer::DecodeToken(int32_t id, bool first) const {
  return RunDecoder(impl_->decoder, {impl_->TokenString(id)}, first, false);
}
int32_t Tokenizer::pad_id() const { return impl_->pad; }

}  // namespace quiver::nn
