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

#include "common/json.h"
#include "tests/testing/test_util.h"
#include "text/analyzer.h"
#include "text/bm25_index.h"

namespace {

std::string FlagValue(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--" + name + "=", 0) == 0) return a.substr(name.size() + 3);
  }
  return fallback;
}

using Qrels = std::map<std::string, std::set<std::string>>;  // topic -> relevant docs
using Run = std::map<std::string, std::vector<std::string>>;  // topic -> ranked docs

// trec_eval's map and P_30 over topics that have relevant documents.
std::pair<double, double> Evaluate(const Qrels& qrels, const Run& run) {
  double map = 0, p30 = 0;
  int topics = 0;
  for (const auto& [topic, relevant] : qrels) {
    if (relevant.empty()) continue;
    ++topics;
    auto it = run.find(topic);
    if (it == run.end()) continue;
    double hits = 0, ap = 0;
    int hits30 = 0;
    for (size_t r = 0; r < it->second.size() && r < 1000; ++r) {
      if (relevant.contains(it->second[r])) {
        ++hits;
        ap += hits / (r + 1);
        if (r < 30) ++hits30;
      }
    }
    map += ap / relevant.size();
    p30 += hits30 / 30.0;
  }
  return {map / topics, p30 / topics};
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = quiver::testing::FixturePath("cacm");
  if (dir.empty()) {
    std::fprintf(stderr, "fixture cacm not found ($QUIVER_FIXTURES)\n");
    return 1;
  }
  auto analyzer = quiver::text::Analyzer::Named(FlagValue(argc, argv, "analyzer", "english"));
  if (!analyzer.ok()) return 1;
  quiver::text::Bm25Params params;
  params.k1 = std::stof(FlagValue(argc, argv, "k1", "0.9"));
  params.b = std::stof(FlagValue(argc, argv, "b", "0.4"));
  quiver::text::Bm25Index index(params);
  std::vector<std::string> doc_ids;
  std::ifstream corpus(dir + "/beir/corpus.jsonl");
  std::string line;
  const auto t0 = std::chrono::steady_clock::now();
  while (std::getline(corpus, line)) {
    auto j = quiver::ParseJson(line);
    if (!j.ok()) return 1;
    const std::string text = j->Find("title")->as_string() + "\n" + j->Find("text")->as_string();
    auto terms = analyzer->Analyze(text);
    if (!terms.ok()) return 1;
    index.Upsert(doc_ids.size(), *terms);
    doc_ids.push_back(j->Find("_id")->as_string());
  }
  const double index_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  Qrels qrels;
  std::ifstream qf(dir + "/beir/qrels/test.tsv");
  std::getline(qf, line);  // Header.
  while (std::getline(qf, line)) {
    std::istringstream in(line);
    std::string topic, doc;
    int score;
    in >> topic >> doc >> score;
    if (score > 0) qrels[topic].insert(doc);
  }
  Run run;
  std::ifstream queries(dir + "/beir/queries.jsonl");
  while (std::getline(queries, line)) {
    auto j = quiver::ParseJson(line);
    auto terms = analyzer->Analyze(j->Find("text")->as_string());
    for (const auto& hit : index.Search(*terms, 1000)) {
      run[j->Find("_id")->as_string()].push_back(doc_ids[hit.label]);
    }
  }
  const auto [map, p30] = Evaluate(qrels, run);
  std::printf("cacm_eval: %zu documents, %zu terms, %llu tokens indexed in %.2f s; %zu judged topics\n",
              index.doc_count(), index.term_count(),
              static_cast<unsigned long long>(index.total_length()), index_s, qrels.size());
  std::printf("quiver BM25 (k1=%.2f b=%.2f, %s): MAP %.4f  P@30 %.4f\n", params.k1, params.b,
              FlagValue(argc, argv, "analyzer", "english").c_str(), map, p30);
  std::printf("Anserini reference:                 MAP 0.3123  P@30 0.1942\n");
  Run anserini;
  std::ifstream rf(dir + "/cacm-bm25.top30.anserini.run");
  while (std::getline(rf, line)) {
    std::istringstream in(line);
    std::string topic, q0, doc;
    in >> topic >> q0 >> doc;
    anserini[topic].push_back(doc);
  }
  std::printf("metric check: P@30 of Anserini's run file = %.4f (trec_eval: 0.1942)\n",
              Evaluate(qrels, anserini).second);
  return 0;
}
