// The integer dots for AVX512-VNNI (compiled with -mavx512f, -mavx512bw,
// -mavx512vl and -mavx512vnni; chosen at start-up on CPUs that have them):
// one vpdpbusd multiplies two 32-value blocks of a weight row (as unsigned
// bytes) with the activation's int8 values, leaving in each of its 16 lanes
// the sum of four products: lanes 0-7 the first block's, 8-15 the
// second's, exactly the lanes of the documented order (int8_dots.h).
#include <immintrin.h>

#include "llm/internal/int8_dots.h"
#include "llm/internal/row_kernels.h"

namespace quiver::llm::avx512 {
namespace {

using internal::Q8Activation;

// How many calls ahead the weights are prefetched (rows are consecutive).
constexpr size_t kAhead = 2;

// Two Q4_0 blocks (32 bytes) as 64 unsigned nibbles in value order:
// [block 0 low nibbles (values 0-15), its high nibbles (16-31), block 1's].
inline __m512i UnpackQ4Pair(const uint8_t* p) {
  const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i mask = _mm256_set1_epi8(0x0F);
  const __m256i lo = _mm256_and_si256(bytes, mask);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), mask);
  // 128-bit chunks [lo 0, lo 1, hi 0, hi 1] -> [lo 0, hi 0, lo 1, hi 1].
  const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
  return _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0));
}

// One Q4_0 block (16 bytes) the same way, the upper half zero.
inline __m512i UnpackQ4One(const uint8_t* p) {
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i mask = _mm_set1_epi8(0x0F);
  const __m256i v =
      _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(bytes, 4), mask), _mm_and_si128(bytes, mask));
  return _mm512_inserti64x4(_mm512_setzero_si512(), v, 0);
}

// R consecutive rows x A activations. Q8_0 bytes are offset by 128 to
// unsigned (x ^ 0x80) and Q4_0 nibbles are value + 8: each activation's
// precomputed -128 / -8 times its sums of four undoes the offset as the
// accumulator's starting value.
template <bool kQ4, int R, int A>
void Dots(const uint8_t* w, const float* scales, int n, const Q8Activation* const* acts,
          float* out) {
  const int blocks = n / 32, pairs = blocks / 2;
  const size_t row_bytes = kQ4 ? n / 2 : n;
  const __m512i halves = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m512i offset = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512 acc[R][A];
  for (int r = 0; r < R; ++r) {
    for (int a = 0; a < A; ++a) acc[r][a] = _mm512_setzero_ps();
  }
  for (int p = 0; p < pairs; ++p) {
    __m512i wv[R];
    __m512 dw[R];  // Lanes 0-7: block 2p's scale; 8-15: block 2p + 1's.
    for (int r = 0; r < R; ++r) {
      const uint8_t* wr = w + r * row_bytes;
      // The same line of the next R rows (what the next call reads, as
      // the rows are consecutive): one core streams only ~13 GB/s from
      // memory on its own, short rows give the hardware prefetcher too
      // little to go on.
      if (!kQ4 || p % 2 == 0) {
        _mm_prefetch(reinterpret_cast<const char*>(wr + kAhead * R * row_bytes +
                                                   (kQ4 ? 32 : 64) * static_cast<size_t>(p)),
                     _MM_HINT_T0);
      }
      wv[r] = kQ4 ? UnpackQ4Pair(wr + 32 * static_cast<size_t>(p))
                  : _mm512_xor_si512(_mm512_loadu_si512(wr + 64 * static_cast<size_t>(p)), offset);
      dw[r] = _mm512_permutexvar_ps(
          halves, _mm512_maskz_loadu_ps(0x3, scales + static_cast<size_t>(r) * blocks + 2 * p));
    }
    for (int a = 0; a < A; ++a) {
      const Q8Activation& x = *acts[a];
      const __m512i qx = _mm512_load_si512(x.q.data() + 64 * static_cast<size_t>(p));
      const __m512i start = _mm512_load_si512((kQ4 ? x.minus8_sums : x.minus128_sums).data() +
                                              16 * static_cast<size_t>(p));
      const __m512 xs = _mm512_load_ps(x.scale_lanes.data() + 16 * static_cast<size_t>(p));
      for (int r = 0; r < R; ++r) {
        const __m512i sums = _mm512_dpbusd_epi32(start, wv[r], qx);
        acc[r][a] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), _mm512_mul_ps(dw[r], xs), acc[r][a]);
      }
    }
  }
  if (blocks % 2 != 0) {  // The last block alone: lanes 0-7.
    const int b = blocks - 1;
    __m512i wv[R];
    __m512 dw[R];
    for (int r = 0; r < R; ++r) {
      const uint8_t* wr = w + r * row_bytes;
      wv[r] = kQ4 ? UnpackQ4One(wr + 16 * static_cast<size_t>(b))
                  : _mm512_xor_si512(
                        _mm512_maskz_loadu_epi8(0xFFFFFFFFull, wr + 32 * static_cast<size_t>(b)),
                        offset);
      dw[r] = _mm512_set1_ps(scales[static_cast<size_t>(r) * blocks + b]);
    }
    for (int a = 0; a < A; ++a) {
      const Q8Activation& x = *acts[a];
      const __m512i qx =
          _mm512_maskz_loadu_epi8(0xFFFFFFFFull, x.q.data() + 32 * static_cast<size_t>(b));
      const __m512i start = _mm512_maskz_loadu_epi32(
          0xFF, (kQ4 ? x.minus8_sums : x.minus128_sums).data() + 8 * static_cast<size_t>(b));
      const __m512 xs =
          _mm512_maskz_loadu_ps(0xFF, x.scale_lanes.data() + 8 * static_cast<size_t>(b));
      for (int r = 0; r < R; ++r) {
        const __m512i sums = _mm512_dpbusd_epi32(start, wv[r], qx);
        acc[r][a] = _mm512_mask3_fmadd_ps(_mm512_cvtepi32_ps(sums), _mm512_mul_ps(dw[r], xs),
                                          acc[r][a], 0x00FF);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int a = 0; a < A; ++a) {
      alignas(64) float lanes[16];
      _mm512_store_ps(lanes, acc[r][a]);
      out[r * A + a] = internal::SumLanes(lanes) + 0.0f;
    }
  }
}

// QuantizeBlockPortable's values, 16 lanes at a time (vcvtps2dq rounds to
// nearest even as nearbyint does; blocks with NaN or infinity take the
// portable routine).
float QuantizeBlock(const float* x, int8_t* q) {
  const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
  const __m512 a0 = _mm512_abs_ps(v0), a1 = _mm512_abs_ps(v1);
  const __m512 inf = _mm512_set1_ps(__builtin_inff());
  // Not below infinity: infinite or NaN.
  if ((_mm512_cmp_ps_mask(a0, inf, _CMP_NLT_UQ) | _mm512_cmp_ps_mask(a1, inf, _CMP_NLT_UQ)) != 0) {
    return internal::QuantizeBlockPortable(x, q);
  }
  const __m512 a = _mm512_max_ps(a0, a1);
  const float amax = _mm512_reduce_max_ps(a);
  const float d = amax / 127.0f, inv = d != 0.0f ? 1.0f / d : 0.0f;
  const __m512 s = _mm512_set1_ps(inv);
  const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
  const __m512i i0 =
      _mm512_min_epi32(hi, _mm512_max_epi32(lo, _mm512_cvtps_epi32(_mm512_mul_ps(v0, s))));
  const __m512i i1 =
      _mm512_min_epi32(hi, _mm512_max_epi32(lo, _mm512_cvtps_epi32(_mm512_mul_ps(v1, s))));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm512_cvtepi32_epi8(i0));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16), _mm512_cvtepi32_epi8(i1));
  return d;
}

template <bool kQ4>
void DotsAvx512(const uint8_t* w, const float* scales, int n, int rows,
                const Q8Activation* const* acts, int count, float* out) {
  using Fn = void (*)(const uint8_t*, const float*, int, const Q8Activation* const*, float*);
  static constexpr Fn kTable[4][4] = {
      {Dots<kQ4, 1, 1>, Dots<kQ4, 1, 2>, Dots<kQ4, 1, 3>, Dots<kQ4, 1, 4>},
      {Dots<kQ4, 2, 1>, Dots<kQ4, 2, 2>, Dots<kQ4, 2, 3>, Dots<kQ4, 2, 4>},
      {Dots<kQ4, 3, 1>, Dots<kQ4, 3, 2>, Dots<kQ4, 3, 3>, Dots<kQ4, 3, 4>},
      {Dots<kQ4, 4, 1>, Dots<kQ4, 4, 2>, Dots<kQ4, 4, 3>, Dots<kQ4, 4, 4>}};
  kTable[rows - 1][count - 1](w, scales, n, acts, out);
}

void Q8(const int8_t* w, const float* scales, int n, int rows, const Q8Activation* const* acts,
        int count, float* out) {
  DotsAvx512<false>(reinterpret_cast<const uint8_t*>(w), scales, n, rows, acts, count, out);
}

}  // namespace

extern const internal::Int8Dots kInt8Dots = {
    .name = "avx512vnni",
    .quantize_block = QuantizeBlock,
    .q8 = Q8,
    .q4 = DotsAvx512<true>,
};

}  // namespace quiver::llm::avx512
