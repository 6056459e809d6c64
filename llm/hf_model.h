// Hugging Face model directories for generation: config.json,
// model.safetensors (or shards listed in model.safetensors.index.json),
// tokenizer.json, and tokenizer_config.json / generation_config.json for
// the special tokens and chat template. Architectures: LlamaForCausalLM
// (Llama, TinyLlama, SmolLM2), Qwen2ForCausalLM (q/k/v biases) and
// MistralForCausalLM without a sliding window shorter than its context.
// Weights are converted to float32; Q and K rows are reordered from
// Hugging Face's rotate-half layout to the interleaved pairs LlamaModel
// rotates.
#ifndef QUIVER_LLM_HF_MODEL_H_
#define QUIVER_LLM_HF_MODEL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/json.h"
#include "llm/load.h"
#include "llm/model.h"
#include "llm/tokenizer.h"

namespace quiver::llm {

// NOT_FOUND for a missing file, INVALID_ARGUMENT for an unsupported
// architecture or option (named), a missing tensor or a wrong shape;
// DATA_LOSS for a truncated weights file.
absl::StatusOr<LoadedModel> LoadHfModel(const std::string& dir);

// The model config alone (config.json parsed), for tests and tools.
absl::StatusOr<LlamaConfig> ParseHfConfig(const Json& config);

}  // namespace quiver::llm

#endif  // QUIVER_LLM_HF_MODEL_H_
