#include "common/spin_team.h"

#include <atomic>
#include <chrono>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace quiver {
namespace {

using Schedule = SpinTeam::Schedule;

TEST(SpinTeamTest, EveryIndexRunsExactlyOnceUnderBothSchedules) {
  SpinTeam team(3);
  for (Schedule schedule : {Schedule::kStatic, Schedule::kDynamic}) {
    for (int64_t n : {0, 1, 2, 3, 7, 1000}) {
      std::vector<std::atomic<int>> hits(n);
      ASSERT_TRUE(team.ParallelFor(n, schedule, [&](int64_t i) { hits[i].fetch_add(1); }));
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i;
    }
  }
}

TEST(SpinTeamTest, ManyShortLoopsInARowAllFinish) {
  SpinTeam team(2);
  std::vector<int64_t> out(64);
  for (int rep = 0; rep < 20000; ++rep) {
    ASSERT_TRUE(team.ParallelFor(static_cast<int64_t>(out.size()), Schedule::kStatic,
                                 [&](int64_t i) { out[i] += i; }));
  }
  for (size_t i = 0; i < out.size(); ++i) EXPECT_EQ(out[i], 20000 * static_cast<int64_t>(i));
}

TEST(SpinTeamTest, StaticScheduleGivesEachParticipantTheSameIndicesEveryCall) {
  SpinTeam team(2);
  std::vector<std::thread::id> first(100), again(100);
  ASSERT_TRUE(team.ParallelFor(100, Schedule::kStatic,
                               [&](int64_t i) { first[i] = std::this_thread::get_id(); }));
  ASSERT_TRUE(team.ParallelFor(100, Schedule::kStatic,
                               [&](int64_t i) { again[i] = std::this_thread::get_id(); }));
  EXPECT_EQ(first, again);
  // The caller runs the first share; a worker runs the rest.
  EXPECT_EQ(first[0], std::this_thread::get_id());
  EXPECT_NE(first[99], std::this_thread::get_id());
}

TEST(SpinTeamTest, WorkersThatFellAsleepWakeForTheNextLoop) {
  SpinTeam team(3, std::chrono::microseconds(100));
  std::atomic<int> sum{0};
  for (int rep = 0; rep < 5; ++rep) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // Past the spin: asleep.
    ASSERT_TRUE(team.ParallelFor(30, Schedule::kStatic, [&](int64_t i) { sum += i; }));
  }
  EXPECT_EQ(sum.load(), 5 * (29 * 30 / 2));
}

TEST(SpinTeamTest, ABusyTeamRefusesWithoutRunningAnything) {
  SpinTeam team(2);
  std::atomic<int> inner_calls{0}, refusals{0};
  ASSERT_TRUE(team.ParallelFor(4, Schedule::kDynamic, [&](int64_t) {
    if (!team.ParallelFor(3, Schedule::kStatic, [&](int64_t) { ++inner_calls; })) ++refusals;
  }));
  EXPECT_EQ(inner_calls.load(), 0);
  EXPECT_EQ(refusals.load(), 4);
}

TEST(SpinTeamTest, CallersFromSeveralThreadsEitherRunOrAreRefused) {
  SpinTeam team(2);
  std::atomic<long> total{0}, expected{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&] {
      for (int rep = 0; rep < 500; ++rep) {
        if (team.ParallelFor(17, Schedule::kDynamic, [&](int64_t i) { total += i; })) {
          expected += 16 * 17 / 2;
        }
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(total.load(), expected.load());
  EXPECT_GT(expected.load(), 0);
}

TEST(SpinTeamTest, ATeamOfOneRunsOnTheCaller) {
  SpinTeam team(1);
  std::set<std::thread::id> ids;
  ASSERT_TRUE(team.ParallelFor(10, Schedule::kStatic,
                               [&](int64_t) { ids.insert(std::this_thread::get_id()); }));
  EXPECT_EQ(ids, std::set<std::thread::id>{std::this_thread::get_id()});
}

}  // namespace
}  // namespace quiver
