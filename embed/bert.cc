#include "embed/bert.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "common/json.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "nn/safetensors.h"

namespace quiver::embed {
namespace {

// The parsed JSON file, or null when it does not exist.
absl::StatusOr<Json> ReadJson(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Json();
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = ParseJson(ss.str());
  if (!j.ok()) {
    return absl::InvalidArgumentError(StrCat(path, ": ", std::string(j.status().message())));
  }
  return *std::move(j);
}

int64_t IntField(const Json& j, std::string_view key, int64_t fallback) {
  const Json* v = j.Find(key);
  return v != nullptr && v->is_number() ? static_cast<int64_t>(v->as_number()) : fallback;
}

}  // namespace

absl::StatusOr<std::unique_ptr<BertEncoder>> BertEncoder::Load(const std::string& dir,
                                                               nn::Backend* backend) {
  auto m = LoadOnBackend(dir, backend);
  // Taken on every path, so no failed upload is left to the thread's next call.
  RETURN_IF_ERROR(backend->TakeError());
  return m;
}

absl::StatusOr<std::unique_ptr<BertEncoder>> BertEncoder::LoadOnBackend(const std::string& dir,
                                                                        nn::Backend* backend) {
  auto m = std::unique_ptr<BertEncoder>(new BertEncoder());
  m->backend_ = backend;
  ASSIGN_OR_RETURN(Json config_json, ReadJson(dir + "/config.json"));
  const Json* config = &config_json;
  if (!config->is_object()) return absl::NotFoundError(StrCat(dir, ": no config.json"));
  BertConfig& c = m->config_;
  c.vocab_size = IntField(*config, "vocab_size", 0);
  c.hidden = IntField(*config, "hidden_size", 0);
  c.layers = IntField(*config, "num_hidden_layers", 0);
  c.heads = IntField(*config, "num_attention_heads", 0);
  c.intermediate = IntField(*config, "intermediate_size", 0);
  c.max_positions = IntField(*config, "max_position_embeddings", 512);
  c.type_vocab = IntField(*config, "type_vocab_size", 2);
  if (const Json* eps = config->Find("layer_norm_eps"); eps != nullptr && eps->is_number()) {
    c.layer_norm_eps = static_cast<float>(eps->as_number());
  }
  if (c.vocab_size <= 0 || c.hidden <= 0 || c.layers <= 0 || c.heads <= 0 || c.intermediate <= 0 ||
      c.hidden % c.heads != 0) {
    return absl::InvalidArgumentError(
        StrCat(dir,
               "/config.json: needs positive vocab_size, hidden_size, num_hidden_layers, "
               "num_attention_heads (dividing hidden_size) and intermediate_size"));
  }
  const Json* act = config->Find("hidden_act");
  if (act != nullptr && act->is_string() && act->as_string() != "gelu") {
    return absl::InvalidArgumentError(StrCat(dir, "/config.json: hidden_act ", act->as_string(),
                                             " is not supported (gelu only)"));
  }
  const Json* pos_type = config->Find("position_embedding_type");
  if (pos_type != nullptr && pos_type->is_string() && pos_type->as_string() != "absolute") {
    return absl::InvalidArgumentError(StrCat(dir, "/config.json: position_embedding_type ",
                                             pos_type->as_string(), " is not supported"));
  }
  ASSIGN_OR_RETURN(m->tokenizer_, nn::Tokenizer::FromFile(dir + "/tokenizer.json"));
  ASSIGN_OR_RETURN(auto file, nn::SafetensorsFile::Open(dir + "/model.safetensors"));
  const std::string prefix = file->Has("bert.embeddings.word_embeddings.weight") ? "bert." : "";
  auto load = [&](const std::string& name,
                  std::vector<int64_t> shape) -> absl::StatusOr<nn::Tensor> {
    std::string full = prefix + name;
    // Old checkpoints name LayerNorm parameters gamma and beta.
    if (!file->Has(full) && name.ends_with("LayerNorm.weight")) {
      full = prefix + name.substr(0, name.size() - 6) + "gamma";
    } else if (!file->Has(full) && name.ends_with("LayerNorm.bias")) {
      full = prefix + name.substr(0, name.size() - 4) + "beta";
    }
    ASSIGN_OR_RETURN(std::vector<float> host, file->ReadFloat(full, shape));
    return backend->Upload(host, shape);
  };
  const int64_t h = c.hidden, f = c.intermediate;
  ASSIGN_OR_RETURN(m->word_, load("embeddings.word_embeddings.weight", {c.vocab_size, h}));
  ASSIGN_OR_RETURN(m->position_,
                   load("embeddings.position_embeddings.weight", {c.max_positions, h}));
  ASSIGN_OR_RETURN(m->type_, load("embeddings.token_type_embeddings.weight", {c.type_vocab, h}));
  ASSIGN_OR_RETURN(m->emb_ln_g_, load("embeddings.LayerNorm.weight", {h}));
  ASSIGN_OR_RETURN(m->emb_ln_b_, load("embeddings.LayerNorm.bias", {h}));
  for (int64_t i = 0; i < c.layers; ++i) {
    const std::string p = StrCat("encoder.layer.", i, ".");
    Layer L;
    ASSIGN_OR_RETURN(L.q_w, load(p + "attention.self.query.weight", {h, h}));
    ASSIGN_OR_RETURN(L.q_b, load(p + "attention.self.query.bias", {h}));
    ASSIGN_OR_RETURN(L.k_w, load(p + "attention.self.key.weight", {h, h}));
    ASSIGN_OR_RETURN(L.k_b, load(p + "attention.self.key.bias", {h}));
    ASSIGN_OR_RETURN(L.v_w, load(p + "attention.self.value.weight", {h, h}));
    ASSIGN_OR_RETURN(L.v_b, load(p + "attention.self.value.bias", {h}));
    ASSIGN_OR_RETURN(L.o_w, load(p + "attention.output.dense.weight", {h, h}));
    ASSIGN_OR_RETURN(L.o_b, load(p + "attention.output.dense.bias", {h}));
    ASSIGN_OR_RETURN(L.ln1_g, load(p + "attention.output.LayerNorm.weight", {h}));
    ASSIGN_OR_RETURN(L.ln1_b, load(p + "attention.output.LayerNorm.bias", {h}));
    ASSIGN_OR_RETURN(L.up_w, load(p + "intermediate.dense.weight", {f, h}));
    ASSIGN_OR_RETURN(L.up_b, load(p + "intermediate.dense.bias", {f}));
    ASSIGN_OR_RETURN(L.down_w, load(p + "output.dense.weight", {h, f}));
    ASSIGN_OR_RETURN(L.down_b, load(p + "output.dense.bias", {h}));
    ASSIGN_OR_RETURN(L.ln2_g, load(p + "output.LayerNorm.weight", {h}));
    ASSIGN_OR_RETURN(L.ln2_b, load(p + "output.LayerNorm.bias", {h}));
    m->layers_.push_back(std::move(L));
  }
  if (file->Has("classifier.weight")) {
    ASSIGN_OR_RETURN(const nn::TensorInfo* cls, file->Find("classifier.weight"));
    if (cls->shape.size() != 2 || cls->shape[1] != h || cls->shape[0] < 1) {
      return absl::InvalidArgumentError(
          StrCat(dir, ": classifier.weight must be [labels, ", h, "]"));
    }
    c.num_labels = cls->shape[0];
    ASSIGN_OR_RETURN(auto cw, file->ReadFloat("classifier.weight"));
    m->classifier_w_ = backend->Upload(cw, {c.num_labels, h});
    ASSIGN_OR_RETURN(auto cb, file->ReadFloat("classifier.bias", {c.num_labels}));
    m->classifier_b_ = backend->Upload(cb, {c.num_labels});
    ASSIGN_OR_RETURN(m->pooler_w_, load("pooler.dense.weight", {h, h}));
    ASSIGN_OR_RETURN(m->pooler_b_, load("pooler.dense.bias", {h}));
  }
  // sentence-transformers: pooling, normalisation, sequence limit.
  m->max_tokens_ = static_cast<size_t>(c.max_positions);
  ASSIGN_OR_RETURN(Json st, ReadJson(dir + "/sentence_bert_config.json"));
  if (st.is_object()) {
    const int64_t limit = IntField(st, "max_seq_length", 0);
    if (limit > 0) m->max_tokens_ = std::min<size_t>(m->max_tokens_, static_cast<size_t>(limit));
  }
  ASSIGN_OR_RETURN(Json modules, ReadJson(dir + "/modules.json"));
  if (modules.is_array()) {
    for (const Json& mod : modules.as_array()) {
      const Json* type = mod.Find("type");
      const Json* path = mod.Find("path");
      if (type == nullptr || !type->is_string()) continue;
      // Modules this encoder does not run (a Dense projection, say) would
      // change every embedding: refuse them rather than answer wrongly.
      const std::string& t = type->as_string();
      if (!t.ends_with("Transformer") && !t.ends_with("Pooling") && !t.ends_with("Normalize")) {
        return absl::InvalidArgumentError(
            StrCat(dir, "/modules.json: module type \"", t,
                   "\" is not supported (Transformer, Pooling and Normalize are)"));
      }
      if (type->as_string().ends_with("Normalize")) m->normalize_ = true;
      if (type->as_string().ends_with("Pooling") && path != nullptr && path->is_string()) {
        ASSIGN_OR_RETURN(Json pc, ReadJson(dir + "/" + path->as_string() + "/config.json"));
        if (pc.is_object()) {
          const Json* cls = pc.Find("pooling_mode_cls_token");
          const Json* mean = pc.Find("pooling_mode_mean_tokens");
          if (cls != nullptr && cls->is_bool() && cls->as_bool()) m->pooling_ = Pooling::kCls;
          if (mean != nullptr && mean->is_bool() && mean->as_bool()) m->pooling_ = Pooling::kMean;
        }
      }
    }
  }
  return m;
}

absl::StatusOr<nn::Encoding> BertEncoder::Tokenize(const std::string& text) const {
  return tokenizer_->Encode(text, /*add_special=*/true, max_tokens_);
}

absl::StatusOr<nn::Encoding> BertEncoder::TokenizePair(const std::string& a,
                                                       const std::string& b) const {
  return tokenizer_->EncodePair(a, b, /*add_special=*/true, max_tokens_);
}

absl::StatusOr<nn::Tensor> BertEncoder::RunEncoder(const std::vector<nn::Encoding>& batch,
                                                   int64_t* seq_out,
                                                   std::vector<int32_t>* lengths) {
  const BertConfig& c = config_;
  if (batch.empty()) return absl::InvalidArgumentError("empty batch");
  int64_t seq = 0;
  for (const nn::Encoding& e : batch) {
    if (e.ids.empty()) return absl::InvalidArgumentError("a text has no tokens");
    if (static_cast<int64_t>(e.ids.size()) > c.max_positions) {
      return absl::InvalidArgumentError(StrCat(
          "a text has ", e.ids.size(), " tokens; the model takes at most ", c.max_positions));
    }
    seq = std::max<int64_t>(seq, static_cast<int64_t>(e.ids.size()));
  }
  const int64_t b = static_cast<int64_t>(batch.size()), rows = b * seq, h = c.hidden;
  std::vector<int32_t> ids(rows, tokenizer_->pad_id()), pos(rows), types(rows, 0);
  lengths->clear();
  for (int64_t i = 0; i < b; ++i) {
    const nn::Encoding& e = batch[i];
    lengths->push_back(static_cast<int32_t>(e.ids.size()));
    for (int64_t t = 0; t < seq; ++t) pos[i * seq + t] = static_cast<int32_t>(t);
    for (size_t t = 0; t < e.ids.size(); ++t) {
      if (e.ids[t] < 0 || e.ids[t] >= c.vocab_size) {
        return absl::InvalidArgumentError(
            StrCat("token id ", e.ids[t], " is outside the vocabulary"));
      }
      ids[i * seq + t] = e.ids[t];
      const int32_t type = t < e.type_ids.size() ? e.type_ids[t] : 0;
      types[i * seq + t] = std::clamp<int32_t>(type, 0, static_cast<int32_t>(c.type_vocab - 1));
    }
  }
  nn::Backend& be = *backend_;
  nn::Tensor x = be.Alloc({rows, h});
  be.Gather(word_, ids, &x);
  be.GatherAdd(position_, pos, &x);
  be.GatherAdd(type_, types, &x);
  be.LayerNorm(&x, emb_ln_g_, emb_ln_b_, c.layer_norm_eps);
  nn::Tensor q = be.Alloc({rows, h}), k = be.Alloc({rows, h}), v = be.Alloc({rows, h});
  nn::Tensor ctx = be.Alloc({rows, h}), attn = be.Alloc({rows, h});
  nn::Tensor up = be.Alloc({rows, c.intermediate}), down = be.Alloc({rows, h});
  for (const Layer& L : layers_) {
    be.Linear(x, L.q_w, &L.q_b, &q);
    be.Linear(x, L.k_w, &L.k_b, &k);
    be.Linear(x, L.v_w, &L.v_b, &v);
    be.Attention(q, k, v, b, seq, c.heads, *lengths, &ctx);
    be.Linear(ctx, L.o_w, &L.o_b, &attn);
    be.Add(&attn, x);
    be.LayerNorm(&attn, L.ln1_g, L.ln1_b, c.layer_norm_eps);
    be.Linear(attn, L.up_w, &L.up_b, &up);
    be.Gelu(&up);
    be.Linear(up, L.down_w, &L.down_b, &down);
    be.Add(&down, attn);
    be.LayerNorm(&down, L.ln2_g, L.ln2_b, c.layer_norm_eps);
    std::swap(x, down);
  }
  *seq_out = seq;
  return x;
}

absl::StatusOr<std::vector<float>> BertEncoder::Forward(const std::vector<nn::Encoding>& batch,
                                                        int64_t* seq) {
  std::vector<int32_t> lengths;
  ASSIGN_OR_RETURN(nn::Tensor x, RunEncoder(batch, seq, &lengths));
  std::vector<float> hidden = backend_->Download(x);
  RETURN_IF_ERROR(backend_->TakeError());  // Device memory ran out on the way.
  return hidden;
}

absl::StatusOr<std::vector<std::vector<float>>> BertEncoder::EmbedEncoded(
    const std::vector<nn::Encoding>& batch) {
  int64_t seq = 0;
  ASSIGN_OR_RETURN(std::vector<float> hidden, Forward(batch, &seq));
  const int64_t h = config_.hidden;
  std::vector<std::vector<float>> out;
  for (size_t i = 0; i < batch.size(); ++i) {
    std::vector<double> acc(h, 0.0);
    const int64_t len = static_cast<int64_t>(batch[i].ids.size());
    const int64_t take = pooling_ == Pooling::kCls ? 1 : len;
    for (int64_t t = 0; t < take; ++t) {
      const float* row = &hidden[(i * seq + t) * h];
      for (int64_t d = 0; d < h; ++d) acc[d] += row[d];
    }
    std::vector<float> e(h);
    double norm = 0;
    for (int64_t d = 0; d < h; ++d) {
      acc[d] /= static_cast<double>(take);
      norm += acc[d] * acc[d];
    }
    norm = std::sqrt(norm);
    for (int64_t d = 0; d < h; ++d) {
      e[d] = static_cast<float>(normalize_ && norm > 0 ? acc[d] / norm : acc[d]);
    }
    out.push_back(std::move(e));
  }
  return out;
}

absl::StatusOr<std::vector<std::vector<float>>> BertEncoder::Embed(
    const std::vector<std::string>& texts) {
  std::vector<nn::Encoding> batch;
  for (const std::string& t : texts) {
    ASSIGN_OR_RETURN(nn::Encoding e, Tokenize(t));
    batch.push_back(std::move(e));
  }
  return EmbedEncoded(batch);
}

absl::StatusOr<std::vector<float>> BertEncoder::Score(const std::vector<nn::Encoding>& pairs) {
  if (!has_classifier()) {
    return absl::FailedPreconditionError("this model has no classifier head (not a cross-encoder)");
  }
  int64_t seq = 0;
  std::vector<int32_t> lengths;
  ASSIGN_OR_RETURN(nn::Tensor x, RunEncoder(pairs, &seq, &lengths));
  const int64_t b = static_cast<int64_t>(pairs.size()), h = config_.hidden;
  // The pooler reads each sequence's first ([CLS]) state.
  std::vector<float> hidden = backend_->Download(x);
  std::vector<float> cls(b * h);
  for (int64_t i = 0; i < b; ++i) {
    std::copy_n(&hidden[i * seq * h], h, &cls[i * h]);
  }
  nn::Backend& be = *backend_;
  nn::Tensor first = be.Upload(cls, {b, h});
  nn::Tensor pooled = be.Alloc({b, h});
  be.Linear(first, pooler_w_, &pooler_b_, &pooled);
  be.Tanh(&pooled);
  nn::Tensor logits = be.Alloc({b, config_.num_labels});
  be.Linear(pooled, classifier_w_, &classifier_b_, &logits);
  std::vector<float> all = be.Download(logits);
  RETURN_IF_ERROR(be.TakeError());  // Device memory ran out on the way.
  std::vector<float> out(b);
  for (int64_t i = 0; i < b; ++i) out[i] = all[i * config_.num_labels];
  return out;
}

absl::StatusOr<std::vector<float>> BertEncoder::ScorePairs(
    const std::string& query, const std::vector<std::string>& documents) {
  std::vector<nn::Encoding> pairs;
  for (const std::string& d : documents) {
    ASSIGN_OR_RETURN(nn::Encoding e, TokenizePair(query, d));
    pairs.push_back(std::move(e));
  }
  return Score(pairs);
}

}  // namespace quiver::embed
