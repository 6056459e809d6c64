// The shape of a Llama-family decoder (every format loads into it).
#ifndef QUIVER_LLM_CONFIG_H_
#define QUIVER_LLM_CONFIG_H_

#include <vector>

namespace quiver::llm {

// How RoPE frequencies are stretched for long contexts (Hugging Face's
// rope_scaling): none; linear (every frequency / factor); llama3 (low
// frequencies / factor, high ones kept, a smooth blend between).
struct RopeScaling {
  enum class Type { kNone, kLinear, kLlama3 };
  Type type = Type::kNone;
  float factor = 1.0f;
  float low_freq_factor = 1.0f, high_freq_factor = 4.0f;
  int original_context = 8192;
};

struct LlamaConfig {
  int dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab_size = 0,
      seq_len = 0;
  bool shared_classifier = true;
  float rope_theta = 10000.0f;
  RopeScaling rope_scaling;
  // GGUF's rope_freqs tensor (per frequency pair, a divisor); empty: none.
  std::vector<float> rope_freq_factors;
  float norm_eps = 1e-5f;
  int head_size() const { return dim / n_heads; }
  int kv_dim() const { return dim * n_kv_heads / n_heads; }
};

}  // namespace quiver::llm

#endif  // QUIVER_LLM_CONFIG_H_
