#include "common/memory_budget.h"

#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quiver {
namespace {

using ::testing::HasSubstr;

MemoryAmounts Of(MemoryPart part, uint64_t bytes) {
  MemoryAmounts a{};
  At(a, part) = bytes;
  return a;
}

constexpr uint64_t kMiB = 1 << 20;

TEST(MemoryBudgetTest, ReservationsCountUntilTheyGo) {
  MemoryBudget budget(10 * kMiB);
  {
    auto r = budget.Reserve(Of(MemoryPart::kVectors, 6 * kMiB), "six");
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(At(budget.used(), MemoryPart::kVectors), 6 * kMiB);
    auto more = budget.Reserve(Of(MemoryPart::kGraph, 5 * kMiB), "upserting 5 records");
    ASSERT_FALSE(more.ok());
    EXPECT_EQ(more.status().code(), absl::StatusCode::kResourceExhausted);
    // Says who asked, for how much, what the budget is, what is left and
    // what holds it.
    EXPECT_THAT(more.status().message(), HasSubstr("upserting 5 records needs 5.0 MB"));
    EXPECT_THAT(more.status().message(),
                HasSubstr("memory budget of 10.0 MB (--memory_budget_mb)"));
    EXPECT_THAT(more.status().message(), HasSubstr("has 4.0 MB left"));
    EXPECT_THAT(more.status().message(), HasSubstr("held: vectors 6.0 MB"));
    EXPECT_EQ(Sum(budget.used()), 6 * kMiB);  // The refused one counted nothing.
    auto fits = budget.Reserve(Of(MemoryPart::kGraph, 4 * kMiB), "four");
    ASSERT_TRUE(fits.ok());
    EXPECT_EQ(Sum(budget.used()), 10 * kMiB);
  }
  EXPECT_EQ(Sum(budget.used()), 0u);
}

TEST(MemoryBudgetTest, KeptReservationsStayUntilReleased) {
  MemoryBudget budget(10 * kMiB);
  MemoryAmounts held = Of(MemoryPart::kModels, 3 * kMiB);
  {
    auto r = budget.Reserve(held, "a model");
    ASSERT_TRUE(r.ok());
    r->Keep();
  }
  EXPECT_EQ(At(budget.used(), MemoryPart::kModels), 3 * kMiB);
  budget.Release(held);
  EXPECT_EQ(Sum(budget.used()), 0u);
}

TEST(MemoryBudgetTest, MovedReservationsReleaseOnce) {
  MemoryBudget budget(10 * kMiB);
  MemoryReservation outer;
  {
    auto r = budget.Reserve(Of(MemoryPart::kPostings, 2 * kMiB), "postings");
    ASSERT_TRUE(r.ok());
    outer = *std::move(r);
  }
  EXPECT_EQ(Sum(budget.used()), 2 * kMiB);
  outer.Reset();
  outer.Reset();
  EXPECT_EQ(Sum(budget.used()), 0u);
}

TEST(MemoryBudgetTest, AdjustMovesCountsAndNeverGoesBelowZero) {
  MemoryBudget budget;  // No limit: counts only.
  budget.Add(Of(MemoryPart::kMetadata, 100));
  budget.Adjust(Of(MemoryPart::kMetadata, 100), Of(MemoryPart::kMetadata, 250));
  EXPECT_EQ(At(budget.used(), MemoryPart::kMetadata), 250u);
  budget.Release(Of(MemoryPart::kMetadata, 1000));
  EXPECT_EQ(At(budget.used(), MemoryPart::kMetadata), 0u);
  // Without a limit anything fits.
  EXPECT_TRUE(budget.Reserve(Of(MemoryPart::kVectors, uint64_t{1} << 50), "huge").ok());
}

TEST(MemoryBudgetTest, PartLimitsBoundTheirPartOnly) {
  MemoryAmounts limits{};
  At(limits, MemoryPart::kPostings) = 2 * kMiB;
  MemoryBudget budget(100 * kMiB, limits);
  ASSERT_TRUE(budget.Reserve(Of(MemoryPart::kPostings, 2 * kMiB), "two").ok());
  auto r = budget.Reserve(Of(MemoryPart::kPostings, 2 * kMiB + 1), "indexing text");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("indexing text needs 2.0 MB of postings"));
  EXPECT_THAT(r.status().message(), HasSubstr("--memory_part_budget_mb"));
  EXPECT_TRUE(budget.Reserve(Of(MemoryPart::kVectors, 50 * kMiB), "vectors").ok());
  EXPECT_TRUE(budget.CheckFits(Of(MemoryPart::kPostings, kMiB), "one").ok());
  EXPECT_FALSE(budget.CheckFits(Of(MemoryPart::kPostings, 3 * kMiB), "three").ok());
}

TEST(MemoryBudgetTest, ConcurrentReservationsNeverOvershoot) {
  MemoryBudget budget(1000);
  std::vector<std::thread> threads;
  std::vector<MemoryReservation> won[4];
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i) {
        auto r = budget.Reserve(Of(MemoryPart::kVectors, 3), "three");
        if (r.ok()) won[t].push_back(*std::move(r));
      }
    });
  }
  for (auto& th : threads) th.join();
  size_t total = 0;
  for (const auto& w : won) total += w.size();
  EXPECT_EQ(total, 333u);  // floor(1000 / 3): no more, no fewer.
  EXPECT_EQ(Sum(budget.used()), 999u);
}

TEST(MemoryBudgetTest, ParsesPartLimits) {
  auto limits = ParseMemoryPartLimits(" vectors=4096, postings = 512 ,");
  ASSERT_TRUE(limits.ok()) << limits.status();
  EXPECT_EQ(At(*limits, MemoryPart::kVectors), 4096 * kMiB);
  EXPECT_EQ(At(*limits, MemoryPart::kPostings), 512 * kMiB);
  EXPECT_EQ(At(*limits, MemoryPart::kGraph), 0u);
  EXPECT_TRUE(ParseMemoryPartLimits("").ok());
  for (const char* bad : {"vector=1", "vectors", "vectors=", "vectors=0", "vectors=-3",
                          "vectors=1.5", "kv_cache=99999999999999"}) {
    auto r = ParseMemoryPartLimits(bad);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_THAT(ParseMemoryPartLimits("vector=1").status().message(),
              HasSubstr("vectors, graph, postings, metadata, models, kv_cache, caches"));
}

TEST(MemoryBudgetTest, ReadsThisMachine) {
  EXPECT_GT(AvailableMemoryBytes(), 64 * kMiB);
  const uint64_t before = ResidentBytes();
  EXPECT_GT(before, 0u);
  std::vector<char> touched(64 * kMiB, 1);
  EXPECT_GE(ResidentBytes(), before + 32 * kMiB) << static_cast<int>(touched[12345]);
}

TEST(MemoryBudgetTest, DescribesParts) {
  MemoryAmounts a{};
  EXPECT_EQ(DescribeMemory(a), "nothing");
  At(a, MemoryPart::kKvCache) = 3 * kMiB / 2;
  At(a, MemoryPart::kVectors) = kMiB;
  EXPECT_EQ(DescribeMemory(a), "vectors 1.0 MB, kv_cache 1.5 MB");
  for (size_t i = 0; i < kMemoryParts; ++i) {
    const auto part = static_cast<MemoryPart>(i);
    EXPECT_EQ(ParseMemoryPart(MemoryPartName(part)), part);
  }
}

}  // namespace
}  // namespace quiver
