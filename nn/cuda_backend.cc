// CudaBackend: tensors in device memory, cuBLAS for Linear and the two
// attention products (pointer-array batched over sequences and heads), our
// kernels (cuda_kernels.cu) for the rest. FP32 by default (results match
// the CPU backend within float rounding), TF32 tensor cores on request.
// Running out of device memory is a per-thread error (Backend::TakeError);
// any other CUDA failure aborts.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/strings.h"
#include "nn/backend.h"
#include "nn/cuda_check.h"
#include "nn/cuda_kernels.h"

namespace quiver::nn {
namespace {

// A cuBLAS failure is a broken invariant too (see QUIVER_CUDA_CHECK).
#define QUIVER_CUBLAS_CHECK(expr)                                                         \
  do {                                                                                    \
    cublasStatus_t st_ = (expr);                                                          \
    if (st_ != CUBLAS_STATUS_SUCCESS) {                                                   \
      std::fprintf(stderr, "cuBLAS error %d at %s:%d\n", static_cast<int>(st_), __FILE__, \
                   __LINE__);                                                             \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)

class DeviceBuffer : public Buffer {
 public:
  // Null when the device has no room for n floats.
  static std::shared_ptr<DeviceBuffer> New(size_t n) {
    void* p = nullptr;
    if (cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(float)) != cudaSuccess) return nullptr;
    return std::shared_ptr<DeviceBuffer>(new DeviceBuffer(static_cast<float*>(p)));
  }
  ~DeviceBuffer() override { cudaFree(data_); }
  float* data() override { return data_; }

 private:
  explicit DeviceBuffer(float* data) : data_(data) {}
  float* data_;
};

absl::Status OutOfMemory(size_t bytes) {
  return CudaOutOfMemory(bytes, "use smaller batches (--embed_max_batch_tokens) or another device");
}

// Each thread's first allocation failure per backend (Backend::TakeError),
// keyed by the backend's serial number (an address could be reused).
thread_local std::unordered_map<uint64_t, absl::Status> thread_errors;
std::atomic<uint64_t> next_backend_serial{1};

class CudaBackend : public Backend {
 public:
  explicit CudaBackend(MatmulPrecision precision)
      : serial_(next_backend_serial.fetch_add(1)), precision_(precision) {
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

  absl::Status TakeError() override {
    auto it = thread_errors.find(serial_);
    if (it == thread_errors.end()) return absl::OkStatus();
    absl::Status s = std::move(it->second);
    thread_errors.erase(it);
    return s;
  }

  Tensor Alloc(std::vector<int64_t> shape) override {
    Tensor t{std::move(shape), nullptr};
    if (Failed()) return t;
    const size_t n = static_cast<size_t>(t.numel());
    t.buffer = DeviceBuffer::New(n);
    if (t.buffer == nullptr) Fail(OutOfMemory(n * sizeof(float)));
    return t;
  }
  Tensor Upload(std::span<const float> host, std::vector<int64_t> shape) override {
    Tensor t = Alloc(std::move(shape));
    if (Failed()) return t;
    QUIVER_CUDA_CHECK(cudaMemcpyAsync(t.data(), host.data(), host.size() * sizeof(float),
                                      cudaMemcpyHostToDevice, stream_));
    return t;
  }
  std::vector<float> Download(const Tensor& t) override {
    std::vector<float> out(static_cast<size_t>(t.numel()));
    if (Failed()) return out;
    QUIVER_CUDA_CHECK(cudaMemcpyAsync(out.data(), t.data(), out.size() * sizeof(float),
                                      cudaMemcpyDeviceToHost, stream_));
    QUIVER_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return out;
  }

  void Linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor* y) override {
    if (Failed()) return;
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
    if (Failed()) return;
    cuda::Add(x->data(), y.data(), x->numel(), stream_);
  }
  void LayerNorm(Tensor* x, const Tensor& gamma, const Tensor& beta, float eps) override {
    if (Failed()) return;
    cuda::LayerNorm(x->data(), gamma.data(), beta.data(), x->rows(), x->cols(), eps, stream_);
  }
  void Gelu(Tensor* x) override { Activate(x, cuda::Act::kGelu); }
  void Tanh(Tensor* x) override { Activate(x, cuda::Act::kTanh); }

  // All (sequence, head) pairs in three launches: a pointer-array batched
  // product for the scores, one masked softmax, a batched product with V
  // (a launch per sequence cost more than the products at small sizes).
  void Attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t batch, int64_t seq,
                 int64_t heads, std::span<const int32_t> lengths, Tensor* out) override {
    const int64_t width = q.cols(), hd = width / heads, n = batch * heads;
    if (n == 0 || seq == 0 || Failed()) return;
    // The scores scratch and the pointer arrays are shared: one thread's
    // three launches at a time (the stream runs them in that order).
    std::lock_guard<std::mutex> lock(scratch_mu_);
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd)), one = 1.0f, zero = 0.0f;
    const size_t pointer_bytes =
        static_cast<size_t>(5 * n) * sizeof(void*) + lengths.size() * sizeof(int32_t);
    if (!Grow(&scratch_, &scratch_bytes_, static_cast<size_t>(n * seq * seq) * sizeof(float)) ||
        !Grow(&pointers_, &pointers_bytes_, pointer_bytes)) {
      return;
    }
    float* scores = static_cast<float*>(scratch_);  // [batch][heads][query][key].
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
    void** d = DevicePointers(static_cast<size_t>(5 * n), lengths, pointer_bytes);
    const int32_t* d_lengths = reinterpret_cast<const int32_t*>(d + 5 * n);
    // scores_i (column-major key x query) = scale * K_i^T Q_i.
    QUIVER_CUBLAS_CHECK(cublasSgemmBatched(
        cublas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(seq), static_cast<int>(seq),
        static_cast<int>(hd), &scale, reinterpret_cast<const float* const*>(d),
        static_cast<int>(width), reinterpret_cast<const float* const*>(d + n),
        static_cast<int>(width), &zero, reinterpret_cast<float* const*>(d + 2 * n),
        static_cast<int>(seq), static_cast<int>(n)));
    cuda::MaskedSoftmax(scores, n * seq, seq, d_lengths, heads * seq, stream_);
    // out_i (hd x query, ld width) = V_i P_i.
    QUIVER_CUBLAS_CHECK(cublasSgemmBatched(
        cublas_, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(hd), static_cast<int>(seq),
        static_cast<int>(seq), &one, reinterpret_cast<const float* const*>(d + 3 * n),
        static_cast<int>(width), reinterpret_cast<const float* const*>(d + 2 * n),
        static_cast<int>(seq), &zero, reinterpret_cast<float* const*>(d + 4 * n),
        static_cast<int>(width), static_cast<int>(n)));
  }

 private:
  void GatherImpl(const Tensor& table, std::span<const int32_t> ids, Tensor* out, bool add) {
    if (Failed()) return;
    std::lock_guard<std::mutex> lock(scratch_mu_);  // ids_ is shared.
    if (!Grow(&ids_, &ids_bytes_, ids.size() * sizeof(int32_t))) return;
    QUIVER_CUDA_CHECK(cudaMemcpyAsync(ids_, ids.data(), ids.size() * sizeof(int32_t),
                                      cudaMemcpyHostToDevice, stream_));
    const int64_t d = table.cols(), rows = static_cast<int64_t>(ids.size());
    cuda::Gather(out->data(), table.data(), static_cast<const int32_t*>(ids_), rows, d, add,
                 stream_);
    // The host ids may change after return: finish the copy first.
    QUIVER_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  // Copies `count` pointers from host_pointers_ and then `lengths` (`bytes`
  // in all) to pointers_, grown by the caller; returns the device copy.
  void** DevicePointers(size_t count, std::span<const int32_t> lengths, size_t bytes) {
    staging_.resize(bytes);
    std::memcpy(staging_.data(), host_pointers_.data(), count * sizeof(void*));
    std::memcpy(staging_.data() + count * sizeof(void*), lengths.data(),
                lengths.size() * sizeof(int32_t));
    // From pageable memory the call returns once the bytes are staged, so
    // staging_ may be refilled by the next call; the stream orders the next
    // overwrite of pointers_ after this call's products.
    QUIVER_CUDA_CHECK(
        cudaMemcpyAsync(pointers_, staging_.data(), bytes, cudaMemcpyHostToDevice, stream_));
    return static_cast<void**>(pointers_);
  }
  // Grows the scratch buffer *p (capacity *have bytes) to `want` bytes;
  // false (and the thread's error set) when the device has no room.
  bool Grow(void** p, size_t* have, size_t want) {
    if (want <= *have) return true;
    QUIVER_CUDA_CHECK(cudaStreamSynchronize(stream_));  // Nothing queued still uses it.
    cudaFree(*p);
    *p = nullptr;
    *have = 0;
    if (cudaMalloc(p, want) != cudaSuccess) {
      *p = nullptr;
      Fail(OutOfMemory(want));
      return false;
    }
    *have = want;
    return true;
  }
  bool Failed() const {
    auto it = thread_errors.find(serial_);
    return it != thread_errors.end() && !it->second.ok();
  }
  void Fail(absl::Status error) { thread_errors.try_emplace(serial_, std::move(error)); }
  void Activate(Tensor* x, cuda::Act act) {
    if (!Failed()) cuda::Activate(x->data(), x->numel(), act, stream_);
  }

  const uint64_t serial_;
  const MatmulPrecision precision_;
  cublasHandle_t cublas_ = nullptr;
  cudaStream_t stream_ = nullptr;
  // Scratch shared by the threads using this backend (quiverd's embedding
  // and rerank workers): held while a call fills and uses it.
  std::mutex scratch_mu_;
  void* scratch_ = nullptr;  // Attention scores.
  size_t scratch_bytes_ = 0;
  void* ids_ = nullptr;  // Gather's ids.
  size_t ids_bytes_ = 0;
  std::vector<const void*> host_pointers_;  // Attention's per-(sequence, head) matrices.
  std::vector<char> staging_;
  void* pointers_ = nullptr;  // Device copy of the pointers and lengths.
  size_t pointers_bytes_ = 0;
};

bool GpuVisible() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> NewBackend(std::string_view device,
                                                    const BackendOptions& options) {
  // bfloat16 is the CPU's reduced precision: float32 on the GPU.
  const MatmulPrecision gpu_precision =
      options.precision == MatmulPrecision::kBf16 ? MatmulPrecision::kFloat32 : options.precision;
  if (device == "cpu") return NewCpuBackend(options.precision);
  if (device == "auto") {
    if (GpuVisible()) return std::unique_ptr<Backend>(new CudaBackend(gpu_precision));
    return NewCpuBackend(options.precision);
  }
  if (device == "cuda") {
    if (!GpuVisible()) {
      return absl::UnavailableError("--device=cuda: no CUDA GPU is visible to this process");
    }
    return std::unique_ptr<Backend>(new CudaBackend(gpu_precision));
  }
  return absl::InvalidArgumentError(
      StrCat("unknown device ", Quoted(device), "; use auto, cpu or cuda"));
}

}  // namespace quiver::nn
