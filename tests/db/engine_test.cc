#include "db/engine.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/index_files.h"
#include "tests/testing/test_util.h"

namespace quiver::db {
namespace {

using ::quiver::testing::StatusIs;
using ::quiver::testing::TempDir;
using storage::Record;

Record Rec(const std::string& id, std::vector<float> v, const char* md = nullptr) {
  Record r;
  r.id = id;
  r.values = std::move(v);
  if (md != nullptr) r.metadata = *storage::MetadataFromJson(*ParseJson(md));
  return r;
}

// Opens an engine on `path` (a test failure when it cannot).
std::unique_ptr<Engine> OpenEngine(const std::string& path, uint64_t checkpoint_min = 50000,
                                   uint64_t index_backlog = EngineOptions().index_backlog) {
  EngineOptions o;
  o.store.path = path;
  o.checkpoint_min_inserts = checkpoint_min;
  o.index_backlog = index_backlog;
  auto e = Engine::Open(o);
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? *std::move(e) : nullptr;
}

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Open();
    storage::CollectionConfig c;
    c.name = "docs";
    c.dimension = 3;
    c.metric = ann::Metric::kCosine;
    QUIVER_ASSERT_OK(engine_->CreateCollection(c));
  }
  void Open() {
    engine_.reset();
    engine_ = OpenEngine(dir_.path() + "/data");
    ASSERT_NE(engine_, nullptr);
  }
  QueryRequest Q(std::vector<float> v, uint32_t k = 10) {
    QueryRequest q;
    q.vector = std::move(v);
    q.top_k = k;
    return q;
  }

  TempDir dir_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineTest, UpsertQueryFetchRoundTrip) {
  ASSERT_TRUE(
      engine_
          ->Upsert("docs", "",
                   {Rec("a", {1, 0, 0}, R"({"g":"x"})"), Rec("b", {0, 1, 0}), Rec("c", {1, 1, 0})})
          .ok());
  auto r = engine_->Query("docs", Q({1, 0.1f, 0}, 2));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->matches.size(), 2u);
  EXPECT_EQ(r->matches[0].id, "a");
  EXPECT_EQ(r->matches[1].id, "c");
  auto f = engine_->Fetch("docs", "", {"a", "zz"});
  ASSERT_TRUE(f.ok());
  ASSERT_EQ(f->records.size(), 1u);
  EXPECT_EQ(f->records[0].values, std::vector<float>({1, 0, 0}));
  EXPECT_EQ(f->missing_ids, std::vector<std::string>({"zz"}));
}

TEST_F(EngineTest, WrongDimensionNamesIdAndSizes) {
  auto s = engine_->Upsert("docs", "", {Rec("a", {1, 2})});
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(s.status().message(),
            "vector for id \"a\" has 2 values; collection \"docs\" expects 3");
}

TEST_F(EngineTest, ValidationErrors) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  struct Case {
    const char* what;
    std::function<absl::Status()> call;
    absl::StatusCode code;
    std::string message;  // The whole message.
  };
  auto upsert = [&](std::vector<Record> records, std::string ns = "") {
    return [=, this] { return engine_->Upsert("docs", ns, records).status(); };
  };
  auto query = [&](QueryRequest q) {
    return [=, this] { return engine_->Query("docs", q).status(); };
  };
  Record big = Rec("a", {1, 0, 0});
  big.metadata["k"] = std::string(50000, 'x');
  const size_t big_bytes = storage::MetadataJsonBytes(big.metadata);
  Record sparse_pairs = Rec("a", {1, 0, 0});
  sparse_pairs.sparse = {{1, 2}, {0.5f}};
  Record sparse_repeat = Rec("a", {1, 0, 0});
  sparse_repeat.sparse = {{2, 2}, {0.5f, 1}};
  std::vector<Record> too_many;
  for (int i = 0; i < 1001; ++i) too_many.push_back(Rec("r" + std::to_string(i), {1, 0, 0}));
  QueryRequest both = Q({1, 0, 0});
  both.id = "a";
  QueryRequest missing_ns = Q({1, 0, 0});
  missing_ns.ns = "ghost";
  QueryRequest bad_filter = Q({1, 0, 0});
  bad_filter.filter = *ParseJson(R"({"a": {"$near": 1}})");
  using absl::StatusCode;
  const Case cases[] = {
      {"NaN", upsert({Rec("a", {nan, 0, 0})}), StatusCode::kInvalidArgument,
       "vector for id \"a\" has a non-finite value (nan) at position 0"},
      {"infinity", upsert({Rec("a", {0, inf, 0})}), StatusCode::kInvalidArgument,
       "vector for id \"a\" has a non-finite value (inf) at position 1"},
      {"zero vector, cosine", upsert({Rec("a", {0, 0, 0})}), StatusCode::kInvalidArgument,
       "vector for id \"a\" is all zeros; cosine similarity is undefined for a zero vector"},
      {"wrong dimension", upsert({Rec("a", {1, 0})}), StatusCode::kInvalidArgument,
       "vector for id \"a\" has 2 values; collection \"docs\" expects 3"},
      {"empty id", upsert({Rec("", {1, 0, 0})}), StatusCode::kInvalidArgument,
       "record id must not be empty"},
      {"long id", upsert({Rec(std::string(513, 'x'), {1, 0, 0})}), StatusCode::kInvalidArgument,
       "record id of 513 bytes exceeds the limit of 512 bytes"},
      {"id not UTF-8", upsert({Rec("\xff", {1, 0, 0})}), StatusCode::kInvalidArgument,
       "record id is not valid UTF-8"},
      {"id twice", upsert({Rec("a", {1, 0, 0}), Rec("a", {0, 1, 0})}), StatusCode::kInvalidArgument,
       "id \"a\" appears more than once in the request"},
      {"no records", upsert({}), StatusCode::kInvalidArgument, "upsert has no records"},
      {"long namespace", upsert({Rec("a", {1, 0, 0})}, std::string(256, 'n')),
       StatusCode::kInvalidArgument, "namespace is 256 bytes; the limit is 255"},
      {"big metadata", upsert({big}), StatusCode::kInvalidArgument,
       "metadata for id \"a\" is " + std::to_string(big_bytes) + " bytes; the limit is 40960"},
      {"sparse pairs", upsert({sparse_pairs}), StatusCode::kInvalidArgument,
       "sparse vector for id \"a\" has 2 indices but 1 values"},
      {"sparse repeat", upsert({sparse_repeat}), StatusCode::kInvalidArgument,
       "sparse vector for id \"a\" repeats index 2"},
      {"too many records", upsert(too_many), StatusCode::kInvalidArgument,
       "upsert has 1001 records; the limit is 1000 per request"},
      {"no collection",
       [this] {
         return engine_->Upsert("nope", "", {Rec("a", {1, 0, 0})}).status();
       },
       StatusCode::kNotFound, "collection \"nope\" does not exist"},
      {"top_k 0", query(Q({1, 0, 0}, 0)), StatusCode::kInvalidArgument,
       "top_k is 0; it must be in 1..10000"},
      {"top_k too big", query(Q({1, 0, 0}, 10001)), StatusCode::kInvalidArgument,
       "top_k is 10001; it must be in 1..10000"},
      {"query dimension", query(Q({1, 0})), StatusCode::kInvalidArgument,
       "query vector has 2 values; collection \"docs\" expects 3"},
      {"vector and id", query(both), StatusCode::kInvalidArgument,
       "a query takes a vector or an id, not both"},
      {"missing namespace", query(missing_ns), StatusCode::kNotFound,
       "namespace \"ghost\" does not exist in collection \"docs\" (it holds no records)"},
  };
  for (const Case& c : cases) {
    const absl::Status s = c.call();
    EXPECT_EQ(s.code(), c.code) << c.what << ": " << s;
    EXPECT_EQ(s.message(), c.message) << c.what;
  }
  // The filter parser's message names the operator.
  const absl::Status f = engine_->Query("docs", bad_filter).status();
  EXPECT_EQ(f.code(), StatusCode::kInvalidArgument) << f;
  EXPECT_NE(f.message().find("unknown operator \"$near\""), std::string::npos) << f;
}

TEST_F(EngineTest, FailingBatchLeavesNothingBehind) {
  ASSERT_TRUE(engine_->Upsert("docs", "", {Rec("keep", {1, 0, 0})}).ok());
  auto s = engine_->Upsert("docs", "",
                           {Rec("new1", {1, 0, 0}), Rec("keep", {0, 0, 1}), Rec("bad", {1, 0})});
  ASSERT_FALSE(s.ok());
  auto f = engine_->Fetch("docs", "", {"new1", "keep", "bad"});
  ASSERT_TRUE(f.ok());
  ASSERT_EQ(f->records.size(), 1u);
  EXPECT_EQ(f->records[0].values, std::vector<float>({1, 0, 0}));
  EXPECT_EQ(engine_->DescribeStats("docs", std::nullopt)->total_record_count, 1u);
}

TEST_F(EngineTest, ReupsertReplacesAndDeleteRemovesFromSearch) {
  ASSERT_TRUE(engine_->Upsert("docs", "", {Rec("a", {1, 0, 0}), Rec("b", {0, 1, 0})}).ok());
  ASSERT_TRUE(engine_->Upsert("docs", "", {Rec("a", {0, 0, 1})}).ok());
  auto r = engine_->Query("docs", Q({1, 0, 0}, 10));
  ASSERT_EQ(r->matches.size(), 2u);
  for (const Match& m : r->matches) EXPECT_LT(m.score, 0.5f) << "stale vector of " << m.id;
  EXPECT_EQ(*engine_->DeleteIds("docs", "", {"a", "ghost"}), 1u);
  r = engine_->Query("docs", Q({0, 0, 1}, 10));
  ASSERT_EQ(r->matches.size(), 1u);
  EXPECT_EQ(r->matches[0].id, "b");
}

TEST_F(EngineTest, FiltersApplyToQueryDeleteAndStats) {
  std::vector<Record> recs;
  for (int i = 0; i < 100; ++i) {
    recs.push_back(Rec("r" + std::to_string(i), {1, float(i), 0},
                       i % 10 == 0 ? R"({"rare": true, "n": 1})" : R"({"n": 2})"));
  }
  ASSERT_TRUE(engine_->Upsert("docs", "ns", std::move(recs)).ok());
  QueryRequest q = Q({1, 0, 0}, 50);
  q.ns = "ns";
  q.filter = *ParseJson(R"({"rare": true})");
  q.include_metadata = true;
  auto r = engine_->Query("docs", q);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->matches.size(), 10u);
  for (const Match& m : r->matches) EXPECT_TRUE(m.metadata->contains("rare"));
  EXPECT_EQ(engine_->DescribeStats("docs", *ParseJson(R"({"n": 1})"))->total_record_count, 10u);
  EXPECT_EQ(*engine_->DeleteByFilter("docs", "ns", *ParseJson(R"({"n": {"$gt": 1}})")), 90u);
  EXPECT_THAT(engine_->DeleteByFilter("docs", "ns", *ParseJson("{}")),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(engine_->DescribeStats("docs", std::nullopt)->namespaces.at("ns").record_count, 10u);
  EXPECT_EQ(*engine_->DeleteAll("docs", "ns"), 10u);
  EXPECT_TRUE(engine_->ListNamespaces("docs")->empty());
}

TEST_F(EngineTest, UpdateMergesMetadataAndReplacesVector) {
  ASSERT_TRUE(engine_->Upsert("docs", "", {Rec("a", {1, 0, 0}, R"({"x": 1, "y": "k"})")}).ok());
  UpdateSpec u;
  u.id = "a";
  u.values = std::vector<float>{0, 1, 0};
  u.set_metadata = *ParseJson(R"({"x": 2, "z": true})");
  ASSERT_TRUE(engine_->Update("docs", "", u).ok());
  auto f = engine_->Fetch("docs", "", {"a"});
  EXPECT_EQ(storage::MetadataToJson(f->records[0].metadata).Dump(), R"({"x":2,"y":"k","z":true})");
  EXPECT_EQ(engine_->Query("docs", Q({0, 1, 0}, 1))->matches[0].score, 1.0f);
  u.id = "ghost";
  EXPECT_THAT(engine_->Update("docs", "", u), StatusIs(absl::StatusCode::kNotFound));
  UpdateSpec bad;
  bad.id = "a";
  bad.values = std::vector<float>{1};
  EXPECT_THAT(engine_->Update("docs", "", bad), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(EngineTest, QueryByIdUsesTheStoredVector) {
  ASSERT_TRUE(engine_
                  ->Upsert("docs", "",
                           {Rec("a", {1, 0, 0}), Rec("b", {0.9f, 0.1f, 0}), Rec("c", {0, 0, 1})})
                  .ok());
  QueryRequest q;
  q.id = "a";
  q.top_k = 2;
  auto r = engine_->Query("docs", q);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->matches[0].id, "a");
  EXPECT_EQ(r->matches[1].id, "b");
  q.id = "ghost";
  EXPECT_THAT(engine_->Query("docs", q), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(EngineTest, ListIdsPaginatesWithOpaqueTokens) {
  std::vector<Record> recs;
  for (int i = 0; i < 25; ++i) recs.push_back(Rec("id" + std::to_string(100 + i), {1, 0, 0}));
  ASSERT_TRUE(engine_->Upsert("docs", "", std::move(recs)).ok());
  std::vector<std::string> all;
  std::string token;
  int pages = 0;
  do {
    auto page = engine_->ListIds("docs", "", "id1", 10, token);
    ASSERT_TRUE(page.ok()) << page.status();
    all.insert(all.end(), page->ids.begin(), page->ids.end());
    token = page->next_pagination_token;
    ++pages;
  } while (!token.empty());
  EXPECT_EQ(all.size(), 25u);
  EXPECT_EQ(pages, 3);
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end()));
  EXPECT_THAT(engine_->ListIds("docs", "", "", 10, "!!bad!!"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(EngineTest, EverythingSurvivesReopen) {
  ASSERT_TRUE(engine_->Upsert("docs", "a", {Rec("x", {1, 0, 0}, R"({"k": "v"})")}).ok());
  ASSERT_TRUE(engine_->Upsert("docs", "b", {Rec("y", {0, 1, 0})}).ok());
  Open();
  auto info = engine_->GetCollection("docs");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->record_count, 2u);
  EXPECT_EQ(info->namespace_count, 2u);
  QueryRequest q = Q({1, 0, 0}, 5);
  q.ns = "a";
  q.filter = *ParseJson(R"({"k": "v"})");
  auto r = engine_->Query("docs", q);
  ASSERT_EQ(r->matches.size(), 1u);
  EXPECT_EQ(r->matches[0].id, "x");
  // New records after a restart get fresh internal ids (no collision).
  ASSERT_TRUE(engine_->Upsert("docs", "a", {Rec("z", {0, 0, 1})}).ok());
  EXPECT_EQ(engine_->Query("docs", q)->matches.size(), 1u);
  q.filter.reset();
  EXPECT_EQ(engine_->Query("docs", q)->matches.size(), 2u);
}

TEST_F(EngineTest, DropAndRecreate) {
  ASSERT_TRUE(engine_->Upsert("docs", "", {Rec("x", {1, 0, 0})}).ok());
  ASSERT_TRUE(engine_->DropCollection("docs").ok());
  EXPECT_THAT(engine_->DropCollection("docs"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(engine_->Query("docs", Q({1, 0, 0})), StatusIs(absl::StatusCode::kNotFound));
  storage::CollectionConfig c;
  c.name = "docs";
  c.dimension = 2;
  ASSERT_TRUE(engine_->CreateCollection(c).ok());
  EXPECT_EQ(engine_->GetCollection("docs")->record_count, 0u);
  Open();
  EXPECT_EQ(engine_->GetCollection("docs")->meta.config.dimension, 2u);
  EXPECT_EQ(engine_->GetCollection("docs")->record_count, 0u);
}

TEST_F(EngineTest, SnapshotWritesACopy) {
  ASSERT_TRUE(engine_->Upsert("docs", "", {Rec("x", {1, 0, 0})}).ok());
  auto path = engine_->Snapshot("s1");
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_THAT(engine_->Snapshot("s1"), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(engine_->Snapshot("../x"), StatusIs(absl::StatusCode::kInvalidArgument));
  EngineOptions o;
  o.store.path = *path;
  auto copy = Engine::Open(o);
  ASSERT_TRUE(copy.ok());
  EXPECT_EQ((*copy)->GetCollection("docs")->record_count, 1u);
}

}  // namespace
}  // namespace quiver::db

namespace quiver::db {
namespace {

TEST(EngineDamageTest, ADamagedCollectionDoesNotStopTheOthers) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/data";
  {
    storage::StoreOptions so;
    so.path = path;
    auto store = storage::Store::Open(so);
    ASSERT_TRUE(store.ok());
    storage::CollectionConfig c;
    c.dimension = 2;
    c.name = "broken";
    auto broken = (*store)->CreateCollection(c, 0);
    c.name = "fine";
    auto fine = (*store)->CreateCollection(c, 0);
    ASSERT_TRUE(broken.ok() && fine.ok());
    storage::RecordBatch b = (*store)->NewBatch();
    storage::StoredRecord bad;
    bad.label = 1;
    bad.record.id = "x";
    bad.record.values = {1, 2, 3};  // Wrong dimension: the collection cannot load.
    b.Put(broken->id, "", bad);
    storage::StoredRecord good = bad;
    good.record.values = {1, 2};
    b.Put(fine->id, "", good);
    ASSERT_TRUE((*store)->Write(&b).ok());
  }
  EngineOptions o;
  o.store.path = path;
  auto engine = Engine::Open(o);
  ASSERT_TRUE(engine.ok()) << engine.status();
  EXPECT_EQ((*engine)->damaged_collections(), std::vector<std::string>({"broken"}));
  EXPECT_THAT((*engine)->GetCollection("broken"),
              testing::StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ((*engine)->GetCollection("fine")->record_count, 1u);
}

}  // namespace
}  // namespace quiver::db

namespace quiver::db {
namespace {

std::vector<float> RandomVector(std::mt19937* rng, size_t dim) {
  std::normal_distribution<float> g;
  std::vector<float> v(dim);
  for (float& x : v) x = g(*rng);
  return v;
}

class HnswEngineTest : public ::testing::Test {
 protected:
  static constexpr size_t kDim = 16;
  void Open(uint64_t checkpoint_min = 500) {
    engine_.reset();
    engine_ = OpenEngine(dir_.path() + "/data", checkpoint_min, backlog_);
    ASSERT_NE(engine_, nullptr);
  }
  void SetUp() override {
    Open();
    storage::CollectionConfig c;
    c.name = "h";
    c.dimension = kDim;
    c.metric = ann::Metric::kL2;
    c.index = storage::IndexKind::kHnsw;
    c.hnsw.m = 12;
    c.hnsw.ef_construction = 100;
    QUIVER_ASSERT_OK(engine_->CreateCollection(c));
  }
  // Upserts ids [begin, end) with vectors from `seed`, `batch_size` per
  // request; metadata {"g": id % 100}. Then waits for the background
  // indexer unless `wait` is false (the batches go to the backlog).
  void Put(int begin, int end, uint32_t seed, bool wait = true, int batch_size = 500) {
    std::mt19937 rng(seed);
    for (int start = begin; start < end; start += batch_size) {
      std::vector<storage::Record> batch;
      for (int i = start; i < std::min(end, start + batch_size); ++i) {
        storage::Record r;
        r.id = "r" + std::to_string(i);
        r.values = RandomVector(&rng, kDim);
        r.metadata["g"] = static_cast<double>(i % 100);
        r.metadata["k"] = static_cast<double>(i % 1000);
        vectors_[r.id] = r.values;
        batch.push_back(std::move(r));
      }
      ASSERT_TRUE(engine_->Upsert("h", "", std::move(batch)).ok());
    }
    if (wait) engine_->WaitForIndexing();
  }
  uint64_t Backlog() { return engine_->DescribeStats("h", std::nullopt)->catching_up_count; }
  // The `top_k` nearest records to `v` in the default namespace (beam width
  // `ef`, 0: the collection's).
  absl::StatusOr<QueryResult> Nearest(const std::vector<float>& v, uint32_t top_k = 1,
                                      uint32_t ef = 0) {
    QueryRequest q;
    q.vector = v;
    q.top_k = top_k;
    q.ef_search = ef;
    return engine_->Query("h", q);
  }
  // How many ids in [begin, end) (every step-th, except `gone`) are not the
  // top answer for their own vector at distance 0; no deleted id (in
  // `gone`) may be answered at all. The backlog's part is exact; the
  // graph's is approximate, so callers allow a few misses.
  int Misses(int begin, int end, int step, const std::set<std::string>& gone = {}) {
    int misses = 0;
    for (int i = begin; i < end; i += step) {
      const std::string id = "r" + std::to_string(i);
      auto r = Nearest(vectors_[id], 3, 200);
      EXPECT_TRUE(r.ok()) << r.status();
      if (!r.ok() || r->matches.empty()) return -1;
      for (const Match& m : r->matches) EXPECT_FALSE(gone.contains(m.id)) << m.id << " is deleted";
      if (gone.contains(id)) continue;
      misses += r->matches[0].id != id || r->matches[0].score != 0;
    }
    return misses;
  }
  // Recall@10 of the HNSW answer (beam width `ef`) against the exact one.
  // Random 16-d Gaussian data is harder than real embeddings; ef 128 keeps
  // these floors far from the noise of a multi-threaded (nondeterministic)
  // build.
  double Recall(int queries, const char* filter = nullptr, uint32_t ef = 128) {
    std::mt19937 rng(77);
    size_t found = 0, total = 0;
    for (int q = 0; q < queries; ++q) {
      QueryRequest req;
      req.vector = RandomVector(&rng, kDim);
      req.top_k = 10;
      req.ef_search = ef;
      if (filter != nullptr) req.filter = *ParseJson(filter);
      auto approx = engine_->Query("h", req);
      req.exact = true;
      auto exact = engine_->Query("h", req);
      EXPECT_TRUE(approx.ok() && exact.ok());
      std::set<std::string> want;
      for (const Match& m : exact->matches) want.insert(m.id);
      for (const Match& m : approx->matches) found += want.count(m.id);
      total += want.size();
    }
    return total ? static_cast<double>(found) / total : 1.0;
  }

  TempDir dir_;
  uint64_t backlog_ = EngineOptions().index_backlog;
  std::unique_ptr<Engine> engine_;
  std::map<std::string, std::vector<float>> vectors_;
};

TEST_F(HnswEngineTest, SearchesTheGraphAndReportsItsMemory) {
  Put(0, 3000, 1);
  EXPECT_GE(Recall(30), 0.95);
  QueryRequest req;
  req.vector = vectors_["r5"];
  req.top_k = 3;
  auto r = engine_->Query("h", req);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->exact);
  EXPECT_EQ(r->matches[0].id, "r5");
  EXPECT_EQ(r->matches[0].score, 0);
  // scanned_count: the distances the walk computed, a part of the 3,000;
  // all of them for an exact scan.
  EXPECT_GE(r->scanned_count, 64u);
  EXPECT_LT(r->scanned_count, 3000u);
  req.ef_search = 400;
  auto wider = engine_->Query("h", req);
  ASSERT_TRUE(wider.ok());
  EXPECT_GT(wider->scanned_count, r->scanned_count);
  req.exact = true;
  auto exact = engine_->Query("h", req);
  ASSERT_TRUE(exact.ok());
  EXPECT_EQ(exact->scanned_count, 3000u);
  auto stats = engine_->DescribeStats("h", std::nullopt);
  EXPECT_EQ(stats->index, storage::IndexKind::kHnsw);
  EXPECT_GT(stats->index_bytes_per_vector, kDim * sizeof(float));
}

TEST_F(HnswEngineTest, PlannerUsesTheGraphForBroadFiltersAndExactScanForSelectiveOnes) {
  Put(0, 4000, 2);
  QueryRequest req;
  std::mt19937 rng(3);
  req.vector = RandomVector(&rng, kDim);
  req.top_k = 10;
  req.filter = *ParseJson(R"({"g": {"$lt": 50}})");  // 50%.
  auto broad = engine_->Query("h", req);
  ASSERT_TRUE(broad.ok());
  EXPECT_FALSE(broad->exact);
  req.filter = *ParseJson(R"({"k": {"$in": [7, 8, 9]}})");  // 0.3%.
  auto narrow = engine_->Query("h", req);
  ASSERT_TRUE(narrow.ok());
  EXPECT_TRUE(narrow->exact);
  EXPECT_EQ(narrow->matches.size(), 10u);
  for (const Match& m : narrow->matches) {
    const int k = std::stoi(m.id.substr(1)) % 1000;
    EXPECT_TRUE(k >= 7 && k <= 9) << m.id;
  }
  EXPECT_GE(Recall(20, R"({"g": {"$lt": 50}})"), 0.9);  // 50%: graph.
  EXPECT_GE(Recall(20, R"({"g": {"$lt": 5}})"), 0.9);   // 5%: graph.
  EXPECT_EQ(Recall(20, R"({"k": {"$lt": 5}})"), 1.0);   // 0.5%: exact.
}

// The walk costs about kWalkNodeCost * ef / share records' worth of the
// exact scan: a 1% filter on 20,000 records with a beam of 2 walks (about
// 200 expanded nodes), where a fixed 1% threshold scanned half the time
// (the 2,048-record sample puts it on either side).
TEST_F(HnswEngineTest, ThePlannerWalksWhenTheWalkCostsLessThanTheScan) {
  EXPECT_DOUBLE_EQ(ExactScanBelow(1'000'000, 64), kWalkNodeCost * 64 / 1'000'000);
  EXPECT_DOUBLE_EQ(ExactScanBelow(10'000'000, 64), 0.001);  // The floor.
  EXPECT_DOUBLE_EQ(ExactScanBelow(100'000, 64), 0.01);      // The ceiling.
  EXPECT_DOUBLE_EQ(ExactScanBelow(0, 64), 0.01);
  Put(0, 20000, 5);
  QueryRequest req;
  std::mt19937 rng(6);
  req.vector = RandomVector(&rng, kDim);
  req.top_k = 2;
  req.ef_search = 2;
  req.filter = *ParseJson(R"({"g": 0})");  // 1%.
  auto r = engine_->Query("h", req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->exact);
  ASSERT_EQ(r->matches.size(), 2u);
  for (const Match& m : r->matches) EXPECT_EQ(std::stoi(m.id.substr(1)) % 100, 0) << m.id;
  EXPECT_LT(r->scanned_count, 20000u);
}

TEST_F(HnswEngineTest, RestartLoadsTheCheckpointAndReplaysLaterWrites) {
  Put(0, 2000, 4);  // Crosses the checkpoint threshold.
  const std::string ckpt = storage::IndexFiles(dir_.path() + "/data").Path(1, "");
  ASSERT_TRUE(std::filesystem::exists(ckpt));
  // After the checkpoint: replace some vectors, delete some records.
  Put(0, 100, 5);
  ASSERT_EQ(*engine_->DeleteIds("h", "", {"r150", "r151", "r1999"}), 3u);
  // Simulate a crash: drop the engine without its shutdown checkpoint by
  // copying the data directory as it is now.
  const std::string copy = dir_.path() + "/copy";
  std::filesystem::copy(dir_.path() + "/data", copy, std::filesystem::copy_options::recursive);
  EngineOptions o;
  o.store.path = copy;
  auto crashed = Engine::Open(o);
  ASSERT_TRUE(crashed.ok()) << crashed.status();
  for (const std::string id : {"r150", "r151", "r1999"}) {
    QueryRequest q;
    q.vector = vectors_.count(id) ? vectors_[id] : vectors_["r0"];
    q.top_k = 5;
    auto r = (*crashed)->Query("h", q);
    for (const Match& m : r->matches) EXPECT_NE(m.id, id) << "deleted record came back";
  }
  for (int i = 0; i < 100; i += 7) {
    QueryRequest q;
    const std::string id = "r" + std::to_string(i);
    q.vector = vectors_[id];  // The replacement vector.
    q.top_k = 1;
    auto r = (*crashed)->Query("h", q);
    ASSERT_EQ(r->matches.size(), 1u);
    EXPECT_EQ(r->matches[0].id, id);
    EXPECT_EQ(r->matches[0].score, 0) << "old vector of " << id << " answered";
  }
  EXPECT_EQ((*crashed)->GetCollection("h")->record_count, 1997u);
  // New writes after the restart get labels that never collide with
  // checkpointed nodes.
  storage::Record fresh;
  fresh.id = "new";
  fresh.values.assign(kDim, 0.5f);
  ASSERT_TRUE((*crashed)->Upsert("h", "", {fresh}).ok());
  QueryRequest q;
  q.vector = fresh.values;
  q.top_k = 1;
  EXPECT_EQ((*crashed)->Query("h", q)->matches[0].id, "new");
}

TEST_F(HnswEngineTest, AfterACrashLaterRecordsAreSearchableAtOnceAndCaughtUpInTheBackground) {
  Open(/*checkpoint_min=*/1000000);  // No periodic checkpoint.
  Put(0, 1000, 9);
  engine_.reset();  // Shutdown checkpoint: 1000 nodes.
  Open(/*checkpoint_min=*/1000000);
  Put(1000, 5000, 10);  // Only in the records.
  // Crash: copy the data directory as it is, without a shutdown checkpoint.
  const std::string copy = dir_.path() + "/copy";
  std::filesystem::copy(dir_.path() + "/data", copy, std::filesystem::copy_options::recursive);
  EngineOptions o;
  o.store.path = copy;
  auto crashed = Engine::Open(o);
  ASSERT_TRUE(crashed.ok()) << crashed.status();
  // Every record written after the checkpoint answers for its own vector
  // right away (exact catch-up scan merged with the graph). Records already
  // in the graph are found by the walk, which is approximate while the graph
  // takes inserts: about one run in fifty misses one of the 11 sampled here
  // even at ef 500 (noted in the issue), so one miss is tolerated.
  int graph_misses = 0;
  for (int i = 0; i < 5000; i += 97) {
    QueryRequest q;
    const std::string id = "r" + std::to_string(i);
    q.vector = vectors_[id];
    q.top_k = 1;
    q.ef_search = 500;
    auto r = (*crashed)->Query("h", q);
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->matches.size(), 1u);
    if (i >= 1000) {
      EXPECT_EQ(r->matches[0].id, id);
    } else {
      graph_misses += r->matches[0].id != id;
    }
  }
  EXPECT_LE(graph_misses, 1);
  // The background task moves the 4000 later records into the graph.
  for (int wait = 0; wait < 600; ++wait) {
    if ((*crashed)->DescribeStats("h", std::nullopt)->catching_up_count == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  auto stats = (*crashed)->DescribeStats("h", std::nullopt);
  EXPECT_EQ(stats->catching_up_count, 0u);
  EXPECT_EQ(stats->total_record_count, 5000u);
  engine_ = *std::move(crashed);
  EXPECT_GE(Recall(30), 0.95);
}

TEST_F(HnswEngineTest, BulkUpsertsAreSearchableAtOnceAndIndexedInTheBackground) {
  Put(0, 1000, 20);  // A graph first.
  engine_->PauseIndexing(true);
  Put(1000, 4000, 21, /*wait=*/false);
  // Acknowledged, not in the graph: the backlog's exact scan answers for
  // them meanwhile (every one of them), merged with the graph's answer.
  EXPECT_EQ(Backlog(), 3000u);
  EXPECT_EQ(Misses(1000, 4000, 1), 0);
  EXPECT_LE(Misses(0, 1000, 7), 2);
  EXPECT_GE(Nearest(vectors_["r7"])->scanned_count, 3000u);
  engine_->PauseIndexing(false);
  engine_->WaitForIndexing();
  EXPECT_EQ(Backlog(), 0u);
  EXPECT_EQ(engine_->GetCollection("h")->record_count, 4000u);
  EXPECT_GE(Recall(30), 0.95);
  // Answered by the graph walk alone now, not a scan of everything.
  auto r = Nearest(vectors_["r7"]);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->matches[0].id, "r7");
  EXPECT_LT(r->scanned_count, 4000u);
  // The indexer checkpointed the graph as it grew (threshold 500).
  EXPECT_TRUE(std::filesystem::exists(storage::IndexFiles(dir_.path() + "/data").Path(1, "")));
}

TEST_F(HnswEngineTest, ABacklogAnswersExactlyWhileTheIndexerWorks) {
  // Big enough that the indexer is still at work when the queries run
  // (the ids it has not reached are found by the exact scan, every time).
  Put(0, 6000, 22, /*wait=*/false);
  const uint64_t backlog = Backlog();
  int exact_hits = 0;
  for (int i = 0; i < 6000; i += 101) {
    auto r = Nearest(vectors_["r" + std::to_string(i)]);
    ASSERT_TRUE(r.ok());
    exact_hits += r->matches[0].id == "r" + std::to_string(i) && r->matches[0].score == 0;
  }
  EXPECT_GE(exact_hits, 59);  // Of 60: one graph miss tolerated.
  engine_->WaitForIndexing();
  EXPECT_EQ(Backlog(), 0u);
  // Not a timing assertion: whatever the indexer had reached, the counts add up.
  EXPECT_LE(backlog, 6000u);
}

TEST_F(HnswEngineTest, OverwritesAndDeletesDuringTheBacklogWin) {
  // Some of the records are in the graph, some in the backlog, some on
  // their way between (the indexer runs during the overwrites and deletes).
  Put(0, 2000, 23, /*wait=*/false);
  engine_->PauseIndexing(true);
  Put(2000, 4000, 123, /*wait=*/false);
  engine_->PauseIndexing(false);
  Put(0, 300, 24, /*wait=*/false);  // New vectors for r0..r299.
  std::vector<std::string> doomed;
  std::set<std::string> gone;
  for (int i = 300; i < 600; ++i) {
    doomed.push_back("r" + std::to_string(i));
    gone.insert(doomed.back());
  }
  ASSERT_EQ(*engine_->DeleteIds("h", "", doomed), 300u);
  EXPECT_LE(Misses(0, 4000, 13, gone), 3);
  engine_->WaitForIndexing();
  EXPECT_EQ(Backlog(), 0u);
  EXPECT_EQ(engine_->GetCollection("h")->record_count, 3700u);
  EXPECT_LE(Misses(0, 4000, 13, gone), 3);
  // After a restart (shutdown checkpoint of the graph), the same.
  Open();
  engine_->WaitForIndexing();
  EXPECT_EQ(engine_->GetCollection("h")->record_count, 3700u);
  EXPECT_LE(Misses(0, 4000, 13, gone), 3);
  EXPECT_GE(Recall(30), 0.95);
}

TEST_F(HnswEngineTest, TheBacklogLimitMakesWritersIndexTheirOwnVectors) {
  backlog_ = 1000;
  Open();
  engine_->PauseIndexing(true);
  for (int start = 0; start < 5000; start += 500) {
    Put(start, start + 500, 25 + start, /*wait=*/false);
    // Two batches fill the backlog; the writers index the rest themselves.
    EXPECT_EQ(Backlog(), start == 0 ? 500u : 1000u);
  }
  EXPECT_LE(Misses(0, 5000, 41), 2);
  engine_->PauseIndexing(false);
  engine_->WaitForIndexing();
  EXPECT_EQ(Backlog(), 0u);
  EXPECT_GE(Recall(30), 0.95);
}

TEST_F(HnswEngineTest, WithoutABacklogEveryWriteIsInTheGraphWhenAcknowledged) {
  backlog_ = 0;
  Open();
  for (int start = 0; start < 3000; start += 500) {
    Put(start, start + 500, 26 + start, /*wait=*/false);
    EXPECT_EQ(Backlog(), 0u);
  }
  EXPECT_GE(Recall(30), 0.95);
  // Small upserts go straight into the graph with the default limit too.
  backlog_ = EngineOptions().index_backlog;
  Open();
  Put(3000, 3000 + kBacklogMinBatch - 1, 27, /*wait=*/false, /*batch_size=*/kBacklogMinBatch - 1);
  EXPECT_EQ(Backlog(), 0u);
  Put(4000, 4000 + kBacklogMinBatch, 28, /*wait=*/false, /*batch_size=*/kBacklogMinBatch);
  EXPECT_LE(Misses(3000, 3000 + kBacklogMinBatch - 1, 1), 1);
  EXPECT_LE(Misses(4000, 4000 + kBacklogMinBatch, 1), 1);
}

TEST_F(HnswEngineTest, ACrashDuringTheBacklogLosesNothing) {
  Open(/*checkpoint_min=*/1000000);  // Only the shutdown checkpoint.
  Put(0, 1000, 29);
  engine_.reset();  // Checkpoint: 1000 nodes.
  Open(/*checkpoint_min=*/1000000);
  engine_->PauseIndexing(true);
  Put(1000, 6000, 30, /*wait=*/false);
  ASSERT_EQ(Backlog(), 5000u);
  // Crash: the data directory as it is, mid-backlog.
  const std::string copy = dir_.path() + "/copy";
  std::filesystem::copy(dir_.path() + "/data", copy, std::filesystem::copy_options::recursive);
  engine_.reset();
  engine_ = OpenEngine(copy, 1000000);
  ASSERT_NE(engine_, nullptr);
  EXPECT_EQ(engine_->GetCollection("h")->record_count, 6000u);
  EXPECT_LE(Misses(0, 6000, 59), 2);
  engine_->WaitForIndexing();
  EXPECT_EQ(Backlog(), 0u);
  EXPECT_LE(Misses(0, 6000, 59), 2);
  EXPECT_GE(Recall(30), 0.95);
}

TEST_F(HnswEngineTest, SnapshotsAndDeletedNamespacesDuringTheBacklog) {
  engine_->PauseIndexing(true);
  Put(0, 3000, 31, /*wait=*/false);
  // A second namespace whose records all go while its backlog is indexed.
  std::mt19937 rng(32);
  std::vector<storage::Record> other;
  for (int i = 0; i < 2000; ++i)
    other.push_back(Rec("o" + std::to_string(i), RandomVector(&rng, kDim)));
  const std::vector<float> o5 = other[5].values;
  for (size_t i = 0; i < other.size(); i += 500) {
    std::vector<storage::Record> part(other.begin() + i, other.begin() + i + 500);
    QUIVER_ASSERT_OK(engine_->Upsert("h", "other", std::move(part)).status());
  }
  ASSERT_EQ(*engine_->DeleteAll("h", "other"), 2000u);
  auto path = engine_->Snapshot("mid-backlog");
  QUIVER_ASSERT_OK(path.status());
  EXPECT_EQ(Backlog(), 3000u);
  engine_->PauseIndexing(false);
  // The namespace comes back with new records while the old backlog may
  // still be in the indexer's hands.
  ASSERT_TRUE(engine_->Upsert("h", "other", {Rec("fresh", o5)}).ok());
  engine_->WaitForIndexing();
  EXPECT_EQ(Backlog(), 0u);
  QueryRequest q;
  q.vector = o5;
  q.ns = "other";
  q.top_k = 5;
  auto r = engine_->Query("h", q);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->matches.size(), 1u);
  EXPECT_EQ(r->matches[0].id, "fresh");
  EXPECT_LE(Misses(0, 3000, 29), 2);
  // The snapshot holds every acknowledged record of the default namespace.
  engine_ = OpenEngine(*path);
  ASSERT_NE(engine_, nullptr);
  EXPECT_EQ(engine_->GetCollection("h")->record_count, 3000u);
  EXPECT_LE(Misses(0, 3000, 29), 2);
  engine_->WaitForIndexing();
  EXPECT_EQ(Backlog(), 0u);
}

TEST_F(HnswEngineTest, WritersDeletersReadersAndTheIndexerTogether) {
  constexpr int kN = 3000;
  std::mt19937 rng(33);
  std::vector<std::vector<float>> v(kN);
  for (auto& x : v) x = RandomVector(&rng, kDim);
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int start = 0; start < kN; start += 100) {
      std::vector<storage::Record> batch;
      for (int i = start; i < start + 100; ++i) batch.push_back(Rec("w" + std::to_string(i), v[i]));
      EXPECT_TRUE(engine_->Upsert("h", "", std::move(batch)).ok());
    }
  });
  std::thread deleter([&] {
    // Deletes every tenth id once it exists (it may not yet: then later).
    for (int i = 0; i < kN; i += 10) {
      for (int tries = 0; tries < 2000; ++tries) {
        auto n = engine_->DeleteIds("h", "", {"w" + std::to_string(i)});
        ASSERT_TRUE(n.ok());
        if (*n == 1) break;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    }
  });
  std::thread reader([&] {
    while (!done.load()) {
      EXPECT_TRUE(Nearest(v[std::uniform_int_distribution<int>(0, kN - 1)(rng)], 5).ok());
    }
  });
  writer.join();
  deleter.join();
  done.store(true);
  reader.join();
  engine_->WaitForIndexing();
  EXPECT_EQ(Backlog(), 0u);
  EXPECT_EQ(engine_->GetCollection("h")->record_count, kN - kN / 10);
  int misses = 0;
  for (int i = 0; i < kN; i += 7) {
    auto r = Nearest(v[i], 1, 200);
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->matches.size(), 1u);
    if (i % 10 == 0) {
      EXPECT_NE(r->matches[0].id, "w" + std::to_string(i)) << "deleted record answered";
    } else {
      misses += r->matches[0].id != "w" + std::to_string(i);
    }
  }
  EXPECT_LE(misses, 3);
}

// A snapshot carries the HNSW checkpoint (so a restore loads the graph),
// and writes after that checkpoint still show in the restored copy.
TEST_F(HnswEngineTest, SnapshotKeepsTheHnswCheckpoint) {
  Put(0, 2000, 4);  // Crosses the checkpoint threshold.
  ASSERT_TRUE(std::filesystem::exists(storage::IndexFiles(dir_.path() + "/data").Path(1, "")));
  Put(0, 50, 6);  // Replaced after the checkpoint.
  ASSERT_EQ(*engine_->DeleteIds("h", "", {"r1999"}), 1u);
  auto path = engine_->Snapshot("s");
  QUIVER_ASSERT_OK(path.status());
  ASSERT_TRUE(std::filesystem::exists(storage::IndexFiles(*path).Path(1, "")));
  EngineOptions o;
  o.store.path = *path;
  auto copy = Engine::Open(o);
  QUIVER_ASSERT_OK(copy.status());
  EXPECT_EQ((*copy)->GetCollection("h")->record_count, 1999u);
  for (int i : {0, 17, 49, 50, 1000, 1998}) {
    const std::string id = "r" + std::to_string(i);
    QueryRequest q;
    q.vector = vectors_[id];
    q.top_k = 1;
    auto r = (*copy)->Query("h", q);
    QUIVER_ASSERT_OK(r.status());
    ASSERT_EQ(r->matches.size(), 1u);
    EXPECT_EQ(r->matches[0].id, id);
    EXPECT_EQ(r->matches[0].score, 0) << id;
  }
}

TEST_F(HnswEngineTest, DamagedCheckpointIsRebuiltFromRecords) {
  Put(0, 1500, 6);
  engine_.reset();  // Shutdown checkpoint.
  const std::string ckpt = storage::IndexFiles(dir_.path() + "/data").Path(1, "");
  ASSERT_TRUE(std::filesystem::exists(ckpt));
  {
    std::fstream f(ckpt, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(5000);
    f.put('\x7f');
  }
  Open();
  EXPECT_EQ(engine_->GetCollection("h")->record_count, 1500u);
  EXPECT_GE(Recall(20), 0.95);
}

TEST_F(HnswEngineTest, DeletingMostRecordsCompactsTheGraph) {
  Put(0, 3000, 8);
  std::vector<std::string> ids;
  for (int i = 0; i < 2000; ++i) ids.push_back("r" + std::to_string(i));
  for (size_t i = 0; i < ids.size(); i += 1000) {
    std::vector<std::string> part(ids.begin() + i, ids.begin() + std::min(ids.size(), i + 1000));
    ASSERT_TRUE(engine_->DeleteIds("h", "", part).ok());
  }
  EXPECT_EQ(engine_->GetCollection("h")->record_count, 1000u);
  EXPECT_GE(Recall(20), 0.95);
  QueryRequest q;
  q.vector = vectors_["r10"];
  q.top_k = 3;
  auto result = engine_->Query("h", q);
  ASSERT_TRUE(result.ok());
  for (const Match& m : result->matches) EXPECT_GE(std::stoi(m.id.substr(1)), 2000);
}

}  // namespace
}  // namespace quiver::db

namespace quiver::db {
namespace {

class TextEngineTest : public ::testing::Test {
 protected:
  void Open() {
    engine_.reset();
    engine_ = OpenEngine(dir_.path() + "/data");
    ASSERT_NE(engine_, nullptr);
  }
  void SetUp() override {
    Open();
    storage::CollectionConfig c;
    c.name = "t";
    c.dimension = 2;
    c.text.enabled = true;
    c.text.analyzer = "english";
    QUIVER_ASSERT_OK(engine_->CreateCollection(c));
  }
  std::vector<std::string> Ids(const std::string& text, const char* filter = nullptr) {
    QueryRequest q;
    q.text = text;
    q.top_k = 10;
    if (filter != nullptr) q.filter = *ParseJson(filter);
    auto r = engine_->Query("t", q);
    EXPECT_TRUE(r.ok()) << r.status();
    std::vector<std::string> ids;
    if (r.ok()) {
      for (const Match& m : r->matches) ids.push_back(m.id);
    }
    return ids;
  }
  storage::Record Doc(const std::string& id, const std::string& text, const char* md = "{}") {
    storage::Record r;
    r.id = id;
    r.values = {1, 0};
    r.text = text;
    r.metadata = *storage::MetadataFromJson(*ParseJson(md));
    return r;
  }

  TempDir dir_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(TextEngineTest, Bm25FollowsUpsertsUpdatesDeletesAndRestarts) {
  ASSERT_TRUE(engine_
                  ->Upsert("t", "",
                           {Doc("a", "vector databases index embeddings", R"({"y": 1})"),
                            Doc("b", "a database of recipes", R"({"y": 2})"),
                            Doc("c", "embedding models for text")})
                  .ok());
  EXPECT_EQ(Ids("database"), std::vector<std::string>({"b", "a"}));  // Shorter doc first.
  EXPECT_EQ(Ids("database", R"({"y": 1})"), std::vector<std::string>({"a"}));
  EXPECT_EQ(Ids("embedding"), std::vector<std::string>({"c", "a"}));
  // Text changes without a vector change re-index the record.
  UpdateSpec u;
  u.id = "b";
  u.text = "cooking recipes";
  ASSERT_TRUE(engine_->Update("t", "", u).ok());
  EXPECT_EQ(Ids("database"), std::vector<std::string>({"a"}));
  ASSERT_TRUE(engine_->Upsert("t", "", {Doc("c", "nothing relevant")}).ok());
  EXPECT_EQ(Ids("embedding"), std::vector<std::string>({"a"}));
  EXPECT_EQ(*engine_->DeleteIds("t", "", {"a"}), 1u);
  EXPECT_TRUE(Ids("embedding").empty());
  Open();  // Rebuilt from the records.
  EXPECT_EQ(Ids("recipes"), std::vector<std::string>({"b"}));
  EXPECT_TRUE(Ids("database").empty());
  QueryRequest bad;
  bad.id = "b";
  bad.vector = {1, 0};
  bad.top_k = 1;
  EXPECT_THAT(engine_->Query("t", bad), StatusIs(absl::StatusCode::kInvalidArgument));
  QueryRequest none;
  none.top_k = 1;
  EXPECT_THAT(engine_->Query("t", none), StatusIs(absl::StatusCode::kInvalidArgument));
}

// Records with a dense vector, a sparse vector and text; each list ranks
// them differently so fusion is visible.
TEST_F(TextEngineTest, SparseAndHybridQueries) {
  auto doc = [&](const std::string& id, std::vector<float> v, storage::SparseVector sp,
                 const std::string& text, const char* md) {
    storage::Record r = Doc(id, text, md);
    r.values = std::move(v);
    r.sparse = std::move(sp);
    return r;
  };
  ASSERT_TRUE(
      engine_
          ->Upsert("t", "",
                   {doc("a", {1, 0}, {{1, 5}, {1.0f, 0.5f}}, "apple pie", R"({"k": 1})"),
                    doc("b", {0.8f, 0.6f}, {{1}, {3.0f}}, "apple apple tart", R"({"k": 2})"),
                    doc("c", {0, 1}, {{5, 9}, {2.0f, 1.0f}}, "pear", R"({"k": 1})"),
                    doc("d", {0.6f, 0.8f}, {}, "plum", R"({"k": 2})")})
          .ok());
  auto run = [&](QueryRequest q) {
    q.top_k = q.top_k == 0 ? 4 : q.top_k;
    auto r = engine_->Query("t", q);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->matches : std::vector<Match>{};
  };
  auto ids = [](const std::vector<Match>& ms) {
    std::vector<std::string> out;
    for (const Match& m : ms) out.push_back(m.id);
    return out;
  };
  // Sparse alone: dot products b = 3, c = 2 * 1 + 1 * 0 ... with q = {1: 1, 5: 1}.
  QueryRequest sq;
  sq.sparse = {{5, 1}, {1.0f, 1.0f}};  // Unsorted on purpose: the engine sorts.
  auto sparse = run(sq);
  ASSERT_EQ(ids(sparse), (std::vector<std::string>{"b", "c", "a"}));
  EXPECT_FLOAT_EQ(sparse[0].score, 3.0f);
  EXPECT_FLOAT_EQ(sparse[1].score, 2.0f);
  EXPECT_FLOAT_EQ(sparse[2].score, 1.5f);
  ASSERT_EQ(sparse[0].explanation.size(), 1u);
  EXPECT_EQ(sparse[0].explanation[0].source, "sparse");
  // Dense (cosine to [1, 0]): a, b, d, c. Text "apple": b (tf 2), a.
  // RRF with k = 60: a = 1/61 + 1/62 (+ sparse 1/63), b = 1/62 + 1/61 (+ 1/61).
  QueryRequest hq;
  hq.vector = {1, 0};
  hq.text = "apple";
  hq.sparse = sq.sparse;
  auto fused = run(hq);
  ASSERT_EQ(fused.size(), 4u);
  EXPECT_EQ(fused[0].id, "b");
  EXPECT_NEAR(fused[0].score, 1.0 / 62 + 1.0 / 61 + 1.0 / 61, 1e-6);
  EXPECT_EQ(fused[1].id, "a");
  EXPECT_NEAR(fused[1].score, 1.0 / 61 + 1.0 / 63 + 1.0 / 62, 1e-6);
  ASSERT_EQ(fused[0].explanation.size(), 3u);
  EXPECT_EQ(fused[0].explanation[0].source, "dense");
  EXPECT_EQ(fused[0].explanation[0].rank, 2u);
  EXPECT_EQ(fused[0].explanation[1].source, "sparse");
  EXPECT_EQ(fused[0].explanation[1].rank, 1u);
  EXPECT_FLOAT_EQ(fused[0].explanation[1].score, 3.0f);
  EXPECT_EQ(fused[0].explanation[2].source, "text");
  EXPECT_EQ(fused[0].explanation[2].rank, 1u);
  // d only in the dense list (rank 3): 1/63; c: dense rank 4 + sparse rank 2.
  EXPECT_EQ(fused[2].id, "c");
  EXPECT_EQ(fused[3].id, "d");
  // Weighted fusion of normalised scores, dense only counting: the dense order.
  hq.hybrid.fusion = HybridSpec::Fusion::kWeighted;
  hq.hybrid.dense_weight = 1;
  auto dense_only = run(hq);
  EXPECT_EQ(ids(dense_only), (std::vector<std::string>{"a", "b", "d", "c"}));
  EXPECT_FLOAT_EQ(dense_only[0].score, 1.0f);  // The best dense score normalises to 1.
  EXPECT_FLOAT_EQ(dense_only[3].score, 0.0f);  // The worst to 0.
  // Text weighted heavily: b first (best text score, 1 * 2 + dense part).
  hq.hybrid.text_weight = 2;
  EXPECT_EQ(run(hq)[0].id, "b");
  // The filter applies to every list; top_k cuts the fused list.
  hq.filter = *ParseJson(R"({"k": 1})");
  hq.top_k = 1;
  EXPECT_EQ(ids(run(hq)), (std::vector<std::string>{"a"}));
  // Bad hybrid settings.
  QueryRequest bad = hq;
  bad.hybrid.rrf_k = -1;
  EXPECT_THAT(engine_->Query("t", bad), StatusIs(absl::StatusCode::kInvalidArgument));
  bad = hq;
  bad.hybrid.sparse_weight = -0.5f;
  EXPECT_THAT(engine_->Query("t", bad), StatusIs(absl::StatusCode::kInvalidArgument));
  bad = hq;
  bad.hybrid.candidate_depth = 1000000;
  EXPECT_THAT(engine_->Query("t", bad), StatusIs(absl::StatusCode::kInvalidArgument));
  bad = hq;
  bad.sparse = {{3, 3}, {1, 1}};
  EXPECT_THAT(engine_->Query("t", bad), StatusIs(absl::StatusCode::kInvalidArgument));
  // Sparse vectors follow updates, deletes and restarts.
  UpdateSpec u;
  u.id = "c";
  u.sparse = storage::SparseVector{{1}, {10.0f}};
  QUIVER_ASSERT_OK(engine_->Update("t", "", u));
  EXPECT_EQ(run(sq)[0].id, "c");
  QUIVER_ASSERT_OK(engine_->DeleteIds("t", "", {"b"}).status());
  Open();
  EXPECT_EQ(ids(run(sq)), (std::vector<std::string>{"c", "a"}));
}

// A stand-in embedding model: (length, count of 'a') per text, and how
// many texts it was asked to embed.
class CountingEmbedder : public TextEmbedder {
 public:
  size_t dimension() const override { return 2; }
  absl::StatusOr<std::vector<std::vector<float>>> Embed(
      const std::vector<std::string>& texts) override {
    std::vector<std::vector<float>> out;
    for (const std::string& t : texts) {
      out.push_back(
          {static_cast<float>(t.size()), static_cast<float>(std::count(t.begin(), t.end(), 'a'))});
    }
    embedded += texts.size();
    return out;
  }
  size_t embedded = 0;
};

// A collection whose text lives in a metadata field: updates that change
// that field re-embed the record from it (the embedding is made before the
// write lock is taken); other updates do not call the model.
TEST(EmbeddingEngineTest, UpdatesReembedTheirTextField) {
  TempDir dir;
  CountingEmbedder model;
  EngineOptions o;
  o.store.path = dir.path() + "/data";
  o.embedders["counting"] = &model;
  auto engine = Engine::Open(o);
  QUIVER_ASSERT_OK(engine.status());
  storage::CollectionConfig c;
  c.name = "e";
  c.embedding_model = "counting";
  c.text.text_field = "body";
  QUIVER_ASSERT_OK((*engine)->CreateCollection(c).status());
  storage::Record r;
  r.id = "a";
  r.metadata = *storage::MetadataFromJson(*ParseJson(R"({"body": "banana", "n": 1})"));
  QUIVER_ASSERT_OK((*engine)->Upsert("e", "", {r}).status());
  auto values = [&] {
    auto f = (*engine)->Fetch("e", "", {"a"});
    EXPECT_TRUE(f.ok() && f->records.size() == 1);
    return f.ok() && !f->records.empty() ? f->records[0].values : std::vector<float>{};
  };
  EXPECT_EQ(values(), (std::vector<float>{6, 3}));
  EXPECT_EQ(model.embedded, 1u);
  UpdateSpec u;
  u.id = "a";
  u.set_metadata = *ParseJson(R"({"body": "kiwi"})");
  QUIVER_ASSERT_OK((*engine)->Update("e", "", u));
  EXPECT_EQ(values(), (std::vector<float>{4, 0}));
  EXPECT_EQ(model.embedded, 2u);
  UpdateSpec other;
  other.id = "a";
  other.set_metadata = *ParseJson(R"({"n": 2})");
  QUIVER_ASSERT_OK((*engine)->Update("e", "", other));
  EXPECT_EQ(values(), (std::vector<float>{4, 0}));
  EXPECT_EQ(model.embedded, 2u);
  // Record.text is not this collection's text: changing it embeds nothing.
  UpdateSpec text;
  text.id = "a";
  text.text = "aaaa";
  QUIVER_ASSERT_OK((*engine)->Update("e", "", text));
  EXPECT_EQ(values(), (std::vector<float>{4, 0}));
  EXPECT_EQ(model.embedded, 2u);
}

// Found from outside: a nonzero vector whose norm underflows float (1e-45
// denormals) was accepted and normalised by a float reciprocal that
// overflowed, so its score, and every score against a tiny query, was NaN.
TEST(EngineValuesTest, TinyVectorsNeverGiveNanScores) {
  TempDir dir;
  auto engine = OpenEngine(dir.path() + "/data");
  ASSERT_NE(engine, nullptr);
  for (storage::IndexKind kind : {storage::IndexKind::kFlat, storage::IndexKind::kHnsw}) {
    for (ann::Metric metric : {ann::Metric::kCosine, ann::Metric::kDot, ann::Metric::kL2}) {
      storage::CollectionConfig c;
      c.name = StrCat("c", static_cast<int>(kind), "_", static_cast<int>(metric));
      c.dimension = 4;
      c.metric = metric;
      c.index = kind;
      QUIVER_ASSERT_OK(engine->CreateCollection(c));
      std::mt19937 rng(7);
      std::normal_distribution<float> g;
      std::vector<Record> recs;
      for (int i = 0; i < 300; ++i)
        recs.push_back(Rec(StrCat("r", i), {g(rng), g(rng), g(rng), g(rng)}));
      recs.push_back(Rec("tiny", {1e-45f, 0, 0, 1e-45f}));
      recs.push_back(Rec("tiny2", {0, 1e-44f, 0, 0}));
      recs.push_back(Rec("small", {1e-30f, 1e-30f, 0, 0}));
      QUIVER_ASSERT_OK(engine->Upsert(c.name, "", std::move(recs)));
      std::vector<std::vector<float>> queries = {
          {1, 0, 0, 0}, {1e-40f, 0, 0, 0}, {0, 1e-45f, 0, 0}, {0.3f, -0.2f, 0.9f, 0.1f}};
      for (int i = 0; i < 50; ++i) queries.push_back({g(rng), g(rng), g(rng), g(rng)});
      for (const auto& v : queries) {
        QueryRequest q;
        q.vector = v;
        q.top_k = 303;
        if (kind == storage::IndexKind::kHnsw) q.ef_search = 1000;
        auto r = engine->Query(c.name, q);
        ASSERT_TRUE(r.ok()) << r.status();
        EXPECT_GT(r->matches.size(), 290u);
        for (const Match& m : r->matches) {
          ASSERT_TRUE(std::isfinite(m.score))
              << c.name << ": " << m.id << " scored " << m.score << " for " << v[0];
        }
        if (metric == ann::Metric::kCosine) {
          for (const Match& m : r->matches) {
            if (m.id == "tiny" && v == std::vector<float>{1, 0, 0, 0}) {
              EXPECT_NEAR(m.score, std::sqrt(0.5f), 1e-5);
            }
          }
        }
      }
      // The record normalises like any other: it is its own nearest
      // neighbour.
      if (metric == ann::Metric::kCosine) {
        QueryRequest q;
        q.id = "tiny";
        q.top_k = 1;
        auto r = engine->Query(c.name, q);
        ASSERT_TRUE(r.ok()) << r.status();
        ASSERT_EQ(r->matches.size(), 1u);
        EXPECT_NEAR(r->matches[0].score, 1.0f, 1e-5);
      }
    }
  }
}

void ExpectOutOfRange(const absl::Status& s) {
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("within +-1e15"), absl::string_view::npos) << s;
}

// Values so large that a dot product or squared distance would overflow
// float are refused, in records and in queries, dense and sparse.
TEST(EngineValuesTest, HugeValuesAreRefused) {
  TempDir dir;
  auto engine = OpenEngine(dir.path() + "/data");
  ASSERT_NE(engine, nullptr);
  storage::CollectionConfig c;
  c.name = "dots";
  c.dimension = 2;
  c.metric = ann::Metric::kDot;
  QUIVER_ASSERT_OK(engine->CreateCollection(c));
  ExpectOutOfRange(engine->Upsert("dots", "", {Rec("big", {3e20f, 1})}).status());
  Record sparse = Rec("sp", {1, 1});
  sparse.sparse.indices = {4};
  sparse.sparse.values = {-2e16f};
  ExpectOutOfRange(engine->Upsert("dots", "", {sparse}).status());
  QUIVER_ASSERT_OK(engine->Upsert("dots", "", {Rec("edge", {1e15f, -1e15f})}));
  QueryRequest q;
  q.vector = {1e16f, 0};
  q.top_k = 1;
  ExpectOutOfRange(engine->Query("dots", q).status());
  q.vector = {1e15f, 1e15f};
  auto r = engine->Query("dots", q);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->matches.size(), 1u);
  EXPECT_TRUE(std::isfinite(r->matches[0].score));
}

// Errors echo what the user sent, shortened: a 100 kB collection name must
// not make a 100 kB message (gRPC drops status messages past ~64 KB).
TEST(EngineValuesTest, LongEchoedValuesAreShortened) {
  TempDir dir;
  auto engine = OpenEngine(dir.path() + "/data");
  ASSERT_NE(engine, nullptr);
  const std::string name(100000, 'n');
  auto got = engine->GetCollection(name);
  ASSERT_FALSE(got.ok());
  EXPECT_LT(got.status().message().size(), 300u) << got.status().message().substr(0, 300);
  EXPECT_THAT(std::string(got.status().message()), ::testing::HasSubstr("100000 bytes"));
  storage::CollectionConfig c;
  c.name = "docs";
  c.dimension = 2;
  QUIVER_ASSERT_OK(engine->CreateCollection(c));
  QueryRequest q;
  q.vector = {1, 0};
  q.top_k = 1;
  q.filter = *ParseJson(StrCat(R"({")", std::string(100000, 'f'), R"(": {"$bogus": 1}})"));
  auto r = engine->Query("docs", q);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(r.status().message().size(), 300u);
}

}  // namespace
}  // namespace quiver::db
