// quiverd's gRPC server: the db::Engine behind the quiver.v1 services, gRPC
// reflection and the standard grpc.health.v1 service.
#ifndef QUIVER_SERVER_SERVER_H_
#define QUIVER_SERVER_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "db/engine.h"
#include "embed/service.h"
#include "grpcpp/server.h"
#include "llm/generator.h"
#include "rag/answer_cache.h"
#include "rag/pipeline.h"
#include "server/calls.h"
#include "server/grpc_services.h"
#include "server/http.h"
#include "server/metrics.h"
#include "server/services.h"

namespace quiver::server {

inline constexpr char kVersion[] = "0.1.0";

struct ServerOptions {
  db::EngineOptions engine;
  embed::ServiceOptions embed;
  llm::GeneratorOptions llm;  // llm.model.path empty: no generator.
  // host:port addresses; port 0 picks a free port (see bound_ports()).
  std::vector<std::string> listen = {"127.0.0.1:50051"};
  // gRPC calls wait in two bounded queues (server/calls.h), never holding a
  // thread while they wait: data calls (search, reads, writes, admin) run on
  // rpc_threads workers; calls that mostly wait on a model (embedding,
  // reranking, generation, upserts that embed, documents, Ask) on
  // model_rpc_threads, enough to keep continuous batching full. Past
  // max_queued_calls waiting calls per queue: RESOURCE_EXHAUSTED.
  int rpc_threads = 16;         // REQUIRES: >= 1.
  int model_rpc_threads = 256;  // REQUIRES: >= 1.
  size_t max_queued_calls = 4096;
  rag::AnswerCacheOptions answer_cache;
  HttpOptions http;  // http.listen empty: no HTTP server.
  // API keys (server/auth.h): read-write keys, and a file of keys with their
  // access. None: every request is allowed.
  std::vector<std::string> api_keys;
  std::string api_key_file;
  // One JSON line per request (empty: none), rotated at access_log_bytes.
  std::string access_log;
  size_t access_log_bytes = 256 << 20;
  // Prompts and answers of generation requests (empty: none), rotated at
  // audit_log_bytes; see AuditLog.
  std::string audit_log;
  size_t audit_log_bytes = 256 << 20;
  // TLS for both transports (PEM files); both empty: plaintext.
  std::string tls_cert_file, tls_key_file;
  // The memory budget (common/memory_budget.h): what the server holds in
  // memory counts against it, and a load or write that would pass it is
  // refused with RESOURCE_EXHAUSTED. 0: no limit (usage is still
  // reported). Per-part limits: 0 for a part bounded by the total only.
  uint64_t memory_budget_bytes = 0;
  MemoryAmounts memory_part_limits{};
  absl::Status Validate() const;
};

class Server {
 public:
  // Opens the engine (loading every collection), then starts listening.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options);
  ~Server();  // Shuts down if still running.

  // The port each listen address got, in order.
  const std::vector<int>& bound_ports() const { return ports_; }
  // The HTTP server's port; 0 without one.
  int http_port() const { return http_ != nullptr ? http_->port() : 0; }
  // Stops accepting calls, lets running ones finish until `deadline`, then
  // cancels the rest. Idempotent; thread-safe.
  void Shutdown(absl::Duration grace = absl::Seconds(10));
  // Blocks until Shutdown has completed.
  void Wait();
  db::Engine* engine() { return engine_.get(); }
  const MemoryBudget& memory_budget() const { return *memory_; }

 private:
  Server() = default;

  // Outlives everything that counts memory in it.
  std::unique_ptr<MemoryBudget> memory_;
  // The models before the engine, which embeds through them.
  std::unique_ptr<embed::EmbeddingService> embedding_;
  std::unique_ptr<db::TextEmbedder> text_embedder_;  // Adapts embedding_ for the engine.
  std::unique_ptr<llm::Generator> generator_;        // Null without --llm_model.
  std::unique_ptr<db::Engine> engine_;
  std::unique_ptr<rag::AnswerCache> answer_cache_;
  std::unique_ptr<rag::Pipeline> pipeline_;
  std::unique_ptr<CollectionsService> collections_;
  std::unique_ptr<PointsService> points_;
  std::unique_ptr<SearchService> search_;
  std::unique_ptr<ModelsService> models_;
  std::unique_ptr<RagService> rag_;
  std::unique_ptr<AdminService> admin_;
  std::unique_ptr<CallQueue> data_calls_, model_calls_;
  std::vector<std::unique_ptr<grpc::Service>> grpc_services_;
  ApiKeys api_keys_;
  std::unique_ptr<RequestMetrics> metrics_;
  std::unique_ptr<AuditLog> audit_;  // Null without --audit_log.
  std::unique_ptr<grpc::Server> grpc_;
  std::unique_ptr<HttpServer> http_;
  std::vector<int> ports_;
  std::once_flag shutdown_once_;
};

}  // namespace quiver::server

#endif  // QUIVER_SERVER_SERVER_H_
