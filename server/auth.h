// API keys for both transports. A key is read-write or read-only; with no
// key configured every request is allowed. Requests present a key as gRPC
// metadata `api-key: KEY` or `authorization: Bearer KEY`, or as the HTTP
// headers `Api-Key` or `Authorization: Bearer`. Keys are compared in
// constant time and never logged.
#ifndef QUIVER_SERVER_AUTH_H_
#define QUIVER_SERVER_AUTH_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace quiver::server {

class ApiKeys {
 public:
  ApiKeys() = default;
  // `read_write`: keys given on the command line. `file`: one key per line,
  // optionally followed by "read-only" (or "rw"); blank lines and lines
  // starting with '#' are skipped. INVALID_ARGUMENT for a malformed file,
  // NOT_FOUND when it cannot be read.
  static absl::StatusOr<ApiKeys> Load(const std::vector<std::string>& read_write,
                                      const std::string& file);
  bool enabled() const { return !keys_.empty(); }
  size_t size() const { return keys_.size(); }

  // OK when `presented` (from PresentedKey) may make the request:
  // UNAUTHENTICATED for a missing or unknown key (the message says how to
  // send one and nothing else), PERMISSION_DENIED for a read-only key on a
  // write. Always OK when no key is configured.
  absl::Status Authorize(std::string_view presented, bool write) const;

  // The key in an `api-key` value or an `authorization: Bearer` value; the
  // former wins. Empty when neither carries one.
  static std::string_view PresentedKey(std::string_view api_key, std::string_view authorization);

 private:
  struct Key {
    std::string key;
    bool read_only = false;
  };
  std::vector<Key> keys_;
};

}  // namespace quiver::server

#endif  // QUIVER_SERVER_AUTH_H_
