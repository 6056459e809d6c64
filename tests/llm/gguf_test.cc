// stories260K converted to GGUF: F32 gives llama2.c's exact tokens; F16 and
// Q8_0 give the same greedy tokens for at least the first 50 steps.
#include "llm/gguf.h"

#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "tests/llm/stories_fixture.h"
#include "tests/testing/test_util.h"

namespace quiver::llm {
namespace {

class GgufTest : public StoriesModelTest {
 protected:
  GgufModel Convert(GgufType type) {
    const std::string path = tmp_.path() + "/m" + std::to_string(static_cast<int>(type)) + ".gguf";
    EXPECT_TRUE(WriteGguf(path, *model_, *tokenizer_, type, "stories260K").ok());
    auto g = LoadGguf(path);
    EXPECT_TRUE(g.ok()) << g.status();
    return g.ok() ? *std::move(g) : GgufModel{};
  }

  testing::TempDir tmp_;
};

TEST_F(GgufTest, F32GivesLlama2csExactTokens) {
  GgufModel g = Convert(GgufType::kF32);
  ASSERT_NE(g.model, nullptr);
  EXPECT_EQ(g.model->config().n_kv_heads, 4);
  const auto* spm = dynamic_cast<const Llama2cTokenizer*>(g.tokenizer.get());
  ASSERT_NE(spm, nullptr);
  EXPECT_EQ(spm->tokens(), tokenizer_->tokens());  // Spaces round-trip through U+2581.
  Sampler greedy(0.0f, 0.9f, 1);
  EXPECT_EQ(Generate(*g.model, *g.tokenizer, "", 200, &greedy).ids,
            GeneratedIds(dir_ + "/expected_greedy_n200.ids"));
  Sampler topp(1.0f, 0.9f, 133742);
  EXPECT_EQ(Generate(*g.model, *g.tokenizer, "", 256, &topp).ids,
            GeneratedIds(dir_ + "/expected_t1.0_p0.9_s133742_n256.ids"));
}

// The first step where two greedy runs differ (their length if none).
size_t FirstDivergence(const std::vector<int>& a, const std::vector<int>& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return i;
}

TEST_F(GgufTest, F16AndQ8GreedyTokensAgreeForFiftySteps) {
  const std::vector<int> want = GeneratedIds(dir_ + "/expected_greedy_n200.ids");
  for (GgufType type : {GgufType::kF16, GgufType::kQ8_0}) {
    GgufModel g = Convert(type);
    ASSERT_NE(g.model, nullptr);
    Sampler greedy(0.0f, 0.9f, 1);
    const std::vector<int> got = Generate(*g.model, *g.tokenizer, "", 200, &greedy).ids;
    const size_t agree = FirstDivergence(got, want);
    EXPECT_GE(agree, 50u) << "type " << static_cast<int>(type);
    std::printf("GGUF type %d: greedy tokens agree with llama2.c for %zu of %zu steps\n",
                static_cast<int>(type), agree, want.size());
  }
}

TEST_F(GgufTest, DamagedFilesAreErrors) {
  const std::string path = tmp_.path() + "/t.gguf";
  ASSERT_TRUE(WriteGguf(path, *model_, *tokenizer_, GgufType::kF32).ok());
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    bytes = ss.str();
  }
  for (size_t cut : {size_t{3}, size_t{30}, bytes.size() / 3, bytes.size() - 10}) {
    std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(cut));
    auto g = LoadGguf(path);
    EXPECT_FALSE(g.ok()) << "cut at " << cut;
  }
  std::ofstream(path, std::ios::binary) << "not a gguf file at all";
  EXPECT_EQ(LoadGguf(path).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace quiver::llm
