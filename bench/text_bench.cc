// BM25 throughput, ours (text::Bm25Index, MaxScore) next to Xapian (glass
// database, BM25Weight with the same k1 and b), in one run:
//   1. CACM (the real collection): documents/s indexed, queries/s at top 10,
//      MAP / P@10 of each engine against the relevance judgements.
//   2. A generated corpus (Zipf vocabulary) of --docs documents: documents/s,
//      queries/s at top 10, and how far the two top-10 lists agree.
// Both engines index the same analysed terms (the analyzer's cost is left
// out of both) and answer single-threaded; queries/s are medians of
// --rounds passes over the query set.
//
//   build/bench/text_bench [--docs=1000000] [--queries=1000] [--rounds=5]
//                          [--doc-len=60] [--vocab=200000]
#include <xapian.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "bench/bench_flags.h"
#include "bench/trec_eval.h"
#include "tests/testing/test_util.h"
#include "text/analyzer.h"
#include "text/bm25_index.h"

namespace {

using quiver::bench::Flag;

using Terms = std::vector<std::string>;
using Clock = std::chrono::steady_clock;
constexpr float kK1 = 0.9f, kB = 0.4f;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Xapian on disk (glass), as a server would use it.
class XapianSide {
 public:
  explicit XapianSide(const std::string& path)
      : path_(path), writer_(path, Xapian::DB_CREATE_OR_OVERWRITE) {}
  void Add(const Terms& terms) {
    Xapian::Document doc;
    for (const std::string& t : terms) doc.add_term(t);  // wdf += 1 each.
    writer_.add_document(doc);
  }
  void Finish() {
    writer_.commit();
    writer_.close();
    reader_ = Xapian::Database(path_);
  }
  // Document numbers are 1-based, in insertion order.
  std::vector<uint64_t> Search(const Terms& query, size_t k) const {
    Xapian::Enquire enquire(reader_);
    enquire.set_weighting_scheme(Xapian::BM25Weight(kK1, 0, 1, kB, 0.5));
    enquire.set_query(Xapian::Query(Xapian::Query::OP_OR, query.begin(), query.end()));
    Xapian::MSet mset = enquire.get_mset(0, static_cast<Xapian::doccount>(k));
    std::vector<uint64_t> out;
    for (auto it = mset.begin(); it != mset.end(); ++it) out.push_back(*it - 1);
    return out;
  }

 private:
  std::string path_;
  Xapian::WritableDatabase writer_;
  Xapian::Database reader_;
};

std::vector<uint64_t> Labels(const std::vector<quiver::text::ScoredDoc>& hits) {
  std::vector<uint64_t> out;
  for (const auto& h : hits) out.push_back(h.label);
  return out;
}

struct Side {
  double index_s = 0;
  double qps = 0;
};

// Queries/s of `search` over `queries`, median of `rounds` passes.
template <typename Fn>
double MeasureQps(const std::vector<Terms>& queries, int rounds, Fn search) {
  size_t sink = 0;
  for (const Terms& q : queries) sink += search(q).size();  // Warm-up.
  std::vector<double> qps;
  for (int r = 0; r < rounds; ++r) {
    const auto t0 = Clock::now();
    for (const Terms& q : queries) sink += search(q).size();
    qps.push_back(queries.size() / Seconds(t0));
  }
  if (sink == 0) std::printf("(no results at all)\n");
  return Median(qps);
}

// Mean |ours ∩ theirs| / k over the queries.
double Agreement(const std::vector<std::vector<uint64_t>>& a,
                 const std::vector<std::vector<uint64_t>>& b, size_t k) {
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    size_t common = 0;
    for (uint64_t x : a[i]) common += std::count(b[i].begin(), b[i].end(), x);
    sum += static_cast<double>(common) / std::max<size_t>(1, std::min(k, a[i].size()));
  }
  return sum / a.size();
}

void PrintRow(const char* corpus, size_t docs, const Side& ours, const Side& xap) {
  std::printf(
      "%-10s %9zu docs | index docs/s: quiver %10.0f  xapian %9.0f  (x%.1f) | "
      "top-10 queries/s: quiver %8.0f  xapian %7.0f  ratio %.2fx\n",
      corpus, docs, docs / ours.index_s, docs / xap.index_s, xap.index_s / ours.index_s, ours.qps,
      xap.qps, ours.qps / xap.qps);
}

int RunCacm(int rounds, const std::string& tmp) {
  const std::string dir = quiver::testing::FixturePath("cacm");
  quiver::bench::Cacm cacm;
  if (dir.empty() || !quiver::bench::LoadCacm(dir, &cacm)) {
    std::printf("cacm: fixture not found ($QUIVER_FIXTURES); skipped\n");
    return 0;
  }
  auto analyzer = quiver::text::Analyzer::Named("english");
  std::vector<Terms> docs, queries;
  for (const std::string& t : cacm.doc_texts) docs.push_back(*analyzer->Analyze(t));
  for (const std::string& t : cacm.query_texts) queries.push_back(*analyzer->Analyze(t));

  Side ours, xap;
  quiver::text::Bm25Index index({kK1, kB});
  auto t0 = Clock::now();
  for (size_t d = 0; d < docs.size(); ++d) index.Upsert(d, docs[d]);
  ours.index_s = Seconds(t0);
  XapianSide xapian(tmp + "/cacm.xapian");
  t0 = Clock::now();
  for (const Terms& d : docs) xapian.Add(d);
  xapian.Finish();
  xap.index_s = Seconds(t0);

  quiver::bench::Run run_ours, run_xapian;
  for (size_t q = 0; q < queries.size(); ++q) {
    for (uint64_t d : Labels(index.Search(queries[q], 1000))) {
      run_ours[cacm.query_ids[q]].push_back(cacm.doc_ids[d]);
    }
    for (uint64_t d : xapian.Search(queries[q], 1000)) {
      run_xapian[cacm.query_ids[q]].push_back(cacm.doc_ids[d]);
    }
  }
  const auto mo = quiver::bench::Evaluate(cacm.qrels, run_ours);
  const auto mx = quiver::bench::Evaluate(cacm.qrels, run_xapian);
  ours.qps = MeasureQps(queries, rounds * 20, [&](const Terms& q) { return index.Search(q, 10); });
  xap.qps = MeasureQps(queries, rounds * 20, [&](const Terms& q) { return xapian.Search(q, 10); });
  PrintRow("cacm", docs.size(), ours, xap);
  std::printf(
      "cacm quality (english analyzer, k1=%.1f b=%.1f): quiver MAP %.4f P@10 %.4f | "
      "xapian MAP %.4f P@10 %.4f\n",
      kK1, kB, mo.map, mo.p10, mx.map, mx.p10);
  return 0;
}

// A document of the generated corpus: `len` terms drawn from a Zipf(1)
// vocabulary, from the document's own seed (so both engines see the same).
class Generator {
 public:
  Generator(size_t vocab, size_t mean_len) : mean_len_(mean_len) {
    cdf_.reserve(vocab);
    double sum = 0;
    for (size_t r = 1; r <= vocab; ++r) cdf_.push_back(sum += 1.0 / r);
    for (double& c : cdf_) c /= sum;
    for (size_t r = 0; r < vocab; ++r) names_.push_back("t" + std::to_string(r));
  }
  Terms Doc(uint64_t d) const {
    std::mt19937_64 rng(d * 0x9E3779B97F4A7C15ull + 1);
    std::uniform_int_distribution<size_t> len(mean_len_ / 3, mean_len_ * 5 / 3);
    std::uniform_real_distribution<double> u(0, 1);
    Terms out(len(rng));
    for (std::string& t : out) t = names_[Rank(u(rng))];
    return out;
  }
  // 2-4 terms of rank 20..20000, log-uniform: real queries skip stop words
  // and mix common and rare words.
  Terms Query(uint64_t q) const {
    std::mt19937_64 rng(q + 0xABCDEF);
    std::uniform_real_distribution<double> lr(std::log(20.0), std::log(20000.0));
    Terms out(2 + rng() % 3);
    for (std::string& t : out) t = names_[static_cast<size_t>(std::exp(lr(rng)))];
    return out;
  }

 private:
  size_t Rank(double u) const {
    return std::min<size_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin(),
                            cdf_.size() - 1);
  }
  size_t mean_len_;
  std::vector<double> cdf_;
  std::vector<std::string> names_;
};

void RunGenerated(size_t n, size_t n_queries, size_t doc_len, size_t vocab, int rounds,
                  const std::string& tmp) {
  Generator gen(vocab, doc_len);
  std::vector<Terms> queries;
  for (size_t q = 0; q < n_queries; ++q) queries.push_back(gen.Query(q));
  Side ours, xap;
  uint64_t tokens = 0;
  quiver::text::Bm25Index index({kK1, kB});
  {
    double spent = 0;  // Indexing only, not generating.
    for (uint64_t d = 0; d < n; ++d) {
      Terms doc = gen.Doc(d);
      tokens += doc.size();
      const auto t0 = Clock::now();
      index.Upsert(d, doc);
      spent += Seconds(t0);
    }
    ours.index_s = spent;
  }
  std::printf("generated: %zu docs, %llu tokens, %zu distinct terms\n", n,
              static_cast<unsigned long long>(tokens), index.term_count());
  std::fflush(stdout);
  XapianSide xapian(tmp + "/gen.xapian");
  {
    double spent = 0;
    for (uint64_t d = 0; d < n; ++d) {
      Terms doc = gen.Doc(d);
      const auto t0 = Clock::now();
      xapian.Add(doc);
      spent += Seconds(t0);
    }
    const auto t0 = Clock::now();
    xapian.Finish();
    xap.index_s = spent + Seconds(t0);
  }
  std::vector<std::vector<uint64_t>> top_ours, top_xapian;
  for (const Terms& q : queries) {
    top_ours.push_back(Labels(index.Search(q, 10)));
    top_xapian.push_back(xapian.Search(q, 10));
  }
  ours.qps = MeasureQps(queries, rounds, [&](const Terms& q) { return index.Search(q, 10); });
  xap.qps = MeasureQps(queries, rounds, [&](const Terms& q) { return xapian.Search(q, 10); });
  PrintRow("generated", n, ours, xap);
  std::printf(
      "generated: top-10 agreement quiver vs xapian %.3f (their BM25 variants differ: "
      "Xapian's idf and length normalisation are not Lucene's)\n",
      Agreement(top_ours, top_xapian, 10));
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = static_cast<int>(Flag(argc, argv, "rounds", 5));
  const std::string tmp =
      (std::filesystem::temp_directory_path() / ("text_bench." + std::to_string(getpid())))
          .string();
  std::filesystem::create_directories(tmp);
  std::printf("text_bench: BM25 k1=%.1f b=%.1f, top 10, one thread; Xapian %s (glass, on disk)\n",
              kK1, kB, Xapian::version_string());
  int rc = RunCacm(rounds, tmp);
  RunGenerated(static_cast<size_t>(Flag(argc, argv, "docs", 1000000)),
               static_cast<size_t>(Flag(argc, argv, "queries", 1000)),
               static_cast<size_t>(Flag(argc, argv, "doc-len", 60)),
               static_cast<size_t>(Flag(argc, argv, "vocab", 200000)), rounds, tmp);
  std::filesystem::remove_all(tmp);
  return rc;
}
