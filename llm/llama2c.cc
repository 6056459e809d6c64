#include "llm/llama2c.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <queue>
#include <type_traits>

#include "common/coding.h"
#include "common/half.h"
#include "common/status_macros.h"
#include "common/strings.h"

namespace quiver::llm {
namespace {

// Reads `n` floats; false when the stream ends first.
bool ReadFloats(std::istream& in, size_t n, std::vector<float>* out) {
  out->resize(n);
  in.read(reinterpret_cast<char*>(out->data()), static_cast<std::streamsize>(n * sizeof(float)));
  return static_cast<size_t>(in.gcount()) == n * sizeof(float);
}

// The dot product every matrix-vector product here uses: 16 running sums
// (lane j % 16), added in a fixed order, so the compiler vectorises it and
// a row's result is the same whichever path (single or batched) computes it.
// Every kernel accumulates with an explicit fused multiply-add, so that
// guarantee does not rest on where the compiler chooses to contract.
// Clones for AVX-512 and for FMA (with AVX) are picked at run time: the
// second is "fma", not "avx2", because an AVX2 clone without FMA turns each
// std::fma into a libm call (every AVX2-only CPU ran the slow path).
__attribute__((target_clones("avx512f", "fma", "default"))) float Dot(const float* a,
                                                                        const float* b, int n) {
  float acc[16] = {0};
  int j = 0;
  for (; j + 16 <= n; j += 16) {
#pragma omp simd
    for (int l = 0; l < 16; ++l) acc[l] = std::fma(a[j + l], b[j + l], acc[l]);
  }
  float tail = 0.0f;
  for (; j < n; ++j) tail = std::fma(a[j], b[j], tail);
  float sum = 0.0f;
  for (int l = 0; l < 16; ++l) sum += acc[l];
  return sum + tail;
}

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
    for (int l = 0; l < 16; ++l) acc[l] = std::fma(d * static_cast<float>(q[j + l]), b[j + l], acc[l]);
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

float SumLanes(const float* lanes) {
  float sum = 0.0f;
  for (int l = 0; l < 16; ++l) sum += lanes[l];
  return sum;
}

// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized in their own inline
// functions (a known false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
__attribute__((target("avx512f"))) float DotQ8Avx512(const int8_t* q, const float* scales,
                                                     const float* b, int n) {
  __m512 acc = _mm512_setzero_ps();
  for (int j = 0; j + 32 <= n; j += 32) {
    const __m512 d = _mm512_set1_ps(scales[j / 32]);
    const __m512 w0 = _mm512_mul_ps(
        d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + j)))));
    const __m512 w1 = _mm512_mul_ps(
        d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + j + 16)))));
    acc = _mm512_fmadd_ps(w0, _mm512_loadu_ps(b + j), acc);
    acc = _mm512_fmadd_ps(w1, _mm512_loadu_ps(b + j + 16), acc);
  }
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, acc);
  return SumLanes(lanes) + 0.0f;
}

__attribute__((target("avx2,fma"))) float DotQ8Avx2(const int8_t* q, const float* scales,
                                                    const float* b, int n) {
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();  // Lanes 0-7, 8-15.
  for (int j = 0; j + 16 <= n; j += 16) {
    const __m256 d = _mm256_set1_ps(scales[j / 32]);
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + j));
    const __m256 w0 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(raw)));
    const __m256 w1 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(raw, 8))));
    lo = _mm256_fmadd_ps(w0, _mm256_loadu_ps(b + j), lo);
    hi = _mm256_fmadd_ps(w1, _mm256_loadu_ps(b + j + 8), hi);
  }
  alignas(32) float lanes[16];
  _mm256_store_ps(lanes, lo);
  _mm256_store_ps(lanes + 8, hi);
  return SumLanes(lanes) + 0.0f;
}

__attribute__((target("avx512f"))) float DotQ4Avx512(const uint8_t* packed, const float* scales,
                                                     const float* b, int n) {
  __m512 acc = _mm512_setzero_ps();
  const __m512i eight = _mm512_set1_epi32(8), low = _mm512_set1_epi32(0x0F);
  for (int j = 0; j + 32 <= n; j += 32) {
    const __m512 d = _mm512_set1_ps(scales[j / 32]);
    const __m512i bytes = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(packed + j / 2)));
    const __m512 w0 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_and_si512(bytes, low), eight)));
    const __m512 w1 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(bytes, 4), eight)));
    acc = _mm512_fmadd_ps(w0, _mm512_loadu_ps(b + j), acc);
    acc = _mm512_fmadd_ps(w1, _mm512_loadu_ps(b + j + 16), acc);
  }
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, acc);
  return SumLanes(lanes) + 0.0f;
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
    const __m256i b1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + 8)));
    const __m256i v0 = _mm256_sub_epi32(_mm256_and_si256(_mm256_srli_epi32(b0, shift), mask), eight);
    const __m256i v1 = _mm256_sub_epi32(_mm256_and_si256(_mm256_srli_epi32(b1, shift), mask), eight);
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
__attribute__((target("avx2,fma,f16c"), always_inline)) inline __m256 HalfsToFloats8(const uint16_t* p) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return kBf16 ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16)) : _mm256_cvtph_ps(raw);
}

template <bool kBf16>
__attribute__((target("avx2,fma,f16c"))) float DotHalfAvx2(const uint16_t* h, const float* b, int n) {
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
__attribute__((target("avx512f"))) void DequantizeF16Avx512(const uint16_t* h, size_t n, float* out) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(h + i))));
  }
  for (; i < n; ++i) out[i] = HalfToFloat(h[i]);
}

__attribute__((target("avx2,f16c"))) void DequantizeF16Avx2(const uint16_t* h, size_t n, float* out) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i))));
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

void DequantizeF16(const uint16_t* h, size_t n, float* out) {
  static const DequantizeF16Fn kernel = PickDequantizeF16();
  kernel(h, n, out);
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
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
    return DotHalfAvx2<kBf16>;
  }
  return DotHalfPortable<kBf16>;
}

}  // namespace

absl::Status VerifyRowKernels() {
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool f16c = avx2 && __builtin_cpu_supports("f16c");
  uint64_t state = 88172645463325252ull;
  auto next = [&] {  // xorshift64
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  auto uniform = [&] { return static_cast<float>(next() % 2000001) / 1000000.0f - 1.0f; };
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
    for (uint16_t& v : bf16) v = static_cast<uint16_t>(next() & 0x3FFF);  // Finite, small magnitudes.
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
      RETURN_IF_ERROR(check(same(DotQ8Avx512(q8.data(), scales.data(), x.data(), n), q8_ref), "DotQ8Avx512"));
      RETURN_IF_ERROR(check(same(DotQ4Avx512(q4.data(), scales.data(), x.data(), n), q4_ref), "DotQ4Avx512"));
      RETURN_IF_ERROR(check(same(DotHalfAvx512<false>(half.data(), xt.data(), n + 7), f16_ref), "DotHalfAvx512<f16>"));
      RETURN_IF_ERROR(check(same(DotHalfAvx512<true>(bf16.data(), xt.data(), n + 7), bf16_ref), "DotHalfAvx512<bf16>"));
    }
    if (avx2) {
      RETURN_IF_ERROR(check(same(DotQ8Avx2(q8.data(), scales.data(), x.data(), n), q8_ref), "DotQ8Avx2"));
      RETURN_IF_ERROR(check(same(DotQ4Avx2(q4.data(), scales.data(), x.data(), n), q4_ref), "DotQ4Avx2"));
    }
    // Block conversion (batched steps): every value as the portable one.
    // Special values too: subnormals, signed zero, infinities.
    std::vector<uint16_t> halves = half;
    const uint16_t special[] = {0x0001, 0x83FF, 0x8000, 0x7C00, 0xFC00, 0x0400};
    for (size_t i = 0; i < std::size(special); ++i) halves[i * 5 % halves.size()] = special[i];
    std::vector<float> converted_ref(halves.size()), converted(halves.size());
    DequantizeF16Portable(halves.data(), halves.size(), converted_ref.data());
    auto same_values = [&] {
      return std::memcmp(converted.data(), converted_ref.data(), converted.size() * sizeof(float)) == 0;
    };
    if (avx512) {
      DequantizeF16Avx512(halves.data(), halves.size(), converted.data());
      RETURN_IF_ERROR(check(same_values(), "DequantizeF16Avx512"));
    }
    if (f16c) {
      DequantizeF16Avx2(halves.data(), halves.size(), converted.data());
      RETURN_IF_ERROR(check(same_values(), "DequantizeF16Avx2"));
      RETURN_IF_ERROR(check(same(DotHalfAvx2<false>(half.data(), xt.data(), n + 7), f16_ref), "DotHalfAvx2<f16>"));
      RETURN_IF_ERROR(check(same(DotHalfAvx2<true>(bf16.data(), xt.data(), n + 7), bf16_ref), "DotHalfAvx2<bf16>"));
    }
    // And the float32 kernel on the same values, as the buffered path uses it.
    std::vector<float> w(n);
    for (int i = 0; i < n; ++i) w[i] = scales[i / 32] * static_cast<float>(q8[i]);
    RETURN_IF_ERROR(check(same(Dot(w.data(), x.data(), n), q8_ref), "Dot on converted Q8_0 values"));
  }
  return absl::OkStatus();
}

namespace {

// Four dot products of one weight row with four vectors at once: each is
// summed exactly as Dot sums it (same lanes, same order), but the four
// independent accumulators keep the SIMD units busy and the row is loaded
// once.
__attribute__((target_clones("avx512f", "fma", "default"))) void Dot4(
    const float* w, const float* x0, const float* x1, const float* x2, const float* x3, int n,
    float* out) {
  float a0[16] = {0}, a1[16] = {0}, a2[16] = {0}, a3[16] = {0};
  int j = 0;
  for (; j + 16 <= n; j += 16) {
    for (int l = 0; l < 16; ++l) {
      const float wl = w[j + l];
      a0[l] = std::fma(wl, x0[j + l], a0[l]);
      a1[l] = std::fma(wl, x1[j + l], a1[l]);
      a2[l] = std::fma(wl, x2[j + l], a2[l]);
      a3[l] = std::fma(wl, x3[j + l], a3[l]);
    }
  }
  float t0 = 0, t1 = 0, t2 = 0, t3 = 0;
  for (; j < n; ++j) {
    t0 = std::fma(w[j], x0[j], t0);
    t1 = std::fma(w[j], x1[j], t1);
    t2 = std::fma(w[j], x2[j], t2);
    t3 = std::fma(w[j], x3[j], t3);
  }
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (int l = 0; l < 16; ++l) {
    s0 += a0[l];
    s1 += a1[l];
    s2 += a2[l];
    s3 += a3[l];
  }
  out[0] = s0 + t0;
  out[1] = s1 + t1;
  out[2] = s2 + t2;
  out[3] = s3 + t3;
}

// Dot products of four consecutive weight rows (stride n) with four
// vectors: out[k * 4 + r] = w_k . x_r, each summed exactly as Dot sums it.
// Each loaded chunk of x serves four rows and each chunk of w four
// vectors, so a step with many sequences reads x from cache a quarter as
// often as row-at-a-time products would. Meanwhile the kernel prefetches
// the cache lines [first_line, end_line) of the next block of four rows
// (stride n) at `pf`, numbered across the rows (line i is row i % 4, bytes
// 64 * (i / 4) on), spread over its iterations: the calls on one block each
// fetch a share of the next, so memory streams during all of them, not only
// the first (generate_bench: 16 rows per step 38 -> 33 ms on the 110M model).
__attribute__((target_clones("avx512f", "fma", "default"))) void Dot4x4(
    const float* w, int n, const float* const* x, float* out, const float* pf, size_t first_line,
    size_t end_line) {
  const size_t stride = static_cast<size_t>(n);
  const float *w0 = w, *w1 = w + stride, *w2 = w + 2 * stride, *w3 = w + 3 * stride;
  const float *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3];
  float a[16][16] = {};
  const size_t iterations = std::max(1, n / 16);
  const size_t per_iteration = (end_line - first_line + iterations - 1) / iterations;
  size_t line = first_line;
  int j = 0;
  for (; j + 16 <= n; j += 16) {
    for (size_t p = 0; p < per_iteration && line < end_line; ++p, ++line) {
      __builtin_prefetch(pf + (line & 3) * stride + (line >> 2) * 16, 0, 3);
    }
    for (int l = 0; l < 16; ++l) {
      const float y0 = x0[j + l], y1 = x1[j + l], y2 = x2[j + l], y3 = x3[j + l];
      const float u0 = w0[j + l], u1 = w1[j + l], u2 = w2[j + l], u3 = w3[j + l];
      a[0][l] = std::fma(u0, y0, a[0][l]);
      a[1][l] = std::fma(u0, y1, a[1][l]);
      a[2][l] = std::fma(u0, y2, a[2][l]);
      a[3][l] = std::fma(u0, y3, a[3][l]);
      a[4][l] = std::fma(u1, y0, a[4][l]);
      a[5][l] = std::fma(u1, y1, a[5][l]);
      a[6][l] = std::fma(u1, y2, a[6][l]);
      a[7][l] = std::fma(u1, y3, a[7][l]);
      a[8][l] = std::fma(u2, y0, a[8][l]);
      a[9][l] = std::fma(u2, y1, a[9][l]);
      a[10][l] = std::fma(u2, y2, a[10][l]);
      a[11][l] = std::fma(u2, y3, a[11][l]);
      a[12][l] = std::fma(u3, y0, a[12][l]);
      a[13][l] = std::fma(u3, y1, a[13][l]);
      a[14][l] = std::fma(u3, y2, a[14][l]);
      a[15][l] = std::fma(u3, y3, a[15][l]);
    }
  }
  float t[16] = {};
  for (; j < n; ++j) {
    for (int k = 0; k < 4; ++k) {
      for (int r = 0; r < 4; ++r) t[k * 4 + r] = std::fma(w[k * stride + j], x[r][j], t[k * 4 + r]);
    }
  }
  float sum[16] = {};
  for (int l = 0; l < 16; ++l) {
    for (int k = 0; k < 16; ++k) sum[k] += a[k][l];
  }
  for (int k = 0; k < 16; ++k) out[k] = sum[k] + t[k];
}

// Attention scores of one query head against the keys of one KV block
// (stored [head component][position]): acc[t] += q[i] * k_t[i] over i in
// order, so each position's score is summed exactly as the plain loop sums
// it, while the block's positions share each vector instruction.
__attribute__((target_clones("avx512f", "fma", "default"))) void BlockScores(
    const float* q, const float* kb, int head_size, int block_size, float* acc) {
  for (int t = 0; t < block_size; ++t) acc[t] = 0.0f;
  for (int i = 0; i < head_size; ++i) {
    const float qi = q[i];
    const float* row = kb + static_cast<size_t>(i) * block_size;
    for (int t = 0; t < block_size; ++t) acc[t] += qi * row[t];
  }
}


void RmsNorm(float* o, const float* x, const float* weight, int size, float eps) {
  float ss = 0.0f;
  for (int j = 0; j < size; ++j) ss += x[j] * x[j];
  ss /= size;
  ss += eps;
  ss = 1.0f / std::sqrt(ss);
  for (int j = 0; j < size; ++j) o[j] = weight[j] * (ss * x[j]);
}

void Softmax(float* x, int size) {
  float max_val = x[0];
  for (int i = 1; i < size; ++i) max_val = std::max(max_val, x[i]);
  float sum = 0.0f;
  for (int i = 0; i < size; ++i) {
    x[i] = std::exp(x[i] - max_val);
    sum += x[i];
  }
  for (int i = 0; i < size; ++i) x[i] /= sum;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LlamaModel>> LlamaModel::LoadLlama2c(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(StrCat("cannot read ", path));
  int32_t h[7];
  in.read(reinterpret_cast<char*>(h), sizeof h);
  if (in.gcount() != sizeof h) return absl::DataLossError(StrCat(path, ": truncated header"));
  LlamaConfig c;
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.shared_classifier = h[5] > 0;
  c.vocab_size = std::abs(h[5]);
  c.seq_len = h[6];
  if (c.dim <= 0 || c.hidden_dim <= 0 || c.n_layers <= 0 || c.n_heads <= 0 ||
      c.n_kv_heads <= 0 || c.vocab_size <= 0 || c.seq_len <= 0 || c.dim % c.n_heads != 0 ||
      c.n_heads % c.n_kv_heads != 0 || c.head_size() % 2 != 0 || c.dim > (1 << 16) ||
      c.hidden_dim > (1 << 18) || c.n_layers > 1024 || c.vocab_size > (1 << 22) ||
      c.seq_len > (1 << 20)) {
    return absl::InvalidArgumentError(StrCat(path, ": not a llama2.c checkpoint (header dim ",
                                             c.dim, ", layers ", c.n_layers, ", heads ", c.n_heads,
                                             "/", c.n_kv_heads, ", vocab ", c.vocab_size, ")"));
  }
  const size_t dim = c.dim, hid = c.hidden_dim, layers = c.n_layers, kv = c.kv_dim();
  const size_t head = c.head_size();
  std::vector<std::vector<float>> w(12);
  // File order: embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final.
  const size_t file_sizes[11] = {c.vocab_size * dim, layers * dim, layers * dim * dim,
                                 layers * dim * kv,  layers * dim * kv, layers * dim * dim,
                                 layers * dim,       layers * dim * hid, layers * dim * hid,
                                 layers * dim * hid, dim};
  bool ok = true;
  for (int i = 0; i < 11 && ok; ++i) ok = ReadFloats(in, file_sizes[i], &w[i]);
  std::vector<float> skip;  // The legacy freq_cis tables (RoPE is computed).
  ok = ok && ReadFloats(in, c.seq_len * head / 2, &skip) && ReadFloats(in, c.seq_len * head / 2, &skip);
  if (ok && !c.shared_classifier) ok = ReadFloats(in, c.vocab_size * dim, &w[11]);
  if (!ok) return absl::DataLossError(StrCat(path, ": truncated weights"));
  auto model = FromWeights(c, std::move(w));  // A tied classifier stays empty: shared.
  if (!model.ok()) return absl::Status(model.status().code(), StrCat(path, ": ", model.status().message()));
  return model;
}

void LlamaModel::InitRope() {
  const LlamaConfig& c = config_;
  const int hs = c.head_size();
  inv_freq_.resize(hs / 2);
  const RopeScaling& s = c.rope_scaling;
  for (int p = 0; p < hs / 2; ++p) {
    // As llama2.c's run.c computes it (so its references still match).
    float f = 1.0f / std::pow(c.rope_theta, (2 * p) / static_cast<float>(hs));
    if (s.type == RopeScaling::Type::kLinear) {
      f /= s.factor;
    } else if (s.type == RopeScaling::Type::kLlama3) {
      // Hugging Face's llama3 rule: long wavelengths slow down by `factor`,
      // short ones stay, the band between blends smoothly.
      const float low_wavelen = s.original_context / s.low_freq_factor;
      const float high_wavelen = s.original_context / s.high_freq_factor;
      const float wavelen = 2.0f * static_cast<float>(M_PI) / f;
      if (wavelen > low_wavelen) {
        f /= s.factor;
      } else if (wavelen >= high_wavelen) {
        const float smooth = (s.original_context / wavelen - s.low_freq_factor) /
                             (s.high_freq_factor - s.low_freq_factor);
        f = (1.0f - smooth) * f / s.factor + smooth * f;
      }
    }
    if (static_cast<size_t>(p) < c.rope_freq_factors.size()) f /= c.rope_freq_factors[p];
    inv_freq_[p] = f;
  }
}

WeightTensor RotateHalfToInterleaved(const WeightTensor& w, int layers, int heads, int head_size,
                                     size_t cols) {
  const size_t rows = static_cast<size_t>(heads) * head_size;  // Per layer.
  std::vector<size_t> order(rows * layers);
  const int half = head_size / 2;
  for (int l = 0; l < layers; ++l) {
    for (int h = 0; h < heads; ++h) {
      for (int j = 0; j < half; ++j) {
        for (int i = 0; i < 2; ++i) {
          order[l * rows + static_cast<size_t>(h) * head_size + 2 * j + i] =
              l * rows + static_cast<size_t>(h) * head_size + i * half + j;
        }
      }
    }
  }
  return w.ReorderRows(order, cols);
}
absl::StatusOr<std::unique_ptr<LlamaModel>> LlamaModel::FromWeights(
    const LlamaConfig& c, std::vector<std::vector<float>> w) {
  std::vector<WeightTensor> t;
  t.reserve(w.size());
  for (auto& v : w) t.push_back(WeightTensor::F32(std::move(v)));
  return FromTensors(c, std::move(t));
}

absl::StatusOr<std::unique_ptr<LlamaModel>> LlamaModel::FromTensors(const LlamaConfig& c,
                                                                    std::vector<WeightTensor> w) {
  if (w.size() != 12 && w.size() != 15) {
    return absl::InvalidArgumentError("a Llama model has 12 weight groups (15 with attention biases)");
  }
  if (c.dim <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 || c.dim % c.n_heads != 0 ||
      c.n_heads % c.n_kv_heads != 0 || c.head_size() % 2 != 0 || c.seq_len <= 0 ||
      c.vocab_size <= 0 || c.n_layers <= 0 || c.hidden_dim <= 0) {
    return absl::InvalidArgumentError("impossible Llama config");
  }
  const size_t dim = c.dim, hid = c.hidden_dim, layers = c.n_layers, kv = c.kv_dim();
  const size_t want[15] = {c.vocab_size * dim, layers * dim, layers * dim * dim, layers * dim * kv,
                           layers * dim * kv,  layers * dim * dim, layers * dim, layers * dim * hid,
                           layers * dim * hid, layers * dim * hid, dim, c.vocab_size * dim,
                           layers * dim, layers * kv, layers * kv};
  const char* names[15] = {"token embedding", "attention norms", "wq", "wk", "wv", "wo",
                           "ffn norms", "w1 (gate)", "w2 (down)", "w3 (up)", "final norm",
                           "classifier", "q bias", "k bias", "v bias"};
  if (c.shared_classifier && w[11].size() == 0) w[11] = w[0];  // Shares the data.
  for (size_t i = 0; i < w.size(); ++i) {
    if (w[i].size() != want[i]) {
      return absl::InvalidArgumentError(StrCat(names[i], " has ", w[i].size(), " values; the config needs ", want[i]));
    }
  }
  auto floats = [](const WeightTensor& t) {
    std::vector<float> out(t.size());
    t.Read(0, t.size(), out.data());
    return out;
  };
  auto m = std::unique_ptr<LlamaModel>(new LlamaModel());
  m->config_ = c;
  m->embedding_ = w[0];
  m->wq_ = w[2];
  m->wk_ = w[3];
  m->wv_ = w[4];
  m->wo_ = w[5];
  m->w1_ = w[7];
  m->w2_ = w[8];
  m->w3_ = w[9];
  m->classifier_ = w[11];
  m->rms_att_ = floats(w[1]);
  m->rms_ffn_ = floats(w[6]);
  m->rms_final_ = floats(w[10]);
  if (w.size() == 15) {
    m->bq_ = floats(w[12]);
    m->bk_ = floats(w[13]);
    m->bv_ = floats(w[14]);
  }
  m->InitRope();
  return m;
}

bool LlamaModel::is_float32() const {
  for (const WeightTensor* t : {&embedding_, &wq_, &wk_, &wv_, &wo_, &w1_, &w2_, &w3_, &classifier_}) {
    if (t->type() != WeightTensor::Type::kF32) return false;
  }
  return true;
}

size_t LlamaModel::bytes_per_step() const {
  size_t n = 0;
  for (const WeightTensor* t : {&wq_, &wk_, &wv_, &wo_, &w1_, &w2_, &w3_, &classifier_}) n += t->bytes();
  return n + 4 * (rms_att_.size() + rms_ffn_.size() + rms_final_.size() + bq_.size() + bk_.size() + bv_.size());
}

size_t LlamaModel::weight_bytes() const {
  // What a step reads, plus the embedding table unless it is the classifier.
  return bytes_per_step() + (classifier_.SharesData(embedding_) ? 0 : embedding_.bytes());
}

// ---- Weight storage -----------------------------------------------------------

WeightTensor::WeightTensor(AlignedFloats values)
    : type_(Type::kF32), size_(values.size()), f32_(std::make_shared<const AlignedFloats>(std::move(values))) {}

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
    case Type::kQ4_K: return 144;
    case Type::kQ5_K: return 176;
    case Type::kQ6_K: return 210;
    default: return 0;
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
    case Type::kF32: return F32(reorder(*f32_, cols));
    case Type::kF16: return F16(reorder(*f16_, cols));
    case Type::kBF16: return BF16(reorder(*f16_, cols));
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
    case Type::kMixed: break;  // As float32, below.
  }
  std::vector<float> all(size_);
  Read(0, size_, all.data());
  return F32(std::move(all)).ReorderRows(order, cols);
}

WeightTensor::Raw WeightTensor::raw() const {
  Raw r;
  switch (type_) {
    case Type::kF32: r.f32 = f32_->data(); break;
    case Type::kF16:
    case Type::kBF16: r.halves = f16_->data(); break;
    case Type::kQ8_0: r.q8 = q8_->data(); r.scales = scales_->data(); break;
    case Type::kQ4_0: r.q4 = q4_->data(); r.scales = scales_->data(); break;
    default: break;
  }
  return r;
}

size_t WeightTensor::bytes() const {
  switch (type_) {
    case Type::kF32: return size_ * 4;
    case Type::kF16:
    case Type::kBF16: return size_ * 2;
    case Type::kQ8_0: return size_ + size_ / 32 * 4;
    case Type::kQ4_0: return size_ / 2 + size_ / 32 * 4;
    case Type::kQ4_K:
    case Type::kQ5_K:
    case Type::kQ6_K: return size_ / 256 * KBlockBytes(type_);
    case Type::kMixed: {
      size_t n = 0;
      for (const auto& [start, part] : *parts_) n += part.bytes();
      return n;
    }
  }
  return 0;
}

namespace {

__attribute__((target_clones("avx512f", "fma", "default"))) void DequantizeQ8(
    const int8_t* q, const float* scales, size_t blocks, float* out) {
  for (size_t b = 0; b < blocks; ++b) {
    const float d = scales[b];
    for (int k = 0; k < 32; ++k) out[b * 32 + k] = d * static_cast<float>(q[b * 32 + k]);
  }
}

__attribute__((target_clones("avx512f", "fma", "default"))) void DequantizeQ4(
    const uint8_t* packed, const float* scales, size_t blocks, float* out) {
  for (size_t b = 0; b < blocks; ++b) {
    const float d = scales[b];
    const uint8_t* blk = packed + b * 16;
    for (int k = 0; k < 16; ++k) {
      out[b * 32 + k] = d * static_cast<float>((blk[k] & 0x0F) - 8);
      out[b * 32 + 16 + k] = d * static_cast<float>((blk[k] >> 4) - 8);
    }
  }
}

// ggml's K-quant super-blocks (256 values). Q4_K / Q5_K: half d, half
// dmin, 12 bytes of 6-bit sub-block scales and mins (8 sub-blocks of 32),
// [Q5_K: 32 bytes of fifth bits], 128 bytes of nibbles; value =
// d * scale * q - dmin * min. Q6_K: 128 bytes of low nibbles, 64 of high
// 2-bit pairs, 16 int8 scales (sub-blocks of 16), half d; value =
// d * scale * (q - 32).
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
__attribute__((target_clones("avx512f", "fma", "default"))) void DequantizeQ45K(
    const uint8_t* blk, bool five_bit, float* out) {
  uint16_t h;
  std::memcpy(&h, blk, 2);
  const float d = HalfToFloat(h);
  std::memcpy(&h, blk + 2, 2);
  const float dmin = HalfToFloat(h);
  const uint8_t* scales = blk + 4;
  const uint8_t* high = blk + 16;                      // Q5_K only.
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
    for (int l = 0; l < 32; ++l) out[64 * g + l] = d1 * static_cast<float>(lo[l]) - m1;
    for (int l = 0; l < 32; ++l) out[64 * g + 32 + l] = d2 * static_cast<float>(hi[l]) - m2;
    q += 32;
  }
}

__attribute__((target_clones("avx512f", "fma", "default"))) void DequantizeQ6K(
    const uint8_t* blk, float* out) {
  const uint8_t* ql = blk;
  const uint8_t* qh = blk + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192);
  uint16_t h;
  std::memcpy(&h, blk + 208, 2);
  const float d = HalfToFloat(h);
  for (int half = 0; half < 2; ++half) {  // 128 values each: four runs of 32.
    int8_t q[4][32];
    for (int l = 0; l < 32; ++l) {
      q[0][l] = static_cast<int8_t>(((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32);
      q[1][l] = static_cast<int8_t>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
      q[2][l] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
      q[3][l] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
    }
    for (int r = 0; r < 4; ++r) {  // Run r uses scales 2r (first 16) and 2r + 1.
      const float s0 = d * static_cast<float>(sc[2 * r]), s1 = d * static_cast<float>(sc[2 * r + 1]);
      for (int l = 0; l < 16; ++l) out[32 * r + l] = s0 * static_cast<float>(q[r][l]);
      for (int l = 16; l < 32; ++l) out[32 * r + l] = s1 * static_cast<float>(q[r][l]);
    }
    out += 128;
    ql += 64;
    qh += 32;
    sc += 8;
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

__attribute__((target_clones("avx512f", "fma", "default"))) void DequantizeBF16(
    const uint16_t* h, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(h[i]) << 16;
    std::memcpy(&out[i], &bits, 4);
  }
}


}  // namespace

float WeightTensor::DotRow(size_t offset, const float* x, int n) const {
  switch (type_) {
    case Type::kMixed: {  // Rows never straddle parts (parts are whole layers).
      const auto& [start, part] = PartAt(offset);
      return part.DotRow(offset - start, x, n);
    }
    case Type::kF32: return Dot(f32_->data() + offset, x, n);
    case Type::kF16: {
      static const DotF16Fn dot = PickDotHalf<false>();
      return dot(f16_->data() + offset, x, n);
    }
    case Type::kBF16: {
      static const DotF16Fn dot = PickDotHalf<true>();
      return dot(f16_->data() + offset, x, n);
    }
    case Type::kQ8_0: {
      static const DotQ8Fn dot = PickDotQ8();
      return dot(q8_->data() + offset, scales_->data() + offset / 32, x, n);
    }
    case Type::kQ4_0: {
      static const DotQ4Fn dot = PickDotQ4();
      return dot(q4_->data() + offset / 2, scales_->data() + offset / 32, x, n);
    }
    case Type::kQ4_K:
    case Type::kQ5_K:
    case Type::kQ6_K: {  // Converted row, then the float32 kernel.
      thread_local AlignedFloats row;
      row.resize(n);
      Read(offset, n, row.data());
      return Dot(row.data(), x, n);
    }
  }
  return 0.0f;
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
    case Type::kF32: std::copy_n(f32_->data() + offset, n, out); break;
    case Type::kF16: DequantizeF16(f16_->data() + offset, n, out); break;
    case Type::kBF16: DequantizeBF16(f16_->data() + offset, n, out); break;
    case Type::kQ8_0: DequantizeQ8(q8_->data() + offset, scales_->data() + offset / 32, n / 32, out); break;
    case Type::kQ4_0: DequantizeQ4(q4_->data() + offset / 2, scales_->data() + offset / 32, n / 32, out); break;
    case Type::kQ4_K:
    case Type::kQ5_K:
    case Type::kQ6_K: DequantizeK(type_, q4_->data() + offset / 256 * KBlockBytes(type_), n / 256, out); break;
  }
}

KvBlockPool::KvBlockPool(size_t num_blocks, int block_size)
    : block_size_(block_size), num_blocks_(num_blocks) {
  for (size_t b = num_blocks; b-- > 0;) free_.push_back(static_cast<int>(b));
}

int KvBlockPool::Allocate() {
  if (free_.empty()) return -1;
  const int b = free_.back();
  free_.pop_back();
  return b;
}

void KvBlockPool::Free(int block) { free_.push_back(block); }

PagedKvCache::PagedKvCache(const LlamaConfig& config, size_t num_blocks, int block_size)
    : KvBlockPool(num_blocks, block_size),
      layers_(config.n_layers),
      kv_dim_(config.kv_dim()),
      k_(new float[num_blocks * config.n_layers * block_size * config.kv_dim()]),
      v_(new float[num_blocks * config.n_layers * block_size * config.kv_dim()]) {}

size_t PagedKvCache::BlockBytes(const LlamaConfig& config, int block_size) {
  return 2 * sizeof(float) * static_cast<size_t>(config.n_layers) * block_size * config.kv_dim();
}


namespace {

// out = W[d][n] X[rows][n] for each product of a group sharing X: each
// weight row is read from memory once for all rows. Blocks of four weight
// rows x four sequences (Dot4x4); leftover sequences take Dot4 (one row x
// four) or Dot; every dot product is summed in Dot's lane order, so a row's
// result never depends on the batch. The products of a group (q, k and v;
// gate and up) share one parallel region: a region's start and end cost
// tens of microseconds when OpenMP throttles its spinning, as it does once
// a process has more than one thread team.
struct MatMul {
  float* out;
  const WeightTensor* w;
  size_t offset;  // Of the first row's first value in w.
  int d;
};
void BatchMatMul(std::initializer_list<MatMul> group, const float* x, int n, int rows) {
  std::vector<std::pair<const MatMul*, int>> quads;  // (product, first weight row)
  int64_t work = 0;
  for (const MatMul& m : group) {
    for (int i0 = 0; i0 < m.d; i0 += 4) quads.emplace_back(&m, i0);
    work += static_cast<int64_t>(n) * m.d * rows;
  }
  const int count = static_cast<int>(quads.size());
#pragma omp parallel for schedule(static) if (work > (1 << 18))
  for (int qi = 0; qi < count; ++qi) {
    const MatMul& m = *quads[qi].first;
    const int i0 = quads[qi].second, d = m.d;
    float* out = m.out;
    const int block_rows = std::min(4, d - i0);
    const size_t first = m.offset + static_cast<size_t>(i0) * n;
    if (rows < 4 && m.w->type() != WeightTensor::Type::kF32) {
      // Few sequences: read quantized rows straight into the dot products.
      for (int i = i0; i < i0 + block_rows; ++i) {
        for (int rr = 0; rr < rows; ++rr) {
          out[static_cast<size_t>(rr) * d + i] =
              m.w->DotRow(first + static_cast<size_t>(i - i0) * n, x + static_cast<size_t>(rr) * n, n);
        }
      }
      continue;
    }
    // The block's (up to) four rows as float32: in place, or converted from
    // F16 / Q8_0 into this thread's buffer.
    const float* wq;
    if (const float* f = m.w->f32_data(); f != nullptr) {
      wq = f + first;
    } else {
      thread_local AlignedFloats rows_f32;
      rows_f32.resize(4 * static_cast<size_t>(n));
      m.w->Read(first, static_cast<size_t>(block_rows) * n, rows_f32.data());
      wq = rows_f32.data();
    }
    // The float32 rows the next block needs, prefetched a share per call
    // (four rows: past a matrix's last rows, a prefetch is only wasted).
    const float* next = nullptr;
    size_t next_lines = 0;
    if (qi + 1 < count) {
      const MatMul& nm = *quads[qi + 1].first;
      if (const float* f = nm.w->f32_data(); f != nullptr) {
        next = f + nm.offset + static_cast<size_t>(quads[qi + 1].second) * n;
        next_lines = 4 * static_cast<size_t>((n + 15) / 16);
      }
    }
    int r = 0;
    if (block_rows == 4) {
      const size_t calls = rows / 4, share = (next_lines + calls - 1) / std::max<size_t>(1, calls);
      for (; r + 4 <= rows; r += 4) {
        const float* xs[4];
        for (int k = 0; k < 4; ++k) xs[k] = x + static_cast<size_t>(r + k) * n;
        float o[16];
        const size_t from = std::min(next_lines, share * (r / 4));
        Dot4x4(wq, n, xs, o, next, from, std::min(next_lines, from + share));
        for (int k = 0; k < 4; ++k) {
          for (int s = 0; s < 4; ++s) out[static_cast<size_t>(r + s) * d + i0 + k] = o[k * 4 + s];
        }
      }
    }
    for (int i = i0; i < i0 + block_rows; ++i) {
      const float* wrow = wq + static_cast<size_t>(i - i0) * n;
      int rr = r;
      for (; rr + 4 <= rows; rr += 4) {
        float o[4];
        const float* xr = x + static_cast<size_t>(rr) * n;
        Dot4(wrow, xr, xr + n, xr + 2 * static_cast<size_t>(n), xr + 3 * static_cast<size_t>(n), n, o);
        for (int k = 0; k < 4; ++k) out[static_cast<size_t>(rr + k) * d + i] = o[k];
      }
      for (; rr < rows; ++rr) {
        out[static_cast<size_t>(rr) * d + i] = Dot(wrow, x + static_cast<size_t>(rr) * n, n);
      }
    }
  }
}

}  // namespace

std::vector<std::vector<float>> LlamaModel::ForwardBatch(const std::vector<StepRow>& rows_in,
                                                         PagedKvCache* cache) const {
  const LlamaConfig& c = config_;
  const int dim = c.dim, kv_dim = c.kv_dim(), hidden = c.hidden_dim, head_size = c.head_size();
  const int kv_mul = c.n_heads / c.n_kv_heads, rows = static_cast<int>(rows_in.size());
  const int bs = cache->block_size();
  AlignedFloats x(static_cast<size_t>(rows) * dim), xb(x.size()), xb2(x.size()), q(x.size());
  AlignedFloats k(static_cast<size_t>(rows) * kv_dim), v(k.size());
  AlignedFloats hb(static_cast<size_t>(rows) * hidden), hb2(hb.size());
  for (int r = 0; r < rows; ++r) {
    embedding_.Read(static_cast<size_t>(rows_in[r].token) * dim, dim, &x[static_cast<size_t>(r) * dim]);
  }
  // RoPE rotations per row, the same for every layer and head.
  const int pairs = head_size / 2;
  std::vector<float> rope_cos(static_cast<size_t>(rows) * pairs), rope_sin(rope_cos.size());
  for (int r = 0; r < rows; ++r) {
    for (int p = 0; p < pairs; ++p) {
      const float val = rows_in[r].pos * inv_freq_[p];
      rope_cos[static_cast<size_t>(r) * pairs + p] = std::cos(val);
      rope_sin[static_cast<size_t>(r) * pairs + p] = std::sin(val);
    }
  }
  auto value_at = [&](const StepRow& row, int layer, int t) {
    return cache->Value((*row.blocks)[t / bs], layer, t % bs);
  };
  for (int l = 0; l < c.n_layers; ++l) {
    for (int r = 0; r < rows; ++r) {
      RmsNorm(&xb[static_cast<size_t>(r) * dim], &x[static_cast<size_t>(r) * dim],
              &rms_att_[static_cast<size_t>(l) * dim], dim, c.norm_eps);
    }
    BatchMatMul({{q.data(), &wq_, static_cast<size_t>(l) * dim * dim, dim},
                 {k.data(), &wk_, static_cast<size_t>(l) * dim * kv_dim, kv_dim},
                 {v.data(), &wv_, static_cast<size_t>(l) * dim * kv_dim, kv_dim}},
                xb.data(), dim, rows);
    for (int r = 0; r < rows; ++r) {
      const int pos = rows_in[r].pos;
      float* qr = &q[static_cast<size_t>(r) * dim];
      float* kr = &k[static_cast<size_t>(r) * kv_dim];
      if (!bq_.empty()) {
        const float* bq = &bq_[static_cast<size_t>(l) * dim];
        const float* bk = &bk_[static_cast<size_t>(l) * kv_dim];
        const float* bv = &bv_[static_cast<size_t>(l) * kv_dim];
        float* vr = &v[static_cast<size_t>(r) * kv_dim];
        for (int i = 0; i < dim; ++i) qr[i] += bq[i];
        for (int i = 0; i < kv_dim; ++i) kr[i] += bk[i];
        for (int i = 0; i < kv_dim; ++i) vr[i] += bv[i];
      }
      for (int i = 0; i < dim; i += 2) {
        const size_t p = static_cast<size_t>(r) * pairs + (i % head_size) / 2;
        const float fcr = rope_cos[p], fci = rope_sin[p];
        const int rotations = i < kv_dim ? 2 : 1;
        for (int rot = 0; rot < rotations; ++rot) {
          float* vec = rot == 0 ? qr : kr;
          const float v0 = vec[i], v1 = vec[i + 1];
          vec[i] = v0 * fcr - v1 * fci;
          vec[i + 1] = v0 * fci + v1 * fcr;
        }
      }
      cache->StoreKey((*rows_in[r].blocks)[pos / bs], l, pos % bs, kr);
      std::copy_n(&v[static_cast<size_t>(r) * kv_dim], kv_dim, value_at(rows_in[r], l, pos));
    }
#pragma omp parallel for schedule(dynamic) if (rows > 1)
    for (int r = 0; r < rows; ++r) {
      const StepRow& row = rows_in[r];
      const int n_blocks = row.pos / bs + 1;
      std::vector<float> att(static_cast<size_t>(n_blocks) * bs);
      for (int h = 0; h < c.n_heads; ++h) {
        const float* qh = &q[static_cast<size_t>(r) * dim + h * head_size];
        const int kvh = (h / kv_mul) * head_size;
        for (int b = 0; b < n_blocks; ++b) {
          // Positions past row.pos in the last block hold stale keys; their
          // scores are computed and never used.
          BlockScores(qh, cache->KeyBlock((*row.blocks)[b], l) + static_cast<size_t>(kvh) * bs, head_size,
                      bs, &att[static_cast<size_t>(b) * bs]);
        }
        for (int t = 0; t <= row.pos; ++t) att[t] /= std::sqrt(static_cast<float>(head_size));
        Softmax(att.data(), row.pos + 1);
        float* out = &xb[static_cast<size_t>(r) * dim + h * head_size];
        std::fill(out, out + head_size, 0.0f);
        for (int t = 0; t <= row.pos; ++t) {
          const float* vt = value_at(row, l, t) + kvh;
          for (int i = 0; i < head_size; ++i) out[i] += att[t] * vt[i];
        }
      }
    }
    BatchMatMul({{xb2.data(), &wo_, static_cast<size_t>(l) * dim * dim, dim}}, xb.data(), dim, rows);
    for (size_t i = 0; i < x.size(); ++i) x[i] += xb2[i];
    for (int r = 0; r < rows; ++r) {
      RmsNorm(&xb[static_cast<size_t>(r) * dim], &x[static_cast<size_t>(r) * dim],
              &rms_ffn_[static_cast<size_t>(l) * dim], dim, c.norm_eps);
    }
    BatchMatMul({{hb.data(), &w1_, static_cast<size_t>(l) * dim * hidden, hidden},
                 {hb2.data(), &w3_, static_cast<size_t>(l) * dim * hidden, hidden}},
                xb.data(), dim, rows);
    // SwiGLU, element by element (threads split the rows' elements; each
    // value is computed as alone).
    const int64_t hb_size = static_cast<int64_t>(hb.size());
#pragma omp parallel for schedule(static) if (hb_size >= 16384)
    for (int64_t i = 0; i < hb_size; ++i) {
      float val = hb[i];
      val *= (1.0f / (1.0f + std::exp(-val)));
      hb[i] = val * hb2[i];
    }
    BatchMatMul({{xb.data(), &w2_, static_cast<size_t>(l) * dim * hidden, dim}}, hb.data(), hidden, rows);
    for (size_t i = 0; i < x.size(); ++i) x[i] += xb[i];
  }
  for (int r = 0; r < rows; ++r) {
    float* xr = &x[static_cast<size_t>(r) * dim];
    RmsNorm(xr, xr, rms_final_.data(), dim, c.norm_eps);
  }
  AlignedFloats logits(static_cast<size_t>(rows) * c.vocab_size);
  BatchMatMul({{logits.data(), &classifier_, 0, c.vocab_size}}, x.data(), dim, rows);
  std::vector<std::vector<float>> out(rows);
  for (int r = 0; r < rows; ++r) {
    out[r].assign(logits.begin() + static_cast<size_t>(r) * c.vocab_size,
                  logits.begin() + static_cast<size_t>(r + 1) * c.vocab_size);
  }
  return out;
}

// ---- Tokenizer ----------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Llama2cTokenizer>> Llama2cTokenizer::Load(const std::string& path,
                                                                         int vocab_size) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(StrCat("cannot read ", path));
  auto t = std::unique_ptr<Llama2cTokenizer>(new Llama2cTokenizer());
  uint32_t max_len = 0;
  in.read(reinterpret_cast<char*>(&max_len), 4);
  if (in.gcount() != 4) return absl::DataLossError(StrCat(path, ": truncated"));
  for (int i = 0; i < vocab_size; ++i) {
    float score;
    int32_t len;
    in.read(reinterpret_cast<char*>(&score), 4);
    in.read(reinterpret_cast<char*>(&len), 4);
    if (!in || len < 0 || len > (1 << 16)) {
      return absl::DataLossError(StrCat(path, ": truncated or damaged at token ", i));
    }
    std::string s(static_cast<size_t>(len), '\0');
    in.read(s.data(), len);
    if (in.gcount() != len) return absl::DataLossError(StrCat(path, ": truncated at token ", i));
    t->vocab_.push_back(std::move(s));
    t->scores_.push_back(score);
  }
  for (int i = 0; i < vocab_size; ++i) t->sorted_.emplace_back(t->vocab_[i], i);
  std::sort(t->sorted_.begin(), t->sorted_.end());
  return t;
}

std::unique_ptr<Llama2cTokenizer> Llama2cTokenizer::FromVocab(std::vector<std::string> tokens,
                                                              std::vector<float> scores) {
  auto t = std::unique_ptr<Llama2cTokenizer>(new Llama2cTokenizer());
  t->vocab_ = std::move(tokens);
  t->scores_ = std::move(scores);
  for (size_t i = 0; i < t->vocab_.size(); ++i) t->sorted_.emplace_back(t->vocab_[i], static_cast<int>(i));
  std::sort(t->sorted_.begin(), t->sorted_.end());
  return t;
}

int Llama2cTokenizer::Lookup(std::string_view s) const {
  auto it = std::lower_bound(sorted_.begin(), sorted_.end(), s,
                             [](const auto& e, std::string_view k) { return e.first < k; });
  return it != sorted_.end() && it->first == s ? it->second : -1;
}

std::vector<int> Llama2cTokenizer::Encode(std::string_view text, bool bos, bool eos) const {
  std::vector<int> tokens;
  if (bos) tokens.push_back(1);
  if (!text.empty()) {
    const int prefix = Lookup(" ");
    if (prefix >= 0) tokens.push_back(prefix);
  }
  // Code point by code point; unknown ones fall back to their bytes.
  for (size_t i = 0; i < text.size();) {
    size_t len = 1;
    while (i + len < text.size() && len < 4 &&
           (static_cast<unsigned char>(text[i + len]) & 0xC0) == 0x80) {
      ++len;
    }
    const int id = Lookup(text.substr(i, len));
    if (id >= 0) {
      tokens.push_back(id);
    } else {
      for (size_t b = 0; b < len; ++b) tokens.push_back(static_cast<unsigned char>(text[i + b]) + 3);
    }
    i += len;
  }
  // Merge the best-scoring adjacent pair (the leftmost among equals) until
  // none is in the vocabulary: run.c's rule, kept with a heap over a linked
  // list so long prompts take O(n log n), not O(n^2).
  const size_t n = tokens.size();
  std::vector<int> next(n), prev(n);
  for (size_t i = 0; i < n; ++i) {
    next[i] = i + 1 < n ? static_cast<int>(i + 1) : -1;
    prev[i] = static_cast<int>(i) - 1;
  }
  struct Candidate {
    float score;
    int left, left_id, right_id, merged;
    bool operator<(const Candidate& o) const {  // Max-heap: best score, then leftmost.
      return score != o.score ? score < o.score : left > o.left;
    }
  };
  std::priority_queue<Candidate> heap;
  std::string joined;
  auto consider = [&](int i) {
    if (i < 0 || next[i] < 0) return;
    joined = vocab_[tokens[i]];
    joined += vocab_[tokens[next[i]]];
    const int id = Lookup(joined);
    if (id >= 0) heap.push({scores_[id], i, tokens[i], tokens[next[i]], id});
  };
  for (size_t i = 0; i + 1 < n; ++i) consider(static_cast<int>(i));
  std::vector<bool> gone(n, false);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    if (gone[c.left] || next[c.left] < 0 || tokens[c.left] != c.left_id || tokens[next[c.left]] != c.right_id) {
      continue;  // Stale: a neighbour merged since.
    }
    const int r = next[c.left];
    tokens[c.left] = c.merged;
    gone[r] = true;
    next[c.left] = next[r];
    if (next[r] >= 0) prev[next[r]] = c.left;
    consider(prev[c.left]);
    consider(c.left);
  }
  std::vector<int> merged;
  merged.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (!gone[i]) merged.push_back(tokens[i]);
  }
  tokens = std::move(merged);
  if (eos) tokens.push_back(2);
  return tokens;
}

Llama2cTokenizer::Llama2cTokenizer() {
  info_.bos_id = 1;
  info_.end_ids = {1, 2};  // run.c stops at BOS; EOS ends a story too.
  info_.bos_token = "<s>";
  info_.eos_token = "</s>";
}

void Llama2cTokenizer::SetSpecialTokens(std::vector<int> ids) {
  specials_.clear();
  for (int id : ids) {
    if (id >= 0 && id < vocab_size() && !vocab_[id].empty()) specials_.emplace_back(vocab_[id], id);
  }
  // Longest first, so a token that starts another loses to it.
  std::sort(specials_.begin(), specials_.end(),
            [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

absl::StatusOr<std::vector<int>> Llama2cTokenizer::Tokenize(std::string_view text, bool bos) const {
  if (!IsValidUtf8(text)) return absl::InvalidArgumentError("text is not valid UTF-8");
  std::vector<int> ids;
  if (bos && info_.bos_id >= 0) ids.push_back(info_.bos_id);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t hit = std::string_view::npos;
    int hit_id = -1;
    size_t hit_len = 0;
    for (const auto& [content, id] : specials_) {
      const size_t f = text.find(content, pos);
      if (f != std::string_view::npos && f < hit) {
        hit = f;
        hit_id = id;
        hit_len = content.size();
      }
    }
    const std::string_view chunk = text.substr(pos, hit == std::string_view::npos ? text.npos : hit - pos);
    if (!chunk.empty()) {
      const std::vector<int> part = Encode(chunk, false, false);
      ids.insert(ids.end(), part.begin(), part.end());
    }
    if (hit == std::string_view::npos) break;
    ids.push_back(hit_id);
    pos = hit + hit_len;
  }
  return ids;
}

std::string Llama2cTokenizer::Decode(int prev, int token) const {
  if (token < 0 || token >= vocab_size()) return "";
  for (const auto& [content, id] : specials_) {
    if (id == token) return "";
  }
  std::string_view piece = vocab_[token];
  if (prev == info_.bos_id && !piece.empty() && piece[0] == ' ') piece.remove_prefix(1);
  unsigned int byte;
  if (piece.size() == 6 && std::sscanf(std::string(piece).c_str(), "<0x%02X>", &byte) == 1) {
    return std::string(1, static_cast<char>(byte));
  }
  return std::string(piece);
}

// ---- Sampler ----------------------------------------------------------------

float Sampler::NextCoin() {
  state_ ^= state_ >> 12;
  state_ ^= state_ << 25;
  state_ ^= state_ >> 27;
  const uint32_t r = static_cast<uint32_t>((state_ * 0x2545F4914F6CDD1Dull) >> 32);
  return (r >> 8) / 16777216.0f;
}

int Sampler::Sample(std::vector<float> logits) {
  const int n = static_cast<int>(logits.size());
  if (temperature_ == 0.0f) {
    int best = 0;
    for (int i = 1; i < n; ++i) {
      if (logits[i] > logits[best]) best = i;
    }
    return best;
  }
  for (float& l : logits) l /= temperature_;
  Softmax(logits.data(), n);
  const float coin = NextCoin();
  if (top_p_ <= 0 || top_p_ >= 1) {
    float cdf = 0.0f;
    for (int i = 0; i < n; ++i) {
      cdf += logits[i];
      if (coin < cdf) return i;
    }
    return n - 1;
  }
  // Nucleus: candidates above (1 - p) / (n - 1) can be in it; sorted by
  // probability (stable, as glibc's qsort), cut where the mass passes p.
  const float cutoff = (1.0f - top_p_) / (n - 1);
  std::vector<std::pair<float, int>> cand;
  for (int i = 0; i < n; ++i) {
    if (logits[i] >= cutoff) cand.emplace_back(logits[i], i);
  }
  std::stable_sort(cand.begin(), cand.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  float cumulative = 0.0f;
  size_t last = cand.size() - 1;
  for (size_t i = 0; i < cand.size(); ++i) {
    cumulative += cand[i].first;
    if (cumulative > top_p_) {
      last = i;
      break;
    }
  }
  const float r = coin * cumulative;
  float cdf = 0.0f;
  for (size_t i = 0; i <= last; ++i) {
    cdf += cand[i].first;
    if (r < cdf) return cand[i].second;
  }
  return cand[last].second;
}

// ---- Generation -------------------------------------------------------------

Generation Generate(const LlamaModel& model, const TokenCodec& tokenizer,
                    std::string_view prompt, int steps, Sampler* sampler) {
  Generation g;
  auto ids = tokenizer.Tokenize(prompt, /*bos=*/true);
  if (!ids.ok() || ids->empty()) return g;
  g.prompt_ids = *std::move(ids);
  steps = std::min(steps, model.config().seq_len);
  constexpr int kBlock = 16;
  PagedKvCache cache(model.config(), (steps + kBlock - 1) / kBlock, kBlock);
  std::vector<int> blocks;
  while (cache.free_blocks() > 0) blocks.push_back(cache.Allocate());
  int token = g.prompt_ids[0];
  for (int pos = 0; pos < steps; ++pos) {
    std::vector<float> logits = std::move(model.ForwardBatch({{token, pos, &blocks}}, &cache)[0]);
    const int next = pos + 1 < static_cast<int>(g.prompt_ids.size())
                         ? g.prompt_ids[pos + 1]
                         : sampler->Sample(std::move(logits));
    if (next == tokenizer.info().bos_id) break;  // BOS ends the text.
    g.ids.push_back(next);
    std::string piece = tokenizer.Decode(token, next);
    // run.c's safe_printf: lone unprintable bytes are not printed.
    const bool unprintable = piece.size() == 1 && !std::isprint(static_cast<unsigned char>(piece[0])) &&
                             !std::isspace(static_cast<unsigned char>(piece[0]));
    if (!unprintable) g.text += piece;
    token = next;
  }
  return g;
}

}  // namespace quiver::llm
