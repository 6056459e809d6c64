#include "server/collection.h"

namespace quiver::server {

ann::Metric ToAnnMetric(storage::MetricKind m) {
  switch (m) {
    case storage::MetricKind::kDot: return ann::Metric::kDot;
    case storage::MetricKind::kL2: return ann::Metric::kL2;
    case storage::MetricKind::kCosine: break;
  }
  return ann::Metric::kCosine;
}

void Collection::ApplyPut(std::string_view ns, uint64_t internal_id, storage::Record record) {
  auto it = namespaces_.find(ns);
  if (it == namespaces_.end()) {
    it = namespaces_
             .emplace(std::string(ns), std::make_unique<NamespaceState>(
                                           config().dimension, ToAnnMetric(config().metric)))
             .first;
  }
  NamespaceState& state = *it->second;
  state.index.Upsert(internal_id, record.values);
  state.internal_of[record.id] = internal_id;
  state.entries[internal_id] =
      NamespaceState::Entry{std::move(record.id), std::move(record.metadata)};
}

void Collection::ApplyDelete(std::string_view ns, std::string_view id) {
  auto it = namespaces_.find(ns);
  if (it == namespaces_.end()) return;
  NamespaceState& state = *it->second;
  auto idit = state.internal_of.find(id);
  if (idit == state.internal_of.end()) return;
  state.index.Remove(idit->second);
  state.entries.erase(idit->second);
  state.internal_of.erase(idit);
  if (state.entries.empty()) namespaces_.erase(it);
}

void Collection::ApplyDeleteNamespace(std::string_view ns) {
  auto it = namespaces_.find(ns);
  if (it != namespaces_.end()) namespaces_.erase(it);
}

const NamespaceState* Collection::FindNamespace(std::string_view ns) const {
  auto it = namespaces_.find(ns);
  return it == namespaces_.end() ? nullptr : it->second.get();
}

std::optional<uint64_t> Collection::InternalId(std::string_view ns, std::string_view id) const {
  const NamespaceState* state = FindNamespace(ns);
  if (state == nullptr) return std::nullopt;
  auto it = state->internal_of.find(id);
  if (it == state->internal_of.end()) return std::nullopt;
  return it->second;
}

uint64_t Collection::record_count() const {
  uint64_t n = 0;
  for (const auto& [name, state] : namespaces_) n += state->entries.size();
  return n;
}

}  // namespace quiver::server
