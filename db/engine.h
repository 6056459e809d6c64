// The database engine: collections, their records in the store and their
// in-memory indexes. It speaks domain types only (no gRPC), validates every
// request and returns absl::Status codes a client can act on. Thread-safe.
#ifndef QUIVER_DB_ENGINE_H_
#define QUIVER_DB_ENGINE_H_

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "ann/search_params.h"
#include "common/json.h"
#include "common/memory_budget.h"
#include "common/mutex.h"
#include "common/thread_pool.h"
#include "db/limits.h"
#include "db/requests.h"
#include "db/text_embedder.h"
#include "storage/collection_config.h"
#include "storage/filter.h"
#include "storage/index_files.h"
#include "storage/record.h"
#include "storage/store.h"

namespace quiver::db {

class Collection;       // collection.h
struct NamespaceState;  // collection.h

struct EngineOptions {
  storage::StoreOptions store;
  Limits limits;
  // Workers for parallel exact scans and HNSW bulk inserts. REQUIRES: >= 1.
  size_t search_threads = 2;
  // An HNSW namespace is checkpointed once max(this, a quarter of its size)
  // vectors were inserted since the last checkpoint, and at shutdown.
  uint64_t checkpoint_min_inserts = 50000;
  // Most vectors per HNSW namespace that may be acknowledged before they
  // are in the graph. An upsert of at least kBacklogMinBatch vectors (or
  // any while a backlog exists) is stored, made searchable by an exact scan
  // of the backlog and acknowledged; the engine's indexer then moves the
  // backlog into the graph with every search thread, while writes go on.
  // Past this many, a writer inserts its vectors into the graph itself
  // before acknowledging (so imports slow to the graph's pace instead of
  // growing the backlog). 0: every write is in the graph when acknowledged.
  uint64_t index_backlog = 1000000;
  // Embedding models by name, for collections bound to one; not owned.
  std::map<std::string, TextEmbedder*, std::less<>> embedders;
  // The server's memory budget, which the collections' vectors, graphs,
  // postings and metadata count against: a write or load that would not
  // fit is refused with RESOURCE_EXHAUSTED. Not owned; null: the engine
  // counts in a budget of its own with no limit.
  MemoryBudget* memory_budget = nullptr;
};

// Query planning for filtered search on an HNSW collection: the filter is
// evaluated on a sample of kSelectivitySample records, giving the share s
// that passes. The graph walk (the filter applied as it goes) expands about
// ef / s nodes to fill its beam with matches, each costing about
// kWalkNodeCost records of the exact scan, which tests every record's
// metadata once and computes distances only for matches. So the exact scan
// answers when s < kWalkNodeCost * ef / records, kept within
// [kMinWalkSelectivity, kMaxExactSelectivity]: below 0.1% the sample holds
// two matches or fewer, and up to 1% small namespaces keep the exact scan.
// Measured on 1M x 128 records (2-core AMD EPYC Zen 3, foundation_bench):
// an expanded node 2.5 us, a scanned record 0.11 us; a filter keeping 2%
// walked in 7.9 ms at recall@10 1.0 where the scan took 113 ms, and a
// fixed 1% threshold sent 1% filters there to the scan.
inline constexpr size_t kSelectivitySample = 2048;
inline constexpr double kWalkNodeCost = 20;
inline constexpr double kMinWalkSelectivity = 0.001;
inline constexpr double kMaxExactSelectivity = 0.01;
// The share of records below which the exact scan answers a filtered query
// on `records` records with beam width `ef`.
inline double ExactScanBelow(size_t records, size_t ef) {
  const double balance =
      kWalkNodeCost * static_cast<double>(ef) / static_cast<double>(std::max<size_t>(records, 1));
  return std::clamp(balance, kMinWalkSelectivity, kMaxExactSelectivity);
}

// Upserts of fewer vectors go into an HNSW graph before they are
// acknowledged unless a backlog exists (EngineOptions::index_backlog): a
// few inserts cost little, and the graph stays current for small writers.
inline constexpr size_t kBacklogMinBatch = 64;
// Vectors the indexer moves from a backlog into a graph per step.
inline constexpr size_t kBacklogChunk = 2000;

class Engine {
 public:
  // Opens the store and loads every collection. A collection that fails to
  // load is reported by damaged_collections() and not served; the others are.
  static absl::StatusOr<std::unique_ptr<Engine>> Open(const EngineOptions& options);
  ~Engine();

  absl::StatusOr<CollectionInfo> CreateCollection(const storage::CollectionConfig& config);
  absl::StatusOr<CollectionInfo> GetCollection(std::string_view name);
  std::vector<CollectionInfo> ListCollections();
  absl::Status DropCollection(std::string_view name);

  // Inserts or replaces all `records` atomically; returns how many.
  absl::StatusOr<size_t> Upsert(std::string_view collection, std::string_view ns,
                                std::vector<storage::Record> records);
  absl::StatusOr<FetchResult> Fetch(std::string_view collection, std::string_view ns,
                                    const std::vector<std::string>& ids);
  // NOT_FOUND when the record does not exist.
  absl::Status Update(std::string_view collection, std::string_view ns, UpdateSpec spec);
  // Each returns the number of records deleted (ids that do not exist are
  // skipped, as Pinecone does).
  absl::StatusOr<uint64_t> DeleteIds(std::string_view collection, std::string_view ns,
                                     const std::vector<std::string>& ids);
  absl::StatusOr<uint64_t> DeleteByFilter(std::string_view collection, std::string_view ns,
                                          const Json& filter);
  absl::StatusOr<uint64_t> DeleteAll(std::string_view collection, std::string_view ns);

  absl::StatusOr<ListIdsResult> ListIds(std::string_view collection, std::string_view ns,
                                        std::string_view prefix, uint32_t limit,
                                        std::string_view pagination_token);
  absl::StatusOr<StatsResult> DescribeStats(std::string_view collection,
                                            const std::optional<Json>& filter);
  absl::StatusOr<std::vector<std::string>> ListNamespaces(std::string_view collection);

  absl::StatusOr<QueryResult> Query(std::string_view collection, const QueryRequest& request);

  // Documents (db/documents.cc). PutDocument stores the document and its
  // chunks and removes the chunks of the version it replaces, in one atomic
  // write: readers and restarts see all of the old version or all of the new.
  absl::StatusOr<PutDocumentResult> PutDocument(std::string_view collection, std::string_view ns,
                                                DocumentWrite doc);
  // NOT_FOUND when absent.
  absl::StatusOr<storage::StoredDocument> GetDocument(std::string_view collection,
                                                      std::string_view ns, std::string_view id);
  absl::StatusOr<ListDocumentsResult> ListDocuments(std::string_view collection,
                                                    std::string_view ns, std::string_view prefix,
                                                    uint32_t limit,
                                                    std::string_view pagination_token);
  // Deletes the document and all of its chunks; returns how many chunks
  // (NOT_FOUND when the document does not exist).
  absl::StatusOr<uint32_t> DeleteDocument(std::string_view collection, std::string_view ns,
                                          std::string_view id);

  // Changes with every write to the collection, also across restarts
  // (storage::Store::CollectionEpoch).
  absl::StatusOr<uint64_t> CollectionEpoch(std::string_view collection);
  // The store's side table, for layers above that keep state durably (the
  // answer cache); see storage::Store::PutSide.
  storage::Store& side_store() { return *store_; }

  // Blocks until every vector acknowledged before the call is in its HNSW
  // graph (no backlog is left) and the graphs are maintained (checkpoints
  // due are written), or the engine stops, or indexing is paused.
  void WaitForIndexing();
  // Stops (true) or resumes the background indexer: while paused, bulk
  // upserts stay in their backlogs (still searchable by exact scan) up to
  // EngineOptions::index_backlog, and WaitForIndexing returns at once.
  void PauseIndexing(bool paused);

  // Point-in-time copy of the database under <data dir>/snapshots/<name>.
  // Graphs that changed are checkpointed first, so a server restored from
  // it (storage::RestoreSnapshot) loads them instead of rebuilding.
  // Returns the path.
  absl::StatusOr<std::string> Snapshot(std::string_view name);
  struct SnapshotInfo {
    std::string name, path;
    int64_t created_unix_ms = 0;
    uint64_t bytes = 0;
  };
  // The snapshots under <data dir>/snapshots, oldest first.
  std::vector<SnapshotInfo> ListSnapshots() const;

  std::vector<std::string> damaged_collections() const;
  MemoryBudget& memory_budget() { return *budget_; }
  const EngineOptions& options() const { return options_; }
  // <data dir>/scratch: memory-mapped scratch files (never the truth).
  std::string ScratchDir() const { return options_.store.path + "/scratch"; }
  uint64_t total_record_count();
  // Size and activity of every collection.
  std::vector<CollectionUsage> Usage();

 private:
  Engine(EngineOptions options, std::unique_ptr<storage::Store> store);
  absl::StatusOr<std::shared_ptr<Collection>> Find(std::string_view name);
  std::vector<std::shared_ptr<Collection>> AllCollections();
  absl::Status LoadCollection(const storage::CollectionMeta& meta);
  // The collection's embedding model; FAILED_PRECONDITION when it is bound
  // to one this server has not loaded.
  absl::StatusOr<TextEmbedder*> EmbedderFor(const storage::CollectionConfig& config) const;
  // Fills the vectors of records that have text but no vector.
  absl::Status EmbedMissingVectors(const Collection& c, std::vector<storage::Record>* records);
  // After deletes in `ns`: drops the namespace's index files when it is
  // gone, or maintains its index. REQUIRES: c.write_mu held.
  void AfterDeletes(Collection& c, std::string_view ns);
  absl::StatusOr<uint64_t> DeleteWhere(Collection& c, std::string_view ns,
                                       const storage::Filter* filter,
                                       const std::vector<std::string>* ids);
  // Applies acknowledged writes of vectors to the in-memory state.
  // REQUIRES: c.write_mu held.
  void ApplyWrites(Collection& c, std::string_view ns, const std::vector<uint64_t>& labels,
                   std::vector<storage::Record> records);
  // Loads the namespace's HNSW checkpoint into `state` if a usable one exists.
  void LoadCheckpoint(const storage::CollectionMeta& meta, std::string_view ns,
                      NamespaceState* state, uint64_t* next_label);
  // Loads the namespace's postings checkpoints (BM25, sparse) if any.
  void LoadPostings(const storage::CollectionMeta& meta, std::string_view ns,
                    NamespaceState* state);
  void CheckpointPostings(Collection& c, std::string_view ns, NamespaceState* state);
  // After writes: checkpoints postings and HNSW graphs that changed enough,
  // compacts graphs with many deleted nodes. REQUIRES: c.write_mu held.
  void MaintainIndex(Collection& c, std::string_view ns, NamespaceState* state);
  // Checkpoints every index and postings list with unsaved changes.
  void CheckpointChanged();
  void CheckpointNamespace(Collection& c, std::string_view ns, NamespaceState* state);
  static double EstimateSelectivity(const NamespaceState& state, const storage::Filter& filter);
  static std::vector<ann::Hit> MergeHits(std::vector<ann::Hit> a, const std::vector<ann::Hit>& b,
                                         size_t top_k);
  // Dense search (graph, exact scan or catch-up merge) for Query.
  // REQUIRES: c.mu held shared.
  absl::Status SearchVectors(const Collection& c, const NamespaceState& state,
                             const QueryRequest& req, const storage::Filter& filter, size_t top_k,
                             QueryResult* out, std::vector<RankedHit>* hits);
  // Adds values and metadata from the store to matches when asked for.
  absl::StatusOr<QueryResult> FillMatches(const Collection& c, const QueryRequest& req,
                                          std::vector<Match> matches, QueryResult out);
  // Counts what the collection holds now in the budget (in place of what
  // it held when last counted). REQUIRES: c.write_mu held.
  void Recharge(Collection& c);
  // Reserves the memory `records` will take once written to `c`;
  // RESOURCE_EXHAUSTED saying what is full when they do not fit.
  // When they do not fit while `c` has a backlog, indexes it first (the
  // backlog's copy of its vectors is freed). REQUIRES: c.write_mu held.
  absl::StatusOr<MemoryReservation> ReserveWrite(Collection& c,
                                                 std::span<const storage::Record> records,
                                                 std::string_view what);
  // Whether a write of `n` vectors to `state` goes to its backlog.
  // REQUIRES: c.mu held (shared is enough).
  bool ToBacklog(const NamespaceState& state, size_t n) const;
  // The indexer thread: moves backlogs into their HNSW graphs, a chunk at
  // a time and collection by collection, until stopping_; sleeps while no
  // backlog exists.
  void IndexBacklogs();
  // Moves one chunk of a backlog of `c` into its graph; false when `c`
  // has none.
  bool IndexSomeBacklog(Collection& c);
  // Moves every backlog of `c` into its graphs now; true when there was
  // one. For writers the budget refuses while a backlog's second copy of
  // its vectors holds the room. REQUIRES: c.write_mu held.
  bool DrainBacklogs(Collection& c);
  struct BacklogStep {
    std::shared_ptr<NamespaceState> state;
    std::string ns;
    bool caught_up = false;  // The backlog is gone.
  };
  // Inserts up to kBacklogChunk vectors of the first backlog of `c` into
  // its graph under c.index_mu; nullopt when `c` has no backlog.
  std::optional<BacklogStep> IndexBacklogChunk(Collection& c);
  // Logs a finished backlog and maintains the graph after a step, unless
  // the namespace went meanwhile. REQUIRES: c.write_mu held.
  void FinishBacklogStep(Collection& c, const BacklogStep& step);
  void WakeIndexer();
  // Checkpoints or compacts the namespace's graph when due.
  // REQUIRES: c.write_mu and c.index_mu held.
  void MaintainGraph(Collection& c, std::string_view ns, NamespaceState* state);

  const EngineOptions options_;
  std::unique_ptr<storage::Store> store_;
  const storage::IndexFiles index_files_;
  ThreadPool search_pool_;
  std::unique_ptr<MemoryBudget> own_budget_;  // Without options_.memory_budget.
  MemoryBudget* budget_;

  std::atomic<bool> stopping_{false};
  std::atomic<bool> indexing_paused_{false};
  // Wakes the indexer: bumped after a write to a backlog (and at stop).
  std::mutex indexer_mu_;
  std::condition_variable indexer_wake_;
  uint64_t indexer_signal_ = 0;  // Guarded by indexer_mu_.
  // The signal the indexer last went idle at (found no backlog after
  // reading it); all ones before it first does. Guarded by indexer_mu_.
  uint64_t indexer_idle_at_ = ~uint64_t{0};
  std::condition_variable indexer_idle_;
  std::thread indexer_thread_;

  mutable Mutex mu_;
  std::map<std::string, std::shared_ptr<Collection>, std::less<>> collections_ ABSL_GUARDED_BY(mu_);
  // Collections that failed to load, with why (see Find).
  std::map<std::string, absl::Status, std::less<>> damaged_ ABSL_GUARDED_BY(mu_);
};

}  // namespace quiver::db

#endif  // QUIVER_DB_ENGINE_H_
