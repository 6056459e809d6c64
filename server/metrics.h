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
#include <string>
#include <string_view>
#include <tuple>

#include "absl/status/statusor.h"

namespace quiver::server {

class RequestMetrics {
 public:
  // `access_log`: a file to append one JSON line per request to (empty:
  // none); rotated to <file>.1 when it passes `rotate_bytes`.
  static absl::StatusOr<std::unique_ptr<RequestMetrics>> Open(const std::string& access_log,
                                                              size_t rotate_bytes);

  // One finished request: transport "grpc" or "http", its route (an RPC's
  // full method name, or an HTTP route pattern), status (gRPC code name or
  // HTTP status), seconds taken, bytes in and out.
  void Record(std::string_view transport, std::string_view route, std::string_view status,
              double seconds, size_t bytes_in, size_t bytes_out);

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
  std::string log_path_;
  size_t rotate_bytes_ = 0;
  std::ofstream log_;
  size_t log_bytes_ = 0;
};

// A label value escaped for Prometheus' text format.
std::string PrometheusLabel(std::string_view value);

}  // namespace quiver::server

#endif  // QUIVER_SERVER_METRICS_H_
