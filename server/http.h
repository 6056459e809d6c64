// quiverd's HTTP front door (cpp-httplib): health and readiness, and the
// OpenAI-compatible /v1 routes (models, embeddings, chat completions,
// completions with server-sent events, rerank). Routes call the same layers
// as the gRPC services (embed::EmbeddingService, rag::Pipeline, db::Engine)
// and add no behaviour of their own beyond the wire format.
#ifndef QUIVER_SERVER_HTTP_H_
#define QUIVER_SERVER_HTTP_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "db/engine.h"
#include "embed/service.h"
#include "llm/generator.h"
#include "rag/pipeline.h"
#include "server/auth.h"
#include "server/metrics.h"

namespace httplib {
class Server;
}

namespace quiver::server {

struct HttpOptions {
  std::string listen = "127.0.0.1:8080";  // host:port; port 0 picks one. Empty: no HTTP.
  // Connections served at once: each open keep-alive connection holds a
  // worker while it lasts (cpp-httplib's model).
  int threads = 256;
  size_t max_body_bytes = 64 << 20;
  int read_timeout_s = 60;                  // Per read of a request.
  int write_timeout_s = 60;                 // Per write of a response.
  int keep_alive_s = 5;                     // Idle keep-alive connections close after this.
  int keep_alive_max_requests = 100000;     // Requests per connection before it is closed.
  std::string tls_cert_file, tls_key_file;  // PEM; both set: HTTPS.
};

// What the routes call; none is owned. generator may be null.
struct HttpBackends {
  db::Engine* engine = nullptr;
  embed::EmbeddingService* embedding = nullptr;
  llm::Generator* generator = nullptr;
  rag::Pipeline* pipeline = nullptr;
  const ApiKeys* api_keys = nullptr;  // Null or empty: no key needed.
  bool tls = false;                   // Set by HttpServer::Start: links say https.
  RequestMetrics* metrics = nullptr;  // Counts every request; may be null.
  AuditLog* audit = nullptr;          // Prompts and answers; may be null.
};

// The threads answering POST /v1/rag/ask: Shutdown stops them (their
// generations end as if the client had left) and waits for them, so none
// outlives the pipeline.
class AskWorkers {
 public:
  void Begin();
  void End();
  bool stopping() const { return stopping_.load(); }
  void Stop() { stopping_ = true; }
  void StopAndWait();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int running_ = 0;
  std::atomic<bool> stopping_{false};
};

// POST /v1/rag/ask (server/http_ask.cc).
void RegisterAskRoute(httplib::Server* server, const HttpBackends& backends,
                      std::shared_ptr<AskWorkers> workers);

class HttpServer {
 public:
  // Binds and starts serving on a thread of its own. UNAVAILABLE when the
  // address cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpOptions& options,
                                                           const HttpBackends& backends);
  ~HttpServer();  // Shutdown().
  int port() const { return port_; }
  // Stops accepting; requests in progress finish. Idempotent.
  void Shutdown();

 private:
  HttpServer() = default;
  void Routes();
  std::unique_ptr<httplib::Server> server_;
  std::shared_ptr<AskWorkers> ask_workers_ = std::make_shared<AskWorkers>();
  HttpBackends backends_;
  HttpOptions options_;
  std::thread thread_;
  int port_ = 0;
  std::string started_at_;
};

}  // namespace quiver::server

#endif  // QUIVER_SERVER_HTTP_H_
