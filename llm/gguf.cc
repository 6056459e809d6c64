#include "llm/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <variant>

#include "common/status_macros.h"
#include "common/strings.h"
#include "nn/half.h"

namespace quiver::llm {
using ::quiver::nn::FloatToHalf;
using ::quiver::nn::HalfToFloat;
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian.
constexpr uint64_t kAlignment = 32;
constexpr int kQ8Block = 32;
constexpr int kSuperBlock = 256;  // K-quants.

WeightTensor::Type KType(uint32_t ggml_type) {
  return ggml_type == 12   ? WeightTensor::Type::kQ4_K
         : ggml_type == 13 ? WeightTensor::Type::kQ5_K
                           : WeightTensor::Type::kQ6_K;
}
// Metadata value types.
enum : uint32_t {
  kU8 = 0,
  kI8,
  kU16,
  kI16,
  kU32,
  kI32,
  kF32,
  kBool,
  kString,
  kArray,
  kU64,
  kI64,
  kF64
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

int Nearest(float x) { return static_cast<int>(std::lround(x)); }

// Simple K-quant encoders (per-sub-block min / max, not ggml's searched
// scales): valid super-blocks for tests and conversions.
void EncodeQ4K(const float* x, std::string* out) {
  float scale[8], min[8], max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    float lo = 0, hi = 0;  // The range always includes 0 (mins are subtracted).
    for (int l = 0; l < 32; ++l) {
      lo = std::min(lo, x[32 * j + l]);
      hi = std::max(hi, x[32 * j + l]);
    }
    scale[j] = (hi - lo) / 15.0f;
    min[j] = -lo;
    max_scale = std::max(max_scale, scale[j]);
    max_min = std::max(max_min, min[j]);
  }
  const uint16_t dh = FloatToHalf(max_scale / 63.0f), mh = FloatToHalf(max_min / 63.0f);
  const float d = HalfToFloat(dh), dmin = HalfToFloat(mh);
  uint8_t scales[12] = {}, ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    ls[j] = static_cast<uint8_t>(std::clamp(d > 0 ? Nearest(scale[j] / d) : 0, 0, 63));
    lm[j] = static_cast<uint8_t>(std::clamp(dmin > 0 ? Nearest(min[j] / dmin) : 0, 0, 63));
    if (j < 4) {
      scales[j] = ls[j];
      scales[j + 4] = lm[j];
    } else {
      scales[j + 4] = static_cast<uint8_t>((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      scales[j - 4] |= static_cast<uint8_t>((ls[j] >> 4) << 6);
      scales[j] |= static_cast<uint8_t>((lm[j] >> 4) << 6);
    }
  }
  uint8_t q[256];
  for (int j = 0; j < 8; ++j) {
    const float dd = d * ls[j], dm = dmin * lm[j];
    for (int l = 0; l < 32; ++l)
      q[32 * j + l] =
          static_cast<uint8_t>(dd > 0 ? std::clamp(Nearest((x[32 * j + l] + dm) / dd), 0, 15) : 0);
  }
  out->append(reinterpret_cast<const char*>(&dh), 2);
  out->append(reinterpret_cast<const char*>(&mh), 2);
  out->append(reinterpret_cast<const char*>(scales), 12);
  for (int g = 0; g < 4; ++g) {
    for (int l = 0; l < 32; ++l)
      out->push_back(static_cast<char>(q[64 * g + l] | (q[64 * g + 32 + l] << 4)));
  }
}

void EncodeQ6K(const float* x, std::string* out) {
  float scale[16], max_abs = 0;
  for (int j = 0; j < 16; ++j) {
    float amax = 0;
    for (int l = 0; l < 16; ++l) amax = std::max(amax, std::fabs(x[16 * j + l]));
    scale[j] = amax / 31.0f;
    max_abs = std::max(max_abs, scale[j]);
  }
  const uint16_t dh = FloatToHalf(max_abs / 127.0f);
  const float d = HalfToFloat(dh);
  int8_t sc[16];
  uint8_t L[256];
  for (int j = 0; j < 16; ++j) {
    sc[j] = static_cast<int8_t>(std::clamp(d > 0 ? Nearest(scale[j] / d) : 0, -128, 127));
    const float dd = d * sc[j];
    for (int l = 0; l < 16; ++l) {
      L[16 * j + l] = static_cast<uint8_t>(
          (dd != 0 ? std::clamp(Nearest(x[16 * j + l] / dd), -32, 31) : 0) + 32);
    }
  }
  uint8_t ql[128], qh[64];
  for (int half = 0; half < 2; ++half) {
    const uint8_t* v = L + 128 * half;
    for (int l = 0; l < 32; ++l) {
      ql[64 * half + l] = static_cast<uint8_t>((v[l] & 0xF) | ((v[l + 64] & 0xF) << 4));
      ql[64 * half + 32 + l] = static_cast<uint8_t>((v[l + 32] & 0xF) | ((v[l + 96] & 0xF) << 4));
      qh[32 * half + l] = static_cast<uint8_t>((v[l] >> 4) | ((v[l + 32] >> 4) << 2) |
                                               ((v[l + 64] >> 4) << 4) | ((v[l + 96] >> 4) << 6));
    }
  }
  out->append(reinterpret_cast<const char*>(ql), 128);
  out->append(reinterpret_cast<const char*>(qh), 64);
  out->append(reinterpret_cast<const char*>(sc), 16);
  out->append(reinterpret_cast<const char*>(&dh), 2);
}

OutTensor Encode(std::string name, const float* v, uint64_t rows, uint64_t cols, GgufType type) {
  OutTensor t{std::move(name),
              rows == 1 ? std::vector<uint64_t>{cols} : std::vector<uint64_t>{cols, rows},
              type,
              {}};
  const bool blocked = type == GgufType::kQ8_0 || type == GgufType::kQ4_0;
  const bool super = type == GgufType::kQ4_K || type == GgufType::kQ6_K;
  if ((blocked && (cols % kQ8Block != 0 || rows == 1)) ||
      (super && (cols % kSuperBlock != 0 || rows == 1))) {
    t.type = GgufType::kF32;
  }
  const uint64_t n = rows * cols;
  switch (t.type) {
    case GgufType::kF32:
      t.data.assign(reinterpret_cast<const char*>(v), n * 4);
      break;
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
    case GgufType::kQ4_0:
      // ggml's reference rounding: the value of largest magnitude maps to
      // -8; others to round(x / d) + 8 clamped to 0..15.
      for (uint64_t b = 0; b < n; b += kQ8Block) {
        float amax = 0, max = 0;
        for (int i = 0; i < kQ8Block; ++i) {
          if (std::fabs(v[b + i]) > amax) {
            amax = std::fabs(v[b + i]);
            max = v[b + i];
          }
        }
        const float d = max / -8.0f;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        const uint16_t dh = FloatToHalf(d);
        t.data.append(reinterpret_cast<const char*>(&dh), 2);
        for (int i = 0; i < kQ8Block / 2; ++i) {
          const int lo = std::min(15, static_cast<int>(static_cast<int8_t>(v[b + i] * id + 8.5f)));
          const int hi =
              std::min(15, static_cast<int>(static_cast<int8_t>(v[b + 16 + i] * id + 8.5f)));
          t.data.push_back(static_cast<char>(lo | (hi << 4)));
        }
      }
      break;
    case GgufType::kQ4_K:
      for (uint64_t b = 0; b < n; b += kSuperBlock) EncodeQ4K(v + b, &t.data);
      break;
    case GgufType::kQ6_K:
      for (uint64_t b = 0; b < n; b += kSuperBlock) EncodeQ6K(v + b, &t.data);
      break;
  }
  return t;
}

// ---- Reading ------------------------------------------------------------------

class Reader {
 public:
  Reader(std::string_view data, std::string path) : data_(data), path_(std::move(path)) {}
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
  std::string_view data() const { return data_; }
  absl::Status Truncated() const {
    return absl::DataLossError(StrCat(path_, ": truncated or malformed GGUF"));
  }

 private:
  std::string_view data_;
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
    case kU8: {
      uint8_t v;
      if (!r.Get(&v, 1)) return false;
      *out = uint64_t{v};
      return true;
    }
    case kI8: {
      int8_t v;
      if (!r.Get(&v, 1)) return false;
      *out = int64_t{v};
      return true;
    }
    case kU16: {
      uint16_t v;
      if (!r.Get(&v, 2)) return false;
      *out = uint64_t{v};
      return true;
    }
    case kI16: {
      int16_t v;
      if (!r.Get(&v, 2)) return false;
      *out = int64_t{v};
      return true;
    }
    case kU32: {
      uint32_t v;
      if (!r.Get(&v, 4)) return false;
      *out = uint64_t{v};
      return true;
    }
    case kI32: {
      int32_t v;
      if (!r.Get(&v, 4)) return false;
      *out = int64_t{v};
      return true;
    }
    case kF32: {
      float v;
      if (!r.Get(&v, 4)) return false;
      *out = double{v};
      return true;
    }
    case kBool: {
      uint8_t v;
      if (!r.Get(&v, 1)) return false;
      *out = v != 0;
      return true;
    }
    case kString: {
      std::string s;
      if (!r.Str(&s)) return false;
      *out = std::move(s);
      return true;
    }
    case kU64: {
      uint64_t v;
      if (!r.Get(&v, 8)) return false;
      *out = v;
      return true;
    }
    case kI64: {
      int64_t v;
      if (!r.Get(&v, 8)) return false;
      *out = v;
      return true;
    }
    case kF64: {
      double v;
      if (!r.Get(&v, 8)) return false;
      *out = v;
      return true;
    }
  }
  return false;
}

double AsNumber(const Scalar& s) {
  if (auto* u = std::get_if<uint64_t>(&s)) return static_cast<double>(*u);
  if (auto* i = std::get_if<int64_t>(&s)) return static_cast<double>(*i);
  if (auto* d = std::get_if<double>(&s)) return *d;
  return std::nan("");
}

bool BoolMeta(const std::map<std::string, Value>& meta, const std::string& key, bool fallback) {
  auto it = meta.find(key);
  if (it == meta.end() || it->second.is_array) return fallback;
  if (const bool* b = std::get_if<bool>(&it->second.scalar)) return *b;
  return fallback;
}

// llama.cpp's pre-tokenizer names ("tokenizer.ggml.pre") as tokenizer.json
// pre-tokenizers.
constexpr char kLlama3Split[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr char kQwen2Split[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

absl::StatusOr<Json> PreTokenizerFor(const std::string& pre, bool* ignore_merges) {
  auto split = [](const char* regex) {
    return Json(Json::Object{{"type", "Split"},
                             {"pattern", Json(Json::Object{{"Regex", regex}})},
                             {"behavior", "Isolated"},
                             {"invert", false}});
  };
  auto byte_level = [](bool regex) {
    return Json(
        Json::Object{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", regex}});
  };
  auto seq = [](Json::Array steps) {
    return Json(Json::Object{{"type", "Sequence"}, {"pretokenizers", Json(std::move(steps))}});
  };
  *ignore_merges = false;
  if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3") {
    *ignore_merges = true;  // As Llama 3's tokenizer.json.
    return seq({split(kLlama3Split), byte_level(false)});
  }
  if (pre == "qwen2" || pre == "deepseek-r1-qwen")
    return seq({split(kQwen2Split), byte_level(false)});
  if (pre == "smollm") {
    return seq(
        {Json(Json::Object{{"type", "Digits"}, {"individual_digits", true}}), byte_level(true)});
  }
  if (pre.empty() || pre == "default" || pre == "gpt2" || pre == "gpt-2") return byte_level(true);
  return absl::InvalidArgumentError(
      StrCat("tokenizer.ggml.pre \"", pre, "\" is not supported (llama-bpe, qwen2, smollm, gpt2)"));
}

// A GGUF "gpt2" (byte-level BPE) vocabulary as a tokenizer.json tokenizer:
// tokens and merges from the metadata, control and user-defined tokens as
// special added tokens.
absl::StatusOr<std::unique_ptr<Tokenizer>> ByteLevelCodec(const std::string& path,
                                                          const std::map<std::string, Value>& meta,
                                                          const std::vector<std::string>& tokens,
                                                          const std::vector<int>& types,
                                                          TokenizerInfo info) {
  Json::Object vocab;
  Json::Array added;
  for (size_t i = 0; i < tokens.size(); ++i) {
    vocab[tokens[i]] = Json(static_cast<int64_t>(i));
    if (types[i] == 3 || types[i] == 4) {
      added.push_back(Json(Json::Object{{"id", Json(static_cast<int64_t>(i))},
                                        {"content", tokens[i]},
                                        {"special", types[i] == 3}}));
    }
  }
  Json::Array merges;
  if (auto it = meta.find("tokenizer.ggml.merges"); it != meta.end() && it->second.is_array) {
    for (const Scalar& m : it->second.array) {
      const std::string* s = std::get_if<std::string>(&m);
      if (s == nullptr) return absl::DataLossError(StrCat(path, ": bad tokenizer.ggml.merges"));
      merges.push_back(Json(*s));
    }
  }
  auto pre_it = meta.find("tokenizer.ggml.pre");
  const std::string* pre_name = pre_it != meta.end() && !pre_it->second.is_array
                                    ? std::get_if<std::string>(&pre_it->second.scalar)
                                    : nullptr;
  bool ignore_merges = false;
  auto pre = PreTokenizerFor(pre_name != nullptr ? *pre_name : "", &ignore_merges);
  if (!pre.ok()) return absl::InvalidArgumentError(StrCat(path, ": ", pre.status().message()));
  Json j(Json::Object{{"model", Json(Json::Object{{"type", "BPE"},
                                                  {"vocab", Json(std::move(vocab))},
                                                  {"merges", Json(std::move(merges))},
                                                  {"ignore_merges", ignore_merges}})},
                      {"pre_tokenizer", *pre},
                      {"decoder", Json(Json::Object{{"type", "ByteLevel"}})},
                      {"added_tokens", Json(std::move(added))}});
  auto tokenizer = nn::Tokenizer::FromJson(j);
  if (!tokenizer.ok())
    return absl::Status(tokenizer.status().code(),
                        StrCat(path, ": ", tokenizer.status().message()));
  const int n = static_cast<int>(tokens.size());
  info.add_bos = info.bos_id >= 0 && BoolMeta(meta, "tokenizer.ggml.add_bos_token", false);
  if (info.bos_id >= n || info.bos_id < -1)
    return absl::InvalidArgumentError(StrCat(path, ": bad bos_token_id"));
  if (info.bos_id >= 0) info.bos_token = tokens[info.bos_id];
  for (int id : info.end_ids) {
    if (id >= n) return absl::InvalidArgumentError(StrCat(path, ": bad eos/eot token id"));
  }
  if (!info.end_ids.empty()) info.eos_token = tokens[info.end_ids[0]];
  return std::unique_ptr<Tokenizer>(new HfTokenizer(*std::move(tokenizer), std::move(info)));
}

}  // namespace

absl::Status WriteGgufFile(const std::string& path, const std::vector<GgufMeta>& metadata,
                           const std::vector<GgufTensor>& in_tensors) {
  Writer kv_part;
  for (const GgufMeta& m : metadata) {
    kv_part.Str(m.key);
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, uint32_t>) {
            kv_part.U32(kU32);
            kv_part.U32(v);
          } else if constexpr (std::is_same_v<T, float>) {
            kv_part.U32(kF32);
            kv_part.F32(v);
          } else if constexpr (std::is_same_v<T, bool>) {
            kv_part.U32(kBool);
            const uint8_t b = v ? 1 : 0;
            kv_part.Raw(&b, 1);
          } else if constexpr (std::is_same_v<T, std::string>) {
            kv_part.U32(kString);
            kv_part.Str(v);
          } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
            kv_part.U32(kArray);
            kv_part.U32(kString);
            kv_part.U64(v.size());
            for (const std::string& e : v) kv_part.Str(e);
          } else if constexpr (std::is_same_v<T, std::vector<float>>) {
            kv_part.U32(kArray);
            kv_part.U32(kF32);
            kv_part.U64(v.size());
            for (float e : v) kv_part.F32(e);
          } else {
            static_assert(std::is_same_v<T, std::vector<int32_t>>);
            kv_part.U32(kArray);
            kv_part.U32(kI32);
            kv_part.U64(v.size());
            for (int32_t e : v) kv_part.Raw(&e, 4);
          }
        },
        m.value);
    ++kv_part.kv_count_;
  }
  std::vector<OutTensor> tensors;
  for (const GgufTensor& t : in_tensors) {
    const uint64_t cols = t.dims.empty() ? 1 : t.dims[0];
    uint64_t n = 1;
    for (uint64_t d : t.dims) n *= d;
    if (n != t.values.size() || n == 0) {
      return absl::InvalidArgumentError(
          StrCat("tensor ", t.name, ": ", t.values.size(), " values for its shape"));
    }
    OutTensor o = Encode(t.name, t.values.data(), n / cols, cols, t.type);
    o.dims = t.dims;
    tensors.push_back(std::move(o));
  }
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
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    return absl::InternalError(StrCat("cannot rename to ", path));
  return absl::OkStatus();
}

absl::Status WriteGguf(const std::string& path, const LlamaModel& model,
                       const Llama2cTokenizer& tokenizer, GgufType type, const std::string& name) {
  if (model.has_attention_bias() || model.config().rope_scaling.type != RopeScaling::Type::kNone ||
      !model.is_float32()) {
    return absl::UnimplementedError(
        "only llama2.c-style float32 models (no biases, no RoPE scaling) convert to GGUF");
  }
  const LlamaConfig& c = model.config();
  const LlamaModel::Weights w = model.weights();
  std::vector<GgufTensor> tensors;
  const uint64_t dim = c.dim, hid = c.hidden_dim, kv = c.kv_dim();
  auto add = [&](std::string tname, std::span<const float> all, uint64_t offset, uint64_t rows,
                 uint64_t cols) {
    GgufTensor t{std::move(tname),
                 rows == 1 ? std::vector<uint64_t>{cols} : std::vector<uint64_t>{cols, rows}, type,
                 std::vector<float>(all.begin() + offset, all.begin() + offset + rows * cols)};
    tensors.push_back(std::move(t));
  };
  add("token_embd.weight", w.embedding, 0, c.vocab_size, dim);
  for (uint64_t l = 0; l < static_cast<uint64_t>(c.n_layers); ++l) {
    const std::string p = StrCat("blk.", l, ".");
    add(p + "attn_norm.weight", w.rms_att, l * dim, 1, dim);
    add(p + "attn_q.weight", w.wq, l * dim * dim, dim, dim);
    add(p + "attn_k.weight", w.wk, l * dim * kv, kv, dim);
    add(p + "attn_v.weight", w.wv, l * dim * kv, kv, dim);
    add(p + "attn_output.weight", w.wo, l * dim * dim, dim, dim);
    add(p + "ffn_norm.weight", w.rms_ffn, l * dim, 1, dim);
    add(p + "ffn_gate.weight", w.w1, l * dim * hid, hid, dim);
    add(p + "ffn_down.weight", w.w2, l * dim * hid, dim, hid);
    add(p + "ffn_up.weight", w.w3, l * dim * hid, hid, dim);
  }
  add("output_norm.weight", w.rms_final, 0, 1, dim);
  if (!c.shared_classifier) add("output.weight", w.classifier, 0, c.vocab_size, dim);

  std::vector<std::string> tokens;
  for (const std::string& t : tokenizer.tokens()) {
    std::string spm;  // Spaces as U+2581.
    for (char ch : t) {
      if (ch == ' ') {
        spm += kSpace;
      } else {
        spm.push_back(ch);
      }
    }
    tokens.push_back(std::move(spm));
  }
  const std::vector<GgufMeta> meta = {
      {"general.architecture", std::string("llama")},
      {"general.name", name},
      {"general.alignment", static_cast<uint32_t>(kAlignment)},
      {"llama.context_length", static_cast<uint32_t>(c.seq_len)},
      {"llama.embedding_length", static_cast<uint32_t>(c.dim)},
      {"llama.block_count", static_cast<uint32_t>(c.n_layers)},
      {"llama.feed_forward_length", static_cast<uint32_t>(c.hidden_dim)},
      {"llama.attention.head_count", static_cast<uint32_t>(c.n_heads)},
      {"llama.attention.head_count_kv", static_cast<uint32_t>(c.n_kv_heads)},
      {"llama.rope.dimension_count", static_cast<uint32_t>(c.head_size())},
      {"llama.rope.freq_base", c.rope_theta},
      {"llama.attention.layer_norm_rms_epsilon", c.norm_eps},
      {"tokenizer.ggml.model", std::string("llama")},
      {"tokenizer.ggml.tokens", std::move(tokens)},
      {"tokenizer.ggml.scores", tokenizer.scores()},
      {"tokenizer.ggml.bos_token_id", uint32_t{1}},
      {"tokenizer.ggml.eos_token_id", uint32_t{2}},
      {"tokenizer.ggml.unknown_token_id", uint32_t{0}},
  };
  return WriteGgufFile(path, meta, tensors);
}

absl::StatusOr<LoadedModel> LoadGguf(const std::string& path) {
  // Mapped, not read: the file (often gigabytes) is paged in as tensors are
  // converted, and never held twice.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::NotFoundError(StrCat("cannot read ", path, ": ", std::strerror(errno)));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return absl::NotFoundError(StrCat("cannot stat ", path));
  }
  const size_t size = static_cast<size_t>(st.st_size);
  void* map = size > 0 ? ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0) : nullptr;
  ::close(fd);
  if (size > 0 && map == MAP_FAILED) return absl::InternalError(StrCat("cannot map ", path));
  struct Unmap {
    void* p;
    size_t n;
    ~Unmap() {
      if (p != nullptr && p != MAP_FAILED) ::munmap(p, n);
    }
  } unmap{map, size};
  const std::string_view data(static_cast<const char*>(map), size);
  Reader r(data, path);
  uint32_t magic, version;
  uint64_t n_tensors, n_kv;
  if (!r.U32(&magic) || magic != kMagic)
    return absl::InvalidArgumentError(StrCat(path, ": not a GGUF file"));
  if (!r.U32(&version) || !r.U64(&n_tensors) || !r.U64(&n_kv)) return r.Truncated();
  if (version < 2 || version > 3) {
    return absl::InvalidArgumentError(
        StrCat(path, ": GGUF version ", version, " is not supported"));
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
  // Shape numbers as int: out of int's range is -1, which the config's
  // validation refuses (a bare cast of such a double is undefined).
  auto count = [&](const std::string& k, double fallback) {
    const double v = num(k, fallback);
    return v >= -2147483648.0 && v <= 2147483647.0 ? static_cast<int>(v) : -1;
  };
  const std::string arch = str("general.architecture");
  if (arch != "llama" && arch != "qwen2") {
    return absl::InvalidArgumentError(
        StrCat(path, ": architecture \"", arch, "\" is not supported (llama, qwen2)"));
  }
  const std::string a = arch + ".";
  LlamaConfig c;
  c.dim = count(a + "embedding_length", 0);
  c.hidden_dim = count(a + "feed_forward_length", 0);
  c.n_layers = count(a + "block_count", 0);
  c.n_heads = count(a + "attention.head_count", 0);
  c.n_kv_heads = count(a + "attention.head_count_kv", c.n_heads);
  c.seq_len = count(a + "context_length", 2048);
  c.rope_theta = static_cast<float>(num(a + "rope.freq_base", 10000.0));
  c.norm_eps = static_cast<float>(num(a + "attention.layer_norm_rms_epsilon", 1e-5));
  if (const std::string scaling = str(a + "rope.scaling.type");
      !scaling.empty() && scaling != "none") {
    if (scaling != "linear") {
      return absl::InvalidArgumentError(
          StrCat(path, ": rope scaling \"", scaling, "\" is not supported (linear)"));
    }
    c.rope_scaling.type = RopeScaling::Type::kLinear;
    c.rope_scaling.factor = static_cast<float>(num(a + "rope.scaling.factor", 1.0));
    if (!(c.rope_scaling.factor > 0))
      return absl::InvalidArgumentError(StrCat(path, ": bad rope scaling factor"));
  }
  // Tokenizer.
  auto tok_it = meta.find("tokenizer.ggml.tokens");
  if (tok_it == meta.end() || !tok_it->second.is_array) {
    return absl::InvalidArgumentError(StrCat(path, ": no tokenizer.ggml.tokens"));
  }
  std::vector<std::string> raw_tokens;
  for (const Scalar& t : tok_it->second.array) {
    const std::string* s = std::get_if<std::string>(&t);
    if (s == nullptr) return r.Truncated();
    raw_tokens.push_back(*s);
  }
  std::vector<int> types(raw_tokens.size(), 1);
  if (auto it = meta.find("tokenizer.ggml.token_type"); it != meta.end() && it->second.is_array) {
    for (size_t i = 0; i < std::min(types.size(), it->second.array.size()); ++i) {
      types[i] = static_cast<int>(AsNumber(it->second.array[i]));
    }
  }
  TokenizerInfo info;
  info.bos_id = count("tokenizer.ggml.bos_token_id", -1);
  for (const char* key : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id",
                          "tokenizer.ggml.eom_token_id"}) {
    const int id = count(key, -1);
    if (id >= 0) info.end_ids.push_back(id);
  }
  info.chat_template = str("tokenizer.chat_template");
  const std::string tokenizer_model = str("tokenizer.ggml.model");
  LoadedModel out;
  std::vector<std::string> tokens;
  std::vector<float> scores;
  if (tokenizer_model == "gpt2") {
    ASSIGN_OR_RETURN(out.tokenizer, ByteLevelCodec(path, meta, raw_tokens, types, info));
    c.vocab_size = static_cast<int>(raw_tokens.size());
  } else if (tokenizer_model != "llama") {
    return absl::InvalidArgumentError(
        StrCat(path, ": tokenizer \"", tokenizer_model,
               "\" is not supported (SentencePiece \"llama\", byte-level BPE \"gpt2\")"));
  }
  auto score_it = meta.find("tokenizer.ggml.scores");
  for (size_t i = 0; i < raw_tokens.size() && tokenizer_model == "llama"; ++i) {
    const std::string* s = &raw_tokens[i];
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
    const bool has_score =
        score_it != meta.end() && score_it->second.is_array && i < score_it->second.array.size();
    scores.push_back(has_score ? static_cast<float>(AsNumber(score_it->second.array[i])) : 0.0f);
  }
  c.vocab_size = static_cast<int>(raw_tokens.size());
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
  // A tensor as stored (F32, F16 or Q8_0), after checking its shape.
  auto load = [&](const std::string& name, uint64_t rows,
                  uint64_t cols) -> absl::StatusOr<WeightTensor> {
    auto it = infos.find(name);
    if (it == infos.end())
      return absl::InvalidArgumentError(StrCat(path, ": missing tensor ", name));
    const Info& t = it->second;
    uint64_t n = 1;
    for (uint64_t d : t.dims) n *= d;
    if (n != rows * cols || (t.dims.size() > 0 && t.dims[0] != cols)) {
      return absl::InvalidArgumentError(
          StrCat(path, ": tensor ", name, " has the wrong shape for the config"));
    }
    uint64_t bytes;
    switch (t.type) {
      case 0:
        bytes = n * 4;
        break;
      case 1:
        bytes = n * 2;
        break;
      case 8:
        if (cols % kQ8Block != 0)
          return absl::InvalidArgumentError(StrCat(path, ": bad Q8_0 tensor ", name));
        bytes = n / kQ8Block * (2 + kQ8Block);
        break;
      case 2:
        if (cols % kQ8Block != 0)
          return absl::InvalidArgumentError(StrCat(path, ": bad Q4_0 tensor ", name));
        bytes = n / kQ8Block * (2 + kQ8Block / 2);
        break;
      case 12:
      case 13:
      case 14:
        if (cols % kSuperBlock != 0)
          return absl::InvalidArgumentError(StrCat(path, ": bad K-quant tensor ", name));
        bytes = n / kSuperBlock * WeightTensor::KBlockBytes(KType(t.type));
        break;
      default:
        return absl::InvalidArgumentError(
            StrCat(path, ": tensor ", name, " has type ", t.type,
                   " (F32, F16, Q8_0, Q4_0, Q4_K, Q5_K and Q6_K are supported)"));
    }
    if (base + t.offset + bytes > data.size()) return r.Truncated();
    const char* p = data.data() + base + t.offset;
    if (t.type == 0) {
      std::vector<float> out(n);
      std::memcpy(out.data(), p, bytes);
      return WeightTensor::F32(std::move(out));
    }
    if (t.type == 1) {
      std::vector<uint16_t> out(n);
      std::memcpy(out.data(), p, bytes);
      return WeightTensor::F16(std::move(out));
    }
    if (t.type >= 12 && t.type <= 14) {
      return WeightTensor::KQuant(KType(t.type), std::vector<uint8_t>(p, p + bytes));
    }
    if (t.type == 2) {
      std::vector<uint8_t> packed(n / 2);
      std::vector<float> scales(n / kQ8Block);
      for (uint64_t b = 0; b < n / kQ8Block; ++b) {
        const char* blk = p + b * (2 + kQ8Block / 2);
        uint16_t dh;
        std::memcpy(&dh, blk, 2);
        scales[b] = HalfToFloat(dh);
        std::memcpy(&packed[b * kQ8Block / 2], blk + 2, kQ8Block / 2);
      }
      return WeightTensor::Q4_0(std::move(packed), std::move(scales));
    }
    std::vector<int8_t> q(n);
    std::vector<float> scales(n / kQ8Block);
    for (uint64_t b = 0; b < n / kQ8Block; ++b) {
      const char* blk = p + b * (2 + kQ8Block);
      uint16_t dh;
      std::memcpy(&dh, blk, 2);
      scales[b] = HalfToFloat(dh);
      std::memcpy(&q[b * kQ8Block], blk + 2, kQ8Block);
    }
    return WeightTensor::Q8_0(std::move(q), std::move(scales));
  };
  auto load_floats = [&](const std::string& name, uint64_t rows,
                         uint64_t cols) -> absl::StatusOr<std::vector<float>> {
    ASSIGN_OR_RETURN(WeightTensor t, load(name, rows, cols));
    std::vector<float> out(t.size());
    t.Read(0, t.size(), out.data());
    return out;
  };
  if (c.dim <= 0 || c.n_heads <= 0 || c.n_layers <= 0 || c.hidden_dim <= 0 || c.n_kv_heads <= 0 ||
      c.dim % c.n_heads != 0 || c.n_heads % c.n_kv_heads != 0) {
    return absl::InvalidArgumentError(StrCat(path, ": incomplete llama.* metadata"));
  }
  const uint64_t dim = c.dim, hid = c.hidden_dim, kv = c.kv_dim(), L = c.n_layers;
  LlamaWeights<WeightTensor> w;
  ASSIGN_OR_RETURN(w.embedding, load("token_embd.weight", c.vocab_size, dim));
  // The layers' tensors of one kind, joined in layer order.
  auto append = [&](WeightTensor* group, const std::string& suffix, uint64_t rows,
                    uint64_t cols) -> absl::Status {
    std::vector<WeightTensor> parts;
    for (uint64_t l = 0; l < L; ++l) {
      ASSIGN_OR_RETURN(WeightTensor t, load(StrCat("blk.", l, ".", suffix), rows, cols));
      parts.push_back(std::move(t));
    }
    *group = WeightTensor::Concat(parts);
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(append(&w.rms_att, "attn_norm.weight", 1, dim));
  RETURN_IF_ERROR(append(&w.wq, "attn_q.weight", dim, dim));
  RETURN_IF_ERROR(append(&w.wk, "attn_k.weight", kv, dim));
  RETURN_IF_ERROR(append(&w.wv, "attn_v.weight", kv, dim));
  RETURN_IF_ERROR(append(&w.wo, "attn_output.weight", dim, dim));
  RETURN_IF_ERROR(append(&w.rms_ffn, "ffn_norm.weight", 1, dim));
  RETURN_IF_ERROR(append(&w.w1, "ffn_gate.weight", hid, dim));
  RETURN_IF_ERROR(append(&w.w2, "ffn_down.weight", dim, hid));
  RETURN_IF_ERROR(append(&w.w3, "ffn_up.weight", hid, dim));
  ASSIGN_OR_RETURN(w.rms_final, load("output_norm.weight", 1, dim));
  c.shared_classifier = !infos.contains("output.weight");
  if (!c.shared_classifier) {  // Else it stays empty: FromTensors shares the embedding.
    ASSIGN_OR_RETURN(w.classifier, load("output.weight", c.vocab_size, dim));
  }
  if (arch == "qwen2") {
    // Qwen2 GGUFs keep Hugging Face's rotate-half Q/K layout (llama.cpp
    // rotates them NeoX-style); LlamaModel rotates interleaved pairs, so
    // each layer's rows are reordered (in their stored type).
    const int hs = c.head_size(), layers = static_cast<int>(L);
    auto reorder = [&](const WeightTensor& t, int heads, size_t cols) {
      return RotateHalfToInterleaved(t, layers, heads, hs, cols);
    };
    w.wq = reorder(w.wq, c.n_heads, dim);
    w.wk = reorder(w.wk, c.n_kv_heads, dim);
    RETURN_IF_ERROR(append(&w.bq, "attn_q.bias", 1, dim));
    RETURN_IF_ERROR(append(&w.bk, "attn_k.bias", 1, kv));
    RETURN_IF_ERROR(append(&w.bv, "attn_v.bias", 1, kv));
    w.bq = reorder(w.bq, c.n_heads, 1);
    w.bk = reorder(w.bk, c.n_kv_heads, 1);
  }
  if (infos.contains("rope_freqs.weight")) {
    ASSIGN_OR_RETURN(c.rope_freq_factors, load_floats("rope_freqs.weight", 1, c.head_size() / 2));
  }
  ASSIGN_OR_RETURN(out.model, LlamaModel::FromTensors(c, std::move(w)));
  if (out.tokenizer == nullptr) {
    auto spm = Llama2cTokenizer::FromVocab(std::move(tokens), std::move(scores));
    std::vector<int> specials;
    for (size_t i = 0; i < types.size(); ++i) {
      if (types[i] == 3 || types[i] == 4)
        specials.push_back(static_cast<int>(i));  // Control, user-defined.
    }
    spm->SetSpecialTokens(std::move(specials));
    TokenizerInfo& si = *spm->mutable_info();
    if (info.bos_id >= 0) si.bos_id = info.bos_id;
    if (!info.end_ids.empty()) si.end_ids = info.end_ids;
    si.add_bos = BoolMeta(meta, "tokenizer.ggml.add_bos_token", true);
    si.chat_template = info.chat_template;
    if (si.bos_id >= 0 && si.bos_id < spm->vocab_size()) si.bos_token = spm->tokens()[si.bos_id];
    if (!si.end_ids.empty() && si.end_ids[0] < spm->vocab_size())
      si.eos_token = spm->tokens()[si.end_ids[0]];
    out.tokenizer = std::move(spm);
  }
  return out;
}

}  // namespace quiver::llm
