#include "server/metrics.h"

#include <cstdio>
#include <filesystem>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/json.h"
#include "common/strings.h"

namespace quiver::server {

std::string PrometheusLabel(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

absl::StatusOr<std::unique_ptr<RotatingFile>> RotatingFile::Open(const std::string& path,
                                                                 size_t rotate_bytes) {
  std::unique_ptr<RotatingFile> f(new RotatingFile());
  f->path_ = path;
  f->rotate_bytes_ = rotate_bytes;
  f->out_.open(path, std::ios::app);
  if (!f->out_) return absl::FailedPreconditionError(StrCat("cannot write ", path));
  std::error_code ec;
  f->bytes_ = std::filesystem::file_size(path, ec);
  if (ec) f->bytes_ = 0;
  return f;
}

void RotatingFile::Append(std::string_view line) {
  std::lock_guard<std::mutex> l(mu_);
  if (rotate_bytes_ > 0 && bytes_ > 0 && bytes_ + line.size() > rotate_bytes_) {
    out_.close();
    std::error_code ec;
    std::filesystem::rename(path_, path_ + ".1", ec);
    out_.open(path_, std::ios::trunc);
    bytes_ = 0;
  }
  out_ << line << std::flush;
  bytes_ += line.size();
}

namespace {

std::string NowIso() {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
}

void PutUsage(const GenerationUsage& usage, Json::Object* o) {
  (*o)["prompt_tokens"] = Json(static_cast<int64_t>(usage.prompt_tokens));
  (*o)["completion_tokens"] = Json(static_cast<int64_t>(usage.completion_tokens));
  (*o)["cached_prompt_tokens"] = Json(static_cast<int64_t>(usage.cached_prompt_tokens));
}

}  // namespace

namespace {

Json MessagesJson(const std::vector<llm::ChatMessage>& messages) {
  Json out{Json::Array{}};
  for (const llm::ChatMessage& m : messages) {
    out.as_array().emplace_back(Json::Object{{"role", Json(m.role)}, {"content", Json(m.content)}});
  }
  return out;
}

}  // namespace

Json AuditRequest(const llm::GenerationRequest& request) {
  Json::Object o;
  o["model"] = request.model;
  if (request.messages.empty()) {
    o["prompt"] = request.prompt;
  } else {
    o["messages"] = MessagesJson(request.messages);
  }
  return Json(std::move(o));
}

Json AuditRequest(const rag::AskRequest& request) {
  Json::Object o;
  o["model"] = request.generation.model;
  o["collection"] = request.collection;
  o["namespace"] = request.ns;
  o["question"] = request.question;
  if (!request.history.empty()) o["history"] = MessagesJson(request.history);
  return Json(std::move(o));
}

absl::StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(const std::string& path,
                                                         size_t rotate_bytes) {
  auto file = RotatingFile::Open(path, rotate_bytes);
  if (!file.ok()) return absl::FailedPreconditionError(StrCat("cannot write --audit_log ", path));
  std::unique_ptr<AuditLog> log(new AuditLog());
  log->file_ = *std::move(file);
  return log;
}

void AuditLog::Write(std::string_view transport, std::string_view route, std::string_view status,
                     Json request, std::string_view answer, const GenerationUsage& usage) {
  Json::Object o;
  o["time"] = NowIso();
  o["transport"] = std::string(transport);
  o["route"] = std::string(route);
  o["status"] = std::string(status);
  o["request"] = std::move(request);
  o["answer"] = std::string(answer);
  PutUsage(usage, &o);
  file_->Append(Json(std::move(o)).Dump() + "\n");
}

absl::StatusOr<std::unique_ptr<RequestMetrics>> RequestMetrics::Open(const std::string& access_log,
                                                                     size_t rotate_bytes) {
  std::unique_ptr<RequestMetrics> m(new RequestMetrics());
  if (!access_log.empty()) {
    auto file = RotatingFile::Open(access_log, rotate_bytes);
    if (!file.ok()) {
      return absl::FailedPreconditionError(StrCat("cannot write --access_log ", access_log));
    }
    m->log_ = *std::move(file);
  }
  return m;
}

void RequestMetrics::Record(std::string_view transport, std::string_view route,
                            std::string_view status, double seconds, size_t bytes_in,
                            size_t bytes_out, const GenerationUsage* usage) {
  {
    std::lock_guard<std::mutex> l(mu_);
    ++counts_[{std::string(transport), std::string(route), std::string(status)}];
    Histogram& h = latency_[{std::string(transport), std::string(route)}];
    for (size_t i = 0; i < kBuckets.size(); ++i) {
      if (seconds <= kBuckets[i]) ++h.buckets[i];
    }
    ++h.count;
    h.sum += seconds;
  }
  if (log_ == nullptr) return;
  Json::Object o;
  o["time"] = NowIso();
  o["transport"] = std::string(transport);
  o["route"] = std::string(route);
  o["status"] = std::string(status);
  o["latency_ms"] = Json(seconds * 1e3);
  o["bytes_in"] = Json(static_cast<int64_t>(bytes_in));
  o["bytes_out"] = Json(static_cast<int64_t>(bytes_out));
  if (usage != nullptr) PutUsage(*usage, &o);
  log_->Append(Json(std::move(o)).Dump() + "\n");
}

void RequestMetrics::AppendPrometheus(std::string* out) const {
  std::lock_guard<std::mutex> l(mu_);
  *out += "# HELP quiver_requests_total Requests served, by transport, route and status.\n";
  *out += "# TYPE quiver_requests_total counter\n";
  for (const auto& [key, n] : counts_) {
    const auto& [transport, route, status] = key;
    StrAppend(out, "quiver_requests_total{transport=\"", PrometheusLabel(transport), "\",route=\"",
              PrometheusLabel(route), "\",status=\"", PrometheusLabel(status), "\"} ", n, "\n");
  }
  *out += "# HELP quiver_request_duration_seconds Time to serve a request.\n";
  *out += "# TYPE quiver_request_duration_seconds histogram\n";
  for (const auto& [key, h] : latency_) {
    const std::string labels = StrCat("transport=\"", PrometheusLabel(key.first), "\",route=\"",
                                      PrometheusLabel(key.second), "\"");
    for (size_t i = 0; i < kBuckets.size(); ++i) {
      char le[32];
      std::snprintf(le, sizeof(le), "%g", kBuckets[i]);
      StrAppend(out, "quiver_request_duration_seconds_bucket{", labels, ",le=\"", le, "\"} ",
                h.buckets[i], "\n");
    }
    StrAppend(out, "quiver_request_duration_seconds_bucket{", labels, ",le=\"+Inf\"} ", h.count,
              "\n");
    char sum[64];
    std::snprintf(sum, sizeof(sum), "%.9g", h.sum);
    StrAppend(out, "quiver_request_duration_seconds_sum{", labels, "} ", sum, "\n");
    StrAppend(out, "quiver_request_duration_seconds_count{", labels, "} ", h.count, "\n");
  }
}

namespace {

void Header(std::string_view name, std::string_view type, std::string_view help, std::string* out) {
  StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

}  // namespace

void AppendCollectionMetrics(const std::vector<db::CollectionUsage>& usage, std::string* out) {
  struct Series {
    std::string_view name, type, help;
    uint64_t db::CollectionUsage::*field;
  };
  static constexpr Series kSeries[] = {
      {"quiver_collection_records", "gauge", "Records per collection.",
       &db::CollectionUsage::record_count},
      {"quiver_collection_index_bytes", "gauge",
       "Memory of the collection's vector indexes (vectors and graph).",
       &db::CollectionUsage::index_bytes},
      {"quiver_collection_stored_bytes", "gauge",
       "Approximate bytes of the collection's records, documents and index data in the store.",
       &db::CollectionUsage::stored_bytes},
      {"quiver_index_inserts_total", "counter", "Vectors inserted into the collection's indexes.",
       &db::CollectionUsage::vectors_indexed},
      {"quiver_index_searches_total", "counter", "Queries run against the collection.",
       &db::CollectionUsage::queries},
      {"quiver_index_compactions_total", "counter",
       "Vector index rebuilds that dropped deleted entries.", &db::CollectionUsage::compactions},
      {"quiver_index_checkpoints_total", "counter", "Index and postings checkpoints written.",
       &db::CollectionUsage::checkpoints},
  };
  for (const Series& series : kSeries) {
    Header(series.name, series.type, series.help, out);
    for (const db::CollectionUsage& u : usage) {
      StrAppend(out, series.name, "{collection=\"", PrometheusLabel(u.name), "\"} ",
                u.*series.field, "\n");
    }
  }
}

void AppendEmbeddingMetrics(const embed::EmbeddingService& service, std::string* out) {
  Header("quiver_embed_queue_depth", "gauge", "Texts waiting for the embedding and rerank workers.",
         out);
  StrAppend(out, "quiver_embed_queue_depth ", service.queued(), "\n");
  const std::pair<std::string_view, embed::WorkerStats> workers[] = {
      {"embed", service.embed_stats()}, {"rerank", service.rerank_stats()}};
  Header("quiver_model_batches_total", "counter", "Forward passes run by the batching workers.",
         out);
  for (const auto& [name, st] : workers) {
    StrAppend(out, "quiver_model_batches_total{worker=\"", name, "\"} ", st.batches, "\n");
  }
  Header("quiver_model_batch_sequences_total", "counter",
         "Sequences in those passes (divided by batches: the mean batch size).", out);
  for (const auto& [name, st] : workers) {
    StrAppend(out, "quiver_model_batch_sequences_total{worker=\"", name, "\"} ", st.sequences,
              "\n");
  }
  Header("quiver_model_tokens_total", "counter",
         "Tokens in those passes: real ones, and with padding.", out);
  for (const auto& [name, st] : workers) {
    StrAppend(out, "quiver_model_tokens_total{worker=\"", name, "\",kind=\"real\"} ",
              st.real_tokens, "\n");
    StrAppend(out, "quiver_model_tokens_total{worker=\"", name, "\",kind=\"padded\"} ",
              st.padded_tokens, "\n");
  }
}

void AppendGeneratorMetrics(const llm::Scheduler::Stats& st, std::string* out) {
  Header("quiver_generate_queue_depth", "gauge", "Generations waiting for a slot.", out);
  StrAppend(out, "quiver_generate_queue_depth ", st.queued, "\n");
  Header("quiver_generate_running", "gauge", "Generations in the running batch.", out);
  StrAppend(out, "quiver_generate_running ", st.running, "\n");
  Header("quiver_generated_tokens_total", "counter",
         "Tokens generated (rate(): generation tokens/s).", out);
  StrAppend(out, "quiver_generated_tokens_total ", st.generated_tokens, "\n");
  Header("quiver_prompt_tokens_total", "counter", "Prompt tokens admitted.", out);
  StrAppend(out, "quiver_prompt_tokens_total ", st.prompt_tokens, "\n");
  Header("quiver_prompt_tokens_cached_total", "counter",
         "Prompt tokens served from the prefix KV cache.", out);
  StrAppend(out, "quiver_prompt_tokens_cached_total ", st.cached_prompt_tokens, "\n");
  Header("quiver_generate_steps_total", "counter", "Batched decode steps.", out);
  StrAppend(out, "quiver_generate_steps_total ", st.steps, "\n");
  Header("quiver_generate_rows_total", "counter",
         "Sequence rows in those steps (divided by steps: the mean batch size).", out);
  StrAppend(out, "quiver_generate_rows_total ", st.rows, "\n");
}

void AppendAnswerCacheMetrics(const rag::AnswerCache::Stats& cs, std::string* out) {
  Header("quiver_answer_cache_hits_total", "counter", "Answers served from the cache.", out);
  StrAppend(out, "quiver_answer_cache_hits_total{layer=\"exact\"} ", cs.exact_hits, "\n");
  StrAppend(out, "quiver_answer_cache_hits_total{layer=\"semantic\"} ", cs.semantic_hits, "\n");
  Header("quiver_answer_cache_entries", "gauge", "Answers held.", out);
  StrAppend(out, "quiver_answer_cache_entries ", cs.entries, "\n");
  Header("quiver_answer_cache_bytes", "gauge", "Bytes the held answers take.", out);
  StrAppend(out, "quiver_answer_cache_bytes ", cs.bytes, "\n");
}

}  // namespace quiver::server
