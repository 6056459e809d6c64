// Chat templates: the Jinja templates models ship (tokenizer_config.json's
// chat_template, GGUF's tokenizer.chat_template) rendered the way Hugging
// Face's apply_chat_template renders them (trim_blocks and lstrip_blocks
// on), so a prompt gets exactly the special tokens the model was trained
// with.
//
// The Jinja subset covers what chat templates use: text, {{ }}, {% if /
// elif / else %}, {% for x in xs [if cond] %} with loop.* and tuple
// targets, {% set %} (with namespace()), {# #}, whitespace control (-);
// expressions with literals, lists, dicts, attributes, subscripts and
// slices, + - * / // % ~, comparisons, in, and / or / not, x if c else y,
// filters (trim, length, upper, lower, tojson, string, first, last, join,
// default, replace, int, list, items, capitalize, title, safe), tests
// (defined, none, string, number, mapping, iterable, sequence, boolean,
// odd, even, true, false), string methods (strip, startswith, split, ...),
// dict methods (items, keys, values, get), raise_exception() and
// strftime_now(). Anything else is an INVALID_ARGUMENT naming it.
#ifndef QUIVER_LLM_CHAT_TEMPLATE_H_
#define QUIVER_LLM_CHAT_TEMPLATE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "llm/tokenizer.h"

namespace quiver::llm {

struct ChatMessage {
  std::string role, content;
};

struct ChatInput {
  std::vector<ChatMessage> messages;
  bool add_generation_prompt = true;
  std::string bos_token, eos_token;
};

class ChatTemplate {
 public:
  // INVALID_ARGUMENT for a syntax error or an unsupported construct.
  static absl::StatusOr<std::unique_ptr<ChatTemplate>> Parse(const std::string& source);
  ~ChatTemplate();
  // INVALID_ARGUMENT when the template raises an exception (for example
  // "roles must alternate") or evaluation fails.
  absl::StatusOr<std::string> Render(const ChatInput& input) const;

  struct Node;

 private:
  ChatTemplate() = default;
  std::vector<std::unique_ptr<Node>> body_;
};

// A conversation rendered for a model, with the assistant prompt appended.
// A BOS the template writes at the start is taken off the text and asked for
// as an id instead (add_bos), so it is neither doubled by the tokenizer nor
// spelled out where BOS is not a special token in text; a template that
// writes no BOS gets none, as with Hugging Face's apply_chat_template.
struct RenderedChat {
  std::string text;
  bool add_bos = false;
};
absl::StatusOr<RenderedChat> RenderChat(const ChatTemplate& tmpl, const TokenizerInfo& info,
                                        const std::vector<ChatMessage>& messages);

}  // namespace quiver::llm

#endif  // QUIVER_LLM_CHAT_TEMPLATE_H_
