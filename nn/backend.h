// The compute interface model code (embed/, llm/) is written against: float32
// row-major tensors that live on the backend's device, and the operations an
// encoder or decoder needs. CpuBackend: OpenBLAS sgemm + OpenMP; the CUDA
// backend (cuda_backend.cc, when built with nvcc): cuBLAS + our kernels.
#ifndef QUIVER_NN_BACKEND_H_
#define QUIVER_NN_BACKEND_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace quiver::nn {

// Device memory for a tensor; freed with the last Tensor that holds it.
class Buffer {
 public:
  virtual ~Buffer() = default;
  virtual float* data() = 0;
};

struct Tensor {
  std::vector<int64_t> shape;
  std::shared_ptr<Buffer> buffer;
  float* data() const { return buffer ? buffer->data() : nullptr; }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  // Rows and columns when viewed as a matrix (last dimension = columns).
  int64_t cols() const { return shape.empty() ? 1 : shape.back(); }
  int64_t rows() const { return cols() == 0 ? 0 : numel() / cols(); }
};

// How a backend's matrix products (Linear and attention) round their inputs.
//   kFloat32: float32 throughout; results match the CPU backend's within
//     float rounding. The default.
//   kTf32: on CUDA, tensor cores with the inputs rounded to TF32 (10-bit
//     mantissa) and float32 accumulation: several times float32's GEMM
//     throughput on Ampere and later GPUs, at about 1e-3 relative error in
//     the products. The CPU backend computes float32 for it.
//   kBf16: on the CPU, Linear layers with inputs and weights rounded to
//     bfloat16 (8-bit mantissa), exact products, float32 sums (AVX512_BF16
//     vdpbf16ps: twice float32's FMA rate; nn/gemm.h); attention stays
//     float32. The CUDA backend computes float32 for it.
enum class MatmulPrecision { kFloat32, kTf32, kBf16 };
// "float32", "tf32" or "bf16"; INVALID_ARGUMENT otherwise.
absl::StatusOr<MatmulPrecision> ParseMatmulPrecision(std::string_view name);
std::string_view MatmulPrecisionName(MatmulPrecision precision);

struct BackendOptions {
  // Default: kFloat32. kTf32 is honoured by the CUDA backend, kBf16 by the
  // CPU one (see MatmulPrecision).
  MatmulPrecision precision = MatmulPrecision::kFloat32;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;
  // The precision its products actually use.
  virtual MatmulPrecision precision() const { return MatmulPrecision::kFloat32; }
  // Device memory running out does not abort the process: the backend
  // records the calling thread's first failure (RESOURCE_EXHAUSTED), skips
  // that thread's later operations (their outputs are unspecified; Download
  // gives zeros) and returns the failure here, clearing it. Model code calls
  // this after loading weights and after each forward pass, and fails with
  // it. Always OK on the CPU (host allocation failures throw as usual).
  virtual absl::Status TakeError() { return absl::OkStatus(); }

  virtual Tensor Alloc(std::vector<int64_t> shape) = 0;  // Uninitialised.
  virtual Tensor Upload(std::span<const float> host, std::vector<int64_t> shape) = 0;
  virtual std::vector<float> Download(const Tensor& t) = 0;

  // y[m, n] = x[m, k] * w[n, k]^T (+ bias[n]): a PyTorch Linear layer.
  // w is a weight: unchanged after its first use here (the CPU backend
  // keeps a packed copy of it for its kernels).
  virtual void Linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor* y) = 0;
  // out[i, :] = table[ids[i], :]; out must have ids.size() rows.
  virtual void Gather(const Tensor& table, std::span<const int32_t> ids, Tensor* out) = 0;
  // out[i, :] += table[ids[i], :].
  virtual void GatherAdd(const Tensor& table, std::span<const int32_t> ids, Tensor* out) = 0;
  virtual void Add(Tensor* x, const Tensor& y) = 0;  // Same shape.
  // Per row: (x - mean) / sqrt(var + eps) * gamma + beta.
  virtual void LayerNorm(Tensor* x, const Tensor& gamma, const Tensor& beta, float eps) = 0;
  virtual void Gelu(Tensor* x) = 0;  // Exact (erf) form, as BERT's "gelu".
  virtual void Tanh(Tensor* x) = 0;
  // Multi-head self-attention over a padded batch: q, k, v and out are
  // [batch * seq, heads * head_dim]; sequence b attends to its first
  // lengths[b] positions only (padding keys masked). Scale 1/sqrt(head_dim).
  virtual void Attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t batch,
                         int64_t seq, int64_t heads, std::span<const int32_t> lengths,
                         Tensor* out) = 0;
};

// The CPU backend (always available).
std::unique_ptr<Backend> NewCpuBackend(MatmulPrecision precision = MatmulPrecision::kFloat32);
// "cpu", "cuda" or "auto" (CUDA when built and a GPU is visible, else CPU).
// UNAVAILABLE for "cuda" without a usable GPU; INVALID_ARGUMENT for another
// device name.
absl::StatusOr<std::unique_ptr<Backend>> NewBackend(std::string_view device,
                                                    const BackendOptions& options = {});

}  // namespace quiver::nn

#endif  // QUIVER_NN_BACKEND_H_
