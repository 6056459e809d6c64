#include "ann/sq8.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/strings.h"

namespace quiver::ann {

std::string_view QuantizationName(Quantization q) {
  switch (q) {
    case Quantization::kNone:
      return "none";
    case Quantization::kSq8:
      return "sq8";
    case Quantization::kBinary:
      return "binary";
  }
  return "unknown";
}

absl::StatusOr<Quantization> ParseQuantization(std::string_view name) {
  if (name.empty() || name == "none") return Quantization::kNone;
  if (name == "sq8") return Quantization::kSq8;
  if (name == "binary") return Quantization::kBinary;
  return absl::InvalidArgumentError(
      StrCat("unknown quantization ", Quoted(name), "; expected none, sq8 or binary"));
}

void EncodeBinary(const float* x, const float* threshold, size_t dim, uint64_t* words) {
  for (size_t w = 0; w < (dim + 63) / 64; ++w) {
    uint64_t bits = 0;
    const size_t end = std::min(dim, (w + 1) * 64);
    for (size_t d = w * 64; d < end; ++d) bits |= uint64_t{x[d] > threshold[d]} << (d - w * 64);
    words[w] = bits;
  }
}

Sq8Params Sq8Params::Train(std::span<const float> values) {
  std::vector<float> v(values.begin(), values.end());
  // The extreme 0.05 % on each side are clamped: one outlier must not
  // stretch the range (and coarsen the codes) of everything else.
  const size_t cut = v.size() / 2000;
  std::nth_element(v.begin(), v.begin() + cut, v.end());
  const float lo = v[cut];
  std::nth_element(v.begin(), v.end() - 1 - cut, v.end());
  const float hi = v[v.size() - 1 - cut];
  Sq8Params p;
  p.center = lo / 2 + hi / 2;  // Halved first: lo + hi may overflow.
  const float half = hi / 2 - lo / 2;
  // All values equal: any positive scale codes them as 0.
  p.scale = std::max(half / 127.0f, std::max(std::abs(p.center), 1e-30f) * 1e-7f);
  return p;
}

int32_t Sq8Params::Encode(const float* x, size_t dim, int8_t* codes, uint64_t* clamped) const {
  const float inv = 1.0f / scale;
  int32_t sum = 0;
  uint64_t out = 0;
  for (size_t i = 0; i < dim; ++i) {
    float c = std::nearbyint((x[i] - center) * inv);
    if (std::isnan(c)) c = 0;  // Callers refuse NaN values; never UB here.
    const float kept = std::clamp(c, -127.0f, 127.0f);
    out += kept != c;
    codes[i] = static_cast<int8_t>(kept);
    sum += codes[i];
  }
  *clamped += out;
  return sum;
}

}  // namespace quiver::ann
