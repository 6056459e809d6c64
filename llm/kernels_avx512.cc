// The row kernels for AVX-512 (compiled with -mavx512f and the AVX2/FMA/F16C
// flags; chosen at start-up on CPUs that have AVX-512F).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "llm/internal/kquant_x86.h"
#include "llm/internal/lane_sums_x86.h"
#include "llm/internal/row_kernels.h"
#include "nn/half.h"

namespace quiver::llm::avx512 {
namespace {

#include "llm/internal/generic_kernels.inc"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"  // GCC 12's avx512fintrin.h (_mm512_undefined_*).

// A 16 x 16 transpose in registers: lane i of out[l] is lane l of in[i]
// (64 shuffles: pairs, quads, then 128-bit lanes).
__attribute__((always_inline)) inline void Transpose16(const __m512* in, __m512* out) {
  __m512 t1[16], t2[16];
  for (int i = 0; i < 16; i += 2) {
    t1[i] = _mm512_unpacklo_ps(in[i], in[i + 1]);
    t1[i + 1] = _mm512_unpackhi_ps(in[i], in[i + 1]);
  }
  for (int g = 0; g < 16; g += 4) {  // Rows g..g+3: t2[g + c] lane m is column c + 4m.
    const __m512d p0 = _mm512_castps_pd(t1[g]), p1 = _mm512_castps_pd(t1[g + 1]),
                  p2 = _mm512_castps_pd(t1[g + 2]), p3 = _mm512_castps_pd(t1[g + 3]);
    t2[g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(p0, p2));
    t2[g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(p0, p2));
    t2[g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(p1, p3));
    t2[g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(p1, p3));
  }
  for (int c = 0; c < 4; ++c) {
    const __m512 v0 = _mm512_shuffle_f32x4(t2[c], t2[4 + c], 0x44),
                 v1 = _mm512_shuffle_f32x4(t2[c], t2[4 + c], 0xEE);
    const __m512 u0 = _mm512_shuffle_f32x4(t2[8 + c], t2[12 + c], 0x44),
                 u1 = _mm512_shuffle_f32x4(t2[8 + c], t2[12 + c], 0xEE);
    out[c] = _mm512_shuffle_f32x4(v0, u0, 0x88);
    out[c + 4] = _mm512_shuffle_f32x4(v0, u0, 0xDD);
    out[c + 8] = _mm512_shuffle_f32x4(v1, u1, 0x88);
    out[c + 12] = _mm512_shuffle_f32x4(v1, u1, 0xDD);
  }
}

// PackPanel with whole 16 x 16 tiles transposed in registers.
void PackPanelAvx512(const float* const* rows, int width, int k, float* panel) {
  int j = 0;
  for (; j + 16 <= k; j += 16) {
    for (int h = 0; h < kPanelWidth / 16; ++h) {
      __m512 in[16], out[16];
      for (int i = 0; i < 16; ++i) {
        const int c = 16 * h + i;
        in[i] = c < width ? _mm512_loadu_ps(rows[c] + j) : _mm512_setzero_ps();
      }
      Transpose16(in, out);
      for (int l = 0; l < 16; ++l) {
        _mm512_storeu_ps(panel + static_cast<size_t>(j + l) * kPanelWidth + 16 * h, out[l]);
      }
    }
  }
  for (; j < k; ++j) {
    float* dst = panel + static_cast<size_t>(j) * kPanelWidth;
    for (int c = 0; c < kPanelWidth; ++c) dst[c] = c < width ? rows[c][j] : 0.0f;
  }
}

// Dot4x4 written with AVX-512 intrinsics for its last step: the 16 sums'
// lanes are added in order (as Dot adds them) after a 16 x 16 transpose,
// 64 shuffles and 16 vector adds instead of the 256 scalar additions and
// shuffles the compiler made of the generic form's loop (that epilogue cost
// a quarter of the kernel at n = 768: 117 -> 155 GFLOP/s without it).
void Dot4x4Avx512(const float* w, int n, const float* const* x, float* out, const float* pf,
                  size_t first_line, size_t end_line) {
  const size_t stride = static_cast<size_t>(n);
  const float *w0 = w, *w1 = w + stride, *w2 = w + 2 * stride, *w3 = w + 3 * stride;
  const float *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3];
  __m512 a[16];
  for (__m512& v : a) v = _mm512_setzero_ps();
  const size_t iterations = std::max(1, n / 16);
  const size_t per_iteration = (end_line - first_line + iterations - 1) / iterations;
  size_t line = first_line;
  int j = 0;
  for (; j + 16 <= n; j += 16) {
    for (size_t p = 0; p < per_iteration && line < end_line; ++p, ++line) {
      _mm_prefetch(reinterpret_cast<const char*>(pf + (line & 3) * stride + (line >> 2) * 16),
                   _MM_HINT_T0);
    }
    const __m512 y0 = _mm512_loadu_ps(x0 + j), y1 = _mm512_loadu_ps(x1 + j),
                 y2 = _mm512_loadu_ps(x2 + j), y3 = _mm512_loadu_ps(x3 + j);
    const __m512 u[4] = {_mm512_loadu_ps(w0 + j), _mm512_loadu_ps(w1 + j), _mm512_loadu_ps(w2 + j),
                         _mm512_loadu_ps(w3 + j)};
    for (int k = 0; k < 4; ++k) {
      a[4 * k + 0] = _mm512_fmadd_ps(u[k], y0, a[4 * k + 0]);
      a[4 * k + 1] = _mm512_fmadd_ps(u[k], y1, a[4 * k + 1]);
      a[4 * k + 2] = _mm512_fmadd_ps(u[k], y2, a[4 * k + 2]);
      a[4 * k + 3] = _mm512_fmadd_ps(u[k], y3, a[4 * k + 3]);
    }
  }
  alignas(64) float t[16] = {};
  for (; j < n; ++j) {
    for (int k = 0; k < 4; ++k) {
      for (int r = 0; r < 4; ++r) t[k * 4 + r] = std::fma(w[k * stride + j], x[r][j], t[k * 4 + r]);
    }
  }
  __m512 T[16];
  Transpose16(a, T);
  __m512 sum = _mm512_setzero_ps();
  for (int l = 0; l < 16; ++l) sum = _mm512_add_ps(sum, T[l]);
  _mm512_storeu_ps(out, _mm512_add_ps(sum, _mm512_load_ps(t)));
}

// DotRows4 with AVX-512: four rows' 16-lane sums, then their lanes added
// four rows at a time in Dot's order (0..15), a 4 x 4 transpose per group
// of four lanes; each row's tail as Dot's.
void DotRows4Avx512(const float* w, const float* x, int n, float* out) {
  const size_t stride = static_cast<size_t>(n);
  __m512 a[4];
  for (__m512& v : a) v = _mm512_setzero_ps();
  int j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512 y = _mm512_loadu_ps(x + j);
    for (int k = 0; k < 4; ++k)
      a[k] = _mm512_fmadd_ps(_mm512_loadu_ps(w + k * stride + j), y, a[k]);
  }
  __m128 sum = _mm_setzero_ps();  // Row k's running sum in element k.
  sum = internal::AddLaneGroup4(sum, _mm512_castps512_ps128(a[0]), _mm512_castps512_ps128(a[1]),
                                _mm512_castps512_ps128(a[2]), _mm512_castps512_ps128(a[3]));
  sum =
      internal::AddLaneGroup4(sum, _mm512_extractf32x4_ps(a[0], 1), _mm512_extractf32x4_ps(a[1], 1),
                              _mm512_extractf32x4_ps(a[2], 1), _mm512_extractf32x4_ps(a[3], 1));
  sum =
      internal::AddLaneGroup4(sum, _mm512_extractf32x4_ps(a[0], 2), _mm512_extractf32x4_ps(a[1], 2),
                              _mm512_extractf32x4_ps(a[2], 2), _mm512_extractf32x4_ps(a[3], 2));
  sum =
      internal::AddLaneGroup4(sum, _mm512_extractf32x4_ps(a[0], 3), _mm512_extractf32x4_ps(a[1], 3),
                              _mm512_extractf32x4_ps(a[2], 3), _mm512_extractf32x4_ps(a[3], 3));
  alignas(16) float sums[4];
  _mm_store_ps(sums, sum);
  internal::AddRowTails4(w, stride, x, j, n, sums, out);
}

// R rows at once (row r at q + r * n, its scales at scales + r * n / 32):
// R independent accumulation chains, each row's in Dot's order.
template <int R>
void DotQ8Avx512Rows(const int8_t* q, const float* scales, const float* b, int n, float* out) {
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (int j = 0; j + 32 <= n; j += 32) {
    const __m512 b0 = _mm512_loadu_ps(b + j), b1 = _mm512_loadu_ps(b + j + 16);
    for (int r = 0; r < R; ++r) {
      const int8_t* qr = q + static_cast<size_t>(r) * n + j;
      // The same line two calls ahead (rows are consecutive): one core
      // pulls only ~13 GB/s from memory through short rows unaided.
      if (j % 64 == 0) _mm_prefetch(reinterpret_cast<const char*>(qr + 2 * R * n), _MM_HINT_T0);
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

template <int R>
void DotQ4Avx512Rows(const uint8_t* packed, const float* scales, const float* b, int n,
                     float* out) {
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  // The sixteen values a block's nibbles stand for, d * (q - 8), as one
  // vector; vpermps looks each nibble up (it reads an index's low four
  // bits only, so the low nibbles need no mask): one instruction where
  // subtracting, converting and scaling took three.
  const __m512 centred = _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
  for (int j = 0; j + 32 <= n; j += 32) {
    const __m512 b0 = _mm512_loadu_ps(b + j), b1 = _mm512_loadu_ps(b + j + 16);
    for (int r = 0; r < R; ++r) {
      const uint8_t* row = packed + static_cast<size_t>(r) * (n / 2) + j / 2;
      if (j % 128 == 0) _mm_prefetch(reinterpret_cast<const char*>(row + R * n), _MM_HINT_T0);
      const __m512 table = _mm512_mul_ps(
          _mm512_set1_ps(scales[static_cast<size_t>(r) * (n / 32) + j / 32]), centred);
      const __m512i bytes =
          _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row)));
      const __m512 w0 = _mm512_permutexvar_ps(bytes, table);
      const __m512 w1 = _mm512_permutexvar_ps(_mm512_srli_epi32(bytes, 4), table);
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

template <bool kBf16>
float DotHalfAvx512(const uint16_t* h, const float* b, int n) {
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

// float16 -> float32 for a block of values (batched steps convert each
// 4-row block once). _Float16 casts would call libgcc per value on CPUs
// without AVX512-FP16 (4 streams of an F16 model: 17 tok/s, one stream 85).
void DequantizeF16Avx512(const uint16_t* h, size_t n, float* out) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm512_storeu_ps(out + i,
                     _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(h + i))));
  }
  for (; i < n; ++i) out[i] = HalfToFloat(h[i]);
}

// Q4_K / Q5_K: values 64g + 16k .. + 15 (the low nibbles, sub-block 2g,
// into *wlo) and 64g + 32 + 16k .. + 15 (the high nibbles, sub-block
// 2g + 1, into *whi) of a super-block whose quants are at q (the group's
// 32 bytes) and, for Q5_K, fifth bits at high. Each sub-block's values
// d * q - m for every q (one rounding, as DequantizeQ45K) are a vector
// (tables), looked up per value by vpermps (Q4_K: the index's low four
// bits) or vpermt2ps over two tables (Q5_K: five bits): one instruction
// where converting and scaling took two.
struct Q45KTables {
  __m512 lo, hi, lo16, hi16;  // Values 0-15 of sub-blocks 2g, 2g + 1; Q5_K: 16-31.
};
template <bool kFive>
__attribute__((always_inline)) inline Q45KTables MakeQ45KTables(float d1, float m1, float d2,
                                                                float m2) {
  const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512 vd1 = _mm512_set1_ps(d1), vm1 = _mm512_set1_ps(m1), vd2 = _mm512_set1_ps(d2),
               vm2 = _mm512_set1_ps(m2);
  Q45KTables t;
  t.lo = _mm512_fmsub_ps(vd1, iota, vm1);
  t.hi = _mm512_fmsub_ps(vd2, iota, vm2);
  if constexpr (kFive) {
    const __m512 iota16 = _mm512_add_ps(iota, _mm512_set1_ps(16));
    t.lo16 = _mm512_fmsub_ps(vd1, iota16, vm1);
    t.hi16 = _mm512_fmsub_ps(vd2, iota16, vm2);
  } else {
    t.lo16 = t.hi16 = _mm512_setzero_ps();
  }
  return t;
}
template <bool kFive>
__attribute__((always_inline)) inline void Q45KValues16(const uint8_t* q, const uint8_t* high,
                                                        int g, int k, const Q45KTables& t,
                                                        __m512* wlo, __m512* whi) {
  const __m512i v =
      _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16 * k)));
  __m512i lo = v, hi = _mm512_srli_epi32(v, 4);
  if constexpr (kFive) {
    const __m512i low4 = _mm512_set1_epi32(0xF), one = _mm512_set1_epi32(1);
    const __m512i hb =
        _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(high + 16 * k)));
    lo = _mm512_or_si512(_mm512_and_si512(lo, low4),
                         _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(hb, 2 * g), one), 4));
    hi = _mm512_or_si512(
        hi, _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(hb, 2 * g + 1), one), 4));
    *wlo = _mm512_permutex2var_ps(t.lo, lo, t.lo16);
    *whi = _mm512_permutex2var_ps(t.hi, hi, t.hi16);
  } else {
    *wlo = _mm512_permutexvar_ps(lo, t.lo);
    *whi = _mm512_permutexvar_ps(hi, t.hi);
  }
}

// Q6_K: values 32 run + 16k .. + 15 of a super-block half (its `ql` and
// `qh` bits) as the integers -32..31 they stand for.
__attribute__((always_inline)) inline __m512i Q6KInts16(const uint8_t* ql, const uint8_t* qh,
                                                        int run, int k) {
  const int l = 16 * k;
  const __m512i lbits = _mm512_cvtepu8_epi32(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(ql + l + (run % 2 == 1 ? 32 : 0))));
  const __m512i hbits =
      _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qh + l)));
  const __m512i nib =
      run < 2 ? _mm512_and_si512(lbits, _mm512_set1_epi32(0xF)) : _mm512_srli_epi32(lbits, 4);
  const __m512i top = _mm512_and_si512(_mm512_srli_epi32(hbits, 2 * run), _mm512_set1_epi32(3));
  return _mm512_sub_epi32(_mm512_or_si512(nib, _mm512_slli_epi32(top, 4)), _mm512_set1_epi32(32));
}

// Dot with Q4_K / Q5_K super-blocks without a float32 copy: each group of
// 64 values is two runs of 32 (low nibbles, then high nibbles, of the same
// 32 bytes; Q5_K adds a fifth bit from `high`), converted 16 at a time to
// exactly DequantizeQ45K's values and accumulated in Dot's lanes and order.
// R consecutive rows at once (row r's super-blocks right after row r - 1's):
// R independent accumulation chains, interleaved a group of 64 values at a
// time; one row's chain was what a single stream of a K-quant model waited
// on.
template <bool kFive, int R>
void DotQ45KAvx512Rows(const uint8_t* blocks, const float* x, int n, float* out) {
  constexpr size_t kBytes = kFive ? 176 : 144;
  const size_t row_bytes = static_cast<size_t>(n / 256) * kBytes;
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (int b = 0; b < n / 256; ++b) {
    const float* xb = x + 256 * b;
    // Each row's eight sub-block scales and mins, as DequantizeQ45K forms
    // them (d * scale, dmin * min), decoded once per super-block.
    float dsc[R][8], dmn[R][8];
    internal::Q45KBlockStart<R, kBytes>(blocks, row_bytes, b, dsc, dmn);
    for (int g = 0; g < 4; ++g) {
      for (int r = 0; r < R; ++r) {
        const uint8_t* blk = blocks + r * row_bytes + b * kBytes;
        const uint8_t* high = blk + 16;
        const uint8_t* q = blk + 16 + (kFive ? 32 : 0) + 32 * g;
        const Q45KTables t = MakeQ45KTables<kFive>(dsc[r][2 * g], dmn[r][2 * g], dsc[r][2 * g + 1],
                                                   dmn[r][2 * g + 1]);
        __m512 wlo[2], whi[2];
        for (int k = 0; k < 2; ++k) Q45KValues16<kFive>(q, high, g, k, t, &wlo[k], &whi[k]);
        // Values 64g + 0..15, 16..31 (low nibbles), 32..47, 48..63 (high).
        for (int k = 0; k < 2; ++k) {
          acc[r] = _mm512_fmadd_ps(wlo[k], _mm512_loadu_ps(xb + 64 * g + 16 * k), acc[r]);
        }
        for (int k = 0; k < 2; ++k) {
          acc[r] = _mm512_fmadd_ps(whi[k], _mm512_loadu_ps(xb + 64 * g + 32 + 16 * k), acc[r]);
        }
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, acc[r]);
    out[r] = SumLanes(lanes) + 0.0f;  // Dot's (empty) tail.
  }
}

// The same for Q6_K: per 128 values, four runs of 32 whose 6-bit values
// come from `ql` nibbles and `qh` bit pairs, minus 32, times d * scale; R
// rows interleaved a run of 32 values at a time.
template <int R>
void DotQ6KAvx512Rows(const uint8_t* blocks, const float* x, int n, float* out) {
  constexpr size_t kBytes = 210;
  const size_t row_bytes = static_cast<size_t>(n / 256) * kBytes;
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (int b = 0; b < n / 256; ++b) {
    const float* xb = x + 256 * b;
    // Each row's sixteen run scales times d (the same float products),
    // decoded once per super-block.
    float dsc[R][16];
    internal::Q6KBlockStart<R>(blocks, row_bytes, b, dsc);
    for (int half = 0; half < 2; ++half) {
      for (int run = 0; run < 4; ++run) {
        for (int r = 0; r < R; ++r) {
          const uint8_t* blk = blocks + r * row_bytes + b * kBytes;
          const uint8_t* ql = blk + 64 * half;
          const uint8_t* qh = blk + 128 + 32 * half;
          for (int k = 0; k < 2; ++k) {  // Values 32 run + 16k .. + 15 of this half.
            const int l = 16 * k;
            const __m512i q = Q6KInts16(ql, qh, run, k);
            const __m512 scale = _mm512_set1_ps(dsc[r][8 * half + 2 * run + k]);
            const __m512 w = _mm512_mul_ps(scale, _mm512_cvtepi32_ps(q));
            acc[r] = _mm512_fmadd_ps(w, _mm512_loadu_ps(xb + 128 * half + 32 * run + l), acc[r]);
          }
        }
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, acc[r]);
    out[r] = SumLanes(lanes) + 0.0f;
  }
}

float DotQ8Avx512(const int8_t* q, const float* scales, const float* b, int n) {
  float out;
  DotQ8Avx512Rows<1>(q, scales, b, n, &out);
  return out;
}

float DotQ4Avx512(const uint8_t* packed, const float* scales, const float* b, int n) {
  float out;
  DotQ4Avx512Rows<1>(packed, scales, b, n, &out);
  return out;
}

// DequantizeK with the dot kernels' conversions (the same values bit for
// bit): batched steps convert each 4-row block of a K-quant matrix once for
// all their sequences, and the generic form, decoding scales per group,
// took 28% of a 16-stream Q4_K step.
template <bool kFive>
void DequantizeQ45KAvx512(const uint8_t* blocks, size_t count, float* out) {
  constexpr size_t kBytes = kFive ? 176 : 144;
  for (size_t b = 0; b < count; ++b, out += 256) {
    const uint8_t* blk = blocks + b * kBytes;
    float dsc[8], dmn[8];
    internal::KScalesMins8(blk + 4, HalfAt(blk), HalfAt(blk + 2), dsc, dmn);
    const uint8_t* high = blk + 16;
    const uint8_t* q = blk + 16 + (kFive ? 32 : 0);
    for (int g = 0; g < 4; ++g, q += 32) {
      const Q45KTables t =
          MakeQ45KTables<kFive>(dsc[2 * g], dmn[2 * g], dsc[2 * g + 1], dmn[2 * g + 1]);
      for (int k = 0; k < 2; ++k) {
        __m512 wlo, whi;
        Q45KValues16<kFive>(q, high, g, k, t, &wlo, &whi);
        _mm512_storeu_ps(out + 64 * g + 16 * k, wlo);
        _mm512_storeu_ps(out + 64 * g + 32 + 16 * k, whi);
      }
    }
  }
}

void DequantizeQ6KAvx512(const uint8_t* blocks, size_t count, float* out) {
  for (size_t b = 0; b < count; ++b, out += 256) {
    const uint8_t* blk = blocks + b * 210;
    float dsc[16];
    internal::Q6KScales16(blk + 192, HalfAt(blk + 208), dsc);
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = blk + 64 * half;
      const uint8_t* qh = blk + 128 + 32 * half;
      for (int run = 0; run < 4; ++run) {
        for (int k = 0; k < 2; ++k) {
          const __m512i q = Q6KInts16(ql, qh, run, k);
          _mm512_storeu_ps(
              out + 128 * half + 32 * run + 16 * k,
              _mm512_mul_ps(_mm512_set1_ps(dsc[8 * half + 2 * run + k]), _mm512_cvtepi32_ps(q)));
        }
      }
    }
  }
}

void DequantizeKAvx512(WeightTensor::Type type, const uint8_t* blocks, size_t count, float* out) {
  switch (type) {
    case WeightTensor::Type::kQ4_K:
      return DequantizeQ45KAvx512<false>(blocks, count, out);
    case WeightTensor::Type::kQ5_K:
      return DequantizeQ45KAvx512<true>(blocks, count, out);
    case WeightTensor::Type::kQ6_K:
      return DequantizeQ6KAvx512(blocks, count, out);
    default:
      return DequantizeK(type, blocks, count, out);
  }
}

template <int R>
void DotKAvx512Rows(WeightTensor::Type type, const uint8_t* blocks, const float* x, int n,
                    float* out) {
  internal::DispatchKRows<R, DotQ45KAvx512Rows<false, R>, DotQ45KAvx512Rows<true, R>,
                          DotQ6KAvx512Rows<R>, DotKPortable>(type, blocks, x, n, out);
}

float DotKAvx512(WeightTensor::Type type, const uint8_t* blocks, const float* x, int n) {
  float out;
  DotKAvx512Rows<1>(type, blocks, x, n, &out);
  return out;
}

#pragma GCC diagnostic pop

}  // namespace

extern const internal::RowKernels kKernels = {
    .name = "avx512",
    .dot = Dot,
    .dot_rows4 = DotRows4Avx512,
    .dot4 = Dot4,
    .dot4x4 = Dot4x4Avx512,
    .block_scores = BlockScores,
    .pack_panel = PackPanelAvx512,
    .panel_product = PanelProductRows<8>,  // 8 rows x 32 outputs: 16 of 32 registers.
    .dot_q8 = DotQ8Avx512,
    .dot_q8x4 = DotQ8Avx512Rows<4>,
    .dot_q4 = DotQ4Avx512,
    .dot_q4x4 = DotQ4Avx512Rows<4>,
    .dot_f16 = DotHalfAvx512<false>,
    .dot_bf16 = DotHalfAvx512<true>,
    .dot_k = DotKAvx512,
    .dot_k_rows4 = DotKAvx512Rows<4>,
    .dequantize_f16 = DequantizeF16Avx512,
    .dequantize_bf16 = DequantizeBF16,
    .dequantize_q8 = DequantizeQ8,
    .dequantize_q4 = DequantizeQ4,
    .dequantize_k = DequantizeKAvx512,
};

}  // namespace quiver::llm::avx512
