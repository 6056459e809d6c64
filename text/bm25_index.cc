#include "text/bm25_index.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace quiver::text {

void Bm25Index::Upsert(uint64_t doc, const std::vector<std::string>& terms) {
  Remove(doc);
  absl::flat_hash_map<std::string_view, uint32_t> tf;
  for (const std::string& t : terms) ++tf[t];
  auto& mine = doc_terms_[doc];
  mine.reserve(tf.size());
  const uint32_t doc_len = static_cast<uint32_t>(terms.size());
  for (const auto& [term, count] : tf) {
    PostingList& pl = postings_[term];
    pl.max_tf = std::max(pl.max_tf, count);
    pl.min_doc_len = std::min(pl.min_doc_len, doc_len);
    auto& list = pl.postings;
    // Keep doc order: appends are the common case (increasing labels).
    const Posting p{doc, count};
    if (list.empty() || list.back().doc < doc) {
      list.push_back(p);
    } else {
      list.insert(std::lower_bound(list.begin(), list.end(), doc,
                                   [](const Posting& a, uint64_t d) { return a.doc < d; }),
                  p);
    }
    mine.emplace_back(std::string(term), count);
  }
  doc_len_[doc] = doc_len;
  total_len_ += terms.size();
}

bool Bm25Index::Remove(uint64_t doc) {
  auto it = doc_terms_.find(doc);
  if (it == doc_terms_.end()) return false;
  for (const auto& [term, count] : it->second) {
    auto pit = postings_.find(term);
    auto& list = pit->second.postings;
    auto p = std::lower_bound(list.begin(), list.end(), doc,
                              [](const Posting& a, uint64_t d) { return a.doc < d; });
    list.erase(p);
    if (list.empty()) postings_.erase(pit);
  }
  total_len_ -= doc_len_[doc];
  doc_len_.erase(doc);
  doc_terms_.erase(it);
  return true;
}

size_t Bm25Index::doc_frequency(std::string_view term) const {
  auto it = postings_.find(term);
  return it == postings_.end() ? 0 : it->second.postings.size();
}

float Bm25Index::Idf(size_t df) const {
  const double n = static_cast<double>(doc_len_.size());
  return static_cast<float>(std::log(1.0 + (n - df + 0.5) / (df + 0.5)));
}

float Bm25Index::TermScore(const QueryTerm& t, uint32_t tf, uint32_t doc_len) const {
  const double avg = doc_len_.empty() ? 1.0 : static_cast<double>(total_len_) / doc_len_.size();
  const double norm = params_.k1 * (1.0 - params_.b + params_.b * doc_len / avg);
  return static_cast<float>(t.weight * t.idf * tf * (params_.k1 + 1.0) / (tf + norm));
}

std::vector<Bm25Index::QueryTerm> Bm25Index::Resolve(const std::vector<std::string>& query) const {
  absl::flat_hash_map<std::string_view, float> weights;
  for (const std::string& q : query) weights[q] += 1;
  std::vector<QueryTerm> out;
  for (const auto& [term, weight] : weights) {
    auto it = postings_.find(term);
    if (it == postings_.end()) continue;
    const PostingList& pl = it->second;
    QueryTerm t{&pl.postings, Idf(pl.postings.size()), weight, 0};
    // The score grows with tf and shrinks with document length, so the
    // largest tf at the shortest length bounds every posting: O(1) per term
    // instead of a pass over its postings.
    t.max_score = TermScore(t, pl.max_tf, pl.min_doc_len);
    out.push_back(t);
  }
  // Both searches add term scores in this order, so they agree to the bit.
  std::sort(out.begin(), out.end(), [](const QueryTerm& a, const QueryTerm& b) {
    return a.max_score != b.max_score ? a.max_score < b.max_score : a.postings < b.postings;
  });
  return out;
}

std::vector<ScoredDoc> Bm25Index::SearchExhaustive(const std::vector<std::string>& query,
                                                   size_t top_k,
                                                   const std::function<bool(uint64_t)>* keep) const {
  absl::flat_hash_map<uint64_t, float> acc;
  for (const QueryTerm& t : Resolve(query)) {
    for (const Posting& p : *t.postings) acc[p.doc] += TermScore(t, p.tf, doc_len_.at(p.doc));
  }
  ann::TopK top(top_k);
  for (const auto& [doc, score] : acc) {
    if (keep == nullptr || (*keep)(doc)) top.Push(doc, score);
  }
  return top.Take();
}

std::vector<ScoredDoc> Bm25Index::Search(const std::vector<std::string>& query, size_t top_k,
                                         const std::function<bool(uint64_t)>* keep) const {
  // MaxScore (Turtle & Flood 1995): terms sorted by their score bound; the
  // cheapest prefix whose bounds together cannot beat the k-th best score
  // only refines candidates found through the other ("essential") terms.
  const std::vector<QueryTerm> terms = Resolve(query);  // By ascending bound.
  const size_t n = terms.size();
  std::vector<float> contrib(n);
  std::vector<float> prefix_bound(n + 1, 0);  // prefix_bound[i] = sum of bounds of terms [0, i).
  for (size_t i = 0; i < n; ++i) prefix_bound[i + 1] = prefix_bound[i] + terms[i].max_score;
  std::vector<size_t> cursor(n, 0);
  ann::TopK top(top_k);
  size_t first_essential = 0;
  auto advance_to = [&](size_t i, uint64_t doc) {
    const auto& list = *terms[i].postings;
    auto it = std::lower_bound(list.begin() + cursor[i], list.end(), doc,
                               [](const Posting& a, uint64_t d) { return a.doc < d; });
    cursor[i] = it - list.begin();
  };
  while (first_essential < n) {
    // The next candidate: the smallest current doc among essential terms.
    uint64_t doc = std::numeric_limits<uint64_t>::max();
    for (size_t i = first_essential; i < n; ++i) {
      if (cursor[i] < terms[i].postings->size()) {
        doc = std::min(doc, (*terms[i].postings)[cursor[i]].doc);
      }
    }
    if (doc == std::numeric_limits<uint64_t>::max()) break;
    const uint32_t len = doc_len_.at(doc);
    std::fill(contrib.begin(), contrib.end(), 0.0f);
    float score = 0;
    for (size_t i = first_essential; i < n; ++i) {
      const auto& list = *terms[i].postings;
      if (cursor[i] < list.size() && list[cursor[i]].doc == doc) {
        contrib[i] = TermScore(terms[i], list[cursor[i]].tf, len);
        score += contrib[i];
        ++cursor[i];
      }
    }
    // Non-essential terms, most valuable first, while they can still matter.
    bool complete = true;
    for (size_t i = first_essential; i-- > 0;) {
      if (score + prefix_bound[i + 1] < top.threshold()) {
        complete = false;
        break;
      }
      advance_to(i, doc);
      const auto& list = *terms[i].postings;
      if (cursor[i] < list.size() && list[cursor[i]].doc == doc) {
        contrib[i] = TermScore(terms[i], list[cursor[i]].tf, len);
        score += contrib[i];
      }
    }
    if (!complete) continue;
    score = 0;  // The exhaustive search's summation order.
    for (size_t i = 0; i < n; ++i) score += contrib[i];
    // Ties with the k-th score still compete (by doc id), so only strictly
    // smaller bounds are pruned: the result equals the exhaustive one.
    if (score >= top.threshold() && (keep == nullptr || (*keep)(doc))) {
      top.Push(doc, score);
      while (first_essential < n && prefix_bound[first_essential + 1] < top.threshold()) {
        ++first_essential;
      }
    }
  }
  return top.Take();
}

}  // namespace quiver::text
