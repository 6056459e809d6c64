// The CUDA decode engine's kernels (see cuda_kernels.h). Plain CUDA C++17,
// no dependencies beyond the runtime, so nvcc never sees Abseil.
#include <cuda_fp16.h>

#include <cmath>
#include <cstring>

#include "llm/cuda_kernels.h"
#include "nn/cuda_launch.h"

namespace quiver::llm::cuda {
namespace {

constexpr int kWarp = 32;
constexpr int kMatVecWarps = 4;  // Output values per block.
constexpr int kRowTile = 8;      // Input rows a warp accumulates at once (registers).

// The weight decoding below is __host__ __device__ so that tests on
// machines without a GPU run the very code the kernels run (LoadWeightOnHost).
__host__ __device__ __forceinline__ float HalfBits(const uint8_t* p) {
  return __half2float(__ushort_as_half(*reinterpret_cast<const unsigned short*>(p)));
}

__host__ __device__ __forceinline__ float Bf16Bits(unsigned short h) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(static_cast<unsigned>(h) << 16);
#else
  const unsigned bits = static_cast<unsigned>(h) << 16;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
#endif
}

// Sub-block j's 6-bit scale and min of a Q4_K / Q5_K super-block (ggml's
// get_scale_min_k4).
__host__ __device__ __forceinline__ void KScaleMin(int j, const uint8_t* s, int* scale, int* min) {
  if (j < 4) {
    *scale = s[j] & 63;
    *min = s[j + 4] & 63;
  } else {
    *scale = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    *min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Value i of a weight matrix as float32: exactly what the CPU's
// WeightTensor::Read gives (the K-quants with the CPU's single rounding:
// a fused multiply-subtract for Q4_K / Q5_K, a product for Q6_K).
template <WType T>
__host__ __device__ __forceinline__ float LoadW(const Weight& w, size_t i) {
  if constexpr (T == WType::kF32) {
    return static_cast<const float*>(w.data)[i];
  } else if constexpr (T == WType::kF16) {
    return __half2float(__ushort_as_half(static_cast<const unsigned short*>(w.data)[i]));
  } else if constexpr (T == WType::kBF16) {
    return Bf16Bits(static_cast<const unsigned short*>(w.data)[i]);
  } else if constexpr (T == WType::kQ8_0) {
    return w.scales[i / 32] * static_cast<float>(static_cast<const int8_t*>(w.data)[i]);
  } else if constexpr (T == WType::kQ4_0) {
    const size_t block = i / 32;
    const int l = static_cast<int>(i % 32);
    const uint8_t byte = static_cast<const uint8_t*>(w.data)[block * 16 + (l % 16)];
    return w.scales[block] * static_cast<float>((l < 16 ? byte & 0x0F : byte >> 4) - 8);
  } else if constexpr (T == WType::kQ4_K || T == WType::kQ5_K) {
    constexpr bool kFive = T == WType::kQ5_K;
    const uint8_t* blk = static_cast<const uint8_t*>(w.data) + (i / 256) * (kFive ? 176 : 144);
    const int within = static_cast<int>(i % 256), g = within / 64, second = (within % 64) / 32,
              l = within % 32;
    int sc, m;
    KScaleMin(2 * g + second, blk + 4, &sc, &m);
    const uint8_t q = blk[16 + (kFive ? 32 : 0) + 32 * g + l];
    int v = second ? q >> 4 : q & 0xF;
    if (kFive) v |= ((blk[16 + l] >> (2 * g + second)) & 1) << 4;
    const float d = HalfBits(blk), dmin = HalfBits(blk + 2);
    return fmaf(d * static_cast<float>(sc), static_cast<float>(v), -(dmin * static_cast<float>(m)));
  } else {  // kQ6_K
    const uint8_t* blk = static_cast<const uint8_t*>(w.data) + (i / 256) * 210;
    const int within = static_cast<int>(i % 256), half = within / 128, r = (within % 128) / 32,
              l = within % 32;
    const uint8_t* ql = blk + 64 * half;
    const uint8_t* qh = blk + 128 + 32 * half;
    const int8_t* scales = reinterpret_cast<const int8_t*>(blk + 192 + 8 * half);
    const int low = ql[l + (r % 2 == 1 ? 32 : 0)];
    const int nib = r < 2 ? low & 0xF : low >> 4;
    const int q = (nib | (((qh[l] >> (2 * r)) & 3) << 4)) - 32;
    const float s = HalfBits(blk + 208) * static_cast<float>(scales[2 * r + (l >= 16 ? 1 : 0)]);
    return s * static_cast<float>(q);
  }
}

__device__ __forceinline__ float WarpSum(float v) {
  for (int off = kWarp / 2; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// One warp: output `o` of `job` for every row. Lane l sums elements
// l, l + 32, ... in order, then the warp adds its lanes in a fixed tree:
// the same order whatever `rows` is.
template <WType T>
__device__ void MatVecOutput(const MatVecJob& job, const float* __restrict__ x, int rows, int cols,
                             int o) {
  const int lane = threadIdx.x % kWarp;
  const size_t base = job.offset + static_cast<size_t>(o) * cols;
  for (int r0 = 0; r0 < rows; r0 += kRowTile) {
    const int nr = min(kRowTile, rows - r0);
    const float* xt = x + static_cast<size_t>(r0) * cols;
    float acc[kRowTile];
#pragma unroll
    for (int r = 0; r < kRowTile; ++r) acc[r] = 0.0f;
#pragma unroll 4
    for (int i = lane; i < cols; i += kWarp) {
      const float w = LoadW<T>(job.w, base + i);
#pragma unroll
      for (int r = 0; r < kRowTile; ++r) {
        if (r < nr) acc[r] = fmaf(w, xt[static_cast<size_t>(r) * cols + i], acc[r]);
      }
    }
#pragma unroll
    for (int r = 0; r < kRowTile; ++r) {
      if (r >= nr) break;  // nr is the same for the whole warp: no divergence.
      const float sum = WarpSum(acc[r]);
      if (lane == 0) {
        float v = sum;
        if (job.bias != nullptr) v += job.bias[o];
        float* y = job.y + static_cast<size_t>(r0 + r) * job.out + o;
        *y = job.accumulate ? *y + v : v;
      }
    }
  }
}

struct Jobs {
  MatVecJob job[kMaxJobs];
};

__global__ void MatVecKernel(Jobs jobs, const float* __restrict__ x, int rows, int cols) {
  const MatVecJob& job = jobs.job[blockIdx.y];
  const int o = blockIdx.x * kMatVecWarps + threadIdx.x / kWarp;
  if (o >= job.out) return;  // Whole warps leave together.
  switch (job.w.type) {
    case WType::kF32:
      MatVecOutput<WType::kF32>(job, x, rows, cols, o);
      break;
    case WType::kF16:
      MatVecOutput<WType::kF16>(job, x, rows, cols, o);
      break;
    case WType::kBF16:
      MatVecOutput<WType::kBF16>(job, x, rows, cols, o);
      break;
    case WType::kQ8_0:
      MatVecOutput<WType::kQ8_0>(job, x, rows, cols, o);
      break;
    case WType::kQ4_0:
      MatVecOutput<WType::kQ4_0>(job, x, rows, cols, o);
      break;
    case WType::kQ4_K:
      MatVecOutput<WType::kQ4_K>(job, x, rows, cols, o);
      break;
    case WType::kQ5_K:
      MatVecOutput<WType::kQ5_K>(job, x, rows, cols, o);
      break;
    case WType::kQ6_K:
      MatVecOutput<WType::kQ6_K>(job, x, rows, cols, o);
      break;
  }
}

__host__ __device__ float LoadAny(const Weight& w, size_t i) {
  switch (w.type) {
    case WType::kF32:
      return LoadW<WType::kF32>(w, i);
    case WType::kF16:
      return LoadW<WType::kF16>(w, i);
    case WType::kBF16:
      return LoadW<WType::kBF16>(w, i);
    case WType::kQ8_0:
      return LoadW<WType::kQ8_0>(w, i);
    case WType::kQ4_0:
      return LoadW<WType::kQ4_0>(w, i);
    case WType::kQ4_K:
      return LoadW<WType::kQ4_K>(w, i);
    case WType::kQ5_K:
      return LoadW<WType::kQ5_K>(w, i);
    case WType::kQ6_K:
      return LoadW<WType::kQ6_K>(w, i);
  }
  return 0.0f;
}

__global__ void EmbedKernel(Weight table, const int32_t* tokens, int dim, float* x) {
  const int r = blockIdx.x;
  const size_t base = static_cast<size_t>(tokens[r]) * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x)
    x[static_cast<size_t>(r) * dim + i] = LoadAny(table, base + i);
}

// One block per row. The sum of squares is a fixed tree over the block's
// threads (per-thread strided sums, then warps, then the warps' sums).
__global__ void RmsNormKernel(const float* x, const float* gamma, int dim, float eps, float* out) {
  __shared__ float warp_sums[32];
  const float* xr = x + static_cast<size_t>(blockIdx.x) * dim;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) ss = fmaf(xr[i], xr[i], ss);
  ss = WarpSum(ss);
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  if (lane == 0) warp_sums[warp] = ss;
  __syncthreads();
  if (warp == 0) {
    float v = lane < static_cast<int>(blockDim.x / kWarp) ? warp_sums[lane] : 0.0f;
    v = WarpSum(v);
    if (lane == 0) warp_sums[0] = v;
  }
  __syncthreads();
  const float scale = 1.0f / sqrtf(warp_sums[0] / dim + eps);
  float* o = out + static_cast<size_t>(blockIdx.x) * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) o[i] = gamma[i] * (scale * xr[i]);
}

__global__ void RopeKernel(float* q, float* k, const int32_t* pos, const float* inv_freq, int dim,
                           int kv_dim, int head_size) {
  const int r = blockIdx.x;
  const float p = static_cast<float>(pos[r]);
  for (int i = 2 * threadIdx.x; i < dim; i += 2 * blockDim.x) {
    const float angle = p * inv_freq[(i % head_size) / 2];
    float sn, cs;
    sincosf(angle, &sn, &cs);
    float* qr = q + static_cast<size_t>(r) * dim;
    const float q0 = qr[i], q1 = qr[i + 1];
    qr[i] = q0 * cs - q1 * sn;
    qr[i + 1] = q0 * sn + q1 * cs;
    if (i < kv_dim) {
      float* kr = k + static_cast<size_t>(r) * kv_dim;
      const float k0 = kr[i], k1 = kr[i + 1];
      kr[i] = k0 * cs - k1 * sn;
      kr[i + 1] = k0 * sn + k1 * cs;
    }
  }
}

__device__ __forceinline__ size_t KvOffset(const KvView& kv, int block, int layer, int slot) {
  return ((static_cast<size_t>(block) * kv.layers + layer) * kv.block_size + slot) * kv.kv_dim;
}

__global__ void StoreKvKernel(KvView kv, int layer, const float* k, const float* v,
                              const int32_t* pos, const int32_t* tables,
                              const int32_t* table_start) {
  const int r = blockIdx.x;
  const int p = pos[r];
  const int block = tables[table_start[r] + p / kv.block_size];
  const size_t at = KvOffset(kv, block, layer, p % kv.block_size);
  for (int i = threadIdx.x; i < kv.kv_dim; i += blockDim.x) {
    kv.k[at + i] = k[static_cast<size_t>(r) * kv.kv_dim + i];
    kv.v[at + i] = v[static_cast<size_t>(r) * kv.kv_dim + i];
  }
}

constexpr int kAttnWarps = 4;
constexpr int kMaxHeadLanes = 8;  // head_size <= 256.

// One block per (row, head). Warp w takes positions w, w + 4, ... with an
// online softmax (running max, sum and weighted values); the four partial
// results are then merged in warp order. Lane l holds dimensions l, l + 32, ...
__global__ void AttentionKernel(KvView kv, int layer, const float* q, const int32_t* pos,
                                const int32_t* tables, const int32_t* table_start, int n_heads,
                                int kv_mul, int head_size, float* out) {
  __shared__ float part_max[kAttnWarps], part_sum[kAttnWarps];
  __shared__ float part_acc[kAttnWarps][kMaxHeadLanes * kWarp];
  const int r = blockIdx.x, h = blockIdx.y;  // Rows on x: up to 2^31 - 1 of them, not 65535.
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int dim = n_heads * head_size;
  const int kv_off = (h / kv_mul) * head_size;
  const float* qh = q + static_cast<size_t>(r) * dim + h * head_size;
  float qv[kMaxHeadLanes], acc[kMaxHeadLanes];
#pragma unroll
  for (int j = 0; j < kMaxHeadLanes; ++j) {
    const int d = lane + j * kWarp;
    qv[j] = d < head_size ? qh[d] : 0.0f;
    acc[j] = 0.0f;
  }
  const float sqrt_head = sqrtf(static_cast<float>(head_size));
  float run_max = -INFINITY, run_sum = 0.0f;
  const int last = pos[r];
  const int32_t* table = tables + table_start[r];
  for (int t = warp; t <= last; t += kAttnWarps) {
    const size_t at = KvOffset(kv, table[t / kv.block_size], layer, t % kv.block_size) + kv_off;
    float s = 0.0f;
#pragma unroll
    for (int j = 0; j < kMaxHeadLanes; ++j) {
      const int d = lane + j * kWarp;
      if (d < head_size) s = fmaf(qv[j], kv.k[at + d], s);
    }
    s = WarpSum(s) / sqrt_head;  // As the CPU scales: a division.
    const float new_max = fmaxf(run_max, s);
    const float correction = expf(run_max - new_max);
    const float e = expf(s - new_max);
    run_sum = run_sum * correction + e;
#pragma unroll
    for (int j = 0; j < kMaxHeadLanes; ++j) {
      const int d = lane + j * kWarp;
      if (d < head_size) acc[j] = acc[j] * correction + e * kv.v[at + d];
    }
    run_max = new_max;
  }
  if (lane == 0) {
    part_max[warp] = run_max;
    part_sum[warp] = run_sum;
  }
#pragma unroll
  for (int j = 0; j < kMaxHeadLanes; ++j) part_acc[warp][lane + j * kWarp] = acc[j];
  __syncthreads();
  float total_max = part_max[0];
  for (int w = 1; w < kAttnWarps; ++w) total_max = fmaxf(total_max, part_max[w]);
  float weights[kAttnWarps], total = 0.0f;
  for (int w = 0; w < kAttnWarps; ++w) {
    // A warp that saw no position has max -inf and sum 0: weight 0.
    weights[w] = part_sum[w] > 0.0f ? expf(part_max[w] - total_max) : 0.0f;
    total += part_sum[w] * weights[w];
  }
  for (int d = threadIdx.x; d < head_size; d += blockDim.x) {
    float v = 0.0f;
    for (int w = 0; w < kAttnWarps; ++w) v += part_acc[w][d] * weights[w];
    out[static_cast<size_t>(r) * dim + h * head_size + d] = v / total;
  }
}

__global__ void SwiGluKernel(float* gate, const float* up, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    gate[i] = g * (1.0f / (1.0f + expf(-g))) * up[i];
  }
}

int Blocks(size_t n, int threads) {
  const size_t b = (n + threads - 1) / threads;
  return static_cast<int>(b < 65535 ? (b > 0 ? b : 1) : 65535);
}

}  // namespace

float LoadWeightOnHost(const Weight& w, size_t i) { return LoadAny(w, i); }

void MatVec(const MatVecJob* jobs, int njobs, const float* x, int rows, int cols, cudaStream_t s) {
  if (rows == 0 || njobs == 0) return;
  Jobs j{};
  int max_out = 0;
  for (int i = 0; i < njobs; ++i) {
    j.job[i] = jobs[i];
    max_out = max(max_out, jobs[i].out);
  }
  const dim3 grid((max_out + kMatVecWarps - 1) / kMatVecWarps, njobs);
  QUIVER_CUDA_LAUNCH(MatVecKernel, grid, kMatVecWarps * kWarp, 0, s)(j, x, rows, cols);
}

void Embed(Weight table, const int32_t* tokens, int rows, int dim, float* x, cudaStream_t s) {
  if (rows > 0) QUIVER_CUDA_LAUNCH(EmbedKernel, rows, 256, 0, s)(table, tokens, dim, x);
}

void RmsNorm(const float* x, const float* gamma, int rows, int dim, float eps, float* out,
             cudaStream_t s) {
  if (rows > 0) QUIVER_CUDA_LAUNCH(RmsNormKernel, rows, 256, 0, s)(x, gamma, dim, eps, out);
}

void Rope(float* q, float* k, const int32_t* pos, const float* inv_freq, int rows, int dim,
          int kv_dim, int head_size, cudaStream_t s) {
  if (rows > 0) {
    QUIVER_CUDA_LAUNCH(RopeKernel, rows, 128, 0, s)(q, k, pos, inv_freq, dim, kv_dim, head_size);
  }
}

void StoreKv(KvView kv, int layer, const float* k, const float* v, const int32_t* pos,
             const int32_t* tables, const int32_t* table_start, int rows, cudaStream_t s) {
  if (rows > 0) {
    QUIVER_CUDA_LAUNCH(StoreKvKernel, rows, 128, 0, s)(kv, layer, k, v, pos, tables, table_start);
  }
}

void Attention(KvView kv, int layer, const float* q, const int32_t* pos, const int32_t* tables,
               const int32_t* table_start, int rows, int n_heads, int kv_mul, int head_size,
               float* out, cudaStream_t s) {
  if (rows == 0) return;
  const dim3 grid(rows, n_heads);
  QUIVER_CUDA_LAUNCH(AttentionKernel, grid, kAttnWarps * kWarp, 0, s)
  (kv, layer, q, pos, tables, table_start, n_heads, kv_mul, head_size, out);
}

void SwiGlu(float* gate, const float* up, size_t n, cudaStream_t s) {
  if (n > 0) QUIVER_CUDA_LAUNCH(SwiGluKernel, Blocks(n, 256), 256, 0, s)(gate, up, n);
}

}  // namespace quiver::llm::cuda
