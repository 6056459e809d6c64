// Restart benchmark: how long until a large HNSW collection is searchable
// again after a graceful restart (checkpoint at shutdown) and after kill -9
// (last periodic checkpoint + replay of later writes), against a full
// rebuild (no checkpoint), through a real quiverd.
//
//   build/bench/restart_bench [--n=1000000] [--dim=128]
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_flags.h"
#include "grpcpp/grpcpp.h"
#include "quiver/v1/collections.grpc.pb.h"
#include "quiver/v1/points.grpc.pb.h"
#include "quiver/v1/search.grpc.pb.h"
#include "tests/testing/quiverd_process.h"
#include "tests/testing/test_util.h"

namespace {

using quiver::bench::Flag;

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Starts the server and measures until a query answers.
double TimeToFirstQuery(quiver::testing::QuiverdProcess* server, size_t dim,
                        Clock::time_point* started) {
  const auto t = Clock::now();
  *started = t;
  if (auto s = server->Start(); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    std::exit(1);
  }
  auto search = quiver::v1::Search::NewStub(server->NewChannel());
  quiver::v1::QueryRequest q;
  q.set_collection("big");
  q.set_top_k(10);
  for (size_t d = 0; d < dim; ++d) q.add_vector(0.1f * d);
  quiver::v1::QueryResponse resp;
  grpc::ClientContext ctx;
  if (!search->Query(&ctx, q, &resp).ok() || resp.matches_size() != 10) {
    std::fprintf(stderr, "query after restart failed\n");
    std::exit(1);
  }
  return Since(t);
}

// Seconds from `start` until every record is in the graph (the backlog of
// an import or of the catch-up after a restart is indexed).
double TimeToGraphComplete(quiver::testing::QuiverdProcess* server, Clock::time_point start) {
  auto points = quiver::v1::Points::NewStub(server->NewChannel());
  if (auto s = quiver::testing::WaitUntilIndexed(points.get(), "big", absl::InfiniteDuration());
      !s.ok()) {
    std::fprintf(stderr, "%s\n", s.status().ToString().c_str());
    std::exit(1);
  }
  return Since(start);
}

}  // namespace

int main(int argc, char** argv) {
  const size_t n = Flag(argc, argv, "n", 1000000);
  const size_t dim = Flag(argc, argv, "dim", 128);
  quiver::testing::TempDir dir;
  const std::string data = dir.path() + "/data";
  quiver::testing::QuiverdProcess server(data);
  server.set_start_timeout_s(3600);  // Start-up includes loading the collection.
  if (auto s = server.Start(); !s.ok()) return 1;
  {
    auto stub = quiver::v1::Collections::NewStub(server.NewChannel());
    quiver::v1::CreateCollectionRequest req;
    req.mutable_config()->set_name("big");
    req.mutable_config()->set_dimension(static_cast<uint32_t>(dim));
    req.mutable_config()->set_metric(quiver::v1::METRIC_L2);
    req.mutable_config()->mutable_index()->mutable_hnsw();
    quiver::v1::CreateCollectionResponse resp;
    grpc::ClientContext ctx;
    if (!stub->Create(&ctx, req, &resp).ok()) return 1;
  }
  // Import with 2 concurrent clients, 1000 records per request.
  const auto t_import = Clock::now();
  std::vector<std::thread> clients;
  for (int c = 0; c < 2; ++c) {
    clients.emplace_back([&, c] {
      auto points = quiver::v1::Points::NewStub(server.NewChannel());
      std::mt19937 rng(c);
      std::normal_distribution<float> g;
      for (size_t start = c * 1000; start < n; start += 2000) {
        quiver::v1::UpsertRequest req;
        req.set_collection("big");
        for (size_t i = start; i < std::min(n, start + 1000); ++i) {
          auto* r = req.add_records();
          r->set_id("v" + std::to_string(i));
          for (size_t d = 0; d < dim; ++d) r->add_values(g(rng));
        }
        quiver::v1::UpsertResponse resp;
        grpc::ClientContext ctx;
        if (!points->Upsert(&ctx, req, &resp).ok()) {
          std::fprintf(stderr, "upsert failed\n");
          std::exit(1);
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  const double import_s = Since(t_import);
  std::printf("restart_bench: n=%zu dim=%zu hnsw m=16 ef_construction=200\n", n, dim);
  std::printf("import through gRPC (2 clients): %.1f s, %.0f vectors/s acknowledged\n", import_s,
              n / import_s);
  // Bulk upserts are acknowledged from the HNSW backlog: the restarts below
  // start from a complete graph, as the periodic checkpoints saw it.
  const double indexed = TimeToGraphComplete(&server, t_import);
  std::printf("  every record in the graph after %.1f s, %.0f vectors/s\n", indexed, n / indexed);

  // kill -9 right after the import: periodic checkpoint + replay of the rest.
  // "searchable": the server answers (records not yet in the graph are
  // found by an exact scan); "graph complete": the background catch-up has
  // put every record into the graph.
  Clock::time_point started;
  server.Stop(SIGKILL);
  const double after_kill = TimeToFirstQuery(&server, dim, &started);
  const double kill_complete = TimeToGraphComplete(&server, started);
  std::printf(
      "after kill -9 (last periodic checkpoint + catch-up): searchable in %.1f s, "
      "graph complete in %.1f s\n",
      after_kill, kill_complete);

  // Graceful: the shutdown checkpoint covers everything.
  server.Stop(SIGTERM);
  const double after_term = TimeToFirstQuery(&server, dim, &started);
  const double term_complete = TimeToGraphComplete(&server, started);
  std::printf(
      "after SIGTERM (shutdown checkpoint): searchable in %.1f s, graph complete in "
      "%.1f s\n",
      after_term, term_complete);

  // No checkpoint at all: everything is rebuilt in the background.
  server.Stop(SIGKILL);
  std::filesystem::remove_all(data + "/indexes");
  const double rebuild = TimeToFirstQuery(&server, dim, &started);
  const double rebuild_complete = TimeToGraphComplete(&server, started);
  std::printf(
      "without a checkpoint (full rebuild): searchable in %.1f s, graph complete in "
      "%.1f s (%.0fx the checkpoint's)\n",
      rebuild, rebuild_complete, rebuild_complete / term_complete);
  server.Stop(SIGTERM);
  return 0;
}
