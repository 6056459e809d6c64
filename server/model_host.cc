#include "server/model_host.h"

#include <cmath>
#include <filesystem>

#include "common/coding.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "llm/gguf.h"
#include "llm/hf_model.h"

namespace quiver::server {
namespace {

std::string ModelName(const std::string& dir) {
  std::filesystem::path p(dir);
  if (!p.has_filename()) p = p.parent_path();
  return p.filename().string();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelHost>> ModelHost::Load(const ModelOptions& options) {
  RETURN_IF_ERROR(options.worker.Validate());
  auto host = std::unique_ptr<ModelHost>(new ModelHost());
  host->options_ = options;
  ASSIGN_OR_RETURN(host->backend_, nn::NewBackend(options.device, {options.precision}));
  if (!options.embed_model_dir.empty()) {
    ASSIGN_OR_RETURN(host->embedder_,
                     embed::LoadEmbeddingModel(options.embed_model_dir, host->backend_.get()));
    host->embed_name_ = ModelName(options.embed_model_dir);
    embed::EmbeddingModel* m = host->embedder_.get();
    host->embed_worker_ = std::make_unique<embed::BatchingWorker>(
        [m](const std::vector<nn::Encoding>& batch) { return m->EmbedBatch(batch); },
        options.worker);
    Log(LogLevel::kInfo, "embedding model loaded",
        {{"model", host->embed_name_}, {"kind", m->kind()}, {"dimension", m->dimension()},
         {"device", m->device()},
         {"precision", nn::MatmulPrecisionName(host->backend_->precision())}});
  }
  if (!options.rerank_model_dir.empty()) {
    ASSIGN_OR_RETURN(host->reranker_,
                     embed::LoadRerankModel(options.rerank_model_dir, host->backend_.get()));
    host->rerank_name_ = ModelName(options.rerank_model_dir);
    embed::RerankModel* m = host->reranker_.get();
    host->rerank_worker_ = std::make_unique<embed::BatchingWorker>(
        [m](const std::vector<nn::Encoding>& batch)
            -> absl::StatusOr<std::vector<std::vector<float>>> {
          ASSIGN_OR_RETURN(std::vector<float> scores, m->ScoreBatch(batch));
          std::vector<std::vector<float>> out;
          for (float s : scores) out.push_back({s});
          return out;
        },
        options.worker);
    Log(LogLevel::kInfo, "reranker loaded",
        {{"model", host->rerank_name_}, {"device", host->backend_->name()},
         {"precision", nn::MatmulPrecisionName(host->backend_->precision())}});
  }
  if (!options.llm_model_path.empty()) {
    if (options.llm_model_path.ends_with(".gguf")) {
      // GGUF carries its tokenizer.
      ASSIGN_OR_RETURN(llm::GgufModel g, llm::LoadGguf(options.llm_model_path));
      host->llm_ = std::move(g.model);
      host->llm_tokenizer_ = std::move(g.tokenizer);
    } else if (std::filesystem::is_directory(options.llm_model_path)) {
      // A Hugging Face directory: config.json, safetensors, tokenizer.json.
      ASSIGN_OR_RETURN(llm::LoadedLlm hf, llm::LoadHfModel(options.llm_model_path));
      host->llm_ = std::move(hf.model);
      host->llm_tokenizer_ = std::move(hf.tokenizer);
    } else {
      ASSIGN_OR_RETURN(host->llm_, llm::LlamaModel::LoadLlama2c(options.llm_model_path));
      std::string tok = options.llm_tokenizer_path;
      if (tok.empty()) {
        tok = (std::filesystem::path(options.llm_model_path).parent_path() / "tokenizer.bin").string();
      }
      ASSIGN_OR_RETURN(host->llm_tokenizer_,
                       llm::Llama2cTokenizer::Load(tok, host->llm_->config().vocab_size));
    }
    if (options.llm_max_context > 0) host->llm_->LimitContext(options.llm_max_context);
    host->llm_name_ = std::filesystem::is_directory(options.llm_model_path)
                          ? ModelName(options.llm_model_path)
                          : std::filesystem::path(options.llm_model_path).stem().string();
    ASSIGN_OR_RETURN(std::unique_ptr<llm::DecodeEngine> engine,
                     llm::NewDecodeEngine(host->llm_.get(), options.device,
                                          llm::KvCacheBlocks(host->llm_->config(), options.scheduler),
                                          options.scheduler.block_size, llm::MaxStepRows(options.scheduler)));
    host->scheduler_ = std::make_unique<llm::Scheduler>(std::move(engine), host->llm_tokenizer_.get(),
                                                        options.scheduler);
    const std::string& source = host->llm_tokenizer_->info().chat_template;
    if (source.empty()) {
      host->chat_template_error_ = absl::InvalidArgumentError(
          StrCat("model ", host->llm_name_, " has no chat template; send a prompt instead of messages"));
    } else if (auto t = llm::ChatTemplate::Parse(source); t.ok()) {
      host->chat_template_ = *std::move(t);
    } else {
      host->chat_template_error_ = absl::InvalidArgumentError(
          StrCat("model ", host->llm_name_, "'s chat template cannot be used: ", t.status().message()));
      Log(LogLevel::kWarning, "chat template not usable; messages requests will be refused",
          {{"model", host->llm_name_}, {"error", std::string(t.status().message())}});
    }
    const llm::LlamaConfig& c = host->llm_->config();
    Log(LogLevel::kInfo, "generator loaded",
        {{"model", host->llm_name_}, {"dim", c.dim}, {"layers", c.n_layers},
         {"context", c.seq_len}, {"max_seqs", options.scheduler.max_seqs},
         {"device", std::string(host->scheduler_->device())}});
  }
  return host;
}

absl::StatusOr<llm::RenderedChat> ModelHost::RenderChat(
    const std::vector<llm::ChatMessage>& messages) const {
  if (chat_template_ == nullptr) return chat_template_error_;
  return llm::RenderChat(*chat_template_, llm_tokenizer_->info(), messages);
}

ModelHost::~ModelHost() {
  scheduler_.reset();
  // Workers first: they call into the models.
  embed_worker_.reset();
  rerank_worker_.reset();
}

absl::StatusOr<EmbedResult> ModelHost::EmbedTexts(const std::vector<std::string>& texts) {
  if (embedder_ == nullptr) {
    return absl::FailedPreconditionError("no embedding model is loaded (quiverd --embed-model=DIR)");
  }
  if (texts.size() > options_.max_inputs) {
    return absl::InvalidArgumentError(StrCat(texts.size(), " inputs; the limit is ",
                                             options_.max_inputs, " per request"));
  }
  std::vector<nn::Encoding> encodings;
  EmbedResult out;
  for (size_t i = 0; i < texts.size(); ++i) {
    if (!IsValidUtf8(texts[i])) {
      return absl::InvalidArgumentError(StrCat("input ", i, " is not valid UTF-8"));
    }
    ASSIGN_OR_RETURN(nn::Encoding e, embedder_->Tokenize(texts[i]));
    if (e.ids.empty() && embedder_->kind() == "bert") {
      return absl::InvalidArgumentError(StrCat("input ", i, " has no tokens"));
    }
    out.token_counts.push_back(static_cast<uint32_t>(e.ids.size()));
    encodings.push_back(std::move(e));
  }
  ASSIGN_OR_RETURN(out.vectors, embed_worker_->Run(std::move(encodings)));
  return out;
}

absl::StatusOr<std::vector<std::vector<float>>> ModelHost::Embed(
    const std::vector<std::string>& texts) {
  ASSIGN_OR_RETURN(EmbedResult r, EmbedTexts(texts));
  return std::move(r.vectors);
}

absl::StatusOr<std::vector<float>> ModelHost::Rerank(const std::string& query,
                                                     const std::vector<std::string>& documents) {
  if (reranker_ == nullptr) {
    return absl::FailedPreconditionError("no reranker is loaded (quiverd --rerank-model=DIR)");
  }
  if (documents.size() > options_.max_inputs) {
    return absl::InvalidArgumentError(StrCat(documents.size(), " documents; the limit is ",
                                             options_.max_inputs, " per request"));
  }
  if (!IsValidUtf8(query)) return absl::InvalidArgumentError("query is not valid UTF-8");
  std::vector<nn::Encoding> pairs;
  for (size_t i = 0; i < documents.size(); ++i) {
    if (!IsValidUtf8(documents[i])) {
      return absl::InvalidArgumentError(StrCat("document ", i, " is not valid UTF-8"));
    }
    ASSIGN_OR_RETURN(nn::Encoding e, reranker_->TokenizePair(query, documents[i]));
    pairs.push_back(std::move(e));
  }
  ASSIGN_OR_RETURN(auto logits, rerank_worker_->Run(std::move(pairs)));
  std::vector<float> scores;
  for (const auto& l : logits) scores.push_back(1.0f / (1.0f + std::exp(-l[0])));
  return scores;
}

}  // namespace quiver::server
