// stories260K converted to GGUF: F32 gives llama2.c's exact tokens; F16 and
// Q8_0 give the same greedy tokens for at least the first 50 steps.
#include "llm/gguf.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "gtest/gtest.h"
#include "llm/internal/row_kernels.h"
#include "llm/llama2c.h"
#include "nn/half.h"
#include "tests/llm/stories_fixture.h"
#include "tests/testing/random_llama.h"
#include "tests/testing/test_util.h"

namespace quiver::llm {
namespace {

class GgufTest : public StoriesModelTest {
 protected:
  LoadedModel Convert(GgufType type) {
    const std::string path = tmp_.path() + "/m" + std::to_string(static_cast<int>(type)) + ".gguf";
    EXPECT_TRUE(WriteGguf(path, *model_, *tokenizer_, type, "stories260K").ok());
    auto g = LoadGguf(path);
    EXPECT_TRUE(g.ok()) << g.status();
    return g.ok() ? *std::move(g) : LoadedModel{};
  }

  testing::TempDir tmp_;
};

TEST_F(GgufTest, F32GivesLlama2csExactTokens) {
  LoadedModel g = Convert(GgufType::kF32);
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
    LoadedModel g = Convert(type);
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
  LoadedModel g = Convert(GgufType::kQ4_0);
  ASSERT_NE(g.model, nullptr);
  Sampler greedy(0.0f, 0.9f, 1);
  const std::vector<int> got = Generate(*g.model, *g.tokenizer, "", 200, &greedy).ids;
  const size_t agree = FirstDivergence(got, want);
  std::printf("GGUF Q4_0: greedy tokens agree with llama2.c for %zu of %zu steps\n", agree,
              want.size());
  EXPECT_GE(agree, 5u);
}

// F16 and Q8_0 weights stay in their stored form (a half / about a quarter of
// the float32 bytes) and give exactly the values a float32 copy holds, so
// a sequence gets the same logits batched as alone.
TEST_F(GgufTest, QuantizedWeightsStayQuantized) {
  const size_t f32_bytes = model_->weight_bytes();
  for (GgufType type : {GgufType::kF16, GgufType::kQ8_0, GgufType::kQ4_0}) {
    LoadedModel g = Convert(type);
    ASSERT_NE(g.model, nullptr);
    EXPECT_FALSE(g.model->is_float32());
    std::printf("GGUF type %d: %zu weight bytes (float32: %zu)\n", static_cast<int>(type),
                g.model->weight_bytes(), f32_bytes);
    // (stories260K's w2 rows have 172 values, not a multiple of 32: that
    // matrix stays float32 in Q8_0 files.)
    EXPECT_LT(g.model->weight_bytes(), f32_bytes * (type == GgufType::kF16    ? 0.55
                                                    : type == GgufType::kQ8_0 ? 0.45
                                                                              : 0.40))
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

// K-quant super-blocks built by hand from ggml's layout, decoded value by
// value.
TEST(KQuantTest, Q4KAndQ6KBlocksDecodeAsLaidOut) {
  std::vector<uint8_t> q4(144, 0);
  const uint16_t one = 0x3C00, half = 0x3800;  // 1.0 and 0.5 as IEEE halves.
  std::memcpy(&q4[0], &one, 2);                // d
  std::memcpy(&q4[2], &half, 2);               // dmin
  uint8_t* sc = &q4[4];
  sc[0] = 2;         // Sub-block 0: scale 2,
  sc[4] = 3;         // min 3.
  sc[1] = 0x80 | 7;  // Sub-block 1: scale 7; top bits of sub-block 5's scale (42 = 0b10'1010).
  sc[5] = 0x40 | 9;  // Sub-block 1: min 9; top bits of sub-block 5's min (21 = 0b01'0101).
  sc[9] = 0xA | (0x5 << 4);  // Sub-block 5: low bits of scale and min.
  uint8_t* qs = &q4[16];
  qs[0] = 3 | (5 << 4);  // Value 0 (sub-block 0) = 3, value 32 (sub-block 1) = 5.
  qs[64] = 7 << 4;       // Value 160 (sub-block 5, high nibbles of bytes 64..95) = 7.
  auto t = WeightTensor::KQuant(WeightTensor::Type::kQ4_K, q4);
  QUIVER_ASSERT_OK(t.status());
  std::vector<float> v(256);
  t->Read(0, 256, v.data());
  EXPECT_EQ(v[0], 1.0f * 2 * 3 - 0.5f * 3);      // 4.5
  EXPECT_EQ(v[32], 1.0f * 7 * 5 - 0.5f * 9);     // 30.5
  EXPECT_EQ(v[160], 1.0f * 42 * 7 - 0.5f * 21);  // 283.5
  EXPECT_EQ(v[1], -0.5f * 3);                    // q = 0: minus the min.

  std::vector<uint8_t> q6(210, 0);
  uint8_t* ql = &q6[0];
  uint8_t* qh = &q6[128];
  int8_t* scales = reinterpret_cast<int8_t*>(&q6[192]);
  std::memcpy(&q6[208], &half, 2);  // d = 0.5
  scales[0] = 3;
  scales[2] = -2;
  scales[4] = 5;
  ql[0] = 3 | (9 << 4);                      // Values 0 and 64: low nibbles 3 and 9.
  ql[32] = 0x0F;                             // Value 32: low nibble 15.
  qh[0] = 0b10 | (0b00 << 2) | (0b01 << 4);  // High pairs: value 0 -> 2, 32 -> 0, 64 -> 1.
  auto t6 = WeightTensor::KQuant(WeightTensor::Type::kQ6_K, q6);
  QUIVER_ASSERT_OK(t6.status());
  t6->Read(0, 256, v.data());
  EXPECT_EQ(v[0], 0.5f * 3 * (35 - 32));    // 4.5
  EXPECT_EQ(v[32], 0.5f * -2 * (15 - 32));  // 17
  EXPECT_EQ(v[64], 0.5f * 5 * (25 - 32));   // -17.5
  EXPECT_FALSE(WeightTensor::KQuant(WeightTensor::Type::kQ6_K, std::vector<uint8_t>(100)).ok());
}

// A model whose rows are whole super-blocks, written as Q4_K and Q6_K:
// logits near float32's, batched == alone, and the bytes of the format.
TEST(KQuantTest, GgufRoundTripKeepsSuperBlocks) {
  const LlamaConfig c = testing::SuperBlockLlamaConfig();
  auto model = testing::RandomLlama(c, 3, 0.05f, /*tied=*/false);  // Written as output.weight.
  QUIVER_ASSERT_OK(model.status());
  auto tok = testing::SyntheticVocabulary(c.vocab_size);
  testing::TempDir tmp;
  PagedKvCache ref_cache(c, 4, 16);
  std::vector<int> ref_blocks = {ref_cache.Allocate()};
  const auto ref = (*model)->ForwardBatch({{7, 0, &ref_blocks}}, &ref_cache)[0];
  std::map<GgufType, double> errors;
  for (GgufType type : {GgufType::kQ8_0, GgufType::kQ4_0, GgufType::kQ4_K, GgufType::kQ6_K}) {
    const std::string path = tmp.path() + "/k.gguf";
    QUIVER_ASSERT_OK(WriteGguf(path, **model, *tok, type));
    auto g = LoadGguf(path);
    ASSERT_TRUE(g.ok()) << g.status();
    const LlamaModel& m = *g->model;
    // Bytes per value in memory: Q8_0 36/32 and Q4_0 20/32 (block scales
    // held as float32), Q4_K 144/256 and Q6_K 210/256 (super-blocks as in
    // the file); norms stay float32.
    const double per_value = type == GgufType::kQ8_0   ? 36.0 / 32
                             : type == GgufType::kQ4_0 ? 20.0 / 32
                             : type == GgufType::kQ4_K ? 144.0 / 256
                                                       : 210.0 / 256;
    EXPECT_LT(m.weight_bytes(), (*model)->weight_bytes() * (per_value / 4) * 1.02)
        << static_cast<int>(type);
    PagedKvCache cache(c, 16, 16);
    std::vector<std::vector<int>> seqs(5);
    for (auto& b : seqs) b = {cache.Allocate()};
    std::vector<StepRow> rows;
    for (int s = 0; s < 4; ++s) rows.push_back({7 + s, 0, &seqs[s]});
    const auto batched = m.ForwardBatch(rows, &cache);
    const auto alone = m.ForwardBatch({{7, 0, &seqs[4]}}, &cache)[0];
    EXPECT_EQ(batched[0], alone);
    // Quantized logits stay close to float32's (relative to their spread).
    const double err = testing::MaxAbsError(alone, ref);
    double scale = 0;
    for (float v : ref) scale = std::max(scale, std::fabs(double{v}));
    std::printf("GGUF type %d: max logit error %.4f (largest logit %.4f)\n", static_cast<int>(type),
                err, scale);
    const bool four_bit = type == GgufType::kQ4_0 || type == GgufType::kQ4_K;
    EXPECT_LT(err, (four_bit ? 0.4 : 0.1) * scale) << static_cast<int>(type);
    errors[type] = err;
  }
  // Finer scales: K-quants beat the 32-value blocks of the same width.
  EXPECT_LT(errors[GgufType::kQ4_K], errors[GgufType::kQ4_0]);
  EXPECT_LT(errors[GgufType::kQ6_K], errors[GgufType::kQ4_K]);
}

// One stream of a K-quant model dots four weight rows at a time
// (WeightTensor::DotRows4, interleaved chains on AVX-512): each row equal
// to its own DotRow and to Dot on its float32 values, bit for bit, for
// every K-quant type and in a Q4_K / Q6_K mixed tensor.
TEST(KQuantTest, FourRowsAtOnceEqualOneAtATime) {
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
  const int cols = 768;  // Three super-blocks per row.
  const size_t rows = 12;
  std::vector<float> x(cols);
  for (float& v : x) v = ud(rng);
  auto random_kquant = [&](WeightTensor::Type type) {
    const size_t bytes = WeightTensor::KBlockBytes(type);
    std::vector<uint8_t> blocks(rows * cols / 256 * bytes);
    for (uint8_t& v : blocks) v = static_cast<uint8_t>(rng());
    for (size_t b = 0; b < blocks.size() / bytes; ++b) {  // Small finite d (and dmin).
      const uint16_t d = quiver::nn::FloatToHalf(0.002f + 0.01f * std::fabs(ud(rng)));
      std::memcpy(&blocks[b * bytes + (type == WeightTensor::Type::kQ6_K ? 208 : 0)], &d, 2);
      if (type != WeightTensor::Type::kQ6_K) std::memcpy(&blocks[b * bytes + 2], &d, 2);
    }
    auto t = WeightTensor::KQuant(type, blocks);
    EXPECT_TRUE(t.ok());
    return *std::move(t);
  };
  const WeightTensor q4k = random_kquant(WeightTensor::Type::kQ4_K);
  const WeightTensor q5k = random_kquant(WeightTensor::Type::kQ5_K);
  const WeightTensor q6k = random_kquant(WeightTensor::Type::kQ6_K);
  const WeightTensor mixed = WeightTensor::Concat({q4k, q6k});
  for (const WeightTensor* t : {&q4k, &q5k, &q6k, &mixed}) {
    std::vector<float> values(t->size());
    t->Read(0, values.size(), values.data());
    for (size_t first = 0; first + 4 <= t->size() / cols; first += 4) {
      float four[4];
      t->DotRows4(first * cols, x.data(), cols, four);
      for (size_t k = 0; k < 4; ++k) {
        const size_t at = (first + k) * cols;
        SCOPED_TRACE("type " + std::to_string(static_cast<int>(t->type())) + " row " +
                     std::to_string(first + k));
        EXPECT_EQ(std::bit_cast<uint32_t>(four[k]),
                  std::bit_cast<uint32_t>(t->DotRow(at, x.data(), cols)));
        const WeightTensor row =
            WeightTensor::F32(std::vector<float>(values.begin() + at, values.begin() + at + cols));
        EXPECT_EQ(std::bit_cast<uint32_t>(four[k]),
                  std::bit_cast<uint32_t>(row.DotRow(0, x.data(), cols)));
      }
    }
  }
}

// Layers of one kind in different types (Q4_K_M files keep some layers'
// ffn_down in Q6_K): each part stays as stored, reads and dot products go
// to the right part, and a model built from them gives the same logits as
// one built from the float32 values.
TEST(KQuantTest, MixedTypesAcrossLayersStayAsStored) {
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 0.05f);
  const size_t cols = 256, rows = 8;
  std::vector<float> a(rows * cols), b(rows * cols);
  for (float& v : a) v = nd(rng);
  for (float& v : b) v = nd(rng);
  // Layer 0 as Q8_0 (scale per 32), layer 1 as float32.
  std::vector<int8_t> q(a.size());
  std::vector<float> scales(a.size() / 32);
  for (size_t blk = 0; blk < scales.size(); ++blk) {
    scales[blk] = 0.001f * static_cast<float>(blk + 1);
    for (int k = 0; k < 32; ++k)
      q[blk * 32 + k] = static_cast<int8_t>(std::lround(a[blk * 32 + k] / scales[blk]));
  }
  const WeightTensor q8 = WeightTensor::Q8_0(q, scales), f32 = WeightTensor::F32(b);
  const WeightTensor mixed = WeightTensor::Concat({q8, f32});
  EXPECT_EQ(mixed.type(), WeightTensor::Type::kMixed);
  EXPECT_EQ(mixed.size(), a.size() + b.size());
  EXPECT_EQ(mixed.bytes(), q8.bytes() + f32.bytes());
  std::vector<float> all(mixed.size()), first(a.size());
  mixed.Read(0, all.size(), all.data());
  q8.Read(0, first.size(), first.data());
  EXPECT_TRUE(std::equal(first.begin(), first.end(), all.begin()));
  EXPECT_TRUE(std::equal(b.begin(), b.end(), all.begin() + a.size()));
  std::vector<float> x(cols, 0.5f);
  EXPECT_EQ(mixed.DotRow(3 * cols, x.data(), cols), q8.DotRow(3 * cols, x.data(), cols));
  EXPECT_EQ(mixed.DotRow(a.size() + 2 * cols, x.data(), cols),
            f32.DotRow(2 * cols, x.data(), cols));
  // A read that spans the two parts.
  std::vector<float> span(2 * cols);
  mixed.Read(a.size() - cols, span.size(), span.data());
  EXPECT_TRUE(std::equal(span.begin(), span.end(), all.begin() + (a.size() - cols)));
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
