// Weight matrices kept as their files store them (float32, float16, bfloat16,
// Q8_0, Q4_0, K-quants), read and multiplied through the row kernels.
#ifndef QUIVER_LLM_WEIGHT_TENSOR_H_
#define QUIVER_LLM_WEIGHT_TENSOR_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "llm/aligned.h"

namespace quiver::llm {

namespace internal {
struct Q8Activation;
}

// A weight matrix group kept as its file stores it: float32, float16,
// bfloat16, Q8_0 (blocks of 32 int8 values sharing one float scale) or
// Q4_0 (blocks of 32 4-bit values sharing one float scale), row-major
// [rows][cols] with layers concatenated. Kernels convert rows to float32 as
// they read them, getting exactly the values a float32 copy would hold, so
// a model gives the same tokens whichever way it is kept; quantized weights
// take a quarter (Q8_0) or half (F16) of the memory and of the bytes read
// per token. Copies share the data.
class WeightTensor {
 public:
  // kMixed: parts of different types joined (Concat), each read as stored.
  enum class Type { kF32, kF16, kBF16, kQ8_0, kQ4_0, kQ4_K, kQ5_K, kQ6_K, kMixed };
  WeightTensor() : WeightTensor(AlignedFloats{}) {}
  static WeightTensor F32(const std::vector<float>& values) {
    return WeightTensor(AlignedFloats(values.begin(), values.end()));
  }
  static WeightTensor F32(AlignedFloats values) { return WeightTensor(std::move(values)); }
  static WeightTensor F16(std::vector<uint16_t> halves);
  static WeightTensor BF16(std::vector<uint16_t> values);
  // `scales`: one per 32 values.
  static WeightTensor Q8_0(std::vector<int8_t> values, std::vector<float> scales);
  // Q4_0: per block of 32, 16 bytes whose low nibbles are values 0-15 and
  // high nibbles values 16-31, each (nibble - 8) * scale.
  static WeightTensor Q4_0(std::vector<uint8_t> packed, std::vector<float> scales);
  // ggml's K-quants, kept as their raw super-blocks of 256 values (Q4_K
  // 144 bytes, Q5_K 176, Q6_K 210): INVALID_ARGUMENT for another type or a
  // size that is not whole blocks.
  static absl::StatusOr<WeightTensor> KQuant(Type type, std::vector<uint8_t> blocks);
  // Bytes of one 256-value super-block of a K-quant type (0 for others).
  static size_t KBlockBytes(Type type);
  // Parts joined in order: one tensor of their type when they all share
  // it, else a kMixed tensor keeping each part as stored.
  static WeightTensor Concat(const std::vector<WeightTensor>& parts);
  // The rows (of `cols` values) in a new order: row i is row order[i].
  WeightTensor ReorderRows(const std::vector<size_t>& order, size_t cols) const;

  Type type() const { return type_; }
  size_t size() const { return size_; }  // Values.
  size_t bytes() const;
  // Values [offset, offset + n) as float32 into `out` (offset and n are
  // multiples of 32 for Q8_0 / Q4_0, of 256 for K-quants).
  void Read(size_t offset, size_t n, float* out) const;
  // The dot product of the `n` values at `offset` (a row) with x, summed
  // as the float32 kernels sum it.
  float DotRow(size_t offset, const float* x, int n) const;
  // DotRow for the four rows at offset, offset + n, ... into out[0..3].
  void DotRows4(size_t offset, const float* x, int n, float* out) const;
  // Q8_0 and Q4_0 tensors also multiply with int8 activations
  // (internal/int8_dots.h): `rows` (1..4) rows of n values from `offset`
  // times `count` (1..4) activations, out[r * count + a].
  bool has_int8_dots() const { return type_ == Type::kQ8_0 || type_ == Type::kQ4_0; }
  void Int8DotRows(size_t offset, int n, int rows, const internal::Q8Activation* const* acts,
                   int count, float* out) const;
  // The float32 values (empty unless type() is kF32).
  std::span<const float> floats() const { return *f32_; }
  // For the kernels: a pointer into float32 data, or nullptr.
  const float* f32_data() const { return type_ == Type::kF32 ? f32_->data() : nullptr; }
  // The stored data, for engines that copy it to a device: by type, f32
  // (kF32), halves (kF16, kBF16: raw bits), q8 + scales (kQ8_0), q4 +
  // scales (kQ4_0: packed nibbles) or q4 alone (K-quants: the super-blocks,
  // size() / 256 * KBlockBytes(type()) bytes); all null for kMixed (see
  // parts()). Valid while this tensor (or a copy) lives.
  struct Raw {
    const float* f32 = nullptr;
    const uint16_t* halves = nullptr;
    const int8_t* q8 = nullptr;
    const uint8_t* q4 = nullptr;
    const float* scales = nullptr;
  };
  Raw raw() const;
  // kMixed: the parts in order, each (first value, part); empty otherwise.
  // Parts are whole layers, so a row never straddles two.
  std::vector<std::pair<size_t, WeightTensor>> parts() const;
  // Whether both hold the same data (a tied classifier and its embedding).
  bool SharesData(const WeightTensor& o) const {
    return type_ == o.type_ && f32_ == o.f32_ && f16_ == o.f16_ && q8_ == o.q8_ && q4_ == o.q4_ &&
           parts_ == o.parts_;
  }

 private:
  explicit WeightTensor(AlignedFloats values);
  Type type_ = Type::kF32;
  size_t size_ = 0;
  std::shared_ptr<const AlignedFloats> f32_;
  std::shared_ptr<const std::vector<uint16_t>> f16_;
  std::shared_ptr<const std::vector<int8_t>> q8_;
  std::shared_ptr<const std::vector<uint8_t>> q4_;  // Q4_0 nibbles, or K-quant blocks.
  std::shared_ptr<const std::vector<std::pair<size_t, WeightTensor>>>
      parts_;  // kMixed: (first value, part).
  const std::pair<size_t, WeightTensor>& PartAt(size_t offset) const;
  std::shared_ptr<const std::vector<float>> scales_;
};

// Reorders the rows of Q or K projections (or their biases, cols = 1) of
// `layers` layers from Hugging Face's rotate-half layout (a head's first
// half pairs with its second half) to interleaved pairs: within a layer,
// row h*hs + 2j + i <- h*hs + i*hs/2 + j. The stored type is kept.
WeightTensor RotateHalfToInterleaved(const WeightTensor& w, int layers, int heads, int head_size,
                                     size_t cols);

}  // namespace quiver::llm

#endif  // QUIVER_LLM_WEIGHT_TENSOR_H_
