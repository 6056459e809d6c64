// Cutting a document into chunks for retrieval: each chunk at most
// `chunk_tokens` tokens of the collection's embedding model, consecutive
// chunks sharing up to `overlap_tokens` tokens, cut where the text has its
// strongest boundary (paragraph, then sentence, then word, then character).
// Sentences and words are found with ICU's Unicode break rules, so Korean,
// Chinese and Japanese sentence ends (。！？) and unspaced CJK words are
// handled. Markdown ATX headings start a paragraph, are never separated from
// the text under them, and name the section each chunk is in.
#ifndef QUIVER_RAG_CHUNKER_H_
#define QUIVER_RAG_CHUNKER_H_

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace quiver::rag {

// Tokens of a piece of text in the embedding model's tokenizer (no special
// tokens).
using TokenCounter = std::function<absl::StatusOr<size_t>(std::string_view)>;

struct ChunkOptions {
  size_t chunk_tokens = 256;   // REQUIRES: >= 8.
  size_t overlap_tokens = 32;  // REQUIRES: < chunk_tokens / 2.
};

struct Chunk {
  size_t begin = 0, end = 0;  // Byte offsets into the document: text = doc[begin, end).
  size_t tokens = 0;          // Its token count (<= chunk_tokens).
  std::string heading;        // Markdown section path ("Guide > Install"); may be empty.
};

// The chunks of `text` (valid UTF-8), in order, covering every
// non-whitespace byte. Empty for text that is all whitespace. Errors are the
// counter's.
absl::StatusOr<std::vector<Chunk>> ChunkText(std::string_view text, const ChunkOptions& options,
                                             const TokenCounter& count_tokens);

// Sentence boundaries of `text` by ICU's rules: offsets where sentences
// begin after the first (exposed for tests).
std::vector<size_t> SentenceBreaks(std::string_view text);

}  // namespace quiver::rag

#endif  // QUIVER_RAG_CHUNKER_H_
