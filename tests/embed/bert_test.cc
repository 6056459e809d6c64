// Our BERT encoder and cross-encoder against an independent PyTorch
// implementation (tests/embed/bert_reference.py, built from torch.nn layers
// with random weights and written as a Hugging Face directory).
#include "embed/bert.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/json.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"
#ifdef QUIVER_CUDA_EMULATION
#include "tests/cuda_emulation/device_memory.h"
#endif

namespace quiver::embed {
namespace {

std::string IdsJson(const std::vector<nn::Encoding>& batch) {
  std::string out = "[";
  for (size_t b = 0; b < batch.size(); ++b) {
    out += b ? ", {\"ids\": [" : "{\"ids\": [";
    for (size_t i = 0; i < batch[b].ids.size(); ++i) {
      out += (i ? ", " : "") + std::to_string(batch[b].ids[i]);
    }
    out += "], \"type_ids\": [";
    for (size_t i = 0; i < batch[b].type_ids.size(); ++i) {
      out += (i ? ", " : "") + std::to_string(batch[b].type_ids[i]);
    }
    out += "]}";
  }
  return out + "]";
}

class BertTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string fixtures = testing::FixturePath("model2vec-rs-fixtures");
    if (fixtures.empty())
      GTEST_SKIP() << "fixture model2vec-rs-fixtures not found ($QUIVER_FIXTURES)";
    if (!testing::HaveTorch()) {
      GTEST_SKIP() << testing::kNoTorch;
    }
    tokenizer_path_ = fixtures + "/test-model-float32/tokenizer.json";
    auto t = nn::Tokenizer::FromFile(tokenizer_path_);
    ASSERT_TRUE(t.ok()) << t.status();
    tokenizer_ = *std::move(t);
    backend_ = nn::NewCpuBackend();
  }
  // The reference's expectations for `texts` (one batch) and our encoder
  // of the same weights on `backend`.
  std::unique_ptr<BertEncoder> EncoderAndReference(const std::vector<std::string>& texts,
                                                   nn::Backend* backend, Json* want) {
    std::vector<nn::Encoding> batch;
    for (const std::string& t : texts) batch.push_back(*tokenizer_->Encode(t, true, 128));
    std::string model_dir;
    *want = Reference(batch, /*cross=*/false, &model_dir);
    model_dir_ = model_dir;
    auto enc = BertEncoder::Load(model_dir, backend);
    EXPECT_TRUE(enc.ok()) << enc.status();
    return enc.ok() ? *std::move(enc) : nullptr;
  }
  // Runs the reference for `batch`; returns its expected.json.
  Json Reference(const std::vector<nn::Encoding>& batch, bool cross, std::string* model_dir) {
    *model_dir = dir_.path() + (cross ? "/cross" : "/encoder");
    const std::string ids = dir_.path() + (cross ? "/cross_ids.json" : "/ids.json");
    std::ofstream(ids) << IdsJson(batch);
    const std::string cmd = testing::BertReferenceCommand(*model_dir, tokenizer_path_, ids, cross);
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    std::ifstream in(*model_dir + "/expected.json");
    std::stringstream ss;
    ss << in.rdbuf();
    auto j = ParseJson(ss.str());
    EXPECT_TRUE(j.ok());
    return j.ok() ? *j : Json();
  }

  testing::TempDir dir_;
  std::string tokenizer_path_;
  std::string model_dir_;  // The last EncoderAndReference model.
  std::unique_ptr<nn::Tokenizer> tokenizer_;
  std::unique_ptr<nn::Backend> backend_;
};

// The largest difference; infinity when `got` is too short or holds a NaN
// or infinity (which std::max would skip).
double MaxDiff(const std::vector<float>& got, const Json& want, size_t offset = 0) {
  const size_t n = want.as_array().size();
  if (got.size() < offset + n) return INFINITY;
  double worst = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(got[offset + i])) return INFINITY;
    worst = std::max(worst, std::fabs(got[offset + i] - want.as_array()[i].as_number()));
  }
  return worst;
}

// Each text's pooled embedding within 1e-4 of the reference's.
void ExpectPooledNear(const absl::StatusOr<std::vector<std::vector<float>>>& pooled,
                      const std::vector<std::string>& texts, const Json& want) {
  ASSERT_TRUE(pooled.ok()) << pooled.status();
  ASSERT_EQ(pooled->size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_LT(MaxDiff((*pooled)[i], want.Find("pooled")->as_array()[i]), 1e-4) << texts[i];
  }
}

TEST_F(BertTest, EncoderMatchesPyTorch) {
  const std::vector<std::string> texts = {
      "Hello, world!",     "Vector databases index embeddings quickly.",
      "안녕하세요 세계",   "我爱北京天安门",
      "Café naïve résumé", "a"};
  std::vector<nn::Encoding> batch;
  for (const std::string& t : texts) batch.push_back(*tokenizer_->Encode(t, true, 128));
  std::string model_dir;
  Json want = Reference(batch, /*cross=*/false, &model_dir);
  auto enc = BertEncoder::Load(model_dir, backend_.get());
  ASSERT_TRUE(enc.ok()) << enc.status();
  EXPECT_EQ((*enc)->pooling(), Pooling::kMean);
  EXPECT_TRUE((*enc)->normalize());
  const int64_t h = 64;
  // One at a time, then all together (padded to the longest): the real
  // positions must not change.
  for (size_t i = 0; i < batch.size(); ++i) {
    int64_t seq = 0;
    auto hidden = (*enc)->Forward({batch[i]}, &seq);
    ASSERT_TRUE(hidden.ok()) << hidden.status();
    EXPECT_LT(MaxDiff(*hidden, want.Find("hidden")->as_array()[i]), 1e-4) << texts[i];
  }
  int64_t seq = 0;
  auto padded = (*enc)->Forward(batch, &seq);
  ASSERT_TRUE(padded.ok());
  for (size_t i = 0; i < batch.size(); ++i) {
    EXPECT_LT(MaxDiff(*padded, want.Find("hidden")->as_array()[i], i * seq * h), 1e-4)
        << "padded batch, " << texts[i];
  }
  ExpectPooledNear((*enc)->Embed(texts), texts, want);
}

TEST_F(BertTest, EncoderAndCrossEncoderMatchPyTorchOnCuda) {
  auto cuda = nn::NewBackend("cuda");
  if (!cuda.ok()) GTEST_SKIP() << "no CUDA backend: " << cuda.status();
  const std::vector<std::string> texts = {"Hello, world!", "안녕하세요 세계", "a"};
  Json want;
  auto enc = EncoderAndReference(texts, cuda->get(), &want);
  ASSERT_NE(enc, nullptr);
  ExpectPooledNear(enc->Embed(texts), texts, want);
  std::string model_dir;
  std::vector<nn::Encoding> pairs = {*tokenizer_->EncodePair("q", "a document", true, 128)};
  Json cross = Reference(pairs, /*cross=*/true, &model_dir);
  auto ce = BertEncoder::Load(model_dir, cuda->get());
  ASSERT_TRUE(ce.ok()) << ce.status();
  auto scores = (*ce)->Score(pairs);
  ASSERT_TRUE(scores.ok());
  EXPECT_NEAR((*scores)[0], cross.Find("logits")->as_array()[0].as_number(), 1e-4);
}

// TF32 tensor-core products: close to PyTorch's float32, not equal to it.
TEST_F(BertTest, EncoderOnCudaWithTf32StaysClose) {
  auto cuda = nn::NewBackend("cuda", {nn::MatmulPrecision::kTf32});
  if (!cuda.ok()) GTEST_SKIP() << "no CUDA backend: " << cuda.status();
  const std::vector<std::string> texts = {"Hello, world!", "안녕하세요 세계"};
  Json want;
  auto enc = EncoderAndReference(texts, cuda->get(), &want);
  ASSERT_NE(enc, nullptr);
  auto pooled = enc->Embed(texts);
  ASSERT_TRUE(pooled.ok()) << pooled.status();
  for (size_t i = 0; i < texts.size(); ++i) {
    const double err = MaxDiff((*pooled)[i], want.Find("pooled")->as_array()[i]);
    std::printf("tf32 pooled error %.2e (%s)\n", err, texts[i].c_str());
    EXPECT_LT(err, 2e-3) << texts[i];
    EXPECT_GT(err, 1e-7) << texts[i] << ": identical to float32, so TF32 was not used";
  }
}

// bfloat16 Linear layers on the CPU (--embed_precision=bf16): each pooled
// embedding within cosine similarity 0.999 of PyTorch's float32 one, and
// not float32 in disguise.
TEST_F(BertTest, EncoderInBf16OnTheCpuStaysClose) {
  auto cpu = nn::NewBackend("cpu", {nn::MatmulPrecision::kBf16});
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  ASSERT_EQ((*cpu)->precision(), nn::MatmulPrecision::kBf16);
  const std::vector<std::string> texts = {"Hello, world!",
                                          "Vector databases index embeddings quickly.",
                                          "안녕하세요 세계", "Café naïve résumé", "a"};
  Json want;
  auto enc = EncoderAndReference(texts, cpu->get(), &want);
  ASSERT_NE(enc, nullptr);
  auto pooled = enc->Embed(texts);
  ASSERT_TRUE(pooled.ok()) << pooled.status();
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto& ref = want.Find("pooled")->as_array()[i].as_array();
    ASSERT_EQ(ref.size(), (*pooled)[i].size());
    double dot = 0, a2 = 0, b2 = 0;
    for (size_t j = 0; j < ref.size(); ++j) {
      const double a = (*pooled)[i][j], b = ref[j].as_number();
      dot += a * b;
      a2 += a * a;
      b2 += b * b;
    }
    const double cosine = dot / std::sqrt(a2 * b2);
    const double err = MaxDiff((*pooled)[i], want.Find("pooled")->as_array()[i]);
    std::printf("bf16 pooled: cosine to float32 %.6f, max error %.2e (%s)\n", cosine, err,
                texts[i].c_str());
    EXPECT_GE(cosine, 0.999) << texts[i];
    EXPECT_GT(err, 1e-6) << texts[i] << ": identical to float32, so bfloat16 was not used";
  }
}

#ifdef QUIVER_CUDA_EMULATION
// The GPU running out of memory fails the request, not the process, and
// the next request succeeds (the emulated device's memory lowered).
TEST_F(BertTest, RunningOutOfGpuMemoryFailsTheRequestOnly) {
  auto cuda = nn::NewBackend("cuda");
  ASSERT_TRUE(cuda.ok()) << cuda.status();
  const std::vector<std::string> texts = {"Hello, world!", "a"};
  Json want;
  auto enc = EncoderAndReference(texts, cuda->get(), &want);
  ASSERT_NE(enc, nullptr);
  cuda_emulation::SetDeviceMemoryLimit(cuda_emulation::DeviceMemoryUsed() + 1024);
  auto failed = enc->Embed(texts);
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kResourceExhausted) << failed.status();
  // Loading a model that does not fit is the same clear error.
  EXPECT_EQ(BertEncoder::Load(model_dir_, cuda->get()).status().code(),
            absl::StatusCode::kResourceExhausted);
  cuda_emulation::SetDeviceMemoryLimit(cuda_emulation::kDefaultDeviceBytes);
  ExpectPooledNear(enc->Embed(texts), texts, want);
}
#endif

TEST_F(BertTest, CrossEncoderMatchesPyTorch) {
  const std::string query = "how do vaccines work";
  const std::vector<std::string> docs = {"Vaccines train the immune system.",
                                         "The stock market fell today.", "백신"};
  std::vector<nn::Encoding> pairs;
  for (const std::string& d : docs) pairs.push_back(*tokenizer_->EncodePair(query, d, true, 128));
  std::string model_dir;
  Json want = Reference(pairs, /*cross=*/true, &model_dir);
  auto enc = BertEncoder::Load(model_dir, backend_.get());
  ASSERT_TRUE(enc.ok()) << enc.status();
  ASSERT_TRUE((*enc)->has_classifier());
  auto scores = (*enc)->ScorePairs(query, docs);
  ASSERT_TRUE(scores.ok()) << scores.status();
  for (size_t i = 0; i < docs.size(); ++i) {
    EXPECT_NEAR((*scores)[i], want.Find("logits")->as_array()[i].as_number(), 1e-4) << docs[i];
  }
}

TEST_F(BertTest, BadModelDirectoriesAreClearErrors) {
  std::vector<nn::Encoding> batch = {*tokenizer_->Encode("x", true)};
  std::string model_dir;
  Reference(batch, false, &model_dir);
  // A config that does not match the weights.
  std::string config;
  {
    std::ifstream in(model_dir + "/config.json");
    std::stringstream ss;
    ss << in.rdbuf();
    config = ss.str();
  }
  const size_t at = config.find("\"intermediate_size\": 128");
  ASSERT_NE(at, std::string::npos);
  std::ofstream(model_dir + "/config.json")
      << config.substr(0, at) + "\"intermediate_size\": 256" + config.substr(at + 24);
  auto bad = BertEncoder::Load(model_dir, backend_.get());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("intermediate.dense.weight"), std::string::npos)
      << bad.status();
  // Truncated weights.
  std::ofstream(model_dir + "/config.json") << config;
  std::filesystem::resize_file(model_dir + "/model.safetensors", 100000);
  bad = BertEncoder::Load(model_dir, backend_.get());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss) << bad.status();
  EXPECT_FALSE(BertEncoder::Load(dir_.path() + "/nothing", backend_.get()).ok());
  // A sentence-transformers module the encoder does not run.
  Reference(batch, false, &model_dir);
  std::ofstream(model_dir + "/modules.json")
      << R"([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
             {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
             {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}])";
  bad = BertEncoder::Load(model_dir, backend_.get());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << bad.status();
  EXPECT_NE(bad.status().message().find("Dense"), std::string::npos) << bad.status();
}

}  // namespace
}  // namespace quiver::embed
