// llama2.c's tokenizer.bin BPE tokenizer (also GGUF's SentencePiece vocabularies).
#ifndef QUIVER_LLM_LLAMA2C_TOKENIZER_H_
#define QUIVER_LLM_LLAMA2C_TOKENIZER_H_

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "llm/tokenizer.h"

namespace quiver::llm {

// llama2.c's tokenizer.bin (and GGUF's SentencePiece "llama" vocabulary):
// byte-pair merges by score, byte fallback (<0x00>..<0xFF> at ids
// 3..258), BOS = 1, EOS = 2 unless the file says otherwise.
class Llama2cTokenizer : public Tokenizer {
 public:
  static absl::StatusOr<std::unique_ptr<Llama2cTokenizer>> Load(const std::string& path,
                                                                int vocab_size);
  // From token strings (spaces as ' ') and merge scores.
  static std::unique_ptr<Llama2cTokenizer> FromVocab(std::vector<std::string> tokens,
                                                     std::vector<float> scores);
  const std::vector<std::string>& tokens() const { return vocab_; }
  const std::vector<float>& scores() const { return scores_; }
  // As run.c's encode: BOS, a dummy-prefix space for non-empty text, then
  // merges.
  std::vector<int> Encode(std::string_view text, bool bos, bool eos) const;
  // Tokenizer: Encode, but special tokens (SetSpecialTokens) written in the
  // text map to their ids, each text fragment getting the dummy-prefix
  // space, as llama.cpp does.
  absl::StatusOr<std::vector<int>> Tokenize(std::string_view text, bool bos) const override;
  // The text of `token` following `prev` (a leading space is dropped after
  // BOS; byte tokens become their byte; special tokens add nothing).
  std::string Decode(int prev, int token) const override;
  int vocab_size() const override { return static_cast<int>(vocab_.size()); }
  // Control tokens (GGUF token type 3) recognised in prompt text.
  void SetSpecialTokens(std::vector<int> ids);

 private:
  Llama2cTokenizer();
  int Lookup(std::string_view s) const;
  std::vector<std::pair<std::string, int>> specials_;
  std::vector<std::string> vocab_;
  std::vector<float> scores_;
  std::vector<std::pair<std::string, int>> sorted_;  // For lookups.
};

}  // namespace quiver::llm

#endif  // QUIVER_LLM_LLAMA2C_TOKENIZER_H_
