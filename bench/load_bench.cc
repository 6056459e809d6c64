// quiverd under mixed load: N concurrent clients (1 to 1,000), each a
// thread making blocking calls, mix upserts, dense and hybrid queries,
// embeds, generates (stories260K) and Pinecone-style HTTP queries against
// one server. Per kind: throughput, p50/p99/p99.9 latency, errors by code;
// the server's RSS sampled through the run. Then the acceptance check: query
// p99 under mixed load against query p99 alone, both at 64 clients.
//
//   build/bench/load_bench [--clients=1,16,64,256,1000] [--seconds=5] [--n=20000]
//
// Embeds and generates need the fixtures ($QUIVER_FIXTURES: model2vec-rs-
// fixtures, stories260K); without them those kinds are left out.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
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
#include "quiver/v1/models.grpc.pb.h"
#include "quiver/v1/points.grpc.pb.h"
#include "quiver/v1/search.grpc.pb.h"
#include "tests/testing/quiverd_process.h"
#include "tests/testing/test_util.h"

namespace {

using quiver::bench::Flag;
using quiver::bench::Percentile;
using Clock = std::chrono::steady_clock;
namespace v1 = quiver::v1;

enum Kind { kUpsert, kDense, kHybrid, kEmbed, kGenerate, kHttpQuery, kKinds };
constexpr const char* kKindNames[kKinds] = {"upsert", "dense",    "hybrid",
                                            "embed",  "generate", "http-query"};

const char* kWords[] = {"river", "stone", "light",  "garden", "winter", "market", "signal",
                        "paper", "ocean", "forest", "engine", "silver", "window", "harbor"};

long RssKb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

struct Stats {
  std::vector<double> lat[kKinds];
  std::map<std::string, uint64_t> errors[kKinds];
  double wall = 0;
};

struct Setup {
  std::string address;
  int http_port = 0;
  int dim = 0;
  bool embed = false, generate = false;
};

std::string Text(std::mt19937& rng, int words) {
  std::string t;
  for (int i = 0; i < words; ++i) {
    t += (i ? " " : "") + std::string(kWords[rng() % (sizeof(kWords) / sizeof(kWords[0]))]);
  }
  return t;
}

// Runs `clients` threads for `seconds`; each picks kinds from `weights`.
Stats Run(const Setup& setup, int clients, double seconds, const std::vector<int>& weights) {
  Stats st;
  std::vector<Stats> per(clients);
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int c = 0; c < std::max(1, clients / 16); ++c) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.channel_id", c);
    channels.push_back(
        grpc::CreateCustomChannel(setup.address, grpc::InsecureChannelCredentials(), args));
  }
  std::atomic<bool> go{false}, stop{false};
  std::atomic<long> upserted{0};
  std::vector<std::thread> threads;
  int total_weight = 0;
  for (int w : weights) total_weight += w;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      auto ch = channels[c % channels.size()];
      auto points = v1::Points::NewStub(ch);
      auto search = v1::Search::NewStub(ch);
      auto models = v1::Models::NewStub(ch);
      std::unique_ptr<httplib::Client> http;
      std::mt19937 rng(1000 + c);
      std::normal_distribution<float> normal;
      while (!go) std::this_thread::yield();
      while (!stop) {
        int pick = static_cast<int>(rng() % total_weight), kind = 0;
        while (pick >= weights[kind]) pick -= weights[kind++];
        // HTTP connections hold a server thread each (--http_threads):
        // only the first 64 clients use HTTP.
        if (kind == kHttpQuery && c >= 64) kind = kDense;
        const auto t0 = Clock::now();
        grpc::Status s;
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
        std::string http_error;
        switch (kind) {
          case kUpsert: {
            v1::UpsertRequest req;
            req.set_collection("load");
            for (int i = 0; i < 10; ++i) {
              v1::Record* r = req.add_records();
              r->set_id("u" + std::to_string(upserted.fetch_add(1)));
              for (int d = 0; d < setup.dim; ++d) r->add_values(normal(rng));
              r->set_text(Text(rng, 8));
            }
            v1::UpsertResponse resp;
            s = points->Upsert(&ctx, req, &resp);
            break;
          }
          case kDense:
          case kHybrid: {
            v1::QueryRequest req;
            req.set_collection("load");
            req.set_top_k(10);
            for (int d = 0; d < setup.dim; ++d) req.add_vector(normal(rng));
            if (kind == kHybrid) req.set_text(Text(rng, 2));
            v1::QueryResponse resp;
            s = search->Query(&ctx, req, &resp);
            break;
          }
          case kEmbed: {
            v1::EmbedRequest req;
            req.add_inputs(Text(rng, 12));
            v1::EmbedResponse resp;
            s = models->Embed(&ctx, req, &resp);
            break;
          }
          case kGenerate: {
            v1::GenerateRequest req;
            req.set_prompt("Once upon a time");
            req.mutable_sampling()->set_max_tokens(16);
            auto reader = models->Generate(&ctx, req);
            v1::GenerateResponse resp;
            while (reader->Read(&resp)) {
            }
            s = reader->Finish();
            break;
          }
          case kHttpQuery: {
            if (http == nullptr) {
              http = std::make_unique<httplib::Client>("127.0.0.1", setup.http_port);
              http->set_keep_alive(true);
              http->set_tcp_nodelay(true);
              http->set_read_timeout(120, 0);
            }
            std::string body = "{\"topK\": 10, \"vector\": [";
            for (int d = 0; d < setup.dim; ++d) {
              body += (d ? "," : "") + std::to_string(normal(rng));
            }
            body += "]}";
            auto r = http->Post("/indexes/load/query", body, "application/json");
            if (!r) {
              http_error = "conn:" + httplib::to_string(r.error());
            } else if (r->status != 200) {
              http_error = "http" + std::to_string(r->status);
            }
            break;
          }
        }
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        if (!s.ok()) {
          ++per[c].errors[kind]
                         [absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code()))];
        } else if (!http_error.empty()) {
          ++per[c].errors[kind][http_error];
        } else {
          per[c].lat[kind].push_back(ms);
        }
      }
    });
  }
  const auto start = Clock::now();
  go = true;
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (std::thread& t : threads) t.join();
  st.wall = std::chrono::duration<double>(Clock::now() - start).count();
  for (const Stats& p : per) {
    for (int k = 0; k < kKinds; ++k) {
      st.lat[k].insert(st.lat[k].end(), p.lat[k].begin(), p.lat[k].end());
      for (const auto& [code, n] : p.errors[k]) st.errors[k][code] += n;
    }
  }
  return st;
}

void Print(int clients, Stats& st) {
  for (int k = 0; k < kKinds; ++k) {
    if (st.lat[k].empty() && st.errors[k].empty()) continue;
    std::string errors;
    for (const auto& [code, n] : st.errors[k]) {
      errors += (errors.empty() ? "" : ",") + code + "=" + std::to_string(n);
    }
    std::printf("%8d %-11s %10.1f %9.2f %9.2f %9.2f  %s\n", clients, kKindNames[k],
                static_cast<double>(st.lat[k].size()) / st.wall, Percentile(st.lat[k], 0.5),
                Percentile(st.lat[k], 0.99), Percentile(st.lat[k], 0.999),
                errors.empty() ? "-" : errors.c_str());
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const long n = Flag(argc, argv, "n", 20000L);
  const double seconds = static_cast<double>(Flag(argc, argv, "seconds", 5L));
  std::vector<int> levels;
  {
    std::stringstream ss(Flag(argc, argv, "clients", std::string("1,16,64,256,1000")));
    for (std::string item; std::getline(ss, item, ',');) levels.push_back(std::stoi(item));
  }
  Setup setup;
  setup.dim = 64;
  std::vector<std::string> flags = {"--http_listen=127.0.0.1:0"};
  const std::string m2v = quiver::testing::FixturePath("model2vec-rs-fixtures");
  if (!m2v.empty()) {
    flags.push_back("--embed-model=" + m2v + "/test-model-float32");
    setup.embed = true;
  }
  const std::string stories = quiver::testing::FixturePath("stories260K");
  if (!stories.empty()) {
    flags.push_back("--llm-model=" + stories + "/stories260K.bin");
    flags.push_back("--llm-tokenizer=" + stories + "/tok512.bin");
    setup.generate = true;
  }
  quiver::testing::TempDir dir;
  quiver::testing::QuiverdProcess server(dir.path() + "/data", flags);
  if (auto s = server.Start(); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  setup.address = server.address();
  setup.http_port = server.http_port();
  auto channel = server.NewChannel();
  {
    auto collections = v1::Collections::NewStub(channel);
    v1::CreateCollectionRequest req;
    req.mutable_config()->set_name("load");
    req.mutable_config()->set_dimension(static_cast<uint32_t>(setup.dim));
    req.mutable_config()->mutable_index()->mutable_hnsw();
    req.mutable_config()->mutable_text()->set_enabled(true);
    v1::CreateCollectionResponse resp;
    grpc::ClientContext ctx;
    if (grpc::Status s = collections->Create(&ctx, req, &resp); !s.ok()) {
      std::fprintf(stderr, "create: %s\n", s.error_message().c_str());
      return 1;
    }
  }
  {
    auto points = v1::Points::NewStub(channel);
    std::mt19937 rng(7);
    std::normal_distribution<float> normal;
    for (long base = 0; base < n; base += 1000) {
      v1::UpsertRequest req;
      req.set_collection("load");
      for (long i = base; i < std::min(n, base + 1000); ++i) {
        v1::Record* r = req.add_records();
        r->set_id("r" + std::to_string(i));
        for (int d = 0; d < setup.dim; ++d) r->add_values(normal(rng));
        r->set_text(Text(rng, 8));
      }
      v1::UpsertResponse resp;
      grpc::ClientContext ctx;
      if (grpc::Status s = points->Upsert(&ctx, req, &resp); !s.ok()) {
        std::fprintf(stderr, "upsert: %s\n", s.error_message().c_str());
        return 1;
      }
    }
  }
  // RSS sampled every 200 ms for the whole run.
  std::atomic<bool> sampling{true};
  std::atomic<long> rss_peak{0};
  std::vector<std::pair<double, long>> rss;
  std::mutex rss_mu;
  const auto t_start = Clock::now();
  std::thread sampler([&] {
    while (sampling) {
      const long kb = RssKb(server.pid());
      rss_peak = std::max(rss_peak.load(), kb);
      {
        std::lock_guard<std::mutex> l(rss_mu);
        rss.emplace_back(std::chrono::duration<double>(Clock::now() - t_start).count(), kb);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  });

  // Weights of upsert, dense, hybrid, embed, generate, http-query.
  const std::vector<int> mixed = {15, 35, 15, setup.embed ? 15 : 0, setup.generate ? 10 : 0, 10};
  const std::vector<int> queries_only = {0, 1, 0, 0, 0, 0};
  std::printf(
      "load_bench: %ld x %d HNSW + BM25 collection; mixed weights upsert(10 records) %d, dense %d, "
      "hybrid %d, embed %d, generate(16 tokens) %d, http-query %d; %.0f s per level; "
      "hardware threads %u\n",
      n, setup.dim, mixed[0], mixed[1], mixed[2], mixed[3], mixed[4], mixed[5], seconds,
      std::thread::hardware_concurrency());
  std::printf("%8s %-11s %10s %9s %9s %9s  %s\n", "clients", "kind", "per s", "p50 ms", "p99 ms",
              "p99.9 ms", "errors");
  for (int clients : levels) {
    Stats st = Run(setup, clients, seconds, mixed);
    Print(clients, st);
    std::printf("%8d %-11s %10ld kB RSS now\n", clients, "server", RssKb(server.pid()));
  }
  // The acceptance check: query p99 alone and under mixed load, 64 clients.
  Stats alone = Run(setup, 64, seconds, queries_only);
  Stats loaded = Run(setup, 64, seconds, mixed);
  const double p99_alone = Percentile(alone.lat[kDense], 0.99);
  const double p99_mixed = Percentile(loaded.lat[kDense], 0.99);
  std::printf(
      "64 clients: dense query p99 alone %.2f ms (%.0f q/s), under mixed load %.2f ms: %.2fx "
      "(target <= 5x)\n",
      p99_alone, static_cast<double>(alone.lat[kDense].size()) / alone.wall, p99_mixed,
      p99_alone > 0 ? p99_mixed / p99_alone : 0.0);
  sampling = false;
  sampler.join();
  std::printf("server RSS: peak %ld kB; samples (s:kB):", rss_peak.load());
  for (size_t i = 0; i < rss.size(); i += std::max<size_t>(1, rss.size() / 12)) {
    std::printf(" %.0f:%ld", rss[i].first, rss[i].second);
  }
  std::printf("\n");
  return 0;
}
