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

Sq8Params Sq8Params::Train(const float* vectors, size_t count, size_t dim) {
  Sq8Params p;
  p.center.resize(dim);
  p.scale.resize(dim);
  // Each dimension's extreme 0.01 % on either side is clamped: one stray
  // value must not stretch its dimension's range (and coarsen its codes).
  const size_t cut = count / 10000;
  std::vector<float> column(count);
  for (size_t d = 0; d < dim; ++d) {
    for (size_t i = 0; i < count; ++i) column[i] = vectors[i * dim + d];
    std::nth_element(column.begin(), column.begin() + cut, column.end());
    const float lo = column[cut];
    std::nth_element(column.begin(), column.end() - 1 - cut, column.end());
    const float hi = column[count - 1 - cut];
    p.center[d] = lo / 2 + hi / 2;  // Halved first: lo + hi may overflow.
    const float half = hi / 2 - lo / 2;
    // All values equal: any positive scale codes them as 0.
    p.scale[d] = std::max(half / 127.0f, std::max(std::abs(p.center[d]), 1e-30f) * 1e-7f);
  }
  return p;
}

Sq8Params Sq8Params::Uniform(float center, float scale, size_t dim) {
  Sq8Params p;
  p.center.assign(dim, center);
  p.scale.assign(dim, scale);
  return p;
}

float Sq8Params::Encode(const float* x, uint8_t* codes, uint64_t* clamped) const {
  double norm2 = 0;
  uint64_t out = 0;
  for (size_t d = 0; d < scale.size(); ++d) {
    float c = std::nearbyint((x[d] - center[d]) / scale[d]);
    if (std::isnan(c)) c = 0;  // Callers refuse NaN values; never UB here.
    const float kept = std::clamp(c, -127.0f, 127.0f);
    out += kept != c;
    codes[d] = static_cast<uint8_t>(static_cast<int>(kept) + 128);
    const double v = Decode(d, codes[d]);
    norm2 += v * v;
  }
  *clamped += out;
  return static_cast<float>(norm2);
}

template <typename Value>
Sq8Query Sq8Params::QueryOf(Value value, int8_t* codes) const {
  // u[d] = q[d] * scale[d], coded with one step for the whole query.
  double offset = 0, norm2 = 0;
  float most = 0;
  for (size_t d = 0; d < scale.size(); ++d) {
    const float q = value(d);
    offset += double{q} * center[d];
    norm2 += double{q} * q;
    most = std::max(most, std::abs(q * scale[d]));
  }
  Sq8Query t;
  t.offset = static_cast<float>(offset);
  t.norm2 = static_cast<float>(norm2);
  if (!(most > 0) || !std::isfinite(most)) {  // A zero query: every code 0.
    std::fill(codes, codes + scale.size(), int8_t{0});
    return t;
  }
  t.step = most / 127.0f;
  const float inv = 127.0f / most;
  int64_t sum = 0;
  for (size_t d = 0; d < scale.size(); ++d) {
    // |k| <= 127 (to rounding): half away from zero, no library call.
    const float k = std::clamp(value(d) * scale[d] * inv, -127.0f, 127.0f);
    codes[d] = static_cast<int8_t>(k + (k >= 0 ? 0.5f : -0.5f));
    sum += codes[d];
  }
  // The stored codes are c + 128.
  t.offset = static_cast<float>(offset - 128.0 * t.step * static_cast<double>(sum));
  return t;
}

Sq8Query Sq8Params::EncodeQuery(const float* q, int8_t* codes) const {
  return QueryOf([q](size_t d) { return q[d]; }, codes);
}

Sq8Query Sq8Params::EncodeQueryFromCodes(const uint8_t* codes, int8_t* query_codes) const {
  return QueryOf([this, codes](size_t d) { return Decode(d, codes[d]); }, query_codes);
}

}  // namespace quiver::ann
