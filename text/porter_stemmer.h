// The Porter stemming algorithm (M. F. Porter, "An algorithm for suffix
// stripping", Program 14(3), 1980), as Lucene's and Anserini's English
// analyzers apply it.
#ifndef QUIVER_TEXT_PORTER_STEMMER_H_
#define QUIVER_TEXT_PORTER_STEMMER_H_

#include <string>
#include <string_view>

namespace quiver::text {

// Stems one lower-case word. Words of one or two letters, and words with
// characters outside a-z, are returned unchanged.
std::string PorterStem(std::string_view word);

}  // namespace quiver::text

#endif  // QUIVER_TEXT_PORTER_STEMMER_H_
