// Search results and the bounded collector both indexes use.
#ifndef QUIVER_ANN_TOP_K_H_
#define QUIVER_ANN_TOP_K_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace quiver {
class ThreadPool;
}

namespace quiver::ann {

// A search result: `label` is the caller's id for the vector.
struct Hit {
  uint64_t label;
  float score;  // Higher is more similar (see distance.h).
};

// Keeps a candidate when it returns true. May be called concurrently from
// several threads, so it must be safe for concurrent reads.
using LabelFilter = std::function<bool(uint64_t label)>;

struct SearchParams {
  size_t top_k = 10;                    // REQUIRES: >= 1.
  size_t ef = 0;                        // HNSW beam width; 0: the index default.
  const LabelFilter* filter = nullptr;  // Null: every vector qualifies.
  ThreadPool* pool = nullptr;           // Exact scans may split across it.
};

// Orders hits best first; equal scores by ascending label, so results are
// deterministic.
bool HitBefore(const Hit& a, const Hit& b);

// Keeps the best k of a stream of hits.
class TopK {
 public:
  explicit TopK(size_t k) : k_(k) { heap_.reserve(k + 1); }
  void Push(uint64_t label, float score);
  // Best first. Leaves the collector empty.
  std::vector<Hit> Take();
  size_t k() const { return k_; }
  // While full, a hit scoring below this cannot enter (an equal score can,
  // with a smaller label); -infinity until k hits are kept.
  float threshold() const;

 private:
  size_t k_;
  std::vector<Hit> heap_;  // Heap whose front is the worst kept hit.
};

}  // namespace quiver::ann

#endif  // QUIVER_ANN_TOP_K_H_
