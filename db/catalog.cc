// Engine: collection lifecycle (create, describe, list, drop).
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/mutex.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "db/collection.h"
#include "db/engine.h"
#include "db/internal.h"

namespace quiver::db {

using internal::CollectionGone;
using internal::Quoted;
using storage::CollectionConfig;
using storage::CollectionMeta;

absl::StatusOr<CollectionInfo> Engine::CreateCollection(const CollectionConfig& config_in) {
  CollectionConfig config = config_in;
  if (!config.embedding_model.empty()) {
    ASSIGN_OR_RETURN(TextEmbedder * embedder, EmbedderFor(config));
    if (config.dimension == 0) config.dimension = static_cast<uint32_t>(embedder->dimension());
    if (config.dimension != embedder->dimension()) {
      return absl::InvalidArgumentError(
          StrCat("collection ", Quoted(config.name), " has dimension ", config.dimension,
                 " but embedding model ", Quoted(config.embedding_model), " makes vectors of ",
                 embedder->dimension()));
    }
  }
  RETURN_IF_ERROR(config.Validate());
  {
    MutexLock lock(&mu_);
    if (collections_.contains(config.name)) {
      return absl::AlreadyExistsError(
          StrCat("collection ", Quoted(config.name), " already exists"));
    }
  }
  ASSIGN_OR_RETURN(CollectionMeta meta,
                   store_->CreateCollection(config, absl::ToUnixMillis(absl::Now())));
  MutexLock lock(&mu_);
  collections_[config.name] = std::make_shared<Collection>(meta, ScratchDir());
  Log(LogLevel::kInfo, "collection created",
      {{"collection", config.name},
       {"dimension", config.dimension},
       {"metric", ann::MetricName(config.metric)}});
  return CollectionInfo{meta, 0, 0};
}

absl::StatusOr<CollectionInfo> Engine::GetCollection(std::string_view name) {
  ASSIGN_OR_RETURN(auto c, Find(name));
  ReaderMutexLock l(&c->mu);
  return CollectionInfo{c->meta(), c->record_count(),
                        static_cast<uint32_t>(c->namespaces().size())};
}

std::vector<CollectionInfo> Engine::ListCollections() {
  std::vector<CollectionInfo> out;
  for (const auto& c : AllCollections()) {
    ReaderMutexLock l(&c->mu);
    out.push_back(CollectionInfo{c->meta(), c->record_count(),
                                 static_cast<uint32_t>(c->namespaces().size())});
  }
  return out;
}

std::vector<CollectionUsage> Engine::Usage() {
  std::vector<CollectionUsage> out;
  for (const auto& c : AllCollections()) {
    CollectionUsage u;
    u.name = c->config().name;
    {
      ReaderMutexLock l(&c->mu);
      u.record_count = c->record_count();
      for (const auto& [ns, state] : c->namespaces()) {
        u.index_bytes += state->index->stored_count() * state->index->BytesPerVector();
      }
      u.memory = c->Memory();
    }
    u.stored_bytes = store_->ApproximateBytes(c->meta().id);
    u.vectors_indexed = c->counters.vectors_indexed.load(std::memory_order_relaxed);
    u.queries = c->counters.queries.load(std::memory_order_relaxed);
    u.compactions = c->counters.compactions.load(std::memory_order_relaxed);
    u.checkpoints = c->counters.checkpoints.load(std::memory_order_relaxed);
    out.push_back(std::move(u));
  }
  return out;
}

absl::Status Engine::DropCollection(std::string_view name) {
  ASSIGN_OR_RETURN(auto c, Find(name));
  MutexLock wl(&c->write_mu);
  if (c->dropped) return CollectionGone(name);
  RETURN_IF_ERROR(store_->DropCollection(c->meta()));
  c->dropped = true;
  index_files_.RemoveCollection(c->meta().id);
  budget_->Release(c->charged);
  c->charged = {};
  MutexLock lock(&mu_);
  collections_.erase(std::string(name));
  Log(LogLevel::kInfo, "collection dropped", {{"collection", name}});
  return absl::OkStatus();
}

}  // namespace quiver::db
