// A collection's settings as the catalog stores them.
#ifndef QUIVER_STORAGE_COLLECTION_CONFIG_H_
#define QUIVER_STORAGE_COLLECTION_CONFIG_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "ann/distance.h"
#include "ann/sq8.h"

namespace quiver::storage {

enum class IndexKind : uint8_t { kFlat = 1, kHnsw = 2 };

// Collection names: 1..kMaxCollectionNameBytes of [A-Za-z0-9_-], first char
// alphanumeric.
inline constexpr size_t kMaxCollectionNameBytes = 64;
// Dense vectors: 1..kMaxDimension values.
inline constexpr uint32_t kMaxDimension = 20000;
// The largest magnitude a dense or sparse vector value may have: with it no
// dot product or squared distance of kMaxDimension values overflows float.
inline constexpr float kMaxAbsValue = 1e15f;

struct HnswParams {
  uint32_t m = 16;                 // REQUIRES: 2..128.
  uint32_t ef_construction = 200;  // REQUIRES: >= 1, <= 4096.
  uint32_t ef_search = 64;         // REQUIRES: >= 1, <= 10000.
  // What the graph walks (ann::HnswOptions): float vectors, or SQ8 codes
  // with the best ceil(top_k * oversampling) rescored by the full vectors.
  ann::Quantization quantization = ann::Quantization::kNone;
  float oversampling = 3.0f;  // REQUIRES: 1..100.
  bool rescore = true;
  // Quantized only: the full vectors in memory-mapped scratch files (the
  // kernel pages them in when rescoring) rather than in process memory.
  bool full_vectors_on_disk = false;
};

struct TextParams {
  bool enabled = false;
  std::string analyzer = "standard";
  float bm25_k1 = 0.9f;
  float bm25_b = 0.4f;
  std::string text_field;  // Empty: Record.text.
};

// How the document path cuts documents into chunk records (rag/), in tokens
// of the collection's embedding model.
struct ChunkParams {
  uint32_t chunk_tokens = 256;   // REQUIRES: kMinChunkTokens..kMaxChunkTokens.
  uint32_t overlap_tokens = 32;  // REQUIRES: < chunk_tokens / 2.
};
inline constexpr uint32_t kMinChunkTokens = 8;
inline constexpr uint32_t kMaxChunkTokens = 8192;
// The overlap when only chunk_tokens is given: 32, or a quarter of small
// chunks.
inline uint32_t DefaultOverlapTokens(uint32_t chunk_tokens) {
  return chunk_tokens / 4 < 32 ? chunk_tokens / 4 : 32;
}

struct CollectionConfig {
  std::string name;
  uint32_t dimension = 0;
  ann::Metric metric = ann::Metric::kCosine;  // Default: cosine.
  IndexKind index = IndexKind::kFlat;         // Default: flat.
  HnswParams hnsw;                            // Used when index == kHnsw.
  TextParams text;
  std::string embedding_model;  // Empty: none bound.
  ChunkParams chunking;

  // INVALID_ARGUMENT naming the field for a bad name, dimension or parameter.
  absl::Status Validate() const;
};

// A catalog entry: the config plus what the server assigned.
struct CollectionMeta {
  uint32_t id = 0;  // Key prefix of the collection's records; never reused.
  int64_t created_unix_ms = 0;
  CollectionConfig config;
};

absl::Status ValidateCollectionName(std::string_view name);
std::string_view IndexKindName(IndexKind k);

std::string EncodeCollectionMeta(const CollectionMeta& meta);
// DATA_LOSS for a damaged entry or one from an unknown format version.
absl::StatusOr<CollectionMeta> DecodeCollectionMeta(std::string_view value);

}  // namespace quiver::storage

#endif  // QUIVER_STORAGE_COLLECTION_CONFIG_H_
