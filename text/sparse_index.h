// Sparse vectors ({index: value} pairs, as SPLADE models or clients make
// them) searched by dot product through an InvertedIndex: one posting list
// per dimension, weight = the document's value there.
//
// Not internally synchronised: concurrent const calls are safe; mutations
// need exclusive access.
#ifndef QUIVER_TEXT_SPARSE_INDEX_H_
#define QUIVER_TEXT_SPARSE_INDEX_H_

#include <cstdint>
#include <memory>
#include <span>

#include "text/inverted_index.h"

namespace quiver::text {

class SparseIndex {
 public:
  SparseIndex();

  // Indexes (or re-indexes) `label`; an empty vector removes it.
  // REQUIRES: indices distinct, values finite, equal lengths.
  void Upsert(uint64_t label, std::span<const uint32_t> indices, std::span<const float> values);
  bool Remove(uint64_t label);
  // The fingerprint of what `label` is indexed with; false when not indexed.
  bool FindFingerprint(uint64_t label, uint64_t* fingerprint) const;
  void ForEachLabel(const std::function<void(uint64_t label)>& fn) const {
    index_->ForEachLabel(fn);
  }
  size_t doc_count() const { return index_->doc_count(); }
  size_t MemoryBytes() const { return index_->MemoryBytes(); }

  // The digest Upsert records for a vector.
  static uint64_t Fingerprint(std::span<const uint32_t> indices, std::span<const float> values);

  // Best `top_k` documents by dot product with the query (documents sharing
  // no non-zero dimension with it are not candidates), best first, ties by
  // ascending label. MaxScore-pruned; SearchExhaustive scores every one.
  std::vector<Hit> Search(std::span<const uint32_t> indices, std::span<const float> values,
                          size_t top_k, const LabelFilter* keep = nullptr) const;
  std::vector<Hit> SearchExhaustive(std::span<const uint32_t> indices,
                                    std::span<const float> values, size_t top_k,
                                    const LabelFilter* keep = nullptr) const;

  // The tag a store keeps these postings under, beside the other kinds of
  // one namespace (the key layout: docs/storage_format.md).
  static constexpr char kStoreTag = 's';
  absl::Status Save(KvSink& out) const { return index_->Save(out); }
  static absl::StatusOr<std::unique_ptr<SparseIndex>> Load(const InvertedIndex::KvScan& scan);

 private:
  std::vector<InvertedIndex::Clause> Resolve(std::span<const uint32_t> indices,
                                             std::span<const float> values) const;
  std::unique_ptr<InvertedIndex> index_;
};

}  // namespace quiver::text

#endif  // QUIVER_TEXT_SPARSE_INDEX_H_
