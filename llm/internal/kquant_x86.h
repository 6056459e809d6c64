// Helpers of the K-quant row kernels shared by the AVX2 and AVX-512 files
// (both compiled with AVX2). Internal linkage on purpose: each file gets
// its own copy compiled for its instruction set, so the linker can never
// hand an AVX-512 build of one to a CPU with only AVX2.
#ifndef QUIVER_LLM_INTERNAL_KQUANT_X86_H_
#define QUIVER_LLM_INTERNAL_KQUANT_X86_H_

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "llm/weight_tensor.h"
#include "nn/half.h"

namespace quiver::llm::internal {

// How many calls ahead the K-quant row kernels prefetch their rows (rows
// are consecutive, so the next calls read the rows right after these).
constexpr int kKAhead = 2;

// Prefetches the super-block at `blk` of the row kKAhead calls of R rows
// ahead: every line its `bytes` touch.
template <int R>
[[maybe_unused]] __attribute__((always_inline)) static inline void PrefetchKBlock(
    const uint8_t* blk, size_t row_bytes, size_t bytes) {
  const char* p = reinterpret_cast<const char*>(blk + kKAhead * R * row_bytes);
  for (size_t at = 0; at < bytes; at += 64) _mm_prefetch(p + at, _MM_HINT_T0);
  _mm_prefetch(p + bytes - 1, _MM_HINT_T0);
}

// KScaleMin's eight sub-block scales and mins of a Q4_K / Q5_K
// super-block (its 12 scale bytes at s), times d and dmin: the same float
// products, the 6-bit fields pulled out of 32-bit words at once (decoding
// them one at a time took more time than the super-block's dots).
[[maybe_unused]] __attribute__((always_inline)) static inline void KScalesMins8(const uint8_t* s,
                                                                                float d, float dmin,
                                                                                float* dsc,
                                                                                float* dmn) {
  uint32_t w0, w1, w2;  // Bytes 0-3, 4-7, 8-11.
  std::memcpy(&w0, s, 4);
  std::memcpy(&w1, s + 4, 4);
  std::memcpy(&w2, s + 8, 4);
  // j < 4: scale s[j] & 63, min s[j + 4] & 63; j >= 4: scale the low
  // nibble of s[j + 4] and the top two bits of s[j - 4] above it, min the
  // high nibble of s[j + 4] and the top two bits of s[j].
  const uint64_t sc =
      uint64_t{w0 & 0x3F3F3F3Fu} | uint64_t{(w2 & 0x0F0F0F0Fu) | ((w0 >> 2) & 0x30303030u)} << 32;
  const uint64_t m = uint64_t{w1 & 0x3F3F3F3Fu} |
                     uint64_t{((w2 >> 4) & 0x0F0F0F0Fu) | ((w1 >> 2) & 0x30303030u)} << 32;
  const auto widen = [](uint64_t bytes) {
    return _mm256_cvtepi32_ps(
        _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(bytes))));
  };
  _mm256_storeu_ps(dsc, _mm256_mul_ps(_mm256_set1_ps(d), widen(sc)));
  _mm256_storeu_ps(dmn, _mm256_mul_ps(_mm256_set1_ps(dmin), widen(m)));
}

// Q6_K's sixteen run scales (int8 at s) times d: the same float products.
[[maybe_unused]] __attribute__((always_inline)) static inline void Q6KScales16(const uint8_t* s,
                                                                               float d,
                                                                               float* dsc) {
  const __m256 dv = _mm256_set1_ps(d);
  for (int h = 0; h < 2; ++h) {
    const __m256i sc =
        _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(s + 8 * h)));
    _mm256_storeu_ps(dsc + 8 * h, _mm256_mul_ps(dv, _mm256_cvtepi32_ps(sc)));
  }
}

[[maybe_unused]] static inline float HalfAtX86(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return nn::HalfToFloat(h);
}

// Super-block b of R consecutive Q4_K / Q5_K rows (kBytes each, rows
// row_bytes apart): prefetches it kKAhead calls ahead and decodes each
// row's scales and mins (KScalesMins8) into dsc[r], dmn[r].
template <int R, size_t kBytes>
[[maybe_unused]] __attribute__((always_inline)) static inline void Q45KBlockStart(
    const uint8_t* blocks, size_t row_bytes, int b, float (*dsc)[8], float (*dmn)[8]) {
  for (int r = 0; r < R; ++r) {
    const uint8_t* blk = blocks + r * row_bytes + b * kBytes;
    PrefetchKBlock<R>(blk, row_bytes, kBytes);
    KScalesMins8(blk + 4, HalfAtX86(blk), HalfAtX86(blk + 2), dsc[r], dmn[r]);
  }
}

// The same for Q6_K (210-byte super-blocks): its run scales into dsc[r].
template <int R>
[[maybe_unused]] __attribute__((always_inline)) static inline void Q6KBlockStart(
    const uint8_t* blocks, size_t row_bytes, int b, float (*dsc)[16]) {
  for (int r = 0; r < R; ++r) {
    const uint8_t* blk = blocks + r * row_bytes + b * 210;
    PrefetchKBlock<R>(blk, row_bytes, 210);
    Q6KScales16(blk + 192, HalfAtX86(blk + 208), dsc[r]);
  }
}

// Calls R rows' kernel for `type`: kQ4K, kQ5K, kQ6K (blocks, x, n, out), or
// kOther (the portable single-row kernel) row by row for any other type.
template <int R, auto kQ4K, auto kQ5K, auto kQ6K, auto kOther>
[[maybe_unused]] static inline void DispatchKRows(WeightTensor::Type type, const uint8_t* blocks,
                                                  const float* x, int n, float* out) {
  switch (type) {
    case WeightTensor::Type::kQ4_K:
      return kQ4K(blocks, x, n, out);
    case WeightTensor::Type::kQ5_K:
      return kQ5K(blocks, x, n, out);
    case WeightTensor::Type::kQ6_K:
      return kQ6K(blocks, x, n, out);
    default:
      for (int r = 0; r < R; ++r) {
        out[r] = kOther(type, blocks + r * (n / 256) * WeightTensor::KBlockBytes(type), x, n);
      }
  }
}

}  // namespace quiver::llm::internal

#endif  // QUIVER_LLM_INTERNAL_KQUANT_X86_H_
