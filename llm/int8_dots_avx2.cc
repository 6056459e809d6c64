// The integer dots for AVX2 (compiled with -mavx2 -mfma; chosen at start-up
// on CPUs without AVX512-VNNI): vpmaddubsw multiplies the weights'
// magnitudes with the activation's values carrying the weights' signs (at
// most 2 x 128 x 127 per pair: no saturation), vpmaddwd adds pairs of
// those, leaving per 32-value block 8 lanes of four products each, the
// documented lanes (int8_dots.h): one accumulator for even blocks, one for
// odd.
#include <immintrin.h>

#include "llm/internal/int8_dots.h"
#include "llm/internal/row_kernels.h"

namespace quiver::llm::avx2 {
namespace {

using internal::Q8Activation;

// One Q4_0 block (16 bytes) as 32 signed values (nibble - 8) in order.
inline __m256i UnpackQ4(const uint8_t* p) {
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i mask = _mm_set1_epi8(0x0F);
  const __m256i v =
      _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(bytes, 4), mask), _mm_and_si128(bytes, mask));
  return _mm256_sub_epi8(v, _mm256_set1_epi8(8));
}

// R consecutive rows x one activation.
template <bool kQ4, int R>
void Rows(const uint8_t* w, const float* scales, int n, const Q8Activation& x, float* out) {
  const int blocks = n / 32;
  const size_t row_bytes = kQ4 ? n / 2 : n;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  auto block = [&](int b, int parity) __attribute__((always_inline)) {
    const __m256i qx = _mm256_load_si256(
        reinterpret_cast<const __m256i*>(x.q.data() + 32 * static_cast<size_t>(b)));
    const float xs = x.scale[b];
    for (int r = 0; r < R; ++r) {
      const uint8_t* wr = w + r * row_bytes;
      const __m256i wv = kQ4 ? UnpackQ4(wr + 16 * static_cast<size_t>(b))
                             : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(
                                   wr + 32 * static_cast<size_t>(b)));
      const __m256i pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(wv), _mm256_sign_epi8(qx, wv));
      const __m256 sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
      const __m256 s = _mm256_set1_ps(scales[static_cast<size_t>(r) * blocks + b] * xs);
      acc[r][parity] = _mm256_fmadd_ps(sums, s, acc[r][parity]);
    }
  };
  int b = 0;
  for (; b + 2 <= blocks; b += 2) {
    block(b, 0);
    block(b + 1, 1);
  }
  if (b < blocks) block(b, 0);
  for (int r = 0; r < R; ++r) {
    alignas(32) float lanes[16];
    _mm256_store_ps(lanes, acc[r][0]);
    _mm256_store_ps(lanes + 8, acc[r][1]);
    out[r] = internal::SumLanes(lanes) + 0.0f;
  }
}

template <bool kQ4>
void DotsAvx2(const uint8_t* w, const float* scales, int n, int rows,
              const Q8Activation* const* acts, int count, float* out) {
  using Fn = void (*)(const uint8_t*, const float*, int, const Q8Activation&, float*);
  static constexpr Fn kRows[4] = {Rows<kQ4, 1>, Rows<kQ4, 2>, Rows<kQ4, 3>, Rows<kQ4, 4>};
  for (int a = 0; a < count; ++a) {
    float o[4];
    kRows[rows - 1](w, scales, n, *acts[a], o);
    for (int r = 0; r < rows; ++r) out[r * count + a] = o[r];
  }
}

void Q8(const int8_t* w, const float* scales, int n, int rows, const Q8Activation* const* acts,
        int count, float* out) {
  DotsAvx2<false>(reinterpret_cast<const uint8_t*>(w), scales, n, rows, acts, count, out);
}

}  // namespace

extern const internal::Int8Dots kInt8Dots = {
    .name = "avx2",
    .quantize_block = internal::QuantizeBlockPortable,
    .q8 = Q8,
    .q4 = DotsAvx2<true>,
};

}  // namespace quiver::llm::avx2
