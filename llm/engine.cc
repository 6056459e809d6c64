#include "llm/engine.h"

#include "common/strings.h"
#include "llm/cuda_engine.h"

namespace quiver::llm {
namespace {

class CpuEngine : public DecodeEngine {
 public:
  CpuEngine(const LlamaModel* model, size_t kv_blocks, int block_size)
      : model_(model), cache_(model->config(), kv_blocks, block_size) {}
  std::string_view device() const override { return "cpu"; }
  const LlamaConfig& config() const override { return model_->config(); }
  KvBlockPool* pool() override { return &cache_; }
  std::vector<std::vector<float>> Forward(const std::vector<StepRow>& rows) override {
    return model_->ForwardBatch(rows, &cache_);
  }

 private:
  const LlamaModel* model_;
  PagedKvCache cache_;
};

}  // namespace

std::unique_ptr<DecodeEngine> NewCpuEngine(const LlamaModel* model, size_t kv_blocks,
                                           int block_size) {
  return std::make_unique<CpuEngine>(model, kv_blocks, block_size);
}

absl::StatusOr<std::unique_ptr<DecodeEngine>> NewDecodeEngine(const LlamaModel* model,
                                                              std::string_view device,
                                                              size_t kv_blocks, int block_size,
                                                              int max_step_rows) {
  if (device == "cpu" || (device == "auto" && !CudaDeviceVisible())) {
    return NewCpuEngine(model, kv_blocks, block_size);
  }
  if (device == "cuda" || device == "auto")
    return NewCudaEngine(model, kv_blocks, block_size, max_step_rows);
  return absl::InvalidArgumentError(
      StrCat("unknown device ", Quoted(device), "; use auto, cpu or cuda"));
}

#ifndef QUIVER_HAVE_CUDA_ENGINE
bool CudaDeviceVisible() { return false; }

absl::StatusOr<double> CudaMemoryBandwidth() {
  return absl::UnavailableError("this build has no CUDA engine (nvcc was not found at build time)");
}

absl::StatusOr<std::unique_ptr<DecodeEngine>> NewCudaEngine(const LlamaModel*, size_t, int, int) {
  return absl::UnavailableError("this build has no CUDA engine (nvcc was not found at build time)");
}
#endif

}  // namespace quiver::llm
