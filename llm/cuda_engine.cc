// CudaEngine: a LlamaModel's weights and a paged KV cache in GPU memory,
// one stream, the kernels of cuda_kernels.cu. A step uploads the rows'
// tokens, positions and block tables, runs the layers, and copies the
// logits back. See cuda_engine.h for what it promises.
#include "llm/cuda_engine.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <type_traits>
#include <vector>

#include "common/status_macros.h"
#include "common/strings.h"
#include "llm/cuda_kernels.h"
#include "nn/cuda_check.h"

namespace quiver::llm {
namespace {

// The same for a Status that must be OK.
#define QUIVER_LLM_CHECK_OK(expr)                                                        \
  do {                                                                                   \
    const absl::Status st_ = (expr);                                                     \
    if (!st_.ok()) {                                                                     \
      std::fprintf(stderr, "%s at %s:%d\n", st_.ToString().c_str(), __FILE__, __LINE__); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

struct DeviceFree {
  void operator()(void* p) const { cudaFree(p); }
};
struct HostFree {
  void operator()(void* p) const { cudaFreeHost(p); }
};
struct StreamDestroy {
  void operator()(cudaStream_t s) const { cudaStreamDestroy(s); }
};
using DeviceMemory = std::unique_ptr<void, DeviceFree>;
using PinnedMemory = std::unique_ptr<void, HostFree>;
using Stream = std::unique_ptr<std::remove_pointer_t<cudaStream_t>, StreamDestroy>;

absl::Status OutOfMemory(size_t bytes) {
  return nn::CudaOutOfMemory(bytes, "use a smaller model, KV cache or step");
}

// Device memory that grows to the largest step seen.
template <typename T>
class Scratch {
 public:
  T* get() const { return static_cast<T*>(mem_.get()); }
  absl::Status Reserve(size_t n) {
    if (n <= capacity_) return absl::OkStatus();
    mem_.reset();
    capacity_ = 0;
    void* p = nullptr;
    const size_t bytes = std::max<size_t>(n, 1) * sizeof(T);
    if (cudaMalloc(&p, bytes) != cudaSuccess) return OutOfMemory(bytes);
    mem_.reset(p);
    capacity_ = n;
    return absl::OkStatus();
  }

 private:
  DeviceMemory mem_;
  size_t capacity_ = 0;
};

// A weight tensor on the GPU: one part, or (a mixed tensor, e.g. Q4_K_M's
// Q6_K layers among Q4_K ones) a part per stored type, each starting at a
// layer boundary.
struct DeviceTensor {
  std::vector<std::pair<size_t, cuda::Weight>> parts;  // (first value, weight), in order.
  // The part holding value `offset` and the offset within it.
  std::pair<cuda::Weight, size_t> At(size_t offset) const {
    size_t i = parts.size() - 1;
    while (i > 0 && parts[i].first > offset) --i;
    return {parts[i].second, offset - parts[i].first};
  }
};

class CudaEngine : public DecodeEngine {
 public:
  CudaEngine(const LlamaModel* model, size_t kv_blocks, int block_size)
      : model_(model), pool_(kv_blocks, block_size) {}

  absl::Status Init(size_t kv_blocks, int block_size, int max_step_rows) {
    cudaStream_t s = nullptr;
    if (cudaStreamCreate(&s) != cudaSuccess)
      return absl::UnavailableError("cannot create a CUDA stream");
    stream_.reset(s);
    const LlamaConfig& c = model_->config();
    if (c.head_size() > 256) {
      return absl::UnimplementedError(
          StrCat("the CUDA engine handles head sizes up to 256; this model's is ", c.head_size()));
    }
    const LlamaModel::Stored st = model_->stored();
    // The embedding and classifier are one matrix each: kept in one part.
    ASSIGN_OR_RETURN(embedding_, UploadWeight(*st.embedding));
    ASSIGN_OR_RETURN(wq_, UploadTensor(*st.wq));
    ASSIGN_OR_RETURN(wk_, UploadTensor(*st.wk));
    ASSIGN_OR_RETURN(wv_, UploadTensor(*st.wv));
    ASSIGN_OR_RETURN(wo_, UploadTensor(*st.wo));
    ASSIGN_OR_RETURN(w1_, UploadTensor(*st.w1));
    ASSIGN_OR_RETURN(w2_, UploadTensor(*st.w2));
    ASSIGN_OR_RETURN(w3_, UploadTensor(*st.w3));
    if (st.classifier->SharesData(*st.embedding)) {
      classifier_ = embedding_;
    } else {
      ASSIGN_OR_RETURN(classifier_, UploadWeight(*st.classifier));
    }
    ASSIGN_OR_RETURN(rms_att_, UploadFloats(*st.rms_att));
    ASSIGN_OR_RETURN(rms_ffn_, UploadFloats(*st.rms_ffn));
    ASSIGN_OR_RETURN(rms_final_, UploadFloats(*st.rms_final));
    ASSIGN_OR_RETURN(inv_freq_, UploadFloats(model_->rope_inv_freq()));
    if (model_->has_attention_bias()) {
      ASSIGN_OR_RETURN(bq_, UploadFloats(*st.bq));
      ASSIGN_OR_RETURN(bk_, UploadFloats(*st.bk));
      ASSIGN_OR_RETURN(bv_, UploadFloats(*st.bv));
    }
    const size_t kv_values = kv_blocks * c.n_layers * static_cast<size_t>(block_size) * c.kv_dim();
    ASSIGN_OR_RETURN(void* k, Alloc(kv_values * sizeof(float)));
    ASSIGN_OR_RETURN(void* v, Alloc(kv_values * sizeof(float)));
    kv_ = {static_cast<float*>(k), static_cast<float*>(v), c.n_layers, block_size, c.kv_dim()};
    if (max_step_rows > 0) {
      // Per row: token, position, table start, wanted index, and a block
      // table as long as the context allows.
      const size_t ints = static_cast<size_t>(max_step_rows) * (4 + c.seq_len / block_size + 1);
      RETURN_IF_ERROR(ReserveStep(max_step_rows, max_step_rows, ints));
    }
    if (cudaStreamSynchronize(stream_.get()) != cudaSuccess) {
      return absl::InternalError("copying the model to the GPU failed");
    }
    return absl::OkStatus();
  }

  std::string_view device() const override { return "cuda"; }
  const LlamaConfig& config() const override { return model_->config(); }
  KvBlockPool* pool() override { return &pool_; }

  std::vector<std::vector<float>> Forward(const std::vector<StepRow>& rows) override {
    const LlamaConfig& c = model_->config();
    const int n = static_cast<int>(rows.size());
    if (n == 0) return {};
    const int dim = c.dim, kv_dim = c.kv_dim(), hidden = c.hidden_dim, bs = pool_.block_size();
    cudaStream_t s = stream_.get();
    // Integers of the step: tokens [n], positions [n], table starts [n],
    // the rows whose logits are wanted [n_wanted], then each row's block
    // table (the blocks its positions 0..pos use).
    std::vector<int32_t> wanted;
    for (int r = 0; r < n; ++r) {
      if (rows[r].logits) wanted.push_back(r);
    }
    const int n_wanted = static_cast<int>(wanted.size());
    const size_t head_ints = 3 * static_cast<size_t>(n) + wanted.size();
    ints_.assign(head_ints, 0);
    std::copy(wanted.begin(), wanted.end(), ints_.begin() + 3 * n);
    for (int r = 0; r < n; ++r) {
      ints_[r] = rows[r].token;
      ints_[n + r] = rows[r].pos;
      ints_[2 * n + r] = static_cast<int32_t>(ints_.size() - head_ints);
      const int used = rows[r].pos / bs + 1;
      ints_.insert(ints_.end(), rows[r].blocks->begin(), rows[r].blocks->begin() + used);
    }
    // Within what Init reserved for max_step_rows, nothing is allocated; a
    // larger step grows the buffers, with no way to report failure but abort.
    QUIVER_LLM_CHECK_OK(ReserveStep(n, n_wanted, ints_.size()));
    QUIVER_CUDA_CHECK(cudaMemcpyAsync(d_ints_.get(), ints_.data(), ints_.size() * sizeof(int32_t),
                                      cudaMemcpyHostToDevice, s));
    const int32_t* tokens = d_ints_.get();
    const int32_t* pos = tokens + n;
    const int32_t* table_start = tokens + 2 * n;
    const int32_t* wanted_rows = tokens + 3 * n;
    const int32_t* tables = tokens + head_ints;
    float *x = x_.get(), *xb = xb_.get(), *q = q_.get(), *att = att_.get(), *k = k_.get(),
          *v = v_.get(), *hb = hb_.get(), *hb2 = hb2_.get();

    cuda::Embed(embedding_, tokens, n, dim, x, s);
    for (int l = 0; l < c.n_layers; ++l) {
      const size_t ld = static_cast<size_t>(l);
      cuda::RmsNorm(x, rms_att_ + ld * dim, n, dim, c.norm_eps, xb, s);
      const cuda::MatVecJob qkv[] = {
          Job(wq_, ld * dim * dim, dim, bq_ ? bq_ + ld * dim : nullptr, q, false),
          Job(wk_, ld * dim * kv_dim, kv_dim, bk_ ? bk_ + ld * kv_dim : nullptr, k, false),
          Job(wv_, ld * dim * kv_dim, kv_dim, bv_ ? bv_ + ld * kv_dim : nullptr, v, false)};
      cuda::MatVec(qkv, 3, xb, n, dim, s);
      cuda::Rope(q, k, pos, inv_freq_, n, dim, kv_dim, c.head_size(), s);
      cuda::StoreKv(kv_, l, k, v, pos, tables, table_start, n, s);
      cuda::Attention(kv_, l, q, pos, tables, table_start, n, c.n_heads, c.n_heads / c.n_kv_heads,
                      c.head_size(), att, s);
      const cuda::MatVecJob out[] = {Job(wo_, ld * dim * dim, dim, nullptr, x, true)};
      cuda::MatVec(out, 1, att, n, dim, s);
      cuda::RmsNorm(x, rms_ffn_ + ld * dim, n, dim, c.norm_eps, xb, s);
      const cuda::MatVecJob gate_up[] = {Job(w1_, ld * dim * hidden, hidden, nullptr, hb, false),
                                         Job(w3_, ld * dim * hidden, hidden, nullptr, hb2, false)};
      cuda::MatVec(gate_up, 2, xb, n, dim, s);
      cuda::SwiGlu(hb, hb2, static_cast<size_t>(n) * hidden, s);
      const cuda::MatVecJob down[] = {Job(w2_, ld * dim * hidden, dim, nullptr, x, true)};
      cuda::MatVec(down, 1, hb, n, hidden, s);
    }
    // The classifier only for rows whose logits are wanted, gathered into xb.
    const cuda::Weight hidden_states{cuda::WType::kF32, x, nullptr};
    cuda::Embed(hidden_states, wanted_rows, n_wanted, dim, xb, s);
    cuda::RmsNorm(xb, rms_final_, n_wanted, dim, c.norm_eps, xb, s);
    const cuda::MatVecJob head[] = {{classifier_, 0, c.vocab_size, nullptr, logits_.get(), false}};
    cuda::MatVec(head, 1, xb, n_wanted, dim, s);
    QUIVER_CUDA_CHECK(cudaGetLastError());
    const size_t total = static_cast<size_t>(n_wanted) * c.vocab_size;
    float* host = static_cast<float*>(host_logits_.get());
    if (total > 0) {
      QUIVER_CUDA_CHECK(
          cudaMemcpyAsync(host, logits_.get(), total * sizeof(float), cudaMemcpyDeviceToHost, s));
    }
    QUIVER_CUDA_CHECK(cudaStreamSynchronize(s));
    std::vector<std::vector<float>> result(n);
    for (int i = 0; i < n_wanted; ++i) {
      result[wanted[i]].assign(host + static_cast<size_t>(i) * c.vocab_size,
                               host + static_cast<size_t>(i + 1) * c.vocab_size);
    }
    return result;
  }

 private:
  // The step buffers for `rows` rows, `wanted` of them with logits, and
  // `ints` integers of tokens, positions and block tables.
  absl::Status ReserveStep(int rows, int wanted, size_t ints) {
    const LlamaConfig& c = model_->config();
    const size_t n = static_cast<size_t>(rows);
    RETURN_IF_ERROR(d_ints_.Reserve(ints));
    for (Scratch<float>* b : {&x_, &xb_, &q_, &att_}) RETURN_IF_ERROR(b->Reserve(n * c.dim));
    for (Scratch<float>* b : {&k_, &v_}) RETURN_IF_ERROR(b->Reserve(n * c.kv_dim()));
    for (Scratch<float>* b : {&hb_, &hb2_}) RETURN_IF_ERROR(b->Reserve(n * c.hidden_dim));
    const size_t logits = static_cast<size_t>(std::max(wanted, 1)) * c.vocab_size;
    RETURN_IF_ERROR(logits_.Reserve(logits));
    if (logits > host_capacity_) {
      host_logits_.reset();
      host_capacity_ = 0;
      void* p = nullptr;
      if (cudaMallocHost(&p, logits * sizeof(float)) != cudaSuccess) {
        cudaGetLastError();
        return absl::ResourceExhaustedError(StrCat("pinned host memory: cannot allocate ",
                                                   (logits * sizeof(float)) >> 20,
                                                   " MiB for logits"));
      }
      host_logits_.reset(p);
      host_capacity_ = logits;
    }
    return absl::OkStatus();
  }

  absl::StatusOr<void*> Alloc(size_t bytes) {
    void* p = nullptr;
    if (cudaMalloc(&p, std::max<size_t>(bytes, 1)) != cudaSuccess) return OutOfMemory(bytes);
    memory_.emplace_back(p);
    return p;
  }

  absl::StatusOr<const void*> Upload(const void* host, size_t bytes) {
    ASSIGN_OR_RETURN(void* p, Alloc(bytes));
    // Synchronous: the host data may be a temporary.
    if (cudaMemcpy(p, host, bytes, cudaMemcpyHostToDevice) != cudaSuccess) {
      return absl::InternalError("copying weights to the GPU failed");
    }
    return p;
  }

  absl::StatusOr<const float*> UploadFloats(const std::vector<float>& values) {
    ASSIGN_OR_RETURN(const void* p, Upload(values.data(), values.size() * sizeof(float)));
    return static_cast<const float*>(p);
  }

  static cuda::MatVecJob Job(const DeviceTensor& t, size_t offset, int out, const float* bias,
                             float* y, bool accumulate) {
    const auto [w, at] = t.At(offset);
    return {w, at, out, bias, y, accumulate};
  }

  // Each part of a mixed tensor as stored; any other tensor as one part.
  absl::StatusOr<DeviceTensor> UploadTensor(const WeightTensor& w) {
    DeviceTensor t;
    if (w.type() == WeightTensor::Type::kMixed) {
      for (const auto& [start, part] : w.parts()) {
        ASSIGN_OR_RETURN(cuda::Weight dw, UploadWeight(part));
        t.parts.emplace_back(start, dw);
      }
    } else {
      ASSIGN_OR_RETURN(cuda::Weight dw, UploadWeight(w));
      t.parts.emplace_back(0, dw);
    }
    return t;
  }

  // The tensor as stored (the kernels read every type but kMixed, which
  // becomes its exact float32 values here).
  absl::StatusOr<cuda::Weight> UploadWeight(const WeightTensor& w) {
    const WeightTensor::Raw raw = w.raw();
    cuda::Weight out;
    switch (w.type()) {
      case WeightTensor::Type::kF32: {
        out.type = cuda::WType::kF32;
        ASSIGN_OR_RETURN(out.data, Upload(raw.f32, w.size() * sizeof(float)));
        return out;
      }
      case WeightTensor::Type::kF16:
      case WeightTensor::Type::kBF16: {
        out.type = w.type() == WeightTensor::Type::kF16 ? cuda::WType::kF16 : cuda::WType::kBF16;
        ASSIGN_OR_RETURN(out.data, Upload(raw.halves, w.size() * sizeof(uint16_t)));
        return out;
      }
      case WeightTensor::Type::kQ8_0:
      case WeightTensor::Type::kQ4_0: {
        const bool q8 = w.type() == WeightTensor::Type::kQ8_0;
        out.type = q8 ? cuda::WType::kQ8_0 : cuda::WType::kQ4_0;
        ASSIGN_OR_RETURN(out.data, q8 ? Upload(raw.q8, w.size()) : Upload(raw.q4, w.size() / 2));
        ASSIGN_OR_RETURN(const void* scales, Upload(raw.scales, w.size() / 32 * sizeof(float)));
        out.scales = static_cast<const float*>(scales);
        return out;
      }
      case WeightTensor::Type::kQ4_K:
      case WeightTensor::Type::kQ5_K:
      case WeightTensor::Type::kQ6_K: {
        out.type = w.type() == WeightTensor::Type::kQ4_K   ? cuda::WType::kQ4_K
                   : w.type() == WeightTensor::Type::kQ5_K ? cuda::WType::kQ5_K
                                                           : cuda::WType::kQ6_K;
        ASSIGN_OR_RETURN(out.data,
                         Upload(raw.q4, w.size() / 256 * WeightTensor::KBlockBytes(w.type())));
        return out;
      }
      case WeightTensor::Type::kMixed:
        break;
    }
    std::vector<float> values(w.size());
    w.Read(0, w.size(), values.data());
    out.type = cuda::WType::kF32;
    ASSIGN_OR_RETURN(out.data, Upload(values.data(), values.size() * sizeof(float)));
    return out;
  }

  const LlamaModel* model_;
  KvBlockPool pool_;
  Stream stream_;
  std::vector<DeviceMemory> memory_;  // Weights and the KV cache.
  // Constant after Init: device copies of the model.
  cuda::Weight embedding_, classifier_;
  DeviceTensor wq_, wk_, wv_, wo_, w1_, w2_, w3_;
  const float *rms_att_ = nullptr, *rms_ffn_ = nullptr, *rms_final_ = nullptr, *inv_freq_ = nullptr;
  const float *bq_ = nullptr, *bk_ = nullptr, *bv_ = nullptr;
  cuda::KvView kv_;
  // Per-step buffers, grown to the largest step.
  std::vector<int32_t> ints_;
  Scratch<int32_t> d_ints_;
  Scratch<float> x_, xb_, q_, att_, k_, v_, hb_, hb2_,
      logits_;  // [rows][dim, kv_dim, hidden or vocab].
  PinnedMemory host_logits_;
  size_t host_capacity_ = 0;
};

}  // namespace

bool CudaDeviceVisible() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

absl::StatusOr<double> CudaMemoryBandwidth() {
  if (!CudaDeviceVisible()) return absl::UnavailableError("no CUDA GPU is visible to this process");
  constexpr size_t kBytes = size_t{1} << 30;
  void *a = nullptr, *b = nullptr;
  if (cudaMalloc(&a, kBytes) != cudaSuccess)
    return absl::ResourceExhaustedError("no GPU memory for the probe");
  DeviceMemory src(a);
  if (cudaMalloc(&b, kBytes) != cudaSuccess)
    return absl::ResourceExhaustedError("no GPU memory for the probe");
  DeviceMemory dst(b);
  cudaEvent_t start, stop;
  QUIVER_CUDA_CHECK(cudaEventCreate(&start));
  QUIVER_CUDA_CHECK(cudaEventCreate(&stop));
  double best = 0;
  for (int i = 0; i < 5; ++i) {
    QUIVER_CUDA_CHECK(cudaEventRecord(start));
    QUIVER_CUDA_CHECK(cudaMemcpy(b, a, kBytes, cudaMemcpyDeviceToDevice));
    QUIVER_CUDA_CHECK(cudaEventRecord(stop));
    QUIVER_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    QUIVER_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    if (i > 0) best = std::max(best, 2.0 * kBytes / (ms * 1e-3) / 1e9);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return best;
}

absl::StatusOr<std::unique_ptr<DecodeEngine>> NewCudaEngine(const LlamaModel* model,
                                                            size_t kv_blocks, int block_size,
                                                            int max_step_rows) {
  if (!CudaDeviceVisible()) {
    return absl::UnavailableError("--device=cuda: no CUDA GPU is visible to this process");
  }
  auto engine = std::make_unique<CudaEngine>(model, kv_blocks, block_size);
  RETURN_IF_ERROR(engine->Init(kv_blocks, block_size, max_step_rows));
  return std::unique_ptr<DecodeEngine>(std::move(engine));
}

}  // namespace quiver::llm
