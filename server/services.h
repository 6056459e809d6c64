// gRPC handlers: each converts proto -> domain, calls the db::Engine, converts
// back, and maps the Status in one place (convert.h). They run on CallQueue
// workers (calls.h); grpc_services.h binds them to the quiver.v1 services.
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
#include "server/calls.h"
#include "server/metrics.h"

namespace quiver::server {

// The API-key check every RPC makes before anything else (Admin.Health
// excepted): UNAUTHENTICATED / PERMISSION_DENIED as ApiKeys::Authorize says.
class Guarded {
 public:
  void set_api_keys(const ApiKeys* keys) { keys_ = keys; }

 protected:
  grpc::Status Guard(grpc::CallbackServerContext* ctx, bool write) const;

 private:
  const ApiKeys* keys_ = nullptr;
};

class CollectionsService final : public Guarded {
 public:
  explicit CollectionsService(db::Engine* engine) : engine_(engine) {}
  grpc::Status Create(grpc::CallbackServerContext*, const v1::CreateCollectionRequest*,
                      v1::CreateCollectionResponse*);
  grpc::Status Get(grpc::CallbackServerContext*, const v1::GetCollectionRequest*,
                   v1::GetCollectionResponse*);
  grpc::Status List(grpc::CallbackServerContext*, const v1::ListCollectionsRequest*,
                    v1::ListCollectionsResponse*);
  grpc::Status Delete(grpc::CallbackServerContext*, const v1::DeleteCollectionRequest*,
                      v1::DeleteCollectionResponse*);

 private:
  db::Engine* engine_;
};

class PointsService final : public Guarded {
 public:
  explicit PointsService(db::Engine* engine) : engine_(engine) {}
  grpc::Status Upsert(grpc::CallbackServerContext*, const v1::UpsertRequest*, v1::UpsertResponse*);
  grpc::Status Fetch(grpc::CallbackServerContext*, const v1::FetchRequest*, v1::FetchResponse*);
  grpc::Status Update(grpc::CallbackServerContext*, const v1::UpdateRequest*, v1::UpdateResponse*);
  grpc::Status Delete(grpc::CallbackServerContext*, const v1::DeleteRequest*, v1::DeleteResponse*);
  grpc::Status ListIds(grpc::CallbackServerContext*, const v1::ListIdsRequest*,
                       v1::ListIdsResponse*);
  grpc::Status DescribeStats(grpc::CallbackServerContext*, const v1::DescribeStatsRequest*,
                             v1::DescribeStatsResponse*);
  grpc::Status ListNamespaces(grpc::CallbackServerContext*, const v1::ListNamespacesRequest*,
                              v1::ListNamespacesResponse*);

 private:
  db::Engine* engine_;
};

class SearchService final : public Guarded {
 public:
  explicit SearchService(db::Engine* engine) : engine_(engine) {}
  grpc::Status Query(grpc::CallbackServerContext*, const v1::QueryRequest*, v1::QueryResponse*);

 private:
  db::Engine* engine_;
};

// Embedding, reranking and generation through the shared models layer
// (embed::EmbeddingService, llm::Generator); FAILED_PRECONDITION for a
// model this server has not loaded.
class ModelsService final : public Guarded {
 public:
  // `generator` may be null (no generative model); none is owned.
  // Generation goes through `pipeline` (and its answer cache).
  ModelsService(embed::EmbeddingService* embedding, llm::Generator* generator,
                rag::Pipeline* pipeline)
      : embedding_(embedding), generator_(generator), pipeline_(pipeline) {}
  grpc::Status Embed(grpc::CallbackServerContext*, const v1::EmbedRequest*, v1::EmbedResponse*);
  grpc::Status Rerank(grpc::CallbackServerContext*, const v1::RerankRequest*, v1::RerankResponse*);
  grpc::Status Generate(grpc::CallbackServerContext*, const v1::GenerateRequest*,
                        ResponseWriter<v1::GenerateResponse>*);
  grpc::Status ListModels(grpc::CallbackServerContext*, const v1::ListModelsRequest*,
                          v1::ListModelsResponse*);
  void set_audit(AuditLog* audit) { audit_ = audit; }

 private:
  embed::EmbeddingService* embedding_;
  llm::Generator* generator_;
  rag::Pipeline* pipeline_;
  AuditLog* audit_ = nullptr;
};

class RagService final : public Guarded {
 public:
  explicit RagService(rag::Pipeline* pipeline) : pipeline_(pipeline) {}
  grpc::Status UpsertDocument(grpc::CallbackServerContext*, const v1::UpsertDocumentRequest*,
                              v1::UpsertDocumentResponse*);
  grpc::Status GetDocument(grpc::CallbackServerContext*, const v1::GetDocumentRequest*,
                           v1::GetDocumentResponse*);
  grpc::Status ListDocuments(grpc::CallbackServerContext*, const v1::ListDocumentsRequest*,
                             v1::ListDocumentsResponse*);
  grpc::Status DeleteDocument(grpc::CallbackServerContext*, const v1::DeleteDocumentRequest*,
                              v1::DeleteDocumentResponse*);
  grpc::Status Ask(grpc::CallbackServerContext*, const v1::AskRequest*,
                   ResponseWriter<v1::AskResponse>*);
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

class AdminService final : public Guarded {
 public:
  AdminService(db::Engine* engine, ServerFacts facts) : engine_(engine), facts_(std::move(facts)) {}
  grpc::Status Health(grpc::CallbackServerContext*, const v1::HealthRequest*, v1::HealthResponse*);
  grpc::Status ServerInfo(grpc::CallbackServerContext*, const v1::ServerInfoRequest*,
                          v1::ServerInfoResponse*);
  grpc::Status Snapshot(grpc::CallbackServerContext*, const v1::SnapshotRequest*,
                        v1::SnapshotResponse*);
  grpc::Status ListSnapshots(grpc::CallbackServerContext*, const v1::ListSnapshotsRequest*,
                             v1::ListSnapshotsResponse*);

 private:
  db::Engine* engine_;
  const ServerFacts facts_;
};

}  // namespace quiver::server

#endif  // QUIVER_SERVER_SERVICES_H_
