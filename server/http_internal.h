// Helpers the HTTP routes share (server/http.cc, server/pinecone.cc); no
// other module includes this.
#ifndef QUIVER_SERVER_HTTP_INTERNAL_H_
#define QUIVER_SERVER_HTTP_INTERNAL_H_

#include <cmath>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "httplib.h"
#include "server/metrics.h"

namespace quiver::server::http_internal {

// What the request being answered on this thread generated, for the access
// and audit logs: routes fill it (their content providers run on the
// request's thread), the logger reads it. Reset for every request.
struct GenerationNote {
  std::optional<GenerationUsage> usage;
  std::optional<Json> audit_request;  // Set only when there is an audit log.
  std::string answer;                 // Kept only when there is an audit log.
};
GenerationNote& RequestGeneration();

inline int HttpStatus(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

// OpenAI's error body: {"error": {"message", "type", "param", "code"}}.
inline Json ErrorBody(const absl::Status& s) {
  const int status = HttpStatus(s.code());
  std::string type = "invalid_request_error";
  if (status == 401) type = "authentication_error";
  if (status == 403) type = "permission_error";
  if (status == 404) type = "not_found_error";
  if (status == 429) type = "rate_limit_error";
  if (status >= 500) type = "server_error";
  Json::Object e;
  e["message"] = std::string(s.message());
  e["type"] = type;
  e["param"] = nullptr;
  e["code"] = std::string(absl::StatusCodeToString(s.code()));
  Json::Object body;
  body["error"] = Json(std::move(e));
  return Json(std::move(body));
}

inline void SendJson(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(body.Dump(), "application/json");
}

inline void SendError(httplib::Response& res, const absl::Status& s) {
  SendJson(res, HttpStatus(s.code()), ErrorBody(s));
}

inline absl::StatusOr<Json> Body(const httplib::Request& req) {
  auto j = ParseJson(req.body);
  if (!j.ok()) {
    return absl::InvalidArgumentError(
        StrCat("the request body is not valid JSON: ", j.status().message()));
  }
  if (!j->is_object()) return absl::InvalidArgumentError("the request body must be a JSON object");
  return *std::move(j);
}

// Optional fields of a JSON object, type-checked.
inline absl::Status OptString(const Json& j, std::string_view key, std::string* out) {
  const Json* v = j.Find(key);
  if (v == nullptr || v->is_null()) return absl::OkStatus();
  if (!v->is_string()) return absl::InvalidArgumentError(StrCat("'", key, "' must be a string"));
  *out = v->as_string();
  return absl::OkStatus();
}
inline absl::Status OptNumber(const Json& j, std::string_view key, double* out) {
  const Json* v = j.Find(key);
  if (v == nullptr || v->is_null()) return absl::OkStatus();
  if (!v->is_number()) return absl::InvalidArgumentError(StrCat("'", key, "' must be a number"));
  *out = v->as_number();
  return absl::OkStatus();
}
inline absl::Status OptBool(const Json& j, std::string_view key, bool* out) {
  const Json* v = j.Find(key);
  if (v == nullptr || v->is_null()) return absl::OkStatus();
  if (!v->is_bool()) return absl::InvalidArgumentError(StrCat("'", key, "' must be true or false"));
  *out = v->as_bool();
  return absl::OkStatus();
}
inline absl::Status OptCount(const Json& j, std::string_view key, uint32_t* out) {
  double d = -1;
  RETURN_IF_ERROR(OptNumber(j, key, &d));
  if (d == -1) return absl::OkStatus();
  if (d < 0 || d > 1e9 || d != std::floor(d)) {
    return absl::InvalidArgumentError(StrCat("'", key, "' must be a non-negative integer"));
  }
  *out = static_cast<uint32_t>(d);
  return absl::OkStatus();
}

}  // namespace quiver::server::http_internal

#endif  // QUIVER_SERVER_HTTP_INTERNAL_H_
