#include "llm/kv_cache.h"

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
