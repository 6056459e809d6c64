// Helpers shared by the engine's .cc files; no other module includes this.
#ifndef QUIVER_DB_INTERNAL_H_
#define QUIVER_DB_INTERNAL_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace quiver::db {
class Collection;

namespace internal {

// `s` in double quotes, for messages.
using ::quiver::Quoted;
absl::Status NamespaceNotFound(const Collection& c, std::string_view ns);
absl::Status CollectionGone(std::string_view name);

}  // namespace internal
}  // namespace quiver::db

#endif  // QUIVER_DB_INTERNAL_H_
