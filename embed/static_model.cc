#include "embed/static_model.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "common/json.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "nn/safetensors.h"

namespace quiver::embed {

absl::StatusOr<std::unique_ptr<StaticModel>> StaticModel::Load(const std::string& dir) {
  auto m = std::unique_ptr<StaticModel>(new StaticModel());
  ASSIGN_OR_RETURN(m->tokenizer_, nn::Tokenizer::FromFile(dir + "/tokenizer.json"));
  {
    std::ifstream in(dir + "/config.json");
    if (in) {
      std::stringstream ss;
      ss << in.rdbuf();
      auto config = ParseJson(ss.str());
      if (!config.ok()) {
        return absl::InvalidArgumentError(
            StrCat(dir, "/config.json: ", std::string(config.status().message())));
      }
      if (const Json* n = config->Find("normalize"); n != nullptr && n->is_bool()) {
        m->normalize_ = n->as_bool();
      }
    }
  }
  ASSIGN_OR_RETURN(auto file, nn::SafetensorsFile::Open(dir + "/model.safetensors"));
  ASSIGN_OR_RETURN(const nn::TensorInfo* emb, file->Find("embeddings"));
  if (emb->shape.size() != 2 || emb->shape[0] == 0 || emb->shape[1] == 0) {
    return absl::InvalidArgumentError(StrCat(dir, ": \"embeddings\" must be a non-empty matrix"));
  }
  m->dim_ = static_cast<size_t>(emb->shape[1]);
  ASSIGN_OR_RETURN(m->table_, file->ReadFloat("embeddings"));
  const size_t rows = static_cast<size_t>(emb->shape[0]);
  m->vocab_ = rows;
  if (file->Has("mapping")) {
    ASSIGN_OR_RETURN(m->mapping_, file->ReadInt("mapping"));
    m->vocab_ = m->mapping_.size();
    for (int64_t r : m->mapping_) {
      if (r < 0 || static_cast<size_t>(r) >= rows) {
        return absl::InvalidArgumentError(
            StrCat(dir, ": \"mapping\" points outside \"embeddings\""));
      }
    }
  }
  if (file->Has("weights")) {
    ASSIGN_OR_RETURN(m->weights_, file->ReadFloat("weights"));
    if (m->weights_.size() != m->vocab_) {
      return absl::InvalidArgumentError(StrCat(dir, ": \"weights\" has ", m->weights_.size(),
                                               " entries for a vocabulary of ", m->vocab_));
    }
  }
  m->unk_ = m->tokenizer_->TokenToId("[UNK]");
  return m;
}

absl::StatusOr<std::vector<float>> StaticModel::Embed(std::string_view text) const {
  ASSIGN_OR_RETURN(nn::Encoding enc, tokenizer_->Encode(text, /*add_special=*/false));
  return EmbedIds(enc.ids);
}

std::vector<float> StaticModel::EmbedIds(const std::vector<int32_t>& ids) const {
  std::vector<double> sum(dim_, 0.0);
  size_t used = 0;
  for (int32_t id : ids) {
    if (used == kMaxTokens) break;
    if (id == unk_ || id < 0 || static_cast<size_t>(id) >= vocab_) continue;
    const size_t row =
        mapping_.empty() ? static_cast<size_t>(id) : static_cast<size_t>(mapping_[id]);
    const float scale = weights_.empty() ? 1.0f : weights_[id];
    const float* v = &table_[row * dim_];
    for (size_t d = 0; d < dim_; ++d) sum[d] += static_cast<double>(v[d]) * scale;
    ++used;
  }
  std::vector<float> out(dim_, 0.0f);
  if (used == 0) return out;
  double norm = 0;
  for (size_t d = 0; d < dim_; ++d) {
    sum[d] /= static_cast<double>(used);
    norm += sum[d] * sum[d];
  }
  norm = std::sqrt(norm);
  for (size_t d = 0; d < dim_; ++d) {
    out[d] = static_cast<float>(normalize_ && norm > 0 ? sum[d] / norm : sum[d]);
  }
  return out;
}

}  // namespace quiver::embed
