#include "db/collection.h"

#include "ann/flat_index.h"
#include "ann/hnsw.h"
#include "common/coding.h"
#include "common/status_macros.h"

namespace quiver::db {

std::unique_ptr<ann::VectorIndex> NewIndex(const storage::CollectionConfig& config,
                                           const std::string& scratch_dir) {
  if (config.index == storage::IndexKind::kHnsw) {
    ann::HnswOptions o;
    o.dimension = config.dimension;
    o.metric = config.metric;
    o.m = config.hnsw.m;
    o.ef_construction = config.hnsw.ef_construction;
    o.ef_search = config.hnsw.ef_search;
    o.quantization = config.hnsw.quantization;
    o.oversampling = config.hnsw.oversampling;
    o.rescore = config.hnsw.rescore;
    if (config.hnsw.full_vectors_on_disk) o.full_vectors_dir = scratch_dir;
    return std::make_unique<ann::HnswIndex>(o);
  }
  return std::make_unique<ann::FlatIndex>(config.dimension, config.metric);
}

uint64_t EntryBytes(std::string_view id, const storage::Metadata& metadata) {
  // label_of: a slot (key string, label, control byte) and the key's heap
  // bytes; entries: a slot (label, Entry, control byte), the id again, the
  // metadata.
  const uint64_t heap = id.size() < 16 ? 0 : id.size() + 1;
  return sizeof(std::string) + sizeof(uint64_t) + 1 + heap + sizeof(uint64_t) +
         sizeof(NamespaceState::Entry) + 1 + heap + storage::MetadataMemoryBytes(metadata);
}

MemoryAmounts IndexMemory(const ann::VectorIndex& index, uint64_t vectors) {
  MemoryAmounts m{};
  const uint64_t vector = index.VectorBytesPerVector();
  const uint64_t per = index.BytesPerVector();
  At(m, MemoryPart::kVectors) = vectors * vector;
  At(m, MemoryPart::kGraph) = vectors * (per > vector ? per - vector : 0);
  return m;
}

MemoryAmounts NamespaceState::Memory() const {
  MemoryAmounts m = IndexMemory(*index, index->stored_count());
  if (catchup != nullptr) {
    // The backlog's copy, and what its vectors will take in the graph: the
    // budget admitted them at that cost.
    const MemoryAmounts c = IndexMemory(*catchup, catchup->stored_count());
    const MemoryAmounts g = IndexMemory(*index, catchup->size());
    for (size_t i = 0; i < m.size(); ++i) m[i] += c[i] + g[i];
  }
  At(m, MemoryPart::kPostings) =
      (bm25 != nullptr ? bm25->MemoryBytes() : 0) + sparse->MemoryBytes();
  At(m, MemoryPart::kMetadata) = metadata_bytes;
  return m;
}

void NamespaceState::AddToBacklog(uint64_t label, std::span<const float> vector) {
  if (catchup == nullptr)
    catchup = std::make_unique<ann::FlatIndex>(vector.size(), index->metric());
  catchup->Upsert(label, vector);
}

Collection::Collection(storage::CollectionMeta meta, std::string scratch_dir)
    : meta_(std::move(meta)),
      scratch_dir_(std::move(scratch_dir)),
      write_memory_(IndexMemory(*NewIndex(meta_.config, scratch_dir_), 1)) {
  if (meta_.config.text.enabled) {
    auto a = text::Analyzer::Named(meta_.config.text.analyzer);
    // The catalog only holds validated configs.
    QUIVER_CHECK(a.ok());
    analyzer_ = *std::move(a);
  }
}

std::string_view Collection::TextOf(const storage::Record& record) const {
  const std::string& field = config().text.text_field;
  if (field.empty()) return record.text;
  auto it = record.metadata.find(field);
  if (it == record.metadata.end()) return {};
  const std::string* s = std::get_if<std::string>(&it->second);
  return s == nullptr ? std::string_view() : std::string_view(*s);
}

void Collection::IndexText(NamespaceState* state, uint64_t label, const storage::Record& record) {
  if (state->bm25 == nullptr) return;
  const std::string_view text = TextOf(record);
  const uint64_t fingerprint = Fingerprint64(text);
  uint64_t indexed;
  const bool present = state->bm25->FindFingerprint(label, &indexed);
  if (present ? indexed == fingerprint : text.empty()) return;
  // Record text and string metadata are valid UTF-8 (checked at the edge),
  // so analysis cannot fail here.
  auto terms = analyzer_->Analyze(text);
  state->bm25->Upsert(label, terms.ok() ? *terms : std::vector<std::string>{}, fingerprint);
  ++state->postings_changes;
}

void Collection::IndexSparse(NamespaceState* state, uint64_t label, const storage::Record& record) {
  const storage::SparseVector& v = record.sparse;
  uint64_t indexed;
  const bool present = state->sparse->FindFingerprint(label, &indexed);
  if (present ? indexed == text::SparseIndex::Fingerprint(v.indices, v.values) : v.empty()) return;
  state->sparse->Upsert(label, v.indices, v.values);
  ++state->postings_changes;
}

void Collection::UnindexPostings(NamespaceState* state, uint64_t label) {
  if (state->bm25 != nullptr) state->postings_changes += state->bm25->Remove(label);
  state->postings_changes += state->sparse->Remove(label);
}

NamespaceState* Collection::GetOrCreate(std::string_view ns) {
  auto it = namespaces_.find(ns);
  if (it == namespaces_.end()) {
    auto state = std::make_unique<NamespaceState>();
    state->index = NewIndex(config(), scratch_dir_);
    state->sparse = std::make_unique<text::SparseIndex>();
    if (analyzer_) {
      state->bm25 = std::make_unique<text::Bm25Index>(
          text::Bm25Params{config().text.bm25_k1, config().text.bm25_b});
    }
    it = namespaces_.emplace(std::string(ns), std::move(state)).first;
  }
  return it->second.get();
}

MemoryAmounts Collection::MemoryOfWrite(const storage::Record& record) const {
  MemoryAmounts m = write_memory_;
  // A posting per distinct term (at most one per 4 bytes of text, with its
  // document's term id) and per sparse entry, and a document's slot.
  const uint64_t text = analyzer_ ? TextOf(record).size() : 0;
  At(m, MemoryPart::kPostings) =
      text / 4 * 20 + record.sparse.indices.size() * 20 + (text > 0 ? 128 : 0);
  At(m, MemoryPart::kMetadata) = EntryBytes(record.id, record.metadata);
  return m;
}

MemoryAmounts Collection::Memory() const {
  MemoryAmounts m{};
  for (const auto& [name, state] : namespaces_) {
    const MemoryAmounts ns = state->Memory();
    for (size_t i = 0; i < kMemoryParts; ++i) m[i] += ns[i];
  }
  return m;
}

void Collection::ApplyPut(NamespaceState* state, uint64_t label, storage::Record record) {
  auto [it, inserted] = state->label_of.try_emplace(record.id, label);
  if (!inserted && it->second != label) {
    state->index->Remove(it->second);
    if (state->catchup != nullptr) state->catchup->Remove(it->second);
    UnindexPostings(state, it->second);
    ForgetEntry(state, it->second);
    it->second = label;
  }
  if (!state->index->concurrent_writes()) state->index->Upsert(label, record.values);
  IndexText(state, label, record);
  IndexSparse(state, label, record);
  ForgetEntry(state, label);
  state->metadata_bytes += EntryBytes(record.id, record.metadata);
  state->entries[label] = NamespaceState::Entry{std::move(record.id), std::move(record.metadata)};
}

void Collection::ForgetEntry(NamespaceState* state, uint64_t label) {
  auto it = state->entries.find(label);
  if (it == state->entries.end()) return;
  state->metadata_bytes -=
      std::min(state->metadata_bytes, EntryBytes(it->second.id, it->second.metadata));
  state->entries.erase(it);
}

void Collection::ApplyFields(NamespaceState* state, uint64_t label, storage::Record record) {
  IndexText(state, label, record);
  IndexSparse(state, label, record);
  auto it = state->entries.find(label);
  if (it != state->entries.end()) {
    state->metadata_bytes -=
        std::min(state->metadata_bytes, EntryBytes(it->second.id, it->second.metadata));
    state->metadata_bytes += EntryBytes(it->second.id, record.metadata);
    it->second.metadata = std::move(record.metadata);
  }
}

void Collection::ApplyDelete(std::string_view ns, std::string_view id) {
  auto it = namespaces_.find(ns);
  if (it == namespaces_.end()) return;
  NamespaceState& state = *it->second;
  auto idit = state.label_of.find(id);
  if (idit == state.label_of.end()) return;
  state.index->Remove(idit->second);
  if (state.catchup != nullptr) state.catchup->Remove(idit->second);
  UnindexPostings(&state, idit->second);
  ForgetEntry(&state, idit->second);
  state.label_of.erase(idit);
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

std::optional<uint64_t> Collection::LabelOf(std::string_view ns, std::string_view id) const {
  const NamespaceState* state = FindNamespace(ns);
  if (state == nullptr) return std::nullopt;
  auto it = state->label_of.find(id);
  if (it == state->label_of.end()) return std::nullopt;
  return it->second;
}

uint64_t Collection::record_count() const {
  uint64_t n = 0;
  for (const auto& [name, state] : namespaces_) n += state->entries.size();
  return n;
}

}  // namespace quiver::db
