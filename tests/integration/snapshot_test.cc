// Snapshots restored into a fresh server: taken while writers run, the
// restored database equals the source at the snapshot point (every record
// bit for bit; search equal to the exact oracle), its graphs loaded from
// their checkpoints rather than rebuilt; restores that would destroy data
// or race a running server are refused.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/strings.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "quiver/v1/admin.grpc.pb.h"
#include "quiver/v1/collections.grpc.pb.h"
#include "quiver/v1/points.grpc.pb.h"
#include "quiver/v1/search.grpc.pb.h"
#include "tests/testing/quiverd_process.h"
#include "tests/testing/test_util.h"

namespace quiver {
namespace {

using ::testing::HasSubstr;

constexpr int kDim = 8;
constexpr int kBase = 3000;

float Value(int key, int d) { return static_cast<float>((key * 31 + d * 7) % 1000) / 100.0f - 5; }

v1::Record Rec(const std::string& id, int key) {
  v1::Record r;
  r.set_id(id);
  for (int d = 0; d < kDim; ++d) r.add_values(Value(key, d));
  return r;
}

// When an operation started and was acknowledged, relative to the snapshot.
enum Phase { kBefore = 0, kDuring = 1, kAfter = 2 };

struct Op {
  bool insert;  // Else a delete.
  int key;      // Insert: batch number; delete: base record.
  Phase started, acked;
};

TEST(SnapshotTest, RestoredSnapshotEqualsTheSourceAtTheSnapshotPoint) {
  testing::TempDir dir;
  const std::string source_dir = dir.path() + "/source";
  testing::QuiverdProcess source(source_dir);
  QUIVER_ASSERT_OK(source.Start());
  auto channel = source.NewChannel();
  auto collections = v1::Collections::NewStub(channel);
  auto points = v1::Points::NewStub(channel);
  auto admin = v1::Admin::NewStub(channel);
  {
    v1::CreateCollectionRequest req;
    req.mutable_config()->set_name("snap");
    req.mutable_config()->set_dimension(kDim);
    req.mutable_config()->set_metric(v1::METRIC_L2);
    req.mutable_config()->mutable_index()->mutable_hnsw();
    v1::CreateCollectionResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(collections->Create(&ctx, req, &resp).ok());
  }
  for (int start = 0; start < kBase; start += 500) {
    v1::UpsertRequest req;
    req.set_collection("snap");
    for (int i = start; i < start + 500; ++i) *req.add_records() = Rec(StrCat("base-", i), i);
    v1::UpsertResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(points->Upsert(&ctx, req, &resp).ok());
  }

  // Two writers: one inserts batches of new records, one deletes base ones.
  std::atomic<int> phase{kBefore};
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<Op> ops;
  std::atomic<int> acked{0};
  std::thread inserter([&] {
    auto stub = v1::Points::NewStub(source.NewChannel());
    for (int b = 0; !stop.load(); ++b) {
      v1::UpsertRequest req;
      req.set_collection("snap");
      for (int i = 0; i < 10; ++i) {
        *req.add_records() = Rec(StrCat("new-", b, "-", i), 100000 + b * 10 + i);
      }
      Op op{true, b, static_cast<Phase>(phase.load()), kBefore};
      v1::UpsertResponse resp;
      grpc::ClientContext ctx;
      if (!stub->Upsert(&ctx, req, &resp).ok()) continue;
      op.acked = static_cast<Phase>(phase.load());
      std::lock_guard<std::mutex> l(mu);
      ops.push_back(op);
      ++acked;
    }
  });
  std::thread deleter([&] {
    auto stub = v1::Points::NewStub(source.NewChannel());
    for (int k = 0; !stop.load() && k < kBase; k += 7) {
      v1::DeleteRequest req;
      req.set_collection("snap");
      req.mutable_ids()->add_ids(StrCat("base-", k));
      Op op{false, k, static_cast<Phase>(phase.load()), kBefore};
      v1::DeleteResponse resp;
      grpc::ClientContext ctx;
      if (!stub->Delete(&ctx, req, &resp).ok()) continue;
      op.acked = static_cast<Phase>(phase.load());
      std::lock_guard<std::mutex> l(mu);
      ops.push_back(op);
      ++acked;
    }
  });
  while (acked.load() < 60) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  std::string snapshot_path;
  {
    v1::SnapshotRequest req;
    req.set_name("s1");
    v1::SnapshotResponse resp;
    grpc::ClientContext ctx;
    phase = kDuring;
    grpc::Status s = admin->Snapshot(&ctx, req, &resp);
    phase = kAfter;
    ASSERT_TRUE(s.ok()) << s.error_message();
    snapshot_path = resp.path();
  }
  const int acked_at_snapshot = acked.load();
  while (acked.load() < acked_at_snapshot + 60) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  stop = true;
  inserter.join();
  deleter.join();

  // The CLI lists it; restoring over the running source is refused.
  std::string out;
  EXPECT_EQ(testing::RunCli({"--addr=" + source.address(), "snapshot", "list"}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("s1"));
  EXPECT_EQ(testing::RunCli(
                {"snapshot", "restore", "s1", "--data-dir=" + source_dir, "--overwrite"}, &out),
            1);
  EXPECT_THAT(out, HasSubstr("stop it before restoring"));

  // A fresh server restored from the snapshot.
  const std::string restored_dir = dir.path() + "/restored";
  testing::QuiverdProcess restored(restored_dir, {"--restore=" + snapshot_path});
  QUIVER_ASSERT_OK(restored.Start());
  // The graph came from its checkpoint (the snapshot checkpointed it).
  const std::string log = restored.Log();
  const size_t at = log.find("from_checkpoint=");
  ASSERT_NE(at, std::string::npos) << log;
  EXPECT_GT(std::atoi(log.c_str() + at + std::strlen("from_checkpoint=")), kBase / 2) << log;
  EXPECT_THAT(log, ::testing::Not(HasSubstr("rebuilding")));
  auto rpoints = v1::Points::NewStub(restored.NewChannel());
  auto rsearch = v1::Search::NewStub(restored.NewChannel());
  auto fetch = [&](const std::vector<std::string>& ids) {
    v1::FetchRequest req;
    req.set_collection("snap");
    for (const auto& id : ids) req.add_ids(id);
    v1::FetchResponse resp;
    grpc::ClientContext ctx;
    EXPECT_TRUE(rpoints->Fetch(&ctx, req, &resp).ok());
    std::map<std::string, v1::Record> found;
    for (const v1::Record& r : resp.records()) found[r.id()] = r;
    return found;
  };
  auto same = [](const v1::Record& r, int key) {
    if (r.values_size() != kDim) return false;
    for (int d = 0; d < kDim; ++d) {
      if (r.values(d) != Value(key, d)) return false;
    }
    return true;
  };
  std::set<int> deleted_for_sure, kept_for_sure;
  int inserted_for_sure = 0, absent_for_sure = 0, ambiguous = 0;
  uint64_t expected_min = kBase, expected_max = kBase;
  for (const Op& op : ops) {
    if (op.insert) {
      std::vector<std::string> ids;
      for (int i = 0; i < 10; ++i) ids.push_back(StrCat("new-", op.key, "-", i));
      auto found = fetch(ids);
      if (op.acked == kBefore) {
        ASSERT_EQ(found.size(), 10u) << "batch " << op.key << " acknowledged before the snapshot";
        ++inserted_for_sure;
        expected_min += 10;
        expected_max += 10;
      } else if (op.started == kAfter) {
        ASSERT_TRUE(found.empty()) << "batch " << op.key << " written after the snapshot";
        ++absent_for_sure;
      } else {
        ASSERT_TRUE(found.empty() || found.size() == 10u) << "batch " << op.key << " is torn";
        ++ambiguous;
        expected_max += 10;
      }
      for (int i = 0; i < 10; ++i) {
        auto it = found.find(ids[i]);
        if (it != found.end()) {
          EXPECT_TRUE(same(it->second, 100000 + op.key * 10 + i));
        }
      }
    } else {
      auto found = fetch({StrCat("base-", op.key)});
      if (op.acked == kBefore) {
        EXPECT_TRUE(found.empty()) << "base-" << op.key << " deleted before the snapshot";
        deleted_for_sure.insert(op.key);
        expected_min -= 1;
        expected_max -= 1;
      } else if (op.started == kAfter) {
        ASSERT_EQ(found.size(), 1u) << "base-" << op.key << " deleted after the snapshot";
        kept_for_sure.insert(op.key);
      } else {
        expected_min -= 1;
        ++ambiguous;
      }
    }
  }
  EXPECT_GT(inserted_for_sure, 5);
  EXPECT_GT(absent_for_sure + static_cast<int>(kept_for_sure.size()), 5);
  // Every base record not deleted: present, bit for bit.
  for (int start = 0; start < kBase; start += 500) {
    std::vector<std::string> ids;
    for (int i = start; i < start + 500; ++i) ids.push_back(StrCat("base-", i));
    auto found = fetch(ids);
    for (int i = start; i < start + 500; ++i) {
      auto it = found.find(StrCat("base-", i));
      if (i % 7 != 0 || kept_for_sure.contains(i)) {
        ASSERT_NE(it, found.end()) << "base-" << i;
        EXPECT_TRUE(same(it->second, i)) << "base-" << i;
      }
    }
  }
  // Records the snapshot's graph lacks (written during it, or still in the
  // source's backlog) are indexed in the background: wait for it.
  auto indexed = testing::WaitUntilIndexed(rpoints.get(), "snap", absl::Seconds(60));
  QUIVER_ASSERT_OK(indexed.status());
  const v1::DescribeStatsResponse& stats = *indexed;
  EXPECT_GE(stats.total_record_count(), expected_min);
  EXPECT_LE(stats.total_record_count(), expected_max);
  EXPECT_EQ(stats.catching_up_count(), 0u);
  // Search equals the exact oracle: a full-width walk returns what the
  // exact scan does, and records find themselves.
  const uint32_t all = static_cast<uint32_t>(stats.total_record_count());
  ASSERT_LE(all, 10000u);
  std::vector<float> v;
  for (int d = 0; d < kDim; ++d) v.push_back(Value(5, d));
  const auto [walk, exact] = testing::WalkAndExactIds(rsearch.get(), "snap", v, all);
  ASSERT_EQ(walk.size(), exact.size());
  EXPECT_EQ(std::set<std::string>(walk.begin(), walk.end()),
            std::set<std::string>(exact.begin(), exact.end()));
  for (int i = 1; i < kBase; i += 97) {
    if (i % 7 == 0) continue;
    v1::QueryRequest self;
    self.set_collection("snap");
    self.set_top_k(1);
    for (int d = 0; d < kDim; ++d) self.add_vector(Value(i, d));
    v1::QueryResponse r;
    grpc::ClientContext ctx;
    ASSERT_TRUE(rsearch->Query(&ctx, self, &r).ok());
    ASSERT_EQ(r.matches_size(), 1);
    EXPECT_EQ(r.matches(0).score(), 0.0f) << "base-" << i;
  }
  restored.Stop(SIGTERM);

  // A second restore into the now non-empty directory needs the explicit
  // flag; with it, it succeeds.
  testing::QuiverdProcess again(restored_dir, {"--restore=" + snapshot_path});
  absl::Status refused = again.Start();
  EXPECT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.message()), HasSubstr("--restore_overwrite"));
  testing::QuiverdProcess overwrite(restored_dir,
                                    {"--restore=" + snapshot_path, "--restore_overwrite"});
  QUIVER_ASSERT_OK(overwrite.Start());
  overwrite.Stop(SIGTERM);
  // The CLI restores offline too.
  const std::string cli_dir = dir.path() + "/cli";
  EXPECT_EQ(testing::RunCli({"snapshot", "restore", snapshot_path, "--data-dir=" + cli_dir}, &out),
            0)
      << out;
  testing::QuiverdProcess from_cli(cli_dir);
  QUIVER_ASSERT_OK(from_cli.Start());
  {
    auto p = v1::Points::NewStub(from_cli.NewChannel());
    v1::DescribeStatsRequest sr;
    sr.set_collection("snap");
    v1::DescribeStatsResponse st;
    grpc::ClientContext ctx;
    ASSERT_TRUE(p->DescribeStats(&ctx, sr, &st).ok());
    EXPECT_EQ(st.total_record_count(), stats.total_record_count());
  }
  from_cli.Stop(SIGTERM);
  // An interrupted restore leaves a marker; such a directory does not open.
  std::ofstream(cli_dir + "/.restore-in-progress") << "restoring\n";
  testing::QuiverdProcess interrupted(cli_dir);
  absl::Status s = interrupted.Start();
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("interrupted snapshot restore"));
}

}  // namespace
}  // namespace quiver
