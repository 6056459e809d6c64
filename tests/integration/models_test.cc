// Models.Embed / Rerank / ListModels and embedding-bound collections through
// a real quiverd, with the model2vec fixtures and (where PyTorch is present)
// a generated cross-encoder.
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "llm/chat_template.h"
#include "llm/hf_model.h"
#include "quiver/v1/collections.grpc.pb.h"
#include "quiver/v1/models.grpc.pb.h"
#include "quiver/v1/points.grpc.pb.h"
#include "quiver/v1/search.grpc.pb.h"
#include "tests/testing/quiverd_process.h"
#include "tests/testing/test_util.h"

namespace quiver {
namespace {

class ModelsTest : public ::testing::Test {
 protected:
  void StartServer(std::vector<std::string> flags) {
    server_ = std::make_unique<testing::QuiverdProcess>(dir_.path() + "/data", std::move(flags));
    QUIVER_ASSERT_OK(server_->Start());
    auto ch = server_->NewChannel();
    models_ = v1::Models::NewStub(ch);
    collections_ = v1::Collections::NewStub(ch);
    points_ = v1::Points::NewStub(ch);
    search_ = v1::Search::NewStub(ch);
  }
  grpc::Status Embed(const std::vector<std::string>& inputs, v1::EmbedResponse* resp,
                     const std::string& model = "") {
    v1::EmbedRequest req;
    req.set_model(model);
    for (const auto& i : inputs) req.add_inputs(i);
    grpc::ClientContext ctx;
    return models_->Embed(&ctx, req, resp);
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::QuiverdProcess> server_;
  std::unique_ptr<v1::Models::Stub> models_;
  std::unique_ptr<v1::Collections::Stub> collections_;
  std::unique_ptr<v1::Points::Stub> points_;
  std::unique_ptr<v1::Search::Stub> search_;
};

TEST_F(ModelsTest, WithoutModelsTheRpcsSaySo) {
  StartServer({});
  v1::EmbedResponse er;
  grpc::Status s = Embed({"x"}, &er);
  EXPECT_EQ(s.error_code(), grpc::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("--embed-model"), std::string::npos);
  v1::ListModelsResponse lr;
  grpc::ClientContext ctx;
  ASSERT_TRUE(models_->ListModels(&ctx, v1::ListModelsRequest(), &lr).ok());
  EXPECT_EQ(lr.models_size(), 0);
  v1::CreateCollectionRequest cc;
  cc.mutable_config()->set_name("e");
  cc.mutable_config()->mutable_embedding()->set_model("minilm");
  v1::CreateCollectionResponse ccr;
  grpc::ClientContext c2;
  EXPECT_EQ(collections_->Create(&c2, cc, &ccr).error_code(), grpc::FAILED_PRECONDITION);
}

TEST_F(ModelsTest, EmbedAndEmbeddingBoundCollections) {
  const std::string fixtures = testing::FixturePath("model2vec-rs-fixtures");
  if (fixtures.empty())
    GTEST_SKIP() << "fixture model2vec-rs-fixtures not found ($QUIVER_FIXTURES)";
  StartServer({"--embed-model=" + fixtures + "/test-model-vocab-quantized", "--device=cpu"});
  v1::ListModelsResponse lr;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(models_->ListModels(&ctx, v1::ListModelsRequest(), &lr).ok());
  }
  ASSERT_EQ(lr.models_size(), 1);
  EXPECT_EQ(lr.models(0).name(), "test-model-vocab-quantized");
  EXPECT_EQ(lr.models(0).kind(), "embedding");
  EXPECT_EQ(lr.models(0).dimension(), 64u);
  EXPECT_EQ(lr.models(0).device(), "cpu");

  // The fixture's golden vector, through the server.
  std::string hello;
  for (int i = 0; i < 1000; ++i) hello += i ? " hello" : "hello";
  v1::EmbedResponse er;
  ASSERT_TRUE(Embed({hello, "vaccines"}, &er).ok());
  ASSERT_EQ(er.embeddings_size(), 2);
  EXPECT_EQ(er.embeddings(0).values_size(), 64);
  EXPECT_NEAR(er.embeddings(0).values(0), -0.363402567303566, 1e-5);
  EXPECT_NEAR(er.embeddings(0).values(3), -0.16813011070789555, 1e-5);
  EXPECT_EQ(er.embeddings(0).token_count(), 1000u);
  EXPECT_EQ(er.model(), "test-model-vocab-quantized");
  v1::EmbedResponse bad;
  EXPECT_EQ(Embed({"x"}, &bad, "other-model").error_code(), grpc::NOT_FOUND);
  EXPECT_EQ(Embed({}, &bad).error_code(), grpc::INVALID_ARGUMENT);

  // The CLI's embed and models commands.
  std::string out;
  ASSERT_EQ(
      testing::RunCli({"--addr=" + server_->address(), "embed", "hello world", "vaccines"}, &out),
      0)
      << out;
  EXPECT_NE(out.find("64"), std::string::npos) << out;
  ASSERT_EQ(testing::RunCli({"--addr=" + server_->address(), "models"}, &out), 0) << out;
  EXPECT_NE(out.find("test-model-vocab-quantized"), std::string::npos) << out;

  // A collection bound to the model: dimension from the model, text in,
  // text queries embedded.
  v1::CreateCollectionRequest cc;
  cc.mutable_config()->set_name("docs");
  cc.mutable_config()->mutable_embedding()->set_model("test-model-vocab-quantized");
  v1::CreateCollectionResponse ccr;
  {
    grpc::ClientContext ctx;
    grpc::Status s = collections_->Create(&ctx, cc, &ccr);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(ccr.collection().config().dimension(), 64u);
  v1::UpsertRequest up;
  up.set_collection("docs");
  const std::vector<std::pair<std::string, std::string>> docs = {
      {"vax", "vaccines train the immune system to fight infection"},
      {"stocks", "the stock market fell sharply today"},
      {"rain", "heavy rain and storms are expected this weekend"}};
  for (const auto& [id, text] : docs) {
    v1::Record* r = up.add_records();
    r->set_id(id);
    r->set_text(text);
  }
  v1::UpsertResponse ur;
  {
    grpc::ClientContext ctx;
    grpc::Status s = points_->Upsert(&ctx, up, &ur);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  auto top = [&](const std::string& text) {
    v1::QueryRequest q;
    q.set_collection("docs");
    q.set_top_k(1);
    q.set_text(text);
    v1::QueryResponse qr;
    grpc::ClientContext ctx;
    grpc::Status s = search_->Query(&ctx, q, &qr);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return qr.matches_size() > 0 ? qr.matches(0).id() : std::string();
  };
  EXPECT_EQ(top("how do vaccines prevent disease"), "vax");
  EXPECT_EQ(top("share prices dropped"), "stocks");
  // The stored vector is the model's embedding of the text.
  v1::FetchRequest f;
  f.set_collection("docs");
  f.add_ids("vax");
  v1::FetchResponse fr;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(points_->Fetch(&ctx, f, &fr).ok());
  }
  v1::EmbedResponse direct;
  ASSERT_TRUE(Embed({docs[0].second}, &direct).ok());
  ASSERT_EQ(fr.records(0).values_size(), 64);
  for (int i = 0; i < 64; ++i) {
    EXPECT_FLOAT_EQ(fr.records(0).values(i), direct.embeddings(0).values(i));
  }
  // New text re-embeds the record.
  v1::UpdateRequest u;
  u.set_collection("docs");
  u.set_id("rain");
  u.set_text("vaccination campaigns against measles");
  v1::UpdateResponse upr;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(points_->Update(&ctx, u, &upr).ok());
  }
  v1::QueryRequest q;
  q.set_collection("docs");
  q.set_top_k(3);
  q.set_text("measles vaccination");
  v1::QueryResponse qr;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(search_->Query(&ctx, q, &qr).ok());
  }
  ASSERT_GE(qr.matches_size(), 1);
  EXPECT_EQ(qr.matches(0).id(), "rain");
  // A dimension that disagrees with the model is refused.
  cc.mutable_config()->set_name("wrong");
  cc.mutable_config()->set_dimension(32);
  grpc::ClientContext ctx;
  EXPECT_EQ(collections_->Create(&ctx, cc, &ccr).error_code(), grpc::INVALID_ARGUMENT);
}

TEST_F(ModelsTest, RerankWithACrossEncoder) {
  const std::string fixtures = testing::FixturePath("model2vec-rs-fixtures");
  if (fixtures.empty())
    GTEST_SKIP() << "fixture model2vec-rs-fixtures not found ($QUIVER_FIXTURES)";
  if (!testing::HaveTorch()) {
    GTEST_SKIP() << testing::kNoTorch << ": no cross-encoder to serve";
  }
  const std::string model = dir_.path() + "/cross";
  std::ofstream(dir_.path() + "/ids.json") << "[]";
  const std::string cmd =
      testing::BertReferenceCommand(model, fixtures + "/test-model-float32/tokenizer.json",
                                    dir_.path() + "/ids.json", /*cross=*/true);
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  StartServer({"--rerank-model=" + model, "--device=cpu"});
  v1::RerankRequest req;
  req.set_query("how do vaccines work");
  for (const char* d : {"Vaccines train the immune system.", "The stock market fell today.",
                        "Rain is expected.", "백신"}) {
    req.add_documents(d);
  }
  req.set_top_n(3);
  req.set_return_documents(true);
  v1::RerankResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = models_->Rerank(&ctx, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.results_size(), 3);
  EXPECT_EQ(resp.model(), "cross");
  for (int i = 0; i < 3; ++i) {
    EXPECT_GT(resp.results(i).score(), 0.0f);
    EXPECT_LT(resp.results(i).score(), 1.0f);
    EXPECT_EQ(resp.results(i).document(), req.documents(resp.results(i).index()));
    if (i > 0) {
      EXPECT_GE(resp.results(i - 1).score(), resp.results(i).score());
    }
  }
  std::string out;
  ASSERT_EQ(testing::RunCli({"--addr=" + server_->address(), "rerank", "vaccines",
                             "Vaccines train the immune system.", "Rain.", "--top-n=1"},
                            &out),
            0)
      << out;
  EXPECT_NE(out.find("RANK"), std::string::npos) << out;
  // The same pair scores the same alone as in a batch.
  v1::RerankRequest one;
  one.set_query(req.query());
  one.add_documents(req.documents(resp.results(0).index()));
  v1::RerankResponse one_resp;
  grpc::ClientContext c2;
  ASSERT_TRUE(models_->Rerank(&c2, one, &one_resp).ok());
  EXPECT_NEAR(one_resp.results(0).score(), resp.results(0).score(), 1e-5);
  v1::RerankRequest empty;
  empty.set_query("q");
  grpc::ClientContext c3;
  EXPECT_EQ(models_->Rerank(&c3, empty, &one_resp).error_code(), grpc::INVALID_ARGUMENT);
}

TEST_F(ModelsTest, GenerateStreamsAndReproducesLlama2c) {
  const std::string dir = testing::FixturePath("stories260K");
  if (dir.empty()) GTEST_SKIP() << "fixture stories260K not found ($QUIVER_FIXTURES)";
  StartServer(
      {"--llm-model=" + dir + "/stories260K.bin", "--llm-tokenizer=" + dir + "/tok512.bin"});
  auto generate = [&](v1::GenerateRequest req, int* messages, v1::FinishReason* reason) {
    grpc::ClientContext ctx;
    auto reader = models_->Generate(&ctx, req);
    v1::GenerateResponse resp;
    std::string text;
    *messages = 0;
    while (reader->Read(&resp)) {
      text += resp.text();
      ++*messages;
      if (resp.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) *reason = resp.finish_reason();
    }
    grpc::Status s = reader->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
    return text;
  };
  v1::GenerateRequest req;
  req.mutable_sampling()->set_max_tokens(256);
  req.mutable_sampling()->set_temperature(1.0f);
  req.mutable_sampling()->set_top_p(0.9f);
  req.mutable_sampling()->set_seed(133742);
  int messages = 0;
  v1::FinishReason reason = v1::FINISH_REASON_UNSPECIFIED;
  EXPECT_EQ(generate(req, &messages, &reason),
            testing::ReadFileBytes(dir + "/expected_t1.0_p0.9_s133742_n256.txt"));
  EXPECT_GT(messages, 100);  // Streamed token by token.
  EXPECT_EQ(reason, v1::FINISH_REASON_LENGTH);
  // Several clients at once each get their own (deterministic) stream.
  std::vector<std::thread> threads;
  std::vector<std::string> texts(4);
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      v1::GenerateRequest r;
      r.mutable_sampling()->set_max_tokens(200);
      int m;
      v1::FinishReason fr;
      texts[i] = generate(r, &m, &fr);
    });
  }
  for (auto& t : threads) t.join();
  for (const std::string& t : texts)
    EXPECT_EQ(t, testing::ReadFileBytes(dir + "/expected_greedy_n200.txt"));
  // A client that goes away mid-stream stops the work; the server serves on.
  {
    grpc::ClientContext ctx;
    v1::GenerateRequest r;
    r.mutable_sampling()->set_max_tokens(400);
    auto reader = models_->Generate(&ctx, r);
    v1::GenerateResponse resp;
    ASSERT_TRUE(reader->Read(&resp));
    ctx.TryCancel();
    while (reader->Read(&resp)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::CANCELLED);
  }
  // Bad requests are clear errors.
  v1::GenerateRequest chat;
  chat.add_messages()->set_content("hi");
  grpc::ClientContext c2;
  auto r2 = models_->Generate(&c2, chat);
  v1::GenerateResponse resp;
  while (r2->Read(&resp)) {
  }
  EXPECT_EQ(r2->Finish().error_code(), grpc::INVALID_ARGUMENT);
  v1::GenerateRequest too_long;
  too_long.set_prompt(std::string(4000, 'q'));
  grpc::ClientContext c3;
  auto r3 = models_->Generate(&c3, too_long);
  while (r3->Read(&resp)) {
  }
  grpc::Status s3 = r3->Finish();
  EXPECT_EQ(s3.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_NE(s3.error_message().find("context"), std::string::npos) << s3.error_message();
  // The CLI streams too.
  std::string out;
  ASSERT_EQ(testing::RunCli({"--addr=" + server_->address(), "generate", "Zoo", "--max-tokens=57"},
                            &out, /*stderr_too=*/false),
            0);
  EXPECT_EQ(out, testing::ReadFileBytes(dir + "/expected_zoo_greedy_n60.txt").substr(3) +
                     "\n");  // New text only.
}

TEST_F(ModelsTest, GenerateFromAConvertedGgufFile) {
  const std::string dir = testing::FixturePath("stories260K");
  if (dir.empty()) GTEST_SKIP() << "fixture stories260K not found ($QUIVER_FIXTURES)";
  const std::string gguf = dir_.path() + "/stories260K.gguf";
  const std::string cmd = std::string(QUIVER_CONVERT_PATH) + " --llama2c=" + dir +
                          "/stories260K.bin --tokenizer=" + dir + "/tok512.bin --out=" + gguf +
                          " --type=f16 > /dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  StartServer({"--llm-model=" + gguf});
  v1::GenerateRequest req;
  req.mutable_sampling()->set_max_tokens(200);
  const std::string text = testing::GenerateText(models_.get(), req);
  EXPECT_EQ(text, testing::ReadFileBytes(
                      dir + "/expected_greedy_n200.txt"));  // F16 agrees for all 200 steps.
}

TEST_F(ModelsTest, ChatWithAHuggingFaceDirectory) {
  if (!testing::HaveTorch()) {
    GTEST_SKIP() << testing::kNoTorch << ": no Hugging Face model to serve";
  }
  // A random Qwen2-style model with a byte-level BPE tokenizer and a ChatML
  // template (tests/llm/hf_reference.py).
  const std::string model = dir_.path() + "/qwen";
  std::ofstream(dir_.path() + "/ids.json") << "[1]";
  const std::string cmd = std::string(testing::kPython) + " " + QUIVER_SOURCE_DIR +
                          "/tests/llm/hf_reference.py " + model + " qwen2 " + dir_.path() +
                          "/ids.json";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  StartServer({"--llm-model=" + model, "--llm_max_context=64"});
  const std::vector<llm::ChatMessage> chat = {{"system", "Be brief."}, {"user", "the and then"}};
  v1::GenerateRequest req;
  for (const auto& m : chat) {
    v1::ChatMessage* out = req.add_messages();
    out->set_role(m.role);
    out->set_content(m.content);
  }
  req.mutable_sampling()->set_max_tokens(12);
  grpc::ClientContext ctx;
  auto reader = models_->Generate(&ctx, req);
  v1::GenerateResponse resp;
  std::vector<int> ids;
  uint32_t prompt_tokens = 0;
  while (reader->Read(&resp)) {
    for (uint32_t id : resp.token_ids()) ids.push_back(static_cast<int>(id));
    if (resp.prompt_tokens() > 0) prompt_tokens = resp.prompt_tokens();
  }
  grpc::Status s = reader->Finish();
  ASSERT_TRUE(s.ok()) << s.error_message();

  // The same conversation in-process: ChatML rendered, tokenized with the
  // special tokens, greedy steps until the end token or 12 tokens.
  auto loaded = llm::LoadHfModel(model);
  QUIVER_ASSERT_OK(loaded.status());
  const llm::Tokenizer& tok = *loaded->tokenizer;
  auto tmpl = llm::ChatTemplate::Parse(tok.info().chat_template);
  QUIVER_ASSERT_OK(tmpl.status());
  auto rendered = llm::RenderChat(**tmpl, tok.info(), chat);
  QUIVER_ASSERT_OK(rendered.status());
  EXPECT_EQ(rendered->text,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nthe and then<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_FALSE(rendered->add_bos);
  auto prompt = tok.Tokenize(rendered->text, rendered->add_bos);
  QUIVER_ASSERT_OK(prompt.status());
  EXPECT_EQ(prompt->front(), 256 + 7 + 1);  // <|im_start|> as one special token.
  EXPECT_EQ(prompt_tokens, prompt->size());
  const llm::LlamaModel& m = *loaded->model;
  llm::PagedKvCache cache(m.config(), 8, 16);
  std::vector<int> blocks;
  for (int i = 0; i < 8; ++i) blocks.push_back(cache.Allocate());
  std::vector<int> want;
  std::vector<llm::StepRow> rows;
  for (size_t p = 0; p < prompt->size(); ++p)
    rows.push_back({(*prompt)[p], static_cast<int>(p), &blocks});
  int pos = static_cast<int>(prompt->size());
  auto logits = m.ForwardBatch(rows, &cache).back();
  while (want.size() < 12) {
    const int next =
        static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (tok.IsEnd(next)) break;
    want.push_back(next);
    logits = m.ForwardBatch({{next, pos++, &blocks}}, &cache)[0];
  }
  EXPECT_EQ(ids, want);
  EXPECT_EQ(want.size(), 12u);  // This seed's model does not end early: the check is not vacuous.
  // The CLI sends the same conversation with --chat and prints its text.
  std::string bytes;
  int prev = prompt->back();
  for (int id : want) {
    bytes += tok.Decode(prev, id);
    prev = id;
  }
  std::string want_text = llm::TakeCompleteUtf8(&bytes);
  if (!bytes.empty()) want_text += "\xEF\xBF\xBD";
  std::string out;
  ASSERT_EQ(testing::RunCli({"--addr=" + server_->address(), "generate", "the and then", "--chat",
                             "--system=Be brief.", "--max-tokens=12"},
                            &out, /*stderr_too=*/false),
            0);
  EXPECT_EQ(out, want_text + "\n") << ::testing::PrintToString(want);

  // --llm_max_context caps the model's 256 positions at 64.
  v1::GenerateRequest long_prompt;
  long_prompt.set_prompt(std::string(80, 'q'));
  grpc::ClientContext lc;
  auto lr = models_->Generate(&lc, long_prompt);
  while (lr->Read(&resp)) {
  }
  grpc::Status ls = lr->Finish();
  EXPECT_EQ(ls.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_NE(ls.error_message().find("context is 64"), std::string::npos) << ls.error_message();

  // Bad chat requests.
  for (int bad = 0; bad < 2; ++bad) {
    v1::GenerateRequest r = req;
    if (bad == 0) r.set_prompt("also a prompt");
    if (bad == 1) r.mutable_messages(0)->clear_role();
    grpc::ClientContext c;
    auto rd = models_->Generate(&c, r);
    while (rd->Read(&resp)) {
    }
    EXPECT_EQ(rd->Finish().error_code(), grpc::INVALID_ARGUMENT) << bad;
  }
}

}  // namespace
}  // namespace quiver
