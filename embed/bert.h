// BERT-family encoders (BERT, MiniLM, bge, e5: learned absolute positions,
// post-layer-norm, GELU) loaded from a Hugging Face directory, with
// sentence-transformers pooling (mean or CLS) and optional L2
// normalisation, and the cross-encoder head (BertForSequenceClassification:
// pooler + classifier) for reranking.
//
// Directory: config.json, model.safetensors (tensor names with or without
// the "bert." prefix), tokenizer.json; optional modules.json,
// 1_Pooling/config.json, sentence_bert_config.json (max_seq_length).
//
// Thread-compatible: one caller at a time (the worker serialises batches).
#ifndef QUIVER_EMBED_BERT_H_
#define QUIVER_EMBED_BERT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nn/backend.h"
#include "nn/tokenizer.h"

namespace quiver::embed {

struct BertConfig {
  int64_t vocab_size = 0, hidden = 0, layers = 0, heads = 0, intermediate = 0;
  int64_t max_positions = 512, type_vocab = 2;
  float layer_norm_eps = 1e-12f;
  int64_t num_labels = 0;  // > 0 with a classifier head.
};

enum class Pooling { kMean, kCls };

class BertEncoder {
 public:
  // `backend` must outlive the encoder. RESOURCE_EXHAUSTED when the
  // weights do not fit in the device's memory (as for a forward pass).
  static absl::StatusOr<std::unique_ptr<BertEncoder>> Load(const std::string& dir,
                                                           nn::Backend* backend);

  // The last hidden states of a batch, padded to the longest sequence:
  // [batch * seq, hidden] floats with *seq set.
  absl::StatusOr<std::vector<float>> Forward(const std::vector<nn::Encoding>& batch, int64_t* seq);
  // Sentence embeddings (pooled, normalised when configured), one per text.
  absl::StatusOr<std::vector<std::vector<float>>> Embed(const std::vector<std::string>& texts);
  // Embeddings of already tokenised texts (the worker tokenises ahead).
  absl::StatusOr<std::vector<std::vector<float>>> EmbedEncoded(
      const std::vector<nn::Encoding>& batch);
  // Cross-encoder relevance logits (first label) of (query, document) pairs.
  // FAILED_PRECONDITION without a classifier head.
  absl::StatusOr<std::vector<float>> Score(const std::vector<nn::Encoding>& pairs);
  absl::StatusOr<std::vector<float>> ScorePairs(const std::string& query,
                                                const std::vector<std::string>& documents);

  // Tokenises for this model (specials added, truncated to max_tokens()).
  absl::StatusOr<nn::Encoding> Tokenize(const std::string& text) const;
  const nn::Tokenizer& tokenizer() const { return *tokenizer_; }
  absl::StatusOr<nn::Encoding> TokenizePair(const std::string& a, const std::string& b) const;

  const BertConfig& config() const { return config_; }
  size_t dimension() const { return static_cast<size_t>(config_.hidden); }
  size_t max_tokens() const { return max_tokens_; }
  Pooling pooling() const { return pooling_; }
  bool normalize() const { return normalize_; }
  bool has_classifier() const { return config_.num_labels > 0; }

 private:
  struct Layer {
    nn::Tensor q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b, ln1_g, ln1_b;
    nn::Tensor up_w, up_b, down_w, down_b, ln2_g, ln2_b;
  };
  BertEncoder() = default;
  static absl::StatusOr<std::unique_ptr<BertEncoder>> LoadOnBackend(const std::string& dir,
                                                                    nn::Backend* backend);
  absl::StatusOr<nn::Tensor> RunEncoder(const std::vector<nn::Encoding>& batch, int64_t* seq,
                                        std::vector<int32_t>* lengths);

  nn::Backend* backend_ = nullptr;
  BertConfig config_;
  std::unique_ptr<nn::Tokenizer> tokenizer_;
  nn::Tensor word_, position_, type_, emb_ln_g_, emb_ln_b_;
  std::vector<Layer> layers_;
  nn::Tensor pooler_w_, pooler_b_, classifier_w_, classifier_b_;
  Pooling pooling_ = Pooling::kMean;
  bool normalize_ = false;
  size_t max_tokens_ = 512;
};

}  // namespace quiver::embed

#endif  // QUIVER_EMBED_BERT_H_
