// Matrix products for the CPU backend's Linear layers: y = x w^T (+ bias),
// row-major float32 in and out, the weights packed once (PackWeights). On
// CPUs with AVX-512 our own kernels run (gemm_avx512.cc: weights in
// 32-column panels, 12 x 32 register blocks of fused multiply-adds; with
// AVX512_BF16, vdpbf16ps on bfloat16 pairs); elsewhere OpenBLAS sgemm.
// Gemm opens its own OpenMP region (call it outside one).
#ifndef QUIVER_NN_GEMM_H_
#define QUIVER_NN_GEMM_H_

#include <cstdint>
#include <string_view>
#include <vector>

namespace quiver::nn {

// A weight matrix w[n][k] in the layout Gemm reads. Float32: y sums
// float32 products. Bfloat16: x and w are rounded to bfloat16 (to nearest,
// ties to even), their products are exact and summed in float32.
struct PackedWeights {
  // kRowMajor: `rows` (w itself, which must outlive this, or `floats`
  // holding w rounded to bfloat16) for OpenBLAS; kPanels: `floats` in
  // 32-column panels (rounded for bfloat16); kBf16Panels: `halves`, panels
  // of bfloat16 pairs.
  enum class Layout { kRowMajor, kPanels, kBf16Panels };
  Layout layout = Layout::kRowMajor;
  int64_t n = 0, k = 0;
  bool bf16 = false;
  const float* rows = nullptr;
  std::vector<float> floats;
  std::vector<uint16_t> halves;
  // Bytes held beside the original.
  uint64_t bytes() const { return floats.size() * 4 + halves.size() * 2; }
};
PackedWeights PackWeights(const float* w, int64_t n, int64_t k, bool bf16);

// y[i][j] = sum_k x[i][k] * w[j][k] (+ bias[j]; bias may be null) for
// i < m.
void Gemm(const float* x, const PackedWeights& w, const float* bias, int64_t m, float* y);

// What runs for each kind: "avx512" or "openblas" (float32);
// "avx512bf16" or "rounded+avx512" / "rounded+openblas" (bfloat16 on CPUs
// without AVX512_BF16: the rounded values through the float32 kernels).
std::string_view GemmName(bool bf16);

// Whether this CPU runs the AVX-512 kernels (F, BW and VL).
bool HasAvx512Kernels();

namespace internal {
// For tests: the kernels as if the CPU lacked AVX-512 (OpenBLAS) or
// AVX512_BF16 (rounded values through the float32 kernels).
PackedWeights PackWeightsPortable(const float* w, int64_t n, int64_t k, bool bf16);
}  // namespace internal

}  // namespace quiver::nn

#endif  // QUIVER_NN_GEMM_H_
