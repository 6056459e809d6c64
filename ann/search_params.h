// What a vector search takes besides the query: how many hits, the beam
// width, a filter, a pool for exact scans. Hits and the best-k collector are
// common/top_k.h's (text/ ranks with them too).
#ifndef QUIVER_ANN_SEARCH_PARAMS_H_
#define QUIVER_ANN_SEARCH_PARAMS_H_

#include <cstddef>
#include <cstdint>
#include <functional>

#include "common/top_k.h"

namespace quiver {
class ThreadPool;
}

namespace quiver::ann {

using ::quiver::Hit;
using ::quiver::HitBefore;
using ::quiver::TopK;

// Keeps a candidate when it returns true. May be called concurrently from
// several threads, so it must be safe for concurrent reads.
using LabelFilter = std::function<bool(uint64_t label)>;

struct SearchParams {
  size_t top_k = 10;                    // REQUIRES: >= 1.
  size_t ef = 0;                        // HNSW beam width; 0: the index default.
  const LabelFilter* filter = nullptr;  // Null: every vector qualifies.
  ThreadPool* pool = nullptr;           // Exact scans may split across it.
  // When set, a graph search adds the number of distances it computed.
  uint64_t* distances = nullptr;
};

}  // namespace quiver::ann

#endif  // QUIVER_ANN_SEARCH_PARAMS_H_
