// Retrieval quality and latency of the RAG pipeline on the CACM test
// collection, through the document path: every CACM document is upserted as
// a document (cut into chunks, embedded, indexed in HNSW and BM25), every
// topic asked; a document's rank is its best chunk's. Measures recall@10,
// MRR@10 and nDCG@10 (binary relevance, over the judged topics) for
//   BM25 only, dense only, hybrid (reciprocal-rank fusion), hybrid + rerank
// (with --rerank_model=DIR, a cross-encoder directory; skipped without),
// and the latency of each stage (median and p95), plus end-to-end Ask
// latency with a generator (stories260K from the fixtures unless
// --llm_model=PATH [--llm_tokenizer=PATH]).
//
// The dense model: --embed_model=DIR, or by default GloVe 6B 50d (the
// glove-6B-50d-10k fixture) turned into a model2vec static model by
// scripts/glove_to_model2vec.py, a real (if weak) offline dense signal.
//
//   build/bench/rag_eval [--embed_model=DIR] [--rerank_model=DIR] [--chunk_tokens=256]
//                        [--llm_model=PATH --llm_tokenizer=PATH] [--asks=16]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "bench/bench_flags.h"
#include "bench/trec_eval.h"
#include "db/engine.h"
#include "embed/service.h"
#include "llm/generator.h"
#include "rag/pipeline.h"
#include "rag/service_embedder.h"
#include "tests/testing/test_util.h"

namespace {

using quiver::bench::Flag;
using Clock = std::chrono::steady_clock;

struct Quality {
  double recall = 0, mrr = 0, ndcg = 0;
  int topics = 0;
};

void Score(const std::set<std::string>& relevant, const std::vector<std::string>& ranked,
           Quality* q) {
  if (relevant.empty()) return;
  ++q->topics;
  int hits = 0;
  double dcg = 0, idcg = 0, rr = 0;
  for (size_t r = 0; r < ranked.size() && r < 10; ++r) {
    if (!relevant.contains(ranked[r])) continue;
    ++hits;
    dcg += 1 / std::log2(r + 2.0);
    if (rr == 0) rr = 1.0 / (r + 1);
  }
  for (size_t r = 0; r < std::min<size_t>(relevant.size(), 10); ++r) idcg += 1 / std::log2(r + 2.0);
  q->recall += static_cast<double>(hits) / relevant.size();
  q->mrr += rr;
  q->ndcg += dcg / idcg;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

class Sink : public quiver::rag::AskSink {
 public:
  bool Sources(const std::vector<quiver::rag::Source>&) override { return true; }
  bool Token(std::string_view, int) override { return true; }
  bool Done(const quiver::rag::AskSummary& s) override {
    summary = s;
    return true;
  }
  quiver::rag::AskSummary summary;
};

int Fail(const std::string& what) {
  std::fprintf(stderr, "rag_eval: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string cacm_dir = quiver::testing::FixturePath("cacm");
  if (cacm_dir.empty()) return Fail("fixture cacm not found ($QUIVER_FIXTURES)");
  quiver::bench::Cacm cacm;
  if (!quiver::bench::LoadCacm(cacm_dir, &cacm)) return Fail("cannot read the CACM fixture");

  quiver::testing::TempDir tmp;
  std::string embed_dir = Flag(argc, argv, "embed_model", "");
  std::string embed_desc = embed_dir;
  if (embed_dir.empty()) {
    const std::string glove = quiver::testing::FixturePath("glove-6B-50d-10k");
    if (glove.empty()) return Fail("fixture glove-6B-50d-10k not found and no --embed_model");
    embed_dir = tmp.path() + "/glove-50d-10k";
    const std::string cmd = std::string(quiver::testing::kPython) +
                            " " QUIVER_SOURCE_DIR "/scripts/glove_to_model2vec.py " + glove +
                            "/glove.6B.50d.10k.zip " + embed_dir + " > /dev/null";
    if (std::system(cmd.c_str()) != 0) return Fail("glove_to_model2vec.py failed");
    embed_desc = "GloVe 6B 50d, 10k words, as a model2vec static model";
  }
  quiver::embed::ServiceOptions so;
  so.embed_model_dir = embed_dir;
  so.rerank_model_dir = Flag(argc, argv, "rerank_model", "");
  so.device = "cpu";
  auto service = quiver::embed::EmbeddingService::Load(so);
  if (!service.ok()) return Fail(service.status().ToString());
  quiver::rag::ServiceEmbedder embedder(service->get());

  std::unique_ptr<quiver::llm::Generator> generator;
  std::string llm_path = Flag(argc, argv, "llm_model", "");
  std::string llm_tok = Flag(argc, argv, "llm_tokenizer", "");
  if (llm_path.empty()) {
    const std::string stories = quiver::testing::FixturePath("stories260K");
    if (!stories.empty()) {
      llm_path = stories + "/stories260K.bin";
      llm_tok = stories + "/tok512.bin";
    }
  }
  if (!llm_path.empty()) {
    quiver::llm::GeneratorOptions go;
    go.model.path = llm_path;
    go.model.tokenizer_path = llm_tok;
    go.device = "cpu";
    auto g = quiver::llm::Generator::Load(go);
    if (!g.ok()) return Fail(g.status().ToString());
    generator = *std::move(g);
  }

  quiver::db::EngineOptions eo;
  eo.store.path = tmp.path() + "/data";
  eo.embedders[(*service)->embed_name()] = &embedder;
  auto engine = quiver::db::Engine::Open(eo);
  if (!engine.ok()) return Fail(engine.status().ToString());
  quiver::storage::CollectionConfig cc;
  cc.name = "cacm";
  cc.dimension = static_cast<uint32_t>((*service)->embedder().dimension());
  cc.index = Flag(argc, argv, "index", "hnsw") == "flat" ? quiver::storage::IndexKind::kFlat
                                                         : quiver::storage::IndexKind::kHnsw;
  cc.text.enabled = true;
  cc.text.analyzer = "english";
  cc.embedding_model = (*service)->embed_name();
  cc.chunking.chunk_tokens =
      static_cast<uint32_t>(std::stoi(Flag(argc, argv, "chunk_tokens", "256")));
  cc.chunking.overlap_tokens = quiver::storage::DefaultOverlapTokens(cc.chunking.chunk_tokens);
  if (auto c = (*engine)->CreateCollection(cc); !c.ok()) return Fail(c.status().ToString());
  quiver::rag::Pipeline pipeline(engine->get(), service->get(), generator.get(), nullptr);

  std::printf("rag_eval: CACM, %zu documents, %zu topics (%zu judged)\n", cacm.doc_ids.size(),
              cacm.query_ids.size(), cacm.qrels.size());
  std::printf("  embedding model: %s (%zu dimensions)\n", embed_desc.c_str(),
              (*service)->embedder().dimension());
  std::printf("  reranker: %s\n", so.rerank_model_dir.empty() ? "none given (--rerank_model)"
                                                              : so.rerank_model_dir.c_str());
  std::printf("  generator: %s\n", generator ? llm_path.c_str() : "none");

  // Ingest through the document path.
  const auto t0 = Clock::now();
  uint64_t chunks = 0, tokens = 0;
  for (size_t i = 0; i < cacm.doc_ids.size(); ++i) {
    quiver::rag::DocumentInput doc;
    doc.id = cacm.doc_ids[i];
    doc.text = cacm.doc_texts[i];
    auto r = pipeline.UpsertDocument("cacm", "", std::move(doc));
    if (!r.ok()) return Fail(cacm.doc_ids[i] + ": " + r.status().ToString());
    chunks += r->chunk_count;
    tokens += r->tokens;
  }
  const double ingest_s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf(
      "  ingest: %zu documents -> %llu chunks (%llu tokens, chunk_tokens %u) in %.2f s "
      "(%.0f documents/s)\n",
      cacm.doc_ids.size(), static_cast<unsigned long long>(chunks),
      static_cast<unsigned long long>(tokens), cc.chunking.chunk_tokens, ingest_s,
      cacm.doc_ids.size() / ingest_s);

  struct Config {
    const char* name;
    quiver::rag::RetrievalMode mode;
    bool rerank;
  };
  std::vector<Config> configs = {{"BM25", quiver::rag::RetrievalMode::kText, false},
                                 {"dense", quiver::rag::RetrievalMode::kDense, false},
                                 {"hybrid (RRF)", quiver::rag::RetrievalMode::kHybrid, false}};
  if ((*service)->has_reranker()) {
    configs.push_back({"hybrid + rerank", quiver::rag::RetrievalMode::kHybrid, true});
  }
  std::printf("\n  %-16s %9s %8s %8s   %-21s %-21s %-21s\n", "retrieval", "recall@10", "MRR@10",
              "nDCG@10", "embed ms (p50/p95)", "retrieve ms", "rerank ms");
  for (const Config& config : configs) {
    Quality q;
    std::vector<double> embed_ms, retrieve_ms, rerank_ms;
    for (size_t t = 0; t < cacm.query_ids.size(); ++t) {
      auto rel = cacm.qrels.find(cacm.query_ids[t]);
      if (rel == cacm.qrels.end()) continue;
      quiver::rag::AskRequest req;
      req.collection = "cacm";
      req.question = cacm.query_texts[t];
      req.mode = config.mode;
      req.rerank = config.rerank;
      req.top_k = 100;
      req.candidate_k = 100;
      auto r = pipeline.Retrieve(req);
      if (!r.ok()) return Fail(r.status().ToString());
      std::vector<std::string> docs;
      std::set<std::string> seen;
      for (const quiver::rag::Source& s : r->candidates) {
        if (seen.insert(s.document_id).second) docs.push_back(s.document_id);
      }
      Score(rel->second, docs, &q);
      embed_ms.push_back(r->timings.embed_ms);
      retrieve_ms.push_back(r->timings.retrieve_ms);
      rerank_ms.push_back(r->timings.rerank_ms);
    }
    auto pair = [](const std::vector<double>& v) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%.2f / %.2f", Percentile(v, 0.5), Percentile(v, 0.95));
      return std::string(buf);
    };
    std::printf("  %-16s %9.4f %8.4f %8.4f   %-21s %-21s %-21s\n", config.name, q.recall / q.topics,
                q.mrr / q.topics, q.ndcg / q.topics, pair(embed_ms).c_str(),
                pair(retrieve_ms).c_str(), pair(rerank_ms).c_str());
  }

  if (generator) {
    const int asks = std::stoi(Flag(argc, argv, "asks", "16"));
    std::vector<double> total, pack, prefill, decode;
    for (int i = 0; i < asks && i < static_cast<int>(cacm.query_texts.size()); ++i) {
      quiver::rag::AskRequest req;
      req.collection = "cacm";
      req.question = cacm.query_texts[i];
      req.generation.max_tokens = 32;
      Sink sink;
      if (absl::Status s = pipeline.Ask(req, &sink); !s.ok()) return Fail(s.ToString());
      total.push_back(sink.summary.timings.total_ms);
      pack.push_back(sink.summary.timings.pack_ms);
      prefill.push_back(sink.summary.timings.prefill_ms);
      decode.push_back(sink.summary.timings.decode_ms);
    }
    std::printf(
        "\n  Ask end to end (hybrid, 5 sources, 32 new tokens, no answer cache), %d questions: "
        "total %.1f ms p50 / %.1f ms p95; pack %.2f ms, prefill %.1f ms, decode %.1f ms (p50)\n",
        asks, Percentile(total, 0.5), Percentile(total, 0.95), Percentile(pack, 0.5),
        Percentile(prefill, 0.5), Percentile(decode, 0.5));
  }
  return 0;
}
