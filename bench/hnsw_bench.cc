// HNSW benchmark: our HnswIndex, hnswlib and faiss IndexHNSWFlat on the same
// data with the same m and ef_construction, sweeping ef_search.
//
//   build/bench/hnsw_bench --data=glove50            (the GloVe fixture, angular and l2)
//   build/bench/hnsw_bench --data=clustered --n=100000 --dim=128 [--metric=l2]
//                          [--centres=10 --spread=1]
//   build/bench/hnsw_bench --data=embedding --n=100000 --dim=768 [--latent=64 --centres=100]
//   build/bench/hnsw_bench --base=B.fvecs --query=Q.fvecs --gt=G.ivecs --metric=l2|angular
//   common flags: --m=16 --efc=200 --nq=1000 --build_threads=1 [--peer_build_threads=N]
//   --quant=sq8,binary:4: also our quantized indexes (name[:oversampling], default
//                --oversampling=3; --no_rescore=1); with sq8, faiss IndexHNSWSQ and
//                IndexScalarQuantizer (QT_8bit; --skip_flat_sq8=1 skips the scan)
//   --skip_faiss=1: hnswlib as the only peer
//   --query_threads=2: our throughput with that many querying threads vs one
//   --filter_percents=0.5,1,5: our filtered search (label % 10000 < 100 p keeps
//                p%) at each ef: recall@10 against the exact filtered answer, qps
//
// Prints per library: build seconds, then per ef: recall@10 and
// single-thread queries/s; then our QPS ratio to each peer at recall@10
// 0.90 / 0.95 / 0.99 (each library's QPS at the smallest swept ef reaching
// the target; linear interpolation between sweep points).
#include <faiss/IndexHNSW.h>
#include <faiss/IndexScalarQuantizer.h>
#include <hnswlib/hnswlib.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ann/flat_index.h"
#include "ann/hnsw.h"
#include "common/thread_pool.h"
#include "tests/testing/test_util.h"

namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::map<std::string, std::string> g_flags;
std::string Flag(const std::string& name, const std::string& fallback) {
  auto it = g_flags.find(name);
  return it == g_flags.end() ? fallback : it->second;
}
long IntFlag(const std::string& name, long fallback) {
  auto it = g_flags.find(name);
  return it == g_flags.end() ? fallback : std::stol(it->second);
}

struct Dataset {
  std::string name;
  bool angular = false;  // Cosine (vectors normalised) vs squared L2.
  size_t dim = 0;
  std::vector<float> base;              // (n, dim)
  std::vector<float> queries;           // (nq, dim)
  std::vector<std::vector<int>> truth;  // top-10 ids per query
  size_t n() const { return base.size() / dim; }
  size_t nq() const { return queries.size() / dim; }
};

void Normalise(std::vector<float>* v, size_t dim) {
  for (size_t i = 0; i < v->size() / dim; ++i) {
    quiver::ann::NormalizeInPlace(std::span<float>(v->data() + i * dim, dim));
  }
}

// Exact top-10 with our flat index (the oracle), multi-threaded.
void ComputeTruth(Dataset* d) {
  quiver::ann::FlatIndex flat(d->dim,
                              d->angular ? quiver::ann::Metric::kCosine : quiver::ann::Metric::kL2);
  for (size_t i = 0; i < d->n(); ++i)
    flat.Upsert(i, std::span<const float>(&d->base[i * d->dim], d->dim));
  quiver::ThreadPool pool(std::max(1u, std::thread::hardware_concurrency()));
  d->truth.assign(d->nq(), {});
  pool.ParallelFor(d->nq(), [&](size_t q) {
    for (const auto& h :
         flat.Search(std::span<const float>(&d->queries[q * d->dim], d->dim), {.top_k = 10})) {
      d->truth[q].push_back(static_cast<int>(h.label));
    }
  });
}

std::vector<float> Flatten(const std::vector<std::vector<float>>& rows) {
  std::vector<float> out;
  for (const auto& r : rows) out.insert(out.end(), r.begin(), r.end());
  return out;
}

// Gaussian clusters: `centres` unit-variance centres, points at `spread`
// around them. Smaller spread = easier (more separated clusters).
std::vector<float> Clustered(size_t n, size_t dim, uint32_t seed, size_t centres, float spread) {
  std::mt19937 crng(7);
  std::normal_distribution<float> g;
  std::vector<float> c(centres * dim);
  for (auto& x : c) x = g(crng);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, centres - 1);
  std::vector<float> out(n * dim);
  for (size_t i = 0; i < n; ++i) {
    const float* cc = &c[pick(rng) * dim];
    for (size_t k = 0; k < dim; ++k) out[i * dim + k] = cc[k] + spread * g(rng);
  }
  return out;
}

struct SweepPoint {
  size_t ef;
  double recall;
  double qps;
};

struct Result {
  std::string lib;
  double build_s = 0;
  double bytes_per_vector = 0;  // What the index holds in memory per vector.
  std::vector<SweepPoint> sweep;
};

using SearchFn = std::function<void(const float* q, size_t ef, int* out10)>;

SweepPoint Measure(const Dataset& d, size_t ef, const SearchFn& search) {
  std::vector<int> out(10);
  size_t found = 0;
  for (size_t q = 0; q < d.nq(); ++q) {
    search(&d.queries[q * d.dim], ef, out.data());
    std::set<int> want(d.truth[q].begin(), d.truth[q].end());
    for (int id : out) found += want.count(id);
  }
  std::vector<double> rates;
  for (int rep = 0; rep < 3; ++rep) {
    size_t done = 0;
    const auto t = Clock::now();
    while (Since(t) < 0.25) {
      for (size_t q = 0; q < d.nq(); ++q) search(&d.queries[q * d.dim], ef, out.data());
      done += d.nq();
    }
    rates.push_back(done / Since(t));
  }
  std::sort(rates.begin(), rates.end());
  return {ef, static_cast<double>(found) / (10.0 * d.nq()), rates[1]};
}

// Queries per second of `threads` threads searching at once (median of 3 passes).
double Throughput(const Dataset& d, size_t ef, int threads, const SearchFn& search) {
  std::vector<double> rates;
  for (int rep = 0; rep < 3; ++rep) {
    std::atomic<size_t> done{0};
    const auto t = Clock::now();
    std::vector<std::thread> workers;
    for (int w = 0; w < threads; ++w) {
      workers.emplace_back([&, w] {
        std::vector<int> out(10);
        size_t q = static_cast<size_t>(w) * 7919;
        while (Since(t) < 0.5) {
          for (int b = 0; b < 16; ++b, ++q)
            search(&d.queries[(q % d.nq()) * d.dim], ef, out.data());
          done += 16;
        }
      });
    }
    for (auto& w : workers) w.join();
    rates.push_back(static_cast<double>(done) / Since(t));
  }
  std::sort(rates.begin(), rates.end());
  return rates[1];
}

double QpsAtRecall(const Result& r, double target) {
  for (size_t i = 0; i < r.sweep.size(); ++i) {
    if (r.sweep[i].recall >= target) {
      if (i == 0) return r.sweep[0].qps;
      const SweepPoint& a = r.sweep[i - 1];
      const SweepPoint& b = r.sweep[i];
      const double t = (target - a.recall) / std::max(1e-9, b.recall - a.recall);
      return a.qps + t * (b.qps - a.qps);
    }
  }
  return 0;  // Not reached.
}

void RunDataset(const Dataset& d) {
  const size_t m = IntFlag("m", 16), efc = IntFlag("efc", 200);
  const int threads = static_cast<int>(IntFlag("build_threads", 1));
  // The peers' build threads (default the same): --peer_build_threads=1 sets
  // our parallel build against their single-threaded one.
  const int peer_threads = static_cast<int>(IntFlag("peer_build_threads", threads));
  const std::vector<size_t> efs = {10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512};
  std::printf(
      "\n=== %s: n=%zu nq=%zu dim=%zu metric=%s m=%zu ef_construction=%zu build_threads=%d\n",
      d.name.c_str(), d.n(), d.nq(), d.dim, d.angular ? "angular" : "l2", m, efc, threads);
  if (peer_threads != threads) std::printf("peers' build_threads=%d\n", peer_threads);
  std::vector<Result> results;

  // Ours, with each quantization asked for (--quant=none,sq8; "none" always runs).
  std::vector<std::string> quants = {"none"};
  for (size_t p = 0, q; p < Flag("quant", "").size(); p = q + 1) {
    q = Flag("quant", "").find(',', p);
    if (q == std::string::npos) q = Flag("quant", "").size();
    const std::string name = Flag("quant", "").substr(p, q - p);
    if (name != "none" && !name.empty()) quants.push_back(name);
  }
  for (const std::string& quant : quants) {
    quiver::ann::HnswOptions o;
    o.dimension = d.dim;
    o.metric = d.angular ? quiver::ann::Metric::kCosine : quiver::ann::Metric::kL2;
    o.m = static_cast<uint32_t>(m);
    o.ef_construction = static_cast<uint32_t>(efc);
    if (quant != "none") {
      // "binary:4": that quantization at that oversampling (else --oversampling).
      const size_t colon = quant.find(':');
      auto q = quiver::ann::ParseQuantization(quant.substr(0, colon));
      if (!q.ok()) {
        std::fprintf(stderr, "--quant: %s\n", std::string(q.status().message()).c_str());
        std::exit(2);
      }
      o.quantization = *q;
      o.oversampling = std::stof(colon == std::string::npos ? Flag("oversampling", "3")
                                                            : quant.substr(colon + 1));
      o.rescore = IntFlag("no_rescore", 0) == 0;
    }
    Result r{quant == "none" ? "quiver" : "quiver-" + quant};
    quiver::ann::HnswIndex index(o);
    std::vector<uint64_t> labels(d.n());
    for (size_t i = 0; i < d.n(); ++i) labels[i] = i;
    const auto t = Clock::now();
    if (threads > 1) {
      quiver::ThreadPool pool(threads - 1);
      index.UpsertBatch(labels, d.base.data(), &pool);
    } else {
      index.UpsertBatch(labels, d.base.data(), nullptr);
    }
    r.build_s = Since(t);
    r.bytes_per_vector = static_cast<double>(index.BytesPerVector());
    const auto search = [&](const float* q, size_t e, int* out) {
      auto hits = index.Search(std::span<const float>(q, d.dim), {.top_k = 10, .ef = e});
      for (size_t i = 0; i < 10; ++i)
        out[i] = i < hits.size() ? static_cast<int>(hits[i].label) : -1;
    };
    for (size_t ef : efs) r.sweep.push_back(Measure(d, ef, search));
    if (quant == "none" && IntFlag("query_threads", 1) > 1) {
      // Throughput of several querying threads vs one, at the smallest ef reaching 0.95.
      size_t ef = efs.back();
      for (const SweepPoint& p : r.sweep) {
        if (p.recall >= 0.95) {
          ef = p.ef;
          break;
        }
      }
      const int qt = static_cast<int>(IntFlag("query_threads", 1));
      const double one = Throughput(d, ef, 1, search);
      const double many = Throughput(d, ef, qt, search);
      std::printf(
          "quiver query scaling at ef=%zu: 1 thread %.0f qps, %d threads %.0f qps = %.2fx\n", ef,
          one, qt, many, many / one);
    }
    if (quant == "none" && !Flag("filter_percents", "").empty()) {
      // Filtered search (label % 100 < p keeps p%) at each ef: recall@10
      // against the exact filtered answer, single-thread queries/s.
      quiver::ann::FlatIndex flat(d.dim, o.metric);
      for (size_t i = 0; i < d.n(); ++i) {
        flat.Upsert(i, std::span<const float>(&d.base[i * d.dim], d.dim));
      }
      const std::string percents = Flag("filter_percents", "");
      for (size_t p0 = 0, p1; p0 < percents.size(); p0 = p1 + 1) {
        p1 = percents.find(',', p0);
        if (p1 == std::string::npos) p1 = percents.size();
        const double keep = std::stod(percents.substr(p0, p1 - p0));
        const quiver::ann::LabelFilter filter = [keep](uint64_t label) {
          return static_cast<double>(label % 10000) < keep * 100;
        };
        std::vector<std::set<uint64_t>> truth(d.nq());
        for (size_t q = 0; q < d.nq(); ++q) {
          for (const auto& h : flat.Search(std::span<const float>(&d.queries[q * d.dim], d.dim),
                                           {.top_k = 10, .filter = &filter})) {
            truth[q].insert(h.label);
          }
        }
        for (size_t ef : {32, 64, 128, 256, 512}) {
          size_t found = 0, want = 0;
          const auto t0 = Clock::now();
          for (size_t q = 0; q < d.nq(); ++q) {
            for (const auto& h : index.Search(std::span<const float>(&d.queries[q * d.dim], d.dim),
                                              {.top_k = 10, .ef = ef, .filter = &filter})) {
              found += truth[q].count(h.label);
            }
            want += truth[q].size();
          }
          const double secs = Since(t0);
          std::printf("quiver filter keeps %.2f%%: ef %4zu recall@10 %.4f  %8.0f qps\n", keep, ef,
                      static_cast<double>(found) / static_cast<double>(std::max<size_t>(want, 1)),
                      static_cast<double>(d.nq()) / secs);
        }
      }
    }
    results.push_back(std::move(r));
  }
  {  // hnswlib.
    Result r{"hnswlib"};
    std::unique_ptr<hnswlib::SpaceInterface<float>> space;
    if (d.angular) {
      space = std::make_unique<hnswlib::InnerProductSpace>(d.dim);
    } else {
      space = std::make_unique<hnswlib::L2Space>(d.dim);
    }
    hnswlib::HierarchicalNSW<float> index(space.get(), d.n(), m, efc, 100);
    const auto t = Clock::now();
    if (peer_threads > 1) {
      quiver::ThreadPool pool(peer_threads - 1);
      index.addPoint(d.base.data(), 0);
      pool.ParallelFor((d.n() + 63) / 64, [&](size_t c) {
        for (size_t i = std::max<size_t>(1, c * 64); i < std::min(d.n(), (c + 1) * 64); ++i) {
          index.addPoint(&d.base[i * d.dim], i);
        }
      });
    } else {
      for (size_t i = 0; i < d.n(); ++i) index.addPoint(&d.base[i * d.dim], i);
    }
    r.build_s = Since(t);
    r.bytes_per_vector = static_cast<double>(index.size_data_per_element_) +
                         static_cast<double>(index.size_links_per_element_) * 1.0 / m +
                         sizeof(void*);  // Level 0 block, upper levels (1/m of nodes), pointer.
    for (size_t ef : efs) {
      r.sweep.push_back(Measure(d, ef, [&](const float* q, size_t e, int* out) {
        index.setEf(e);
        auto pq = index.searchKnn(q, 10);
        int i = static_cast<int>(pq.size()) - 1;
        for (int k = 0; k < 10; ++k) out[k] = -1;
        while (!pq.empty()) {
          if (i < 10) out[i] = static_cast<int>(pq.top().second);
          pq.pop();
          --i;
        }
      }));
    }
    results.push_back(std::move(r));
  }
  const auto faiss_hnsw = [&](const std::string& lib, faiss::IndexHNSW* index) {
    Result r{lib};
    omp_set_num_threads(peer_threads);
    index->hnsw.efConstruction = static_cast<int>(efc);
    const auto t = Clock::now();
    if (!index->is_trained) index->train(static_cast<faiss::Index::idx_t>(d.n()), d.base.data());
    index->add(static_cast<faiss::Index::idx_t>(d.n()), d.base.data());
    r.build_s = Since(t);
    r.bytes_per_vector =
        static_cast<double>(index->storage->sa_code_size()) +
        static_cast<double>(index->hnsw.neighbors.size() * sizeof(faiss::HNSW::storage_idx_t) +
                            index->hnsw.offsets.size() * sizeof(size_t) +
                            index->hnsw.levels.size() * sizeof(int)) /
            static_cast<double>(d.n());
    omp_set_num_threads(1);
    std::vector<float> dist(10);
    std::vector<faiss::Index::idx_t> labels(10);
    for (size_t ef : efs) {
      r.sweep.push_back(Measure(d, ef, [&](const float* q, size_t e, int* out) {
        index->hnsw.efSearch = static_cast<int>(e);
        index->search(1, q, 10, dist.data(), labels.data());
        for (int k = 0; k < 10; ++k) out[k] = static_cast<int>(labels[k]);
      }));
    }
    results.push_back(std::move(r));
  };
  const faiss::MetricType faiss_metric = d.angular ? faiss::METRIC_INNER_PRODUCT : faiss::METRIC_L2;
  const bool faiss = IntFlag("skip_faiss", 0) == 0;
  if (faiss) {
    faiss::IndexHNSWFlat index(static_cast<int>(d.dim), static_cast<int>(m), faiss_metric);
    faiss_hnsw("faiss", &index);
  }
  if (faiss && Flag("quant", "").find("sq8") != std::string::npos) {
    // faiss's SQ8: a range per dimension (QT_8bit), distances on decoded floats, no rescoring.
    faiss::IndexHNSWSQ index(static_cast<int>(d.dim), faiss::ScalarQuantizer::QT_8bit,
                             static_cast<int>(m), faiss_metric);
    faiss_hnsw("faiss-sq8", &index);
    if (!IntFlag("skip_flat_sq8", 0)) {  // The exhaustive scan of the same codes: one point.
      Result r{"faiss-flat-sq8"};
      faiss::IndexScalarQuantizer flat(static_cast<int>(d.dim), faiss::ScalarQuantizer::QT_8bit,
                                       faiss_metric);
      omp_set_num_threads(peer_threads);
      const auto t = Clock::now();
      flat.train(static_cast<faiss::Index::idx_t>(d.n()), d.base.data());
      flat.add(static_cast<faiss::Index::idx_t>(d.n()), d.base.data());
      r.build_s = Since(t);
      r.bytes_per_vector = static_cast<double>(flat.code_size);
      omp_set_num_threads(1);
      std::vector<float> dist(10);
      std::vector<faiss::Index::idx_t> labels(10);
      r.sweep.push_back(Measure(d, 0, [&](const float* q, size_t, int* out) {
        flat.search(1, q, 10, dist.data(), labels.data());
        for (int k = 0; k < 10; ++k) out[k] = static_cast<int>(labels[k]);
      }));
      results.push_back(std::move(r));
    }
  }

  for (const Result& r : results) {
    std::printf("%-14s build %.2f s, %.0f bytes/vector\n", r.lib.c_str(), r.build_s,
                r.bytes_per_vector);
    for (const SweepPoint& p : r.sweep) {
      std::printf("  %-14s ef=%-4zu recall@10=%.4f  qps=%.0f\n", r.lib.c_str(), p.ef, p.recall,
                  p.qps);
    }
  }
  const Result* hnswlib = nullptr;
  const Result* faiss_flat = nullptr;
  for (const Result& r : results) {
    if (r.lib == "hnswlib") hnswlib = &r;
    if (r.lib == "faiss") faiss_flat = &r;
  }
  std::printf(
      "%s summary (single-thread QPS at recall@10; ratios: this row / hnswlib float32, "
      "/ faiss float32)\n",
      d.name.c_str());
  std::printf("  %-14s %7s %10s %9s %9s %9s %10s\n", "library", "recall", "qps", "vs hnsw",
              "vs faiss", "build s", "bytes/vec");
  for (const Result& r : results) {
    for (double target : {0.90, 0.95, 0.99}) {
      double qps = QpsAtRecall(r, target);
      if (r.sweep.size() == 1) {  // An exhaustive scan: its one point, if it reaches the target.
        qps = r.sweep[0].recall >= target ? r.sweep[0].qps : 0;
      }
      const double hl = QpsAtRecall(*hnswlib, target);
      const double fa = faiss_flat != nullptr ? QpsAtRecall(*faiss_flat, target) : 0;
      std::printf("  %-14s %7.2f %10.0f %8.2fx %8.2fx %9.2f %10.0f\n", r.lib.c_str(), target, qps,
                  hl > 0 ? qps / hl : 0, fa > 0 ? qps / fa : 0, r.build_s, r.bytes_per_vector);
    }
  }
  std::printf("  build: quiver %.2f s, hnswlib %.2f s (ratio %.2f)", results[0].build_s,
              hnswlib->build_s, hnswlib->build_s / results[0].build_s);
  if (faiss_flat != nullptr) {
    std::printf(", faiss %.2f s (ratio %.2f)", faiss_flat->build_s,
                faiss_flat->build_s / results[0].build_s);
  }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) continue;
    const size_t eq = a.find('=');
    g_flags[a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2)] =
        eq == std::string::npos ? "1" : a.substr(eq + 1);
  }
  const std::string data = Flag("data", g_flags.contains("base") ? "files" : "glove50");
  std::printf("hnsw_bench: kernels=%s\n", quiver::ann::BestKernels().name);
  if (data == "glove50") {
    const std::string dir = quiver::testing::FixturePath("glove50-ann-derived");
    if (dir.empty()) {
      std::fprintf(stderr, "fixture glove50-ann-derived not found ($QUIVER_FIXTURES)\n");
      return 1;
    }
    for (bool angular : {true, false}) {
      Dataset d;
      d.name = angular ? "glove50-angular" : "glove50-l2";
      d.angular = angular;
      d.dim = 50;
      d.base = Flatten(quiver::testing::ReadFvecs(dir + "/base.fvecs"));
      d.queries = Flatten(quiver::testing::ReadFvecs(dir + "/query.fvecs"));
      auto gt = quiver::testing::ReadIvecs(
          dir + (angular ? "/groundtruth.angular.top100.ivecs" : "/groundtruth.l2.top100.ivecs"));
      for (auto& row : gt) d.truth.emplace_back(row.begin(), row.begin() + 10);
      if (angular) {
        Normalise(&d.base, d.dim);
        Normalise(&d.queries, d.dim);
      }
      RunDataset(d);
    }
    return 0;
  }
  Dataset d;
  d.angular = Flag("metric", "l2") == "angular";
  if (data == "clustered") {
    const size_t n = IntFlag("n", 100000);
    d.dim = IntFlag("dim", 128);
    const size_t centres = IntFlag("centres", 10);
    const float spread = std::stof(Flag("spread", "1"));
    d.name = "clustered-" + std::to_string(n) + "x" + std::to_string(d.dim) + "-c" +
             std::to_string(centres) + "-s" + Flag("spread", "1");
    d.base = Clustered(n, d.dim, 1, centres, spread);
    d.queries = Clustered(IntFlag("nq", 1000), d.dim, 2, centres, spread);
  } else if (data == "embedding") {
    // Embedding-like: clusters in a low-dimensional latent space (--latent=64)
    // mapped linearly to --dim, plus a little isotropic noise, compared by
    // angle. Real embeddings vary along few directions; isotropic Gaussian
    // clusters in 768-d (--data=clustered) are a worst case for any code.
    const size_t n = IntFlag("n", 100000), latent = IntFlag("latent", 64);
    d.dim = IntFlag("dim", 768);
    d.angular = true;
    d.name = "embedding-" + std::to_string(n) + "x" + std::to_string(d.dim) + "-latent" +
             std::to_string(latent);
    std::mt19937 mrng(11);
    std::normal_distribution<float> g;
    std::vector<float> map(latent * d.dim);
    for (float& x : map) x = g(mrng) / std::sqrt(static_cast<float>(latent));
    auto embed = [&](size_t count, uint32_t seed) {
      const std::vector<float> z = Clustered(count, latent, seed, IntFlag("centres", 100), 0.5f);
      std::mt19937 nrng(seed + 100);
      std::vector<float> out(count * d.dim);
      for (size_t i = 0; i < count; ++i) {
        for (size_t k = 0; k < d.dim; ++k) {
          float v = 0.05f * g(nrng);
          for (size_t l = 0; l < latent; ++l) v += z[i * latent + l] * map[l * d.dim + k];
          out[i * d.dim + k] = v;
        }
      }
      return out;
    };
    d.base = embed(n, 1);
    d.queries = embed(IntFlag("nq", 1000), 2);
  } else {
    d.name = Flag("base", "");
    auto base = quiver::testing::ReadFvecs(Flag("base", ""));
    auto queries = quiver::testing::ReadFvecs(Flag("query", ""));
    if (base.empty() || queries.empty()) {
      std::fprintf(stderr, "cannot read --base/--query .fvecs\n");
      return 1;
    }
    d.dim = base[0].size();
    d.base = Flatten(base);
    d.queries = Flatten(queries);
    if (g_flags.contains("gt")) {
      for (auto& row : quiver::testing::ReadIvecs(Flag("gt", ""))) {
        d.truth.emplace_back(row.begin(), row.begin() + std::min<size_t>(10, row.size()));
      }
    }
  }
  if (d.angular) {
    Normalise(&d.base, d.dim);
    Normalise(&d.queries, d.dim);
  }
  if (d.truth.empty()) ComputeTruth(&d);
  RunDataset(d);
  return 0;
}
