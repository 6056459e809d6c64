#include "server/engine.h"

#include <cmath>
#include <filesystem>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "common/strings.h"
#include "absl/time/clock.h"
#include "common/coding.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "ann/hnsw.h"
#include "server/collection.h"

namespace quiver::server {

using storage::CollectionConfig;
using storage::CollectionMeta;
using storage::Record;
using storage::StoredRecord;

absl::Status Limits::Validate() const {
  if (max_batch_records < 1 || max_top_k < 1 || max_id_bytes < 1 || max_fetch_ids < 1 ||
      max_list_limit < 1 || max_message_bytes < 1024) {
    return absl::InvalidArgumentError("limits must be positive (message size at least 1024)");
  }
  return absl::OkStatus();
}

absl::Status ValidateNamespace(std::string_view ns) {
  if (ns.size() > storage::kMaxNamespaceBytes) {
    return absl::InvalidArgumentError(StrCat("namespace is ", ns.size(),
                                                   " bytes; the limit is ",
                                                   storage::kMaxNamespaceBytes));
  }
  if (!IsValidUtf8(ns)) return absl::InvalidArgumentError("namespace is not valid UTF-8");
  return absl::OkStatus();
}

namespace {

std::string Quoted(std::string_view s) { return StrCat("\"", s, "\""); }

absl::Status NamespaceNotFound(const Collection& c, std::string_view ns) {
  return absl::NotFoundError(StrCat("namespace ", Quoted(ns), " does not exist in collection ",
                                          Quoted(c.config().name), " (it holds no records)"));
}

absl::Status CollectionGone(std::string_view name) {
  return absl::NotFoundError(StrCat("collection ", Quoted(name), " does not exist"));
}

absl::Status ValidateDense(const CollectionConfig& config, std::string_view what,
                           const std::vector<float>& values) {
  if (values.size() != config.dimension) {
    return absl::InvalidArgumentError(StrCat(what, " has ", values.size(),
                                                   " values; collection ", Quoted(config.name),
                                                   " expects ", config.dimension));
  }
  bool all_zero = true;
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      return absl::InvalidArgumentError(
          StrCat(what, " has a non-finite value (", values[i], ") at position ", i));
    }
    all_zero = all_zero && values[i] == 0;
  }
  if (all_zero && config.metric == storage::MetricKind::kCosine) {
    return absl::InvalidArgumentError(StrCat(
        what, " is all zeros; cosine similarity is undefined for a zero vector"));
  }
  return absl::OkStatus();
}

}  // namespace

Engine::Engine(EngineOptions options, std::unique_ptr<storage::Store> store)
    : options_(std::move(options)),
      store_(std::move(store)),
      index_files_(options_.store.path),
      search_pool_(std::max<size_t>(1, options_.search_threads)) {}

Engine::~Engine() {
  stopping_.store(true);
  if (catchup_thread_.joinable()) catchup_thread_.join();
  // Checkpoint what changed, so the next start loads instead of inserting.
  for (const auto& c : [this] {
         absl::MutexLock lock(&mu_);
         std::vector<std::shared_ptr<Collection>> all;
         for (const auto& [name, c] : collections_) all.push_back(c);
         return all;
       }()) {
    if (c->config().index != storage::IndexKind::kHnsw) continue;
    absl::MutexLock wl(&c->write_mu);
    if (c->dropped) continue;
    std::vector<std::pair<std::string, NamespaceState*>> dirty;
    {
      absl::ReaderMutexLock l(&c->mu);
      for (const auto& [ns, state] : c->namespaces()) {
        if (state->inserts_since_checkpoint > 0) dirty.emplace_back(ns, state.get());
      }
    }
    for (auto& [ns, state] : dirty) CheckpointNamespace(*c, ns, state);
  }
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Open(const EngineOptions& options) {
  RETURN_IF_ERROR(options.limits.Validate());
  if (options.search_threads < 1) return absl::InvalidArgumentError("search threads must be >= 1");
  ASSIGN_OR_RETURN(std::unique_ptr<storage::Store> store, storage::Store::Open(options.store));
  std::unique_ptr<Engine> engine(new Engine(options, std::move(store)));
  std::vector<std::string> damaged;
  ASSIGN_OR_RETURN(std::vector<CollectionMeta> metas, engine->store_->LoadCatalog(&damaged));
  for (const CollectionMeta& meta : metas) {
    const absl::Time start = absl::Now();
    absl::Status s = engine->LoadCollection(meta);
    if (!s.ok()) {
      Log(LogLevel::kError, "collection failed to load; not served",
          {{"collection", meta.config.name}, {"error", s.ToString()}});
      damaged.push_back(meta.config.name);
      continue;
    }
    Log(LogLevel::kInfo, "collection loaded",
        {{"collection", meta.config.name},
         {"ms", absl::ToInt64Milliseconds(absl::Now() - start)}});
  }
  {
    absl::MutexLock lock(&engine->mu_);
    engine->damaged_ = std::move(damaged);
  }
  Engine* raw = engine.get();
  engine->catchup_thread_ = std::thread([raw] { raw->CatchUp(); });
  return engine;
}

void Engine::CatchUp() {
  // Vectors per step: the collection's writers wait for one step (about a
  // second at 1M x 128-d on two cores).
  constexpr size_t kChunk = 2000;
  std::vector<std::shared_ptr<Collection>> all;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, c] : collections_) all.push_back(c);
  }
  for (const auto& c : all) {
    if (c->config().index != storage::IndexKind::kHnsw) continue;
    while (!stopping_.load()) {
      absl::MutexLock wl(&c->write_mu);
      if (c->dropped) break;
      NamespaceState* state = nullptr;
      std::string ns;
      std::vector<uint64_t> labels;
      std::vector<float> vectors;
      {
        absl::ReaderMutexLock l(&c->mu);
        for (const auto& [name, st] : c->namespaces()) {
          if (st->catchup != nullptr) {
            state = st.get();
            ns = name;
            break;
          }
        }
        if (state == nullptr) break;
        labels = state->catchup->SomeLabels(kChunk);
        for (uint64_t label : labels) {
          const float* v = state->catchup->Find(label);
          vectors.insert(vectors.end(), v, v + c->config().dimension);
        }
      }
      static_cast<ann::HnswIndex*>(state->index.get())
          ->UpsertBatch(labels, vectors.data(), &search_pool_);
      state->inserts_since_checkpoint += labels.size();
      bool done;
      {
        absl::MutexLock l(&c->mu);
        for (uint64_t label : labels) state->catchup->Remove(label);
        done = state->catchup->size() == 0;
        if (done) state->catchup.reset();
      }
      if (done) {
        Log(LogLevel::kInfo, "hnsw index caught up", {{"collection", c->config().name}, {"namespace", ns}});
        MaintainIndex(*c, ns, state);
      }
    }
  }
}

absl::Status Engine::LoadCollection(const CollectionMeta& meta) {
  auto c = std::make_shared<Collection>(meta);
  const bool hnsw = meta.config.index == storage::IndexKind::kHnsw;
  uint64_t next_label = 1;
  // Vectors written after the last checkpoint, per namespace, to insert in
  // parallel once the scan is done.
  struct Pending {
    std::vector<uint64_t> labels;
    std::vector<float> vectors;
  };
  std::map<std::string, Pending, std::less<>> pending;
  absl::MutexLock wl(&c->write_mu);
  absl::MutexLock l(&c->mu);
  RETURN_IF_ERROR(store_->ScanCollection(
      meta.id, [&](std::string_view ns, StoredRecord stored) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        if (stored.record.values.size() != meta.config.dimension) {
          return absl::DataLossError(StrCat("record ", Quoted(stored.record.id),
                                                  " has the wrong dimension"));
        }
        NamespaceState* state = c->FindNamespace(ns);
        if (state == nullptr) {
          state = c->GetOrCreate(ns);
          if (hnsw) LoadCheckpoint(meta, ns, state, &next_label);
        }
        const uint64_t label = stored.internal_id;
        next_label = std::max(next_label, label + 1);
        if (hnsw && !state->index->Contains(label)) {
          Pending& p = pending[std::string(ns)];
          p.labels.push_back(label);
          p.vectors.insert(p.vectors.end(), stored.record.values.begin(),
                           stored.record.values.end());
        }
        c->ApplyPut(state, label, std::move(stored.record));
        return absl::OkStatus();
      }));
  if (hnsw) {
    for (const auto& [ns, state] : c->namespaces()) {
      // Checkpointed nodes whose records are gone were deleted after it.
      auto* index = static_cast<ann::HnswIndex*>(state->index.get());
      std::vector<uint64_t> stale;
      index->ForEachLabel([&](uint64_t label) {
        if (!state->entries.contains(label)) stale.push_back(label);
      });
      for (uint64_t label : stale) index->Remove(label);
      auto it = pending.find(ns);
      const size_t later = it == pending.end() ? 0 : it->second.labels.size();
      if (later > 0) {
        // Searchable at once by exact scan; moved into the graph in the
        // background (CatchUp).
        state->catchup = std::make_unique<ann::FlatIndex>(meta.config.dimension,
                                                          ToAnnMetric(meta.config.metric));
        const size_t dim = meta.config.dimension;
        for (size_t i = 0; i < later; ++i) {
          state->catchup->Upsert(it->second.labels[i],
                                 std::span<const float>(&it->second.vectors[i * dim], dim));
        }
      }
      Log(LogLevel::kInfo, "hnsw index ready",
          {{"collection", meta.config.name}, {"namespace", ns},
           {"from_checkpoint", index->size()}, {"to_catch_up", later}, {"removed", stale.size()}});
    }
  }
  c->next_internal_id = next_label;
  absl::MutexLock lock(&mu_);
  collections_[meta.config.name] = std::move(c);
  return absl::OkStatus();
}

void Engine::LoadCheckpoint(const CollectionMeta& meta, std::string_view ns, NamespaceState* state,
                            uint64_t* next_label) {
  absl::Status s = index_files_.Read(meta.id, ns, [&](std::istream& in) -> absl::Status {
    ASSIGN_OR_RETURN(std::unique_ptr<ann::HnswIndex> index, ann::HnswIndex::Load(in));
    if (index->dimension() != meta.config.dimension ||
        index->metric() != ToAnnMetric(meta.config.metric)) {
      return absl::DataLossError("checkpoint does not match the collection's dimension or metric");
    }
    *next_label = std::max(*next_label, index->LabelWatermark());
    state->index = std::move(index);
    return absl::OkStatus();
  });
  if (!s.ok() && !absl::IsNotFound(s)) {
    Log(LogLevel::kWarning, "ignoring unusable index checkpoint; rebuilding from records",
        {{"collection", meta.config.name}, {"namespace", ns}, {"error", s.ToString()}});
  }
}

void Engine::MaintainIndex(Collection& c, std::string_view ns, NamespaceState* state) {
  if (c.config().index != storage::IndexKind::kHnsw || state == nullptr) return;
  auto* index = static_cast<ann::HnswIndex*>(state->index.get());
  // Compaction: once half the nodes are deleted, rebuild from the live ones.
  // Each rebuild follows as many deletions as it keeps nodes, so its cost
  // per deletion is constant.
  if (index->node_count() >= 1000 && index->deleted_count() * 2 >= index->node_count()) {
    const absl::Time start = absl::Now();
    std::unique_ptr<ann::HnswIndex> fresh = index->Compact(&search_pool_);
    Log(LogLevel::kInfo, "hnsw index compacted",
        {{"collection", c.config().name}, {"namespace", ns}, {"live", fresh->size()},
         {"dropped", index->deleted_count()},
         {"ms", absl::ToInt64Milliseconds(absl::Now() - start)}});
    {
      absl::MutexLock l(&c.mu);
      state->index = std::move(fresh);
    }
    index = static_cast<ann::HnswIndex*>(state->index.get());
    state->inserts_since_checkpoint = std::max<uint64_t>(state->inserts_since_checkpoint, 1);
    CheckpointNamespace(c, ns, state);
    return;
  }
  if (state->inserts_since_checkpoint >=
      std::max<uint64_t>(options_.checkpoint_min_inserts, index->size() / 4)) {
    CheckpointNamespace(c, ns, state);
  }
}

void Engine::CheckpointNamespace(Collection& c, std::string_view ns, NamespaceState* state) {
  const absl::Time start = absl::Now();
  const auto* index = static_cast<const ann::HnswIndex*>(state->index.get());
  absl::Status s = index_files_.WriteAtomically(
      c.meta().id, ns, [&](std::ostream& out) { return index->Save(out); });
  if (!s.ok()) {
    Log(LogLevel::kError, "index checkpoint failed",
        {{"collection", c.config().name}, {"namespace", ns}, {"error", s.ToString()}});
    return;
  }
  state->inserts_since_checkpoint = 0;
  Log(LogLevel::kInfo, "index checkpoint written",
      {{"collection", c.config().name}, {"namespace", ns}, {"nodes", index->node_count()},
       {"ms", absl::ToInt64Milliseconds(absl::Now() - start)}});
}

absl::StatusOr<std::shared_ptr<Collection>> Engine::Find(std::string_view name) {
  absl::MutexLock lock(&mu_);
  auto it = collections_.find(name);
  if (it == collections_.end()) {
    for (const std::string& d : damaged_) {
      if (d == name) {
        return absl::UnavailableError(StrCat(
            "collection ", Quoted(name), " failed to load at start-up; see the server log"));
      }
    }
    if (name.empty()) return absl::InvalidArgumentError("collection name must not be empty");
    return CollectionGone(name);
  }
  return it->second;
}

absl::StatusOr<CollectionInfo> Engine::CreateCollection(const CollectionConfig& config) {
  RETURN_IF_ERROR(config.Validate());
  {
    absl::MutexLock lock(&mu_);
    if (collections_.contains(config.name)) {
      return absl::AlreadyExistsError(StrCat("collection ", Quoted(config.name),
                                                   " already exists"));
    }
  }
  ASSIGN_OR_RETURN(CollectionMeta meta,
                   store_->CreateCollection(config, absl::ToUnixMillis(absl::Now())));
  absl::MutexLock lock(&mu_);
  collections_[config.name] = std::make_shared<Collection>(meta);
  Log(LogLevel::kInfo, "collection created",
      {{"collection", config.name}, {"dimension", config.dimension},
       {"metric", storage::MetricKindName(config.metric)}});
  return CollectionInfo{meta, 0, 0};
}

absl::StatusOr<CollectionInfo> Engine::GetCollection(std::string_view name) {
  ASSIGN_OR_RETURN(auto c, Find(name));
  absl::ReaderMutexLock l(&c->mu);
  return CollectionInfo{c->meta(), c->record_count(),
                        static_cast<uint32_t>(c->namespaces().size())};
}

std::vector<CollectionInfo> Engine::ListCollections() {
  std::vector<std::shared_ptr<Collection>> all;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, c] : collections_) all.push_back(c);
  }
  std::vector<CollectionInfo> out;
  for (const auto& c : all) {
    absl::ReaderMutexLock l(&c->mu);
    out.push_back(CollectionInfo{c->meta(), c->record_count(),
                                 static_cast<uint32_t>(c->namespaces().size())});
  }
  return out;
}

absl::Status Engine::DropCollection(std::string_view name) {
  ASSIGN_OR_RETURN(auto c, Find(name));
  absl::MutexLock wl(&c->write_mu);
  if (c->dropped) return CollectionGone(name);
  RETURN_IF_ERROR(store_->DropCollection(c->meta()));
  c->dropped = true;
  index_files_.RemoveCollection(c->meta().id);
  absl::MutexLock lock(&mu_);
  collections_.erase(std::string(name));
  Log(LogLevel::kInfo, "collection dropped", {{"collection", name}});
  return absl::OkStatus();
}

absl::Status Engine::ValidateRecord(const CollectionConfig& config, Record* r) const {
  const Limits& lim = options_.limits;
  if (r->id.empty()) return absl::InvalidArgumentError("record id must not be empty");
  if (r->id.size() > lim.max_id_bytes) {
    return absl::InvalidArgumentError(StrCat("record id of ", r->id.size(),
                                                   " bytes exceeds the limit of ",
                                                   lim.max_id_bytes, " bytes"));
  }
  if (!IsValidUtf8(r->id)) return absl::InvalidArgumentError("record id is not valid UTF-8");
  const std::string what = StrCat("vector for id ", Quoted(r->id));
  RETURN_IF_ERROR(ValidateDense(config, what, r->values));

  storage::SparseVector& sp = r->sparse;
  if (sp.indices.size() != sp.values.size()) {
    return absl::InvalidArgumentError(StrCat(
        "sparse vector for id ", Quoted(r->id), " has ", sp.indices.size(), " indices but ",
        sp.values.size(), " values"));
  }
  if (sp.indices.size() > lim.max_sparse_entries) {
    return absl::InvalidArgumentError(StrCat(
        "sparse vector for id ", Quoted(r->id), " has ", sp.indices.size(),
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
      return absl::InvalidArgumentError(StrCat(
          "sparse vector for id ", Quoted(r->id), " repeats index ", sp.indices[i]));
    }
    if (!std::isfinite(sp.values[i])) {
      return absl::InvalidArgumentError(StrCat(
          "sparse vector for id ", Quoted(r->id), " has a non-finite value"));
    }
  }
  const size_t md_bytes = storage::MetadataJsonBytes(r->metadata);
  if (md_bytes > lim.max_metadata_bytes) {
    return absl::InvalidArgumentError(StrCat("metadata for id ", Quoted(r->id), " is ",
                                                   md_bytes, " bytes; the limit is ",
                                                   lim.max_metadata_bytes));
  }
  if (r->text.size() > lim.max_text_bytes) {
    return absl::InvalidArgumentError(StrCat("text for id ", Quoted(r->id), " is ",
                                                   r->text.size(), " bytes; the limit is ",
                                                   lim.max_text_bytes));
  }
  if (!IsValidUtf8(r->text)) {
    return absl::InvalidArgumentError(
        StrCat("text for id ", Quoted(r->id), " is not valid UTF-8"));
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> Engine::Upsert(std::string_view collection, std::string_view ns,
                                      std::vector<Record> records) {
  ASSIGN_OR_RETURN(auto c, Find(collection));
  RETURN_IF_ERROR(ValidateNamespace(ns));
  if (records.empty()) return absl::InvalidArgumentError("upsert has no records");
  if (records.size() > options_.limits.max_batch_records) {
    return absl::InvalidArgumentError(StrCat("upsert has ", records.size(),
                                                   " records; the limit is ",
                                                   options_.limits.max_batch_records,
                                                   " per request"));
  }
  absl::flat_hash_set<std::string_view, StringHash, StringEq> seen;
  for (size_t i = 0; i < records.size(); ++i) {
    RETURN_IF_ERROR(ValidateRecord(c->config(), &records[i]));
    if (!seen.insert(records[i].id).second) {
      return absl::InvalidArgumentError(
          StrCat("id ", Quoted(records[i].id), " appears more than once in the request"));
    }
  }

  absl::MutexLock wl(&c->write_mu);
  if (c->dropped) return CollectionGone(collection);
  // Every write of a vector gets a fresh label, so an index never sees a
  // label's vector change under a reader.
  std::vector<uint64_t> labels(records.size());
  for (uint64_t& label : labels) label = c->next_internal_id++;
  storage::RecordBatch batch = store_->NewBatch();
  StoredRecord stored;
  for (size_t i = 0; i < records.size(); ++i) {
    stored.internal_id = labels[i];
    stored.record = std::move(records[i]);
    batch.Put(c->meta().id, ns, stored);
    records[i] = std::move(stored.record);
  }
  RETURN_IF_ERROR(store_->Write(&batch));
  ApplyWrites(*c, ns, labels, std::move(records));
  return labels.size();
}

void Engine::ApplyWrites(Collection& c, std::string_view ns, const std::vector<uint64_t>& labels,
                         std::vector<Record> records) {
  NamespaceState* state;
  {
    absl::MutexLock l(&c.mu);
    state = c.GetOrCreate(ns);
  }
  if (state->index->concurrent_writes()) {
    // Insert while readers search; they ignore labels the maps lack.
    const size_t dim = c.config().dimension;
    std::vector<float> vectors(records.size() * dim);
    for (size_t i = 0; i < records.size(); ++i) {
      std::copy(records[i].values.begin(), records[i].values.end(), vectors.begin() + i * dim);
    }
    auto* index = static_cast<ann::HnswIndex*>(state->index.get());
    index->UpsertBatch(labels, vectors.data(), &search_pool_);
    state->inserts_since_checkpoint += records.size();
  }
  {
    absl::MutexLock l(&c.mu);
    for (size_t i = 0; i < records.size(); ++i) c.ApplyPut(state, labels[i], std::move(records[i]));
  }
  MaintainIndex(c, ns, state);
}

absl::StatusOr<FetchResult> Engine::Fetch(std::string_view collection, std::string_view ns,
                                          const std::vector<std::string>& ids) {
  ASSIGN_OR_RETURN(auto c, Find(collection));
  RETURN_IF_ERROR(ValidateNamespace(ns));
  if (ids.empty()) return absl::InvalidArgumentError("fetch needs at least one id");
  if (ids.size() > options_.limits.max_fetch_ids) {
    return absl::InvalidArgumentError(StrCat("fetch asks for ", ids.size(),
                                                   " ids; the limit is ",
                                                   options_.limits.max_fetch_ids));
  }
  {
    absl::ReaderMutexLock l(&c->mu);
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

absl::Status Engine::Update(std::string_view collection, std::string_view ns, UpdateSpec spec) {
  ASSIGN_OR_RETURN(auto c, Find(collection));
  RETURN_IF_ERROR(ValidateNamespace(ns));
  if (spec.id.empty()) return absl::InvalidArgumentError("update needs a record id");
  std::optional<storage::Metadata> set_metadata;
  if (spec.set_metadata) {
    ASSIGN_OR_RETURN(set_metadata, storage::MetadataFromJson(*spec.set_metadata));
  }
  absl::MutexLock wl(&c->write_mu);
  if (c->dropped) return CollectionGone(collection);
  std::optional<uint64_t> internal;
  {
    absl::ReaderMutexLock l(&c->mu);
    internal = c->InternalId(ns, spec.id);
  }
  if (!internal) {
    return absl::NotFoundError(StrCat("record ", Quoted(spec.id), " does not exist in namespace ",
                                            Quoted(ns), " of collection ", Quoted(collection)));
  }
  ASSIGN_OR_RETURN(std::optional<StoredRecord> stored, store_->Get(c->meta().id, ns, spec.id));
  if (!stored) return absl::InternalError("record is indexed but missing from the store");
  Record& r = stored->record;
  const bool new_vector = spec.values.has_value();
  if (spec.values) r.values = std::move(*spec.values);
  if (spec.sparse) r.sparse = std::move(*spec.sparse);
  if (set_metadata) {
    for (auto& [key, value] : *set_metadata) r.metadata.insert_or_assign(key, std::move(value));
  }
  if (spec.text) r.text = std::move(*spec.text);
  RETURN_IF_ERROR(ValidateRecord(c->config(), &r));
  if (new_vector) stored->internal_id = c->next_internal_id++;
  storage::RecordBatch batch = store_->NewBatch();
  batch.Put(c->meta().id, ns, *stored);
  RETURN_IF_ERROR(store_->Write(&batch));
  if (new_vector) {
    std::vector<Record> one;
    one.push_back(std::move(r));
    ApplyWrites(*c, ns, {stored->internal_id}, std::move(one));
  } else {
    absl::MutexLock l(&c->mu);
    c->ApplyMetadata(c->FindNamespace(ns), *internal, std::move(r.metadata));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> Engine::DeleteWhere(Collection& c, std::string_view ns,
                                             const storage::Filter* filter,
                                             const std::vector<std::string>* ids) {
  absl::MutexLock wl(&c.write_mu);
  if (c.dropped) return CollectionGone(c.config().name);
  std::vector<std::string> doomed;
  bool whole_namespace = false;
  {
    absl::ReaderMutexLock l(&c.mu);
    const NamespaceState* state = c.FindNamespace(ns);
    if (state == nullptr) {
      if (ns.empty()) return 0;
      return NamespaceNotFound(c, ns);
    }
    if (ids != nullptr) {
      for (const std::string& id : *ids) {
        if (state->internal_of.contains(id)) doomed.push_back(id);
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
  NamespaceState* left;
  {
    absl::MutexLock l(&c.mu);
    if (whole_namespace) {
      c.ApplyDeleteNamespace(ns);
    } else {
      for (const std::string& id : doomed) c.ApplyDelete(ns, id);
    }
    left = c.FindNamespace(ns);
  }
  if (left == nullptr) {
    index_files_.Remove(c.meta().id, ns);
  } else {
    MaintainIndex(c, ns, left);
  }
  return doomed.size();
}

absl::StatusOr<uint64_t> Engine::DeleteIds(std::string_view collection, std::string_view ns,
                                           const std::vector<std::string>& ids) {
  ASSIGN_OR_RETURN(auto c, Find(collection));
  RETURN_IF_ERROR(ValidateNamespace(ns));
  if (ids.empty()) return absl::InvalidArgumentError("delete needs at least one id");
  if (ids.size() > options_.limits.max_fetch_ids) {
    return absl::InvalidArgumentError(StrCat("delete names ", ids.size(),
                                                   " ids; the limit is ",
                                                   options_.limits.max_fetch_ids));
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

absl::StatusOr<ListIdsResult> Engine::ListIds(std::string_view collection, std::string_view ns,
                                              std::string_view prefix, uint32_t limit,
                                              std::string_view pagination_token) {
  ASSIGN_OR_RETURN(auto c, Find(collection));
  RETURN_IF_ERROR(ValidateNamespace(ns));
  if (limit == 0) limit = 100;
  if (limit > options_.limits.max_list_limit) {
    return absl::InvalidArgumentError(StrCat("list limit ", limit, " exceeds ",
                                                   options_.limits.max_list_limit));
  }
  std::string start_after;
  if (!pagination_token.empty() &&
      !absl::WebSafeBase64Unescape(std::string(pagination_token), &start_after)) {
    return absl::InvalidArgumentError("pagination token is malformed; pass one a response returned");
  }
  {
    absl::ReaderMutexLock l(&c->mu);
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
  out.index_bytes_per_vector = NewIndex(c->config())->BytesPerVector();
  absl::ReaderMutexLock l(&c->mu);
  for (const auto& [name, state] : c->namespaces()) {
    uint64_t count = 0;
    if (filter.MatchesAll()) {
      count = state->entries.size();
    } else {
      for (const auto& [internal, entry] : state->entries) count += filter.Matches(entry.metadata);
    }
    out.namespaces[name].record_count = count;
    out.total_record_count += count;
    if (state->catchup != nullptr) out.catching_up_count += state->catchup->size();
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> Engine::ListNamespaces(std::string_view collection) {
  ASSIGN_OR_RETURN(auto c, Find(collection));
  absl::ReaderMutexLock l(&c->mu);
  std::vector<std::string> out;
  for (const auto& [name, state] : c->namespaces()) out.push_back(name);
  return out;
}

std::vector<ann::Hit> Engine::MergeHits(std::vector<ann::Hit> a, const std::vector<ann::Hit>& b,
                                        size_t top_k) {
  // A label moving into the graph may briefly be in both lists.
  absl::flat_hash_set<uint64_t> seen;
  ann::TopK top(top_k);
  for (const std::vector<ann::Hit>* list : {static_cast<const std::vector<ann::Hit>*>(&a), &b}) {
    for (const ann::Hit& h : *list) {
      if (seen.insert(h.label).second) top.Push(h.label, h.score);
    }
  }
  return top.Take();
}

double Engine::EstimateSelectivity(const NamespaceState& state, const storage::Filter& filter) {
  // The hash map's iteration order is unrelated to insertion order, so its
  // first entries are a fair sample.
  size_t seen = 0, kept = 0;
  for (const auto& [label, entry] : state.entries) {
    kept += filter.Matches(entry.metadata);
    if (++seen == kSelectivitySample) break;
  }
  return seen == 0 ? 1.0 : static_cast<double>(kept) / seen;
}

absl::StatusOr<QueryResult> Engine::Query(std::string_view collection, const QueryRequest& req) {
  ASSIGN_OR_RETURN(auto c, Find(collection));
  RETURN_IF_ERROR(ValidateNamespace(req.ns));
  const CollectionConfig& config = c->config();
  if (req.top_k < 1 || req.top_k > options_.limits.max_top_k) {
    return absl::InvalidArgumentError(StrCat("top_k is ", req.top_k, "; it must be in 1..",
                                                   options_.limits.max_top_k));
  }
  if (req.vector.empty() == req.id.empty()) {
    return absl::InvalidArgumentError("a query needs exactly one of vector or id");
  }
  if (!req.vector.empty()) RETURN_IF_ERROR(ValidateDense(config, "query vector", req.vector));
  if (req.ef_search > 10000) {
    return absl::InvalidArgumentError(
        StrCat("ef_search is ", req.ef_search, "; it must be in 0..10000"));
  }
  storage::Filter filter;
  if (req.filter) {
    ASSIGN_OR_RETURN(filter, storage::Filter::Parse(*req.filter));
  }

  QueryResult out;
  std::vector<ann::Hit> hits;
  std::vector<std::pair<std::string, float>> hit_ids;  // Known records, best first.
  {
    absl::ReaderMutexLock l(&c->mu);
    const NamespaceState* state = c->FindNamespace(req.ns);
    if (state == nullptr) {
      if (!req.ns.empty()) return NamespaceNotFound(*c, req.ns);
      if (!req.id.empty()) {
        return absl::NotFoundError(StrCat("query id ", Quoted(req.id), " does not exist"));
      }
      return out;
    }
    ann::LabelFilter known = [&](uint64_t label) { return state->entries.contains(label); };
    std::vector<float> query = req.vector;
    if (!req.id.empty()) {
      if (!state->internal_of.contains(req.id)) {
        return absl::NotFoundError(StrCat("query id ", Quoted(req.id),
                                                " does not exist in namespace ", Quoted(req.ns)));
      }
      ASSIGN_OR_RETURN(std::optional<StoredRecord> stored,
                       store_->Get(c->meta().id, req.ns, req.id));
      if (!stored) return absl::InternalError("record is indexed but missing from the store");
      query = std::move(stored->record.values);
    }
    ann::LabelFilter keep = [&](uint64_t label) {
      auto it = state->entries.find(label);
      return it != state->entries.end() && filter.Matches(it->second.metadata);
    };
    ann::SearchParams params;
    params.top_k = req.top_k;
    params.ef = req.ef_search;
    params.filter = filter.MatchesAll() ? nullptr : &keep;
    params.pool = &search_pool_;
    const ann::VectorIndex& index = *state->index;
    out.exact = req.exact || !index.concurrent_writes() ||
                (!filter.MatchesAll() && EstimateSelectivity(*state, filter) < kExactScanSelectivity);
    auto run = [&] {
      hits = out.exact ? index.SearchExact(query, params) : index.Search(query, params);
      if (state->catchup != nullptr) {
        // Records not in the graph yet (restart catch-up): exact, merged.
        hits = MergeHits(std::move(hits), state->catchup->Search(query, params), req.top_k);
      }
      hit_ids.clear();
      for (const ann::Hit& h : hits) {
        auto it = state->entries.find(h.label);
        if (it != state->entries.end()) hit_ids.emplace_back(it->second.id, h.score);
      }
    };
    run();
    // A concurrent index may hold labels of an insert still in flight (not
    // in the maps yet): they are dropped above. If that left top_k short,
    // search again, skipping them during the walk.
    if (params.filter == nullptr && hit_ids.size() < hits.size() &&
        hit_ids.size() < req.top_k) {
      params.filter = &known;
      run();
    }
    out.scanned_count = out.exact ? index.size() : 0;
  }
  out.matches.reserve(hit_ids.size());
  for (auto& [id, score] : hit_ids) {
    Match m;
    m.id = std::move(id);
    m.score = score;
    if (req.include_values || req.include_metadata) {
      ASSIGN_OR_RETURN(std::optional<StoredRecord> stored, store_->Get(c->meta().id, req.ns, m.id));
      if (!stored) continue;  // Deleted since the search: leave it out.
      if (req.include_values) {
        m.values = std::move(stored->record.values);
        m.sparse = std::move(stored->record.sparse);
      }
      if (req.include_metadata) {
        m.metadata = std::move(stored->record.metadata);
        m.text = std::move(stored->record.text);
      }
    }
    out.matches.push_back(std::move(m));
  }
  return out;
}

absl::StatusOr<std::string> Engine::Snapshot(std::string_view name) {
  std::string chosen(name);
  if (chosen.empty()) {
    chosen = absl::FormatTime("snapshot-%Y%m%dT%H%M%E3SZ", absl::Now(), absl::UTCTimeZone());
  }
  RETURN_IF_ERROR(storage::ValidateCollectionName(chosen).ok()
                      ? absl::OkStatus()
                      : absl::InvalidArgumentError(StrCat(
                            "snapshot name ", Quoted(chosen),
                            " may contain only letters, digits, '_' and '-' (1..64 bytes)")));
  const std::filesystem::path dir =
      std::filesystem::path(options_.store.path) / "snapshots" / chosen;
  std::error_code ec;
  if (std::filesystem::exists(dir, ec)) {
    return absl::AlreadyExistsError(StrCat("snapshot ", Quoted(chosen), " already exists"));
  }
  std::filesystem::create_directories(dir.parent_path(), ec);
  RETURN_IF_ERROR(store_->CreateCheckpoint(dir.string()));
  Log(LogLevel::kInfo, "snapshot written", {{"path", dir.string()}});
  return dir.string();
}

std::vector<std::string> Engine::damaged_collections() const {
  absl::MutexLock lock(&mu_);
  return damaged_;
}

uint64_t Engine::total_record_count() {
  uint64_t n = 0;
  for (const CollectionInfo& info : ListCollections()) n += info.record_count;
  return n;
}

}  // namespace quiver::server
