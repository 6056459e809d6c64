#include "llm/model.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include "common/status_macros.h"
#include "common/strings.h"
#include "llm/internal/int8_dots.h"
#include "llm/internal/row_kernels.h"
#include "llm/internal/step_team.h"

namespace quiver::llm {

using namespace internal;  // NOLINT: the row kernels.

namespace {

// Reads `n` floats; false when the stream ends first.
bool ReadFloats(std::istream& in, size_t n, std::vector<float>* out) {
  out->resize(n);
  in.read(reinterpret_cast<char*>(out->data()), static_cast<std::streamsize>(n * sizeof(float)));
  return static_cast<size_t>(in.gcount()) == n * sizeof(float);
}

void RmsNorm(float* o, const float* x, const float* weight, int size, float eps) {
  float ss = 0.0f;
  for (int j = 0; j < size; ++j) ss += x[j] * x[j];
  ss /= size;
  ss += eps;
  ss = 1.0f / std::sqrt(ss);
  for (int j = 0; j < size; ++j) o[j] = weight[j] * (ss * x[j]);
}

}  // namespace

absl::StatusOr<std::unique_ptr<LlamaModel>> LlamaModel::LoadLlama2c(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(StrCat("cannot read ", path));
  int32_t h[7];
  in.read(reinterpret_cast<char*>(h), sizeof h);
  if (in.gcount() != sizeof h) return absl::DataLossError(StrCat(path, ": truncated header"));
  LlamaConfig c;
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.shared_classifier = h[5] > 0;
  c.vocab_size = std::abs(h[5]);
  c.seq_len = h[6];
  if (c.dim <= 0 || c.hidden_dim <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 ||
      c.vocab_size <= 0 || c.seq_len <= 0 || c.dim % c.n_heads != 0 ||
      c.n_heads % c.n_kv_heads != 0 || c.head_size() % 2 != 0 || c.dim > (1 << 16) ||
      c.hidden_dim > (1 << 18) || c.n_layers > 1024 || c.vocab_size > (1 << 22) ||
      c.seq_len > (1 << 20)) {
    return absl::InvalidArgumentError(StrCat(path, ": not a llama2.c checkpoint (header dim ",
                                             c.dim, ", layers ", c.n_layers, ", heads ", c.n_heads,
                                             "/", c.n_kv_heads, ", vocab ", c.vocab_size, ")"));
  }
  const size_t head = c.head_size();
  LlamaWeights<std::vector<float>> w;
  const LlamaWeights<size_t> sizes = LlamaWeightSizes(c);
  // The size the header implies, against the file's, before allocating it
  // (a damaged header must not allocate gigabytes a short file cannot fill).
  size_t floats = static_cast<size_t>(c.seq_len) * head;  // The two freq_cis tables.
  for (size_t i = 0; i < 11; ++i) floats += sizes.group(i);
  if (!c.shared_classifier) floats += sizes.classifier;
  in.seekg(0, std::ios::end);
  const auto file_bytes = static_cast<size_t>(in.tellg());
  in.seekg(sizeof h, std::ios::beg);
  if (!in || file_bytes < sizeof h + floats * sizeof(float)) {
    return absl::DataLossError(StrCat(path, ": truncated weights (the header implies ",
                                      sizeof h + floats * sizeof(float), " bytes, the file has ",
                                      file_bytes, ")"));
  }
  // File order: the groups from the embedding to the final norm.
  bool ok = true;
  for (size_t i = 0; i < 11 && ok; ++i) ok = ReadFloats(in, sizes.group(i), &w.group(i));
  std::vector<float> skip;  // The legacy freq_cis tables (RoPE is computed).
  ok = ok && ReadFloats(in, c.seq_len * head / 2, &skip) &&
       ReadFloats(in, c.seq_len * head / 2, &skip);
  if (ok && !c.shared_classifier) ok = ReadFloats(in, sizes.classifier, &w.classifier);
  if (!ok) return absl::DataLossError(StrCat(path, ": truncated weights"));
  auto model = FromWeights(c, std::move(w));  // A tied classifier stays empty: shared.
  if (!model.ok())
    return absl::Status(model.status().code(), StrCat(path, ": ", model.status().message()));
  return model;
}

void LlamaModel::InitRope() {
  const LlamaConfig& c = config_;
  const int hs = c.head_size();
  inv_freq_.resize(hs / 2);
  const RopeScaling& s = c.rope_scaling;
  for (int p = 0; p < hs / 2; ++p) {
    // As llama2.c's run.c computes it (so its references still match).
    float f = 1.0f / std::pow(c.rope_theta, (2 * p) / static_cast<float>(hs));
    if (s.type == RopeScaling::Type::kLinear) {
      f /= s.factor;
    } else if (s.type == RopeScaling::Type::kLlama3) {
      // Hugging Face's llama3 rule: long wavelengths slow down by `factor`,
      // short ones stay, the band between blends smoothly.
      const float low_wavelen = s.original_context / s.low_freq_factor;
      const float high_wavelen = s.original_context / s.high_freq_factor;
      const float wavelen = 2.0f * static_cast<float>(M_PI) / f;
      if (wavelen > low_wavelen) {
        f /= s.factor;
      } else if (wavelen >= high_wavelen) {
        const float smooth = (s.original_context / wavelen - s.low_freq_factor) /
                             (s.high_freq_factor - s.low_freq_factor);
        f = (1.0f - smooth) * f / s.factor + smooth * f;
      }
    }
    if (static_cast<size_t>(p) < c.rope_freq_factors.size()) f /= c.rope_freq_factors[p];
    inv_freq_[p] = f;
  }
}

WeightTensor RotateHalfToInterleaved(const WeightTensor& w, int layers, int heads, int head_size,
                                     size_t cols) {
  const size_t rows = static_cast<size_t>(heads) * head_size;  // Per layer.
  std::vector<size_t> order(rows * layers);
  const int half = head_size / 2;
  for (int l = 0; l < layers; ++l) {
    for (int h = 0; h < heads; ++h) {
      for (int j = 0; j < half; ++j) {
        for (int i = 0; i < 2; ++i) {
          order[l * rows + static_cast<size_t>(h) * head_size + 2 * j + i] =
              l * rows + static_cast<size_t>(h) * head_size + i * half + j;
        }
      }
    }
  }
  return w.ReorderRows(order, cols);
}
LlamaWeights<size_t> LlamaWeightSizes(const LlamaConfig& c) {
  const size_t dim = c.dim, hid = c.hidden_dim, layers = c.n_layers, kv = c.kv_dim();
  return {c.vocab_size * dim,
          layers * dim,
          layers * dim * dim,
          layers * dim * kv,
          layers * dim * kv,
          layers * dim * dim,
          layers * dim,
          layers * dim * hid,
          layers * dim * hid,
          layers * dim * hid,
          dim,
          c.vocab_size * dim,
          layers * dim,
          layers * kv,
          layers * kv};
}

absl::StatusOr<std::unique_ptr<LlamaModel>> LlamaModel::FromWeights(
    const LlamaConfig& c, LlamaWeights<std::vector<float>> w) {
  LlamaWeights<WeightTensor> t;
  for (size_t i = 0; i < w.kGroups; ++i) t.group(i) = WeightTensor::F32(std::move(w.group(i)));
  return FromTensors(c, std::move(t));
}

absl::StatusOr<std::unique_ptr<LlamaModel>> LlamaModel::FromTensors(const LlamaConfig& c,
                                                                    LlamaWeights<WeightTensor> w) {
  if (c.dim <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 || c.dim % c.n_heads != 0 ||
      c.n_heads % c.n_kv_heads != 0 || c.head_size() % 2 != 0 || c.seq_len <= 0 ||
      c.vocab_size <= 0 || c.n_layers <= 0 || c.hidden_dim <= 0) {
    return absl::InvalidArgumentError("impossible Llama config");
  }
  const LlamaWeights<size_t> want = LlamaWeightSizes(c);
  if (c.shared_classifier && w.classifier.size() == 0)
    w.classifier = w.embedding;  // Shares the data.
  const bool biases = w.bq.size() > 0 || w.bk.size() > 0 || w.bv.size() > 0;
  for (size_t i = 0; i < w.kGroups; ++i) {
    const bool bias_group = &w.group(i) == &w.bq || &w.group(i) == &w.bk || &w.group(i) == &w.bv;
    if (bias_group && !biases) continue;
    if (w.group(i).size() != want.group(i)) {
      return absl::InvalidArgumentError(StrCat(w.kNames[i], " has ", w.group(i).size(),
                                               " values; the config needs ", want.group(i)));
    }
  }
  auto floats = [](const WeightTensor& t) {
    std::vector<float> out(t.size());
    t.Read(0, t.size(), out.data());
    return out;
  };
  auto m = std::unique_ptr<LlamaModel>(new LlamaModel());
  m->config_ = c;
  m->embedding_ = w.embedding;
  m->wq_ = w.wq;
  m->wk_ = w.wk;
  m->wv_ = w.wv;
  m->wo_ = w.wo;
  m->w1_ = w.w1;
  m->w2_ = w.w2;
  m->w3_ = w.w3;
  m->classifier_ = w.classifier;
  m->rms_att_ = floats(w.rms_att);
  m->rms_ffn_ = floats(w.rms_ffn);
  m->rms_final_ = floats(w.rms_final);
  if (biases) {
    m->bq_ = floats(w.bq);
    m->bk_ = floats(w.bk);
    m->bv_ = floats(w.bv);
  }
  m->InitRope();
  return m;
}

bool LlamaModel::is_float32() const {
  for (const WeightTensor* t :
       {&embedding_, &wq_, &wk_, &wv_, &wo_, &w1_, &w2_, &w3_, &classifier_}) {
    if (t->type() != WeightTensor::Type::kF32) return false;
  }
  return true;
}

size_t LlamaModel::bytes_per_step() const {
  size_t n = 0;
  for (const WeightTensor* t : {&wq_, &wk_, &wv_, &wo_, &w1_, &w2_, &w3_, &classifier_})
    n += t->bytes();
  return n + 4 * (rms_att_.size() + rms_ffn_.size() + rms_final_.size() + bq_.size() + bk_.size() +
                  bv_.size());
}

size_t LlamaModel::weight_bytes() const {
  // What a step reads, plus the embedding table unless it is the classifier.
  return bytes_per_step() + (classifier_.SharesData(embedding_) ? 0 : embedding_.bytes());
}

namespace {

// out = W[d][n] X[rows][n] for each product of a group sharing X: each
// weight row is read from memory once for all rows. Rows before
// `prompt_from` (generated tokens, short prompts): blocks of four weight
// rows x four sequences (Dot4x4); leftover sequences take Dot4 (one row x
// four) or Dot, and one to three sequences take four weight rows at a time
// into each (DotRows4, or a quantized type's fused kernels); every dot
// product is summed in Dot's lane order. Rows from `prompt_from` on (long prompts): panels of 32
// weight rows, transposed (and converted to float32) once per step, times
// all of them (PanelProduct). Either way a row's result never depends on
// the batch. The products of a group (q, k and v; gate and up) share one
// parallel loop.
struct MatMul {
  float* out;
  const WeightTensor* w;
  size_t offset;  // Of the first row's first value in w.
  int d;
};
void PromptMatMul(std::initializer_list<MatMul> group, const float* x, int n, int first_row,
                  int rows) {
  std::vector<std::pair<const MatMul*, int>> panels;  // (product, first weight row)
  for (const MatMul& m : group) {
    for (int i0 = 0; i0 < m.d; i0 += kPanelWidth) panels.emplace_back(&m, i0);
  }
  const int count = static_cast<int>(panels.size()), m_rows = rows - first_row;
  const int64_t work = static_cast<int64_t>(count) * kPanelWidth * n * m_rows;
  auto body_pi = [&](int pi) __attribute__((always_inline)) {
    const MatMul& m = *panels[pi].first;
    const int i0 = panels[pi].second, width = std::min(kPanelWidth, m.d - i0);
    thread_local AlignedFloats panel, converted;
    panel.resize(static_cast<size_t>(kPanelWidth) * n);
    const float* src[kPanelWidth];
    const size_t first = m.offset + static_cast<size_t>(i0) * n;
    if (const float* f = m.w->f32_data(); f != nullptr) {
      for (int c = 0; c < width; ++c) src[c] = f + first + static_cast<size_t>(c) * n;
    } else {
      converted.resize(static_cast<size_t>(width) * n);
      m.w->Read(first, static_cast<size_t>(width) * n, converted.data());
      for (int c = 0; c < width; ++c) src[c] = converted.data() + static_cast<size_t>(c) * n;
    }
    PackPanel(src, width, n, panel.data());
    PanelProduct(panel.data(), n, x + static_cast<size_t>(first_row) * n, n, m_rows,
                 m.out + static_cast<size_t>(first_row) * m.d + i0, m.d, width);
  };
  ForEachIndex<true>(work > (1 << 18), count, body_pi);
}

void BatchMatMul(std::initializer_list<MatMul> group, const float* x, int n, int all_rows,
                 int prompt_from, bool int8_dots) {
  if (prompt_from < all_rows) PromptMatMul(group, x, n, prompt_from, all_rows);
  const int rows = prompt_from;
  if (rows == 0) return;
  // Integer dots (LlamaModel::SetInt8Dots) for Q8_0 / Q4_0 weights: each
  // row's activation quantized once for the whole group.
  bool any_int8 = false;
  for (const MatMul& m : group) any_int8 |= int8_dots && m.w->has_int8_dots() && n % 32 == 0;
  // This thread's buffers, named by references: the team's threads must
  // read these, not their own (empty) thread_local copies.
  thread_local std::vector<Q8Activation> thread_activations;
  thread_local std::vector<const Q8Activation*> thread_acts;
  std::vector<Q8Activation>& activations = thread_activations;
  std::vector<const Q8Activation*>& acts = thread_acts;
  if (any_int8) {
    if (activations.size() < static_cast<size_t>(rows)) activations.resize(rows);
    acts.resize(rows);
    for (int r = 0; r < rows; ++r) {
      QuantizeActivation(x + static_cast<size_t>(r) * n, n, &activations[r]);
      acts[r] = &activations[r];
    }
  }
  std::vector<std::pair<const MatMul*, int>> quads;  // (product, first weight row)
  int64_t work = 0;
  for (const MatMul& m : group) {
    for (int i0 = 0; i0 < m.d; i0 += 4) quads.emplace_back(&m, i0);
    work += static_cast<int64_t>(n) * m.d * rows;
  }
  const int count = static_cast<int>(quads.size());
  auto body_qi = [&](int qi) __attribute__((always_inline)) {
    const MatMul& m = *quads[qi].first;
    const int i0 = quads[qi].second, d = m.d;
    float* out = m.out;
    const int block_rows = std::min(4, d - i0);
    const size_t first = m.offset + static_cast<size_t>(i0) * n;
    if (any_int8 && m.w->has_int8_dots()) {
      for (int a0 = 0; a0 < rows; a0 += 4) {
        const int count = std::min(4, rows - a0);
        float o[16];
        m.w->Int8DotRows(first, n, block_rows, acts.data() + a0, count, o);
        for (int k = 0; k < block_rows; ++k) {
          for (int a = 0; a < count; ++a) {
            out[static_cast<size_t>(a0 + a) * d + i0 + k] = o[k * count + a];
          }
        }
      }
      return;
    }
    if (rows < 4 && (block_rows == 4 || m.w->type() != WeightTensor::Type::kF32)) {
      // Few sequences: four weight rows at a time into each sequence's dot
      // products (quantized rows read straight into them; float32 rows'
      // lane sums added four rows at once: stories260K's 64-value rows
      // spent most of each dot there).
      if (block_rows == 4) {
        for (int rr = 0; rr < rows; ++rr) {
          float o[4];
          m.w->DotRows4(first, x + static_cast<size_t>(rr) * n, n, o);
          for (int k = 0; k < 4; ++k) out[static_cast<size_t>(rr) * d + i0 + k] = o[k];
        }
        return;
      }
      for (int i = i0; i < i0 + block_rows; ++i) {
        for (int rr = 0; rr < rows; ++rr) {
          out[static_cast<size_t>(rr) * d + i] = m.w->DotRow(
              first + static_cast<size_t>(i - i0) * n, x + static_cast<size_t>(rr) * n, n);
        }
      }
      return;
    }
    // The block's (up to) four rows as float32: in place, or converted from
    // F16 / Q8_0 into this thread's buffer.
    const float* wq;
    if (const float* f = m.w->f32_data(); f != nullptr) {
      wq = f + first;
    } else {
      thread_local AlignedFloats rows_f32;
      rows_f32.resize(4 * static_cast<size_t>(n));
      m.w->Read(first, static_cast<size_t>(block_rows) * n, rows_f32.data());
      wq = rows_f32.data();
    }
    // The float32 rows the next block needs, prefetched a share per call
    // (four rows: past a matrix's last rows, a prefetch is only wasted).
    const float* next = nullptr;
    size_t next_lines = 0;
    if (qi + 1 < count) {
      const MatMul& nm = *quads[qi + 1].first;
      if (const float* f = nm.w->f32_data(); f != nullptr) {
        next = f + nm.offset + static_cast<size_t>(quads[qi + 1].second) * n;
        next_lines = 4 * static_cast<size_t>((n + 15) / 16);
      }
    }
    int r = 0;
    if (block_rows == 4) {
      const size_t calls = rows / 4, share = (next_lines + calls - 1) / std::max<size_t>(1, calls);
      for (; r + 4 <= rows; r += 4) {
        const float* xs[4];
        for (int k = 0; k < 4; ++k) xs[k] = x + static_cast<size_t>(r + k) * n;
        float o[16];
        const size_t from = std::min(next_lines, share * (r / 4));
        Dot4x4(wq, n, xs, o, next, from, std::min(next_lines, from + share));
        for (int k = 0; k < 4; ++k) {
          for (int s = 0; s < 4; ++s) out[static_cast<size_t>(r + s) * d + i0 + k] = o[k * 4 + s];
        }
      }
    }
    for (int i = i0; i < i0 + block_rows; ++i) {
      const float* wrow = wq + static_cast<size_t>(i - i0) * n;
      int rr = r;
      for (; rr + 4 <= rows; rr += 4) {
        float o[4];
        const float* xr = x + static_cast<size_t>(rr) * n;
        Dot4(wrow, xr, xr + n, xr + 2 * static_cast<size_t>(n), xr + 3 * static_cast<size_t>(n), n,
             o);
        for (int k = 0; k < 4; ++k) out[static_cast<size_t>(rr + k) * d + i] = o[k];
      }
      for (; rr < rows; ++rr) {
        out[static_cast<size_t>(rr) * d + i] = Dot(wrow, x + static_cast<size_t>(rr) * n, n);
      }
    }
  };
  ForEachIndex<false>(work > (1 << 18), count, body_qi);
}

}  // namespace

std::vector<std::vector<float>> LlamaModel::ForwardBatch(const std::vector<StepRow>& rows_given,
                                                         PagedKvCache* cache) const {
  // Other rows first, then long prompts' rows (BatchMatMul runs each kind
  // with its own kernel); order[i] is row i's place in rows_given.
  std::vector<size_t> order;
  for (size_t i = 0; i < rows_given.size(); ++i) {
    if (!rows_given[i].long_prompt) order.push_back(i);
  }
  const int prompt_from = static_cast<int>(order.size());
  for (size_t i = 0; i < rows_given.size(); ++i) {
    if (rows_given[i].long_prompt) order.push_back(i);
  }
  std::vector<StepRow> rows_in;
  rows_in.reserve(order.size());
  for (size_t i : order) rows_in.push_back(rows_given[i]);
  const LlamaConfig& c = config_;
  const int dim = c.dim, kv_dim = c.kv_dim(), hidden = c.hidden_dim, head_size = c.head_size();
  const int kv_mul = c.n_heads / c.n_kv_heads, rows = static_cast<int>(rows_in.size());
  const int bs = cache->block_size();
  // This thread's step buffers, grown to its largest step and reused: fresh
  // ones cost page faults and zeroing every step (a fifth of a 253-row
  // prefill).
  thread_local struct { AlignedFloats x, xb, xb2, q, k, v, hb, hb2, logits; } buffers;
  auto take = [](AlignedFloats& b, size_t n) {
    if (b.size() < n) b.resize(n);
    return std::span<float>(b.data(), n);
  };
  const size_t rows_dim = static_cast<size_t>(rows) * dim,
               rows_kv = static_cast<size_t>(rows) * kv_dim,
               rows_hidden = static_cast<size_t>(rows) * hidden;
  std::span<float> x = take(buffers.x, rows_dim), xb = take(buffers.xb, rows_dim),
                   xb2 = take(buffers.xb2, rows_dim), q = take(buffers.q, rows_dim);
  std::span<float> k = take(buffers.k, rows_kv), v = take(buffers.v, rows_kv);
  std::span<float> hb = take(buffers.hb, rows_hidden), hb2 = take(buffers.hb2, rows_hidden);
  for (int r = 0; r < rows; ++r) {
    embedding_.Read(static_cast<size_t>(rows_in[r].token) * dim, dim,
                    &x[static_cast<size_t>(r) * dim]);
  }
  // RoPE rotations per row, the same for every layer and head.
  const int pairs = head_size / 2;
  std::vector<float> rope_cos(static_cast<size_t>(rows) * pairs), rope_sin(rope_cos.size());
  for (int r = 0; r < rows; ++r) {
    for (int p = 0; p < pairs; ++p) {
      const float val = rows_in[r].pos * inv_freq_[p];
      rope_cos[static_cast<size_t>(r) * pairs + p] = std::cos(val);
      rope_sin[static_cast<size_t>(r) * pairs + p] = std::sin(val);
    }
  }
  auto value_at = [&](const StepRow& row, int layer, int t) {
    return cache->Value((*row.blocks)[t / bs], layer, t % bs);
  };
  for (int l = 0; l < c.n_layers; ++l) {
    for (int r = 0; r < rows; ++r) {
      RmsNorm(&xb[static_cast<size_t>(r) * dim], &x[static_cast<size_t>(r) * dim],
              &rms_att_[static_cast<size_t>(l) * dim], dim, c.norm_eps);
    }
    BatchMatMul({{q.data(), &wq_, static_cast<size_t>(l) * dim * dim, dim},
                 {k.data(), &wk_, static_cast<size_t>(l) * dim * kv_dim, kv_dim},
                 {v.data(), &wv_, static_cast<size_t>(l) * dim * kv_dim, kv_dim}},
                xb.data(), dim, rows, prompt_from, int8_dots_);
    for (int r = 0; r < rows; ++r) {
      const int pos = rows_in[r].pos;
      float* qr = &q[static_cast<size_t>(r) * dim];
      float* kr = &k[static_cast<size_t>(r) * kv_dim];
      if (!bq_.empty()) {
        const float* bq = &bq_[static_cast<size_t>(l) * dim];
        const float* bk = &bk_[static_cast<size_t>(l) * kv_dim];
        const float* bv = &bv_[static_cast<size_t>(l) * kv_dim];
        float* vr = &v[static_cast<size_t>(r) * kv_dim];
        for (int i = 0; i < dim; ++i) qr[i] += bq[i];
        for (int i = 0; i < kv_dim; ++i) kr[i] += bk[i];
        for (int i = 0; i < kv_dim; ++i) vr[i] += bv[i];
      }
      for (int i = 0; i < dim; i += 2) {
        const size_t p = static_cast<size_t>(r) * pairs + (i % head_size) / 2;
        const float fcr = rope_cos[p], fci = rope_sin[p];
        const int rotations = i < kv_dim ? 2 : 1;
        for (int rot = 0; rot < rotations; ++rot) {
          float* vec = rot == 0 ? qr : kr;
          const float v0 = vec[i], v1 = vec[i + 1];
          vec[i] = v0 * fcr - v1 * fci;
          vec[i + 1] = v0 * fci + v1 * fcr;
        }
      }
      cache->StoreKey((*rows_in[r].blocks)[pos / bs], l, pos % bs, kr);
      std::copy_n(&v[static_cast<size_t>(r) * kv_dim], kv_dim, value_at(rows_in[r], l, pos));
    }
    auto body_r = [&](int r) {
      const StepRow& row = rows_in[r];
      const int n_blocks = row.pos / bs + 1;
      std::vector<float> att(static_cast<size_t>(n_blocks) * bs);
      for (int h = 0; h < c.n_heads; ++h) {
        const float* qh = &q[static_cast<size_t>(r) * dim + h * head_size];
        const int kvh = (h / kv_mul) * head_size;
        for (int b = 0; b < n_blocks; ++b) {
          // Positions past row.pos in the last block hold stale keys; their
          // scores are computed and never used.
          BlockScores(qh, cache->KeyBlock((*row.blocks)[b], l) + static_cast<size_t>(kvh) * bs,
                      head_size, bs, &att[static_cast<size_t>(b) * bs]);
        }
        for (int t = 0; t <= row.pos; ++t) att[t] /= std::sqrt(static_cast<float>(head_size));
        Softmax(att.data(), row.pos + 1);
        float* out = &xb[static_cast<size_t>(r) * dim + h * head_size];
        std::fill(out, out + head_size, 0.0f);
        // Block by block: a block's values are consecutive (no block-table
        // lookup and division per position); the same sums in the same
        // order as position by position.
        for (int b = 0; b < n_blocks; ++b) {
          const float* vb = cache->Value((*row.blocks)[b], l, 0) + kvh;
          const int t0 = b * bs, t_end = std::min(row.pos + 1, t0 + bs);
          for (int t = t0; t < t_end; ++t) {
            const float* vt = vb + static_cast<size_t>(t - t0) * kv_dim;
            const float a = att[t];
            for (int i = 0; i < head_size; ++i) out[i] += a * vt[i];
          }
        }
      }
    };
    ForEachIndex<true>(rows > 1, rows, body_r);
    BatchMatMul({{xb2.data(), &wo_, static_cast<size_t>(l) * dim * dim, dim}}, xb.data(), dim, rows,
                prompt_from, int8_dots_);
    for (size_t i = 0; i < x.size(); ++i) x[i] += xb2[i];
    for (int r = 0; r < rows; ++r) {
      RmsNorm(&xb[static_cast<size_t>(r) * dim], &x[static_cast<size_t>(r) * dim],
              &rms_ffn_[static_cast<size_t>(l) * dim], dim, c.norm_eps);
    }
    BatchMatMul({{hb.data(), &w1_, static_cast<size_t>(l) * dim * hidden, hidden},
                 {hb2.data(), &w3_, static_cast<size_t>(l) * dim * hidden, hidden}},
                xb.data(), dim, rows, prompt_from, int8_dots_);
    // SwiGLU, element by element (threads split the rows' elements; each
    // value is computed as alone).
    const int64_t hb_size = static_cast<int64_t>(hb.size());
    auto body_i = [&](int64_t i) {
      float val = hb[i];
      val *= (1.0f / (1.0f + std::exp(-val)));
      hb[i] = val * hb2[i];
    };
    ForEachIndex<false>(hb_size >= 16384, hb_size, body_i);
    BatchMatMul({{xb.data(), &w2_, static_cast<size_t>(l) * dim * hidden, dim}}, hb.data(), hidden,
                rows, prompt_from, int8_dots_);
    for (size_t i = 0; i < x.size(); ++i) x[i] += xb[i];
  }
  // The classifier only for rows whose logits are wanted (a prompt's rows
  // before its last need none: with a large vocabulary that is a quarter of
  // a prefill's work), gathered into xb, still in kernel order.
  std::vector<int> wanted;
  int wanted_before_prompt = 0;
  for (int r = 0; r < rows; ++r) {
    if (!rows_in[r].logits) continue;
    std::copy_n(&x[static_cast<size_t>(r) * dim], dim, &xb[wanted.size() * dim]);
    RmsNorm(&xb[wanted.size() * dim], &xb[wanted.size() * dim], rms_final_.data(), dim, c.norm_eps);
    if (r < prompt_from) ++wanted_before_prompt;
    wanted.push_back(r);
  }
  const int n_wanted = static_cast<int>(wanted.size());
  std::span<float> logits = take(buffers.logits, static_cast<size_t>(n_wanted) * c.vocab_size);
  BatchMatMul({{logits.data(), &classifier_, 0, c.vocab_size}}, xb.data(), dim, n_wanted,
              wanted_before_prompt, int8_dots_);
  std::vector<std::vector<float>> out(rows);
  for (int i = 0; i < n_wanted; ++i) {
    out[order[wanted[i]]].assign(logits.begin() + static_cast<size_t>(i) * c.vocab_size,
                                 logits.begin() + static_cast<size_t>(i + 1) * c.vocab_size);
  }
  return out;
}

}  // namespace quiver::llm
