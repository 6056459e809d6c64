#include "llm/tokenizer.h"

#include <algorithm>

#include "common/coding.h"
#include "common/strings.h"

namespace quiver::llm {

bool Tokenizer::IsEnd(int token) const {
  return std::find(info_.end_ids.begin(), info_.end_ids.end(), token) != info_.end_ids.end();
}

HfTokenizer::HfTokenizer(std::unique_ptr<nn::Tokenizer> tokenizer, TokenizerInfo info)
    : tokenizer_(std::move(tokenizer)) {
  info_ = std::move(info);
}

absl::StatusOr<std::vector<int>> HfTokenizer::Tokenize(std::string_view text, bool bos) const {
  std::vector<int> ids;
  if (bos && info_.bos_id >= 0) ids.push_back(info_.bos_id);
  if (text.empty()) return ids;
  auto e = tokenizer_->Encode(text, /*add_special=*/false);
  if (!e.ok()) return e.status();
  ids.insert(ids.end(), e->ids.begin(), e->ids.end());
  return ids;
}

std::string HfTokenizer::Decode(int prev, int token) const {
  if (tokenizer_->IsSpecial(token)) return "";
  return tokenizer_->DecodeToken(token,
                                 prev < 0 || (prev == info_.bos_id) || tokenizer_->IsSpecial(prev));
}

std::string TakeCompleteUtf8(std::string* bytes) {
  std::string out;
  size_t i = 0;
  const size_t n = bytes->size();
  while (i < n) {
    const unsigned char c = (*bytes)[i];
    const size_t len = c < 0x80           ? 1
                       : (c >> 5) == 0x6  ? 2
                       : (c >> 4) == 0xE  ? 3
                       : (c >> 3) == 0x1E ? 4
                                          : 0;
    if (len == 0) {  // A continuation byte or 0xF8..0xFF where a character must start.
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    if (i + len > n) {
      // Incomplete: wait, unless what is there already cannot continue.
      bool ok = true;
      for (size_t k = i + 1; k < n; ++k)
        ok &= (static_cast<unsigned char>((*bytes)[k]) & 0xC0) == 0x80;
      if (ok) break;
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    const std::string_view ch(bytes->data() + i, len);
    if (IsValidUtf8(ch)) {
      out.append(ch);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  bytes->erase(0, i);
  return out;
}

}  // namespace quiver::llm
