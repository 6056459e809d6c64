// Request validation (validate.h) and the engine's shared messages (internal.h).
#include "db/validate.h"

#include <algorithm>
#include <cmath>

#include "common/coding.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "db/collection.h"
#include "db/internal.h"
#include "storage/store.h"

namespace quiver::db {

using storage::CollectionConfig;
using storage::Record;

absl::Status Limits::Validate() const {
  if (max_batch_records < 1 || max_top_k < 1 || max_id_bytes < 1 || max_fetch_ids < 1 ||
      max_list_limit < 1 || max_message_bytes < 1024 || max_document_bytes < 1 ||
      max_document_chunks < 1) {
    return absl::InvalidArgumentError("limits must be positive (message size at least 1024)");
  }
  return absl::OkStatus();
}

absl::Status ValidateNamespace(std::string_view ns) {
  if (ns.size() > storage::kMaxNamespaceBytes) {
    return absl::InvalidArgumentError(
        StrCat("namespace is ", ns.size(), " bytes; the limit is ", storage::kMaxNamespaceBytes));
  }
  if (!IsValidUtf8(ns)) return absl::InvalidArgumentError("namespace is not valid UTF-8");
  return absl::OkStatus();
}

namespace internal {

absl::Status NamespaceNotFound(const Collection& c, std::string_view ns) {
  return absl::NotFoundError(StrCat("namespace ", Quoted(ns), " does not exist in collection ",
                                    Quoted(c.config().name), " (it holds no records)"));
}

absl::Status CollectionGone(std::string_view name) {
  return absl::NotFoundError(StrCat("collection ", Quoted(name), " does not exist"));
}

}  // namespace internal

using internal::Quoted;

absl::Status ValidateSparse(const Limits& lim, std::string_view what, storage::SparseVector* v) {
  storage::SparseVector& sp = *v;
  if (sp.indices.size() != sp.values.size()) {
    return absl::InvalidArgumentError(
        StrCat(what, " has ", sp.indices.size(), " indices but ", sp.values.size(), " values"));
  }
  if (sp.indices.size() > lim.max_sparse_entries) {
    return absl::InvalidArgumentError(StrCat(what, " has ", sp.indices.size(),
                                             " entries; the limit is ", lim.max_sparse_entries));
  }
  if (!std::is_sorted(sp.indices.begin(), sp.indices.end())) {
    std::vector<size_t> order(sp.indices.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return sp.indices[a] < sp.indices[b]; });
    storage::SparseVector sorted;
    for (size_t i : order) {
      sorted.indices.push_back(sp.indices[i]);
      sorted.values.push_back(sp.values[i]);
    }
    sp = std::move(sorted);
  }
  for (size_t i = 0; i < sp.indices.size(); ++i) {
    if (i > 0 && sp.indices[i] == sp.indices[i - 1]) {
      return absl::InvalidArgumentError(StrCat(what, " repeats index ", sp.indices[i]));
    }
    if (!std::isfinite(sp.values[i])) {
      return absl::InvalidArgumentError(StrCat(what, " has a non-finite value"));
    }
    if (std::fabs(sp.values[i]) > storage::kMaxAbsValue) {
      return absl::InvalidArgumentError(StrCat(what, " has value ", sp.values[i], " for index ",
                                               sp.indices[i], "; values must be within +-1e15"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateDense(const CollectionConfig& config, std::string_view what,
                           const std::vector<float>& values) {
  if (values.size() != config.dimension) {
    return absl::InvalidArgumentError(StrCat(what, " has ", values.size(), " values; collection ",
                                             Quoted(config.name), " expects ", config.dimension));
  }
  bool all_zero = true;
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      return absl::InvalidArgumentError(
          StrCat(what, " has a non-finite value (", values[i], ") at position ", i));
    }
    if (std::fabs(values[i]) > storage::kMaxAbsValue) {
      return absl::InvalidArgumentError(StrCat(what, " has value ", values[i], " at position ", i,
                                               "; values must be within +-1e15"));
    }
    all_zero = all_zero && values[i] == 0;
  }
  if (all_zero && config.metric == ann::Metric::kCosine) {
    return absl::InvalidArgumentError(
        StrCat(what, " is all zeros; cosine similarity is undefined for a zero vector"));
  }
  return absl::OkStatus();
}

absl::Status ValidateRecord(const Limits& lim, const CollectionConfig& config, Record* r) {
  if (r->id.empty()) return absl::InvalidArgumentError("record id must not be empty");
  if (r->id.size() > lim.max_id_bytes) {
    return absl::InvalidArgumentError(StrCat(
        "record id of ", r->id.size(), " bytes exceeds the limit of ", lim.max_id_bytes, " bytes"));
  }
  if (!IsValidUtf8(r->id)) return absl::InvalidArgumentError("record id is not valid UTF-8");
  const std::string what = StrCat("vector for id ", Quoted(r->id));
  RETURN_IF_ERROR(ValidateDense(config, what, r->values));

  RETURN_IF_ERROR(ValidateSparse(lim, StrCat("sparse vector for id ", Quoted(r->id)), &r->sparse));
  const size_t md_bytes = storage::MetadataJsonBytes(r->metadata);
  if (md_bytes > lim.max_metadata_bytes) {
    return absl::InvalidArgumentError(StrCat("metadata for id ", Quoted(r->id), " is ", md_bytes,
                                             " bytes; the limit is ", lim.max_metadata_bytes));
  }
  if (r->text.size() > lim.max_text_bytes) {
    return absl::InvalidArgumentError(StrCat("text for id ", Quoted(r->id), " is ", r->text.size(),
                                             " bytes; the limit is ", lim.max_text_bytes));
  }
  if (!IsValidUtf8(r->text)) {
    return absl::InvalidArgumentError(StrCat("text for id ", Quoted(r->id), " is not valid UTF-8"));
  }
  return absl::OkStatus();
}

}  // namespace quiver::db
