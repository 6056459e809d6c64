// Launchers for the CUDA backend's kernels (cuda_kernels.cu). All run on
// the given stream; pointers are device memory.
#ifndef QUIVER_NN_CUDA_KERNELS_H_
#define QUIVER_NN_CUDA_KERNELS_H_

#include <cuda_runtime.h>

#include <cstdint>

namespace quiver::nn::cuda {

enum class Act { kGelu, kTanh };

// y[i, :] = bias for every row of y[m, n].
void FillRows(float* y, const float* bias, int64_t m, int64_t n, cudaStream_t s);
// out[r, :] (+)= table[ids[r], :].
void Gather(float* out, const float* table, const int32_t* ids, int64_t rows, int64_t d, bool add,
            cudaStream_t s);
void Add(float* a, const float* b, int64_t n, cudaStream_t s);
void Activate(float* a, int64_t n, Act act, cudaStream_t s);
// LayerNorm per row: (x - mean) / sqrt(var + eps) * gamma + beta.
void LayerNorm(float* x, const float* gamma, const float* beta, int64_t rows, int64_t d, float eps,
               cudaStream_t s);
// Softmax of each row of scores [rows][seq] over its first len entries (the
// rest 0), len = lengths[row / rows_per_length] (lengths in device memory).
void MaskedSoftmax(float* scores, int64_t rows, int64_t seq, const int32_t* lengths,
                   int64_t rows_per_length, cudaStream_t s);

}  // namespace quiver::nn::cuda

#endif  // QUIVER_NN_CUDA_KERNELS_H_
