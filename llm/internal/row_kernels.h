// The row kernels behind LlamaModel and WeightTensor (llm/ only). Every dot
// product is summed in one fixed order, Dot's: 16 lanes (lane j % 16), each
// accumulated with a fused multiply-add in increasing j, the lanes then
// added in order 0..15, then the tail (j past the last multiple of 16). The
// fused and batched kernels keep exactly that order, so a row's result is
// the same bits whichever kernel computes it (single sequence, batch, stored
// type converted first or read in place). Each has a portable form and
// AVX-512 / AVX2 forms in files of their own (kernels_<isa>.cc), one chosen
// at start-up (Kernels()); VerifyRowKernels (below)
// checks them bit for bit.
#ifndef QUIVER_LLM_INTERNAL_ROW_KERNELS_H_
#define QUIVER_LLM_INTERNAL_ROW_KERNELS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "llm/aligned.h"
#include "llm/weight_tensor.h"

namespace quiver::llm::internal {

// Dot's final step: its 16 lanes added in order 0..15.
inline float SumLanes(const float* lanes) {
  float sum = 0.0f;
  for (int l = 0; l < 16; ++l) sum += lanes[l];
  return sum;
}

// Products for prompt rows use panels of kPanelWidth weight rows (below).
constexpr int kPanelWidth = 32;

// One instruction set's forms of every row kernel. kernels_portable.cc,
// kernels_avx2.cc and kernels_avx512.cc each define one, compiled for their
// own instruction set; Kernels() picks the best this CPU runs, once, at the
// first call (before the first model loads). Pointers are never null.
struct RowKernels {
  const char* name;  // "portable", "avx2" or "avx512".
  // a . b over n values.
  float (*dot)(const float* a, const float* b, int n);
  // out[k] = w_k . x for four consecutive rows (stride n) and one vector,
  // each equal to dot's: one stream's float32 products, where a 64-value
  // row's dot spent most of its time adding its 16 lanes one after another
  // (the x86 forms add the four rows' lanes side by side).
  void (*dot_rows4)(const float* w, const float* x, int n, float* out);
  // out[r] = w . x_r for four vectors.
  void (*dot4)(const float* w, const float* x0, const float* x1, const float* x2, const float* x3,
               int n, float* out);
  // out[k * 4 + r] = w_k . x_r for four consecutive rows (stride n) and four
  // vectors; prefetches lines [first_line, end_line) of the four rows at `pf`
  // (line i: row i % 4, bytes 64 * (i / 4) on), spread over its iterations.
  void (*dot4x4)(const float* w, int n, const float* const* x, float* out, const float* pf,
                 size_t first_line, size_t end_line);
  // acc[t] = q . k_t for a KV block's keys stored [head component][position].
  void (*block_scores)(const float* q, const float* kb, int head_size, int block_size, float* acc);
  // Products for prompt rows, in their own fixed order (not Dot's): every
  // output sums x[j] * w[j] over j in increasing order, one fused
  // multiply-add each, whatever the number of rows. A panel holds up to
  // kPanelWidth weight rows transposed: panel[j * kPanelWidth + c] = row c's
  // value j (zero past `width` rows).
  void (*pack_panel)(const float* const* rows, int width, int k, float* panel);
  // y_r[c] = row c . x_r for the m rows x_r = x + r * x_stride, c < width,
  // into y + r * y_stride.
  void (*panel_product)(const float* panel, int k, const float* x, size_t x_stride, int m, float* y,
                        size_t y_stride, int width);
  // Dots with a row as stored, each equal to dot on the row's float32
  // values. Q8_0 / Q4_0: n % 32 == 0.
  float (*dot_q8)(const int8_t* q, const float* scales, const float* x, int n);
  // Four consecutive rows (row k's data right after row k - 1's): out[k] as
  // the single-row kernel gives it (AVX-512: four independent accumulation
  // chains; one row's chain is what a single stream of a Q8_0 / Q4_0 model
  // waits on: 1.7x faster in cache, Q4_0 steps 7.7 -> 4.4 ms).
  void (*dot_q8x4)(const int8_t* q, const float* scales, const float* x, int n, float* out);
  float (*dot_q4)(const uint8_t* packed, const float* scales, const float* x, int n);
  void (*dot_q4x4)(const uint8_t* packed, const float* scales, const float* x, int n, float* out);
  float (*dot_f16)(const uint16_t* h, const float* x, int n);
  float (*dot_bf16)(const uint16_t* h, const float* x, int n);
  // `blocks`: the row's K-quant super-blocks of `type` (n % 256 == 0).
  float (*dot_k)(WeightTensor::Type type, const uint8_t* blocks, const float* x, int n);
  // Four consecutive rows (row k's super-blocks right after row k - 1's):
  // out[k] as dot_k gives it (AVX2 and AVX-512: four interleaved
  // accumulation chains, and the rows two calls ahead prefetched).
  void (*dot_k_rows4)(WeightTensor::Type type, const uint8_t* blocks, const float* x, int n,
                      float* out);
  // Stored values to float32 (the exact values the dots above use).
  void (*dequantize_f16)(const uint16_t* h, size_t n, float* out);
  void (*dequantize_bf16)(const uint16_t* h, size_t n, float* out);
  void (*dequantize_q8)(const int8_t* q, const float* scales, size_t blocks, float* out);
  void (*dequantize_q4)(const uint8_t* packed, const float* scales, size_t blocks, float* out);
  // `count` K-quant super-blocks (256 values each) of `type`.
  void (*dequantize_k)(WeightTensor::Type type, const uint8_t* blocks, size_t count, float* out);
};

// The portable forms, and every form this CPU runs (portable first).
const RowKernels& PortableKernels();
std::vector<const RowKernels*> KernelForms();
// The best form this CPU runs, chosen once.
const RowKernels& SelectKernels();
inline const RowKernels& Kernels() {
  static const RowKernels& kernels = SelectKernels();
  return kernels;
}

// The chosen form's kernels by name (what the model code calls).
inline float Dot(const float* a, const float* b, int n) { return Kernels().dot(a, b, n); }
inline void DotRows4(const float* w, const float* x, int n, float* out) {
  Kernels().dot_rows4(w, x, n, out);
}
inline void Dot4(const float* w, const float* x0, const float* x1, const float* x2, const float* x3,
                 int n, float* out) {
  Kernels().dot4(w, x0, x1, x2, x3, n, out);
}
inline void Dot4x4(const float* w, int n, const float* const* x, float* out, const float* pf,
                   size_t first_line, size_t end_line) {
  Kernels().dot4x4(w, n, x, out, pf, first_line, end_line);
}
inline void BlockScores(const float* q, const float* kb, int head_size, int block_size,
                        float* acc) {
  Kernels().block_scores(q, kb, head_size, block_size, acc);
}
inline float DotQ8(const int8_t* q, const float* scales, const float* x, int n) {
  return Kernels().dot_q8(q, scales, x, n);
}
inline float DotQ4(const uint8_t* packed, const float* scales, const float* x, int n) {
  return Kernels().dot_q4(packed, scales, x, n);
}
inline float DotF16(const uint16_t* h, const float* x, int n) { return Kernels().dot_f16(h, x, n); }
inline float DotBF16(const uint16_t* h, const float* x, int n) {
  return Kernels().dot_bf16(h, x, n);
}
inline float DotK(WeightTensor::Type type, const uint8_t* blocks, const float* x, int n) {
  return Kernels().dot_k(type, blocks, x, n);
}
inline void DotKx4(WeightTensor::Type type, const uint8_t* blocks, const float* x, int n,
                   float* out) {
  Kernels().dot_k_rows4(type, blocks, x, n, out);
}
inline void DotQ8x4(const int8_t* q, const float* scales, const float* x, int n, float* out) {
  Kernels().dot_q8x4(q, scales, x, n, out);
}
inline void DotQ4x4(const uint8_t* packed, const float* scales, const float* x, int n, float* out) {
  Kernels().dot_q4x4(packed, scales, x, n, out);
}
inline void DequantizeF16(const uint16_t* h, size_t n, float* out) {
  Kernels().dequantize_f16(h, n, out);
}
inline void DequantizeBF16(const uint16_t* h, size_t n, float* out) {
  Kernels().dequantize_bf16(h, n, out);
}
inline void DequantizeQ8(const int8_t* q, const float* scales, size_t blocks, float* out) {
  Kernels().dequantize_q8(q, scales, blocks, out);
}
inline void DequantizeQ4(const uint8_t* packed, const float* scales, size_t blocks, float* out) {
  Kernels().dequantize_q4(packed, scales, blocks, out);
}
inline void DequantizeK(WeightTensor::Type type, const uint8_t* blocks, size_t count, float* out) {
  Kernels().dequantize_k(type, blocks, count, out);
}
inline void PackPanel(const float* const* rows, int width, int k, float* panel) {
  Kernels().pack_panel(rows, width, k, panel);
}
inline void PanelProduct(const float* panel, int k, const float* x, size_t x_stride, int m,
                         float* y, size_t y_stride, int width) {
  Kernels().panel_product(panel, k, x, x_stride, m, y, y_stride, width);
}

// In place: exp(x - max) / sum over `size` values, as run.c computes it.
void Softmax(float* x, int size);

// Reproducible test values for the kernel checks (xorshift64).
struct KernelTestData {
  uint64_t state = 88172645463325252ull;
  uint64_t Next() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  }
  float Uniform() { return static_cast<float>(Next() % 2000001) / 1000000.0f - 1.0f; }  // [-1, 1].
};

// VerifyRowKernels' halves: the float32 kernels and the stored-type
// kernels of `form` against the portable ones (and the portable ones
// against the plain sums they promise).
absl::Status VerifyFloatKernels(const RowKernels& form);
absl::Status VerifyQuantKernels(const RowKernels& form);

}  // namespace quiver::llm::internal

namespace quiver::llm {

// Checks every row kernel form this CPU can run (AVX-512, AVX2) against the
// portable one, bit for bit, on generated data: the fused dots of Q8_0,
// Q4_0, F16, BF16 and K-quant rows (one and four rows at a time), float16
// conversion, the batched 4 x 4 kernel against Dot, and the long-prompt
// panels against the in-order sum; INTERNAL naming the first that differs.
// For tests.
absl::Status VerifyRowKernels();

}  // namespace quiver::llm

#endif  // QUIVER_LLM_INTERNAL_ROW_KERNELS_H_
