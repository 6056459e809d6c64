// The paged KV cache: fixed-size blocks of positions that sequences of any
// length share (CPU memory; the CUDA engine keeps its own blocks with the
// same bookkeeping).
#ifndef QUIVER_LLM_KV_CACHE_H_
#define QUIVER_LLM_KV_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <unordered_map>
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

// Prefix sharing over a pool: full KV blocks are published under a hash of
// every token up to the block's end (so content and position match), and a
// later sequence whose prompt starts with the same tokens takes those
// blocks instead of computing them again. Blocks are reference counted;
// published blocks no sequence holds stay cached and are evicted least
// recently used first when the pool runs out. Not thread-safe (the
// scheduler thread owns it).
class PrefixCache {
 public:
  explicit PrefixCache(KvBlockPool* pool);
  // The hash of a block of `tokens` following a prefix that hashed to
  // `prev` (0 for the first block).
  static uint64_t ChainHash(uint64_t prev, const int* tokens, int count);

  // A block for a sequence to write (reference count 1): a free one, else
  // the least recently used cached one; -1 when every block is held.
  int Allocate();
  // Blocks Allocate can still hand out.
  size_t available() const { return pool_->free_blocks() + lru_.size(); }
  // The cached block with `hash`, now held once more; -1 when none.
  int Acquire(uint64_t hash);
  // Makes a full block the caller holds findable by `hash`. When another
  // block already has it, this one stays private.
  void Publish(uint64_t hash, int block);
  // Drops one hold: a private block goes back to the pool, a published one
  // stays cached until evicted.
  void Release(int block);
  size_t cached_blocks() const { return by_hash_.size(); }

 private:
  struct Block {
    int refs = 0;
    bool published = false;
    uint64_t hash = 0;
    std::list<int>::iterator lru;  // Valid when published and refs == 0.
  };
  KvBlockPool* pool_;
  std::vector<Block> blocks_;
  std::unordered_map<uint64_t, int> by_hash_;
  std::list<int> lru_;  // Published blocks nobody holds; least recent first.
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
