#include "db/fusion.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"

namespace quiver::db {

std::vector<Match> Fuse(const std::vector<RankedList>& lists, HybridSpec::Fusion fusion,
                        float rrf_k, size_t top_k) {
  absl::flat_hash_map<std::string, size_t> slot;  // Id -> index in `all`.
  std::vector<Match> all;
  for (const RankedList& list : lists) {
    float lo = 0, hi = 0;
    if (!list.hits.empty()) {
      auto [mn, mx] =
          std::minmax_element(list.hits.begin(), list.hits.end(),
                              [](const auto& a, const auto& b) { return a.second < b.second; });
      lo = mn->second;
      hi = mx->second;
    }
    for (size_t r = 0; r < list.hits.size(); ++r) {
      const auto& [id, score] = list.hits[r];
      auto [it, fresh] = slot.try_emplace(id, all.size());
      if (fresh) {
        all.emplace_back();
        all.back().id = id;
      }
      Match& m = all[it->second];
      const uint32_t rank = static_cast<uint32_t>(r + 1);
      if (fusion == HybridSpec::Fusion::kRrf) {
        m.score += list.weight / (rrf_k + rank);
      } else {
        m.score += list.weight * (hi > lo ? (score - lo) / (hi - lo) : 1.0f);
      }
      m.explanation.push_back({list.source, rank, score});
    }
  }
  auto better = [](const Match& a, const Match& b) {
    return a.score != b.score ? a.score > b.score : a.id < b.id;
  };
  if (all.size() > top_k) {
    std::partial_sort(all.begin(), all.begin() + top_k, all.end(), better);
    all.resize(top_k);
  } else {
    std::sort(all.begin(), all.end(), better);
  }
  return all;
}

}  // namespace quiver::db
