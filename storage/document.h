// A stored document: the source text a group of chunk records was cut from
// (the RAG document path), stored beside its chunks and replaced with them
// in one atomic write. Encoding: docs/storage_format.md.
#ifndef QUIVER_STORAGE_DOCUMENT_H_
#define QUIVER_STORAGE_DOCUMENT_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "storage/metadata.h"

namespace quiver::storage {

struct StoredDocument {
  std::string id;
  std::string text;
  Metadata metadata;
  // Its chunks are the records ChunkId(id, 0) .. ChunkId(id, chunk_count - 1).
  uint32_t chunk_count = 0;
  int64_t updated_unix_ms = 0;
  friend bool operator==(const StoredDocument&, const StoredDocument&) = default;
};

// The record id of a document's chunk `n`: "<document id>#<n>".
std::string ChunkId(std::string_view document_id, uint32_t n);

// Encodes everything but the id (which is in the key).
std::string EncodeStoredDocument(const StoredDocument& doc);
// DATA_LOSS when `value` is truncated or from an unknown format version.
absl::StatusOr<StoredDocument> DecodeStoredDocument(std::string_view id, std::string_view value);

}  // namespace quiver::storage

#endif  // QUIVER_STORAGE_DOCUMENT_H_
