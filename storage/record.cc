#include "storage/record.h"

#include "common/coding.h"
#include "common/strings.h"

namespace quiver::storage {
namespace {
constexpr uint8_t kRecordFormatVersion = 1;
}  // namespace

std::string EncodeStoredRecord(const StoredRecord& stored) {
  const Record& r = stored.record;
  std::string out;
  out.reserve(16 + r.values.size() * 4 + r.text.size());
  out.push_back(static_cast<char>(kRecordFormatVersion));
  PutVarint64(&out, stored.label);
  PutVarint64(&out, r.values.size());
  for (float v : r.values) PutFloat(&out, v);
  PutVarint64(&out, r.sparse.indices.size());
  for (size_t i = 0; i < r.sparse.indices.size(); ++i) {
    PutVarint64(&out, r.sparse.indices[i]);
    PutFloat(&out, r.sparse.values[i]);
  }
  EncodeMetadata(r.metadata, &out);
  PutLengthPrefixed(&out, r.text);
  return out;
}

absl::StatusOr<StoredRecord> DecodeStoredRecord(std::string_view id, std::string_view value) {
  auto corrupt = [&](std::string_view what) {
    return absl::DataLossError(StrCat("stored record \"", id, "\" is damaged: ", what));
  };
  if (value.empty()) return corrupt("empty value");
  if (static_cast<uint8_t>(value[0]) != kRecordFormatVersion) {
    return corrupt(StrCat("unknown format version ", static_cast<int>(value[0])));
  }
  value.remove_prefix(1);
  StoredRecord out;
  out.record.id = std::string(id);
  uint64_t n;
  if (!GetVarint64(&value, &out.label)) return corrupt("internal id");
  if (!GetVarint64(&value, &n) || n > value.size() / 4) return corrupt("values length");
  out.record.values.resize(n);
  for (uint64_t i = 0; i < n; ++i) {
    if (!GetFloat(&value, &out.record.values[i])) return corrupt("values");
  }
  if (!GetVarint64(&value, &n) || n > value.size()) return corrupt("sparse length");
  out.record.sparse.indices.resize(n);
  out.record.sparse.values.resize(n);
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t index;
    if (!GetVarint64(&value, &index) || index > UINT32_MAX) return corrupt("sparse index");
    out.record.sparse.indices[i] = static_cast<uint32_t>(index);
    if (!GetFloat(&value, &out.record.sparse.values[i])) return corrupt("sparse value");
  }
  if (!DecodeMetadata(&value, &out.record.metadata)) return corrupt("metadata");
  std::string_view text;
  if (!GetLengthPrefixed(&value, &text)) return corrupt("text");
  out.record.text = std::string(text);
  if (!value.empty()) return corrupt("trailing bytes");
  return out;
}

}  // namespace quiver::storage
