// Token sampling as llama2.c's run.c does it.
#ifndef QUIVER_LLM_SAMPLER_H_
#define QUIVER_LLM_SAMPLER_H_

#include <cstdint>
#include <vector>

namespace quiver::llm {

// run.c's sampler: temperature 0 is argmax; otherwise softmax of
// logits / temperature, then top-p (nucleus) when 0 < top_p < 1, else the
// whole distribution, drawn with a xorshift64* coin seeded by `seed`.
class Sampler {
 public:
  Sampler(float temperature, float top_p, uint64_t seed)
      : temperature_(temperature), top_p_(top_p), state_(seed) {}
  int Sample(std::vector<float> logits);
  float NextCoin();

 private:
  float temperature_, top_p_;
  uint64_t state_;
};

}  // namespace quiver::llm

#endif  // QUIVER_LLM_SAMPLER_H_
