// CpuBackend: OpenBLAS sgemm for Linear and attention scores, OpenMP over
// rows for the element-wise work.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/strings.h"
#include "nn/backend.h"

namespace quiver::nn {
namespace {

class HostBuffer : public Buffer {
 public:
  explicit HostBuffer(size_t n) : data_(n) {}
  float* data() override { return data_.data(); }

 private:
  std::vector<float> data_;
};

class CpuBackend : public Backend {
 public:
  CpuBackend() { openblas_set_num_threads(1); }
  std::string_view name() const override { return "cpu"; }

  Tensor Alloc(std::vector<int64_t> shape) override {
    Tensor t{std::move(shape), nullptr};
    t.buffer = std::make_shared<HostBuffer>(static_cast<size_t>(t.numel()));
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
    float* out = y->data();
    // One thread pool: OpenBLAS runs single-threaded inside our OpenMP
    // threads, each taking a band of rows (two pools on the same cores
    // would spin against each other).
#pragma omp parallel
    {
      const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
      const int64_t band = (m + threads - 1) / threads;
      const int64_t r0 = std::min(m, t * band), r1 = std::min(m, r0 + band);
      if (r1 > r0) {
        if (bias != nullptr) {
          for (int64_t i = r0; i < r1; ++i)
            std::memcpy(out + i * n, bias->data(), n * sizeof(float));
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(r1 - r0),
                    static_cast<int>(n), static_cast<int>(k), 1.0f, x.data() + r0 * k,
                    static_cast<int>(k), w.data(), static_cast<int>(k),
                    bias != nullptr ? 1.0f : 0.0f, out + r0 * n, static_cast<int>(n));
      }
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
    Map(x, [](float v) { return 0.5f * v * (1.0f + std::erf(v * 0.70710678118654752f)); });
  }
  void Tanh(Tensor* x) override {
    Map(x, [](float v) { return std::tanh(v); });
  }

  void Attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t batch, int64_t seq,
                 int64_t heads, std::span<const int32_t> lengths, Tensor* out) override {
    const int64_t width = q.cols();
    const int64_t hd = width / heads;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
#pragma omp parallel
    {
      std::vector<float> scores(static_cast<size_t>(seq * seq));
#pragma omp for collapse(2) schedule(dynamic)
      for (int64_t b = 0; b < batch; ++b) {
        for (int64_t h = 0; h < heads; ++h) {
          const int64_t len = lengths[b];
          const float* qb = q.data() + b * seq * width + h * hd;
          const float* kb = k.data() + b * seq * width + h * hd;
          const float* vb = v.data() + b * seq * width + h * hd;
          float* ob = out->data() + b * seq * width + h * hd;
          // scores[i, j] = q_i . k_j * scale, for the real keys j < len.
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(seq),
                      static_cast<int>(len), static_cast<int>(hd), scale, qb,
                      static_cast<int>(width), kb, static_cast<int>(width), 0.0f, scores.data(),
                      static_cast<int>(len));
          for (int64_t i = 0; i < seq; ++i) {
            float* row = scores.data() + i * len;
            float mx = -INFINITY;
            for (int64_t j = 0; j < len; ++j) mx = std::max(mx, row[j]);
            float sum = 0;
            for (int64_t j = 0; j < len; ++j) sum += (row[j] = std::exp(row[j] - mx));
            const float inv = 1.0f / sum;
            for (int64_t j = 0; j < len; ++j) row[j] *= inv;
          }
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(seq),
                      static_cast<int>(hd), static_cast<int>(len), 1.0f, scores.data(),
                      static_cast<int>(len), vb, static_cast<int>(width), 0.0f, ob,
                      static_cast<int>(width));
        }
      }
    }
  }

 private:
  template <typename F>
  static void Map(Tensor* x, F f) {
    float* a = x->data();
    const int64_t n = x->numel();
#pragma omp parallel for simd if (n > 65536)
    for (int64_t i = 0; i < n; ++i) a[i] = f(a[i]);
  }
};

}  // namespace

std::unique_ptr<Backend> NewCpuBackend() { return std::make_unique<CpuBackend>(); }

absl::StatusOr<MatmulPrecision> ParseMatmulPrecision(std::string_view name) {
  if (name == "float32") return MatmulPrecision::kFloat32;
  if (name == "tf32") return MatmulPrecision::kTf32;
  return absl::InvalidArgumentError(
      StrCat("unknown matmul precision ", Quoted(name), "; use float32 or tf32"));
}

std::string_view MatmulPrecisionName(MatmulPrecision precision) {
  return precision == MatmulPrecision::kTf32 ? "tf32" : "float32";
}

#ifndef QUIVER_HAVE_CUDA_BACKEND
absl::StatusOr<std::unique_ptr<Backend>> NewBackend(std::string_view device,
                                                    const BackendOptions&) {
  if (device == "cpu" || device == "auto") return NewCpuBackend();
  if (device == "cuda") {
    return absl::UnavailableError(
        "this build has no CUDA backend (nvcc was not found at build time)");
  }
  return absl::InvalidArgumentError(
      StrCat("unknown device ", Quoted(device), "; use auto, cpu or cuda"));
}
#endif

}  // namespace quiver::nn
