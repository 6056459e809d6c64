// The RocksDB-backed store: the collection catalog and every record.
// Layout and encodings: docs/storage_format.md.
#ifndef QUIVER_STORAGE_STORE_H_
#define QUIVER_STORAGE_STORE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "common/kv.h"
#include "common/mutex.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"
#include "storage/collection_config.h"
#include "storage/document.h"
#include "storage/record.h"

namespace quiver::storage {

// When an acknowledged write is fsync'ed.
//   kAlways: before the write is acknowledged (survives power loss; RocksDB
//            groups concurrent writers into one fsync).
//   kBatch:  the write is in the WAL (OS page cache) before it is
//            acknowledged, so it survives a crash of the process (kill -9);
//            a background group commit fsyncs the WAL every
//            batch_sync_interval_ms, bounding loss on power failure.
//   kNone:   like kBatch without the background fsync (the OS decides).
enum class SyncPolicy { kAlways, kBatch, kNone };
absl::StatusOr<SyncPolicy> ParseSyncPolicy(std::string_view name);
std::string_view SyncPolicyName(SyncPolicy policy);

// Namespaces: 0..kMaxNamespaceBytes bytes; "" is the default namespace.
inline constexpr size_t kMaxNamespaceBytes = 255;

struct StoreOptions {
  std::string path;                      // REQUIRES: not empty.
  SyncPolicy sync = SyncPolicy::kBatch;  // Default: kBatch.
  int batch_sync_interval_ms = 20;       // Default 20. REQUIRES: 1..10000.
  size_t block_cache_bytes = 256 << 20;  // Default 256 MiB.
  // Memtables of every column family together (RocksDB's
  // db_write_buffer_size: past it the largest is flushed). Default 64 MiB.
  size_t memtable_bytes = 64 << 20;
  absl::Status Validate() const;
};

// Writes to be applied atomically by Store::Write.
class RecordBatch {
 public:
  void Put(uint32_t collection_id, std::string_view ns, const StoredRecord& stored);
  void Delete(uint32_t collection_id, std::string_view ns, std::string_view id);
  // Deletes every record and document of the namespace and its saved index
  // data.
  void DeleteNamespace(uint32_t collection_id, std::string_view ns);
  void PutDocument(uint32_t collection_id, std::string_view ns, const StoredDocument& doc);
  void DeleteDocument(uint32_t collection_id, std::string_view ns, std::string_view id);
  size_t count() const { return count_; }

 private:
  friend class Store;
  RecordBatch(rocksdb::ColumnFamilyHandle* records, rocksdb::ColumnFamilyHandle* index_data,
              rocksdb::ColumnFamilyHandle* documents)
      : records_(records), index_data_(index_data), documents_(documents) {}
  rocksdb::ColumnFamilyHandle* records_;
  rocksdb::ColumnFamilyHandle* index_data_;
  rocksdb::ColumnFamilyHandle* documents_;
  rocksdb::WriteBatch batch_;
  size_t count_ = 0;
  absl::flat_hash_set<uint32_t> collections_;  // Touched: their epochs move.
};

// Thread-safe.
class Store {
 public:
  // Opens or creates the database at options.path.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const StoreOptions& options);
  // Syncs the WAL and closes the database.
  ~Store();

  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Catalog. CreateCollection validates the config, assigns a fresh id and
  // returns ALREADY_EXISTS when the name is taken.
  absl::StatusOr<CollectionMeta> CreateCollection(const CollectionConfig& config,
                                                  int64_t created_unix_ms);
  // Removes the catalog entry and all of the collection's records atomically.
  absl::Status DropCollection(const CollectionMeta& meta);
  // Every catalog entry that decodes; names of damaged entries go to `damaged`.
  absl::StatusOr<std::vector<CollectionMeta>> LoadCatalog(std::vector<std::string>* damaged);

  RecordBatch NewBatch() { return RecordBatch(records_, index_data_, documents_); }
  // Applies the batch atomically with the store's sync policy, and moves the
  // epoch of every collection it touches.
  absl::Status Write(RecordBatch* batch);

  // A value that changes (grows) with every write to the collection and
  // survives restarts: caches of answers derived from a collection's
  // content compare it to know they are stale. 0 before the first write.
  absl::StatusOr<uint64_t> CollectionEpoch(uint32_t collection_id);

  // Documents (see storage/document.h); nullopt when absent.
  absl::StatusOr<std::optional<StoredDocument>> GetDocument(uint32_t collection_id,
                                                            std::string_view ns,
                                                            std::string_view id);
  // Documents in `ns` whose ids start with `prefix` and sort after
  // `start_after` (all when empty), in byte order, at most `limit`.
  absl::StatusOr<std::vector<StoredDocument>> ListDocuments(uint32_t collection_id,
                                                            std::string_view ns,
                                                            std::string_view prefix,
                                                            std::string_view start_after,
                                                            size_t limit);

  // The side table: small key/value state of layers above the engine (the
  // answer cache), written durably one pair at a time. Keys are the
  // caller's; ScanSide visits those starting with `prefix` in key order.
  absl::Status PutSide(std::string_view key, std::string_view value);
  absl::StatusOr<std::optional<std::string>> GetSide(std::string_view key);
  absl::Status DeleteSide(std::string_view key);
  absl::Status ScanSide(
      std::string_view prefix,
      const std::function<absl::Status(std::string_view key, std::string_view value)>& visit);

  // The record, or nullopt when absent.
  absl::StatusOr<std::optional<StoredRecord>> Get(uint32_t collection_id, std::string_view ns,
                                                  std::string_view id);
  // Calls fn(namespace, record) for every record of a collection, in
  // (namespace, id) order; stops at the first error fn returns.
  absl::Status ScanCollection(
      uint32_t collection_id,
      const std::function<absl::Status(std::string_view ns, StoredRecord stored)>& fn);
  // Ids in `ns` that start with `prefix` and sort after `start_after` (all
  // when empty), in byte order, at most `limit`.
  absl::StatusOr<std::vector<std::string>> ListIds(uint32_t collection_id, std::string_view ns,
                                                   std::string_view prefix,
                                                   std::string_view start_after, size_t limit);

  // Index data: what an index saves of itself (text and sparse postings),
  // one set of key/value pairs per (collection, namespace, kind), replaced
  // as a whole. ReplaceIndexData writes a new generation through `write`
  // and switches to it atomically once all of it is durable; a crash before
  // that leaves the previous generation in place.
  absl::Status ReplaceIndexData(uint32_t collection_id, std::string_view ns, char kind,
                                const std::function<absl::Status(KvSink&)>& write);
  // Drops every kind of index data of the namespace.
  absl::Status DeleteIndexData(uint32_t collection_id, std::string_view ns);
  // Passes the current generation's pairs to `visit` in key order;
  // NOT_FOUND when none was saved.
  absl::Status ScanIndexData(
      uint32_t collection_id, std::string_view ns, char kind,
      const std::function<absl::Status(std::string_view key, std::string_view value)>& visit);

  // Writes a consistent point-in-time copy of the database to `dir`, which
  // must not exist. The copy opens as a normal data directory. (RocksDB calls
  // this a checkpoint; in Quiver a checkpoint is an index's saved state.)
  absl::Status WriteSnapshot(const std::string& dir);
  // Approximate bytes the collection's records, documents and index data
  // take on disk and in memtables.
  uint64_t ApproximateBytes(uint32_t collection_id);

  const StoreOptions& options() const { return options_; }

 private:
  Store(StoreOptions options, std::unique_ptr<rocksdb::DB> db,
        std::vector<rocksdb::ColumnFamilyHandle*> handles);
  void SyncLoop();

  const StoreOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::ColumnFamilyHandle* catalog_;  // Owned by handles_.
  rocksdb::ColumnFamilyHandle* records_;
  rocksdb::ColumnFamilyHandle* index_data_;
  rocksdb::ColumnFamilyHandle* documents_;
  rocksdb::ColumnFamilyHandle* side_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;

  Mutex catalog_mu_;  // Serialises catalog changes (id allocation).

  Mutex epoch_mu_;
  absl::flat_hash_map<uint32_t, uint64_t> epochs_ ABSL_GUARDED_BY(epoch_mu_);  // Loaded lazily.
  absl::StatusOr<uint64_t> LoadEpoch(uint32_t collection_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(epoch_mu_);

  std::mutex sync_mu_;  // With sync_cv_: wakes SyncLoop to stop.
  std::condition_variable sync_cv_;
  bool stopping_ = false;  // Guarded by sync_mu_.
  std::atomic<bool> wal_dirty_{false};
  std::thread syncer_;  // Runs for kBatch only.
};

// rocksdb::Status -> absl::Status with the same meaning.
absl::Status FromRocks(const rocksdb::Status& s, std::string_view context);

}  // namespace quiver::storage

#endif  // QUIVER_STORAGE_STORE_H_
