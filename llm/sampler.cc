// run.c's sampler.
#include "llm/sampler.h"

#include <algorithm>
#include <cmath>

#include "llm/internal/row_kernels.h"

namespace quiver::llm {

using internal::Softmax;

float Sampler::NextCoin() {
  state_ ^= state_ >> 12;
  state_ ^= state_ << 25;
  state_ ^= state_ >> 27;
  const uint32_t r = static_cast<uint32_t>((state_ * 0x2545F4914F6CDD1Dull) >> 32);
  return (r >> 8) / 16777216.0f;
}

int Sampler::Sample(std::vector<float> logits) {
  const int n = static_cast<int>(logits.size());
  if (temperature_ == 0.0f) {
    int best = 0;
    for (int i = 1; i < n; ++i) {
      if (logits[i] > logits[best]) best = i;
    }
    return best;
  }
  for (float& l : logits) l /= temperature_;
  Softmax(logits.data(), n);
  const float coin = NextCoin();
  if (top_p_ <= 0 || top_p_ >= 1) {
    float cdf = 0.0f;
    for (int i = 0; i < n; ++i) {
      cdf += logits[i];
      if (coin < cdf) return i;
    }
    return n - 1;
  }
  // Nucleus: candidates above (1 - p) / (n - 1) can be in it; sorted by
  // probability (stable, as glibc's qsort), cut where the mass passes p.
  const float cutoff = (1.0f - top_p_) / (n - 1);
  std::vector<std::pair<float, int>> cand;
  for (int i = 0; i < n; ++i) {
    if (logits[i] >= cutoff) cand.emplace_back(logits[i], i);
  }
  std::stable_sort(cand.begin(), cand.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  float cumulative = 0.0f;
  size_t last = cand.size() - 1;
  for (size_t i = 0; i < cand.size(); ++i) {
    cumulative += cand[i].first;
    if (cumulative > top_p_) {
      last = i;
      break;
    }
  }
  const float r = coin * cumulative;
  float cdf = 0.0f;
  for (size_t i = 0; i <= last; ++i) {
    cdf += cand[i].first;
    if (r < cdf) return cand[i].second;
  }
  return cand[last].second;
}

}  // namespace quiver::llm
