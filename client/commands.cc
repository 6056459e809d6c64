#include "client/commands.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "client/args.h"
#include "client/import.h"
#include "client/ingest.h"
#include "client/output.h"
#include "common/json.h"
#include "common/strings.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "quiver/v1/admin.grpc.pb.h"
#include "quiver/v1/collections.grpc.pb.h"
#include "quiver/v1/models.grpc.pb.h"
#include "quiver/v1/points.grpc.pb.h"
#include "quiver/v1/rag.grpc.pb.h"
#include "quiver/v1/search.grpc.pb.h"
#include "storage/restore.h"

namespace quiver::client {
namespace {

constexpr char kUsage[] =
    R"(usage: quiver [--addr=HOST:PORT] [--json] [--timeout=SECONDS] COMMAND ...

Global options:
  --addr       server address (default $QUIVER_ADDR or 127.0.0.1:50051)
  --json       print responses as JSON instead of tables
  --timeout    seconds to wait for each call (default 30)
  --api-key    the server's API key (default $QUIVER_API_KEY)
  --tls        connect with TLS (system roots); --ca-cert=FILE trusts FILE instead

Commands:
  health                                   server health
  info                                     version, limits, settings
  collections create NAME (--dimension=N | --embedding-model=MODEL) [--metric=cosine|dot|l2]
                     [--index=flat|hnsw [--m=16 --ef-construction=200 --ef-search=64]
                       [--quantization=none|sq8|binary [--oversampling=3] [--no-rescore]
                        [--full-vectors-on-disk]]]
                     [--text-analyzer=standard|english|cjk]   (enables BM25 text search)
                     [--chunk-tokens=256 --overlap-tokens=32]  (documents, with a model)
  collections list
  collections get NAME
  collections delete NAME
  import COLLECTION FILE.jsonl [--namespace=NS] [--batch=500] [--parallel=4]
                               [--resume] [--progress=auto|always|never]
      Each line is a record: {"id": "a", "values": [...], "metadata": {...},
      "sparse_values": {"indices": [...], "values": [...]}, "text": "..."}
  query COLLECTION [--vector='[0.1, ...]' | --id=ID] [--sparse='{"indices": [..], "values": [..]}']
                   [--text=WORDS] [--top-k=10] [--filter=JSON]
                   [--namespace=NS] [--include-values] [--include-metadata] [--explain]
                   [--ef-search=N] [--exact]
                   several of vector/id, sparse and text make a hybrid query, fused with
                   [--fusion=rrf|weighted] [--rrf-k=60] [--candidates=N]
                   [--dense-weight=W] [--sparse-weight=W] [--text-weight=W]
  fetch COLLECTION ID... [--namespace=NS]
  embed TEXT... [--model=NAME] [--normalize]      embeddings from the server's model
  rerank QUERY DOCUMENT... [--top-n=N] [--model=NAME]   cross-encoder relevance, best first
  models                                   the loaded models
  generate PROMPT [--max-tokens=256] [--temperature=0] [--top-p=P] [--top-k=K]
                  [--repetition-penalty=R] [--seed=S] [--stop=TEXT]
                  [--chat [--system=TEXT]]  streams generated text as it is produced;
                                           --chat sends PROMPT as a user message
                                           through the model's chat template
  ingest COLLECTION PATH... [--namespace=NS] [--parallel=4] [--resume]
                            [--progress=auto|always|never]
      Documents: .txt and .md files (directories searched recursively; the id is
      the path relative to the directory named) and .jsonl lines of
      {"id": "...", "text": "...", "metadata": {...}}; --resume skips the documents
      an interrupted run acknowledged (recorded in PATH.quiver-ingest-COLLECTION)
  ask COLLECTION QUESTION [--top-k=5] [--candidates=N] [--filter=JSON] [--rerank]
                          [--mode=auto|dense|text|hybrid] [--namespace=NS] [--no-cache]
                          [--max-tokens=256] [--temperature=0] [--seed=S] [--system=TEXT]
                          [--template='...{context}...{question}...'] [--model=LLM]
      streams the numbered sources, then the answer, then usage and timings
  documents get COLLECTION ID [--namespace=NS]       a document's whole text
  documents list COLLECTION [--prefix=P] [--limit=100] [--token=T] [--namespace=NS]
  documents delete COLLECTION ID [--namespace=NS]    the document and all its chunks
  update COLLECTION ID [--values=JSON] [--set-metadata=JSON] [--text=TEXT] [--namespace=NS]
  delete COLLECTION (ID... | --filter=JSON | --all) [--namespace=NS]
  list-ids COLLECTION [--prefix=P] [--limit=100] [--token=T] [--namespace=NS]
  stats COLLECTION [--filter=JSON]
  namespaces COLLECTION
  snapshot [create] [NAME]                  writes <data_dir>/snapshots/NAME on the server
  snapshot list                             the server's snapshots: name, time, size, path
  snapshot restore SNAPSHOT --data-dir=DIR [--overwrite]
      offline, with no server running on DIR: replaces DIR's contents with SNAPSHOT (a
      path, or a name under DIR/snapshots); start quiverd on DIR afterwards
      (quiverd --restore=SNAPSHOT does the same at start-up)
)";

const std::set<std::string> kKnownOptions = {"addr",
                                             "api-key",
                                             "tls",
                                             "ca-cert",
                                             "json",
                                             "data-dir",
                                             "overwrite",
                                             "timeout",
                                             "help",
                                             "dimension",
                                             "metric",
                                             "index",
                                             "namespace",
                                             "batch",
                                             "parallel",
                                             "resume",
                                             "progress",
                                             "vector",
                                             "id",
                                             "top-k",
                                             "filter",
                                             "include-values",
                                             "include-metadata",
                                             "explain",
                                             "exact",
                                             "values",
                                             "set-metadata",
                                             "text",
                                             "all",
                                             "prefix",
                                             "limit",
                                             "token",
                                             "m",
                                             "ef-construction",
                                             "ef-search",
                                             "quantization",
                                             "oversampling",
                                             "no-rescore",
                                             "full-vectors-on-disk",
                                             "text-analyzer",
                                             "sparse",
                                             "fusion",
                                             "rrf-k",
                                             "candidates",
                                             "dense-weight",
                                             "sparse-weight",
                                             "text-weight",
                                             "model",
                                             "normalize",
                                             "top-n",
                                             "max-tokens",
                                             "temperature",
                                             "top-p",
                                             "top-k",
                                             "repetition-penalty",
                                             "seed",
                                             "stop",
                                             "chat",
                                             "system",
                                             "embedding-model",
                                             "chunk-tokens",
                                             "overlap-tokens",
                                             "rerank",
                                             "no-cache",
                                             "mode",
                                             "template"};

const std::set<std::string> kBooleans = {
    "json",  "resume",    "include-values", "include-metadata", "explain",  "all", "help",
    "exact", "normalize", "chat",           "rerank",           "no-cache", "tls", "overwrite"};

struct UsageError {
  std::string message;
};

class Cli {
 public:
  explicit Cli(const Args& args) : args_(args) {}

  int Dispatch() {
    const auto& pos = args_.positional();
    if (pos.empty() || pos[0] == "help" || args_.Has("help")) {
      std::fputs(kUsage, stdout);
      return pos.empty() && !args_.Has("help") ? 2 : 0;
    }
    if (auto unknown = args_.Unknown(kKnownOptions); !unknown.empty()) {
      return Usage(StrCat("unknown option --", unknown[0]));
    }
    std::string addr = args_.Get("addr");
    if (addr.empty()) {
      const char* env = std::getenv("QUIVER_ADDR");
      addr = env != nullptr && *env != '\0' ? env : "127.0.0.1:50051";
    }
    auto timeout = args_.GetInt("timeout", 30, 1, 86400);
    if (!timeout.ok()) return Usage(std::string(timeout.status().message()));
    timeout_ = absl::Seconds(*timeout);
    json_ = args_.Has("json");
    api_key_ = args_.Get("api-key");
    if (const char* env = std::getenv("QUIVER_API_KEY"); api_key_.empty() && env != nullptr) {
      api_key_ = env;
    }
    grpc::ChannelArguments ch_args;
    ch_args.SetMaxReceiveMessageSize(256 << 20);
    ch_args.SetMaxSendMessageSize(256 << 20);
    std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
    if (args_.Has("tls") || args_.Has("ca-cert")) {
      grpc::SslCredentialsOptions ssl;
      if (args_.Has("ca-cert")) {
        std::ifstream in(args_.Get("ca-cert"), std::ios::binary);
        if (!in) return Usage(StrCat("cannot read --ca-cert ", args_.Get("ca-cert")));
        std::stringstream ss;
        ss << in.rdbuf();
        ssl.pem_root_certs = ss.str();
      }
      creds = grpc::SslCredentials(ssl);
    }
    channel_ = grpc::CreateCustomChannel(addr, creds, ch_args);

    const std::string& cmd = pos[0];
    static const std::map<std::string, std::function<int(Cli*)>> kCommands = {
        {"health", &Cli::Health},
        {"info", &Cli::Info},
        {"collections", &Cli::Collections},
        {"import", &Cli::Import},
        {"query", &Cli::Query},
        {"fetch", &Cli::Fetch},
        {"update", &Cli::Update},
        {"delete", &Cli::Delete},
        {"list-ids", &Cli::ListIds},
        {"stats", &Cli::Stats},
        {"namespaces", &Cli::Namespaces},
        {"snapshot", &Cli::Snapshot},
        {"embed", &Cli::Embed},
        {"rerank", &Cli::Rerank},
        {"models", &Cli::Models},
        {"generate", &Cli::Generate},
        {"ingest", &Cli::Ingest},
        {"ask", &Cli::Ask},
        {"documents", &Cli::Documents},
    };
    auto it = kCommands.find(cmd);
    if (it == kCommands.end()) return Usage(StrCat("unknown command \"", cmd, "\""));
    return it->second(this);
  }

 private:
  static int Usage(const std::string& message) {
    std::fprintf(stderr, "quiver: %s\nRun `quiver help` for usage.\n", message.c_str());
    return 2;
  }

  void Context(grpc::ClientContext* ctx) const {
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
    if (!api_key_.empty()) ctx->AddMetadata("api-key", api_key_);
  }

  static int Failed(const grpc::Status& s) {
    static const char* const kNames[] = {"OK",
                                         "CANCELLED",
                                         "UNKNOWN",
                                         "INVALID_ARGUMENT",
                                         "DEADLINE_EXCEEDED",
                                         "NOT_FOUND",
                                         "ALREADY_EXISTS",
                                         "PERMISSION_DENIED",
                                         "RESOURCE_EXHAUSTED",
                                         "FAILED_PRECONDITION",
                                         "ABORTED",
                                         "OUT_OF_RANGE",
                                         "UNIMPLEMENTED",
                                         "INTERNAL",
                                         "UNAVAILABLE",
                                         "DATA_LOSS",
                                         "UNAUTHENTICATED"};
    const int code = static_cast<int>(s.error_code());
    std::fprintf(stderr, "error: %s: %s\n", code >= 0 && code <= 16 ? kNames[code] : "?",
                 s.error_message().c_str());
    return 1;
  }

  // Positional argument i, or a usage error.
  bool Positional(size_t i, const char* what, std::string* out) const {
    if (args_.positional().size() <= i) {
      std::fprintf(stderr, "quiver: %s is missing\nRun `quiver help` for usage.\n", what);
      return false;
    }
    *out = args_.positional()[i];
    return true;
  }

  // Parses --name as a JSON object into a Struct.
  bool StructOption(const std::string& name, google::protobuf::Struct* out, bool* present) const {
    *present = args_.Has(name);
    if (!*present) return true;
    auto st = google::protobuf::util::JsonStringToMessage(args_.Get(name), out);
    if (!st.ok()) {
      Usage(StrCat("--", name, " must be a JSON object: ", std::string(st.message())));
      return false;
    }
    return true;
  }

  // --fusion, --rrf-k, --candidates and the per-list weights.
  bool HybridOptions(v1::HybridOptions* h) const {
    const std::string fusion = args_.Get("fusion");
    if (fusion == "weighted") {
      h->set_fusion(v1::HybridOptions::FUSION_WEIGHTED);
    } else if (fusion == "rrf") {
      h->set_fusion(v1::HybridOptions::FUSION_RRF);
    } else if (!fusion.empty()) {
      Usage("--fusion must be rrf or weighted");
      return false;
    }
    auto candidates = args_.GetInt("candidates", 0, 0, 1 << 30);
    if (!candidates.ok()) {
      Usage(std::string(candidates.status().message()));
      return false;
    }
    h->set_candidate_depth(static_cast<uint32_t>(*candidates));
    return FloatOptions(h, {{"rrf-k", &v1::HybridOptions::set_rrf_k},
                            {"dense-weight", &v1::HybridOptions::set_dense_weight},
                            {"sparse-weight", &v1::HybridOptions::set_sparse_weight},
                            {"text-weight", &v1::HybridOptions::set_text_weight}});
  }

  // Sets each given --name=NUMBER on `msg` through its setter; false (after
  // printing usage) when one is not a number.
  template <typename Msg>
  bool FloatOptions(
      Msg* msg, std::initializer_list<std::pair<const char*, void (Msg::*)(float)>> options) const {
    for (const auto& [name, set] : options) {
      if (!args_.Has(name)) continue;
      float v;
      if (!absl::SimpleAtof(std::string(args_.Get(name)), &v)) {
        Usage(StrCat("--", name, " must be a number"));
        return false;
      }
      (msg->*set)(v);
    }
    return true;
  }

  bool FloatsOption(const std::string& name, google::protobuf::RepeatedField<float>* out) const {
    auto j = ParseJson(args_.Get(name));
    if (!j.ok() || !j->is_array()) {
      Usage(StrCat("--", name, " must be a JSON array of numbers"));
      return false;
    }
    for (const Json& e : j->as_array()) {
      if (!e.is_number()) {
        Usage(StrCat("--", name, " must be a JSON array of numbers"));
        return false;
      }
      out->Add(static_cast<float>(e.as_number()));
    }
    return true;
  }

  void Print(const std::string& s) const { std::fwrite(s.data(), 1, s.size(), stdout); }

  // --max-tokens, --seed, --temperature, --top-p, --repetition-penalty,
  // --stop (and --top-k, which ask uses for sources).
  bool SamplingOptions(v1::SamplingParams* sp, bool with_top_k) const {
    auto max_tokens = args_.GetInt("max-tokens", 256, 1, 1 << 20);
    auto top_k = args_.GetInt(with_top_k ? "top-k" : "", 0, 0, 1 << 20);
    auto seed = args_.GetInt("seed", 0, 0, INT64_MAX);
    for (const auto* r : {&max_tokens, &top_k, &seed}) {
      if (!r->ok()) {
        Usage(std::string(r->status().message()));
        return false;
      }
    }
    sp->set_max_tokens(static_cast<uint32_t>(*max_tokens));
    sp->set_top_k(static_cast<uint32_t>(*top_k));
    sp->set_seed(static_cast<uint64_t>(*seed));
    if (!FloatOptions(sp, {{"temperature", &v1::SamplingParams::set_temperature},
                           {"top-p", &v1::SamplingParams::set_top_p},
                           {"repetition-penalty", &v1::SamplingParams::set_repetition_penalty}})) {
      return false;
    }
    if (args_.Has("stop")) sp->add_stop(args_.Get("stop"));
    return true;
  }

  // Calls one unary RPC; on success prints the response as JSON (--json) or
  // through `human`. Returns the exit code.
  template <typename Stub, typename Req, typename Resp>
  int Call(Stub* stub, grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
           const Req& req, const std::function<void(const Resp&)>& human) {
    grpc::ClientContext ctx;
    Context(&ctx);
    Resp resp;
    grpc::Status s = (stub->*method)(&ctx, req, &resp);
    if (!s.ok()) return Failed(s);
    if (json_) {
      Print(ToJson(resp) + "\n");
    } else {
      human(resp);
    }
    return 0;
  }

  int Health() {
    auto stub = v1::Admin::NewStub(channel_);
    return Call<v1::Admin::Stub, v1::HealthRequest, v1::HealthResponse>(
        stub.get(), &v1::Admin::Stub::Health, v1::HealthRequest(),
        [&](const v1::HealthResponse& resp) {
          Print(StrCat("serving: ", resp.serving() ? "yes" : "no", "\n"));
          for (const std::string& d : resp.damaged_collections()) {
            Print(StrCat("damaged collection: ", d, "\n"));
          }
        });
  }

  int Info() {
    auto stub = v1::Admin::NewStub(channel_);
    return Call<v1::Admin::Stub, v1::ServerInfoRequest, v1::ServerInfoResponse>(
        stub.get(), &v1::Admin::Stub::ServerInfo, v1::ServerInfoRequest(),
        [&](const v1::ServerInfoResponse& resp) { PrintInfo(resp); });
  }

  void PrintInfo(const v1::ServerInfoResponse& resp) const {
    Table t({"SETTING", "VALUE"});
    t.AddRow({"version", resp.version()});
    t.AddRow({"data_dir", resp.data_dir()});
    t.AddRow({"uptime_s", StrCat(resp.uptime_ms() / 1000)});
    t.AddRow({"sync_policy", resp.sync_policy()});
    t.AddRow({"cpu_kernels", resp.cpu_kernels()});
    t.AddRow({"cuda_compiled", resp.cuda_compiled() ? "yes" : "no"});
    t.AddRow({"max_dimension", StrCat(resp.limits().max_dimension())});
    t.AddRow({"max_batch_records", StrCat(resp.limits().max_batch_records())});
    t.AddRow({"max_top_k", StrCat(resp.limits().max_top_k())});
    t.AddRow({"max_metadata_bytes", StrCat(resp.limits().max_metadata_bytes())});
    t.AddRow({"max_message_bytes", StrCat(resp.limits().max_message_bytes())});
    const v1::MemoryBudget& m = resp.memory();
    t.AddRow({"memory_budget",
              m.budget_bytes() > 0 ? Megabytes(m.budget_bytes()) : std::string("no limit")});
    t.AddRow({"memory_used", Megabytes(m.used().total_bytes())});
    for (const auto& [part, bytes] :
         std::map<std::string, uint64_t>(m.used().parts().begin(), m.used().parts().end())) {
      auto limit = m.part_limit_bytes().find(part);
      t.AddRow({"memory_used." + part,
                StrCat(Megabytes(bytes), limit == m.part_limit_bytes().end()
                                             ? std::string()
                                             : StrCat(" of ", Megabytes(limit->second)))});
    }
    t.AddRow({"memory_resident", Megabytes(m.resident_bytes())});
    Print(t.Render());
  }

  static std::string Megabytes(uint64_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.1f MB", static_cast<double>(bytes) / (1 << 20));
    return buf;
  }

  static std::string MetricName(v1::Metric m) {
    switch (m) {
      case v1::METRIC_COSINE:
        return "cosine";
      case v1::METRIC_DOT:
        return "dot";
      case v1::METRIC_L2:
        return "l2";
      default:
        return "?";
    }
  }

  void PrintCollections(const std::vector<const v1::CollectionInfo*>& infos) const {
    Table t({"NAME", "DIMENSION", "METRIC", "INDEX", "RECORDS", "NAMESPACES"});
    for (const v1::CollectionInfo* c : infos) {
      const auto& index = c->config().index();
      t.AddRow({c->config().name(), StrCat(c->config().dimension()),
                MetricName(c->config().metric()),
                !index.has_hnsw()                                        ? "flat"
                : index.hnsw().quantization() == v1::QUANTIZATION_SQ8    ? "hnsw+sq8"
                : index.hnsw().quantization() == v1::QUANTIZATION_BINARY ? "hnsw+binary"
                                                                         : "hnsw",
                StrCat(c->record_count()), StrCat(c->namespace_count())});
    }
    Print(t.Render());
  }

  int Collections() {
    std::string sub;
    if (!Positional(1, "collections subcommand (create, list, get, delete)", &sub)) return 2;
    auto stub = v1::Collections::NewStub(channel_);
    auto print_one = [&](const auto& resp) { PrintCollections({&resp.collection()}); };
    if (sub == "list") {
      return Call<v1::Collections::Stub, v1::ListCollectionsRequest, v1::ListCollectionsResponse>(
          stub.get(), &v1::Collections::Stub::List, v1::ListCollectionsRequest(),
          [&](const v1::ListCollectionsResponse& resp) {
            std::vector<const v1::CollectionInfo*> infos;
            for (const auto& c : resp.collections()) infos.push_back(&c);
            PrintCollections(infos);
          });
    }
    std::string name;
    if (!Positional(2, "collection name", &name)) return 2;
    if (sub == "create") {
      v1::CreateCollectionRequest req;
      v1::CollectionConfig* c = req.mutable_config();
      c->set_name(name);
      auto dim = args_.GetInt("dimension", 0, 1, 1 << 30);
      if (!dim.ok()) return Usage(std::string(dim.status().message()));
      const std::string model = args_.Get("embedding-model");
      if (*dim == 0 && model.empty()) return Usage("--dimension or --embedding-model is required");
      c->set_dimension(static_cast<uint32_t>(*dim));  // 0: the model's.
      if (!model.empty()) {
        auto* e = c->mutable_embedding();
        e->set_model(model);
        auto chunk = args_.GetInt("chunk-tokens", 0, 1, 1 << 20);
        auto overlap = args_.GetInt("overlap-tokens", 0, 0, 1 << 20);
        if (!chunk.ok()) return Usage(std::string(chunk.status().message()));
        if (!overlap.ok()) return Usage(std::string(overlap.status().message()));
        e->set_chunk_tokens(static_cast<uint32_t>(*chunk));
        if (args_.Has("overlap-tokens")) e->set_overlap_tokens(static_cast<uint32_t>(*overlap));
      } else if (args_.Has("chunk-tokens") || args_.Has("overlap-tokens")) {
        return Usage("--chunk-tokens and --overlap-tokens need --embedding-model");
      }
      const std::string metric = args_.Get("metric", "cosine");
      if (metric == "cosine")
        c->set_metric(v1::METRIC_COSINE);
      else if (metric == "dot")
        c->set_metric(v1::METRIC_DOT);
      else if (metric == "l2" || metric == "euclidean")
        c->set_metric(v1::METRIC_L2);
      else
        return Usage("--metric must be cosine, dot or l2");
      if (args_.Has("text-analyzer")) {
        c->mutable_text()->set_enabled(true);
        c->mutable_text()->set_analyzer(args_.Get("text-analyzer"));
      }
      const std::string index = args_.Get("index", "flat");
      if (index == "hnsw") {
        auto* h = c->mutable_index()->mutable_hnsw();
        auto m = args_.GetInt("m", 16, 2, 128);
        auto efc = args_.GetInt("ef-construction", 200, 1, 4096);
        auto efs = args_.GetInt("ef-search", 64, 1, 10000);
        for (const auto* v : {&m, &efc, &efs}) {
          if (!v->ok()) return Usage(std::string(v->status().message()));
        }
        h->set_m(static_cast<uint32_t>(*m));
        h->set_ef_construction(static_cast<uint32_t>(*efc));
        h->set_ef_search(static_cast<uint32_t>(*efs));
        const std::string quantization = args_.Get("quantization", "none");
        if (quantization == "sq8") {
          h->set_quantization(v1::QUANTIZATION_SQ8);
        } else if (quantization == "binary") {
          h->set_quantization(v1::QUANTIZATION_BINARY);
        } else if (quantization != "none") {
          return Usage("--quantization must be none, sq8 or binary");
        }
        if (args_.Has("oversampling")) {
          const std::string v = args_.Get("oversampling");
          char* end = nullptr;
          const float f = std::strtof(v.c_str(), &end);
          if (v.empty() || *end != '\0' || !(f >= 1 && f <= 100)) {
            return Usage("--oversampling must be a number in 1..100");
          }
          h->set_oversampling(f);
        }
        if (args_.Has("no-rescore")) h->set_rescore(false);
        if (args_.Has("full-vectors-on-disk")) h->set_full_vectors_on_disk(true);
      } else if (index == "flat") {
        c->mutable_index()->mutable_flat();
      } else {
        return Usage("--index must be flat or hnsw");
      }
      if (index != "hnsw" && (args_.Has("quantization") || args_.Has("oversampling") ||
                              args_.Has("no-rescore") || args_.Has("full-vectors-on-disk"))) {
        return Usage(
            "--quantization, --oversampling, --no-rescore and --full-vectors-on-disk "
            "need --index=hnsw");
      }
      return Call<v1::Collections::Stub, v1::CreateCollectionRequest, v1::CreateCollectionResponse>(
          stub.get(), &v1::Collections::Stub::Create, req, print_one);
    }
    if (sub == "get") {
      v1::GetCollectionRequest req;
      req.set_name(name);
      return Call<v1::Collections::Stub, v1::GetCollectionRequest, v1::GetCollectionResponse>(
          stub.get(), &v1::Collections::Stub::Get, req, print_one);
    }
    if (sub == "delete") {
      v1::DeleteCollectionRequest req;
      req.set_name(name);
      return Call<v1::Collections::Stub, v1::DeleteCollectionRequest, v1::DeleteCollectionResponse>(
          stub.get(), &v1::Collections::Stub::Delete, req,
          [&](const v1::DeleteCollectionResponse&) {
            Print(StrCat("deleted collection ", name, "\n"));
          });
    }
    return Usage(StrCat("unknown collections subcommand \"", sub, "\""));
  }

  int Import() {
    ImportOptions o;
    if (!Positional(1, "collection", &o.collection) || !Positional(2, "JSONL file", &o.path)) {
      return 2;
    }
    o.ns = args_.Get("namespace");
    auto batch = args_.GetInt("batch", 500, 1, 100000);
    auto parallel = args_.GetInt("parallel", 4, 1, 64);
    if (!batch.ok()) return Usage(std::string(batch.status().message()));
    if (!parallel.ok()) return Usage(std::string(parallel.status().message()));
    o.batch_records = static_cast<int>(*batch);
    o.parallel = static_cast<int>(*parallel);
    o.resume = args_.Has("resume");
    o.rpc_timeout = std::max(timeout_, absl::Seconds(60));
    o.api_key = api_key_;
    const std::string progress = args_.Get("progress", "auto");
    if (progress == "always")
      o.progress = ImportOptions::Progress::kAlways;
    else if (progress == "never")
      o.progress = ImportOptions::Progress::kNever;
    else if (progress != "auto")
      return Usage("--progress must be auto, always or never");
    auto stub = v1::Points::NewStub(channel_);
    auto result = ImportJsonl(stub.get(), o);
    if (!result.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(result.status().message()).c_str());
      return 1;
    }
    const double rate = result->records / std::max(1e-9, result->seconds);
    if (json_) {
      Print(StrCat("{\"imported\":", result->records, ",\"skipped\":", result->skipped_records,
                   ",\"seconds\":", result->seconds, ",\"records_per_second\":", rate, "}\n"));
    } else {
      char line[256];
      std::snprintf(line, sizeof(line),
                    "imported %llu records into %s in %.2f s (%.0f records/s)\n",
                    static_cast<unsigned long long>(result->records), o.collection.c_str(),
                    result->seconds, rate);
      Print(line);
    }
    return 0;
  }

  int Query() {
    v1::QueryRequest req;
    std::string collection;
    if (!Positional(1, "collection", &collection)) return 2;
    req.set_collection(collection);
    req.set_namespace_(args_.Get("namespace"));
    auto top_k = args_.GetInt("top-k", 10, 1, 1 << 30);
    if (!top_k.ok()) return Usage(std::string(top_k.status().message()));
    req.set_top_k(static_cast<uint32_t>(*top_k));
    if (args_.Has("vector") && args_.Has("id")) return Usage("give --vector or --id, not both");
    if (!args_.Has("vector") && !args_.Has("id") && !args_.Has("text") && !args_.Has("sparse")) {
      return Usage("give at least one of --vector, --id, --sparse or --text");
    }
    req.set_text(args_.Get("text"));
    if (args_.Has("sparse")) {
      auto st = google::protobuf::util::JsonStringToMessage(args_.Get("sparse"),
                                                            req.mutable_sparse_vector());
      if (!st.ok()) {
        return Usage(StrCat("--sparse must be {\"indices\": [...], \"values\": [...]}: ",
                            std::string(st.message())));
      }
    }
    if (!HybridOptions(req.mutable_hybrid())) return 2;
    if (req.hybrid().ByteSizeLong() == 0) req.clear_hybrid();
    if (args_.Has("vector") && !FloatsOption("vector", req.mutable_vector())) return 2;
    req.set_id(args_.Get("id"));
    bool has_filter;
    if (!StructOption("filter", req.mutable_filter(), &has_filter)) return 2;
    if (!has_filter) req.clear_filter();
    req.set_include_values(args_.Has("include-values"));
    req.set_include_metadata(args_.Has("include-metadata"));
    req.set_explain(args_.Has("explain"));
    req.set_exact(args_.Has("exact"));
    auto ef = args_.GetInt("ef-search", 0, 0, 10000);
    if (!ef.ok()) return Usage(std::string(ef.status().message()));
    req.set_ef_search(static_cast<uint32_t>(*ef));
    auto stub = v1::Search::NewStub(channel_);
    return Call<v1::Search::Stub, v1::QueryRequest, v1::QueryResponse>(
        stub.get(), &v1::Search::Stub::Query, req, [&](const v1::QueryResponse& resp) {
          std::vector<std::string> header = {"RANK", "ID", "SCORE"};
          if (req.explain()) header.push_back("EXPLAIN");
          if (req.include_values()) header.push_back("VALUES");
          if (req.include_metadata()) header.push_back("METADATA");
          Table t(header);
          int rank = 0;
          for (const v1::ScoredRecord& m : resp.matches()) {
            std::vector<std::string> row = {StrCat(++rank), m.id(), StrCat(m.score())};
            if (req.explain()) {
              std::string parts;
              for (const v1::ScoreComponent& c : m.explanation()) {
                StrAppend(&parts, parts.empty() ? "" : " ", c.source(), "#", c.rank(), "=",
                          c.score());
              }
              row.push_back(parts);
            }
            if (req.include_values()) row.push_back(PreviewFloats(m.values()));
            if (req.include_metadata()) row.push_back(StructToCompactJson(m.metadata()));
            t.AddRow(std::move(row));
          }
          Print(t.Render());
        });
  }

  int Embed() {
    v1::EmbedRequest req;
    if (args_.positional().size() < 2) return Usage("embed needs at least one text");
    for (size_t i = 1; i < args_.positional().size(); ++i) req.add_inputs(args_.positional()[i]);
    req.set_model(args_.Get("model"));
    req.set_normalize(args_.Has("normalize"));
    auto stub = v1::Models::NewStub(channel_);
    return Call<v1::Models::Stub, v1::EmbedRequest, v1::EmbedResponse>(
        stub.get(), &v1::Models::Stub::Embed, req, [&](const v1::EmbedResponse& resp) {
          Table t({"INPUT", "TOKENS", "DIM", "VALUES"});
          for (int i = 0; i < resp.embeddings_size(); ++i) {
            const v1::Embedding& e = resp.embeddings(i);
            t.AddRow({StrCat(i), StrCat(e.token_count()), StrCat(e.values_size()),
                      PreviewFloats(e.values(), 6)});
          }
          Print(t.Render());
        });
  }

  int Rerank() {
    v1::RerankRequest req;
    if (args_.positional().size() < 3)
      return Usage("rerank needs a query and at least one document");
    req.set_query(args_.positional()[1]);
    for (size_t i = 2; i < args_.positional().size(); ++i) req.add_documents(args_.positional()[i]);
    req.set_model(args_.Get("model"));
    auto top_n = args_.GetInt("top-n", 0, 0, 1 << 20);
    if (!top_n.ok()) return Usage(std::string(top_n.status().message()));
    req.set_top_n(static_cast<uint32_t>(*top_n));
    req.set_return_documents(true);
    auto stub = v1::Models::NewStub(channel_);
    return Call<v1::Models::Stub, v1::RerankRequest, v1::RerankResponse>(
        stub.get(), &v1::Models::Stub::Rerank, req, [&](const v1::RerankResponse& resp) {
          Table t({"RANK", "INDEX", "SCORE", "DOCUMENT"});
          int rank = 0;
          for (const v1::RerankResult& r : resp.results()) {
            t.AddRow({StrCat(++rank), StrCat(r.index()), StrCat(r.score()), r.document()});
          }
          Print(t.Render());
        });
  }

  int Generate() {
    v1::GenerateRequest req;
    if (args_.positional().size() != 2) return Usage("generate needs one PROMPT (quote it)");
    if (args_.Has("chat")) {
      if (args_.Has("system")) {
        v1::ChatMessage* sys = req.add_messages();
        sys->set_role("system");
        sys->set_content(args_.Get("system"));
      }
      v1::ChatMessage* user = req.add_messages();
      user->set_role("user");
      user->set_content(args_.positional()[1]);
    } else {
      if (args_.Has("system")) return Usage("--system needs --chat");
      req.set_prompt(args_.positional()[1]);
    }
    req.set_model(args_.Get("model"));
    if (!SamplingOptions(req.mutable_sampling(), /*with_top_k=*/true)) return 2;
    auto stub = v1::Models::NewStub(channel_);
    grpc::ClientContext ctx;
    Context(&ctx);
    auto reader = stub->Generate(&ctx, req);
    v1::GenerateResponse resp;
    const char* reason = "";
    uint32_t completion = 0;
    while (reader->Read(&resp)) {
      std::fwrite(resp.text().data(), 1, resp.text().size(), stdout);
      std::fflush(stdout);
      if (resp.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
        reason = resp.finish_reason() == v1::FINISH_REASON_STOP ? "stop" : "length";
        completion = resp.completion_tokens();
      }
    }
    grpc::Status st = reader->Finish();
    std::printf("\n");
    if (!st.ok()) return Failed(st);
    std::fprintf(stderr, "[finished: %s, %u tokens]\n", reason, completion);
    return 0;
  }

  int Ingest() {
    IngestOptions o;
    if (!Positional(1, "collection", &o.collection)) return 2;
    if (args_.positional().size() < 3) return Usage("ingest needs at least one PATH");
    o.paths.assign(args_.positional().begin() + 2, args_.positional().end());
    o.ns = args_.Get("namespace");
    auto parallel = args_.GetInt("parallel", 4, 1, 64);
    if (!parallel.ok()) return Usage(std::string(parallel.status().message()));
    o.parallel = static_cast<int>(*parallel);
    o.resume = args_.Has("resume");
    // Beside the first path, as import's state file is.
    std::string first = o.paths[0];
    while (first.size() > 1 && first.back() == '/') first.pop_back();
    o.state_path = StrCat(first, ".quiver-ingest-", o.collection);
    o.rpc_timeout = std::max(timeout_, absl::Seconds(300));
    o.api_key = api_key_;
    const std::string progress = args_.Get("progress", "auto");
    if (progress == "always")
      o.progress = IngestOptions::Progress::kAlways;
    else if (progress == "never")
      o.progress = IngestOptions::Progress::kNever;
    else if (progress != "auto")
      return Usage("--progress must be auto, always or never");
    auto stub = v1::Rag::NewStub(channel_);
    auto result = client::Ingest(stub.get(), o);
    if (!result.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(result.status().message()).c_str());
      return 1;
    }
    if (json_) {
      Print(StrCat("{\"documents\":", result->documents, ",\"skipped\":", result->skipped,
                   ",\"chunks\":", result->chunks, ",\"tokens\":", result->tokens,
                   ",\"seconds\":", result->seconds, "}\n"));
    } else {
      char line[256];
      std::snprintf(
          line, sizeof(line),
          "ingested %llu documents (%llu chunks, %llu tokens) into %s in %.2f s%s\n",
          static_cast<unsigned long long>(result->documents),
          static_cast<unsigned long long>(result->chunks),
          static_cast<unsigned long long>(result->tokens), o.collection.c_str(), result->seconds,
          result->skipped > 0 ? StrCat("; ", result->skipped, " done before, skipped").c_str()
                              : "");
      Print(line);
    }
    return 0;
  }

  int Ask() {
    v1::AskRequest req;
    std::string collection, question;
    if (!Positional(1, "collection", &collection) || !Positional(2, "question", &question)) {
      return 2;
    }
    if (args_.positional().size() > 3) return Usage("ask takes one QUESTION (quote it)");
    req.set_collection(collection);
    req.set_question(question);
    req.set_namespace_(args_.Get("namespace"));
    auto top_k = args_.GetInt("top-k", 0, 0, 1000);
    auto candidates = args_.GetInt("candidates", 0, 0, 100000);
    for (const auto* r : {&top_k, &candidates}) {
      if (!r->ok()) return Usage(std::string(r->status().message()));
    }
    req.set_top_k(static_cast<uint32_t>(*top_k));
    req.set_candidate_k(static_cast<uint32_t>(*candidates));
    bool has_filter = false;
    if (!StructOption("filter", req.mutable_filter(), &has_filter)) return 2;
    if (!has_filter) req.clear_filter();
    req.set_rerank(args_.Has("rerank"));
    req.set_no_cache(args_.Has("no-cache"));
    const std::string mode = args_.Get("mode", "auto");
    if (mode == "dense")
      req.set_mode(v1::RETRIEVAL_MODE_DENSE);
    else if (mode == "text")
      req.set_mode(v1::RETRIEVAL_MODE_TEXT);
    else if (mode == "hybrid")
      req.set_mode(v1::RETRIEVAL_MODE_HYBRID);
    else if (mode != "auto")
      return Usage("--mode must be auto, dense, text or hybrid");
    req.set_llm_model(args_.Get("model"));
    req.set_system_prompt(args_.Get("system"));
    req.set_prompt_template(args_.Get("template"));
    if (!SamplingOptions(req.mutable_sampling(), /*with_top_k=*/false)) return 2;
    auto stub = v1::Rag::NewStub(channel_);
    grpc::ClientContext ctx;
    Context(&ctx);
    auto reader = stub->Ask(&ctx, req);
    v1::AskResponse resp;
    bool answering = false;
    while (reader->Read(&resp)) {
      if (json_) {
        std::string line;
        (void)google::protobuf::util::MessageToJsonString(resp, &line);
        Print(line + "\n");
        continue;
      }
      if (resp.has_sources()) {
        if (resp.sources().sources_size() == 0) Print("No sources found.\n");
        for (const v1::AskSource& s : resp.sources().sources()) {
          std::string text = s.text();
          for (char& c : text) {
            if (c == '\n') c = ' ';
          }
          if (text.size() > 160) {
            size_t cut = 157;
            while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
            text = text.substr(0, cut) + "...";
          }
          char score[64];
          std::snprintf(score, sizeof(score), "%.4f",
                        s.rerank_score() != 0 ? s.rerank_score() : s.score());
          Print(StrCat("[", s.number(), "] ", s.document_id(), " #", s.chunk(),
                       s.heading().empty() ? "" : StrCat(" (", s.heading(), ")"), "  score ", score,
                       "\n    ", text, "\n"));
        }
        Print("\n");
      } else if (resp.has_generation()) {
        answering = true;
        std::fwrite(resp.generation().text().data(), 1, resp.generation().text().size(), stdout);
        std::fflush(stdout);
      } else if (resp.has_done()) {
        const v1::AskDone& d = resp.done();
        const v1::AskTimings& t = d.timings();
        if (answering) Print("\n");
        std::string cited;
        for (uint32_t n : d.cited()) cited += StrCat(cited.empty() ? "" : ",", n);
        std::string unknown;
        for (uint32_t n : d.unknown_citations()) unknown += StrCat(unknown.empty() ? "" : ",", n);
        const char* cache = d.cache() == v1::CACHE_STATUS_EXACT_HIT      ? "exact hit"
                            : d.cache() == v1::CACHE_STATUS_SEMANTIC_HIT ? "semantic hit"
                            : d.cache() == v1::CACHE_STATUS_MISS         ? "miss"
                                                                         : "bypass";
        char line[512];
        std::snprintf(line, sizeof(line),
                      "\n[%s: %u prompt + %u completion tokens; cache %s; cited [%s]%s%s]\n"
                      "[embed %.1f ms, retrieve %.1f ms, rerank %.1f ms, pack %.1f ms, prefill "
                      "%.1f ms, decode %.1f ms, total %.1f ms]\n",
                      d.model().c_str(), d.prompt_tokens(), d.completion_tokens(), cache,
                      cited.c_str(), unknown.empty() ? "" : "; no such source: ", unknown.c_str(),
                      t.embed_ms(), t.retrieve_ms(), t.rerank_ms(), t.pack_ms(), t.prefill_ms(),
                      t.decode_ms(), t.total_ms());
        std::fputs(line, stderr);
      }
    }
    grpc::Status st = reader->Finish();
    if (!st.ok()) {
      std::fflush(stdout);
      return Failed(st);
    }
    return 0;
  }

  int Documents() {
    std::string sub, collection;
    if (!Positional(1, "documents subcommand (get, list, delete)", &sub) ||
        !Positional(2, "collection", &collection)) {
      return 2;
    }
    auto stub = v1::Rag::NewStub(channel_);
    const std::string ns = args_.Get("namespace");
    if (sub == "list") {
      v1::ListDocumentsRequest req;
      req.set_collection(collection);
      req.set_namespace_(ns);
      req.set_prefix(args_.Get("prefix"));
      auto limit = args_.GetInt("limit", 100, 1, 1 << 30);
      if (!limit.ok()) return Usage(std::string(limit.status().message()));
      req.set_limit(static_cast<uint32_t>(*limit));
      req.set_pagination_token(args_.Get("token"));
      return Call<v1::Rag::Stub, v1::ListDocumentsRequest, v1::ListDocumentsResponse>(
          stub.get(), &v1::Rag::Stub::ListDocuments, req,
          [&](const v1::ListDocumentsResponse& resp) {
            Table t({"ID", "CHUNKS", "UPDATED"});
            for (const v1::Document& d : resp.documents()) {
              t.AddRow(
                  {d.id(), StrCat(d.chunk_count()),
                   absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixMillis(d.updated_unix_ms()),
                                    absl::UTCTimeZone())});
            }
            Print(t.Render());
            if (!resp.next_pagination_token().empty()) {
              Print(StrCat("next page: --token=", resp.next_pagination_token(), "\n"));
            }
          });
    }
    std::string id;
    if (!Positional(3, "document id", &id)) return 2;
    if (sub == "get") {
      v1::GetDocumentRequest req;
      req.set_collection(collection);
      req.set_namespace_(ns);
      req.set_id(id);
      return Call<v1::Rag::Stub, v1::GetDocumentRequest, v1::GetDocumentResponse>(
          stub.get(), &v1::Rag::Stub::GetDocument, req, [&](const v1::GetDocumentResponse& resp) {
            Print(resp.document().text());
            if (!resp.document().text().ends_with("\n")) Print("\n");
          });
    }
    if (sub == "delete") {
      v1::DeleteDocumentRequest req;
      req.set_collection(collection);
      req.set_namespace_(ns);
      req.set_id(id);
      return Call<v1::Rag::Stub, v1::DeleteDocumentRequest, v1::DeleteDocumentResponse>(
          stub.get(), &v1::Rag::Stub::DeleteDocument, req,
          [&](const v1::DeleteDocumentResponse& resp) {
            Print(StrCat("deleted document ", id, " (", resp.deleted_chunk_count(), " chunks)\n"));
          });
    }
    return Usage(StrCat("unknown documents subcommand \"", sub, "\""));
  }

  int Models() {
    auto stub = v1::Models::NewStub(channel_);
    return Call<v1::Models::Stub, v1::ListModelsRequest, v1::ListModelsResponse>(
        stub.get(), &v1::Models::Stub::ListModels, v1::ListModelsRequest(),
        [&](const v1::ListModelsResponse& resp) {
          Table t({"NAME", "KIND", "DEVICE", "DIM", "MAX_TOKENS"});
          for (const v1::ModelInfo& m : resp.models()) {
            t.AddRow(
                {m.name(), m.kind(), m.device(), StrCat(m.dimension()), StrCat(m.max_tokens())});
          }
          Print(t.Render());
        });
  }

  int Fetch() {
    v1::FetchRequest req;
    std::string collection;
    if (!Positional(1, "collection", &collection)) return 2;
    if (args_.positional().size() < 3) return Usage("fetch needs at least one id");
    req.set_collection(collection);
    req.set_namespace_(args_.Get("namespace"));
    for (size_t i = 2; i < args_.positional().size(); ++i) req.add_ids(args_.positional()[i]);
    auto stub = v1::Points::NewStub(channel_);
    return Call<v1::Points::Stub, v1::FetchRequest, v1::FetchResponse>(
        stub.get(), &v1::Points::Stub::Fetch, req, [&](const v1::FetchResponse& resp) {
          Table t({"ID", "VALUES", "METADATA", "TEXT"});
          for (const v1::Record& r : resp.records()) {
            t.AddRow(
                {r.id(), PreviewFloats(r.values()), StructToCompactJson(r.metadata()), r.text()});
          }
          Print(t.Render());
          for (const std::string& id : resp.missing_ids()) Print(StrCat("not found: ", id, "\n"));
        });
  }

  int Update() {
    v1::UpdateRequest req;
    std::string collection, id;
    if (!Positional(1, "collection", &collection) || !Positional(2, "id", &id)) return 2;
    req.set_collection(collection);
    req.set_id(id);
    req.set_namespace_(args_.Get("namespace"));
    if (args_.Has("values") && !FloatsOption("values", req.mutable_values())) return 2;
    bool has_md;
    if (!StructOption("set-metadata", req.mutable_set_metadata(), &has_md)) return 2;
    if (!has_md) req.clear_set_metadata();
    if (args_.Has("text")) req.set_text(args_.Get("text"));
    auto stub = v1::Points::NewStub(channel_);
    return Call<v1::Points::Stub, v1::UpdateRequest, v1::UpdateResponse>(
        stub.get(), &v1::Points::Stub::Update, req,
        [&](const v1::UpdateResponse&) { Print(StrCat("updated ", id, "\n")); });
  }

  int Delete() {
    v1::DeleteRequest req;
    std::string collection;
    if (!Positional(1, "collection", &collection)) return 2;
    req.set_collection(collection);
    req.set_namespace_(args_.Get("namespace"));
    const bool has_ids = args_.positional().size() > 2;
    if (has_ids + args_.Has("filter") + args_.Has("all") != 1) {
      return Usage("delete needs exactly one of: ids, --filter, --all");
    }
    if (has_ids) {
      for (size_t i = 2; i < args_.positional().size(); ++i) {
        req.mutable_ids()->add_ids(args_.positional()[i]);
      }
    } else if (args_.Has("all")) {
      req.set_delete_all(true);
    } else {
      bool present;
      if (!StructOption("filter", req.mutable_filter(), &present)) return 2;
    }
    auto stub = v1::Points::NewStub(channel_);
    return Call<v1::Points::Stub, v1::DeleteRequest, v1::DeleteResponse>(
        stub.get(), &v1::Points::Stub::Delete, req, [&](const v1::DeleteResponse& resp) {
          Print(StrCat("deleted ", resp.deleted_count(), " records\n"));
        });
  }

  int ListIds() {
    v1::ListIdsRequest req;
    std::string collection;
    if (!Positional(1, "collection", &collection)) return 2;
    req.set_collection(collection);
    req.set_namespace_(args_.Get("namespace"));
    req.set_prefix(args_.Get("prefix"));
    auto limit = args_.GetInt("limit", 100, 1, 1 << 30);
    if (!limit.ok()) return Usage(std::string(limit.status().message()));
    req.set_limit(static_cast<uint32_t>(*limit));
    req.set_pagination_token(args_.Get("token"));
    auto stub = v1::Points::NewStub(channel_);
    return Call<v1::Points::Stub, v1::ListIdsRequest, v1::ListIdsResponse>(
        stub.get(), &v1::Points::Stub::ListIds, req, [&](const v1::ListIdsResponse& resp) {
          for (const std::string& id : resp.ids()) Print(id + "\n");
          if (!resp.next_pagination_token().empty()) {
            std::fprintf(stderr, "more: --token=%s\n", resp.next_pagination_token().c_str());
          }
        });
  }

  int Stats() {
    v1::DescribeStatsRequest req;
    std::string collection;
    if (!Positional(1, "collection", &collection)) return 2;
    req.set_collection(collection);
    bool has_filter;
    if (!StructOption("filter", req.mutable_filter(), &has_filter)) return 2;
    if (!has_filter) req.clear_filter();
    auto stub = v1::Points::NewStub(channel_);
    return Call<v1::Points::Stub, v1::DescribeStatsRequest, v1::DescribeStatsResponse>(
        stub.get(), &v1::Points::Stub::DescribeStats, req,
        [&](const v1::DescribeStatsResponse& resp) {
          Print(StrCat("dimension: ", resp.dimension(), "\nmetric: ", resp.metric(),
                       "\nindex: ", resp.index_type(),
                       "\nindex bytes per vector: ", resp.index_bytes_per_vector(),
                       "\ntotal records: ", resp.total_record_count(), "\n"));
          if (resp.catching_up_count() > 0) {
            Print(StrCat("not in the graph yet (indexing in the background; found by exact scan): ",
                         resp.catching_up_count(), " records\n"));
          }
          std::string parts;
          for (const auto& [part, bytes] : std::map<std::string, uint64_t>(
                   resp.memory().parts().begin(), resp.memory().parts().end())) {
            StrAppend(&parts, parts.empty() ? "" : ", ", part, " ", Megabytes(bytes));
          }
          Print(StrCat("memory: ", Megabytes(resp.memory().total_bytes()),
                       parts.empty() ? "" : StrCat(" (", parts, ")"), "\n"));
          Table t({"NAMESPACE", "RECORDS", "MEMORY"});
          std::map<std::string, const v1::NamespaceStats*> sorted;
          for (const auto& [name, ns] : resp.namespaces()) sorted[name] = &ns;
          for (const auto& [name, ns] : sorted) {
            t.AddRow({name.empty() ? "\"\"" : name, StrCat(ns->record_count()),
                      Megabytes(ns->memory_bytes())});
          }
          Print(t.Render());
        });
  }

  int Namespaces() {
    v1::ListNamespacesRequest req;
    std::string collection;
    if (!Positional(1, "collection", &collection)) return 2;
    req.set_collection(collection);
    auto stub = v1::Points::NewStub(channel_);
    return Call<v1::Points::Stub, v1::ListNamespacesRequest, v1::ListNamespacesResponse>(
        stub.get(), &v1::Points::Stub::ListNamespaces, req,
        [&](const v1::ListNamespacesResponse& resp) {
          for (const std::string& n : resp.namespaces()) Print((n.empty() ? "\"\"" : n) + "\n");
        });
  }

  int Snapshot() {
    const auto& pos = args_.positional();
    const std::string sub = pos.size() > 1 ? pos[1] : "";
    if (sub == "list") return ListSnapshots();
    if (sub == "restore") return RestoreSnapshot();
    v1::SnapshotRequest req;
    if (sub == "create") {
      if (pos.size() > 2) req.set_name(pos[2]);
    } else if (!sub.empty()) {
      req.set_name(sub);
    }
    auto stub = v1::Admin::NewStub(channel_);
    return Call<v1::Admin::Stub, v1::SnapshotRequest, v1::SnapshotResponse>(
        stub.get(), &v1::Admin::Stub::Snapshot, req, [&](const v1::SnapshotResponse& resp) {
          Print(StrCat("snapshot written to ", resp.path(), " (", resp.record_count(),
                       " records)\n"));
        });
  }

  int ListSnapshots() {
    auto stub = v1::Admin::NewStub(channel_);
    return Call<v1::Admin::Stub, v1::ListSnapshotsRequest, v1::ListSnapshotsResponse>(
        stub.get(), &v1::Admin::Stub::ListSnapshots, v1::ListSnapshotsRequest(),
        [&](const v1::ListSnapshotsResponse& resp) {
          Table t({"NAME", "CREATED", "BYTES", "PATH"});
          for (const v1::SnapshotInfo& s : resp.snapshots()) {
            t.AddRow(
                {s.name(),
                 absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixMillis(s.created_unix_ms()),
                                  absl::UTCTimeZone()),
                 StrCat(s.bytes()), s.path()});
          }
          Print(t.Render());
        });
  }

  // Offline: no server involved.
  int RestoreSnapshot() {
    std::string snapshot;
    if (!Positional(2, "snapshot (a name or a path)", &snapshot)) return 2;
    const std::string data_dir = args_.Get("data-dir");
    if (data_dir.empty()) return Usage("snapshot restore needs --data-dir=DIR");
    const std::string from = storage::ResolveSnapshot(snapshot, data_dir);
    absl::Status s = storage::RestoreSnapshot(from, data_dir, args_.Has("overwrite"));
    if (!s.ok()) {
      std::fprintf(stderr, "quiver: %s\n", std::string(s.message()).c_str());
      return 1;
    }
    Print(StrCat("restored ", from, " into ", data_dir, "; start quiverd --data_dir=", data_dir,
                 "\n"));
    return 0;
  }

  const Args& args_;
  std::shared_ptr<grpc::Channel> channel_;
  absl::Duration timeout_;
  bool json_ = false;
  std::string api_key_;
};

}  // namespace

int Run(const std::vector<std::string>& argv) {
  auto args = Args::Parse(argv, kBooleans);
  if (!args.ok()) {
    std::fprintf(stderr, "quiver: %s\n", std::string(args.status().message()).c_str());
    return 2;
  }
  return Cli(*args).Dispatch();
}

}  // namespace quiver::client
