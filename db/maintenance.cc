// Engine: index upkeep after writes (postings and HNSW checkpoints,
// compaction) and the background catch-up after a restart.
#include <ostream>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/mutex.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "db/collection.h"
#include "db/engine.h"
#include "db/internal.h"

namespace quiver::db {

using internal::Quoted;

void Engine::CatchUp() {
  // Vectors per step: the collection's writers wait for one step (about a
  // second at 1M x 128-d on two cores).
  constexpr size_t kChunk = 2000;
  for (const auto& c : AllCollections()) {
    if (c->config().index != storage::IndexKind::kHnsw) continue;
    while (!stopping_.load()) {
      MutexLock wl(&c->write_mu);
      if (c->dropped) break;
      NamespaceState* state = nullptr;
      std::string ns;
      std::vector<uint64_t> labels;
      std::vector<float> vectors;
      {
        ReaderMutexLock l(&c->mu);
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
      state->index->UpsertBatch(labels, vectors.data(), &search_pool_);
      c->counters.vectors_indexed.fetch_add(labels.size(), std::memory_order_relaxed);
      state->inserts_since_checkpoint += labels.size();
      bool done;
      {
        MutexLock l(&c->mu);
        for (uint64_t label : labels) state->catchup->Remove(label);
        done = state->catchup->size() == 0;
        if (done) state->catchup.reset();
      }
      if (done) {
        Log(LogLevel::kInfo, "hnsw index caught up",
            {{"collection", c->config().name}, {"namespace", ns}});
        MaintainIndex(*c, ns, state);
      }
      Recharge(*c);
    }
  }
}

void Engine::CheckpointPostings(Collection& c, std::string_view ns, NamespaceState* state) {
  const absl::Time start = absl::Now();
  absl::Status s = absl::OkStatus();
  if (state->bm25 != nullptr) {
    s = store_->ReplaceIndexData(c.meta().id, ns, text::Bm25Index::kStoreTag,
                                 [&](KvSink& out) { return state->bm25->Save(out); });
  }
  if (s.ok()) {
    s = store_->ReplaceIndexData(c.meta().id, ns, text::SparseIndex::kStoreTag,
                                 [&](KvSink& out) { return state->sparse->Save(out); });
  }
  if (!s.ok()) {
    Log(LogLevel::kError, "postings checkpoint failed",
        {{"collection", c.config().name}, {"namespace", ns}, {"error", s.ToString()}});
    return;
  }
  state->postings_changes = 0;
  c.counters.checkpoints.fetch_add(1, std::memory_order_relaxed);
  Log(LogLevel::kInfo, "postings checkpoint written",
      {{"collection", c.config().name},
       {"namespace", ns},
       {"ms", absl::ToInt64Milliseconds(absl::Now() - start)}});
}

void Engine::MaintainIndex(Collection& c, std::string_view ns, NamespaceState* state) {
  if (state == nullptr) return;
  const uint64_t docs =
      (state->bm25 != nullptr ? state->bm25->doc_count() : 0) + state->sparse->doc_count();
  if (state->postings_changes > 0 &&
      state->postings_changes >= std::max<uint64_t>(options_.checkpoint_min_inserts, docs / 4)) {
    CheckpointPostings(c, ns, state);
  }
  ann::VectorIndex* index = state->index.get();
  if (!index->checkpointed()) return;
  // The index's own rule says when deleted entries are worth a rebuild.
  // The rebuilt graph exists next to the old one until it replaces it, so
  // a compaction needs room for the live part; without it, it waits.
  auto room_to_compact = [&]() -> absl::StatusOr<MemoryReservation> {
    const MemoryAmounts copy = IndexMemory(*index, index->size());
    auto room = budget_->Reserve(copy, StrCat("compacting the graph of namespace ", Quoted(ns),
                                              " of collection ", Quoted(c.config().name)));
    if (!room.ok() && !state->compaction_deferred) {
      Log(LogLevel::kWarning, "compaction waits for memory",
          {{"collection", c.config().name},
           {"namespace", ns},
           {"error", room.status().ToString()}});
    }
    state->compaction_deferred = !room.ok();
    return room;
  };
  absl::StatusOr<MemoryReservation> room;  // Held while compacting.
  if (index->NeedsCompaction() && (room = room_to_compact()).ok()) {
    const absl::Time start = absl::Now();
    std::unique_ptr<ann::VectorIndex> fresh = index->Compact(&search_pool_);
    c.counters.compactions.fetch_add(1, std::memory_order_relaxed);
    Log(LogLevel::kInfo, "vector index compacted",
        {{"collection", c.config().name},
         {"namespace", ns},
         {"live", fresh->size()},
         {"dropped", index->stored_count() - index->size()},
         {"ms", absl::ToInt64Milliseconds(absl::Now() - start)}});
    {
      MutexLock l(&c.mu);
      state->index = std::move(fresh);
    }
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
  const ann::VectorIndex* index = state->index.get();
  absl::Status s = index_files_.WriteAtomically(
      c.meta().id, ns, [&](std::ostream& out) { return index->Save(out); });
  if (!s.ok()) {
    Log(LogLevel::kError, "index checkpoint failed",
        {{"collection", c.config().name}, {"namespace", ns}, {"error", s.ToString()}});
    return;
  }
  state->inserts_since_checkpoint = 0;
  c.counters.checkpoints.fetch_add(1, std::memory_order_relaxed);
  Log(LogLevel::kInfo, "index checkpoint written",
      {{"collection", c.config().name},
       {"namespace", ns},
       {"nodes", index->stored_count()},
       {"ms", absl::ToInt64Milliseconds(absl::Now() - start)}});
}

}  // namespace quiver::db
