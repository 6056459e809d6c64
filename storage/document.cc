#include "storage/document.h"

#include "common/coding.h"
#include "common/strings.h"

namespace quiver::storage {
namespace {
constexpr uint8_t kDocumentFormat = 1;
}  // namespace

std::string ChunkId(std::string_view document_id, uint32_t n) {
  return StrCat(document_id, "#", n);
}

std::string EncodeStoredDocument(const StoredDocument& doc) {
  std::string out;
  out.push_back(static_cast<char>(kDocumentFormat));
  PutFixed32(&out, doc.chunk_count);
  PutFixed64(&out, static_cast<uint64_t>(doc.updated_unix_ms));
  PutLengthPrefixed(&out, doc.text);
  EncodeMetadata(doc.metadata, &out);
  return out;
}

absl::StatusOr<StoredDocument> DecodeStoredDocument(std::string_view id, std::string_view value) {
  auto corrupt = [&](std::string_view what) {
    return absl::DataLossError(StrCat("document ", id, ": damaged value (", what, ")"));
  };
  if (value.empty() || static_cast<uint8_t>(value[0]) != kDocumentFormat) {
    return corrupt("unknown format version");
  }
  value.remove_prefix(1);
  StoredDocument doc;
  doc.id = std::string(id);
  uint64_t updated = 0;
  std::string_view text;
  if (!GetFixed32(&value, &doc.chunk_count) || !GetFixed64(&value, &updated)) {
    return corrupt("header");
  }
  doc.updated_unix_ms = static_cast<int64_t>(updated);
  if (!GetLengthPrefixed(&value, &text)) return corrupt("text");
  doc.text = std::string(text);
  if (!DecodeMetadata(&value, &doc.metadata)) return corrupt("metadata");
  if (!value.empty()) return corrupt("trailing bytes");
  return doc;
}

}  // namespace quiver::storage
