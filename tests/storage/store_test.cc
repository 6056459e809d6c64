#include "storage/store.h"

#include <filesystem>
#include <map>

#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace quiver::storage {
namespace {

using ::quiver::testing::StatusIs;
using ::quiver::testing::TempDir;

StoredRecord Rec(const std::string& id, uint64_t internal, float v) {
  StoredRecord s;
  s.label = internal;
  s.record.id = id;
  s.record.values = {v, v + 1};
  return s;
}

CollectionConfig Config(const std::string& name) {
  CollectionConfig c;
  c.name = name;
  c.dimension = 2;
  return c;
}

class StoreTest : public ::testing::Test {
 protected:
  void Open(SyncPolicy sync = SyncPolicy::kBatch) {
    store_.reset();
    StoreOptions o;
    o.path = dir_.path() + "/db";
    o.sync = sync;
    auto s = Store::Open(o);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
  }
  void SetUp() override { Open(); }

  TempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, CatalogAssignsFreshIdsAndRejectsDuplicates) {
  auto a = store_->CreateCollection(Config("a"), 1);
  auto b = store_->CreateCollection(Config("b"), 2);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->id, b->id);
  EXPECT_THAT(store_->CreateCollection(Config("a"), 3), StatusIs(absl::StatusCode::kAlreadyExists));
  Config("bad name");
  EXPECT_THAT(store_->CreateCollection(Config("bad name"), 3),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_TRUE(store_->DropCollection(*a).ok());
  auto a2 = store_->CreateCollection(Config("a"), 4);
  ASSERT_TRUE(a2.ok());
  EXPECT_GT(a2->id, b->id) << "ids are never reused";
  Open();
  std::vector<std::string> damaged;
  auto all = store_->LoadCatalog(&damaged);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_TRUE(damaged.empty());
}

TEST_F(StoreTest, BatchesApplyAtomicallyAndSurviveReopen) {
  auto meta = store_->CreateCollection(Config("c"), 1);
  ASSERT_TRUE(meta.ok());
  RecordBatch batch = store_->NewBatch();
  for (int i = 0; i < 100; ++i) batch.Put(meta->id, "ns", Rec("id" + std::to_string(i), i, i));
  batch.Delete(meta->id, "ns", "id7");
  ASSERT_TRUE(store_->Write(&batch).ok());
  Open(SyncPolicy::kAlways);
  auto got = store_->Get(meta->id, "ns", "id42");
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->record.values, std::vector<float>({42, 43}));
  EXPECT_FALSE(store_->Get(meta->id, "ns", "id7")->has_value());
  EXPECT_FALSE(store_->Get(meta->id, "other", "id42")->has_value());
  int n = 0;
  ASSERT_TRUE(store_
                  ->ScanCollection(meta->id,
                                   [&](std::string_view ns, StoredRecord) {
                                     EXPECT_EQ(ns, "ns");
                                     ++n;
                                     return absl::OkStatus();
                                   })
                  .ok());
  EXPECT_EQ(n, 99);
}

TEST_F(StoreTest, DropRemovesEveryRecordOfTheCollectionOnly) {
  auto a = store_->CreateCollection(Config("a"), 1);
  auto b = store_->CreateCollection(Config("b"), 1);
  RecordBatch batch = store_->NewBatch();
  batch.Put(a->id, "", Rec("x", 1, 1));
  batch.Put(b->id, "", Rec("x", 1, 2));
  ASSERT_TRUE(store_->Write(&batch).ok());
  ASSERT_TRUE(store_->DropCollection(*a).ok());
  EXPECT_FALSE(store_->Get(a->id, "", "x")->has_value());
  EXPECT_TRUE(store_->Get(b->id, "", "x")->has_value());
}

TEST_F(StoreTest, DeleteNamespaceLeavesOtherNamespaces) {
  auto a = store_->CreateCollection(Config("a"), 1);
  RecordBatch batch = store_->NewBatch();
  batch.Put(a->id, "one", Rec("x", 1, 1));
  batch.Put(a->id, "one", Rec("\xF4\x8F\xBF\xBF", 2, 1));  // Highest code point.
  batch.Put(a->id, "one2", Rec("x", 3, 1));
  batch.Put(a->id, "", Rec("x", 4, 1));
  ASSERT_TRUE(store_->Write(&batch).ok());
  RecordBatch del = store_->NewBatch();
  del.DeleteNamespace(a->id, "one");
  ASSERT_TRUE(store_->Write(&del).ok());
  EXPECT_FALSE(store_->Get(a->id, "one", "x")->has_value());
  EXPECT_FALSE(store_->Get(a->id, "one", "\xF4\x8F\xBF\xBF")->has_value());
  EXPECT_TRUE(store_->Get(a->id, "one2", "x")->has_value());
  EXPECT_TRUE(store_->Get(a->id, "", "x")->has_value());
}

TEST_F(StoreTest, ListIdsPagesInOrderWithPrefix) {
  auto a = store_->CreateCollection(Config("a"), 1);
  RecordBatch batch = store_->NewBatch();
  for (const char* id : {"doc#1", "doc#2", "doc#3", "img#1", "doc#10"}) {
    batch.Put(a->id, "", Rec(id, 1, 1));
  }
  batch.Put(a->id, "other", Rec("doc#0", 1, 1));
  ASSERT_TRUE(store_->Write(&batch).ok());
  auto page1 = store_->ListIds(a->id, "", "doc#", "", 2);
  ASSERT_TRUE(page1.ok());
  EXPECT_EQ(*page1, std::vector<std::string>({"doc#1", "doc#10"}));
  auto page2 = store_->ListIds(a->id, "", "doc#", page1->back(), 2);
  EXPECT_EQ(*page2, std::vector<std::string>({"doc#2", "doc#3"}));
  auto page3 = store_->ListIds(a->id, "", "doc#", page2->back(), 2);
  EXPECT_TRUE(page3->empty());
  EXPECT_EQ(store_->ListIds(a->id, "", "", "", 100)->size(), 5u);
}

TEST_F(StoreTest, CheckpointOpensAsADataDirectory) {
  auto a = store_->CreateCollection(Config("a"), 1);
  RecordBatch batch = store_->NewBatch();
  batch.Put(a->id, "", Rec("x", 1, 5));
  ASSERT_TRUE(store_->Write(&batch).ok());
  const std::string snap = dir_.path() + "/snap";
  ASSERT_TRUE(store_->WriteSnapshot(snap).ok());
  StoreOptions o;
  o.path = snap;
  auto copy = Store::Open(o);
  ASSERT_TRUE(copy.ok()) << copy.status();
  auto got = (*copy)->Get(a->id, "", "x");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->record.values[0], 5);
}

// Index data as a map, or the scan's error.
absl::StatusOr<std::map<std::string, std::string>> ReadIndexData(Store& store, uint32_t c,
                                                                 std::string_view ns, char kind) {
  std::map<std::string, std::string> out;
  absl::Status s = store.ScanIndexData(c, ns, kind, [&](std::string_view k, std::string_view v) {
    out[std::string(k)] = std::string(v);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::Status WritePairs(Store& store, uint32_t c, std::string_view ns, char kind,
                        const std::map<std::string, std::string>& pairs, bool fail = false) {
  return store.ReplaceIndexData(c, ns, kind, [&](KvSink& sink) -> absl::Status {
    for (const auto& [k, v] : pairs) {
      if (absl::Status s = sink.Put(k, v); !s.ok()) return s;
    }
    return fail ? absl::InternalError("writer failed") : absl::OkStatus();
  });
}

TEST_F(StoreTest, IndexDataIsReplacedAsAWhole) {
  using Pairs = std::map<std::string, std::string>;
  EXPECT_THAT(ReadIndexData(*store_, 1, "", 'b').status(), StatusIs(absl::StatusCode::kNotFound));
  QUIVER_ASSERT_OK(WritePairs(*store_, 1, "", 'b', {{"a", "1"}, {"b", "2"}}));
  QUIVER_ASSERT_OK(WritePairs(*store_, 1, "", 's', {{"x", "9"}}));
  QUIVER_ASSERT_OK(WritePairs(*store_, 1, "ns", 'b', {{"n", "3"}}));
  QUIVER_ASSERT_OK(WritePairs(*store_, 1, "", 'b', {{"c", "3"}}));
  EXPECT_EQ(*ReadIndexData(*store_, 1, "", 'b'), (Pairs{{"c", "3"}}));
  // A replacement that fails part-way leaves the previous generation.
  EXPECT_FALSE(WritePairs(*store_, 1, "", 'b', {{"d", "4"}, {"e", "5"}}, /*fail=*/true).ok());
  EXPECT_EQ(*ReadIndexData(*store_, 1, "", 'b'), (Pairs{{"c", "3"}}));
  // Large replacements span several write batches.
  Pairs big;
  for (int i = 0; i < 3000; ++i) big[std::to_string(i)] = std::string(4000, 'v');
  QUIVER_ASSERT_OK(WritePairs(*store_, 1, "", 'b', big));
  Open();
  EXPECT_EQ(ReadIndexData(*store_, 1, "", 'b')->size(), big.size());
  EXPECT_EQ(*ReadIndexData(*store_, 1, "", 's'), (Pairs{{"x", "9"}}));
  // Deleting a namespace drops its index data, and only its.
  RecordBatch batch = store_->NewBatch();
  batch.DeleteNamespace(1, "");
  QUIVER_ASSERT_OK(store_->Write(&batch));
  EXPECT_THAT(ReadIndexData(*store_, 1, "", 'b').status(), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(ReadIndexData(*store_, 1, "", 's').status(), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(*ReadIndexData(*store_, 1, "ns", 'b'), (Pairs{{"n", "3"}}));
}

TEST_F(StoreTest, DropCollectionDropsItsIndexData) {
  auto a = store_->CreateCollection(Config("a"), 0);
  auto b = store_->CreateCollection(Config("b"), 0);
  ASSERT_TRUE(a.ok() && b.ok());
  QUIVER_ASSERT_OK(WritePairs(*store_, a->id, "", 'b', {{"k", "v"}}));
  QUIVER_ASSERT_OK(WritePairs(*store_, b->id, "", 'b', {{"k", "w"}}));
  QUIVER_ASSERT_OK(store_->DropCollection(*a));
  EXPECT_THAT(ReadIndexData(*store_, a->id, "", 'b').status(),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(ReadIndexData(*store_, b->id, "", 'b')->at("k"), "w");
}

TEST(StoreOptionsTest, ParsesSyncPolicies) {
  EXPECT_EQ(*ParseSyncPolicy("always"), SyncPolicy::kAlways);
  EXPECT_EQ(*ParseSyncPolicy("batch"), SyncPolicy::kBatch);
  EXPECT_EQ(*ParseSyncPolicy("none"), SyncPolicy::kNone);
  EXPECT_THAT(ParseSyncPolicy("sometimes"), StatusIs(absl::StatusCode::kInvalidArgument));
  StoreOptions o;
  EXPECT_THAT(o.Validate(), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace quiver::storage
