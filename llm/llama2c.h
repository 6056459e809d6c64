// llama2.c's reference generate loop (run.c's), over a model, a tokenizer and
// a sampler, reproducing llama2.c's outputs exactly; with
// LlamaModel::LoadLlama2c (model.h: the "version 0" checkpoint, a 7 x int32
// header then float32 weights) and Llama2cTokenizer (tokenizer.bin) it is the
// whole of llama2.c. Serving goes through the scheduler instead.
#ifndef QUIVER_LLM_LLAMA2C_H_
#define QUIVER_LLM_LLAMA2C_H_

#include <string>
#include <string_view>
#include <vector>

#include "llm/llama2c_tokenizer.h"
#include "llm/model.h"
#include "llm/sampler.h"
#include "llm/tokenizer.h"

namespace quiver::llm {

struct Generation {
  std::vector<int> prompt_ids;
  std::vector<int> ids;  // Each step's next token (forced prompt tokens included).
  std::string text;      // What run.c prints.
};

// run.c's generate loop: `steps` positions in all (prompt included), stopping
// early at BOS. A prompt the tokenizer rejects (not UTF-8) gives an empty
// generation.
Generation Generate(const LlamaModel& model, const Tokenizer& tokenizer, std::string_view prompt,
                    int steps, Sampler* sampler);

}  // namespace quiver::llm

#endif  // QUIVER_LLM_LLAMA2C_H_
