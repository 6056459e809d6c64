// Validation of requests against a collection's configuration and the
// server's limits. Every function returns INVALID_ARGUMENT with a message
// that names the offending record or field and what was expected; nothing
// here touches the store.
#ifndef QUIVER_DB_VALIDATE_H_
#define QUIVER_DB_VALIDATE_H_

#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "db/limits.h"
#include "storage/collection_config.h"
#include "storage/record.h"

namespace quiver::db {

// Namespace names: 0..255 bytes of valid UTF-8.
absl::Status ValidateNamespace(std::string_view ns);

// OK unless `values` lacks the collection's dimension, holds a non-finite
// value or (for cosine) is all zeros; `what` names the vector in the message.
absl::Status ValidateDense(const storage::CollectionConfig& config, std::string_view what,
                           const std::vector<float>& values);

// OK unless indices and values differ in count, an index repeats, a value is
// not finite or the entries exceed the limit. Sorts the entries by index.
absl::Status ValidateSparse(const Limits& limits, std::string_view what, storage::SparseVector* v);

// A whole record: id (non-empty, within the limit, UTF-8), dense and sparse
// vectors as above, metadata and text within their limits, text UTF-8.
// Sorts the sparse vector's entries.
absl::Status ValidateRecord(const Limits& limits, const storage::CollectionConfig& config,
                            storage::Record* record);

}  // namespace quiver::db

#endif  // QUIVER_DB_VALIDATE_H_
