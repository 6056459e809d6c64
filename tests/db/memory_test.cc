// The engine's memory accounting: what collections hold counts in the
// server's MemoryBudget, writes and loads past it are refused whole, and the
// incremental counts agree with counting from scratch.
#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "common/memory_budget.h"
#include "common/strings.h"
#include "db/engine.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace quiver::db {
namespace {

using ::quiver::testing::TempDir;
using storage::Record;
using ::testing::HasSubstr;

constexpr uint64_t kMiB = 1 << 20;
constexpr uint32_t kDim = 64;

std::unique_ptr<Engine> Open(const std::string& path, MemoryBudget* budget,
                             uint64_t index_backlog = EngineOptions{}.index_backlog) {
  EngineOptions o;
  o.store.path = path;
  o.memory_budget = budget;
  o.checkpoint_min_inserts = 100000;
  o.index_backlog = index_backlog;
  auto e = Engine::Open(o);
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? *std::move(e) : nullptr;
}

storage::CollectionConfig Config(const std::string& name, storage::IndexKind index,
                                 bool text = false) {
  storage::CollectionConfig c;
  c.name = name;
  c.dimension = kDim;
  c.metric = ann::Metric::kL2;
  c.index = index;
  c.text.enabled = text;
  return c;
}

// Records "<prefix><first>".. with random vectors, metadata and, every
// other one, text and a sparse vector.
std::vector<Record> Records(const std::string& prefix, int first, int n, std::mt19937& rng) {
  std::normal_distribution<float> g;
  std::vector<Record> out;
  for (int i = first; i < first + n; ++i) {
    Record r;
    r.id = StrCat(prefix, i);
    for (uint32_t d = 0; d < kDim; ++d) r.values.push_back(g(rng));
    r.metadata["genre"] = std::string(i % 3 == 0 ? "a fairly long genre name, past SSO" : "poem");
    r.metadata["year"] = static_cast<double>(1900 + i % 100);
    if (i % 2 == 0) {
      r.text = StrCat("document ", i, " about cats and dogs and term", i % 50, " and word", i % 7);
      r.sparse.indices = {static_cast<uint32_t>(i % 10), static_cast<uint32_t>(10 + i % 20)};
      r.sparse.values = {0.5f, 1.5f};
    }
    out.push_back(std::move(r));
  }
  return out;
}

// The data parts the engine counts (the rest belongs to the server).
uint64_t DataBytes(const MemoryAmounts& m) {
  return At(m, MemoryPart::kVectors) + At(m, MemoryPart::kGraph) + At(m, MemoryPart::kPostings) +
         At(m, MemoryPart::kMetadata);
}

uint64_t CollectionBytes(Engine& engine, const std::string& name) {
  auto stats = engine.DescribeStats(name, std::nullopt);
  EXPECT_TRUE(stats.ok()) << stats.status();
  return stats.ok() ? Sum(stats->memory) : 0;
}

TEST(EngineMemoryTest, WritesPastTheBudgetAreRefusedWholeAndDeletesMakeRoom) {
  TempDir dir;
  MemoryBudget budget(2 * kMiB);
  auto engine = Open(dir.path() + "/data", &budget);
  ASSERT_NE(engine, nullptr);
  QUIVER_ASSERT_OK(engine->CreateCollection(Config("flat", storage::IndexKind::kFlat, true)));
  std::mt19937 rng(1);
  int written = 0;
  absl::Status refused;
  for (int batch = 0; batch < 200 && refused.ok(); ++batch) {
    auto n = engine->Upsert("flat", "", Records("r", written, 100, rng));
    if (n.ok()) {
      written += 100;
    } else {
      refused = n.status();
    }
  }
  ASSERT_FALSE(refused.ok()) << "2 MB never filled";
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.message(), HasSubstr("upserting 100 records into collection \"flat\""));
  EXPECT_THAT(refused.message(), HasSubstr("memory budget of 2.0 MB (--memory_budget_mb)"));
  EXPECT_GT(written, 500);
  // Nothing of the refused batch was written; the budget holds.
  EXPECT_EQ(engine->total_record_count(), static_cast<uint64_t>(written));
  auto fetched = engine->Fetch("flat", "", {StrCat("r", written), StrCat("r", written + 99)});
  ASSERT_TRUE(fetched.ok());
  EXPECT_TRUE(fetched->records.empty());
  EXPECT_LE(Sum(budget.used()), 2 * kMiB);
  EXPECT_EQ(Sum(budget.used()), CollectionBytes(*engine, "flat"));
  // Updates that grow records are refused too once the room is gone, and
  // change nothing.
  absl::Status update;
  int grown = 0;
  for (; grown < 20 && update.ok(); ++grown) {
    UpdateSpec grow;
    grow.id = StrCat("r", grown);
    grow.set_metadata = *ParseJson(StrCat(R"({"note":")", std::string(30000, 'x'), R"("})"));
    update = engine->Update("flat", "", grow);
  }
  EXPECT_EQ(update.code(), absl::StatusCode::kResourceExhausted) << update;
  EXPECT_THAT(update.message(), HasSubstr(StrCat("updating record \"r", grown - 1, "\"")));
  auto refused_record = engine->Fetch("flat", "", {StrCat("r", grown - 1)});
  ASSERT_TRUE(refused_record.ok());
  ASSERT_EQ(refused_record->records.size(), 1u);
  EXPECT_FALSE(refused_record->records[0].metadata.contains("note"));
  EXPECT_LE(Sum(budget.used()), 2 * kMiB);
  // Deleting frees a flat index's memory at once: the same batch fits again.
  std::vector<std::string> doomed;
  for (int i = 0; i < written / 2; ++i) doomed.push_back(StrCat("r", i));
  for (size_t i = 0; i < doomed.size(); i += 1000) {
    std::vector<std::string> part(doomed.begin() + i,
                                  doomed.begin() + std::min(doomed.size(), i + 1000));
    QUIVER_ASSERT_OK(engine->DeleteIds("flat", "", part).status());
  }
  EXPECT_EQ(Sum(budget.used()), CollectionBytes(*engine, "flat"));
  QUIVER_ASSERT_OK(engine->Upsert("flat", "", Records("r", written, 100, rng)).status());
  // Dropping the collection gives everything back.
  QUIVER_ASSERT_OK(engine->DropCollection("flat"));
  EXPECT_EQ(Sum(budget.used()), 0u);
}

TEST(EngineMemoryTest, CountsAgreeWithCountingFromScratchAfterRestart) {
  TempDir dir;
  std::mt19937 rng(2);
  MemoryAmounts before{}, flat_before{};
  uint64_t flat_bytes = 0;
  {
    MemoryBudget budget;
    auto engine = Open(dir.path() + "/data", &budget);
    ASSERT_NE(engine, nullptr);
    QUIVER_ASSERT_OK(engine->CreateCollection(Config("flat", storage::IndexKind::kFlat, true)));
    QUIVER_ASSERT_OK(engine->CreateCollection(Config("graph", storage::IndexKind::kHnsw, true)));
    for (const char* name : {"flat", "graph"}) {
      for (int b = 0; b < 6; ++b) {
        QUIVER_ASSERT_OK(
            engine->Upsert(name, b % 2 ? "odd" : "", Records("r", b * 200, 200, rng)).status());
      }
      // Re-writes (new labels), metadata-only updates, deletes.
      QUIVER_ASSERT_OK(engine->Upsert(name, "", Records("r", 0, 150, rng)).status());
      for (int i = 0; i < 100; i += 3) {
        UpdateSpec u;
        u.id = StrCat("r", i);
        u.set_metadata = *ParseJson(R"({"genre":"changed to something much longer than before"})");
        u.text = "new text for the record";
        QUIVER_ASSERT_OK(engine->Update(name, "", u));
      }
      std::vector<std::string> ids;
      for (int i = 0; i < 400; i += 2) ids.push_back(StrCat("r", i));
      QUIVER_ASSERT_OK(engine->DeleteIds(name, "", ids).status());
      QUIVER_ASSERT_OK(engine->DeleteAll(name, "odd").status());
    }
    engine->WaitForIndexing();  // Counts settle once the backlog is in the graph.
    before = budget.used();
    flat_bytes = CollectionBytes(*engine, "flat");
    flat_before = engine->DescribeStats("flat", std::nullopt)->memory;
    EXPECT_EQ(DataBytes(before), flat_bytes + CollectionBytes(*engine, "graph"));
    EXPECT_GT(At(before, MemoryPart::kPostings), 0u);
    EXPECT_GT(At(before, MemoryPart::kMetadata), 0u);
    EXPECT_GT(At(before, MemoryPart::kGraph), 0u);
  }
  MemoryBudget budget;
  auto engine = Open(dir.path() + "/data", &budget);
  ASSERT_NE(engine, nullptr);
  // Vectors and metadata are rebuilt from the records: the incremental
  // counts must equal what the reload counted from scratch. Postings held
  // tombstones of deleted documents, which the reload has not; the graph
  // its deleted nodes, of which the reload keeps those in the checkpoint.
  auto flat = engine->DescribeStats("flat", std::nullopt);
  ASSERT_TRUE(flat.ok());
  EXPECT_EQ(At(flat->memory, MemoryPart::kVectors), At(flat_before, MemoryPart::kVectors));
  EXPECT_EQ(At(flat->memory, MemoryPart::kGraph), At(flat_before, MemoryPart::kGraph));
  EXPECT_EQ(At(budget.used(), MemoryPart::kMetadata), At(before, MemoryPart::kMetadata));
  EXPECT_GT(At(flat->memory, MemoryPart::kPostings), 0u);
  EXPECT_LE(At(flat->memory, MemoryPart::kPostings), At(flat_before, MemoryPart::kPostings));
  EXPECT_EQ(DataBytes(budget.used()),
            CollectionBytes(*engine, "flat") + CollectionBytes(*engine, "graph"));
}

TEST(EngineMemoryTest, ACollectionTooBigForTheBudgetIsNotLoadedAndSaysWhy) {
  TempDir dir;
  std::mt19937 rng(3);
  uint64_t big = 0, small = 0;
  {
    auto engine = Open(dir.path() + "/data", nullptr);
    ASSERT_NE(engine, nullptr);
    QUIVER_ASSERT_OK(engine->CreateCollection(Config("a_small", storage::IndexKind::kFlat)));
    QUIVER_ASSERT_OK(engine->CreateCollection(Config("big", storage::IndexKind::kHnsw)));
    QUIVER_ASSERT_OK(engine->Upsert("a_small", "", Records("s", 0, 100, rng)).status());
    for (int b = 0; b < 20; ++b) {
      QUIVER_ASSERT_OK(engine->Upsert("big", "", Records("b", b * 1000, 1000, rng)).status());
    }
    engine->WaitForIndexing();
    big = CollectionBytes(*engine, "big");
    small = CollectionBytes(*engine, "a_small");
    EXPECT_EQ(Sum(engine->memory_budget().used()), big + small);
  }
  {
    MemoryBudget budget(small + big / 2);
    auto engine = Open(dir.path() + "/data", &budget);
    ASSERT_NE(engine, nullptr);
    EXPECT_EQ(engine->total_record_count(), 100u);
    auto q = engine->Fetch("big", "", {"b1"});
    EXPECT_EQ(q.status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_THAT(q.status().message(),
                HasSubstr("collection \"big\" was not loaded at start-up: loading collection "
                          "\"big\" needs"));
    EXPECT_THAT(q.status().message(), HasSubstr("--memory_budget_mb"));
    EXPECT_THAT(engine->damaged_collections(), ::testing::ElementsAre("big"));
    // What was given back: only the small one is counted.
    EXPECT_EQ(Sum(budget.used()), small);
  }
  MemoryBudget budget(small + big * 2);
  auto engine = Open(dir.path() + "/data", &budget);
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(engine->total_record_count(), 20100u);
  EXPECT_TRUE(engine->damaged_collections().empty());
}

TEST(EngineMemoryTest, TheIndexBacklogNeverCrowdsOutWrites) {
  // Bulk upserts wait in a backlog, a second copy of their vectors, until
  // the graph holds them. Under a budget it takes at most half of the room
  // left, and a write that does not fit while a backlog exists indexes the
  // backlog first: with the background indexer stopped, a budget admits as
  // many records as with no backlog at all.
  auto fill = [](const std::string& path, uint64_t index_backlog, uint64_t* backlog_bytes) {
    std::mt19937 rng(6);
    MemoryBudget budget(2 * kMiB);
    auto engine = Open(path, &budget, index_backlog);
    EXPECT_NE(engine, nullptr);
    if (engine == nullptr) return 0;
    engine->PauseIndexing(true);
    EXPECT_TRUE(engine->CreateCollection(Config("graph", storage::IndexKind::kHnsw)).ok());
    int accepted = 0;
    for (int b = 0;; ++b) {
      auto written = engine->Upsert("graph", "", Records("g", b * 100, 100, rng));
      if (!written.ok()) {
        EXPECT_EQ(written.status().code(), absl::StatusCode::kResourceExhausted);
        break;
      }
      accepted += 100;
      auto stats = engine->DescribeStats("graph", std::nullopt);
      *backlog_bytes =
          std::max<uint64_t>(*backlog_bytes, stats->catching_up_count * kDim * sizeof(float));
    }
    // The backlog was counted at its cost in the graph too: indexed, it
    // still fits.
    engine->PauseIndexing(false);
    engine->WaitForIndexing();
    EXPECT_LE(Sum(budget.used()), budget.total_limit());
    EXPECT_EQ(engine->DescribeStats("graph", std::nullopt)->total_record_count,
              static_cast<uint64_t>(accepted));
    return accepted;
  };
  TempDir dir;
  uint64_t backlog_bytes = 0, none = 0;
  const int with_backlog = fill(dir.path() + "/backlog", 1000000, &backlog_bytes);
  const int without = fill(dir.path() + "/sync", 0, &none);
  EXPECT_GT(backlog_bytes, 0u) << "the budget left room for a backlog at first";
  EXPECT_LE(backlog_bytes, 2 * kMiB / 2);
  EXPECT_EQ(none, 0u);
  EXPECT_GE(with_backlog, without - 100);  // A batch apart at most.
}

TEST(EngineMemoryTest, CompactionWaitsForRoomAndRunsOnceThereIsSome) {
  TempDir dir;
  std::mt19937 rng(5);
  MemoryBudget budget(3 * kMiB);
  auto engine = Open(dir.path() + "/data", &budget);
  ASSERT_NE(engine, nullptr);
  QUIVER_ASSERT_OK(engine->CreateCollection(Config("graph", storage::IndexKind::kHnsw)));
  QUIVER_ASSERT_OK(engine->CreateCollection(Config("filler", storage::IndexKind::kFlat)));
  for (int b = 0; b < 4; ++b) {
    QUIVER_ASSERT_OK(engine->Upsert("graph", "", Records("g", b * 500, 500, rng)).status());
  }
  engine->WaitForIndexing();  // The graph holds them all (no backlog).
  // Fill what is left, so the rebuilt graph would not fit next to the old.
  for (int i = 0;; i += 50) {
    if (!engine->Upsert("filler", "", Records("f", i, 50, rng)).ok()) break;
  }
  const uint64_t full = CollectionBytes(*engine, "graph");
  const uint64_t full_vectors =
      At(engine->DescribeStats("graph", std::nullopt)->memory, MemoryPart::kVectors);
  for (int part = 0; part < 2; ++part) {
    std::vector<std::string> ids;
    for (int i = part * 600; i < (part + 1) * 600; ++i) ids.push_back(StrCat("g", i));
    QUIVER_ASSERT_OK(engine->DeleteIds("graph", "", ids).status());
  }
  // Deleted nodes stay in the graph until it is rebuilt; the graph's memory
  // is still held (less the deleted records' metadata).
  auto stats = engine->DescribeStats("graph", std::nullopt);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->total_record_count, 800u);
  EXPECT_EQ(At(stats->memory, MemoryPart::kVectors), full_vectors);
  EXPECT_EQ(At(stats->memory, MemoryPart::kVectors), 2000u * kDim * sizeof(float));
  // Room appears: the next delete compacts.
  QUIVER_ASSERT_OK(engine->DropCollection("filler"));
  QUIVER_ASSERT_OK(engine->DeleteIds("graph", "", {"g1999"}).status());
  EXPECT_LT(CollectionBytes(*engine, "graph"), full / 2);
  EXPECT_EQ(Sum(budget.used()), CollectionBytes(*engine, "graph"));
  auto usage = engine->Usage();
  ASSERT_EQ(usage.size(), 1u);
  EXPECT_EQ(Sum(usage[0].memory), CollectionBytes(*engine, "graph"));
}

}  // namespace
}  // namespace quiver::db
