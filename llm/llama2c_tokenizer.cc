// llama2.c's tokenizer.bin (and GGUF's SentencePiece vocabulary): see
// Llama2cTokenizer in llama2c_tokenizer.h.
#include "llm/llama2c_tokenizer.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <queue>

#include "common/coding.h"
#include "common/status_macros.h"
#include "common/strings.h"

namespace quiver::llm {

absl::StatusOr<std::unique_ptr<Llama2cTokenizer>> Llama2cTokenizer::Load(const std::string& path,
                                                                         int vocab_size) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(StrCat("cannot read ", path));
  auto t = std::unique_ptr<Llama2cTokenizer>(new Llama2cTokenizer());
  uint32_t max_len = 0;
  in.read(reinterpret_cast<char*>(&max_len), 4);
  if (in.gcount() != 4) return absl::DataLossError(StrCat(path, ": truncated"));
  for (int i = 0; i < vocab_size; ++i) {
    float score;
    int32_t len;
    in.read(reinterpret_cast<char*>(&score), 4);
    in.read(reinterpret_cast<char*>(&len), 4);
    if (!in || len < 0 || len > (1 << 16)) {
      return absl::DataLossError(StrCat(path, ": truncated or damaged at token ", i));
    }
    std::string s(static_cast<size_t>(len), '\0');
    in.read(s.data(), len);
    if (in.gcount() != len) return absl::DataLossError(StrCat(path, ": truncated at token ", i));
    t->vocab_.push_back(std::move(s));
    t->scores_.push_back(score);
  }
  for (int i = 0; i < vocab_size; ++i) t->sorted_.emplace_back(t->vocab_[i], i);
  std::sort(t->sorted_.begin(), t->sorted_.end());
  return t;
}

std::unique_ptr<Llama2cTokenizer> Llama2cTokenizer::FromVocab(std::vector<std::string> tokens,
                                                              std::vector<float> scores) {
  auto t = std::unique_ptr<Llama2cTokenizer>(new Llama2cTokenizer());
  t->vocab_ = std::move(tokens);
  t->scores_ = std::move(scores);
  for (size_t i = 0; i < t->vocab_.size(); ++i)
    t->sorted_.emplace_back(t->vocab_[i], static_cast<int>(i));
  std::sort(t->sorted_.begin(), t->sorted_.end());
  return t;
}

int Llama2cTokenizer::Lookup(std::string_view s) const {
  auto it = std::lower_bound(sorted_.begin(), sorted_.end(), s,
                             [](const auto& e, std::string_view k) { return e.first < k; });
  return it != sorted_.end() && it->first == s ? it->second : -1;
}

std::vector<int> Llama2cTokenizer::Encode(std::string_view text, bool bos, bool eos) const {
  std::vector<int> tokens;
  if (bos) tokens.push_back(1);
  if (!text.empty()) {
    const int prefix = Lookup(" ");
    if (prefix >= 0) tokens.push_back(prefix);
  }
  // Code point by code point; unknown ones fall back to their bytes.
  for (size_t i = 0; i < text.size();) {
    size_t len = 1;
    while (i + len < text.size() && len < 4 &&
           (static_cast<unsigned char>(text[i + len]) & 0xC0) == 0x80) {
      ++len;
    }
    const int id = Lookup(text.substr(i, len));
    if (id >= 0) {
      tokens.push_back(id);
    } else {
      for (size_t b = 0; b < len; ++b)
        tokens.push_back(static_cast<unsigned char>(text[i + b]) + 3);
    }
    i += len;
  }
  // Merge the best-scoring adjacent pair (the leftmost among equals) until
  // none is in the vocabulary: run.c's rule, kept with a heap over a linked
  // list so long prompts take O(n log n), not O(n^2).
  const size_t n = tokens.size();
  std::vector<int> next(n), prev(n);
  for (size_t i = 0; i < n; ++i) {
    next[i] = i + 1 < n ? static_cast<int>(i + 1) : -1;
    prev[i] = static_cast<int>(i) - 1;
  }
  struct Candidate {
    float score;
    int left, left_id, right_id, merged;
    bool operator<(const Candidate& o) const {  // Max-heap: best score, then leftmost.
      return score != o.score ? score < o.score : left > o.left;
    }
  };
  std::priority_queue<Candidate> heap;
  std::string joined;
  auto consider = [&](int i) {
    if (i < 0 || next[i] < 0) return;
    joined = vocab_[tokens[i]];
    joined += vocab_[tokens[next[i]]];
    const int id = Lookup(joined);
    if (id >= 0) heap.push({scores_[id], i, tokens[i], tokens[next[i]], id});
  };
  for (size_t i = 0; i + 1 < n; ++i) consider(static_cast<int>(i));
  std::vector<bool> gone(n, false);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    if (gone[c.left] || next[c.left] < 0 || tokens[c.left] != c.left_id ||
        tokens[next[c.left]] != c.right_id) {
      continue;  // Stale: a neighbour merged since.
    }
    const int r = next[c.left];
    tokens[c.left] = c.merged;
    gone[r] = true;
    next[c.left] = next[r];
    if (next[r] >= 0) prev[next[r]] = c.left;
    consider(prev[c.left]);
    consider(c.left);
  }
  std::vector<int> merged;
  merged.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (!gone[i]) merged.push_back(tokens[i]);
  }
  tokens = std::move(merged);
  if (eos) tokens.push_back(2);
  return tokens;
}

Llama2cTokenizer::Llama2cTokenizer() {
  info_.bos_id = 1;
  info_.end_ids = {1, 2};  // run.c stops at BOS; EOS ends a story too.
  info_.bos_token = "<s>";
  info_.eos_token = "</s>";
}

void Llama2cTokenizer::SetSpecialTokens(std::vector<int> ids) {
  specials_.clear();
  for (int id : ids) {
    if (id >= 0 && id < vocab_size() && !vocab_[id].empty()) specials_.emplace_back(vocab_[id], id);
  }
  // Longest first, so a token that starts another loses to it.
  std::sort(specials_.begin(), specials_.end(),
            [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

absl::StatusOr<std::vector<int>> Llama2cTokenizer::Tokenize(std::string_view text, bool bos) const {
  if (!IsValidUtf8(text)) return absl::InvalidArgumentError("text is not valid UTF-8");
  std::vector<int> ids;
  if (bos && info_.bos_id >= 0) ids.push_back(info_.bos_id);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t hit = std::string_view::npos;
    int hit_id = -1;
    size_t hit_len = 0;
    for (const auto& [content, id] : specials_) {
      const size_t f = text.find(content, pos);
      if (f != std::string_view::npos && f < hit) {
        hit = f;
        hit_id = id;
        hit_len = content.size();
      }
    }
    const std::string_view chunk =
        text.substr(pos, hit == std::string_view::npos ? text.npos : hit - pos);
    if (!chunk.empty()) {
      const std::vector<int> part = Encode(chunk, false, false);
      ids.insert(ids.end(), part.begin(), part.end());
    }
    if (hit == std::string_view::npos) break;
    ids.push_back(hit_id);
    pos = hit + hit_len;
  }
  return ids;
}

std::string Llama2cTokenizer::Decode(int prev, int token) const {
  if (token < 0 || token >= vocab_size()) return "";
  for (const auto& [content, id] : specials_) {
    if (id == token) return "";
  }
  std::string_view piece = vocab_[token];
  if (prev == info_.bos_id && !piece.empty() && piece[0] == ' ') piece.remove_prefix(1);
  unsigned int byte;
  if (piece.size() == 6 && std::sscanf(std::string(piece).c_str(), "<0x%02X>", &byte) == 1) {
    return std::string(1, static_cast<char>(byte));
  }
  return std::string(piece);
}

}  // namespace quiver::llm
