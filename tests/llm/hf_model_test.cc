// Hugging Face Llama / Qwen2 directories against an independent PyTorch
// implementation (tests/llm/hf_reference.py: torch.nn layers, rotate-half
// RoPE with llama3 / linear scaling, GQA, q/k/v biases, random weights).
#include "llm/hf_model.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "gtest/gtest.h"
#include "llm/gguf.h"
#include "nn/safetensors.h"
#include "tests/testing/test_util.h"

namespace quiver::llm {
namespace {

using ::quiver::testing::StatusIs;

using ::quiver::testing::HaveTorch;
using ::quiver::testing::kPython;

const std::vector<int> kIds = {5,   70, 100, 200, 33, 12, 250, 260, 261, 262,
                               263, 1,  2,   3,   4,  9,  17,  45,  99,  120};

class HfModelTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!HaveTorch()) GTEST_SKIP() << ::quiver::testing::kNoTorch;
    dir_ = tmp_.path() + "/" + GetParam();
    const std::string ids = tmp_.path() + "/ids.json";
    std::string list = "[";
    for (size_t i = 0; i < kIds.size(); ++i) list += (i ? "," : "") + std::to_string(kIds[i]);
    std::ofstream(ids) << list << "]";
    const std::string cmd = std::string(kPython) + " " + QUIVER_SOURCE_DIR +
                            "/tests/llm/hf_reference.py " + dir_ + " " + GetParam() + " " + ids;
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
    return testing::MaxAbsError(a, b);  // Infinity on a size mismatch or a NaN.
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
  // The qwen2 directory is bfloat16 and stays so in memory.
  EXPECT_EQ(m.is_float32(), !qwen);
  EXPECT_EQ(m.config().n_kv_heads, 2);
  // Qwen2 with use_sliding_window false keeps its whole context.
  EXPECT_EQ(m.config().seq_len, 256);
  EXPECT_EQ(m.config().rope_scaling.type,
            qwen ? RopeScaling::Type::kLinear : RopeScaling::Type::kLlama3);

  PagedKvCache cache(m.config(), 8, 16);
  std::vector<int> blocks;
  for (int i = 0; i < 2; ++i) blocks.push_back(cache.Allocate());
  // The whole prompt in one batched step (prefill)...
  std::vector<StepRow> rows;
  for (size_t p = 0; p < kIds.size(); ++p) rows.push_back({kIds[p], static_cast<int>(p), &blocks});
  auto logits = m.ForwardBatch(rows, &cache);
  ASSERT_EQ(logits.size(), want_.size());
  for (size_t p = 0; p < kIds.size(); ++p)
    EXPECT_LT(MaxDiff(logits[p], want_[p]), 1e-4) << "position " << p;
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
  const Tokenizer& t = *loaded->tokenizer;
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
  EXPECT_NE(truncated.status().message().find("safetensors"), std::string::npos)
      << truncated.status();
  std::filesystem::remove(weights);
  EXPECT_FALSE(LoadHfModel(dir_).ok());
}

// The same model written as GGUF the way llama.cpp's converter does it
// (written here from the safetensors, independently of LoadHfModel): Q/K
// rows permuted to interleaved pairs for "llama" (kept for "qwen2"), llama3
// scaling as a rope_freqs tensor, the byte-level vocabulary with merges and
// token types. It must give the reference logits and the same token ids.
TEST_P(HfModelTest, GgufOfTheSameModelMatches) {
  const bool qwen = GetParam() == "qwen2";
  auto config_text = [&] {
    std::ifstream in(dir_ + "/config.json");
    std::stringstream ss;
    ss << in.rdbuf();
    return *ParseJson(ss.str());
  }();
  auto num = [&](const char* k) { return config_text.Find(k)->as_number(); };
  const int dim = static_cast<int>(num("hidden_size")),
            heads = static_cast<int>(num("num_attention_heads"));
  const int kv_heads = static_cast<int>(num("num_key_value_heads")), hs = dim / heads;
  const int layers = static_cast<int>(num("num_hidden_layers")),
            vocab = static_cast<int>(num("vocab_size"));
  std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> hf;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    if (entry.path().extension() != ".safetensors") continue;
    auto f = nn::SafetensorsFile::Open(entry.path().string());
    ASSERT_TRUE(f.ok()) << f.status();
    for (const auto& [name, info] : (*f)->tensors())
      hf[name] = {info.shape, *(*f)->ReadFloat(name)};
  }
  // Hugging Face's rotate-half rows -> interleaved pairs, as convert_hf_to_gguf.py permutes.
  auto permute = [&](std::vector<float> w, int n_heads, size_t cols) {
    std::vector<float> out(w.size());
    for (int h = 0; h < n_heads; ++h) {
      for (int j = 0; j < hs / 2; ++j) {
        for (int i = 0; i < 2; ++i) {
          std::copy_n(&w[(h * hs + i * hs / 2 + j) * cols], cols,
                      &out[(h * hs + 2 * j + i) * cols]);
        }
      }
    }
    return out;
  };
  std::vector<GgufTensor> tensors;
  auto add = [&](const std::string& gguf_name, const std::string& hf_name, int permute_heads = 0) {
    ASSERT_TRUE(hf.contains(hf_name)) << hf_name;
    auto [shape, values] = hf[hf_name];
    const size_t cols = shape.size() == 2 ? shape[1] : 1;
    if (permute_heads > 0 && !qwen) values = permute(values, permute_heads, cols);
    std::vector<uint64_t> dims = shape.size() == 2
                                     ? std::vector<uint64_t>{static_cast<uint64_t>(shape[1]),
                                                             static_cast<uint64_t>(shape[0])}
                                     : std::vector<uint64_t>{static_cast<uint64_t>(shape[0])};
    tensors.push_back({gguf_name, dims, GgufType::kF32, std::move(values)});
  };
  add("token_embd.weight", "model.embed_tokens.weight");
  add("output_norm.weight", "model.norm.weight");
  if (!qwen) add("output.weight", "lm_head.weight");
  for (int l = 0; l < layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".",
                      m = "model.layers." + std::to_string(l) + ".";
    add(b + "attn_norm.weight", m + "input_layernorm.weight");
    add(b + "attn_q.weight", m + "self_attn.q_proj.weight", heads);
    add(b + "attn_k.weight", m + "self_attn.k_proj.weight", kv_heads);
    add(b + "attn_v.weight", m + "self_attn.v_proj.weight");
    add(b + "attn_output.weight", m + "self_attn.o_proj.weight");
    add(b + "ffn_norm.weight", m + "post_attention_layernorm.weight");
    add(b + "ffn_gate.weight", m + "mlp.gate_proj.weight");
    add(b + "ffn_up.weight", m + "mlp.up_proj.weight");
    add(b + "ffn_down.weight", m + "mlp.down_proj.weight");
    if (qwen) {
      add(b + "attn_q.bias", m + "self_attn.q_proj.bias");
      add(b + "attn_k.bias", m + "self_attn.k_proj.bias");
      add(b + "attn_v.bias", m + "self_attn.v_proj.bias");
    }
  }
  const std::string arch = qwen ? "qwen2" : "llama";
  std::vector<GgufMeta> meta = {
      {"general.architecture", arch},
      {arch + ".context_length", static_cast<uint32_t>(num("max_position_embeddings"))},
      {arch + ".embedding_length", static_cast<uint32_t>(dim)},
      {arch + ".block_count", static_cast<uint32_t>(layers)},
      {arch + ".feed_forward_length", static_cast<uint32_t>(num("intermediate_size"))},
      {arch + ".attention.head_count", static_cast<uint32_t>(heads)},
      {arch + ".attention.head_count_kv", static_cast<uint32_t>(kv_heads)},
      {arch + ".rope.freq_base", static_cast<float>(num("rope_theta"))},
      {arch + ".attention.layer_norm_rms_epsilon", static_cast<float>(num("rms_norm_eps"))},
  };
  const Json& scaling = *config_text.Find("rope_scaling");
  if (qwen) {
    meta.push_back({arch + ".rope.scaling.type", std::string("linear")});
    meta.push_back(
        {arch + ".rope.scaling.factor", static_cast<float>(scaling.Find("factor")->as_number())});
  } else {
    // llama.cpp's llama3 rope_freqs: 1 for short wavelengths, factor for long
    // ones, 1 / blend between.
    const double factor = scaling.Find("factor")->as_number(),
                 lo = scaling.Find("low_freq_factor")->as_number();
    const double hi = scaling.Find("high_freq_factor")->as_number();
    const double old = scaling.Find("original_max_position_embeddings")->as_number();
    std::vector<float> freqs;
    for (int i = 0; i < hs; i += 2) {
      const double f = 1.0 / std::pow(num("rope_theta"), static_cast<double>(i) / hs);
      const double wavelen = 2 * M_PI / f;
      if (wavelen < old / hi) {
        freqs.push_back(1.0f);
      } else if (wavelen > old / lo) {
        freqs.push_back(static_cast<float>(factor));
      } else {
        const double smooth = (old / wavelen - lo) / (hi - lo);
        freqs.push_back(static_cast<float>(1.0 / ((1 - smooth) / factor + smooth)));
      }
    }
    tensors.push_back({"rope_freqs.weight", {freqs.size()}, GgufType::kF32, freqs});
  }
  // The vocabulary by id, from tokenizer.json.
  std::ifstream tin(dir_ + "/tokenizer.json");
  std::stringstream tss;
  tss << tin.rdbuf();
  const Json tok = *ParseJson(tss.str());
  std::vector<std::string> tokens(vocab);
  std::vector<int32_t> types(vocab, 1);
  for (int i = 0; i < vocab; ++i) tokens[i] = "[PAD" + std::to_string(i) + "]";
  for (const auto& [t, id] : tok.Find("model")->Find("vocab")->as_object())
    tokens[static_cast<int>(id.as_number())] = t;
  for (const Json& a : tok.Find("added_tokens")->as_array()) {
    const int id = static_cast<int>(a.Find("id")->as_number());
    tokens[id] = a.Find("content")->as_string();
    types[id] = 3;
  }
  for (int i = 0; i < vocab; ++i) {
    if (tokens[i].starts_with("[PAD")) types[i] = 5;  // Unused.
  }
  std::vector<std::string> merges;
  for (const Json& m : tok.Find("model")->Find("merges")->as_array())
    merges.push_back(m.as_string());
  const int endoftext = 256 + 7, im_end = 256 + 9;
  meta.push_back({"tokenizer.ggml.model", std::string("gpt2")});
  meta.push_back({"tokenizer.ggml.pre", std::string("gpt2")});
  meta.push_back({"tokenizer.ggml.tokens", tokens});
  meta.push_back({"tokenizer.ggml.token_type", types});
  meta.push_back({"tokenizer.ggml.merges", merges});
  meta.push_back({"tokenizer.ggml.eos_token_id", static_cast<uint32_t>(qwen ? im_end : endoftext)});
  if (!qwen) meta.push_back({"tokenizer.ggml.bos_token_id", static_cast<uint32_t>(endoftext)});
  meta.push_back({"tokenizer.ggml.add_bos_token", false});
  meta.push_back({"tokenizer.chat_template", std::string("{{ messages[0]['content'] }}")});
  const std::string path = tmp_.path() + "/model.gguf";
  QUIVER_ASSERT_OK(WriteGgufFile(path, meta, tensors));

  auto g = LoadGguf(path);
  ASSERT_TRUE(g.ok()) << g.status();
  const LlamaModel& m = *g->model;
  EXPECT_EQ(m.has_attention_bias(), qwen);
  PagedKvCache cache(m.config(), 4, 16);
  std::vector<int> blocks = {cache.Allocate(), cache.Allocate()};
  std::vector<StepRow> rows;
  for (size_t p = 0; p < kIds.size(); ++p) rows.push_back({kIds[p], static_cast<int>(p), &blocks});
  auto logits = m.ForwardBatch(rows, &cache);
  for (size_t p = 0; p < kIds.size(); ++p)
    EXPECT_LT(MaxDiff(logits[p], want_[p]), 1e-4) << "position " << p;
  // Same tokens as the tokenizer.json, special tokens included.
  auto hf_model = LoadHfModel(dir_);
  ASSERT_TRUE(hf_model.ok());
  for (const std::string text :
       {"<|im_start|>user\nthe and  then\n\n<|im_end|>", "caf\xC3\xA9 42 \xED\x95\x9C"}) {
    auto a = g->tokenizer->Tokenize(text, false);
    auto b = hf_model->tokenizer->Tokenize(text, false);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(*a, *b) << text;
  }
  EXPECT_TRUE(g->tokenizer->IsEnd(qwen ? im_end : endoftext));
  EXPECT_EQ(g->tokenizer->info().chat_template, "{{ messages[0]['content'] }}");
  EXPECT_EQ(g->tokenizer->info().eos_token, qwen ? "<|im_end|>" : "<|endoftext|>");
}

TEST(TakeCompleteUtf8Test, HoldsBackPartialCharacters) {
  std::string bytes = "a\xED\x95";  // "a" and the first two bytes of 한.
  EXPECT_EQ(TakeCompleteUtf8(&bytes), "a");
  EXPECT_EQ(bytes, "\xED\x95");
  bytes += "\x9C!";
  EXPECT_EQ(TakeCompleteUtf8(&bytes), "\xED\x95\x9C!");
  EXPECT_EQ(bytes, "");
  // Bytes that can never complete a character become U+FFFD at once.
  bytes = "\x80x\xC3(";
  EXPECT_EQ(TakeCompleteUtf8(&bytes), "\xEF\xBF\xBDx\xEF\xBF\xBD(");
  EXPECT_EQ(bytes, "");
  bytes = "\xF0\x9F";  // Incomplete 4-byte character at the end: waits.
  EXPECT_EQ(TakeCompleteUtf8(&bytes), "");
  EXPECT_EQ(bytes, "\xF0\x9F");
}

INSTANTIATE_TEST_SUITE_P(Archs, HfModelTest, ::testing::Values("llama", "qwen2"));

}  // namespace
}  // namespace quiver::llm
