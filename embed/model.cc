#include "embed/model.h"

#include <fstream>
#include <sstream>

#include "common/json.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "embed/bert.h"
#include "embed/static_model.h"

namespace quiver::embed {
namespace {

class StaticAdapter : public EmbeddingModel {
 public:
  explicit StaticAdapter(std::unique_ptr<StaticModel> m) : m_(std::move(m)) {}
  size_t dimension() const override { return m_->dimension(); }
  size_t max_tokens() const override { return StaticModel::kMaxTokens; }
  std::string_view kind() const override { return "model2vec"; }
  std::string_view device() const override { return "cpu"; }
  absl::StatusOr<nn::Encoding> Tokenize(const std::string& text) const override {
    return m_->tokenizer().Encode(text, /*add_special=*/false);
  }
  absl::StatusOr<size_t> CountTokens(std::string_view text) const override {
    ASSIGN_OR_RETURN(nn::Encoding e, m_->tokenizer().Encode(text, /*add_special=*/false));
    return e.ids.size();
  }
  size_t max_content_tokens() const override { return StaticModel::kMaxTokens; }
  absl::StatusOr<std::vector<std::vector<float>>> EmbedBatch(
      const std::vector<nn::Encoding>& batch) override {
    std::vector<std::vector<float>> out;
    for (const nn::Encoding& e : batch) out.push_back(m_->EmbedIds(e.ids));
    return out;
  }

 private:
  std::unique_ptr<StaticModel> m_;
};

class BertAdapter : public EmbeddingModel, public RerankModel {
 public:
  BertAdapter(std::unique_ptr<BertEncoder> m, const nn::Backend& backend)
      : m_(std::move(m)), device_(backend.name()) {}
  size_t dimension() const override { return m_->dimension(); }
  size_t max_tokens() const override { return m_->max_tokens(); }
  std::string_view kind() const override { return "bert"; }
  std::string_view device() const override { return device_; }
  absl::StatusOr<nn::Encoding> Tokenize(const std::string& text) const override {
    return m_->Tokenize(text);
  }
  absl::StatusOr<size_t> CountTokens(std::string_view text) const override {
    ASSIGN_OR_RETURN(nn::Encoding e, m_->tokenizer().Encode(text, /*add_special=*/false));
    return e.ids.size();
  }
  size_t max_content_tokens() const override {
    auto specials = m_->tokenizer().Encode("", /*add_special=*/true);
    const size_t n = specials.ok() ? specials->ids.size() : 0;
    return m_->max_tokens() > n ? m_->max_tokens() - n : 0;
  }
  absl::StatusOr<std::vector<std::vector<float>>> EmbedBatch(
      const std::vector<nn::Encoding>& batch) override {
    return m_->EmbedEncoded(batch);
  }
  absl::StatusOr<nn::Encoding> TokenizePair(const std::string& q,
                                            const std::string& d) const override {
    return m_->TokenizePair(q, d);
  }
  absl::StatusOr<std::vector<float>> ScoreBatch(const std::vector<nn::Encoding>& pairs) override {
    return m_->Score(pairs);
  }

 private:
  std::unique_ptr<BertEncoder> m_;
  std::string device_;
};

bool IsModel2Vec(const std::string& dir) {
  std::ifstream in(dir + "/config.json");
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = ParseJson(ss.str());
  if (!j.ok()) return false;
  const Json* t = j->Find("model_type");
  return t != nullptr && t->is_string() && t->as_string() == "model2vec";
}

}  // namespace

absl::StatusOr<std::unique_ptr<EmbeddingModel>> LoadEmbeddingModel(const std::string& dir,
                                                                   nn::Backend* backend) {
  if (IsModel2Vec(dir)) {
    ASSIGN_OR_RETURN(auto m, StaticModel::Load(dir));
    return std::unique_ptr<EmbeddingModel>(new StaticAdapter(std::move(m)));
  }
  ASSIGN_OR_RETURN(auto m, BertEncoder::Load(dir, backend));
  return std::unique_ptr<EmbeddingModel>(new BertAdapter(std::move(m), *backend));
}

absl::StatusOr<std::unique_ptr<RerankModel>> LoadRerankModel(const std::string& dir,
                                                             nn::Backend* backend) {
  ASSIGN_OR_RETURN(auto m, BertEncoder::Load(dir, backend));
  if (!m->has_classifier()) {
    return absl::InvalidArgumentError(
        StrCat(dir, ": not a cross-encoder (no classifier.weight in model.safetensors)"));
  }
  return std::unique_ptr<RerankModel>(new BertAdapter(std::move(m), *backend));
}

}  // namespace quiver::embed
