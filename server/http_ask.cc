// POST /v1/rag/ask: Rag.Ask over HTTP. With "stream": true, server-sent
// events in Ask's order: `event: sources`, `event: token` (many),
// `event: done` (or `event: error`); without, one JSON answer. Request
// errors found before anything is sent get their HTTP status and the
// OpenAI-style error body.
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "common/json.h"
#include "common/strings.h"
#include "httplib.h"
#include "server/http.h"
#include "server/http_internal.h"
#include "storage/metadata.h"

namespace quiver::server {
namespace {

using http_internal::Body;
using http_internal::ErrorBody;
using http_internal::OptBool;
using http_internal::OptCount;
using http_internal::OptNumber;
using http_internal::OptString;
using http_internal::SendError;
using http_internal::SendJson;

Json SourcesJson(const std::vector<rag::Source>& sources) {
  Json list{Json::Array{}};
  Json::Array& out = list.as_array();
  for (const rag::Source& s : sources) {
    Json::Object o;
    o["number"] = Json(static_cast<int64_t>(s.number));
    o["document_id"] = s.document_id;
    o["chunk"] = Json(static_cast<int64_t>(s.chunk));
    o["record_id"] = s.record_id;
    o["text"] = s.text;
    o["heading"] = s.heading;
    o["score"] = Json(static_cast<double>(s.score));
    o["dense_score"] = Json(static_cast<double>(s.dense_score));
    o["text_score"] = Json(static_cast<double>(s.text_score));
    o["rerank_score"] = Json(static_cast<double>(s.rerank_score));
    o["start_byte"] = Json(static_cast<int64_t>(s.start_byte));
    o["end_byte"] = Json(static_cast<int64_t>(s.end_byte));
    o["metadata"] = storage::MetadataToJson(s.metadata);
    out.emplace_back(std::move(o));
  }
  return list;
}

Json SummaryJson(const rag::AskSummary& s) {
  Json::Object o;
  o["usage"] = Json(Json::Object{
      {"prompt_tokens", Json(static_cast<int64_t>(s.prompt_tokens))},
      {"completion_tokens", Json(static_cast<int64_t>(s.completion_tokens))},
      {"total_tokens", Json(static_cast<int64_t>(s.prompt_tokens + s.completion_tokens))},
      {"cached_prompt_tokens", Json(static_cast<int64_t>(s.cached_prompt_tokens))}});
  o["finish_reason"] = s.finish == llm::FinishReason::kLength ? "length" : "stop";
  const rag::Timings& t = s.timings;
  o["timings_ms"] = Json(Json::Object{{"embed", Json(t.embed_ms)},
                                      {"retrieve", Json(t.retrieve_ms)},
                                      {"rerank", Json(t.rerank_ms)},
                                      {"pack", Json(t.pack_ms)},
                                      {"prefill", Json(t.prefill_ms)},
                                      {"decode", Json(t.decode_ms)},
                                      {"total", Json(t.total_ms)}});
  o["cache"] = std::string(rag::CacheStatusName(s.cache));
  Json cited{Json::Array{}}, unknown{Json::Array{}};
  for (uint32_t n : s.cited) cited.as_array().emplace_back(static_cast<int64_t>(n));
  for (uint32_t n : s.unknown_citations) unknown.as_array().emplace_back(static_cast<int64_t>(n));
  o["cited"] = std::move(cited);
  o["unknown_citations"] = std::move(unknown);
  o["model"] = s.model;
  return Json(std::move(o));
}

absl::Status AskFromJson(const Json& j, rag::AskRequest* r) {
  RETURN_IF_ERROR(OptString(j, "collection", &r->collection));
  RETURN_IF_ERROR(OptString(j, "namespace", &r->ns));
  RETURN_IF_ERROR(OptString(j, "question", &r->question));
  RETURN_IF_ERROR(OptCount(j, "top_k", &r->top_k));
  RETURN_IF_ERROR(OptCount(j, "candidate_k", &r->candidate_k));
  RETURN_IF_ERROR(OptBool(j, "rerank", &r->rerank));
  RETURN_IF_ERROR(OptBool(j, "no_cache", &r->no_cache));
  RETURN_IF_ERROR(OptString(j, "system_prompt", &r->system_prompt));
  RETURN_IF_ERROR(OptString(j, "prompt_template", &r->prompt_template));
  RETURN_IF_ERROR(OptCount(j, "context_tokens", &r->context_tokens));
  RETURN_IF_ERROR(OptString(j, "model", &r->generation.model));
  RETURN_IF_ERROR(OptCount(j, "max_tokens", &r->generation.max_tokens));
  double temperature = 0, top_p = 0, seed = 0;
  RETURN_IF_ERROR(OptNumber(j, "temperature", &temperature));
  RETURN_IF_ERROR(OptNumber(j, "top_p", &top_p));
  RETURN_IF_ERROR(OptNumber(j, "seed", &seed));
  r->generation.temperature = static_cast<float>(temperature);
  r->generation.top_p = static_cast<float>(top_p);
  r->generation.seed = static_cast<uint64_t>(seed);
  std::string mode = "auto";
  RETURN_IF_ERROR(OptString(j, "mode", &mode));
  if (mode == "dense") {
    r->mode = rag::RetrievalMode::kDense;
  } else if (mode == "text") {
    r->mode = rag::RetrievalMode::kText;
  } else if (mode == "hybrid") {
    r->mode = rag::RetrievalMode::kHybrid;
  } else if (mode != "auto") {
    return absl::InvalidArgumentError("'mode' must be auto, dense, text or hybrid");
  }
  if (const Json* f = j.Find("filter"); f != nullptr && !f->is_null()) r->filter = *f;
  if (const Json* h = j.Find("history"); h != nullptr && h->is_array()) {
    for (const Json& m : h->as_array()) {
      llm::ChatMessage msg;
      RETURN_IF_ERROR(OptString(m, "role", &msg.role));
      RETURN_IF_ERROR(OptString(m, "content", &msg.content));
      r->history.push_back(std::move(msg));
    }
  }
  return absl::OkStatus();
}

// Ask's events, queued by the pipeline's thread and read by the response's.
struct Events {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<std::string, Json>> queue;  // (event name, payload)
  bool finished = false;
  absl::Status status;
  std::atomic<bool> gone{false};
  // For the logs, once finished.
  std::string answer;
  std::optional<GenerationUsage> usage;
};

// Hands a finished answer to the logs. REQUIRES: e.mu held.
void NoteAnswer(const Events& e) {
  http_internal::GenerationNote& note = http_internal::RequestGeneration();
  note.usage = e.usage;
  if (note.audit_request.has_value()) note.answer = e.answer;
}

class QueueSink final : public rag::AskSink {
 public:
  explicit QueueSink(std::shared_ptr<Events> e) : e_(std::move(e)) {}
  bool Sources(const std::vector<rag::Source>& s) override {
    return Push("sources", SourcesJson(s));
  }
  bool Token(std::string_view text, int) override {
    return Push("token", Json(Json::Object{{"text", Json(std::string(text))}}));
  }
  bool Done(const rag::AskSummary& s) override { return Push("done", SummaryJson(s)); }

 private:
  bool Push(const char* name, Json payload) {
    {
      std::lock_guard<std::mutex> l(e_->mu);
      e_->queue.emplace_back(name, std::move(payload));
    }
    e_->cv.notify_all();
    return !e_->gone.load();
  }
  std::shared_ptr<Events> e_;
};

}  // namespace

void AskWorkers::Begin() {
  std::lock_guard<std::mutex> l(mu_);
  ++running_;
}

void AskWorkers::End() {
  {
    std::lock_guard<std::mutex> l(mu_);
    --running_;
  }
  cv_.notify_all();
}

void AskWorkers::StopAndWait() {
  stopping_ = true;
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [&] { return running_ == 0; });
}

void RegisterAskRoute(httplib::Server* svr, const HttpBackends& b,
                      std::shared_ptr<AskWorkers> workers) {
  svr->Post("/v1/rag/ask", [b, workers](const httplib::Request& req, httplib::Response& res) {
    auto body = Body(req);
    if (!body.ok()) return SendError(res, body.status());
    rag::AskRequest ask;
    bool stream = false;
    absl::Status s = AskFromJson(*body, &ask);
    if (s.ok()) s = OptBool(*body, "stream", &stream);
    if (!s.ok()) return SendError(res, s);
    auto events = std::make_shared<Events>();
    if (workers->stopping()) {
      return SendError(res, absl::UnavailableError("the server is shutting down"));
    }
    workers->Begin();
    if (b.audit != nullptr) http_internal::RequestGeneration().audit_request = AuditRequest(ask);
    std::thread worker([b, ask, events, workers] {
      QueueSink queue_sink(events);
      RecordingAskSink sink(&queue_sink);
      absl::Status st = b.pipeline->Ask(
          ask, &sink, [events, workers] { return events->gone.load() || workers->stopping(); });
      {
        std::lock_guard<std::mutex> l(events->mu);
        events->finished = true;
        events->status = st;
        events->answer = sink.answer();
        events->usage = sink.usage();
      }
      events->cv.notify_all();
      workers->End();
    });
    worker.detach();  // It ends on its own; `events` outlives both sides.
    // Wait for the first event: errors before it are plain HTTP errors.
    {
      std::unique_lock<std::mutex> l(events->mu);
      events->cv.wait(l, [&] { return !events->queue.empty() || events->finished; });
      if (events->queue.empty() && !events->status.ok()) return SendError(res, events->status);
    }
    if (stream) {
      res.set_header("Cache-Control", "no-cache");
      res.set_chunked_content_provider("text/event-stream", [events](size_t,
                                                                     httplib::DataSink& sink) {
        while (true) {
          std::unique_lock<std::mutex> l(events->mu);
          events->cv.wait(l, [&] { return !events->queue.empty() || events->finished; });
          if (events->queue.empty()) {
            const absl::Status st = events->status;
            NoteAnswer(*events);
            l.unlock();
            if (!st.ok()) {
              const std::string err = StrCat("event: error\ndata: ", ErrorBody(st).Dump(), "\n\n");
              sink.write(err.data(), err.size());
            }
            sink.done();
            return true;
          }
          auto [name, payload] = std::move(events->queue.front());
          events->queue.pop_front();
          l.unlock();
          const std::string line = StrCat("event: ", name, "\ndata: ", payload.Dump(), "\n\n");
          if (!sink.write(line.data(), line.size())) {
            events->gone = true;  // The pipeline stops at its next check.
            l.lock();
            NoteAnswer(*events);  // What was made so far, if it has finished.
            return false;
          }
        }
      });
      return;
    }
    // One JSON answer, once Ask has finished.
    std::unique_lock<std::mutex> l(events->mu);
    events->cv.wait(l, [&] { return events->finished; });
    NoteAnswer(*events);
    Json::Object out;
    std::string answer;
    for (auto& [name, payload] : events->queue) {
      if (name == "sources") out["sources"] = payload;
      if (name == "token") answer += payload.Find("text")->as_string();
      if (name == "done") {
        for (auto& [k, v] : payload.as_object()) out[k] = v;
      }
    }
    out["answer"] = answer;
    if (!events->status.ok()) {
      // The sources went out to nobody yet: report the error with them.
      out["error"] = *ErrorBody(events->status).Find("error");
      return SendJson(res, http_internal::HttpStatus(events->status.code()), Json(std::move(out)));
    }
    SendJson(res, 200, Json(std::move(out)));
  });
}

}  // namespace quiver::server
