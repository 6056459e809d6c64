// Engine: reads that are not searches (fetch, id listing with pagination
// tokens, stats, namespaces).
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "common/log.h"
#include "common/mutex.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "db/collection.h"
#include "db/engine.h"
#include "db/internal.h"
#include "db/validate.h"

namespace quiver::db {

using internal::NamespaceNotFound;
using storage::StoredRecord;

absl::StatusOr<FetchResult> Engine::Fetch(std::string_view collection, std::string_view ns,
                                          const std::vector<std::string>& ids) {
  ASSIGN_OR_RETURN(auto c, Find(collection));
  RETURN_IF_ERROR(ValidateNamespace(ns));
  if (ids.empty()) return absl::InvalidArgumentError("fetch needs at least one id");
  if (ids.size() > options_.limits.max_fetch_ids) {
    return absl::InvalidArgumentError(StrCat("fetch asks for ", ids.size(), " ids; the limit is ",
                                             options_.limits.max_fetch_ids));
  }
  {
    ReaderMutexLock l(&c->mu);
    if (!ns.empty() && c->FindNamespace(ns) == nullptr) return NamespaceNotFound(*c, ns);
  }
  FetchResult out;
  for (const std::string& id : ids) {
    if (id.empty()) return absl::InvalidArgumentError("fetch ids must not be empty");
    ASSIGN_OR_RETURN(std::optional<StoredRecord> stored, store_->Get(c->meta().id, ns, id));
    if (stored) {
      out.records.push_back(std::move(stored->record));
    } else {
      out.missing_ids.push_back(id);
    }
  }
  return out;
}

absl::StatusOr<ListIdsResult> Engine::ListIds(std::string_view collection, std::string_view ns,
                                              std::string_view prefix, uint32_t limit,
                                              std::string_view pagination_token) {
  ASSIGN_OR_RETURN(auto c, Find(collection));
  RETURN_IF_ERROR(ValidateNamespace(ns));
  if (limit == 0) limit = 100;
  if (limit > options_.limits.max_list_limit) {
    return absl::InvalidArgumentError(
        StrCat("list limit ", limit, " exceeds ", options_.limits.max_list_limit));
  }
  std::string start_after;
  if (!pagination_token.empty() &&
      !absl::WebSafeBase64Unescape(std::string(pagination_token), &start_after)) {
    return absl::InvalidArgumentError(
        "pagination token is malformed; pass one a response returned");
  }
  {
    ReaderMutexLock l(&c->mu);
    if (!ns.empty() && c->FindNamespace(ns) == nullptr) return NamespaceNotFound(*c, ns);
  }
  ASSIGN_OR_RETURN(std::vector<std::string> ids,
                   store_->ListIds(c->meta().id, ns, prefix, start_after, limit + 1));
  ListIdsResult out;
  if (ids.size() > limit) {
    ids.resize(limit);
    out.next_pagination_token = absl::WebSafeBase64Escape(ids.back());
  }
  out.ids = std::move(ids);
  return out;
}

absl::StatusOr<StatsResult> Engine::DescribeStats(std::string_view collection,
                                                  const std::optional<Json>& filter_json) {
  ASSIGN_OR_RETURN(auto c, Find(collection));
  storage::Filter filter;
  if (filter_json) {
    ASSIGN_OR_RETURN(filter, storage::Filter::Parse(*filter_json));
  }
  StatsResult out;
  out.dimension = c->config().dimension;
  out.metric = c->config().metric;
  out.index = c->config().index;
  out.index_bytes_per_vector = c->bytes_per_vector();
  ReaderMutexLock l(&c->mu);
  out.memory = c->Memory();
  for (const auto& [name, state] : c->namespaces()) {
    uint64_t count = 0;
    if (filter.MatchesAll()) {
      count = state->entries.size();
    } else {
      for (const auto& [internal, entry] : state->entries) count += filter.Matches(entry.metadata);
    }
    out.namespaces[name].record_count = count;
    out.namespaces[name].memory_bytes = Sum(state->Memory());
    out.total_record_count += count;
    if (state->catchup != nullptr) out.catching_up_count += state->catchup->size();
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> Engine::ListNamespaces(std::string_view collection) {
  ASSIGN_OR_RETURN(auto c, Find(collection));
  ReaderMutexLock l(&c->mu);
  std::vector<std::string> out;
  for (const auto& [name, state] : c->namespaces()) out.push_back(name);
  return out;
}

}  // namespace quiver::db
