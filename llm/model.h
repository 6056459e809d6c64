// The Llama-family decoder: token embedding, per layer RMSNorm -> q/k/v
// projections (optional biases) -> RoPE (interleaved pairs) -> grouped-query
// attention over a paged KV cache -> output projection + residual, RMSNorm
// -> SwiGLU feed-forward + residual; final RMSNorm; classifier (tied to the
// embedding or its own). Weights stay as stored (weight_tensor.h); one
// batched step serves many sequences.
#ifndef QUIVER_LLM_MODEL_H_
#define QUIVER_LLM_MODEL_H_

#include <algorithm>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "llm/config.h"
#include "llm/kv_cache.h"
#include "llm/step.h"
#include "llm/weight_tensor.h"

namespace quiver::llm {

// A Llama model's weight groups by name, each with its layers concatenated,
// row-major [out][in] as llama2.c stores them. Q and K rows (and their
// biases) rotate interleaved pairs, llama2.c's and GGUF llama's layout.
template <typename T>
struct LlamaWeights {
  T embedding;   // (vocab, dim)
  T rms_att;     // (layers, dim)
  T wq;          // (layers, dim, dim)
  T wk, wv;      // (layers, kv_dim, dim) each
  T wo;          // (layers, dim, dim)
  T rms_ffn;     // (layers, dim)
  T w1;          // Gate: (layers, hidden, dim)
  T w2;          // Down: (layers, dim, hidden)
  T w3;          // Up: (layers, hidden, dim)
  T rms_final;   // (dim)
  T classifier;  // (vocab, dim); empty with config.shared_classifier: the embedding.
  T bq;          // Qwen2-style attention biases (layers, dim), (layers, kv_dim)
  T bk, bv;      // twice; all three empty: none.

  // The groups in a fixed order (llama2.c's file order, then the classifier
  // and the biases), for code that walks them all.
  static constexpr size_t kGroups = 15;
  T& group(size_t i) { return this->*kMembers[i]; }
  const T& group(size_t i) const { return this->*kMembers[i]; }
  static constexpr const char* kNames[kGroups] = {
      "token embedding", "attention norms", "wq",        "wk",      "wv",         "wo",
      "ffn norms",       "w1 (gate)",       "w2 (down)", "w3 (up)", "final norm", "classifier",
      "q bias",          "k bias",          "v bias"};

 private:
  static constexpr T LlamaWeights::*kMembers[kGroups] = {
      &LlamaWeights::embedding, &LlamaWeights::rms_att,   &LlamaWeights::wq,
      &LlamaWeights::wk,        &LlamaWeights::wv,        &LlamaWeights::wo,
      &LlamaWeights::rms_ffn,   &LlamaWeights::w1,        &LlamaWeights::w2,
      &LlamaWeights::w3,        &LlamaWeights::rms_final, &LlamaWeights::classifier,
      &LlamaWeights::bq,        &LlamaWeights::bk,        &LlamaWeights::bv};
};

// How many values each group of a model with `config` holds (the biases'
// sizes whether or not a model has them).
LlamaWeights<size_t> LlamaWeightSizes(const LlamaConfig& config);

class LlamaModel {
 public:
  // DATA_LOSS / INVALID_ARGUMENT for a truncated file or an impossible header.
  static absl::StatusOr<std::unique_ptr<LlamaModel>> LoadLlama2c(const std::string& path);

  const LlamaConfig& config() const { return config_; }
  // The weights (for conversion to other formats); matrices kept quantized
  // show as empty (is_float32() says).
  using Weights = LlamaWeights<std::span<const float>>;
  Weights weights() const {
    return {embedding_.floats(),
            rms_att_,
            wq_.floats(),
            wk_.floats(),
            wv_.floats(),
            wo_.floats(),
            rms_ffn_,
            w1_.floats(),
            w2_.floats(),
            w3_.floats(),
            rms_final_,
            classifier_.floats(),
            bq_,
            bk_,
            bv_};
  }
  bool is_float32() const;
  // Bytes of weights as stored (a tied classifier's data counted once).
  size_t weight_bytes() const;
  // Weight bytes one decode step reads: every matrix but the embedding
  // table (one row of it per token), the classifier included.
  size_t bytes_per_step() const;
  // A model from a config and its weights (LlamaWeights says the layout).
  // With config.shared_classifier, an empty classifier means "the
  // embedding" (one copy, shared). INVALID_ARGUMENT naming the group when a
  // size does not match the config (the biases: all empty or all sized).
  static absl::StatusOr<std::unique_ptr<LlamaModel>> FromWeights(
      const LlamaConfig& config, LlamaWeights<std::vector<float>> weights);
  // The same with each group as stored (norms and biases are read as
  // float32 whatever their type).
  static absl::StatusOr<std::unique_ptr<LlamaModel>> FromTensors(
      const LlamaConfig& config, LlamaWeights<WeightTensor> weights);
  bool has_attention_bias() const { return !bq_.empty(); }
  // Every tensor as stored (layers concatenated, as FromTensors takes
  // them), for engines that keep their own copy (CUDA). The biases are
  // empty without attention biases. Valid while the model lives.
  struct Stored {
    const WeightTensor *embedding, *wq, *wk, *wv, *wo, *w1, *w2, *w3, *classifier;
    const std::vector<float>*rms_att, *rms_ffn, *rms_final, *bq, *bk, *bv;
  };
  Stored stored() const {
    return {&embedding_,  &wq_,      &wk_,      &wv_,        &wo_, &w1_, &w2_, &w3_,
            &classifier_, &rms_att_, &rms_ffn_, &rms_final_, &bq_, &bk_, &bv_};
  }
  // Caps the context length (sequences longer than `n` are refused), for
  // models whose native context needs more KV cache than a server has.
  void LimitContext(int n) { config_.seq_len = std::max(1, std::min(config_.seq_len, n)); }
  // Q8_0 and Q4_0 matrices multiply generated tokens' rows with int8
  // activations (internal/int8_dots.h: VNNI / AVX2 integer dots) instead
  // of their exact float32 values (not faster than the float path on the
  // development VM yet: bench/README.md). Other stored types, long prompts' rows and the
  // CUDA engine are unaffected. Changes the numerics (the model no longer
  // gives the float32 copy's tokens); a row's result still does not
  // depend on its batch. Set before the model is shared.
  void SetInt8Dots(bool on) { int8_dots_ = on; }
  bool int8_dots() const { return int8_dots_; }
  // The RoPE frequency of each rotated pair (head_size / 2), scaling applied.
  const std::vector<float>& rope_inv_freq() const { return inv_freq_; }
  // A batched step over rows of many sequences (several rows of one
  // sequence must be in position order): stores each row's keys and values
  // in the paged cache, then returns each row's logits (empty for rows
  // with logits = false). Every weight matrix
  // is read once per step for all rows, and each row's arithmetic does not
  // depend on the others, so a sequence gets the same tokens alone (one row
  // per step) or batched.
  std::vector<std::vector<float>> ForwardBatch(const std::vector<StepRow>& rows,
                                               PagedKvCache* cache) const;

 private:
  LlamaConfig config_;
  // Row-major [out][in] matrices, as llama2.c stores them.
  WeightTensor embedding_, wq_, wk_, wv_, wo_, w1_, w2_, w3_, classifier_;
  std::vector<float> rms_att_, rms_ffn_, rms_final_;
  std::vector<float> bq_, bk_, bv_;  // Empty without attention biases.
  bool int8_dots_ = false;
  std::vector<float> inv_freq_;
  void InitRope();
};

}  // namespace quiver::llm

#endif  // QUIVER_LLM_MODEL_H_
