// Acknowledged writes survive kill -9, and a batch in flight at the kill
// lands whole or not at all.
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "quiver/v1/collections.grpc.pb.h"
#include "quiver/v1/points.grpc.pb.h"
#include "quiver/v1/rag.grpc.pb.h"
#include "quiver/v1/search.grpc.pb.h"
#include "tests/testing/quiverd_process.h"
#include "tests/testing/test_util.h"

namespace quiver {
namespace {

constexpr int kDim = 8;

std::string Id(int writer, int batch, int i) {
  return "w" + std::to_string(writer) + "-b" + std::to_string(batch) + "-r" + std::to_string(i);
}
// Distinct for every (writer, batch < 1000, record) so each vector is unique.
float Value(int writer, int batch, int i, int d) {
  return 1.0f + d + (d == 0 ? writer * 10.0f : 0.0f) + i * 0.1f + batch * 0.0001f;
}

// A word unique to each record, for text search.
std::string Word(int writer, int batch, int i) {
  return "w" + std::to_string(writer) + "x" + std::to_string(batch) + "x" + std::to_string(i);
}
// A sparse dimension unique to each record (i < 100).
uint32_t Dim(int writer, int batch, int i) { return writer * 1000000 + batch * 100 + i; }

// (sync policy, index kind, records per upsert: 40 puts HNSW writes in the
// graph before they are acknowledged, 100 through the backlog)
class CrashTest : public ::testing::TestWithParam<std::tuple<std::string, std::string, int>> {};

TEST_P(CrashTest, AcknowledgedWritesSurviveKill9) {
  testing::TempDir dir;
  const auto& [sync, index, batch] = GetParam();
  const int batch_size = batch;  // For the writers' lambdas.
  // Small checkpoint interval: HNSW checkpoints happen during the stream.
  testing::QuiverdProcess server(dir.path() + "/data",
                                 {"--sync=" + sync, "--checkpoint_min_inserts=300"});
  QUIVER_ASSERT_OK(server.Start());
  {
    auto stub = v1::Collections::NewStub(server.NewChannel());
    v1::CreateCollectionRequest req;
    req.mutable_config()->set_name("crash");
    req.mutable_config()->set_dimension(kDim);
    req.mutable_config()->set_metric(v1::METRIC_L2);
    if (index.starts_with("hnsw")) req.mutable_config()->mutable_index()->mutable_hnsw();
    if (index == "hnsw-sq8") {
      req.mutable_config()->mutable_index()->mutable_hnsw()->set_quantization(v1::QUANTIZATION_SQ8);
    } else if (index == "hnsw-binary-disk") {
      auto* h = req.mutable_config()->mutable_index()->mutable_hnsw();
      h->set_quantization(v1::QUANTIZATION_BINARY);
      h->set_full_vectors_on_disk(true);
    }
    req.mutable_config()->mutable_text()->set_enabled(true);
    v1::CreateCollectionResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub->Create(&ctx, req, &resp).ok());
  }

  constexpr int kWriters = 4;
  std::mutex mu;
  std::vector<std::vector<int>> acked(kWriters);  // Batches acknowledged per writer.
  std::vector<int> attempted(kWriters, 0);        // Batches sent per writer.
  std::atomic<bool> stop{false};
  std::atomic<int> total_acked{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      auto stub = v1::Points::NewStub(server.NewChannel());
      for (int b = 0; !stop.load(); ++b) {
        v1::UpsertRequest req;
        req.set_collection("crash");
        for (int i = 0; i < batch_size; ++i) {
          v1::Record* r = req.add_records();
          r->set_id(Id(w, b, i));
          for (int d = 0; d < kDim; ++d) r->add_values(Value(w, b, i, d));
          r->set_text("common words " + Word(w, b, i));
          r->mutable_sparse_values()->add_indices(Dim(w, b, i));
          r->mutable_sparse_values()->add_values(1.5f);
        }
        {
          std::lock_guard<std::mutex> l(mu);
          attempted[w] = b + 1;
        }
        v1::UpsertResponse resp;
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
        if (!stub->Upsert(&ctx, req, &resp).ok()) return;  // The server died.
        std::lock_guard<std::mutex> l(mu);
        acked[w].push_back(b);
        total_acked.fetch_add(1);
      }
    });
  }
  // Kill in the middle of the stream, once a good number of writes landed.
  while (total_acked.load() < 60) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  server.Stop(SIGKILL);
  stop = true;
  for (auto& t : writers) t.join();

  QUIVER_ASSERT_OK(server.Start());
  auto points = v1::Points::NewStub(server.NewChannel());
  uint64_t expected_min = 0, expected_max = 0;
  for (int w = 0; w < kWriters; ++w) {
    std::set<int> acked_set(acked[w].begin(), acked[w].end());
    for (int b = 0; b < attempted[w]; ++b) {
      v1::FetchRequest f;
      f.set_collection("crash");
      for (int i = 0; i < batch_size; ++i) f.add_ids(Id(w, b, i));
      v1::FetchResponse fr;
      grpc::ClientContext ctx;
      ASSERT_TRUE(points->Fetch(&ctx, f, &fr).ok());
      if (acked_set.contains(b)) {
        ASSERT_EQ(fr.records_size(), batch_size) << "acknowledged batch " << b << " of writer " << w
                                                 << " lost " << fr.missing_ids_size() << " records";
        for (const v1::Record& r : fr.records()) {
          ASSERT_EQ(r.values_size(), kDim);
        }
        EXPECT_FLOAT_EQ(fr.records(3).values(2), Value(w, b, 3, 2));
        expected_min += batch_size;
        expected_max += batch_size;
      } else {
        EXPECT_TRUE(fr.records_size() == 0 || fr.records_size() == batch_size)
            << "batch " << b << " of writer " << w << " landed partially: " << fr.records_size();
        expected_max += batch_size;
      }
    }
  }
  // The index agrees with the store: exactly the records that landed are searchable.
  v1::DescribeStatsRequest sr;
  sr.set_collection("crash");
  v1::DescribeStatsResponse stats;
  grpc::ClientContext ctx;
  ASSERT_TRUE(points->DescribeStats(&ctx, sr, &stats).ok());
  EXPECT_GE(stats.total_record_count(), expected_min);
  EXPECT_LE(stats.total_record_count(), expected_max);
  // Every acknowledged record is found by its own vector, through the index.
  // Quantized graphs: these vectors differ by 1e-4 between batches, below
  // what 8-bit or 1-bit codes resolve, so ask for every record: all of them
  // are rescored with the full vectors, and the record itself must lead.
  const bool quantized = index != "flat" && index != "hnsw";
  auto search = v1::Search::NewStub(server.NewChannel());
  int checked = 0;
  for (int w = 0; w < kWriters; ++w) {
    for (size_t k = 0; k < acked[w].size(); k += 3) {
      const int b = acked[w][k];
      v1::QueryRequest q;
      q.set_collection("crash");
      q.set_top_k(quantized
                      ? static_cast<uint32_t>(std::min<uint64_t>(stats.total_record_count(), 10000))
                      : 1);
      for (int d = 0; d < kDim; ++d) q.add_vector(Value(w, b, 5, d));
      v1::QueryResponse qr;
      grpc::ClientContext qctx;
      ASSERT_TRUE(search->Query(&qctx, q, &qr).ok());
      ASSERT_GE(qr.matches_size(), 1);
      EXPECT_EQ(qr.matches(0).id(), Id(w, b, 5));
      ++checked;
    }
  }
  EXPECT_GT(checked, 10);
  // Every record is reachable: a search as wide as the collection returns
  // all of them, as the exact scan does.
  if (stats.total_record_count() <= 10000) {
    const uint32_t all = static_cast<uint32_t>(stats.total_record_count());
    std::vector<float> v;
    for (int d = 0; d < kDim; ++d) v.push_back(Value(0, 0, 0, d));
    const auto [walk, exact] =
        testing::WalkAndExactIds(search.get(), "crash", v, std::max(all, 1u));
    EXPECT_EQ(walk.size(), exact.size());
    EXPECT_EQ(walk.size(), all);
  }

  // Text and sparse postings: loaded from their checkpoint plus the records
  // written after it, they find every acknowledged record.
  auto find_one = [&](const v1::QueryRequest& base) {
    v1::QueryRequest q = base;
    q.set_collection("crash");
    q.set_top_k(1);
    v1::QueryResponse qr;
    grpc::ClientContext qctx;
    EXPECT_TRUE(search->Query(&qctx, q, &qr).ok());
    return qr.matches_size() == 0 ? std::string() : qr.matches(0).id();
  };
  auto by_text = [&](const std::string& word) {
    v1::QueryRequest q;
    q.set_text(word);
    return find_one(q);
  };
  auto by_sparse = [&](uint32_t dim) {
    v1::QueryRequest q;
    q.mutable_sparse_vector()->add_indices(dim);
    q.mutable_sparse_vector()->add_values(1);
    return find_one(q);
  };
  for (int w = 0; w < kWriters; ++w) {
    for (size_t k = 0; k < acked[w].size(); k += 2) {
      const int b = acked[w][k];
      EXPECT_EQ(by_text(Word(w, b, 7)), Id(w, b, 7));
      EXPECT_EQ(by_sparse(Dim(w, b, 8)), Id(w, b, 8));
    }
  }

  // Changes after the last postings checkpoint: text rewritten, records
  // deleted. Another kill -9, and the postings must follow the records.
  ASSERT_FALSE(acked[0].empty());
  const int b0 = acked[0][0];
  {
    v1::UpdateRequest u;
    u.set_collection("crash");
    u.set_id(Id(0, b0, 1));
    u.set_text("rewritten zebra");
    u.mutable_sparse_values()->add_indices(7);
    u.mutable_sparse_values()->add_values(2);
    v1::UpdateResponse ur;
    grpc::ClientContext uctx;
    ASSERT_TRUE(points->Update(&uctx, u, &ur).ok());
    v1::DeleteRequest d;
    d.set_collection("crash");
    d.mutable_ids()->add_ids(Id(0, b0, 2));
    v1::DeleteResponse dr;
    grpc::ClientContext dctx;
    ASSERT_TRUE(points->Delete(&dctx, d, &dr).ok());
  }
  server.Stop(SIGKILL);
  QUIVER_ASSERT_OK(server.Start());
  search = v1::Search::NewStub(server.NewChannel());
  EXPECT_EQ(by_text("zebra"), Id(0, b0, 1));
  EXPECT_EQ(by_text(Word(0, b0, 1)), "");
  EXPECT_EQ(by_sparse(7), Id(0, b0, 1));
  EXPECT_EQ(by_sparse(Dim(0, b0, 1)), "");
  EXPECT_EQ(by_text(Word(0, b0, 2)), "");
  EXPECT_EQ(by_sparse(Dim(0, b0, 2)), "");
  EXPECT_EQ(by_text(Word(0, b0, 3)), Id(0, b0, 3));
  // The postings came from a checkpoint, not from re-indexing everything.
  EXPECT_THAT(server.Log(), ::testing::HasSubstr("postings checkpoint written"));
}

INSTANTIATE_TEST_SUITE_P(SyncPoliciesAndIndexes, CrashTest,
                         ::testing::Combine(::testing::Values("batch", "always", "none"),
                                            ::testing::Values("flat", "hnsw"),
                                            ::testing::Values(40)));
// Quantized graphs (their codes are rebuilt from the checkpoint's full
// vectors and thresholds; binary's full vectors live in scratch files).
INSTANTIATE_TEST_SUITE_P(Quantized, CrashTest,
                         ::testing::Combine(::testing::Values("batch"),
                                            ::testing::Values("hnsw-sq8", "hnsw-binary-disk"),
                                            ::testing::Values(40)));
// Bulk upserts: acknowledged from the HNSW backlog, killed while the indexer
// moves it into the graph.
INSTANTIATE_TEST_SUITE_P(Backlog, CrashTest,
                         ::testing::Combine(::testing::Values("batch", "always"),
                                            ::testing::Values("hnsw", "hnsw-sq8"),
                                            ::testing::Values(100)));

// The kill -9 loop: writers upsert, update and delete records of their own,
// logging every acknowledged operation; the server is killed at a random
// moment, restarted, and checked against the log: every acknowledged write
// present bit for bit (values and metadata), every acknowledged delete
// absent, an operation in flight at the kill applied whole or not at all,
// and a full-width graph search equal to the exact scan. Rounds:
// QUIVER_CRASH_ROUNDS (default 3; the long mode is 20 or more).
// Writer w's key k: "w<w><kind><k>".
std::string LoopId(int w, const char* kind, int k) {
  return "w" + std::to_string(w) + kind + std::to_string(k);
}

// What the writers of a kill -9 loop had acknowledged, per (writer, key),
// and the one operation each had in flight when the server died. Versions:
// -1 is absent (never written, or deleted). Thread-safe.
class AckLog {
 public:
  AckLog(int writers, int keys)
      : acked_(writers, std::vector<int>(keys, -1)), in_flight_(writers, {-1, -1}) {}
  int Acked(int w, int k) {
    std::lock_guard<std::mutex> l(mu_);
    return acked_[w][k];
  }
  // Writer w sends an operation that leaves key k at `version`.
  void Begin(int w, int k, int version) {
    std::lock_guard<std::mutex> l(mu_);
    in_flight_[w] = {k, version};
  }
  // ... and the server acknowledged it.
  void Acknowledge(int w) {
    std::lock_guard<std::mutex> l(mu_);
    acked_[w][in_flight_[w].first] = in_flight_[w].second;
    in_flight_[w] = {-1, -1};
  }
  // After a restart: the version key k must be at, given the one found. The
  // acknowledged one, or the operation in flight if it landed (whole), which
  // then counts as acknowledged.
  int Expected(int w, int k, int found) {
    std::lock_guard<std::mutex> l(mu_);
    if (in_flight_[w].first == k && in_flight_[w].second == found) acked_[w][k] = found;
    return acked_[w][k];
  }
  // Once every key is checked: nothing is in flight any more.
  void Settle() {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& f : in_flight_) f = {-1, -1};
  }

 private:
  std::mutex mu_;
  std::vector<std::vector<int>> acked_;
  std::vector<std::pair<int, int>> in_flight_;  // (key, version); key -1: none.
};
float LoopValue(int key, int version, int d) {
  return static_cast<float>(key % 97) + 0.001f * static_cast<float>(version) + 0.5f * d;
}

TEST(CrashLoopTest, AcknowledgedWritesSurviveRepeatedKill9) {
  int rounds = 3;
  if (const char* env = std::getenv("QUIVER_CRASH_ROUNDS")) rounds = std::max(1, std::atoi(env));
  constexpr int kWriters = 3, kKeys = 150;
  testing::TempDir dir;
  AckLog log(kWriters, kKeys);
  std::mt19937 seed_rng(2024);
  uint64_t checked_total = 0;
  for (int round = 0; round < rounds; ++round) {
    testing::QuiverdProcess server(dir.path() + "/data",
                                   {"--sync=batch", "--checkpoint_min_inserts=200"});
    QUIVER_ASSERT_OK(server.Start());
    auto channel = server.NewChannel();
    if (round == 0) {
      auto stub = v1::Collections::NewStub(channel);
      v1::CreateCollectionRequest req;
      req.mutable_config()->set_name("loop");
      req.mutable_config()->set_dimension(kDim);
      req.mutable_config()->set_metric(v1::METRIC_L2);
      req.mutable_config()->mutable_index()->mutable_hnsw();
      v1::CreateCollectionResponse resp;
      grpc::ClientContext ctx;
      ASSERT_TRUE(stub->Create(&ctx, req, &resp).ok());
    }
    // Check what the last kill left against the log.
    auto points = v1::Points::NewStub(channel);
    uint64_t live = 0;
    for (int w = 0; w < kWriters; ++w) {
      v1::FetchRequest f;
      f.set_collection("loop");
      for (int k = 0; k < kKeys; ++k) f.add_ids(LoopId(w, "-k", k));
      v1::FetchResponse fr;
      grpc::ClientContext ctx;
      ASSERT_TRUE(points->Fetch(&ctx, f, &fr).ok());
      std::map<std::string, const v1::Record*> found;
      for (const v1::Record& r : fr.records()) found[r.id()] = &r;
      for (int k = 0; k < kKeys; ++k) {
        const std::string id = LoopId(w, "-k", k);
        auto it = found.find(id);
        const int got =
            it == found.end()
                ? -1
                : static_cast<int>(it->second->metadata().fields().at("v").number_value());
        const int want = log.Expected(w, k, got);
        ASSERT_EQ(got, want) << "round " << round << ": " << id << " (acknowledged version " << want
                             << ")";
        if (got >= 0) {
          ++live;
          ASSERT_EQ(it->second->values_size(), kDim);
          for (int d = 0; d < kDim; ++d) {
            ASSERT_EQ(it->second->values(d), LoopValue(k, got, d)) << id << " is torn";
          }
        }
        ++checked_total;
      }
    }
    log.Settle();
    // The index agrees with the store and with the exact scan.
    auto search = v1::Search::NewStub(channel);
    if (live > 0) {
      std::vector<float> v;
      for (int d = 0; d < kDim; ++d) v.push_back(0.5f * d);
      const auto [walk, exact] = testing::WalkAndExactIds(
          search.get(), "loop", v, static_cast<uint32_t>(std::max<uint64_t>(live, 10)));
      ASSERT_EQ(walk.size(), live) << "round " << round;
      ASSERT_EQ(exact.size(), live) << "round " << round;
    }
    if (round == rounds - 1) break;

    // Write until a random moment, then kill -9.
    std::atomic<bool> stop{false};
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; ++w) {
      writers.emplace_back([&, w, seed = seed_rng()] {
        std::mt19937 rng(seed);
        auto stub = v1::Points::NewStub(server.NewChannel());
        while (!stop.load()) {
          const int k = static_cast<int>(rng() % kKeys);
          const int op = static_cast<int>(rng() % 10);  // 0-5 upsert, 6-7 update, 8-9 delete.
          const int current = log.Acked(w, k);
          const std::string id = LoopId(w, "-k", k);
          int next = -1;
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
          grpc::Status s;
          if (op <= 5 || (op <= 7 && current < 0)) {
            next = current + 1 + static_cast<int>(rng() % 3);
            v1::UpsertRequest req;
            req.set_collection("loop");
            v1::Record* r = req.add_records();
            r->set_id(id);
            for (int d = 0; d < kDim; ++d) r->add_values(LoopValue(k, next, d));
            (*r->mutable_metadata()->mutable_fields())["v"].set_number_value(next);
            log.Begin(w, k, next);
            v1::UpsertResponse resp;
            s = stub->Upsert(&ctx, req, &resp);
          } else if (op <= 7) {
            next = current + 1;
            v1::UpdateRequest req;
            req.set_collection("loop");
            req.set_id(id);
            for (int d = 0; d < kDim; ++d) req.add_values(LoopValue(k, next, d));
            (*req.mutable_set_metadata()->mutable_fields())["v"].set_number_value(next);
            log.Begin(w, k, next);
            v1::UpdateResponse resp;
            s = stub->Update(&ctx, req, &resp);
          } else {
            v1::DeleteRequest req;
            req.set_collection("loop");
            req.mutable_ids()->add_ids(id);
            log.Begin(w, k, next);  // -1: absent.
            v1::DeleteResponse resp;
            s = stub->Delete(&ctx, req, &resp);
          }
          if (!s.ok()) return;  // The server died: the operation stays in flight.
          log.Acknowledge(w);
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + seed_rng() % 400));
    server.Stop(SIGKILL);
    stop = true;
    for (auto& t : writers) t.join();
  }
  EXPECT_GT(checked_total, static_cast<uint64_t>(kWriters * kKeys));
}

// The kill -9 loop over document ingests (Rag.UpsertDocument embeds and
// chunks on the server, then replaces the document's chunks in one write):
// writers upsert and delete documents of varying length; after each restart
// every document is at its acknowledged version (the one in flight: whole
// before or whole after), its text bit for bit, exactly chunk_count chunk
// records of that version exist (none left over from a longer earlier one),
// each chunk's text is its slice of the document, and a full-width graph
// walk equals the exact scan. Needs the model2vec fixture (the embedder).
std::string DocText(int writer, int key, int version) {
  std::string text;
  const int sentences = 1 + (key + version) % 6;
  for (int p = 0; p < sentences; ++p) {
    text += "Writer " + std::to_string(writer) + " keeps document " + std::to_string(key) +
            " at version " + std::to_string(version) + ", part " + std::to_string(p) +
            " of a story about orchards and rivers. ";
  }
  return text;
}

TEST(CrashLoopTest, AcknowledgedDocumentsSurviveRepeatedKill9) {
  const std::string models = testing::FixturePath("model2vec-rs-fixtures");
  if (models.empty()) GTEST_SKIP() << "fixture model2vec-rs-fixtures not found ($QUIVER_FIXTURES)";
  int rounds = 3;
  if (const char* env = std::getenv("QUIVER_CRASH_ROUNDS")) rounds = std::max(1, std::atoi(env));
  constexpr int kWriters = 2, kKeys = 40;
  testing::TempDir dir;
  AckLog log(kWriters, kKeys);
  std::mt19937 seed_rng(77);
  uint64_t checked_chunks = 0;
  for (int round = 0; round < rounds; ++round) {
    testing::QuiverdProcess server(
        dir.path() + "/data", {"--sync=batch", "--checkpoint_min_inserts=100",
                               "--embed-model=" + models + "/test-model-float32", "--device=cpu"});
    QUIVER_ASSERT_OK(server.Start());
    auto channel = server.NewChannel();
    if (round == 0) {
      auto stub = v1::Collections::NewStub(channel);
      v1::CreateCollectionRequest req;
      req.mutable_config()->set_name("docs");
      auto* e = req.mutable_config()->mutable_embedding();
      e->set_model("test-model-float32");
      e->set_chunk_tokens(32);
      e->set_overlap_tokens(8);
      req.mutable_config()->mutable_index()->mutable_hnsw();
      req.mutable_config()->mutable_text()->set_enabled(true);
      v1::CreateCollectionResponse resp;
      grpc::ClientContext ctx;
      ASSERT_TRUE(stub->Create(&ctx, req, &resp).ok());
    }
    auto rag = v1::Rag::NewStub(channel);
    auto points = v1::Points::NewStub(channel);
    uint64_t live_chunks = 0;
    std::vector<float> probe;
    for (int w = 0; w < kWriters; ++w) {
      for (int k = 0; k < kKeys; ++k) {
        const std::string id = LoopId(w, "-d", k);
        v1::GetDocumentRequest g;
        g.set_collection("docs");
        g.set_id(id);
        v1::GetDocumentResponse gr;
        grpc::ClientContext gctx;
        const grpc::Status s = rag->GetDocument(&gctx, g, &gr);
        ASSERT_TRUE(s.ok() || s.error_code() == grpc::NOT_FOUND) << s.error_message();
        const int got =
            s.ok() ? static_cast<int>(gr.document().metadata().fields().at("v").number_value())
                   : -1;
        ASSERT_EQ(got, log.Expected(w, k, got)) << "round " << round << ": document " << id;
        // Its chunks: exactly chunk_count of them, all of this version.
        const uint32_t chunks = s.ok() ? gr.document().chunk_count() : 0;
        v1::FetchRequest f;
        f.set_collection("docs");
        for (uint32_t c = 0; c < chunks + 8; ++c) f.add_ids(id + "#" + std::to_string(c));
        v1::FetchResponse fr;
        grpc::ClientContext fctx;
        ASSERT_TRUE(points->Fetch(&fctx, f, &fr).ok());
        ASSERT_EQ(static_cast<uint32_t>(fr.records_size()), chunks)
            << "round " << round << ": document " << id << " at version " << got;
        if (got < 0) continue;
        const std::string& text = gr.document().text();
        ASSERT_EQ(text, DocText(w, k, got)) << id << " is torn";
        for (const v1::Record& r : fr.records()) {
          const auto& m = r.metadata().fields();
          ASSERT_EQ(static_cast<int>(m.at("v").number_value()), got) << r.id() << " is stale";
          ASSERT_EQ(m.at("document_id").string_value(), id);
          const auto begin = static_cast<size_t>(m.at("start_byte").number_value());
          const auto end = static_cast<size_t>(m.at("end_byte").number_value());
          ASSERT_LE(end, text.size());
          ASSERT_EQ(r.text(), text.substr(begin, end - begin)) << r.id();
          ASSERT_FALSE(r.values().empty());
          if (probe.empty()) probe.assign(r.values().begin(), r.values().end());
          ++checked_chunks;
        }
        live_chunks += chunks;
      }
    }
    log.Settle();
    if (live_chunks > 0) {
      auto search = v1::Search::NewStub(channel);
      const auto [walk, exact] = testing::WalkAndExactIds(
          search.get(), "docs", probe, static_cast<uint32_t>(std::max<uint64_t>(live_chunks, 10)));
      ASSERT_EQ(walk.size(), live_chunks) << "round " << round;
      ASSERT_EQ(exact.size(), live_chunks) << "round " << round;
    }
    if (round == rounds - 1) break;

    std::atomic<bool> stop{false};
    std::atomic<int> done_ops{0};
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; ++w) {
      writers.emplace_back([&, w, seed = seed_rng()] {
        std::mt19937 rng(seed);
        auto stub = v1::Rag::NewStub(server.NewChannel());
        while (!stop.load()) {
          const int k = static_cast<int>(rng() % kKeys);
          const bool remove = rng() % 10 < 3;
          const int current = log.Acked(w, k);
          const std::string id = LoopId(w, "-d", k);
          int next = -1;
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
          grpc::Status s;
          if (!remove) {
            next = current + 1 + static_cast<int>(rng() % 3);
            v1::UpsertDocumentRequest req;
            req.set_collection("docs");
            req.mutable_document()->set_id(id);
            req.mutable_document()->set_text(DocText(w, k, next));
            (*req.mutable_document()->mutable_metadata()->mutable_fields())["v"].set_number_value(
                next);
            log.Begin(w, k, next);
            v1::UpsertDocumentResponse resp;
            s = stub->UpsertDocument(&ctx, req, &resp);
          } else {
            v1::DeleteDocumentRequest req;
            req.set_collection("docs");
            req.set_id(id);
            log.Begin(w, k, next);
            v1::DeleteDocumentResponse resp;
            s = stub->DeleteDocument(&ctx, req, &resp);
            if (s.error_code() == grpc::NOT_FOUND) s = grpc::Status::OK;  // Already absent.
          }
          if (!s.ok()) return;  // The server died: the operation stays in flight.
          log.Acknowledge(w);
          done_ops.fetch_add(1);
        }
      });
    }
    // Kill once some ingests landed, at a random moment after that.
    while (done_ops.load() < 20) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::this_thread::sleep_for(std::chrono::milliseconds(seed_rng() % 300));
    server.Stop(SIGKILL);
    stop = true;
    for (auto& t : writers) t.join();
  }
  EXPECT_GT(checked_chunks, 0u);
}

}  // namespace
}  // namespace quiver
