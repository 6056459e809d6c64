// AVX-512F/BW kernels: two 16-wide accumulators and a masked tail, so any n
// needs no scalar loop.
#include "ann/distance_internal.h"

#if defined(QUIVER_X86_KERNELS)
#include <immintrin.h>

#include "ann/hamming_popcnt.h"

namespace quiver::ann::internal {
namespace {

inline __mmask16 Mask16(size_t left) {
  return left >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
}

// The float kernels' common loop: step(i, mask, acc) adds values i .. i + 15
// (those the mask keeps) to acc; two accumulators, 32 values a round, then
// masked steps of 16, so any n needs no scalar loop.
template <typename Step>
inline float SumBy16(size_t n, Step step) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = step(i, __mmask16(0xFFFF), acc0);
    acc1 = step(i + 16, __mmask16(0xFFFF), acc1);
  }
  for (; i < n; i += 16) acc0 = step(i, Mask16(n - i), acc0);
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

float DotAvx512(const float* a, const float* b, size_t n) {
  return SumBy16(n, [&](size_t i, __mmask16 m, __m512 acc) {
    return _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc);
  });
}

float L2SquaredAvx512(const float* a, const float* b, size_t n) {
  return SumBy16(n, [&](size_t i, __mmask16 m, __m512 acc) {
    const __m512 d =
        _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
    return _mm512_fmadd_ps(d, d, acc);
  });
}

// Codes widened to int16 (32 per register), multiplied and pair-summed by
// vpmaddwd; the tail is a masked load of the last < 32 codes.
inline __mmask32 Mask32(size_t left) {
  return left >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((1u << left) - 1);
}
inline __m512i LoadU8AsI16(const uint8_t* p, size_t left) {
  return _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(Mask32(left), p));
}
inline __m512i LoadI8AsI16(const int8_t* p, size_t left) {
  return _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(Mask32(left), p));
}

int32_t DotU8I8Avx512(const uint8_t* a, const int8_t* b, size_t n) {
  __m512i acc0 = _mm512_setzero_si512(), acc1 = _mm512_setzero_si512();
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    acc0 =
        _mm512_add_epi32(acc0, _mm512_madd_epi16(LoadU8AsI16(a + i, 32), LoadI8AsI16(b + i, 32)));
    acc1 = _mm512_add_epi32(
        acc1, _mm512_madd_epi16(LoadU8AsI16(a + i + 32, 32), LoadI8AsI16(b + i + 32, 32)));
  }
  for (; i < n; i += 32) {
    acc0 = _mm512_add_epi32(
        acc0, _mm512_madd_epi16(LoadU8AsI16(a + i, n - i), LoadI8AsI16(b + i, n - i)));
  }
  return _mm512_reduce_add_epi32(_mm512_add_epi32(acc0, acc1));
}

// AVX512-VNNI: vpdpbusd multiplies 64 unsigned by 64 signed bytes and adds
// each group of four products to a 32-bit lane, exactly (no saturation).
__attribute__((target("avx512vnni"))) int32_t DotU8I8Vnni(const uint8_t* a, const int8_t* b,
                                                          size_t n) {
  __m512i acc0 = _mm512_setzero_si512(), acc1 = _mm512_setzero_si512();
  size_t i = 0;
  for (; i + 128 <= n; i += 128) {
    acc0 = _mm512_dpbusd_epi32(acc0, _mm512_loadu_si512(a + i), _mm512_loadu_si512(b + i));
    acc1 =
        _mm512_dpbusd_epi32(acc1, _mm512_loadu_si512(a + i + 64), _mm512_loadu_si512(b + i + 64));
  }
  for (; i < n; i += 64) {
    const __mmask64 m = n - i >= 64 ? ~__mmask64{0} : (__mmask64{1} << (n - i)) - 1;
    acc0 = _mm512_dpbusd_epi32(acc0, _mm512_maskz_loadu_epi8(m, a + i),
                               _mm512_maskz_loadu_epi8(m, b + i));
  }
  return _mm512_reduce_add_epi32(_mm512_add_epi32(acc0, acc1));
}

// Sixteen stored codes (fewer at the tail, masked) widened to int32 lanes.
inline __m512i LoadU8AsI32(const uint8_t* p, __mmask16 m) {
  return _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, p));
}

float Sq8DotAvx512(const uint8_t* a, const uint8_t* b, const float* center, const float* scale,
                   size_t n) {
  const __m512i bias = _mm512_set1_epi32(128);
  return SumBy16(n, [&](size_t i, __mmask16 m, __m512 acc) {
    const __m512 c = _mm512_maskz_loadu_ps(m, center + i), s = _mm512_maskz_loadu_ps(m, scale + i);
    // Masked-off lanes: codes 0 and scale 0, so x = y = 0.
    const __m512 x =
        _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(LoadU8AsI32(a + i, m), bias)), s, c);
    const __m512 y =
        _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(LoadU8AsI32(b + i, m), bias)), s, c);
    return _mm512_fmadd_ps(x, y, acc);
  });
}

float Sq8L2SquaredAvx512(const uint8_t* a, const uint8_t* b, const float* scale, size_t n) {
  return SumBy16(n, [&](size_t i, __mmask16 m, __m512 acc) {
    const __m512 d = _mm512_mul_ps(
        _mm512_cvtepi32_ps(_mm512_sub_epi32(LoadU8AsI32(a + i, m), LoadU8AsI32(b + i, m))),
        _mm512_maskz_loadu_ps(m, scale + i));
    return _mm512_fmadd_ps(d, d, acc);
  });
}

const DistanceKernels kAvx512 = {"avx512",       &DotAvx512,    &L2SquaredAvx512,
                                 &DotU8I8Avx512, &Sq8DotAvx512, &Sq8L2SquaredAvx512,
                                 &HammingPopcnt};
const DistanceKernels kAvx512Vnni = {"avx512vnni",  &DotAvx512,    &L2SquaredAvx512,
                                     &DotU8I8Vnni,  &Sq8DotAvx512, &Sq8L2SquaredAvx512,
                                     &HammingPopcnt};

}  // namespace

const DistanceKernels* const kAvx512Kernels = &kAvx512;
const DistanceKernels* const kAvx512VnniKernels = &kAvx512Vnni;

}  // namespace quiver::ann::internal
#else
namespace quiver::ann::internal {
const DistanceKernels* const kAvx512Kernels = nullptr;
const DistanceKernels* const kAvx512VnniKernels = nullptr;
}  // namespace quiver::ann::internal
#endif
