// quiverd's HTTP front door: health, readiness and the OpenAI-compatible /v1
// routes, through a plain HTTP client and through the official `openai` npm
// client (tests/compat/openai_client.cjs) where Node.js and the package are
// installed (scripts/test.sh installs it into <build>/npm-clients).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "common/json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/testing/quiverd_process.h"
#include "tests/testing/test_util.h"

namespace quiver {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class HttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fixtures_ = testing::FixturePath("model2vec-rs-fixtures");
    llm_ = testing::FixturePath("stories260K");
  }
  void StartServer(std::vector<std::string> flags) {
    server_ = std::make_unique<testing::QuiverdProcess>(dir_.path() + "/data", std::move(flags));
    QUIVER_ASSERT_OK(server_->Start());
    ASSERT_GT(server_->http_port(), 0);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->http_port());
    client_->set_read_timeout(60, 0);
  }
  std::vector<std::string> ModelFlags() const {
    return {"--embed-model=" + fixtures_ + "/test-model-float32", "--device=cpu",
            "--llm-model=" + llm_ + "/stories260K.bin", "--llm-tokenizer=" + llm_ + "/tok512.bin"};
  }
  // POSTs `body`; returns the status and fills `out` with the parsed JSON.
  int Post(const std::string& path, const std::string& body, Json* out) {
    auto r = client_->Post(path, body, "application/json");
    if (!r) {
      ADD_FAILURE() << "POST " << path << " failed";
      return 0;
    }
    auto j = ParseJson(r->body);
    *out = j.ok() ? *j : Json(r->body);
    return r->status;
  }

  std::string fixtures_, llm_;
  testing::TempDir dir_;
  std::unique_ptr<testing::QuiverdProcess> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(HttpTest, HealthReadinessAndErrorsWithoutModels) {
  StartServer({});
  auto health = client_->Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->get_header_value("Content-Type"), "application/json");
  auto ready = client_->Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
  EXPECT_THAT(ready->body, HasSubstr("\"ready\":true"));
  Json j;
  // OpenAI's error body, with the status that says what was wrong.
  EXPECT_EQ(Post("/v1/embeddings", R"({"input": "x"})", &j), 400);
  ASSERT_NE(j.Find("error"), nullptr);
  EXPECT_THAT(j.Find("error")->Find("message")->as_string(), HasSubstr("--embed-model"));
  EXPECT_EQ(j.Find("error")->Find("type")->as_string(), "invalid_request_error");
  EXPECT_EQ(Post("/v1/chat/completions", R"({"messages": []})", &j), 400);
  EXPECT_THAT(j.Find("error")->Find("message")->as_string(), HasSubstr("--llm-model"));
  EXPECT_EQ(Post("/v1/embeddings", "{not json", &j), 400);
  EXPECT_THAT(j.Find("error")->Find("message")->as_string(), HasSubstr("not valid JSON"));
  auto missing = client_->Get("/v2/nothing");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_THAT(missing->body, HasSubstr("\"error\""));
  auto models = client_->Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(models->status, 200);
  EXPECT_THAT(models->body, HasSubstr("\"data\":[]"));
}

TEST_F(HttpTest, OpenAiRoutesServeTheModels) {
  if (fixtures_.empty() || llm_.empty()) {
    GTEST_SKIP() << "fixtures model2vec-rs-fixtures and stories260K not found ($QUIVER_FIXTURES)";
  }
  StartServer(ModelFlags());
  Json j;
  ASSERT_EQ(Post("/v1/embeddings",
                 R"({"model": "test-model-float32", "input": ["hello world", "cats"],
                     "encoding_format": "float"})",
                 &j),
            200);
  const Json::Array& data = j.Find("data")->as_array();
  ASSERT_EQ(data.size(), 2u);
  std::vector<float> first;
  for (const Json& x : data[0].Find("embedding")->as_array()) {
    first.push_back(static_cast<float>(x.as_number()));
  }
  ASSERT_FALSE(first.empty());
  EXPECT_GT(j.Find("usage")->Find("prompt_tokens")->as_number(), 0);
  // base64: little-endian float32 of the same vector.
  ASSERT_EQ(Post("/v1/embeddings",
                 R"({"model": "test-model-float32", "input": "hello world",
                     "encoding_format": "base64"})",
                 &j),
            200);
  std::string bytes;
  ASSERT_TRUE(
      absl::Base64Unescape(j.Find("data")->as_array()[0].Find("embedding")->as_string(), &bytes));
  ASSERT_EQ(bytes.size(), first.size() * 4);
  for (size_t i = 0; i < first.size(); ++i) {
    uint32_t u = 0;
    for (int b = 0; b < 4; ++b)
      u |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[i * 4 + b])) << (8 * b);
    float f;
    std::memcpy(&f, &u, 4);
    EXPECT_EQ(f, first[i]);
  }
  EXPECT_EQ(Post("/v1/embeddings", R"({"model": "other", "input": "x"})", &j), 404);
  EXPECT_EQ(Post("/v1/embeddings", R"({"input": [[1, 2]]})", &j), 400);

  // Completions: the same greedy text streamed and whole.
  ASSERT_EQ(Post("/v1/completions",
                 R"({"prompt": "Once upon a time", "max_tokens": 12, "temperature": 0})", &j),
            200);
  const std::string whole = j.Find("choices")->as_array()[0].Find("text")->as_string();
  EXPECT_FALSE(whole.empty());
  EXPECT_EQ(j.Find("usage")->Find("completion_tokens")->as_number(), 12);
  EXPECT_EQ(j.Find("object")->as_string(), "text_completion");
  auto sse = client_->Post("/v1/completions",
                           R"({"prompt": "Once upon a time", "max_tokens": 12, "temperature": 0,
                               "stream": true, "stream_options": {"include_usage": true}})",
                           "application/json");
  ASSERT_TRUE(sse);
  EXPECT_EQ(sse->status, 200);
  EXPECT_THAT(sse->get_header_value("Content-Type"), HasSubstr("text/event-stream"));
  std::string streamed;
  bool usage = false, done = false;
  size_t pos = 0;
  while ((pos = sse->body.find("data: ", pos)) != std::string::npos) {
    const size_t end = sse->body.find("\n\n", pos);
    const std::string payload = sse->body.substr(pos + 6, end - pos - 6);
    pos = end;
    if (payload == "[DONE]") {
      done = true;
      continue;
    }
    auto chunk = ParseJson(payload);
    ASSERT_TRUE(chunk.ok()) << payload;
    if (chunk->Find("usage") != nullptr) usage = true;
    for (const Json& c : chunk->Find("choices")->as_array()) {
      streamed += c.Find("text")->as_string();
    }
  }
  EXPECT_EQ(streamed, whole);
  EXPECT_TRUE(usage);
  EXPECT_TRUE(done);
  // Rerank without a reranker: a clear 400.
  EXPECT_EQ(Post("/v1/rerank", R"({"query": "q", "documents": ["a"]})", &j), 400);
  EXPECT_THAT(j.Find("error")->Find("message")->as_string(), HasSubstr("rerank"));
}

// Runs tests/compat/openai_client.cjs with `args`; returns its output.
std::string RunNode(const std::string& args, const std::string& node_path, int* status) {
  const std::string cmd = "NODE_PATH='" + node_path +
                          "' node " QUIVER_SOURCE_DIR "/tests/compat/openai_client.cjs " + args +
                          " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  *status = pclose(p);
  return out;
}

TEST_F(HttpTest, AskOverHttpStreamsSourcesTokensAndASummary) {
  if (fixtures_.empty() || llm_.empty()) {
    GTEST_SKIP() << "fixtures model2vec-rs-fixtures and stories260K not found ($QUIVER_FIXTURES)";
  }
  StartServer(ModelFlags());
  // A collection and a document, through the CLI.
  std::string out;
  const std::string addr = "--addr=" + server_->address();
  ASSERT_EQ(
      testing::RunCli({addr, "collections", "create", "kb", "--embedding-model=test-model-float32"},
                      &out),
      0)
      << out;
  const std::string doc = dir_.path() + "/lily.txt";
  std::ofstream(doc) << "Lily had a red ball. She played in the park every day.";
  ASSERT_EQ(testing::RunCli({addr, "ingest", "kb", doc, "--progress=never"}, &out), 0) << out;

  auto sse =
      client_->Post("/v1/rag/ask",
                    R"({"collection": "kb", "question": "What did Lily have?", "max_tokens": 12,
          "stream": true})",
                    "application/json");
  ASSERT_TRUE(sse);
  EXPECT_EQ(sse->status, 200);
  EXPECT_THAT(sse->get_header_value("Content-Type"), HasSubstr("text/event-stream"));
  const std::string& b = sse->body;
  const size_t sources = b.find("event: sources\n");
  const size_t token = b.find("event: token\n");
  const size_t done = b.find("event: done\n");
  ASSERT_NE(sources, std::string::npos) << b;
  ASSERT_NE(token, std::string::npos) << b;
  ASSERT_NE(done, std::string::npos) << b;
  EXPECT_LT(sources, token);
  EXPECT_LT(token, done);
  EXPECT_THAT(b, HasSubstr("\"document_id\":\"lily.txt\""));
  EXPECT_THAT(b, HasSubstr("\"completion_tokens\":12"));

  Json j;
  ASSERT_EQ(
      Post("/v1/rag/ask",
           R"({"collection": "kb", "question": "What did Lily have?", "max_tokens": 12})", &j),
      200);
  EXPECT_FALSE(j.Find("answer")->as_string().empty());
  EXPECT_EQ(j.Find("sources")->as_array().size(), 1u);
  EXPECT_EQ(j.Find("cache")->as_string(), "exact");  // The streamed answer was stored.
  EXPECT_EQ(Post("/v1/rag/ask", R"({"collection": "nope", "question": "x"})", &j), 404);
  EXPECT_EQ(Post("/v1/rag/ask", R"({"collection": "kb"})", &j), 400);
}

TEST_F(HttpTest, MetricsMoveWithTrafficAndTheAccessLogHasALinePerRequest) {
  const std::string log = dir_.path() + "/access.log";
  StartServer({"--access_log=" + log});
  auto before = client_->Get("/metrics");
  ASSERT_TRUE(before);
  EXPECT_EQ(before->status, 200);
  EXPECT_THAT(before->get_header_value("Content-Type"), HasSubstr("text/plain"));
  // gRPC traffic and HTTP traffic, one failing.
  std::string out;
  ASSERT_EQ(testing::RunCli(
                {"--addr=" + server_->address(), "collections", "create", "films", "--dimension=2"},
                &out),
            0)
      << out;
  EXPECT_EQ(testing::RunCli({"--addr=" + server_->address(), "collections", "get", "nope"}, &out),
            1);
  ASSERT_TRUE(client_->Get("/v1/models"));
  ASSERT_TRUE(client_->Get("/indexes/films"));
  // Index activity per collection: two vectors in, one query.
  const std::string records = dir_.path() + "/films.jsonl";
  std::ofstream(records) << R"({"id": "a", "values": [1, 0]})"
                         << "\n"
                         << R"({"id": "b", "values": [0, 1]})"
                         << "\n";
  ASSERT_EQ(
      testing::RunCli(
          {"--addr=" + server_->address(), "import", "films", records, "--progress=never"}, &out),
      0)
      << out;
  ASSERT_EQ(
      testing::RunCli(
          {"--addr=" + server_->address(), "query", "films", "--vector=[1, 0]", "--top-k=1"}, &out),
      0)
      << out;
  // A request is counted right after its answer goes out, so the counts
  // may trail the client by a moment: read until they are there.
  const std::vector<std::string> want = {
      "quiver_requests_total{transport=\"grpc\",route=\"/quiver.v1.Collections/Create\","
      "status=\"OK\"} 1",
      "quiver_requests_total{transport=\"http\",route=\"GET /indexes/{name}\",status=\"200\"} 1"};
  std::string m;
  for (int tries = 0; tries < 100; ++tries) {
    auto after = client_->Get("/metrics");
    ASSERT_TRUE(after);
    m = after->body;
    bool all = true;
    for (const std::string& w : want) all &= m.find(w) != std::string::npos;
    if (all) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_THAT(m, HasSubstr("quiver_requests_total{transport=\"grpc\",route=\"/"
                           "quiver.v1.Collections/Create\",status=\"OK\"} 1"));
  EXPECT_THAT(m, HasSubstr("quiver_requests_total{transport=\"grpc\",route=\"/"
                           "quiver.v1.Collections/Get\",status=\"NOT_FOUND\"} 1"));
  EXPECT_THAT(
      m,
      HasSubstr(
          "quiver_requests_total{transport=\"http\",route=\"GET /v1/models\",status=\"200\"} 1"));
  EXPECT_THAT(m, HasSubstr("route=\"GET /indexes/{name}\""));
  EXPECT_THAT(m, HasSubstr("quiver_request_duration_seconds_bucket{transport=\"grpc\""));
  EXPECT_THAT(m, HasSubstr("quiver_collection_records{collection=\"films\"} 2"));
  EXPECT_THAT(m, HasSubstr("quiver_index_inserts_total{collection=\"films\"} 2"));
  EXPECT_THAT(m, HasSubstr("quiver_index_searches_total{collection=\"films\"} 1"));
  EXPECT_THAT(m, HasSubstr("quiver_index_compactions_total{collection=\"films\"} 0"));
  EXPECT_THAT(m, HasSubstr("quiver_collection_index_bytes{collection=\"films\"} "));
  EXPECT_THAT(m, Not(HasSubstr("quiver_collection_index_bytes{collection=\"films\"} 0\n")));
  EXPECT_THAT(m, Not(HasSubstr("quiver_collection_stored_bytes{collection=\"films\"} 0\n")));
  EXPECT_THAT(m, HasSubstr("quiver_model_batches_total{worker=\"embed\"} 0"));
  EXPECT_THAT(m, HasSubstr("quiver_embed_queue_depth 0"));
  // The access log: one JSON object per request so far (the first
  // /metrics, two RPCs, two routes; the second /metrics is logged once
  // answered).
  std::string line;
  int lines = 0;
  std::ifstream in(log);
  bool saw_grpc_error = false;
  while (std::getline(in, line)) {
    auto j = ParseJson(line);
    ASSERT_TRUE(j.ok()) << line;
    ++lines;
    EXPECT_NE(j->Find("latency_ms"), nullptr);
    if (j->Find("transport")->as_string() == "grpc" &&
        j->Find("status")->as_string() == "NOT_FOUND") {
      saw_grpc_error = true;
    }
  }
  EXPECT_GE(lines, 5);
  EXPECT_TRUE(saw_grpc_error);
}

// One keep-alive connection, raw: requests go out on the same socket, so a
// server that closed it (or never answered) fails the caller.
class RawConnection {
 public:
  explicit RawConnection(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{30, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      close(fd_);
      fd_ = -1;
    }
  }
  ~RawConnection() {
    if (fd_ >= 0) close(fd_);
  }
  // Sends GET `path`; returns the status, or 0 when the connection failed.
  int Get(const std::string& path) {
    if (fd_ < 0) return 0;
    const std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    if (send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
      return 0;
    }
    // Headers, then Content-Length bytes of body.
    std::string in;
    char buf[4096];
    size_t header_end;
    while ((header_end = in.find("\r\n\r\n")) == std::string::npos) {
      const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return 0;
      in.append(buf, static_cast<size_t>(n));
    }
    const size_t cl = in.find("Content-Length: ");
    const size_t length =
        cl == std::string::npos ? 0 : std::strtoul(in.c_str() + cl + 16, nullptr, 10);
    while (in.size() < header_end + 4 + length) {
      const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return 0;
      in.append(buf, static_cast<size_t>(n));
    }
    if (in.find("Connection: close") != std::string::npos) closed_by_server_ = true;
    return in.starts_with("HTTP/1.1 ") ? std::atoi(in.c_str() + 9) : 0;
  }
  bool closed_by_server() const { return closed_by_server_; }

 private:
  int fd_ = -1;
  bool closed_by_server_ = false;
};

TEST_F(HttpTest, ServesTwoHundredFiftySixKeepAliveConnectionsAtOnce) {
  StartServer({});
  // 256 connections, all open at once, each sending a request per round;
  // every connection's round must be answered before the next begins, so a
  // server holding fewer connections (or closing them) fails a round.
  constexpr int kConnections = 256, kRounds = 8;
  std::vector<std::unique_ptr<RawConnection>> conns;
  for (int i = 0; i < kConnections; ++i) {
    conns.push_back(std::make_unique<RawConnection>(server_->http_port()));
  }
  std::vector<int> ok(kConnections, 0);
  for (int round = 0; round < kRounds; ++round) {
    std::vector<std::thread> threads;
    for (int i = 0; i < kConnections; ++i) {
      threads.emplace_back([&, i] {
        if (conns[i]->Get(i % 2 == 0 ? "/healthz" : "/v1/models") == 200) ++ok[i];
      });
    }
    for (std::thread& t : threads) t.join();
  }
  int all = 0, closed = 0;
  for (int i = 0; i < kConnections; ++i) {
    all += ok[i];
    closed += conns[i]->closed_by_server() ? 1 : 0;
  }
  EXPECT_EQ(all, kConnections * kRounds);
  EXPECT_EQ(closed, 0);
}

// The JSON lines of a log file.
std::vector<Json> ReadJsonLines(const std::string& path) {
  std::vector<Json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    auto j = ParseJson(line);
    EXPECT_TRUE(j.ok()) << line;
    if (j.ok()) out.push_back(*std::move(j));
  }
  return out;
}

TEST_F(HttpTest, GenerationTokenCountsReachTheAccessLogAndPromptsTheAuditLog) {
  if (fixtures_.empty() || llm_.empty()) {
    GTEST_SKIP() << "fixtures model2vec-rs-fixtures and stories260K not found ($QUIVER_FIXTURES)";
  }
  const std::string access = dir_.path() + "/access.log";
  const std::string audit = dir_.path() + "/audit.log";
  std::vector<std::string> flags = ModelFlags();
  flags.push_back("--access_log=" + access);
  flags.push_back("--audit_log=" + audit);
  StartServer(flags);
  Json j;
  ASSERT_EQ(Post("/v1/completions",
                 R"({"prompt": "Once upon a time", "max_tokens": 7, "temperature": 0})", &j),
            200);
  const std::string http_answer = j.Find("choices")->as_array()[0].Find("text")->as_string();
  std::string out;
  const std::string addr = "--addr=" + server_->address();
  ASSERT_EQ(
      testing::RunCli({addr, "collections", "create", "kb", "--embedding-model=test-model-float32"},
                      &out),
      0)
      << out;
  const std::string doc = dir_.path() + "/lily.txt";
  std::ofstream(doc) << "Lily had a red ball. She played in the park every day.";
  ASSERT_EQ(testing::RunCli({addr, "ingest", "kb", doc, "--progress=never"}, &out), 0) << out;
  auto sse = client_->Post("/v1/rag/ask",
                           R"({"collection": "kb", "question": "What did Lily have?",
                               "max_tokens": 5, "stream": true})",
                           "application/json");
  ASSERT_TRUE(sse);
  ASSERT_EQ(sse->status, 200);
  ASSERT_EQ(
      testing::RunCli(
          {"--addr=" + server_->address(), "generate", "Lily and Tom", "--max-tokens=6"}, &out),
      0)
      << out;
  ASSERT_TRUE(client_->Get("/v1/models"));
  // Logged right after each answer went out: wait for the lines.
  const std::vector<std::string> routes = {"POST /v1/completions", "POST /v1/rag/ask",
                                           "/quiver.v1.Models/Generate", "GET /v1/models"};
  std::vector<Json> lines;
  auto find = [&](const std::string& route) -> const Json* {
    for (const Json& l : lines) {
      if (l.Find("route")->as_string() == route) return &l;
    }
    return nullptr;
  };
  for (int tries = 0; tries < 100; ++tries) {
    lines = ReadJsonLines(access);
    bool all = true;
    for (const std::string& r : routes) all &= find(r) != nullptr;
    if (all) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const Json* completions = find("POST /v1/completions");
  const Json* ask = find("POST /v1/rag/ask");
  const Json* grpc = find("/quiver.v1.Models/Generate");
  const Json* models = find("GET /v1/models");
  ASSERT_TRUE(completions && ask && grpc && models);
  EXPECT_EQ(completions->Find("completion_tokens")->as_number(), 7);
  EXPECT_GT(completions->Find("prompt_tokens")->as_number(), 0);
  EXPECT_EQ(ask->Find("completion_tokens")->as_number(), 5);
  EXPECT_EQ(grpc->Find("completion_tokens")->as_number(), 6);
  EXPECT_GT(grpc->Find("prompt_tokens")->as_number(), 0);
  EXPECT_EQ(models->Find("completion_tokens"), nullptr);  // Not a generation.

  // The audit log: the three generations with what was asked and answered.
  std::vector<Json> audited = ReadJsonLines(audit);
  ASSERT_EQ(audited.size(), 3u);
  bool saw_http = false, saw_ask = false, saw_grpc = false;
  for (const Json& a : audited) {
    const std::string route = a.Find("route")->as_string();
    const Json& req = *a.Find("request");
    if (route == "POST /v1/completions") {
      saw_http = true;
      EXPECT_EQ(req.Find("prompt")->as_string(), "Once upon a time");
      EXPECT_EQ(a.Find("answer")->as_string(), http_answer);
      EXPECT_EQ(a.Find("completion_tokens")->as_number(), 7);
    } else if (route == "POST /v1/rag/ask") {
      saw_ask = true;
      EXPECT_EQ(req.Find("question")->as_string(), "What did Lily have?");
      EXPECT_EQ(req.Find("collection")->as_string(), "kb");
      EXPECT_FALSE(a.Find("answer")->as_string().empty());
      std::string streamed;  // The answer's token events, joined.
      for (size_t pos = 0;
           (pos = sse->body.find("event: token\ndata: ", pos)) != std::string::npos;) {
        pos += 19;
        auto t = ParseJson(sse->body.substr(pos, sse->body.find("\n\n", pos) - pos));
        ASSERT_TRUE(t.ok());
        streamed += t->Find("text")->as_string();
      }
      EXPECT_EQ(a.Find("answer")->as_string(), streamed);
    } else if (route == "/quiver.v1.Models/Generate") {
      saw_grpc = true;
      EXPECT_EQ(req.Find("prompt")->as_string(), "Lily and Tom");
      EXPECT_THAT(out, HasSubstr(a.Find("answer")->as_string()));
      EXPECT_EQ(a.Find("status")->as_string(), "OK");
    }
  }
  EXPECT_TRUE(saw_http && saw_ask && saw_grpc);
}

int NodeMajor() {
  FILE* p = popen("node --version 2>/dev/null", "r");
  if (p == nullptr) return 0;
  char buf[64] = {0};
  const bool read = fgets(buf, sizeof(buf), p) != nullptr;
  pclose(p);
  return read && buf[0] == 'v' ? std::atoi(buf + 1) : 0;
}

TEST_F(HttpTest, TheOfficialOpenAiClientWorksUnchanged) {
  if (fixtures_.empty() || llm_.empty()) {
    GTEST_SKIP() << "fixtures model2vec-rs-fixtures and stories260K not found ($QUIVER_FIXTURES)";
  }
  const std::string clients = QUIVER_BINARY_DIR "/npm-clients/node_modules";
  if (!std::ifstream(clients + "/openai/package.json")) {
    GTEST_SKIP() << "the openai npm client is not installed in " << clients
                 << " (scripts/test.sh installs it)";
  }
  const int node = NodeMajor();
  if (node < 20) {
    GTEST_SKIP() << "openai@7.60.0 needs Node.js 20 or later; this machine has "
                 << (node == 0 ? std::string("none") : "v" + std::to_string(node));
  }
  StartServer(ModelFlags());
  int status = -1;
  std::string out = RunNode("http://127.0.0.1:" + std::to_string(server_->http_port()) +
                                "/v1 test-model-float32 stories260K",
                            clients, &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_THAT(out, HasSubstr("ok aborting a stream")) << out;
  EXPECT_THAT(out, ::testing::Not(HasSubstr("FAILED"))) << out;

  // Chat completions, with a model that has a chat template: a random
  // Qwen2-style model with ChatML (tests/llm/hf_reference.py).
  if (!testing::HaveTorch()) {
    GTEST_SKIP() << testing::kNoTorch << ": no chat model for the chat checks";
  }
  const std::string model = dir_.path() + "/qwen";
  std::ofstream(dir_.path() + "/ids.json") << "[1]";
  const std::string make = std::string(testing::kPython) +
                           " " QUIVER_SOURCE_DIR "/tests/llm/hf_reference.py " + model + " qwen2 " +
                           dir_.path() + "/ids.json";
  ASSERT_EQ(std::system(make.c_str()), 0) << make;
  server_->Stop(SIGTERM);
  StartServer({"--llm-model=" + model, "--llm_max_context=256", "--device=cpu"});
  out = RunNode("chat http://127.0.0.1:" + std::to_string(server_->http_port()) + "/v1 qwen",
                clients, &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_THAT(out, HasSubstr("ok chat.completions stream")) << out;
  EXPECT_THAT(out, ::testing::Not(HasSubstr("FAILED"))) << out;
}

TEST_F(HttpTest, TheOfficialPineconeClientWorksUnchanged) {
  const std::string clients = QUIVER_BINARY_DIR "/npm-clients/node_modules";
  if (!std::ifstream(clients + "/@pinecone-database/pinecone/package.json")) {
    GTEST_SKIP() << "the Pinecone npm client is not installed in " << clients
                 << " (scripts/test.sh installs it)";
  }
  const int node = NodeMajor();
  if (node < 20) {
    GTEST_SKIP() << "@pinecone-database/pinecone@8.2.0 needs Node.js 20 or later; this machine has "
                 << (node == 0 ? std::string("none") : "v" + std::to_string(node));
  }
  // With an API key required, as a deployment would run; with the fixture's
  // embedder and (where PyTorch can make one) a cross-encoder for the
  // inference routes.
  std::vector<std::string> flags = {"--api_key=pinecone-test-key", "--device=cpu"};
  std::string models;
  if (!fixtures_.empty()) {
    flags.push_back("--embed-model=" + fixtures_ + "/test-model-float32");
    models = " test-model-float32";
    if (testing::HaveTorch()) {
      const std::string cross = dir_.path() + "/cross";
      std::ofstream(dir_.path() + "/ids.json") << "[]";
      const std::string make = testing::BertReferenceCommand(
          cross, fixtures_ + "/test-model-float32/tokenizer.json", dir_.path() + "/ids.json",
          /*cross=*/true);
      ASSERT_EQ(std::system(make.c_str()), 0) << make;
      flags.push_back("--rerank-model=" + cross);
      models += " cross";
    }
  }
  StartServer(flags);
  const std::string cmd =
      "NODE_PATH='" + clients +
      "' node " QUIVER_SOURCE_DIR "/tests/compat/pinecone_client.cjs http://127.0.0.1:" +
      std::to_string(server_->http_port()) + " pinecone-test-key" + models + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0) << out;
  EXPECT_THAT(out, HasSubstr("ok deleteIndex")) << out;
  if (models.find("cross") != std::string::npos) {
    EXPECT_THAT(out, HasSubstr("ok inference.rerank")) << out;
  }
  EXPECT_THAT(out, ::testing::Not(HasSubstr("FAILED"))) << out;
}

}  // namespace
}  // namespace quiver
