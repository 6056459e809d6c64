#include "server/server.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "ann/distance.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/resource_quota.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/support/server_interceptor.h"
#include "rag/service_embedder.h"

namespace quiver::server {
namespace {

// Counts every RPC when its status goes out, by method and code.
class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(grpc::experimental::ServerRpcInfo* info, RequestMetrics* metrics)
      : method_(info->method()), metrics_(metrics), start_(absl::Now()) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status s = methods->GetSendStatus();
      // Generation RPCs leave their token counts in the trailers.
      GenerationUsage usage;
      bool has_usage = false;
      if (const auto* trailers = methods->GetSendTrailingMetadata(); trailers != nullptr) {
        for (const auto& [key, field] :
             std::initializer_list<std::pair<const char*, uint64_t GenerationUsage::*>>{
                 {kPromptTokensKey, &GenerationUsage::prompt_tokens},
                 {kCompletionTokensKey, &GenerationUsage::completion_tokens},
                 {kCachedPromptTokensKey, &GenerationUsage::cached_prompt_tokens}}) {
          auto it = trailers->find(key);
          if (it != trailers->end() && absl::SimpleAtoi(it->second, &(usage.*field))) {
            has_usage = true;
          }
        }
      }
      metrics_->Record(
          "grpc", method_, absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())),
          absl::ToDoubleSeconds(absl::Now() - start_), 0, 0, has_usage ? &usage : nullptr);
    }
    methods->Proceed();
  }

 private:
  std::string method_;
  RequestMetrics* metrics_;
  absl::Time start_;
};

class MetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(RequestMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new MetricsInterceptor(info, metrics_);
  }

 private:
  RequestMetrics* metrics_;
};

// Bytes of the weight files at a model path: the file itself, or in a
// directory its *.safetensors files (else *.bin and *.gguf ones). What a
// model will take at least, checked against the budget before loading.
uint64_t WeightFileBytes(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (path.empty()) return 0;
  if (!fs::is_directory(path, ec)) {
    const uintmax_t size = fs::file_size(path, ec);
    return ec ? 0 : size;
  }
  uint64_t safetensors = 0, other = 0;
  for (const auto& entry : fs::directory_iterator(path, ec)) {
    const std::string ext = entry.path().extension().string();
    const uintmax_t size = entry.is_regular_file(ec) ? entry.file_size(ec) : 0;
    if (ec) continue;
    if (ext == ".safetensors") safetensors += size;
    if (ext == ".bin" || ext == ".gguf") other += size;
  }
  return safetensors > 0 ? safetensors : other;
}

MemoryAmounts Amount(MemoryPart part, uint64_t bytes) {
  MemoryAmounts a{};
  At(a, part) = bytes;
  return a;
}

}  // namespace

absl::Status ServerOptions::Validate() const {
  if (listen.empty()) return absl::InvalidArgumentError("at least one listen address is needed");
  if (rpc_threads < 1) return absl::InvalidArgumentError("--threads must be >= 1");
  if (model_rpc_threads < 1) return absl::InvalidArgumentError("--model_threads must be >= 1");
  if (max_queued_calls < 1) return absl::InvalidArgumentError("--max_queued_calls must be >= 1");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<Server> s(new Server());
  s->memory_ =
      std::make_unique<MemoryBudget>(options.memory_budget_bytes, options.memory_part_limits);
  MemoryBudget& memory = *s->memory_;
  // Held for good: caches at their bounds, then each model as loaded (its
  // weight files checked first, so one too big for the budget is refused
  // before it is read).
  auto hold = [&memory](const MemoryAmounts& bytes, std::string_view what) -> absl::Status {
    ASSIGN_OR_RETURN(MemoryReservation held, memory.Reserve(bytes, what));
    held.Keep();
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(
      hold(Amount(MemoryPart::kCaches, options.engine.store.block_cache_bytes +
                                           options.engine.store.memtable_bytes +
                                           options.answer_cache.max_bytes),
           "the store's block cache and memtables and the answer cache (--block_cache_mb, "
           "--memtable_mb, --answer_cache_mb)"));
  RETURN_IF_ERROR(memory.CheckFits(
      Amount(MemoryPart::kModels, WeightFileBytes(options.embed.embed_model_dir) +
                                      WeightFileBytes(options.embed.rerank_model_dir)),
      "loading the embedding and rerank models"));
  const uint64_t resident_before = ResidentBytes();
  ASSIGN_OR_RETURN(s->embedding_, embed::EmbeddingService::Load(options.embed));
  if (s->embedding_->has_embedder() || s->embedding_->has_reranker()) {
    // What loading them took (at least their files).
    const uint64_t resident = ResidentBytes();
    RETURN_IF_ERROR(
        hold(Amount(MemoryPart::kModels,
                    std::max<uint64_t>(resident > resident_before ? resident - resident_before : 0,
                                       WeightFileBytes(options.embed.embed_model_dir) +
                                           WeightFileBytes(options.embed.rerank_model_dir))),
             "the embedding and rerank models"));
  }
  if (!options.llm.model.path.empty()) {
    // Its KV cache's size follows from the model's shape: counted once
    // loaded, with the weights as they came out of the loader.
    RETURN_IF_ERROR(
        memory.CheckFits(Amount(MemoryPart::kModels, WeightFileBytes(options.llm.model.path)),
                         "loading the language model"));
    ASSIGN_OR_RETURN(s->generator_, llm::Generator::Load(options.llm));
    MemoryAmounts took = Amount(MemoryPart::kModels, s->generator_->weight_bytes());
    At(took, MemoryPart::kKvCache) = s->generator_->host_kv_cache_bytes();
    RETURN_IF_ERROR(hold(took, StrCat("the language model ", s->generator_->name(),
                                      " (its KV cache: --llm_kv_cache_mb)")));
  }
  db::EngineOptions engine_options = options.engine;
  engine_options.memory_budget = s->memory_.get();
  if (s->embedding_->has_embedder()) {
    s->text_embedder_ = std::make_unique<rag::ServiceEmbedder>(s->embedding_.get());
    engine_options.embedders[s->embedding_->embed_name()] = s->text_embedder_.get();
  }
  ASSIGN_OR_RETURN(s->engine_, db::Engine::Open(engine_options));
  ASSIGN_OR_RETURN(s->answer_cache_,
                   rag::AnswerCache::Open(options.answer_cache, &s->engine_->side_store()));
  s->pipeline_ = std::make_unique<rag::Pipeline>(s->engine_.get(), s->embedding_.get(),
                                                 s->generator_.get(), s->answer_cache_.get());

  ServerFacts facts;
  facts.version = kVersion;
  facts.sync_policy = std::string(storage::SyncPolicyName(options.engine.store.sync));
  facts.cpu_kernels = ann::BestKernels().name;
  facts.threads = static_cast<uint32_t>(options.rpc_threads);
  facts.max_embed_inputs = options.embed.max_inputs;
  facts.started = absl::Now();
  s->collections_ = std::make_unique<CollectionsService>(s->engine_.get());
  s->points_ = std::make_unique<PointsService>(s->engine_.get());
  s->search_ = std::make_unique<SearchService>(s->engine_.get());
  s->models_ =
      std::make_unique<ModelsService>(s->embedding_.get(), s->generator_.get(), s->pipeline_.get());
  s->rag_ = std::make_unique<RagService>(s->pipeline_.get());
  s->admin_ = std::make_unique<AdminService>(s->engine_.get(), facts);
  ASSIGN_OR_RETURN(s->api_keys_, ApiKeys::Load(options.api_keys, options.api_key_file));
  for (Guarded* g :
       std::initializer_list<Guarded*>{s->collections_.get(), s->points_.get(), s->search_.get(),
                                       s->models_.get(), s->rag_.get(), s->admin_.get()}) {
    g->set_api_keys(&s->api_keys_);
  }
  if (!options.audit_log.empty()) {
    ASSIGN_OR_RETURN(s->audit_, AuditLog::Open(options.audit_log, options.audit_log_bytes));
    s->models_->set_audit(s->audit_.get());
    s->rag_->set_audit(s->audit_.get());
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  s->ports_.assign(options.listen.size(), 0);
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (!options.tls_cert_file.empty() || !options.tls_key_file.empty()) {
    if (options.tls_cert_file.empty() || options.tls_key_file.empty()) {
      return absl::InvalidArgumentError("TLS needs both --tls_cert and --tls_key");
    }
    auto read = [](const std::string& path) -> absl::StatusOr<std::string> {
      std::ifstream in(path, std::ios::binary);
      if (!in) return absl::NotFoundError(StrCat("cannot read ", path));
      std::stringstream ss;
      ss << in.rdbuf();
      return ss.str();
    };
    grpc::SslServerCredentialsOptions ssl;
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    ASSIGN_OR_RETURN(pair.private_key, read(options.tls_key_file));
    ASSIGN_OR_RETURN(pair.cert_chain, read(options.tls_cert_file));
    ssl.pem_key_cert_pairs.push_back(std::move(pair));
    credentials = grpc::SslServerCredentials(ssl);
  }
  for (size_t i = 0; i < options.listen.size(); ++i) {
    builder.AddListeningPort(options.listen[i], credentials, &s->ports_[i]);
  }
  const int max_msg = static_cast<int>(options.engine.limits.max_message_bytes);
  builder.SetMaxReceiveMessageSize(max_msg);
  builder.SetMaxSendMessageSize(max_msg);
  // Only gRPC's own synchronous services (reflection) take threads from this
  // quota; ours are callback services whose calls wait in the CallQueues.
  grpc::ResourceQuota quota("quiverd");
  quota.SetMaxThreads(8);
  builder.SetResourceQuota(quota);
  s->data_calls_ = std::make_unique<CallQueue>("data", static_cast<size_t>(options.rpc_threads),
                                               options.max_queued_calls, "--max_queued_calls");
  s->model_calls_ =
      std::make_unique<CallQueue>("model", static_cast<size_t>(options.model_rpc_threads),
                                  options.max_queued_calls, "--max_queued_calls");
  const CallQueues queues{s->data_calls_.get(), s->model_calls_.get()};
  s->grpc_services_.push_back(std::make_unique<GrpcCollections>(s->collections_.get(), queues));
  s->grpc_services_.push_back(std::make_unique<GrpcPoints>(s->points_.get(), queues));
  s->grpc_services_.push_back(std::make_unique<GrpcSearch>(s->search_.get(), queues));
  s->grpc_services_.push_back(std::make_unique<GrpcModels>(s->models_.get(), queues));
  s->grpc_services_.push_back(std::make_unique<GrpcRag>(s->rag_.get(), queues));
  s->grpc_services_.push_back(std::make_unique<GrpcAdmin>(s->admin_.get(), queues));
  ASSIGN_OR_RETURN(s->metrics_, RequestMetrics::Open(options.access_log, options.access_log_bytes));
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> factories;
  factories.push_back(std::make_unique<MetricsInterceptorFactory>(s->metrics_.get()));
  builder.experimental().SetInterceptorCreators(std::move(factories));
  for (const auto& service : s->grpc_services_) builder.RegisterService(service.get());
  s->grpc_ = builder.BuildAndStart();
  if (s->grpc_ == nullptr) {
    return absl::UnavailableError(StrCat("cannot listen on ", absl::StrJoin(options.listen, ", "),
                                         " (address in use or invalid?)"));
  }
  for (size_t i = 0; i < s->ports_.size(); ++i) {
    if (s->ports_[i] == 0) {
      return absl::UnavailableError(StrCat("cannot listen on ", options.listen[i]));
    }
  }
  if (!options.http.listen.empty()) {
    HttpBackends backends;
    backends.engine = s->engine_.get();
    backends.embedding = s->embedding_.get();
    backends.generator = s->generator_.get();
    backends.pipeline = s->pipeline_.get();
    backends.api_keys = &s->api_keys_;
    backends.metrics = s->metrics_.get();
    backends.audit = s->audit_.get();
    HttpOptions http = options.http;
    http.tls_cert_file = options.tls_cert_file;
    http.tls_key_file = options.tls_key_file;
    ASSIGN_OR_RETURN(s->http_, HttpServer::Start(http, backends));
  }
  return s;
}

Server::~Server() {
  Shutdown(absl::Seconds(1));
  Wait();
}

void Server::Shutdown(absl::Duration grace) {
  std::call_once(shutdown_once_, [&] {
    if (grpc_ == nullptr) return;
    Log(LogLevel::kInfo, "shutting down", {{"grace_ms", absl::ToInt64Milliseconds(grace)}});
    if (http_ != nullptr) http_->Shutdown();
    grpc_->GetHealthCheckService()->Shutdown();
    grpc_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  });
}

void Server::Wait() {
  if (grpc_ != nullptr) grpc_->Wait();
}

}  // namespace quiver::server
