// The interface the database engine sees for one namespace's vectors: exact
// (flat) or approximate (HNSW). Labels are the caller's 64-bit ids. Besides
// reads and writes it owns its upkeep: whether it keeps a checkpoint file,
// when it wants compacting and how, so no caller needs the concrete type.
#ifndef QUIVER_ANN_VECTOR_INDEX_H_
#define QUIVER_ANN_VECTOR_INDEX_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ann/distance.h"
#include "ann/search_params.h"
#include "ann/sq8.h"
#include "common/thread_pool.h"

namespace quiver::ann {

// Thread-safety is each implementation's (see its header).
class VectorIndex {
 public:
  virtual ~VectorIndex() = default;

  // Adds the vector of a new label, or replaces the vector of an existing one.
  // REQUIRES: vector.size() == dimension().
  virtual void Upsert(uint64_t label, std::span<const float> vector) = 0;
  // False when the label was not present.
  virtual bool Remove(uint64_t label) = 0;
  virtual bool Contains(uint64_t label) const = 0;
  // Adds many vectors (Upsert each), on `pool`'s threads where the index
  // takes concurrent writes. vectors: (labels.size(), dimension()), row-major.
  // `pool` may be null (the calling thread does all).
  virtual void UpsertBatch(std::span<const uint64_t> labels, const float* vectors,
                           ThreadPool* pool);
  // Calls fn(label) for every live vector. REQUIRES: no concurrent writes.
  virtual void ForEachLabel(const std::function<void(uint64_t)>& fn) const = 0;

  // Best `params.top_k` hits, best first. Approximate for HNSW (params.ef
  // sets the beam width), exact for flat.
  virtual std::vector<Hit> Search(std::span<const float> query,
                                  const SearchParams& params) const = 0;
  // Exact best hits by scanning every live vector (the oracle, and the
  // planner's choice for very selective filters).
  virtual std::vector<Hit> SearchExact(std::span<const float> query,
                                       const SearchParams& params) const = 0;

  // True when Upsert/Remove may run concurrently with Search (HNSW); false
  // when mutations need exclusive access (flat).
  virtual bool concurrent_writes() const = 0;

  virtual size_t size() const = 0;  // Live vectors.
  virtual size_t dimension() const = 0;
  virtual Metric metric() const = 0;
  // Memory per live vector: the vector plus index overhead.
  virtual size_t BytesPerVector() const = 0;
  // The part of BytesPerVector that holds the vector itself (quantized
  // codes, and full vectors where they are in memory); the rest is the graph.
  virtual size_t VectorBytesPerVector() const { return dimension() * sizeof(float); }
  // How the vectors searched are stored (quantized HNSW: kSq8).
  virtual Quantization quantization() const { return Quantization::kNone; }

  // ---- Checkpoints ----
  // Whether the index is worth saving to a checkpoint file rather than
  // rebuilding from records at start-up (HNSW: yes; flat: no, loading its
  // vectors from the records is all a rebuild does).
  virtual bool checkpointed() const { return false; }
  // Writes a checkpoint that LoadIndexCheckpoint reads back (format:
  // docs/hnsw_format.md). REQUIRES: checkpointed(); no concurrent writes
  // (searches may run). UNIMPLEMENTED where !checkpointed().
  virtual absl::Status Save(std::ostream& out) const;
  // One past the largest label ever stored, deleted ones included (0 when
  // empty), so a caller never reuses a label a checkpoint may hold.
  virtual uint64_t LabelWatermark() const = 0;

  // ---- Maintenance ----
  // Stored entries, live and deleted (a graph keeps deleted nodes).
  virtual size_t stored_count() const { return size(); }
  // True once deleted entries cost enough memory and recall that the index
  // should be rebuilt (HNSW: at least 1000 nodes, half of them deleted; each
  // rebuild follows as many deletions as it keeps nodes, so its cost per
  // deletion is constant), or (quantized HNSW) its value range should be
  // learned again. Never for an index that deletes in place.
  virtual bool NeedsCompaction() const { return false; }
  // A new index of the live entries only, built with `pool`.
  // REQUIRES: NeedsCompaction(); no concurrent writes.
  virtual std::unique_ptr<VectorIndex> Compact(ThreadPool* pool) const;
};

// Reads a checkpoint written by VectorIndex::Save. DATA_LOSS for a damaged or
// truncated file, FAILED_PRECONDITION for a newer format version.
// `full_vectors_dir`: where a quantized index keeps its full vectors (see
// HnswOptions; a property of this machine, not of the checkpoint).
absl::StatusOr<std::unique_ptr<VectorIndex>> LoadIndexCheckpoint(
    std::istream& in, const std::string& full_vectors_dir = "");

}  // namespace quiver::ann

#endif  // QUIVER_ANN_VECTOR_INDEX_H_
