// Text analyzers: turn text into index terms.
//
//   standard: Unicode NFKC normalisation with case folding (ICU's
//             NFKC_Casefold), words split on Unicode classes (letters, digits
//             and combining marks form words; an apostrophe between letters
//             and '.'/',' between digits stay inside), CJK text (Han,
//             Hiragana, Katakana, Hangul) as overlapping character bigrams
//             like Lucene's CJKAnalyzer (a lone CJK character is a unigram),
//             so Korean matches Korean without a dictionary.
//   english:  standard, then possessive 's removed, English stop words
//             dropped (Lucene's list) and the Porter stemmer applied.
//   cjk:      the same as standard (accepted for clarity in configs).
#ifndef QUIVER_TEXT_ANALYZER_H_
#define QUIVER_TEXT_ANALYZER_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace quiver::text {

struct AnalyzerOptions {
  bool english = false;          // Possessives, stop words and Porter stemming.
  size_t max_token_bytes = 255;  // Longer tokens are dropped. REQUIRES: >= 1.
};

class Analyzer {
 public:
  // INVALID_ARGUMENT for an unknown name (expected standard, english or cjk).
  static absl::StatusOr<Analyzer> Named(std::string_view name);
  explicit Analyzer(AnalyzerOptions options) : options_(options) {}

  // The terms of `text` in order. INVALID_ARGUMENT when `text` is not valid
  // UTF-8. Thread-safe.
  absl::StatusOr<std::vector<std::string>> Analyze(std::string_view text) const;

 private:
  AnalyzerOptions options_;
};

}  // namespace quiver::text

#endif  // QUIVER_TEXT_ANALYZER_H_
