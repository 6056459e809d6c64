// The CUDA backend's kernels (compiled by nvcc as C++17; the backend class
// itself is C++20 host code in cuda_backend.cc).
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "nn/cuda_kernels.h"
#include "nn/cuda_launch.h"

namespace quiver::nn::cuda {
namespace {

constexpr int kThreads = 256;
int Blocks(int64_t n) { return static_cast<int>((n + kThreads - 1) / kThreads); }

__global__ void FillRowsKernel(float* y, const float* bias, int64_t m, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < m * n) y[i] = bias[i % n];
}

__global__ void GatherKernel(float* out, const float* table, const int32_t* ids, int64_t rows,
                             int64_t d, bool add) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= rows * d) return;
  const int64_t r = i / d, j = i % d;
  const float v = table[static_cast<int64_t>(ids[r]) * d + j];
  out[i] = add ? out[i] + v : v;
}

__global__ void AddKernel(float* a, const float* b, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) a[i] += b[i];
}

__global__ void ActKernel(float* a, int64_t n, Act act) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float v = a[i];
  switch (act) {
    case Act::kGelu:
      a[i] = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
      break;
    case Act::kTanh:
      a[i] = tanhf(v);
      break;
  }
}

// Block-wide sum of one value per thread (blockDim.x == kThreads).
__device__ float BlockSum(float v, float* shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) shared[threadIdx.x] += shared[threadIdx.x + s];
    __syncthreads();
  }
  const float total = shared[0];
  __syncthreads();
  return total;
}

// LayerNorm, one block per row.
__global__ void LayerNormKernel(float* x, const float* gamma, const float* beta, int64_t d,
                                float eps) {
  __shared__ float shared[kThreads];
  float* row = x + blockIdx.x * d;
  float sum = 0;
  for (int64_t j = threadIdx.x; j < d; j += kThreads) sum += row[j];
  const float mean = BlockSum(sum, shared) / d;
  float sq = 0;
  for (int64_t j = threadIdx.x; j < d; j += kThreads) sq += (row[j] - mean) * (row[j] - mean);
  const float inv = rsqrtf(BlockSum(sq, shared) / d + eps);
  for (int64_t j = threadIdx.x; j < d; j += kThreads) {
    row[j] = (row[j] - mean) * inv * gamma[j] + beta[j];
  }
}

// Softmax over each score row (one block per row), keys >= len masked,
// where len is lengths[row / rows_per_length] (a sequence's rows share it).
__global__ void MaskedSoftmaxKernel(float* scores, int64_t seq, const int32_t* lengths,
                                    int64_t rows_per_length) {
  __shared__ float shared[kThreads];
  float* row = scores + blockIdx.x * seq;
  const int64_t len = lengths[blockIdx.x / rows_per_length];
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < len; j += kThreads) mx = fmaxf(mx, row[j]);
  shared[threadIdx.x] = mx;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) shared[threadIdx.x] = fmaxf(shared[threadIdx.x], shared[threadIdx.x + s]);
    __syncthreads();
  }
  mx = shared[0];
  __syncthreads();
  float sum = 0;
  for (int64_t j = threadIdx.x; j < len; j += kThreads) sum += expf(row[j] - mx);
  const float inv = 1.0f / BlockSum(sum, shared);
  for (int64_t j = threadIdx.x; j < seq; j += kThreads)
    row[j] = j < len ? expf(row[j] - mx) * inv : 0.0f;
}

}  // namespace

void FillRows(float* y, const float* bias, int64_t m, int64_t n, cudaStream_t s) {
  if (m * n == 0) return;
  QUIVER_CUDA_LAUNCH(FillRowsKernel, Blocks(m * n), kThreads, 0, s)(y, bias, m, n);
}
void Gather(float* out, const float* table, const int32_t* ids, int64_t rows, int64_t d, bool add,
            cudaStream_t s) {
  if (rows * d == 0) return;
  QUIVER_CUDA_LAUNCH(GatherKernel, Blocks(rows * d), kThreads, 0, s)(out, table, ids, rows, d, add);
}
void Add(float* a, const float* b, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  QUIVER_CUDA_LAUNCH(AddKernel, Blocks(n), kThreads, 0, s)(a, b, n);
}
void Activate(float* a, int64_t n, Act act, cudaStream_t s) {
  if (n == 0) return;
  QUIVER_CUDA_LAUNCH(ActKernel, Blocks(n), kThreads, 0, s)(a, n, act);
}
void LayerNorm(float* x, const float* gamma, const float* beta, int64_t rows, int64_t d, float eps,
               cudaStream_t s) {
  if (rows == 0) return;
  QUIVER_CUDA_LAUNCH(LayerNormKernel, static_cast<unsigned>(rows), kThreads, 0, s)
  (x, gamma, beta, d, eps);
}
void MaskedSoftmax(float* scores, int64_t rows, int64_t seq, const int32_t* lengths,
                   int64_t rows_per_length, cudaStream_t s) {
  if (rows == 0) return;
  QUIVER_CUDA_LAUNCH(MaskedSoftmaxKernel, static_cast<unsigned>(rows), kThreads, 0, s)
  (scores, seq, lengths, rows_per_length);
}

}  // namespace quiver::nn::cuda
