// GGUF (version 3, as llama.cpp writes it): Llama-architecture models with
// F32, F16 and Q8_0 tensors and the SentencePiece-style tokenizer in the
// metadata ("tokenizer.ggml.model" = "llama": tokens with U+2581 for
// spaces, merge scores). Tensors are dequantised to float32 at load.
//
// Writing: a llama2.c checkpoint converts to GGUF (F32, F16 or Q8_0;
// norms and rows whose length is not a multiple of 32 stay F32 in Q8_0
// files, as llama.cpp does), so the formats can be checked against each
// other. Q and K are stored unpermuted: llama2.c's RoPE rotates interleaved
// pairs, which is GGUF's "llama" convention.
#ifndef QUIVER_LLM_GGUF_H_
#define QUIVER_LLM_GGUF_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "llm/llama2c.h"

namespace quiver::llm {

enum class GgufType { kF32 = 0, kF16 = 1, kQ8_0 = 8 };

struct GgufModel {
  std::unique_ptr<LlamaModel> model;
  std::unique_ptr<Llama2cTokenizer> tokenizer;
};

// DATA_LOSS for a truncated or malformed file, INVALID_ARGUMENT for an
// unsupported architecture, tensor type or tokenizer.
absl::StatusOr<GgufModel> LoadGguf(const std::string& path);

absl::Status WriteGguf(const std::string& path, const LlamaModel& model,
                       const Llama2cTokenizer& tokenizer, GgufType type,
                       const std::string& name = "llama");

}  // namespace quiver::llm

#endif  // QUIVER_LLM_GGUF_H_
