// Reading the stories260K reference files (fixture stories260K).
#ifndef QUIVER_TESTS_LLM_STORIES_FIXTURE_H_
#define QUIVER_TESTS_LLM_STORIES_FIXTURE_H_

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "llm/llama2c_tokenizer.h"
#include "llm/model.h"
#include "tests/testing/test_util.h"

namespace quiver::llm {

// The "generated_ids:" line of a .ids reference file.
inline std::vector<int> GeneratedIds(const std::string& path) {
  std::istringstream in(testing::ReadFileBytes(path));
  std::string line;
  std::vector<int> ids;
  while (std::getline(in, line)) {
    if (line.rfind("generated_ids:", 0) != 0) continue;
    std::istringstream nums(line.substr(14));
    for (int id; nums >> id;) ids.push_back(id);
  }
  return ids;
}

// Loads stories260K and its tokenizer; skips when the fixture is absent.
class StoriesModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::FixturePath("stories260K");
    if (dir_.empty()) GTEST_SKIP() << "fixture stories260K not found ($QUIVER_FIXTURES)";
    auto m = LlamaModel::LoadLlama2c(dir_ + "/stories260K.bin");
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = *std::move(m);
    auto t = Llama2cTokenizer::Load(dir_ + "/tok512.bin", model_->config().vocab_size);
    ASSERT_TRUE(t.ok()) << t.status();
    tokenizer_ = *std::move(t);
  }

  std::string dir_;
  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<Llama2cTokenizer> tokenizer_;
};

}  // namespace quiver::llm

#endif  // QUIVER_TESTS_LLM_STORIES_FIXTURE_H_
