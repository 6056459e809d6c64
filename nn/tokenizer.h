// Tokenizers read from Hugging Face's tokenizer.json: the pipeline
// normalizer -> pre-tokenizer -> model -> post-processor, with truncation
// and padding done by the caller's batcher.
//
// Supported (an unsupported component is an INVALID_ARGUMENT naming it):
//   normalizers:     BertNormalizer, Lowercase, NFC, NFD, NFKC, NFKD,
//                    StripAccents, Strip, Replace (String; Regex through
//                    std::regex, ECMAScript syntax), Prepend, Precompiled
//                    (SentencePiece's compiled rules), Sequence
//   pre-tokenizers:  BertPreTokenizer, Whitespace, WhitespaceSplit,
//                    Metaspace, Punctuation (isolated), Sequence
//   pre-tokenizers (cont.): ByteLevel (GPT-2 split and byte alphabet),
//                    Split (String or Regex via ICU; all five behaviours),
//                    Digits
//   models:          WordPiece, Unigram, BPE (merges as strings or pairs,
//                    byte_fallback, fuse_unk, ignore_merges, subword
//                    prefix / end-of-word suffix)
//   post-processors: TemplateProcessing, BertProcessing, ByteLevel (no-op)
//   decoders:        ByteLevel, Metaspace, Replace, ByteFallback, Fuse,
//                    Strip, WordPiece, Sequence
// Added tokens are matched in the raw text before normalisation.
#ifndef QUIVER_NN_TOKENIZER_H_
#define QUIVER_NN_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/json.h"

namespace quiver::nn {

struct Encoding {
  std::vector<int32_t> ids;
  std::vector<int32_t> type_ids;    // Segment: 0 for the first text, 1 for the second.
  std::vector<std::string> tokens;  // The vocabulary strings.
};

class Tokenizer {
 public:
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromFile(const std::string& path);
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(const Json& json);
  ~Tokenizer();

  // Tokens of `text` (and `pair`, when not null), with the post-processor's
  // special tokens when `add_special`. `max_tokens` > 0 truncates the texts
  // (longest first for pairs) so that the result, specials included, fits.
  // INVALID_ARGUMENT for text that is not UTF-8.
  absl::StatusOr<Encoding> Encode(std::string_view text, bool add_special,
                                  size_t max_tokens = 0) const;
  absl::StatusOr<Encoding> EncodePair(std::string_view text, std::string_view pair,
                                      bool add_special, size_t max_tokens = 0) const;

  // -1 when absent.
  int32_t TokenToId(std::string_view token) const;
  // The vocabulary (or added-token) string of `id`; empty when unknown.
  std::string IdToToken(int32_t id) const;
  // An added token marked "special" (like <|im_end|> or [CLS]).
  bool IsSpecial(int32_t id) const;
  // Text of `ids` through the file's decoder (special tokens left out when
  // `skip_special`); partial UTF-8 characters become U+FFFD.
  std::string Decode(const std::vector<int32_t>& ids, bool skip_special) const;
  // The bytes `id` adds to a decoded text, `first` when it starts the text.
  // A token may carry part of a UTF-8 character (byte-level and byte
  // fallback tokens): callers streaming text join bytes before showing them.
  std::string DecodeToken(int32_t id, bool first) const;
  size_t vocab_size() const;
  // The id to pad with ([PAD], <pad> or 0).
  int32_t pad_id() const;

  struct Impl;

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace quiver::nn

#endif  // QUIVER_NN_TOKENIZER_H_
