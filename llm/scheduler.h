// Continuous batching for generation: requests join the running batch
// between steps and leave when done; each step feeds every active sequence
// (a chunk of its prompt while prefilling, else its last token) through one
// batched forward pass over a paged KV cache. KV blocks for a request's
// whole budget (prompt + max_tokens) are reserved when it is admitted, so
// admitted requests never stall; others wait in the queue.
#ifndef QUIVER_LLM_SCHEDULER_H_
#define QUIVER_LLM_SCHEDULER_H_

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "llm/engine.h"
#include "llm/model.h"
#include "llm/tokenizer.h"

namespace quiver::llm {

struct GenerateParams {
  std::string prompt;
  std::optional<bool> add_bos;   // BOS first? Unset: as the tokenizer does for plain text.
  float temperature = 0;         // 0: greedy.
  float top_p = 1;               // (0, 1): nucleus sampling.
  int top_k = 0;                 // > 0: only the k most likely tokens.
  float repetition_penalty = 1;  // > 1 discourages tokens already seen.
  uint64_t seed = 1;
  int max_tokens = 256;           // New tokens at most (context permitting).
  std::vector<std::string> stop;  // Generation ends before any of these.
};

enum class FinishReason { kNone, kStop, kLength, kCancelled };

struct TokenEvent {
  int token = -1;    // -1 on the final event.
  std::string text;  // New text (held back while it may start a stop sequence).
  bool done = false;
  FinishReason reason = FinishReason::kNone;
  int prompt_tokens = 0, completion_tokens = 0;
  int cached_prompt_tokens = 0;  // Prompt positions taken from the prefix cache.
};

struct SchedulerOptions {
  int max_seqs = 64;           // Sequences decoding at once.
  int max_batch_tokens = 512;  // Rows per step (prefill chunks share it).
  int block_size = 16;         // Positions per KV block.
  // KV cache size: kv_blocks when > 0, else as many blocks as kv_cache_bytes
  // holds (at least one full context, at most max_seqs full contexts).
  size_t kv_blocks = 0;
  size_t kv_cache_bytes = size_t{1} << 30;
  size_t max_queue = 1024;  // Waiting requests before RESOURCE_EXHAUSTED.
  // Share full KV blocks of prompt prefixes between requests (PrefixCache):
  // a request whose prompt starts like an earlier one's skips computing
  // those positions. Outputs are the same either way.
  bool prefix_cache = true;
};

// KV blocks for a cache sized by `options` (kv_blocks, else kv_cache_bytes
// clamped to one..max_seqs full contexts).
size_t KvCacheBlocks(const LlamaConfig& config, const SchedulerOptions& options);
// The most rows a step of a scheduler with `options` can have: every
// decoding sequence's row, then prompt rows within max_batch_tokens (each
// prompt still being fed gets at least one).
int MaxStepRows(const SchedulerOptions& options);

class TokenStream;

class Scheduler {
 public:
  // Steps run on `engine` (its block size must be options.block_size; its
  // pool's size replaces kv_blocks / kv_cache_bytes). The tokenizer must
  // outlive the scheduler.
  Scheduler(std::unique_ptr<DecodeEngine> engine, const Tokenizer* tokenizer,
            SchedulerOptions options);
  // On the CPU engine with a cache of KvCacheBlocks(config, options); the
  // model and tokenizer must outlive the scheduler.
  Scheduler(const LlamaModel* model, const Tokenizer* tokenizer, SchedulerOptions options);
  ~Scheduler();  // Cancels what runs and waits.

  class Handle {
   public:
    void Cancel() { cancelled_.store(true); }

   private:
    friend class Scheduler;
    std::atomic<bool> cancelled_{false};
  };
  // Queues a generation. `on_event` runs on the scheduler thread for every
  // token and once with done = true (also after Cancel); it must not block.
  // `gone`, when set, is asked on the scheduler thread before every step
  // while the request waits or runs (it must be cheap and thread-safe, such
  // as a transport's "has the client gone away?"); once it says true the
  // generation ends as kCancelled, as after Cancel.
  // INVALID_ARGUMENT for bad parameters or a prompt that fills the context;
  // RESOURCE_EXHAUSTED when the queue is full; UNAVAILABLE while shutting down.
  absl::StatusOr<std::shared_ptr<Handle>> Submit(GenerateParams params,
                                                 std::function<void(const TokenEvent&)> on_event,
                                                 std::function<bool()> gone = nullptr);
  // Submit, with the events read by a consumer thread (TokenStream::Next)
  // instead of a callback. Same errors as Submit.
  absl::StatusOr<std::unique_ptr<TokenStream>> Stream(GenerateParams params,
                                                      std::function<bool()> gone = nullptr);

  struct Stats {
    uint64_t steps = 0, rows = 0, max_active = 0;
    uint64_t prompt_tokens = 0, cached_prompt_tokens = 0;  // Of admitted requests.
    uint64_t generated_tokens = 0;
    size_t queued = 0, running = 0;  // Requests waiting and generating now.
  };
  Stats stats() const;
  const SchedulerOptions& options() const { return options_; }
  const LlamaConfig& config() const { return engine_->config(); }
  std::string_view device() const { return engine_->device(); }

 private:
  struct Sequence;
  void Loop();
  void Finish(Sequence& s, FinishReason reason);
  int SampleNext(Sequence& s, std::vector<float> logits);
  void Emit(Sequence& s, int token);

  const std::unique_ptr<DecodeEngine> engine_;
  KvBlockPool& cache_;  // engine_'s.
  PrefixCache prefix_;  // Over cache_; owns every allocation.
  const Tokenizer* tokenizer_;
  const SchedulerOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::vector<std::unique_ptr<Sequence>> active_;  // Scheduler thread only.
  bool stopping_ = false;
  Stats stats_;
  std::atomic<uint64_t> generated_tokens_{0};
  std::thread thread_;
};

// One generation's events for a thread other than the scheduler's: they
// queue as the scheduler makes them and Next() hands them out in order.
// Thread-safe; destroying the stream cancels a generation still running.
class TokenStream {
 public:
  ~TokenStream();
  // Blocks until the next event; the last one has done = true.
  // REQUIRES: the last event was not returned yet.
  TokenEvent Next();
  // Ends the generation early: a final event with kCancelled follows (unless
  // it had just finished otherwise).
  void Cancel();

 private:
  friend class Scheduler;
  struct Queue {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<TokenEvent> events;
  };
  TokenStream() : queue_(std::make_shared<Queue>()) {}
  // Shared with the scheduler's callback, which may outlive this object.
  std::shared_ptr<Queue> queue_;
  std::shared_ptr<Scheduler::Handle> handle_;
  bool done_ = false;
};

}  // namespace quiver::llm

#endif  // QUIVER_LLM_SCHEDULER_H_
