// Choosing the row kernels' form (kernels_portable.cc, kernels_avx2.cc,
// kernels_avx512.cc) once for this CPU, and the kernels with one form.
#include "llm/internal/row_kernels.h"

#include <algorithm>
#include <cmath>

#ifdef QUIVER_X86_KERNELS
#include <cpuid.h>
#endif

namespace quiver::llm {
namespace portable {
extern const internal::RowKernels kKernels;
}
#ifdef QUIVER_X86_KERNELS
namespace avx2 {
extern const internal::RowKernels kKernels;
}
namespace avx512 {
extern const internal::RowKernels kKernels;
}
#endif
}  // namespace quiver::llm

namespace quiver::llm::internal {

const RowKernels& PortableKernels() { return portable::kKernels; }

std::vector<const RowKernels*> KernelForms() {
  std::vector<const RowKernels*> forms = {&portable::kKernels};
#ifdef QUIVER_X86_KERNELS
  __builtin_cpu_init();
  // AVX2 forms also use FMA (without it every std::fma becomes a libm call)
  // and F16C (float16 conversion).
  // F16C by CPUID leaf 1 (ECX bit 29): clang 14's __builtin_cpu_supports
  // does not know "f16c".
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29)) != 0;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c) {
    forms.push_back(&avx2::kKernels);
  }
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
      __builtin_cpu_supports("fma") && f16c) {
    forms.push_back(&avx512::kKernels);
  }
#endif
  return forms;
}

const RowKernels& SelectKernels() { return *KernelForms().back(); }

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

}  // namespace quiver::llm::internal
