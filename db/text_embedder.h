// What the database engine needs of an embedding model: text in, vectors
// out. Collections bound to a model embed records and queries that carry text
// but no vector through it; the server adapts its embedding service to it.
#ifndef QUIVER_DB_TEXT_EMBEDDER_H_
#define QUIVER_DB_TEXT_EMBEDDER_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace quiver::db {

class TextEmbedder {
 public:
  virtual ~TextEmbedder() = default;
  virtual size_t dimension() const = 0;
  // One vector per text, in order.
  virtual absl::StatusOr<std::vector<std::vector<float>>> Embed(
      const std::vector<std::string>& texts) = 0;
};

}  // namespace quiver::db

#endif  // QUIVER_DB_TEXT_EMBEDDER_H_
