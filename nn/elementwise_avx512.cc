// Element-wise kernels of the CPU backend for AVX-512 (compiled with
// -mavx512f and -ffast-math, so GCC vectorises erf and exp through glibc's
// 16-wide libmvec variants; cpu_backend.cc calls these on CPUs with
// AVX-512F, its portable loops elsewhere).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace quiver::nn::avx512 {

void Gelu(float* x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i)
    x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752f));
}

// Each row: exp(scale * (s - max)) / sum (softmax of scale * s, scale > 0).
void SoftmaxRows(float* s, int64_t rows, int64_t len, float scale) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = s + r * len;
    __m512 m = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j < len; j += 16) {
      const __mmask16 in = len - j >= 16 ? static_cast<__mmask16>(0xFFFF)
                                         : static_cast<__mmask16>((1u << (len - j)) - 1);
      m = _mm512_mask_max_ps(m, in, m, _mm512_maskz_loadu_ps(in, row + j));
    }
    const float mx = _mm512_reduce_max_ps(m);
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < len; ++j) sum += (row[j] = std::exp(scale * (row[j] - mx)));
    const float inv = 1.0f / sum;
#pragma omp simd
    for (int64_t j = 0; j < len; ++j) row[j] *= inv;
  }
}

// (x - mean) / sqrt(var + eps) * g + b, mean and variance summed in double.
void LayerNormRow(float* v, int64_t d, const float* g, const float* b, float eps) {
  double mean = 0, var = 0;
#pragma omp simd reduction(+ : mean)
  for (int64_t j = 0; j < d; ++j) mean += v[j];
  mean /= d;
#pragma omp simd reduction(+ : var)
  for (int64_t j = 0; j < d; ++j) var += (v[j] - mean) * (v[j] - mean);
  var /= d;
  const float inv = static_cast<float>(1.0 / std::sqrt(var + eps));
  const float mu = static_cast<float>(mean);
#pragma omp simd
  for (int64_t j = 0; j < d; ++j) v[j] = (v[j] - mu) * inv * g[j] + b[j];
}

}  // namespace quiver::nn::avx512
