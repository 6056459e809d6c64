// Rank fusion for hybrid search: several ranked lists of record ids (dense,
// sparse, text) become one.
#ifndef QUIVER_DB_FUSION_H_
#define QUIVER_DB_FUSION_H_

#include <string>
#include <vector>

#include "db/engine.h"

namespace quiver::db {

struct RankedList {
  std::string source;           // "dense", "sparse" or "text".
  float weight = 1;             // >= 0.
  std::vector<RankedHit> hits;  // Best first, distinct ids.
};

// The best `top_k` ids by fused score (HybridSpec explains the formulas),
// ties by ascending id, each with its rank and score in every list that
// holds it (in list order).
std::vector<Match> Fuse(const std::vector<RankedList>& lists, HybridSpec::Fusion fusion,
                        float rrf_k, size_t top_k);

}  // namespace quiver::db

#endif  // QUIVER_DB_FUSION_H_
