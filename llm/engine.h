// Where a model's decode steps run. A DecodeEngine holds a model's weights
// as its device keeps them and a paged KV cache in that device's memory;
// the scheduler hands out KV blocks from its pool and calls Forward once
// per step. The CPU engine runs LlamaModel::ForwardBatch over a
// PagedKvCache; the CUDA engine (cuda_engine.h, built when nvcc is found)
// copies the weights to the GPU and runs the same arithmetic there.
#ifndef QUIVER_LLM_ENGINE_H_
#define QUIVER_LLM_ENGINE_H_

#include <memory>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "llm/model.h"

namespace quiver::llm {

class DecodeEngine {
 public:
  virtual ~DecodeEngine() = default;
  virtual std::string_view device() const = 0;  // "cpu" or "cuda".
  virtual const LlamaConfig& config() const = 0;
  // The KV cache's blocks; a sequence's block table holds blocks from here.
  virtual KvBlockPool* pool() = 0;
  // One batched step, as LlamaModel::ForwardBatch promises: stores each
  // row's keys and values, returns each row's logits ([rows][vocab]).
  // A sequence's logits do not depend on the other rows of its step.
  // Called from one thread at a time.
  virtual std::vector<std::vector<float>> Forward(const std::vector<StepRow>& rows) = 0;
};

// Bytes one KV block of `block_size` positions takes on any engine (keys
// and values of all layers, float32).
inline size_t KvBlockBytes(const LlamaConfig& config, int block_size) {
  return PagedKvCache::BlockBytes(config, block_size);
}

// The CPU engine over `model` (borrowed; it must outlive the engine).
std::unique_ptr<DecodeEngine> NewCpuEngine(const LlamaModel* model, size_t kv_blocks,
                                           int block_size);

// "cpu", "cuda" or "auto" (CUDA when built with it and a GPU is visible,
// else CPU). max_step_rows: the most rows a step will have, if known (a
// GPU engine then allocates its per-step buffers up front, so running out
// of memory is an error here, not an abort mid-step); 0: grown as steps
// come. UNAVAILABLE for "cuda" without a usable GPU or a CUDA build;
// RESOURCE_EXHAUSTED when the weights, the cache or the step buffers do
// not fit the GPU; INVALID_ARGUMENT for another device name.
absl::StatusOr<std::unique_ptr<DecodeEngine>> NewDecodeEngine(const LlamaModel* model,
                                                              std::string_view device,
                                                              size_t kv_blocks, int block_size,
                                                              int max_step_rows = 0);

}  // namespace quiver::llm

#endif  // QUIVER_LLM_ENGINE_H_
