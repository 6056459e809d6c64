// Engine: the write path (embedding text without vectors, upsert,
// applying acknowledged writes to the in-memory state).
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "common/coding.h"
#include "common/log.h"
#include "common/mutex.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "db/collection.h"
#include "db/engine.h"
#include "db/internal.h"
#include "db/validate.h"

namespace quiver::db {

using internal::CollectionGone;
using internal::Quoted;
using storage::CollectionConfig;
using storage::Record;
using storage::StoredRecord;

absl::StatusOr<TextEmbedder*> Engine::EmbedderFor(const CollectionConfig& config) const {
  auto it = options_.embedders.find(config.embedding_model);
  if (it == options_.embedders.end()) {
    return absl::FailedPreconditionError(
        StrCat("collection ", Quoted(config.name), " is bound to embedding model ",
               Quoted(config.embedding_model),
               ", which this server has not loaded (quiverd --embed-model)"));
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
      return absl::InvalidArgumentError(
          StrCat("text for id ", Quoted(r.id), " is not valid UTF-8"));
    }
    which.push_back(i);
    texts.emplace_back(text);
  }
  if (texts.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(TextEmbedder * embedder, EmbedderFor(c.config()));
  ASSIGN_OR_RETURN(auto vectors, embedder->Embed(texts));
  for (size_t k = 0; k < which.size(); ++k) (*records)[which[k]].values = std::move(vectors[k]);
  return absl::OkStatus();
}

void Engine::Recharge(Collection& c) {
  MemoryAmounts now;
  {
    ReaderMutexLock l(&c.mu);
    now = c.Memory();
  }
  budget_->Adjust(c.charged, now);
  c.charged = now;
}

absl::StatusOr<MemoryReservation> Engine::ReserveWrite(Collection& c,
                                                       std::span<const Record> records,
                                                       std::string_view what) {
  MemoryAmounts need{};
  for (const Record& r : records) {
    const MemoryAmounts one = c.MemoryOfWrite(r);
    for (size_t i = 0; i < kMemoryParts; ++i) need[i] += one[i];
  }
  absl::StatusOr<MemoryReservation> room = budget_->Reserve(need, what);
  // A backlog holds a second copy of its vectors until they are in the
  // graph: room the write may have once it is indexed.
  if (room.ok() || !DrainBacklogs(c)) return room;
  return budget_->Reserve(need, what);
}

absl::StatusOr<size_t> Engine::Upsert(std::string_view collection, std::string_view ns,
                                      std::vector<Record> records) {
  ASSIGN_OR_RETURN(auto c, Find(collection));
  RETURN_IF_ERROR(ValidateNamespace(ns));
  if (records.empty()) return absl::InvalidArgumentError("upsert has no records");
  if (records.size() > options_.limits.max_batch_records) {
    return absl::InvalidArgumentError(StrCat("upsert has ", records.size(),
                                             " records; the limit is ",
                                             options_.limits.max_batch_records, " per request"));
  }
  RETURN_IF_ERROR(EmbedMissingVectors(*c, &records));
  absl::flat_hash_set<std::string_view, StringHash, StringEq> seen;
  for (size_t i = 0; i < records.size(); ++i) {
    RETURN_IF_ERROR(ValidateRecord(options_.limits, c->config(), &records[i]));
    if (!seen.insert(records[i].id).second) {
      return absl::InvalidArgumentError(
          StrCat("id ", Quoted(records[i].id), " appears more than once in the request"));
    }
  }

  MutexLock wl(&c->write_mu);
  if (c->dropped) return CollectionGone(collection);
  // Held until the write is counted in full (ApplyWrites).
  ASSIGN_OR_RETURN(MemoryReservation room,
                   ReserveWrite(*c, records,
                                StrCat("upserting ", records.size(), " records into collection ",
                                       Quoted(collection))));
  // Every write of a vector gets a fresh label, so an index never sees a
  // label's vector change under a reader.
  std::vector<uint64_t> labels(records.size());
  for (uint64_t& label : labels) label = c->next_label++;
  storage::RecordBatch batch = store_->NewBatch();
  StoredRecord stored;
  for (size_t i = 0; i < records.size(); ++i) {
    stored.label = labels[i];
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
  bool to_backlog;
  {
    MutexLock l(&c.mu);
    state = c.GetOrCreate(ns);
    to_backlog = ToBacklog(*state, records.size());
  }
  if (state->index->concurrent_writes() && !to_backlog) {
    // Insert while readers search; they ignore labels the maps lack.
    const size_t dim = c.config().dimension;
    std::vector<float> vectors(records.size() * dim);
    for (size_t i = 0; i < records.size(); ++i) {
      std::copy(records[i].values.begin(), records[i].values.end(), vectors.begin() + i * dim);
    }
    state->index->UpsertBatch(labels, vectors.data(), &search_pool_);
    state->inserts_since_checkpoint += records.size();
  }
  if (!to_backlog) c.counters.vectors_indexed.fetch_add(records.size(), std::memory_order_relaxed);
  {
    MutexLock l(&c.mu);
    if (to_backlog) {
      for (size_t i = 0; i < records.size(); ++i) state->AddToBacklog(labels[i], records[i].values);
    }
    for (size_t i = 0; i < records.size(); ++i) c.ApplyPut(state, labels[i], std::move(records[i]));
  }
  if (to_backlog) WakeIndexer();
  MaintainIndex(c, ns, state);
  Recharge(c);
}

}  // namespace quiver::db
