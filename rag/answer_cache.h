// The answer cache in front of generation, in two layers:
//   exact:    the same settings, question and sources (ids and text) in the
//             same collection epoch get the stored answer;
//   semantic: a question whose embedding is within `semantic_threshold`
//             (cosine) of a stored one, same collection, namespace, settings
//             and epoch, gets that question's answer and sources.
// Any write to the collection moves its epoch (db::Engine::CollectionEpoch),
// so both layers miss after a change. Entries expire after `ttl`, the least
// recently used go first beyond `max_entries` or `max_bytes`, and every
// entry is written to the store's side table, so a restart keeps them.
// Thread-safe.
#ifndef QUIVER_RAG_ANSWER_CACHE_H_
#define QUIVER_RAG_ANSWER_CACHE_H_

#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/mutex.h"
#include "rag/types.h"
#include "storage/store.h"

namespace quiver::rag {

struct AnswerCacheOptions {
  size_t max_entries = 10000;           // 0 disables the cache.
  size_t max_bytes = 256 << 20;         // Of answers, sources and embeddings.
  int64_t ttl_seconds = 7 * 24 * 3600;  // 0: entries never expire.
  float semantic_threshold = 0.97f;     // Cosine; above 1 turns the layer off.
};

struct CachedAnswer {
  std::string question;
  std::string answer;
  uint32_t prompt_tokens = 0, completion_tokens = 0;
  llm::FinishReason finish = llm::FinishReason::kStop;
  std::string model;
  std::vector<Source> sources;
};

class AnswerCache {
 public:
  // Loads the entries `store` holds (nullptr: memory only; not owned).
  static absl::StatusOr<std::unique_ptr<AnswerCache>> Open(const AnswerCacheOptions& options,
                                                           storage::Store* store);

  std::optional<CachedAnswer> GetExact(uint64_t key);
  // `embedding` unit length. The best entry of `scope` at `epoch` whose
  // question is at least semantic_threshold similar.
  std::optional<CachedAnswer> GetSemantic(std::string_view scope, uint64_t epoch,
                                          const std::vector<float>& embedding);
  void Put(uint64_t key, std::string scope, uint64_t epoch, std::vector<float> embedding,
           CachedAnswer answer);

  struct Stats {
    uint64_t exact_hits = 0, semantic_hits = 0, misses = 0;
    size_t entries = 0, bytes = 0;
  };
  Stats stats();
  const AnswerCacheOptions& options() const { return options_; }

 private:
  struct Entry {
    uint64_t key = 0;
    std::string scope;
    uint64_t epoch = 0;
    int64_t created_unix_ms = 0;
    std::vector<float> embedding;
    CachedAnswer answer;
    size_t bytes = 0;
  };
  using Lru = std::list<Entry>;  // Most recently used first.

  AnswerCache(const AnswerCacheOptions& options, storage::Store* store)
      : options_(options), store_(store) {}
  bool Expired(const Entry& e) const;
  void Erase(Lru::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Insert(Entry e, bool persist) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const AnswerCacheOptions options_;
  storage::Store* const store_;
  Mutex mu_;
  Lru lru_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, Lru::iterator> by_key_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

// Side-table key prefix of the cache's entries.
inline constexpr char kAnswerCachePrefix[] = "rag-cache/";

}  // namespace quiver::rag

#endif  // QUIVER_RAG_ANSWER_CACHE_H_
