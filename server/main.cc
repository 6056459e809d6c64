// quiverd: the Quiver server.
//
//   quiverd [--data_dir=./quiver-data] [--listen=127.0.0.1:50051] [--config=FILE] ...
//
// Flags may be spelled with '-' or '_' (--data-dir == --data_dir). A config
// file holds one `name = value` per line ('#' starts a comment); flags given
// on the command line win over the file.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "ann/distance.h"
#include "common/log.h"
#include "common/memory_budget.h"
#include "common/strings.h"
#include "server/server.h"
#include "storage/restore.h"
#include "storage/store.h"

namespace {
int g_signal_pipe[2] = {-1, -1};
extern "C" void OnShutdownSignal(int sig) {
  const char c = static_cast<char>(sig);
  const ssize_t ignored = write(g_signal_pipe[1], &c, 1);
  (void)ignored;
}
}  // namespace

ABSL_FLAG(std::string, config, "", "Optional config file of `name = value` lines");
ABSL_FLAG(std::string, data_dir, "./quiver-data", "RocksDB data directory");
ABSL_FLAG(std::string, restore, "",
          "Before starting, replace the data directory's contents with this snapshot (a name "
          "under <data_dir>/snapshots, or a snapshot directory's path)");
ABSL_FLAG(bool, restore_overwrite, false,
          "Let --restore replace a data directory that already holds a database");
ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "Comma-separated gRPC listen addresses (host:port; port 0 picks a free one)");
ABSL_FLAG(std::string, port_file, "",
          "If set, the bound gRPC port is written here once the server accepts calls");
ABSL_FLAG(int, threads, 16,
          "Workers running gRPC data calls (search, reads, writes, admin); waiting calls queue");
ABSL_FLAG(int, model_threads, 256,
          "Workers running gRPC calls that wait on a model (embed, rerank, generate, Ask, "
          "documents, upserts that embed); keep it above --llm_max_seqs");
ABSL_FLAG(uint32_t, max_queued_calls, 4096,
          "gRPC calls that may wait for a worker, per queue (data, model); beyond it "
          "RESOURCE_EXHAUSTED");
ABSL_FLAG(int, search_threads, 0, "Workers for parallel exact scans (0: one per CPU core)");
ABSL_FLAG(std::string, sync, "batch",
          "When writes are fsync'ed: always (before the ack), batch (group commit every "
          "--sync_interval_ms; the WAL is written before the ack), none");
ABSL_FLAG(int, sync_interval_ms, 20, "Group-commit interval for --sync=batch");
ABSL_FLAG(int, block_cache_mb, 256, "RocksDB block cache size");
ABSL_FLAG(int, memtable_mb, 64, "RocksDB memtables of all column families together (MiB, >= 4)");
ABSL_FLAG(int64_t, memory_budget_mb, 0,
          "Memory the server may hold (MiB): vectors, graphs, postings, metadata, models, KV "
          "cache, caches; a write or load past it is RESOURCE_EXHAUSTED. 0: 80% of the memory "
          "this process may use (its cgroup's limit, else the machine's); -1: no limit");
ABSL_FLAG(std::string, memory_part_budget_mb, "",
          "Limits of single parts within the budget (MiB), e.g. vectors=4096,postings=512; parts: "
          "vectors, graph, postings, metadata, models, kv_cache, caches");
ABSL_FLAG(uint64_t, checkpoint_min_inserts, 50000,
          "HNSW checkpoint after max(this, a quarter of the namespace) inserted vectors");
ABSL_FLAG(uint64_t, index_backlog, 1000000,
          "Vectors per HNSW namespace that may be acknowledged before they are in the graph: "
          "upserts of 64 or more vectors are stored, searchable by exact scan at once and indexed "
          "in the background with every search thread; past this many, writers index their own "
          "vectors before acknowledging. 0: every write is in the graph when acknowledged");
ABSL_FLAG(std::string, device, "auto", "Compute device for models: auto, cpu or cuda");
ABSL_FLAG(
    std::string, embed_precision, "float32",
    "Matrix products of the embedding and rerank models: float32; tf32 on CUDA (tensor cores, "
    "about 1e-3 relative error); bf16 on the CPU (bfloat16 inputs, float32 sums: AVX512_BF16 "
    "dot products, cosine >= 0.999 to float32). Each device computes float32 for the other's");
ABSL_FLAG(std::string, embed_model, "",
          "Embedding model directory (Hugging Face BERT-family or model2vec); its name is the "
          "directory's last component");
ABSL_FLAG(std::string, rerank_model, "", "Cross-encoder reranker directory (Hugging Face)");
ABSL_FLAG(std::string, llm_model, "",
          "Generative model: a GGUF file (.gguf; Llama or Qwen2 in F32, F16, Q8_0, Q4_0, Q4_K, "
          "Q5_K or Q6_K, mixed as in Q4_K_M), a Hugging Face directory (config.json, safetensors "
          "in F32/F16/BF16, tokenizer.json; Llama, Qwen2, Mistral) or a llama2.c checkpoint");
ABSL_FLAG(std::string, llm_tokenizer, "",
          "The llama2.c tokenizer.bin for --llm-model (default: tokenizer.bin next to it)");
ABSL_FLAG(int, llm_max_seqs, 64, "Sequences generating at once (continuous batching)");
ABSL_FLAG(bool, llm_prefix_cache, true,
          "Reuse the KV blocks of prompt prefixes shared between requests");
ABSL_FLAG(int, llm_kv_cache_mb, 1024,
          "KV cache for generation (MiB; at least one full context); requests wait for room");
ABSL_FLAG(int, llm_max_batch_tokens, 512, "Tokens per generation step (prefill chunks share it)");
ABSL_FLAG(bool, llm_int8_dots, false,
          "Q8_0 / Q4_0 weights multiply activations quantized to int8 on the CPU (VNNI or AVX2 "
          "integer dot products, as llama.cpp does): not the float32 numerics (about 1.5% of the "
          "largest logit; figures in bench/README.md)");
ABSL_FLAG(int, llm_max_context, 0,
          "Longest sequence (prompt + generated) in tokens; 0: the model's own context length");
ABSL_FLAG(uint32_t, embed_max_batch_tokens, 16384, "Padded tokens per model forward pass");
ABSL_FLAG(int64_t, embed_max_wait_us, 2000,
          "How long a request waits for others to share its batch (microseconds)");
ABSL_FLAG(uint32_t, embed_max_queue, 4096,
          "Sequences waiting per model before requests get RESOURCE_EXHAUSTED");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warn or error");
ABSL_FLAG(uint32_t, max_batch_records, 1000, "Records per Upsert request");
ABSL_FLAG(uint32_t, max_top_k, 10000, "Largest Query top_k");
ABSL_FLAG(uint32_t, max_id_bytes, 512, "Longest record id in bytes");
ABSL_FLAG(uint32_t, max_metadata_bytes, 40960, "Largest metadata per record (compact JSON bytes)");
ABSL_FLAG(uint32_t, max_text_bytes, 1 << 20, "Largest record text in bytes");
ABSL_FLAG(uint32_t, max_message_bytes, 64 << 20, "Largest gRPC message in bytes");
ABSL_FLAG(uint32_t, max_fetch_ids, 1000, "Ids per Fetch or Delete request");
ABSL_FLAG(uint32_t, max_sparse_entries, 2048, "Non-zero entries of a sparse vector");
ABSL_FLAG(uint32_t, max_list_limit, 10000, "Largest ListIds page");
ABSL_FLAG(uint32_t, embed_max_inputs, 2048, "Texts per Embed request and documents per Rerank");
ABSL_FLAG(std::string, http_listen, "127.0.0.1:8080",
          "HTTP address (OpenAI-compatible /v1, /healthz, /readyz); empty disables HTTP");
ABSL_FLAG(int, http_threads, 256,
          "HTTP connections served at once (each keep-alive connection holds one)");
ABSL_FLAG(int, http_timeout_s, 60, "HTTP read and write timeout per operation, seconds");
ABSL_FLAG(std::string, access_log, "",
          "Append one JSON line per request (gRPC and HTTP) to this file; empty: off");
ABSL_FLAG(uint32_t, access_log_mb, 256, "Rotate the access log to <file>.1 past this size");
ABSL_FLAG(std::string, audit_log, "",
          "Append each generation request's prompt (or question) and answer, one JSON line per "
          "request, to this file; empty: off. It holds user content: protect it");
ABSL_FLAG(uint32_t, audit_log_mb, 256, "Rotate the audit log to <file>.1 past this size");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate (chain) for TLS on gRPC and HTTP");
ABSL_FLAG(std::string, tls_key, "", "PEM private key for --tls_cert");
ABSL_FLAG(std::string, api_key, "",
          "API keys with read-write access, comma-separated; none (and no --api_key_file): no "
          "key needed");
ABSL_FLAG(std::string, api_key_file, "",
          "File of API keys, one per line: KEY [read-only|rw]; '#' starts a comment");
ABSL_FLAG(uint32_t, max_document_bytes, 4 << 20,
          "Largest document text in bytes (Rag.UpsertDocument)");
ABSL_FLAG(uint32_t, max_document_chunks, 4096, "Most chunks one document may be cut into");
ABSL_FLAG(uint32_t, answer_cache_entries, 10000,
          "Answers Rag.Ask keeps (exact and semantic cache; 0 disables it)");
ABSL_FLAG(uint32_t, answer_cache_mb, 256, "Memory the answer cache may hold (MiB)");
ABSL_FLAG(int64_t, answer_cache_ttl_s, 7 * 24 * 3600, "Seconds a cached answer lives (0: forever)");
ABSL_FLAG(double, semantic_cache_threshold, 0.97,
          "Cosine similarity at which a new question reuses a cached answer (above 1: off)");

namespace {

using quiver::Log;
using quiver::LogLevel;

// Rewrites "--some-flag=..." as "--some_flag=..." so both spellings work.
std::string NormaliseFlag(std::string arg) {
  if (arg.rfind("--", 0) != 0) return arg;
  const size_t end = std::min(arg.find('='), arg.size());
  for (size_t i = 2; i < end; ++i) {
    if (arg[i] == '-') arg[i] = '_';
  }
  return arg;
}

// Reads `name = value` lines into "--name=value" arguments.
bool ReadConfigFile(const std::string& path, std::vector<std::string>* args) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "quiverd: cannot read config file %s\n", path.c_str());
    return false;
  }
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    std::string_view l = quiver::StripWhitespace(line);
    if (l.empty() || l[0] == '#') continue;
    const size_t eq = l.find('=');
    if (eq == std::string_view::npos) {
      std::fprintf(stderr, "quiverd: %s:%d: expected `name = value`\n", path.c_str(), lineno);
      return false;
    }
    std::string name(quiver::StripWhitespace(l.substr(0, eq)));
    std::string value(quiver::StripWhitespace(l.substr(eq + 1)));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    args->push_back(NormaliseFlag(quiver::StrCat("--", name, "=", value)));
  }
  return true;
}

std::vector<std::string> ConfigPathFromArgs(int argc, char** argv) {
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    std::string a = NormaliseFlag(argv[i]);
    if (a.rfind("--config=", 0) == 0) paths.push_back(a.substr(9));
    if (a == "--config" && i + 1 < argc) paths.push_back(argv[i + 1]);
  }
  return paths;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "the Quiver vector database server.\n"
      "Usage: quiverd [--flag=value ...] (flags may be spelled with '-' or '_'; "
      "--config=FILE reads `name = value` lines, the command line wins)");
  // --help lists the flags defined here (by default abseil lists only flags
  // from a file named like the program, so it printed none).
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "server/main.cc");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  usage.normalize_filename = [](absl::string_view file) {
    const size_t at = file.rfind("server/main.cc");
    return std::string(at == absl::string_view::npos ? file : file.substr(at));
  };
  usage.version_string = [] { return std::string("quiverd ") + quiver::server::kVersion + "\n"; };
  absl::SetFlagsUsageConfig(usage);

  // Config file arguments come first so the command line overrides them.
  std::vector<std::string> args = {argv[0]};
  for (const std::string& path : ConfigPathFromArgs(argc, argv)) {
    if (!ReadConfigFile(path, &args)) return 2;
  }
  for (int i = 1; i < argc; ++i) args.push_back(NormaliseFlag(argv[i]));
  std::vector<char*> cargs;
  for (std::string& a : args) cargs.push_back(a.data());
  absl::ParseCommandLine(static_cast<int>(cargs.size()), cargs.data());

  const std::string level = absl::GetFlag(FLAGS_log_level);
  if (level == "debug")
    quiver::SetLogLevel(LogLevel::kDebug);
  else if (level == "info")
    quiver::SetLogLevel(LogLevel::kInfo);
  else if (level == "warn")
    quiver::SetLogLevel(LogLevel::kWarning);
  else if (level == "error")
    quiver::SetLogLevel(LogLevel::kError);
  else {
    std::fprintf(stderr, "quiverd: --log_level must be debug, info, warn or error\n");
    return 2;
  }
  const std::string device = absl::GetFlag(FLAGS_device);
  if (device != "auto" && device != "cpu" && device != "cuda") {
    std::fprintf(stderr, "quiverd: --device must be auto, cpu or cuda\n");
    return 2;
  }
  auto precision = quiver::nn::ParseMatmulPrecision(absl::GetFlag(FLAGS_embed_precision));
  if (!precision.ok()) {
    std::fprintf(stderr, "quiverd: --embed_precision: %s\n",
                 std::string(precision.status().message()).c_str());
    return 2;
  }

  quiver::server::ServerOptions options;
  auto sync = quiver::storage::ParseSyncPolicy(absl::GetFlag(FLAGS_sync));
  if (!sync.ok()) {
    std::fprintf(stderr, "quiverd: --sync: %s\n", std::string(sync.status().message()).c_str());
    return 2;
  }
  options.engine.store.path = absl::GetFlag(FLAGS_data_dir);
  options.engine.store.sync = *sync;
  options.engine.store.batch_sync_interval_ms = absl::GetFlag(FLAGS_sync_interval_ms);
  options.engine.store.block_cache_bytes =
      static_cast<size_t>(std::max(1, absl::GetFlag(FLAGS_block_cache_mb))) << 20;
  options.engine.store.memtable_bytes =
      static_cast<size_t>(std::max(0, absl::GetFlag(FLAGS_memtable_mb))) << 20;
  {
    const int64_t mb = absl::GetFlag(FLAGS_memory_budget_mb);
    if (mb < -1) {
      std::fprintf(stderr, "quiverd: --memory_budget_mb must be -1 (no limit), 0 (auto) or MiB\n");
      return 2;
    }
    options.memory_budget_bytes = mb > 0    ? static_cast<uint64_t>(mb) << 20
                                  : mb == 0 ? quiver::AvailableMemoryBytes() / 5 * 4
                                            : 0;
    auto parts = quiver::ParseMemoryPartLimits(absl::GetFlag(FLAGS_memory_part_budget_mb));
    if (!parts.ok()) {
      std::fprintf(stderr, "quiverd: --memory_part_budget_mb: %s\n",
                   std::string(parts.status().message()).c_str());
      return 2;
    }
    options.memory_part_limits = *parts;
  }
  int search_threads = absl::GetFlag(FLAGS_search_threads);
  if (search_threads <= 0) search_threads = std::max(1u, std::thread::hardware_concurrency());
  options.engine.search_threads = static_cast<size_t>(search_threads);
  options.engine.checkpoint_min_inserts = absl::GetFlag(FLAGS_checkpoint_min_inserts);
  options.engine.index_backlog = absl::GetFlag(FLAGS_index_backlog);
  quiver::db::Limits& lim = options.engine.limits;
  lim.max_batch_records = absl::GetFlag(FLAGS_max_batch_records);
  lim.max_top_k = absl::GetFlag(FLAGS_max_top_k);
  lim.max_id_bytes = absl::GetFlag(FLAGS_max_id_bytes);
  lim.max_metadata_bytes = absl::GetFlag(FLAGS_max_metadata_bytes);
  lim.max_text_bytes = absl::GetFlag(FLAGS_max_text_bytes);
  lim.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  lim.max_fetch_ids = absl::GetFlag(FLAGS_max_fetch_ids);
  lim.max_sparse_entries = absl::GetFlag(FLAGS_max_sparse_entries);
  lim.max_list_limit = absl::GetFlag(FLAGS_max_list_limit);
  lim.max_document_bytes = absl::GetFlag(FLAGS_max_document_bytes);
  lim.max_document_chunks = absl::GetFlag(FLAGS_max_document_chunks);
  {
    const std::string keys = absl::GetFlag(FLAGS_api_key);
    for (const std::string& k :
         std::vector<std::string>(absl::StrSplit(keys, ',', absl::SkipWhitespace()))) {
      options.api_keys.emplace_back(k);
    }
    options.api_key_file = absl::GetFlag(FLAGS_api_key_file);
    options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
    options.access_log = absl::GetFlag(FLAGS_access_log);
    options.access_log_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_access_log_mb)) << 20;
    options.audit_log = absl::GetFlag(FLAGS_audit_log);
    options.audit_log_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_audit_log_mb)) << 20;
    options.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  }
  options.http.listen = absl::GetFlag(FLAGS_http_listen);
  options.http.threads = absl::GetFlag(FLAGS_http_threads);
  options.http.read_timeout_s = options.http.write_timeout_s =
      std::max(1, absl::GetFlag(FLAGS_http_timeout_s));
  options.http.max_body_bytes = lim.max_message_bytes;
  options.answer_cache.max_entries = absl::GetFlag(FLAGS_answer_cache_entries);
  options.answer_cache.max_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_answer_cache_mb)) << 20;
  options.answer_cache.ttl_seconds = absl::GetFlag(FLAGS_answer_cache_ttl_s);
  options.answer_cache.semantic_threshold =
      static_cast<float>(absl::GetFlag(FLAGS_semantic_cache_threshold));
  options.listen = absl::StrSplit(absl::GetFlag(FLAGS_listen), ',', absl::SkipWhitespace());
  options.rpc_threads = absl::GetFlag(FLAGS_threads);
  options.model_rpc_threads = absl::GetFlag(FLAGS_model_threads);
  options.max_queued_calls = absl::GetFlag(FLAGS_max_queued_calls);
  options.embed.device = device;
  options.embed.precision = *precision;
  options.embed.embed_model_dir = absl::GetFlag(FLAGS_embed_model);
  options.embed.rerank_model_dir = absl::GetFlag(FLAGS_rerank_model);
  options.embed.worker.max_batch_tokens = absl::GetFlag(FLAGS_embed_max_batch_tokens);
  options.embed.worker.max_wait_us = absl::GetFlag(FLAGS_embed_max_wait_us);
  options.embed.worker.max_queue = absl::GetFlag(FLAGS_embed_max_queue);
  options.embed.max_inputs = absl::GetFlag(FLAGS_embed_max_inputs);
  options.llm.device = device;
  options.llm.model.path = absl::GetFlag(FLAGS_llm_model);
  options.llm.model.tokenizer_path = absl::GetFlag(FLAGS_llm_tokenizer);
  options.llm.model.max_context = std::max(0, absl::GetFlag(FLAGS_llm_max_context));
  options.llm.model.int8_dots = absl::GetFlag(FLAGS_llm_int8_dots);
  options.llm.scheduler.max_seqs = std::max(1, absl::GetFlag(FLAGS_llm_max_seqs));
  options.llm.scheduler.prefix_cache = absl::GetFlag(FLAGS_llm_prefix_cache);
  options.llm.scheduler.max_batch_tokens = std::max(1, absl::GetFlag(FLAGS_llm_max_batch_tokens));
  options.llm.scheduler.kv_cache_bytes =
      static_cast<size_t>(std::max(1, absl::GetFlag(FLAGS_llm_kv_cache_mb))) << 20;

  // Shutdown signals go through a pipe to one waiting thread. (Blocking
  // them instead would not cover threads libraries start before main, such
  // as OpenBLAS's pool.)
  if (pipe2(g_signal_pipe, O_CLOEXEC) != 0) {
    std::fprintf(stderr, "quiverd: cannot create the signal pipe\n");
    return 1;
  }
  struct sigaction sa = {};
  sa.sa_handler = OnShutdownSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  Log(LogLevel::kInfo, "starting",
      {{"version", quiver::server::kVersion},
       {"data_dir", options.engine.store.path},
       {"sync", absl::GetFlag(FLAGS_sync)},
       {"device", device}});
  if (const std::string restore = absl::GetFlag(FLAGS_restore); !restore.empty()) {
    const std::string snapshot =
        quiver::storage::ResolveSnapshot(restore, options.engine.store.path);
    absl::Status s = quiver::storage::RestoreSnapshot(snapshot, options.engine.store.path,
                                                      absl::GetFlag(FLAGS_restore_overwrite));
    if (!s.ok()) {
      Log(LogLevel::kError, "cannot restore the snapshot",
          {{"snapshot", snapshot}, {"error", s.ToString()}});
      return 1;
    }
  }
  auto server = quiver::server::Server::Start(options);
  if (!server.ok()) {
    Log(LogLevel::kError, "failed to start", {{"error", server.status().ToString()}});
    return 1;
  }
  std::vector<std::string> bound;
  for (size_t i = 0; i < options.listen.size(); ++i) {
    const std::string& addr = options.listen[i];
    bound.push_back(
        quiver::StrCat(addr.substr(0, addr.rfind(':')), ":", (*server)->bound_ports()[i]));
  }
  const std::string port_file = absl::GetFlag(FLAGS_port_file);
  if (!port_file.empty()) {
    // Write then rename, so a reader never sees a partial file.
    const std::string tmp = port_file + ".tmp";
    std::ofstream(tmp) << (*server)->bound_ports()[0] << "\n" << (*server)->http_port() << "\n";
    std::rename(tmp.c_str(), port_file.c_str());
  }
  Log(LogLevel::kInfo, "serving",
      {{"grpc", absl::StrJoin(bound, ",")},
       {"http", options.http.listen.empty()
                    ? std::string("off")
                    : quiver::StrCat(options.http.listen.substr(0, options.http.listen.rfind(':')),
                                     ":", (*server)->http_port())},
       {"kernels", quiver::ann::BestKernels().name}});

  std::thread signal_waiter([&] {
    char c = 0;
    while (read(g_signal_pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
    const int sig = c;
    Log(LogLevel::kInfo, "signal received", {{"signal", sig == SIGINT ? "SIGINT" : "SIGTERM"}});
    (*server)->Shutdown(absl::Seconds(10));
  });
  (*server)->Wait();
  signal_waiter.join();
  server->reset();
  Log(LogLevel::kInfo, "stopped");
  return 0;
}
