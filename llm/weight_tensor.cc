// WeightTensor: weight matrices kept as their files store them, read and
// multiplied through the row kernels.
#include "llm/weight_tensor.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "llm/internal/int8_dots.h"
#include "llm/internal/row_kernels.h"
#include "nn/half.h"

namespace quiver::llm {

using namespace internal;  // NOLINT: the row kernels.

WeightTensor::WeightTensor(AlignedFloats values)
    : type_(Type::kF32),
      size_(values.size()),
      f32_(std::make_shared<const AlignedFloats>(std::move(values))) {}

WeightTensor WeightTensor::BF16(std::vector<uint16_t> values) {
  WeightTensor t = F16(std::move(values));
  t.type_ = Type::kBF16;
  return t;
}

WeightTensor WeightTensor::F16(std::vector<uint16_t> halves) {
  WeightTensor t;
  t.type_ = Type::kF16;
  t.size_ = halves.size();
  t.f16_ = std::make_shared<const std::vector<uint16_t>>(std::move(halves));
  return t;
}

size_t WeightTensor::KBlockBytes(Type type) {
  switch (type) {
    case Type::kQ4_K:
      return 144;
    case Type::kQ5_K:
      return 176;
    case Type::kQ6_K:
      return 210;
    default:
      return 0;
  }
}

absl::StatusOr<WeightTensor> WeightTensor::KQuant(Type type, std::vector<uint8_t> blocks) {
  const size_t bytes = KBlockBytes(type);
  if (bytes == 0 || blocks.size() % bytes != 0) {
    return absl::InvalidArgumentError("K-quant data is not whole super-blocks");
  }
  WeightTensor t;
  t.type_ = type;
  t.size_ = blocks.size() / bytes * 256;
  t.q4_ = std::make_shared<const std::vector<uint8_t>>(std::move(blocks));
  return t;
}

WeightTensor WeightTensor::Q4_0(std::vector<uint8_t> packed, std::vector<float> scales) {
  WeightTensor t;
  t.type_ = Type::kQ4_0;
  t.size_ = packed.size() * 2;
  t.q4_ = std::make_shared<const std::vector<uint8_t>>(std::move(packed));
  t.scales_ = std::make_shared<const std::vector<float>>(std::move(scales));
  return t;
}

WeightTensor WeightTensor::Q8_0(std::vector<int8_t> values, std::vector<float> scales) {
  WeightTensor t;
  t.type_ = Type::kQ8_0;
  t.size_ = values.size();
  t.q8_ = std::make_shared<const std::vector<int8_t>>(std::move(values));
  t.scales_ = std::make_shared<const std::vector<float>>(std::move(scales));
  return t;
}

WeightTensor WeightTensor::Concat(const std::vector<WeightTensor>& parts) {
  if (parts.size() == 1) return parts[0];
  size_t total = 0;
  bool same = true;
  for (const WeightTensor& p : parts) {
    total += p.size();
    same &= p.type() == parts[0].type();
  }
  if (same && !parts.empty() && (parts[0].type() == Type::kF16 || parts[0].type() == Type::kBF16)) {
    std::vector<uint16_t> v;
    v.reserve(total);
    for (const WeightTensor& p : parts) v.insert(v.end(), p.f16_->begin(), p.f16_->end());
    return parts[0].type() == Type::kF16 ? F16(std::move(v)) : BF16(std::move(v));
  }
  if (same && !parts.empty() && parts[0].type() == Type::kQ8_0) {
    std::vector<int8_t> q;
    std::vector<float> scales;
    q.reserve(total);
    scales.reserve(total / 32);
    for (const WeightTensor& p : parts) {
      q.insert(q.end(), p.q8_->begin(), p.q8_->end());
      scales.insert(scales.end(), p.scales_->begin(), p.scales_->end());
    }
    return Q8_0(std::move(q), std::move(scales));
  }
  if (same && !parts.empty() && parts[0].type() == Type::kQ4_0) {
    std::vector<uint8_t> q;
    std::vector<float> scales;
    q.reserve(total / 2);
    scales.reserve(total / 32);
    for (const WeightTensor& p : parts) {
      q.insert(q.end(), p.q4_->begin(), p.q4_->end());
      scales.insert(scales.end(), p.scales_->begin(), p.scales_->end());
    }
    return Q4_0(std::move(q), std::move(scales));
  }
  if (same && !parts.empty() && KBlockBytes(parts[0].type()) > 0) {
    std::vector<uint8_t> blocks;
    for (const WeightTensor& p : parts) blocks.insert(blocks.end(), p.q4_->begin(), p.q4_->end());
    return *KQuant(parts[0].type(), std::move(blocks));
  }
  if (same && !parts.empty() && parts[0].type() == Type::kF32) {
    AlignedFloats v;
    v.reserve(total);
    for (const WeightTensor& p : parts) v.insert(v.end(), p.f32_->begin(), p.f32_->end());
    return F32(std::move(v));
  }
  // Types differ (a Q4_K_M file keeps some layers' ffn_down in Q6_K): the
  // parts stay as they are, each read in its own type.
  auto mixed = std::make_shared<std::vector<std::pair<size_t, WeightTensor>>>();
  size_t at = 0;
  for (const WeightTensor& p : parts) {
    if (p.type() == Type::kMixed) {
      for (const auto& [start, q] : *p.parts_) mixed->emplace_back(at + start, q);
    } else {
      mixed->emplace_back(at, p);
    }
    at += p.size();
  }
  WeightTensor t;
  t.type_ = Type::kMixed;
  t.size_ = total;
  t.parts_ = std::move(mixed);
  return t;
}

const std::pair<size_t, WeightTensor>& WeightTensor::PartAt(size_t offset) const {
  // The last part starting at or before offset.
  auto it = std::upper_bound(parts_->begin(), parts_->end(), offset,
                             [](size_t o, const auto& part) { return o < part.first; });
  return *(it - 1);
}

WeightTensor WeightTensor::ReorderRows(const std::vector<size_t>& order, size_t cols) const {
  auto reorder = [&](const auto& src, size_t width) {
    std::remove_cvref_t<decltype(src)> out(order.size() * width);
    for (size_t i = 0; i < order.size(); ++i) {
      std::copy_n(src.begin() + order[i] * width, width, out.begin() + i * width);
    }
    return out;
  };
  switch (type_) {
    case Type::kF32:
      return F32(reorder(*f32_, cols));
    case Type::kF16:
      return F16(reorder(*f16_, cols));
    case Type::kBF16:
      return BF16(reorder(*f16_, cols));
    case Type::kQ8_0:
      if (cols % 32 == 0) return Q8_0(reorder(*q8_, cols), reorder(*scales_, cols / 32));
      break;
    case Type::kQ4_0:
      if (cols % 32 == 0) return Q4_0(reorder(*q4_, cols / 2), reorder(*scales_, cols / 32));
      break;
    case Type::kQ4_K:
    case Type::kQ5_K:
    case Type::kQ6_K:
      if (cols % 256 == 0) return *KQuant(type_, reorder(*q4_, cols / 256 * KBlockBytes(type_)));
      break;
    case Type::kMixed:
      break;  // As float32, below.
  }
  std::vector<float> all(size_);
  Read(0, size_, all.data());
  return F32(std::move(all)).ReorderRows(order, cols);
}

WeightTensor::Raw WeightTensor::raw() const {
  Raw r;
  switch (type_) {
    case Type::kF32:
      r.f32 = f32_->data();
      break;
    case Type::kF16:
    case Type::kBF16:
      r.halves = f16_->data();
      break;
    case Type::kQ8_0:
      r.q8 = q8_->data();
      r.scales = scales_->data();
      break;
    case Type::kQ4_0:
      r.q4 = q4_->data();
      r.scales = scales_->data();
      break;
    case Type::kQ4_K:
    case Type::kQ5_K:
    case Type::kQ6_K:
      r.q4 = q4_->data();
      break;
    case Type::kMixed:
      break;
  }
  return r;
}

std::vector<std::pair<size_t, WeightTensor>> WeightTensor::parts() const {
  if (type_ != Type::kMixed) return {};
  return *parts_;
}

size_t WeightTensor::bytes() const {
  switch (type_) {
    case Type::kF32:
      return size_ * 4;
    case Type::kF16:
    case Type::kBF16:
      return size_ * 2;
    case Type::kQ8_0:
      return size_ + size_ / 32 * 4;
    case Type::kQ4_0:
      return size_ / 2 + size_ / 32 * 4;
    case Type::kQ4_K:
    case Type::kQ5_K:
    case Type::kQ6_K:
      return size_ / 256 * KBlockBytes(type_);
    case Type::kMixed: {
      size_t n = 0;
      for (const auto& [start, part] : *parts_) n += part.bytes();
      return n;
    }
  }
  return 0;
}

float WeightTensor::DotRow(size_t offset, const float* x, int n) const {
  switch (type_) {
    case Type::kMixed: {  // Rows never straddle parts (parts are whole layers).
      const auto& [start, part] = PartAt(offset);
      return part.DotRow(offset - start, x, n);
    }
    case Type::kF32:
      return Dot(f32_->data() + offset, x, n);
    case Type::kF16:
      return DotF16(f16_->data() + offset, x, n);
    case Type::kBF16:
      return DotBF16(f16_->data() + offset, x, n);
    case Type::kQ8_0:
      return DotQ8(q8_->data() + offset, scales_->data() + offset / 32, x, n);
    case Type::kQ4_0:
      return DotQ4(q4_->data() + offset / 2, scales_->data() + offset / 32, x, n);
    case Type::kQ4_K:
    case Type::kQ5_K:
    case Type::kQ6_K:
      return DotK(type_, q4_->data() + offset / 256 * KBlockBytes(type_), x, n);
  }
  return 0.0f;
}

void WeightTensor::DotRows4(size_t offset, const float* x, int n, float* out) const {
  const size_t rows_size = 4 * static_cast<size_t>(n);
  switch (type_) {
    case Type::kMixed: {
      const auto& [start, part] = PartAt(offset);
      if (offset + rows_size <= start + part.size())
        return part.DotRows4(offset - start, x, n, out);
      break;  // Straddles two parts: row by row below.
    }
    case Type::kQ8_0:
      return DotQ8x4(q8_->data() + offset, scales_->data() + offset / 32, x, n, out);
    case Type::kQ4_0:
      return DotQ4x4(q4_->data() + offset / 2, scales_->data() + offset / 32, x, n, out);
    case Type::kF32:
      return ::quiver::llm::internal::DotRows4(f32_data() + offset, x, n, out);
    case Type::kQ4_K:
    case Type::kQ5_K:
    case Type::kQ6_K:
      return DotKx4(type_, q4_->data() + offset / 256 * KBlockBytes(type_), x, n, out);
    case Type::kF16:
    case Type::kBF16:
      break;
  }
  for (int k = 0; k < 4; ++k) out[k] = DotRow(offset + static_cast<size_t>(k) * n, x, n);
}

void WeightTensor::Int8DotRows(size_t offset, int n, int rows, const Q8Activation* const* acts,
                               int count, float* out) const {
  if (type_ == Type::kQ8_0) {
    Int8DotKernels().q8(q8_->data() + offset, scales_->data() + offset / 32, n, rows, acts, count,
                        out);
  } else {
    Int8DotKernels().q4(q4_->data() + offset / 2, scales_->data() + offset / 32, n, rows, acts,
                        count, out);
  }
}

void WeightTensor::Read(size_t offset, size_t n, float* out) const {
  switch (type_) {
    case Type::kMixed:
      while (n > 0) {  // Part by part.
        const auto& [start, part] = PartAt(offset);
        const size_t take = std::min(n, start + part.size() - offset);
        part.Read(offset - start, take, out);
        offset += take;
        out += take;
        n -= take;
      }
      break;
    case Type::kF32:
      std::copy_n(f32_->data() + offset, n, out);
      break;
    case Type::kF16:
      DequantizeF16(f16_->data() + offset, n, out);
      break;
    case Type::kBF16:
      DequantizeBF16(f16_->data() + offset, n, out);
      break;
    case Type::kQ8_0:
      DequantizeQ8(q8_->data() + offset, scales_->data() + offset / 32, n / 32, out);
      break;
    case Type::kQ4_0:
      DequantizeQ4(q4_->data() + offset / 2, scales_->data() + offset / 32, n / 32, out);
      break;
    case Type::kQ4_K:
    case Type::kQ5_K:
    case Type::kQ6_K:
      DequantizeK(type_, q4_->data() + offset / 256 * KBlockBytes(type_), n / 256, out);
      break;
  }
}

}  // namespace quiver::llm
