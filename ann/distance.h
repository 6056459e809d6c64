// Vector similarity kernels with runtime CPU dispatch.
//
// Scores are "higher is more similar" for every metric:
//   kCosine: dot product of L2-normalised vectors (callers normalise once).
//   kDot:    inner product.
//   kL2:     negated squared Euclidean distance, -||a - b||^2.
#ifndef QUIVER_ANN_DISTANCE_H_
#define QUIVER_ANN_DISTANCE_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace quiver::ann {

// How vectors are compared, for every module (collections store it, indexes
// search by it). The values are persisted in the collection catalog: never
// renumber them.
enum class Metric : uint8_t { kCosine = 1, kDot = 2, kL2 = 3 };

// "cosine", "dot" or "l2".
std::string_view MetricName(Metric m);

// One instruction set's kernels. Pointers are never null; inputs need no
// alignment; n may be any size including 0.
struct DistanceKernels {
  const char* name;  // "scalar", "avx2", "avx512", "avx512vnni"
  float (*dot)(const float* a, const float* b, size_t n);
  float (*l2_squared)(const float* a, const float* b, size_t n);
  // Scalar-quantised (SQ8): stored codes (0..255) times query codes
  // (-127..127), the exact integer sum of products. No overflow for
  // n <= 32,768 (each term is at most 255 x 127 = 32,385).
  int32_t (*dot_u8i8)(const uint8_t* a, const int8_t* b, size_t n);
  // Two nodes' stored SQ8 codes, decoded with a range per dimension (value =
  // center + scale (code - 128)): their dot product and squared distance.
  float (*sq8_dot)(const uint8_t* a, const uint8_t* b, const float* center, const float* scale,
                   size_t n);
  float (*sq8_l2_squared)(const uint8_t* a, const uint8_t* b, const float* scale, size_t n);
  // Binary codes (one bit per dimension, packed in 64-bit words): the
  // number of bits that differ.
  uint32_t (*hamming)(const uint64_t* a, const uint64_t* b, size_t words);
};

// The portable reference implementation.
const DistanceKernels& ScalarKernels();
// Every kernel set this CPU can run, the reference first.
std::vector<const DistanceKernels*> SupportedKernels();
// The fastest supported set, chosen once on first call (thread-safe).
const DistanceKernels& BestKernels();

// Similarity of `a` and `b` under `metric` (see above). For kCosine both
// vectors must already be normalised.
inline float Similarity(const DistanceKernels& k, Metric metric, const float* a, const float* b,
                        size_t n) {
  return metric == Metric::kL2 ? -k.l2_squared(a, b, n) : k.dot(a, b, n);
}

// Scales `v` to unit L2 norm and returns the norm it had. A zero vector is
// left unchanged (and 0 returned).
float NormalizeInPlace(std::span<float> v);

}  // namespace quiver::ann

#endif  // QUIVER_ANN_DISTANCE_H_
