// What the batching worker runs: an embedding model or a reranker, behind
// one small interface, and the loader that picks the right kind for a
// Hugging Face directory.
#ifndef QUIVER_EMBED_MODEL_H_
#define QUIVER_EMBED_MODEL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nn/backend.h"
#include "nn/tokenizer.h"

namespace quiver::embed {

class EmbeddingModel {
 public:
  virtual ~EmbeddingModel() = default;
  virtual size_t dimension() const = 0;
  virtual size_t max_tokens() const = 0;
  virtual std::string_view kind() const = 0;  // "bert" or "model2vec".
  // Where it computes: its backend's device ("cpu" or "cuda"); a static
  // model looks its vectors up on the host ("cpu") whatever the backend.
  virtual std::string_view device() const = 0;
  virtual absl::StatusOr<nn::Encoding> Tokenize(const std::string& text) const = 0;
  // Tokens of `text` alone (no special tokens, no truncation): the unit
  // documents are cut in.
  virtual absl::StatusOr<size_t> CountTokens(std::string_view text) const = 0;
  // The most content tokens one input may have before Tokenize truncates
  // it (max_tokens less the special tokens it adds).
  virtual size_t max_content_tokens() const = 0;
  // One embedding per encoding, in order.
  virtual absl::StatusOr<std::vector<std::vector<float>>> EmbedBatch(
      const std::vector<nn::Encoding>& batch) = 0;
};

class RerankModel {
 public:
  virtual ~RerankModel() = default;
  virtual size_t max_tokens() const = 0;
  virtual std::string_view device() const = 0;  // Its backend's device.
  virtual absl::StatusOr<nn::Encoding> TokenizePair(const std::string& query,
                                                    const std::string& document) const = 0;
  // One relevance logit per pair.
  virtual absl::StatusOr<std::vector<float>> ScoreBatch(const std::vector<nn::Encoding>& pairs) = 0;
};

// A model2vec directory (config.json model_type "model2vec") loads as a
// static model; anything else as a BERT encoder on `backend`, which must
// outlive the model.
absl::StatusOr<std::unique_ptr<EmbeddingModel>> LoadEmbeddingModel(const std::string& dir,
                                                                   nn::Backend* backend);
// A BertForSequenceClassification directory.
absl::StatusOr<std::unique_ptr<RerankModel>> LoadRerankModel(const std::string& dir,
                                                             nn::Backend* backend);

}  // namespace quiver::embed

#endif  // QUIVER_EMBED_MODEL_H_
