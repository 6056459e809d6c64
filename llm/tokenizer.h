// What generation needs from a tokenizer, whatever its format: text to ids,
// ids back to bytes for streaming, the special tokens that begin and end a
// text, and the chat template the model ships with.
#ifndef QUIVER_LLM_TOKENIZER_H_
#define QUIVER_LLM_TOKENIZER_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nn/tokenizer.h"

namespace quiver::llm {

struct TokenizerInfo {
  int bos_id = -1;                   // -1: the model has no BOS.
  bool add_bos = true;               // Prompts start with BOS.
  std::vector<int> end_ids;          // Sampling one of these ends a generation (EOS, end of turn).
  std::string bos_token, eos_token;  // Their text, as chat templates use them.
  std::string chat_template;         // Jinja source; empty: the model has none.
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Ids of `text`, BOS first when `bos` (and the model has one). Special
  // tokens written in the text (like <|im_start|>) become their ids where
  // the tokenizer defines them. INVALID_ARGUMENT for text that is not UTF-8.
  virtual absl::StatusOr<std::vector<int>> Tokenize(std::string_view text, bool bos) const = 0;
  // The bytes `token` adds to the text after `prev` (-1 at the start).
  // Byte tokens may carry part of a UTF-8 character; special tokens add
  // nothing.
  virtual std::string Decode(int prev, int token) const = 0;
  virtual int vocab_size() const = 0;

  const TokenizerInfo& info() const { return info_; }
  TokenizerInfo* mutable_info() { return &info_; }
  bool IsEnd(int token) const;

 protected:
  TokenizerInfo info_;
};

// A Hugging Face tokenizer.json tokenizer (byte-level BPE, SentencePiece-
// style BPE, ...) behind the generation interface.
class HfTokenizer : public Tokenizer {
 public:
  HfTokenizer(std::unique_ptr<nn::Tokenizer> tokenizer, TokenizerInfo info);
  absl::StatusOr<std::vector<int>> Tokenize(std::string_view text, bool bos) const override;
  std::string Decode(int prev, int token) const override;
  int vocab_size() const override { return static_cast<int>(tokenizer_->vocab_size()); }
  const nn::Tokenizer& tokenizer() const { return *tokenizer_; }

 private:
  std::unique_ptr<nn::Tokenizer> tokenizer_;
};

// The longest prefix of `bytes` that is whole UTF-8 characters (what can be
// shown now; the rest waits for the next token's bytes). Invalid bytes that
// can never complete a character are replaced by U+FFFD.
std::string TakeCompleteUtf8(std::string* bytes);

}  // namespace quiver::llm

#endif  // QUIVER_LLM_TOKENIZER_H_
