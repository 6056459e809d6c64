#include "rag/chunker.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "common/status_macros.h"
#include "unicode/brkiter.h"
#include "unicode/locid.h"
#include "unicode/utext.h"

namespace quiver::rag {
namespace {

// Boundary strengths, strongest first; a cut goes at the strongest boundary
// that keeps the chunk at least half full. kNever marks the boundary after
// a Markdown heading, which stays with the text under it.
enum Strength : int { kNever = -1, kChar = 0, kWord = 1, kSentence = 2, kParagraph = 3 };

struct Atom {
  size_t begin, end;
  size_t tokens;
  int strength;  // Of the boundary before it.
};

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// Boundaries (native UTF-8 offsets, excluding 0 and the end) of `text` by an
// ICU break iterator of the kind `make` creates.
std::vector<size_t> IcuBreaks(std::string_view text,
                              icu::BreakIterator* (*make)(const icu::Locale&, UErrorCode&)) {
  std::vector<size_t> out;
  UErrorCode status = U_ZERO_ERROR;
  UText* ut = utext_openUTF8(nullptr, text.data(), static_cast<int64_t>(text.size()), &status);
  std::unique_ptr<icu::BreakIterator> it(make(icu::Locale::getRoot(), status));
  if (U_FAILURE(status) || it == nullptr) {
    utext_close(ut);
    return out;
  }
  it->setText(ut, status);
  if (U_SUCCESS(status)) {
    for (int32_t p = it->next(); p != icu::BreakIterator::DONE; p = it->next()) {
      if (static_cast<size_t>(p) < text.size()) out.push_back(static_cast<size_t>(p));
    }
  }
  utext_close(ut);
  return out;
}

// Word starts: ICU word boundaries followed by a word (letters, digits,
// kana, ideographs), so a word keeps the spaces and punctuation after it.
std::vector<size_t> WordStarts(std::string_view text) {
  std::vector<size_t> out;
  UErrorCode status = U_ZERO_ERROR;
  UText* ut = utext_openUTF8(nullptr, text.data(), static_cast<int64_t>(text.size()), &status);
  std::unique_ptr<icu::BreakIterator> it(
      icu::BreakIterator::createWordInstance(icu::Locale::getRoot(), status));
  if (U_SUCCESS(status) && it != nullptr) {
    it->setText(ut, status);
    int32_t begin = it->first();
    for (int32_t end = it->next(); U_SUCCESS(status) && end != icu::BreakIterator::DONE;
         begin = end, end = it->next()) {
      if (begin > 0 && it->getRuleStatus() >= UBRK_WORD_NONE_LIMIT) {
        out.push_back(static_cast<size_t>(begin));
      }
    }
  }
  utext_close(ut);
  return out;
}

struct Heading {
  size_t line_begin, line_end;  // The line, without its newline.
  int level;
  std::string title;
};

// Markdown ATX heading ("# Title", up to three spaces of indent, 1-6 #).
bool ParseHeading(std::string_view line, int* level, std::string* title) {
  size_t i = 0;
  while (i < line.size() && i < 3 && line[i] == ' ') ++i;
  size_t hashes = 0;
  while (i + hashes < line.size() && line[i + hashes] == '#') ++hashes;
  if (hashes < 1 || hashes > 6) return false;
  i += hashes;
  if (i < line.size() && line[i] != ' ' && line[i] != '\t') return false;
  std::string_view rest = line.substr(i);
  while (!rest.empty() && IsSpace(rest.front())) rest.remove_prefix(1);
  while (!rest.empty() && (IsSpace(rest.back()) || rest.back() == '#')) rest.remove_suffix(1);
  *level = static_cast<int>(hashes);
  *title = std::string(rest);
  return true;
}

class Chunker {
 public:
  Chunker(std::string_view text, const ChunkOptions& options, const TokenCounter& count)
      : text_(text), options_(options), count_(count) {}

  absl::StatusOr<std::vector<Chunk>> Run() {
    RETURN_IF_ERROR(Paragraphs());
    std::vector<Chunk> out;
    if (atoms_.empty()) return out;
    RETURN_IF_ERROR(Pack(&out));
    return out;
  }

 private:
  absl::StatusOr<size_t> Count(size_t begin, size_t end) {
    return count_(text_.substr(begin, end - begin));
  }

  // Splits the text into paragraphs (blank lines, and before each heading;
  // fenced code blocks are not scanned for headings) and emits them.
  absl::Status Paragraphs() {
    size_t pos = 0, para_begin = std::string_view::npos;
    bool in_fence = false;
    auto close = [&](size_t end) -> absl::Status {
      if (para_begin != std::string_view::npos) {
        RETURN_IF_ERROR(Emit(para_begin, end, kParagraph, kParagraph));
      }
      para_begin = std::string_view::npos;
      return absl::OkStatus();
    };
    while (pos < text_.size()) {
      size_t nl = text_.find('\n', pos);
      const size_t line_end = nl == std::string_view::npos ? text_.size() : nl;
      const size_t next = nl == std::string_view::npos ? text_.size() : nl + 1;
      std::string_view line = text_.substr(pos, line_end - pos);
      const bool blank = std::all_of(line.begin(), line.end(), IsSpace);
      std::string_view trimmed = line;
      while (!trimmed.empty() && trimmed.front() == ' ') trimmed.remove_prefix(1);
      const bool fence = trimmed.starts_with("```") || trimmed.starts_with("~~~");
      int level = 0;
      std::string title;
      if (blank && !in_fence) {
        RETURN_IF_ERROR(close(pos));
      } else if (!in_fence && ParseHeading(line, &level, &title)) {
        RETURN_IF_ERROR(close(pos));
        headings_.push_back({pos, line_end, level, std::move(title)});
        para_begin = pos;
      } else if (para_begin == std::string_view::npos) {
        para_begin = pos;
      }
      if (fence) in_fence = !in_fence;
      pos = next;
    }
    return close(text_.size());
  }

  // True when the text before `pos` ends with a heading line (and
  // whitespace): a cut there would orphan the heading.
  bool AfterHeading(size_t pos) const {
    size_t q = pos;
    while (q > 0 && IsSpace(text_[q - 1])) --q;
    for (auto it = headings_.rbegin(); it != headings_.rend(); ++it) {
      if (it->line_end < q) break;
      if (it->line_end == q || (it->line_begin < q && q <= it->line_end)) return true;
    }
    return false;
  }

  // Adds [begin, end) as atoms no larger than chunk_tokens, splitting at the
  // level below `level` when it is too large. `before` is the strength of the
  // boundary before it.
  absl::Status Emit(size_t begin, size_t end, int level, int before) {
    while (begin < end && IsSpace(text_[begin])) ++begin;
    if (begin >= end) return absl::OkStatus();
    ASSIGN_OR_RETURN(size_t tokens, Count(begin, end));
    if (!atoms_.empty() && AfterHeading(begin)) before = kNever;
    if (tokens <= options_.chunk_tokens || end - begin <= 1) {
      atoms_.push_back({begin, end, tokens, before});
      return absl::OkStatus();
    }
    std::vector<size_t> cuts;
    int sub = level;
    const std::string_view piece = text_.substr(begin, end - begin);
    while (cuts.empty()) {
      if (sub > kChar) --sub;
      if (sub == kChar) {
        // Halves at a character boundary, as often as it takes.
        size_t mid = piece.size() / 2;
        while (mid > 0 && (static_cast<unsigned char>(piece[mid]) & 0xC0) == 0x80) --mid;
        if (mid > 0) cuts.push_back(begin + mid);
        break;
      }
      for (size_t b : sub == kSentence ? SentenceBreaks(piece) : WordStarts(piece)) {
        cuts.push_back(begin + b);
      }
    }
    if (cuts.empty()) {  // A single character over the budget: keep it whole.
      atoms_.push_back({begin, end, tokens, before});
      return absl::OkStatus();
    }
    size_t from = begin;
    int strength = before;
    for (size_t cut : cuts) {
      RETURN_IF_ERROR(Emit(from, cut, sub, strength));
      from = cut;
      strength = sub;
    }
    return Emit(from, end, sub, strength);
  }

  // The start of the longest suffix of [begin, end) of at most
  // overlap_tokens tokens that starts at a sentence (else a word) start;
  // `end` when none fits.
  absl::StatusOr<size_t> OverlapStart(size_t begin, size_t end) {
    if (options_.overlap_tokens == 0) return end;
    const std::string_view region = text_.substr(begin, end - begin);
    for (bool sentences : {true, false}) {
      std::vector<size_t> starts = sentences ? SentenceBreaks(region) : WordStarts(region);
      size_t best = end;
      for (auto it = starts.rbegin(); it != starts.rend(); ++it) {
        const size_t s = begin + *it;
        ASSIGN_OR_RETURN(size_t t, Count(s, end));
        if (t > options_.overlap_tokens) break;
        best = s;
      }
      if (best != end) return best;
    }
    return end;
  }

  std::string HeadingAt(size_t pos) const {
    std::vector<const Heading*> stack;
    for (const Heading& h : headings_) {
      if (h.line_begin > pos) break;
      while (!stack.empty() && stack.back()->level >= h.level) stack.pop_back();
      stack.push_back(&h);
    }
    std::string out;
    for (const Heading* h : stack) {
      if (!out.empty()) out += " > ";
      out += h->title;
    }
    return out;
  }

  absl::Status Pack(std::vector<Chunk>* out) {
    const size_t n = atoms_.size();
    const size_t budget = options_.chunk_tokens;
    size_t i = 0;
    size_t start = atoms_[0].begin;  // Chunk start: overlap text, then atoms i...
    size_t carried = 0;              // Tokens of the overlap text.
    while (i < n) {
      size_t total = carried, j = i;
      while (j < n && total + atoms_[j].tokens <= budget) total += atoms_[j].tokens, ++j;
      if (j == i) {  // Not even one atom fits beside the overlap: drop it.
        if (carried > 0) {
          start = atoms_[i].begin;
          carried = 0;
          continue;
        }
        j = i + 1;  // An atom over the budget on its own (one character).
      }
      size_t cut = j;
      if (j < n) {
        // The strongest boundary in (i, j] that keeps the chunk half full;
        // the latest of equals.
        int best = kNever - 1;
        size_t filled = carried;
        for (size_t c = i + 1; c <= j; ++c) {
          filled += atoms_[c - 1].tokens;
          if (filled * 2 < budget && c < j) continue;
          const int s = atoms_[c].strength;
          if (s >= best) best = s, cut = c;
        }
        if (best == kNever) cut = j;
      }
      // The sum of parts may undercount the whole: check, shrink if needed.
      ASSIGN_OR_RETURN(size_t tokens, Count(start, atoms_[cut - 1].end));
      while (tokens > budget && cut > i + 1) {
        --cut;
        ASSIGN_OR_RETURN(tokens, Count(start, atoms_[cut - 1].end));
      }
      if (tokens > budget && carried > 0) {
        start = atoms_[i].begin;
        carried = 0;
        continue;
      }
      Chunk chunk;
      chunk.begin = start;
      while (chunk.begin < atoms_[i].begin && IsSpace(text_[chunk.begin])) ++chunk.begin;
      chunk.end = atoms_[cut - 1].end;
      while (chunk.end > chunk.begin && IsSpace(text_[chunk.end - 1])) --chunk.end;
      chunk.tokens = tokens;
      chunk.heading = HeadingAt(atoms_[i].begin);
      out->push_back(std::move(chunk));
      if (cut == n) break;
      const size_t next = atoms_[cut].begin;
      ASSIGN_OR_RETURN(size_t ov, OverlapStart(out->back().begin, out->back().end));
      // No overlap when none fits; and always move forward.
      start = ov >= out->back().end || ov <= out->back().begin ? next : ov;
      if (start < next) {
        ASSIGN_OR_RETURN(carried, Count(start, next));
      } else {
        carried = 0;
      }
      i = cut;
    }
    return absl::OkStatus();
  }

  std::string_view text_;
  const ChunkOptions& options_;
  const TokenCounter& count_;
  std::vector<Atom> atoms_;
  std::vector<Heading> headings_;
};

}  // namespace

std::vector<size_t> SentenceBreaks(std::string_view text) {
  return IcuBreaks(text, &icu::BreakIterator::createSentenceInstance);
}

absl::StatusOr<std::vector<Chunk>> ChunkText(std::string_view text, const ChunkOptions& options,
                                             const TokenCounter& count_tokens) {
  Chunker chunker(text, options, count_tokens);
  return chunker.Run();
}

}  // namespace quiver::rag
