// Decode engines: device selection, the CPU engine (and its long-prompt
// kernel), the CUDA kernels' weight decoding run on the host, and the CUDA
// engine against the CPU one for every weight type the loaders produce
// (skipped where no GPU is visible).
#include "llm/engine.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "gtest/gtest.h"
#include "llm/cuda_engine.h"
#include "llm/gguf.h"
#include "nn/half.h"
#ifdef QUIVER_LLM_HAS_CUDA
#include "llm/cuda_kernels.h"
#endif
#include "tests/testing/random_llama.h"
#include "tests/testing/test_util.h"

namespace quiver::llm {
using ::quiver::nn::FloatToHalf;
namespace {

using testing::StatusIs;

std::vector<float> Copy(std::span<const float> v) { return {v.begin(), v.end()}; }

LlamaConfig SmallConfig() { return testing::SuperBlockLlamaConfig(); }

std::unique_ptr<LlamaModel> Random(const LlamaConfig& c, bool tied) {
  auto m = testing::RandomLlama(c, 11, 0.05f, tied);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *std::move(m) : nullptr;
}

// A fixed script of steps over three sequences: A's 18-token prompt in
// one step (crossing a block boundary) with B's first token, then A and B
// decode while C joins with a 3-token chunk. Returns every step's logits.
std::vector<std::vector<std::vector<float>>> RunScript(DecodeEngine& e) {
  const int vocab = e.config().vocab_size;
  std::vector<std::vector<int>> tables(3);
  for (auto& t : tables) {
    for (int i = 0; i < 3; ++i) t.push_back(e.pool()->Allocate());
  }
  auto token = [&](int seq, int pos) { return (7 + 31 * pos + 101 * seq) % vocab; };
  std::vector<std::vector<StepRow>> steps(5);
  for (int p = 0; p < 18; ++p) steps[0].push_back({token(0, p), p, &tables[0]});
  steps[0].push_back({token(1, 0), 0, &tables[1]});
  for (int s = 1; s < 5; ++s) {
    steps[s].push_back({token(0, 17 + s), 17 + s, &tables[0]});
    steps[s].push_back({token(1, s), s, &tables[1]});
  }
  for (int p = 0; p < 3; ++p) steps[2].push_back({token(2, p), p, &tables[2]});
  for (int p = 3; p < 5; ++p) steps[3 + p - 3].push_back({token(2, p), p, &tables[2]});
  std::vector<std::vector<std::vector<float>>> out;
  for (const auto& rows : steps) out.push_back(e.Forward(rows));
  for (auto& t : tables) {
    for (int b : t) e.pool()->Free(b);
  }
  return out;
}

TEST(DecodeEngineTest, DeviceNamesAreChecked) {
  auto model = Random(SmallConfig(), true);
  ASSERT_NE(model, nullptr);
  EXPECT_THAT(NewDecodeEngine(model.get(), "tpu", 4, 16).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  auto cpu = NewDecodeEngine(model.get(), "cpu", 4, 16);
  QUIVER_ASSERT_OK(cpu.status());
  EXPECT_EQ((*cpu)->device(), "cpu");
  EXPECT_EQ((*cpu)->pool()->total_blocks(), 4u);
  EXPECT_EQ((*cpu)->pool()->block_size(), 16);
  auto any = NewDecodeEngine(model.get(), "auto", 4, 16);
  QUIVER_ASSERT_OK(any.status());
  EXPECT_EQ((*any)->device(), CudaDeviceVisible() ? "cuda" : "cpu");
  if (!CudaDeviceVisible()) {
    EXPECT_THAT(NewDecodeEngine(model.get(), "cuda", 4, 16).status(),
                StatusIs(absl::StatusCode::kUnavailable));
  }
}

TEST(DecodeEngineTest, CpuEngineStepsAreTheModelsBatchedSteps) {
  auto model = Random(SmallConfig(), false);
  ASSERT_NE(model, nullptr);
  auto engine = NewCpuEngine(model.get(), 16, 16);
  const auto got = RunScript(*engine);
  // The same script straight through ForwardBatch on a cache of its own.
  PagedKvCache cache(model->config(), 16, 16);
  struct Direct : DecodeEngine {
    const LlamaModel* m;
    PagedKvCache* c;
    std::string_view device() const override { return "direct"; }
    const LlamaConfig& config() const override { return m->config(); }
    KvBlockPool* pool() override { return c; }
    std::vector<std::vector<float>> Forward(const std::vector<StepRow>& rows) override {
      return m->ForwardBatch(rows, c);
    }
  } direct;
  direct.m = model.get();
  direct.c = &cache;
  EXPECT_EQ(got, RunScript(direct));
  EXPECT_EQ(engine->pool()->free_blocks(), 16u);  // The script gave its blocks back.
}

// Long prompts' rows take the matrix kernel: a row's logits are the same
// bits whether its prompt is fed in one step or in chunks of any size mixed
// with other rows, and close to the row kernels' (another summation order).
TEST(DecodeEngineTest, LongPromptRowsDoNotDependOnTheirBatch) {
  LlamaConfig c = SmallConfig();
  c.seq_len = 96;
  auto model = Random(c, false);
  ASSERT_NE(model, nullptr);
  const int n = 70;  // Prompt tokens: 8 full 8-row tiles and a remainder.
  auto token = [](int p) { return (11 + 37 * p) % 512; };
  auto run = [&](const std::vector<int>& chunks, bool long_prompt) {
    PagedKvCache cache(c, 16, 16);
    std::vector<int> seq = {cache.Allocate(), cache.Allocate(), cache.Allocate(), cache.Allocate(),
                            cache.Allocate()};
    std::vector<int> other = {cache.Allocate(), cache.Allocate(), cache.Allocate(),
                              cache.Allocate(), cache.Allocate()};
    std::vector<std::vector<float>> logits;
    int pos = 0, other_pos = 0;
    for (int chunk : chunks) {
      std::vector<StepRow> rows;
      rows.push_back({5, other_pos++, &other});  // A generated-token row in every step.
      for (int i = 0; i < chunk; ++i, ++pos) rows.push_back({token(pos), pos, &seq, long_prompt});
      auto out = model->ForwardBatch(rows, &cache);
      for (size_t r = 1; r < out.size(); ++r) logits.push_back(std::move(out[r]));
    }
    return logits;
  };
  const auto whole = run({n}, true);
  ASSERT_EQ(whole.size(), static_cast<size_t>(n));
  EXPECT_EQ(run({3, 8, 1, 20, 9, 29}, true), whole);
  EXPECT_EQ(run(std::vector<int>(n, 1), true), whole);
  const auto row_kernels = run({n}, false);
  for (int p : {0, n / 2, n - 1}) {
    double scale = 1;
    for (float v : row_kernels[p]) scale = std::max(scale, std::fabs(double{v}));
    EXPECT_LE(testing::MaxAbsError(whole[p], row_kernels[p]), 1e-4 * scale) << "position " << p;
    EXPECT_NE(whole[p], row_kernels[p]) << "the matrix kernel did not run";
  }
}

// n values of K-quant super-blocks of `type`: random quants and sub-block
// scales; super-block scales d in [0.2, 1.2) d_max, dmin in [0.1, 1.1) d_max.
WeightTensor RandomKBlocks(WeightTensor::Type type, size_t n, float d_max, std::mt19937& rng) {
  std::uniform_real_distribution<float> uni(0.0f, 1.0f);
  const size_t bytes = WeightTensor::KBlockBytes(type);
  std::vector<uint8_t> b(n / 256 * bytes);
  for (auto& v : b) v = static_cast<uint8_t>(rng());
  for (size_t i = 0; i < n / 256; ++i) {
    const uint16_t d = FloatToHalf(d_max * (0.2f + uni(rng))),
                   dmin = FloatToHalf(d_max * (0.1f + uni(rng)));
    std::memcpy(&b[i * bytes + (type == WeightTensor::Type::kQ6_K ? 208 : 0)], &d, 2);
    if (type != WeightTensor::Type::kQ6_K) std::memcpy(&b[i * bytes + 2], &dmin, 2);
  }
  auto t = WeightTensor::KQuant(type, std::move(b));
  EXPECT_TRUE(t.ok()) << t.status();
  return *std::move(t);
}

#ifdef QUIVER_LLM_HAS_CUDA
// The CUDA kernels' weight decoding, run on the host (no GPU needed): every
// stored type gives exactly the CPU's float32 values.
TEST(CudaWeightDecodingTest, EveryStoredTypeDecodesAsTheCpuReadsIt) {
  std::mt19937 rng(17);
  auto byte = [&] { return static_cast<uint8_t>(rng()); };
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  const size_t n = 1024;  // Four super-blocks.
  std::vector<uint16_t> halves(n), bf16(n);
  for (auto& h : halves) h = FloatToHalf(uni(rng));
  halves[3] = 0x0001;  // A subnormal.
  for (auto& h : bf16) h = static_cast<uint16_t>(rng() & 0xBFFF);
  std::vector<int8_t> q8(n);
  for (auto& q : q8) q = static_cast<int8_t>(byte());
  std::vector<uint8_t> q4(n / 2);
  for (auto& q : q4) q = byte();
  std::vector<float> scales(n / 32);
  for (float& f : scales) f = 0.01f * uni(rng);
  auto kblocks = [&](WeightTensor::Type type) { return RandomKBlocks(type, n, 0.01f, rng); };
  const std::pair<WeightTensor, cuda::WType> cases[] = {
      {WeightTensor::F16(halves), cuda::WType::kF16},
      {WeightTensor::BF16(bf16), cuda::WType::kBF16},
      {WeightTensor::Q8_0(q8, scales), cuda::WType::kQ8_0},
      {WeightTensor::Q4_0(q4, scales), cuda::WType::kQ4_0},
      {kblocks(WeightTensor::Type::kQ4_K), cuda::WType::kQ4_K},
      {kblocks(WeightTensor::Type::kQ5_K), cuda::WType::kQ5_K},
      {kblocks(WeightTensor::Type::kQ6_K), cuda::WType::kQ6_K}};
  for (const auto& [tensor, wtype] : cases) {
    std::vector<float> want(n);
    tensor.Read(0, n, want.data());
    const WeightTensor::Raw raw = tensor.raw();
    cuda::Weight w;
    w.type = wtype;
    w.data = raw.f32 != nullptr      ? static_cast<const void*>(raw.f32)
             : raw.halves != nullptr ? static_cast<const void*>(raw.halves)
             : raw.q8 != nullptr     ? static_cast<const void*>(raw.q8)
                                     : static_cast<const void*>(raw.q4);
    w.scales = raw.scales;
    int wrong = 0;
    for (size_t i = 0; i < n; ++i) {
      const float got = cuda::LoadWeightOnHost(w, i);
      if (std::memcmp(&got, &want[i], sizeof got) != 0 && ++wrong <= 3) {
        ADD_FAILURE() << "type " << static_cast<int>(wtype) << " value " << i << ": " << got
                      << " vs " << want[i];
      }
    }
    EXPECT_EQ(wrong, 0) << "type " << static_cast<int>(wtype);
  }
}
#endif

// Rows may skip their logits (a prompt's rows before its last): they come
// back empty and every other row's logits are unchanged.
void ExpectSkippedLogitsChangeNothing(DecodeEngine& e) {
  std::vector<int> a = {e.pool()->Allocate(), e.pool()->Allocate()};
  std::vector<int> b = {e.pool()->Allocate(), e.pool()->Allocate()};
  auto step = [&](bool skip) {
    std::vector<StepRow> rows;
    for (int p = 0; p < 20; ++p) {
      // Sequence a: a long prompt; b: a short one, interleaved.
      rows.push_back({(3 + 7 * p) % 512, p, &a, /*long_prompt=*/true, /*logits=*/!skip || p == 19});
      if (p < 6) rows.push_back({(5 + 11 * p) % 512, p, &b, false, /*logits=*/!skip || p == 5});
    }
    return e.Forward(rows);
  };
  const auto all = step(false), some = step(true);
  ASSERT_EQ(all.size(), some.size());
  int kept = 0;
  for (size_t r = 0; r < all.size(); ++r) {
    if (some[r].empty()) continue;
    ++kept;
    EXPECT_EQ(some[r], all[r]) << "row " << r;
  }
  EXPECT_EQ(kept, 2);
  for (int blk : a) e.pool()->Free(blk);
  for (int blk : b) e.pool()->Free(blk);
}

TEST(DecodeEngineTest, SkippedLogitsChangeNothing) {
  auto model = Random(SmallConfig(), false);
  ASSERT_NE(model, nullptr);
  auto engine = NewCpuEngine(model.get(), 8, 16);
  ExpectSkippedLogitsChangeNothing(*engine);
}

class CudaEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!CudaDeviceVisible())
      GTEST_SKIP() << "no CUDA GPU visible to this process (or a build without CUDA)";
  }

  // The script on the CPU and the CUDA engine: logits agree within `tol`
  // of the largest logit (float rounding of a different summation order).
  void ExpectEnginesAgree(const LlamaModel& m, const char* what, double tol = 1e-4) {
    auto cuda = NewCudaEngine(&m, 16, 16);
    ASSERT_TRUE(cuda.ok()) << what << ": " << cuda.status();
    auto cpu = NewCpuEngine(&m, 16, 16);
    const auto want = RunScript(*cpu);
    const auto got = RunScript(**cuda);
    ASSERT_EQ(got.size(), want.size());
    for (size_t s = 0; s < want.size(); ++s) {
      ASSERT_EQ(got[s].size(), want[s].size());
      for (size_t r = 0; r < want[s].size(); ++r) {
        ASSERT_EQ(got[s][r].size(), want[s][r].size());
        double scale = 1;
        for (float v : want[s][r]) scale = std::max(scale, std::fabs(double{v}));
        const double err = testing::MaxAbsError(got[s][r], want[s][r]);
        EXPECT_LE(err, tol * scale) << what << ": step " << s << " row " << r;
      }
    }
  }
};

TEST_F(CudaEngineTest, MatchesTheCpuEngineInFloat32) {
  LlamaConfig c = SmallConfig();
  auto tied = Random(c, true);
  ASSERT_NE(tied, nullptr);
  ExpectEnginesAgree(*tied, "f32 tied, GQA");
  // Odd shapes: head size 16, one KV head, rows that are not multiples of 32.
  LlamaConfig odd = c;
  odd.dim = 80;
  odd.hidden_dim = 200;
  odd.n_heads = 5;
  odd.n_kv_heads = 1;
  odd.vocab_size = 300;
  auto small = Random(odd, false);
  ASSERT_NE(small, nullptr);
  ExpectEnginesAgree(*small, "f32 odd shapes");
  // Head size 256, the largest the kernels take, with RoPE scaling.
  LlamaConfig wide = c;
  wide.dim = 512;
  wide.n_heads = 2;
  wide.n_kv_heads = 1;
  wide.rope_theta = 500000.0f;
  wide.rope_scaling.type = RopeScaling::Type::kLlama3;
  wide.rope_scaling.factor = 8;
  wide.rope_scaling.original_context = 32;
  auto big_heads = Random(wide, true);
  ASSERT_NE(big_heads, nullptr);
  ExpectEnginesAgree(*big_heads, "head size 256, llama3 RoPE");
}

TEST_F(CudaEngineTest, MatchesTheCpuEngineWithAttentionBiases) {
  const LlamaConfig c = SmallConfig();
  auto base = Random(c, false);
  ASSERT_NE(base, nullptr);
  const LlamaModel::Weights w = base->weights();
  LlamaWeights<std::vector<float>> groups;
  for (size_t i = 0; i < w.kGroups; ++i) groups.group(i) = Copy(w.group(i));
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 0.3f);
  for (std::vector<float>* bias : {&groups.bq, &groups.bk, &groups.bv}) {
    bias->resize(bias == &groups.bq ? size_t(c.n_layers) * c.dim : size_t(c.n_layers) * c.kv_dim());
    for (float& x : *bias) x = nd(rng);
  }
  LlamaConfig untied = c;
  untied.shared_classifier = false;
  auto m = LlamaModel::FromWeights(untied, std::move(groups));
  QUIVER_ASSERT_OK(m.status());
  ASSERT_TRUE((*m)->has_attention_bias());
  ExpectEnginesAgree(**m, "q/k/v biases");
}

TEST_F(CudaEngineTest, MatchesTheCpuEngineForEveryStoredType) {
  const LlamaConfig c = SmallConfig();
  auto base = Random(c, true);
  ASSERT_NE(base, nullptr);
  auto tok = testing::SyntheticVocabulary(c.vocab_size);
  testing::TempDir tmp;
  for (GgufType type :
       {GgufType::kF16, GgufType::kQ8_0, GgufType::kQ4_0, GgufType::kQ4_K, GgufType::kQ6_K}) {
    const std::string path = tmp.path() + "/m.gguf";
    QUIVER_ASSERT_OK(WriteGguf(path, *base, *tok, type));
    auto g = LoadGguf(path);
    ASSERT_TRUE(g.ok()) << g.status();
    ExpectEnginesAgree(*g->model, ("GGUF type " + std::to_string(static_cast<int>(type))).c_str());
  }
  // bfloat16 (Hugging Face shards keep it): each matrix rounded to its top 16 bits.
  const LlamaModel::Weights w = base->weights();
  auto bf16 = [](std::span<const float> v) {
    std::vector<uint16_t> h(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      uint32_t bits;
      std::memcpy(&bits, &v[i], 4);
      h[i] = static_cast<uint16_t>((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    }
    return WeightTensor::BF16(std::move(h));
  };
  LlamaWeights<WeightTensor> t = {bf16(w.embedding),
                                  WeightTensor::F32(Copy(w.rms_att)),
                                  bf16(w.wq),
                                  bf16(w.wk),
                                  bf16(w.wv),
                                  bf16(w.wo),
                                  WeightTensor::F32(Copy(w.rms_ffn)),
                                  bf16(w.w1),
                                  bf16(w.w2),
                                  bf16(w.w3),
                                  WeightTensor::F32(Copy(w.rms_final)),
                                  /*classifier: the embedding*/ {},
                                  /*no biases*/ {},
                                  {},
                                  {}};
  auto m = LlamaModel::FromTensors(base->config(), std::move(t));
  QUIVER_ASSERT_OK(m.status());
  ExpectEnginesAgree(**m, "bf16");
}

// Q4_K_M / Q5_K_M files keep some layers of a group in another type: the
// GPU reads each layer's part as stored (Q4_K, Q5_K and Q6_K here).
TEST_F(CudaEngineTest, MatchesTheCpuEngineForMixedLayerTypes) {
  const LlamaConfig c = SmallConfig();
  ASSERT_EQ(c.n_layers, 2);
  auto base = Random(c, true);
  ASSERT_NE(base, nullptr);
  const LlamaModel::Weights w = base->weights();
  std::mt19937 rng(23);
  using T = WeightTensor::Type;
  auto layers = [&](std::span<const float> group, T first, T second) {
    const size_t per_layer = group.size() / 2;
    return WeightTensor::Concat({RandomKBlocks(first, per_layer, 2e-4f, rng),
                                 RandomKBlocks(second, per_layer, 2e-4f, rng)});
  };
  LlamaWeights<WeightTensor> t = {WeightTensor::F32(Copy(w.embedding)),
                                  WeightTensor::F32(Copy(w.rms_att)),
                                  layers(w.wq, T::kQ5_K, T::kQ4_K),
                                  layers(w.wk, T::kQ6_K, T::kQ5_K),
                                  layers(w.wv, T::kQ4_K, T::kQ6_K),
                                  layers(w.wo, T::kQ5_K, T::kQ5_K),
                                  WeightTensor::F32(Copy(w.rms_ffn)),
                                  layers(w.w1, T::kQ6_K, T::kQ4_K),
                                  layers(w.w2, T::kQ4_K, T::kQ6_K),
                                  layers(w.w3, T::kQ5_K, T::kQ6_K),
                                  WeightTensor::F32(Copy(w.rms_final)),
                                  /*classifier: the embedding*/ {},
                                  /*no biases*/ {},
                                  {},
                                  {}};
  EXPECT_EQ(t.wq.type(), T::kMixed);
  auto m = LlamaModel::FromTensors(c, std::move(t));
  QUIVER_ASSERT_OK(m.status());
  ExpectEnginesAgree(**m, "mixed K-quant layers");
}

// On the GPU too, a row's logits do not depend on the rest of its step.
TEST_F(CudaEngineTest, BatchedRowsEqualRowsAlone) {
  auto model = Random(SmallConfig(), false);
  ASSERT_NE(model, nullptr);
  auto engine = NewCudaEngine(model.get(), 32, 16);
  QUIVER_ASSERT_OK(engine.status());
  DecodeEngine& e = **engine;
  std::vector<std::vector<int>> seqs(6);
  for (auto& b : seqs) b = {e.pool()->Allocate(), e.pool()->Allocate()};
  // Five sequences' prompts in one step; the sixth holds sequence 0's
  // prompt, fed alone, one token per step.
  std::vector<StepRow> rows;
  for (int s = 0; s < 5; ++s) {
    for (int p = 0; p < 20; ++p)
      rows.push_back({(13 * p + (s == 0 || s == 4 ? 0 : 7 * s)) % 512, p, &seqs[s]});
  }
  const auto batched = e.Forward(rows);
  for (int p = 0; p < 20; ++p) {
    const auto alone = e.Forward({{(13 * p) % 512, p, &seqs[5]}});
    EXPECT_EQ(alone[0], batched[p]) << "position " << p;
    EXPECT_EQ(alone[0], batched[20 * 4 + p]) << "position " << p;
  }
}

TEST_F(CudaEngineTest, SkippedLogitsChangeNothing) {
  auto model = Random(SmallConfig(), false);
  ASSERT_NE(model, nullptr);
  auto engine = NewCudaEngine(model.get(), 8, 16);
  QUIVER_ASSERT_OK(engine.status());
  ExpectSkippedLogitsChangeNothing(**engine);
}

// A KV cache or step buffers beyond the GPU's memory (2 x 128 GiB, or 2^24
// rows of activations) are a clear error, and leave nothing behind that
// fails the next engine; step buffers reserved up front serve the steps.
TEST_F(CudaEngineTest, MemoryBeyondTheGpuIsResourceExhausted) {
  auto model = Random(SmallConfig(), true);
  ASSERT_NE(model, nullptr);
  const size_t blocks = size_t{1} << 23;
  ASSERT_GE(blocks * model->config().n_layers * 16 * model->config().kv_dim() * sizeof(float),
            size_t{1} << 37);
  EXPECT_THAT(NewCudaEngine(model.get(), blocks, 16).status(),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(NewCudaEngine(model.get(), 8, 16, /*max_step_rows=*/1 << 24).status(),
              StatusIs(absl::StatusCode::kResourceExhausted));
  auto engine = NewCudaEngine(model.get(), 8, 16, /*max_step_rows=*/64);
  ASSERT_TRUE(engine.ok()) << engine.status();
  ExpectSkippedLogitsChangeNothing(**engine);
}

TEST_F(CudaEngineTest, HeadsLargerThanTheKernelsTakeAreRefused) {
  LlamaConfig c = SmallConfig();
  c.dim = 512;
  c.n_heads = 1;
  c.n_kv_heads = 1;
  auto model = Random(c, true);
  ASSERT_NE(model, nullptr);
  EXPECT_THAT(NewCudaEngine(model.get(), 4, 16).status(),
              StatusIs(absl::StatusCode::kUnimplemented));
}

}  // namespace
}  // namespace quiver::llm
