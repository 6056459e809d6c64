// Quantized vector codes: the Quantization kinds, SQ8 and binary codes.
//
// Scalar quantisation to 8 bits (SQ8): every value x of a vector becomes a
// code c in [-127, 127] with x ~= center + scale * c, one (center, scale)
// per index, learned from the data (the 0.05 % and 99.95 % quantiles of the
// values seen at training map to -127 and 127). With one range for every
// dimension, distances between codes are integer sums (DistanceKernels'
// dot_i8 / l2_squared_i8):
//   ||a - b||^2 ~= scale^2 * sum (ca - cb)^2
//   a . b       ~= n center^2 + center scale (sum ca + sum cb) + scale^2 sum ca cb
// so a node stores its codes and their sum. Values outside the trained range
// are clamped (and counted: the index retrains when too many are).
#ifndef QUIVER_ANN_SQ8_H_
#define QUIVER_ANN_SQ8_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "absl/status/statusor.h"

namespace quiver::ann {

// How an index stores the vectors its graph walks. Persisted in checkpoints
// and the collection catalog: never renumber.
// kBinary: one bit per dimension (is the value above that dimension's mean,
// learned from the data), compared by Hamming distance; nothing to clamp.
// The graph is built with the full vectors and only walked on the bits.
enum class Quantization : uint8_t { kNone = 0, kSq8 = 1, kBinary = 2 };

std::string_view QuantizationName(Quantization q);  // "none", "sq8", "binary"
// One of the values above (checkpoints and the catalog hold it as a number).
inline bool KnownQuantization(Quantization q) { return q <= Quantization::kBinary; }
absl::StatusOr<Quantization> ParseQuantization(std::string_view name);

struct Sq8Params {
  float center = 0;
  float scale = 0;  // 0: not trained.

  bool trained() const { return scale > 0; }
  // From a sample of values (any order). REQUIRES: !values.empty().
  static Sq8Params Train(std::span<const float> values);
  // Writes dim codes and returns their sum; adds to *clamped the values
  // outside the range.
  int32_t Encode(const float* x, size_t dim, int8_t* codes, uint64_t* clamped) const;
  // The value a code stands for.
  float Decode(int8_t code) const { return center + scale * static_cast<float>(code); }
};

// Binary codes: bit d of word d / 64 is set when x[d] > threshold[d]; the
// bits past dim are 0. REQUIRES: words has (dim + 63) / 64 elements.
void EncodeBinary(const float* x, const float* threshold, size_t dim, uint64_t* words);

}  // namespace quiver::ann

#endif  // QUIVER_ANN_SQ8_H_
