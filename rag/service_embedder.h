// Adapts the embedding service to what the database engine needs of an
// embedding model (db::TextEmbedder), so collections bound to the served
// model embed text through the service's batching worker.
#ifndef QUIVER_RAG_SERVICE_EMBEDDER_H_
#define QUIVER_RAG_SERVICE_EMBEDDER_H_

#include <string>
#include <utility>
#include <vector>

#include "db/text_embedder.h"
#include "embed/service.h"

namespace quiver::rag {

class ServiceEmbedder final : public db::TextEmbedder {
 public:
  // REQUIRES: service->has_embedder(); the service outlives this.
  explicit ServiceEmbedder(embed::EmbeddingService* service) : service_(service) {}
  size_t dimension() const override { return service_->embedder().dimension(); }
  absl::StatusOr<std::vector<std::vector<float>>> Embed(
      const std::vector<std::string>& texts) override {
    auto r = service_->Embed(texts);
    if (!r.ok()) return r.status();
    return std::move(r->vectors);
  }

 private:
  embed::EmbeddingService* service_;
};

}  // namespace quiver::rag

#endif  // QUIVER_RAG_SERVICE_EMBEDDER_H_
