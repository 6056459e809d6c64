#include "client/record_json.h"

#include <cmath>

#include "common/json.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "proto/struct_json.h"

namespace quiver::client {
namespace {

absl::Status Floats(const Json& j, const char* field, google::protobuf::RepeatedField<float>* out) {
  if (!j.is_array()) return absl::InvalidArgumentError(StrCat("\"", field, "\" must be an array"));
  out->Reserve(static_cast<int>(j.as_array().size()));
  for (const Json& e : j.as_array()) {
    if (!e.is_number()) {
      return absl::InvalidArgumentError(StrCat("\"", field, "\" must hold numbers only"));
    }
    out->Add(static_cast<float>(e.as_number()));
  }
  return absl::OkStatus();
}

absl::Status Sparse(const Json& j, v1::SparseValues* out) {
  if (!j.is_object()) return absl::InvalidArgumentError("\"sparse_values\" must be an object");
  for (const auto& [k, v] : j.as_object()) {
    if (k == "values") {
      RETURN_IF_ERROR(Floats(v, "sparse_values.values", out->mutable_values()));
    } else if (k == "indices") {
      if (!v.is_array())
        return absl::InvalidArgumentError("\"sparse_values.indices\" must be an array");
      for (const Json& e : v.as_array()) {
        if (!e.is_number() || e.as_number() < 0 || e.as_number() > 4294967295.0 ||
            e.as_number() != std::floor(e.as_number())) {
          return absl::InvalidArgumentError(
              "\"sparse_values.indices\" must hold integers in 0..4294967295");
        }
        out->add_indices(static_cast<uint32_t>(e.as_number()));
      }
    } else {
      return absl::InvalidArgumentError(StrCat("unknown field \"sparse_values.", k, "\""));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseRecordJson(std::string_view line, v1::Record* out) {
  ASSIGN_OR_RETURN(Json j, ParseJson(line));
  if (!j.is_object()) return absl::InvalidArgumentError("a record must be a JSON object");
  for (const auto& [k, v] : j.as_object()) {
    if (k == "id") {
      if (!v.is_string()) return absl::InvalidArgumentError("\"id\" must be a string");
      out->set_id(v.as_string());
    } else if (k == "values") {
      RETURN_IF_ERROR(Floats(v, "values", out->mutable_values()));
    } else if (k == "sparse_values" || k == "sparseValues") {
      RETURN_IF_ERROR(Sparse(v, out->mutable_sparse_values()));
    } else if (k == "metadata") {
      if (!v.is_object()) return absl::InvalidArgumentError("\"metadata\" must be an object");
      JsonToStruct(v, out->mutable_metadata());
    } else if (k == "text") {
      if (!v.is_string()) return absl::InvalidArgumentError("\"text\" must be a string");
      out->set_text(v.as_string());
    } else {
      return absl::InvalidArgumentError(
          StrCat("unknown field \"", k, "\"; expected id, values, sparse_values, metadata, text"));
    }
  }
  return absl::OkStatus();
}

}  // namespace quiver::client
