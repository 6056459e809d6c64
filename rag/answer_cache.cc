#include "rag/answer_cache.h"

#include <cmath>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/coding.h"
#include "common/log.h"
#include "common/mutex.h"
#include "common/status_macros.h"
#include "common/strings.h"

namespace quiver::rag {
namespace {

constexpr uint8_t kEntryFormat = 1;

std::string SideKey(uint64_t key) {
  std::string out = kAnswerCachePrefix;
  PutBigEndian64(&out, key);
  return out;
}

void PutString(std::string* out, std::string_view s) { PutLengthPrefixed(out, s); }
bool GetString(std::string_view* in, std::string* s) {
  std::string_view v;
  if (!GetLengthPrefixed(in, &v)) return false;
  *s = std::string(v);
  return true;
}

std::string EncodeEntry(uint64_t key, std::string_view scope, uint64_t epoch, int64_t created,
                        const std::vector<float>& embedding, const CachedAnswer& a) {
  std::string out;
  out.push_back(static_cast<char>(kEntryFormat));
  PutFixed64(&out, key);
  PutString(&out, scope);
  PutFixed64(&out, epoch);
  PutFixed64(&out, static_cast<uint64_t>(created));
  PutVarint64(&out, embedding.size());
  for (float f : embedding) PutFloat(&out, f);
  PutString(&out, a.question);
  PutString(&out, a.answer);
  PutVarint64(&out, a.prompt_tokens);
  PutVarint64(&out, a.completion_tokens);
  PutVarint64(&out, static_cast<uint64_t>(a.finish));
  PutString(&out, a.model);
  PutVarint64(&out, a.sources.size());
  for (const Source& s : a.sources) {
    PutVarint64(&out, s.number);
    PutString(&out, s.document_id);
    PutVarint64(&out, s.chunk);
    PutString(&out, s.record_id);
    PutString(&out, s.text);
    PutString(&out, s.heading);
    for (float f : {s.score, s.dense_score, s.text_score, s.rerank_score}) PutFloat(&out, f);
    PutVarint64(&out, s.start_byte);
    PutVarint64(&out, s.end_byte);
    storage::EncodeMetadata(s.metadata, &out);
  }
  return out;
}

bool DecodeEntry(std::string_view in, uint64_t* key, std::string* scope, uint64_t* epoch,
                 int64_t* created, std::vector<float>* embedding, CachedAnswer* a) {
  if (in.empty() || static_cast<uint8_t>(in[0]) != kEntryFormat) return false;
  in.remove_prefix(1);
  uint64_t created_u, n, v;
  if (!GetFixed64(&in, key) || !GetString(&in, scope) || !GetFixed64(&in, epoch) ||
      !GetFixed64(&in, &created_u) || !GetVarint64(&in, &n) || n > (1 << 16)) {
    return false;
  }
  *created = static_cast<int64_t>(created_u);
  embedding->resize(n);
  for (float& f : *embedding) {
    if (!GetFloat(&in, &f)) return false;
  }
  if (!GetString(&in, &a->question) || !GetString(&in, &a->answer) || !GetVarint64(&in, &v)) {
    return false;
  }
  a->prompt_tokens = static_cast<uint32_t>(v);
  if (!GetVarint64(&in, &v)) return false;
  a->completion_tokens = static_cast<uint32_t>(v);
  if (!GetVarint64(&in, &v) || v > static_cast<uint64_t>(llm::FinishReason::kCancelled))
    return false;
  a->finish = static_cast<llm::FinishReason>(v);
  if (!GetString(&in, &a->model) || !GetVarint64(&in, &n) || n > kMaxCandidates) return false;
  a->sources.resize(n);
  for (Source& s : a->sources) {
    if (!GetVarint64(&in, &v)) return false;
    s.number = static_cast<uint32_t>(v);
    if (!GetString(&in, &s.document_id) || !GetVarint64(&in, &v)) return false;
    s.chunk = static_cast<uint32_t>(v);
    if (!GetString(&in, &s.record_id) || !GetString(&in, &s.text) || !GetString(&in, &s.heading)) {
      return false;
    }
    for (float* f : {&s.score, &s.dense_score, &s.text_score, &s.rerank_score}) {
      if (!GetFloat(&in, f)) return false;
    }
    if (!GetVarint64(&in, &s.start_byte) || !GetVarint64(&in, &s.end_byte) ||
        !storage::DecodeMetadata(&in, &s.metadata)) {
      return false;
    }
  }
  return in.empty();
}

size_t EntryBytes(const std::vector<float>& embedding, const CachedAnswer& a) {
  size_t n =
      embedding.size() * sizeof(float) + a.question.size() + a.answer.size() + a.model.size() + 128;
  for (const Source& s : a.sources) {
    n += s.text.size() + s.document_id.size() + s.record_id.size() + s.heading.size() + 64 +
         storage::MetadataJsonBytes(s.metadata);
  }
  return n;
}

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

}  // namespace

absl::StatusOr<std::unique_ptr<AnswerCache>> AnswerCache::Open(const AnswerCacheOptions& options,
                                                               storage::Store* store) {
  std::unique_ptr<AnswerCache> cache(new AnswerCache(options, store));
  if (store == nullptr || options.max_entries == 0) return cache;
  size_t damaged = 0;
  std::vector<Entry> loaded;
  RETURN_IF_ERROR(store->ScanSide(kAnswerCachePrefix, [&](std::string_view, std::string_view v) {
    Entry e;
    if (!DecodeEntry(v, &e.key, &e.scope, &e.epoch, &e.created_unix_ms, &e.embedding, &e.answer)) {
      ++damaged;
      return absl::OkStatus();
    }
    loaded.push_back(std::move(e));
    return absl::OkStatus();
  }));
  // Oldest first, so the newest end up most recently used.
  std::sort(loaded.begin(), loaded.end(),
            [](const Entry& a, const Entry& b) { return a.created_unix_ms < b.created_unix_ms; });
  MutexLock l(&cache->mu_);
  for (Entry& e : loaded) {
    if (cache->Expired(e)) {
      (void)store->DeleteSide(SideKey(e.key));
      continue;
    }
    cache->Insert(std::move(e), /*persist=*/false);
  }
  if (damaged > 0) {
    Log(LogLevel::kWarning, "answer cache: skipped damaged entries", {{"count", damaged}});
  }
  return cache;
}

bool AnswerCache::Expired(const Entry& e) const {
  return options_.ttl_seconds > 0 && NowMs() - e.created_unix_ms > options_.ttl_seconds * 1000;
}

void AnswerCache::Erase(Lru::iterator it) {
  if (store_ != nullptr) {
    if (absl::Status s = store_->DeleteSide(SideKey(it->key)); !s.ok()) {
      Log(LogLevel::kWarning, "answer cache: could not delete an entry", {{"error", s.ToString()}});
    }
  }
  bytes_ -= it->bytes;
  by_key_.erase(it->key);
  lru_.erase(it);
}

void AnswerCache::Insert(Entry e, bool persist) {
  if (auto it = by_key_.find(e.key); it != by_key_.end()) Erase(it->second);
  e.bytes = EntryBytes(e.embedding, e.answer);
  if (e.bytes > options_.max_bytes) return;
  if (persist && store_ != nullptr) {
    const std::string value =
        EncodeEntry(e.key, e.scope, e.epoch, e.created_unix_ms, e.embedding, e.answer);
    if (absl::Status s = store_->PutSide(SideKey(e.key), value); !s.ok()) {
      Log(LogLevel::kWarning, "answer cache: could not store an entry", {{"error", s.ToString()}});
      return;
    }
  }
  bytes_ += e.bytes;
  lru_.push_front(std::move(e));
  by_key_[lru_.front().key] = lru_.begin();
  while (!lru_.empty() && (lru_.size() > options_.max_entries || bytes_ > options_.max_bytes)) {
    Erase(std::prev(lru_.end()));
  }
}

std::optional<CachedAnswer> AnswerCache::GetExact(uint64_t key) {
  MutexLock l(&mu_);
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return std::nullopt;
  if (Expired(*it->second)) {
    Erase(it->second);
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  ++stats_.exact_hits;
  return it->second->answer;
}

std::optional<CachedAnswer> AnswerCache::GetSemantic(std::string_view scope, uint64_t epoch,
                                                     const std::vector<float>& embedding) {
  if (options_.semantic_threshold > 1 || embedding.empty()) return std::nullopt;
  MutexLock l(&mu_);
  Lru::iterator best = lru_.end();
  float best_sim = options_.semantic_threshold;
  for (auto it = lru_.begin(); it != lru_.end(); ++it) {
    if (it->epoch != epoch || it->scope != scope || it->embedding.size() != embedding.size()) {
      continue;
    }
    float dot = 0;
    for (size_t i = 0; i < embedding.size(); ++i) dot += it->embedding[i] * embedding[i];
    if (dot >= best_sim && !Expired(*it)) best_sim = dot, best = it;
  }
  if (best == lru_.end()) return std::nullopt;
  lru_.splice(lru_.begin(), lru_, best);
  ++stats_.semantic_hits;
  return best->answer;
}

void AnswerCache::Put(uint64_t key, std::string scope, uint64_t epoch, std::vector<float> embedding,
                      CachedAnswer answer) {
  if (options_.max_entries == 0) return;
  Entry e;
  e.key = key;
  e.scope = std::move(scope);
  e.epoch = epoch;
  e.created_unix_ms = NowMs();
  e.embedding = std::move(embedding);
  e.answer = std::move(answer);
  MutexLock l(&mu_);
  ++stats_.misses;
  Insert(std::move(e), /*persist=*/true);
}

AnswerCache::Stats AnswerCache::stats() {
  MutexLock l(&mu_);
  Stats s = stats_;
  s.entries = lru_.size();
  s.bytes = bytes_;
  return s;
}

}  // namespace quiver::rag
