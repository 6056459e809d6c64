// The embedding and reranking models a server serves: an embedding model and
// a cross-encoder (each optional) on one compute backend, each behind its own
// batching worker, with the request checks and answer shaping every
// transport (gRPC, HTTP) and the RAG pipeline share: input limits, UTF-8,
// optional L2 normalisation, rerank scores as probabilities ordered best
// first. Thread-safe.
#ifndef QUIVER_EMBED_SERVICE_H_
#define QUIVER_EMBED_SERVICE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "embed/model.h"
#include "embed/worker.h"
#include "nn/backend.h"

namespace quiver::embed {

struct ServiceOptions {
  std::string embed_model_dir;   // Default: empty, no embedding model.
  std::string rerank_model_dir;  // Default: empty, no reranker.
  std::string device = "auto";   // auto | cpu | cuda.
  // The models' matrix products (nn::MatmulPrecision).
  nn::MatmulPrecision precision = nn::MatmulPrecision::kFloat32;
  WorkerOptions worker;
  size_t max_inputs = 2048;  // Texts per Embed call / documents per Rerank. >= 1.
};

struct EmbedResult {
  std::vector<std::vector<float>> vectors;  // One per input, in order.
  std::vector<uint32_t> token_counts;       // Tokens the model saw per input.
};

struct RankedDocument {
  uint32_t index = 0;  // Position in the request's documents.
  float score = 0;     // Sigmoid of the cross-encoder's logit: 0..1.
};

class EmbeddingService {
 public:
  // Loads the models named in `options` (none is fine). INVALID_ARGUMENT
  // for bad options; the loaders' errors.
  static absl::StatusOr<std::unique_ptr<EmbeddingService>> Load(const ServiceOptions& options);
  ~EmbeddingService();

  bool has_embedder() const { return embedder_ != nullptr; }
  bool has_reranker() const { return reranker_ != nullptr; }
  // Model names: the model directories' last path component ("" if none).
  const std::string& embed_name() const { return embed_name_; }
  const std::string& rerank_name() const { return rerank_name_; }
  // REQUIRES: the model is loaded.
  const EmbeddingModel& embedder() const { return *embedder_; }
  const RerankModel& reranker() const { return *reranker_; }
  const ServiceOptions& options() const { return options_; }
  // Texts waiting in the embedding and rerank workers' queues.
  size_t queued() const;
  // Batches run so far by the embedding and rerank workers (zero when the
  // model is not loaded).
  WorkerStats embed_stats() const;
  WorkerStats rerank_stats() const;

  // Embeds `texts` (at least one, at most max_inputs, each valid UTF-8 with
  // at least one token for BERT models); `normalize` scales each vector to
  // unit L2 length (a zero vector stays zero). `model`: empty or the loaded
  // model's name. FAILED_PRECONDITION when no embedding model is loaded,
  // NOT_FOUND for another name, INVALID_ARGUMENT for bad input,
  // RESOURCE_EXHAUSTED when the worker's queue is full.
  absl::StatusOr<EmbedResult> Embed(const std::vector<std::string>& texts, bool normalize = false,
                                    std::string_view model = {});
  // Every document's relevance to `query`, best first (ties keep document
  // order), the first `top_n` (0: all). Errors as Embed's (a query and at
  // least one document are required).
  absl::StatusOr<std::vector<RankedDocument>> Rerank(const std::string& query,
                                                     const std::vector<std::string>& documents,
                                                     size_t top_n = 0, std::string_view model = {});

 private:
  EmbeddingService() = default;
  ServiceOptions options_;
  std::unique_ptr<nn::Backend> backend_;
  std::unique_ptr<EmbeddingModel> embedder_;
  std::unique_ptr<RerankModel> reranker_;
  // Declared after the models they call into, so they stop first.
  std::unique_ptr<BatchingWorker> embed_worker_, rerank_worker_;
  std::string embed_name_, rerank_name_;
};

}  // namespace quiver::embed

#endif  // QUIVER_EMBED_SERVICE_H_
