#include "embed/service.h"

#include <algorithm>
#include <cmath>

#include "common/coding.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/strings.h"

namespace quiver::embed {
namespace {

void Normalize(std::vector<float>* v) {
  double n = 0;
  for (float x : *v) n += static_cast<double>(x) * x;
  n = std::sqrt(n);
  if (n == 0) return;
  for (float& x : *v) x = static_cast<float>(x / n);
}

}  // namespace

absl::StatusOr<std::unique_ptr<EmbeddingService>> EmbeddingService::Load(
    const ServiceOptions& options) {
  RETURN_IF_ERROR(options.worker.Validate());
  if (options.max_inputs < 1) return absl::InvalidArgumentError("max_inputs must be >= 1");
  std::unique_ptr<EmbeddingService> s(new EmbeddingService());
  s->options_ = options;
  ASSIGN_OR_RETURN(s->backend_, nn::NewBackend(options.device, {options.precision}));
  const std::string precision(nn::MatmulPrecisionName(s->backend_->precision()));
  // One token through each model at load: the CPU backend packs the
  // weights for its kernels at their first use, so that happens here (in
  // the memory counted for the models, not in the first request).
  const std::vector<nn::Encoding> warm_up = {{{0}, {0}, {}}};
  if (!options.embed_model_dir.empty()) {
    ASSIGN_OR_RETURN(s->embedder_, LoadEmbeddingModel(options.embed_model_dir, s->backend_.get()));
    RETURN_IF_ERROR(s->embedder_->EmbedBatch(warm_up).status());
    s->embed_name_ = std::string(LastPathComponent(options.embed_model_dir));
    EmbeddingModel* m = s->embedder_.get();
    s->embed_worker_ = std::make_unique<BatchingWorker>(
        [m](const std::vector<nn::Encoding>& batch) { return m->EmbedBatch(batch); },
        options.worker);
    Log(LogLevel::kInfo, "embedding model loaded",
        {{"model", s->embed_name_},
         {"kind", m->kind()},
         {"dimension", m->dimension()},
         {"device", m->device()},
         {"precision", precision}});
  }
  if (!options.rerank_model_dir.empty()) {
    ASSIGN_OR_RETURN(s->reranker_, LoadRerankModel(options.rerank_model_dir, s->backend_.get()));
    RETURN_IF_ERROR(s->reranker_->ScoreBatch(warm_up).status());
    s->rerank_name_ = std::string(LastPathComponent(options.rerank_model_dir));
    RerankModel* m = s->reranker_.get();
    s->rerank_worker_ = std::make_unique<BatchingWorker>(
        [m](const std::vector<nn::Encoding>& batch)
            -> absl::StatusOr<std::vector<std::vector<float>>> {
          ASSIGN_OR_RETURN(std::vector<float> scores, m->ScoreBatch(batch));
          std::vector<std::vector<float>> out;
          for (float score : scores) out.push_back({score});
          return out;
        },
        options.worker);
    Log(LogLevel::kInfo, "reranker loaded",
        {{"model", s->rerank_name_}, {"device", m->device()}, {"precision", precision}});
  }
  return s;
}

size_t EmbeddingService::queued() const {
  return (embed_worker_ != nullptr ? embed_worker_->queued() : 0) +
         (rerank_worker_ != nullptr ? rerank_worker_->queued() : 0);
}

WorkerStats EmbeddingService::embed_stats() const {
  return embed_worker_ != nullptr ? embed_worker_->stats() : WorkerStats{};
}

WorkerStats EmbeddingService::rerank_stats() const {
  return rerank_worker_ != nullptr ? rerank_worker_->stats() : WorkerStats{};
}

EmbeddingService::~EmbeddingService() {
  // Workers first: their threads call into the models.
  embed_worker_.reset();
  rerank_worker_.reset();
}

absl::StatusOr<EmbedResult> EmbeddingService::Embed(const std::vector<std::string>& texts,
                                                    bool normalize, std::string_view model) {
  if (embedder_ == nullptr) {
    return absl::FailedPreconditionError(
        "no embedding model is loaded (quiverd --embed-model=DIR)");
  }
  if (!model.empty() && model != embed_name_) {
    return absl::NotFoundError(
        StrCat("no embedding model ", Quoted(model), "; this server has ", Quoted(embed_name_)));
  }
  if (texts.empty()) return absl::InvalidArgumentError("embed needs at least one input");
  if (texts.size() > options_.max_inputs) {
    return absl::InvalidArgumentError(
        StrCat(texts.size(), " inputs; the limit is ", options_.max_inputs, " per request"));
  }
  std::vector<nn::Encoding> encodings;
  EmbedResult out;
  for (size_t i = 0; i < texts.size(); ++i) {
    if (!IsValidUtf8(texts[i])) {
      return absl::InvalidArgumentError(StrCat("input ", i, " is not valid UTF-8"));
    }
    ASSIGN_OR_RETURN(nn::Encoding e, embedder_->Tokenize(texts[i]));
    if (e.ids.empty() && embedder_->kind() == "bert") {
      return absl::InvalidArgumentError(StrCat("input ", i, " has no tokens"));
    }
    out.token_counts.push_back(static_cast<uint32_t>(e.ids.size()));
    encodings.push_back(std::move(e));
  }
  ASSIGN_OR_RETURN(out.vectors, embed_worker_->Run(std::move(encodings)));
  if (normalize) {
    for (std::vector<float>& v : out.vectors) Normalize(&v);
  }
  return out;
}

absl::StatusOr<std::vector<RankedDocument>> EmbeddingService::Rerank(
    const std::string& query, const std::vector<std::string>& documents, size_t top_n,
    std::string_view model) {
  if (reranker_ == nullptr) {
    return absl::FailedPreconditionError("no reranker is loaded (quiverd --rerank-model=DIR)");
  }
  if (!model.empty() && model != rerank_name_) {
    return absl::NotFoundError(
        StrCat("no reranker ", Quoted(model), "; this server has ", Quoted(rerank_name_)));
  }
  if (query.empty() || documents.empty()) {
    return absl::InvalidArgumentError("rerank needs a query and at least one document");
  }
  if (documents.size() > options_.max_inputs) {
    return absl::InvalidArgumentError(
        StrCat(documents.size(), " documents; the limit is ", options_.max_inputs, " per request"));
  }
  if (!IsValidUtf8(query)) return absl::InvalidArgumentError("query is not valid UTF-8");
  std::vector<nn::Encoding> pairs;
  for (size_t i = 0; i < documents.size(); ++i) {
    if (!IsValidUtf8(documents[i])) {
      return absl::InvalidArgumentError(StrCat("document ", i, " is not valid UTF-8"));
    }
    ASSIGN_OR_RETURN(nn::Encoding e, reranker_->TokenizePair(query, documents[i]));
    pairs.push_back(std::move(e));
  }
  ASSIGN_OR_RETURN(auto logits, rerank_worker_->Run(std::move(pairs)));
  std::vector<RankedDocument> ranked(documents.size());
  for (uint32_t i = 0; i < ranked.size(); ++i) {
    ranked[i] = {i, 1.0f / (1.0f + std::exp(-logits[i][0]))};
  }
  std::stable_sort(
      ranked.begin(), ranked.end(),
      [](const RankedDocument& a, const RankedDocument& b) { return a.score > b.score; });
  if (top_n > 0 && top_n < ranked.size()) ranked.resize(top_n);
  return ranked;
}

}  // namespace quiver::embed
