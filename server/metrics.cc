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

absl::StatusOr<std::unique_ptr<RequestMetrics>> RequestMetrics::Open(const std::string& access_log,
                                                                     size_t rotate_bytes) {
  std::unique_ptr<RequestMetrics> m(new RequestMetrics());
  m->log_path_ = access_log;
  m->rotate_bytes_ = rotate_bytes;
  if (!access_log.empty()) {
    m->log_.open(access_log, std::ios::app);
    if (!m->log_)
      return absl::FailedPreconditionError(StrCat("cannot write --access_log ", access_log));
    std::error_code ec;
    m->log_bytes_ = std::filesystem::file_size(access_log, ec);
    if (ec) m->log_bytes_ = 0;
  }
  return m;
}

void RequestMetrics::Record(std::string_view transport, std::string_view route,
                            std::string_view status, double seconds, size_t bytes_in,
                            size_t bytes_out) {
  std::string line;
  if (!log_path_.empty()) {
    Json::Object o;
    o["time"] = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
    o["transport"] = std::string(transport);
    o["route"] = std::string(route);
    o["status"] = std::string(status);
    o["latency_ms"] = Json(seconds * 1e3);
    o["bytes_in"] = Json(static_cast<int64_t>(bytes_in));
    o["bytes_out"] = Json(static_cast<int64_t>(bytes_out));
    line = Json(std::move(o)).Dump() + "\n";
  }
  std::lock_guard<std::mutex> l(mu_);
  ++counts_[{std::string(transport), std::string(route), std::string(status)}];
  Histogram& h = latency_[{std::string(transport), std::string(route)}];
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) ++h.buckets[i];
  }
  ++h.count;
  h.sum += seconds;
  if (!line.empty() && log_) {
    if (rotate_bytes_ > 0 && log_bytes_ + line.size() > rotate_bytes_) {
      log_.close();
      std::error_code ec;
      std::filesystem::rename(log_path_, log_path_ + ".1", ec);
      log_.open(log_path_, std::ios::trunc);
      log_bytes_ = 0;
    }
    log_ << line << std::flush;
    log_bytes_ += line.size();
  }
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

}  // namespace quiver::server
