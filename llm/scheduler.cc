#include "llm/scheduler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/status_macros.h"
#include "common/strings.h"
#include "llm/internal/step_team.h"
#include "llm/sampler.h"

namespace quiver::llm {

struct Scheduler::Sequence {
  GenerateParams params;
  std::function<void(const TokenEvent&)> on_event;
  std::function<bool()> gone;  // May be null.
  std::shared_ptr<Handle> handle;
  // Cancelled by the caller, or its client went away.
  bool Cancelled() const { return handle->cancelled_.load() || (gone && gone()); }
  std::vector<int> prompt;  // With BOS.
  std::vector<int> blocks;  // Reserved KV blocks (held in prefix_).
  // Hashes of the prompt's full blocks (PrefixCache::ChainHash), those
  // published so far, and the positions taken from the cache.
  std::vector<uint64_t> block_hashes;
  size_t published = 0;
  int cached = 0;
  int fed = 0;     // Positions in the cache.
  int last = -1;   // The last token (fed next while decoding).
  int budget = 0;  // Positions reserved: prompt + new tokens.
  std::vector<int> generated;
  std::string raw;      // Bytes not yet a whole UTF-8 character.
  std::string pending;  // Text held back (may start a stop sequence).
  std::unique_ptr<Sampler> sampler;
  bool finished = false;
};

int MaxStepRows(const SchedulerOptions& options) {
  return std::max(1, options.max_batch_tokens) + std::max(1, options.max_seqs);
}

size_t KvCacheBlocks(const LlamaConfig& c, const SchedulerOptions& o) {
  if (o.kv_blocks > 0) return o.kv_blocks;
  const size_t per_context = (c.seq_len + o.block_size - 1) / o.block_size;
  const size_t by_bytes = o.kv_cache_bytes / KvBlockBytes(c, o.block_size);
  return std::clamp(by_bytes, per_context, per_context * static_cast<size_t>(o.max_seqs));
}

Scheduler::Scheduler(std::unique_ptr<DecodeEngine> engine, const Tokenizer* tokenizer,
                     SchedulerOptions options)
    : engine_(std::move(engine)),
      cache_(*engine_->pool()),
      prefix_(&cache_),
      tokenizer_(tokenizer),
      options_(options),
      thread_([this] { Loop(); }) {}

Scheduler::Scheduler(const LlamaModel* model, const Tokenizer* tokenizer, SchedulerOptions options)
    : Scheduler(NewCpuEngine(model, KvCacheBlocks(model->config(), options), options.block_size),
                tokenizer, options) {}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

absl::StatusOr<std::shared_ptr<Scheduler::Handle>> Scheduler::Submit(
    GenerateParams params, std::function<void(const TokenEvent&)> on_event,
    std::function<bool()> gone) {
  const LlamaConfig& c = engine_->config();
  if (params.temperature < 0 || !std::isfinite(params.temperature)) {
    return absl::InvalidArgumentError("temperature must be >= 0");
  }
  if (!(params.top_p >= 0 && params.top_p <= 1)) {  // NaN included.
    return absl::InvalidArgumentError("top_p must be in 0..1");
  }
  if (params.top_k < 0) return absl::InvalidArgumentError("top_k must be >= 0");
  if (params.repetition_penalty <= 0 || !std::isfinite(params.repetition_penalty)) {
    return absl::InvalidArgumentError("repetition_penalty must be > 0");
  }
  if (params.max_tokens < 1) return absl::InvalidArgumentError("max_tokens must be >= 1");
  for (const std::string& s : params.stop) {
    if (s.empty()) return absl::InvalidArgumentError("stop sequences must not be empty");
  }
  auto seq = std::make_unique<Sequence>();
  ASSIGN_OR_RETURN(
      seq->prompt,
      tokenizer_->Tokenize(params.prompt, params.add_bos.value_or(tokenizer_->info().add_bos)));
  const int prompt_len = static_cast<int>(seq->prompt.size());
  if (prompt_len == 0) return absl::InvalidArgumentError("the prompt is empty");
  for (int id : seq->prompt) {
    if (id < 0 || id >= c.vocab_size) {
      return absl::InvalidArgumentError(StrCat(
          "the prompt has token id ", id, ", outside the model's vocabulary of ", c.vocab_size));
    }
  }
  if (prompt_len >= c.seq_len) {
    return absl::InvalidArgumentError(
        StrCat("the prompt has ", prompt_len, " tokens; the model's context is ", c.seq_len));
  }
  // The last generated token is never fed, so prompt + max_tokens - 1
  // positions suffice.
  seq->budget = std::min(c.seq_len, prompt_len + params.max_tokens - 1);
  const size_t blocks = (seq->budget + cache_.block_size() - 1) / cache_.block_size();
  if (blocks > cache_.total_blocks()) {
    return absl::InvalidArgumentError("the request needs more KV cache than the server has");
  }
  if (options_.prefix_cache) {
    const int bs = cache_.block_size();
    uint64_t h = 0;
    for (int b = 0; (b + 1) * bs <= prompt_len; ++b) {
      h = PrefixCache::ChainHash(h, seq->prompt.data() + static_cast<size_t>(b) * bs, bs);
      seq->block_hashes.push_back(h);
    }
  }
  seq->sampler = std::make_unique<Sampler>(params.temperature, params.top_p, params.seed);
  seq->params = std::move(params);
  seq->on_event = std::move(on_event);
  seq->gone = std::move(gone);
  seq->handle = std::make_shared<Handle>();
  auto handle = seq->handle;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return absl::UnavailableError("the generator is shutting down");
    if (waiting_.size() >= options_.max_queue) {
      return absl::ResourceExhaustedError(
          StrCat("the generation queue is full (", waiting_.size(), " waiting); retry later"));
    }
    waiting_.push_back(std::move(seq));
  }
  cv_.notify_one();
  return handle;
}

absl::StatusOr<std::unique_ptr<TokenStream>> Scheduler::Stream(GenerateParams params,
                                                               std::function<bool()> gone) {
  std::unique_ptr<TokenStream> stream(new TokenStream());
  ASSIGN_OR_RETURN(stream->handle_, Submit(
                                        std::move(params),
                                        [queue = stream->queue_](const TokenEvent& e) {
                                          {
                                            std::lock_guard<std::mutex> l(queue->mu);
                                            queue->events.push_back(e);
                                          }
                                          queue->cv.notify_one();
                                        },
                                        std::move(gone)));
  return stream;
}

TokenStream::~TokenStream() {
  if (!done_ && handle_ != nullptr) handle_->Cancel();
}

TokenEvent TokenStream::Next() {
  std::unique_lock<std::mutex> l(queue_->mu);
  queue_->cv.wait(l, [&] { return !queue_->events.empty(); });
  TokenEvent e = std::move(queue_->events.front());
  queue_->events.pop_front();
  done_ = e.done;
  return e;
}

void TokenStream::Cancel() { handle_->Cancel(); }

Scheduler::Stats Scheduler::stats() const {
  std::lock_guard<std::mutex> l(mu_);
  Stats s = stats_;
  s.generated_tokens = generated_tokens_.load(std::memory_order_relaxed);
  s.queued = waiting_.size();
  s.running = active_.size();
  return s;
}

void Scheduler::Finish(Sequence& s, FinishReason reason) {
  if (s.finished) return;
  s.finished = true;
  if (!s.raw.empty()) {  // Bytes that never became a character.
    s.pending += "\xEF\xBF\xBD";
    s.raw.clear();
  }
  TokenEvent e;
  e.done = true;
  e.reason = reason;
  if (reason != FinishReason::kStop && reason != FinishReason::kCancelled) e.text = s.pending;
  if (reason == FinishReason::kStop && !s.pending.empty()) {
    // Held-back text that turned out not to start a stop sequence.
    bool stop_found = false;
    for (const std::string& st : s.params.stop)
      stop_found |= s.pending.find(st) != std::string::npos;
    if (!stop_found) e.text = s.pending;
  }
  s.pending.clear();
  e.prompt_tokens = static_cast<int>(s.prompt.size());
  e.completion_tokens = static_cast<int>(s.generated.size());
  e.cached_prompt_tokens = s.cached;
  s.on_event(e);
  for (int b : s.blocks) prefix_.Release(b);
  s.blocks.clear();
}

int Scheduler::SampleNext(Sequence& s, std::vector<float> logits) {
  const GenerateParams& p = s.params;
  if (p.repetition_penalty != 1.0f) {
    std::vector<bool> seen(logits.size(), false);
    for (int t : s.prompt) seen[t] = true;
    for (int t : s.generated) seen[t] = true;
    for (size_t t = 0; t < logits.size(); ++t) {
      if (!seen[t]) continue;
      logits[t] =
          logits[t] > 0 ? logits[t] / p.repetition_penalty : logits[t] * p.repetition_penalty;
    }
  }
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < logits.size()) {
    std::vector<float> sorted = logits;
    std::nth_element(sorted.begin(), sorted.begin() + (p.top_k - 1), sorted.end(),
                     std::greater<float>());
    const float kth = sorted[p.top_k - 1];
    int kept = 0;
    for (float& l : logits) {  // Ties at the k-th value: the first ones stay.
      if (l > kth) {
        ++kept;
      }
    }
    int ties = p.top_k - kept;
    for (float& l : logits) {
      if (l > kth) continue;
      if (l == kth && ties > 0) {
        --ties;
        continue;
      }
      l = -std::numeric_limits<float>::infinity();
    }
  }
  return s.sampler->Sample(std::move(logits));
}

void Scheduler::Emit(Sequence& s, int token) {
  const int prev = s.generated.empty() ? s.prompt.back() : s.generated.back();
  s.generated.push_back(token);
  generated_tokens_.fetch_add(1, std::memory_order_relaxed);
  s.raw += tokenizer_->Decode(prev, token);
  s.pending += TakeCompleteUtf8(&s.raw);
  TokenEvent e;
  e.token = token;
  for (const std::string& st : s.params.stop) {
    const size_t at = s.pending.find(st);
    if (at != std::string::npos) {
      e.text = s.pending.substr(0, at);
      s.pending.clear();
      s.on_event(e);
      Finish(s, FinishReason::kStop);
      return;
    }
  }
  // Hold back the longest tail that could begin a stop sequence.
  size_t hold = 0;
  for (const std::string& st : s.params.stop) {
    for (size_t n = std::min(st.size() - 1, s.pending.size()); n > hold; --n) {
      if (s.pending.compare(s.pending.size() - n, n, st, 0, n) == 0) {
        hold = n;
        break;
      }
    }
  }
  e.text = s.pending.substr(0, s.pending.size() - hold);
  s.pending.erase(0, s.pending.size() - hold);
  s.on_event(e);
}

void Scheduler::Loop() {
  std::unique_lock<std::mutex> l(mu_);
  while (true) {
    cv_.wait(l, [&] { return stopping_ || !waiting_.empty() || !active_.empty(); });
    if (stopping_) break;
    // Requests cancelled while they wait end here, without being admitted.
    for (auto& w : waiting_) {
      if (w->Cancelled()) Finish(*w, FinishReason::kCancelled);
    }
    waiting_.erase(
        std::remove_if(waiting_.begin(), waiting_.end(), [](const auto& w) { return w->finished; }),
        waiting_.end());
    if (waiting_.empty() && active_.empty()) continue;
    // Admit waiting requests while sequences and KV blocks allow.
    while (!waiting_.empty() && static_cast<int>(active_.size()) < options_.max_seqs) {
      Sequence& s = *waiting_.front();
      const int bs = cache_.block_size();
      const size_t need = (s.budget + bs - 1) / bs;
      // Cached blocks of the prompt's prefix; the last prompt position is
      // always computed (its logits give the first token).
      const size_t reusable =
          std::min(s.block_hashes.size(), (s.prompt.size() - 1) / static_cast<size_t>(bs));
      for (size_t i = 0; i < reusable; ++i) {
        const int b = prefix_.Acquire(s.block_hashes[i]);
        if (b < 0) break;
        s.blocks.push_back(b);
      }
      if (need - s.blocks.size() > prefix_.available()) {
        for (int b : s.blocks) prefix_.Release(b);
        s.blocks.clear();
        break;
      }
      s.published = s.blocks.size();
      s.cached = static_cast<int>(s.blocks.size()) * bs;
      s.fed = s.cached;
      while (s.blocks.size() < need) s.blocks.push_back(prefix_.Allocate());
      stats_.prompt_tokens += s.prompt.size();
      stats_.cached_prompt_tokens += s.cached;
      active_.push_back(std::move(waiting_.front()));
      waiting_.pop_front();
    }
    stats_.max_active = std::max<uint64_t>(stats_.max_active, active_.size());
    l.unlock();
    // One step: decoding sequences one row each, then prompt chunks within
    // the row budget.
    std::vector<StepRow> rows;
    std::vector<std::pair<Sequence*, int>> owners;  // Row's sequence; rows fed from it.
    std::vector<int> last_row;  // Per active sequence: its row that samples, or -1.
    int budget = options_.max_batch_tokens;
    for (auto& sp : active_) {
      Sequence& s = *sp;
      if (s.Cancelled()) {
        Finish(s, FinishReason::kCancelled);
        continue;
      }
      if (s.fed >= static_cast<int>(s.prompt.size())) {
        rows.push_back({s.last, s.fed, &s.blocks});
        owners.emplace_back(&s, s.fed);
        --budget;
      }
    }
    for (auto& sp : active_) {
      Sequence& s = *sp;
      if (s.finished || s.fed >= static_cast<int>(s.prompt.size())) continue;
      const int n = std::min<int>(static_cast<int>(s.prompt.size()) - s.fed, std::max(1, budget));
      for (int i = 0; i < n; ++i) {
        const int pos = s.fed + i, prompt_len = static_cast<int>(s.prompt.size());
        rows.push_back({s.prompt[pos], pos, &s.blocks,
                        /*long_prompt=*/prompt_len >= kLongPromptTokens,
                        /*logits=*/pos + 1 >= prompt_len});
        owners.emplace_back(&s, s.fed + i);
      }
      budget -= n;
    }
    if (!rows.empty()) {
      std::vector<std::vector<float>> logits = engine_->Forward(rows);
      // Only a row at the end of a sequence's known tokens yields a new
      // token. Sequences sample independently (each has its own sampler),
      // so that runs in parallel; events then go out in row order.
      std::vector<int> sampled(rows.size(), -1);
      std::vector<size_t> sampling;
      for (size_t r = 0; r < rows.size(); ++r) {
        if (owners[r].second + 1 >= static_cast<int>(owners[r].first->prompt.size()))
          sampling.push_back(r);
      }
      internal::ForEachIndex<true>(sampling.size() > 1, sampling.size(), [&](size_t k) {
        const size_t r = sampling[k];
        sampled[r] = SampleNext(*owners[r].first, std::move(logits[r]));
      });
      for (size_t r = 0; r < rows.size(); ++r) {
        Sequence& s = *owners[r].first;
        const int pos = owners[r].second;
        s.fed = pos + 1;
        // Prompt blocks now full are findable by later requests.
        while (s.published < s.block_hashes.size() &&
               s.fed >= static_cast<int>(s.published + 1) * cache_.block_size()) {
          prefix_.Publish(s.block_hashes[s.published], s.blocks[s.published]);
          ++s.published;
        }
        if (sampled[r] < 0) continue;
        const int next = sampled[r];
        if (tokenizer_->IsEnd(next)) {
          Finish(s, FinishReason::kStop);
          continue;
        }
        Emit(s, next);
        if (s.finished) continue;
        s.last = next;
        if (static_cast<int>(s.generated.size()) >= s.params.max_tokens || s.fed >= s.budget) {
          Finish(s, FinishReason::kLength);
        }
      }
    }
    l.lock();
    stats_.steps += 1;
    stats_.rows += rows.size();
    active_.erase(
        std::remove_if(active_.begin(), active_.end(), [](const auto& s) { return s->finished; }),
        active_.end());
  }
  // Shutting down: everything still here ends as cancelled.
  for (auto& s : active_) Finish(*s, FinishReason::kCancelled);
  for (auto& s : waiting_) Finish(*s, FinishReason::kCancelled);
  active_.clear();
  waiting_.clear();
}

}  // namespace quiver::llm
