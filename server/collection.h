// In-memory state of one collection: per namespace, the vector index and the
// id map with each record's metadata (for filters). Records themselves live
// in the store; this is rebuilt from it at start-up.
#ifndef QUIVER_SERVER_COLLECTION_H_
#define QUIVER_SERVER_COLLECTION_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "ann/distance.h"
#include "ann/flat_index.h"
#include "common/strings.h"
#include "storage/collection_config.h"
#include "storage/record.h"

namespace quiver::server {

struct NamespaceState {
  struct Entry {
    std::string id;
    storage::Metadata metadata;
  };
  NamespaceState(size_t dimension, ann::Metric metric) : index(dimension, metric) {}

  ann::FlatIndex index;                                  // Labels are internal ids.
  absl::flat_hash_map<std::string, uint64_t, StringHash, StringEq> internal_of;  // External id -> internal id.
  absl::flat_hash_map<uint64_t, Entry> entries;          // Internal id -> record facts.
};

ann::Metric ToAnnMetric(storage::MetricKind m);

// Locking: writers hold write_mu for the whole write (store, then memory) so
// writes to one collection apply in order; they take mu exclusively only to
// change the in-memory state. Readers take mu shared.
class Collection {
 public:
  explicit Collection(storage::CollectionMeta meta) : meta_(std::move(meta)) {}

  const storage::CollectionMeta& meta() const { return meta_; }
  const storage::CollectionConfig& config() const { return meta_.config; }

  absl::Mutex write_mu;
  absl::Mutex mu ABSL_ACQUIRED_AFTER(write_mu);

  bool dropped ABSL_GUARDED_BY(write_mu) = false;
  uint64_t next_internal_id ABSL_GUARDED_BY(write_mu) = 1;

  // Inserts or replaces a record's index entry (creating the namespace).
  void ApplyPut(std::string_view ns, uint64_t internal_id, storage::Record record)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Removes a record's index entry; drops the namespace when it empties.
  void ApplyDelete(std::string_view ns, std::string_view id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  void ApplyDeleteNamespace(std::string_view ns) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  // Null when the namespace holds no records.
  const NamespaceState* FindNamespace(std::string_view ns) const ABSL_SHARED_LOCKS_REQUIRED(mu);
  std::optional<uint64_t> InternalId(std::string_view ns, std::string_view id) const
      ABSL_SHARED_LOCKS_REQUIRED(mu);
  const std::map<std::string, std::unique_ptr<NamespaceState>, std::less<>>& namespaces() const
      ABSL_SHARED_LOCKS_REQUIRED(mu) {
    return namespaces_;
  }
  uint64_t record_count() const ABSL_SHARED_LOCKS_REQUIRED(mu);

 private:
  const storage::CollectionMeta meta_;
  std::map<std::string, std::unique_ptr<NamespaceState>, std::less<>> namespaces_
      ABSL_GUARDED_BY(mu);
};

}  // namespace quiver::server

#endif  // QUIVER_SERVER_COLLECTION_H_
