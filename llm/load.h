// Loading a generative model by path, whatever its format: a GGUF file
// (.gguf, carrying its tokenizer), a Hugging Face directory (config.json,
// safetensors, tokenizer.json) or a llama2.c checkpoint with its
// tokenizer.bin. Each format's own loader (gguf.h, hf_model.h,
// LlamaModel::LoadLlama2c) stays callable for tests and tools.
#ifndef QUIVER_LLM_LOAD_H_
#define QUIVER_LLM_LOAD_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "llm/llama2c_tokenizer.h"
#include "llm/model.h"
#include "llm/tokenizer.h"

namespace quiver::llm {

// A model and the tokenizer that goes with it.
struct LoadedModel {
  std::unique_ptr<LlamaModel> model;
  // Llama2cTokenizer for SentencePiece vocabularies, HfTokenizer for byte-level
  // BPE ("gpt2").
  std::unique_ptr<Tokenizer> tokenizer;
};

struct LoadOptions {
  // REQUIRES: non-empty. A path ending in .gguf is GGUF, a directory is Hugging
  // Face, anything else a llama2.c checkpoint.
  std::string path;
  // llama2.c only: its tokenizer.bin. Default (empty): tokenizer.bin next to
  // the checkpoint.
  std::string tokenizer_path;
  // > 0: caps the model's context (and so the KV cache a sequence may need).
  int max_context = 0;
  // Q8_0 / Q4_0 weights multiply int8 activations on the CPU
  // (LlamaModel::SetInt8Dots): faster, not the float32 copy's numerics.
  bool int8_dots = false;
};

// The format's loader's errors: NOT_FOUND for a missing file, DATA_LOSS for a
// truncated or malformed one, INVALID_ARGUMENT for an unsupported
// architecture, tensor type or tokenizer (named in the message).
absl::StatusOr<LoadedModel> LoadModel(const LoadOptions& options);

// The name a model is served under: a directory's last component, or a
// file's name without its extension.
std::string ModelName(const std::string& path);

}  // namespace quiver::llm

#endif  // QUIVER_LLM_LOAD_H_
