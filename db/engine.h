// The database engine: collections, their records in the store and their
// in-memory indexes. It speaks domain types only (no gRPC), validates every
// request and returns absl::Status codes a client can act on. Thread-safe.
#ifndef QUIVER_DB_ENGINE_H_
#define QUIVER_DB_ENGINE_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "ann/top_k.h"
#include "common/json.h"
#include "common/thread_pool.h"
#include "db/limits.h"
#include "storage/collection_config.h"
#include "storage/filter.h"
#include "storage/index_files.h"
#include "storage/record.h"
#include "storage/store.h"

namespace quiver::db {

class Collection;      // collection.h
struct NamespaceState;  // collection.h

// Turns text into vectors for collections bound to an embedding model
// (the server adapts a model's batching worker to it).
class TextEmbedder {
 public:
  virtual ~TextEmbedder() = default;
  virtual size_t dimension() const = 0;
  // One vector per text, in order.
  virtual absl::StatusOr<std::vector<std::vector<float>>> Embed(
      const std::vector<std::string>& texts) = 0;
};

struct EngineOptions {
  storage::StoreOptions store;
  Limits limits;
  // Workers for parallel exact scans and HNSW bulk inserts. REQUIRES: >= 1.
  size_t search_threads = 2;
  // An HNSW namespace is checkpointed once max(this, a quarter of its size)
  // vectors were inserted since the last checkpoint, and at shutdown.
  uint64_t checkpoint_min_inserts = 50000;
  // Embedding models by name, for collections bound to one; not owned.
  std::map<std::string, TextEmbedder*, std::less<>> embedders;
};

// Query planning for filtered search on an HNSW collection: the filter is
// evaluated on a sample of kSelectivitySample records; when the share that
// passes is below kExactScanSelectivity the exact scan answers (every
// record is tested once, distances only for matches), otherwise the HNSW
// traversal with the filter applied during the walk. Below 1% the walk would
// visit more than ef/1% nodes to fill its results, which costs more than
// testing every record's metadata and reads recall down.
inline constexpr size_t kSelectivitySample = 2048;
inline constexpr double kExactScanSelectivity = 0.01;

struct CollectionInfo {
  storage::CollectionMeta meta;
  uint64_t record_count = 0;
  uint32_t namespace_count = 0;
};

struct FetchResult {
  std::vector<storage::Record> records;  // In request order.
  std::vector<std::string> missing_ids;
};

// Partial update of one record; unset parts stay as they are.
struct UpdateSpec {
  std::string id;
  std::optional<std::vector<float>> values;
  std::optional<storage::SparseVector> sparse;
  std::optional<Json> set_metadata;  // Object merged key by key.
  std::optional<std::string> text;
};

struct ListIdsResult {
  std::vector<std::string> ids;
  std::string next_pagination_token;  // Empty at the end.
};

struct NamespaceStatsResult {
  uint64_t record_count = 0;
};
struct StatsResult {
  uint32_t dimension = 0;
  uint64_t total_record_count = 0;
  std::map<std::string, NamespaceStatsResult> namespaces;
  storage::MetricKind metric = storage::MetricKind::kCosine;
  storage::IndexKind index = storage::IndexKind::kFlat;
  uint64_t index_bytes_per_vector = 0;
  // Records an HNSW graph does not hold yet after a restart (answered by an
  // exact scan meanwhile); 0 once caught up.
  uint64_t catching_up_count = 0;
};

// How Query fuses several ranked lists (hybrid search).
struct HybridSpec {
  enum class Fusion { kRrf, kWeighted };
  // kRrf: score = sum over lists of weight / (rrf_k + rank), rank 1-based.
  // kWeighted: score = sum over lists of weight * (s - min) / (max - min),
  // min and max over the list's candidates (1 when they are equal); a
  // document missing from a list gets 0 from it.
  Fusion fusion = Fusion::kRrf;
  float rrf_k = 60;  // REQUIRES: > 0.
  // Per list; all zero means 1 each. REQUIRES: >= 0.
  float dense_weight = 0, sparse_weight = 0, text_weight = 0;
  uint32_t candidate_depth = 0;  // Candidates per list; 0: max(4 * top_k, 40).
};

struct QueryRequest {
  std::string ns;
  uint32_t top_k = 0;
  // Any of a dense query (vector, or the id of a stored record), a sparse
  // vector and text for BM25 (collections with text enabled). Several are
  // fused by `hybrid`.
  std::vector<float> vector;
  std::string id;
  storage::SparseVector sparse;
  std::string text;
  HybridSpec hybrid;
  std::optional<Json> filter;
  bool include_values = false;
  bool include_metadata = false;
  bool exact = false;
  uint32_t ef_search = 0;
};

// One list's part in a match: its source ("dense", "sparse", "text"), the
// match's 1-based rank there and its score there.
struct ScoreComponent {
  std::string source;
  uint32_t rank = 0;
  float score = 0;
};

struct Match {
  std::string id;
  float score = 0;
  std::vector<float> values;          // When include_values.
  storage::SparseVector sparse;       // When include_values.
  std::optional<storage::Metadata> metadata;  // When include_metadata.
  std::string text;                   // When include_metadata.
  std::vector<ScoreComponent> explanation;  // One per list that ranked it.
};

struct QueryResult {
  std::vector<Match> matches;
  bool exact = true;
  uint64_t scanned_count = 0;
};

using RankedHit = std::pair<std::string, float>;  // (record id, score), best first.

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

  // Point-in-time copy of the database under <data dir>/snapshots/<name>.
  // Returns the path.
  absl::StatusOr<std::string> Snapshot(std::string_view name);

  std::vector<std::string> damaged_collections() const;
  const EngineOptions& options() const { return options_; }
  uint64_t total_record_count();

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
  void CheckpointNamespace(Collection& c, std::string_view ns, NamespaceState* state);
  static double EstimateSelectivity(const NamespaceState& state, const storage::Filter& filter);
  static std::vector<ann::Hit> MergeHits(std::vector<ann::Hit> a, const std::vector<ann::Hit>& b,
                                         size_t top_k);
  // Dense search (graph, exact scan or catch-up merge) for Query.
  // REQUIRES: c.mu held shared.
  absl::Status SearchVectors(const Collection& c, const NamespaceState& state,
                             const QueryRequest& req, const storage::Filter& filter,
                             size_t top_k, QueryResult* out, std::vector<RankedHit>* hits);
  // Adds values and metadata from the store to matches when asked for.
  absl::StatusOr<QueryResult> FillMatches(const Collection& c, const QueryRequest& req,
                                          std::vector<Match> matches, QueryResult out);
  // Moves records written after a checkpoint into their HNSW graphs, a
  // chunk at a time, until done or stopping_.
  void CatchUp();

  const EngineOptions options_;
  std::unique_ptr<storage::Store> store_;
  const storage::IndexFiles index_files_;
  ThreadPool search_pool_;

  std::atomic<bool> stopping_{false};
  std::thread catchup_thread_;

  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Collection>, std::less<>> collections_
      ABSL_GUARDED_BY(mu_);
  std::vector<std::string> damaged_ ABSL_GUARDED_BY(mu_);
};

}  // namespace quiver::db

#endif  // QUIVER_DB_ENGINE_H_
