#include "llm/generator.h"

#include <algorithm>

#include "absl/time/clock.h"
#include "common/coding.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "llm/engine.h"

namespace quiver::llm {

absl::StatusOr<std::unique_ptr<Generator>> Generator::Load(const GeneratorOptions& options) {
  std::unique_ptr<Generator> g(new Generator());
  ASSIGN_OR_RETURN(g->loaded_, LoadModel(options.model));
  g->name_ = ModelName(options.model.path);
  const LlamaModel* model = g->loaded_.model.get();
  ASSIGN_OR_RETURN(
      std::unique_ptr<DecodeEngine> engine,
      NewDecodeEngine(model, options.device, KvCacheBlocks(model->config(), options.scheduler),
                      options.scheduler.block_size, MaxStepRows(options.scheduler)));
  g->scheduler_ =
      std::make_unique<Scheduler>(std::move(engine), g->loaded_.tokenizer.get(), options.scheduler);
  if (g->scheduler_->device() == "cpu") {
    g->host_kv_cache_bytes_ = KvCacheBlocks(model->config(), options.scheduler) *
                              KvBlockBytes(model->config(), options.scheduler.block_size);
  }
  const std::string& source = g->loaded_.tokenizer->info().chat_template;
  if (source.empty()) {
    g->chat_template_error_ = absl::InvalidArgumentError(
        StrCat("model ", g->name_, " has no chat template; send a prompt instead of messages"));
  } else if (auto t = ChatTemplate::Parse(source); t.ok()) {
    g->chat_template_ = *std::move(t);
  } else {
    g->chat_template_error_ = absl::InvalidArgumentError(
        StrCat("model ", g->name_, "'s chat template cannot be used: ", t.status().message()));
    Log(LogLevel::kWarning, "chat template not usable; messages requests will be refused",
        {{"model", g->name_}, {"error", std::string(t.status().message())}});
  }
  const LlamaConfig& c = model->config();
  Log(LogLevel::kInfo, "generator loaded",
      {{"model", g->name_},
       {"dim", c.dim},
       {"layers", c.n_layers},
       {"context", c.seq_len},
       {"max_seqs", options.scheduler.max_seqs},
       {"device", std::string(g->device())}});
  return g;
}

Generator::~Generator() {
  scheduler_.reset();  // Stops the steps before the model goes.
}

absl::StatusOr<RenderedChat> Generator::RenderChat(const std::vector<ChatMessage>& messages) const {
  if (chat_template_ == nullptr) return chat_template_error_;
  return llm::RenderChat(*chat_template_, loaded_.tokenizer->info(), messages);
}

absl::StatusOr<GenerateParams> Generator::Prepare(const GenerationRequest& req) const {
  if (!req.model.empty() && req.model != name_) {
    return absl::NotFoundError(
        StrCat("no generative model ", Quoted(req.model), "; this server has ", Quoted(name_)));
  }
  GenerateParams p;
  if (!req.messages.empty()) {
    if (!req.prompt.empty())
      return absl::InvalidArgumentError("send a prompt or messages, not both");
    for (size_t i = 0; i < req.messages.size(); ++i) {
      const ChatMessage& m = req.messages[i];
      if (m.role.empty()) return absl::InvalidArgumentError(StrCat("message ", i, " has no role"));
      if (!IsValidUtf8(m.role) || !IsValidUtf8(m.content)) {
        return absl::InvalidArgumentError(StrCat("message ", i, " is not valid UTF-8"));
      }
    }
    ASSIGN_OR_RETURN(RenderedChat rendered, RenderChat(req.messages));
    p.prompt = std::move(rendered.text);
    p.add_bos = rendered.add_bos;
  } else {
    if (!IsValidUtf8(req.prompt)) return absl::InvalidArgumentError("prompt is not valid UTF-8");
    p.prompt = req.prompt;
  }
  p.temperature = req.temperature;
  p.top_k = static_cast<int>(std::min<uint32_t>(req.top_k, tokenizer().vocab_size()));
  p.top_p = req.top_p == 0 ? 1.0f : req.top_p;
  p.repetition_penalty = req.repetition_penalty == 0 ? 1.0f : req.repetition_penalty;
  p.seed = req.seed != 0 ? req.seed : static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
  // More than the context holds could never be generated; the scheduler
  // stops at the context's end in any case.
  const uint32_t asked = req.max_tokens == 0 ? kDefaultMaxTokens : req.max_tokens;
  p.max_tokens = static_cast<int>(std::min<uint32_t>(asked, context_length()));
  p.stop = req.stop;
  return p;
}

absl::StatusOr<std::unique_ptr<TokenStream>> Generator::Start(const GenerationRequest& request,
                                                              std::function<bool()> gone) {
  ASSIGN_OR_RETURN(GenerateParams params, Prepare(request));
  return scheduler_->Stream(std::move(params), std::move(gone));
}

}  // namespace quiver::llm
