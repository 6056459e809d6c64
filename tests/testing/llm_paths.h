// Comparing two numeric paths of one Llama model (tests and benchmarks):
// teacher-forced logits, greedy tokens, and the int8-dot path against the
// float32 path (LlamaModel::SetInt8Dots).
#ifndef QUIVER_TESTS_TESTING_LLM_PATHS_H_
#define QUIVER_TESTS_TESTING_LLM_PATHS_H_

#include <algorithm>
#include <cmath>
#include <vector>

#include "llm/kv_cache.h"
#include "llm/model.h"

namespace quiver::testing {

// Logits of `tokens` fed one step at a time (position p sees tokens 0..p).
inline std::vector<std::vector<float>> TeacherForcedLogits(const llm::LlamaModel& m,
                                                           const std::vector<int>& tokens) {
  const int bs = 16;
  llm::PagedKvCache cache(m.config(), (static_cast<int>(tokens.size()) + bs - 1) / bs, bs);
  std::vector<int> blocks;
  for (size_t i = 0; i < tokens.size(); i += bs) blocks.push_back(cache.Allocate());
  std::vector<std::vector<float>> out;
  for (size_t p = 0; p < tokens.size(); ++p) {
    out.push_back(
        std::move(m.ForwardBatch({{tokens[p], static_cast<int>(p), &blocks}}, &cache)[0]));
  }
  return out;
}

// `steps` greedy tokens after BOS (token 1).
inline std::vector<int> GreedyTokens(const llm::LlamaModel& m, int steps) {
  std::vector<int> tokens = {1};
  const int bs = 16;
  llm::PagedKvCache cache(m.config(), steps / bs + 1, bs);
  std::vector<int> blocks;
  for (int i = 0; i < steps; i += bs) blocks.push_back(cache.Allocate());
  for (int p = 0; p < steps; ++p) {
    const std::vector<float> logits = m.ForwardBatch({{tokens[p], p, &blocks}}, &cache)[0];
    tokens.push_back(
        static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin()));
  }
  return {tokens.begin() + 1, tokens.end()};
}

struct PathDifference {
  double max_error = 0;     // Largest |int8 - float| logit over the largest |float| logit.
  size_t greedy_agree = 0;  // Greedy steps before the two paths' tokens first differ.
};

// The int8-dot path of `m` against its float32 path over `steps` greedy
// steps: logits compared on the float path's tokens. Leaves int8 dots on.
inline PathDifference CompareInt8Dots(llm::LlamaModel& m, int steps) {
  m.SetInt8Dots(false);
  const std::vector<int> want = GreedyTokens(m, steps);
  std::vector<int> fed = {1};
  fed.insert(fed.end(), want.begin(), want.end() - 1);
  const auto exact = TeacherForcedLogits(m, fed);
  m.SetInt8Dots(true);
  const std::vector<int> got = GreedyTokens(m, steps);
  const auto approx = TeacherForcedLogits(m, fed);
  double scale = 0, err = 0;
  for (size_t p = 0; p < exact.size(); ++p) {
    for (size_t i = 0; i < exact[p].size(); ++i) {
      scale = std::max(scale, std::fabs(double{exact[p][i]}));
      err = std::max(err, std::fabs(double{exact[p][i]} - approx[p][i]));
    }
  }
  PathDifference d;
  d.max_error = scale > 0 ? err / scale : err;
  while (d.greedy_agree < want.size() && want[d.greedy_agree] == got[d.greedy_agree]) {
    ++d.greedy_agree;
  }
  return d;
}

}  // namespace quiver::testing

#endif  // QUIVER_TESTS_TESTING_LLM_PATHS_H_
