#include "embed/static_model.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "common/json.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace quiver::embed {
namespace {

std::vector<float> Golden(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = ParseJson(ss.str());
  std::vector<float> out;
  if (!j.ok()) return out;
  for (const Json& v : j->as_array()[0].as_array())
    out.push_back(static_cast<float>(v.as_number()));
  return out;
}

void ExpectClose(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], 1e-5 * std::max(1.0f, std::fabs(want[i]))) << "dimension " << i;
  }
}

std::string LongText() {
  std::string s;
  for (int i = 0; i < 1000; ++i) s += i ? " hello" : "hello";
  return s;
}

TEST(StaticModelTest, ReproducesModel2VecGoldenOutputs) {
  const std::string dir = testing::FixturePath("model2vec-rs-fixtures");
  if (dir.empty()) GTEST_SKIP() << "fixture model2vec-rs-fixtures not found ($QUIVER_FIXTURES)";
  auto m = StaticModel::Load(dir + "/test-model-float32");
  QUIVER_ASSERT_OK(m.status());
  EXPECT_EQ((*m)->dimension(), 2u);
  ExpectClose(*(*m)->Embed("hello world"), Golden(dir + "/embeddings_short.json"));
  ExpectClose(*(*m)->Embed(LongText()), Golden(dir + "/embeddings_long.json"));
  auto q = StaticModel::Load(dir + "/test-model-vocab-quantized");
  QUIVER_ASSERT_OK(q.status());
  EXPECT_EQ((*q)->dimension(), 64u);
  ExpectClose(*(*q)->Embed(LongText()), Golden(dir + "/embeddings_vocab_quantized.json"));
  // Text with no known token embeds to zeros rather than failing.
  auto empty = (*m)->Embed("");
  QUIVER_ASSERT_OK(empty.status());
  EXPECT_EQ(*empty, (std::vector<float>{0, 0}));
}

TEST(StaticModelTest, SimilarTextsAreCloser) {
  const std::string dir = testing::FixturePath("model2vec-rs-fixtures");
  if (dir.empty()) GTEST_SKIP() << "fixture model2vec-rs-fixtures not found ($QUIVER_FIXTURES)";
  auto q = StaticModel::Load(dir + "/test-model-vocab-quantized");
  QUIVER_ASSERT_OK(q.status());
  auto cos = [&](const std::string& a, const std::string& b) {
    auto x = *(*q)->Embed(a);
    auto y = *(*q)->Embed(b);
    double s = 0;
    for (size_t i = 0; i < x.size(); ++i) s += x[i] * y[i];
    return s;
  };
  const std::string query = "how do vaccines prevent disease";
  EXPECT_GT(cos(query, "vaccines train the immune system to fight infection"),
            cos(query, "the stock market fell sharply today"));
}

TEST(StaticModelTest, MissingFilesAreClearErrors) {
  testing::TempDir dir;
  auto m = StaticModel::Load(dir.path());
  EXPECT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("tokenizer.json"), std::string::npos);
}

}  // namespace
}  // namespace quiver::embed
