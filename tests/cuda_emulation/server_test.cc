// quiverd with --device=cuda on the emulated GPU (quiverd_emulated_gpu: the
// real server with the emulation's CUDA runtime): generation runs on the
// CUDA decode engine and still reproduces llama2.c, and ListModels says
// where each model computes.
#include <string>

#include "gtest/gtest.h"
#include "quiver/v1/models.grpc.pb.h"
#include "tests/testing/quiverd_process.h"
#include "tests/testing/test_util.h"

namespace quiver {
namespace {

TEST(EmulatedGpuServerTest, GeneratesOnTheCudaEngineAndSaysWhereModelsRun) {
  const std::string stories = testing::FixturePath("stories260K");
  const std::string model2vec = testing::FixturePath("model2vec-rs-fixtures");
  if (stories.empty() || model2vec.empty()) {
    GTEST_SKIP() << "fixtures stories260K and model2vec-rs-fixtures not found ($QUIVER_FIXTURES)";
  }
  testing::TempDir dir;
  testing::QuiverdProcess server(dir.path() + "/data",
                                 {"--device=cuda", "--llm-model=" + stories + "/stories260K.bin",
                                  "--llm-tokenizer=" + stories + "/tok512.bin",
                                  "--embed-model=" + model2vec + "/test-model-vocab-quantized"});
  server.set_binary(QUIVERD_EMULATED_GPU_PATH);
  server.set_start_timeout_s(120);
  QUIVER_ASSERT_OK(server.Start());
  auto models = v1::Models::NewStub(server.NewChannel());

  v1::ListModelsResponse list;
  grpc::ClientContext list_ctx;
  ASSERT_TRUE(models->ListModels(&list_ctx, v1::ListModelsRequest(), &list).ok());
  ASSERT_EQ(list.models_size(), 2);
  for (const v1::ModelInfo& m : list.models()) {
    // model2vec looks its vectors up on the host whatever --device says.
    EXPECT_EQ(m.device(), m.kind() == "generator" ? "cuda" : "cpu") << m.name();
  }

  v1::GenerateRequest req;
  req.mutable_sampling()->set_max_tokens(200);
  grpc::ClientContext ctx;
  auto reader = models->Generate(&ctx, req);
  v1::GenerateResponse resp;
  std::string text;
  while (reader->Read(&resp)) text += resp.text();
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(text, testing::ReadFileBytes(stories + "/expected_greedy_n200.txt"));
  EXPECT_NE(server.Log().find("device=cuda"), std::string::npos) << server.Log();
}

}  // namespace
}  // namespace quiver
