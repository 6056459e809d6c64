// Chat templates as models ship them; the expected prompts are worked out
// from Jinja's rules with Hugging Face's settings (trim_blocks,
// lstrip_blocks) and match the formats the model cards document.
#include "llm/chat_template.h"

#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace quiver::llm {
namespace {

using ::quiver::testing::StatusIs;

std::string Render(const std::string& source, const std::vector<ChatMessage>& messages,
                   bool generation_prompt = true) {
  auto t = ChatTemplate::Parse(source);
  EXPECT_TRUE(t.ok()) << t.status();
  if (!t.ok()) return "";
  auto out = (*t)->Render({messages, generation_prompt, "<s>", "</s>"});
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : "";
}

// Found by chat_template_fuzz: an integer literal past int64 threw
// std::out_of_range through the parser and terminated the server.
TEST(ChatTemplateTest, OutOfRangeLiteralsAreErrorsNotCrashes) {
  auto t = ChatTemplate::Parse("{{ 99999999999999999999999999 }}");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("out of range"), absl::string_view::npos);
  // A float literal past double's range is infinity, as in Python.
  auto f = ChatTemplate::Parse("{{ " + std::string(400, '9') + ".5 }}");
  ASSERT_TRUE(f.ok()) << f.status();
}

// Found by the long chat_template_fuzz run (UBSan): `444444444**44` converted a
// double far past int64 to an integer. Integer arithmetic is now checked: exact
// inside int64, an error naming the operation outside it, as Python's results
// would not fit our integers.
TEST(ChatTemplateTest, IntegerArithmeticIsExactOrAnError) {
  EXPECT_EQ(Render("{{ 3 ** 4 }} {{ 2 ** 62 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }}", {}),
            "81 4611686018427387904 -4 2 -2");
  EXPECT_EQ(Render("{{ 9007199254740993 + 0 }}", {}), "9007199254740993");  // Not via double.
  EXPECT_EQ(Render("{{ 2 ** -1 }} {{ 7 / 2 }}", {}), "0.5 3.5");
  for (const char* overflow :
       {"{{ 444444444**44 }}", "{{ 9223372036854775807 + 1 }}", "{{ 3037000500 * 3037000500 }}",
        "{{ -9223372036854775807 - 2 }}", "{{ (-9223372036854775807 - 1) // -1 }}",
        "{{ -(-9223372036854775807 - 1) }}", "{{ (10.0 ** 300) | int }}",
        "{{ range(10.0 ** 300) }}", "{{ range(-9223372036854775807, 9223372036854775807) }}",
        "{{ 'ab' * 100000000 }}"}) {
    auto t = ChatTemplate::Parse(overflow);
    ASSERT_TRUE(t.ok()) << overflow << ": " << t.status();
    auto out = (*t)->Render({{}, false, "", ""});
    EXPECT_THAT(out.status(), StatusIs(absl::StatusCode::kInvalidArgument)) << overflow;
  }
  EXPECT_EQ(Render("{{ (-9223372036854775807 - 1) % -1 }} {{ range(3, 0, -1) | join(',') }}", {}),
            "0 3,2,1");
}

TEST(ChatTemplateTest, ChatMlWithDefaultSystem) {  // Qwen2-Instruct.
  const std::string t =
      R"({% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %})";
  EXPECT_EQ(
      Render(t, {{"user", "Hi"}}),
      "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
      "<|im_start|>assistant\n");
  EXPECT_EQ(Render(t, {{"system", "Be brief."}, {"user", "Hi"}}, false),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
}

TEST(ChatTemplateTest, Llama2AlternationAndSystemPrompt) {
  const std::string t =
      R"({% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %})";
  EXPECT_EQ(Render(t, {{"system", "S"}, {"user", " Hi "}, {"assistant", "Yo"}, {"user", "Q"}}),
            // strip() trims the joined text's ends only: " Hi" keeps its space.
            "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\n Hi [/INST] Yo </s><s>[INST] Q [/INST]");
  auto parsed = ChatTemplate::Parse(t);
  QUIVER_ASSERT_OK(parsed.status());
  auto bad = (*parsed)->Render({{{"user", "a"}, {"user", "b"}}, true, "<s>", "</s>"});
  EXPECT_THAT(bad.status(), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_NE(bad.status().message().find("roles must alternate"), std::string::npos);
}

TEST(ChatTemplateTest, ZephyrLinesWithTrimAndLstripBlocks) {  // TinyLlama-Chat.
  const std::string t =
      "{% for message in messages %}\n"
      "{% if message['role'] == 'user' %}\n"
      "{{ '<|user|>\\n' + message['content'] + eos_token }}\n"
      "{% elif message['role'] == 'system' %}\n"
      "{{ '<|system|>\\n' + message['content'] + eos_token }}\n"
      "{% elif message['role'] == 'assistant' %}\n"
      "{{ '<|assistant|>\\n'  + message['content'] + eos_token }}\n"
      "{% endif %}\n"
      "{% if loop.last and add_generation_prompt %}\n"
      "{{ '<|assistant|>' }}\n"
      "{% endif %}\n"
      "{% endfor %}";
  EXPECT_EQ(Render(t, {{"system", "Be kind."}, {"user", "Hi"}}),
            "<|system|>\nBe kind.</s>\n<|user|>\nHi</s>\n<|assistant|>\n");
  // Indented block tags lose their indentation; "-" strips all whitespace.
  EXPECT_EQ(Render("  {% if true %}x{% endif %}\n  {{- 'y' -}}  \n z", {}), "xyz");
  EXPECT_EQ(Render("a\n  {% if true %}\n  b\n  {% endif %}\nc", {}), "a\n  b\nc");
}

TEST(ChatTemplateTest, Llama3FilterBindsBeforePlus) {
  const std::string t =
      R"({% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %})";
  EXPECT_EQ(Render(t, {{"user", " Hi "}}),
            "<s><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplateTest, NamespacesSlicesFiltersAndTests) {
  const std::string t =
      "{%- set ns = namespace(last_user=-1) -%}\n"
      "{%- for m in messages -%}{%- if m.role == 'user' -%}{%- set ns.last_user = loop.index0 "
      "-%}{%- endif -%}"
      "{%- endfor -%}\n"
      "{{ ns.last_user }}|{{ messages[::-1][0].content }}|{{ {'a': 1, 'b': [true, none, 'x']} | "
      "tojson }}|"
      "{{ tools is defined }}|{{ 'x' ~ 3 }}|{{ messages | length }}|"
      "{% for m in messages if m.role != 'system' %}{{ loop.index }}{{ m.role[0] }}{% endfor %}|"
      "{{ 'a,b' .split(',') | join('+') }}|{{ 7 // 2 }}{{ -7 % 3 }}{{ 1 / 2 }}|{{ none }}|"
      "{{ 'yes' if messages[0].content.startswith('s') else 'no' }}|{{ messages[9] is defined }}";
  EXPECT_EQ(
      Render(t, {{"system", "s"}, {"user", "u1"}, {"assistant", "a"}, {"user", "u2"}}),
      "3|u2|{\"a\": 1, \"b\": [true, null, \"x\"]}|False|x3|4|1u2a3u|a+b|320.5|None|yes|False");
}

TEST(ChatTemplateTest, LeadingBosBecomesAnId) {
  TokenizerInfo info;
  info.bos_id = 1;
  info.bos_token = "<s>";
  info.eos_token = "</s>";
  auto llama2 =
      ChatTemplate::Parse("{{ bos_token + '[INST] ' + messages[0]['content'] + ' [/INST]' }}");
  QUIVER_ASSERT_OK(llama2.status());
  auto r = RenderChat(**llama2, info, {{"user", "Hi"}});
  QUIVER_ASSERT_OK(r.status());
  EXPECT_EQ(r->text, "[INST] Hi [/INST]");  // BOS as an id, not as text.
  EXPECT_TRUE(r->add_bos);
  auto chatml = ChatTemplate::Parse("<|im_start|>user\n{{ messages[0]['content'] }}<|im_end|>\n");
  QUIVER_ASSERT_OK(chatml.status());
  r = RenderChat(**chatml, info, {{"user", "Hi"}});
  QUIVER_ASSERT_OK(r.status());
  EXPECT_EQ(r->text, "<|im_start|>user\nHi<|im_end|>\n");
  EXPECT_FALSE(r->add_bos);  // The template writes none: none is added.
}

TEST(ChatTemplateTest, ErrorsNameTheProblem) {
  for (const std::string bad : {"{% if x %}no end", "{{ x ", "{% macro m() %}{% endmacro %}",
                                "{{ x | frobnicate }}", "{% endfor %}", "{{ 'a' + }}"}) {
    auto t = ChatTemplate::Parse(bad);
    if (t.ok()) {  // Some problems show only when rendering.
      auto r = (*t)->Render({{{"user", "x"}}, true, "", ""});
      EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
    } else {
      EXPECT_THAT(t.status(), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
    }
  }
}

}  // namespace
}  // namespace quiver::llm
