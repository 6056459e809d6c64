// Hugging Face Llama / Qwen2 directories against an independent PyTorch
// implementation (tests/llm/hf_reference.py: torch.nn layers, rotate-half
// RoPE with llama3 / linear scaling, GQA, q/k/v biases, random weights).
#include "llm/hf_model.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace quiver::llm {
namespace {

using ::quiver::testing::StatusIs;

constexpr char kPython[] = "/usr/bin/python3";

bool HaveTorch() {
  return std::system((std::string(kPython) + " -c 'import torch' >/dev/null 2>&1").c_str()) == 0;
}

const std::vector<int> kIds = {5, 70, 100, 200, 33, 12, 250, 260, 261, 262, 263, 1, 2, 3, 4, 9, 17, 45, 99, 120};

class HfModelTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!HaveTorch()) GTEST_SKIP() << kPython << " has no torch (Debian python3-torch); scripts/setup.sh installs it";
    dir_ = tmp_.path() + "/" + GetParam();
    const std::string ids = tmp_.path() + "/ids.json";
    std::string list = "[";
    for (size_t i = 0; i < kIds.size(); ++i) list += (i ? "," : "") + std::to_string(kIds[i]);
    std::ofstream(ids) << list << "]";
    const std::string cmd = std::string(kPython) + " " + QUIVER_SOURCE_DIR + "/tests/llm/hf_reference.py " +
                            dir_ + " " + GetParam() + " " + ids;
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    std::ifstream in(dir_ + "/expected.json");
    std::stringstream ss;
    ss << in.rdbuf();
    auto j = ParseJson(ss.str());
    ASSERT_TRUE(j.ok());
    for (const Json& row : j->Find("logits")->as_array()) {
      std::vector<float> r;
      for (const Json& v : row.as_array()) r.push_back(static_cast<float>(v.as_number()));
      want_.push_back(std::move(r));
    }
  }
  static double MaxDiff(const std::vector<float>& a, const std::vector<float>& b) {
    EXPECT_EQ(a.size(), b.size());
    double worst = 0;
    for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) worst = std::max(worst, std::fabs(double{a[i]} - b[i]));
    return worst;
  }

  testing::TempDir tmp_;
  std::string dir_;
  std::vector<std::vector<float>> want_;
};

TEST_P(HfModelTest, LogitsMatchPyTorch) {
  auto loaded = LoadHfModel(dir_);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const LlamaModel& m = *loaded->model;
  const bool qwen = GetParam() == "qwen2";
  EXPECT_EQ(m.has_attention_bias(), qwen);
  EXPECT_EQ(m.config().shared_classifier, qwen);
  EXPECT_EQ(m.config().n_kv_heads, 2);
  // Qwen2 with use_sliding_window false keeps its whole context.
  EXPECT_EQ(m.config().seq_len, 256);
  EXPECT_EQ(m.config().rope_scaling.type, qwen ? RopeScaling::Type::kLinear : RopeScaling::Type::kLlama3);

  PagedKvCache cache(m.config(), 8, 16);
  std::vector<int> blocks;
  for (int i = 0; i < 2; ++i) blocks.push_back(cache.Allocate());
  // The whole prompt in one batched step (prefill)...
  std::vector<StepRow> rows;
  for (size_t p = 0; p < kIds.size(); ++p) rows.push_back({kIds[p], static_cast<int>(p), &blocks});
  auto logits = m.ForwardBatch(rows, &cache);
  ASSERT_EQ(logits.size(), want_.size());
  for (size_t p = 0; p < kIds.size(); ++p) EXPECT_LT(MaxDiff(logits[p], want_[p]), 1e-4) << "position " << p;
  // ...and one token per step (decode) into a fresh sequence.
  std::vector<int> other = {cache.Allocate(), cache.Allocate()};
  for (size_t p = 0; p < kIds.size(); ++p) {
    auto one = m.ForwardBatch({{kIds[p], static_cast<int>(p), &other}}, &cache);
    EXPECT_LT(MaxDiff(one[0], want_[p]), 1e-4) << "position " << p;
  }
}

TEST_P(HfModelTest, TokenizerAndSpecialTokens) {
  auto loaded = LoadHfModel(dir_);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const TokenCodec& t = *loaded->tokenizer;
  const bool qwen = GetParam() == "qwen2";
  const int base = 256 + 7;  // Byte alphabet, 7 merges, then the added tokens.
  const int endoftext = base, im_start = base + 1, im_end = base + 2;
  EXPECT_EQ(t.info().bos_id, qwen ? -1 : endoftext);
  EXPECT_FALSE(t.info().add_bos);  // Neither post-processor adds one.
  EXPECT_TRUE(t.IsEnd(qwen ? im_end : endoftext));
  EXPECT_FALSE(t.IsEnd('a'));
  EXPECT_NE(t.info().chat_template.find("<|im_start|>"), std::string::npos);
  EXPECT_EQ(t.info().eos_token, qwen ? "<|im_end|>" : "<|endoftext|>");
  // Byte b has id b; the merges follow (Ġt 256, he 257, Ġthe 258, Ġa 259,
  // in 260, Ġan 261, Ġand 262). "user\nthe and" splits into "user", "\n",
  // "the", " and"; "the" merges only h+e ("t he" is no merge).
  auto ids = t.Tokenize("<|im_start|>user\nthe and<|im_end|>", /*bos=*/false);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(*ids, (std::vector<int>{im_start, 'u', 's', 'e', 'r', '\n', 't', 257, 262, im_end}));
  // Streaming decode gives the text back; special tokens show nothing.
  std::string text;
  int prev = -1;
  for (int id : *ids) {
    text += t.Decode(prev, id);
    prev = id;
  }
  EXPECT_EQ(text, "user\nthe and");
  auto with_bos = t.Tokenize("a", /*bos=*/true);
  ASSERT_TRUE(with_bos.ok());
  const std::vector<int> want = qwen ? std::vector<int>{'a'} : std::vector<int>{endoftext, 'a'};
  EXPECT_EQ(*with_bos, want);
}

TEST_P(HfModelTest, BadDirectoriesAreClearErrors) {
  const std::string config = dir_ + "/config.json";
  std::ifstream in(config);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string original = ss.str();
  auto rewrite = [&](const std::string& from, const std::string& to) {
    std::string s = original;
    s.replace(s.find(from), from.size(), to);
    std::ofstream(config) << s;
  };
  rewrite("\"hidden_size\": 64", "\"hidden_size\": 128");  // Tensors no longer fit.
  EXPECT_THAT(LoadHfModel(dir_).status(), StatusIs(absl::StatusCode::kInvalidArgument));
  rewrite("\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"");
  auto act = LoadHfModel(dir_);
  EXPECT_THAT(act.status(), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_NE(act.status().message().find("gelu"), std::string::npos);
  rewrite(GetParam() == "qwen2" ? "\"model_type\": \"qwen2\"" : "\"model_type\": \"llama\"",
          "\"model_type\": \"gemma\"");
  auto arch = LoadHfModel(dir_);
  EXPECT_NE(arch.status().message().find("gemma"), std::string::npos);
  std::ofstream(config) << original;
  // A truncated weights file.
  const std::string weights = GetParam() == "qwen2" ? dir_ + "/model-00002-of-00002.safetensors"
                                                    : dir_ + "/model.safetensors";
  std::filesystem::resize_file(weights, std::filesystem::file_size(weights) - 100);
  auto truncated = LoadHfModel(dir_);
  EXPECT_FALSE(truncated.ok());
  EXPECT_NE(truncated.status().message().find("safetensors"), std::string::npos) << truncated.status();
  std::filesystem::remove(weights);
  EXPECT_FALSE(LoadHfModel(dir_).ok());
}

INSTANTIATE_TEST_SUITE_P(Archs, HfModelTest, ::testing::Values("llama", "qwen2"));

}  // namespace
}  // namespace quiver::llm
