#include "text/sparse_index.h"

#include <algorithm>

#include "common/coding.h"
#include "common/status_macros.h"

namespace quiver::text {
namespace {

// A dimension's term key: its index, big-endian (4 bytes).
std::string DimensionKey(uint32_t index) {
  std::string key;
  PutBigEndian32(&key, index);
  return key;
}

float Dot(const InvertedIndex::Clause& clause, float weight, uint32_t) {
  return clause.query_weight * weight;
}

}  // namespace

SparseIndex::SparseIndex() : index_(std::make_unique<InvertedIndex>(/*integer_weights=*/false)) {}

uint64_t SparseIndex::Fingerprint(std::span<const uint32_t> indices,
                                  std::span<const float> values) {
  std::string bytes;
  bytes.reserve(indices.size() * 8);
  for (size_t i = 0; i < indices.size(); ++i) {
    PutFixed32(&bytes, indices[i]);
    PutFloat(&bytes, values[i]);
  }
  return Fingerprint64(bytes);
}

void SparseIndex::Upsert(uint64_t label, std::span<const uint32_t> indices,
                         std::span<const float> values) {
  if (indices.empty()) {
    index_->Remove(label);
    return;
  }
  std::vector<std::string> keys;
  keys.reserve(indices.size());
  for (uint32_t i : indices) keys.push_back(DimensionKey(i));
  std::vector<InvertedIndex::TermWeight> terms;
  terms.reserve(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) terms.push_back({keys[i], values[i]});
  index_->Upsert(label, terms,
                 {static_cast<uint32_t>(indices.size()), Fingerprint(indices, values)});
}

bool SparseIndex::Remove(uint64_t label) { return index_->Remove(label); }

bool SparseIndex::FindFingerprint(uint64_t label, uint64_t* fingerprint) const {
  const InvertedIndex::DocInfo* info = index_->FindDoc(label);
  if (info == nullptr) return false;
  *fingerprint = info->fingerprint;
  return true;
}

std::vector<InvertedIndex::Clause> SparseIndex::Resolve(std::span<const uint32_t> indices,
                                                        std::span<const float> values) const {
  std::vector<InvertedIndex::Clause> clauses;
  for (size_t i = 0; i < indices.size(); ++i) {
    uint32_t id;
    InvertedIndex::TermStats stats;
    if (values[i] == 0 || !index_->FindTerm(DimensionKey(indices[i]), &id, &stats)) continue;
    const float q = values[i];
    // Absent dimensions add 0, so a bound is never below 0.
    const float bound = std::max({0.0f, q * stats.max_weight, q * stats.min_weight});
    clauses.push_back({id, q, bound});
  }
  return clauses;
}

std::vector<Hit> SparseIndex::Search(std::span<const uint32_t> indices,
                                     std::span<const float> values, size_t top_k,
                                     const LabelFilter* keep) const {
  return index_->Search(Resolve(indices, values), top_k, keep, Dot);
}

std::vector<Hit> SparseIndex::SearchExhaustive(std::span<const uint32_t> indices,
                                               std::span<const float> values, size_t top_k,
                                               const LabelFilter* keep) const {
  return index_->SearchExhaustive(Resolve(indices, values), top_k, keep, Dot);
}

absl::StatusOr<std::unique_ptr<SparseIndex>> SparseIndex::Load(const InvertedIndex::KvScan& scan) {
  auto out = std::make_unique<SparseIndex>();
  ASSIGN_OR_RETURN(out->index_, InvertedIndex::Load(/*integer_weights=*/false, scan));
  return out;
}

}  // namespace quiver::text
