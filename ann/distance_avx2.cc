// AVX2 + FMA kernels: two 8-wide accumulators, masked-free tail in scalar.
#include "ann/distance_internal.h"

#if defined(QUIVER_X86_KERNELS)
#include <immintrin.h>

#include "ann/hamming_popcnt.h"

namespace quiver::ann::internal {
namespace {

inline float HorizontalSum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 0x55));
  return _mm_cvtss_f32(lo);
}

float DotAvx2(const float* a, const float* b, size_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  if (i + 8 <= n) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    i += 8;
  }
  float s = HorizontalSum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

float L2SquaredAvx2(const float* a, const float* b, size_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
    const __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
    acc0 = _mm256_fmadd_ps(d0, d0, acc0);
    acc1 = _mm256_fmadd_ps(d1, d1, acc1);
  }
  if (i + 8 <= n) {
    const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
    acc0 = _mm256_fmadd_ps(d, d, acc0);
    i += 8;
  }
  float s = HorizontalSum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) {
    const float d = a[i] - b[i];
    s += d * d;
  }
  return s;
}

inline int32_t HorizontalSumI32(__m256i v) {
  __m128i lo = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  lo = _mm_add_epi32(lo, _mm_shuffle_epi32(lo, 0x4e));
  lo = _mm_add_epi32(lo, _mm_shuffle_epi32(lo, 0xb1));
  return _mm_cvtsi128_si32(lo);
}

// Codes widened to int16 (unsigned and signed), multiplied and pair-summed by
// vpmaddwd: exact (vpmaddubsw would saturate 255 x 127 pairs).
inline __m256i LoadU8AsI16(const uint8_t* p) {
  return _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m256i LoadI8AsI16(const int8_t* p) {
  return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

int32_t DotU8I8Avx2(const uint8_t* a, const int8_t* b, size_t n) {
  __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(LoadU8AsI16(a + i), LoadI8AsI16(b + i)));
    acc1 =
        _mm256_add_epi32(acc1, _mm256_madd_epi16(LoadU8AsI16(a + i + 16), LoadI8AsI16(b + i + 16)));
  }
  int32_t s = HorizontalSumI32(_mm256_add_epi32(acc0, acc1));
  for (; i < n; ++i) s += int32_t{a[i]} * int32_t{b[i]};
  return s;
}

// Eight stored codes widened to int32 lanes.
inline __m256i LoadU8AsI32(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

float Sq8DotAvx2(const uint8_t* a, const uint8_t* b, const float* center, const float* scale,
                 size_t n) {
  const __m256i bias = _mm256_set1_epi32(128);
  __m256 acc = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 c = _mm256_loadu_ps(center + i), s = _mm256_loadu_ps(scale + i);
    const __m256 x =
        _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(LoadU8AsI32(a + i), bias)), s, c);
    const __m256 y =
        _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(LoadU8AsI32(b + i), bias)), s, c);
    acc = _mm256_fmadd_ps(x, y, acc);
  }
  float sum = HorizontalSum(acc);
  for (; i < n; ++i) {
    const float x = center[i] + scale[i] * static_cast<float>(int{a[i]} - 128);
    const float y = center[i] + scale[i] * static_cast<float>(int{b[i]} - 128);
    sum += x * y;
  }
  return sum;
}

float Sq8L2SquaredAvx2(const uint8_t* a, const uint8_t* b, const float* scale, size_t n) {
  __m256 acc = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 d =
        _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(LoadU8AsI32(a + i), LoadU8AsI32(b + i))),
                      _mm256_loadu_ps(scale + i));
    acc = _mm256_fmadd_ps(d, d, acc);
  }
  float sum = HorizontalSum(acc);
  for (; i < n; ++i) {
    const float d = scale[i] * static_cast<float>(int{a[i]} - int{b[i]});
    sum += d * d;
  }
  return sum;
}

const DistanceKernels kAvx2 = {"avx2",      &DotAvx2,          &L2SquaredAvx2, &DotU8I8Avx2,
                               &Sq8DotAvx2, &Sq8L2SquaredAvx2, &HammingPopcnt};

}  // namespace

const DistanceKernels* const kAvx2Kernels = &kAvx2;

}  // namespace quiver::ann::internal
#else
namespace quiver::ann::internal {
const DistanceKernels* const kAvx2Kernels = nullptr;
}
#endif
