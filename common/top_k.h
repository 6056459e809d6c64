// Scored search results and the bounded best-k collector every index uses
// (vector indexes in ann/, postings in text/).
#ifndef QUIVER_COMMON_TOP_K_H_
#define QUIVER_COMMON_TOP_K_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace quiver {

// A search result: `label` is the caller's id for the vector.
struct Hit {
  uint64_t label;
  float score;  // Higher is better (for vectors: more similar, ann/distance.h).
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

}  // namespace quiver

#endif  // QUIVER_COMMON_TOP_K_H_
