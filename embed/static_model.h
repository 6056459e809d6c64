// model2vec static embedding models (Hugging Face directory: tokenizer.json,
// model.safetensors, config.json): a sentence's embedding is the mean of its
// tokens' rows, L2-normalised when config.json says "normalize".
// Vocabulary-quantized models store k-means centroids: a token's row is
// embeddings[mapping[token]] * weights[token].
#ifndef QUIVER_EMBED_STATIC_MODEL_H_
#define QUIVER_EMBED_STATIC_MODEL_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nn/tokenizer.h"

namespace quiver::embed {

class StaticModel {
 public:
  // Tokens per text (model2vec's default); longer texts are truncated.
  static constexpr size_t kMaxTokens = 512;

  static absl::StatusOr<std::unique_ptr<StaticModel>> Load(const std::string& dir);

  // One embedding of dimension() floats per text.
  absl::StatusOr<std::vector<float>> Embed(std::string_view text) const;
  // The embedding of tokens (ids from tokenizer(), no specials).
  std::vector<float> EmbedIds(const std::vector<int32_t>& ids) const;
  size_t dimension() const { return dim_; }
  const nn::Tokenizer& tokenizer() const { return *tokenizer_; }

 private:
  std::unique_ptr<nn::Tokenizer> tokenizer_;
  size_t dim_ = 0;
  size_t vocab_ = 0;
  std::vector<float> table_;      // Rows: tokens, or centroids with mapping_.
  std::vector<int64_t> mapping_;  // Token -> row (quantized models), else empty.
  std::vector<float> weights_;    // Per-token scale, else empty.
  bool normalize_ = true;
  int32_t unk_ = -1;
};

}  // namespace quiver::embed

#endif  // QUIVER_EMBED_STATIC_MODEL_H_
