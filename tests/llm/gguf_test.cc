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

// Q4_0 is coarse for a 260K-parameter model: report where greedy decoding
// first leaves llama2.c's tokens, and check the text stays the model's
// (mostly the same words) rather than noise.
TEST_F(GgufTest, Q4GreedyTokensStartAsLlama2c) {
  const std::vector<int> want = GeneratedIds(dir_ + "/expected_greedy_n200.ids");
  GgufModel g = Convert(GgufType::kQ4_0);
  ASSERT_NE(g.model, nullptr);
  Sampler greedy(0.0f, 0.9f, 1);
  const std::vector<int> got = Generate(*g.model, *g.tokenizer, "", 200, &greedy).ids;
  const size_t agree = FirstDivergence(got, want);
  std::printf("GGUF Q4_0: greedy tokens agree with llama2.c for %zu of %zu steps\n", agree, want.size());
  EXPECT_GE(agree, 5u);
}

// F16 and Q8_0 weights stay in their stored form (a half / about a quarter of
// the float32 bytes) and give exactly the values a float32 copy holds, so
// a sequence gets the same logits batched as alone.
TEST_F(GgufTest, QuantizedWeightsStayQuantized) {
  const size_t f32_bytes = model_->weight_bytes();
  for (GgufType type : {GgufType::kF16, GgufType::kQ8_0, GgufType::kQ4_0}) {
    GgufModel g = Convert(type);
    ASSERT_NE(g.model, nullptr);
    EXPECT_FALSE(g.model->is_float32());
    std::printf("GGUF type %d: %zu weight bytes (float32: %zu)\n", static_cast<int>(type),
                g.model->weight_bytes(), f32_bytes);
    // (stories260K's w2 rows have 172 values, not a multiple of 32: that
    // matrix stays float32 in Q8_0 files.)
    EXPECT_LT(g.model->weight_bytes(),
              f32_bytes * (type == GgufType::kF16 ? 0.55 : type == GgufType::kQ8_0 ? 0.45 : 0.40))
        << "type " << static_cast<int>(type);
    const LlamaModel& m = *g.model;
    // Four sequences batched (rows converted to float32 blocks for the 4x4
    // kernel) against one alone (quantized rows read straight into Dot).
    PagedKvCache cache(m.config(), 16, 16);
    std::vector<std::vector<int>> seqs(5);
    for (auto& blocks : seqs) blocks = {cache.Allocate(), cache.Allocate()};
    const std::vector<std::vector<int>> tokens = {
        {1, 410, 469, 347, 30}, {1, 200, 300, 17, 99}, {1, 5, 6, 7, 8}, {1, 100, 101, 102, 103}};
    for (int pos = 0; pos < 5; ++pos) {
      std::vector<StepRow> rows;
      for (int s = 0; s < 4; ++s) rows.push_back({tokens[s][pos], pos, &seqs[s]});
      auto batched = m.ForwardBatch(rows, &cache);
      auto alone = m.ForwardBatch({{tokens[1][pos], pos, &seqs[4]}}, &cache);
      EXPECT_EQ(batched[1], alone[0]) << "type " << static_cast<int>(type) << " position " << pos;
    }
  }
}

TEST(RowKernelsTest, EveryInstructionSetAgreesWithThePortableKernel) {
  QUIVER_ASSERT_OK(VerifyRowKernels());
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
