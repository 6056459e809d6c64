// The persistence interface index modules (text/) write through, so they
// need nothing of the store behind it (storage/ implements it with RocksDB).
#ifndef QUIVER_COMMON_KV_H_
#define QUIVER_COMMON_KV_H_

#include <string_view>

#include "absl/status/status.h"

namespace quiver {

// Receives key/value pairs; the caller decides when they become visible.
class KvSink {
 public:
  virtual ~KvSink() = default;
  virtual absl::Status Put(std::string_view key, std::string_view value) = 0;
};

}  // namespace quiver

#endif  // QUIVER_COMMON_KV_H_
