// BM25 quality on the CACM test collection, computed like trec_eval:
// MAP over the judged topics (top 1000) and P@30, next to Anserini's
// reference (BM25 k1 = 0.9, b = 0.4, Porter, Lucene stop words:
// MAP 0.3123, P@30 0.1942).
//
//   build/bench/cacm_eval [--analyzer=english] [--k1=0.9] [--b=0.4]
//
// Reads $QUIVER_FIXTURES/cacm/beir (corpus.jsonl: title + text per
// document, queries.jsonl, qrels/test.tsv). Also recomputes P@30 of
// Anserini's own run file as a check of the metric code (expects 0.1942).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "bench/bench_flags.h"
#include "bench/trec_eval.h"
#include "tests/testing/test_util.h"
#include "text/analyzer.h"
#include "text/bm25_index.h"

namespace {

using quiver::bench::Flag;

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = quiver::testing::FixturePath("cacm");
  if (dir.empty()) {
    std::fprintf(stderr, "fixture cacm not found ($QUIVER_FIXTURES)\n");
    return 1;
  }
  auto analyzer = quiver::text::Analyzer::Named(Flag(argc, argv, "analyzer", "english"));
  if (!analyzer.ok()) return 1;
  quiver::text::Bm25Params params;
  params.k1 = std::stof(Flag(argc, argv, "k1", "0.9"));
  params.b = std::stof(Flag(argc, argv, "b", "0.4"));
  quiver::text::Bm25Index index(params);
  quiver::bench::Cacm cacm;
  if (!quiver::bench::LoadCacm(dir, &cacm)) {
    std::fprintf(stderr, "cannot read the cacm fixture in %s\n", dir.c_str());
    return 1;
  }
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t d = 0; d < cacm.doc_texts.size(); ++d) {
    auto terms = analyzer->Analyze(cacm.doc_texts[d]);
    if (!terms.ok()) return 1;
    index.Upsert(d, *terms);
  }
  const double index_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const quiver::bench::Qrels& qrels = cacm.qrels;
  quiver::bench::Run run;
  for (size_t q = 0; q < cacm.query_texts.size(); ++q) {
    auto terms = analyzer->Analyze(cacm.query_texts[q]);
    for (const auto& hit : index.Search(*terms, 1000)) {
      run[cacm.query_ids[q]].push_back(cacm.doc_ids[hit.label]);
    }
  }
  const quiver::bench::Measures m = quiver::bench::Evaluate(qrels, run);
  const double map = m.map, p30 = m.p30;
  std::printf(
      "cacm_eval: %zu documents, %zu terms, %llu tokens indexed in %.2f s; %zu judged topics\n",
      index.doc_count(), index.term_count(), static_cast<unsigned long long>(index.total_length()),
      index_s, qrels.size());
  std::printf("quiver BM25 (k1=%.2f b=%.2f, %s): MAP %.4f  P@30 %.4f\n", params.k1, params.b,
              Flag(argc, argv, "analyzer", "english").c_str(), map, p30);
  std::printf("Anserini reference:                 MAP 0.3123  P@30 0.1942\n");
  quiver::bench::Run anserini;
  std::string line;
  std::ifstream rf(dir + "/cacm-bm25.top30.anserini.run");
  while (std::getline(rf, line)) {
    std::istringstream in(line);
    std::string topic, q0, doc;
    in >> topic >> q0 >> doc;
    anserini[topic].push_back(doc);
  }
  std::printf("metric check: P@30 of Anserini's run file = %.4f (trec_eval: 0.1942)\n",
              quiver::bench::Evaluate(qrels, anserini).p30);
  return 0;
}
