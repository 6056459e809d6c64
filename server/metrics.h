// Request metrics for both transports, exposed in Prometheus' text format on
// GET /metrics, and the opt-in JSON access log (one line per request).
// Thread-safe.
#ifndef QUIVER_SERVER_METRICS_H_
#define QUIVER_SERVER_METRICS_H_

#include <array>
#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "absl/status/statusor.h"
#include "common/json.h"
#include "db/requests.h"
#include "embed/service.h"
#include "llm/scheduler.h"
#include "rag/answer_cache.h"
#include "rag/types.h"

namespace quiver::server {

// Appends lines to a file, renaming it to <file>.1 (replacing the previous
// one) once it would pass `rotate_bytes` (0: never). Thread-safe.
class RotatingFile {
 public:
  static absl::StatusOr<std::unique_ptr<RotatingFile>> Open(const std::string& path,
                                                            size_t rotate_bytes);
  // `line` must end in a newline.
  void Append(std::string_view line);

 private:
  RotatingFile() = default;
  std::mutex mu_;
  std::string path_;
  size_t rotate_bytes_ = 0;
  std::ofstream out_;
  size_t bytes_ = 0;
};

// The token counts of one generation request.
struct GenerationUsage {
  uint64_t prompt_tokens = 0, completion_tokens = 0, cached_prompt_tokens = 0;
};

// gRPC trailing metadata that carries a generation's token counts to the
// metrics interceptor (and to clients).
inline constexpr char kPromptTokensKey[] = "quiver-prompt-tokens";
inline constexpr char kCompletionTokensKey[] = "quiver-completion-tokens";
inline constexpr char kCachedPromptTokensKey[] = "quiver-cached-prompt-tokens";

// The opt-in audit log (--audit_log): one JSON line per generation request
// with what was asked (prompt, messages or question) and the answer. Kept
// apart from the access log because it holds user content. Never holds
// API keys. Thread-safe.
class AuditLog {
 public:
  static absl::StatusOr<std::unique_ptr<AuditLog>> Open(const std::string& path,
                                                        size_t rotate_bytes);
  // `request`: the parts of the request that say what was asked.
  void Write(std::string_view transport, std::string_view route, std::string_view status,
             Json request, std::string_view answer, const GenerationUsage& usage);

 private:
  std::unique_ptr<RotatingFile> file_;
};

// What an audit line records of a request: prompt or messages, or an Ask's
// collection, question and history, with the model.
Json AuditRequest(const llm::GenerationRequest& request);
Json AuditRequest(const rag::AskRequest& request);

// Passes an Ask's events on to `inner`, keeping the answer's text and token
// counts for the logs.
class RecordingAskSink final : public rag::AskSink {
 public:
  explicit RecordingAskSink(rag::AskSink* inner) : inner_(inner) {}
  bool Sources(const std::vector<rag::Source>& sources) override {
    return inner_->Sources(sources);
  }
  bool Token(std::string_view text, int token_id) override {
    answer_.append(text);
    return inner_->Token(text, token_id);
  }
  bool Done(const rag::AskSummary& summary) override {
    usage_ = GenerationUsage{summary.prompt_tokens, summary.completion_tokens,
                             summary.cached_prompt_tokens};
    return inner_->Done(summary);
  }
  const std::string& answer() const { return answer_; }
  // Set once the answer is done.
  const std::optional<GenerationUsage>& usage() const { return usage_; }

 private:
  rag::AskSink* inner_;
  std::string answer_;
  std::optional<GenerationUsage> usage_;
};

class RequestMetrics {
 public:
  // `access_log`: a file to append one JSON line per request to (empty:
  // none); rotated to <file>.1 when it passes `rotate_bytes`.
  static absl::StatusOr<std::unique_ptr<RequestMetrics>> Open(const std::string& access_log,
                                                              size_t rotate_bytes);

  // One finished request: transport "grpc" or "http", its route (an RPC's
  // full method name, or an HTTP route pattern), status (gRPC code name or
  // HTTP status), seconds taken, bytes in and out, and for generation the
  // token counts (null for other requests).
  void Record(std::string_view transport, std::string_view route, std::string_view status,
              double seconds, size_t bytes_in, size_t bytes_out,
              const GenerationUsage* usage = nullptr);

  // quiver_requests_total{transport,route,status} and
  // quiver_request_duration_seconds{transport,route} (histogram).
  void AppendPrometheus(std::string* out) const;

  static constexpr std::array<double, 12> kBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                      0.1,   0.25,   0.5,   1,    2.5,   10};

 private:
  RequestMetrics() = default;
  struct Histogram {
    std::array<uint64_t, kBuckets.size()> buckets{};
    uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, std::string>, uint64_t> counts_;
  std::map<std::pair<std::string, std::string>, Histogram> latency_;
  std::unique_ptr<RotatingFile> log_;  // Null: no access log.
};

// The server's other series, in Prometheus' text format: per collection
// records, bytes and index activity; embedding and rerank queues and
// batches; generation queue, tokens and steps; answer cache.
void AppendCollectionMetrics(const std::vector<db::CollectionUsage>& usage, std::string* out);
void AppendEmbeddingMetrics(const embed::EmbeddingService& service, std::string* out);
void AppendGeneratorMetrics(const llm::Scheduler::Stats& stats, std::string* out);
void AppendAnswerCacheMetrics(const rag::AnswerCache::Stats& stats, std::string* out);

// A label value escaped for Prometheus' text format.
std::string PrometheusLabel(std::string_view value);

}  // namespace quiver::server

#endif  // QUIVER_SERVER_METRICS_H_
