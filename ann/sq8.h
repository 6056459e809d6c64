// Quantized vector codes: the Quantization kinds, SQ8 and binary codes.
//
// Scalar quantisation to 8 bits (SQ8): value x of dimension d becomes a code
// c in [-127, 127] with x ~= center[d] + scale[d] * c, one (center, scale)
// per dimension, learned from the data (each dimension's extreme 0.01 % of
// the values seen at training are clamped to -127 / 127), and is stored as
// the byte s = c + 128 (1..255). A query is not coded like the data: with
// u[d] = q[d] * scale[d] written as step * k[d] (k in [-127, 127], one step
// per query),
//   q . x       ~= q . center + step * sum k c
//               =  (q . center - 128 step sum k) + step * sum s k
//   ||q - x||^2 ~= ||q||^2 - 2 q . x + ||x||^2
// so a distance is one unsigned-by-signed byte dot product
// (DistanceKernels::dot_u8i8: AVX512-VNNI's vpdpbusd) whatever the ranges;
// a node stores its bytes and the squared norm of the vector they stand
// for, a query its codes and Sq8Query. Two nodes (choosing neighbours while
// the graph is built) are compared on their decoded bytes
// (DistanceKernels::sq8_dot / sq8_l2_squared).
// Per-dimension ranges matter where dimensions differ in spread (GloVe's
// angular neighbours: recall@10 of the codes alone 0.94 -> 0.98). Values
// outside the trained range are clamped (and counted: the index retrains
// when too many are).
#ifndef QUIVER_ANN_SQ8_H_
#define QUIVER_ANN_SQ8_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

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

// What a query's codes stand for (see above).
struct Sq8Query {
  float step = 0;    // u[d] ~= step * k[d].
  float offset = 0;  // q . center - 128 step sum k.
  float norm2 = 0;   // ||q||^2.
};

struct Sq8Params {
  std::vector<float> center;  // Per dimension.
  std::vector<float> scale;   // Per dimension, > 0; empty: not trained.

  bool trained() const { return !scale.empty(); }
  size_t dimension() const { return scale.size(); }
  // From `count` vectors of `dim` values each (row-major).
  // REQUIRES: count >= 1, dim >= 1.
  static Sq8Params Train(const float* vectors, size_t count, size_t dim);
  // Every dimension with the same range (checkpoints of format version 2,
  // which held one range per index).
  static Sq8Params Uniform(float center, float scale, size_t dim);
  // Writes dimension() stored codes (c + 128) and returns the squared norm
  // of the vector they stand for; adds to *clamped the values outside the
  // range.
  float Encode(const float* x, uint8_t* codes, uint64_t* clamped) const;
  // A query's dimension() codes and terms.
  Sq8Query EncodeQuery(const float* q, int8_t* codes) const;
  // The same for the vector that `codes` (as Encode wrote them) stand for:
  // a node compared with other nodes while the graph is built.
  Sq8Query EncodeQueryFromCodes(const uint8_t* codes, int8_t* query_codes) const;
  // The value a stored code of dimension d stands for.
  float Decode(size_t d, uint8_t code) const {
    return center[d] + scale[d] * static_cast<float>(int{code} - 128);
  }

 private:
  // value(d): the query's value in dimension d.
  template <typename Value>
  Sq8Query QueryOf(Value value, int8_t* codes) const;
};

// Binary codes: bit d of word d / 64 is set when x[d] > threshold[d]; the
// bits past dim are 0. REQUIRES: words has (dim + 63) / 64 elements.
void EncodeBinary(const float* x, const float* threshold, size_t dim, uint64_t* words);

}  // namespace quiver::ann

#endif  // QUIVER_ANN_SQ8_H_
