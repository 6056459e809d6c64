// CudaBackend: tensors in device memory, cuBLAS for Linear and the two
// attention products (strided-batched over heads), our kernels
// (cuda_kernels.cu) for the rest. FP32 throughout (cuBLAS default math), so
// results match the CPU backend within float rounding.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "common/strings.h"
#include "nn/backend.h"
#include "nn/cuda_kernels.h"

namespace quiver::nn {
namespace {

// A CUDA or cuBLAS failure inside a kernel sequence is a programming or
// device error with no partial result to return: report and abort.
#define QUIVER_CUDA_CHECK(expr)                                                        \
  do {                                                                                 \
    cudaError_t err_ = (expr);                                                         \
    if (err_ != cudaSuccess) {                                                         \
      std::fprintf(stderr, "CUDA error %s at %s:%d\n", cudaGetErrorString(err_),        \
                   __FILE__, __LINE__);                                                \
      std::abort();                                                                    \
    }                                                                                  \
  } while (0)
#define QUIVER_CUBLAS_CHECK(expr)                                                                \
  do {                                                                                           \
    cublasStatus_t st_ = (expr);                                                                 \
    if (st_ != CUBLAS_STATUS_SUCCESS) {                                                          \
      std::fprintf(stderr, "cuBLAS error %d at %s:%d\n", static_cast<int>(st_), __FILE__, __LINE__); \
      std::abort();                                                                              \
    }                                                                                            \
  } while (0)

class DeviceBuffer : public Buffer {
 public:
  explicit DeviceBuffer(size_t n) { QUIVER_CUDA_CHECK(cudaMalloc(&data_, std::max<size_t>(n, 1) * sizeof(float))); }
  ~DeviceBuffer() override { cudaFree(data_); }
  float* data() override { return data_; }

 private:
  float* data_ = nullptr;
};

class CudaBackend : public Backend {
 public:
  explicit CudaBackend(MatmulPrecision precision) : precision_(precision) {
    QUIVER_CUBLAS_CHECK(cublasCreate(&cublas_));
    QUIVER_CUDA_CHECK(cudaStreamCreate(&stream_));
    QUIVER_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
    if (precision == MatmulPrecision::kTf32) {
      QUIVER_CUBLAS_CHECK(cublasSetMathMode(cublas_, CUBLAS_TF32_TENSOR_OP_MATH));
    }
  }
  ~CudaBackend() override {
    cudaFree(scratch_);
    cudaFree(ids_);
    cudaFree(pointers_);
    cublasDestroy(cublas_);
    cudaStreamDestroy(stream_);
  }
  std::string_view name() const override { return "cuda"; }
  MatmulPrecision precision() const override { return precision_; }

  Tensor Alloc(std::vector<int64_t> shape) override {
    Tensor t{std::move(shape), nullptr};
    t.buffer = std::make_shared<DeviceBuffer>(static_cast<size_t>(t.numel()));
    return t;
  }
  Tensor Upload(std::span<const float> host, std::vector<int64_t> shape) override {
    Tensor t = Alloc(std::move(shape));
    QUIVER_CUDA_CHECK(cudaMemcpyAsync(t.data(), host.data(), host.size() * sizeof(float),
                                      cudaMemcpyHostToDevice, stream_));
    return t;
  }
  std::vector<float> Download(const Tensor& t) override {
    std::vector<float> out(static_cast<size_t>(t.numel()));
    QUIVER_CUDA_CHECK(cudaMemcpyAsync(out.data(), t.data(), out.size() * sizeof(float),
                                      cudaMemcpyDeviceToHost, stream_));
    QUIVER_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return out;
  }

  void Linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor* y) override {
    const int64_t m = x.rows(), k = x.cols(), n = w.rows();
    float beta = 0.0f;
    if (bias != nullptr) {
      cuda::FillRows(y->data(), bias->data(), m, n, stream_);
      beta = 1.0f;
    }
    const float alpha = 1.0f;
    // Row-major Y = X W^T is column-major Y^T = W^T(col) ... = op(W_cm)^T X_cm.
    QUIVER_CUBLAS_CHECK(cublasSgemm(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n),
                                    static_cast<int>(m), static_cast<int>(k), &alpha, w.data(),
                                    static_cast<int>(k), x.data(), static_cast<int>(k), &beta,
                                    y->data(), static_cast<int>(n)));
  }

  void Gather(const Tensor& table, std::span<const int32_t> ids, Tensor* out) override {
    GatherImpl(table, ids, out, false);
  }
  void GatherAdd(const Tensor& table, std::span<const int32_t> ids, Tensor* out) override {
    GatherImpl(table, ids, out, true);
  }
  void Add(Tensor* x, const Tensor& y) override {
    cuda::Add(x->data(), y.data(), x->numel(), stream_);
  }
  void LayerNorm(Tensor* x, const Tensor& gamma, const Tensor& beta, float eps) override {
    cuda::Norm(x->data(), gamma.data(), beta.data(), x->rows(), x->cols(), eps, false, stream_);
  }
  void RmsNorm(Tensor* x, const Tensor& gamma, float eps) override {
    cuda::Norm(x->data(), gamma.data(), nullptr, x->rows(), x->cols(), eps, true, stream_);
  }
  void Gelu(Tensor* x) override { cuda::Activate(x->data(), x->numel(), cuda::Act::kGelu, stream_); }
  void Silu(Tensor* x) override { cuda::Activate(x->data(), x->numel(), cuda::Act::kSilu, stream_); }
  void Tanh(Tensor* x) override { cuda::Activate(x->data(), x->numel(), cuda::Act::kTanh, stream_); }

  // All (sequence, head) pairs in three launches: a pointer-array batched
  // product for the scores, one masked softmax, a batched product with V
  // (a launch per sequence cost more than the products at small sizes).
  void Attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t batch, int64_t seq,
                 int64_t heads, std::span<const int32_t> lengths, Tensor* out) override {
    const int64_t width = q.cols(), hd = width / heads, n = batch * heads;
    if (n == 0 || seq == 0) return;
    // The scores scratch and the pointer arrays are shared: one thread's
    // three launches at a time (the stream runs them in that order).
    std::lock_guard<std::mutex> lock(scratch_mu_);
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd)), one = 1.0f, zero = 0.0f;
    float* scores = Scratch(static_cast<size_t>(n * seq * seq));  // [batch][heads][query][key].
    // Per pair i = b * heads + h: its K, Q, scores, V and output, then the
    // sequences' lengths, uploaded in one copy.
    host_pointers_.resize(static_cast<size_t>(5 * n));
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t i = b * heads + h, off = b * seq * width + h * hd;
        host_pointers_[i] = k.data() + off;
        host_pointers_[n + i] = q.data() + off;
        host_pointers_[2 * n + i] = scores + i * seq * seq;
        host_pointers_[3 * n + i] = v.data() + off;
        host_pointers_[4 * n + i] = out->data() + off;
      }
    }
    void** d = DevicePointers(static_cast<size_t>(5 * n), lengths);
    const int32_t* d_lengths = reinterpret_cast<const int32_t*>(d + 5 * n);
    // scores_i (column-major key x query) = scale * K_i^T Q_i.
    QUIVER_CUBLAS_CHECK(cublasSgemmBatched(
        cublas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(seq), static_cast<int>(seq), static_cast<int>(hd),
        &scale, reinterpret_cast<const float* const*>(d), static_cast<int>(width),
        reinterpret_cast<const float* const*>(d + n), static_cast<int>(width), &zero,
        reinterpret_cast<float* const*>(d + 2 * n), static_cast<int>(seq), static_cast<int>(n)));
    cuda::MaskedSoftmax(scores, n * seq, seq, d_lengths, heads * seq, stream_);
    // out_i (hd x query, ld width) = V_i P_i.
    QUIVER_CUBLAS_CHECK(cublasSgemmBatched(
        cublas_, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(hd), static_cast<int>(seq), static_cast<int>(seq),
        &one, reinterpret_cast<const float* const*>(d + 3 * n), static_cast<int>(width),
        reinterpret_cast<const float* const*>(d + 2 * n), static_cast<int>(seq), &zero,
        reinterpret_cast<float* const*>(d + 4 * n), static_cast<int>(width), static_cast<int>(n)));
  }

 private:
  void GatherImpl(const Tensor& table, std::span<const int32_t> ids, Tensor* out, bool add) {
    std::lock_guard<std::mutex> lock(scratch_mu_);  // ids_ is shared.
    if (ids.size() > ids_capacity_) {
      cudaFree(ids_);
      QUIVER_CUDA_CHECK(cudaMalloc(&ids_, ids.size() * sizeof(int32_t)));
      ids_capacity_ = ids.size();
    }
    QUIVER_CUDA_CHECK(cudaMemcpyAsync(ids_, ids.data(), ids.size() * sizeof(int32_t),
                                      cudaMemcpyHostToDevice, stream_));
    const int64_t d = table.cols(), rows = static_cast<int64_t>(ids.size());
    cuda::Gather(out->data(), table.data(), ids_, rows, d, add, stream_);
    // The host ids may change after return: finish the copy first.
    QUIVER_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  // Copies `count` pointers from host_pointers_ and then `lengths` to
  // device memory (grown as needed); returns the device copy.
  void** DevicePointers(size_t count, std::span<const int32_t> lengths) {
    const size_t bytes = count * sizeof(void*) + lengths.size() * sizeof(int32_t);
    if (bytes > pointers_capacity_) {
      QUIVER_CUDA_CHECK(cudaStreamSynchronize(stream_));
      cudaFree(pointers_);
      QUIVER_CUDA_CHECK(cudaMalloc(&pointers_, bytes));
      pointers_capacity_ = bytes;
    }
    staging_.resize(bytes);
    std::memcpy(staging_.data(), host_pointers_.data(), count * sizeof(void*));
    std::memcpy(staging_.data() + count * sizeof(void*), lengths.data(), lengths.size() * sizeof(int32_t));
    // From pageable memory the call returns once the bytes are staged, so
    // staging_ may be refilled by the next call; the stream orders the next
    // overwrite of pointers_ after this call's products.
    QUIVER_CUDA_CHECK(cudaMemcpyAsync(pointers_, staging_.data(), bytes, cudaMemcpyHostToDevice, stream_));
    return static_cast<void**>(pointers_);
  }
  float* Scratch(size_t n) {
    if (n > scratch_capacity_) {
      QUIVER_CUDA_CHECK(cudaStreamSynchronize(stream_));
      cudaFree(scratch_);
      QUIVER_CUDA_CHECK(cudaMalloc(&scratch_, n * sizeof(float)));
      scratch_capacity_ = n;
    }
    return scratch_;
  }

  const MatmulPrecision precision_;
  cublasHandle_t cublas_ = nullptr;
  cudaStream_t stream_ = nullptr;
  float* scratch_ = nullptr;
  size_t scratch_capacity_ = 0;
  int32_t* ids_ = nullptr;
  size_t ids_capacity_ = 0;
  // Scratch shared by the threads using this backend (quiverd's embedding
  // and rerank workers): held while a call fills and uses it.
  std::mutex scratch_mu_;
  std::vector<const void*> host_pointers_;  // Attention's per-(sequence, head) matrices.
  std::vector<char> staging_;
  void* pointers_ = nullptr;  // Device copy of the pointers and lengths.
  size_t pointers_capacity_ = 0;
};

bool GpuVisible() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> NewBackend(std::string_view device, const BackendOptions& options) {
  if (device == "cpu") return NewCpuBackend();
  if (device == "auto") {
    if (GpuVisible()) return std::unique_ptr<Backend>(new CudaBackend(options.precision));
    return NewCpuBackend();
  }
  if (device == "cuda") {
    if (!GpuVisible()) {
      return absl::UnavailableError("--device=cuda: no CUDA GPU is visible to this process");
    }
    return std::unique_ptr<Backend>(new CudaBackend(options.precision));
  }
  return absl::InvalidArgumentError(StrCat("unknown device \"", device, "\"; use auto, cpu or cuda"));
}

}  // namespace quiver::nn
