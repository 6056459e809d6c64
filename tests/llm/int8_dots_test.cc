// Integer dots for Q8_0 / Q4_0 weights (LlamaModel::SetInt8Dots): every
// instruction set's form gives the portable form's bits; activations
// quantize as documented; a row's logits do not depend on its batch; and
// the results stay close to the float32 path's (figures printed, bounds
// asserted), on a random model and on stories260K.
#include "llm/internal/int8_dots.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "llm/gguf.h"
#include "llm/kv_cache.h"
#include "tests/llm/stories_fixture.h"
#include "tests/testing/llm_paths.h"
#include "tests/testing/random_llama.h"
#include "tests/testing/test_util.h"

namespace quiver::llm {
namespace {

using internal::Q8Activation;

TEST(Int8DotsTest, EveryInstructionSetAgreesWithThePortableForm) {
  QUIVER_ASSERT_OK(VerifyInt8Dots());
  std::string forms;
  for (const auto* f : internal::Int8DotForms()) forms += std::string(" ") + f->name;
  std::printf("integer dot forms on this CPU:%s (chosen: %s)\n", forms.c_str(),
              internal::Int8DotKernels().name);
}

TEST(Int8DotsTest, ActivationsQuantizePerBlockTiesToEven) {
  std::vector<float> x(64, 0.0f);
  // Block 0: max |x| = 127, so its scale is exactly 1.
  x[0] = 127.0f;
  x[1] = 2.5f;   // -> 2 (ties to even)
  x[2] = 3.5f;   // -> 4
  x[3] = -2.5f;  // -> -2
  x[4] = 0.49f;  // -> 0
  x[5] = -127.0f;
  // Block 1 stays zero: scale 0, values 0.
  Q8Activation a;
  internal::QuantizeActivation(x.data(), 64, &a);
  ASSERT_EQ(a.q.size(), 64u);
  ASSERT_EQ(a.scale.size(), 2u);
  EXPECT_EQ(a.scale[0], 1.0f);
  EXPECT_EQ(a.scale[1], 0.0f);
  EXPECT_EQ(std::vector<int>(a.q.begin(), a.q.begin() + 6),
            (std::vector<int>{127, 2, 4, -2, 0, -127}));
  EXPECT_TRUE(std::all_of(a.q.begin() + 32, a.q.end(), [](int8_t v) { return v == 0; }));
  // Sums of four: values 0-3 sum to 131, 4-7 to -127.
  EXPECT_EQ(a.minus128_sums[0], -128 * 131);
  EXPECT_EQ(a.minus8_sums[1], -8 * -127);
  EXPECT_EQ(a.scale_lanes[7], 1.0f);
  EXPECT_EQ(a.scale_lanes[8], 0.0f);
}

// Six sequences in one step (two groups of activations: four and two)
// against one alone, for five positions.
void ExpectBatchedEqualsAlone(const LlamaModel& m, const char* what) {
  PagedKvCache cache(m.config(), 32, 16);
  std::vector<std::vector<int>> seqs(8);  // 0-5 batched; 6 and 7: 1 and 5 alone.
  for (auto& blocks : seqs) blocks = {cache.Allocate()};
  for (int pos = 0; pos < 5; ++pos) {
    std::vector<StepRow> rows;
    for (int s = 0; s < 6; ++s) rows.push_back({(3 + 7 * s + 11 * pos) % 512, pos, &seqs[s]});
    const auto batched = m.ForwardBatch(rows, &cache);
    for (int s : {1, 5}) {
      const auto alone = m.ForwardBatch({{rows[s].token, pos, &seqs[s == 1 ? 6 : 7]}}, &cache);
      EXPECT_EQ(batched[s], alone[0]) << what << " sequence " << s << " position " << pos;
    }
  }
}

TEST(Int8DotsModelTest, RandomModelBatchedEqualsAloneAndStaysCloseToFloat) {
  const LlamaConfig c = testing::SuperBlockLlamaConfig();
  auto base = testing::RandomLlama(c, 11, 0.05f, true);
  QUIVER_ASSERT_OK(base.status());
  auto tok = testing::SyntheticVocabulary(c.vocab_size);
  testing::TempDir tmp;
  for (GgufType type : {GgufType::kQ8_0, GgufType::kQ4_0}) {
    const std::string name = type == GgufType::kQ8_0 ? "Q8_0" : "Q4_0";
    const std::string path = tmp.path() + "/m.gguf";
    QUIVER_ASSERT_OK(WriteGguf(path, **base, *tok, type));
    auto g = LoadGguf(path);
    QUIVER_ASSERT_OK(g.status());
    LlamaModel& m = *g->model;
    const testing::PathDifference d = testing::CompareInt8Dots(m, 40);
    std::printf(
        "random model %s: int8 dots vs float32 path: max logit error %.5f of the largest "
        "logit, greedy agree %zu of 40 steps\n",
        name.c_str(), d.max_error, d.greedy_agree);
    EXPECT_GT(d.max_error, 0.0) << name << ": the integer dots did not run";
    EXPECT_LT(d.max_error, type == GgufType::kQ8_0 ? 0.03 : 0.05) << name;
    m.SetInt8Dots(true);
    ExpectBatchedEqualsAlone(m, name.c_str());
  }
}

class Int8DotsStoriesTest : public StoriesModelTest {};

// stories260K's Q8_0 and Q4_0 files (w2's 172-value rows stay float32):
// the figures the README quotes.
TEST_F(Int8DotsStoriesTest, GreedyAgreementAndLogitErrorAgainstTheFloatPath) {
  testing::TempDir tmp;
  for (GgufType type : {GgufType::kQ8_0, GgufType::kQ4_0}) {
    const std::string name = type == GgufType::kQ8_0 ? "Q8_0" : "Q4_0";
    const std::string path = tmp.path() + "/s.gguf";
    QUIVER_ASSERT_OK(WriteGguf(path, *model_, *tokenizer_, type, "stories260K"));
    auto g = LoadGguf(path);
    QUIVER_ASSERT_OK(g.status());
    const testing::PathDifference d = testing::CompareInt8Dots(*g->model, 200);
    std::printf(
        "stories260K %s: int8 dots vs float32 path: max logit error %.5f of the largest "
        "logit, greedy agree %zu of 200 steps\n",
        name.c_str(), d.max_error, d.greedy_agree);
    EXPECT_GT(d.max_error, 0.0) << name;
    EXPECT_LT(d.max_error, 0.05) << name;
    EXPECT_GE(d.greedy_agree, type == GgufType::kQ8_0 ? 20u : 5u) << name;
    ExpectBatchedEqualsAlone(*g->model, name.c_str());
  }
}

}  // namespace
}  // namespace quiver::llm
