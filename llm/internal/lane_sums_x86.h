// The four-row lane sums shared by the AVX2 and AVX-512 row-kernel files
// (DotRows4 and the four-row quantized dots). Internal linkage on purpose:
// each file gets its own copy compiled for its instruction set, so the
// linker can never hand an AVX-512 build of it to a CPU with only AVX2.
#ifndef QUIVER_LLM_INTERNAL_LANE_SUMS_X86_H_
#define QUIVER_LLM_INTERNAL_LANE_SUMS_X86_H_

#include <immintrin.h>

#include <cmath>
#include <cstddef>

namespace quiver::llm::internal {

// Adds one group of four lanes of four rows to `sum` (row k's running sum
// in element k): g[k] holds row k's lanes 4i .. 4i + 3. After a 4 x 4
// transpose the lanes go in one at a time, so each row's sum takes its
// lanes in Dot's order (0..15) when the groups come in order.
[[maybe_unused]] __attribute__((always_inline)) static inline __m128 AddLaneGroup4(
    __m128 sum, __m128 r0, __m128 r1, __m128 r2, __m128 r3) {
  _MM_TRANSPOSE4_PS(r0, r1, r2, r3);  // r_i: lane i of the group, rows 0-3.
  return _mm_add_ps(_mm_add_ps(_mm_add_ps(_mm_add_ps(sum, r0), r1), r2), r3);
}

// out[k] = sums[k] + row k's values j..n-1 times x's, fused one at a time
// (Dot's tail); rows `stride` floats apart.
[[maybe_unused]] static inline void AddRowTails4(const float* w, size_t stride, const float* x,
                                                 int j, int n, const float* sums, float* out) {
  for (int k = 0; k < 4; ++k) {
    float tail = 0.0f;
    for (int t = j; t < n; ++t) tail = std::fma(w[k * stride + t], x[t], tail);
    out[k] = sums[k] + tail;
  }
}

}  // namespace quiver::llm::internal

#endif  // QUIVER_LLM_INTERNAL_LANE_SUMS_X86_H_
