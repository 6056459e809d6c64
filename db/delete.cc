// Engine: deletes by ids, by filter and of whole namespaces.
#include "absl/status/statusor.h"
#include "common/log.h"
#include "common/mutex.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "db/collection.h"
#include "db/engine.h"
#include "db/internal.h"
#include "db/validate.h"
#include "storage/filter.h"

namespace quiver::db {

using internal::CollectionGone;
using internal::NamespaceNotFound;

absl::StatusOr<uint64_t> Engine::DeleteWhere(Collection& c, std::string_view ns,
                                             const storage::Filter* filter,
                                             const std::vector<std::string>* ids) {
  MutexLock wl(&c.write_mu);
  if (c.dropped) return CollectionGone(c.config().name);
  std::vector<std::string> doomed;
  bool whole_namespace = false;
  {
    ReaderMutexLock l(&c.mu);
    const NamespaceState* state = c.FindNamespace(ns);
    if (state == nullptr) {
      if (ns.empty()) return 0;
      return NamespaceNotFound(c, ns);
    }
    if (ids != nullptr) {
      for (const std::string& id : *ids) {
        if (state->label_of.contains(id)) doomed.push_back(id);
      }
    } else if (filter != nullptr && !filter->MatchesAll()) {
      for (const auto& [internal, entry] : state->entries) {
        if (filter->Matches(entry.metadata)) doomed.push_back(entry.id);
      }
    } else {
      whole_namespace = true;
      for (const auto& [internal, entry] : state->entries) doomed.push_back(entry.id);
    }
  }
  if (doomed.empty()) return 0;
  storage::RecordBatch batch = store_->NewBatch();
  if (whole_namespace) {
    batch.DeleteNamespace(c.meta().id, ns);
  } else {
    for (const std::string& id : doomed) batch.Delete(c.meta().id, ns, id);
  }
  RETURN_IF_ERROR(store_->Write(&batch));
  {
    MutexLock l(&c.mu);
    if (whole_namespace) {
      c.ApplyDeleteNamespace(ns);
    } else {
      for (const std::string& id : doomed) c.ApplyDelete(ns, id);
    }
  }
  AfterDeletes(c, ns);
  return doomed.size();
}

void Engine::AfterDeletes(Collection& c, std::string_view ns) {
  NamespaceState* left;
  {
    ReaderMutexLock l(&c.mu);
    left = c.FindNamespace(ns);
  }
  if (left == nullptr) {
    index_files_.Remove(c.meta().id, ns);
    if (absl::Status s = store_->DeleteIndexData(c.meta().id, ns); !s.ok()) {
      Log(LogLevel::kWarning, "could not drop postings checkpoints",
          {{"collection", c.config().name}, {"namespace", ns}, {"error", s.ToString()}});
    }
  } else {
    MaintainIndex(c, ns, left);
  }
  Recharge(c);
}

absl::StatusOr<uint64_t> Engine::DeleteIds(std::string_view collection, std::string_view ns,
                                           const std::vector<std::string>& ids) {
  ASSIGN_OR_RETURN(auto c, Find(collection));
  RETURN_IF_ERROR(ValidateNamespace(ns));
  if (ids.empty()) return absl::InvalidArgumentError("delete needs at least one id");
  if (ids.size() > options_.limits.max_fetch_ids) {
    return absl::InvalidArgumentError(
        StrCat("delete names ", ids.size(), " ids; the limit is ", options_.limits.max_fetch_ids));
  }
  for (const std::string& id : ids) {
    if (id.empty()) return absl::InvalidArgumentError("delete ids must not be empty");
  }
  return DeleteWhere(*c, ns, nullptr, &ids);
}

absl::StatusOr<uint64_t> Engine::DeleteByFilter(std::string_view collection, std::string_view ns,
                                                const Json& filter_json) {
  ASSIGN_OR_RETURN(auto c, Find(collection));
  RETURN_IF_ERROR(ValidateNamespace(ns));
  ASSIGN_OR_RETURN(storage::Filter filter, storage::Filter::Parse(filter_json));
  if (filter.MatchesAll()) {
    return absl::InvalidArgumentError(
        "delete by filter needs a non-empty filter; use delete_all to empty a namespace");
  }
  return DeleteWhere(*c, ns, &filter, nullptr);
}

absl::StatusOr<uint64_t> Engine::DeleteAll(std::string_view collection, std::string_view ns) {
  ASSIGN_OR_RETURN(auto c, Find(collection));
  RETURN_IF_ERROR(ValidateNamespace(ns));
  return DeleteWhere(*c, ns, nullptr, nullptr);
}

}  // namespace quiver::db
