// Integer dot products for Q8_0 / Q4_0 weights: activation quantization,
// the portable forms, the choice of form for this CPU and the check of
// every form against the portable one.
#include "llm/internal/int8_dots.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>

#include "llm/internal/row_kernels.h"

#ifdef QUIVER_X86_KERNELS
#include <cpuid.h>
#endif

namespace quiver::llm {
#ifdef QUIVER_X86_KERNELS
namespace avx2 {
extern const internal::Int8Dots kInt8Dots;
}
namespace avx512 {
extern const internal::Int8Dots kInt8Dots;
}
#endif
}  // namespace quiver::llm

namespace quiver::llm::internal {

float QuantizeBlockPortable(const float* x, int8_t* q) {
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f, inv = std::isfinite(d) && d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < 32; ++j) {
    float v = std::nearbyint(x[j] * inv);  // To nearest, ties to even: as vcvtps2dq.
    v = std::isnan(v) ? 0.0f : std::clamp(v, -127.0f, 127.0f);
    q[j] = static_cast<int8_t>(v);
  }
  return std::isfinite(amax) ? d : amax;
}

void QuantizeActivation(const float* x, int n, Q8Activation* out) {
  const int blocks = n / 32;
  out->n = n;
  out->q.resize(n);
  out->scale.resize(blocks);
  out->scale_lanes.resize(static_cast<size_t>(blocks) * 8);
  out->minus128_sums.resize(n / 4);
  out->minus8_sums.resize(n / 4);
  const auto quantize_block = Int8DotKernels().quantize_block;
  for (int b = 0; b < blocks; ++b) {
    int8_t* q = out->q.data() + static_cast<size_t>(b) * 32;
    out->scale[b] = quantize_block(x + static_cast<size_t>(b) * 32, q);
    std::fill_n(out->scale_lanes.data() + static_cast<size_t>(b) * 8, 8, out->scale[b]);
    for (int i = 0; i < 8; ++i) {
      const int s = q[4 * i] + q[4 * i + 1] + q[4 * i + 2] + q[4 * i + 3];
      out->minus128_sums[b * 8 + i] = -128 * s;
      out->minus8_sums[b * 8 + i] = -8 * s;
    }
  }
}

namespace {

// Value j (0..31) of block `block` of a row as stored.
inline int Q8Value(const int8_t* row, int block, int j) { return row[block * 32 + j]; }
inline int Q4Value(const uint8_t* row, int block, int j) {
  const uint8_t byte = row[block * 16 + (j & 15)];
  return (j < 16 ? byte & 0x0F : byte >> 4) - 8;
}

// The documented order (int8_dots.h), one weight row and one activation.
template <bool kQ4>
float DotPortable(const void* row, const float* scales, const Q8Activation& a) {
  float lanes[16] = {};
  const int blocks = a.n / 32;
  for (int b = 0; b < blocks; ++b) {
    const float s = scales[b] * a.scale[b];
    float* half = lanes + 8 * (b % 2);
    for (int i = 0; i < 8; ++i) {
      int p = 0;
      for (int t = 0; t < 4; ++t) {
        const int j = 4 * i + t;
        const int w = kQ4 ? Q4Value(static_cast<const uint8_t*>(row), b, j)
                          : Q8Value(static_cast<const int8_t*>(row), b, j);
        p += w * a.q[static_cast<size_t>(b) * 32 + j];
      }
      half[i] = std::fma(static_cast<float>(p), s, half[i]);
    }
  }
  return SumLanes(lanes) + 0.0f;
}

template <bool kQ4, typename W>
void DotsPortable(const W* w, const float* scales, int n, int rows, const Q8Activation* const* acts,
                  int count, float* out) {
  const size_t row_bytes = kQ4 ? n / 2 : n;
  for (int r = 0; r < rows; ++r) {
    for (int a = 0; a < count; ++a) {
      out[r * count + a] =
          DotPortable<kQ4>(w + r * row_bytes, scales + static_cast<size_t>(r) * (n / 32), *acts[a]);
    }
  }
}

const Int8Dots kPortable = {
    .name = "portable",
    .quantize_block = QuantizeBlockPortable,
    .q8 = DotsPortable<false, int8_t>,
    .q4 = DotsPortable<true, uint8_t>,
};

}  // namespace

const Int8Dots& PortableInt8Dots() { return kPortable; }

std::vector<const Int8Dots*> Int8DotForms() {
  std::vector<const Int8Dots*> forms = {&kPortable};
#ifdef QUIVER_X86_KERNELS
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    forms.push_back(&avx2::kInt8Dots);
  }
  // vpdpbusd on 512-bit registers: AVX512-VNNI (CPUID leaf 7, ECX bit 11)
  // with AVX512F and BW; asked of CPUID directly, as clang 14's
  // __builtin_cpu_supports does not know every name.
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool vnni = __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 11)) != 0;
  if (vnni && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma")) {
    forms.push_back(&avx512::kInt8Dots);
  }
#endif
  return forms;
}

const Int8Dots& SelectInt8Dots() { return *Int8DotForms().back(); }

}  // namespace quiver::llm::internal

namespace quiver::llm {

using internal::Int8Dots;
using internal::Q8Activation;

absl::Status VerifyInt8Dots() {
  std::mt19937 rng(20261206);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  const Int8Dots& portable = internal::PortableInt8Dots();
  // Quantization: random blocks, exact ties (x / scale = k + 0.5), zero,
  // huge, infinite and NaN blocks.
  for (const Int8Dots* form : internal::Int8DotForms()) {
    for (int t = 0; t < 64; ++t) {
      float x[32];
      for (float& v : x) v = uni(rng) * (t % 7 == 0 ? 1e30f : 1.0f);
      if (t % 5 == 1) {
        for (int j = 0; j < 32; ++j) x[j] = (j % 3 == 0 ? 127.0f : (j - 16) + 0.5f);
      }
      if (t == 2) std::fill_n(x, 32, 0.0f);
      if (t == 3) x[7] = INFINITY;
      if (t == 4) x[9] = std::nanf("");
      int8_t want[32], got[32];
      const float ws = portable.quantize_block(x, want), gs = form->quantize_block(x, got);
      if (std::memcmp(want, got, 32) != 0 || std::memcmp(&ws, &gs, sizeof ws) != 0) {
        return absl::InternalError(std::string(form->name) +
                                   " activation quantization differs from the portable one");
      }
    }
  }
  for (int blocks : {1, 2, 3, 5, 24, 33, 64}) {
    const int n = blocks * 32;
    // Four activations: random, one with a zero block and a huge value,
    // one of equal magnitudes (every value +-max: q = +-127).
    std::vector<std::vector<float>> x(4, std::vector<float>(n));
    for (auto& v : x) {
      for (float& f : v) f = uni(rng);
    }
    std::fill_n(x[1].begin(), 32, 0.0f);
    x[1][n - 1] = 1e6f;
    for (int j = 0; j < n; ++j) x[2][j] = j % 3 == 0 ? -0.5f : 0.5f;
    std::vector<Q8Activation> acts(4);
    const Q8Activation* act_ptrs[4];
    for (int a = 0; a < 4; ++a) {
      internal::QuantizeActivation(x[a].data(), n, &acts[a]);
      act_ptrs[a] = &acts[a];
    }
    // Four rows of each type, the extremes included.
    std::vector<int8_t> q8(4 * static_cast<size_t>(n));
    std::vector<uint8_t> q4(2 * static_cast<size_t>(n));
    for (auto& v : q8) v = static_cast<int8_t>(rng());
    for (auto& v : q4) v = static_cast<uint8_t>(rng());
    q8[0] = -128;
    q8[1] = 127;
    q8[2] = -127;
    std::vector<float> scales(4 * static_cast<size_t>(blocks));
    for (float& s : scales) s = 0.01f * (1.0f + uni(rng));
    // The portable form against the plain sum it promises (the
    // activation's values as dequantized, one row and activation).
    for (int r = 0; r < 4; ++r) {
      for (int a = 0; a < 4; ++a) {
        double want = 0, magnitude = 0, got_q8 = 0;
        float out;
        portable.q8(q8.data() + static_cast<size_t>(r) * n, scales.data() + r * blocks, n, 1,
                    &act_ptrs[a], 1, &out);
        got_q8 = out;
        for (int j = 0; j < n; ++j) {
          const double term = double{scales[r * blocks + j / 32]} *
                              q8[static_cast<size_t>(r) * n + j] * acts[a].scale[j / 32] *
                              acts[a].q[j];
          want += term;
          magnitude += std::fabs(term);
        }
        if (std::fabs(got_q8 - want) > 1e-5 * magnitude) {
          return absl::InternalError("portable Q8_0 integer dot differs from its plain sum: " +
                                     std::to_string(got_q8) + " vs " + std::to_string(want));
        }
      }
    }
    for (const Int8Dots* form : internal::Int8DotForms()) {
      for (int rows = 1; rows <= 4; ++rows) {
        for (int count = 1; count <= 4; ++count) {
          float want[16], got[16];
          for (bool q4_type : {false, true}) {
            if (q4_type) {
              portable.q4(q4.data(), scales.data(), n, rows, act_ptrs, count, want);
              form->q4(q4.data(), scales.data(), n, rows, act_ptrs, count, got);
            } else {
              portable.q8(q8.data(), scales.data(), n, rows, act_ptrs, count, want);
              form->q8(q8.data(), scales.data(), n, rows, act_ptrs, count, got);
            }
            if (std::memcmp(want, got, sizeof(float) * rows * count) != 0) {
              return absl::InternalError(std::string(form->name) + " integer " +
                                         (q4_type ? "Q4_0" : "Q8_0") + " dots differ from the " +
                                         "portable ones (" + std::to_string(blocks) + " blocks, " +
                                         std::to_string(rows) + " rows x " + std::to_string(count) +
                                         " activations)");
            }
          }
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace quiver::llm
