// Helpers shared by the engine's .cc files; no other module includes this.
#ifndef QUIVER_SERVER_ENGINE_INTERNAL_H_
#define QUIVER_SERVER_ENGINE_INTERNAL_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "storage/collection_config.h"

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

}  // namespace internal
}  // namespace quiver::server

#endif  // QUIVER_SERVER_ENGINE_INTERNAL_H_
