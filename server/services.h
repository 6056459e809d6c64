// gRPC handlers: each converts proto -> domain, calls the db::Engine, converts
// back, and maps the Status in one place (convert.h).
#ifndef QUIVER_SERVER_SERVICES_H_
#define QUIVER_SERVER_SERVICES_H_

#include <string>

#include "absl/time/time.h"
#include "db/engine.h"
#include "embed/service.h"
#include "llm/generator.h"
#include "quiver/v1/admin.grpc.pb.h"
#include "quiver/v1/collections.grpc.pb.h"
#include "quiver/v1/models.grpc.pb.h"
#include "quiver/v1/points.grpc.pb.h"
#include "quiver/v1/rag.grpc.pb.h"
#include "quiver/v1/search.grpc.pb.h"
#include "rag/pipeline.h"
#include "server/auth.h"
#include "server/metrics.h"

namespace quiver::server {

// The API-key check every RPC makes before anything else (Admin.Health
// excepted): UNAUTHENTICATED / PERMISSION_DENIED as ApiKeys::Authorize says.
class Guarded {
 public:
  void set_api_keys(const ApiKeys* keys) { keys_ = keys; }

 protected:
  grpc::Status Guard(grpc::ServerContext* ctx, bool write) const;

 private:
  const ApiKeys* keys_ = nullptr;
};

class CollectionsService final : public v1::Collections::Service, public Guarded {
 public:
  explicit CollectionsService(db::Engine* engine) : engine_(engine) {}
  grpc::Status Create(grpc::ServerContext*, const v1::CreateCollectionRequest*,
                      v1::CreateCollectionResponse*) override;
  grpc::Status Get(grpc::ServerContext*, const v1::GetCollectionRequest*,
                   v1::GetCollectionResponse*) override;
  grpc::Status List(grpc::ServerContext*, const v1::ListCollectionsRequest*,
                    v1::ListCollectionsResponse*) override;
  grpc::Status Delete(grpc::ServerContext*, const v1::DeleteCollectionRequest*,
                      v1::DeleteCollectionResponse*) override;

 private:
  db::Engine* engine_;
};

class PointsService final : public v1::Points::Service, public Guarded {
 public:
  explicit PointsService(db::Engine* engine) : engine_(engine) {}
  grpc::Status Upsert(grpc::ServerContext*, const v1::UpsertRequest*, v1::UpsertResponse*) override;
  grpc::Status Fetch(grpc::ServerContext*, const v1::FetchRequest*, v1::FetchResponse*) override;
  grpc::Status Update(grpc::ServerContext*, const v1::UpdateRequest*, v1::UpdateResponse*) override;
  grpc::Status Delete(grpc::ServerContext*, const v1::DeleteRequest*, v1::DeleteResponse*) override;
  grpc::Status ListIds(grpc::ServerContext*, const v1::ListIdsRequest*,
                       v1::ListIdsResponse*) override;
  grpc::Status DescribeStats(grpc::ServerContext*, const v1::DescribeStatsRequest*,
                             v1::DescribeStatsResponse*) override;
  grpc::Status ListNamespaces(grpc::ServerContext*, const v1::ListNamespacesRequest*,
                              v1::ListNamespacesResponse*) override;

 private:
  db::Engine* engine_;
};

class SearchService final : public v1::Search::Service, public Guarded {
 public:
  explicit SearchService(db::Engine* engine) : engine_(engine) {}
  grpc::Status Query(grpc::ServerContext*, const v1::QueryRequest*, v1::QueryResponse*) override;

 private:
  db::Engine* engine_;
};

// Embedding, reranking and generation through the shared models layer
// (embed::EmbeddingService, llm::Generator); FAILED_PRECONDITION for a
// model this server has not loaded.
class ModelsService final : public v1::Models::Service, public Guarded {
 public:
  // `generator` may be null (no generative model); none is owned.
  // Generation goes through `pipeline` (and its answer cache).
  ModelsService(embed::EmbeddingService* embedding, llm::Generator* generator,
                rag::Pipeline* pipeline)
      : embedding_(embedding), generator_(generator), pipeline_(pipeline) {}
  grpc::Status Embed(grpc::ServerContext*, const v1::EmbedRequest*, v1::EmbedResponse*) override;
  grpc::Status Rerank(grpc::ServerContext*, const v1::RerankRequest*, v1::RerankResponse*) override;
  grpc::Status Generate(grpc::ServerContext*, const v1::GenerateRequest*,
                        grpc::ServerWriter<v1::GenerateResponse>*) override;
  grpc::Status ListModels(grpc::ServerContext*, const v1::ListModelsRequest*,
                          v1::ListModelsResponse*) override;
  void set_audit(AuditLog* audit) { audit_ = audit; }

 private:
  embed::EmbeddingService* embedding_;
  llm::Generator* generator_;
  rag::Pipeline* pipeline_;
  AuditLog* audit_ = nullptr;
};

class RagService final : public v1::Rag::Service, public Guarded {
 public:
  explicit RagService(rag::Pipeline* pipeline) : pipeline_(pipeline) {}
  grpc::Status UpsertDocument(grpc::ServerContext*, const v1::UpsertDocumentRequest*,
                              v1::UpsertDocumentResponse*) override;
  grpc::Status GetDocument(grpc::ServerContext*, const v1::GetDocumentRequest*,
                           v1::GetDocumentResponse*) override;
  grpc::Status ListDocuments(grpc::ServerContext*, const v1::ListDocumentsRequest*,
                             v1::ListDocumentsResponse*) override;
  grpc::Status DeleteDocument(grpc::ServerContext*, const v1::DeleteDocumentRequest*,
                              v1::DeleteDocumentResponse*) override;
  grpc::Status Ask(grpc::ServerContext*, const v1::AskRequest*,
                   grpc::ServerWriter<v1::AskResponse>*) override;
  void set_audit(AuditLog* audit) { audit_ = audit; }

 private:
  rag::Pipeline* pipeline_;
  AuditLog* audit_ = nullptr;
};

struct ServerFacts {
  std::string version;
  std::string sync_policy;
  std::string cpu_kernels;
  uint32_t threads = 0;
  size_t max_embed_inputs = 0;
  absl::Time started;
};

class AdminService final : public v1::Admin::Service, public Guarded {
 public:
  AdminService(db::Engine* engine, ServerFacts facts) : engine_(engine), facts_(std::move(facts)) {}
  grpc::Status Health(grpc::ServerContext*, const v1::HealthRequest*, v1::HealthResponse*) override;
  grpc::Status ServerInfo(grpc::ServerContext*, const v1::ServerInfoRequest*,
                          v1::ServerInfoResponse*) override;
  grpc::Status Snapshot(grpc::ServerContext*, const v1::SnapshotRequest*,
                        v1::SnapshotResponse*) override;

 private:
  db::Engine* engine_;
  const ServerFacts facts_;
};

}  // namespace quiver::server

#endif  // QUIVER_SERVER_SERVICES_H_
