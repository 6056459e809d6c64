// A stored record and its on-disk encoding (docs/storage_format.md).
#ifndef QUIVER_STORAGE_RECORD_H_
#define QUIVER_STORAGE_RECORD_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/metadata.h"

namespace quiver::storage {

struct SparseVector {
  std::vector<uint32_t> indices;  // Strictly increasing.
  std::vector<float> values;      // Same length as indices.
  bool empty() const { return indices.empty(); }
  friend bool operator==(const SparseVector&, const SparseVector&) = default;
};

struct Record {
  std::string id;
  std::vector<float> values;  // (dimension)
  SparseVector sparse;
  Metadata metadata;
  std::string text;
  friend bool operator==(const Record&, const Record&) = default;
};

// A record as stored: with its label, the dense internal id the indexes
// know it by (the record's `id` is the external one).
struct StoredRecord {
  uint64_t label = 0;
  Record record;
};

// Encodes everything but record.id (which is in the key).
std::string EncodeStoredRecord(const StoredRecord& stored);
// DATA_LOSS when `value` is truncated or from an unknown format version.
absl::StatusOr<StoredRecord> DecodeStoredRecord(std::string_view id, std::string_view value);

}  // namespace quiver::storage

#endif  // QUIVER_STORAGE_RECORD_H_
