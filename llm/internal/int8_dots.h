// Integer dot products for Q8_0 and Q4_0 weights (llm/ only): the
// activation row is quantized to int8 per block of 32 values (one float
// scale each, as ggml's Q8_0 x Q8_0 and Q4_0 x Q8_0 dots do), and each
// weight row is multiplied with it in integers, 4 products at a time
// (AVX512-VNNI vpdpbusd, AVX2 vpmaddubsw, or plain C++), then scaled.
//
// This changes the numerics against the float32 kernels (row_kernels.h):
// the activations lose precision to int8. Within this path every form
// gives the same bits. The fixed order of one dot product (16 float lanes,
// then added in order 0..15 as Dot's are):
//   block b (32 values) adds to lanes 8 * (b % 2) .. 8 * (b % 2) + 7;
//   lane 8 * (b % 2) + i += float(p_bi) * (w_scale_b * x_scale_b), one
//   fused multiply-add, where p_bi is the exact integer sum of the four
//   products of values 4i .. 4i + 3 of the block; blocks in increasing b.
// That is exactly what a 512-bit vpdpbusd over two blocks produces lane by
// lane, and what two 256-bit maddubs accumulators (one per parity) give, so
// each form computes the same sums; a row's result never depends on which
// other rows or activations share the call.
#ifndef QUIVER_LLM_INTERNAL_INT8_DOTS_H_
#define QUIVER_LLM_INTERNAL_INT8_DOTS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "llm/aligned.h"

namespace quiver::llm::internal {

template <typename T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

// One activation row as the integer dots read it (n % 32 == 0).
struct Q8Activation {
  int n = 0;
  AlignedVector<int8_t> q;           // n values, round(x / scale) in -127..127.
  std::vector<float> scale;          // n / 32: max |x| of the block / 127.
  AlignedVector<float> scale_lanes;  // 8 per block: its scale repeated (vector loads).
  // Per 4 values: -128 and -8 times the sum of their q (n / 4 each): the
  // corrections for weights offset to unsigned bytes (Q8_0 + 128, Q4_0's
  // nibbles are value + 8), as vpdpbusd multiplies unsigned by signed.
  AlignedVector<int32_t> minus128_sums, minus8_sums;
};

// Quantizes x[0..n) into `out`: per block, scale = max |x| / 127 and
// q = x / scale rounded to nearest even (NaN values quantize to 0; a block
// holding an infinity gets an infinite scale and zero values, so dots with
// it are NaN); through
// the chosen form's quantize_block, which all give the same values.
// REQUIRES: n % 32 == 0.
void QuantizeActivation(const float* x, int n, Q8Activation* out);

// One instruction set's forms. A call multiplies `rows` (1..4) consecutive
// weight rows of n values with `count` (1..4) activations:
// out[r * count + a] = row r . acts[a]. Q8_0 rows: n int8 values each,
// `scales` n / 32 per row; Q4_0 rows: n / 2 packed bytes each (ggml's
// layout: a block's byte i holds value i low, value i + 16 high, each
// nibble - 8).
struct Int8Dots {
  const char* name;  // "portable", "avx2" or "avx512vnni".
  // One 32-value block of an activation into q[0..32); returns its scale
  // (QuantizeActivation's rules; every form gives the same values).
  float (*quantize_block)(const float* x, int8_t* q);
  void (*q8)(const int8_t* w, const float* scales, int n, int rows, const Q8Activation* const* acts,
             int count, float* out);
  void (*q4)(const uint8_t* w, const float* scales, int n, int rows,
             const Q8Activation* const* acts, int count, float* out);
};

// The portable forms, every form this CPU runs (portable first), and the
// best of them, chosen once.
const Int8Dots& PortableInt8Dots();
// The portable quantize_block (the AVX2 form uses it; the AVX-512 one for
// blocks holding NaN or infinity).
float QuantizeBlockPortable(const float* x, int8_t* q);
std::vector<const Int8Dots*> Int8DotForms();
const Int8Dots& SelectInt8Dots();
inline const Int8Dots& Int8DotKernels() {
  static const Int8Dots& kernels = SelectInt8Dots();
  return kernels;
}

}  // namespace quiver::llm::internal

namespace quiver::llm {

// Checks every integer dot form this CPU runs against the portable one and
// the portable one against a plain sum in the documented order, bit for
// bit, on generated rows (Q8_0 and Q4_0, 1-4 rows x 1-4 activations, odd
// and even block counts, the extreme values -128 and +-127);
// INTERNAL naming the first that differs. For tests.
absl::Status VerifyInt8Dots();

}  // namespace quiver::llm

#endif  // QUIVER_LLM_INTERNAL_INT8_DOTS_H_
