// quiverd as a user sees it: a real process on a loopback port, driven over
// gRPC.
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <map>
#include <random>

#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "quiver/v1/admin.grpc.pb.h"
#include "quiver/v1/collections.grpc.pb.h"
#include "quiver/v1/models.grpc.pb.h"
#include "quiver/v1/points.grpc.pb.h"
#include "quiver/v1/rag.grpc.pb.h"
#include "quiver/v1/search.grpc.pb.h"
#include "tests/testing/quiverd_process.h"
#include "tests/testing/test_util.h"

namespace quiver {
namespace {

using ::testing::HasSubstr;

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<testing::QuiverdProcess>(dir_.path() + "/data");
    QUIVER_ASSERT_OK(server_->Start());
    Connect();
    v1::CreateCollectionRequest req;
    req.mutable_config()->set_name("docs");
    req.mutable_config()->set_dimension(4);
    req.mutable_config()->set_metric(v1::METRIC_COSINE);
    v1::CreateCollectionResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(collections_->Create(&ctx, req, &resp).ok());
  }
  void Connect() {
    auto ch = server_->NewChannel();
    collections_ = v1::Collections::NewStub(ch);
    points_ = v1::Points::NewStub(ch);
    search_ = v1::Search::NewStub(ch);
    admin_ = v1::Admin::NewStub(ch);
    models_ = v1::Models::NewStub(ch);
    rag_ = v1::Rag::NewStub(ch);
    channel_ = ch;
  }

  static v1::Record Rec(const std::string& id, std::vector<float> v,
                        const std::string& genre = "") {
    v1::Record r;
    r.set_id(id);
    for (float x : v) r.add_values(x);
    if (!genre.empty()) (*r.mutable_metadata()->mutable_fields())["genre"].set_string_value(genre);
    return r;
  }

  grpc::Status Upsert(std::vector<v1::Record> recs, const std::string& collection = "docs",
                      const std::string& ns = "") {
    v1::UpsertRequest req;
    req.set_collection(collection);
    req.set_namespace_(ns);
    for (auto& r : recs) *req.add_records() = r;
    v1::UpsertResponse resp;
    grpc::ClientContext ctx;
    return points_->Upsert(&ctx, req, &resp);
  }

  grpc::Status Query(v1::QueryRequest req, v1::QueryResponse* resp) {
    if (req.collection().empty()) req.set_collection("docs");
    grpc::ClientContext ctx;
    return search_->Query(&ctx, req, resp);
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::QuiverdProcess> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Collections::Stub> collections_;
  std::unique_ptr<v1::Points::Stub> points_;
  std::unique_ptr<v1::Search::Stub> search_;
  std::unique_ptr<v1::Admin::Stub> admin_;
  std::unique_ptr<v1::Models::Stub> models_;
  std::unique_ptr<v1::Rag::Stub> rag_;
};

TEST(QuiverdTest, HelpListsEveryFlagWithItsHelp) {
  std::string out;
  FILE* p = popen((testing::QuiverdPath() + " --help 2>&1").c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  pclose(p);
  for (const char* flag : {"--data_dir", "--listen", "--sync", "--device", "--embed_model",
                           "--llm_model", "--max_batch_records", "--max_top_k", "--config"}) {
    EXPECT_NE(out.find(flag), std::string::npos) << flag << " missing from:\n" << out;
  }
  EXPECT_NE(out.find("RocksDB data directory"), std::string::npos) << out;
  EXPECT_EQ(out.find("No flags matched"), std::string::npos) << out;
}

TEST_F(ServerTest, UpsertQueryFetchUpdateDeleteRoundTrip) {
  ASSERT_TRUE(Upsert({Rec("a", {1, 0, 0, 0}, "drama"), Rec("b", {0, 1, 0, 0}, "comedy"),
                      Rec("c", {1, 1, 0, 0}, "drama")})
                  .ok());
  v1::QueryRequest q;
  for (float x : {1.f, 0.f, 0.f, 0.f}) q.add_vector(x);
  q.set_top_k(10);
  q.set_include_metadata(true);
  q.set_include_values(true);
  (*q.mutable_filter()->mutable_fields())["genre"].set_string_value("drama");
  v1::QueryResponse resp;
  ASSERT_TRUE(Query(q, &resp).ok());
  ASSERT_EQ(resp.matches_size(), 2);
  EXPECT_EQ(resp.matches(0).id(), "a");
  EXPECT_FLOAT_EQ(resp.matches(0).score(), 1.0f);
  EXPECT_EQ(resp.matches(0).values_size(), 4);
  EXPECT_EQ(resp.matches(0).metadata().fields().at("genre").string_value(), "drama");
  EXPECT_EQ(resp.matches(1).id(), "c");

  v1::UpdateRequest u;
  u.set_collection("docs");
  u.set_id("b");
  (*u.mutable_set_metadata()->mutable_fields())["genre"].set_string_value("drama");
  v1::UpdateResponse ur;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(points_->Update(&ctx, u, &ur).ok());
  }
  resp.Clear();
  ASSERT_TRUE(Query(q, &resp).ok());
  EXPECT_EQ(resp.matches_size(), 3);

  v1::DeleteRequest d;
  d.set_collection("docs");
  d.mutable_ids()->add_ids("a");
  v1::DeleteResponse dr;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(points_->Delete(&ctx, d, &dr).ok());
  }
  EXPECT_EQ(dr.deleted_count(), 1u);
  v1::FetchRequest f;
  f.set_collection("docs");
  f.add_ids("a");
  f.add_ids("b");
  v1::FetchResponse fr;
  grpc::ClientContext ctx;
  ASSERT_TRUE(points_->Fetch(&ctx, f, &fr).ok());
  ASSERT_EQ(fr.records_size(), 1);
  EXPECT_EQ(fr.records(0).id(), "b");
  EXPECT_THAT(fr.missing_ids(), ::testing::ElementsAre("a"));
}

TEST_F(ServerTest, ValidationErrorsComeBackAsInvalidArgumentWithMessages) {
  struct Case {
    std::vector<v1::Record> recs;
    std::string collection = "docs";
    std::string ns;
    grpc::StatusCode code;
    std::string needle;
  };
  v1::Record nan = Rec("n", {1, 0, 0, 0});
  nan.set_values(1, std::numeric_limits<float>::quiet_NaN());
  v1::Record bad_md = Rec("m", {1, 0, 0, 0});
  (*bad_md.mutable_metadata()->mutable_fields())["x"].mutable_struct_value();
  v1::Record huge_md = Rec("h", {1, 0, 0, 0});
  (*huge_md.mutable_metadata()->mutable_fields())["x"].set_string_value(std::string(50000, 'x'));
  std::vector<Case> cases = {
      {{Rec("a", {1, 2, 3})},
       "docs",
       "",
       grpc::INVALID_ARGUMENT,
       "vector for id \"a\" has 3 values; collection \"docs\" expects 4"},
      {{nan}, "docs", "", grpc::INVALID_ARGUMENT, "non-finite"},
      {{Rec("", {1, 0, 0, 0})}, "docs", "", grpc::INVALID_ARGUMENT, "id must not be empty"},
      {{Rec(std::string(600, 'x'), {1, 0, 0, 0})}, "docs", "", grpc::INVALID_ARGUMENT, "600 bytes"},
      {{Rec("d", {1, 0, 0, 0}), Rec("d", {0, 1, 0, 0})},
       "docs",
       "",
       grpc::INVALID_ARGUMENT,
       "more than once"},
      {{bad_md}, "docs", "", grpc::INVALID_ARGUMENT, "record \"m\""},
      {{huge_md}, "docs", "", grpc::INVALID_ARGUMENT, "limit is 40960"},
      {{Rec("z", {0, 0, 0, 0})}, "docs", "", grpc::INVALID_ARGUMENT, "all zeros"},
      {{Rec("a", {1, 0, 0, 0})},
       "ghost",
       "",
       grpc::NOT_FOUND,
       "collection \"ghost\" does not exist"},
      {{Rec("a", {1, 0, 0, 0})},
       "docs",
       std::string(300, 'n'),
       grpc::INVALID_ARGUMENT,
       "namespace"},
      {{}, "docs", "", grpc::INVALID_ARGUMENT, "no records"},
  };
  for (const Case& c : cases) {
    grpc::Status s = Upsert(c.recs, c.collection, c.ns);
    EXPECT_EQ(s.error_code(), c.code) << c.needle << ": " << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr(c.needle));
  }

  v1::QueryRequest q;
  q.add_vector(1);
  q.set_top_k(5);
  v1::QueryResponse resp;
  grpc::Status s = Query(q, &resp);
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
  q.clear_vector();
  for (int i = 0; i < 4; ++i) q.add_vector(1);
  q.set_top_k(0);
  EXPECT_EQ(Query(q, &resp).error_code(), grpc::INVALID_ARGUMENT);
  q.set_top_k(10001);
  EXPECT_THAT(Query(q, &resp).error_message(), HasSubstr("1..10000"));
  q.set_top_k(5);
  q.set_namespace_("ghost");
  EXPECT_EQ(Query(q, &resp).error_code(), grpc::NOT_FOUND);
  q.set_namespace_("");
  (*q.mutable_filter()->mutable_fields())["x"].mutable_struct_value()->mutable_fields()->insert(
      {"$bogus", google::protobuf::Value()});
  EXPECT_THAT(Query(q, &resp).error_message(), HasSubstr("$bogus"));

  // A request over the message limit is refused by gRPC itself.
  v1::UpsertRequest big;
  big.set_collection("docs");
  v1::Record* r = big.add_records();
  r->set_id("big");
  r->set_text(std::string(70 << 20, 'x'));
  v1::UpsertResponse br;
  grpc::ClientContext ctx;
  EXPECT_EQ(points_->Upsert(&ctx, big, &br).error_code(), grpc::RESOURCE_EXHAUSTED);

  v1::CreateCollectionRequest cc;
  cc.mutable_config()->set_name("docs");
  cc.mutable_config()->set_dimension(4);
  v1::CreateCollectionResponse ccr;
  grpc::ClientContext ctx2;
  EXPECT_EQ(collections_->Create(&ctx2, cc, &ccr).error_code(), grpc::ALREADY_EXISTS);
  cc.mutable_config()->set_name("bad name!");
  grpc::ClientContext ctx3;
  EXPECT_EQ(collections_->Create(&ctx3, cc, &ccr).error_code(), grpc::INVALID_ARGUMENT);
}

TEST_F(ServerTest, FailedBatchIsAtomic) {
  ASSERT_FALSE(Upsert({Rec("ok1", {1, 0, 0, 0}), Rec("ok2", {0, 1, 0, 0}), Rec("bad", {1})}).ok());
  v1::DescribeStatsRequest sr;
  sr.set_collection("docs");
  v1::DescribeStatsResponse stats;
  grpc::ClientContext ctx;
  ASSERT_TRUE(points_->DescribeStats(&ctx, sr, &stats).ok());
  EXPECT_EQ(stats.total_record_count(), 0u);
}

TEST_F(ServerTest, UnloadedModelsAndBadAsksAnswerWithAReason) {
  grpc::ClientContext c2;
  v1::GenerateResponse gr;
  auto reader = models_->Generate(&c2, v1::GenerateRequest());
  while (reader->Read(&gr)) {
  }
  grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("--llm-model"));
  grpc::ClientContext c3;
  auto ask = rag_->Ask(&c3, v1::AskRequest());
  v1::AskResponse ar;
  EXPECT_FALSE(ask->Read(&ar));
  s = ask->Finish();
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("question"));
  // A collection bound to no embedding model cannot answer questions.
  v1::AskRequest q;
  q.set_collection("docs");
  q.set_question("what?");
  grpc::ClientContext c4;
  ask = rag_->Ask(&c4, q);
  EXPECT_FALSE(ask->Read(&ar));
  s = ask->Finish();
  EXPECT_EQ(s.error_code(), grpc::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("no embedding model"));
}

TEST_F(ServerTest, TextQueriesUseBm25OnTextEnabledCollections) {
  v1::QueryRequest q;
  q.set_collection("docs");
  q.set_top_k(3);
  q.set_text("hello");
  v1::QueryResponse qr;
  EXPECT_EQ(Query(q, &qr).error_code(), grpc::FAILED_PRECONDITION);  // No text index.

  v1::CreateCollectionRequest cc;
  cc.mutable_config()->set_name("notes");
  cc.mutable_config()->set_dimension(2);
  cc.mutable_config()->mutable_text()->set_enabled(true);
  cc.mutable_config()->mutable_text()->set_analyzer("english");
  v1::CreateCollectionResponse ccr;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(collections_->Create(&ctx, cc, &ccr).ok());
  }
  EXPECT_EQ(ccr.collection().config().text().analyzer(), "english");
  EXPECT_FLOAT_EQ(ccr.collection().config().text().bm25_k1(), 0.9f);
  auto rec = [](const std::string& id, const std::string& text) {
    v1::Record r = Rec(id, {1, 1});
    r.set_text(text);
    return r;
  };
  ASSERT_TRUE(Upsert({rec("a", "Running databases on servers"), rec("b", "A server runs"),
                      rec("c", "벡터 데이터베이스 서버"), rec("d", "unrelated words")},
                     "notes")
                  .ok());
  q.set_collection("notes");
  q.set_text("database server");
  q.set_explain(true);
  ASSERT_TRUE(Query(q, &qr).ok());
  ASSERT_GE(qr.matches_size(), 2);
  EXPECT_EQ(qr.matches(0).id(), "a");  // Both stemmed terms.
  EXPECT_EQ(qr.matches(0).explanation(0).source(), "text");
  q.set_text("데이터베이스");
  qr.Clear();
  ASSERT_TRUE(Query(q, &qr).ok());
  ASSERT_EQ(qr.matches_size(), 1);
  EXPECT_EQ(qr.matches(0).id(), "c");
}

// Calls a unary method by name with raw bytes (for services whose generated
// stubs are not installed: grpc.health.v1).
grpc::Status RawUnary(grpc::Channel* channel, const std::string& method, const std::string& req,
                      std::string* resp) {
  grpc::GenericStub stub(channel->shared_from_this());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Slice slice(req);
  grpc::ByteBuffer request(&slice, 1), response;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status result;
  stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
    std::lock_guard<std::mutex> l(mu);
    result = s;
    done = true;
    cv.notify_all();
  });
  std::unique_lock<std::mutex> l(mu);
  cv.wait(l, [&] { return done; });
  std::vector<grpc::Slice> slices;
  if (result.ok() && response.Dump(&slices).ok()) {
    for (const auto& s : slices) resp->append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return result;
}

TEST_F(ServerTest, StandardHealthServiceReportsServing) {
  std::string resp;
  grpc::Status s = RawUnary(channel_.get(), "/grpc.health.v1.Health/Check", "", &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp, std::string("\x08\x01", 2));  // status: SERVING
  v1::HealthResponse h;
  grpc::ClientContext ctx;
  ASSERT_TRUE(admin_->Health(&ctx, v1::HealthRequest(), &h).ok());
  EXPECT_TRUE(h.serving());
}

TEST_F(ServerTest, ServerInfoReportsLimitsAndKernels) {
  v1::ServerInfoResponse info;
  grpc::ClientContext ctx;
  ASSERT_TRUE(admin_->ServerInfo(&ctx, v1::ServerInfoRequest(), &info).ok());
  EXPECT_EQ(info.limits().max_top_k(), 10000u);
  EXPECT_EQ(info.limits().max_batch_records(), 1000u);
  EXPECT_EQ(info.limits().max_sparse_entries(), 2048u);
  EXPECT_EQ(info.limits().max_fetch_ids(), 1000u);
  EXPECT_EQ(info.limits().max_list_limit(), 10000u);
  EXPECT_EQ(info.limits().max_embed_inputs(), 2048u);
  EXPECT_EQ(info.limits().max_document_bytes(), 4u << 20);
  EXPECT_EQ(info.limits().max_document_chunks(), 4096u);
  EXPECT_EQ(info.sync_policy(), "batch");
  EXPECT_FALSE(info.cpu_kernels().empty());
}

TEST_F(ServerTest, SigtermShutsDownCleanlyAndDataSurvives) {
  ASSERT_TRUE(Upsert({Rec("a", {1, 0, 0, 0})}).ok());
  const int status = server_->Stop(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_THAT(server_->Log(), HasSubstr("msg=stopped"));
  QUIVER_ASSERT_OK(server_->Start());
  Connect();
  v1::FetchRequest f;
  f.set_collection("docs");
  f.add_ids("a");
  v1::FetchResponse fr;
  grpc::ClientContext ctx;
  ASSERT_TRUE(points_->Fetch(&ctx, f, &fr).ok());
  EXPECT_EQ(fr.records_size(), 1);
}

// Quantized collections end to end: created over gRPC, filled, searched
// with recall matching an unquantized twin and exact (rescored) scores,
// their memory per vector reported, their settings echoed and kept across
// a restart; impossible settings refused with a reason.
TEST_F(ServerTest, QuantizedCollectionsSearchLikeFloatAndReportTheirMemory) {
  constexpr int kDim = 64, kN = 3000, kCentres = 30;
  std::mt19937 rng(17);
  std::normal_distribution<float> g;
  std::vector<std::vector<float>> centres(kCentres, std::vector<float>(kDim));
  for (auto& c : centres) {
    for (float& x : c) x = 0.7f * g(rng);
  }
  auto point = [&](int i, std::mt19937& r) {
    std::vector<float> v = centres[i % kCentres];
    for (float& x : v) x += g(r);
    return v;
  };
  std::vector<std::vector<float>> base(kN);
  for (int i = 0; i < kN; ++i) base[i] = point(i, rng);
  const std::vector<std::pair<std::string, v1::Quantization>> kinds = {
      {"float", v1::QUANTIZATION_NONE},
      {"sq8", v1::QUANTIZATION_SQ8},
      {"binary", v1::QUANTIZATION_BINARY}};
  for (const auto& [name, quantization] : kinds) {
    v1::CreateCollectionRequest req;
    req.mutable_config()->set_name(name);
    req.mutable_config()->set_dimension(kDim);
    req.mutable_config()->set_metric(v1::METRIC_COSINE);
    auto* h = req.mutable_config()->mutable_index()->mutable_hnsw();
    h->set_quantization(quantization);
    if (quantization == v1::QUANTIZATION_BINARY) {
      h->set_oversampling(8);
      h->set_full_vectors_on_disk(true);
    }
    v1::CreateCollectionResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(collections_->Create(&ctx, req, &resp).ok()) << name;
    // Batches of 1,000 (the most a request takes): the quantizers learn from
    // the first, and no compaction relearns them (which would change the
    // graph) before the graph is four times that.
    for (int start = 0; start < kN; start += 1000) {
      std::vector<v1::Record> recs;
      for (int i = start; i < start + 1000; ++i) {
        recs.push_back(Rec("r" + std::to_string(i), base[i]));
      }
      ASSERT_TRUE(Upsert(recs, name).ok()) << name;
    }
  }
  auto top10 = [&](const std::string& collection, const std::vector<float>& q, bool exact) {
    v1::QueryRequest req;
    req.set_collection(collection);
    req.set_top_k(10);
    req.set_exact(exact);
    for (float x : q) req.add_vector(x);
    v1::QueryResponse resp;
    EXPECT_TRUE(Query(req, &resp).ok());
    return resp;
  };
  std::map<std::string, double> recall;
  auto measure = [&] {
    std::mt19937 qrng(5);  // The same queries every time.
    // The graphs, not the exact scan of a backlog, answer.
    for (const auto& [name, quantization] : kinds) {
      QUIVER_ASSERT_OK(testing::WaitUntilIndexed(points_.get(), name).status());
    }
    for (const auto& [name, quantization] : kinds) {
      int found = 0, total = 0;
      for (int q = 0; q < 50; ++q) {
        const std::vector<float> v = point(q, qrng);
        const v1::QueryResponse want = top10(name, v, true);
        const v1::QueryResponse got = top10(name, v, false);
        std::map<std::string, float> truth;
        for (const auto& m : want.matches()) truth[m.id()] = m.score();
        for (const auto& m : got.matches()) {
          if (!truth.contains(m.id())) continue;
          ++found;
          EXPECT_EQ(m.score(), truth[m.id()]) << name << ": rescored scores are exact";
        }
        total += want.matches_size();
      }
      recall[name] = static_cast<double>(found) / total;
    }
  };
  measure();
  EXPECT_GE(recall["float"], 0.95);
  EXPECT_GE(recall["sq8"], recall["float"] - 0.02);
  EXPECT_GE(recall["binary"], 0.7);  // 64 bits a vector: coarse (measured 0.78-0.80).
  std::map<std::string, uint64_t> bytes;
  for (const auto& [name, quantization] : kinds) {
    v1::DescribeStatsRequest sr;
    sr.set_collection(name);
    v1::DescribeStatsResponse stats;
    grpc::ClientContext ctx;
    ASSERT_TRUE(points_->DescribeStats(&ctx, sr, &stats).ok());
    EXPECT_EQ(stats.total_record_count(), static_cast<uint64_t>(kN));
    bytes[name] = stats.index_bytes_per_vector();
    v1::GetCollectionRequest gr;
    gr.set_name(name);
    v1::GetCollectionResponse info;
    grpc::ClientContext gctx;
    ASSERT_TRUE(collections_->Get(&gctx, gr, &info).ok());
    EXPECT_EQ(info.collection().config().index().hnsw().quantization(), quantization) << name;
  }
  // sq8 keeps its full vectors in memory (codes + floats), binary on disk.
  EXPECT_GT(bytes["sq8"], bytes["float"]);
  EXPECT_LT(bytes["binary"], bytes["float"] - kDim * sizeof(float) / 2);
  // A restart loads the quantized graphs and answers the same.
  server_->Stop(SIGTERM);
  QUIVER_ASSERT_OK(server_->Start());
  Connect();
  const auto before = recall;
  measure();
  for (const auto& [name, r] : before) EXPECT_EQ(recall[name], r) << name;

  for (const auto& [field, why] : std::vector<std::pair<std::string, std::string>>{
           {"oversampling", "oversampling is 0.5"},
           {"disk-none", "full_vectors_on_disk needs a quantization"}}) {
    v1::CreateCollectionRequest req;
    req.mutable_config()->set_name("bad");
    req.mutable_config()->set_dimension(kDim);
    auto* h = req.mutable_config()->mutable_index()->mutable_hnsw();
    if (field == "oversampling") {
      h->set_quantization(v1::QUANTIZATION_BINARY);
      h->set_oversampling(0.5f);
    } else {
      h->set_full_vectors_on_disk(true);
    }
    v1::CreateCollectionResponse resp;
    grpc::ClientContext ctx;
    const grpc::Status st = collections_->Create(&ctx, req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << field;
    EXPECT_THAT(st.error_message(), HasSubstr(why)) << field;
  }
}

TEST_F(ServerTest, NamespacesPartitionRecords) {
  ASSERT_TRUE(Upsert({Rec("a", {1, 0, 0, 0})}, "docs", "left").ok());
  ASSERT_TRUE(Upsert({Rec("a", {0, 1, 0, 0})}, "docs", "right").ok());
  v1::QueryRequest q;
  for (float x : {1.f, 0.f, 0.f, 0.f}) q.add_vector(x);
  q.set_top_k(5);
  q.set_namespace_("right");
  v1::QueryResponse resp;
  ASSERT_TRUE(Query(q, &resp).ok());
  ASSERT_EQ(resp.matches_size(), 1);
  EXPECT_FLOAT_EQ(resp.matches(0).score(), 0);
  v1::ListNamespacesRequest lr;
  lr.set_collection("docs");
  v1::ListNamespacesResponse lresp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(points_->ListNamespaces(&ctx, lr, &lresp).ok());
  EXPECT_THAT(lresp.namespaces(), ::testing::ElementsAre("left", "right"));
}

}  // namespace
}  // namespace quiver

namespace quiver {
namespace {

TEST(ServerConfigTest, ConfigFileSetsFlagsAndTheCommandLineWins) {
  testing::TempDir dir;
  const std::string config = dir.path() + "/quiverd.conf";
  std::ofstream(config) << "# quiverd settings\n"
                        << "sync = always\n"
                        << "max-top-k = 5\n"
                        << "max_batch_records = \"7\"\n";
  testing::QuiverdProcess server(
      dir.path() + "/data", {"--config=" + config, "--max_batch_records=9",
                             "--max-sparse-entries=3", "--max_list_limit=4", "--embed-max-inputs=5",
                             "--max-document-bytes=1000", "--max_document_chunks=6"});
  QUIVER_ASSERT_OK(server.Start());
  auto admin = v1::Admin::NewStub(server.NewChannel());
  v1::ServerInfoResponse info;
  grpc::ClientContext ctx;
  ASSERT_TRUE(admin->ServerInfo(&ctx, v1::ServerInfoRequest(), &info).ok());
  EXPECT_EQ(info.sync_policy(), "always");
  EXPECT_EQ(info.limits().max_top_k(), 5u);
  EXPECT_EQ(info.limits().max_batch_records(), 9u);
  EXPECT_EQ(info.limits().max_sparse_entries(), 3u);
  EXPECT_EQ(info.limits().max_list_limit(), 4u);
  EXPECT_EQ(info.limits().max_embed_inputs(), 5u);
  EXPECT_EQ(info.limits().max_document_bytes(), 1000u);
  EXPECT_EQ(info.limits().max_document_chunks(), 6u);
}

TEST(ServerConfigTest, BadSettingsRefuseToStart) {
  testing::TempDir dir;
  testing::QuiverdProcess bad_sync(dir.path() + "/a", {"--sync=sometimes"});
  EXPECT_FALSE(bad_sync.Start().ok());
  const std::string config = dir.path() + "/bad.conf";
  std::ofstream(config) << "this line has no equals sign\n";
  testing::QuiverdProcess bad_config(dir.path() + "/b", {"--config=" + config});
  EXPECT_FALSE(bad_config.Start().ok());
  testing::QuiverdProcess bad_precision(dir.path() + "/c", {"--embed_precision=fp16"});
  EXPECT_FALSE(bad_precision.Start().ok());
  testing::QuiverdProcess bad_device(dir.path() + "/d", {"--device=tpu"});
  EXPECT_FALSE(bad_device.Start().ok());
}

}  // namespace
}  // namespace quiver
