// What the CUDA host code of nn/ and llm/ shares (include only from files
// built with the CUDA toolkit): aborting on CUDA failures that are broken
// invariants, and the error for device memory running out, which is not.
#ifndef QUIVER_NN_CUDA_CHECK_H_
#define QUIVER_NN_CUDA_CHECK_H_

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "absl/status/status.h"
#include "common/strings.h"

// A CUDA failure in the middle of a kernel sequence is a device or
// programming error with no partial result to return: report and abort.
#define QUIVER_CUDA_CHECK(expr)                                                            \
  do {                                                                                     \
    const cudaError_t err_ = (expr);                                                       \
    if (err_ != cudaSuccess) {                                                             \
      std::fprintf(stderr, "CUDA error %s at %s:%d\n", cudaGetErrorString(err_), __FILE__, \
                   __LINE__);                                                              \
      std::abort();                                                                        \
    }                                                                                      \
  } while (0)

namespace quiver::nn {

// RESOURCE_EXHAUSTED for a failed allocation of `bytes`, saying what is
// free and `advice`; clears CUDA's last error so no later check reports it.
inline absl::Status CudaOutOfMemory(size_t bytes, std::string_view advice) {
  cudaGetLastError();
  size_t free = 0, total = 0;
  cudaMemGetInfo(&free, &total);
  return absl::ResourceExhaustedError(StrCat("GPU memory: cannot allocate ",
                                             (bytes + (1 << 20) - 1) >> 20, " MiB (", free >> 20,
                                             " of ", total >> 20, " MiB free); ", advice));
}

}  // namespace quiver::nn

#endif  // QUIVER_NN_CUDA_CHECK_H_
