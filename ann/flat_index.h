// Exact (brute-force) top-k search: the correctness oracle for the
// approximate indexes and the planner's fallback for selective filters.
#ifndef QUIVER_ANN_FLAT_INDEX_H_
#define QUIVER_ANN_FLAT_INDEX_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "ann/distance.h"
#include "ann/vector_index.h"
#include "common/thread_pool.h"

namespace quiver::ann {

// Not internally synchronised: concurrent const calls are safe; a mutation
// needs exclusive access (the caller holds a reader/writer lock).
class FlatIndex final : public VectorIndex {
 public:
  // REQUIRES: dimension >= 1.
  FlatIndex(size_t dimension, Metric metric, const DistanceKernels& kernels = BestKernels());

  // Inserts the vector of `label`, or replaces it when the label exists.
  // For kCosine the vector is normalised here (a zero vector stays zero).
  // REQUIRES: vector.size() == dimension().
  void Upsert(uint64_t label, std::span<const float> vector) override;
  // Returns false when the label was not present.
  bool Remove(uint64_t label) override;
  bool Contains(uint64_t label) const override { return slot_of_.contains(label); }
  void Clear();

  // The best `params.top_k` vectors for `query` (normalised here for kCosine),
  // best first. Fewer when fewer qualify. REQUIRES: query.size() == dimension().
  std::vector<Hit> Search(std::span<const float> query, const SearchParams& params) const override;
  std::vector<Hit> SearchExact(std::span<const float> query,
                               const SearchParams& params) const override {
    return Search(query, params);
  }

  // The stored (for kCosine: normalised) vector of `label`; null when absent.
  // Valid until the next mutation.
  const float* Find(uint64_t label) const;
  // Up to `max` labels, in storage order.
  std::vector<uint64_t> SomeLabels(size_t max) const;

  // Score of one stored vector against `query`; false when absent.
  bool Score(std::span<const float> query, uint64_t label, float* score) const;

  void ForEachLabel(const std::function<void(uint64_t)>& fn) const override;
  uint64_t LabelWatermark() const override;

  bool concurrent_writes() const override { return false; }
  size_t size() const override { return labels_.size(); }
  size_t dimension() const override { return dim_; }
  Metric metric() const override { return metric_; }
  // Memory per stored vector: the floats plus the label bookkeeping.
  size_t BytesPerVector() const override;

 private:
  void ScanRange(const float* query, size_t begin, size_t end, const LabelFilter* filter,
                 TopK* top) const;

  const size_t dim_;
  const Metric metric_;
  const DistanceKernels& kernels_;
  std::vector<float> data_;       // (size, dim_) row-major, row i belongs to labels_[i].
  std::vector<uint64_t> labels_;  // (size)
  absl::flat_hash_map<uint64_t, uint32_t> slot_of_;  // label -> row.
};

}  // namespace quiver::ann

#endif  // QUIVER_ANN_FLAT_INDEX_H_
