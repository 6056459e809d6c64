// stories260K (a genuine llama2.c model) reproduces llama2.c's published
// outputs exactly: greedy, temperature + top-p with a seed, and a prompt.
#include "llm/llama2c.h"

#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "tests/llm/stories_fixture.h"
#include "tests/testing/random_llama.h"
#include "tests/testing/test_util.h"

namespace quiver::llm {
namespace {

class StoriesTest : public StoriesModelTest {
 protected:
  void Check(const std::string& name, std::string_view prompt, int steps, float temperature,
             float top_p, uint64_t seed) {
    Sampler sampler(temperature, top_p, seed);
    Generation g = Generate(*model_, *tokenizer_, prompt, steps, &sampler);
    EXPECT_EQ(g.ids, GeneratedIds(dir_ + "/" + name + ".ids")) << name;
    EXPECT_EQ(g.text, testing::ReadFileBytes(dir_ + "/" + name + ".txt")) << name;
  }
};

// Found by llama2c_fuzz: a damaged header asked for gigabytes before the
// short file was noticed.
TEST(Llama2cLoadTest, AHeaderLargerThanTheFileIsRefusedBeforeAllocating) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/bad.bin";
  {
    std::ofstream out(path, std::ios::binary);
    const int32_t h[7] = {65536, 262144, 1024, 2, 2, 4194304, 8};
    out.write(reinterpret_cast<const char*>(h), sizeof h);
    out << "short";
  }
  auto m = LlamaModel::LoadLlama2c(path);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(m.status().message().find("truncated weights"), absl::string_view::npos);
}

TEST_F(StoriesTest, HeaderAndTokenizer) {
  const LlamaConfig& c = model_->config();
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.hidden_dim, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);  // Grouped-query attention.
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_TRUE(c.shared_classifier);
  EXPECT_EQ(tokenizer_->Encode("Zoo", true, false), (std::vector<int>{1, 410, 469, 347}));
  EXPECT_EQ(tokenizer_->Encode("", true, false), (std::vector<int>{1}));
  // The dummy-prefix space (410) is dropped after BOS.
  EXPECT_EQ(tokenizer_->Decode(1, 410), "");
  EXPECT_EQ(
      tokenizer_->Decode(1, 410) + tokenizer_->Decode(410, 469) + tokenizer_->Decode(469, 347),
      "Zoo");
  EXPECT_EQ(tokenizer_->Decode(5, 13), "\n");  // Byte fallback <0x0A>.
}

// run.c's merge loop written out plainly (rescan every pair, merge the best
// score, the leftmost among equals): the tokenizer's heap must agree.
std::vector<int> NaiveMerges(const Llama2cTokenizer& t, std::vector<int> ids) {
  while (true) {
    float best = -1e10f;
    int best_id = -1;
    size_t at = 0;
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      const std::string joined = t.tokens()[ids[i]] + t.tokens()[ids[i + 1]];
      for (int id = 0; id < t.vocab_size(); ++id) {
        if (t.tokens()[id] == joined && t.scores()[id] > best) {
          best = t.scores()[id];
          best_id = id;
          at = i;
        }
      }
    }
    if (best_id < 0) return ids;
    ids[at] = best_id;
    ids.erase(ids.begin() + at + 1);
  }
}

TEST_F(StoriesTest, LongPromptsMergeAsRunC) {
  std::string text;
  const char* words[] = {"Once",    " upon", " a",   " time", ", ",          "the",
                         " little", " girl", " saw", " a",    " big",        " dog.",
                         "\n",      " Zoo",  "zzz",  "  ",    "caf\xC3\xA9", " \xF0\x9F\x98\x80"};
  uint64_t state = 7;
  while (text.size() < 1500) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    text += words[(state >> 33) % (sizeof(words) / sizeof(words[0]))];
  }
  const std::vector<int> got = tokenizer_->Encode(text, false, false);
  // The unmerged start: dummy prefix, then characters or their bytes.
  std::vector<int> start = {tokenizer_->Encode(" ", false, false)[0]};
  for (size_t i = 0; i < text.size();) {
    size_t len = 1;
    while (i + len < text.size() && (static_cast<unsigned char>(text[i + len]) & 0xC0) == 0x80)
      ++len;
    const std::string ch = text.substr(i, len);
    int id = -1;
    for (int k = 0; k < tokenizer_->vocab_size(); ++k) {
      if (tokenizer_->tokens()[k] == ch) id = k;
    }
    if (id >= 0) {
      start.push_back(id);
    } else {
      for (unsigned char b : ch) start.push_back(b + 3);
    }
    i += len;
  }
  EXPECT_EQ(got, NaiveMerges(*tokenizer_, start));
  EXPECT_LT(got.size(), start.size() * 2 / 3);  // Merges happened (a 512-token vocabulary).
}

TEST_F(StoriesTest, GreedyReproducesLlama2c) {
  Check("expected_greedy_n200", "", 200, 0.0f, 0.9f, 1);
  Check("expected_greedy_n256", "", 256, 0.0f, 0.9f, 1);
}

TEST_F(StoriesTest, PromptReproducesLlama2c) {
  Check("expected_zoo_greedy_n60", "Zoo", 60, 0.0f, 0.9f, 1);
}

TEST_F(StoriesTest, TopPSamplingReproducesLlama2c) {
  Check("expected_t1.0_p0.9_s133742_n256", "", 256, 1.0f, 0.9f, 133742);
}

TEST(Llama2cTest, ControlTokensInPromptsAsLlamaCpp) {
  // A SentencePiece vocabulary as GGUF carries it: specials, byte tokens,
  // pieces, and a chat control token.
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    tokens.push_back(name);
  }
  for (const char* t : {" ", "H", "i", " H", " Hi", "<|user|>"}) tokens.push_back(t);
  std::vector<float> scores(tokens.size(), 0.0f);
  const int space = 259, hi = 263, user = 264;
  scores[hi] = 2.0f;
  scores[262] = 1.0f;  // " H"
  auto t = Llama2cTokenizer::FromVocab(tokens, scores);
  t->SetSpecialTokens({2, user});
  // Each text fragment after a control token gets the dummy-prefix space.
  auto ids = t->Tokenize("<|user|>Hi</s>", /*bos=*/true);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<int>{1, user, hi, 2}));
  // Without specials the same text is spelled out.
  auto plain = Llama2cTokenizer::FromVocab(tokens, scores);
  auto spelled = plain->Tokenize("<|user|>", false);
  ASSERT_TRUE(spelled.ok());
  EXPECT_GT(spelled->size(), 2u);
  EXPECT_EQ(spelled->front(), space);
  // Specials decode to nothing; a piece keeps its space unless it follows BOS.
  EXPECT_EQ(t->Decode(hi, user), "");
  EXPECT_EQ(t->Decode(user, hi), " Hi");
  EXPECT_EQ(t->Decode(1, hi), "Hi");
  EXPECT_FALSE(t->Tokenize("bad \xFF utf-8", false).ok());
}

// A generated model written as a llama2.c checkpoint and tokenizer.bin
// (tied and untied classifier, GQA) loads back with the same weights,
// vocabulary and logits.
TEST(Llama2cTest, WrittenCheckpointsLoadBack) {
  LlamaConfig c;
  c.dim = 64;
  c.hidden_dim = 160;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = 300;
  c.seq_len = 32;
  for (bool tied : {true, false}) {
    auto model = testing::RandomLlama(c, 9, 0.1f, tied);
    QUIVER_ASSERT_OK(model.status());
    auto tok = testing::SyntheticVocabulary(c.vocab_size, {" Once", " upon"});
    testing::TempDir dir;
    QUIVER_ASSERT_OK(
        testing::WriteLlama2c(**model, *tok, dir.path() + "/m.bin", dir.path() + "/t.bin"));
    auto loaded = LlamaModel::LoadLlama2c(dir.path() + "/m.bin");
    QUIVER_ASSERT_OK(loaded.status());
    EXPECT_EQ((*loaded)->config().shared_classifier, tied);
    const LlamaModel::Weights a = (*model)->weights(), b = (*loaded)->weights();
    auto same = [](std::span<const float> x, std::span<const float> y) {
      return std::equal(x.begin(), x.end(), y.begin(), y.end());
    };
    EXPECT_TRUE(same(a.embedding, b.embedding) && same(a.wq, b.wq) && same(a.wk, b.wk) &&
                same(a.w2, b.w2) && same(a.rms_final, b.rms_final) &&
                same(a.classifier, b.classifier))
        << "tied " << tied;
    auto tok2 = Llama2cTokenizer::Load(dir.path() + "/t.bin", c.vocab_size);
    QUIVER_ASSERT_OK(tok2.status());
    EXPECT_EQ((*tok2)->tokens(), tok->tokens());
    EXPECT_EQ((*tok2)->scores(), tok->scores());
    const std::vector<int> ids = (*tok2)->Encode("Once upon", true, false);
    EXPECT_EQ(ids, tok->Encode("Once upon", true, false));
    EXPECT_EQ(ids.size(),
              3u);  // BOS and the two words (their merge prefixes are in the vocabulary).
    PagedKvCache c1(c, 2, 16), c2(c, 2, 16);
    std::vector<int> b1 = {c1.Allocate()}, b2 = {c2.Allocate()};
    EXPECT_EQ((*model)->ForwardBatch({{5, 0, &b1}}, &c1),
              (*loaded)->ForwardBatch({{5, 0, &b2}}, &c2));
  }
}

TEST(Llama2cTest, DamagedCheckpointsAreErrors) {
  testing::TempDir dir;
  {
    std::ofstream out(dir.path() + "/bad.bin", std::ios::binary);
    const int32_t header[7] = {64, 172, 5, 8, 4, 512, 512};
    out.write(reinterpret_cast<const char*>(header), sizeof header);
    out << "short";
  }
  EXPECT_EQ(LlamaModel::LoadLlama2c(dir.path() + "/bad.bin").status().code(),
            absl::StatusCode::kDataLoss);
  {
    std::ofstream out(dir.path() + "/nonsense.bin", std::ios::binary);
    const int32_t header[7] = {63, 172, 5, 8, 4, 512, 512};  // 63 is not divisible by 8 heads.
    out.write(reinterpret_cast<const char*>(header), sizeof header);
  }
  EXPECT_EQ(LlamaModel::LoadLlama2c(dir.path() + "/nonsense.bin").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LlamaModel::LoadLlama2c(dir.path() + "/none.bin").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace quiver::llm
