// Gemm: our AVX-512 kernels where the CPU has them (gemm_avx512.cc), else
// OpenBLAS sgemm; the weights packed once for whichever runs.
#include "nn/gemm.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "nn/half.h"

#ifdef QUIVER_X86_GEMM
#include <cpuid.h>
#endif

namespace quiver::nn {
#ifdef QUIVER_X86_GEMM
namespace avx512 {
void PackF32(const float* w, int64_t n, int64_t k, float* out);
void PackBf16(const float* w, int64_t n, int64_t k, uint16_t* out);
void RoundToBf16(const float* x, int64_t n, float* out);
void GemmF32(const float* x, const float* panels, const float* bias, int64_t m, int64_t n,
             int64_t k, float* y);
void GemmBf16(const float* x, const uint16_t* panels, const float* bias, int64_t m, int64_t n,
              int64_t k, float* y);
}  // namespace avx512
#endif

namespace {

struct Cpu {
  bool avx512 = false;  // F, BW, VL.
  bool bf16 = false;    // AVX512_BF16 as well.
};

const Cpu& Features() {
  static const Cpu cpu = [] {
    Cpu c;
#ifdef QUIVER_X86_GEMM
    __builtin_cpu_init();
    c.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl");
    // AVX512_BF16: CPUID leaf 7 sub-leaf 1, EAX bit 5.
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    c.bf16 = c.avx512 && __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) && (eax & (1u << 5)) != 0;
#endif
    return c;
  }();
  return cpu;
}

// OpenBLAS single-threaded inside our OpenMP threads, each a band of rows
// (two thread pools on the same cores would spin against each other).
void GemmOpenblas(const float* x, const float* w, const float* bias, int64_t m, int64_t n,
                  int64_t k, float* y) {
  auto band = [&](int64_t r0, int64_t r1) {
    if (r1 <= r0) return;
    if (bias != nullptr) {
      for (int64_t i = r0; i < r1; ++i) std::memcpy(y + i * n, bias, n * sizeof(float));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(r1 - r0),
                static_cast<int>(n), static_cast<int>(k), 1.0f, x + r0 * k, static_cast<int>(k), w,
                static_cast<int>(k), bias != nullptr ? 1.0f : 0.0f, y + r0 * n,
                static_cast<int>(n));
  };
  if (omp_in_parallel()) return band(0, m);
#pragma omp parallel
  {
    const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t rows = (m + threads - 1) / threads;
    const int64_t r0 = std::min(m, t * rows);
    band(r0, std::min(m, r0 + rows));
  }
}

void RoundPortable(const float* x, int64_t n, float* out) {
  for (int64_t j = 0; j < n; ++j) out[j] = Bf16ToFloat(FloatToBf16(x[j]));
}

PackedWeights Pack(const float* w, int64_t n, int64_t k, bool bf16, const Cpu& cpu) {
  PackedWeights p;
  p.n = n;
  p.k = k;
  p.bf16 = bf16;
#ifdef QUIVER_X86_GEMM
  if (cpu.avx512 && bf16 && cpu.bf16) {
    p.layout = PackedWeights::Layout::kBf16Panels;
    p.halves.resize(static_cast<size_t>((n + 31) / 32 * ((k + 1) / 2) * 64));
    avx512::PackBf16(w, n, k, p.halves.data());
    return p;
  }
  if (cpu.avx512) {
    p.layout = PackedWeights::Layout::kPanels;
    std::vector<float> rounded;
    if (bf16) {
      rounded.resize(static_cast<size_t>(n * k));
      avx512::RoundToBf16(w, n * k, rounded.data());
    }
    p.floats.resize(static_cast<size_t>((n + 31) / 32 * 32 * k));
    avx512::PackF32(bf16 ? rounded.data() : w, n, k, p.floats.data());
    return p;
  }
#endif
  (void)cpu;
  p.layout = PackedWeights::Layout::kRowMajor;
  p.rows = w;
  if (bf16) {
    p.floats.resize(static_cast<size_t>(n * k));
    RoundPortable(w, n * k, p.floats.data());
    p.rows = p.floats.data();
  }
  return p;
}

}  // namespace

PackedWeights PackWeights(const float* w, int64_t n, int64_t k, bool bf16) {
  return Pack(w, n, k, bf16, Features());
}

namespace internal {
PackedWeights PackWeightsPortable(const float* w, int64_t n, int64_t k, bool bf16) {
  return Pack(w, n, k, bf16, Cpu{});
}
}  // namespace internal

void Gemm(const float* x, const PackedWeights& w, const float* bias, int64_t m, float* y) {
  const int64_t n = w.n, k = w.k;
  if (m == 0 || n == 0) return;
  // bfloat16 without vdpbf16ps: x rounded like w, in this thread's buffer.
  thread_local std::vector<float> thread_rounded;
  std::vector<float>& rounded = thread_rounded;
  const float* xs = x;
  if (w.bf16 && w.layout != PackedWeights::Layout::kBf16Panels) {
    rounded.resize(static_cast<size_t>(m * k));
#ifdef QUIVER_X86_GEMM
    if (w.layout == PackedWeights::Layout::kPanels) {
      avx512::RoundToBf16(x, m * k, rounded.data());
    } else {
      RoundPortable(x, m * k, rounded.data());
    }
#else
    RoundPortable(x, m * k, rounded.data());
#endif
    xs = rounded.data();
  }
  switch (w.layout) {
    case PackedWeights::Layout::kRowMajor:
      return GemmOpenblas(xs, w.rows, bias, m, n, k, y);
#ifdef QUIVER_X86_GEMM
    case PackedWeights::Layout::kPanels:
      return avx512::GemmF32(xs, w.floats.data(), bias, m, n, k, y);
    case PackedWeights::Layout::kBf16Panels:
      return avx512::GemmBf16(xs, w.halves.data(), bias, m, n, k, y);
#else
    default:
      return;
#endif
  }
}

bool HasAvx512Kernels() { return Features().avx512; }

std::string_view GemmName(bool bf16) {
  const Cpu& cpu = Features();
  if (!bf16) return cpu.avx512 ? "avx512" : "openblas";
  if (cpu.bf16) return "avx512bf16";
  return cpu.avx512 ? "rounded+avx512" : "rounded+openblas";
}

}  // namespace quiver::nn
