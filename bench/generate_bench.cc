// Generation throughput through the continuous-batching scheduler on the
// CPU (or with --device=cuda, the GPU): single-stream decode tokens/s and time to first token,
// prefill tokens/s, and aggregate tokens/s with 1, 4, 16 and 64 concurrent streams, for stories260K
// (fixture) and a generated random-weight Llama of about 110M parameters (dim 768, 12 layers, 12
// heads, hidden 2048, vocab 32000), written as a llama2.c checkpoint + tokenizer.bin and loaded
// from them. Prints the memory-bandwidth bound for single-stream decode: bytes of weights read per
// token / measured read bandwidth (decode-pattern reads on every core; the GPU's copy bandwidth
// with --device=cuda), and runs bench/ref_decoder.c, a plain C decoder, on the same checkpoints.
//
// Also times the first token of prompts sharing a --prefix_tokens head with
// and without the prefix cache (random-110M with a 2,048-token context).
//
//   build/bench/generate_bench [--device=cpu|cuda] [--tokens=32] [--streams=1,4,16,64]
//                              [--quantized=q8_0,q4_0,q4_k,q6_k,f16] [--prefix_tokens=1000]
//                              [--only_stories=1] [--int8_dots=0] [--runs=5]
//
// Single-stream rates, ours and the plain C decoder's, are medians of
// --runs generations.
//
// Q8_0 and Q4_0 run twice on the CPU: float32 activations, then int8
// (--llm_int8_dots; --int8_dots=0 skips it), with the difference between
// the two paths' logits and greedy tokens.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_flags.h"
#include "bench/bench_stats.h"
#include "llm/cuda_engine.h"
#include "llm/engine.h"
#include "llm/gguf.h"
#include "llm/llama2c.h"
#include "llm/scheduler.h"
#include "tests/testing/llm_paths.h"
#include "tests/testing/random_llama.h"
#include "tests/testing/test_util.h"

namespace {

using quiver::bench::Flag;
using quiver::bench::Median;

using Clock = std::chrono::steady_clock;
using quiver::llm::GenerateParams;
using quiver::llm::Scheduler;
using quiver::llm::TokenEvent;

double Seconds(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Read bandwidth as decode reads: every thread of the OpenMP team dots
// 768-float weight rows of a buffer far larger than the caches with a small
// vector that stays in cache (the matrix-vector product of a decode step),
// eight accumulators per row so no add chain limits it. Best of 5 passes,
// GB/s of weights read.
double DecodeReadBandwidth(std::vector<float>* buf) {
  constexpr size_t kRow = 768;
  std::vector<float> x(kRow, 0.5f);
  const size_t rows = buf->size() / kRow;
  std::vector<float> out(rows);
  double best = 0;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = Clock::now();
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < rows; ++i) {
      const float* w = buf->data() + i * kRow;
      float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (size_t k = 0; k < kRow; k += 8) {
#pragma omp simd
        for (int j = 0; j < 8; ++j) acc[j] += w[k + j] * x[k + j];
      }
      out[i] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    }
    const double t = Seconds(t0);
    if (out[rows / 2] < 0) std::printf("impossible\n");
    best = std::max(best, static_cast<double>(rows * kRow * sizeof(float)) / t / 1e9);
  }
  return best;
}

// STREAM's triad, a[i] = b[i] + s c[i], for comparison: bytes moved (two
// reads and a write; the write's read-for-ownership not counted, as STREAM
// does not).
double TriadBandwidth(std::vector<float>* buf) {
  const size_t n = buf->size() / 3;
  float *a = buf->data(), *b = a + n, *c = b + n;
  double best = 0;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = Clock::now();
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; ++i) a[i] = b[i] + 0.5f * c[i];
    best = std::max(best, static_cast<double>(n * 3 * sizeof(float)) / Seconds(t0) / 1e9);
  }
  return best;
}

// The bound's bandwidth: the decode-pattern read on every core (printed
// beside STREAM's triad). The earlier probe summed one float chain per
// thread and under-read what the machine gives (34 GB/s where a plain C
// decoder reads 46).
double ReadBandwidth() {
  std::vector<float> buf(96 << 20, 1.0f);  // 384 MiB: past any L3 here.
  const double decode = DecodeReadBandwidth(&buf);
  const double triad = TriadBandwidth(&buf);
  std::printf(
      "generate_bench: decode-pattern read %.1f GB/s, STREAM triad %.1f GB/s (%d threads)\n",
      decode, triad, omp_get_max_threads());
  return decode;
}

// Runs `n` generations at once; returns (wall seconds, tokens, seconds to
// the first token of the first stream).
struct RunResult {
  double seconds = 0, ttft = 0;
  long tokens = 0;
};
RunResult RunStreams(Scheduler& s, int n, const std::string& prompt, int max_tokens) {
  std::mutex mu;
  std::condition_variable cv;
  int done = 0;
  long tokens = 0;
  double ttft = -1;
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    GenerateParams p;
    p.prompt = prompt;
    p.max_tokens = max_tokens;
    p.temperature = 0.8f;
    p.seed = 1000 + i;
    auto h = s.Submit(p, [&](const TokenEvent& e) {
      std::lock_guard<std::mutex> l(mu);
      if (e.token >= 0) {
        ++tokens;
        if (ttft < 0) ttft = Seconds(t0);
      }
      if (e.done) {
        ++done;
        cv.notify_all();
      }
    });
    if (!h.ok()) {
      std::fprintf(stderr, "submit: %s\n", h.status().ToString().c_str());
      std::lock_guard<std::mutex> l(mu);
      ++done;
    }
  }
  std::unique_lock<std::mutex> l(mu);
  cv.wait(l, [&] { return done == n; });
  return {Seconds(t0), ttft, tokens};
}

// Returns the single-stream decode rate, tokens/s.
double Bench(const char* name, const quiver::llm::LlamaModel& model,
             const quiver::llm::Llama2cTokenizer& tok, int max_tokens,
             const std::vector<int>& streams, double bandwidth, const std::string& device,
             int runs) {
  const auto& c = model.config();
  const double params =
      static_cast<double>(c.vocab_size) * c.dim * (c.shared_classifier ? 1 : 2) +
      static_cast<double>(c.n_layers) *
          (2.0 * c.dim * c.dim + 2.0 * c.dim * c.kv_dim() + 3.0 * c.dim * c.hidden_dim);
  // Weight bytes read per decode step, as stored (float32, F16 or Q8_0).
  const double step_bytes = static_cast<double>(model.bytes_per_step());
  quiver::llm::SchedulerOptions o;
  o.max_seqs = 64;
  o.kv_blocks = 64 * ((64 + max_tokens + 15) / 16 + 1) + (c.seq_len + 15) / 16;
  o.prefix_cache = false;  // Prefill is timed on repeated prompts; see BenchPrefixReuse.
  auto engine = quiver::llm::NewDecodeEngine(&model, device, quiver::llm::KvCacheBlocks(c, o),
                                             o.block_size, quiver::llm::MaxStepRows(o));
  if (!engine.ok()) {
    std::printf("%s: %s\n", name, engine.status().ToString().c_str());
    return 0;
  }
  Scheduler s(*std::move(engine), &tok, o);
  std::printf("%s: %.1fM parameters, %.0f MB of weights read per decode step\n", name, params / 1e6,
              step_bytes / 1e6);
  // Prefill: a long prompt, one new token.
  // A prompt of about half the context.
  std::string long_prompt = "Once upon a time there was a";
  while (static_cast<int>(
             tok.Encode(long_prompt + " Once upon a time there was a", true, false).size()) <
         c.seq_len / 2) {
    long_prompt += " Once upon a time there was a";
  }
  const int prompt_tokens = static_cast<int>(tok.Encode(long_prompt, true, false).size());
  // Warm-up, also of the step buffers a long prompt needs (grown once per
  // process, then reused).
  RunStreams(s, 1, "Hi", 2);
  RunStreams(s, 1, long_prompt, 1);
  RunResult pre = RunStreams(s, 1, long_prompt, 1);
  std::printf("  prefill: %d tokens in %.1f ms = %.0f tokens/s (time to first token %.1f ms)\n",
              prompt_tokens, pre.seconds * 1e3, prompt_tokens / pre.seconds, pre.ttft * 1e3);
  // One stream's decode rate: the median of `runs` generations (one is a
  // few milliseconds for stories260K, and this machine's neighbours come
  // and go).
  std::vector<double> rates, ttfts;
  for (int run = 0; run < runs; ++run) {
    RunResult one = RunStreams(s, 1, "Once upon a time", max_tokens);
    rates.push_back(one.tokens / (one.seconds - one.ttft + 1e-9) * (one.tokens - 1) /
                    std::max(1L, one.tokens));
    ttfts.push_back(one.ttft);
  }
  const double single = Median(rates);
  const double bound = bandwidth * 1e9 / step_bytes;
  std::printf(
      "  single stream: %.1f tokens/s decode (median of %d; %.1f-%.1f), first token after %.1f "
      "ms; bandwidth bound %.1f tokens/s (%.1f GB/s / %.0f MB) -> %.2fx of the bound\n",
      single, runs, *std::min_element(rates.begin(), rates.end()),
      *std::max_element(rates.begin(), rates.end()), Median(ttfts) * 1e3, bound, bandwidth,
      step_bytes / 1e6, single / bound);
  std::printf("  streams below: prompt \"Once upon a time\" (%zu tokens), %d new tokens each\n",
              tok.Encode("Once upon a time", true, false).size(), max_tokens);
  double base = 0;
  for (int n : streams) {
    RunResult r = RunStreams(s, n, "Once upon a time", max_tokens);
    const double agg = r.tokens / r.seconds;
    if (n == streams.front()) base = agg;
    std::printf(
        "  %2d streams: %6ld tokens in %6.2f s = %8.1f tokens/s aggregate (%.1fx %d stream%s)\n", n,
        r.tokens, r.seconds, agg, agg / base, streams.front(), streams.front() == 1 ? "" : "s");
  }
  const auto st = s.stats();
  std::printf("  scheduler: %llu steps, %.1f rows per step, at most %llu sequences at once\n",
              static_cast<unsigned long long>(st.steps),
              st.steps ? double(st.rows) / st.steps : 0.0,
              static_cast<unsigned long long>(st.max_active));
  return single;
}

// The plain C peer (bench/ref_decoder.c, built like llama2.c's run.c) on the
// same checkpoint file, decoding the same positions (the prompt's tokens,
// then max_tokens greedy ones) with all threads and with one. Prints its
// rate and ours over it.
void RunPeer(const std::string& checkpoint, const std::vector<int>& prompt, int max_tokens,
             double ours, int runs) {
  std::error_code ec;
  const std::string dir = std::filesystem::read_symlink("/proc/self/exe", ec).parent_path();
  if (ec) return;
  double best = 0;
  for (const char* threads : {"", "OMP_NUM_THREADS=1 "}) {
    std::ostringstream cmd;
    cmd << threads << dir << "/ref_decoder " << checkpoint << " " << max_tokens;
    for (size_t i = 1; i < prompt.size(); ++i) cmd << " " << prompt[i];  // No BOS.
    std::vector<double> rates;
    for (int run = 0; run < runs; ++run) {
      FILE* pipe = popen(cmd.str().c_str(), "r");
      if (pipe == nullptr) return;
      std::string out;
      char buf[4096];
      while (size_t n = std::fread(buf, 1, sizeof(buf), pipe)) out.append(buf, n);
      pclose(pipe);
      const size_t at = out.find(" s = ");
      if (at == std::string::npos) {
        std::printf("  peer: ref_decoder failed: %s\n", out.c_str());
        return;
      }
      rates.push_back(std::atof(out.c_str() + at + 5));
    }
    const double rate = Median(rates);
    best = std::max(best, rate);
    std::printf(
        "  peer: plain C decoder (ref_decoder, %s): %.1f tokens/s (median of %d; %.1f-%.1f)\n",
        threads[0] ? "1 thread" : "all threads", rate, runs,
        *std::min_element(rates.begin(), rates.end()),
        *std::max_element(rates.begin(), rates.end()));
  }
  std::printf("  quiver single stream / plain C decoder (its better run) = %.2fx\n", ours / best);
}

// Time to first token for prompts that share a long head (a system prompt,
// a RAG template and sources): cold, every head new; warm, the head's KV
// blocks reused from the prefix cache. Medians of `runs` each.
void BenchPrefixReuse(const quiver::llm::LlamaModel& model,
                      const quiver::llm::Llama2cTokenizer& tok, int prefix_tokens,
                      const std::string& device) {
  const auto& c = model.config();
  quiver::llm::SchedulerOptions o;
  o.max_seqs = 4;
  o.kv_blocks = 8 * ((c.seq_len + 15) / 16);
  auto engine = quiver::llm::NewDecodeEngine(&model, device, o.kv_blocks, o.block_size,
                                             quiver::llm::MaxStepRows(o));
  if (!engine.ok()) {
    std::printf("prefix reuse: %s\n", engine.status().ToString().c_str());
    return;
  }
  Scheduler s(*std::move(engine), &tok, o);
  // Heads differ from the first block on (a different number of leading
  // " a"), so a cold run shares nothing with earlier ones.
  auto head = [&](int variant) {
    std::string h;
    for (int i = 0; i <= variant; ++i) h += " a";
    while (static_cast<int>(tok.Encode(h, true, false).size()) < prefix_tokens) {
      h += " Once upon a time there was";
    }
    return h;
  };
  RunStreams(s, 1, head(99) + " Hi", 2);  // Warm-up.
  constexpr int kRuns = 7;
  std::vector<double> cold, warm;
  for (int i = 0; i < kRuns; ++i) {
    cold.push_back(RunStreams(s, 1, head(i) + " Hi", 1).ttft);
    warm.push_back(RunStreams(s, 1, head(i) + " time", 1).ttft);
  }
  std::sort(cold.begin(), cold.end());
  std::sort(warm.begin(), warm.end());
  const int tokens = static_cast<int>(tok.Encode(head(0) + " Hi", true, false).size());
  const auto st = s.stats();
  std::printf(
      "  prefix reuse: %d-token prompts sharing all but the last token: time to first token "
      "cold %.1f ms, warm %.1f ms (medians of %d) -> warm/cold %.3f; %llu of %llu prompt tokens "
      "came from the cache\n",
      tokens, cold[kRuns / 2] * 1e3, warm[kRuns / 2] * 1e3, kRuns,
      warm[kRuns / 2] / cold[kRuns / 2], static_cast<unsigned long long>(st.cached_prompt_tokens),
      static_cast<unsigned long long>(st.prompt_tokens));
}

}  // namespace

int main(int argc, char** argv) {
  const int tokens = std::stoi(Flag(argc, argv, "tokens", "32"));
  const int runs = std::max(1, std::stoi(Flag(argc, argv, "runs", "5")));
  std::vector<int> streams;
  std::stringstream ss(Flag(argc, argv, "streams", "1,4,16,64"));
  for (std::string t; std::getline(ss, t, ',');) streams.push_back(std::stoi(t));
  const std::string device = Flag(argc, argv, "device", "cpu");
  double bw = 0;
  if (device == "cuda") {
    auto gpu = quiver::llm::CudaMemoryBandwidth();
    if (!gpu.ok()) {
      std::fprintf(stderr, "generate_bench: %s\n", gpu.status().ToString().c_str());
      return 1;
    }
    bw = *gpu;
    std::printf(
        "generate_bench: CUDA, memory bandwidth %.0f GB/s (device copy), %d new tokens per "
        "stream\n",
        bw, tokens);
  } else {
    // On a thread of its own that then ends, taking its OpenMP team with it:
    // while a second team exists libgomp stops spinning between parallel
    // regions, which would add milliseconds to every decode step measured.
    std::thread probe([&bw] { bw = ReadBandwidth(); });
    probe.join();
    std::printf("generate_bench: CPU, read bandwidth %.1f GB/s, %d new tokens per stream\n", bw,
                tokens);
  }
  const std::string dir = quiver::testing::FixturePath("stories260K");
  if (!dir.empty()) {
    auto m = quiver::llm::LlamaModel::LoadLlama2c(dir + "/stories260K.bin");
    auto t = quiver::llm::Llama2cTokenizer::Load(dir + "/tok512.bin", 512);
    if (m.ok() && t.ok()) {
      const double ours = Bench("stories260K", **m, **t, tokens, streams, bw, device, runs);
      if (device == "cpu") {
        RunPeer(dir + "/stories260K.bin", (*t)->Encode("Once upon a time", true, false), tokens,
                ours, runs);
      }
    }
  }
  if (Flag(argc, argv, "only_stories", "0") != "0") return 0;  // --only_stories=1: quick runs.
  // A random ~110M-parameter Llama (weights N(0, 0.02), norms 1, the
  // classifier tied to the embedding).
  quiver::llm::LlamaConfig c;
  c.dim = 768;
  c.hidden_dim = 2048;
  c.n_layers = 12;
  c.n_heads = 12;
  c.n_kv_heads = 12;
  c.vocab_size = 32000;
  c.seq_len = 512;
  auto model = quiver::testing::RandomLlama(c, 5, 0.02f, /*tied=*/true);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  auto synthetic = quiver::testing::SyntheticVocabulary(
      c.vocab_size, {" ", " Once", " upon", " a", " time", " there", " was", "Hi"});
  // Served from files in llama2.c's format, as a user's checkpoint would be.
  quiver::testing::TempDir files;
  const std::string bin = files.path() + "/random-110M.bin",
                    tokenizer_bin = files.path() + "/tokenizer.bin";
  if (absl::Status written = quiver::testing::WriteLlama2c(**model, *synthetic, bin, tokenizer_bin);
      !written.ok()) {
    std::fprintf(stderr, "%s\n", written.ToString().c_str());
    return 1;
  }
  model = quiver::llm::LlamaModel::LoadLlama2c(bin);
  auto loaded_tok = quiver::llm::Llama2cTokenizer::Load(tokenizer_bin, c.vocab_size);
  if (!model.ok() || !loaded_tok.ok()) {
    std::fprintf(stderr, "reloading the llama2.c files failed\n");
    return 1;
  }
  const auto& tok = *loaded_tok;
  const double ours = Bench("random-110M", **model, *tok, tokens, streams, bw, device, runs);
  if (device == "cpu") {
    RunPeer(bin, tok->Encode("Once upon a time", true, false), tokens, ours, runs);
  }
  {
    // The same weights with a 2,048-token context, for a 1,000-token head.
    quiver::llm::LlamaConfig long_c = c;
    long_c.seq_len = 2048;
    auto long_model = quiver::testing::RandomLlama(long_c, 5, 0.02f, /*tied=*/true);
    const int prefix = std::stoi(Flag(argc, argv, "prefix_tokens", "1000"));
    if (long_model.ok()) BenchPrefixReuse(**long_model, *tok, prefix, device);
  }
  // The same model as GGUF files, kept quantized in memory
  // (--quantized=q8_0,q4_0 by default; empty skips them).
  std::stringstream quantized(Flag(argc, argv, "quantized", "q8_0,q4_0"));
  const bool int8_dots = Flag(argc, argv, "int8_dots", "1") == "1";
  for (std::string q; std::getline(quantized, q, ',');) {
    const auto type = q == "q4_0"   ? quiver::llm::GgufType::kQ4_0
                      : q == "q4_k" ? quiver::llm::GgufType::kQ4_K
                      : q == "q6_k" ? quiver::llm::GgufType::kQ6_K
                      : q == "f16"  ? quiver::llm::GgufType::kF16
                                    : quiver::llm::GgufType::kQ8_0;
    quiver::testing::TempDir tmp;
    const std::string path = tmp.path() + "/random-110M.gguf";
    absl::Status written = quiver::llm::WriteGguf(path, **model, *tok, type);
    auto loaded = written.ok() ? quiver::llm::LoadGguf(path)
                               : absl::StatusOr<quiver::llm::LoadedModel>(written);
    if (!loaded.ok()) {
      std::fprintf(stderr, "%s: %s\n", q.c_str(), loaded.status().ToString().c_str());
      return 1;
    }
    const std::string name = "random-110M-" + q;
    Bench(name.c_str(), *loaded->model, *tok, tokens, streams, bw, device, runs);
    if (device == "cpu" && int8_dots && (q == "q8_0" || q == "q4_0")) {
      // Once more with int8 activations (--llm_int8_dots), after the
      // difference from the float32 path.
      const auto d = quiver::testing::CompareInt8Dots(*loaded->model, 200);
      std::printf(
          "%s-int8: int8 dots vs float32 path: max logit error %.4f of the largest logit, "
          "greedy tokens agree for %zu of 200 steps\n",
          q.c_str(), d.max_error, d.greedy_agree);
      Bench((name + "-int8").c_str(), *loaded->model, *tok, tokens, streams, bw, device, runs);
    }
  }
  return 0;
}
