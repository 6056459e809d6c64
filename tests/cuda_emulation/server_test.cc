// quiverd with --device=cuda on the emulated GPU (quiverd_emulated_gpu: the
// real server with the emulation's CUDA runtime): generation runs on the
// CUDA decode engine and still reproduces llama2.c, and ListModels says
// where each model computes.
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "quiver/v1/models.grpc.pb.h"
#include "tests/testing/quiverd_process.h"
#include "tests/testing/test_util.h"

namespace quiver {
namespace {

class EmulatedGpuServerTest : public ::testing::Test {
 protected:
  // quiverd_emulated_gpu --device=cuda with `flags`; models_ talks to it.
  void StartServer(std::vector<std::string> flags) {
    flags.insert(flags.begin(), "--device=cuda");
    server_ = std::make_unique<testing::QuiverdProcess>(dir_.path() + "/data", std::move(flags));
    server_->set_binary(QUIVERD_EMULATED_GPU_PATH);
    server_->set_start_timeout_s(120);
    QUIVER_ASSERT_OK(server_->Start());
    models_ = v1::Models::NewStub(server_->NewChannel());
  }
  v1::ListModelsResponse ListModels() {
    v1::ListModelsResponse list;
    grpc::ClientContext ctx;
    EXPECT_TRUE(models_->ListModels(&ctx, v1::ListModelsRequest(), &list).ok());
    return list;
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::QuiverdProcess> server_;
  std::unique_ptr<v1::Models::Stub> models_;
};

TEST_F(EmulatedGpuServerTest, GeneratesOnTheCudaEngineAndSaysWhereModelsRun) {
  const std::string stories = testing::FixturePath("stories260K");
  const std::string model2vec = testing::FixturePath("model2vec-rs-fixtures");
  if (stories.empty() || model2vec.empty()) {
    GTEST_SKIP() << "fixtures stories260K and model2vec-rs-fixtures not found ($QUIVER_FIXTURES)";
  }
  StartServer({"--llm-model=" + stories + "/stories260K.bin",
               "--llm-tokenizer=" + stories + "/tok512.bin",
               "--embed-model=" + model2vec + "/test-model-vocab-quantized"});
  const v1::ListModelsResponse list = ListModels();
  ASSERT_EQ(list.models_size(), 2);
  for (const v1::ModelInfo& m : list.models()) {
    // model2vec looks its vectors up on the host whatever --device says.
    EXPECT_EQ(m.device(), m.kind() == "generator" ? "cuda" : "cpu") << m.name();
  }

  v1::GenerateRequest req;
  req.mutable_sampling()->set_max_tokens(200);
  const std::string text = testing::GenerateText(models_.get(), req);
  EXPECT_EQ(text, testing::ReadFileBytes(stories + "/expected_greedy_n200.txt"));
  EXPECT_NE(server_->Log().find("device=cuda"), std::string::npos) << server_->Log();
}

// A BERT embedder and a cross-encoder share quiverd's CUDA backend from
// their two workers: concurrent Embed and Rerank calls each get exactly
// what they get alone.
TEST_F(EmulatedGpuServerTest, EmbedAndRerankAtOnceOnTheGpuMatchTheirSerialResults) {
  const std::string fixtures = testing::FixturePath("model2vec-rs-fixtures");
  if (fixtures.empty())
    GTEST_SKIP() << "fixture model2vec-rs-fixtures not found ($QUIVER_FIXTURES)";
  if (!testing::HaveTorch()) {
    GTEST_SKIP() << testing::kNoTorch << ": no BERT models to serve";
  }
  const std::string dir = dir_.path();
  std::ofstream(dir + "/ids.json") << "[]";
  for (const char* kind : {"encoder", "cross"}) {
    const std::string cmd = testing::BertReferenceCommand(
        dir + "/" + kind, fixtures + "/test-model-float32/tokenizer.json", dir + "/ids.json",
        std::string(kind) == "cross");
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  StartServer({"--embed-model=" + dir + "/encoder", "--rerank-model=" + dir + "/cross"});
  const v1::ListModelsResponse list = ListModels();
  for (const v1::ModelInfo& m : list.models()) EXPECT_EQ(m.device(), "cuda") << m.name();

  auto embed = [&] {
    v1::EmbedRequest req;
    for (const char* t : {"Hello, world!", "안녕하세요 세계", "a longer sentence about vaccines"}) {
      req.add_inputs(t);
    }
    v1::EmbedResponse resp;
    grpc::ClientContext ctx;
    EXPECT_TRUE(models_->Embed(&ctx, req, &resp).ok());
    std::vector<float> all;
    for (const auto& e : resp.embeddings())
      all.insert(all.end(), e.values().begin(), e.values().end());
    return all;
  };
  auto rerank = [&] {
    v1::RerankRequest req;
    req.set_query("how do vaccines work");
    for (const char* d :
         {"Vaccines train the immune system.", "The stock market fell today.", "백신"}) {
      req.add_documents(d);
    }
    v1::RerankResponse resp;
    grpc::ClientContext ctx;
    EXPECT_TRUE(models_->Rerank(&ctx, req, &resp).ok());
    std::vector<float> scores;
    for (const auto& r : resp.results()) scores.push_back(r.score());
    return scores;
  };
  const std::vector<float> want_embed = embed(), want_scores = rerank();
  ASSERT_EQ(want_embed.size(), 3u * list.models(0).dimension());
  ASSERT_EQ(want_scores.size(), 3u);
  std::vector<std::vector<float>> embeds, scores;
  std::thread a([&] {
    for (int i = 0; i < 10; ++i) embeds.push_back(embed());
  });
  std::thread b([&] {
    for (int i = 0; i < 10; ++i) scores.push_back(rerank());
  });
  a.join();
  b.join();
  for (const auto& e : embeds) EXPECT_EQ(e, want_embed);
  for (const auto& s : scores) EXPECT_EQ(s, want_scores);
}

}  // namespace
}  // namespace quiver
