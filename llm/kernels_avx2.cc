// The row kernels for AVX2 + FMA + F16C (compiled with those flags only;
// chosen at start-up on CPUs that have them but not AVX-512).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "llm/internal/kquant_x86.h"
#include "llm/internal/lane_sums_x86.h"
#include "llm/internal/row_kernels.h"
#include "nn/half.h"

namespace quiver::llm::avx2 {
namespace {

#include "llm/internal/generic_kernels.inc"

// Dot4x4 for AVX2 + FMA: the generic form's 16 sums of 16 lanes need 32
// ymm registers and spill, so the block is done as four 2 x 2 blocks (8
// registers of sums), each over the whole row; the weight rows come from
// L1 after the first pass. The same lanes and order as Dot.
void Dot4x4Avx2(const float* w, int n, const float* const* x, float* out, const float* pf,
                size_t first_line, size_t end_line) {
  const size_t stride = static_cast<size_t>(n);
  const size_t iterations = std::max(1, n / 16);
  const size_t per_iteration = (end_line - first_line + iterations - 1) / iterations;
  for (int kp = 0; kp < 4; kp += 2) {
    for (int rp = 0; rp < 4; rp += 2) {
      const float *u0 = w + kp * stride, *u1 = w + (kp + 1) * stride;
      const float *y0 = x[rp], *y1 = x[rp + 1];
      __m256 a[4][2];
      for (auto& v : a) v[0] = v[1] = _mm256_setzero_ps();
      size_t line = first_line;
      const bool prefetching = kp == 0 && rp == 0;  // The next block once, in the first pass.
      int j = 0;
      for (; j + 16 <= n; j += 16) {
        if (prefetching) {
          for (size_t p = 0; p < per_iteration && line < end_line; ++p, ++line) {
            _mm_prefetch(reinterpret_cast<const char*>(pf + (line & 3) * stride + (line >> 2) * 16),
                         _MM_HINT_T0);
          }
        }
        for (int h = 0; h < 2; ++h) {  // Lanes 0-7, then 8-15.
          const __m256 w0 = _mm256_loadu_ps(u0 + j + 8 * h), w1 = _mm256_loadu_ps(u1 + j + 8 * h);
          const __m256 x0 = _mm256_loadu_ps(y0 + j + 8 * h), x1 = _mm256_loadu_ps(y1 + j + 8 * h);
          a[0][h] = _mm256_fmadd_ps(w0, x0, a[0][h]);
          a[1][h] = _mm256_fmadd_ps(w0, x1, a[1][h]);
          a[2][h] = _mm256_fmadd_ps(w1, x0, a[2][h]);
          a[3][h] = _mm256_fmadd_ps(w1, x1, a[3][h]);
        }
      }
      for (int b = 0; b < 4; ++b) {
        const int k = kp + b / 2, r = rp + b % 2;
        float tail = 0.0f;
        for (int t = j; t < n; ++t) tail = std::fma(w[k * stride + t], x[r][t], tail);
        alignas(32) float lanes[16];
        _mm256_store_ps(lanes, a[b][0]);
        _mm256_store_ps(lanes + 8, a[b][1]);
        out[k * 4 + r] = SumLanes(lanes) + tail;
      }
    }
  }
}

// Four rows' 16 lanes (lo: 0-7, hi: 8-15) added in Dot's order (0..15),
// the four rows side by side after a 4 x 4 transpose per group of four
// lanes: sums[k] is row k's SumLanes.
__attribute__((always_inline)) inline void SumLanesRows4(const __m256* lo, const __m256* hi,
                                                         float* sums) {
  __m128 sum = _mm_setzero_ps();  // Row k's running sum in element k.
  sum = internal::AddLaneGroup4(sum, _mm256_castps256_ps128(lo[0]), _mm256_castps256_ps128(lo[1]),
                                _mm256_castps256_ps128(lo[2]), _mm256_castps256_ps128(lo[3]));
  sum =
      internal::AddLaneGroup4(sum, _mm256_extractf128_ps(lo[0], 1), _mm256_extractf128_ps(lo[1], 1),
                              _mm256_extractf128_ps(lo[2], 1), _mm256_extractf128_ps(lo[3], 1));
  sum = internal::AddLaneGroup4(sum, _mm256_castps256_ps128(hi[0]), _mm256_castps256_ps128(hi[1]),
                                _mm256_castps256_ps128(hi[2]), _mm256_castps256_ps128(hi[3]));
  sum =
      internal::AddLaneGroup4(sum, _mm256_extractf128_ps(hi[0], 1), _mm256_extractf128_ps(hi[1], 1),
                              _mm256_extractf128_ps(hi[2], 1), _mm256_extractf128_ps(hi[3], 1));
  _mm_storeu_ps(sums, sum);
}

// Row r's 16 lanes (lo: 0-7, hi: 8-15) added in Dot's order, plus Dot's
// (empty) tail, for the stored-type kernels: four rows side by side, one
// row alone.
template <int R>
__attribute__((always_inline)) inline void SumRowLanes(const __m256* lo, const __m256* hi,
                                                       float* out) {
  if constexpr (R == 4) {
    float sums[4];
    SumLanesRows4(lo, hi, sums);
    for (int k = 0; k < 4; ++k) out[k] = sums[k] + 0.0f;
  } else {
    for (int r = 0; r < R; ++r) {
      alignas(32) float lanes[16];
      _mm256_store_ps(lanes, lo[r]);
      _mm256_store_ps(lanes + 8, hi[r]);
      out[r] = SumLanes(lanes) + 0.0f;
    }
  }
}

// DotRows4 for AVX2 + FMA: four rows' 16-lane sums (two registers each),
// their lanes added side by side; each row's tail as Dot's.
void DotRows4Avx2(const float* w, const float* x, int n, float* out) {
  const size_t stride = static_cast<size_t>(n);
  __m256 lo[4], hi[4];  // Row k's lanes 0-7 and 8-15.
  for (int k = 0; k < 4; ++k) lo[k] = hi[k] = _mm256_setzero_ps();
  int j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m256 x0 = _mm256_loadu_ps(x + j), x1 = _mm256_loadu_ps(x + j + 8);
    for (int k = 0; k < 4; ++k) {
      lo[k] = _mm256_fmadd_ps(_mm256_loadu_ps(w + k * stride + j), x0, lo[k]);
      hi[k] = _mm256_fmadd_ps(_mm256_loadu_ps(w + k * stride + j + 8), x1, hi[k]);
    }
  }
  float sums[4];
  SumLanesRows4(lo, hi, sums);
  internal::AddRowTails4(w, stride, x, j, n, sums, out);
}

// Values j..j+15 of a Q8_0 row (block j / 32) as float32: the scale times
// each integer, as DequantizeQ8 gives them.
struct Q8Row {
  static constexpr size_t BytesPerRow(int n) { return static_cast<size_t>(n); }
  static constexpr int kValuesPerLine = 64;  // Of a 64-byte cache line.
  __attribute__((always_inline)) static void Values16(const uint8_t* row, const float* scales,
                                                      int j, __m256* w0, __m256* w1) {
    const __m256 d = _mm256_set1_ps(scales[j / 32]);
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + j));
    *w0 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(raw)));
    *w1 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(raw, 8))));
  }
};

// The same for Q4_0: block j / 32's 16 bytes hold values 0-15 in their low
// nibbles and 16-31 in their high ones, each minus 8.
struct Q4Row {
  static constexpr size_t BytesPerRow(int n) { return static_cast<size_t>(n) / 2; }
  static constexpr int kValuesPerLine = 128;
  __attribute__((always_inline)) static void Values16(const uint8_t* row, const float* scales,
                                                      int j, __m256* w0, __m256* w1) {
    const __m256i eight = _mm256_set1_epi32(8), mask = _mm256_set1_epi32(0x0F);
    const __m256 d = _mm256_set1_ps(scales[j / 32]);
    const uint8_t* blk = row + (j / 32) * 16;
    const int shift = (j % 32) == 0 ? 0 : 4;  // Low nibbles first, then high.
    const __m256i b0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk)));
    const __m256i b1 =
        _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + 8)));
    *w0 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_sub_epi32(
                               _mm256_and_si256(_mm256_srli_epi32(b0, shift), mask), eight)));
    *w1 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_sub_epi32(
                               _mm256_and_si256(_mm256_srli_epi32(b1, shift), mask), eight)));
  }
};

// One Q8_0 / Q4_0 row . b (n % 32 == 0), summed as Dot sums the row's
// float32 values.
template <typename Row>
float DotQuantAvx2(const uint8_t* row, const float* scales, const float* b, int n) {
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();  // Lanes 0-7, 8-15.
  for (int j = 0; j + 16 <= n; j += 16) {
    __m256 w0, w1;
    Row::Values16(row, scales, j, &w0, &w1);
    lo = _mm256_fmadd_ps(w0, _mm256_loadu_ps(b + j), lo);
    hi = _mm256_fmadd_ps(w1, _mm256_loadu_ps(b + j + 8), hi);
  }
  float out;
  SumRowLanes<1>(&lo, &hi, &out);
  return out;
}

// Four consecutive rows: four independent accumulation chains, the lane
// sums side by side, and the same line two calls ahead prefetched (rows
// are consecutive; short rows give the hardware prefetcher too little to
// go on). One stream on a 2-core Zen 3: Q8_0 123-131 -> 140-141 tokens/s,
// Q4_0 87-105 -> 124-137 (generate_bench medians, two runs each).
template <typename Row>
void DotQuantAvx2Rows4(const uint8_t* rows, const float* scales, const float* b, int n,
                       float* out) {
  const size_t row_bytes = Row::BytesPerRow(n);
  __m256 lo[4], hi[4];
  for (int k = 0; k < 4; ++k) lo[k] = hi[k] = _mm256_setzero_ps();
  for (int j = 0; j + 16 <= n; j += 16) {
    const __m256 x0 = _mm256_loadu_ps(b + j), x1 = _mm256_loadu_ps(b + j + 8);
    for (int k = 0; k < 4; ++k) {
      const uint8_t* row = rows + k * row_bytes;
      if (j % Row::kValuesPerLine == 0) {
        const size_t at = static_cast<size_t>(j) / Row::kValuesPerLine * 64 + 8 * row_bytes;
        _mm_prefetch(reinterpret_cast<const char*>(row + at), _MM_HINT_T0);
      }
      __m256 w0, w1;
      Row::Values16(row, scales + k * (n / 32), j, &w0, &w1);
      lo[k] = _mm256_fmadd_ps(w0, x0, lo[k]);
      hi[k] = _mm256_fmadd_ps(w1, x1, hi[k]);
    }
  }
  SumRowLanes<4>(lo, hi, out);
}

float DotQ8Avx2(const int8_t* q, const float* scales, const float* b, int n) {
  return DotQuantAvx2<Q8Row>(reinterpret_cast<const uint8_t*>(q), scales, b, n);
}
void DotQ8Avx2Rows4(const int8_t* q, const float* scales, const float* b, int n, float* out) {
  DotQuantAvx2Rows4<Q8Row>(reinterpret_cast<const uint8_t*>(q), scales, b, n, out);
}
float DotQ4Avx2(const uint8_t* packed, const float* scales, const float* b, int n) {
  return DotQuantAvx2<Q4Row>(packed, scales, b, n);
}
void DotQ4Avx2Rows4(const uint8_t* packed, const float* scales, const float* b, int n, float* out) {
  DotQuantAvx2Rows4<Q4Row>(packed, scales, b, n, out);
}

// K-quant rows for AVX2 + FMA, R rows at once (row r's super-blocks right
// after row r - 1's): each value converted to exactly DequantizeK's (one
// fused multiply-subtract for Q4_K / Q5_K, one multiply for Q6_K) and
// accumulated in Dot's lanes and order, lanes 0-7 and 8-15 in two
// registers per row; the rows interleaved 64 (Q6_K 32) values at a time,
// their lane sums added side by side. The scales of a super-block are
// decoded once (kquant_x86.h). Bit for bit the portable kernel; one core of
// a Zen 5, four rows in cache: Q4_K 4.2 -> 12.9 G values/s, Q6_K 3.6 -> 7.2
// against the generic form (vectorised by the compiler, decoding the scales
// per group, one chain per row).
template <bool kFive, int R>
void DotQ45KAvx2Rows(const uint8_t* blocks, const float* x, int n, float* out) {
  constexpr size_t kBytes = kFive ? 176 : 144;
  const size_t row_bytes = static_cast<size_t>(n / 256) * kBytes;
  const __m256i low4 = _mm256_set1_epi32(0xF), one = _mm256_set1_epi32(1);
  __m256 lo[R], hi[R];  // Row r's lanes 0-7 and 8-15.
  for (int r = 0; r < R; ++r) lo[r] = hi[r] = _mm256_setzero_ps();
  for (int b = 0; b < n / 256; ++b) {
    const float* xb = x + 256 * b;
    float dsc[R][8], dmn[R][8];
    internal::Q45KBlockStart<R, kBytes>(blocks, row_bytes, b, dsc, dmn);
    for (int g = 0; g < 4; ++g) {
      for (int r = 0; r < R; ++r) {
        const uint8_t* blk = blocks + r * row_bytes + b * kBytes;
        const uint8_t* high = blk + 16;
        const uint8_t* q = blk + 16 + (kFive ? 32 : 0) + 32 * g;
        const __m256 d1 = _mm256_set1_ps(dsc[r][2 * g]), m1 = _mm256_set1_ps(dmn[r][2 * g]);
        const __m256 d2 = _mm256_set1_ps(dsc[r][2 * g + 1]), m2 = _mm256_set1_ps(dmn[r][2 * g + 1]);
        // w[half][k][h]: values 64g + 32 half + 16k + 8h .. + 7 (half 0: the
        // low nibbles, sub-block 2g; 1: the high nibbles, sub-block 2g + 1).
        __m256 w[2][2][2];
        for (int k = 0; k < 2; ++k) {
          for (int h = 0; h < 2; ++h) {
            const int at = 16 * k + 8 * h;
            const __m256i v =
                _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + at)));
            __m256i vlo = _mm256_and_si256(v, low4), vhi = _mm256_srli_epi32(v, 4);
            if constexpr (kFive) {
              const __m256i hb = _mm256_cvtepu8_epi32(
                  _mm_loadl_epi64(reinterpret_cast<const __m128i*>(high + at)));
              vlo = _mm256_or_si256(
                  vlo, _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(hb, 2 * g), one), 4));
              vhi = _mm256_or_si256(
                  vhi,
                  _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(hb, 2 * g + 1), one), 4));
            }
            w[0][k][h] = _mm256_fmsub_ps(d1, _mm256_cvtepi32_ps(vlo), m1);
            w[1][k][h] = _mm256_fmsub_ps(d2, _mm256_cvtepi32_ps(vhi), m2);
          }
        }
        // In value order within each lane: low nibbles' runs, then high.
        for (int half = 0; half < 2; ++half) {
          for (int k = 0; k < 2; ++k) {
            const float* xv = xb + 64 * g + 32 * half + 16 * k;
            lo[r] = _mm256_fmadd_ps(w[half][k][0], _mm256_loadu_ps(xv), lo[r]);
            hi[r] = _mm256_fmadd_ps(w[half][k][1], _mm256_loadu_ps(xv + 8), hi[r]);
          }
        }
      }
    }
  }
  SumRowLanes<R>(lo, hi, out);
}

template <int R>
void DotQ6KAvx2Rows(const uint8_t* blocks, const float* x, int n, float* out) {
  constexpr size_t kBytes = 210;
  const size_t row_bytes = static_cast<size_t>(n / 256) * kBytes;
  const __m256i low4 = _mm256_set1_epi32(0xF), three = _mm256_set1_epi32(3),
                bias = _mm256_set1_epi32(32);
  __m256 lo[R], hi[R];
  for (int r = 0; r < R; ++r) lo[r] = hi[r] = _mm256_setzero_ps();
  for (int b = 0; b < n / 256; ++b) {
    const float* xb = x + 256 * b;
    float dsc[R][16];
    internal::Q6KBlockStart<R>(blocks, row_bytes, b, dsc);
    for (int half = 0; half < 2; ++half) {
      for (int run = 0; run < 4; ++run) {
        for (int r = 0; r < R; ++r) {
          const uint8_t* blk = blocks + r * row_bytes + b * kBytes;
          const uint8_t* ql = blk + 64 * half + (run % 2 == 1 ? 32 : 0);
          const uint8_t* qh = blk + 128 + 32 * half;
          for (int k = 0; k < 2; ++k) {  // Values 32 run + 16k .. + 15 of this half.
            const __m256 scale = _mm256_set1_ps(dsc[r][8 * half + 2 * run + k]);
            __m256 w[2];
            for (int h = 0; h < 2; ++h) {
              const int l = 16 * k + 8 * h;
              const __m256i lbits =
                  _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(ql + l)));
              const __m256i hbits =
                  _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(qh + l)));
              const __m256i nib =
                  run < 2 ? _mm256_and_si256(lbits, low4) : _mm256_srli_epi32(lbits, 4);
              const __m256i top = _mm256_and_si256(_mm256_srli_epi32(hbits, 2 * run), three);
              const __m256i q =
                  _mm256_sub_epi32(_mm256_or_si256(nib, _mm256_slli_epi32(top, 4)), bias);
              w[h] = _mm256_mul_ps(scale, _mm256_cvtepi32_ps(q));
            }
            const float* xv = xb + 128 * half + 32 * run + 16 * k;
            lo[r] = _mm256_fmadd_ps(w[0], _mm256_loadu_ps(xv), lo[r]);
            hi[r] = _mm256_fmadd_ps(w[1], _mm256_loadu_ps(xv + 8), hi[r]);
          }
        }
      }
    }
  }
  SumRowLanes<R>(lo, hi, out);
}

template <int R>
void DotKAvx2Rows(WeightTensor::Type type, const uint8_t* blocks, const float* x, int n,
                  float* out) {
  internal::DispatchKRows<R, DotQ45KAvx2Rows<false, R>, DotQ45KAvx2Rows<true, R>, DotQ6KAvx2Rows<R>,
                          DotKPortable>(type, blocks, x, n, out);
}

float DotKAvx2(WeightTensor::Type type, const uint8_t* blocks, const float* x, int n) {
  float out;
  DotKAvx2Rows<1>(type, blocks, x, n, &out);
  return out;
}

template <bool kBf16>
__attribute__((always_inline)) inline __m256 HalfsToFloats8(const uint16_t* p) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return kBf16 ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16))
               : _mm256_cvtph_ps(raw);
}

template <bool kBf16>
float DotHalfAvx2(const uint16_t* h, const float* b, int n) {
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

void DequantizeF16Avx2(const uint16_t* h, size_t n, float* out) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(out + i,
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i))));
  }
  for (; i < n; ++i) out[i] = HalfToFloat(h[i]);
}

}  // namespace

extern const internal::RowKernels kKernels = {
    .name = "avx2",
    .dot = Dot,
    .dot_rows4 = DotRows4Avx2,
    .dot4 = Dot4,
    .dot4x4 = Dot4x4Avx2,
    .block_scores = BlockScores,
    .pack_panel = PackPanelGeneric,
    .panel_product = PanelProductRows<2>,  // 2 rows x 32 outputs: 8 of 16 registers.
    .dot_q8 = DotQ8Avx2,
    .dot_q8x4 = DotQ8Avx2Rows4,
    .dot_q4 = DotQ4Avx2,
    .dot_q4x4 = DotQ4Avx2Rows4,
    .dot_f16 = DotHalfAvx2<false>,
    .dot_bf16 = DotHalfAvx2<true>,
    .dot_k = DotKAvx2,
    .dot_k_rows4 = DotKAvx2Rows<4>,
    .dequantize_f16 = DequantizeF16Avx2,
    .dequantize_bf16 = DequantizeBF16,
    .dequantize_q8 = DequantizeQ8,
    .dequantize_q4 = DequantizeQ4,
    .dequantize_k = DequantizeK,
};

}  // namespace quiver::llm::avx2
