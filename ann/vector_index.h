// The interface the engine sees for one namespace's vectors: exact (flat)
// or approximate (HNSW). Labels are the caller's 64-bit ids.
#ifndef QUIVER_ANN_VECTOR_INDEX_H_
#define QUIVER_ANN_VECTOR_INDEX_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "ann/distance.h"
#include "ann/top_k.h"

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
};

}  // namespace quiver::ann

#endif  // QUIVER_ANN_VECTOR_INDEX_H_
