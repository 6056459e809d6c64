// Engine: index upkeep after writes (postings and HNSW checkpoints,
// compaction) and the indexer, which moves backlogs into HNSW graphs.
#include <optional>
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

void Engine::WakeIndexer() {
  {
    std::lock_guard<std::mutex> l(indexer_mu_);
    ++indexer_signal_;
  }
  indexer_wake_.notify_one();
}

void Engine::IndexBacklogs() {
  while (!stopping_.load()) {
    uint64_t signal;
    {
      std::lock_guard<std::mutex> l(indexer_mu_);
      signal = indexer_signal_;
    }
    // A chunk per collection and round, so one collection's import does not
    // hold back another's backlog.
    bool worked = false;
    const auto collections =
        indexing_paused_.load() ? std::vector<std::shared_ptr<Collection>>{} : AllCollections();
    for (const auto& c : collections) {
      if (stopping_.load()) return;
      if (c->config().index == storage::IndexKind::kHnsw) worked |= IndexSomeBacklog(*c);
    }
    if (!worked) {
      // Anything written since `signal` was read bumped it: no lost wake-up.
      std::unique_lock<std::mutex> l(indexer_mu_);
      indexer_idle_at_ = signal;
      indexer_idle_.notify_all();
      indexer_wake_.wait(l, [&] { return stopping_.load() || indexer_signal_ != signal; });
    }
  }
  std::lock_guard<std::mutex> l(indexer_mu_);
  indexer_idle_.notify_all();
}

void Engine::PauseIndexing(bool paused) {
  indexing_paused_.store(paused);
  WakeIndexer();
  if (paused) WaitForIndexing();  // Until the indexer's step in flight ends.
}

void Engine::WaitForIndexing() {
  // Writes to a backlog bump the signal before they are acknowledged; the
  // indexer is idle at the current signal only after a round that started
  // after all of them found nothing to do.
  std::unique_lock<std::mutex> l(indexer_mu_);
  indexer_idle_.wait(l, [&] { return stopping_.load() || indexer_idle_at_ == indexer_signal_; });
}

std::optional<Engine::BacklogStep> Engine::IndexBacklogChunk(Collection& c) {
  BacklogStep step;
  // index_mu, not write_mu: writers go on while the chunk is inserted;
  // nothing replaces the graph meanwhile (compaction holds index_mu).
  MutexLock il(&c.index_mu);
  std::vector<uint64_t> labels;
  std::vector<float> vectors;
  {
    ReaderMutexLock l(&c.mu);
    for (const auto& [name, st] : c.namespaces()) {
      if (st->catchup != nullptr) {
        step.state = st;
        step.ns = name;
        break;
      }
    }
    if (step.state == nullptr) return std::nullopt;
    labels = step.state->catchup->SomeLabels(kBacklogChunk);
    const size_t dim = c.config().dimension;
    vectors.reserve(labels.size() * dim);
    for (uint64_t label : labels) {
      const float* v = step.state->catchup->Find(label);
      vectors.insert(vectors.end(), v, v + dim);
    }
  }
  NamespaceState& state = *step.state;
  if (!labels.empty()) state.index->UpsertBatch(labels, vectors.data(), &search_pool_);
  c.counters.vectors_indexed.fetch_add(labels.size(), std::memory_order_relaxed);
  state.inserts_since_checkpoint += labels.size();
  MutexLock l(&c.mu);
  for (uint64_t label : labels) {
    // A label the backlog lost meanwhile was deleted or overwritten while
    // it was being inserted: the graph must not keep it.
    if (!state.catchup->Remove(label)) state.index->Remove(label);
  }
  step.caught_up = state.catchup->size() == 0;
  if (step.caught_up) state.catchup.reset();
  return step;
}

void Engine::FinishBacklogStep(Collection& c, const BacklogStep& step) {
  bool current;
  {
    ReaderMutexLock l(&c.mu);
    current = c.FindNamespace(step.ns) == step.state.get();
  }
  if (!current) return;  // The namespace was deleted meanwhile.
  if (step.caught_up) {
    Log(LogLevel::kInfo, "hnsw backlog indexed",
        {{"collection", c.config().name}, {"namespace", step.ns}});
  }
  MutexLock il(&c.index_mu);
  MaintainGraph(c, step.ns, step.state.get());
}

bool Engine::IndexSomeBacklog(Collection& c) {
  const std::optional<BacklogStep> step = IndexBacklogChunk(c);
  if (!step) return false;
  MutexLock wl(&c.write_mu);
  if (c.dropped) return true;
  FinishBacklogStep(c, *step);
  Recharge(c);
  return true;
}

bool Engine::DrainBacklogs(Collection& c) {
  bool drained = false;
  while (const std::optional<BacklogStep> step = IndexBacklogChunk(c)) {
    FinishBacklogStep(c, *step);
    drained = true;
  }
  if (drained) Recharge(c);
  return drained;
}

bool Engine::ToBacklog(const NamespaceState& state, size_t n) const {
  if (!state.index->concurrent_writes() || options_.index_backlog == 0) return false;
  const size_t backlog = state.catchup != nullptr ? state.catchup->size() : 0;
  if ((n < kBacklogMinBatch && backlog == 0) || backlog + n > options_.index_backlog) return false;
  // The backlog is a second copy of its vectors until they are in the graph.
  // Under a memory budget it may take at most half of the room left, so it
  // never crowds out the writes that follow: those would be refused although
  // indexing frees the room.
  MemoryAmounts copy{};
  At(copy, MemoryPart::kVectors) = 2 * (backlog + n) * state.index->dimension() * sizeof(float);
  return budget_->CheckFits(copy, "the index backlog").ok();
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
  // While the indexer holds the graph, it maintains it after its step.
  if (!c.index_mu.TryLock()) return;
  MaintainGraph(c, ns, state);
  c.index_mu.Unlock();
}

void Engine::MaintainGraph(Collection& c, std::string_view ns, NamespaceState* state) {
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
    state->inserts_since_checkpoint = std::max<uint64_t>(state->inserts_since_checkpoint.load(), 1);
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
