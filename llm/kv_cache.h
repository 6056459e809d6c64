// The paged KV cache: fixed-size blocks of positions that sequences of any
// length share (CPU memory; the CUDA engine keeps its own blocks with the
// same bookkeeping).
#ifndef QUIVER_LLM_KV_CACHE_H_
#define QUIVER_LLM_KV_CACHE_H_

#include <cstddef>
#include <memory>
#include <vector>

#include "llm/config.h"

namespace quiver::llm {

// Which of a pool's fixed-size KV blocks are free: the bookkeeping every
// KV cache (CPU or device memory) shares. Not thread-safe (the scheduler
// thread owns it).
class KvBlockPool {
 public:
  explicit KvBlockPool(size_t num_blocks, int block_size);
  int block_size() const { return block_size_; }
  size_t free_blocks() const { return free_.size(); }
  size_t total_blocks() const { return num_blocks_; }
  // A free block's index in [0, total_blocks()), or -1 when none is free.
  int Allocate();
  // REQUIRES: `block` came from Allocate() and is not free.
  void Free(int block);

 private:
  int block_size_;
  size_t num_blocks_;
  std::vector<int> free_;
};

// Keys and values of many sequences in fixed-size blocks of positions, so
// sequences of any length share one pool without fragmentation. A sequence
// owns a block table: position p lives in block table[p / block_size].
class PagedKvCache : public KvBlockPool {
 public:
  PagedKvCache(const LlamaConfig& config, size_t num_blocks, int block_size = 16);
  // Bytes one block takes (keys and values, all layers, float32).
  static size_t BlockBytes(const LlamaConfig& config, int block_size);
  // Keys are stored position-minor within a block ([kv_dim][block_size]),
  // so one vector load gives a key component for a block's positions and
  // attention scores are computed for all of them at once.
  const float* KeyBlock(int block, int layer) const { return &k_[Base(block, layer)]; }
  void StoreKey(int block, int layer, int offset, const float* key) {
    float* kb = &k_[Base(block, layer)];
    for (int i = 0; i < kv_dim_; ++i) kb[static_cast<size_t>(i) * block_size() + offset] = key[i];
  }
  float* Value(int block, int layer, int offset) {
    return &v_[Base(block, layer) + static_cast<size_t>(offset) * kv_dim_];
  }

 private:
  size_t Base(int block, int layer) const {
    return (static_cast<size_t>(block) * layers_ + layer) * block_size() * kv_dim_;
  }
  int layers_, kv_dim_;
  // Left uninitialised: the OS commits pages as blocks are first used.
  std::unique_ptr<float[]> k_, v_;
};

}  // namespace quiver::llm

#endif  // QUIVER_LLM_KV_CACHE_H_
