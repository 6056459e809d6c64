// Encoder throughput, ours (embed::BertEncoder on the CPU backend) next to
// PyTorch on the same weights, in one run: a MiniLM-L6-shaped BERT (6
// layers, hidden 384, 12 heads, intermediate 1536) with random weights,
// sequences of 128 tokens, batches of 1, 8, 32 and 128. Reports ms per
// batch (median of --rounds), sentences/s and the ratio, plus the GEMM-bound
// estimate from a measured sgemm rate.
//
//   build/bench/embed_bench [--rounds=5] [--seq=128] [--batches=1,8,32,128] [--device=cpu|cuda]
//                           [--precision=float32|tf32]  (tf32: CUDA tensor cores, bound included)
// (torch always runs on the CPU: the ratio compares against PyTorch CPU.)
//
// Needs /usr/bin/python3 with torch (python3-torch) and the
// model2vec-rs-fixtures tokenizer ($QUIVER_FIXTURES).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench/bench_flags.h"
#include "bench/bench_stats.h"
#include "embed/bert.h"
#include "tests/testing/test_util.h"

namespace {

using quiver::bench::Flag;
using quiver::bench::Median;

}  // namespace

int main(int argc, char** argv) {
  const std::string fixtures = quiver::testing::FixturePath("model2vec-rs-fixtures");
  if (fixtures.empty()) {
    std::fprintf(stderr, "embed_bench: fixture model2vec-rs-fixtures not found\n");
    return 1;
  }
  const int rounds = std::stoi(Flag(argc, argv, "rounds", "5"));
  const int seq = std::stoi(Flag(argc, argv, "seq", "128"));
  const std::string batches_flag = Flag(argc, argv, "batches", "1,8,32,128");
  std::vector<int> batches;
  std::stringstream bs(batches_flag);
  for (std::string b; std::getline(bs, b, ',');) batches.push_back(std::stoi(b));
  quiver::testing::TempDir dir;
  const std::string model_dir = dir.path() + "/minilm-shaped";
  const std::string out_file = dir.path() + "/torch.txt";
  const std::string cmd = std::string("/usr/bin/python3 ") + QUIVER_SOURCE_DIR +
                          "/bench/embed_bench_torch.py " + model_dir + " " + fixtures +
                          "/test-model-float32/tokenizer.json --seq=" + std::to_string(seq) +
                          " --batches=" + batches_flag + " --rounds=" + std::to_string(rounds) +
                          " > " + out_file;
  if (std::system(cmd.c_str()) != 0) {
    std::fprintf(stderr, "embed_bench: the PyTorch side failed (python3-torch installed?)\n");
    return 1;
  }
  std::map<int, double> torch_ms;
  std::string torch_line;
  {
    FILE* f = std::fopen(out_file.c_str(), "r");
    char line[256];
    while (f != nullptr && std::fgets(line, sizeof line, f) != nullptr) {
      int b;
      double ms;
      if (std::sscanf(line, "torch batch=%d ms=%lf", &b, &ms) == 2) {
        torch_ms[b] = ms;
      } else {
        torch_line = line;
      }
    }
    if (f != nullptr) std::fclose(f);
  }
  const std::string device = Flag(argc, argv, "device", "cpu");
  auto precision = quiver::nn::ParseMatmulPrecision(Flag(argc, argv, "precision", "float32"));
  if (!precision.ok()) {
    std::fprintf(stderr, "embed_bench: %s\n", precision.status().ToString().c_str());
    return 1;
  }
  auto backend_or = quiver::nn::NewBackend(device, {*precision});
  if (!backend_or.ok()) {
    std::fprintf(stderr, "embed_bench: %s\n", backend_or.status().ToString().c_str());
    return 1;
  }
  auto backend = *std::move(backend_or);
  // The backend's sgemm rate on a large square product: the bound a
  // GEMM-dominated encoder cannot beat. Several products are timed between
  // two synchronisations (a one-value download waits for the stream), so a
  // GPU's rate is not hidden behind copying the 64 MB result to the host.
  double gemm_gflops = 0;
  {
    const int64_t n = device == "cpu" ? 1024 : 4096;
    const int reps = device == "cpu" ? 1 : 10;
    std::vector<float> a(static_cast<size_t>(n * n), 0.5f);
    auto x = backend->Upload(a, {n, n});
    auto w = backend->Upload(a, {n, n});
    auto y = backend->Alloc({n, n});
    auto sync = backend->Upload(std::vector<float>{0.0f}, {1});
    backend->Linear(x, w, nullptr, &y);
    (void)backend->Download(sync);
    std::vector<double> rates;
    for (int r = 0; r < 3; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int k = 0; k < reps; ++k) backend->Linear(x, w, nullptr, &y);
      (void)backend->Download(sync);  // Waits for the products on a GPU.
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      rates.push_back(2.0 * n * n * n * reps / s / 1e9);
    }
    gemm_gflops = Median(rates);
  }
  auto enc = quiver::embed::BertEncoder::Load(model_dir, backend.get());
  if (!enc.ok()) {
    std::fprintf(stderr, "embed_bench: %s\n", enc.status().ToString().c_str());
    return 1;
  }
  const auto& c = (*enc)->config();
  // FLOPs per token: 4 projections h x h, 2 FFN h x f, attention 2 * seq * h.
  const double flops_per_token =
      2.0 * c.layers *
      (4.0 * c.hidden * c.hidden + 2.0 * c.hidden * c.intermediate + 2.0 * seq * c.hidden);
  std::printf(
      "embed_bench: BERT %lld layers, hidden %lld, %lld heads, intermediate %lld; seq %d; "
      "CPU threads: ours OpenMP/OpenBLAS; %s",
      static_cast<long long>(c.layers), static_cast<long long>(c.hidden),
      static_cast<long long>(c.heads), static_cast<long long>(c.intermediate), seq,
      torch_line.c_str());
  std::printf("device %s, %s products: sgemm %.0f GFLOP/s (the GEMM bound below)\n",
              std::string(backend->name()).c_str(),
              std::string(quiver::nn::MatmulPrecisionName(backend->precision())).c_str(),
              gemm_gflops);
  std::printf("%6s %12s %12s %12s %12s %8s %10s %12s\n", "batch", "quiver ms", "torch ms",
              "quiver s/s", "torch s/s", "ratio", "GFLOP/s", "bound ms");
  std::mt19937 rng(3);
  for (int b : batches) {
    std::vector<quiver::nn::Encoding> batch(b);
    for (auto& e : batch) {
      e.ids.resize(seq);
      e.type_ids.assign(seq, 0);
      for (auto& id : e.ids) id = 1000 + static_cast<int32_t>(rng() % (c.vocab_size - 1000));
    }
    int64_t s = 0;
    (void)(*enc)->Forward(batch, &s);  // Warm-up.
    std::vector<double> ms;
    for (int r = 0; r < rounds; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      auto out = (*enc)->Forward(batch, &s);
      ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      if (!out.ok()) return 1;
    }
    const double ours = Median(ms);
    const double theirs = torch_ms.count(b) ? torch_ms[b] : 0;
    std::printf("%6d %12.2f %12.2f %12.1f %12.1f %7.2fx %10.1f %12.2f\n", b, ours, theirs,
                b * 1000.0 / ours, theirs > 0 ? b * 1000.0 / theirs : 0.0,
                theirs > 0 ? theirs / ours : 0.0, flops_per_token * b * seq / (ours * 1e6),
                flops_per_token * b * seq / (gemm_gflops * 1e6));
  }
  return 0;
}
