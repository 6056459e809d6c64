#include "server/collection.h"

#include "ann/flat_index.h"
#include "ann/hnsw.h"

namespace quiver::server {

ann::Metric ToAnnMetric(storage::MetricKind m) {
  switch (m) {
    case storage::MetricKind::kDot: return ann::Metric::kDot;
    case storage::MetricKind::kL2: return ann::Metric::kL2;
    case storage::MetricKind::kCosine: break;
  }
  return ann::Metric::kCosine;
}

std::unique_ptr<ann::VectorIndex> NewIndex(const storage::CollectionConfig& config) {
  if (config.index == storage::IndexKind::kHnsw) {
    ann::HnswOptions o;
    o.dimension = config.dimension;
    o.metric = ToAnnMetric(config.metric);
    o.m = config.hnsw.m;
    o.ef_construction = config.hnsw.ef_construction;
    o.ef_search = config.hnsw.ef_search;
    return std::make_unique<ann::HnswIndex>(o);
  }
  return std::make_unique<ann::FlatIndex>(config.dimension, ToAnnMetric(config.metric));
}

NamespaceState* Collection::GetOrCreate(std::string_view ns) {
  auto it = namespaces_.find(ns);
  if (it == namespaces_.end()) {
    auto state = std::make_unique<NamespaceState>();
    state->index = NewIndex(config());
    it = namespaces_.emplace(std::string(ns), std::move(state)).first;
  }
  return it->second.get();
}

void Collection::ApplyPut(NamespaceState* state, uint64_t label, storage::Record record) {
  auto [it, inserted] = state->internal_of.try_emplace(record.id, label);
  if (!inserted && it->second != label) {
    state->index->Remove(it->second);
    if (state->catchup != nullptr) state->catchup->Remove(it->second);
    state->entries.erase(it->second);
    it->second = label;
  }
  if (!state->index->concurrent_writes()) state->index->Upsert(label, record.values);
  state->entries[label] = NamespaceState::Entry{std::move(record.id), std::move(record.metadata)};
}

void Collection::ApplyMetadata(NamespaceState* state, uint64_t label,
                               storage::Metadata metadata) {
  auto it = state->entries.find(label);
  if (it != state->entries.end()) it->second.metadata = std::move(metadata);
}

void Collection::ApplyDelete(std::string_view ns, std::string_view id) {
  auto it = namespaces_.find(ns);
  if (it == namespaces_.end()) return;
  NamespaceState& state = *it->second;
  auto idit = state.internal_of.find(id);
  if (idit == state.internal_of.end()) return;
  state.index->Remove(idit->second);
  if (state.catchup != nullptr) state.catchup->Remove(idit->second);
  state.entries.erase(idit->second);
  state.internal_of.erase(idit);
  if (state.entries.empty()) namespaces_.erase(it);
}

void Collection::ApplyDeleteNamespace(std::string_view ns) {
  auto it = namespaces_.find(ns);
  if (it != namespaces_.end()) namespaces_.erase(it);
}

NamespaceState* Collection::FindNamespace(std::string_view ns) const {
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
