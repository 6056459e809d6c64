// Order statistics for the benchmark programs' timings.
#ifndef QUIVER_BENCH_BENCH_STATS_H_
#define QUIVER_BENCH_BENCH_STATS_H_

#include <algorithm>
#include <cstddef>
#include <vector>

namespace quiver::bench {

// The value at rank p * size of the sorted values (p in [0, 1]; 0.99 is the
// 99th percentile); 0 when there are none.
inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

// The upper median (the middle value of an odd count).
inline double Median(std::vector<double> v) { return Percentile(std::move(v), 0.5); }

}  // namespace quiver::bench

#endif  // QUIVER_BENCH_BENCH_STATS_H_
