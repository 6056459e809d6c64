// In-memory state of one collection: per namespace, the vector index and the
// id map with each record's metadata (for filters). Records themselves live
// in the store; this is rebuilt from it (and index checkpoints) at start-up.
#ifndef QUIVER_DB_COLLECTION_H_
#define QUIVER_DB_COLLECTION_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "ann/distance.h"
#include "ann/flat_index.h"
#include "ann/vector_index.h"
#include "common/memory_budget.h"
#include "common/mutex.h"
#include "common/strings.h"
#include "storage/collection_config.h"
#include "storage/record.h"
#include "text/analyzer.h"
#include "text/bm25_index.h"
#include "text/sparse_index.h"

namespace quiver::db {

struct NamespaceState {
  struct Entry {
    std::string id;
    storage::Metadata metadata;
  };
  std::unique_ptr<ann::VectorIndex> index;  // Keyed by label.
  // The HNSW backlog: vectors acknowledged but not in the graph yet (bulk
  // upserts, EngineOptions::index_backlog; after a restart, records written
  // after the checkpoint). Searched exactly (and merged with the graph's
  // answer) until the engine's indexer has moved them all into the graph;
  // then null.
  std::unique_ptr<ann::FlatIndex> catchup;
  // BM25 over each record's text (collections with text enabled) and the
  // records' sparse vectors. Saved in the store (postings checkpoints); at
  // start-up loaded and brought up to date with the records.
  std::unique_ptr<text::Bm25Index> bm25;
  std::unique_ptr<text::SparseIndex> sparse;
  // Documents (re-)indexed or removed in bm25 and sparse since their last
  // checkpoint.
  uint64_t postings_changes = 0;
  absl::flat_hash_map<std::string, uint64_t, StringHash, StringEq> label_of;  // id -> label.
  absl::flat_hash_map<uint64_t, Entry> entries;  // Internal id -> record facts.
  // Vectors inserted since the index was last checkpointed (HNSW only;
  // writers and the indexer both count).
  std::atomic<uint64_t> inserts_since_checkpoint{0};
  // Memory of label_of and entries (ids and metadata), kept as they change.
  uint64_t metadata_bytes = 0;
  // Set while a compaction waits for memory (logged once).
  bool compaction_deferred = false;

  // What the namespace holds in memory, by part (MemoryBudget).
  MemoryAmounts Memory() const;
  // Adds `vector` under `label` to the backlog, created (an exact index with
  // the graph's metric) when there is none.
  void AddToBacklog(uint64_t label, std::span<const float> vector);
};

// Memory one id-map entry holds: the id in both maps and the metadata.
uint64_t EntryBytes(std::string_view id, const storage::Metadata& metadata);

// An empty index of the collection's kind; a quantized one with its full
// vectors on disk maps its scratch files in `scratch_dir`.
std::unique_ptr<ann::VectorIndex> NewIndex(const storage::CollectionConfig& config,
                                           const std::string& scratch_dir);
// What `vectors` vectors of `index`'s kind hold in memory: the vectors (or
// their codes) and the graph.
MemoryAmounts IndexMemory(const ann::VectorIndex& index, uint64_t vectors);

// Locking: writers hold write_mu for the whole write (store, then memory) so
// writes to one collection apply in order, and take mu exclusively only to
// change the maps (and a flat index or a backlog). HNSW indexes take inserts
// while readers search, so a writer inserts vectors before taking mu;
// readers skip labels the maps do not know yet. Readers take mu shared.
// The engine's indexer moves backlogs into graphs holding index_mu (not
// write_mu, so writers go on meanwhile); whatever needs a graph without
// concurrent inserts (checkpoints, compaction) holds write_mu and index_mu.
class Collection {
 public:
  // scratch_dir: for the scratch files of quantized indexes whose full
  // vectors live on disk.
  Collection(storage::CollectionMeta meta, std::string scratch_dir);

  const storage::CollectionMeta& meta() const { return meta_; }
  const storage::CollectionConfig& config() const { return meta_.config; }

  Mutex write_mu;
  Mutex index_mu ABSL_ACQUIRED_AFTER(write_mu);
  Mutex mu ABSL_ACQUIRED_AFTER(write_mu, index_mu);

  // Counters for /metrics, since start-up.
  struct Counters {
    std::atomic<uint64_t> vectors_indexed{0};  // Vectors put into an index.
    std::atomic<uint64_t> queries{0};          // Queries received.
    std::atomic<uint64_t> compactions{0};      // Vector index rebuilds.
    std::atomic<uint64_t> checkpoints{0};      // Index and postings checkpoints.
  };
  mutable Counters counters;

  bool dropped ABSL_GUARDED_BY(write_mu) = false;
  // What the collection's namespaces held in memory when last counted in
  // the engine's budget (Engine::Recharge).
  MemoryAmounts charged ABSL_GUARDED_BY(write_mu){};
  uint64_t next_label ABSL_GUARDED_BY(write_mu) = 1;

  // The namespace's state, created (empty) when missing.
  NamespaceState* GetOrCreate(std::string_view ns) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Records `record` under `label`, replacing (and un-indexing) the label the
  // id had before. The vector must already be in a concurrent index or its
  // backlog; a flat index gets it here.
  void ApplyPut(NamespaceState* state, uint64_t label, storage::Record record)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Replaces the metadata and text of an existing record whose vector is
  // unchanged (re-indexing its text).
  void ApplyFields(NamespaceState* state, uint64_t label, storage::Record record)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // The text to index or embed for `record`: its text, or the configured
  // metadata field when that is a string.
  std::string_view TextOf(const storage::Record& record) const;
  // Null unless the collection has text enabled.
  const text::Analyzer* analyzer() const { return analyzer_ ? &*analyzer_ : nullptr; }
  // Removes a record; drops the namespace when it empties.
  void ApplyDelete(std::string_view ns, std::string_view id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  void ApplyDeleteNamespace(std::string_view ns) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  // Null when the namespace holds no records.
  NamespaceState* FindNamespace(std::string_view ns) const ABSL_SHARED_LOCKS_REQUIRED(mu);
  std::optional<uint64_t> LabelOf(std::string_view ns, std::string_view id) const
      ABSL_SHARED_LOCKS_REQUIRED(mu);
  // Shared so that the indexer can finish a step on a namespace deleted
  // meanwhile (its work is then dropped).
  const std::map<std::string, std::shared_ptr<NamespaceState>, std::less<>>& namespaces() const
      ABSL_SHARED_LOCKS_REQUIRED(mu) {
    return namespaces_;
  }
  uint64_t record_count() const ABSL_SHARED_LOCKS_REQUIRED(mu);
  // What every namespace holds in memory, by part.
  MemoryAmounts Memory() const ABSL_SHARED_LOCKS_REQUIRED(mu);
  // Index memory per vector stored (vector and index overhead).
  size_t bytes_per_vector() const {
    return At(write_memory_, MemoryPart::kVectors) + At(write_memory_, MemoryPart::kGraph);
  }
  const std::string& scratch_dir() const { return scratch_dir_; }
  // Memory `record` will take once written (vector, graph, postings, id
  // and metadata), approximately: what a write reserves in the budget.
  MemoryAmounts MemoryOfWrite(const storage::Record& record) const;

 private:
  // (Re-)index the record's text and sparse vector; a label already indexed
  // with the same content (fingerprint) is left as it is, which makes
  // loading records over a postings checkpoint cheap.
  void IndexText(NamespaceState* state, uint64_t label, const storage::Record& record)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  void IndexSparse(NamespaceState* state, uint64_t label, const storage::Record& record)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Erases the label's entry (if any) and its share of metadata_bytes.
  static void ForgetEntry(NamespaceState* state, uint64_t label);
  // Removes a label from the postings indexes.
  static void UnindexPostings(NamespaceState* state, uint64_t label);

  const storage::CollectionMeta meta_;
  std::string scratch_dir_;
  MemoryAmounts write_memory_{};            // One vector's (IndexMemory).
  std::optional<text::Analyzer> analyzer_;  // Set when text is enabled.
  std::map<std::string, std::shared_ptr<NamespaceState>, std::less<>> namespaces_
      ABSL_GUARDED_BY(mu);
};

}  // namespace quiver::db

#endif  // QUIVER_DB_COLLECTION_H_
