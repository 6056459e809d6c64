// Weighted postings -- term -> (document, weight) sorted by document -- with
// exact top-k search pruned by MaxScore. BM25 (weight = term frequency) and
// sparse vectors (weight = the component's value) are both built on it.
//
// Deletion leaves a tombstone in each of the document's posting lists (found
// by binary search, so no list is shifted); a list is compacted once half of
// it is tombstones. Statistics (document count, document frequencies, total
// length) count live documents only and stay exact.
//
// Persistence: Save writes the live postings as compressed blocks through a
// KvSink; Load reads them back (format: docs/text_index_format.md).
//
// Not internally synchronised: concurrent const calls are safe; mutations
// need exclusive access.
#ifndef QUIVER_TEXT_INVERTED_INDEX_H_
#define QUIVER_TEXT_INVERTED_INDEX_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/kv.h"
#include "common/strings.h"
#include "common/top_k.h"

namespace quiver::text {

// Documents are keyed by label: the caller's dense 64-bit id of a record (the
// database engine's; docs/architecture.md). Keeps a document when it returns
// true (null: every document).
using LabelFilter = std::function<bool(uint64_t label)>;

class InvertedIndex {
 public:
  struct TermWeight {
    std::string_view term;
    float weight;  // REQUIRES: finite.
  };
  struct DocInfo {
    uint32_t length = 0;       // The caller's measure (BM25: terms in the document).
    uint64_t fingerprint = 0;  // The caller's digest of what was indexed.
  };
  // How a posting's weight contributes to a document's score.
  struct Clause {
    uint32_t term;
    float query_weight;
    float bound;  // >= every contribution of this term; >= 0.
  };
  struct TermStats {
    size_t df = 0;  // Live documents holding the term.
    float max_weight = 0;
    float min_weight = 0;
    uint32_t min_doc_len = 0;  // Shortest document ever indexed with it.
  };

  // `integer_weights`: every weight is a whole number (term frequencies),
  // which Save stores as varints.
  explicit InvertedIndex(bool integer_weights) : integer_weights_(integer_weights) {}

  // Indexes `label` with its distinct terms, replacing what it had.
  void Upsert(uint64_t label, std::span<const TermWeight> terms, DocInfo info);
  // False when `label` was not indexed.
  bool Remove(uint64_t label);

  const DocInfo* FindDoc(uint64_t label) const;
  void ForEachLabel(const std::function<void(uint64_t label)>& fn) const;
  size_t doc_count() const { return docs_.size(); }
  uint64_t total_length() const { return total_length_; }
  size_t term_count() const { return dictionary_.size(); }
  // Memory the index holds, approximately (postings with their tombstones,
  // documents, the dictionary; vector sizes, not capacities). O(1).
  size_t MemoryBytes() const;
  // The term's id and statistics; false when no live document has it.
  bool FindTerm(std::string_view term, uint32_t* id, TermStats* stats) const;

  // Best `top_k` documents by the sum over clauses of
  // score(clause, posting weight, document length), best first, ties by
  // ascending document. Each score must be <= its clause's bound; documents
  // matching no clause never appear. `Score` is a callable
  // float(const Clause&, float weight, uint32_t doc_len). Search prunes with
  // MaxScore and returns exactly what SearchExhaustive does (same summation
  // order, so equal to the bit).
  template <typename Score>
  std::vector<Hit> Search(std::vector<Clause> clauses, size_t top_k, const LabelFilter* keep,
                          const Score& score) const;
  template <typename Score>
  std::vector<Hit> SearchExhaustive(std::vector<Clause> clauses, size_t top_k,
                                    const LabelFilter* keep, const Score& score) const;

  // Writes every live posting and document under unique keys.
  absl::Status Save(KvSink& out) const;
  // Rebuilds an index from the pairs of one Save, which `scan` passes to
  // its argument in byte order of the keys. NOT_FOUND when there are none;
  // DATA_LOSS when a pair is damaged, missing or inconsistent.
  using KvVisitor = std::function<absl::Status(std::string_view key, std::string_view value)>;
  using KvScan = std::function<absl::Status(const KvVisitor&)>;
  static absl::StatusOr<std::unique_ptr<InvertedIndex>> Load(bool integer_weights,
                                                             const KvScan& scan);

 private:
  static constexpr float kTombstone = -std::numeric_limits<float>::infinity();
  struct Term {
    std::string key;
    std::vector<uint64_t> docs;  // Ascending.
    std::vector<float> weights;  // kTombstone: the document was removed.
    std::vector<uint32_t> lens;  // The document's length, for scoring without a lookup.
    size_t dead = 0;
    float max_weight = -std::numeric_limits<float>::infinity();
    float min_weight = std::numeric_limits<float>::infinity();
    uint32_t min_doc_len = UINT32_MAX;
    size_t live() const { return docs.size() - dead; }
  };
  struct Doc {
    DocInfo info;
    std::vector<uint32_t> terms;
  };
  // Orders clauses by ascending bound (ties by term), the summation order.
  static void SortClauses(std::vector<Clause>* clauses);
  // The first position >= `from` whose label is >= `label` (galloping: targets
  // are usually near).
  static size_t SeekFrom(const std::vector<uint64_t>& docs, size_t from, uint64_t label);
  uint32_t InternTerm(std::string_view key);
  void AddPosting(uint32_t term, uint64_t label, float weight, uint32_t doc_len);
  void Compact(Term& t);
  // Counts postings_, doc_terms_ and term_bytes_ from scratch (after Load).
  void Recount();

  bool integer_weights_;
  std::vector<Term> terms_;  // By term id; a freed id has no key.
  std::vector<uint32_t> free_terms_;
  absl::flat_hash_map<std::string, uint32_t, StringHash, StringEq> dictionary_;
  absl::flat_hash_map<uint64_t, Doc> docs_;
  uint64_t total_length_ = 0;
  // For MemoryBytes: entries of every posting list (tombstones included),
  // of every document's term list, and bytes of the terms' keys.
  size_t postings_ = 0, doc_terms_ = 0, term_bytes_ = 0;
};

// ---- Search (templates, so the scorer inlines) ------------------------------

inline size_t InvertedIndex::SeekFrom(const std::vector<uint64_t>& docs, size_t from,
                                      uint64_t label) {
  size_t step = 1, lo = from, hi = from;
  while (hi < docs.size() && docs[hi] < label) {
    lo = hi + 1;
    hi += step;
    step *= 2;
  }
  hi = std::min(hi, docs.size());
  return std::lower_bound(docs.begin() + lo, docs.begin() + hi, label) - docs.begin();
}

template <typename Score>
std::vector<Hit> InvertedIndex::SearchExhaustive(std::vector<Clause> clauses, size_t top_k,
                                                 const LabelFilter* keep,
                                                 const Score& score) const {
  SortClauses(&clauses);
  absl::flat_hash_map<uint64_t, float> acc;  // Running sums, in clause order.
  for (const Clause& c : clauses) {
    const Term& t = terms_[c.term];
    for (size_t i = 0; i < t.docs.size(); ++i) {
      if (t.weights[i] != kTombstone) acc[t.docs[i]] += score(c, t.weights[i], t.lens[i]);
    }
  }
  TopK top(top_k);
  for (const auto& [label, s] : acc) {
    if (keep == nullptr || (*keep)(label)) top.Push(label, s);
  }
  return top.Take();
}

template <typename Score>
std::vector<Hit> InvertedIndex::Search(std::vector<Clause> clauses, size_t top_k,
                                       const LabelFilter* keep, const Score& score) const {
  // MaxScore (Turtle & Flood 1995): with clauses sorted by bound, the
  // cheapest prefix whose bounds together cannot reach the k-th best score
  // is "non-essential": those lists only refine candidates found through the
  // others, by skipping to them.
  SortClauses(&clauses);
  const size_t n = clauses.size();
  std::vector<const Term*> lists(n);
  for (size_t i = 0; i < n; ++i) lists[i] = &terms_[clauses[i].term];
  std::vector<float> prefix_bound(n + 1, 0);  // Sum of the bounds of clauses [0, i).
  for (size_t i = 0; i < n; ++i) prefix_bound[i + 1] = prefix_bound[i] + clauses[i].bound;
  std::vector<size_t> cursor(n, 0);
  std::vector<float> contrib(n);
  std::vector<char> matched(n);
  TopK top(top_k);
  float threshold = top.threshold();
  size_t first_essential = 0;
  constexpr uint64_t kEnd = std::numeric_limits<uint64_t>::max();
  while (first_essential < n) {
    uint64_t label = kEnd;
    for (size_t i = first_essential; i < n; ++i) {
      if (cursor[i] < lists[i]->docs.size()) label = std::min(label, lists[i]->docs[cursor[i]]);
    }
    if (label == kEnd) break;
    std::fill(matched.begin(), matched.end(), 0);
    float partial = 0;
    uint32_t len = 0;
    bool any = false;
    for (size_t i = first_essential; i < n; ++i) {
      const Term& t = *lists[i];
      if (cursor[i] < t.docs.size() && t.docs[cursor[i]] == label) {
        // A tombstone: a removed document, or an earlier version of one.
        const float w = t.weights[cursor[i]];
        if (w != kTombstone) {
          len = t.lens[cursor[i]];
          contrib[i] = score(clauses[i], w, len);
          matched[i] = 1;
          any = true;
          partial += contrib[i];
        }
        ++cursor[i];
      }
    }
    if (!any) continue;
    // Non-essential clauses, most valuable first, while they can matter.
    bool pruned = false;
    for (size_t i = first_essential; i-- > 0;) {
      if (partial + prefix_bound[i + 1] < threshold) {
        pruned = true;
        break;
      }
      const Term& t = *lists[i];
      cursor[i] = SeekFrom(t.docs, cursor[i], label);
      if (cursor[i] < t.docs.size() && t.docs[cursor[i]] == label &&
          t.weights[cursor[i]] != kTombstone) {
        contrib[i] = score(clauses[i], t.weights[cursor[i]], len);
        matched[i] = 1;
        partial += contrib[i];
      }
    }
    if (pruned) continue;
    float total = 0;  // In the exhaustive search's order.
    for (size_t i = 0; i < n; ++i) {
      if (matched[i]) total += contrib[i];
    }
    // Equal scores still compete (by label), so only strictly smaller bounds
    // prune: the result equals the exhaustive one.
    if (total >= threshold && (keep == nullptr || (*keep)(label))) {
      top.Push(label, total);
      threshold = top.threshold();
      while (first_essential < n && prefix_bound[first_essential + 1] < threshold) {
        ++first_essential;
      }
    }
  }
  return top.Take();
}

}  // namespace quiver::text

#endif  // QUIVER_TEXT_INVERTED_INDEX_H_
