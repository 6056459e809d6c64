// Engine: opening the store and loading every collection, shutdown
// (checkpointing what changed), finding collections.
#include "db/engine.h"

#include <algorithm>
#include <filesystem>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/mutex.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "db/collection.h"
#include "db/internal.h"

namespace quiver::db {

using internal::CollectionGone;
using internal::Quoted;
using storage::CollectionMeta;

Engine::Engine(EngineOptions options, std::unique_ptr<storage::Store> store)
    : options_(std::move(options)),
      store_(std::move(store)),
      index_files_(options_.store.path),
      search_pool_(std::max<size_t>(1, options_.search_threads)),
      own_budget_(options_.memory_budget == nullptr ? std::make_unique<MemoryBudget>() : nullptr),
      budget_(options_.memory_budget != nullptr ? options_.memory_budget : own_budget_.get()) {}

Engine::~Engine() {
  stopping_.store(true);
  WakeIndexer();
  // What is left of the backlogs is in the records: the next start finds
  // it missing from the checkpointed graphs and indexes it again.
  if (indexer_thread_.joinable()) indexer_thread_.join();
  // Checkpoint what changed, so the next start loads instead of inserting.
  CheckpointChanged();
}

void Engine::CheckpointChanged() {
  for (const auto& c : AllCollections()) {
    MutexLock wl(&c->write_mu);
    if (c->dropped) continue;
    std::vector<std::pair<std::string, NamespaceState*>> namespaces;
    {
      ReaderMutexLock l(&c->mu);
      for (const auto& [ns, state] : c->namespaces()) namespaces.emplace_back(ns, state.get());
    }
    for (auto& [ns, state] : namespaces) {
      if (state->postings_changes > 0) CheckpointPostings(*c, ns, state);
      if (state->index->checkpointed() && state->inserts_since_checkpoint > 0) {
        MutexLock il(&c->index_mu);  // No inserts from the indexer meanwhile.
        CheckpointNamespace(*c, ns, state);
      }
    }
  }
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Open(const EngineOptions& options) {
  RETURN_IF_ERROR(options.limits.Validate());
  if (options.search_threads < 1) return absl::InvalidArgumentError("search threads must be >= 1");
  ASSIGN_OR_RETURN(std::unique_ptr<storage::Store> store, storage::Store::Open(options.store));
  std::unique_ptr<Engine> engine(new Engine(options, std::move(store)));
  {
    // Scratch files of quantized indexes (full vectors on disk) are unlinked
    // when made; a crash between making and unlinking can leave one.
    std::error_code ec;
    std::filesystem::remove_all(engine->ScratchDir(), ec);
    std::filesystem::create_directories(engine->ScratchDir(), ec);
    if (ec) {
      Log(LogLevel::kWarning, "cannot make the scratch directory; full vectors stay in memory",
          {{"path", engine->ScratchDir()}, {"error", ec.message()}});
    }
  }
  std::vector<std::string> unreadable;
  ASSIGN_OR_RETURN(std::vector<CollectionMeta> metas, engine->store_->LoadCatalog(&unreadable));
  std::map<std::string, absl::Status, std::less<>> damaged;
  for (const std::string& name : unreadable) {
    damaged[name] = absl::UnavailableError(
        StrCat("collection ", Quoted(name), " failed to load at start-up; see the server log"));
  }
  for (const CollectionMeta& meta : metas) {
    const absl::Time start = absl::Now();
    absl::Status s = engine->LoadCollection(meta);
    if (!s.ok()) {
      Log(LogLevel::kError, "collection failed to load; not served",
          {{"collection", meta.config.name}, {"error", s.ToString()}});
      // Memory that ran out is said as it is; anything else is in the log.
      damaged[meta.config.name] =
          absl::IsResourceExhausted(s)
              ? absl::ResourceExhaustedError(StrCat("collection ", Quoted(meta.config.name),
                                                    " was not loaded at start-up: ", s.message()))
              : absl::UnavailableError(StrCat("collection ", Quoted(meta.config.name),
                                              " failed to load at start-up; see the server log"));
      continue;
    }
    Log(LogLevel::kInfo, "collection loaded",
        {{"collection", meta.config.name}, {"ms", absl::ToInt64Milliseconds(absl::Now() - start)}});
  }
  {
    MutexLock lock(&engine->mu_);
    engine->damaged_ = std::move(damaged);
  }
  Engine* raw = engine.get();
  engine->indexer_thread_ = std::thread([raw] { raw->IndexBacklogs(); });
  return engine;
}

absl::StatusOr<std::shared_ptr<Collection>> Engine::Find(std::string_view name) {
  MutexLock lock(&mu_);
  auto it = collections_.find(name);
  if (it == collections_.end()) {
    if (auto d = damaged_.find(name); d != damaged_.end()) return d->second;
    if (name.empty()) return absl::InvalidArgumentError("collection name must not be empty");
    return CollectionGone(name);
  }
  return it->second;
}

std::vector<std::shared_ptr<Collection>> Engine::AllCollections() {
  MutexLock lock(&mu_);
  std::vector<std::shared_ptr<Collection>> all;
  for (const auto& [name, c] : collections_) all.push_back(c);
  return all;
}

std::vector<std::string> Engine::damaged_collections() const {
  MutexLock lock(&mu_);
  std::vector<std::string> names;
  for (const auto& [name, status] : damaged_) names.push_back(name);
  return names;
}

uint64_t Engine::total_record_count() {
  uint64_t n = 0;
  for (const CollectionInfo& info : ListCollections()) n += info.record_count;
  return n;
}

}  // namespace quiver::db
