// The generative model a server serves: loaded by path (llm::LoadModel), on
// a decode engine (CPU or CUDA) behind a continuous-batching scheduler, with
// its chat template. Turns a transport-neutral request (prompt or chat
// messages, sampling settings where zero means "the default") into a token
// stream; every transport (gRPC, HTTP) and the RAG pipeline go through here,
// so they validate and default alike. Thread-safe.
#ifndef QUIVER_LLM_GENERATOR_H_
#define QUIVER_LLM_GENERATOR_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "llm/chat_template.h"
#include "llm/load.h"
#include "llm/scheduler.h"
#include "llm/tokenizer.h"

namespace quiver::llm {

struct GeneratorOptions {
  LoadOptions model;            // REQUIRES: model.path non-empty.
  std::string device = "auto";  // auto | cpu | cuda (NewDecodeEngine).
  SchedulerOptions scheduler;
};

// New tokens when a request does not say (OpenAI's and llama.cpp's servers
// default similarly); a request never gets more than the context holds.
inline constexpr uint32_t kDefaultMaxTokens = 256;

// One generation as a client asks for it. Zero means "the default" for every
// number, as in the wire formats.
struct GenerationRequest {
  std::string model;  // Empty, or the served model's name.
  // Exactly one of a prompt (plain text) and chat messages (rendered by the
  // model's chat template).
  std::string prompt;
  std::vector<ChatMessage> messages;
  float temperature = 0;         // 0: greedy.
  uint32_t top_k = 0;            // 0: off.
  float top_p = 0;               // 0: 1 (off).
  float repetition_penalty = 0;  // 0: 1 (off).
  uint64_t seed = 0;             // 0: from the clock.
  uint32_t max_tokens = 0;       // 0: kDefaultMaxTokens.
  std::vector<std::string> stop;
};

class Generator {
 public:
  // The loader's errors; UNAVAILABLE / RESOURCE_EXHAUSTED from the decode
  // engine (no such device, or too little memory for the KV cache).
  static absl::StatusOr<std::unique_ptr<Generator>> Load(const GeneratorOptions& options);
  ~Generator();

  const std::string& name() const { return name_; }
  std::string_view device() const { return scheduler_->device(); }
  int context_length() const { return scheduler_->config().seq_len; }
  const Tokenizer& tokenizer() const { return *loaded_.tokenizer; }
  const LlamaConfig& config() const { return scheduler_->config(); }
  Scheduler& scheduler() { return *scheduler_; }
  // Host memory of its weights (kept on the host when decoding on a GPU
  // too) and of its KV cache (0 when the cache lives on the GPU).
  size_t weight_bytes() const { return loaded_.model->weight_bytes(); }
  size_t host_kv_cache_bytes() const { return host_kv_cache_bytes_; }
  bool has_chat_template() const { return chat_template_ != nullptr; }

  // The model's chat template applied to `messages`. INVALID_ARGUMENT when
  // the model has no usable template or it rejects the conversation.
  absl::StatusOr<RenderedChat> RenderChat(const std::vector<ChatMessage>& messages) const;

  // The scheduler's parameters for `request`, defaults applied.
  // NOT_FOUND for another model's name; INVALID_ARGUMENT for both or neither
  // of prompt and messages, a message without a role, text that is not UTF-8
  // or a template that rejects the messages. (Ranges are the scheduler's.)
  absl::StatusOr<GenerateParams> Prepare(const GenerationRequest& request) const;
  // Prepare, then Scheduler::Stream (its errors too).
  absl::StatusOr<std::unique_ptr<TokenStream>> Start(const GenerationRequest& request,
                                                     std::function<bool()> gone = nullptr);

 private:
  Generator() = default;
  LoadedModel loaded_;
  std::string name_;
  std::unique_ptr<Scheduler> scheduler_;
  size_t host_kv_cache_bytes_ = 0;
  std::unique_ptr<ChatTemplate> chat_template_;
  absl::Status chat_template_error_;  // Why there is none.
};

}  // namespace quiver::llm

#endif  // QUIVER_LLM_GENERATOR_H_
