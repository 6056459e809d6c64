// The cuBLAS calls nn/cuda_backend.cc makes, answered on the host for the
// emulation (emulator.h), by the definitions in cuBLAS's documentation:
// column-major matrices, C = alpha * op(A) op(B) + beta * C with op(A) m x k
// and op(B) k x n, A stored m x k (lda >= m) for CUBLAS_OP_N and k x m
// (lda >= k) for CUBLAS_OP_T, likewise B; ldc >= m; when beta is 0, C is not
// read. Arguments that cuBLAS refuses are refused (CUBLAS_STATUS_INVALID_VALUE),
// and every matrix must be device memory. CUBLAS_TF32_TENSOR_OP_MATH rounds
// each input to TF32 (10 mantissa bits, to nearest even) before the
// float32 products, as tensor cores see them.
#include <cublas_v2.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "tests/cuda_emulation/emulator.h"

struct cublasContext {
  cudaStream_t stream = nullptr;
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
};

namespace quiver::cuda_emulation {
namespace {

bool Shape(cublasOperation_t op, int rows, int cols, int ld) {
  if (op != CUBLAS_OP_N && op != CUBLAS_OP_T) return false;
  return ld >= std::max(1, op == CUBLAS_OP_N ? rows : cols);
}

// Column-major bytes spanned by a rows x cols matrix with leading dimension ld.
size_t Span(int rows, int cols, int ld) {
  if (rows == 0 || cols == 0) return 0;
  return (static_cast<size_t>(cols - 1) * ld + rows) * sizeof(float);
}

void CheckMatrix(const float* p, int rows, int cols, int ld) {
  const size_t bytes = Span(rows, cols, ld);
  if (bytes > 0 && !IsDeviceMemory(p, bytes)) Fail("a cuBLAS matrix is not (all) device memory");
}

float RoundToTf32(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  if ((bits & 0x7F800000u) == 0x7F800000u) return x;  // Infinity or NaN.
  bits = (bits + 0xFFFu + ((bits >> 13) & 1u)) & ~0x1FFFu;
  std::memcpy(&x, &bits, sizeof x);
  return x;
}

void Gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
          float alpha, const float* a, int lda, const float* b, int ldb, float beta, float* c,
          int ldc) {
  const bool tf32 = h->math == CUBLAS_TF32_TENSOR_OP_MATH;
  // Stored shapes: A is m x k (N) or k x m (T); B is k x n (N) or n x k (T).
  CheckMatrix(a, ta == CUBLAS_OP_N ? m : k, ta == CUBLAS_OP_N ? k : m, lda);
  CheckMatrix(b, tb == CUBLAS_OP_N ? k : n, tb == CUBLAS_OP_N ? n : k, ldb);
  CheckMatrix(c, m, n, ldc);
  const size_t sa_i = ta == CUBLAS_OP_N ? 1 : lda, sa_l = ta == CUBLAS_OP_N ? lda : 1;
  const size_t sb_l = tb == CUBLAS_OP_N ? 1 : ldb, sb_j = tb == CUBLAS_OP_N ? ldb : 1;
  for (int j = 0; j < n; ++j) {
    for (int i = 0; i < m; ++i) {
      float sum = 0.0f;
      for (int l = 0; l < k; ++l) {
        float x = a[i * sa_i + l * sa_l], y = b[l * sb_l + j * sb_j];
        if (tf32) {
          x = RoundToTf32(x);
          y = RoundToTf32(y);
        }
        sum = std::fma(x, y, sum);
      }
      float& out = c[i + static_cast<size_t>(j) * ldc];
      out = beta == 0.0f ? alpha * sum : alpha * sum + beta * out;
    }
  }
}

cublasStatus_t Check(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                     int k, int lda, int ldb, int ldc) {
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (m < 0 || n < 0 || k < 0 || !Shape(ta, m, k, lda) || !Shape(tb, k, n, ldb) ||
      ldc < std::max(1, m)) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace
}  // namespace quiver::cuda_emulation

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  *handle = new cublasContext;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->math = mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa,
                              cublasOperation_t transb, int m, int n, int k, const float* alpha,
                              const float* A, int lda, const float* B, int ldb, const float* beta,
                              float* C, int ldc) {
  const cublasStatus_t st =
      quiver::cuda_emulation::Check(handle, transa, transb, m, n, k, lda, ldb, ldc);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  quiver::cuda_emulation::Gemm(handle, transa, transb, m, n, k, *alpha, A, lda, B, ldb, *beta, C,
                               ldc);
  quiver::cuda_emulation::CheckDeviceGuards();
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa,
                                         cublasOperation_t transb, int m, int n, int k,
                                         const float* alpha, const float* A, int lda,
                                         long long int strideA, const float* B, int ldb,
                                         long long int strideB, const float* beta, float* C,
                                         int ldc, long long int strideC, int batchCount) {
  const cublasStatus_t st =
      quiver::cuda_emulation::Check(handle, transa, transb, m, n, k, lda, ldb, ldc);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  if (batchCount < 0) return CUBLAS_STATUS_INVALID_VALUE;
  for (int i = 0; i < batchCount; ++i) {
    quiver::cuda_emulation::Gemm(handle, transa, transb, m, n, k, *alpha, A + i * strideA, lda,
                                 B + i * strideB, ldb, *beta, C + i * strideC, ldc);
  }
  quiver::cuda_emulation::CheckDeviceGuards();
  return CUBLAS_STATUS_SUCCESS;
}

// The pointer arrays, like the matrices, live in device memory.
cublasStatus_t cublasSgemmBatched(cublasHandle_t handle, cublasOperation_t transa,
                                  cublasOperation_t transb, int m, int n, int k, const float* alpha,
                                  const float* const Aarray[], int lda, const float* const Barray[],
                                  int ldb, const float* beta, float* const Carray[], int ldc,
                                  int batchCount) {
  const cublasStatus_t st =
      quiver::cuda_emulation::Check(handle, transa, transb, m, n, k, lda, ldb, ldc);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  if (batchCount < 0) return CUBLAS_STATUS_INVALID_VALUE;
  const size_t array_bytes = static_cast<size_t>(batchCount) * sizeof(void*);
  if (batchCount > 0 && (!quiver::cuda_emulation::IsDeviceMemory(Aarray, array_bytes) ||
                         !quiver::cuda_emulation::IsDeviceMemory(Barray, array_bytes) ||
                         !quiver::cuda_emulation::IsDeviceMemory(Carray, array_bytes))) {
    quiver::cuda_emulation::Fail("a cuBLAS batched product's pointer array is not device memory");
  }
  for (int i = 0; i < batchCount; ++i) {
    quiver::cuda_emulation::Gemm(handle, transa, transb, m, n, k, *alpha, Aarray[i], lda, Barray[i],
                                 ldb, *beta, Carray[i], ldc);
  }
  quiver::cuda_emulation::CheckDeviceGuards();
  return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
