// The row kernels for stored types: dot products with float16, bfloat16,
// Q8_0, Q4_0 and K-quant rows read in place, and their conversions to
// float32, each in a portable form and, where it pays, AVX-512 / AVX2 forms
// chosen once at run time (see internal/row_kernels.h).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/status_macros.h"
#include "common/strings.h"
#include "llm/internal/row_kernels.h"
#include "nn/half.h"

namespace quiver::llm::internal {
using ::quiver::nn::Bf16ToFloat;
using ::quiver::nn::FloatToHalf;
using ::quiver::nn::HalfToFloat;

namespace {

// Dot with a Q8_0 row (n a multiple of 32) or a float16 row: each weight
// is converted to the float32 value a float32 copy holds (d * q rounded;
// halves exactly) and the products are summed exactly as Dot sums them (16
// lanes, one fused multiply-add each per step, lanes added in order). No
// float32 copy of the row is written. Written with intrinsics for AVX-512
// and AVX2 + FMA (compilers turn the portable form into slow code), chosen
// once at run time; the portable form is the reference.
float DotQ8Portable(const int8_t* q, const float* scales, const float* b, int n) {
  float acc[16] = {0};
  for (int j = 0; j + 16 <= n; j += 16) {
    const float d = scales[j / 32];
    for (int l = 0; l < 16; ++l)
      acc[l] = std::fma(d * static_cast<float>(q[j + l]), b[j + l], acc[l]);
  }
  float sum = 0.0f;
  for (int l = 0; l < 16; ++l) sum += acc[l];
  return sum + 0.0f;  // Dot's (empty) tail.
}

// Q4_0 block k's value l (0..31) as float32: (nibble - 8) * scale.
float Q4Value(const uint8_t* packed, float d, int l) {
  const uint8_t byte = packed[l % 16];
  return d * static_cast<float>((l < 16 ? byte & 0x0F : byte >> 4) - 8);
}

float DotQ4Portable(const uint8_t* packed, const float* scales, const float* b, int n) {
  float acc[16] = {0};
  for (int j = 0; j + 16 <= n; j += 16) {
    const uint8_t* blk = packed + (j / 32) * 16;
    const float d = scales[j / 32];
    for (int l = 0; l < 16; ++l) acc[l] = std::fma(Q4Value(blk, d, j % 32 + l), b[j + l], acc[l]);
  }
  float sum = 0.0f;
  for (int l = 0; l < 16; ++l) sum += acc[l];
  return sum + 0.0f;
}

float Bf16ToFloat32(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// kBf16: bfloat16 values (the top half of a float32), else IEEE halves.
template <bool kBf16>
float DotHalfPortable(const uint16_t* h, const float* b, int n) {
  auto convert = [](uint16_t v) { return kBf16 ? Bf16ToFloat32(v) : HalfToFloat(v); };
  float acc[16] = {0};
  int j = 0;
  for (; j + 16 <= n; j += 16) {
    for (int l = 0; l < 16; ++l) acc[l] = std::fma(convert(h[j + l]), b[j + l], acc[l]);
  }
  float tail = 0.0f;
  for (; j < n; ++j) tail = std::fma(convert(h[j]), b[j], tail);
  float sum = 0.0f;
  for (int l = 0; l < 16; ++l) sum += acc[l];
  return sum + tail;
}

// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized in their own inline
// functions (a known false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// R rows at once (row r at q + r * n, its scales at scales + r * n / 32):
// R independent accumulation chains, each row's in Dot's order.
template <int R>
__attribute__((target("avx512f"))) void DotQ8Avx512Rows(const int8_t* q, const float* scales,
                                                        const float* b, int n, float* out) {
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (int j = 0; j + 32 <= n; j += 32) {
    const __m512 b0 = _mm512_loadu_ps(b + j), b1 = _mm512_loadu_ps(b + j + 16);
    for (int r = 0; r < R; ++r) {
      const int8_t* qr = q + static_cast<size_t>(r) * n + j;
      const __m512 d = _mm512_set1_ps(scales[static_cast<size_t>(r) * (n / 32) + j / 32]);
      const __m512 w0 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(
                                             reinterpret_cast<const __m128i*>(qr)))));
      const __m512 w1 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(
                                             reinterpret_cast<const __m128i*>(qr + 16)))));
      acc[r] = _mm512_fmadd_ps(w0, b0, acc[r]);
      acc[r] = _mm512_fmadd_ps(w1, b1, acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, acc[r]);
    out[r] = SumLanes(lanes) + 0.0f;
  }
}
__attribute__((target("avx512f"))) float DotQ8Avx512(const int8_t* q, const float* scales,
                                                     const float* b, int n) {
  float out;
  DotQ8Avx512Rows<1>(q, scales, b, n, &out);
  return out;
}

__attribute__((target("avx2,fma"))) float DotQ8Avx2(const int8_t* q, const float* scales,
                                                    const float* b, int n) {
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();  // Lanes 0-7, 8-15.
  for (int j = 0; j + 16 <= n; j += 16) {
    const __m256 d = _mm256_set1_ps(scales[j / 32]);
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + j));
    const __m256 w0 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(raw)));
    const __m256 w1 =
        _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(raw, 8))));
    lo = _mm256_fmadd_ps(w0, _mm256_loadu_ps(b + j), lo);
    hi = _mm256_fmadd_ps(w1, _mm256_loadu_ps(b + j + 8), hi);
  }
  alignas(32) float lanes[16];
  _mm256_store_ps(lanes, lo);
  _mm256_store_ps(lanes + 8, hi);
  return SumLanes(lanes) + 0.0f;
}

template <int R>
__attribute__((target("avx512f"))) void DotQ4Avx512Rows(const uint8_t* packed, const float* scales,
                                                        const float* b, int n, float* out) {
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  const __m512i eight = _mm512_set1_epi32(8), low = _mm512_set1_epi32(0x0F);
  for (int j = 0; j + 32 <= n; j += 32) {
    const __m512 b0 = _mm512_loadu_ps(b + j), b1 = _mm512_loadu_ps(b + j + 16);
    for (int r = 0; r < R; ++r) {
      const __m512 d = _mm512_set1_ps(scales[static_cast<size_t>(r) * (n / 32) + j / 32]);
      const __m512i bytes = _mm512_cvtepu8_epi32(_mm_loadu_si128(
          reinterpret_cast<const __m128i*>(packed + static_cast<size_t>(r) * (n / 2) + j / 2)));
      const __m512 w0 = _mm512_mul_ps(
          d, _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_and_si512(bytes, low), eight)));
      const __m512 w1 = _mm512_mul_ps(
          d, _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(bytes, 4), eight)));
      acc[r] = _mm512_fmadd_ps(w0, b0, acc[r]);
      acc[r] = _mm512_fmadd_ps(w1, b1, acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, acc[r]);
    out[r] = SumLanes(lanes) + 0.0f;
  }
}
__attribute__((target("avx512f"))) float DotQ4Avx512(const uint8_t* packed, const float* scales,
                                                     const float* b, int n) {
  float out;
  DotQ4Avx512Rows<1>(packed, scales, b, n, &out);
  return out;
}

__attribute__((target("avx2,fma"))) float DotQ4Avx2(const uint8_t* packed, const float* scales,
                                                    const float* b, int n) {
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();  // Lanes 0-7, 8-15.
  const __m256i eight = _mm256_set1_epi32(8), mask = _mm256_set1_epi32(0x0F);
  for (int j = 0; j + 16 <= n; j += 16) {
    const __m256 d = _mm256_set1_ps(scales[j / 32]);
    const uint8_t* blk = packed + (j / 32) * 16;
    const int shift = (j % 32) == 0 ? 0 : 4;  // Low nibbles first, then high.
    const __m256i b0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk)));
    const __m256i b1 =
        _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + 8)));
    const __m256i v0 =
        _mm256_sub_epi32(_mm256_and_si256(_mm256_srli_epi32(b0, shift), mask), eight);
    const __m256i v1 =
        _mm256_sub_epi32(_mm256_and_si256(_mm256_srli_epi32(b1, shift), mask), eight);
    lo = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(v0)), _mm256_loadu_ps(b + j), lo);
    hi = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(v1)), _mm256_loadu_ps(b + j + 8), hi);
  }
  alignas(32) float lanes[16];
  _mm256_store_ps(lanes, lo);
  _mm256_store_ps(lanes + 8, hi);
  return SumLanes(lanes) + 0.0f;
}

template <bool kBf16>
__attribute__((target("avx512f"))) float DotHalfAvx512(const uint16_t* h, const float* b, int n) {
  __m512 acc = _mm512_setzero_ps();
  int j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(h + j));
    const __m512 w = kBf16 ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16))
                           : _mm512_cvtph_ps(raw);
    acc = _mm512_fmadd_ps(w, _mm512_loadu_ps(b + j), acc);
  }
  float tail = 0.0f;
  for (; j < n; ++j) tail = std::fma(kBf16 ? Bf16ToFloat32(h[j]) : HalfToFloat(h[j]), b[j], tail);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, acc);
  return SumLanes(lanes) + tail;
}

template <bool kBf16>
__attribute__((target("avx2,fma,f16c"), always_inline)) inline __m256 HalfsToFloats8(
    const uint16_t* p) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return kBf16 ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16))
               : _mm256_cvtph_ps(raw);
}

template <bool kBf16>
__attribute__((target("avx2,fma,f16c"))) float DotHalfAvx2(const uint16_t* h, const float* b,
                                                           int n) {
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
  int j = 0;
  for (; j + 16 <= n; j += 16) {
    lo = _mm256_fmadd_ps(HalfsToFloats8<kBf16>(h + j), _mm256_loadu_ps(b + j), lo);
    hi = _mm256_fmadd_ps(HalfsToFloats8<kBf16>(h + j + 8), _mm256_loadu_ps(b + j + 8), hi);
  }
  float tail = 0.0f;
  for (; j < n; ++j) tail = std::fma(kBf16 ? Bf16ToFloat32(h[j]) : HalfToFloat(h[j]), b[j], tail);
  alignas(32) float lanes[16];
  _mm256_store_ps(lanes, lo);
  _mm256_store_ps(lanes + 8, hi);
  return SumLanes(lanes) + tail;
}

// float16 -> float32 for a block of values (batched steps convert each
// 4-row block once). _Float16 casts would call libgcc per value on CPUs
// without AVX512-FP16 (4 streams of an F16 model: 17 tok/s, one stream 85).
__attribute__((target("avx512f"))) void DequantizeF16Avx512(const uint16_t* h, size_t n,
                                                            float* out) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm512_storeu_ps(out + i,
                     _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(h + i))));
  }
  for (; i < n; ++i) out[i] = HalfToFloat(h[i]);
}

__attribute__((target("avx2,f16c"))) void DequantizeF16Avx2(const uint16_t* h, size_t n,
                                                            float* out) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(out + i,
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i))));
  }
  for (; i < n; ++i) out[i] = HalfToFloat(h[i]);
}

#pragma GCC diagnostic pop

void DequantizeF16Portable(const uint16_t* h, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) out[i] = HalfToFloat(h[i]);
}

using DequantizeF16Fn = void (*)(const uint16_t*, size_t, float*);
DequantizeF16Fn PickDequantizeF16() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return DequantizeF16Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c")) return DequantizeF16Avx2;
  return DequantizeF16Portable;
}

using DotQ8Fn = float (*)(const int8_t*, const float*, const float*, int);
using DotF16Fn = float (*)(const uint16_t*, const float*, int);
DotQ8Fn PickDotQ8() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return DotQ8Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return DotQ8Avx2;
  return DotQ8Portable;
}
using DotQ4Fn = float (*)(const uint8_t*, const float*, const float*, int);
DotQ4Fn PickDotQ4() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return DotQ4Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return DotQ4Avx2;
  return DotQ4Portable;
}

template <bool kBf16>
DotF16Fn PickDotHalf() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return DotHalfAvx512<kBf16>;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c")) {
    return DotHalfAvx2<kBf16>;
  }
  return DotHalfPortable<kBf16>;
}

// ggml's K-quant super-blocks (256 values). Q4_K / Q5_K: half d, half
// dmin, 12 bytes of 6-bit sub-block scales and mins (8 sub-blocks of 32),
// [Q5_K: 32 bytes of fifth bits], 128 bytes of nibbles; value =
// d * scale * q - dmin * min. Q6_K: 128 bytes of low nibbles, 64 of high
// 2-bit pairs, 16 int8 scales (sub-blocks of 16), half d; value =
// d * scale * (q - 32).
// The float16 stored at p (a K-quant super-block's d or dmin; p need not
// be aligned).
float HalfAt(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return HalfToFloat(h);
}

void KScaleMin(int j, const uint8_t* s, uint8_t* scale, uint8_t* min) {
  if (j < 4) {
    *scale = s[j] & 63;
    *min = s[j + 4] & 63;
  } else {
    *scale = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    *min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Written as simple loops over 32 values so that they vectorise.
__attribute__((target_clones("avx512f", "fma", "default"))) void DequantizeQ45K(const uint8_t* blk,
                                                                                bool five_bit,
                                                                                float* out) {
  const float d = HalfAt(blk), dmin = HalfAt(blk + 2);
  const uint8_t* scales = blk + 4;
  const uint8_t* high = blk + 16;  // Q5_K only.
  const uint8_t* q = blk + 16 + (five_bit ? 32 : 0);
  for (int g = 0; g < 4; ++g) {  // Groups of 64: two sub-blocks sharing 32 bytes.
    uint8_t sc, m;
    KScaleMin(2 * g, scales, &sc, &m);
    const float d1 = d * sc, m1 = dmin * m;
    KScaleMin(2 * g + 1, scales, &sc, &m);
    const float d2 = d * sc, m2 = dmin * m;
    uint8_t lo[32], hi[32];
    for (int l = 0; l < 32; ++l) {
      lo[l] = q[l] & 0xF;
      hi[l] = q[l] >> 4;
    }
    if (five_bit) {
      for (int l = 0; l < 32; ++l) {
        lo[l] |= ((high[l] >> (2 * g)) & 1) << 4;
        hi[l] |= ((high[l] >> (2 * g + 1)) & 1) << 4;
      }
    }
    // One rounding (a fused multiply-subtract) in every kernel, so the
    // fused dot products below get exactly these values.
    // (Converted first: GCC 12 does not vectorise the conversion inside the
    // fused multiply-subtract.)
    float lof[32], hif[32];
    for (int l = 0; l < 32; ++l) {
      lof[l] = static_cast<float>(lo[l]);
      hif[l] = static_cast<float>(hi[l]);
    }
#pragma omp simd
    for (int l = 0; l < 32; ++l) out[64 * g + l] = std::fma(d1, lof[l], -m1);
#pragma omp simd
    for (int l = 0; l < 32; ++l) out[64 * g + 32 + l] = std::fma(d2, hif[l], -m2);
    q += 32;
  }
}

__attribute__((target_clones("avx512f", "fma", "default"))) void DequantizeQ6K(const uint8_t* blk,
                                                                               float* out) {
  const uint8_t* ql = blk;
  const uint8_t* qh = blk + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192);
  const float d = HalfAt(blk + 208);
  for (int half = 0; half < 2; ++half) {  // 128 values each: four runs of 32.
    int8_t q[4][32];
    for (int l = 0; l < 32; ++l) {
      q[0][l] = static_cast<int8_t>(((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32);
      q[1][l] = static_cast<int8_t>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
      q[2][l] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
      q[3][l] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
    }
    for (int r = 0; r < 4; ++r) {  // Run r uses scales 2r (first 16) and 2r + 1.
      const float s0 = d * static_cast<float>(sc[2 * r]),
                  s1 = d * static_cast<float>(sc[2 * r + 1]);
      for (int l = 0; l < 16; ++l) out[32 * r + l] = s0 * static_cast<float>(q[r][l]);
      for (int l = 16; l < 32; ++l) out[32 * r + l] = s1 * static_cast<float>(q[r][l]);
    }
    out += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

}  // namespace

__attribute__((target_clones("avx512f", "fma", "default"))) void DequantizeQ8(const int8_t* q,
                                                                              const float* scales,
                                                                              size_t blocks,
                                                                              float* out) {
  for (size_t b = 0; b < blocks; ++b) {
    const float d = scales[b];
    for (int k = 0; k < 32; ++k) out[b * 32 + k] = d * static_cast<float>(q[b * 32 + k]);
  }
}

__attribute__((target_clones("avx512f", "fma", "default"))) void DequantizeQ4(const uint8_t* packed,
                                                                              const float* scales,
                                                                              size_t blocks,
                                                                              float* out) {
  for (size_t b = 0; b < blocks; ++b) {
    const float d = scales[b];
    const uint8_t* blk = packed + b * 16;
    for (int k = 0; k < 16; ++k) {
      out[b * 32 + k] = d * static_cast<float>((blk[k] & 0x0F) - 8);
      out[b * 32 + 16 + k] = d * static_cast<float>((blk[k] >> 4) - 8);
    }
  }
}

void DequantizeK(WeightTensor::Type type, const uint8_t* blocks, size_t count, float* out) {
  const size_t bytes = WeightTensor::KBlockBytes(type);
  for (size_t b = 0; b < count; ++b) {
    const uint8_t* blk = blocks + b * bytes;
    if (type == WeightTensor::Type::kQ6_K) {
      DequantizeQ6K(blk, out + 256 * b);
    } else {
      DequantizeQ45K(blk, type == WeightTensor::Type::kQ5_K, out + 256 * b);
    }
  }
}

namespace {

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// Dot with Q4_K / Q5_K super-blocks without a float32 copy: each group of
// 64 values is two runs of 32 (low nibbles, then high nibbles, of the same
// 32 bytes; Q5_K adds a fifth bit from `high`), converted 16 at a time to
// exactly DequantizeQ45K's values and accumulated in Dot's lanes and order.
template <bool kFive>
__attribute__((target("avx512f"))) float DotQ45KAvx512(const uint8_t* blocks, const float* x,
                                                       int n) {
  constexpr size_t kBytes = kFive ? 176 : 144;
  const __m512i low4 = _mm512_set1_epi32(0xF), one = _mm512_set1_epi32(1);
  __m512 acc = _mm512_setzero_ps();
  for (int b = 0; b < n / 256; ++b) {
    const uint8_t* blk = blocks + b * kBytes;
    const float d = HalfAt(blk), dmin = HalfAt(blk + 2);
    const uint8_t* scales = blk + 4;
    const uint8_t* high = blk + 16;
    const uint8_t* q = blk + 16 + (kFive ? 32 : 0);
    const float* xb = x + 256 * b;
    for (int g = 0; g < 4; ++g) {
      uint8_t sc, m;
      KScaleMin(2 * g, scales, &sc, &m);
      const __m512 d1 = _mm512_set1_ps(d * sc), m1 = _mm512_set1_ps(dmin * m);
      KScaleMin(2 * g + 1, scales, &sc, &m);
      const __m512 d2 = _mm512_set1_ps(d * sc), m2 = _mm512_set1_ps(dmin * m);
      __m512i lo[2], hi[2];
      for (int k = 0; k < 2; ++k) {
        const __m512i v =
            _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16 * k)));
        lo[k] = _mm512_and_si512(v, low4);
        hi[k] = _mm512_srli_epi32(v, 4);
        if (kFive) {
          const __m512i hb = _mm512_cvtepu8_epi32(
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(high + 16 * k)));
          lo[k] = _mm512_or_si512(
              lo[k], _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(hb, 2 * g), one), 4));
          hi[k] = _mm512_or_si512(
              hi[k], _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(hb, 2 * g + 1), one), 4));
        }
      }
      // Values 64g + 0..15, 16..31 (low nibbles), 32..47, 48..63 (high).
      for (int k = 0; k < 2; ++k) {
        const __m512 w = _mm512_fmsub_ps(d1, _mm512_cvtepi32_ps(lo[k]), m1);
        acc = _mm512_fmadd_ps(w, _mm512_loadu_ps(xb + 64 * g + 16 * k), acc);
      }
      for (int k = 0; k < 2; ++k) {
        const __m512 w = _mm512_fmsub_ps(d2, _mm512_cvtepi32_ps(hi[k]), m2);
        acc = _mm512_fmadd_ps(w, _mm512_loadu_ps(xb + 64 * g + 32 + 16 * k), acc);
      }
      q += 32;
    }
  }
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, acc);
  return SumLanes(lanes) + 0.0f;  // Dot's (empty) tail.
}

// The same for Q6_K: per 128 values, four runs of 32 whose 6-bit values
// come from `ql` nibbles and `qh` bit pairs, minus 32, times d * scale.
__attribute__((target("avx512f"))) float DotQ6KAvx512(const uint8_t* blocks, const float* x,
                                                      int n) {
  const __m512i low4 = _mm512_set1_epi32(0xF), three = _mm512_set1_epi32(3),
                bias = _mm512_set1_epi32(32);
  __m512 acc = _mm512_setzero_ps();
  for (int b = 0; b < n / 256; ++b) {
    const uint8_t* blk = blocks + b * 210;
    const uint8_t* ql = blk;
    const uint8_t* qh = blk + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192);
    const float d = HalfAt(blk + 208);
    const float* xb = x + 256 * b;
    for (int half = 0; half < 2; ++half) {
      for (int r = 0; r < 4; ++r) {
        for (int k = 0; k < 2; ++k) {  // Values 32r + 16k .. + 15 of this half.
          const int l = 16 * k;
          const __m512i lbits = _mm512_cvtepu8_epi32(
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(ql + l + (r % 2 == 1 ? 32 : 0))));
          const __m512i hbits =
              _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qh + l)));
          const __m512i nib = r < 2 ? _mm512_and_si512(lbits, low4) : _mm512_srli_epi32(lbits, 4);
          const __m512i top = _mm512_and_si512(_mm512_srli_epi32(hbits, 2 * r), three);
          const __m512i q = _mm512_sub_epi32(_mm512_or_si512(nib, _mm512_slli_epi32(top, 4)), bias);
          const __m512 scale = _mm512_set1_ps(d * static_cast<float>(sc[2 * r + k]));
          const __m512 w = _mm512_mul_ps(scale, _mm512_cvtepi32_ps(q));
          acc = _mm512_fmadd_ps(w, _mm512_loadu_ps(xb + 128 * half + 32 * r + l), acc);
        }
      }
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, acc);
  return SumLanes(lanes) + 0.0f;
}

#pragma GCC diagnostic pop

// The reference: the row converted, then Dot.
float DotKPortable(WeightTensor::Type type, const uint8_t* blocks, const float* x, int n) {
  thread_local AlignedFloats row;
  row.resize(n);
  DequantizeK(type, blocks, static_cast<size_t>(n) / 256, row.data());
  return Dot(row.data(), x, n);
}

}  // namespace

float DotK(WeightTensor::Type type, const uint8_t* blocks, const float* x, int n) {
  if (HasAvx512()) {
    switch (type) {
      case WeightTensor::Type::kQ4_K:
        return DotQ45KAvx512<false>(blocks, x, n);
      case WeightTensor::Type::kQ5_K:
        return DotQ45KAvx512<true>(blocks, x, n);
      case WeightTensor::Type::kQ6_K:
        return DotQ6KAvx512(blocks, x, n);
      default:
        break;
    }
  }
  return DotKPortable(type, blocks, x, n);
}

__attribute__((target_clones("avx512f", "fma", "default"))) void DequantizeBF16(const uint16_t* h,
                                                                                size_t n,
                                                                                float* out) {
  for (size_t i = 0; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(h[i]) << 16;
    std::memcpy(&out[i], &bits, 4);
  }
}

void DequantizeF16(const uint16_t* h, size_t n, float* out) {
  static const DequantizeF16Fn kernel = PickDequantizeF16();
  kernel(h, n, out);
}

void DotQ8x4(const int8_t* q, const float* scales, const float* x, int n, float* out) {
  if (HasAvx512()) return DotQ8Avx512Rows<4>(q, scales, x, n, out);
  for (int k = 0; k < 4; ++k)
    out[k] = DotQ8(q + static_cast<size_t>(k) * n, scales + k * (n / 32), x, n);
}

void DotQ4x4(const uint8_t* packed, const float* scales, const float* x, int n, float* out) {
  if (HasAvx512()) return DotQ4Avx512Rows<4>(packed, scales, x, n, out);
  for (int k = 0; k < 4; ++k) {
    out[k] = DotQ4(packed + static_cast<size_t>(k) * (n / 2), scales + k * (n / 32), x, n);
  }
}

float DotQ8(const int8_t* q, const float* scales, const float* x, int n) {
  static const DotQ8Fn dot = PickDotQ8();
  return dot(q, scales, x, n);
}

float DotQ4(const uint8_t* packed, const float* scales, const float* x, int n) {
  static const DotQ4Fn dot = PickDotQ4();
  return dot(packed, scales, x, n);
}

float DotF16(const uint16_t* h, const float* x, int n) {
  static const DotF16Fn dot = PickDotHalf<false>();
  return dot(h, x, n);
}

float DotBF16(const uint16_t* h, const float* x, int n) {
  static const DotF16Fn dot = PickDotHalf<true>();
  return dot(h, x, n);
}

absl::Status VerifyQuantKernels() {
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool f16c = avx2 && __builtin_cpu_supports("f16c");
  KernelTestData data;
  auto next = [&] { return data.Next(); };
  auto uniform = [&] { return data.Uniform(); };
  for (int n : {32, 64, 96, 768, 2048}) {
    std::vector<float> x(n), scales(n / 32);
    std::vector<int8_t> q8(n);
    std::vector<uint8_t> q4(n / 2);
    std::vector<uint16_t> half(n + 7), bf16(n + 7);  // + 7: tails past 16-lane steps.
    for (float& v : x) v = uniform();
    for (float& v : scales) v = uniform() * 0.1f;
    for (int8_t& v : q8) v = static_cast<int8_t>(next() % 255 - 127);
    for (uint8_t& v : q4) v = static_cast<uint8_t>(next());
    for (uint16_t& v : half) v = FloatToHalf(uniform());
    for (uint16_t& v : bf16)
      v = static_cast<uint16_t>(next() & 0x3FFF);  // Finite, small magnitudes.
    std::vector<float> xt(n + 7);
    for (float& v : xt) v = uniform();
    auto same = [](float a, float b) { return std::memcmp(&a, &b, 4) == 0; };
    const float q8_ref = DotQ8Portable(q8.data(), scales.data(), x.data(), n);
    const float q4_ref = DotQ4Portable(q4.data(), scales.data(), x.data(), n);
    const float f16_ref = DotHalfPortable<false>(half.data(), xt.data(), n + 7);
    const float bf16_ref = DotHalfPortable<true>(bf16.data(), xt.data(), n + 7);
    auto check = [&](bool ok, const char* what) -> absl::Status {
      if (ok) return absl::OkStatus();
      return absl::InternalError(StrCat(what, " differs from the portable kernel for n = ", n));
    };
    if (avx512) {
      RETURN_IF_ERROR(
          check(same(DotQ8Avx512(q8.data(), scales.data(), x.data(), n), q8_ref), "DotQ8Avx512"));
      RETURN_IF_ERROR(
          check(same(DotQ4Avx512(q4.data(), scales.data(), x.data(), n), q4_ref), "DotQ4Avx512"));
      RETURN_IF_ERROR(check(same(DotHalfAvx512<false>(half.data(), xt.data(), n + 7), f16_ref),
                            "DotHalfAvx512<f16>"));
      RETURN_IF_ERROR(check(same(DotHalfAvx512<true>(bf16.data(), xt.data(), n + 7), bf16_ref),
                            "DotHalfAvx512<bf16>"));
    }
    if (avx2) {
      RETURN_IF_ERROR(
          check(same(DotQ8Avx2(q8.data(), scales.data(), x.data(), n), q8_ref), "DotQ8Avx2"));
      RETURN_IF_ERROR(
          check(same(DotQ4Avx2(q4.data(), scales.data(), x.data(), n), q4_ref), "DotQ4Avx2"));
    }
    // Block conversion (batched steps): every value as the portable one.
    // Special values too: subnormals, signed zero, infinities.
    std::vector<uint16_t> halves = half;
    const uint16_t special[] = {0x0001, 0x83FF, 0x8000, 0x7C00, 0xFC00, 0x0400};
    for (size_t i = 0; i < std::size(special); ++i) halves[i * 5 % halves.size()] = special[i];
    std::vector<float> converted_ref(halves.size()), converted(halves.size());
    DequantizeF16Portable(halves.data(), halves.size(), converted_ref.data());
    auto same_values = [&] {
      return std::memcmp(converted.data(), converted_ref.data(),
                         converted.size() * sizeof(float)) == 0;
    };
    if (avx512) {
      DequantizeF16Avx512(halves.data(), halves.size(), converted.data());
      RETURN_IF_ERROR(check(same_values(), "DequantizeF16Avx512"));
    }
    if (f16c) {
      DequantizeF16Avx2(halves.data(), halves.size(), converted.data());
      RETURN_IF_ERROR(check(same_values(), "DequantizeF16Avx2"));
      RETURN_IF_ERROR(check(same(DotHalfAvx2<false>(half.data(), xt.data(), n + 7), f16_ref),
                            "DotHalfAvx2<f16>"));
      RETURN_IF_ERROR(check(same(DotHalfAvx2<true>(bf16.data(), xt.data(), n + 7), bf16_ref),
                            "DotHalfAvx2<bf16>"));
    }
    // And the float32 kernel on the same values, as the buffered path uses it.
    std::vector<float> w(n);
    for (int i = 0; i < n; ++i) w[i] = scales[i / 32] * static_cast<float>(q8[i]);
    RETURN_IF_ERROR(
        check(same(Dot(w.data(), x.data(), n), q8_ref), "Dot on converted Q8_0 values"));
  }
  // Four rows at once (the single-stream path of Q8_0 / Q4_0): each as the
  // portable single-row kernel gives it.
  for (int n : {32, 96, 768, 2080}) {
    const size_t n4 = 4 * static_cast<size_t>(n);
    std::vector<float> x(n), scales(n4 / 32);
    std::vector<int8_t> q8(n4);
    std::vector<uint8_t> q4(n4 / 2);
    for (float& v : x) v = uniform();
    for (float& v : scales) v = uniform() * 0.01f;
    for (int8_t& v : q8) v = static_cast<int8_t>(next());
    for (uint8_t& v : q4) v = static_cast<uint8_t>(next());
    float got8[4], got4[4];
    DotQ8x4(q8.data(), scales.data(), x.data(), n, got8);
    DotQ4x4(q4.data(), scales.data(), x.data(), n, got4);
    for (int k = 0; k < 4; ++k) {
      const size_t at = static_cast<size_t>(k) * n;
      const float want8 = DotQ8Portable(q8.data() + at, scales.data() + at / 32, x.data(), n);
      const float want4 = DotQ4Portable(q4.data() + at / 2, scales.data() + at / 32, x.data(), n);
      if (std::memcmp(&want8, &got8[k], sizeof want8) != 0 ||
          std::memcmp(&want4, &got4[k], sizeof want4) != 0) {
        return absl::InternalError(
            StrCat("a four-row Q8_0 / Q4_0 kernel differs from the single-row one for n = ", n,
                   ", row ", k));
      }
    }
  }
  // K-quant super-blocks of random bytes (scales d, dmin set to small
  // finite halves): the fused kernels against conversion + Dot.
  for (int n : {256, 768, 2048}) {
    std::vector<float> x(n);
    for (float& v : x) v = uniform();
    for (WeightTensor::Type type :
         {WeightTensor::Type::kQ4_K, WeightTensor::Type::kQ5_K, WeightTensor::Type::kQ6_K}) {
      const size_t bytes = WeightTensor::KBlockBytes(type);
      std::vector<uint8_t> blocks(bytes * (n / 256));
      for (uint8_t& v : blocks) v = static_cast<uint8_t>(next());
      for (size_t b = 0; b < blocks.size() / bytes; ++b) {
        uint8_t* blk = &blocks[b * bytes];
        const uint16_t d = FloatToHalf(0.001f + 0.01f * std::fabs(uniform()));
        const uint16_t dmin = FloatToHalf(0.001f + 0.01f * std::fabs(uniform()));
        if (type == WeightTensor::Type::kQ6_K) {
          std::memcpy(blk + 208, &d, 2);
        } else {
          std::memcpy(blk, &d, 2);
          std::memcpy(blk + 2, &dmin, 2);
        }
      }
      const float ref = DotKPortable(type, blocks.data(), x.data(), n);
      if (avx512) {
        const float got =
            type == WeightTensor::Type::kQ4_K   ? DotQ45KAvx512<false>(blocks.data(), x.data(), n)
            : type == WeightTensor::Type::kQ5_K ? DotQ45KAvx512<true>(blocks.data(), x.data(), n)
                                                : DotQ6KAvx512(blocks.data(), x.data(), n);
        if (std::memcmp(&got, &ref, sizeof got) != 0) {
          return absl::InternalError(StrCat("the AVX-512 K-quant kernel (type ",
                                            static_cast<int>(type),
                                            ") differs from the portable one for n = ", n));
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace quiver::llm::internal
