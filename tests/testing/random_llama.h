// Generated Llama models and vocabularies for tests and benchmarks.
#ifndef QUIVER_TESTS_TESTING_RANDOM_LLAMA_H_
#define QUIVER_TESTS_TESTING_RANDOM_LLAMA_H_

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "llm/llama2c_tokenizer.h"
#include "llm/model.h"

namespace quiver::testing {

// A small Llama shape whose rows are whole 256-value K-quant super-blocks
// (dim 256, hidden 512, 2 layers, 4 heads / 2 KV heads, vocab 512,
// context 64): fast to run, and writable in every GGUF type.
inline llm::LlamaConfig SuperBlockLlamaConfig() {
  llm::LlamaConfig c;
  c.dim = 256;
  c.hidden_dim = 512;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = 512;
  c.seq_len = 64;
  return c;
}

// A Llama with N(0, stddev) weights (drawn in weight-group order from
// `seed`) and unit norms; `tied`: the classifier is the embedding, else a
// matrix of its own.
inline absl::StatusOr<std::unique_ptr<llm::LlamaModel>> RandomLlama(llm::LlamaConfig c,
                                                                    uint32_t seed, float stddev,
                                                                    bool tied) {
  c.shared_classifier = tied;
  const llm::LlamaWeights<size_t> sizes = llm::LlamaWeightSizes(c);
  llm::LlamaWeights<std::vector<float>> w;
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, stddev);
  // Drawn in group order up to the classifier (tied: left empty); no biases.
  for (size_t i = 0; i < (tied ? 11u : 12u); ++i) {
    std::vector<float>& g = w.group(i);
    const bool norm = &g == &w.rms_att || &g == &w.rms_ffn || &g == &w.rms_final;
    g.resize(sizes.group(i));
    for (float& x : g) x = norm ? 1.0f : nd(rng);
  }
  return llm::LlamaModel::FromWeights(c, std::move(w));
}

// A SentencePiece-style vocabulary of `size` tokens: <unk>, <s>, </s>, the
// 256 byte tokens, `words` with their characters and the prefixes that
// byte-pair merges pass through on the way to them (" Once" needs " ", "O",
// " O", " On", " Onc"; merge score 1), then pseudo-words " wN" (-1). A text
// of those words encodes as one token per word.
inline std::unique_ptr<llm::Llama2cTokenizer> SyntheticVocabulary(
    size_t size, const std::vector<std::string>& words = {}) {
  std::vector<std::string> vocab = {"<unk>", "<s>", "</s>"};
  std::vector<float> scores(3, 0.0f);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    vocab.push_back(name);
    scores.push_back(0.0f);
  }
  std::set<std::string> added;
  auto add = [&](const std::string& piece) {
    if (!added.insert(piece).second) return;
    vocab.push_back(piece);
    scores.push_back(1.0f);
  };
  for (const std::string& w : words) {
    for (char ch : w) add(std::string(1, ch));  // Merges start from characters, not byte tokens.
    for (size_t len = 2; len <= w.size(); ++len) add(w.substr(0, len));
  }
  while (vocab.size() < size) {
    vocab.push_back(" w" + std::to_string(vocab.size()));
    scores.push_back(-1.0f);
  }
  return llm::Llama2cTokenizer::FromVocab(std::move(vocab), std::move(scores));
}

// Writes a float32 `model` as a llama2.c checkpoint ("version 0": the
// 7 x int32 header, the weights in run.c's order, the legacy freq_cis
// tables as zeros, then the classifier unless tied) and `tokenizer` as its
// tokenizer.bin, so a benchmark loads them the way users' files are loaded.
inline absl::Status WriteLlama2c(const llm::LlamaModel& model,
                                 const llm::Llama2cTokenizer& tokenizer,
                                 const std::string& model_path, const std::string& tokenizer_path) {
  if (!model.is_float32())
    return absl::InvalidArgumentError("llama2.c checkpoints hold float32 weights");
  const llm::LlamaConfig& c = model.config();
  std::ofstream out(model_path, std::ios::binary);
  const int32_t header[7] = {c.dim,        c.hidden_dim,
                             c.n_layers,   c.n_heads,
                             c.n_kv_heads, c.shared_classifier ? c.vocab_size : -c.vocab_size,
                             c.seq_len};
  out.write(reinterpret_cast<const char*>(header), sizeof header);
  const llm::LlamaModel::Weights w = model.weights();
  auto put = [&](std::span<const float> v) {
    out.write(reinterpret_cast<const char*>(v.data()),
              static_cast<std::streamsize>(v.size() * sizeof(float)));
  };
  for (std::span<const float> g :
       {w.embedding, w.rms_att, w.wq, w.wk, w.wv, w.wo, w.rms_ffn, w.w1, w.w2, w.w3, w.rms_final}) {
    put(g);
  }
  const std::vector<float> freq_cis(static_cast<size_t>(c.seq_len) * c.head_size() / 2, 0.0f);
  put(freq_cis);
  put(freq_cis);
  if (!c.shared_classifier) put(w.classifier);
  if (!out) return absl::InternalError("cannot write " + model_path);
  std::ofstream tok(tokenizer_path, std::ios::binary);
  uint32_t max_len = 0;
  for (const std::string& t : tokenizer.tokens()) max_len = std::max<uint32_t>(max_len, t.size());
  tok.write(reinterpret_cast<const char*>(&max_len), 4);
  for (size_t i = 0; i < tokenizer.tokens().size(); ++i) {
    const float score = tokenizer.scores()[i];
    const int32_t len = static_cast<int32_t>(tokenizer.tokens()[i].size());
    tok.write(reinterpret_cast<const char*>(&score), 4);
    tok.write(reinterpret_cast<const char*>(&len), 4);
    tok.write(tokenizer.tokens()[i].data(), len);
  }
  if (!tok) return absl::InternalError("cannot write " + tokenizer_path);
  return absl::OkStatus();
}

}  // namespace quiver::testing

#endif  // QUIVER_TESTS_TESTING_RANDOM_LLAMA_H_
