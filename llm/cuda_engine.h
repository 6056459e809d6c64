// The CUDA decode engine (compiled when nvcc is found; see engine.h). The
// weights go to GPU memory as stored (float32, float16, bfloat16, Q8_0,
// Q4_0, Q4_K, Q5_K, Q6_K; a layer group mixing types keeps each layer's
// type) and are converted to exactly the CPU's float32 values as read; the
// KV cache lives in GPU memory in blocks of positions. Each output value is
// computed in a fixed order that does not depend on the batch, so a sequence gets the
// same tokens alone or batched; results agree with the CPU engine within
// float rounding (a different summation order), not bit for bit.
#ifndef QUIVER_LLM_CUDA_ENGINE_H_
#define QUIVER_LLM_CUDA_ENGINE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "llm/engine.h"

namespace quiver::llm {

// Whether this process sees a CUDA GPU (false in a build without CUDA).
bool CudaDeviceVisible();

// The GPU's memory bandwidth in GB/s (bytes read plus bytes written per
// second by a large device-to-device copy, the best of a few), for
// benchmarks' bounds; UNAVAILABLE without a GPU.
absl::StatusOr<double> CudaMemoryBandwidth();

// UNAVAILABLE without a GPU; RESOURCE_EXHAUSTED when GPU memory runs out.
// max_step_rows > 0: the per-step buffers for that many rows are allocated
// here (see NewDecodeEngine); a step with more rows grows them, aborting
// if the GPU has no room left.
absl::StatusOr<std::unique_ptr<DecodeEngine>> NewCudaEngine(const LlamaModel* model,
                                                            size_t kv_blocks, int block_size,
                                                            int max_step_rows = 0);

}  // namespace quiver::llm

#endif  // QUIVER_LLM_CUDA_ENGINE_H_
