// The domain types of the database engine's requests and answers (no gRPC,
// no HTTP): what the transports convert to and from.
#ifndef QUIVER_DB_REQUESTS_H_
#define QUIVER_DB_REQUESTS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/json.h"
#include "common/memory_budget.h"
#include "storage/collection_config.h"
#include "storage/document.h"
#include "storage/record.h"

namespace quiver::db {

struct CollectionInfo {
  storage::CollectionMeta meta;
  uint64_t record_count = 0;
  uint32_t namespace_count = 0;
};

// A collection's size and activity, for /metrics.
struct CollectionUsage {
  std::string name;
  uint64_t record_count = 0;
  // The vector indexes' memory (vectors and graph, deleted nodes included).
  uint64_t index_bytes = 0;
  // What the store holds for it on disk (and in memtables), approximately.
  uint64_t stored_bytes = 0;
  // What it holds in memory, by part (vectors, graph, postings, metadata).
  MemoryAmounts memory{};
  uint64_t vectors_indexed = 0, queries = 0, compactions = 0, checkpoints = 0;
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
  uint64_t memory_bytes = 0;  // What the namespace holds in memory.
};
struct StatsResult {
  uint32_t dimension = 0;
  uint64_t total_record_count = 0;
  std::map<std::string, NamespaceStatsResult> namespaces;
  ann::Metric metric = ann::Metric::kCosine;
  storage::IndexKind index = storage::IndexKind::kFlat;
  uint64_t index_bytes_per_vector = 0;
  // Records acknowledged but not in their HNSW graph yet (the backlogs of
  // bulk upserts, or records written after the checkpoint at a restart);
  // an exact scan answers for them meanwhile. 0 once all are indexed.
  uint64_t catching_up_count = 0;
  // What the collection holds in memory, by part.
  MemoryAmounts memory{};
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
  // On a collection bound to an embedding model, text without a vector is
  // also embedded for a dense search (hybrid with BM25 where the collection
  // has text search). False: text is searched by BM25 only.
  bool embed_text = true;
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
  std::vector<float> values;                  // When include_values.
  storage::SparseVector sparse;               // When include_values.
  std::optional<storage::Metadata> metadata;  // When include_metadata.
  std::string text;                           // When include_metadata.
  std::vector<ScoreComponent> explanation;    // One per list that ranked it.
};

struct QueryResult {
  std::vector<Match> matches;
  bool exact = true;
  uint64_t scanned_count = 0;
};

// The document path: a document's source text and its chunk records, cut
// and embedded by the caller (rag/), stored and replaced together.
inline constexpr size_t kMaxDocumentIdBytes = 480;  // Leaves room for "#<chunk>".
struct DocumentWrite {
  std::string id;  // 1..kMaxDocumentIdBytes of UTF-8, no control characters.
  std::string text;
  storage::Metadata metadata;
  // Chunk i has id storage::ChunkId(id, i), a vector, its text and metadata.
  std::vector<storage::Record> chunks;
};

struct PutDocumentResult {
  uint32_t chunk_count = 0;
  uint32_t replaced_chunk_count = 0;  // Chunks of the version it replaced (0: new).
};

struct ListDocumentsResult {
  std::vector<storage::StoredDocument> documents;  // Text left empty.
  std::string next_pagination_token;               // Empty at the end.
};

using RankedHit = std::pair<std::string, float>;  // (record id, score), best first.

}  // namespace quiver::db

#endif  // QUIVER_DB_REQUESTS_H_
