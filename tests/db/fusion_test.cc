#include "db/fusion.h"

#include "gtest/gtest.h"

namespace quiver::db {
namespace {

TEST(FusionTest, ReciprocalRankFusionOfKnownLists) {
  std::vector<RankedList> lists = {
      {"dense", 1, {{"a", 0.9f}, {"b", 0.8f}, {"c", 0.1f}}},
      {"text", 2, {{"c", 7.0f}, {"a", 3.0f}}},
  };
  auto fused = Fuse(lists, HybridSpec::Fusion::kRrf, 60, 10);
  ASSERT_EQ(fused.size(), 3u);
  // c: 1/63 + 2/61; a: 1/61 + 2/62; b: 1/62.
  EXPECT_EQ(fused[0].id, "c");
  EXPECT_FLOAT_EQ(fused[0].score, 1.0f / 63 + 2.0f / 61);
  EXPECT_EQ(fused[1].id, "a");
  EXPECT_FLOAT_EQ(fused[1].score, 1.0f / 61 + 2.0f / 62);
  EXPECT_EQ(fused[2].id, "b");
  ASSERT_EQ(fused[0].explanation.size(), 2u);
  EXPECT_EQ(fused[0].explanation[0].source, "dense");
  EXPECT_EQ(fused[0].explanation[0].rank, 3u);
  EXPECT_FLOAT_EQ(fused[0].explanation[0].score, 0.1f);
  EXPECT_EQ(fused[0].explanation[1].source, "text");
  EXPECT_EQ(fused[0].explanation[1].rank, 1u);
  EXPECT_FLOAT_EQ(fused[0].explanation[1].score, 7.0f);
  // top_k cuts; a different k changes the balance.
  auto top1 = Fuse(lists, HybridSpec::Fusion::kRrf, 1, 1);
  ASSERT_EQ(top1.size(), 1u);
  EXPECT_EQ(top1[0].id, "c");  // 1/4 + 2/2 vs a: 1/2 + 2/3.
}

TEST(FusionTest, WeightedFusionNormalisesEachList) {
  std::vector<RankedList> lists = {
      {"dense", 1, {{"a", 0.5f}, {"b", 0.3f}, {"c", 0.1f}}},  // -> 1, 0.5, 0
      {"sparse", 3, {{"c", 10.0f}, {"b", 10.0f}}},            // Equal scores -> 1 each.
  };
  auto fused = Fuse(lists, HybridSpec::Fusion::kWeighted, 60, 10);
  ASSERT_EQ(fused.size(), 3u);
  EXPECT_EQ(fused[0].id, "b");
  EXPECT_FLOAT_EQ(fused[0].score, 0.5f + 3);
  EXPECT_EQ(fused[1].id, "c");
  EXPECT_FLOAT_EQ(fused[1].score, 0 + 3);
  EXPECT_EQ(fused[2].id, "a");
  EXPECT_FLOAT_EQ(fused[2].score, 1);
  // Equal fused scores order by id; empty lists are fine.
  lists = {
      {"dense", 1, {{"y", 2}, {"x", 1}}}, {"text", 1, {{"x", 5}, {"y", 1}}}, {"sparse", 1, {}}};
  auto tie = Fuse(lists, HybridSpec::Fusion::kWeighted, 60, 10);
  ASSERT_EQ(tie.size(), 2u);
  EXPECT_EQ(tie[0].id, "x");
  EXPECT_EQ(tie[1].id, "y");
}

}  // namespace
}  // namespace quiver::db
