#include "llm/generator.h"

#include "gtest/gtest.h"
#include "tests/llm/stories_fixture.h"
#include "tests/testing/test_util.h"

namespace quiver::llm {
namespace {

class GeneratorTest : public StoriesModelTest {
 protected:
  void SetUp() override {
    StoriesModelTest::SetUp();
    if (IsSkipped()) return;
    GeneratorOptions o;
    o.model.path = dir_ + "/stories260K.bin";
    o.model.tokenizer_path = dir_ + "/tok512.bin";
    o.device = "cpu";
    auto g = Generator::Load(o);
    ASSERT_TRUE(g.ok()) << g.status();
    generator_ = *std::move(g);
  }
  std::unique_ptr<Generator> generator_;
};

TEST_F(GeneratorTest, LoadsByPathAndNamesTheModelAfterTheFile) {
  EXPECT_EQ(generator_->name(), "stories260K");
  EXPECT_EQ(generator_->device(), "cpu");
  EXPECT_EQ(generator_->context_length(), model_->config().seq_len);
}

TEST_F(GeneratorTest, ZeroesMeanTheDefaults) {
  GenerationRequest r;
  r.prompt = "Once";
  r.seed = 7;
  auto p = generator_->Prepare(r);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->prompt, "Once");
  EXPECT_EQ(p->temperature, 0);
  EXPECT_EQ(p->top_p, 1);
  EXPECT_EQ(p->repetition_penalty, 1);
  EXPECT_EQ(p->seed, 7u);
  EXPECT_EQ(p->max_tokens, static_cast<int>(kDefaultMaxTokens));
  // More new tokens than the context holds are capped by it.
  r.max_tokens = 4000000000u;
  EXPECT_EQ(generator_->Prepare(r)->max_tokens, generator_->context_length());
  r.seed = 0;  // From the clock: two requests differ.
  EXPECT_NE(generator_->Prepare(r)->seed, 0u);
}

TEST_F(GeneratorTest, BadRequestsSayWhatIsWrong) {
  struct Case {
    GenerationRequest request;
    absl::StatusCode code;
    std::string message;
  };
  auto request = [](std::string model, std::string prompt, std::vector<ChatMessage> messages) {
    GenerationRequest r;
    r.model = std::move(model);
    r.prompt = std::move(prompt);
    r.messages = std::move(messages);
    return r;
  };
  const GenerationRequest other_model = request("llama-70b", "hi", {});
  const GenerationRequest both = request("", "hi", {{"user", "hi"}});
  const GenerationRequest no_role = request("", "", {{"", "hi"}});
  const GenerationRequest no_template = request("", "", {{"user", "hi"}});
  const GenerationRequest bad_utf8 = request("", "\xff", {});
  const Case cases[] = {
      {other_model, absl::StatusCode::kNotFound, "no generative model \"llama-70b\""},
      {both, absl::StatusCode::kInvalidArgument, "send a prompt or messages, not both"},
      {no_role, absl::StatusCode::kInvalidArgument, "message 0 has no role"},
      {no_template, absl::StatusCode::kInvalidArgument, "has no chat template"},
      {bad_utf8, absl::StatusCode::kInvalidArgument, "prompt is not valid UTF-8"},
  };
  for (const Case& c : cases) {
    absl::Status s = generator_->Start(c.request).status();
    EXPECT_EQ(s.code(), c.code) << s;
    EXPECT_NE(s.message().find(c.message), std::string::npos) << s;
  }
}

TEST_F(GeneratorTest, StreamsGreedyTextLikeTheScheduler) {
  GenerationRequest r;
  r.prompt = "Once upon a time";
  r.max_tokens = 30;
  auto stream = generator_->Start(r);
  ASSERT_TRUE(stream.ok()) << stream.status();
  std::string text;
  TokenEvent e;
  int tokens = 0;
  for (e = (*stream)->Next(); !e.done; e = (*stream)->Next()) {
    text += e.text;
    ++tokens;
  }
  text += e.text;
  EXPECT_FALSE(text.empty());
  EXPECT_LE(tokens, 30);
  EXPECT_EQ(e.completion_tokens, tokens);
}

}  // namespace
}  // namespace quiver::llm
