// Record metadata: a flat JSON object whose values are strings, numbers,
// booleans or lists of strings (Pinecone's metadata model).
#ifndef QUIVER_STORAGE_METADATA_H_
#define QUIVER_STORAGE_METADATA_H_

#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "common/json.h"

namespace quiver::storage {

using StringList = std::vector<std::string>;
using MetadataValue = std::variant<bool, double, std::string, StringList>;
using Metadata = std::map<std::string, MetadataValue, std::less<>>;

// Converts a JSON object to metadata. INVALID_ARGUMENT (naming the key) for a
// non-object, null, nested objects, non-finite numbers, or lists holding
// anything but strings.
absl::StatusOr<Metadata> MetadataFromJson(const Json& json);
Json MetadataToJson(const Metadata& metadata);

// Size of the metadata as compact JSON, the unit the size limit is in.
size_t MetadataJsonBytes(const Metadata& metadata);
// Memory the metadata holds, approximately: map nodes and the heap bytes of
// strings too long for their inline buffer.
size_t MetadataMemoryBytes(const Metadata& metadata);
// Heap bytes of a string beyond sizeof(std::string) (by its size: the same
// for the same content, however it was built).
inline size_t StringHeapBytes(const std::string& s) { return s.size() < 16 ? 0 : s.size() + 1; }

// Binary encoding used inside stored records.
void EncodeMetadata(const Metadata& metadata, std::string* dst);
[[nodiscard]] bool DecodeMetadata(std::string_view* in, Metadata* metadata);

}  // namespace quiver::storage

#endif  // QUIVER_STORAGE_METADATA_H_
