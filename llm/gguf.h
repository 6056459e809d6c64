// GGUF (version 3, as llama.cpp writes it): "llama" and "qwen2"
// architectures (q/k/v biases; rotate-half Q/K reordered at load) with F32,
// F16, Q8_0, Q4_0 and the K-quants Q4_K / Q5_K / Q6_K (what Q4_K_M and
// Q5_K_M files hold), linear RoPE scaling and rope_freqs; the tokenizer
// from the metadata: SentencePiece "llama" (tokens with U+2581 for spaces,
// merge scores) or byte-level BPE "gpt2" (tokens, merges and the
// pre-tokenizer named by tokenizer.ggml.pre: llama-bpe, qwen2, smollm,
// gpt2), control tokens recognised in prompts, BOS / EOS / EOT ids and the
// chat template. Tensors stay in their stored type (WeightTensor) and are
// converted row by row as they are read; the file is memory-mapped.
//
// Writing: a llama2.c checkpoint converts to GGUF (F32, F16, Q8_0, Q4_0,
// Q4_K or Q6_K, the K-quants with simple min / max scales; norms and rows
// whose length is not a multiple of the block (32; 256 for K-quants) stay
// F32, as llama.cpp does), so the formats can be checked against each
// other. Q and K are stored unpermuted: llama2.c's RoPE rotates interleaved
// pairs, which is GGUF's "llama" convention.
#ifndef QUIVER_LLM_GGUF_H_
#define QUIVER_LLM_GGUF_H_

#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "llm/llama2c_tokenizer.h"
#include "llm/load.h"
#include "llm/model.h"

namespace quiver::llm {

enum class GgufType { kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ8_0 = 8, kQ4_K = 12, kQ6_K = 14 };

// DATA_LOSS for a truncated or malformed file, INVALID_ARGUMENT for an
// unsupported architecture, tensor type or tokenizer.
absl::StatusOr<LoadedModel> LoadGguf(const std::string& path);

// A metadata entry and a tensor for WriteGgufFile. Tensor dims are GGUF's
// (ne[0], the row length, first); values row-major, encoded as `type`
// (Q8_0 / Q4_0 fall back to F32 for vectors and rows not a multiple of 32).
struct GgufMeta {
  std::string key;
  std::variant<uint32_t, float, bool, std::string, std::vector<std::string>, std::vector<float>,
               std::vector<int32_t>>
      value;
};
struct GgufTensor {
  std::string name;
  std::vector<uint64_t> dims;
  GgufType type = GgufType::kF32;
  std::vector<float> values;
};
// Writes a GGUF v3 file (through a temporary file and a rename).
absl::Status WriteGgufFile(const std::string& path, const std::vector<GgufMeta>& metadata,
                           const std::vector<GgufTensor>& tensors);

// A llama2.c-style model (no biases, no RoPE scaling; else UNIMPLEMENTED)
// and its SentencePiece tokenizer as a "llama" GGUF.
absl::Status WriteGguf(const std::string& path, const LlamaModel& model,
                       const Llama2cTokenizer& tokenizer, GgufType type,
                       const std::string& name = "llama");

}  // namespace quiver::llm

#endif  // QUIVER_LLM_GGUF_H_
