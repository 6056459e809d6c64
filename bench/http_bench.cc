// HTTP front door under many keep-alive connections: N clients (1 to 256),
// each on its own keep-alive connection, send Pinecone-style queries
// (POST /indexes/NAME/query) for a fixed time; beside them the same queries
// over gRPC (Search.Query) at the same concurrency, in the same run against
// the same quiverd. Prints throughput, p50/p99 latency, errors, and the
// HTTP/gRPC throughput ratio.
//
//   build/bench/http_bench [--n=20000] [--dim=64] [--seconds=3] [--clients=1,16,64,256]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_flags.h"
#include "bench/bench_stats.h"
#include "grpcpp/grpcpp.h"
#include "httplib.h"
#include "quiver/v1/collections.grpc.pb.h"
#include "quiver/v1/points.grpc.pb.h"
#include "quiver/v1/search.grpc.pb.h"
#include "tests/testing/quiverd_process.h"
#include "tests/testing/test_util.h"

namespace {

using quiver::bench::Flag;
using quiver::bench::Percentile;
using Clock = std::chrono::steady_clock;

struct Result {
  double qps = 0, p50_ms = 0, p99_ms = 0;
  uint64_t ok = 0;
  std::map<std::string, uint64_t> errors;  // By status.
};

// Runs `clients` threads calling `one(client, query_index)` until `seconds`
// pass; `one` returns "" on success or an error name.
template <typename Fn>
Result Run(int clients, double seconds, Fn one) {
  std::vector<std::vector<double>> lat(clients);
  std::vector<std::map<std::string, uint64_t>> errs(clients);
  std::atomic<bool> go{false}, stop{false};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      while (!go) std::this_thread::yield();
      for (size_t i = 0; !stop; ++i) {
        const auto t = Clock::now();
        const std::string e = one(c, i);
        if (e.empty()) {
          lat[c].push_back(std::chrono::duration<double, std::milli>(Clock::now() - t).count());
        } else {
          ++errs[c][e];
        }
      }
    });
  }
  const auto start = Clock::now();
  go = true;
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (std::thread& t : threads) t.join();
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  Result r;
  std::vector<double> all;
  for (int c = 0; c < clients; ++c) {
    all.insert(all.end(), lat[c].begin(), lat[c].end());
    for (const auto& [k, n] : errs[c]) r.errors[k] += n;
  }
  r.ok = all.size();
  r.qps = static_cast<double>(all.size()) / wall;
  r.p50_ms = Percentile(all, 0.5);
  r.p99_ms = Percentile(all, 0.99);
  return r;
}

std::string Errors(const Result& r) {
  std::string out;
  for (const auto& [k, n] : r.errors) out += (out.empty() ? "" : ",") + k + "=" + std::to_string(n);
  return out.empty() ? "-" : out;
}

}  // namespace

int main(int argc, char** argv) {
  const long n = Flag(argc, argv, "n", 20000L);
  const long dim = Flag(argc, argv, "dim", 64L);
  const double seconds = static_cast<double>(Flag(argc, argv, "seconds", 3L));
  std::vector<int> conc;
  {
    std::stringstream ss(Flag(argc, argv, "clients", std::string("1,16,64,256")));
    for (std::string item; std::getline(ss, item, ',');) conc.push_back(std::stoi(item));
  }
  quiver::testing::TempDir dir;
  quiver::testing::QuiverdProcess server(dir.path() + "/data", {});
  if (auto s = server.Start(); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  auto channel = server.NewChannel();
  {
    auto collections = quiver::v1::Collections::NewStub(channel);
    quiver::v1::CreateCollectionRequest req;
    req.mutable_config()->set_name("bench");
    req.mutable_config()->set_dimension(static_cast<uint32_t>(dim));
    req.mutable_config()->mutable_index()->mutable_hnsw();
    quiver::v1::CreateCollectionResponse resp;
    grpc::ClientContext ctx;
    if (!collections->Create(&ctx, req, &resp).ok()) return 1;
  }
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  {
    auto points = quiver::v1::Points::NewStub(channel);
    for (long base = 0; base < n; base += 1000) {
      quiver::v1::UpsertRequest req;
      req.set_collection("bench");
      for (long i = base; i < std::min(n, base + 1000); ++i) {
        quiver::v1::Record* r = req.add_records();
        r->set_id("r" + std::to_string(i));
        for (long d = 0; d < dim; ++d) r->add_values(normal(rng));
      }
      quiver::v1::UpsertResponse resp;
      grpc::ClientContext ctx;
      if (!points->Upsert(&ctx, req, &resp).ok()) return 1;
    }
  }
  // 256 query vectors, as JSON bodies and as protos.
  std::vector<std::string> bodies;
  std::vector<quiver::v1::QueryRequest> protos;
  for (int q = 0; q < 256; ++q) {
    quiver::v1::QueryRequest p;
    p.set_collection("bench");
    p.set_top_k(10);
    std::string body = "{\"topK\": 10, \"vector\": [";
    for (long d = 0; d < dim; ++d) {
      const float v = normal(rng);
      p.add_vector(v);
      body += (d ? "," : "") + std::to_string(v);
    }
    body += "]}";
    bodies.push_back(std::move(body));
    protos.push_back(std::move(p));
  }

  std::printf(
      "http_bench: %ld x %ld HNSW collection, top 10, %.0f s per point, "
      "hardware threads %u\n",
      n, dim, seconds, std::thread::hardware_concurrency());
  std::printf("%8s %12s %9s %9s %12s %12s %9s %9s %12s %10s\n", "clients", "http q/s", "p50 ms",
              "p99 ms", "http errors", "grpc q/s", "p50 ms", "p99 ms", "grpc errors", "http/grpc");
  for (int clients : conc) {
    std::vector<std::unique_ptr<httplib::Client>> http;
    for (int c = 0; c < clients; ++c) {
      http.push_back(std::make_unique<httplib::Client>("127.0.0.1", server.http_port()));
      http.back()->set_keep_alive(true);
      http.back()->set_tcp_nodelay(true);  // As Node's and Python's HTTP clients do.
      http.back()->set_read_timeout(30, 0);
    }
    const Result h = Run(clients, seconds, [&](int c, size_t i) -> std::string {
      auto r = http[c]->Post("/indexes/bench/query", bodies[(c + i) % bodies.size()],
                             "application/json");
      if (!r) return "conn:" + httplib::to_string(r.error());
      return r->status == 200 ? "" : std::to_string(r->status);
    });
    // gRPC: clients share channels, 16 streams each, as pooled clients do.
    std::vector<std::unique_ptr<quiver::v1::Search::Stub>> stubs;
    for (int c = 0; c < (clients + 15) / 16; ++c) {
      grpc::ChannelArguments args;
      args.SetInt("grpc.channel_id", c);  // Distinct channels, not one shared subchannel.
      stubs.push_back(quiver::v1::Search::NewStub(
          grpc::CreateCustomChannel(server.address(), grpc::InsecureChannelCredentials(), args)));
    }
    const Result g = Run(clients, seconds, [&](int c, size_t i) -> std::string {
      quiver::v1::QueryResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      grpc::Status s = stubs[c / 16]->Query(&ctx, protos[(c + i) % protos.size()], &resp);
      return s.ok() ? "" : "code" + std::to_string(s.error_code());
    });
    std::printf("%8d %12.0f %9.2f %9.2f %12s %12.0f %9.2f %9.2f %12s %9.2fx\n", clients, h.qps,
                h.p50_ms, h.p99_ms, Errors(h).c_str(), g.qps, g.p50_ms, g.p99_ms, Errors(g).c_str(),
                g.qps > 0 ? h.qps / g.qps : 0.0);
    std::fflush(stdout);
  }
  return 0;
}
