#include "common/top_k.h"

#include <algorithm>
#include <limits>

namespace quiver {
namespace {
// Heap order: the worst hit at the front.
bool WorseFirst(const Hit& a, const Hit& b) { return HitBefore(a, b); }
}  // namespace

bool HitBefore(const Hit& a, const Hit& b) {
  if (a.score != b.score) return a.score > b.score;
  return a.label < b.label;
}

void TopK::Push(uint64_t label, float score) {
  const Hit h{label, score};
  if (heap_.size() < k_) {
    heap_.push_back(h);
    std::push_heap(heap_.begin(), heap_.end(), WorseFirst);
  } else if (HitBefore(h, heap_.front())) {
    std::pop_heap(heap_.begin(), heap_.end(), WorseFirst);
    heap_.back() = h;
    std::push_heap(heap_.begin(), heap_.end(), WorseFirst);
  }
}

float TopK::threshold() const {
  return heap_.size() < k_ ? -std::numeric_limits<float>::infinity() : heap_.front().score;
}

std::vector<Hit> TopK::Take() {
  std::vector<Hit> out = std::move(heap_);
  heap_.clear();
  std::sort(out.begin(), out.end(), HitBefore);
  return out;
}

}  // namespace quiver
