// Helpers shared by the engine's .cc files; no other module includes this.
#ifndef QUIVER_SERVER_ENGINE_INTERNAL_H_
#define QUIVER_SERVER_ENGINE_INTERNAL_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "server/limits.h"
#include "storage/collection_config.h"
#include "storage/record.h"

namespace quiver::server {
class Collection;

namespace internal {

// `s` in double quotes, for messages.
std::string Quoted(std::string_view s);
absl::Status NamespaceNotFound(const Collection& c, std::string_view ns);
absl::Status CollectionGone(std::string_view name);
// INVALID_ARGUMENT unless `values` has the collection's dimension, is finite
// and (for cosine) not all zeros; `what` names the vector in the message.
absl::Status ValidateDense(const storage::CollectionConfig& config, std::string_view what,
                           const std::vector<float>& values);

// INVALID_ARGUMENT unless indices and values pair up, indices are distinct,
// values finite and the entries within the limit; sorts by index.
absl::Status ValidateSparse(const Limits& lim, std::string_view what, storage::SparseVector* v);

}  // namespace internal
}  // namespace quiver::server

#endif  // QUIVER_SERVER_ENGINE_INTERNAL_H_
