// HnswIndex's node storage, shared by hnsw.cc and hnsw_io.cc only.
#ifndef QUIVER_ANN_HNSW_INTERNAL_H_
#define QUIVER_ANN_HNSW_INTERNAL_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "ann/hnsw.h"

namespace quiver::ann {

namespace hnsw_internal {
struct AlignedFree {
  void operator()(std::byte* p) const { std::free(p); }
};

// A quantized index's full vectors for one segment: anonymous memory, or a
// shared mapping of an unlinked scratch file (HnswOptions::full_vectors_dir).
class FullVectors {
 public:
  // bytes > 0. Maps a scratch file in `dir` when it is not empty and the
  // file can be made and its space reserved; else (or on failure) memory.
  FullVectors(size_t bytes, const std::string& dir);
  ~FullVectors();
  FullVectors(const FullVectors&) = delete;
  FullVectors& operator=(const FullVectors&) = delete;
  float* data() const { return data_; }
  bool mapped() const { return mapped_; }

 private:
  float* data_ = nullptr;
  size_t bytes_ = 0;
  bool mapped_ = false;
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
  // Quantized indexes: (capacity, dimension) full vectors.
  std::unique_ptr<hnsw_internal::FullVectors> full;
};

}  // namespace quiver::ann

#endif  // QUIVER_ANN_HNSW_INTERNAL_H_
