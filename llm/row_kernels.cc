// The float32 row kernels: dot products of weight rows with activations
// (Dot, Dot4, the batched Dot4x4), attention scores, and the long-prompt
// panel kernel, each in a portable form and, where it pays, AVX-512 / AVX2
// forms chosen once at run time (see internal/row_kernels.h for what every
// kernel promises). Stored-type kernels are in quant_kernels.cc.
#include "llm/internal/row_kernels.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/status_macros.h"
#include "common/strings.h"

namespace quiver::llm::internal {

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

namespace {

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
__attribute__((target_clones("avx512f", "fma", "default"))) void Dot4x4Generic(
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

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"  // GCC 12's avx512fintrin.h (_mm512_undefined_*).

// A 16 x 16 transpose in registers: lane i of out[l] is lane l of in[i]
// (64 shuffles: pairs, quads, then 128-bit lanes).
__attribute__((target("avx512f"), always_inline)) inline void Transpose16(const __m512* in,
                                                                          __m512* out) {
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
__attribute__((target("avx512f"))) void PackPanelAvx512(const float* const* rows, int width, int k,
                                                        float* panel) {
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
__attribute__((target("avx512f"))) void Dot4x4Avx512(const float* w, int n, const float* const* x,
                                                     float* out, const float* pf, size_t first_line,
                                                     size_t end_line) {
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

#pragma GCC diagnostic pop

using Dot4x4Fn = void (*)(const float*, int, const float* const*, float*, const float*, size_t,
                          size_t);
// Dot4x4 for AVX2 + FMA: the generic form's 16 sums of 16 lanes need 32
// ymm registers and spill, so the block is done as four 2 x 2 blocks (8
// registers of sums), each over the whole row; the weight rows come from
// L1 after the first pass. The same lanes and order as Dot.
__attribute__((target("avx2,fma"))) void Dot4x4Avx2(const float* w, int n, const float* const* x,
                                                    float* out, const float* pf, size_t first_line,
                                                    size_t end_line) {
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

Dot4x4Fn PickDot4x4() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return Dot4x4Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Dot4x4Avx2;
  return Dot4x4Generic;
}

}  // namespace

void Dot4x4(const float* w, int n, const float* const* x, float* out, const float* pf,
            size_t first_line, size_t end_line) {
  static const Dot4x4Fn kernel = PickDot4x4();
  kernel(w, n, x, out, pf, first_line, end_line);
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

bool HasAvx512() {
  static const bool avx512 = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
  }();
  return avx512;
}

namespace {

// The body of PanelProduct with kRows prompt rows per register block (the
// block size never changes a result: each output is its own in-order sum).
// Inlined into each instruction set's wrapper, which vectorises it.
template <int kRows>
__attribute__((always_inline)) inline void PanelTiles(const float* panel, int k, const float* x,
                                                      size_t x_stride, int m, float* y,
                                                      size_t y_stride, int width) {
  int r0 = 0;
  for (; r0 + kRows <= m; r0 += kRows) {
    float acc[kRows][kPanelWidth] = {};
    const float* xr[kRows];
    for (int r = 0; r < kRows; ++r) xr[r] = x + static_cast<size_t>(r0 + r) * x_stride;
    for (int j = 0; j < k; ++j) {
      const float* p = panel + static_cast<size_t>(j) * kPanelWidth;
      for (int r = 0; r < kRows; ++r) {
        const float v = xr[r][j];
        for (int o = 0; o < kPanelWidth; ++o) acc[r][o] = std::fma(v, p[o], acc[r][o]);
      }
    }
    for (int r = 0; r < kRows; ++r) {
      float* yr = y + static_cast<size_t>(r0 + r) * y_stride;
      for (int o = 0; o < width; ++o) yr[o] = acc[r][o];
    }
  }
  for (; r0 < m; ++r0) {  // The last rows one at a time, in the same order.
    float acc[kPanelWidth] = {};
    const float* xr = x + static_cast<size_t>(r0) * x_stride;
    for (int j = 0; j < k; ++j) {
      const float* p = panel + static_cast<size_t>(j) * kPanelWidth;
      const float v = xr[j];
      for (int o = 0; o < kPanelWidth; ++o) acc[o] = std::fma(v, p[o], acc[o]);
    }
    float* yr = y + static_cast<size_t>(r0) * y_stride;
    for (int o = 0; o < width; ++o) yr[o] = acc[o];
  }
}

// 8 rows x 32 outputs: 16 of AVX-512's 32 registers hold the sums.
__attribute__((target("avx512f"))) void PanelProductAvx512(const float* panel, int k,
                                                           const float* x, size_t x_stride, int m,
                                                           float* y, size_t y_stride, int width) {
  PanelTiles<8>(panel, k, x, x_stride, m, y, y_stride, width);
}

// 2 rows x 32 outputs: 8 of AVX2's 16 registers (8 rows would spill).
__attribute__((target("avx2,fma"))) void PanelProductAvx2(const float* panel, int k, const float* x,
                                                          size_t x_stride, int m, float* y,
                                                          size_t y_stride, int width) {
  PanelTiles<2>(panel, k, x, x_stride, m, y, y_stride, width);
}

void PanelProductPortable(const float* panel, int k, const float* x, size_t x_stride, int m,
                          float* y, size_t y_stride, int width) {
  PanelTiles<1>(panel, k, x, x_stride, m, y, y_stride, width);
}

}  // namespace

// Prompt rows: each output summed over k in increasing order with one fused
// multiply-add per step, vectorised across 32 outputs. No horizontal sums,
// so this runs near the FMA units' peak (191 GFLOP/s on one core in cache,
// against Dot4x4's 125-150).
void PanelProduct(const float* panel, int k, const float* x, size_t x_stride, int m, float* y,
                  size_t y_stride, int width) {
  static const auto kernel = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return PanelProductAvx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return PanelProductAvx2;
    return PanelProductPortable;
  }();
  kernel(panel, k, x, x_stride, m, y, y_stride, width);
}

namespace {

void PackPanelGeneric(const float* const* rows, int width, int k, float* panel) {
  // Panel rows written whole (a cache line pair each), weight rows read as
  // 32 sequential streams.
  const float* src[kPanelWidth];
  for (int c = 0; c < kPanelWidth; ++c) src[c] = c < width ? rows[c] : nullptr;
  for (int j = 0; j < k; ++j) {
    float* dst = panel + static_cast<size_t>(j) * kPanelWidth;
    for (int c = 0; c < kPanelWidth; ++c) dst[c] = src[c] != nullptr ? src[c][j] : 0.0f;
  }
}

}  // namespace

void PackPanel(const float* const* rows, int width, int k, float* panel) {
  if (HasAvx512()) return PackPanelAvx512(rows, width, k, panel);
  PackPanelGeneric(rows, width, k, panel);
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

absl::Status VerifyFloatKernels() {
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  KernelTestData data;
  auto uniform = [&] { return data.Uniform(); };
  // Long prompts' panels: packing (AVX-512 and generic) and the products,
  // each output the in-order fused multiply-add sum over k.
  for (int k : {16, 37, 768}) {
    const int width = 27, m = 11;
    std::vector<float> w(static_cast<size_t>(width) * k), xs(static_cast<size_t>(m) * k);
    for (float& v : w) v = uniform();
    for (float& v : xs) v = uniform();
    const float* rows[kPanelWidth];
    for (int c = 0; c < width; ++c) rows[c] = w.data() + static_cast<size_t>(c) * k;
    std::vector<float> generic(static_cast<size_t>(kPanelWidth) * k), fast(generic.size(), 1.0f);
    PackPanelGeneric(rows, width, k, generic.data());
    PackPanel(rows, width, k, fast.data());
    if (std::memcmp(generic.data(), fast.data(), generic.size() * sizeof(float)) != 0) {
      return absl::InternalError(StrCat("PackPanel differs from the generic packing for k = ", k));
    }
    std::vector<float> y(static_cast<size_t>(m) * width), y2(y.size()), y1(y.size());
    PanelProduct(fast.data(), k, xs.data(), k, m, y.data(), width, width);
    PanelProductPortable(fast.data(), k, xs.data(), k, m, y1.data(), width, width);
    if (avx2) PanelProductAvx2(fast.data(), k, xs.data(), k, m, y2.data(), width, width);
    if (y1 != y || (avx2 && y2 != y)) {
      return absl::InternalError(StrCat("the PanelProduct forms differ for k = ", k));
    }
    for (int r = 0; r < m; ++r) {
      for (int c = 0; c < width; ++c) {
        float want = 0.0f;
        for (int j = 0; j < k; ++j)
          want = std::fma(xs[static_cast<size_t>(r) * k + j], rows[c][j], want);
        if (std::memcmp(&want, &y[static_cast<size_t>(r) * width + c], sizeof want) != 0) {
          return absl::InternalError(
              StrCat("PanelProduct differs from the in-order sum for k = ", k));
        }
      }
    }
  }
  // The batched 4 x 4 kernel: every output equal to Dot's, bit for bit, on
  // both forms (tails past multiples of 16 included).
  for (int n : {16, 100, 768, 2053}) {
    std::vector<float> w(4 * static_cast<size_t>(n)), xs(4 * static_cast<size_t>(n));
    for (float& v : w) v = uniform();
    for (float& v : xs) v = uniform();
    const float* x4[4] = {xs.data(), xs.data() + n, xs.data() + 2 * n, xs.data() + 3 * n};
    float generic[16], fast[16];
    Dot4x4Generic(w.data(), n, x4, generic, w.data(), 0, 0);
    for (int k = 0; k < 4; ++k) {
      for (int r = 0; r < 4; ++r) {
        const float want = Dot(w.data() + static_cast<size_t>(k) * n, x4[r], n);
        if (std::memcmp(&want, &generic[k * 4 + r], sizeof want) != 0) {
          return absl::InternalError(StrCat("Dot4x4 differs from Dot for n = ", n));
        }
      }
    }
    if (avx512) {
      Dot4x4Avx512(w.data(), n, x4, fast, w.data(), 0, 4 * static_cast<size_t>((n + 15) / 16));
      if (std::memcmp(generic, fast, sizeof fast) != 0) {
        return absl::InternalError(
            StrCat("Dot4x4Avx512 differs from the generic kernel for n = ", n));
      }
    }
    if (avx2) {
      Dot4x4Avx2(w.data(), n, x4, fast, w.data(), 0, 4 * static_cast<size_t>((n + 15) / 16));
      if (std::memcmp(generic, fast, sizeof fast) != 0) {
        return absl::InternalError(
            StrCat("Dot4x4Avx2 differs from the generic kernel for n = ", n));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace quiver::llm::internal

namespace quiver::llm {

absl::Status VerifyRowKernels() {
  RETURN_IF_ERROR(internal::VerifyFloatKernels());
  return internal::VerifyQuantKernels();
}

}  // namespace quiver::llm
