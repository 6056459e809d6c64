// scripts/glove_to_model2vec.py: GloVe vectors in, a model2vec directory out
// that StaticModel loads and that embeds a text as the normalised mean of
// its known words.
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "embed/static_model.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace quiver::embed {
namespace {

int Convert(const std::string& in, const std::string& out, const std::string& extra = "") {
  const std::string cmd = std::string(testing::kPython) +
                          " " QUIVER_SOURCE_DIR "/scripts/glove_to_model2vec.py '" + in + "' '" +
                          out + "' " + extra + " > /dev/null";
  return std::system(cmd.c_str());
}

std::vector<float> Normalized(std::vector<float> v) {
  double n = 0;
  for (float x : v) n += x * x;
  for (float& x : v) x = static_cast<float>(x / std::sqrt(n));
  return v;
}

TEST(GloveConverterTest, EmbedsTheNormalisedMeanOfKnownWords) {
  testing::TempDir dir;
  const std::string glove = dir.path() + "/tiny.txt";
  std::ofstream(glove) << "the 0.1 0.2 0.3\n"
                          "cat 1 0 -1\n"
                          "dog 0 2 0.5\n"
                          ". 0.5 0.5 0.5\n"
                          "cat 9 9 9\n";  // A repeat keeps the first.
  ASSERT_EQ(Convert(glove, dir.path() + "/model", "--no-zipf"), 0);
  auto m = StaticModel::Load(dir.path() + "/model");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->dimension(), 3u);
  auto e = (*m)->Embed("Cat, DOG and zebra.");  // "and", "zebra", "," are unknown.
  ASSERT_TRUE(e.ok()) << e.status();
  const std::vector<float> want =
      Normalized({(1 + 0 + 0.5f) / 3, (0 + 2 + 0.5f) / 3, (-1 + 0.5f + 0.5f) / 3});
  ASSERT_EQ(e->size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_NEAR((*e)[i], want[i], 1e-6) << i;
  // Nothing known: the zero vector.
  auto none = (*m)->Embed("zebra");
  ASSERT_TRUE(none.ok());
  for (float x : *none) EXPECT_EQ(x, 0.0f);
  // With the default inverse-frequency weighting, line n's vector counts
  // log(1 + n) times.
  ASSERT_EQ(Convert(glove, dir.path() + "/zipf"), 0);
  auto z = StaticModel::Load(dir.path() + "/zipf");
  ASSERT_TRUE(z.ok()) << z.status();
  auto ze = (*z)->Embed("cat dog");
  ASSERT_TRUE(ze.ok());
  const float wc = std::log(3.0f), wd = std::log(4.0f);  // Lines 2 and 3.
  const std::vector<float> zwant = Normalized({wc * 1, wd * 2, wc * -1 + wd * 0.5f});
  for (size_t i = 0; i < 3; ++i) EXPECT_NEAR((*ze)[i], zwant[i], 1e-6) << i;
  // Ragged input is refused.
  std::ofstream(glove) << "a 1 2\nb 1\n";
  EXPECT_NE(Convert(glove, dir.path() + "/bad"), 0);
}

TEST(GloveConverterTest, ConvertsTheGloveFixture) {
  const std::string fixture = testing::FixturePath("glove-6B-50d-10k");
  if (fixture.empty()) GTEST_SKIP() << "fixture glove-6B-50d-10k not found ($QUIVER_FIXTURES)";
  testing::TempDir dir;
  ASSERT_EQ(Convert(fixture + "/glove.6B.50d.10k.zip", dir.path() + "/glove",
                    "--max-words 500 --no-zipf"),
            0);
  auto m = StaticModel::Load(dir.path() + "/glove");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->dimension(), 50u);
  // "the" is GloVe's first word: its vector, normalised.
  const std::vector<float> the = Normalized(
      {0.418f,      0.24968f,     -0.41242f, 0.1217f,   0.34527f,   -0.044457f, -0.49688f,
       -0.17862f,   -0.00066023f, -0.6566f,  0.27843f,  -0.14767f,  -0.55677f,  0.14658f,
       -0.0095095f, 0.011658f,    0.10204f,  -0.12792f, -0.8443f,   -0.12181f,  -0.016801f,
       -0.33279f,   -0.1552f,     -0.23131f, -0.19181f, -1.8823f,   -0.76746f,  0.099051f,
       -0.42125f,   -0.19526f,    4.0071f,   -0.18594f, -0.52287f,  -0.31681f,  0.00059213f,
       0.0074449f,  0.17778f,     -0.15897f, 0.012041f, -0.054223f, -0.29871f,  -0.15749f,
       -0.34758f,   -0.045637f,   -0.44251f, 0.18785f,  0.0027849f, -0.18411f,  -0.11514f,
       -0.78581f});
  auto e = (*m)->Embed("The");
  ASSERT_TRUE(e.ok());
  for (size_t i = 0; i < 50; ++i) EXPECT_NEAR((*e)[i], the[i], 1e-6) << i;
}

}  // namespace
}  // namespace quiver::embed
