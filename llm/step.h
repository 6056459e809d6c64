// One batched decode step's rows: which token of which sequence, at which
// position, and what the step must return for it.
#ifndef QUIVER_LLM_STEP_H_
#define QUIVER_LLM_STEP_H_

#include <vector>

namespace quiver::llm {

// One token of one sequence in a batched step.
struct StepRow {
  int token;
  int pos;
  const std::vector<int>* blocks;  // The sequence's block table (covers pos).
  // A prompt token of a long prompt (kLongPromptTokens or more). On the
  // CPU such rows take a matrix kernel with another fixed summation order,
  // faster once a step has dozens of them; the sequence's prompt length,
  // never its batch, decides, so it still gets the same tokens alone or
  // batched.
  bool long_prompt = false;
  // Whether the step returns this row's logits (false: an empty vector, and
  // the classifier's work for the row is skipped; a prompt's rows before its
  // last need none).
  bool logits = true;
};
// Prompts this long are prefilled with the matrix kernel (StepRow): about
// where it overtakes the row kernels (transposing the weights costs a step
// ~23 ms on the 110M model, then it saves ~0.5 ms per row).
constexpr int kLongPromptTokens = 64;

}  // namespace quiver::llm

#endif  // QUIVER_LLM_STEP_H_
