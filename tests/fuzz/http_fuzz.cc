// server/ HTTP routes: a request body of any content, sent to any route of
// the Pinecone and OpenAI-compatible front door over a real loopback
// connection, gets an HTTP answer (an error status with a JSON body for bad
// input), never a crash or a hang. The first input byte picks the route.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>

#include "db/engine.h"
#include "embed/service.h"
#include "rag/answer_cache.h"
#include "rag/pipeline.h"
#include "server/http.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

struct Route {
  const char* method;
  const char* path;
};
constexpr Route kRoutes[] = {{"POST", "/indexes/docs/vectors/upsert"},
                             {"POST", "/indexes/docs/query"},
                             {"POST", "/indexes/docs/vectors/update"},
                             {"POST", "/indexes/docs/vectors/delete"},
                             {"POST", "/indexes/docs/describe_index_stats"},
                             {"GET", "/indexes/docs/vectors/fetch?ids=a"},
                             {"GET", "/indexes/docs/vectors/list?prefix=a"},
                             {"POST", "/indexes"},
                             {"PATCH", "/indexes/docs"},
                             {"POST", "/v1/embeddings"},
                             {"POST", "/v1/rerank"},
                             {"POST", "/v1/chat/completions"},
                             {"POST", "/v1/completions"},
                             {"POST", "/v1/rag/ask"},
                             {"POST", "/embed"},
                             {"POST", "/rerank"}};

struct Fixture {
  std::unique_ptr<quiver::db::Engine> engine;
  std::unique_ptr<quiver::embed::EmbeddingService> embedding;
  std::unique_ptr<quiver::rag::AnswerCache> cache;
  std::unique_ptr<quiver::rag::Pipeline> pipeline;
  std::unique_ptr<quiver::server::HttpServer> http;
};

Fixture* Start() {
  auto* f = new Fixture();
  const std::string dir = "/tmp/quiver-http-fuzz-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  quiver::db::EngineOptions eo;
  eo.store.path = dir;
  f->engine = *quiver::db::Engine::Open(eo);
  quiver::storage::CollectionConfig c;
  c.name = "docs";
  c.dimension = 4;
  (void)f->engine->CreateCollection(c);
  f->embedding = *quiver::embed::EmbeddingService::Load(quiver::embed::ServiceOptions());
  f->cache =
      *quiver::rag::AnswerCache::Open(quiver::rag::AnswerCacheOptions(), &f->engine->side_store());
  f->pipeline = std::make_unique<quiver::rag::Pipeline>(f->engine.get(), f->embedding.get(),
                                                        nullptr, f->cache.get());
  quiver::server::HttpOptions ho;
  ho.listen = "127.0.0.1:0";
  ho.threads = 8;
  ho.read_timeout_s = 10;
  quiver::server::HttpBackends b;
  b.engine = f->engine.get();
  b.embedding = f->embedding.get();
  b.pipeline = f->pipeline.get();
  f->http = *quiver::server::HttpServer::Start(ho, b);
  return f;
}

std::string Exchange(int port, const std::string& request) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    for (size_t sent = 0; sent < request.size();) {
      const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char buf[4096];
    for (ssize_t n; (n = recv(fd, buf, sizeof(buf), 0)) > 0;)
      out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture* f = Start();
  if (size == 0) return 0;
  const Route& r = kRoutes[data[0] % (sizeof(kRoutes) / sizeof(kRoutes[0]))];
  const std::string body(quiver::fuzz::Bytes(data + 1, size - 1));
  std::string request = std::string(r.method) + " " + r.path +
                        " HTTP/1.1\r\nHost: fuzz\r\nContent-Type: application/json\r\n"
                        "Connection: close\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\n\r\n" + body;
  std::string response = Exchange(f->http->port(), request);
  // A loaded machine (sanitizers, a parallel fuzzer) can make a connect or
  // read time out; once is not a finding, twice is.
  if (response.empty()) response = Exchange(f->http->port(), request);
  quiver::fuzz::Check(response.rfind("HTTP/1.1 ", 0) == 0, "every request gets an HTTP answer");
  quiver::fuzz::Check(response.compare(8, 5, " 500 ") != 0, "no 500: bad input is a 4xx");
  return 0;
}
