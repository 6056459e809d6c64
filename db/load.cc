// Engine: start-up reconciliation of a collection: records from the store,
// index checkpoints and postings checkpoints brought up to date with them.
#include <istream>
#include <map>

#include "absl/status/statusor.h"
#include "ann/flat_index.h"
#include "ann/vector_index.h"
#include "common/log.h"
#include "common/mutex.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "db/collection.h"
#include "db/engine.h"
#include "db/internal.h"

namespace quiver::db {

using internal::Quoted;
using storage::CollectionMeta;
using storage::StoredRecord;

absl::Status Engine::LoadCollection(const CollectionMeta& meta) {
  auto c = std::make_shared<Collection>(meta, ScratchDir());
  const bool hnsw = meta.config.index == storage::IndexKind::kHnsw;
  uint64_t next_label = 1;
  // Vectors written after the last checkpoint, per namespace, to insert in
  // parallel once the scan is done.
  struct Pending {
    std::vector<uint64_t> labels;
    std::vector<float> vectors;
  };
  std::map<std::string, Pending, std::less<>> pending;
  MutexLock wl(&c->write_mu);
  MutexLock l(&c->mu);
  // What the collection holds so far must fit in the memory budget: checked
  // every kCheckEvery records, so a collection too big for it stops loading
  // within one step of the limit instead of exhausting memory.
  constexpr uint64_t kCheckEvery = 4096;
  uint64_t scanned = 0;
  const std::string loading = StrCat("loading collection ", Quoted(meta.config.name));
  auto check_fits = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS -> absl::Status {
    MemoryAmounts held = c->Memory();
    for (const auto& [ns, p] : pending) {
      At(held, MemoryPart::kVectors) += p.vectors.size() * sizeof(float);
    }
    return budget_->CheckFits(held, loading);
  };
  RETURN_IF_ERROR(store_->ScanCollection(
      meta.id, [&](std::string_view ns, StoredRecord stored) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        if (++scanned % kCheckEvery == 0) RETURN_IF_ERROR(check_fits());
        if (stored.record.values.size() != meta.config.dimension) {
          return absl::DataLossError(
              StrCat("record ", Quoted(stored.record.id), " has the wrong dimension"));
        }
        NamespaceState* state = c->FindNamespace(ns);
        if (state == nullptr) {
          state = c->GetOrCreate(ns);
          if (hnsw) LoadCheckpoint(meta, ns, state, &next_label);
          LoadPostings(meta, ns, state);
        }
        const uint64_t label = stored.label;
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
    auto find_stale = [&stale, entries = &state->entries](uint64_t label) {
      if (!entries->contains(label)) stale.push_back(label);
    };
    if (state->bm25 != nullptr) state->bm25->ForEachLabel(find_stale);
    state->sparse->ForEachLabel(find_stale);
    for (uint64_t label : stale) {
      state->postings_changes += (state->bm25 != nullptr && state->bm25->Remove(label));
      state->postings_changes += state->sparse->Remove(label);
    }
    if (state->bm25 != nullptr || state->sparse->doc_count() > 0) {
      Log(LogLevel::kInfo, "postings ready",
          {{"collection", meta.config.name},
           {"namespace", ns},
           {"text_docs", state->bm25 != nullptr ? state->bm25->doc_count() : 0},
           {"sparse_docs", state->sparse->doc_count()},
           {"changed", state->postings_changes}});
    }
  }
  if (hnsw) {
    for (const auto& [ns, state] : c->namespaces()) {
      // Checkpointed nodes whose records are gone were deleted after it.
      ann::VectorIndex* index = state->index.get();
      std::vector<uint64_t> stale;
      index->ForEachLabel([&stale, entries = &state->entries](uint64_t label) {
        if (!entries->contains(label)) stale.push_back(label);
      });
      for (uint64_t label : stale) index->Remove(label);
      auto it = pending.find(ns);
      const size_t later = it == pending.end() ? 0 : it->second.labels.size();
      // Searchable at once by exact scan; moved into the graph by the
      // engine's indexer.
      const size_t dim = meta.config.dimension;
      for (size_t i = 0; i < later; ++i) {
        state->AddToBacklog(it->second.labels[i],
                            std::span<const float>(&it->second.vectors[i * dim], dim));
      }
      Log(LogLevel::kInfo, "hnsw index ready",
          {{"collection", meta.config.name},
           {"namespace", ns},
           {"from_checkpoint", index->size()},
           {"to_catch_up", later},
           {"removed", stale.size()}});
    }
  }
  c->next_label = next_label;
  pending.clear();  // Copied into the catch-up indexes.
  RETURN_IF_ERROR(check_fits());
  c->charged = c->Memory();
  budget_->Add(c->charged);
  MutexLock lock(&mu_);
  collections_[meta.config.name] = std::move(c);
  return absl::OkStatus();
}

void Engine::LoadCheckpoint(const CollectionMeta& meta, std::string_view ns, NamespaceState* state,
                            uint64_t* next_label) {
  absl::Status s = index_files_.Read(meta.id, ns, [&](std::istream& in) -> absl::Status {
    ASSIGN_OR_RETURN(
        std::unique_ptr<ann::VectorIndex> index,
        ann::LoadIndexCheckpoint(in, meta.config.hnsw.full_vectors_on_disk ? ScratchDir() : ""));
    if (index->dimension() != meta.config.dimension || index->metric() != meta.config.metric ||
        index->quantization() != meta.config.hnsw.quantization) {
      return absl::DataLossError(
          "checkpoint does not match the collection's dimension, metric or quantization");
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

void Engine::LoadPostings(const CollectionMeta& meta, std::string_view ns, NamespaceState* state) {
  auto scan = [&](char kind) {
    return [this, &meta, ns, kind](const text::InvertedIndex::KvVisitor& visit) {
      return store_->ScanIndexData(meta.id, ns, kind, visit);
    };
  };
  auto report = [&](const absl::Status& s, std::string_view what) {
    if (!s.ok() && !absl::IsNotFound(s)) {
      Log(LogLevel::kWarning, "ignoring unusable postings checkpoint; re-indexing from records",
          {{"collection", meta.config.name},
           {"namespace", ns},
           {"index", what},
           {"error", s.ToString()}});
    }
  };
  if (state->bm25 != nullptr) {
    auto bm25 = text::Bm25Index::Load({meta.config.text.bm25_k1, meta.config.text.bm25_b},
                                      scan(text::Bm25Index::kStoreTag));
    if (bm25.ok()) state->bm25 = *std::move(bm25);
    report(bm25.status(), "text");
  }
  auto sparse = text::SparseIndex::Load(scan(text::SparseIndex::kStoreTag));
  if (sparse.ok()) state->sparse = *std::move(sparse);
  report(sparse.status(), "sparse");
}

}  // namespace quiver::db
