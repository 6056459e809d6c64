#include "llm/kv_cache.h"

#include <cstring>
#include <string>

#include "common/coding.h"

namespace quiver::llm {

KvBlockPool::KvBlockPool(size_t num_blocks, int block_size)
    : block_size_(block_size), num_blocks_(num_blocks) {
  for (size_t b = num_blocks; b-- > 0;) free_.push_back(static_cast<int>(b));
}

int KvBlockPool::Allocate() {
  if (free_.empty()) return -1;
  const int b = free_.back();
  free_.pop_back();
  return b;
}

void KvBlockPool::Free(int block) { free_.push_back(block); }

PrefixCache::PrefixCache(KvBlockPool* pool) : pool_(pool), blocks_(pool->total_blocks()) {}

uint64_t PrefixCache::ChainHash(uint64_t prev, const int* tokens, int count) {
  std::string bytes(sizeof(prev) + sizeof(int) * static_cast<size_t>(count), '\0');
  std::memcpy(bytes.data(), &prev, sizeof(prev));
  std::memcpy(bytes.data() + sizeof(prev), tokens, sizeof(int) * static_cast<size_t>(count));
  return Fingerprint64(bytes);
}

int PrefixCache::Allocate() {
  int b = pool_->Allocate();
  if (b < 0) {
    if (lru_.empty()) return -1;
    b = lru_.front();
    lru_.pop_front();
    by_hash_.erase(blocks_[b].hash);
  }
  blocks_[b] = Block{};
  blocks_[b].refs = 1;
  return b;
}

int PrefixCache::Acquire(uint64_t hash) {
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return -1;
  Block& b = blocks_[it->second];
  if (b.refs++ == 0) lru_.erase(b.lru);
  return it->second;
}

void PrefixCache::Publish(uint64_t hash, int block) {
  Block& b = blocks_[block];
  if (b.published || by_hash_.contains(hash)) return;
  b.published = true;
  b.hash = hash;
  by_hash_[hash] = block;
}

void PrefixCache::Release(int block) {
  Block& b = blocks_[block];
  if (--b.refs > 0) return;
  if (b.published) {
    b.lru = lru_.insert(lru_.end(), block);
  } else {
    pool_->Free(block);
  }
}

PagedKvCache::PagedKvCache(const LlamaConfig& config, size_t num_blocks, int block_size)
    : KvBlockPool(num_blocks, block_size),
      layers_(config.n_layers),
      kv_dim_(config.kv_dim()),
      k_(new float[num_blocks * config.n_layers * block_size * config.kv_dim()]),
      v_(new float[num_blocks * config.n_layers * block_size * config.kv_dim()]) {}

size_t PagedKvCache::BlockBytes(const LlamaConfig& config, int block_size) {
  return 2 * sizeof(float) * static_cast<size_t>(config.n_layers) * block_size * config.kv_dim();
}

}  // namespace quiver::llm
