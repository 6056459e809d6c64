// The document path and Rag.Ask through a real quiverd: the model2vec
// fixture embeds, stories260K generates. Documents are cut, stored, replaced
// (atomically, also across kill -9) and deleted; Ask streams sources, then
// tokens, then a summary, and the answer cache hits and misses as it should.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common/json.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "quiver/v1/collections.grpc.pb.h"
#include "quiver/v1/models.grpc.pb.h"
#include "quiver/v1/points.grpc.pb.h"
#include "quiver/v1/rag.grpc.pb.h"
#include "tests/testing/quiverd_process.h"
#include "tests/testing/test_util.h"

#define QUIVER_ASSERT_GRPC_OK(expr)                                               \
  do {                                                                            \
    const grpc::Status quiver_s_ = (expr);                                        \
    ASSERT_TRUE(quiver_s_.ok()) << #expr << ": " << quiver_s_.error_code() << " " \
                                << quiver_s_.error_message();                     \
  } while (0)

namespace quiver {
namespace {

using ::testing::HasSubstr;

const std::vector<std::string>& EnglishDocs() {
  static const std::vector<std::string> docs = {
      "# Rivers\n\nThe Han river flows through Seoul. Many bridges cross the Han river. People "
      "ride bicycles along the river banks in the evening.\n\nThe Nile is the longest river in "
      "Africa. It flows north into the Mediterranean sea.",
      "# Animals\n\nCats sleep for most of the day. A cat can jump five times its height.\n\n"
      "Dogs were the first animals people tamed. A dog can smell far better than a human.",
      "# Space\n\nThe moon moves away from the earth by a few centimetres each year. The sun is a "
      "star at the centre of our solar system.\n\nMars has the tallest volcano in the solar "
      "system, Olympus Mons.",
  };
  return docs;
}

const std::vector<std::string>& KoreanDocs() {
  static const std::vector<std::string> docs = {
      "서울은 한국의 수도입니다. 한강이 서울을 가로질러 흐릅니다. 많은 다리가 한강 위에 "
      "있습니다.\n\n부산은 한국에서 두 번째로 큰 도시입니다. 부산에는 아름다운 해변이 있습니다.",
      "김치는 한국의 전통 음식입니다. 배추와 고춧가루로 만듭니다. 겨울이 오기 전에 김장을 "
      "합니다.",
  };
  return docs;
}

std::string JsonString(const std::string& s) {
  std::string out;
  AppendJsonString(&out, s);
  return out;
}

struct AskResult {
  std::vector<v1::AskResponse> events;
  grpc::Status status;
  std::string answer;
  const v1::AskSources* sources = nullptr;
  const v1::AskDone* done = nullptr;
};

class RagTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fixtures_ = testing::FixturePath("model2vec-rs-fixtures");
    llm_ = testing::FixturePath("stories260K");
    if (fixtures_.empty() || llm_.empty()) {
      GTEST_SKIP() << "fixtures model2vec-rs-fixtures and stories260K not found ($QUIVER_FIXTURES)";
    }
  }
  std::vector<std::string> ModelFlags(bool with_llm) const {
    std::vector<std::string> f = {"--embed-model=" + fixtures_ + "/test-model-float32",
                                  "--device=cpu"};
    if (with_llm) {
      f.push_back("--llm-model=" + llm_ + "/stories260K.bin");
      f.push_back("--llm-tokenizer=" + llm_ + "/tok512.bin");
    }
    return f;
  }
  void StartServer(std::vector<std::string> flags) {
    server_ = std::make_unique<testing::QuiverdProcess>(dir_.path() + "/data", std::move(flags));
    QUIVER_ASSERT_OK(server_->Start());
    auto ch = server_->NewChannel();
    collections_ = v1::Collections::NewStub(ch);
    points_ = v1::Points::NewStub(ch);
    rag_ = v1::Rag::NewStub(ch);
  }
  grpc::Status CreateCollection(const std::string& name, uint32_t chunk_tokens,
                                uint32_t overlap_tokens, bool text, bool bind = true) {
    v1::CreateCollectionRequest req;
    req.mutable_config()->set_name(name);
    if (bind) {
      auto* e = req.mutable_config()->mutable_embedding();
      e->set_model("test-model-float32");
      e->set_chunk_tokens(chunk_tokens);
      e->set_overlap_tokens(overlap_tokens);
    } else {
      req.mutable_config()->set_dimension(4);
    }
    if (text) {
      req.mutable_config()->mutable_text()->set_enabled(true);
      req.mutable_config()->mutable_text()->set_analyzer("cjk");
    }
    v1::CreateCollectionResponse resp;
    grpc::ClientContext ctx;
    return collections_->Create(&ctx, req, &resp);
  }
  grpc::Status Upsert(const std::string& collection, const std::string& id, const std::string& text,
                      v1::UpsertDocumentResponse* resp = nullptr, const std::string& lang = "") {
    v1::UpsertDocumentRequest req;
    req.set_collection(collection);
    req.mutable_document()->set_id(id);
    req.mutable_document()->set_text(text);
    if (!lang.empty()) {
      (*req.mutable_document()->mutable_metadata()->mutable_fields())["lang"].set_string_value(
          lang);
    }
    v1::UpsertDocumentResponse ignored;
    grpc::ClientContext ctx;
    return rag_->UpsertDocument(&ctx, req, resp != nullptr ? resp : &ignored);
  }
  void IngestCorpus(const std::string& collection) {
    for (size_t i = 0; i < EnglishDocs().size(); ++i) {
      QUIVER_ASSERT_GRPC_OK(
          Upsert(collection, "en/" + std::to_string(i), EnglishDocs()[i], nullptr, "en"));
    }
    for (size_t i = 0; i < KoreanDocs().size(); ++i) {
      QUIVER_ASSERT_GRPC_OK(
          Upsert(collection, "ko/" + std::to_string(i), KoreanDocs()[i], nullptr, "ko"));
    }
  }
  AskResult Ask(const v1::AskRequest& req) {
    AskResult r;
    grpc::ClientContext ctx;
    auto reader = rag_->Ask(&ctx, req);
    v1::AskResponse ev;
    while (reader->Read(&ev)) r.events.push_back(ev);
    r.status = reader->Finish();
    for (const v1::AskResponse& e : r.events) {
      if (e.has_sources()) r.sources = &e.sources();
      if (e.has_generation()) r.answer += e.generation().text();
      if (e.has_done()) r.done = &e.done();
    }
    return r;
  }
  v1::AskRequest Question(const std::string& collection, const std::string& question) {
    v1::AskRequest q;
    q.set_collection(collection);
    q.set_question(question);
    q.set_top_k(3);
    q.mutable_sampling()->set_max_tokens(48);
    return q;
  }
  std::vector<std::string> ChunkIds(const std::string& collection, const std::string& prefix) {
    v1::ListIdsRequest req;
    req.set_collection(collection);
    req.set_prefix(prefix);
    req.set_limit(1000);
    v1::ListIdsResponse resp;
    grpc::ClientContext ctx;
    EXPECT_TRUE(points_->ListIds(&ctx, req, &resp).ok());
    return {resp.ids().begin(), resp.ids().end()};
  }

  std::string fixtures_, llm_;
  testing::TempDir dir_;
  std::unique_ptr<testing::QuiverdProcess> server_;
  std::unique_ptr<v1::Collections::Stub> collections_;
  std::unique_ptr<v1::Points::Stub> points_;
  std::unique_ptr<v1::Rag::Stub> rag_;
};

TEST_F(RagTest, DocumentsAreCutStoredReplacedAndDeleted) {
  StartServer(ModelFlags(false));
  QUIVER_ASSERT_GRPC_OK(CreateCollection("kb", 16, 4, true));
  v1::UpsertDocumentResponse up;
  QUIVER_ASSERT_GRPC_OK(Upsert("kb", "rivers", EnglishDocs()[0], &up, "en"));
  EXPECT_GT(up.chunk_count(), 2u);
  EXPECT_EQ(up.replaced_chunk_count(), 0u);
  EXPECT_GE(up.tokens(), 40u);
  std::vector<std::string> ids = ChunkIds("kb", "rivers#");
  ASSERT_EQ(ids.size(), up.chunk_count());

  // Every chunk is a record with the document's metadata, its place in the
  // document and its text.
  v1::FetchRequest fr;
  fr.set_collection("kb");
  for (const std::string& id : ids) fr.add_ids(id);
  v1::FetchResponse fetched;
  {
    grpc::ClientContext ctx;
    QUIVER_ASSERT_GRPC_OK(points_->Fetch(&ctx, fr, &fetched));
  }
  ASSERT_EQ(fetched.records_size(), static_cast<int>(ids.size()));
  for (const v1::Record& r : fetched.records()) {
    const auto& f = r.metadata().fields();
    EXPECT_EQ(f.at("document_id").string_value(), "rivers");
    EXPECT_EQ(f.at("lang").string_value(), "en");
    EXPECT_EQ(f.at("heading").string_value(), "Rivers");
    const size_t begin = static_cast<size_t>(f.at("start_byte").number_value());
    const size_t end = static_cast<size_t>(f.at("end_byte").number_value());
    EXPECT_EQ(EnglishDocs()[0].substr(begin, end - begin), r.text());
    EXPECT_EQ(r.id(), "rivers#" + std::to_string(static_cast<int>(f.at("chunk").number_value())));
  }

  // The whole text comes back.
  v1::GetDocumentRequest gr;
  gr.set_collection("kb");
  gr.set_id("rivers");
  v1::GetDocumentResponse got;
  {
    grpc::ClientContext ctx;
    QUIVER_ASSERT_GRPC_OK(rag_->GetDocument(&ctx, gr, &got));
  }
  EXPECT_EQ(got.document().text(), EnglishDocs()[0]);
  EXPECT_EQ(got.document().chunk_count(), up.chunk_count());
  EXPECT_EQ(got.document().metadata().fields().at("lang").string_value(), "en");

  // Korean text is cut too.
  v1::UpsertDocumentResponse ko;
  QUIVER_ASSERT_GRPC_OK(Upsert("kb", "seoul", KoreanDocs()[0], &ko, "ko"));
  EXPECT_GE(ko.chunk_count(), 2u);

  // A shorter version replaces every chunk; the extra old ones are gone.
  v1::UpsertDocumentResponse up2;
  QUIVER_ASSERT_GRPC_OK(Upsert("kb", "rivers", "The Han river flows through Seoul.", &up2));
  EXPECT_EQ(up2.chunk_count(), 1u);
  EXPECT_EQ(up2.replaced_chunk_count(), up.chunk_count());
  EXPECT_EQ(ChunkIds("kb", "rivers#"), std::vector<std::string>{"rivers#0"});

  v1::ListDocumentsRequest lr;
  lr.set_collection("kb");
  lr.set_limit(1);
  v1::ListDocumentsResponse listed;
  {
    grpc::ClientContext ctx;
    QUIVER_ASSERT_GRPC_OK(rag_->ListDocuments(&ctx, lr, &listed));
  }
  ASSERT_EQ(listed.documents_size(), 1);
  EXPECT_EQ(listed.documents(0).id(), "rivers");
  EXPECT_TRUE(listed.documents(0).text().empty());
  lr.set_pagination_token(listed.next_pagination_token());
  {
    grpc::ClientContext ctx;
    QUIVER_ASSERT_GRPC_OK(rag_->ListDocuments(&ctx, lr, &listed));
  }
  ASSERT_EQ(listed.documents_size(), 1);
  EXPECT_EQ(listed.documents(0).id(), "seoul");
  EXPECT_TRUE(listed.next_pagination_token().empty());

  v1::DeleteDocumentRequest dr;
  dr.set_collection("kb");
  dr.set_id("seoul");
  v1::DeleteDocumentResponse deleted;
  {
    grpc::ClientContext ctx;
    QUIVER_ASSERT_GRPC_OK(rag_->DeleteDocument(&ctx, dr, &deleted));
  }
  EXPECT_EQ(deleted.deleted_chunk_count(), ko.chunk_count());
  EXPECT_TRUE(ChunkIds("kb", "seoul#").empty());
  {
    grpc::ClientContext ctx;
    EXPECT_EQ(rag_->DeleteDocument(&ctx, dr, &deleted).error_code(), grpc::NOT_FOUND);
  }
  gr.set_id("seoul");
  {
    grpc::ClientContext ctx;
    EXPECT_EQ(rag_->GetDocument(&ctx, gr, &got).error_code(), grpc::NOT_FOUND);
  }
}

TEST_F(RagTest, BadDocumentsAndQuestionsGetClearErrors) {
  std::vector<std::string> flags = ModelFlags(false);
  flags.push_back("--max_document_bytes=2000");
  StartServer(flags);
  QUIVER_ASSERT_GRPC_OK(CreateCollection("kb", 32, 8, false));
  QUIVER_ASSERT_GRPC_OK(CreateCollection("plain", 0, 0, false, /*bind=*/false));
  grpc::Status s = Upsert("nope", "a", "text");
  EXPECT_EQ(s.error_code(), grpc::NOT_FOUND);
  s = Upsert("plain", "a", "text");
  EXPECT_EQ(s.error_code(), grpc::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("no embedding model"));
  s = Upsert("kb", "big", std::string(3000, 'a'));
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("--max_document_bytes"));
  s = Upsert("kb", "", "text");
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
  s = Upsert("kb", "blank", " \n\n ");
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
  v1::UpsertDocumentRequest req;
  req.set_collection("kb");
  req.mutable_document()->set_id("r");
  req.mutable_document()->set_text("some text");
  (*req.mutable_document()->mutable_metadata()->mutable_fields())["document_id"].set_string_value(
      "x");
  v1::UpsertDocumentResponse resp;
  {
    grpc::ClientContext ctx;
    s = rag_->UpsertDocument(&ctx, req, &resp);
  }
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("reserved"));
  // chunk_tokens out of range at creation.
  EXPECT_EQ(CreateCollection("tiny", 4, 0, false).error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(CreateCollection("wide", 64, 40, false).error_code(), grpc::INVALID_ARGUMENT);

  AskResult r = Ask(Question("nope", "where?"));
  EXPECT_EQ(r.status.error_code(), grpc::NOT_FOUND);
  EXPECT_TRUE(r.events.empty());
  r = Ask(Question("kb", ""));
  EXPECT_EQ(r.status.error_code(), grpc::INVALID_ARGUMENT);
  v1::AskRequest q = Question("kb", "where?");
  q.set_prompt_template("no placeholders");
  r = Ask(q);
  EXPECT_EQ(r.status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(r.status.error_message(), HasSubstr("{context}"));
  q = Question("kb", "where?");
  q.set_rerank(true);
  r = Ask(q);
  EXPECT_EQ(r.status.error_code(), grpc::FAILED_PRECONDITION);
  EXPECT_THAT(r.status.error_message(), HasSubstr("reranker"));
  q = Question("kb", "where?");
  q.set_llm_model("gpt-7");
  r = Ask(q);
  EXPECT_EQ(r.status.error_code(), grpc::NOT_FOUND);
  EXPECT_THAT(r.status.error_message(), HasSubstr("gpt-7"));
  q = Question("kb", "where?");
  q.set_mode(v1::RETRIEVAL_MODE_TEXT);
  r = Ask(q);
  EXPECT_EQ(r.status.error_code(), grpc::FAILED_PRECONDITION);
  EXPECT_THAT(r.status.error_message(), HasSubstr("text index"));
}

TEST_F(RagTest, WithoutAGeneratorAskSendsTheSourcesThenSaysWhy) {
  StartServer(ModelFlags(false));
  QUIVER_ASSERT_GRPC_OK(CreateCollection("kb", 24, 4, true));
  IngestCorpus("kb");
  AskResult r = Ask(Question("kb", "Which river flows through Seoul?"));
  EXPECT_EQ(r.status.error_code(), grpc::FAILED_PRECONDITION);
  EXPECT_THAT(r.status.error_message(), HasSubstr("generation is unavailable"));
  ASSERT_EQ(r.events.size(), 1u);
  ASSERT_NE(r.sources, nullptr);
  ASSERT_EQ(r.sources->sources_size(), 3);
  EXPECT_EQ(r.sources->sources(0).document_id(), "en/0");
  EXPECT_THAT(r.sources->sources(0).text(), HasSubstr("Han river"));
  // Filters apply to the chunks' metadata: the document's and the path's.
  // (Korean through BM25 with CJK bigrams: the fixture's embedder is
  // English-only.)
  v1::AskRequest q = Question("kb", "한강은 어디에 흐릅니까?");
  q.set_mode(v1::RETRIEVAL_MODE_TEXT);
  (*q.mutable_filter()->mutable_fields())["lang"].set_string_value("ko");
  r = Ask(q);
  ASSERT_NE(r.sources, nullptr);
  ASSERT_GT(r.sources->sources_size(), 0);
  for (const v1::AskSource& s : r.sources->sources()) {
    EXPECT_EQ(s.document_id().substr(0, 3), "ko/");
  }
  // Namespaces keep documents apart.
  v1::UpsertDocumentRequest up;
  up.set_collection("kb");
  up.set_namespace_("team-b");
  up.mutable_document()->set_id("b/rivers");
  up.mutable_document()->set_text("The Thames flows through London.");
  v1::UpsertDocumentResponse upr;
  {
    grpc::ClientContext ctx;
    QUIVER_ASSERT_GRPC_OK(rag_->UpsertDocument(&ctx, up, &upr));
  }
  v1::AskRequest nsq = Question("kb", "Which river flows through London?");
  nsq.set_namespace_("team-b");
  AskResult in_b = Ask(nsq);
  ASSERT_NE(in_b.sources, nullptr);
  ASSERT_EQ(in_b.sources->sources_size(), 1);
  EXPECT_EQ(in_b.sources->sources(0).document_id(), "b/rivers");
  AskResult in_default = Ask(Question("kb", "Which river flows through London?"));
  ASSERT_NE(in_default.sources, nullptr);
  for (const v1::AskSource& s : in_default.sources->sources()) {
    EXPECT_NE(s.document_id(), "b/rivers");
  }
  bool han = false;
  for (const v1::AskSource& s : r.sources->sources()) {
    han |= s.text().find("한강") != std::string::npos;
    // Chunks start at a word, never at punctuation.
    EXPECT_NE(s.text()[0], '.') << s.text();
  }
  EXPECT_TRUE(han);
}

TEST_F(RagTest, AskStreamsSourcesTokensAndASummaryAndCachesTheAnswer) {
  std::vector<std::string> flags = ModelFlags(true);
  flags.push_back("--semantic_cache_threshold=0.9");
  StartServer(flags);
  QUIVER_ASSERT_GRPC_OK(CreateCollection("kb", 24, 4, true));
  IngestCorpus("kb");

  const v1::AskRequest q = Question("kb", "Which river flows through Seoul?");
  AskResult r = Ask(q);
  QUIVER_ASSERT_GRPC_OK(r.status);
  // Order: sources first, then at least one token, then the summary last.
  ASSERT_GE(r.events.size(), 3u);
  EXPECT_TRUE(r.events.front().has_sources());
  EXPECT_TRUE(r.events.back().has_done());
  for (size_t i = 1; i + 1 < r.events.size(); ++i) EXPECT_TRUE(r.events[i].has_generation());
  ASSERT_NE(r.sources, nullptr);
  ASSERT_GT(r.sources->sources_size(), 0);
  for (int i = 0; i < r.sources->sources_size(); ++i) {
    const v1::AskSource& s = r.sources->sources(i);
    EXPECT_EQ(s.number(), static_cast<uint32_t>(i + 1));
    EXPECT_EQ(s.record_id(), s.document_id() + "#" + std::to_string(s.chunk()));
    EXPECT_FALSE(s.text().empty());
    EXPECT_TRUE(s.dense_score() != 0 || s.text_score() != 0);
  }
  EXPECT_EQ(r.sources->sources(0).document_id(), "en/0");
  ASSERT_NE(r.done, nullptr);
  EXPECT_FALSE(r.answer.empty());
  EXPECT_GT(r.done->prompt_tokens(), 50u);
  EXPECT_GT(r.done->completion_tokens(), 0u);
  EXPECT_LE(r.done->completion_tokens(), 48u);
  EXPECT_EQ(r.done->cache(), v1::CACHE_STATUS_MISS);
  EXPECT_EQ(r.done->model(), "stories260K");
  EXPECT_GT(r.done->timings().embed_ms(), 0);
  EXPECT_GT(r.done->timings().retrieve_ms(), 0);
  EXPECT_GT(r.done->timings().prefill_ms(), 0);
  EXPECT_GE(r.done->timings().total_ms(), r.done->timings().prefill_ms());
  for (uint32_t n : r.done->cited()) EXPECT_LE(n, static_cast<uint32_t>(r.sources->sources_size()));

  // The same question again: the stored answer, the same tokens.
  AskResult again = Ask(q);
  QUIVER_ASSERT_GRPC_OK(again.status);
  ASSERT_NE(again.done, nullptr);
  EXPECT_EQ(again.done->cache(), v1::CACHE_STATUS_EXACT_HIT);
  EXPECT_EQ(again.answer, r.answer);
  EXPECT_EQ(again.done->completion_tokens(), r.done->completion_tokens());
  ASSERT_NE(again.sources, nullptr);
  EXPECT_EQ(again.sources->sources_size(), r.sources->sources_size());
  // A near-identical question: the semantic layer.
  AskResult similar = Ask(Question("kb", "Which river flows through Seoul"));
  QUIVER_ASSERT_GRPC_OK(similar.status);
  ASSERT_NE(similar.done, nullptr);
  EXPECT_EQ(similar.done->cache(), v1::CACHE_STATUS_SEMANTIC_HIT);
  EXPECT_EQ(similar.answer, r.answer);
  // no_cache generates afresh (greedy: the same text).
  v1::AskRequest fresh = q;
  fresh.set_no_cache(true);
  AskResult bypass = Ask(fresh);
  QUIVER_ASSERT_GRPC_OK(bypass.status);
  EXPECT_EQ(bypass.done->cache(), v1::CACHE_STATUS_BYPASS);
  EXPECT_EQ(bypass.answer, r.answer);
  // The same prompt again: the prefix KV cache supplied all of it but the
  // last block's worth.
  EXPECT_GT(bypass.done->cached_prompt_tokens(), 0u);
  EXPECT_GE(bypass.done->cached_prompt_tokens() + 16, bypass.done->prompt_tokens());
  // Sampled answers without a seed are not cached.
  v1::AskRequest sampled = q;
  sampled.mutable_sampling()->set_temperature(1.0f);
  EXPECT_EQ(Ask(sampled).done->cache(), v1::CACHE_STATUS_BYPASS);

  // The cache survives a restart... (The stubs go first: quiverd's graceful
  // shutdown waits seconds for connected idle clients to leave.)
  collections_.reset();
  points_.reset();
  rag_.reset();
  server_->Stop(SIGTERM);
  StartServer(flags);
  AskResult after = Ask(q);
  QUIVER_ASSERT_GRPC_OK(after.status);
  EXPECT_EQ(after.done->cache(), v1::CACHE_STATUS_EXACT_HIT);
  EXPECT_EQ(after.answer, r.answer);
  // ...and misses once the collection changes.
  QUIVER_ASSERT_GRPC_OK(Upsert("kb", "extra", "Tigers are large cats with stripes."));
  AskResult changed = Ask(q);
  QUIVER_ASSERT_GRPC_OK(changed.status);
  EXPECT_EQ(changed.done->cache(), v1::CACHE_STATUS_MISS);
  EXPECT_EQ(changed.answer, r.answer);  // Greedy, and the same sources rank first.
}

TEST_F(RagTest, GenerateUsesTheAnswerCacheWhenAsked) {
  StartServer(ModelFlags(true));
  auto models = v1::Models::NewStub(server_->NewChannel());
  auto generate = [&](const v1::GenerateRequest& req, bool* cached) {
    grpc::ClientContext ctx;
    auto reader = models->Generate(&ctx, req);
    v1::GenerateResponse resp;
    std::string text;
    *cached = false;
    while (reader->Read(&resp)) {
      text += resp.text();
      *cached |= resp.cached();
    }
    EXPECT_TRUE(reader->Finish().ok());
    return text;
  };
  v1::GenerateRequest req;
  req.set_prompt("Once upon a time");
  req.mutable_sampling()->set_max_tokens(30);
  req.set_use_cache(true);
  bool cached = true;
  const std::string first = generate(req, &cached);
  EXPECT_FALSE(cached);
  EXPECT_FALSE(first.empty());
  EXPECT_EQ(generate(req, &cached), first);
  EXPECT_TRUE(cached);
  // Not asked for, or sampled without a seed: generated afresh.
  req.set_use_cache(false);
  EXPECT_EQ(generate(req, &cached), first);
  EXPECT_FALSE(cached);
  req.set_use_cache(true);
  req.mutable_sampling()->set_temperature(1.0f);
  generate(req, &cached);
  EXPECT_FALSE(cached);
  generate(req, &cached);
  EXPECT_FALSE(cached);
  // A fixed seed makes a sampled answer cacheable.
  req.mutable_sampling()->set_seed(42);
  const std::string seeded = generate(req, &cached);
  EXPECT_FALSE(cached);
  EXPECT_EQ(generate(req, &cached), seeded);
  EXPECT_TRUE(cached);
}

TEST_F(RagTest, AskStopsAtTheDeadline) {
  StartServer(ModelFlags(true));
  QUIVER_ASSERT_GRPC_OK(CreateCollection("kb", 24, 4, true));
  IngestCorpus("kb");
  v1::AskRequest q = Question("kb", "Which river flows through Seoul?");
  q.set_top_k(1);
  q.mutable_sampling()->set_max_tokens(300);
  q.mutable_sampling()->set_temperature(1.0f);
  q.mutable_sampling()->set_seed(3);
  q.set_no_cache(true);
  // Without a deadline this answer is long...
  AskResult full = Ask(q);
  QUIVER_ASSERT_GRPC_OK(full.status);
  ASSERT_GT(full.done->completion_tokens(), 150u);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(15));  // ...cut.
  auto reader = rag_->Ask(&ctx, q);
  v1::AskResponse ev;
  while (reader->Read(&ev)) {
  }
  const grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::DEADLINE_EXCEEDED) << s.error_message();
  // ...and the server goes on serving.
  AskResult r = Ask(q);
  QUIVER_ASSERT_GRPC_OK(r.status);
  EXPECT_EQ(r.answer, full.answer);
}

TEST_F(RagTest, AskTakesTemplatesHistoryAndTextOnlyRetrieval) {
  StartServer(ModelFlags(true));
  QUIVER_ASSERT_GRPC_OK(CreateCollection("kb", 24, 4, true));
  IngestCorpus("kb");
  v1::AskRequest q = Question("kb", "tallest volcano");
  q.set_mode(v1::RETRIEVAL_MODE_TEXT);
  q.set_prompt_template("Facts:\n{context}\nQ: {question}\nA:");
  auto* h = q.add_history();
  h->set_role("user");
  h->set_content("Tell me about space.");
  h = q.add_history();
  h->set_role("assistant");
  h->set_content("Space is big.");
  q.set_no_cache(true);
  AskResult r = Ask(q);
  QUIVER_ASSERT_GRPC_OK(r.status);
  ASSERT_NE(r.sources, nullptr);
  ASSERT_GT(r.sources->sources_size(), 0);
  EXPECT_EQ(r.sources->sources(0).document_id(), "en/2");
  EXPECT_EQ(r.sources->sources(0).dense_score(), 0);
  EXPECT_GT(r.sources->sources(0).text_score(), 0);
  // A context budget smaller than one source packs none.
  q.set_context_tokens(5);
  r = Ask(q);
  QUIVER_ASSERT_GRPC_OK(r.status);
  ASSERT_NE(r.sources, nullptr);
  EXPECT_EQ(r.sources->sources_size(), 0);
  h->set_role("system");
  r = Ask(q);
  EXPECT_EQ(r.status.error_code(), grpc::INVALID_ARGUMENT);
}

TEST_F(RagTest, KillDuringReplacesLeavesOneWholeVersion) {
  StartServer(ModelFlags(false));
  QUIVER_ASSERT_GRPC_OK(CreateCollection("kb", 16, 0, false));
  // Two versions with different chunk counts, each chunk marked.
  auto version = [](const std::string& mark, int sentences) {
    std::string s;
    for (int i = 0; i < sentences; ++i) {
      s += mark + " sentence number " + std::to_string(i) + " tells a small story.\n\n";
    }
    return s;
  };
  const std::string a = version("alpha", 30), b = version("beta", 11);
  QUIVER_ASSERT_GRPC_OK(Upsert("kb", "doc", a));
  std::atomic<bool> stop{false};
  std::atomic<int> acknowledged{0};
  std::thread writer([&] {
    for (int i = 0; !stop.load(); ++i) {
      if (Upsert("kb", "doc", i % 2 == 0 ? b : a).ok()) ++acknowledged;
    }
  });
  while (acknowledged.load() < 6) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  server_->Stop(SIGKILL);
  stop = true;
  writer.join();
  StartServer(ModelFlags(false));
  v1::GetDocumentRequest gr;
  gr.set_collection("kb");
  gr.set_id("doc");
  v1::GetDocumentResponse got;
  {
    grpc::ClientContext ctx;
    QUIVER_ASSERT_GRPC_OK(rag_->GetDocument(&ctx, gr, &got));
  }
  const bool is_a = got.document().text() == a;
  ASSERT_TRUE(is_a || got.document().text() == b);
  const std::string mark = is_a ? "alpha" : "beta";
  std::vector<std::string> ids = ChunkIds("kb", "doc#");
  ASSERT_EQ(ids.size(), got.document().chunk_count());
  v1::FetchRequest fr;
  fr.set_collection("kb");
  for (const std::string& id : ids) fr.add_ids(id);
  v1::FetchResponse fetched;
  grpc::ClientContext ctx;
  QUIVER_ASSERT_GRPC_OK(points_->Fetch(&ctx, fr, &fetched));
  for (const v1::Record& r : fetched.records()) {
    EXPECT_THAT(r.text(), HasSubstr(mark)) << r.id();
    EXPECT_THAT(r.text(), ::testing::Not(HasSubstr(is_a ? "beta" : "alpha"))) << r.id();
  }
}

TEST_F(RagTest, TheCliCreatesIngestsAsksAndManagesDocuments) {
  StartServer(ModelFlags(true));
  auto cli = [&](std::vector<std::string> args, std::string* out) {
    args.insert(args.begin(), "--addr=" + server_->address());
    return testing::RunCli(args, out);
  };
  std::string out;
  ASSERT_EQ(cli({"collections", "create", "kb", "--embedding-model=test-model-float32",
                 "--chunk-tokens=24", "--overlap-tokens=4", "--text-analyzer=cjk"},
                &out),
            0)
      << out;
  EXPECT_EQ(cli({"collections", "create", "x", "--chunk-tokens=24", "--dimension=3"}, &out), 2);
  EXPECT_THAT(out, HasSubstr("--embedding-model"));

  // A directory of Markdown, text and JSONL (one bad line).
  const std::string corpus = dir_.path() + "/corpus";
  std::filesystem::create_directories(corpus + "/sub");
  auto write = [](const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
  };
  write(corpus + "/rivers.md", EnglishDocs()[0]);
  write(corpus + "/sub/animals.txt", EnglishDocs()[1]);
  write(corpus + "/skip.bin", "not a document");
  write(corpus + "/z.jsonl", "{\"id\": \"ko-1\", \"text\": \"" + KoreanDocs()[0].substr(0, 60) +
                                 "\", \"metadata\": {\"lang\": \"ko\"}}\n"
                                 "{\"id\": \"bad\"}\n");
  EXPECT_EQ(cli({"ingest", "kb", corpus, "--parallel=1", "--progress=never"}, &out), 1);
  EXPECT_THAT(out, HasSubstr("z.jsonl:2"));
  EXPECT_THAT(out, HasSubstr("--resume"));
  write(corpus + "/z.jsonl", "{\"id\": \"ko-1\", \"text\": \"" + KoreanDocs()[0].substr(0, 60) +
                                 "\", \"metadata\": {\"lang\": \"ko\"}}\n"
                                 "{\"id\": \"space\", \"text\": " +
                                 JsonString(EnglishDocs()[2]) + "}\n");
  ASSERT_EQ(cli({"ingest", "kb", corpus, "--resume", "--progress=never"}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("ingested 1 documents"));
  EXPECT_THAT(out, HasSubstr("3 done before, skipped"));
  EXPECT_FALSE(std::filesystem::exists(corpus + ".quiver-ingest-kb"));

  ASSERT_EQ(cli({"documents", "list", "kb"}, &out), 0) << out;
  for (const char* id : {"rivers.md", "sub/animals.txt", "ko-1", "space"}) {
    EXPECT_THAT(out, HasSubstr(id));
  }
  ASSERT_EQ(cli({"documents", "get", "kb", "rivers.md"}, &out), 0) << out;
  EXPECT_EQ(out, EnglishDocs()[0] + "\n");

  ASSERT_EQ(
      cli({"ask", "kb", "Which river flows through Seoul?", "--top-k=2", "--max-tokens=24"}, &out),
      0)
      << out;
  EXPECT_THAT(out, HasSubstr("[1] rivers.md #"));
  EXPECT_THAT(out, HasSubstr("(Rivers)"));
  EXPECT_THAT(out, HasSubstr("prompt +"));
  EXPECT_THAT(out, HasSubstr("cache miss"));
  EXPECT_THAT(out, HasSubstr("retrieve"));
  ASSERT_EQ(
      cli({"ask", "kb", "Which river flows through Seoul?", "--top-k=2", "--max-tokens=24"}, &out),
      0);
  EXPECT_THAT(out, HasSubstr("cache exact hit"));
  ASSERT_EQ(cli({"--json", "ask", "kb", "cats", "--filter={\"lang\": \"ko\"}", "--no-cache",
                 "--max-tokens=8"},
                &out),
            0)
      << out;
  EXPECT_THAT(out, HasSubstr("\"documentId\":\"ko-1\""));
  EXPECT_THAT(out, ::testing::Not(HasSubstr("animals")));
  EXPECT_THAT(out, HasSubstr("\"done\""));

  ASSERT_EQ(cli({"documents", "delete", "kb", "sub/animals.txt"}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("deleted document sub/animals.txt"));
  EXPECT_EQ(cli({"documents", "get", "kb", "sub/animals.txt"}, &out), 1);
  EXPECT_THAT(out, HasSubstr("NOT_FOUND"));
}

}  // namespace
}  // namespace quiver
