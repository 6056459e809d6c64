// The CUDA emulation itself: kernels see the CUDA semantics our kernels
// rely on, and the misuses it promises to catch abort with a message.
#include "tests/cuda_emulation/emulator.h"

#include <cublas_v2.h>

#include <cmath>
#include <numeric>
#include <vector>

#include "gtest/gtest.h"

namespace quiver::cuda_emulation {
namespace {

float* DeviceFloats(size_t n) {
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, n * sizeof(float)), cudaSuccess);
  return static_cast<float*>(p);
}

std::vector<float> Download(const float* d, size_t n) {
  std::vector<float> out(n);
  EXPECT_EQ(cudaMemcpy(out.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
  return out;
}

__global__ void CoordinatesKernel(float* out) {
  const unsigned block = blockIdx.y * gridDim.x + blockIdx.x;
  const unsigned thread = threadIdx.y * blockDim.x + threadIdx.x;
  out[block * blockDim.x * blockDim.y + thread] = static_cast<float>(1000 * block + thread);
}

TEST(CudaEmulationTest, EveryThreadOfEveryBlockRunsWithItsCoordinates) {
  float* d = DeviceFloats(6 * 64);
  QUIVER_CUDA_LAUNCH(CoordinatesKernel, dim3(3, 2), dim3(32, 2), 0, nullptr)(d);
  const std::vector<float> got = Download(d, 6 * 64);
  for (int b = 0; b < 6; ++b) {
    for (int t = 0; t < 64; ++t) ASSERT_EQ(got[b * 64 + t], 1000 * b + t);
  }
  cudaFree(d);
}

// Each lane sums the lane numbers by butterfly shuffles; each also reads
// its partner at distance 5 once.
__global__ void ShuffleKernel(float* sums, float* partners) {
  const int lane = threadIdx.x % 32;
  float v = static_cast<float>(lane);
  partners[threadIdx.x] = __shfl_xor_sync(0xffffffffu, v, 5);
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  sums[threadIdx.x] = v;
}

TEST(CudaEmulationTest, ShufflesExchangeWithinEachWarp) {
  float* sums = DeviceFloats(64);
  float* partners = DeviceFloats(64);
  QUIVER_CUDA_LAUNCH(ShuffleKernel, 1, 64, 0, nullptr)(sums, partners);
  const std::vector<float> s = Download(sums, 64), p = Download(partners, 64);
  for (int t = 0; t < 64; ++t) {
    EXPECT_EQ(s[t], 496.0f) << t;  // 0 + 1 + ... + 31.
    EXPECT_EQ(p[t], static_cast<float>((t % 32) ^ 5)) << t;
  }
  cudaFree(sums);
  cudaFree(partners);
}

// Thread t writes slot t, then (after the barrier) reads slot t + 1: only
// right if shared memory is one array per block and the barrier holds.
__global__ void SharedKernel(float* out) {
  __shared__ float slots[128];
  slots[threadIdx.x] = static_cast<float>(blockIdx.x * 1000 + threadIdx.x);
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = slots[(threadIdx.x + 1) % blockDim.x];
}

TEST(CudaEmulationTest, SharedMemoryIsPerBlockAndBarriersOrderIt) {
  float* d = DeviceFloats(2 * 128);
  QUIVER_CUDA_LAUNCH(SharedKernel, 2, 128, 0, nullptr)(d);
  const std::vector<float> got = Download(d, 2 * 128);
  for (int b = 0; b < 2; ++b) {
    for (int t = 0; t < 128; ++t) ASSERT_EQ(got[b * 128 + t], b * 1000 + (t + 1) % 128);
  }
  cudaFree(d);
}

TEST(CudaEmulationTest, FreshDeviceMemoryReadsAsNaN) {
  float* d = DeviceFloats(4);
  for (float v : Download(d, 4)) EXPECT_TRUE(std::isnan(v));
  cudaFree(d);
}

TEST(CudaEmulationTest, AllocationsBeyondTheDeviceFailLikeCuda) {
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, size_t{1} << 40), cudaErrorMemoryAllocation);
  EXPECT_EQ(cudaGetLastError(), cudaErrorMemoryAllocation);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

// C = A B for 2 x 3 by 3 x 2 column-major matrices, then with A stored
// transposed (3 x 2) and a leading dimension larger than the rows.
TEST(CudaEmulationTest, SgemmFollowsCublasConventions) {
  // A = [1 2 3; 4 5 6], B = [1 0; 0 1; 1 1]: A B = [4 5; 10 11].
  const std::vector<float> a = {1, 4, 2, 5, 3, 6}, b = {1, 0, 1, 0, 1, 1};
  // A^T stored 3 x 2 with lda 4 (padding marked 99).
  const std::vector<float> at = {1, 2, 3, 99, 4, 5, 6, 99};
  float* da = DeviceFloats(a.size());
  float* dat = DeviceFloats(at.size());
  float* db = DeviceFloats(b.size());
  float* dc = DeviceFloats(4);
  cudaMemcpy(da, a.data(), a.size() * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpy(dat, at.data(), at.size() * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpy(db, b.data(), b.size() * sizeof(float), cudaMemcpyHostToDevice);
  cublasHandle_t h;
  ASSERT_EQ(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
  const float one = 1, zero = 0;
  // beta 0 over NaN-filled C: C is not read.
  ASSERT_EQ(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &one, da, 2, db, 3, &zero, dc, 2),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(Download(dc, 4), (std::vector<float>{4, 10, 5, 11}));
  ASSERT_EQ(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, 2, 2, 3, &one, dat, 4, db, 3, &one, dc, 2),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(Download(dc, 4), (std::vector<float>{8, 20, 10, 22}));
  // A leading dimension smaller than the stored rows is refused.
  EXPECT_EQ(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &one, da, 1, db, 3, &zero, dc, 2),
            CUBLAS_STATUS_INVALID_VALUE);
  cublasDestroy(h);
  for (float* p : {da, dat, db, dc}) cudaFree(p);
}

// TF32 keeps 10 mantissa bits: 1 + 3 * 2^-12 rounds to 1 + 2^-10.
TEST(CudaEmulationTest, SgemmInTf32ModeRoundsItsInputs) {
  const float a = 1.0f + 3.0f / 4096.0f, b = 1.0f;
  float* da = DeviceFloats(1);
  float* db = DeviceFloats(1);
  float* dc = DeviceFloats(1);
  cudaMemcpy(da, &a, sizeof a, cudaMemcpyHostToDevice);
  cudaMemcpy(db, &b, sizeof b, cudaMemcpyHostToDevice);
  cublasHandle_t h;
  ASSERT_EQ(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
  const float one = 1, zero = 0;
  ASSERT_EQ(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, da, 1, db, 1, &zero, dc, 1),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(Download(dc, 1)[0], a);
  ASSERT_EQ(cublasSetMathMode(h, CUBLAS_TF32_TENSOR_OP_MATH), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, da, 1, db, 1, &zero, dc, 1),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(Download(dc, 1)[0], 1.0f + 1.0f / 1024.0f);
  cublasDestroy(h);
  for (float* p : {da, db, dc}) cudaFree(p);
}

__global__ void HalfWarpSyncKernel(float* out) {
  if (threadIdx.x < 16) __syncthreads();
  out[threadIdx.x] = 1.0f;
}

__global__ void HalfWarpShuffleKernel(float* out) {
  if (threadIdx.x < 16) out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

__global__ void WritePastTheEndKernel(float* out, int n) { out[n + threadIdx.x] = 0.0f; }

__global__ void ReadFarPastTheEndKernel(const float* in, float* out, int n) {
  out[0] = in[n + 100];
}

TEST(CudaEmulationDeathTest, ABarrierSomeThreadsNeverReachAborts) {
  float* d = DeviceFloats(64);
  EXPECT_DEATH(QUIVER_CUDA_LAUNCH(HalfWarpSyncKernel, 1, 64, 0, nullptr)(d), "__syncthreads");
  cudaFree(d);
}

TEST(CudaEmulationDeathTest, AShuffleHalfTheWarpSkipsAborts) {
  float* d = DeviceFloats(32);
  EXPECT_DEATH(QUIVER_CUDA_LAUNCH(HalfWarpShuffleKernel, 1, 32, 0, nullptr)(d), "__shfl_xor_sync");
  cudaFree(d);
}

TEST(CudaEmulationDeathTest, AHostPointerPassedToAKernelAborts) {
  std::vector<float> host(32);
  EXPECT_DEATH(QUIVER_CUDA_LAUNCH(CoordinatesKernel, 1, 32, 0, nullptr)(host.data()),
               "not device memory");
}

TEST(CudaEmulationDeathTest, AWritePastAnAllocationAborts) {
  float* d = DeviceFloats(32);
  EXPECT_DEATH(QUIVER_CUDA_LAUNCH(WritePastTheEndKernel, 1, 4, 0, nullptr)(d, 32),
               "outside a device allocation");
  cudaFree(d);
}

TEST(CudaEmulationDeathTest, AReadPastTheAllocationsSlackFaults) {
  float* in = DeviceFloats(32);
  float* out = DeviceFloats(1);
  EXPECT_DEATH(QUIVER_CUDA_LAUNCH(ReadFarPastTheEndKernel, 1, 1, 0, nullptr)(in, out, 32), "");
  cudaFree(in);
  cudaFree(out);
}

TEST(CudaEmulationDeathTest, ACopyInTheWrongDirectionAborts) {
  float* d = DeviceFloats(4);
  std::vector<float> host(4);
  EXPECT_DEATH(cudaMemcpy(d, host.data(), 16, cudaMemcpyDeviceToHost), "cudaMemcpy");
  cudaFree(d);
}

}  // namespace
}  // namespace quiver::cuda_emulation
