#include "storage/store.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "common/coding.h"
#include "common/log.h"
#include "common/mutex.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "rocksdb/cache.h"
#include "rocksdb/options.h"
#include "rocksdb/slice_transform.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/checkpoint.h"
#include "storage/restore.h"

namespace quiver::storage {
namespace {

constexpr char kCatalogCf[] = "catalog";
constexpr char kRecordsCf[] = "records";
constexpr char kIndexDataCf[] = "index_data";
constexpr char kDocumentsCf[] = "documents";
constexpr char kSideCf[] = "side";
// Catalog key holding the next collection id (a fixed32). Collection names
// cannot start with '\0', so it never collides with an entry.
constexpr std::string_view kNextIdKey("\0next_collection_id", 19);

std::string CollectionPrefix(uint32_t collection_id) {
  std::string key;
  PutBigEndian32(&key, collection_id);
  return key;
}

std::string NamespacePrefix(uint32_t collection_id, std::string_view ns) {
  std::string key = CollectionPrefix(collection_id);
  key.push_back(static_cast<char>(ns.size()));
  key.append(ns);
  return key;
}

std::string RecordKey(uint32_t collection_id, std::string_view ns, std::string_view id) {
  std::string key = NamespacePrefix(collection_id, ns);
  key.append(id);
  return key;
}

// Splits a record key into namespace and id; false when malformed.
bool ParseRecordKey(std::string_view key, std::string_view* ns, std::string_view* id) {
  if (key.size() < 5) return false;
  const size_t ns_len = static_cast<uint8_t>(key[4]);
  if (key.size() < 5 + ns_len) return false;
  *ns = key.substr(5, ns_len);
  *id = key.substr(5 + ns_len);
  return true;
}

rocksdb::Slice ToSlice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }

// Side-table key of a collection's epoch: '\0' "epoch" + big-endian id
// (callers' keys are printable, so they never collide).
std::string EpochKey(uint32_t collection_id) {
  std::string key("\0epoch", 6);
  PutBigEndian32(&key, collection_id);
  return key;
}

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

absl::Status FromRocks(const rocksdb::Status& s, std::string_view context) {
  if (s.ok()) return absl::OkStatus();
  const std::string msg = StrCat(context, ": ", s.ToString());
  if (s.IsNotFound()) return absl::NotFoundError(msg);
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsBusy() || s.IsTimedOut() || s.IsTryAgain()) return absl::UnavailableError(msg);
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(msg);
  return absl::InternalError(msg);
}

absl::StatusOr<SyncPolicy> ParseSyncPolicy(std::string_view name) {
  if (name == "always") return SyncPolicy::kAlways;
  if (name == "batch") return SyncPolicy::kBatch;
  if (name == "none") return SyncPolicy::kNone;
  return absl::InvalidArgumentError(
      StrCat("unknown sync policy ", Quoted(name), "; expected always, batch or none"));
}

std::string_view SyncPolicyName(SyncPolicy policy) {
  switch (policy) {
    case SyncPolicy::kAlways:
      return "always";
    case SyncPolicy::kBatch:
      return "batch";
    case SyncPolicy::kNone:
      return "none";
  }
  return "unknown";
}

absl::Status StoreOptions::Validate() const {
  if (path.empty()) return absl::InvalidArgumentError("data directory must not be empty");
  if (batch_sync_interval_ms < 1 || batch_sync_interval_ms > 10000) {
    return absl::InvalidArgumentError("batch sync interval must be in 1..10000 ms");
  }
  if (memtable_bytes < (size_t{4} << 20)) {
    return absl::InvalidArgumentError("memtables need at least 4 MiB (--memtable_mb)");
  }
  return absl::OkStatus();
}

void RecordBatch::Put(uint32_t collection_id, std::string_view ns, const StoredRecord& stored) {
  collections_.insert(collection_id);
  batch_.Put(records_, RecordKey(collection_id, ns, stored.record.id), EncodeStoredRecord(stored));
  ++count_;
}

void RecordBatch::Delete(uint32_t collection_id, std::string_view ns, std::string_view id) {
  collections_.insert(collection_id);
  batch_.Delete(records_, RecordKey(collection_id, ns, id));
  ++count_;
}

void RecordBatch::DeleteNamespace(uint32_t collection_id, std::string_view ns) {
  // Ids are UTF-8, which never contains the byte 0xFF, so prefix + 0xFF bounds
  // every key of the namespace.
  collections_.insert(collection_id);
  const std::string begin = NamespacePrefix(collection_id, ns);
  batch_.DeleteRange(records_, begin, begin + "\xff");
  batch_.DeleteRange(documents_, begin, begin + "\xff");
  // Index data keys continue the prefix with a kind byte below 0xFF.
  batch_.DeleteRange(index_data_, begin, begin + "\xff");
  ++count_;
}

void RecordBatch::PutDocument(uint32_t collection_id, std::string_view ns,
                              const StoredDocument& doc) {
  collections_.insert(collection_id);
  batch_.Put(documents_, RecordKey(collection_id, ns, doc.id), EncodeStoredDocument(doc));
  ++count_;
}

void RecordBatch::DeleteDocument(uint32_t collection_id, std::string_view ns, std::string_view id) {
  collections_.insert(collection_id);
  batch_.Delete(documents_, RecordKey(collection_id, ns, id));
  ++count_;
}

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  RETURN_IF_ERROR(options.Validate());
  RETURN_IF_ERROR(CheckNoInterruptedRestore(options.path));
  std::error_code ec;
  std::filesystem::create_directories(options.path, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        StrCat("cannot create data directory ", options.path, ": ", ec.message()));
  }
  rocksdb::Options db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.IncreaseParallelism(2);
  db_options.keep_log_file_num = 5;
  db_options.db_write_buffer_size = options.memtable_bytes;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  table.cache_index_and_filter_blocks = true;
  rocksdb::ColumnFamilyOptions cf_options(db_options);
  cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  // Records hold mostly float vectors, which general-purpose compression
  // barely shrinks; skipping it saves CPU on import and scans.
  rocksdb::ColumnFamilyOptions records_options = cf_options;
  records_options.compression = rocksdb::kNoCompression;

  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, cf_options},
      {kCatalogCf, cf_options},
      {kRecordsCf, records_options},
      {kIndexDataCf, cf_options},
      {kDocumentsCf, cf_options},
      {kSideCf, cf_options},
  };
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, options.path, cfs, &handles, &raw);
  if (!s.ok()) return FromRocks(s, StrCat("opening data directory ", options.path));
  return std::unique_ptr<Store>(
      new Store(options, std::unique_ptr<rocksdb::DB>(raw), std::move(handles)));
}

Store::Store(StoreOptions options, std::unique_ptr<rocksdb::DB> db,
             std::vector<rocksdb::ColumnFamilyHandle*> handles)
    : options_(std::move(options)),
      db_(std::move(db)),
      catalog_(handles[1]),
      records_(handles[2]),
      index_data_(handles[3]),
      documents_(handles[4]),
      side_(handles[5]),
      handles_(std::move(handles)) {
  if (options_.sync == SyncPolicy::kBatch) syncer_ = std::thread([this] { SyncLoop(); });
}

Store::~Store() {
  {
    std::lock_guard<std::mutex> lock(sync_mu_);
    stopping_ = true;
  }
  sync_cv_.notify_all();
  if (syncer_.joinable()) syncer_.join();
  rocksdb::Status s = db_->SyncWAL();
  if (!s.ok()) Log(LogLevel::kError, "WAL sync at close failed", {{"error", s.ToString()}});
  for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
  s = db_->Close();
  if (!s.ok()) Log(LogLevel::kError, "closing the store failed", {{"error", s.ToString()}});
}

void Store::SyncLoop() {
  const absl::Duration interval = absl::Milliseconds(options_.batch_sync_interval_ms);
  std::unique_lock<std::mutex> lock(sync_mu_);
  while (!stopping_) {
    sync_cv_.wait_for(lock, absl::ToChronoMilliseconds(interval), [this] { return stopping_; });
    if (wal_dirty_.exchange(false)) {
      lock.unlock();
      rocksdb::Status s = db_->SyncWAL();
      if (!s.ok()) Log(LogLevel::kError, "WAL group sync failed", {{"error", s.ToString()}});
      lock.lock();
    }
  }
}

absl::Status Store::Write(RecordBatch* batch) {
  {
    // Epochs are microsecond clock readings, kept increasing per
    // collection, so a value seen before a restart is never seen again
    // after a later write.
    MutexLock lock(&epoch_mu_);
    for (uint32_t id : batch->collections_) {
      ASSIGN_OR_RETURN(uint64_t last, LoadEpoch(id));
      const uint64_t next = std::max<uint64_t>(last + 1, NowMicros());
      epochs_[id] = next;
      std::string value;
      PutFixed64(&value, next);
      batch->batch_.Put(side_, EpochKey(id), value);
    }
  }
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync == SyncPolicy::kAlways;
  RETURN_IF_ERROR(FromRocks(db_->Write(wo, &batch->batch_), "writing records"));
  wal_dirty_.store(true, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> Store::LoadEpoch(uint32_t collection_id) {
  auto it = epochs_.find(collection_id);
  if (it != epochs_.end()) return it->second;
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), side_, EpochKey(collection_id), &value);
  uint64_t epoch = 0;
  if (s.ok()) {
    std::string_view in(value);
    if (!GetFixed64(&in, &epoch)) return absl::DataLossError("a collection epoch is damaged");
  } else if (!s.IsNotFound()) {
    return FromRocks(s, "reading a collection epoch");
  }
  epochs_[collection_id] = epoch;
  return epoch;
}

absl::StatusOr<uint64_t> Store::CollectionEpoch(uint32_t collection_id) {
  MutexLock lock(&epoch_mu_);
  return LoadEpoch(collection_id);
}

absl::StatusOr<std::optional<StoredDocument>> Store::GetDocument(uint32_t collection_id,
                                                                 std::string_view ns,
                                                                 std::string_view id) {
  std::string value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), documents_, RecordKey(collection_id, ns, id), &value);
  if (s.IsNotFound()) return std::optional<StoredDocument>();
  RETURN_IF_ERROR(FromRocks(s, "reading a document"));
  ASSIGN_OR_RETURN(StoredDocument doc, DecodeStoredDocument(id, value));
  return std::optional<StoredDocument>(std::move(doc));
}

absl::StatusOr<std::vector<StoredDocument>> Store::ListDocuments(uint32_t collection_id,
                                                                 std::string_view ns,
                                                                 std::string_view prefix,
                                                                 std::string_view start_after,
                                                                 size_t limit) {
  const std::string ns_prefix = NamespacePrefix(collection_id, ns);
  const std::string seek = ns_prefix + std::string(prefix);
  const std::string end = ns_prefix + "\xff";
  rocksdb::Slice upper(end);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, documents_));
  std::vector<StoredDocument> out;
  it->Seek(start_after.empty() || start_after < prefix ? seek
                                                       : ns_prefix + std::string(start_after));
  for (; it->Valid() && out.size() < limit; it->Next()) {
    const std::string_view key(it->key().data(), it->key().size());
    const std::string_view id = key.substr(ns_prefix.size());
    if (!id.starts_with(prefix)) break;
    if (!start_after.empty() && id <= start_after) continue;
    ASSIGN_OR_RETURN(
        StoredDocument doc,
        DecodeStoredDocument(id, std::string_view(it->value().data(), it->value().size())));
    out.push_back(std::move(doc));
  }
  RETURN_IF_ERROR(FromRocks(it->status(), "listing documents"));
  return out;
}

absl::Status Store::PutSide(std::string_view key, std::string_view value) {
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync == SyncPolicy::kAlways;
  RETURN_IF_ERROR(FromRocks(db_->Put(wo, side_, ToSlice(key), ToSlice(value)), "writing"));
  wal_dirty_.store(true, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::string>> Store::GetSide(std::string_view key) {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), side_, ToSlice(key), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  RETURN_IF_ERROR(FromRocks(s, "reading"));
  return std::optional<std::string>(std::move(value));
}

absl::Status Store::DeleteSide(std::string_view key) {
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync == SyncPolicy::kAlways;
  return FromRocks(db_->Delete(wo, side_, ToSlice(key)), "deleting");
}

absl::Status Store::ScanSide(
    std::string_view prefix,
    const std::function<absl::Status(std::string_view key, std::string_view value)>& visit) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), side_));
  for (it->Seek(ToSlice(prefix)); it->Valid(); it->Next()) {
    const std::string_view key(it->key().data(), it->key().size());
    if (!key.starts_with(prefix)) break;
    RETURN_IF_ERROR(visit(key, std::string_view(it->value().data(), it->value().size())));
  }
  return FromRocks(it->status(), "scanning");
}

absl::StatusOr<CollectionMeta> Store::CreateCollection(const CollectionConfig& config,
                                                       int64_t created_unix_ms) {
  RETURN_IF_ERROR(config.Validate());
  MutexLock lock(&catalog_mu_);
  std::string existing;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), catalog_, config.name, &existing);
  if (s.ok()) {
    return absl::AlreadyExistsError(StrCat("collection ", Quoted(config.name), " already exists"));
  }
  if (!s.IsNotFound()) return FromRocks(s, "reading the catalog");
  uint32_t next_id = 1;
  std::string next;
  s = db_->Get(rocksdb::ReadOptions(), catalog_, ToSlice(kNextIdKey), &next);
  if (s.ok()) {
    std::string_view in(next);
    if (!GetFixed32(&in, &next_id)) return absl::DataLossError("catalog id counter is damaged");
  } else if (!s.IsNotFound()) {
    return FromRocks(s, "reading the catalog");
  }
  CollectionMeta meta{next_id, created_unix_ms, config};
  std::string counter;
  PutFixed32(&counter, next_id + 1);
  rocksdb::WriteBatch wb;
  wb.Put(catalog_, config.name, EncodeCollectionMeta(meta));
  wb.Put(catalog_, ToSlice(kNextIdKey), counter);
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync != SyncPolicy::kNone;  // Catalog changes are rare: always durable.
  RETURN_IF_ERROR(FromRocks(db_->Write(wo, &wb), "writing the catalog"));
  return meta;
}

absl::Status Store::DropCollection(const CollectionMeta& meta) {
  MutexLock lock(&catalog_mu_);
  rocksdb::WriteBatch wb;
  wb.Delete(catalog_, meta.config.name);
  const std::string begin = CollectionPrefix(meta.id);
  const std::string end = CollectionPrefix(meta.id + 1);
  wb.DeleteRange(records_, begin, end);
  wb.DeleteRange(index_data_, begin, end);
  wb.DeleteRange(documents_, begin, end);
  wb.Delete(side_, EpochKey(meta.id));
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync != SyncPolicy::kNone;
  return FromRocks(db_->Write(wo, &wb), "dropping collection");
}

absl::StatusOr<std::vector<CollectionMeta>> Store::LoadCatalog(std::vector<std::string>* damaged) {
  std::vector<CollectionMeta> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), catalog_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const std::string_view key(it->key().data(), it->key().size());
    if (key == kNextIdKey) continue;
    auto meta = DecodeCollectionMeta(std::string_view(it->value().data(), it->value().size()));
    if (!meta.ok() || meta->config.name != key) {
      Log(LogLevel::kError, "damaged catalog entry",
          {{"collection", key}, {"error", meta.status().ToString()}});
      if (damaged != nullptr) damaged->emplace_back(key);
      continue;
    }
    out.push_back(*std::move(meta));
  }
  RETURN_IF_ERROR(FromRocks(it->status(), "reading the catalog"));
  return out;
}

absl::StatusOr<std::optional<StoredRecord>> Store::Get(uint32_t collection_id, std::string_view ns,
                                                       std::string_view id) {
  std::string value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), records_, RecordKey(collection_id, ns, id), &value);
  if (s.IsNotFound()) return std::optional<StoredRecord>();
  RETURN_IF_ERROR(FromRocks(s, "reading a record"));
  ASSIGN_OR_RETURN(StoredRecord stored, DecodeStoredRecord(id, value));
  return std::optional<StoredRecord>(std::move(stored));
}

absl::Status Store::ScanCollection(
    uint32_t collection_id,
    const std::function<absl::Status(std::string_view ns, StoredRecord stored)>& fn) {
  const std::string begin = CollectionPrefix(collection_id);
  const std::string end = CollectionPrefix(collection_id + 1);
  rocksdb::Slice upper(end);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper;
  ro.fill_cache = false;
  ro.readahead_size = 2 << 20;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, records_));
  for (it->Seek(begin); it->Valid(); it->Next()) {
    std::string_view ns, id;
    const std::string_view key(it->key().data(), it->key().size());
    if (!ParseRecordKey(key, &ns, &id)) return absl::DataLossError("malformed record key");
    ASSIGN_OR_RETURN(
        StoredRecord stored,
        DecodeStoredRecord(id, std::string_view(it->value().data(), it->value().size())));
    RETURN_IF_ERROR(fn(ns, std::move(stored)));
  }
  return FromRocks(it->status(), "scanning records");
}

namespace {

// Index data keys: namespace prefix, kind, then 'P' (the current generation,
// a fixed64) or 'G' + big-endian generation + the index's own key.
std::string IndexDataPrefix(uint32_t collection_id, std::string_view ns, char kind) {
  std::string key = NamespacePrefix(collection_id, ns);
  key.push_back(kind);
  return key;
}

std::string GenerationPrefix(const std::string& prefix, uint64_t generation) {
  std::string key = prefix + "G";
  PutBigEndian64(&key, generation);
  return key;
}

// Collects pairs into write batches of a few MiB (a large index is written
// in many batches; the generation switch makes them visible at once).
class BatchingSink : public KvSink {
 public:
  BatchingSink(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, std::string prefix)
      : db_(db), cf_(cf), prefix_(std::move(prefix)) {}
  absl::Status Put(std::string_view key, std::string_view value) override {
    key_.assign(prefix_);
    key_.append(key);
    batch_.Put(cf_, key_, ToSlice(value));
    return batch_.GetDataSize() >= (4 << 20) ? Flush() : absl::OkStatus();
  }
  absl::Status Flush() {
    if (batch_.Count() == 0) return absl::OkStatus();
    RETURN_IF_ERROR(FromRocks(db_->Write(rocksdb::WriteOptions(), &batch_), "writing index data"));
    batch_.Clear();
    return absl::OkStatus();
  }

 private:
  rocksdb::DB* db_;
  rocksdb::ColumnFamilyHandle* cf_;
  std::string prefix_, key_;
  rocksdb::WriteBatch batch_;
};

}  // namespace

absl::Status Store::ReplaceIndexData(uint32_t collection_id, std::string_view ns, char kind,
                                     const std::function<absl::Status(KvSink&)>& write) {
  const std::string prefix = IndexDataPrefix(collection_id, ns, kind);
  const std::string pointer = prefix + "P";
  uint64_t current = 0;
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), index_data_, pointer, &value);
  if (s.ok()) {
    std::string_view in(value);
    if (!GetFixed64(&in, &current)) current = 0;
  } else if (!s.IsNotFound()) {
    return FromRocks(s, "reading index data");
  }
  const uint64_t next = current + 1;
  // Leftovers of an interrupted replacement, and the generation in use.
  rocksdb::WriteBatch cleanup;
  cleanup.DeleteRange(index_data_, GenerationPrefix(prefix, next),
                      GenerationPrefix(prefix, UINT64_MAX));
  RETURN_IF_ERROR(FromRocks(db_->Write(rocksdb::WriteOptions(), &cleanup), "writing index data"));
  BatchingSink sink(db_.get(), index_data_, GenerationPrefix(prefix, next));
  RETURN_IF_ERROR(write(sink));
  RETURN_IF_ERROR(sink.Flush());
  // Syncing the WAL with the switch makes every batch before it durable too.
  rocksdb::WriteBatch flip;
  std::string gen;
  PutFixed64(&gen, next);
  flip.Put(index_data_, pointer, gen);
  flip.DeleteRange(index_data_, GenerationPrefix(prefix, 0), GenerationPrefix(prefix, next));
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync != SyncPolicy::kNone;
  return FromRocks(db_->Write(wo, &flip), "switching index data");
}

absl::Status Store::DeleteIndexData(uint32_t collection_id, std::string_view ns) {
  const std::string begin = NamespacePrefix(collection_id, ns);
  rocksdb::WriteBatch wb;
  wb.DeleteRange(index_data_, begin, begin + "\xff");
  return FromRocks(db_->Write(rocksdb::WriteOptions(), &wb), "deleting index data");
}

absl::Status Store::ScanIndexData(
    uint32_t collection_id, std::string_view ns, char kind,
    const std::function<absl::Status(std::string_view key, std::string_view value)>& visit) {
  const std::string prefix = IndexDataPrefix(collection_id, ns, kind);
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), index_data_, prefix + "P", &value);
  if (s.IsNotFound()) return absl::NotFoundError("no index data saved");
  RETURN_IF_ERROR(FromRocks(s, "reading index data"));
  std::string_view in(value);
  uint64_t generation;
  if (!GetFixed64(&in, &generation)) return absl::DataLossError("damaged index data pointer");
  const std::string begin = GenerationPrefix(prefix, generation);
  const std::string end = GenerationPrefix(prefix, generation + 1);
  rocksdb::Slice upper(end);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper;
  ro.fill_cache = false;
  ro.readahead_size = 2 << 20;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, index_data_));
  for (it->Seek(begin); it->Valid(); it->Next()) {
    std::string_view key(it->key().data(), it->key().size());
    key.remove_prefix(begin.size());
    RETURN_IF_ERROR(visit(key, std::string_view(it->value().data(), it->value().size())));
  }
  return FromRocks(it->status(), "scanning index data");
}

absl::StatusOr<std::vector<std::string>> Store::ListIds(uint32_t collection_id, std::string_view ns,
                                                        std::string_view prefix,
                                                        std::string_view start_after,
                                                        size_t limit) {
  const std::string ns_prefix = NamespacePrefix(collection_id, ns);
  const std::string seek = ns_prefix + std::string(std::max(prefix, start_after));
  std::vector<std::string> out;
  rocksdb::ReadOptions ro;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, records_));
  for (it->Seek(seek); it->Valid() && out.size() < limit; it->Next()) {
    const std::string_view key(it->key().data(), it->key().size());
    if (!key.starts_with(ns_prefix)) break;
    const std::string_view id = key.substr(ns_prefix.size());
    if (!id.starts_with(prefix)) break;
    if (!start_after.empty() && id <= start_after) continue;
    out.emplace_back(id);
  }
  RETURN_IF_ERROR(FromRocks(it->status(), "listing ids"));
  return out;
}

uint64_t Store::ApproximateBytes(uint32_t collection_id) {
  const std::string begin = CollectionPrefix(collection_id);
  const std::string end = CollectionPrefix(collection_id + 1);
  const rocksdb::Range range(begin, end);
  rocksdb::SizeApproximationOptions options;
  options.include_memtables = true;
  options.include_files = true;
  uint64_t total = 0;
  for (rocksdb::ColumnFamilyHandle* cf : {records_, index_data_, documents_}) {
    uint64_t size = 0;
    if (db_->GetApproximateSizes(options, cf, &range, 1, &size).ok()) total += size;
  }
  return total;
}

absl::Status Store::WriteSnapshot(const std::string& dir) {
  rocksdb::Checkpoint* raw = nullptr;
  RETURN_IF_ERROR(FromRocks(rocksdb::Checkpoint::Create(db_.get(), &raw), "snapshot"));
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  return FromRocks(checkpoint->CreateCheckpoint(dir), StrCat("snapshot to ", dir));
}

}  // namespace quiver::storage
