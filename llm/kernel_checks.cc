// VerifyRowKernels: every form of every row kernel this CPU runs against
// the portable forms, bit for bit, on generated data (and the portable
// forms against the plain sums they promise).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/status_macros.h"
#include "common/strings.h"
#include "llm/internal/row_kernels.h"
#include "nn/half.h"

namespace quiver::llm::internal {
using ::quiver::nn::FloatToHalf;

absl::Status VerifyFloatKernels(const RowKernels& form) {
  const RowKernels& portable = PortableKernels();
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
    portable.pack_panel(rows, width, k, generic.data());
    form.pack_panel(rows, width, k, fast.data());
    if (std::memcmp(generic.data(), fast.data(), generic.size() * sizeof(float)) != 0) {
      return absl::InternalError(
          StrCat(form.name, " PackPanel differs from the portable packing for k = ", k));
    }
    std::vector<float> y(static_cast<size_t>(m) * width), y1(y.size());
    form.panel_product(fast.data(), k, xs.data(), k, m, y.data(), width, width);
    portable.panel_product(fast.data(), k, xs.data(), k, m, y1.data(), width, width);
    if (y1 != y) {
      return absl::InternalError(
          StrCat(form.name, " PanelProduct differs from the portable one for k = ", k));
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
    portable.dot4x4(w.data(), n, x4, generic, w.data(), 0, 0);
    for (int k = 0; k < 4; ++k) {
      for (int r = 0; r < 4; ++r) {
        const float want = portable.dot(w.data() + static_cast<size_t>(k) * n, x4[r], n);
        if (std::memcmp(&want, &generic[k * 4 + r], sizeof want) != 0) {
          return absl::InternalError(StrCat("Dot4x4 differs from Dot for n = ", n));
        }
      }
    }
    form.dot4x4(w.data(), n, x4, fast, w.data(), 0, 4 * static_cast<size_t>((n + 15) / 16));
    if (std::memcmp(generic, fast, sizeof fast) != 0) {
      return absl::InternalError(
          StrCat(form.name, " Dot4x4 differs from the portable kernel for n = ", n));
    }
    // Four rows times one vector: each equal to Dot's, on both forms.
    float rows4[4], rows4_ref[4];
    portable.dot_rows4(w.data(), x4[0], n, rows4_ref);
    form.dot_rows4(w.data(), x4[0], n, rows4);
    for (int k = 0; k < 4; ++k) {
      const float want = portable.dot(w.data() + static_cast<size_t>(k) * n, x4[0], n);
      if (std::memcmp(&want, &rows4_ref[k], sizeof want) != 0 ||
          std::memcmp(&want, &rows4[k], sizeof want) != 0) {
        return absl::InternalError(StrCat(form.name, " DotRows4 differs from Dot for n = ", n));
      }
    }
    // Dot, Dot4 and the attention scores against the portable forms.
    float dot4[4], dot4_ref[4];
    form.dot4(w.data(), x4[0], x4[1], x4[2], x4[3], n, dot4);
    portable.dot4(w.data(), x4[0], x4[1], x4[2], x4[3], n, dot4_ref);
    const float d = form.dot(w.data(), x4[1], n), d_ref = portable.dot(w.data(), x4[1], n);
    if (std::memcmp(dot4, dot4_ref, sizeof dot4) != 0 || std::memcmp(&d, &d_ref, sizeof d) != 0 ||
        std::memcmp(&d_ref, &dot4_ref[1], sizeof d) != 0) {
      return absl::InternalError(
          StrCat(form.name, " Dot / Dot4 differ from the portable Dot for n = ", n));
    }
    // Keys of one block: head x block values (w holds only 4n; ASan found
    // the check reading past it for n = 16).
    const int head = 16, block = n / 16 > 0 ? 16 : 1;
    std::vector<float> keys(static_cast<size_t>(head) * block);
    for (float& v : keys) v = uniform();
    float acc[16], acc_ref[16];
    form.block_scores(xs.data(), keys.data(), head, block, acc);
    portable.block_scores(xs.data(), keys.data(), head, block, acc_ref);
    if (std::memcmp(acc, acc_ref, sizeof(float) * block) != 0) {
      return absl::InternalError(StrCat(form.name, " BlockScores differs from the portable one"));
    }
  }
  return absl::OkStatus();
}

absl::Status VerifyQuantKernels(const RowKernels& form) {
  const RowKernels& portable = PortableKernels();
  KernelTestData data;
  auto next = [&] { return data.Next(); };
  auto uniform = [&] { return data.Uniform(); };
  for (int n : {32, 64, 96, 768, 2048}) {
    std::vector<float> x(n), scales(n / 32);
    std::vector<int8_t> q8(n);
    std::vector<uint8_t> q4(n / 2);
    std::vector<uint16_t> half(n + 7), bf16(n + 7);  // + 7: tails past 16-lane steps.
    for (float& v : x) v = uniform();
    for (float& v : scales) v = uniform() * 0.1f;
    for (int8_t& v : q8) v = static_cast<int8_t>(next() % 255 - 127);
    for (uint8_t& v : q4) v = static_cast<uint8_t>(next());
    for (uint16_t& v : half) v = FloatToHalf(uniform());
    for (uint16_t& v : bf16)
      v = static_cast<uint16_t>(next() & 0x3FFF);  // Finite, small magnitudes.
    std::vector<float> xt(n + 7);
    for (float& v : xt) v = uniform();
    auto same = [](float a, float b) { return std::memcmp(&a, &b, 4) == 0; };
    const float q8_ref = portable.dot_q8(q8.data(), scales.data(), x.data(), n);
    const float q4_ref = portable.dot_q4(q4.data(), scales.data(), x.data(), n);
    const float f16_ref = portable.dot_f16(half.data(), xt.data(), n + 7);
    const float bf16_ref = portable.dot_bf16(bf16.data(), xt.data(), n + 7);
    auto check = [&](bool ok, const char* what) -> absl::Status {
      if (ok) return absl::OkStatus();
      return absl::InternalError(
          StrCat(form.name, " ", what, " differs from the portable kernel for n = ", n));
    };
    RETURN_IF_ERROR(
        check(same(form.dot_q8(q8.data(), scales.data(), x.data(), n), q8_ref), "DotQ8"));
    RETURN_IF_ERROR(
        check(same(form.dot_q4(q4.data(), scales.data(), x.data(), n), q4_ref), "DotQ4"));
    RETURN_IF_ERROR(check(same(form.dot_f16(half.data(), xt.data(), n + 7), f16_ref), "DotF16"));
    RETURN_IF_ERROR(check(same(form.dot_bf16(bf16.data(), xt.data(), n + 7), bf16_ref), "DotBF16"));
    // Block conversion (batched steps): every value as the portable one.
    // Special values too: subnormals, signed zero, infinities.
    std::vector<uint16_t> halves = half;
    const uint16_t special[] = {0x0001, 0x83FF, 0x8000, 0x7C00, 0xFC00, 0x0400};
    for (size_t i = 0; i < std::size(special); ++i) halves[i * 5 % halves.size()] = special[i];
    std::vector<float> converted_ref(halves.size()), converted(halves.size());
    portable.dequantize_f16(halves.data(), halves.size(), converted_ref.data());
    auto same_values = [&] {
      return std::memcmp(converted.data(), converted_ref.data(),
                         converted.size() * sizeof(float)) == 0;
    };
    form.dequantize_f16(halves.data(), halves.size(), converted.data());
    RETURN_IF_ERROR(check(same_values(), "DequantizeF16"));
    // The other conversions against the portable ones.
    auto same_floats = [](const std::vector<float>& a, const std::vector<float>& b) {
      return std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
    };
    std::vector<float> got(n + 7), want(n + 7);
    form.dequantize_bf16(bf16.data(), n + 7, got.data());
    portable.dequantize_bf16(bf16.data(), n + 7, want.data());
    RETURN_IF_ERROR(check(same_floats(got, want), "DequantizeBF16"));
    got.assign(n, 0);
    want.assign(n, 0);
    form.dequantize_q8(q8.data(), scales.data(), n / 32, got.data());
    portable.dequantize_q8(q8.data(), scales.data(), n / 32, want.data());
    RETURN_IF_ERROR(check(same_floats(got, want), "DequantizeQ8"));
    form.dequantize_q4(q4.data(), scales.data(), n / 32, got.data());
    portable.dequantize_q4(q4.data(), scales.data(), n / 32, want.data());
    RETURN_IF_ERROR(check(same_floats(got, want), "DequantizeQ4"));
    // And the float32 kernel on the same values, as the buffered path uses it.
    std::vector<float> w(n);
    for (int i = 0; i < n; ++i) w[i] = scales[i / 32] * static_cast<float>(q8[i]);
    RETURN_IF_ERROR(
        check(same(portable.dot(w.data(), x.data(), n), q8_ref), "Dot on converted Q8_0 values"));
  }
  // Four rows at once (the single-stream path of Q8_0 / Q4_0): each as the
  // portable single-row kernel gives it.
  for (int n : {32, 96, 768, 2080}) {
    const size_t n4 = 4 * static_cast<size_t>(n);
    std::vector<float> x(n), scales(n4 / 32);
    std::vector<int8_t> q8(n4);
    std::vector<uint8_t> q4(n4 / 2);
    for (float& v : x) v = uniform();
    for (float& v : scales) v = uniform() * 0.01f;
    for (int8_t& v : q8) v = static_cast<int8_t>(next());
    for (uint8_t& v : q4) v = static_cast<uint8_t>(next());
    float got8[4], got4[4];
    form.dot_q8x4(q8.data(), scales.data(), x.data(), n, got8);
    form.dot_q4x4(q4.data(), scales.data(), x.data(), n, got4);
    for (int k = 0; k < 4; ++k) {
      const size_t at = static_cast<size_t>(k) * n;
      const float want8 = portable.dot_q8(q8.data() + at, scales.data() + at / 32, x.data(), n);
      const float want4 = portable.dot_q4(q4.data() + at / 2, scales.data() + at / 32, x.data(), n);
      if (std::memcmp(&want8, &got8[k], sizeof want8) != 0 ||
          std::memcmp(&want4, &got4[k], sizeof want4) != 0) {
        return absl::InternalError(StrCat(
            form.name, " four-row Q8_0 / Q4_0 kernel differs from the single-row one for n = ", n,
            ", row ", k));
      }
    }
  }
  // K-quant super-blocks of random bytes (scales d, dmin set to small
  // finite halves): the fused kernels against conversion + Dot.
  for (int n : {256, 768, 2048}) {
    std::vector<float> x(n);
    for (float& v : x) v = uniform();
    for (WeightTensor::Type type :
         {WeightTensor::Type::kQ4_K, WeightTensor::Type::kQ5_K, WeightTensor::Type::kQ6_K}) {
      const size_t bytes = WeightTensor::KBlockBytes(type);
      // Four rows (the four-row kernel's input); the single-row checks
      // read the first.
      std::vector<uint8_t> blocks(4 * bytes * (n / 256));
      for (uint8_t& v : blocks) v = static_cast<uint8_t>(next());
      for (size_t b = 0; b < blocks.size() / bytes; ++b) {
        uint8_t* blk = &blocks[b * bytes];
        const uint16_t d = FloatToHalf(0.001f + 0.01f * std::fabs(uniform()));
        const uint16_t dmin = FloatToHalf(0.001f + 0.01f * std::fabs(uniform()));
        if (type == WeightTensor::Type::kQ6_K) {
          std::memcpy(blk + 208, &d, 2);
        } else {
          std::memcpy(blk, &d, 2);
          std::memcpy(blk + 2, &dmin, 2);
        }
      }
      // The reference: the row converted, then Dot.
      std::vector<float> row(n);
      portable.dequantize_k(type, blocks.data(), n / 256, row.data());
      const float ref = portable.dot(row.data(), x.data(), n);
      std::vector<float> row_form(n);
      form.dequantize_k(type, blocks.data(), n / 256, row_form.data());
      const float got = form.dot_k(type, blocks.data(), x.data(), n);
      if (std::memcmp(&got, &ref, sizeof got) != 0 || row_form != row) {
        return absl::InternalError(StrCat(form.name, " K-quant kernels (type ",
                                          static_cast<int>(type),
                                          ") differ from the portable ones for n = ", n));
      }
      float got4[4];
      form.dot_k_rows4(type, blocks.data(), x.data(), n, got4);
      for (int k = 0; k < 4; ++k) {
        const float want = portable.dot_k(type, blocks.data() + k * bytes * (n / 256), x.data(), n);
        if (std::memcmp(&got4[k], &want, sizeof want) != 0) {
          return absl::InternalError(
              StrCat(form.name, " four-row K-quant kernel (type ", static_cast<int>(type),
                     ") differs from the single-row one for n = ", n, ", row ", k));
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace quiver::llm::internal

namespace quiver::llm {

absl::Status VerifyRowKernels() {
  for (const internal::RowKernels* form : internal::KernelForms()) {
    RETURN_IF_ERROR(internal::VerifyFloatKernels(*form));
    RETURN_IF_ERROR(internal::VerifyQuantKernels(*form));
  }
  return absl::OkStatus();
}

}  // namespace quiver::llm
