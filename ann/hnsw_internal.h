// HnswIndex's node storage, shared by hnsw.cc and hnsw_io.cc only.
#ifndef QUIVER_ANN_HNSW_INTERNAL_H_
#define QUIVER_ANN_HNSW_INTERNAL_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "ann/hnsw.h"

namespace quiver::ann {

namespace hnsw_internal {
struct AlignedFree {
  void operator()(std::byte* p) const { std::free(p); }
};

}  // namespace hnsw_internal

// One segment of node storage. Arrays are sized `capacity` and allocated
// once; entries are written before the node is published.
struct HnswIndex::Segment {
  size_t capacity = 0;
  std::unique_ptr<std::byte, hnsw_internal::AlignedFree> blocks;  // (capacity, block_bytes_)
  std::unique_ptr<uint64_t[]> labels;
  std::unique_ptr<uint8_t[]> levels;
  std::unique_ptr<std::atomic<uint8_t>[]> states;
  // Levels 1..level of a node: level x (1 + m) slots, [count, ids...] each.
  std::unique_ptr<std::unique_ptr<std::atomic<NodeId>[]>[]> upper;
};

}  // namespace quiver::ann

#endif  // QUIVER_ANN_HNSW_INTERNAL_H_
