// CpuBackend: Linear through nn/gemm.h (our AVX-512 kernels, float32 or
// bfloat16, else OpenBLAS), attention a block of query rows at a time
// (through the same AVX-512 kernels when the head size is a multiple of 32,
// else OpenBLAS sgemm), OpenMP over rows for the element-wise work
// (elementwise_avx512.cc on AVX-512 CPUs).
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <utility>

#include "common/strings.h"
#include "nn/backend.h"
#include "nn/gemm.h"

namespace quiver::nn {
#ifdef QUIVER_X86_GEMM
namespace avx512 {
void Gelu(float* x, int64_t n);
void LayerNormRow(float* v, int64_t d, const float* g, const float* b, float eps);
bool AttentionBlock(const float* q, int64_t ldq, const float* k, const float* v, int64_t ldkv,
                    int64_t rows, int64_t len, int64_t hd, float scale, float* out, int64_t ldo,
                    std::vector<float>* scratch);
}  // namespace avx512
constexpr bool kX86 = true;
#else
namespace avx512 {
inline void Gelu(float*, int64_t) {}
inline void LayerNormRow(float*, int64_t, const float*, const float*, float) {}
inline bool AttentionBlock(const float*, int64_t, const float*, const float*, int64_t, int64_t,
                           int64_t, int64_t, float, float*, int64_t, std::vector<float>*) {
  return false;
}
}  // namespace avx512
constexpr bool kX86 = false;
#endif

namespace {

// Storage of released buffers, for the next tensors of (about) the same
// size: an encoder's forward pass allocates its activations anew each
// time, and fresh pages cost a fault and a clearing each (a quarter of a
// batch's time on a VM). Holds at most kMaxBytes.
class BufferPool {
 public:
  static constexpr size_t kMaxBytes = size_t{256} << 20;

  // Storage for n floats (uninitialised): a free one of n to n * 5/4
  // floats, else new.
  std::pair<std::unique_ptr<float[]>, size_t> Take(size_t n) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.lower_bound(n);
      if (it != free_.end() && it->first <= n + n / 4) {
        std::pair<std::unique_ptr<float[]>, size_t> out(std::move(it->second), it->first);
        bytes_ -= it->first * sizeof(float);
        free_.erase(it);
        return out;
      }
    }
    return {std::unique_ptr<float[]>(new float[std::max<size_t>(n, 1)]), n};
  }
  void Give(std::unique_ptr<float[]> data, size_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    if (bytes_ + n * sizeof(float) > kMaxBytes) return;  // Freed.
    bytes_ += n * sizeof(float);
    free_.emplace(n, std::move(data));
  }

 private:
  std::mutex mu_;
  std::multimap<size_t, std::unique_ptr<float[]>> free_;  // By capacity in floats.
  size_t bytes_ = 0;
};

class HostBuffer : public Buffer {
 public:
  HostBuffer(size_t n, std::shared_ptr<BufferPool> pool) : pool_(std::move(pool)) {
    std::tie(data_, capacity_) = pool_->Take(n);
  }
  ~HostBuffer() override { pool_->Give(std::move(data_), capacity_); }
  float* data() override { return data_.get(); }

  // The buffer as an n x k weight packed for Gemm, made at the first call
  // (weights do not change after their first use).
  const PackedWeights& Packed(int64_t n, int64_t k, bool bf16) {
    std::call_once(packed_once_, [&] { packed_ = PackWeights(data_.get(), n, k, bf16); });
    return packed_;
  }

 private:
  std::shared_ptr<BufferPool> pool_;
  std::unique_ptr<float[]> data_;
  size_t capacity_ = 0;
  std::once_flag packed_once_;
  PackedWeights packed_;
};

class CpuBackend : public Backend {
 public:
  explicit CpuBackend(MatmulPrecision precision)
      : precision_(precision == MatmulPrecision::kBf16 ? precision : MatmulPrecision::kFloat32) {
    openblas_set_num_threads(1);
  }
  std::string_view name() const override { return "cpu"; }
  MatmulPrecision precision() const override { return precision_; }

  Tensor Alloc(std::vector<int64_t> shape) override {
    Tensor t{std::move(shape), nullptr};
    t.buffer = std::make_shared<HostBuffer>(static_cast<size_t>(t.numel()), pool_);
    return t;
  }
  Tensor Upload(std::span<const float> host, std::vector<int64_t> shape) override {
    Tensor t = Alloc(std::move(shape));
    std::memcpy(t.data(), host.data(), host.size() * sizeof(float));
    return t;
  }
  std::vector<float> Download(const Tensor& t) override {
    return std::vector<float>(t.data(), t.data() + t.numel());
  }

  void Linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor* y) override {
    const int64_t m = x.rows(), k = x.cols(), n = w.rows();
    auto* host = static_cast<HostBuffer*>(w.buffer.get());
    const PackedWeights& packed = host->Packed(n, k, precision_ == MatmulPrecision::kBf16);
    if (packed.n == n && packed.k == k) {
      Gemm(x.data(), packed, bias != nullptr ? bias->data() : nullptr, m, y->data());
    } else {  // The same buffer viewed in another shape: packed for this call only.
      Gemm(x.data(), PackWeights(w.data(), n, k, precision_ == MatmulPrecision::kBf16),
           bias != nullptr ? bias->data() : nullptr, m, y->data());
    }
  }

  void Gather(const Tensor& table, std::span<const int32_t> ids, Tensor* out) override {
    const int64_t d = table.cols();
    for (size_t i = 0; i < ids.size(); ++i) {
      std::memcpy(out->data() + i * d, table.data() + static_cast<int64_t>(ids[i]) * d,
                  d * sizeof(float));
    }
  }
  void GatherAdd(const Tensor& table, std::span<const int32_t> ids, Tensor* out) override {
    const int64_t d = table.cols();
    for (size_t i = 0; i < ids.size(); ++i) {
      float* o = out->data() + i * d;
      const float* r = table.data() + static_cast<int64_t>(ids[i]) * d;
      for (int64_t j = 0; j < d; ++j) o[j] += r[j];
    }
  }
  void Add(Tensor* x, const Tensor& y) override {
    float* a = x->data();
    const float* b = y.data();
    const int64_t n = x->numel();
#pragma omp parallel for simd if (n > 65536)
    for (int64_t i = 0; i < n; ++i) a[i] += b[i];
  }
  void LayerNorm(Tensor* x, const Tensor& gamma, const Tensor& beta, float eps) override {
    const int64_t rows = x->rows(), d = x->cols();
    const float* g = gamma.data();
    const float* b = beta.data();
#pragma omp parallel for if (rows > 16)
    for (int64_t r = 0; r < rows; ++r) {
      float* v = x->data() + r * d;
      if (avx512_) {
        avx512::LayerNormRow(v, d, g, b, eps);
        continue;
      }
      double mean = 0, var = 0;
      for (int64_t j = 0; j < d; ++j) mean += v[j];
      mean /= d;
      for (int64_t j = 0; j < d; ++j) var += (v[j] - mean) * (v[j] - mean);
      var /= d;
      const float inv = static_cast<float>(1.0 / std::sqrt(var + eps));
      const float mu = static_cast<float>(mean);
      for (int64_t j = 0; j < d; ++j) v[j] = (v[j] - mu) * inv * g[j] + b[j];
    }
  }
  void Gelu(Tensor* x) override {
    if (avx512_) {  // 16-wide erf (libmvec), in chunks over the threads.
      constexpr int64_t kChunk = 16384;
      float* a = x->data();
      const int64_t n = x->numel(), chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for if (n > 65536)
      for (int64_t c = 0; c < chunks; ++c) {
        avx512::Gelu(a + c * kChunk, std::min(kChunk, n - c * kChunk));
      }
      return;
    }
    Map(x, [](float v) { return 0.5f * v * (1.0f + std::erf(v * 0.70710678118654752f)); });
  }
  void Tanh(Tensor* x) override {
    Map(x, [](float v) { return std::tanh(v); });
  }

  // A block of query rows at a time: scores for 64 rows x the real keys,
  // softmax, times V, so memory grows with the sequence, not its square
  // (a 8,192-token input holds 2 MB of scores per thread, not 256 MB).
  void Attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t batch, int64_t seq,
                 int64_t heads, std::span<const int32_t> lengths, Tensor* out) override {
    constexpr int64_t kQueryBlock = 64;
    const int64_t width = q.cols();
    const int64_t hd = width / heads;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const int64_t blocks = (seq + kQueryBlock - 1) / kQueryBlock;
#pragma omp parallel
    {
      std::vector<float> scores(static_cast<size_t>(std::min(seq, kQueryBlock) * seq)), scratch;
#pragma omp for collapse(3) schedule(dynamic)
      for (int64_t b = 0; b < batch; ++b) {
        for (int64_t h = 0; h < heads; ++h) {
          for (int64_t qb = 0; qb < blocks; ++qb) {
            const int64_t len = lengths[b];
            const int64_t q0 = qb * kQueryBlock, rows = std::min(kQueryBlock, seq - q0);
            const float* qs = q.data() + (b * seq + q0) * width + h * hd;
            const float* kb = k.data() + b * seq * width + h * hd;
            const float* vb = v.data() + b * seq * width + h * hd;
            float* ob = out->data() + (b * seq + q0) * width + h * hd;
            if (avx512_ && avx512::AttentionBlock(qs, width, kb, vb, width, rows, len, hd, scale,
                                                  ob, width, &scratch)) {
              continue;
            }
            // scores[i, j] = q_i . k_j * scale, for the real keys j < len.
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows),
                        static_cast<int>(len), static_cast<int>(hd), scale, qs,
                        static_cast<int>(width), kb, static_cast<int>(width), 0.0f, scores.data(),
                        static_cast<int>(len));
            for (int64_t i = 0; i < rows; ++i) {
              float* row = scores.data() + i * len;
              float mx = -INFINITY;
              for (int64_t j = 0; j < len; ++j) mx = std::max(mx, row[j]);
              float sum = 0;
              for (int64_t j = 0; j < len; ++j) sum += (row[j] = std::exp(row[j] - mx));
              const float inv = 1.0f / sum;
              for (int64_t j = 0; j < len; ++j) row[j] *= inv;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows),
                        static_cast<int>(hd), static_cast<int>(len), 1.0f, scores.data(),
                        static_cast<int>(len), vb, static_cast<int>(width), 0.0f, ob,
                        static_cast<int>(width));
          }
        }
      }
    }
  }

 private:
  const MatmulPrecision precision_;
  const bool avx512_ = kX86 && HasAvx512Kernels();
  // Buffers may outlive the backend (tensors held by callers): shared.
  std::shared_ptr<BufferPool> pool_ = std::make_shared<BufferPool>();

  template <typename F>
  static void Map(Tensor* x, F f) {
    float* a = x->data();
    const int64_t n = x->numel();
#pragma omp parallel for simd if (n > 65536)
    for (int64_t i = 0; i < n; ++i) a[i] = f(a[i]);
  }
};

}  // namespace

std::unique_ptr<Backend> NewCpuBackend(MatmulPrecision precision) {
  return std::make_unique<CpuBackend>(precision);
}

absl::StatusOr<MatmulPrecision> ParseMatmulPrecision(std::string_view name) {
  if (name == "float32") return MatmulPrecision::kFloat32;
  if (name == "tf32") return MatmulPrecision::kTf32;
  if (name == "bf16") return MatmulPrecision::kBf16;
  return absl::InvalidArgumentError(
      StrCat("unknown matmul precision ", Quoted(name), "; use float32, tf32 or bf16"));
}

std::string_view MatmulPrecisionName(MatmulPrecision precision) {
  switch (precision) {
    case MatmulPrecision::kTf32:
      return "tf32";
    case MatmulPrecision::kBf16:
      return "bf16";
    case MatmulPrecision::kFloat32:
      break;
  }
  return "float32";
}

#ifndef QUIVER_HAVE_CUDA_BACKEND
absl::StatusOr<std::unique_ptr<Backend>> NewBackend(std::string_view device,
                                                    const BackendOptions& options) {
  if (device == "cpu" || device == "auto") return NewCpuBackend(options.precision);
  if (device == "cuda") {
    return absl::UnavailableError(
        "this build has no CUDA backend (nvcc was not found at build time)");
  }
  return absl::InvalidArgumentError(
      StrCat("unknown device ", Quoted(device), "; use auto, cpu or cuda"));
}
#endif

}  // namespace quiver::nn
