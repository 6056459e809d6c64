#include "text/bm25_index.h"

#include <algorithm>
#include <cmath>

#include "common/status_macros.h"

namespace quiver::text {

Bm25Index::Bm25Index(Bm25Params params)
    : params_(params), index_(std::make_unique<InvertedIndex>(/*integer_weights=*/true)) {}

void Bm25Index::Upsert(uint64_t label, const std::vector<std::string>& terms,
                       uint64_t fingerprint) {
  if (terms.empty()) {
    index_->Remove(label);
    return;
  }
  absl::flat_hash_map<std::string_view, uint32_t> tf;
  for (const std::string& t : terms) ++tf[t];
  std::vector<InvertedIndex::TermWeight> weights;
  weights.reserve(tf.size());
  for (const auto& [term, count] : tf) weights.push_back({term, static_cast<float>(count)});
  index_->Upsert(label, weights, {static_cast<uint32_t>(terms.size()), fingerprint});
}

bool Bm25Index::Remove(uint64_t label) { return index_->Remove(label); }

bool Bm25Index::FindFingerprint(uint64_t label, uint64_t* fingerprint) const {
  const InvertedIndex::DocInfo* info = index_->FindDoc(label);
  if (info == nullptr) return false;
  *fingerprint = info->fingerprint;
  return true;
}

size_t Bm25Index::doc_frequency(std::string_view term) const {
  uint32_t id;
  InvertedIndex::TermStats stats;
  return index_->FindTerm(term, &id, &stats) ? stats.df : 0;
}

Bm25Index::Scorer Bm25Index::MakeScorer() const {
  const double n = static_cast<double>(index_->doc_count());
  return Scorer(params_, n == 0 ? 1.0 : static_cast<double>(index_->total_length()) / n);
}

std::vector<InvertedIndex::Clause> Bm25Index::Resolve(const std::vector<std::string>& query,
                                                      const Scorer& scorer) const {
  absl::flat_hash_map<std::string_view, float> occurrences;
  for (const std::string& q : query) occurrences[q] += 1;
  std::vector<InvertedIndex::Clause> clauses;
  const double n = static_cast<double>(index_->doc_count());
  for (const auto& [term, count] : occurrences) {
    uint32_t id;
    InvertedIndex::TermStats stats;
    if (!index_->FindTerm(term, &id, &stats)) continue;
    const double df = static_cast<double>(stats.df);
    const float w = count * static_cast<float>(std::log(1.0 + (n - df + 0.5) / (df + 0.5)));
    // The score grows with tf and shrinks with document length, so the
    // largest tf at the shortest length bounds every posting: O(1) per term.
    clauses.push_back({id, w, scorer.Score(w, stats.max_weight, stats.min_doc_len)});
  }
  return clauses;
}

std::vector<ScoredDoc> Bm25Index::Search(const std::vector<std::string>& query, size_t top_k,
                                         const LabelFilter* keep) const {
  const Scorer scorer = MakeScorer();
  return index_->Search(Resolve(query, scorer), top_k, keep, scorer);
}

std::vector<ScoredDoc> Bm25Index::SearchExhaustive(const std::vector<std::string>& query,
                                                   size_t top_k, const LabelFilter* keep) const {
  const Scorer scorer = MakeScorer();
  return index_->SearchExhaustive(Resolve(query, scorer), top_k, keep, scorer);
}

absl::StatusOr<std::unique_ptr<Bm25Index>> Bm25Index::Load(Bm25Params params,
                                                           const InvertedIndex::KvScan& scan) {
  auto out = std::make_unique<Bm25Index>(params);
  ASSIGN_OR_RETURN(out->index_, InvertedIndex::Load(/*integer_weights=*/true, scan));
  return out;
}

}  // namespace quiver::text
