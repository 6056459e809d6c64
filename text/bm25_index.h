// An in-memory inverted index with BM25 scoring and MaxScore dynamic
// pruning. Terms come from an Analyzer; documents are 64-bit labels.
//
// Scoring (Lucene's BM25Similarity, as Anserini uses it):
//   idf(t)   = ln(1 + (N - df + 0.5) / (df + 0.5))
//   score    = sum over query terms t in d of
//              idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avglen))
// with exact document lengths (Lucene stores them lossily in one byte).
// Defaults k1 = 0.9, b = 0.4 as in Anserini's regressions.
//
// Not internally synchronised: concurrent const calls are safe; mutations
// need exclusive access.
#ifndef QUIVER_TEXT_BM25_INDEX_H_
#define QUIVER_TEXT_BM25_INDEX_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "ann/top_k.h"
#include "common/strings.h"

namespace quiver::text {

struct Bm25Params {
  float k1 = 0.9f;  // REQUIRES: >= 0.
  float b = 0.4f;   // REQUIRES: 0..1.
};

// A scored document: label = the document, score = its BM25 score.
using ScoredDoc = ann::Hit;

class Bm25Index {
 public:
  explicit Bm25Index(Bm25Params params = {}) : params_(params) {}

  // Indexes (or re-indexes) `doc` with its analysed terms. Statistics (N,
  // document frequencies, average length) stay exact across updates.
  void Upsert(uint64_t doc, const std::vector<std::string>& terms);
  // False when `doc` was not indexed.
  bool Remove(uint64_t doc);

  // Best `top_k` documents for the query terms (repeated terms count once
  // per occurrence, as in Lucene's BooleanQuery of term clauses), best first,
  // ties by ascending label. `keep` (may be null) filters documents.
  // Uses MaxScore pruning; SearchExhaustive scores every candidate.
  std::vector<ScoredDoc> Search(const std::vector<std::string>& query, size_t top_k,
                                const std::function<bool(uint64_t)>* keep = nullptr) const;
  std::vector<ScoredDoc> SearchExhaustive(const std::vector<std::string>& query, size_t top_k,
                                          const std::function<bool(uint64_t)>* keep = nullptr) const;

  size_t doc_count() const { return doc_len_.size(); }
  size_t term_count() const { return postings_.size(); }
  uint64_t total_length() const { return total_len_; }
  size_t doc_frequency(std::string_view term) const;

 private:
  struct Posting {
    uint64_t doc;
    uint32_t tf;
  };
  struct PostingList {
    std::vector<Posting> postings;  // Sorted by doc.
    // For the term's score bound without reading its postings: the largest
    // tf and the shortest document ever indexed with it. Removals leave them
    // as they are, which keeps them valid (if looser) bounds.
    uint32_t max_tf = 0;
    uint32_t min_doc_len = UINT32_MAX;
  };
  // One query term resolved against the index.
  struct QueryTerm {
    const std::vector<Posting>* postings;
    float idf;
    float weight;     // Occurrences in the query.
    float max_score;  // Upper bound of the term's contribution to any doc.
  };

  float Idf(size_t df) const;
  float TermScore(const QueryTerm& t, uint32_t tf, uint32_t doc_len) const;
  std::vector<QueryTerm> Resolve(const std::vector<std::string>& query) const;

  Bm25Params params_;
  absl::flat_hash_map<std::string, PostingList, StringHash, StringEq> postings_;
  absl::flat_hash_map<uint64_t, uint32_t> doc_len_;  // Terms per document.
  // Each document's distinct terms with frequencies, to remove it exactly.
  absl::flat_hash_map<uint64_t, std::vector<std::pair<std::string, uint32_t>>> doc_terms_;
  uint64_t total_len_ = 0;
};

}  // namespace quiver::text

#endif  // QUIVER_TEXT_BM25_INDEX_H_
