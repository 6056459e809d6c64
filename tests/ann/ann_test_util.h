// Data and recall measurement shared by the ann suites.
#ifndef QUIVER_TESTS_ANN_ANN_TEST_UTIL_H_
#define QUIVER_TESTS_ANN_ANN_TEST_UTIL_H_

#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include "ann/vector_index.h"
#include "common/thread_pool.h"

namespace quiver::ann {

// Clustered data: `centres` Gaussian centres (spread `spread`, fixed seed)
// with unit spread around them.
inline std::vector<std::vector<float>> Clustered(size_t n, size_t dim, uint32_t seed,
                                                 size_t centres = 50, float spread = 4) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g;
  std::vector<std::vector<float>> middles(centres, std::vector<float>(dim));
  std::mt19937 crng(1234);
  for (auto& c : middles) {
    for (auto& x : c) x = spread * g(crng);
  }
  std::uniform_int_distribution<size_t> pick(0, middles.size() - 1);
  std::vector<std::vector<float>> out(n, std::vector<float>(dim));
  for (auto& v : out) {
    const auto& c = middles[pick(rng)];
    for (size_t d = 0; d < dim; ++d) v[d] = c[d] + g(rng);
  }
  return out;
}

// Inserts base[from..] in one batch (with `pool`), labelled by position.
inline void Fill(VectorIndex* index, const std::vector<std::vector<float>>& base, ThreadPool* pool,
                 size_t from = 0) {
  std::vector<uint64_t> labels;
  std::vector<float> flat;
  for (size_t i = from; i < base.size(); ++i) {
    labels.push_back(i);
    flat.insert(flat.end(), base[i].begin(), base[i].end());
  }
  index->UpsertBatch(labels, flat.data(), pool);
}

// Share of the exact top k (by `exact`'s scan) that `approx` returns.
inline double Recall(const VectorIndex& approx, const VectorIndex& exact,
                     const std::vector<std::vector<float>>& queries, size_t k, size_t ef,
                     const LabelFilter* filter = nullptr) {
  size_t found = 0, total = 0;
  for (const auto& q : queries) {
    auto want = exact.SearchExact(q, {.top_k = k, .filter = filter});
    std::set<uint64_t> truth;
    for (const Hit& h : want) truth.insert(h.label);
    for (const Hit& h : approx.Search(q, {.top_k = k, .ef = ef, .filter = filter})) {
      found += truth.count(h.label);
    }
    total += want.size();
  }
  return total == 0 ? 1.0 : static_cast<double>(found) / total;
}

}  // namespace quiver::ann

#endif  // QUIVER_TESTS_ANN_ANN_TEST_UTIL_H_
