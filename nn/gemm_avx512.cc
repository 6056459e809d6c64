// Our GEMM for AVX-512 (compiled with -mavx512f, -mavx512bw, -mavx512vl,
// -mavx512bf16; gemm.cc calls the float32 forms on CPUs with AVX-512F/BW/VL
// and the bfloat16 forms only where AVX512_BF16 is present).
//
// y = x w^T: w is packed once into panels of 32 of its rows (32 columns of
// y), panel[kk][c] = w[c][kk] (bfloat16: panel[kk / 2][c][kk % 2]), zero
// past n. A register block is up to 12 rows of x by one panel: 24 zmm
// accumulators, two panel vectors and one broadcast x value per k (a
// bfloat16 pair per vdpbf16ps). Work is split into (4 row blocks, 1 panel)
// tasks, row-chunk major, so a chunk of x stays in L2 while the panels
// pass.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace quiver::nn::avx512 {
namespace {

constexpr int kNr = 32, kMr = 12, kBlocksPerChunk = 4;

inline __mmask16 LowMask(int64_t cols) {
  return cols >= 16 ? static_cast<__mmask16>(0xFFFF)
                    : static_cast<__mmask16>((1u << std::max<int64_t>(cols, 0)) - 1);
}

// Stores acc (+ bias) into y's row, `cols` (1..32) values.
inline void StoreRow(float* y, __m512 c0, __m512 c1, __m512 b0, __m512 b1, int64_t cols) {
  _mm512_mask_storeu_ps(y, LowMask(cols), _mm512_add_ps(c0, b0));
  if (cols > 16) _mm512_mask_storeu_ps(y + 16, LowMask(cols - 16), _mm512_add_ps(c1, b1));
}

// `ldp`: floats from one k's 32 panel values to the next's (kNr when
// packed; a matrix's row stride when its rows are used in place).
template <int MR>
void KernelF32(const float* x, int64_t ldx, const float* panel, int64_t ldp, int64_t k, __m512 b0,
               __m512 b1, float* y, int64_t ldy, int64_t cols) {
  __m512 c0[MR], c1[MR];
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
  for (int64_t kk = 0; kk < k; ++kk) {
    const __m512 w0 = _mm512_loadu_ps(panel + kk * ldp),
                 w1 = _mm512_loadu_ps(panel + kk * ldp + 16);
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_set1_ps(x[i * ldx + kk]);
      c0[i] = _mm512_fmadd_ps(a, w0, c0[i]);
      c1[i] = _mm512_fmadd_ps(a, w1, c1[i]);
    }
  }
  for (int i = 0; i < MR; ++i) StoreRow(y + i * ldy, c0[i], c1[i], b0, b1, cols);
}

// x as bfloat16 pairs (row stride ldx, in uint16), `pairs` = k / 2 rounded up.
template <int MR>
void KernelBf16(const uint16_t* x, int64_t ldx, const uint16_t* panel, int64_t pairs, __m512 b0,
                __m512 b1, float* y, int64_t ldy, int64_t cols) {
  __m512 c0[MR], c1[MR];
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
  for (int64_t p = 0; p < pairs; ++p) {
    const __m512bh w0 = (__m512bh)_mm512_loadu_si512(panel + p * 2 * kNr);
    const __m512bh w1 = (__m512bh)_mm512_loadu_si512(panel + p * 2 * kNr + kNr);
    for (int i = 0; i < MR; ++i) {
      int32_t pair;
      std::memcpy(&pair, x + i * ldx + 2 * p, 4);
      const __m512bh a = (__m512bh)_mm512_set1_epi32(pair);
      c0[i] = _mm512_dpbf16_ps(c0[i], a, w0);
      c1[i] = _mm512_dpbf16_ps(c1[i], a, w1);
    }
  }
  for (int i = 0; i < MR; ++i) StoreRow(y + i * ldy, c0[i], c1[i], b0, b1, cols);
}

using F32Fn = void (*)(const float*, int64_t, const float*, int64_t, int64_t, __m512, __m512,
                       float*, int64_t, int64_t);
using Bf16Fn = void (*)(const uint16_t*, int64_t, const uint16_t*, int64_t, __m512, __m512, float*,
                        int64_t, int64_t);
constexpr F32Fn kF32[kMr] = {KernelF32<1>, KernelF32<2>,  KernelF32<3>,  KernelF32<4>,
                             KernelF32<5>, KernelF32<6>,  KernelF32<7>,  KernelF32<8>,
                             KernelF32<9>, KernelF32<10>, KernelF32<11>, KernelF32<12>};
constexpr Bf16Fn kBf16[kMr] = {KernelBf16<1>, KernelBf16<2>,  KernelBf16<3>,  KernelBf16<4>,
                               KernelBf16<5>, KernelBf16<6>,  KernelBf16<7>,  KernelBf16<8>,
                               KernelBf16<9>, KernelBf16<10>, KernelBf16<11>, KernelBf16<12>};

// Runs task(row_block, panel) over every (row block, panel), chunk-major.
template <typename Task>
void ForEachTask(int64_t m, int64_t n, int64_t k, const Task& task) {
  const int64_t row_blocks = (m + kMr - 1) / kMr, panels = (n + kNr - 1) / kNr;
  const int64_t chunks = (row_blocks + kBlocksPerChunk - 1) / kBlocksPerChunk;
  const int64_t tasks = chunks * panels;
  auto run = [&](int64_t t) {
    const int64_t chunk = t / panels, p = t % panels;
    const int64_t last = std::min(row_blocks, (chunk + 1) * kBlocksPerChunk);
    for (int64_t rb = chunk * kBlocksPerChunk; rb < last; ++rb) task(rb, p);
  };
  if (m * n * k < (int64_t{1} << 18) || omp_in_parallel()) {
    for (int64_t t = 0; t < tasks; ++t) run(t);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < tasks; ++t) run(t);
}

inline void Bias(const float* bias, int64_t p, int64_t cols, __m512* b0, __m512* b1) {
  *b0 = *b1 = _mm512_setzero_ps();
  if (bias == nullptr) return;
  *b0 = _mm512_maskz_loadu_ps(LowMask(cols), bias + p * kNr);
  if (cols > 16) *b1 = _mm512_maskz_loadu_ps(LowMask(cols - 16), bias + p * kNr + 16);
}

// float32 -> bfloat16 bits, to nearest even (vcvtne2ps2bf16), n values.
void ToBf16(const float* in, int64_t n, uint16_t* out) {
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(in + j + 16), _mm512_loadu_ps(in + j));
    _mm512_storeu_si512(out + j, (__m512i)v);
  }
  if (j < n) {
    alignas(64) float tail[32] = {};
    std::copy(in + j, in + n, tail);
    alignas(64) uint16_t t[32];
    _mm512_store_si512(
        t, (__m512i)_mm512_cvtne2ps_pbh(_mm512_load_ps(tail + 16), _mm512_load_ps(tail)));
    std::copy(t, t + (n - j), out + j);
  }
}

}  // namespace

// Panels of 32 rows of w (row-major [n][k], rows ldw apart) into `out`
// (ceil(n / 32) * k * 32 floats).
void PackF32Strided(const float* w, int64_t ldw, int64_t n, int64_t k, float* out);
void PackF32(const float* w, int64_t n, int64_t k, float* out) { PackF32Strided(w, k, n, k, out); }

void PackF32Strided(const float* w, int64_t ldw, int64_t n, int64_t k, float* out) {
  const int64_t panels = (n + kNr - 1) / kNr;
  for (int64_t p = 0; p < panels; ++p) {
    float* dst = out + p * k * kNr;
    const int64_t cols = std::min<int64_t>(kNr, n - p * kNr);
    for (int64_t c = 0; c < kNr; ++c) {
      const float* src = w + (p * kNr + c) * ldw;
      for (int64_t kk = 0; kk < k; ++kk) dst[kk * kNr + c] = c < cols ? src[kk] : 0.0f;
    }
  }
}

// Panels of bfloat16 pairs: ceil(n / 32) * ceil(k / 2) * 64 values.
void PackBf16(const float* w, int64_t n, int64_t k, uint16_t* out) {
  const int64_t panels = (n + kNr - 1) / kNr, pairs = (k + 1) / 2;
  std::vector<uint16_t> row(2 * pairs);
  for (int64_t p = 0; p < panels; ++p) {
    uint16_t* dst = out + p * pairs * 2 * kNr;
    const int64_t cols = std::min<int64_t>(kNr, n - p * kNr);
    for (int64_t c = 0; c < kNr; ++c) {
      std::fill(row.begin(), row.end(), 0);
      if (c < cols) ToBf16(w + (p * kNr + c) * k, k, row.data());
      for (int64_t q = 0; q < pairs; ++q) {
        dst[q * 2 * kNr + 2 * c] = row[2 * q];
        dst[q * 2 * kNr + 2 * c + 1] = row[2 * q + 1];
      }
    }
  }
}

// x rounded to bfloat16 and back (to nearest even; NaN stays NaN): the
// values the bfloat16 products use, for CPUs with AVX-512F but not
// AVX512_BF16 (integer arithmetic only).
void RoundToBf16(const float* x, int64_t n, float* out) {
  const __m512i half = _mm512_set1_epi32(0x7FFF), one = _mm512_set1_epi32(1);
  const __m512i top = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
  const __m512i quiet = _mm512_set1_epi32(0x00400000);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 in = LowMask(n - j);
    const __m512 v = _mm512_maskz_loadu_ps(in, x + j);
    const __m512i bits = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), one);
    __m512i r = _mm512_and_si512(_mm512_add_epi32(bits, _mm512_add_epi32(half, lsb)), top);
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    r = _mm512_mask_mov_epi32(r, nan, _mm512_and_si512(_mm512_or_si512(bits, quiet), top));
    _mm512_mask_storeu_ps(out + j, in, _mm512_castsi512_ps(r));
  }
}

void GemmF32(const float* x, const float* panels, const float* bias, int64_t m, int64_t n,
             int64_t k, float* y) {
  ForEachTask(m, n, k, [&](int64_t rb, int64_t p) {
    const int64_t r0 = rb * kMr, rows = std::min<int64_t>(kMr, m - r0);
    const int64_t cols = std::min<int64_t>(kNr, n - p * kNr);
    __m512 b0, b1;
    Bias(bias, p, cols, &b0, &b1);
    kF32[rows - 1](x + r0 * k, k, panels + p * k * kNr, kNr, k, b0, b1, y + r0 * n + p * kNr, n,
                   cols);
  });
}

void GemmBf16(const float* x, const uint16_t* panels, const float* bias, int64_t m, int64_t n,
              int64_t k, float* y) {
  const int64_t pairs = (k + 1) / 2, ldx = 2 * pairs;
  // x as bfloat16 pairs, in this thread's buffer (named by a reference:
  // the team reads the caller's).
  thread_local std::vector<uint16_t> thread_buffer;
  std::vector<uint16_t>& xb = thread_buffer;
  xb.resize(static_cast<size_t>(m * ldx));
  auto convert = [&](int64_t i) {
    ToBf16(x + i * k, k, xb.data() + i * ldx);
    if (ldx > k) xb[i * ldx + k] = 0;
  };
  if (m * k < (int64_t{1} << 16) || omp_in_parallel()) {
    for (int64_t i = 0; i < m; ++i) convert(i);
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < m; ++i) convert(i);
  }
  ForEachTask(m, n, k, [&](int64_t rb, int64_t p) {
    const int64_t r0 = rb * kMr, rows = std::min<int64_t>(kMr, m - r0);
    const int64_t cols = std::min<int64_t>(kNr, n - p * kNr);
    __m512 b0, b1;
    Bias(bias, p, cols, &b0, &b1);
    kBf16[rows - 1](xb.data() + r0 * ldx, ldx, panels + p * pairs * 2 * kNr, pairs, b0, b1,
                    y + r0 * n + p * kNr, n, cols);
  });
}

void SoftmaxRows(float* s, int64_t rows, int64_t len, float scale);

// One head's attention for `rows` query rows (see cpu_backend.cc); false
// (nothing done) unless the head size is a multiple of 32.
bool AttentionBlock(const float* q, int64_t ldq, const float* k, const float* v, int64_t ldkv,
                    int64_t rows, int64_t len, int64_t hd, float scale, float* out, int64_t ldo,
                    std::vector<float>* scratch) {
  if (hd % kNr != 0) return false;
  const int64_t panels = (len + kNr - 1) / kNr;
  scratch->resize(static_cast<size_t>(panels * kNr * hd + rows * len));
  float* packed = scratch->data();
  float* scores = packed + panels * kNr * hd;
  PackF32Strided(k, ldkv, len, hd, packed);
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t r0 = 0; r0 < rows; r0 += kMr) {
    const int64_t m = std::min<int64_t>(kMr, rows - r0);
    for (int64_t p = 0; p < panels; ++p) {
      kF32[m - 1](q + r0 * ldq, ldq, packed + p * hd * kNr, kNr, hd, zero, zero,
                  scores + r0 * len + p * kNr, len, std::min<int64_t>(kNr, len - p * kNr));
    }
  }
  SoftmaxRows(scores, rows, len, scale);
  // out = P V: V's rows are the panels in place (32 of a head's columns).
  for (int64_t r0 = 0; r0 < rows; r0 += kMr) {
    const int64_t m = std::min<int64_t>(kMr, rows - r0);
    for (int64_t c = 0; c < hd; c += kNr) {
      kF32[m - 1](scores + r0 * len, len, v + c, ldkv, len, zero, zero, out + r0 * ldo + c, ldo,
                  kNr);
    }
  }
  return true;
}

}  // namespace quiver::nn::avx512
