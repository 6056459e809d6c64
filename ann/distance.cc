#include "ann/distance.h"

#include <cmath>

#include "ann/distance_internal.h"

namespace quiver::ann {

std::string_view MetricName(Metric m) {
  switch (m) {
    case Metric::kCosine:
      return "cosine";
    case Metric::kDot:
      return "dot";
    case Metric::kL2:
      return "l2";
  }
  return "unknown";
}

const DistanceKernels& ScalarKernels() { return internal::kScalarKernels; }

std::vector<const DistanceKernels*> SupportedKernels() {
  std::vector<const DistanceKernels*> out = {&internal::kScalarKernels};
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (internal::kAvx2Kernels != nullptr && __builtin_cpu_supports("avx2") &&
      __builtin_cpu_supports("fma") && __builtin_cpu_supports("popcnt")) {
    out.push_back(internal::kAvx2Kernels);
  }
  if (internal::kAvx512Kernels != nullptr && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("popcnt")) {
    out.push_back(internal::kAvx512Kernels);
    if (internal::kAvx512VnniKernels != nullptr && __builtin_cpu_supports("avx512vnni")) {
      out.push_back(internal::kAvx512VnniKernels);
    }
  }
#endif
  return out;
}

const DistanceKernels& BestKernels() {
  static const DistanceKernels* const best = SupportedKernels().back();
  return *best;
}

float NormalizeInPlace(std::span<float> v) {
  double sum = 0;
  for (float x : v) sum += static_cast<double>(x) * x;
  const double norm = std::sqrt(sum);
  if (norm == 0) return 0;
  // In double: the reciprocal of a tiny norm (a vector of denormals, say
  // 1e-45) overflows float to infinity and would turn every score NaN.
  const double inv = 1.0 / norm;
  for (float& x : v) x = static_cast<float>(x * inv);
  return static_cast<float>(norm);
}

}  // namespace quiver::ann
