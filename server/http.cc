#include "server/http.h"

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>

#include "absl/strings/escaping.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/json.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "httplib.h"
#include "server/http_internal.h"
#include "server/pinecone.h"

namespace quiver::server {

http_internal::GenerationNote& http_internal::RequestGeneration() {
  thread_local GenerationNote note;
  return note;
}

namespace {

using http_internal::Body;
using http_internal::ErrorBody;
using http_internal::GenerationNote;
using http_internal::HttpStatus;
using http_internal::OptBool;
using http_internal::OptCount;
using http_internal::OptNumber;
using http_internal::OptString;
using http_internal::RequestGeneration;
using http_internal::SendError;
using http_internal::SendJson;

// When the request this thread serves began (set before routing).
std::chrono::steady_clock::time_point& RequestStart() {
  thread_local std::chrono::steady_clock::time_point start;
  return start;
}

// Keeps a generation's answer (with an audit log) and token counts for the
// logs.
void NoteGeneration(const llm::TokenEvent& e, bool audit) {
  GenerationNote& note = RequestGeneration();
  if (audit) note.answer += e.text;
  if (e.done) {
    note.usage = GenerationUsage{static_cast<uint64_t>(e.prompt_tokens),
                                 static_cast<uint64_t>(e.completion_tokens),
                                 static_cast<uint64_t>(e.cached_prompt_tokens)};
  }
}

// The route a path matched, for metrics: names and ids become {name}/{id};
// a path no route took is "unmatched".
std::string RoutePattern(const std::string& path, int status) {
  if (path.starts_with("/indexes/")) {
    const size_t slash = path.find('/', 9);
    return "/indexes/{name}" + (slash == std::string::npos ? std::string() : path.substr(slash));
  }
  if (path.starts_with("/v1/models/")) return "/v1/models/{id}";
  if (status == 404 && path != "/v1/models") return "unmatched";
  return path;
}

int64_t NowSeconds() { return absl::ToUnixSeconds(absl::Now()); }

std::string NewId(std::string_view prefix) {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng(std::random_device{}());
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%016llx%04llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(counter.fetch_add(1) & 0xFFFF));
  return StrCat(prefix, buf);
}

const char* FinishName(llm::FinishReason r) {
  return r == llm::FinishReason::kLength ? "length" : "stop";
}

Json Usage(int prompt, int completion) {
  Json::Object u;
  u["prompt_tokens"] = Json(static_cast<int64_t>(prompt));
  u["completion_tokens"] = Json(static_cast<int64_t>(completion));
  u["total_tokens"] = Json(static_cast<int64_t>(prompt + completion));
  return Json(std::move(u));
}

// The generation settings OpenAI's requests carry.
absl::Status SamplingFromJson(const Json& j, llm::GenerationRequest* g, bool chat) {
  RETURN_IF_ERROR(OptString(j, "model", &g->model));
  double temperature = 1;  // OpenAI's default.
  RETURN_IF_ERROR(OptNumber(j, "temperature", &temperature));
  if (temperature < 0 || temperature > 2) {
    return absl::InvalidArgumentError("'temperature' must be in 0..2");
  }
  g->temperature = static_cast<float>(temperature);
  double top_p = 0;
  RETURN_IF_ERROR(OptNumber(j, "top_p", &top_p));
  g->top_p = static_cast<float>(top_p);
  double seed = 0;
  RETURN_IF_ERROR(OptNumber(j, "seed", &seed));
  if (seed < 0 || seed != std::floor(seed)) {
    return absl::InvalidArgumentError("'seed' must be a non-negative integer");
  }
  g->seed = static_cast<uint64_t>(seed);
  RETURN_IF_ERROR(OptCount(j, "max_tokens", &g->max_tokens));
  if (chat) RETURN_IF_ERROR(OptCount(j, "max_completion_tokens", &g->max_tokens));
  if (!chat && j.Find("max_tokens") == nullptr) g->max_tokens = 16;  // OpenAI's default.
  if (const Json* stop = j.Find("stop"); stop != nullptr && !stop->is_null()) {
    if (stop->is_string()) {
      g->stop.push_back(stop->as_string());
    } else if (stop->is_array()) {
      for (const Json& s : stop->as_array()) {
        if (!s.is_string()) return absl::InvalidArgumentError("'stop' must hold strings");
        g->stop.push_back(s.as_string());
      }
      if (g->stop.size() > 4) return absl::InvalidArgumentError("'stop' takes at most 4 strings");
    } else {
      return absl::InvalidArgumentError("'stop' must be a string or a list of strings");
    }
  }
  double n = 1;
  RETURN_IF_ERROR(OptNumber(j, "n", &n));
  if (n != 1) return absl::InvalidArgumentError("'n' must be 1 (one choice per request)");
  return absl::OkStatus();
}

absl::Status MessagesFromJson(const Json& j, std::vector<llm::ChatMessage>* out) {
  const Json* messages = j.Find("messages");
  if (messages == nullptr || !messages->is_array() || messages->as_array().empty()) {
    return absl::InvalidArgumentError("'messages' must be a non-empty list");
  }
  for (size_t i = 0; i < messages->as_array().size(); ++i) {
    const Json& m = messages->as_array()[i];
    if (!m.is_object())
      return absl::InvalidArgumentError(StrCat("messages[", i, "] is not an object"));
    llm::ChatMessage msg;
    RETURN_IF_ERROR(OptString(m, "role", &msg.role));
    if (msg.role.empty())
      return absl::InvalidArgumentError(StrCat("messages[", i, "] has no role"));
    if (msg.role == "developer") msg.role = "system";
    const Json* content = m.Find("content");
    if (content == nullptr || content->is_null()) {
      msg.content.clear();
    } else if (content->is_string()) {
      msg.content = content->as_string();
    } else if (content->is_array()) {
      for (const Json& part : content->as_array()) {
        const Json* type = part.Find("type");
        const Json* text = part.Find("text");
        if (type == nullptr || !type->is_string() || type->as_string() != "text" ||
            text == nullptr || !text->is_string()) {
          return absl::InvalidArgumentError(
              StrCat("messages[", i, "]: only text content parts are supported"));
        }
        msg.content += text->as_string();
      }
    } else {
      return absl::InvalidArgumentError(StrCat("messages[", i, "].content must be text"));
    }
    out->push_back(std::move(msg));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpOptions& options,
                                                              const HttpBackends& backends) {
  std::unique_ptr<HttpServer> s(new HttpServer());
  s->options_ = options;
  s->backends_ = backends;
  if (!options.tls_cert_file.empty()) {
    auto tls = std::make_unique<httplib::SSLServer>(options.tls_cert_file.c_str(),
                                                    options.tls_key_file.c_str());
    if (!tls->is_valid()) {
      return absl::InvalidArgumentError(StrCat("cannot load the TLS certificate ",
                                               options.tls_cert_file, " and key ",
                                               options.tls_key_file, " for HTTPS"));
    }
    s->server_ = std::move(tls);
    s->backends_.tls = true;
  } else {
    s->server_ = std::make_unique<httplib::Server>();
  }
  httplib::Server& svr = *s->server_;
  // cpp-httplib listens with a backlog of 5; a burst of new connections
  // (hundreds of clients opening pools at once) overflows it and the kernel
  // drops or garbles some of them. Keep the listening socket, and listen
  // again after bind with the system's maximum backlog (Linux updates the
  // backlog of a socket that already listens).
  auto listen_fd = std::make_shared<int>(-1);
  svr.set_socket_options([listen_fd](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    *listen_fd = sock;
  });
  // Responses go out as headers then body: with Nagle's algorithm the body
  // waits for the client's delayed ACK of the headers (~40 ms a request).
  // Accepted sockets inherit TCP_NODELAY from the listening one.
  svr.set_tcp_nodelay(true);
  const int threads = std::max(1, options.threads);
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  svr.set_payload_max_length(options.max_body_bytes);
  svr.set_read_timeout(options.read_timeout_s, 0);
  svr.set_write_timeout(options.write_timeout_s, 0);
  svr.set_keep_alive_timeout(options.keep_alive_s);
  // cpp-httplib closes a connection after 5 requests by default; clients
  // that keep connections open (every HTTP client pool) should not pay a
  // reconnect every few requests.
  svr.set_keep_alive_max_count(static_cast<size_t>(options.keep_alive_max_requests));
  s->Routes();
  const size_t colon = options.listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(StrCat("--http_listen ", options.listen, ": not host:port"));
  }
  const std::string host = options.listen.substr(0, colon);
  const int port = std::atoi(options.listen.c_str() + colon + 1);
  if (port == 0) {
    s->port_ = svr.bind_to_any_port(host);
  } else {
    s->port_ = svr.bind_to_port(host, port) ? port : -1;
  }
  if (s->port_ <= 0) {
    return absl::UnavailableError(
        StrCat("cannot listen for HTTP on ", options.listen, " (address in use or invalid?)"));
  }
  if (*listen_fd >= 0) ::listen(*listen_fd, SOMAXCONN);
  s->thread_ = std::thread([srv = s->server_.get()] { srv->listen_after_bind(); });
  return s;
}

HttpServer::~HttpServer() { Shutdown(); }

void HttpServer::Shutdown() {
  ask_workers_->Stop();  // Running answers end now rather than at their last token.
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
  ask_workers_->StopAndWait();
}

void HttpServer::Routes() {
  httplib::Server& svr = *server_;
  HttpBackends b = backends_;

  svr.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        SendError(res, absl::InternalError("the request failed inside the server"));
      });
  svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404) {
      SendError(res,
                absl::NotFoundError(StrCat("no route ", req.method, " ", Quoted(req.path, 256))));
    } else if (res.status == 413) {
      SendError(res, absl::InvalidArgumentError("the request body is too large"));
    }
  });

  // Every route but health and readiness needs a key when keys are set; an
  // unauthenticated request learns nothing, not even whether its route
  // exists. Read-only keys may not use the Pinecone routes that write.
  svr.set_pre_routing_handler([b](const httplib::Request& req, httplib::Response& res) {
    RequestStart() = std::chrono::steady_clock::now();
    RequestGeneration() = GenerationNote{};
    if (b.api_keys == nullptr || !b.api_keys->enabled() || req.path == "/healthz" ||
        req.path == "/readyz") {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    const std::string api_key = req.get_header_value("Api-Key");
    const std::string authorization = req.get_header_value("Authorization");
    absl::Status s = b.api_keys->Authorize(ApiKeys::PresentedKey(api_key, authorization),
                                           IsPineconeWrite(req.method, req.path));
    if (s.ok()) return httplib::Server::HandlerResponse::Unhandled;
    SendError(res, s);
    return httplib::Server::HandlerResponse::Handled;
  });

  // Metrics and the access log: every request once answered, by route
  // pattern (not by path, so names and ids do not multiply the series).
  svr.set_logger([b](const httplib::Request& req, const httplib::Response& res) {
    if (b.metrics == nullptr) return;
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - RequestStart()).count();
    const std::string route = StrCat(req.method, " ", RoutePattern(req.path, res.status));
    GenerationNote& note = RequestGeneration();
    b.metrics->Record("http", route, StrCat(res.status), seconds, req.body.size(), res.body.size(),
                      note.usage.has_value() ? &*note.usage : nullptr);
    if (b.audit != nullptr && note.audit_request.has_value()) {
      b.audit->Write("http", route, StrCat(res.status), *std::move(note.audit_request), note.answer,
                     note.usage.value_or(GenerationUsage{}));
    }
  });

  svr.Get("/metrics", [b](const httplib::Request&, httplib::Response& res) {
    std::string out;
    if (b.metrics != nullptr) b.metrics->AppendPrometheus(&out);
    AppendCollectionMetrics(b.engine->Usage(), &out);
    AppendEmbeddingMetrics(*b.embedding, &out);
    if (b.generator != nullptr) AppendGeneratorMetrics(b.generator->scheduler().stats(), &out);
    if (b.pipeline != nullptr && b.pipeline->cache() != nullptr) {
      AppendAnswerCacheMetrics(b.pipeline->cache()->stats(), &out);
    }
    res.set_content(out, "text/plain; version=0.0.4");
  });

  svr.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    SendJson(res, 200, Json(Json::Object{{"status", Json("ok")}}));
  });
  svr.Get("/readyz", [b](const httplib::Request&, httplib::Response& res) {
    const std::vector<std::string> damaged = b.engine->damaged_collections();
    Json::Object o;
    o["ready"] = damaged.empty();
    o["collections"] = Json(static_cast<int64_t>(b.engine->ListCollections().size()));
    Json::Array d;
    for (const std::string& n : damaged) d.push_back(Json(n));
    o["damaged_collections"] = Json(std::move(d));
    Json::Array models;
    if (b.embedding->has_embedder()) models.push_back(Json(b.embedding->embed_name()));
    if (b.embedding->has_reranker()) models.push_back(Json(b.embedding->rerank_name()));
    if (b.generator != nullptr) models.push_back(Json(b.generator->name()));
    o["models"] = Json(std::move(models));
    SendJson(res, damaged.empty() ? 200 : 503, Json(std::move(o)));
  });

  // ---- OpenAI /v1 ----------------------------------------------------------
  auto model_object = [](const std::string& id, std::string_view kind) {
    Json::Object m;
    m["id"] = id;
    m["object"] = "model";
    m["created"] = Json(static_cast<int64_t>(0));
    m["owned_by"] = "quiver";
    m["kind"] = std::string(kind);
    return Json(std::move(m));
  };
  auto models = [b, model_object] {
    std::vector<Json> out;
    if (b.embedding->has_embedder())
      out.push_back(model_object(b.embedding->embed_name(), "embedding"));
    if (b.embedding->has_reranker())
      out.push_back(model_object(b.embedding->rerank_name(), "reranker"));
    if (b.generator != nullptr) out.push_back(model_object(b.generator->name(), "generator"));
    return out;
  };
  svr.Get("/v1/models", [models](const httplib::Request&, httplib::Response& res) {
    Json::Object o;
    o["object"] = "list";
    o["data"] = Json(models());
    SendJson(res, 200, Json(std::move(o)));
  });
  svr.Get(R"(/v1/models/(.+))", [models](const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    for (const Json& m : models()) {
      if (m.Find("id")->as_string() == id) return SendJson(res, 200, m);
    }
    SendError(res, absl::NotFoundError(StrCat("the model ", Quoted(id), " does not exist")));
  });

  svr.Post("/v1/embeddings", [b](const httplib::Request& req, httplib::Response& res) {
    auto body = Body(req);
    if (!body.ok()) return SendError(res, body.status());
    std::string model, format = "float";
    absl::Status s = OptString(*body, "model", &model);
    if (s.ok()) s = OptString(*body, "encoding_format", &format);
    if (!s.ok()) return SendError(res, s);
    if (format != "float" && format != "base64") {
      return SendError(res,
                       absl::InvalidArgumentError("'encoding_format' must be float or base64"));
    }
    std::vector<std::string> texts;
    const Json* input = body->Find("input");
    if (input != nullptr && input->is_string()) {
      texts.push_back(input->as_string());
    } else if (input != nullptr && input->is_array()) {
      for (const Json& t : input->as_array()) {
        if (!t.is_string()) {
          return SendError(res, absl::InvalidArgumentError(
                                    "'input' must be a string or a list of strings (token id "
                                    "lists are not supported: send the text)"));
        }
        texts.push_back(t.as_string());
      }
    } else {
      return SendError(res,
                       absl::InvalidArgumentError("'input' must be a string or a list of strings"));
    }
    auto r = b.embedding->Embed(texts, /*normalize=*/true, model);
    if (!r.ok()) return SendError(res, r.status());
    double dims = 0;
    if (absl::Status d = OptNumber(*body, "dimensions", &dims); !d.ok()) return SendError(res, d);
    if (dims != 0 && !r->vectors.empty() && dims != static_cast<double>(r->vectors[0].size())) {
      return SendError(
          res, absl::InvalidArgumentError(
                   StrCat("'dimensions' is ", dims, "; this model gives ", r->vectors[0].size())));
    }
    Json::Array data;
    int64_t tokens = 0;
    for (size_t i = 0; i < r->vectors.size(); ++i) {
      Json::Object e;
      e["object"] = "embedding";
      e["index"] = Json(static_cast<int64_t>(i));
      if (format == "base64") {
        // Little-endian float32, as the OpenAI clients decode it.
        std::string bytes(r->vectors[i].size() * 4, '\0');
        for (size_t k = 0; k < r->vectors[i].size(); ++k) {
          uint32_t u;
          std::memcpy(&u, &r->vectors[i][k], 4);
          for (int byte = 0; byte < 4; ++byte)
            bytes[k * 4 + byte] = static_cast<char>(u >> (8 * byte));
        }
        e["embedding"] = absl::Base64Escape(bytes);
      } else {
        Json::Array v;
        for (float f : r->vectors[i]) v.push_back(Json(static_cast<double>(f)));
        e["embedding"] = Json(std::move(v));
      }
      data.push_back(Json(std::move(e)));
      tokens += r->token_counts[i];
    }
    Json::Object o;
    o["object"] = "list";
    o["data"] = Json(std::move(data));
    o["model"] = b.embedding->embed_name();
    o["usage"] =
        Json(Json::Object{{"prompt_tokens", Json(tokens)}, {"total_tokens", Json(tokens)}});
    SendJson(res, 200, Json(std::move(o)));
  });

  auto rerank = [b](const httplib::Request& req, httplib::Response& res) {
    if (req.path == "/rerank" && req.has_header("X-Pinecone-Api-Version")) {
      return PineconeRerank(b, req, res);
    }
    auto body = Body(req);
    if (!body.ok()) return SendError(res, body.status());
    std::string model, query;
    uint32_t top_n = 0;
    bool return_documents = true;
    absl::Status s = OptString(*body, "model", &model);
    if (s.ok()) s = OptString(*body, "query", &query);
    if (s.ok()) s = OptCount(*body, "top_n", &top_n);
    if (s.ok()) s = OptBool(*body, "return_documents", &return_documents);
    if (!s.ok()) return SendError(res, s);
    const Json* docs = body->Find("documents");
    if (docs == nullptr) docs = body->Find("texts");  // TEI's name.
    if (docs == nullptr || !docs->is_array()) {
      return SendError(res, absl::InvalidArgumentError("'documents' must be a list"));
    }
    std::vector<std::string> texts;
    for (const Json& d : docs->as_array()) {
      if (d.is_string()) {
        texts.push_back(d.as_string());
      } else if (const Json* t = d.Find("text"); t != nullptr && t->is_string()) {
        texts.push_back(t->as_string());
      } else {
        return SendError(res, absl::InvalidArgumentError(
                                  "each document must be a string or {\"text\": string}"));
      }
    }
    auto ranked = b.embedding->Rerank(query, texts, top_n, model);
    if (!ranked.ok()) return SendError(res, ranked.status());
    Json::Array results;
    for (const embed::RankedDocument& r : *ranked) {
      Json::Object o;
      o["index"] = Json(static_cast<int64_t>(r.index));
      o["relevance_score"] = Json(static_cast<double>(r.score));
      if (return_documents) o["document"] = Json(Json::Object{{"text", Json(texts[r.index])}});
      results.push_back(Json(std::move(o)));
    }
    Json::Object o;
    o["model"] = b.embedding->rerank_name();
    o["results"] = Json(std::move(results));
    SendJson(res, 200, Json(std::move(o)));
  };
  svr.Post("/v1/rerank", rerank);
  svr.Post("/rerank", rerank);

  // Chat completions and completions: one handler, two wire formats.
  auto generate = [b](const httplib::Request& req, httplib::Response& res, bool chat) {
    if (b.generator == nullptr) {
      return SendError(res, absl::FailedPreconditionError(
                                "no generative model is loaded (quiverd --llm-model=PATH)"));
    }
    auto body = Body(req);
    if (!body.ok()) return SendError(res, body.status());
    llm::GenerationRequest g;
    absl::Status s = SamplingFromJson(*body, &g, chat);
    bool stream = false, include_usage = false;
    if (s.ok()) s = OptBool(*body, "stream", &stream);
    if (s.ok()) {
      if (const Json* so = body->Find("stream_options"); so != nullptr && so->is_object()) {
        s = OptBool(*so, "include_usage", &include_usage);
      }
    }
    if (s.ok()) {
      if (chat) {
        s = MessagesFromJson(*body, &g.messages);
      } else {
        const Json* prompt = body->Find("prompt");
        if (prompt != nullptr && prompt->is_string()) {
          g.prompt = prompt->as_string();
        } else if (prompt != nullptr && prompt->is_array() && prompt->as_array().size() == 1 &&
                   prompt->as_array()[0].is_string()) {
          g.prompt = prompt->as_array()[0].as_string();
        } else {
          s = absl::InvalidArgumentError("'prompt' must be a string (one prompt per request)");
        }
      }
    }
    if (!s.ok()) return SendError(res, s);
    // Started here, so a bad request gets its status before any byte of
    // the answer; the client going away (a failed write) cancels it.
    auto started = b.generator->Start(g);
    if (!started.ok()) return SendError(res, started.status());
    const bool audit = b.audit != nullptr;
    if (audit) RequestGeneration().audit_request = AuditRequest(g);
    std::shared_ptr<llm::TokenStream> tokens = *std::move(started);
    const std::string id = NewId(chat ? "chatcmpl-" : "cmpl-");
    const int64_t created = NowSeconds();
    const std::string model = b.generator->name();
    auto chunk = [=](const std::string& text, const char* finish, bool first) {
      Json::Object o;
      o["id"] = id;
      o["object"] = chat ? "chat.completion.chunk" : "text_completion";
      o["created"] = Json(created);
      o["model"] = model;
      Json::Object c;
      c["index"] = Json(static_cast<int64_t>(0));
      if (chat) {
        Json::Object delta;
        if (first) delta["role"] = "assistant";
        if (!text.empty() || first) delta["content"] = text;
        c["delta"] = Json(std::move(delta));
      } else {
        c["text"] = text;
      }
      c["logprobs"] = nullptr;
      c["finish_reason"] = finish == nullptr ? Json() : Json(finish);
      o["choices"] = Json(Json::Array{Json(std::move(c))});
      return Json(std::move(o));
    };
    auto drain = [](llm::TokenStream& t, bool done) {
      t.Cancel();
      while (!done && !t.Next().done) {
      }
    };
    if (stream) {
      res.set_header("Cache-Control", "no-cache");
      res.set_chunked_content_provider("text/event-stream", [=](size_t, httplib::DataSink& sink) {
        auto send = [&](const Json& j) {
          const std::string line = StrCat("data: ", j.Dump(), "\n\n");
          return sink.write(line.data(), line.size());
        };
        // Chat streams open with the assistant's role, as OpenAI's do.
        if (chat && !send(chunk("", nullptr, true))) {
          drain(*tokens, false);
          return false;
        }
        while (true) {
          const llm::TokenEvent e = tokens->Next();
          NoteGeneration(e, audit);
          if (e.done && e.reason == llm::FinishReason::kCancelled) {
            send(ErrorBody(absl::UnavailableError("generation was stopped")));
            return false;
          }
          if (!e.text.empty() && !send(chunk(e.text, nullptr, false))) {
            drain(*tokens, e.done);
            return false;
          }
          if (!e.done) continue;
          send(chunk("", FinishName(e.reason), false));
          if (include_usage) {
            Json::Object u;
            u["id"] = id;
            u["object"] = chat ? "chat.completion.chunk" : "text_completion";
            u["created"] = Json(created);
            u["model"] = model;
            u["choices"] = Json(Json::Array{});
            u["usage"] = Usage(e.prompt_tokens, e.completion_tokens);
            send(Json(std::move(u)));
          }
          const std::string done = "data: [DONE]\n\n";
          sink.write(done.data(), done.size());
          sink.done();
          return true;
        }
      });
      return;
    }
    // One JSON answer. While generating, a space goes out now and then
    // (JSON allows leading whitespace): writes are how a closed connection
    // is noticed, and it stops the generation.
    res.set_chunked_content_provider("application/json", [=](size_t, httplib::DataSink& sink) {
      std::string text;
      int since_beat = 0;
      auto last_beat = std::chrono::steady_clock::now();
      while (true) {
        const llm::TokenEvent e = tokens->Next();
        NoteGeneration(e, audit);
        if (e.done && e.reason == llm::FinishReason::kCancelled) {
          const std::string err =
              ErrorBody(absl::UnavailableError("generation was stopped")).Dump();
          sink.write(err.data(), err.size());
          sink.done();
          return true;
        }
        text += e.text;
        if (!e.done) {
          if (++since_beat >= 8 &&
              std::chrono::steady_clock::now() - last_beat > std::chrono::milliseconds(200)) {
            since_beat = 0;
            last_beat = std::chrono::steady_clock::now();
            if (!sink.write(" ", 1)) {
              drain(*tokens, false);
              return false;
            }
          }
          continue;
        }
        Json::Object o;
        o["id"] = id;
        o["object"] = chat ? "chat.completion" : "text_completion";
        o["created"] = Json(created);
        o["model"] = model;
        Json::Object c;
        c["index"] = Json(static_cast<int64_t>(0));
        if (chat) {
          c["message"] = Json(Json::Object{{"role", Json("assistant")}, {"content", Json(text)}});
        } else {
          c["text"] = text;
        }
        c["logprobs"] = nullptr;
        c["finish_reason"] = FinishName(e.reason);
        o["choices"] = Json(Json::Array{Json(std::move(c))});
        o["usage"] = Usage(e.prompt_tokens, e.completion_tokens);
        const std::string out = Json(std::move(o)).Dump();
        sink.write(out.data(), out.size());
        sink.done();
        return true;
      }
    });
  };
  RegisterPineconeRoutes(&svr, b);
  RegisterAskRoute(&svr, b, ask_workers_);

  svr.Post("/v1/chat/completions", [generate](const httplib::Request& req, httplib::Response& res) {
    generate(req, res, true);
  });
  svr.Post("/v1/completions", [generate](const httplib::Request& req, httplib::Response& res) {
    generate(req, res, false);
  });
}

}  // namespace quiver::server
