#include "text/inverted_index.h"

#include <cmath>

#include "common/coding.h"
#include "common/status_macros.h"

namespace quiver::text {
namespace {

// Persisted layout (docs/text_index_format.md). Every value starts with the
// CRC-32C of the rest.
constexpr uint64_t kFormatVersion = 1;
constexpr char kMetaKey[] = "M";
constexpr char kDocPrefix = 'D';
constexpr char kTermPrefix = 'T';
constexpr size_t kDocsPerBlock = 4096;
constexpr size_t kPostingsPerBlock = 4096;

std::string Sealed(std::string_view body) {
  std::string v;
  PutFixed32(&v, Crc32c(body));
  v.append(body);
  return v;
}

absl::Status Unseal(std::string_view value, std::string_view* body) {
  uint32_t crc;
  if (!GetFixed32(&value, &crc) || Crc32c(value) != crc) {
    return absl::DataLossError("text index block fails its checksum");
  }
  *body = value;
  return absl::OkStatus();
}

absl::Status Damaged(std::string_view what) {
  return absl::DataLossError(StrCat("text index: ", what));
}

}  // namespace

uint32_t InvertedIndex::InternTerm(std::string_view key) {
  auto it = dictionary_.find(key);
  if (it != dictionary_.end()) return it->second;
  uint32_t id;
  if (!free_terms_.empty()) {
    id = free_terms_.back();
    free_terms_.pop_back();
    terms_[id] = Term();
  } else {
    id = static_cast<uint32_t>(terms_.size());
    terms_.emplace_back();
  }
  terms_[id].key = std::string(key);
  dictionary_.emplace(terms_[id].key, id);
  term_bytes_ += key.size();
  return id;
}

void InvertedIndex::AddPosting(uint32_t term, uint64_t label, float weight, uint32_t doc_len) {
  Term& t = terms_[term];
  t.max_weight = std::max(t.max_weight, weight);
  t.min_weight = std::min(t.min_weight, weight);
  t.min_doc_len = std::min(t.min_doc_len, doc_len);
  // Appends are the common case (labels only grow).
  if (t.docs.empty() || t.docs.back() < label) {
    ++postings_;
    t.docs.push_back(label);
    t.weights.push_back(weight);
    t.lens.push_back(doc_len);
    return;
  }
  auto pos = std::lower_bound(t.docs.begin(), t.docs.end(), label);
  const size_t i = pos - t.docs.begin();
  if (*pos == label) {  // The tombstone of an earlier version of this document.
    t.weights[i] = weight;
    t.lens[i] = doc_len;
    --t.dead;
    return;
  }
  ++postings_;
  t.docs.insert(pos, label);
  t.weights.insert(t.weights.begin() + i, weight);
  t.lens.insert(t.lens.begin() + i, doc_len);
}

void InvertedIndex::Compact(Term& t) {
  size_t out = 0;
  for (size_t i = 0; i < t.docs.size(); ++i) {
    if (t.weights[i] == kTombstone) continue;
    t.docs[out] = t.docs[i];
    t.weights[out] = t.weights[i];
    t.lens[out] = t.lens[i];
    ++out;
  }
  postings_ -= t.docs.size() - out;
  t.docs.resize(out);
  t.weights.resize(out);
  t.lens.resize(out);
  t.docs.shrink_to_fit();
  t.weights.shrink_to_fit();
  t.lens.shrink_to_fit();
  t.dead = 0;
}

void InvertedIndex::Upsert(uint64_t label, std::span<const TermWeight> terms, DocInfo info) {
  Remove(label);
  Doc& d = docs_[label];
  d.info = info;
  d.terms.reserve(terms.size());
  for (const TermWeight& tw : terms) {
    const uint32_t id = InternTerm(tw.term);
    AddPosting(id, label, tw.weight, info.length);
    d.terms.push_back(id);
  }
  doc_terms_ += terms.size();
  total_length_ += info.length;
}

bool InvertedIndex::Remove(uint64_t label) {
  auto it = docs_.find(label);
  if (it == docs_.end()) return false;
  for (uint32_t id : it->second.terms) {
    Term& t = terms_[id];
    auto pos = std::lower_bound(t.docs.begin(), t.docs.end(), label);
    t.weights[pos - t.docs.begin()] = kTombstone;
    ++t.dead;
    if (t.live() == 0) {
      postings_ -= t.docs.size();
      term_bytes_ -= t.key.size();
      dictionary_.erase(t.key);
      t = Term();
      free_terms_.push_back(id);
    } else if (t.dead >= 64 && t.dead * 2 >= t.docs.size()) {
      Compact(t);
    }
  }
  total_length_ -= it->second.info.length;
  doc_terms_ -= it->second.terms.size();
  docs_.erase(it);
  return true;
}

size_t InvertedIndex::MemoryBytes() const {
  // A posting: label, weight, length. A document: its hash map slot (key,
  // Doc, control byte) and term ids. A term: its Term, key bytes and
  // dictionary slot (key string, id, control byte).
  return postings_ * (sizeof(uint64_t) + sizeof(float) + sizeof(uint32_t)) +
         docs_.size() * (sizeof(uint64_t) + sizeof(Doc) + 1) + doc_terms_ * sizeof(uint32_t) +
         terms_.size() * sizeof(Term) + term_bytes_ +
         dictionary_.size() * (sizeof(std::string) + sizeof(uint32_t) + 1);
}

void InvertedIndex::Recount() {
  postings_ = doc_terms_ = term_bytes_ = 0;
  for (const Term& t : terms_) {
    postings_ += t.docs.size();
    term_bytes_ += t.key.size();
  }
  for (const auto& [label, d] : docs_) doc_terms_ += d.terms.size();
}

const InvertedIndex::DocInfo* InvertedIndex::FindDoc(uint64_t label) const {
  auto it = docs_.find(label);
  return it == docs_.end() ? nullptr : &it->second.info;
}

void InvertedIndex::ForEachLabel(const std::function<void(uint64_t)>& fn) const {
  for (const auto& [label, d] : docs_) fn(label);
}

bool InvertedIndex::FindTerm(std::string_view term, uint32_t* id, TermStats* stats) const {
  auto it = dictionary_.find(term);
  if (it == dictionary_.end()) return false;
  const Term& t = terms_[it->second];
  *id = it->second;
  *stats = TermStats{t.live(), t.max_weight, t.min_weight, t.min_doc_len};
  return true;
}

void InvertedIndex::SortClauses(std::vector<Clause>* clauses) {
  std::sort(clauses->begin(), clauses->end(), [](const Clause& a, const Clause& b) {
    return a.bound != b.bound ? a.bound < b.bound : a.term < b.term;
  });
}

// ---- Persistence ------------------------------------------------------------

absl::Status InvertedIndex::Save(KvSink& out) const {
  // Documents in label order, in blocks: delta-coded labels, lengths,
  // fingerprints.
  std::vector<uint64_t> doc_ids;
  doc_ids.reserve(docs_.size());
  for (const auto& [label, d] : docs_) doc_ids.push_back(label);
  std::sort(doc_ids.begin(), doc_ids.end());
  std::string key, body;
  uint32_t block = 0;
  for (size_t start = 0; start < doc_ids.size(); start += kDocsPerBlock, ++block) {
    const size_t end = std::min(doc_ids.size(), start + kDocsPerBlock);
    body.clear();
    PutVarint64(&body, end - start);
    uint64_t prev = 0;
    for (size_t i = start; i < end; ++i) {
      const DocInfo& info = docs_.at(doc_ids[i]).info;
      PutVarint64(&body, doc_ids[i] - prev);
      prev = doc_ids[i];
      PutVarint64(&body, info.length);
      PutFixed64(&body, info.fingerprint);
    }
    key.assign(1, kDocPrefix);
    PutBigEndian32(&key, block);
    RETURN_IF_ERROR(out.Put(key, Sealed(body)));
  }
  {
    body.clear();
    PutVarint64(&body, kFormatVersion);
    PutVarint64(&body, integer_weights_ ? 1 : 0);
    PutVarint64(&body, docs_.size());
    PutVarint64(&body, dictionary_.size());
    RETURN_IF_ERROR(out.Put(kMetaKey, Sealed(body)));
  }
  // Terms in key order; each list in blocks of delta-coded labels with
  // their weights (varints for whole numbers, else float32).
  std::vector<const Term*> sorted;
  sorted.reserve(dictionary_.size());
  for (const auto& [k, id] : dictionary_) sorted.push_back(&terms_[id]);
  std::sort(sorted.begin(), sorted.end(),
            [](const Term* a, const Term* b) { return a->key < b->key; });
  std::vector<size_t> live;
  for (const Term* t : sorted) {
    live.clear();
    for (size_t i = 0; i < t->docs.size(); ++i) {
      if (t->weights[i] != kTombstone) live.push_back(i);
    }
    block = 0;
    for (size_t start = 0; start < live.size(); start += kPostingsPerBlock, ++block) {
      const size_t end = std::min(live.size(), start + kPostingsPerBlock);
      body.clear();
      PutVarint64(&body, end - start);
      uint64_t prev = 0;
      for (size_t j = start; j < end; ++j) {
        PutVarint64(&body, t->docs[live[j]] - prev);
        prev = t->docs[live[j]];
      }
      for (size_t j = start; j < end; ++j) {
        const float w = t->weights[live[j]];
        if (integer_weights_) {
          PutVarint64(&body, static_cast<uint64_t>(w));
        } else {
          PutFloat(&body, w);
        }
      }
      key.assign(1, kTermPrefix);
      PutVarint64(&key, t->key.size());
      key.append(t->key);
      PutBigEndian32(&key, block);
      RETURN_IF_ERROR(out.Put(key, Sealed(body)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<InvertedIndex>> InvertedIndex::Load(bool integer_weights,
                                                                   const KvScan& scan) {
  auto index = std::make_unique<InvertedIndex>(integer_weights);
  bool have_meta = false;
  uint64_t want_docs = 0, want_terms = 0;
  uint32_t next_doc_block = 0;
  std::string current_term;  // Of the last term block read.
  uint32_t next_term_block = 0;
  uint32_t term_id = 0;
  RETURN_IF_ERROR(scan([&](std::string_view key, std::string_view value) -> absl::Status {
    std::string_view body;
    RETURN_IF_ERROR(Unseal(value, &body));
    if (key.empty()) return Damaged("empty key");
    if (key[0] == kDocPrefix) {
      std::string_view k = key.substr(1);
      uint32_t block;
      if (!GetBigEndian32(&k, &block) || block != next_doc_block++) {
        return Damaged("document blocks out of sequence");
      }
      uint64_t n, prev = 0;
      if (!GetVarint64(&body, &n)) return Damaged("truncated document block");
      for (uint64_t i = 0; i < n; ++i) {
        uint64_t delta, length, fp;
        if (!GetVarint64(&body, &delta) || !GetVarint64(&body, &length) ||
            !GetFixed64(&body, &fp) || (i > 0 && delta == 0) || length > UINT32_MAX) {
          return Damaged("malformed document block");
        }
        prev += delta;
        Doc& d = index->docs_[prev];
        d.info = DocInfo{static_cast<uint32_t>(length), fp};
        index->total_length_ += length;
      }
      return absl::OkStatus();
    }
    if (key == kMetaKey) {
      uint64_t version, integer;
      if (!GetVarint64(&body, &version) || !GetVarint64(&body, &integer) ||
          !GetVarint64(&body, &want_docs) || !GetVarint64(&body, &want_terms)) {
        return Damaged("malformed header");
      }
      if (version != kFormatVersion) return Damaged(StrCat("unknown format version ", version));
      if ((integer == 1) != integer_weights) return Damaged("weight kind does not match");
      have_meta = true;
      return absl::OkStatus();
    }
    if (key[0] != kTermPrefix || !have_meta) return Damaged("unexpected key");
    std::string_view k = key.substr(1);
    uint64_t len;
    uint32_t block;
    if (!GetVarint64(&k, &len) || k.size() != len + 4) return Damaged("malformed term key");
    const std::string_view term = k.substr(0, len);
    k.remove_prefix(len);
    if (!GetBigEndian32(&k, &block)) return Damaged("malformed term key");
    if (term != current_term || index->terms_.empty()) {
      if (block != 0) return Damaged("term blocks out of sequence");
      current_term = std::string(term);
      if (index->dictionary_.contains(term)) return Damaged("repeated term");
      term_id = index->InternTerm(term);
      next_term_block = 0;
    }
    if (block != next_term_block++) return Damaged("term blocks out of sequence");
    Term& t = index->terms_[term_id];
    uint64_t n;
    if (!GetVarint64(&body, &n) || n == 0 || n > kPostingsPerBlock) {
      return Damaged("malformed posting block");
    }
    const size_t first = t.docs.size();
    uint64_t prev = 0;
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t delta;
      if (!GetVarint64(&body, &delta) || (i > 0 && delta == 0)) {
        return Damaged("malformed posting block");
      }
      prev += delta;
      if (!t.docs.empty() && prev <= t.docs.back()) return Damaged("postings out of order");
      t.docs.push_back(prev);
    }
    for (uint64_t i = 0; i < n; ++i) {
      float w;
      if (integer_weights) {
        uint64_t v;
        if (!GetVarint64(&body, &v)) return Damaged("malformed posting block");
        w = static_cast<float>(v);
      } else if (!GetFloat(&body, &w) || !std::isfinite(w)) {
        return Damaged("malformed posting block");
      }
      t.weights.push_back(w);
    }
    for (size_t i = first; i < t.docs.size(); ++i) {
      auto dit = index->docs_.find(t.docs[i]);
      if (dit == index->docs_.end()) return Damaged("posting for an unknown document");
      dit->second.terms.push_back(term_id);
      t.lens.push_back(dit->second.info.length);
      t.max_weight = std::max(t.max_weight, t.weights[i]);
      t.min_weight = std::min(t.min_weight, t.weights[i]);
      t.min_doc_len = std::min(t.min_doc_len, dit->second.info.length);
    }
    return absl::OkStatus();
  }));
  if (!have_meta) return absl::NotFoundError("no text index saved");
  if (index->docs_.size() != want_docs || index->dictionary_.size() != want_terms) {
    return Damaged("document or term count does not match its header");
  }
  index->Recount();
  return index;
}

}  // namespace quiver::text
