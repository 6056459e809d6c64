// The models quiverd serves: an embedding model and a cross-encoder
// reranker (each optional), on one compute backend, each behind its own
// batching worker. Also the db::TextEmbedder the engine uses for collections
// bound to the embedding model.
#ifndef QUIVER_SERVER_MODEL_HOST_H_
#define QUIVER_SERVER_MODEL_HOST_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "embed/model.h"
#include "embed/worker.h"
#include "llm/chat_template.h"
#include "llm/llama2c.h"
#include "llm/scheduler.h"
#include "nn/backend.h"
#include "db/engine.h"

namespace quiver::server {

struct ModelOptions {
  std::string embed_model_dir;   // Empty: none.
  std::string rerank_model_dir;  // Empty: none.
  std::string device = "auto";   // auto | cpu | cuda.
  // The embedding and rerank models' matrix products (nn::MatmulPrecision).
  nn::MatmulPrecision precision = nn::MatmulPrecision::kFloat32;
  embed::WorkerOptions worker;
  std::string llm_model_path;      // .gguf, Hugging Face directory or llama2.c checkpoint; empty: none.
  std::string llm_tokenizer_path;  // Empty: tokenizer.bin next to the checkpoint.
  int llm_max_context = 0;         // > 0: caps the model's context (and the KV cache it needs).
  llm::SchedulerOptions scheduler;
  size_t max_inputs = 2048;      // Texts per Embed request / documents per Rerank.
};

struct EmbedResult {
  std::vector<std::vector<float>> vectors;
  std::vector<uint32_t> token_counts;
};

class ModelHost : public db::TextEmbedder {
 public:
  static absl::StatusOr<std::unique_ptr<ModelHost>> Load(const ModelOptions& options);
  ~ModelHost() override;

  // Model names: the model directories' last path component.
  const std::string& embed_name() const { return embed_name_; }
  const std::string& rerank_name() const { return rerank_name_; }
  bool has_embedder() const { return embedder_ != nullptr; }
  bool has_reranker() const { return reranker_ != nullptr; }
  bool has_generator() const { return scheduler_ != nullptr; }
  const std::string& llm_name() const { return llm_name_; }
  const llm::TokenCodec* llm_tokenizer() const { return llm_tokenizer_.get(); }
  // The generator's chat template applied to `messages` (llm::RenderChat).
  // INVALID_ARGUMENT when the model has no usable template or the template
  // rejects the conversation.
  absl::StatusOr<llm::RenderedChat> RenderChat(const std::vector<llm::ChatMessage>& messages) const;
  llm::Scheduler* scheduler() { return scheduler_.get(); }
  // Where each model computes (see EmbeddingModel::device; the generator's
  // decode engine). REQUIRES: the model is loaded.
  std::string_view embed_device() const { return embedder_->device(); }
  std::string_view rerank_device() const { return reranker_->device(); }
  std::string_view llm_device() const { return scheduler_->device(); }
  size_t embed_max_tokens() const { return embedder_ ? embedder_->max_tokens() : 0; }
  size_t rerank_max_tokens() const { return reranker_ ? reranker_->max_tokens() : 0; }
  const ModelOptions& options() const { return options_; }

  // db::TextEmbedder.
  size_t dimension() const override { return embedder_ ? embedder_->dimension() : 0; }
  absl::StatusOr<std::vector<std::vector<float>>> Embed(
      const std::vector<std::string>& texts) override;

  // INVALID_ARGUMENT for bad text, RESOURCE_EXHAUSTED when the queue is full,
  // FAILED_PRECONDITION when no such model is loaded.
  absl::StatusOr<EmbedResult> EmbedTexts(const std::vector<std::string>& texts);
  // Relevance of each document to the query: sigmoid of the cross-encoder's
  // logit (0..1), in document order.
  absl::StatusOr<std::vector<float>> Rerank(const std::string& query,
                                            const std::vector<std::string>& documents);

 private:
  ModelHost() = default;
  ModelOptions options_;
  std::unique_ptr<nn::Backend> backend_;
  std::unique_ptr<embed::EmbeddingModel> embedder_;
  std::unique_ptr<embed::RerankModel> reranker_;
  std::unique_ptr<embed::BatchingWorker> embed_worker_, rerank_worker_;
  std::string embed_name_, rerank_name_, llm_name_;
  std::unique_ptr<llm::LlamaModel> llm_;
  std::unique_ptr<llm::TokenCodec> llm_tokenizer_;
  std::unique_ptr<llm::Scheduler> scheduler_;
  std::unique_ptr<llm::ChatTemplate> chat_template_;
  absl::Status chat_template_error_;  // Why there is none.
};

}  // namespace quiver::server

#endif  // QUIVER_SERVER_MODEL_HOST_H_
