// Engine: loading collections, HNSW checkpoints, compaction and restart catch-up.
#include <istream>
#include <map>
#include <ostream>

#include "absl/time/clock.h"
#include "ann/hnsw.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "server/collection.h"
#include "server/engine.h"
#include "server/engine_internal.h"

namespace quiver::server {

using storage::CollectionMeta;
using storage::StoredRecord;
using internal::Quoted;

void Engine::CatchUp() {
  // Vectors per step: the collection's writers wait for one step (about a
  // second at 1M x 128-d on two cores).
  constexpr size_t kChunk = 2000;
  for (const auto& c : AllCollections()) {
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
          LoadPostings(meta, ns, state);
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
  for (const auto& [ns, state] : c->namespaces()) {
    // Checkpointed postings of records deleted (or re-written under a new
    // label) after the checkpoint. Records re-indexed during the scan were
    // counted as changes there.
    std::vector<uint64_t> stale;
    auto find_stale = [&](uint64_t label) {
      if (!state->entries.contains(label)) stale.push_back(label);
    };
    if (state->bm25 != nullptr) state->bm25->ForEachDoc(find_stale);
    state->sparse->ForEachDoc(find_stale);
    for (uint64_t label : stale) {
      state->postings_changes += (state->bm25 != nullptr && state->bm25->Remove(label));
      state->postings_changes += state->sparse->Remove(label);
    }
    if (state->bm25 != nullptr || state->sparse->doc_count() > 0) {
      Log(LogLevel::kInfo, "postings ready",
          {{"collection", meta.config.name}, {"namespace", ns},
           {"text_docs", state->bm25 != nullptr ? state->bm25->doc_count() : 0},
           {"sparse_docs", state->sparse->doc_count()}, {"changed", state->postings_changes}});
    }
  }
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

namespace {
constexpr char kBm25Kind = 'b';
constexpr char kSparseKind = 's';
}  // namespace

void Engine::LoadPostings(const CollectionMeta& meta, std::string_view ns, NamespaceState* state) {
  auto scan = [&](char kind) {
    return [this, &meta, ns, kind](const text::InvertedIndex::KvVisitor& visit) {
      return store_->ScanIndexData(meta.id, ns, kind, visit);
    };
  };
  auto report = [&](const absl::Status& s, std::string_view what) {
    if (!s.ok() && !absl::IsNotFound(s)) {
      Log(LogLevel::kWarning, "ignoring unusable postings checkpoint; re-indexing from records",
          {{"collection", meta.config.name}, {"namespace", ns}, {"index", what},
           {"error", s.ToString()}});
    }
  };
  if (state->bm25 != nullptr) {
    auto bm25 = text::Bm25Index::Load({meta.config.text.bm25_k1, meta.config.text.bm25_b},
                                      scan(kBm25Kind));
    if (bm25.ok()) state->bm25 = *std::move(bm25);
    report(bm25.status(), "text");
  }
  auto sparse = text::SparseIndex::Load(scan(kSparseKind));
  if (sparse.ok()) state->sparse = *std::move(sparse);
  report(sparse.status(), "sparse");
}

void Engine::CheckpointPostings(Collection& c, std::string_view ns, NamespaceState* state) {
  const absl::Time start = absl::Now();
  absl::Status s = absl::OkStatus();
  if (state->bm25 != nullptr) {
    s = store_->ReplaceIndexData(c.meta().id, ns, kBm25Kind,
                                 [&](KvSink& out) { return state->bm25->Save(out); });
  }
  if (s.ok()) {
    s = store_->ReplaceIndexData(c.meta().id, ns, kSparseKind,
                                 [&](KvSink& out) { return state->sparse->Save(out); });
  }
  if (!s.ok()) {
    Log(LogLevel::kError, "postings checkpoint failed",
        {{"collection", c.config().name}, {"namespace", ns}, {"error", s.ToString()}});
    return;
  }
  state->postings_changes = 0;
  Log(LogLevel::kInfo, "postings checkpoint written",
      {{"collection", c.config().name}, {"namespace", ns},
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
  if (c.config().index != storage::IndexKind::kHnsw) return;
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


}  // namespace quiver::server
