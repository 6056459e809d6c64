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
#include "server/engine_internal.h"

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

namespace internal {

std::string Quoted(std::string_view s) { return StrCat("\"", s, "\""); }

absl::Status NamespaceNotFound(const Collection& c, std::string_view ns) {
  return absl::NotFoundError(StrCat("namespace ", Quoted(ns), " does not exist in collection ",
                                          Quoted(c.config().name), " (it holds no records)"));
}

absl::Status CollectionGone(std::string_view name) {
  return absl::NotFoundError(StrCat("collection ", Quoted(name), " does not exist"));
}

absl::Status ValidateSparse(const Limits& lim, std::string_view what, storage::SparseVector* v) {
  storage::SparseVector& sp = *v;
  if (sp.indices.size() != sp.values.size()) {
    return absl::InvalidArgumentError(StrCat(what, " has ", sp.indices.size(), " indices but ",
                                             sp.values.size(), " values"));
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
  }
  return absl::OkStatus();
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

}  // namespace internal

using internal::CollectionGone;
using internal::NamespaceNotFound;
using internal::Quoted;
using internal::ValidateDense;
using internal::ValidateSparse;

Engine::Engine(EngineOptions options, std::unique_ptr<storage::Store> store)
    : options_(std::move(options)),
      store_(std::move(store)),
      index_files_(options_.store.path),
      search_pool_(std::max<size_t>(1, options_.search_threads)) {}

Engine::~Engine() {
  stopping_.store(true);
  if (catchup_thread_.joinable()) catchup_thread_.join();
  // Checkpoint what changed, so the next start loads instead of inserting.
  for (const auto& c : AllCollections()) {
    absl::MutexLock wl(&c->write_mu);
    if (c->dropped) continue;
    std::vector<std::pair<std::string, NamespaceState*>> namespaces;
    {
      absl::ReaderMutexLock l(&c->mu);
      for (const auto& [ns, state] : c->namespaces()) namespaces.emplace_back(ns, state.get());
    }
    for (auto& [ns, state] : namespaces) {
      if (state->postings_changes > 0) CheckpointPostings(*c, ns, state);
      if (c->config().index == storage::IndexKind::kHnsw && state->inserts_since_checkpoint > 0) {
        CheckpointNamespace(*c, ns, state);
      }
    }
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

absl::StatusOr<TextEmbedder*> Engine::EmbedderFor(const CollectionConfig& config) const {
  auto it = options_.embedders.find(config.embedding_model);
  if (it == options_.embedders.end()) {
    return absl::FailedPreconditionError(StrCat(
        "collection ", Quoted(config.name), " is bound to embedding model ",
        Quoted(config.embedding_model), ", which this server has not loaded (quiverd --embed-model)"));
  }
  return it->second;
}

absl::Status Engine::EmbedMissingVectors(const Collection& c, std::vector<Record>* records) {
  if (c.config().embedding_model.empty()) return absl::OkStatus();
  std::vector<size_t> which;
  std::vector<std::string> texts;
  for (size_t i = 0; i < records->size(); ++i) {
    Record& r = (*records)[i];
    const std::string_view text = c.TextOf(r);
    if (!r.values.empty() || text.empty()) continue;
    if (text.size() > options_.limits.max_text_bytes) continue;  // ValidateRecord reports it.
    if (!IsValidUtf8(text)) {
      return absl::InvalidArgumentError(StrCat("text for id ", Quoted(r.id), " is not valid UTF-8"));
    }
    which.push_back(i);
    texts.emplace_back(text);
  }
  if (texts.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(TextEmbedder* embedder, EmbedderFor(c.config()));
  ASSIGN_OR_RETURN(auto vectors, embedder->Embed(texts));
  for (size_t k = 0; k < which.size(); ++k) (*records)[which[k]].values = std::move(vectors[k]);
  return absl::OkStatus();
}

absl::StatusOr<CollectionInfo> Engine::CreateCollection(const CollectionConfig& config_in) {
  CollectionConfig config = config_in;
  if (!config.embedding_model.empty()) {
    ASSIGN_OR_RETURN(TextEmbedder* embedder, EmbedderFor(config));
    if (config.dimension == 0) config.dimension = static_cast<uint32_t>(embedder->dimension());
    if (config.dimension != embedder->dimension()) {
      return absl::InvalidArgumentError(StrCat(
          "collection ", Quoted(config.name), " has dimension ", config.dimension,
          " but embedding model ", Quoted(config.embedding_model), " makes vectors of ",
          embedder->dimension()));
    }
  }
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

std::vector<std::shared_ptr<Collection>> Engine::AllCollections() {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<Collection>> all;
  for (const auto& [name, c] : collections_) all.push_back(c);
  return all;
}

std::vector<CollectionInfo> Engine::ListCollections() {
  std::vector<CollectionInfo> out;
  for (const auto& c : AllCollections()) {
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

  RETURN_IF_ERROR(ValidateSparse(lim, StrCat("sparse vector for id ", Quoted(r->id)), &r->sparse));
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
  RETURN_IF_ERROR(EmbedMissingVectors(*c, &records));
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
  // The update's changes to a record's text fields (metadata, text).
  auto apply_text = [&](Record* r) {
    if (set_metadata) {
      for (const auto& [key, value] : *set_metadata) r->metadata.insert_or_assign(key, value);
    }
    if (spec.text) r->text = *spec.text;
  };
  // The record with its new text, re-embedded: the embedding of a text
  // whose vector the model makes (none when it has none or is empty).
  auto embed = [&](Record r) -> absl::StatusOr<std::vector<float>> {
    r.values.clear();
    std::vector<Record> one;
    one.push_back(std::move(r));
    RETURN_IF_ERROR(EmbedMissingVectors(*c, &one));
    return std::move(one[0].values);
  };
  // When the text behind the vector changes, embed it before taking the
  // write lock (the model is slow; writers should not wait on it). Checked
  // again under the lock: a concurrent write that changed the text means
  // embedding again there.
  std::string embedded_text;
  std::vector<float> embedded;
  if (!spec.values && !c->config().embedding_model.empty() && (spec.text || set_metadata)) {
    ASSIGN_OR_RETURN(std::optional<StoredRecord> before, store_->Get(c->meta().id, ns, spec.id));
    if (before) {
      Record r = before->record;
      const std::string old_text(c->TextOf(r));
      apply_text(&r);
      if (c->TextOf(r) != old_text) {
        embedded_text = std::string(c->TextOf(r));
        ASSIGN_OR_RETURN(embedded, embed(std::move(r)));
      }
    }
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
  bool new_vector = spec.values.has_value();
  const std::string old_text(c->TextOf(r));
  if (spec.values) r.values = std::move(*spec.values);
  if (spec.sparse) r.sparse = std::move(*spec.sparse);
  apply_text(&r);
  if (!new_vector && !c->config().embedding_model.empty() && c->TextOf(r) != old_text) {
    // The text behind the vector changed: its new embedding (made above
    // unless a concurrent write changed the text since).
    std::vector<float> values;
    if (!embedded.empty() && c->TextOf(r) == embedded_text) {
      values = std::move(embedded);
    } else {
      ASSIGN_OR_RETURN(values, embed(r));
    }
    if (!values.empty()) {
      r.values = std::move(values);
      new_vector = true;
    }
  }
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
    NamespaceState* state;
    {
      absl::MutexLock l(&c->mu);
      state = c->FindNamespace(ns);
      c->ApplyFields(state, *internal, std::move(r));
    }
    MaintainIndex(*c, ns, state);
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
    if (absl::Status s = store_->DeleteIndexData(c.meta().id, ns); !s.ok()) {
      Log(LogLevel::kWarning, "could not drop postings checkpoints",
          {{"collection", c.config().name}, {"namespace", ns}, {"error", s.ToString()}});
    }
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
  // The HNSW checkpoints too, so a restored snapshot loads its graphs
  // instead of rebuilding them. A file older or newer than the records is
  // reconciled on load (LoadCollection inserts the nodes it lacks and
  // removes those whose records the snapshot does not have).
  RETURN_IF_ERROR(index_files_.CopyTo(dir.string()));
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
