// Launchers for the CUDA decode engine's kernels (cuda_kernels.cu). All run
// on the given stream; pointers are device memory. Every output value is
// computed by one warp or thread in an order fixed by the model's shapes,
// never by how many rows a step has, so batching does not change results.
#ifndef QUIVER_LLM_CUDA_KERNELS_H_
#define QUIVER_LLM_CUDA_KERNELS_H_

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace quiver::llm::cuda {

// How a weight matrix sits in device memory (WeightTensor's layouts; the
// K-quants as ggml's 256-value super-blocks).
enum class WType : int32_t { kF32 = 0, kF16, kBF16, kQ8_0, kQ4_0, kQ4_K, kQ5_K, kQ6_K };
struct Weight {
  WType type = WType::kF32;
  const void* data = nullptr;     // float, uint16 bits, int8, packed nibbles or super-blocks.
  const float* scales = nullptr;  // Q8_0 / Q4_0: one per 32 values.
};

// Value i of `w` as float32 by the kernels' own decoding, run on the host
// with `w`'s data in host memory: lets tests check the GPU's decoding of
// every stored type on machines without a GPU.
float LoadWeightOnHost(const Weight& w, size_t i);

// One product of a step: for every row r and output o,
//   y[r * out + o] (+)= sum_i w[offset + o * cols + i] * x[r * cols + i] (+ bias[o]).
// accumulate: add to y (a residual) instead of overwriting it.
struct MatVecJob {
  Weight w;
  size_t offset = 0;  // Values; a multiple of 32 for Q8_0 / Q4_0, of 256 for K-quants.
  int out = 0;
  const float* bias = nullptr;  // [out] or null.
  float* y = nullptr;           // [rows][out].
  bool accumulate = false;
};
constexpr int kMaxJobs = 3;
// Up to kMaxJobs products sharing the input x [rows][cols], in one launch.
void MatVec(const MatVecJob* jobs, int njobs, const float* x, int rows, int cols, cudaStream_t s);

// x[r, :] = table[tokens[r] * dim ..][0, dim) as float32.
void Embed(Weight table, const int32_t* tokens, int rows, int dim, float* x, cudaStream_t s);
// out[r, :] = gamma * x[r, :] / sqrt(mean(x[r, :]^2) + eps) (out may be x).
void RmsNorm(const float* x, const float* gamma, int rows, int dim, float eps, float* out,
             cudaStream_t s);
// Rotates interleaved pairs of q [rows][dim] and k [rows][kv_dim] by
// pos[r] * inv_freq[(i % head_size) / 2].
void Rope(float* q, float* k, const int32_t* pos, const float* inv_freq, int rows, int dim,
          int kv_dim, int head_size, cudaStream_t s);

// The KV cache: per block, per layer, [block_size][kv_dim] keys and the
// same for values. Row r's block table is tables[table_start[r] ..].
struct KvView {
  float* k = nullptr;
  float* v = nullptr;
  int layers = 0, block_size = 0, kv_dim = 0;
};
// Stores k and v [rows][kv_dim] at each row's position in `layer`.
void StoreKv(KvView kv, int layer, const float* k, const float* v, const int32_t* pos,
             const int32_t* tables, const int32_t* table_start, int rows, cudaStream_t s);
// Causal attention of each row over its positions 0..pos[r] in `layer`:
// out [rows][n_heads * head_size]; query head h reads kv head h / kv_mul.
// REQUIRES: head_size <= 256.
void Attention(KvView kv, int layer, const float* q, const int32_t* pos, const int32_t* tables,
               const int32_t* table_start, int rows, int n_heads, int kv_mul, int head_size,
               float* out, cudaStream_t s);
// gate[i] = silu(gate[i]) * up[i] for n values.
void SwiGlu(float* gate, const float* up, size_t n, cudaStream_t s);

}  // namespace quiver::llm::cuda

#endif  // QUIVER_LLM_CUDA_KERNELS_H_
