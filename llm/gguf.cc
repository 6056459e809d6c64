#include "llm/gguf.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <variant>

#include "common/half.h"
#include "common/status_macros.h"
#include "common/strings.h"

namespace quiver::llm {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian.
constexpr uint64_t kAlignment = 32;
constexpr int kQ8Block = 32;
// Metadata value types.
enum : uint32_t {
  kU8 = 0, kI8, kU16, kI16, kU32, kI32, kF32, kBool, kString, kArray, kU64, kI64, kF64
};
const std::string kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space.

// ---- Writing ------------------------------------------------------------------

class Writer {
 public:
  void U32(uint32_t v) { Raw(&v, 4); }
  void U64(uint64_t v) { Raw(&v, 8); }
  void F32(float v) { Raw(&v, 4); }
  void Str(std::string_view s) {
    U64(s.size());
    out_.append(s);
  }
  void Raw(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  void KvStr(std::string_view k, std::string_view v) {
    Str(k);
    U32(kString);
    Str(v);
    ++kv_count_;
  }
  void KvU32(std::string_view k, uint32_t v) {
    Str(k);
    U32(kU32);
    U32(v);
    ++kv_count_;
  }
  void KvF32(std::string_view k, float v) {
    Str(k);
    U32(kF32);
    F32(v);
    ++kv_count_;
  }
  void Pad() {
    while (out_.size() % kAlignment != 0) out_.push_back('\0');
  }
  std::string& out() { return out_; }
  uint64_t kv_count_ = 0;

 private:
  std::string out_;
};

struct OutTensor {
  std::string name;
  std::vector<uint64_t> dims;  // ne[0] first (the row length).
  GgufType type;
  std::string data;
};

OutTensor Encode(std::string name, const float* v, uint64_t rows, uint64_t cols, GgufType type) {
  OutTensor t{std::move(name), rows == 1 ? std::vector<uint64_t>{cols} : std::vector<uint64_t>{cols, rows},
              type, {}};
  if (type == GgufType::kQ8_0 && (cols % kQ8Block != 0 || rows == 1)) t.type = GgufType::kF32;
  const uint64_t n = rows * cols;
  switch (t.type) {
    case GgufType::kF32: t.data.assign(reinterpret_cast<const char*>(v), n * 4); break;
    case GgufType::kF16:
      for (uint64_t i = 0; i < n; ++i) {
        const uint16_t h = FloatToHalf(v[i]);
        t.data.append(reinterpret_cast<const char*>(&h), 2);
      }
      break;
    case GgufType::kQ8_0:
      for (uint64_t b = 0; b < n; b += kQ8Block) {
        float amax = 0;
        for (int i = 0; i < kQ8Block; ++i) amax = std::max(amax, std::fabs(v[b + i]));
        const float d = amax / 127.0f;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        const uint16_t dh = FloatToHalf(d);
        t.data.append(reinterpret_cast<const char*>(&dh), 2);
        for (int i = 0; i < kQ8Block; ++i) {
          t.data.push_back(static_cast<char>(static_cast<int8_t>(std::lround(v[b + i] * id))));
        }
      }
      break;
  }
  return t;
}

// ---- Reading ------------------------------------------------------------------

class Reader {
 public:
  Reader(const std::string& data, std::string path) : data_(data), path_(std::move(path)) {}
  bool Get(void* p, size_t n) {
    if (pos_ + n > data_.size()) return false;
    std::memcpy(p, data_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  bool U32(uint32_t* v) { return Get(v, 4); }
  bool U64(uint64_t* v) { return Get(v, 8); }
  bool Str(std::string* s) {
    uint64_t n;
    if (!U64(&n) || n > data_.size() - pos_) return false;
    s->assign(data_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  size_t pos() const { return pos_; }
  const std::string& data() const { return data_; }
  absl::Status Truncated() const { return absl::DataLossError(StrCat(path_, ": truncated or malformed GGUF")); }

 private:
  const std::string& data_;
  std::string path_;
  size_t pos_ = 0;
};

using Scalar = std::variant<uint64_t, int64_t, double, bool, std::string>;
struct Value {
  Scalar scalar;
  std::vector<Scalar> array;
  bool is_array = false;
};

bool ReadScalar(Reader& r, uint32_t type, Scalar* out) {
  switch (type) {
    case kU8: { uint8_t v; if (!r.Get(&v, 1)) return false; *out = uint64_t{v}; return true; }
    case kI8: { int8_t v; if (!r.Get(&v, 1)) return false; *out = int64_t{v}; return true; }
    case kU16: { uint16_t v; if (!r.Get(&v, 2)) return false; *out = uint64_t{v}; return true; }
    case kI16: { int16_t v; if (!r.Get(&v, 2)) return false; *out = int64_t{v}; return true; }
    case kU32: { uint32_t v; if (!r.Get(&v, 4)) return false; *out = uint64_t{v}; return true; }
    case kI32: { int32_t v; if (!r.Get(&v, 4)) return false; *out = int64_t{v}; return true; }
    case kF32: { float v; if (!r.Get(&v, 4)) return false; *out = double{v}; return true; }
    case kBool: { uint8_t v; if (!r.Get(&v, 1)) return false; *out = v != 0; return true; }
    case kString: { std::string s; if (!r.Str(&s)) return false; *out = std::move(s); return true; }
    case kU64: { uint64_t v; if (!r.Get(&v, 8)) return false; *out = v; return true; }
    case kI64: { int64_t v; if (!r.Get(&v, 8)) return false; *out = v; return true; }
    case kF64: { double v; if (!r.Get(&v, 8)) return false; *out = v; return true; }
  }
  return false;
}

double AsNumber(const Scalar& s) {
  if (auto* u = std::get_if<uint64_t>(&s)) return static_cast<double>(*u);
  if (auto* i = std::get_if<int64_t>(&s)) return static_cast<double>(*i);
  if (auto* d = std::get_if<double>(&s)) return *d;
  return std::nan("");
}

}  // namespace

absl::Status WriteGguf(const std::string& path, const LlamaModel& model,
                       const Llama2cTokenizer& tokenizer, GgufType type, const std::string& name) {
  const LlamaConfig& c = model.config();
  const LlamaModel::Weights w = model.weights();
  std::vector<OutTensor> tensors;
  const uint64_t dim = c.dim, hid = c.hidden_dim, kv = c.kv_dim();
  tensors.push_back(Encode("token_embd.weight", w.embedding->data(), c.vocab_size, dim, type));
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = StrCat("blk.", l, ".");
    tensors.push_back(Encode(p + "attn_norm.weight", &(*w.rms_att)[l * dim], 1, dim, type));
    tensors.push_back(Encode(p + "attn_q.weight", &(*w.wq)[l * dim * dim], dim, dim, type));
    tensors.push_back(Encode(p + "attn_k.weight", &(*w.wk)[l * dim * kv], kv, dim, type));
    tensors.push_back(Encode(p + "attn_v.weight", &(*w.wv)[l * dim * kv], kv, dim, type));
    tensors.push_back(Encode(p + "attn_output.weight", &(*w.wo)[l * dim * dim], dim, dim, type));
    tensors.push_back(Encode(p + "ffn_norm.weight", &(*w.rms_ffn)[l * dim], 1, dim, type));
    tensors.push_back(Encode(p + "ffn_gate.weight", &(*w.w1)[l * dim * hid], hid, dim, type));
    tensors.push_back(Encode(p + "ffn_down.weight", &(*w.w2)[l * dim * hid], dim, hid, type));
    tensors.push_back(Encode(p + "ffn_up.weight", &(*w.w3)[l * dim * hid], hid, dim, type));
  }
  tensors.push_back(Encode("output_norm.weight", w.rms_final->data(), 1, dim, type));
  if (!c.shared_classifier) {
    tensors.push_back(Encode("output.weight", w.classifier->data(), c.vocab_size, dim, type));
  }

  Writer kv_part;
  kv_part.KvStr("general.architecture", "llama");
  kv_part.KvStr("general.name", name);
  kv_part.KvU32("general.alignment", kAlignment);
  kv_part.KvU32("llama.context_length", c.seq_len);
  kv_part.KvU32("llama.embedding_length", c.dim);
  kv_part.KvU32("llama.block_count", c.n_layers);
  kv_part.KvU32("llama.feed_forward_length", c.hidden_dim);
  kv_part.KvU32("llama.attention.head_count", c.n_heads);
  kv_part.KvU32("llama.attention.head_count_kv", c.n_kv_heads);
  kv_part.KvU32("llama.rope.dimension_count", c.head_size());
  kv_part.KvF32("llama.rope.freq_base", c.rope_theta);
  kv_part.KvF32("llama.attention.layer_norm_rms_epsilon", c.norm_eps);
  kv_part.KvStr("tokenizer.ggml.model", "llama");
  {
    kv_part.Str("tokenizer.ggml.tokens");
    kv_part.U32(kArray);
    kv_part.U32(kString);
    kv_part.U64(tokenizer.tokens().size());
    for (const std::string& t : tokenizer.tokens()) {
      std::string spm;  // Spaces as U+2581.
      for (char ch : t) {
        if (ch == ' ') {
          spm += kSpace;
        } else {
          spm.push_back(ch);
        }
      }
      kv_part.Str(spm);
    }
    ++kv_part.kv_count_;
    kv_part.Str("tokenizer.ggml.scores");
    kv_part.U32(kArray);
    kv_part.U32(kF32);
    kv_part.U64(tokenizer.scores().size());
    for (float s : tokenizer.scores()) kv_part.F32(s);
    ++kv_part.kv_count_;
  }
  kv_part.KvU32("tokenizer.ggml.bos_token_id", 1);
  kv_part.KvU32("tokenizer.ggml.eos_token_id", 2);
  kv_part.KvU32("tokenizer.ggml.unknown_token_id", 0);

  Writer out;
  out.U32(kMagic);
  out.U32(3);
  out.U64(tensors.size());
  out.U64(kv_part.kv_count_);
  out.out() += kv_part.out();
  uint64_t offset = 0;
  for (const OutTensor& t : tensors) {
    out.Str(t.name);
    out.U32(static_cast<uint32_t>(t.dims.size()));
    for (uint64_t d : t.dims) out.U64(d);
    out.U32(static_cast<uint32_t>(t.type));
    out.U64(offset);
    offset += (t.data.size() + kAlignment - 1) / kAlignment * kAlignment;
  }
  out.Pad();
  for (const OutTensor& t : tensors) {
    out.out() += t.data;
    out.Pad();
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    f.write(out.out().data(), static_cast<std::streamsize>(out.out().size()));
    if (!f) return absl::InternalError(StrCat("cannot write ", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return absl::InternalError(StrCat("cannot rename to ", path));
  return absl::OkStatus();
}

absl::StatusOr<GgufModel> LoadGguf(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string data = ss.str();
  Reader r(data, path);
  uint32_t magic, version;
  uint64_t n_tensors, n_kv;
  if (!r.U32(&magic) || magic != kMagic) return absl::InvalidArgumentError(StrCat(path, ": not a GGUF file"));
  if (!r.U32(&version) || !r.U64(&n_tensors) || !r.U64(&n_kv)) return r.Truncated();
  if (version < 2 || version > 3) {
    return absl::InvalidArgumentError(StrCat(path, ": GGUF version ", version, " is not supported"));
  }
  if (n_tensors > (1u << 20) || n_kv > (1u << 20)) return r.Truncated();
  std::map<std::string, Value> meta;
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key;
    uint32_t type;
    if (!r.Str(&key) || !r.U32(&type)) return r.Truncated();
    Value v;
    if (type == kArray) {
      uint32_t item;
      uint64_t count;
      if (!r.U32(&item) || !r.U64(&count) || count > data.size()) return r.Truncated();
      v.is_array = true;
      v.array.resize(count);
      for (uint64_t j = 0; j < count; ++j) {
        if (!ReadScalar(r, item, &v.array[j])) return r.Truncated();
      }
    } else if (!ReadScalar(r, type, &v.scalar)) {
      return r.Truncated();
    }
    meta[key] = std::move(v);
  }
  auto str = [&](const std::string& k) -> std::string {
    auto it = meta.find(k);
    if (it == meta.end() || it->second.is_array) return "";
    const std::string* s = std::get_if<std::string>(&it->second.scalar);
    return s ? *s : "";
  };
  auto num = [&](const std::string& k, double fallback) {
    auto it = meta.find(k);
    if (it == meta.end() || it->second.is_array) return fallback;
    const double v = AsNumber(it->second.scalar);
    return std::isnan(v) ? fallback : v;
  };
  const std::string arch = str("general.architecture");
  if (arch != "llama") {
    return absl::InvalidArgumentError(StrCat(path, ": architecture \"", arch, "\" is not supported (llama only)"));
  }
  LlamaConfig c;
  c.dim = static_cast<int>(num("llama.embedding_length", 0));
  c.hidden_dim = static_cast<int>(num("llama.feed_forward_length", 0));
  c.n_layers = static_cast<int>(num("llama.block_count", 0));
  c.n_heads = static_cast<int>(num("llama.attention.head_count", 0));
  c.n_kv_heads = static_cast<int>(num("llama.attention.head_count_kv", c.n_heads));
  c.seq_len = static_cast<int>(num("llama.context_length", 2048));
  c.rope_theta = static_cast<float>(num("llama.rope.freq_base", 10000.0));
  c.norm_eps = static_cast<float>(num("llama.attention.layer_norm_rms_epsilon", 1e-5));
  // Tokenizer.
  if (str("tokenizer.ggml.model") != "llama") {
    return absl::InvalidArgumentError(StrCat(path, ": tokenizer \"", str("tokenizer.ggml.model"),
                                             "\" is not supported (SentencePiece \"llama\" only)"));
  }
  auto tok_it = meta.find("tokenizer.ggml.tokens");
  auto score_it = meta.find("tokenizer.ggml.scores");
  if (tok_it == meta.end() || !tok_it->second.is_array) {
    return absl::InvalidArgumentError(StrCat(path, ": no tokenizer.ggml.tokens"));
  }
  std::vector<std::string> tokens;
  std::vector<float> scores;
  for (size_t i = 0; i < tok_it->second.array.size(); ++i) {
    const std::string* s = std::get_if<std::string>(&tok_it->second.array[i]);
    if (s == nullptr) return r.Truncated();
    std::string t;
    for (size_t p = 0; p < s->size();) {
      if (s->compare(p, kSpace.size(), kSpace) == 0) {
        t.push_back(' ');
        p += kSpace.size();
      } else {
        t.push_back((*s)[p++]);
      }
    }
    tokens.push_back(std::move(t));
    const bool has_score = score_it != meta.end() && score_it->second.is_array &&
                           i < score_it->second.array.size();
    scores.push_back(has_score ? static_cast<float>(AsNumber(score_it->second.array[i])) : 0.0f);
  }
  c.vocab_size = static_cast<int>(tokens.size());
  // Tensor infos, then the aligned data section.
  struct Info {
    std::vector<uint64_t> dims;
    uint32_t type;
    uint64_t offset;
  };
  std::map<std::string, Info> infos;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    std::string name;
    uint32_t n_dims;
    Info info;
    if (!r.Str(&name) || !r.U32(&n_dims) || n_dims > 4) return r.Truncated();
    info.dims.resize(n_dims);
    for (auto& d : info.dims) {
      if (!r.U64(&d)) return r.Truncated();
    }
    if (!r.U32(&info.type) || !r.U64(&info.offset)) return r.Truncated();
    infos[name] = std::move(info);
  }
  const uint64_t alignment = static_cast<uint64_t>(num("general.alignment", kAlignment));
  if (alignment == 0) return r.Truncated();
  const uint64_t base = (r.pos() + alignment - 1) / alignment * alignment;
  auto load = [&](const std::string& name, uint64_t rows, uint64_t cols) -> absl::StatusOr<std::vector<float>> {
    auto it = infos.find(name);
    if (it == infos.end()) return absl::InvalidArgumentError(StrCat(path, ": missing tensor ", name));
    const Info& t = it->second;
    uint64_t n = 1;
    for (uint64_t d : t.dims) n *= d;
    if (n != rows * cols || (t.dims.size() > 0 && t.dims[0] != cols)) {
      return absl::InvalidArgumentError(StrCat(path, ": tensor ", name, " has the wrong shape for the config"));
    }
    uint64_t bytes;
    switch (t.type) {
      case 0: bytes = n * 4; break;
      case 1: bytes = n * 2; break;
      case 8:
        if (cols % kQ8Block != 0) return absl::InvalidArgumentError(StrCat(path, ": bad Q8_0 tensor ", name));
        bytes = n / kQ8Block * (2 + kQ8Block);
        break;
      default:
        return absl::InvalidArgumentError(StrCat(path, ": tensor ", name, " has type ", t.type,
                                                 " (F32, F16 and Q8_0 are supported)"));
    }
    if (base + t.offset + bytes > data.size()) return r.Truncated();
    const char* p = data.data() + base + t.offset;
    std::vector<float> out(n);
    if (t.type == 0) {
      std::memcpy(out.data(), p, bytes);
    } else if (t.type == 1) {
      for (uint64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = HalfToFloat(h);
      }
    } else {
      for (uint64_t b = 0; b < n / kQ8Block; ++b) {
        const char* blk = p + b * (2 + kQ8Block);
        uint16_t dh;
        std::memcpy(&dh, blk, 2);
        const float d = HalfToFloat(dh);
        for (int i = 0; i < kQ8Block; ++i) out[b * kQ8Block + i] = d * static_cast<int8_t>(blk[2 + i]);
      }
    }
    return out;
  };
  if (c.dim <= 0 || c.n_heads <= 0 || c.n_layers <= 0 || c.hidden_dim <= 0 || c.n_kv_heads <= 0 ||
      c.dim % c.n_heads != 0 || c.n_heads % c.n_kv_heads != 0) {
    return absl::InvalidArgumentError(StrCat(path, ": incomplete llama.* metadata"));
  }
  const uint64_t dim = c.dim, hid = c.hidden_dim, kv = c.kv_dim(), L = c.n_layers;
  std::vector<std::vector<float>> w(12);
  ASSIGN_OR_RETURN(w[0], load("token_embd.weight", c.vocab_size, dim));
  auto append = [&](int group, const std::string& suffix, uint64_t rows, uint64_t cols) -> absl::Status {
    for (uint64_t l = 0; l < L; ++l) {
      ASSIGN_OR_RETURN(std::vector<float> t, load(StrCat("blk.", l, ".", suffix), rows, cols));
      w[group].insert(w[group].end(), t.begin(), t.end());
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(append(1, "attn_norm.weight", 1, dim));
  RETURN_IF_ERROR(append(2, "attn_q.weight", dim, dim));
  RETURN_IF_ERROR(append(3, "attn_k.weight", kv, dim));
  RETURN_IF_ERROR(append(4, "attn_v.weight", kv, dim));
  RETURN_IF_ERROR(append(5, "attn_output.weight", dim, dim));
  RETURN_IF_ERROR(append(6, "ffn_norm.weight", 1, dim));
  RETURN_IF_ERROR(append(7, "ffn_gate.weight", hid, dim));
  RETURN_IF_ERROR(append(8, "ffn_down.weight", dim, hid));
  RETURN_IF_ERROR(append(9, "ffn_up.weight", hid, dim));
  ASSIGN_OR_RETURN(w[10], load("output_norm.weight", 1, dim));
  c.shared_classifier = !infos.contains("output.weight");
  if (c.shared_classifier) {
    w[11] = w[0];
  } else {
    ASSIGN_OR_RETURN(w[11], load("output.weight", c.vocab_size, dim));
  }
  GgufModel out;
  ASSIGN_OR_RETURN(out.model, LlamaModel::FromWeights(c, std::move(w)));
  out.tokenizer = Llama2cTokenizer::FromVocab(std::move(tokens), std::move(scores));
  return out;
}

}  // namespace quiver::llm
