// The CACM test collection (BEIR layout) and trec_eval's measures, shared by
// the text benchmarks.
#ifndef QUIVER_BENCH_TREC_EVAL_H_
#define QUIVER_BENCH_TREC_EVAL_H_

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/json.h"

namespace quiver::bench {

using Qrels = std::map<std::string, std::set<std::string>>;   // topic -> relevant docs
using Run = std::map<std::string, std::vector<std::string>>;  // topic -> ranked docs

struct Measures {
  double map = 0;  // Over the top 1000.
  double p10 = 0;
  double p30 = 0;
};

// trec_eval's map, P_10 and P_30 over topics that have relevant documents.
inline Measures Evaluate(const Qrels& qrels, const Run& run) {
  Measures m;
  int topics = 0;
  for (const auto& [topic, relevant] : qrels) {
    if (relevant.empty()) continue;
    ++topics;
    auto it = run.find(topic);
    if (it == run.end()) continue;
    double hits = 0, ap = 0;
    int hits10 = 0, hits30 = 0;
    for (size_t r = 0; r < it->second.size() && r < 1000; ++r) {
      if (relevant.contains(it->second[r])) {
        ++hits;
        ap += hits / (r + 1);
        if (r < 10) ++hits10;
        if (r < 30) ++hits30;
      }
    }
    m.map += ap / relevant.size();
    m.p10 += hits10 / 10.0;
    m.p30 += hits30 / 30.0;
  }
  if (topics > 0) {
    m.map /= topics;
    m.p10 /= topics;
    m.p30 /= topics;
  }
  return m;
}

struct Cacm {
  std::vector<std::string> doc_ids, doc_texts;  // Title + text per document.
  std::vector<std::string> query_ids, query_texts;
  Qrels qrels;
};

// Reads <dir>/beir; false when a file is missing or malformed.
inline bool LoadCacm(const std::string& dir, Cacm* out) {
  std::ifstream corpus(dir + "/beir/corpus.jsonl");
  std::ifstream queries(dir + "/beir/queries.jsonl");
  std::ifstream qrels(dir + "/beir/qrels/test.tsv");
  if (!corpus || !queries || !qrels) return false;
  std::string line;
  while (std::getline(corpus, line)) {
    auto j = ParseJson(line);
    if (!j.ok() || j->Find("_id") == nullptr) return false;
    out->doc_ids.push_back(j->Find("_id")->as_string());
    out->doc_texts.push_back(j->Find("title")->as_string() + "\n" + j->Find("text")->as_string());
  }
  while (std::getline(queries, line)) {
    auto j = ParseJson(line);
    if (!j.ok() || j->Find("_id") == nullptr) return false;
    out->query_ids.push_back(j->Find("_id")->as_string());
    out->query_texts.push_back(j->Find("text")->as_string());
  }
  std::getline(qrels, line);  // Header.
  while (std::getline(qrels, line)) {
    std::istringstream in(line);
    std::string topic, doc;
    int score;
    in >> topic >> doc >> score;
    if (score > 0) out->qrels[topic].insert(doc);
  }
  return true;
}

}  // namespace quiver::bench

#endif  // QUIVER_BENCH_TREC_EVAL_H_
