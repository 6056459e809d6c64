#include "llm/hf_model.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "common/status_macros.h"
#include "common/strings.h"
#include "nn/safetensors.h"

namespace quiver::llm {
namespace {

absl::StatusOr<Json> ReadJson(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(StrCat("cannot read ", path.string()));
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = ParseJson(ss.str());
  if (!j.ok()) return absl::InvalidArgumentError(StrCat(path.string(), ": ", j.status().message()));
  return j;
}

const Json* Field(const Json& j, std::string_view key) {
  const Json* v = j.is_object() ? j.Find(key) : nullptr;
  return v != nullptr && !v->is_null() ? v : nullptr;
}
double Number(const Json& j, std::string_view key, double fallback) {
  const Json* v = Field(j, key);
  return v != nullptr && v->is_number() ? v->as_number() : fallback;
}
std::string String(const Json& j, std::string_view key) {
  const Json* v = Field(j, key);
  return v != nullptr && v->is_string() ? v->as_string() : "";
}
bool Bool(const Json& j, std::string_view key, bool fallback) {
  const Json* v = Field(j, key);
  return v != nullptr && v->is_bool() ? v->as_bool() : fallback;
}
// A token in tokenizer_config.json: a string or {"content": ...}.
std::string TokenText(const Json& j, std::string_view key) {
  const Json* v = Field(j, key);
  if (v == nullptr) return "";
  if (v->is_string()) return v->as_string();
  return String(*v, "content");
}

// Tensors by name across the shards.
class WeightFiles {
 public:
  static absl::StatusOr<WeightFiles> Open(const std::filesystem::path& dir) {
    WeightFiles w;
    const auto index = dir / "model.safetensors.index.json";
    if (std::filesystem::exists(index)) {
      ASSIGN_OR_RETURN(Json j, ReadJson(index));
      const Json* map = Field(j, "weight_map");
      if (map == nullptr || !map->is_object()) {
        return absl::InvalidArgumentError(StrCat(index.string(), ": no weight_map"));
      }
      for (const auto& [name, file] : map->as_object()) {
        if (!file.is_string())
          return absl::InvalidArgumentError(StrCat(index.string(), ": bad weight_map"));
        if (!w.files_.contains(file.as_string())) {
          ASSIGN_OR_RETURN(w.files_[file.as_string()],
                           nn::SafetensorsFile::Open((dir / file.as_string()).string()));
        }
        w.by_name_[name] = w.files_[file.as_string()].get();
      }
    } else {
      ASSIGN_OR_RETURN(auto f, nn::SafetensorsFile::Open((dir / "model.safetensors").string()));
      for (const auto& [name, info] : f->tensors()) w.by_name_[name] = f.get();
      w.files_["model.safetensors"] = std::move(f);
    }
    return w;
  }
  bool Has(const std::string& name) const { return by_name_.contains(name); }
  // A tensor as stored when float16 or bfloat16 (halving the memory a
  // float32 copy takes), else as float32.
  absl::StatusOr<WeightTensor> Read(const std::string& name, std::vector<int64_t> shape) const {
    auto it = by_name_.find(name);
    if (it == by_name_.end()) return absl::InvalidArgumentError(StrCat("missing tensor ", name));
    ASSIGN_OR_RETURN(const nn::TensorInfo* info, it->second->Find(name, shape));
    if (info->dtype == nn::DType::kBF16 || info->dtype == nn::DType::kF16) {
      std::vector<uint16_t> v(static_cast<size_t>(info->elements()));
      std::memcpy(v.data(), info->bytes.data(), v.size() * 2);
      return info->dtype == nn::DType::kBF16 ? WeightTensor::BF16(std::move(v))
                                             : WeightTensor::F16(std::move(v));
    }
    ASSIGN_OR_RETURN(std::vector<float> f, it->second->ReadFloat(name, shape));
    return WeightTensor::F32(std::move(f));
  }

 private:
  std::map<std::string, std::shared_ptr<nn::SafetensorsFile>> files_;
  std::map<std::string, const nn::SafetensorsFile*> by_name_;
};

}  // namespace

absl::StatusOr<LlamaConfig> ParseHfConfig(const Json& j) {
  const std::string type = String(j, "model_type");
  if (type != "llama" && type != "qwen2" && type != "mistral") {
    return absl::InvalidArgumentError(
        StrCat("config.json: model_type \"", type, "\" is not supported (llama, qwen2, mistral)"));
  }
  LlamaConfig c;
  c.dim = static_cast<int>(Number(j, "hidden_size", 0));
  c.hidden_dim = static_cast<int>(Number(j, "intermediate_size", 0));
  c.n_layers = static_cast<int>(Number(j, "num_hidden_layers", 0));
  c.n_heads = static_cast<int>(Number(j, "num_attention_heads", 0));
  c.n_kv_heads = static_cast<int>(Number(j, "num_key_value_heads", c.n_heads));
  c.vocab_size = static_cast<int>(Number(j, "vocab_size", 0));
  c.seq_len = static_cast<int>(Number(j, "max_position_embeddings", 2048));
  c.norm_eps = static_cast<float>(Number(j, "rms_norm_eps", 1e-6));
  c.rope_theta = static_cast<float>(Number(j, "rope_theta", 10000.0));
  c.shared_classifier = Bool(j, "tie_word_embeddings", false);
  if (c.dim <= 0 || c.hidden_dim <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 ||
      c.vocab_size <= 0 || c.seq_len <= 0 || c.dim % c.n_heads != 0 ||
      c.n_heads % c.n_kv_heads != 0 || c.head_size() % 2 != 0) {
    return absl::InvalidArgumentError("config.json: sizes missing or impossible");
  }
  if (Number(j, "head_dim", c.head_size()) != c.head_size()) {
    return absl::InvalidArgumentError(
        "config.json: head_dim other than hidden_size / num_attention_heads is not supported");
  }
  const std::string act = String(j, "hidden_act");
  if (!act.empty() && act != "silu") {
    return absl::InvalidArgumentError(
        StrCat("config.json: hidden_act \"", act, "\" is not supported (silu)"));
  }
  if (Bool(j, "mlp_bias", false))
    return absl::InvalidArgumentError("config.json: mlp_bias is not supported");
  if (const Json* window = Field(j, "sliding_window");
      window != nullptr && window->is_number() &&
      (type == "mistral" || Bool(j, "use_sliding_window", false)) &&
      window->as_number() < c.seq_len) {
    // Within the window, sliding-window attention is full attention.
    c.seq_len = static_cast<int>(window->as_number());
  }
  if (const Json* s = Field(j, "rope_scaling"); s != nullptr) {
    std::string kind = String(*s, "rope_type");
    if (kind.empty()) kind = String(*s, "type");
    RopeScaling& r = c.rope_scaling;
    r.factor = static_cast<float>(Number(*s, "factor", 1.0));
    if (kind == "default" || kind.empty()) {
      r.type = RopeScaling::Type::kNone;
    } else if (kind == "linear") {
      r.type = RopeScaling::Type::kLinear;
    } else if (kind == "llama3") {
      r.type = RopeScaling::Type::kLlama3;
      r.low_freq_factor = static_cast<float>(Number(*s, "low_freq_factor", 1.0));
      r.high_freq_factor = static_cast<float>(Number(*s, "high_freq_factor", 4.0));
      r.original_context = static_cast<int>(Number(*s, "original_max_position_embeddings", 8192));
      if (r.high_freq_factor <= r.low_freq_factor || r.original_context <= 0) {
        return absl::InvalidArgumentError("config.json: bad llama3 rope_scaling");
      }
    } else {
      return absl::InvalidArgumentError(StrCat("config.json: rope_scaling type \"", kind,
                                               "\" is not supported (linear, llama3)"));
    }
    if (!(r.factor > 0))
      return absl::InvalidArgumentError("config.json: rope_scaling factor must be > 0");
  }
  return c;
}

absl::StatusOr<LoadedModel> LoadHfModel(const std::string& dir_name) {
  const std::filesystem::path dir(dir_name);
  ASSIGN_OR_RETURN(Json config_json, ReadJson(dir / "config.json"));
  auto parsed = ParseHfConfig(config_json);
  if (!parsed.ok())
    return absl::Status(parsed.status().code(), StrCat(dir_name, "/", parsed.status().message()));
  LlamaConfig c = *parsed;
  const bool bias =
      String(config_json, "model_type") == "qwen2" || Bool(config_json, "attention_bias", false);
  ASSIGN_OR_RETURN(WeightFiles files, WeightFiles::Open(dir));
  const int64_t dim = c.dim, hid = c.hidden_dim, kv = c.kv_dim(), vocab = c.vocab_size;
  LlamaWeights<WeightTensor> w;
  auto read = [&](const std::string& name,
                  std::vector<int64_t> shape) -> absl::StatusOr<WeightTensor> {
    auto t = files.Read(name, std::move(shape));
    if (!t.ok())
      return absl::Status(t.status().code(), StrCat(dir_name, ": ", t.status().message()));
    return t;
  };
  ASSIGN_OR_RETURN(w.embedding, read("model.embed_tokens.weight", {vocab, dim}));
  struct Part {
    WeightTensor* group;
    const char* name;
    std::vector<int64_t> shape;
    int rotate_heads;  // Q/K: heads to reorder; 0: none.
  };
  const std::vector<Part> parts = {
      {&w.rms_att, "input_layernorm.weight", {dim}, 0},
      {&w.wq, "self_attn.q_proj.weight", {dim, dim}, c.n_heads},
      {&w.wk, "self_attn.k_proj.weight", {kv, dim}, c.n_kv_heads},
      {&w.wv, "self_attn.v_proj.weight", {kv, dim}, 0},
      {&w.wo, "self_attn.o_proj.weight", {dim, dim}, 0},
      {&w.rms_ffn, "post_attention_layernorm.weight", {dim}, 0},
      {&w.w1, "mlp.gate_proj.weight", {hid, dim}, 0},
      {&w.w2, "mlp.down_proj.weight", {dim, hid}, 0},
      {&w.w3, "mlp.up_proj.weight", {hid, dim}, 0},
      {&w.bq, "self_attn.q_proj.bias", {dim}, c.n_heads},
      {&w.bk, "self_attn.k_proj.bias", {kv}, c.n_kv_heads},
      {&w.bv, "self_attn.v_proj.bias", {kv}, 0},
  };
  const bool is_bias[] = {false, false, false, false, false, false,
                          false, false, false, true,  true,  true};
  std::vector<std::vector<WeightTensor>> layer_parts(parts.size());  // Per part, its layers.
  for (int l = 0; l < c.n_layers; ++l) {
    for (size_t k = 0; k < parts.size(); ++k) {
      const Part& p = parts[k];
      if (is_bias[k] && !bias) continue;
      ASSIGN_OR_RETURN(WeightTensor t, read(StrCat("model.layers.", l, ".", p.name), p.shape));
      if (p.rotate_heads > 0) {
        t = RotateHalfToInterleaved(t, 1, p.rotate_heads, c.head_size(),
                                    p.shape.size() == 2 ? p.shape[1] : 1);
      }
      layer_parts[k].push_back(std::move(t));
    }
  }
  for (size_t k = 0; k < parts.size(); ++k) {
    if (!layer_parts[k].empty()) *parts[k].group = WeightTensor::Concat(layer_parts[k]);
  }
  ASSIGN_OR_RETURN(w.rms_final, read("model.norm.weight", {dim}));
  if (files.Has("lm_head.weight") && !c.shared_classifier) {
    ASSIGN_OR_RETURN(w.classifier, read("lm_head.weight", {vocab, dim}));
  } else {
    c.shared_classifier = true;  // The classifier stays empty: FromTensors shares the embedding.
  }
  LoadedModel out;
  ASSIGN_OR_RETURN(out.model, LlamaModel::FromTensors(c, std::move(w)));

  // Tokenizer and its special tokens.
  ASSIGN_OR_RETURN(auto tokenizer, nn::Tokenizer::FromFile((dir / "tokenizer.json").string()));
  TokenizerInfo info;
  Json tok_config;
  if (std::filesystem::exists(dir / "tokenizer_config.json")) {
    ASSIGN_OR_RETURN(tok_config, ReadJson(dir / "tokenizer_config.json"));
  }
  Json gen_config;
  if (std::filesystem::exists(dir / "generation_config.json")) {
    ASSIGN_OR_RETURN(gen_config, ReadJson(dir / "generation_config.json"));
  }
  info.bos_token = TokenText(tok_config, "bos_token");
  info.eos_token = TokenText(tok_config, "eos_token");
  info.bos_id = static_cast<int>(Number(config_json, "bos_token_id", -1));
  if (!info.bos_token.empty()) info.bos_id = tokenizer->TokenToId(info.bos_token);
  if (info.bos_id >= 0 && info.bos_token.empty())
    info.bos_token = tokenizer->IdToToken(info.bos_id);
  // Whether prompts start with BOS: tokenizer_config's add_bos_token, else
  // whether tokenizer.json's post-processor puts it there.
  auto probe = tokenizer->Encode("a", /*add_special=*/true);
  const bool template_bos = probe.ok() && !probe->ids.empty() && probe->ids[0] == info.bos_id;
  info.add_bos = info.bos_id >= 0 && Bool(tok_config, "add_bos_token", template_bos);
  auto add_end = [&](const Json* v) {
    if (v == nullptr) return;
    if (v->is_number()) info.end_ids.push_back(static_cast<int>(v->as_number()));
    if (v->is_array()) {
      for (const Json& e : v->as_array()) {
        if (e.is_number()) info.end_ids.push_back(static_cast<int>(e.as_number()));
      }
    }
  };
  add_end(Field(config_json, "eos_token_id"));
  add_end(Field(gen_config, "eos_token_id"));
  if (!info.eos_token.empty()) {
    const int id = tokenizer->TokenToId(info.eos_token);
    if (id >= 0) info.end_ids.push_back(id);
  }
  if (info.eos_token.empty() && !info.end_ids.empty())
    info.eos_token = tokenizer->IdToToken(info.end_ids[0]);
  if (const Json* t = Field(tok_config, "chat_template"); t != nullptr) {
    if (t->is_string()) {
      info.chat_template = t->as_string();
    } else if (t->is_array()) {  // Named templates: the "default" one.
      for (const Json& e : t->as_array()) {
        if (String(e, "name") == "default") info.chat_template = String(e, "template");
      }
    }
  }
  if (info.chat_template.empty() && std::filesystem::exists(dir / "chat_template.jinja")) {
    std::ifstream in(dir / "chat_template.jinja", std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    info.chat_template = ss.str();
  }
  if (static_cast<int>(tokenizer->vocab_size()) > c.vocab_size) {
    return absl::InvalidArgumentError(StrCat(dir_name, ": tokenizer has ", tokenizer->vocab_size(),
                                             " tokens, more than the model's vocab_size ",
                                             c.vocab_size));
  }
  out.tokenizer = std::make_unique<HfTokenizer>(std::move(tokenizer), std::move(info));
  return out;
}

}  // namespace quiver::llm
