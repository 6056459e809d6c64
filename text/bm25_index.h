// BM25 over an InvertedIndex (weight = term frequency, document length =
// analysed terms in the document). Terms come from an Analyzer; documents
// are 64-bit labels.
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
#include <memory>
#include <string>
#include <vector>

#include "text/inverted_index.h"

namespace quiver::text {

struct Bm25Params {
  float k1 = 0.9f;  // REQUIRES: >= 0.
  float b = 0.4f;   // REQUIRES: 0..1.
};

// A scored document: label = the document, score = its BM25 score.
using ScoredDoc = Hit;

class Bm25Index {
 public:
  explicit Bm25Index(Bm25Params params = {});

  // Indexes (or re-indexes) `label` with its analysed terms; an empty list
  // removes it. `fingerprint` is kept for the caller (FindFingerprint).
  // Statistics (N, document frequencies, average length) stay exact.
  void Upsert(uint64_t label, const std::vector<std::string>& terms, uint64_t fingerprint = 0);
  // False when `label` was not indexed.
  bool Remove(uint64_t label);
  // The fingerprint `label` was indexed with; false when it is not indexed.
  bool FindFingerprint(uint64_t label, uint64_t* fingerprint) const;
  void ForEachLabel(const std::function<void(uint64_t label)>& fn) const {
    index_->ForEachLabel(fn);
  }

  // Best `top_k` documents for the query terms (repeated terms count once
  // per occurrence, as in Lucene's BooleanQuery of term clauses), best first,
  // ties by ascending label. `keep` (may be null) filters documents.
  // Uses MaxScore pruning; SearchExhaustive scores every candidate.
  std::vector<ScoredDoc> Search(const std::vector<std::string>& query, size_t top_k,
                                const LabelFilter* keep = nullptr) const;
  std::vector<ScoredDoc> SearchExhaustive(const std::vector<std::string>& query, size_t top_k,
                                          const LabelFilter* keep = nullptr) const;

  size_t doc_count() const { return index_->doc_count(); }
  size_t term_count() const { return index_->term_count(); }
  size_t MemoryBytes() const { return index_->MemoryBytes(); }
  uint64_t total_length() const { return index_->total_length(); }
  size_t doc_frequency(std::string_view term) const;

  // The tag a store keeps these postings under, beside the other kinds of
  // one namespace (the key layout: docs/storage_format.md).
  static constexpr char kStoreTag = 'b';
  absl::Status Save(KvSink& out) const { return index_->Save(out); }
  static absl::StatusOr<std::unique_ptr<Bm25Index>> Load(Bm25Params params,
                                                         const InvertedIndex::KvScan& scan);

 private:
  // A clause's contribution for a term frequency and document length:
  // weighted_idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avglen)).
  // Monotone in tf and len, so its value at (max tf, min len) bounds a term.
  struct Scorer {
    double k1_plus_1, norm_base, norm_per_len;
    Scorer(const Bm25Params& p, double avg_len)
        : k1_plus_1(p.k1 + 1.0),
          norm_base(p.k1 * (1.0 - p.b)),
          norm_per_len(p.k1 * p.b / avg_len) {}
    float operator()(const InvertedIndex::Clause& c, float tf, uint32_t len) const {
      return Score(c.query_weight, tf, len);
    }
    float Score(float weighted_idf, float tf, uint32_t len) const {
      return static_cast<float>(weighted_idf * tf * k1_plus_1 /
                                (tf + norm_base + norm_per_len * len));
    }
  };
  Scorer MakeScorer() const;
  // The query's clauses; query_weight = occurrences in the query * idf.
  std::vector<InvertedIndex::Clause> Resolve(const std::vector<std::string>& query,
                                             const Scorer& scorer) const;

  Bm25Params params_;
  std::unique_ptr<InvertedIndex> index_;
};

}  // namespace quiver::text

#endif  // QUIVER_TEXT_BM25_INDEX_H_
