// run.c's generate loop (llama2c.h).
#include "llm/llama2c.h"

#include <algorithm>
#include <cctype>

#include "llm/kv_cache.h"

namespace quiver::llm {

Generation Generate(const LlamaModel& model, const Tokenizer& tokenizer, std::string_view prompt,
                    int steps, Sampler* sampler) {
  Generation g;
  auto ids = tokenizer.Tokenize(prompt, /*bos=*/true);
  if (!ids.ok() || ids->empty()) return g;
  g.prompt_ids = *std::move(ids);
  steps = std::min(steps, model.config().seq_len);
  constexpr int kBlock = 16;
  PagedKvCache cache(model.config(), (steps + kBlock - 1) / kBlock, kBlock);
  std::vector<int> blocks;
  while (cache.free_blocks() > 0) blocks.push_back(cache.Allocate());
  int token = g.prompt_ids[0];
  for (int pos = 0; pos < steps; ++pos) {
    std::vector<float> logits = std::move(model.ForwardBatch({{token, pos, &blocks}}, &cache)[0]);
    const int next = pos + 1 < static_cast<int>(g.prompt_ids.size())
                         ? g.prompt_ids[pos + 1]
                         : sampler->Sample(std::move(logits));
    if (next == tokenizer.info().bos_id) break;  // BOS ends the text.
    g.ids.push_back(next);
    std::string piece = tokenizer.Decode(token, next);
    // run.c's safe_printf: lone unprintable bytes are not printed.
    const bool unprintable = piece.size() == 1 &&
                             !std::isprint(static_cast<unsigned char>(piece[0])) &&
                             !std::isspace(static_cast<unsigned char>(piece[0]));
    if (!unprintable) g.text += piece;
    token = next;
  }
  return g;
}

}  // namespace quiver::llm
