// rag::Pipeline in-process with a chat model: Ask renders the system prompt,
// the history and the filled template through the model's chat template.
#include "rag/pipeline.h"

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "rag/service_embedder.h"
#include "tests/testing/test_util.h"

namespace quiver::rag {
namespace {

class Sink : public AskSink {
 public:
  bool Sources(const std::vector<Source>& s) override {
    sources = s;
    return true;
  }
  bool Token(std::string_view text, int) override {
    answer += text;
    return true;
  }
  bool Done(const AskSummary& s) override {
    summary = s;
    return true;
  }
  std::vector<Source> sources;
  std::string answer;
  AskSummary summary;
};

TEST(PipelineTest, ChatModelsGetTheSystemPromptHistoryAndSourcesThroughTheirTemplate) {
  const std::string fixtures = testing::FixturePath("model2vec-rs-fixtures");
  if (fixtures.empty())
    GTEST_SKIP() << "fixture model2vec-rs-fixtures not found ($QUIVER_FIXTURES)";
  if (!testing::HaveTorch()) GTEST_SKIP() << testing::kNoTorch << ": no chat model to serve";
  testing::TempDir dir;
  // A random Qwen2-style model with a ChatML template (tests/llm/hf_reference.py).
  const std::string model = dir.path() + "/qwen";
  std::ofstream(dir.path() + "/ids.json") << "[1]";
  const std::string cmd = std::string(testing::kPython) +
                          " " QUIVER_SOURCE_DIR "/tests/llm/hf_reference.py " + model + " qwen2 " +
                          dir.path() + "/ids.json";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  llm::GeneratorOptions go;
  go.model.path = model;
  go.device = "cpu";
  auto generator = llm::Generator::Load(go);
  ASSERT_TRUE(generator.ok()) << generator.status();
  ASSERT_TRUE((*generator)->has_chat_template());

  embed::ServiceOptions so;
  so.embed_model_dir = fixtures + "/test-model-float32";
  so.device = "cpu";
  auto embeddings = embed::EmbeddingService::Load(so);
  ASSERT_TRUE(embeddings.ok()) << embeddings.status();
  ServiceEmbedder embedder(embeddings->get());
  db::EngineOptions eo;
  eo.store.path = dir.path() + "/data";
  eo.embedders[(*embeddings)->embed_name()] = &embedder;
  auto engine = db::Engine::Open(eo);
  ASSERT_TRUE(engine.ok()) << engine.status();
  storage::CollectionConfig cc;
  cc.name = "kb";
  cc.dimension = static_cast<uint32_t>((*embeddings)->embedder().dimension());
  cc.embedding_model = (*embeddings)->embed_name();
  ASSERT_TRUE((*engine)->CreateCollection(cc).ok());
  Pipeline pipeline(engine->get(), embeddings->get(), generator->get(), nullptr);
  DocumentInput doc;
  doc.id = "d";
  doc.text = "cats sat.";
  ASSERT_TRUE(pipeline.UpsertDocument("kb", "", doc).ok());

  AskRequest req;
  req.collection = "kb";
  req.question = "who sat?";
  req.system_prompt = "Be brief.";
  req.prompt_template = "{context}Q: {question}";
  req.history = {{"user", "hi"}, {"assistant", "yo"}};
  req.generation.max_tokens = 4;
  Sink sink;
  ASSERT_TRUE(pipeline.Ask(req, &sink).ok());
  ASSERT_EQ(sink.sources.size(), 1u);
  EXPECT_EQ(sink.sources[0].text, "cats sat.");
  EXPECT_EQ(sink.summary.completion_tokens, 4u);

  // The prompt the model saw: ChatML of exactly these messages.
  auto rendered = (*generator)
                      ->RenderChat({{"system", "Be brief."},
                                    {"user", "hi"},
                                    {"assistant", "yo"},
                                    {"user", "[1] cats sat.\nQ: who sat?"}});
  ASSERT_TRUE(rendered.ok()) << rendered.status();
  EXPECT_NE(rendered->text.find("<|im_start|>system\nBe brief."), std::string::npos);
  auto ids = (*generator)->tokenizer().Tokenize(rendered->text, rendered->add_bos);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(sink.summary.prompt_tokens, ids->size());
  // Without a system prompt, the default one.
  req.system_prompt.clear();
  Sink second;
  ASSERT_TRUE(pipeline.Ask(req, &second).ok());
  auto with_default = (*generator)
                          ->RenderChat({{"system", kDefaultSystemPrompt},
                                        {"user", "hi"},
                                        {"assistant", "yo"},
                                        {"user", "[1] cats sat.\nQ: who sat?"}});
  ASSERT_TRUE(with_default.ok());
  auto ids2 = (*generator)->tokenizer().Tokenize(with_default->text, with_default->add_bos);
  ASSERT_TRUE(ids2.ok());
  EXPECT_EQ(second.summary.prompt_tokens, ids2->size());
}

}  // namespace
}  // namespace quiver::rag
