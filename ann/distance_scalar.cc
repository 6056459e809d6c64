// Portable reference kernels. Four independent accumulators let the compiler
// pipeline the loop without reassociating floating point.
#include "ann/distance_internal.h"

namespace quiver::ann::internal {
namespace {

float DotScalar(const float* a, const float* b, size_t n) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

float L2SquaredScalar(const float* a, const float* b, size_t n) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float d0 = a[i] - b[i], d1 = a[i + 1] - b[i + 1];
    const float d2 = a[i + 2] - b[i + 2], d3 = a[i + 3] - b[i + 3];
    s0 += d0 * d0;
    s1 += d1 * d1;
    s2 += d2 * d2;
    s3 += d3 * d3;
  }
  for (; i < n; ++i) {
    const float d = a[i] - b[i];
    s0 += d * d;
  }
  return (s0 + s1) + (s2 + s3);
}

float Sq8DotScalar(const uint8_t* a, const uint8_t* b, const float* center, const float* scale,
                   size_t n) {
  float s = 0;
  for (size_t i = 0; i < n; ++i) {
    const float x = center[i] + scale[i] * static_cast<float>(int{a[i]} - 128);
    const float y = center[i] + scale[i] * static_cast<float>(int{b[i]} - 128);
    s += x * y;
  }
  return s;
}

float Sq8L2SquaredScalar(const uint8_t* a, const uint8_t* b, const float* scale, size_t n) {
  float s = 0;
  for (size_t i = 0; i < n; ++i) {
    const float d = scale[i] * static_cast<float>(int{a[i]} - int{b[i]});
    s += d * d;
  }
  return s;
}

int32_t DotU8I8Scalar(const uint8_t* a, const int8_t* b, size_t n) {
  int32_t s = 0;
  for (size_t i = 0; i < n; ++i) s += int32_t{a[i]} * int32_t{b[i]};
  return s;
}

// Bit counting without the popcnt instruction (the baseline x86-64 target
// lacks it): the classic SWAR sum, the reference the others are tested on.
uint32_t HammingScalar(const uint64_t* a, const uint64_t* b, size_t words) {
  uint32_t s = 0;
  for (size_t i = 0; i < words; ++i) {
    uint64_t x = a[i] ^ b[i];
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    s += static_cast<uint32_t>((x * 0x0101010101010101ull) >> 56);
  }
  return s;
}

}  // namespace

const DistanceKernels kScalarKernels = {"scalar",       &DotScalar,    &L2SquaredScalar,
                                        &DotU8I8Scalar, &Sq8DotScalar, &Sq8L2SquaredScalar,
                                        &HammingScalar};

}  // namespace quiver::ann::internal
