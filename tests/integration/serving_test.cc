// quiverd under load and hostile input, driven over gRPC like a user would:
// many concurrent calls are all answered (queued, not refused), bounded
// queues refuse with a message naming their limit, and requests protobuf or
// the transport cannot carry get INVALID_ARGUMENT / NOT_FOUND with a reason
// instead of INTERNAL "" or a hang.
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>

#include "common/strings.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "quiver/v1/admin.grpc.pb.h"
#include "quiver/v1/collections.grpc.pb.h"
#include "quiver/v1/models.grpc.pb.h"
#include "quiver/v1/points.grpc.pb.h"
#include "quiver/v1/search.grpc.pb.h"
#include "tests/testing/quiverd_process.h"
#include "tests/testing/test_util.h"

namespace quiver {
namespace {

using ::testing::HasSubstr;

// Counts finished asynchronous calls; Wait blocks until `n` have finished.
class Latch {
 public:
  void Done() {
    std::lock_guard<std::mutex> l(mu_);
    ++done_;
    cv_.notify_all();
  }
  bool Wait(int n, absl::Duration timeout) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, absl::ToChronoSeconds(timeout), [&] { return done_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int done_ = 0;
};

class ServingTest : public ::testing::Test {
 protected:
  void Start(std::vector<std::string> flags = {}) {
    server_ = std::make_unique<testing::QuiverdProcess>(dir_.path() + "/data", std::move(flags));
    QUIVER_ASSERT_OK(server_->Start());
    channel_ = server_->NewChannel();
    collections_ = v1::Collections::NewStub(channel_);
    points_ = v1::Points::NewStub(channel_);
    search_ = v1::Search::NewStub(channel_);
    admin_ = v1::Admin::NewStub(channel_);
    models_ = v1::Models::NewStub(channel_);
  }
  void CreateCollection(const std::string& name, int dimension, bool hnsw) {
    v1::CreateCollectionRequest req;
    req.mutable_config()->set_name(name);
    req.mutable_config()->set_dimension(dimension);
    req.mutable_config()->set_metric(v1::METRIC_L2);
    if (hnsw) {
      req.mutable_config()->mutable_index()->mutable_hnsw();
    } else {
      req.mutable_config()->mutable_index()->mutable_flat();
    }
    v1::CreateCollectionResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = collections_->Create(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  void Fill(const std::string& name, int dimension, int n) {
    std::mt19937 rng(1);
    std::normal_distribution<float> g;
    for (int start = 0; start < n; start += 500) {
      v1::UpsertRequest req;
      req.set_collection(name);
      for (int i = start; i < std::min(n, start + 500); ++i) {
        v1::Record* r = req.add_records();
        r->set_id(StrCat("r", i));
        for (int d = 0; d < dimension; ++d) r->add_values(g(rng));
      }
      v1::UpsertResponse resp;
      grpc::ClientContext ctx;
      grpc::Status s = points_->Upsert(&ctx, req, &resp);
      ASSERT_TRUE(s.ok()) << s.error_message();
    }
  }
  // Sends `n` Query calls at once (the client's callback API: no thread
  // each) and returns how many ended with each code.
  std::map<grpc::StatusCode, int> QueryBurst(const v1::QueryRequest& req, int n,
                                             std::string* busy_message = nullptr) {
    struct Call {
      grpc::ClientContext ctx;
      v1::QueryResponse resp;
      grpc::Status status;
    };
    std::vector<std::unique_ptr<Call>> calls;
    Latch latch;
    for (int i = 0; i < n; ++i) {
      calls.push_back(std::make_unique<Call>());
      Call* c = calls.back().get();
      c->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
      search_->async()->Query(&c->ctx, &req, &c->resp, [c, &latch](grpc::Status s) {
        c->status = std::move(s);
        latch.Done();
      });
    }
    EXPECT_TRUE(latch.Wait(n, absl::Seconds(150))) << "calls did not finish";
    std::map<grpc::StatusCode, int> codes;
    for (const auto& c : calls) {
      ++codes[c->status.error_code()];
      if (c->status.ok()) {
        EXPECT_EQ(c->resp.matches_size(), static_cast<int>(req.top_k()));
      } else if (busy_message != nullptr &&
                 c->status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
        *busy_message = c->status.error_message();
      }
    }
    return codes;
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::QuiverdProcess> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Collections::Stub> collections_;
  std::unique_ptr<v1::Points::Stub> points_;
  std::unique_ptr<v1::Search::Stub> search_;
  std::unique_ptr<v1::Admin::Stub> admin_;
  std::unique_ptr<v1::Models::Stub> models_;
};

// Found from outside: with default flags the 18th concurrent call was
// refused with "Server Threadpool Exhausted" (one thread per call).
TEST_F(ServingTest, AThousandConcurrentQueriesAreAllAnswered) {
  Start();
  CreateCollection("vecs", 32, /*hnsw=*/true);
  Fill("vecs", 32, 2000);
  v1::QueryRequest req;
  req.set_collection("vecs");
  req.set_top_k(10);
  for (int d = 0; d < 32; ++d) req.add_vector(0.1f * static_cast<float>(d % 7));
  auto codes = QueryBurst(req, 1000);
  EXPECT_EQ(codes[grpc::StatusCode::OK], 1000) << "codes: " << codes.size();
  for (const auto& [code, count] : codes) {
    EXPECT_EQ(code, grpc::StatusCode::OK) << count << " calls ended with code " << code;
  }
}

// A queue that is full refuses with RESOURCE_EXHAUSTED naming the limit;
// the calls it took are answered.
TEST_F(ServingTest, AFullQueueRefusesNamingItsLimit) {
  Start({"--threads=1", "--max_queued_calls=2"});
  CreateCollection("vecs", 256, /*hnsw=*/false);
  Fill("vecs", 256, 20000);
  v1::QueryRequest req;
  req.set_collection("vecs");
  req.set_top_k(5);
  req.set_exact(true);
  for (int d = 0; d < 256; ++d) req.add_vector(0.01f * static_cast<float>(d));
  std::string busy;
  auto codes = QueryBurst(req, 200, &busy);
  EXPECT_GE(codes[grpc::StatusCode::OK], 3);
  EXPECT_GT(codes[grpc::StatusCode::RESOURCE_EXHAUSTED], 0);
  EXPECT_EQ(codes[grpc::StatusCode::OK] + codes[grpc::StatusCode::RESOURCE_EXHAUSTED], 200);
  EXPECT_THAT(busy, HasSubstr("--max_queued_calls"));
  // Health answers however busy the queues are, and the server still works.
  v1::HealthResponse health;
  grpc::ClientContext ctx;
  EXPECT_TRUE(admin_->Health(&ctx, v1::HealthRequest(), &health).ok());
  v1::QueryResponse resp;
  grpc::ClientContext ctx2;
  EXPECT_TRUE(search_->Query(&ctx2, req, &resp).ok());
}

// Found from outside: error messages echoed user strings whole; past about
// 64 KB the transport sent nothing and the call hung until its deadline.
TEST_F(ServingTest, ErrorsAboutHugeValuesReachTheClient) {
  Start();
  CreateCollection("docs", 4, /*hnsw=*/false);
  const std::string huge(100000, 'x');
  auto deadline = [](grpc::ClientContext* ctx) {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  };
  auto expect = [](const grpc::Status& s, grpc::StatusCode code, const char* what) {
    EXPECT_EQ(s.error_code(), code) << what << ": " << s.error_message().substr(0, 200);
    EXPECT_LT(s.error_message().size(), 1000u) << what;
  };
  {
    v1::GetCollectionRequest req;
    req.set_name(std::string(70000, 'c'));
    v1::GetCollectionResponse resp;
    grpc::ClientContext ctx;
    deadline(&ctx);
    grpc::Status s = collections_->Get(&ctx, req, &resp);
    expect(s, grpc::StatusCode::NOT_FOUND, "Get");
    EXPECT_THAT(s.error_message(), HasSubstr("70000 bytes"));
  }
  {
    v1::DeleteCollectionRequest req;
    req.set_name(huge);
    v1::DeleteCollectionResponse resp;
    grpc::ClientContext ctx;
    deadline(&ctx);
    expect(collections_->Delete(&ctx, req, &resp), grpc::StatusCode::NOT_FOUND, "Delete");
  }
  {
    v1::UpsertRequest req;
    req.set_collection(huge);
    v1::Record* r = req.add_records();
    r->set_id("a");
    for (int i = 0; i < 4; ++i) r->add_values(1);
    v1::UpsertResponse resp;
    grpc::ClientContext ctx;
    deadline(&ctx);
    expect(points_->Upsert(&ctx, req, &resp), grpc::StatusCode::NOT_FOUND, "Upsert");
  }
  {
    v1::FetchRequest req;
    req.set_collection(huge);
    req.add_ids("a");
    v1::FetchResponse resp;
    grpc::ClientContext ctx;
    deadline(&ctx);
    expect(points_->Fetch(&ctx, req, &resp), grpc::StatusCode::NOT_FOUND, "Fetch");
  }
  {
    v1::DescribeStatsRequest req;
    req.set_collection(huge);
    v1::DescribeStatsResponse resp;
    grpc::ClientContext ctx;
    deadline(&ctx);
    expect(points_->DescribeStats(&ctx, req, &resp), grpc::StatusCode::NOT_FOUND, "DescribeStats");
  }
  {
    v1::ListIdsRequest req;
    req.set_collection(huge);
    v1::ListIdsResponse resp;
    grpc::ClientContext ctx;
    deadline(&ctx);
    expect(points_->ListIds(&ctx, req, &resp), grpc::StatusCode::NOT_FOUND, "ListIds");
  }
  {
    v1::UpdateRequest req;
    req.set_collection("docs");
    req.set_id(huge);
    for (int i = 0; i < 4; ++i) req.add_values(1);
    v1::UpdateResponse resp;
    grpc::ClientContext ctx;
    deadline(&ctx);
    grpc::Status s = points_->Update(&ctx, req, &resp);
    EXPECT_NE(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
    EXPECT_FALSE(s.ok());
    EXPECT_LT(s.error_message().size(), 1000u);
  }
  {
    v1::QueryRequest req;
    req.set_collection("docs");
    req.set_id(huge);
    req.set_top_k(1);
    v1::QueryResponse resp;
    grpc::ClientContext ctx;
    deadline(&ctx);
    grpc::Status s = search_->Query(&ctx, req, &resp);
    EXPECT_NE(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
    EXPECT_FALSE(s.ok());
    EXPECT_LT(s.error_message().size(), 1000u);
  }
  {
    v1::QueryRequest req;
    req.set_collection("docs");
    req.set_top_k(1);
    for (int i = 0; i < 4; ++i) req.add_vector(1);
    (*(*req.mutable_filter()->mutable_fields())[huge]
          .mutable_struct_value()
          ->mutable_fields())["$bogus"]
        .set_number_value(1);
    v1::QueryResponse resp;
    grpc::ClientContext ctx;
    deadline(&ctx);
    expect(search_->Query(&ctx, req, &resp), grpc::StatusCode::INVALID_ARGUMENT, "filter");
  }
  {
    v1::SnapshotRequest req;
    req.set_name(huge);
    v1::SnapshotResponse resp;
    grpc::ClientContext ctx;
    deadline(&ctx);
    expect(admin_->Snapshot(&ctx, req, &resp), grpc::StatusCode::INVALID_ARGUMENT, "Snapshot");
  }
  // The connection still serves.
  v1::ListCollectionsResponse list;
  grpc::ClientContext ctx;
  deadline(&ctx);
  ASSERT_TRUE(collections_->List(&ctx, v1::ListCollectionsRequest(), &list).ok());
  EXPECT_EQ(list.collections_size(), 1);
}

// Sends `bytes` as the request of `method` and returns the status.
grpc::Status CallRaw(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                     const std::string& bytes) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
    std::lock_guard<std::mutex> l(mu);
    status = std::move(s);
    done = true;
    cv.notify_all();
  });
  std::unique_lock<std::mutex> l(mu);
  cv.wait(l, [&] { return done; });
  return status;
}

// Found from outside: a string field that is not UTF-8 failed protobuf's
// parse before the handler ran and the client got INTERNAL "".
TEST_F(ServingTest, InvalidUtf8IsInvalidArgumentNamingTheField) {
  Start();
  CreateCollection("docs", 2, /*hnsw=*/false);
  // A valid request, then the same with one string's bytes made invalid:
  // protobuf's serializer would refuse to write them, so edit the bytes.
  auto corrupt = [](std::string bytes, const std::string& marker) {
    const size_t at = bytes.find(marker);
    EXPECT_NE(at, std::string::npos);
    bytes[at] = '\xff';
    return bytes;
  };
  v1::UpsertRequest up;
  up.set_collection("docs");
  v1::Record* r = up.add_records();
  r->set_id("fine");
  r->add_values(1);
  r->add_values(0);
  r = up.add_records();
  r->set_id("MARKid");
  r->add_values(1);
  r->add_values(0);
  (*r->mutable_metadata()->mutable_fields())["genre"].set_string_value("MARKvalue");
  std::string bytes;
  ASSERT_TRUE(up.SerializeToString(&bytes));
  grpc::Status s = CallRaw(channel_, "/quiver.v1.Points/Upsert", corrupt(bytes, "MARKid"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("records[1].id is not valid UTF-8"));
  s = CallRaw(channel_, "/quiver.v1.Points/Upsert", corrupt(bytes, "MARKvalue"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("records[1].metadata.fields[\"genre\"]"));
  // The namespace of a query; and bytes that are no protobuf at all.
  v1::QueryRequest q;
  q.set_collection("docs");
  q.set_namespace_("MARKns");
  q.set_top_k(1);
  q.add_vector(1);
  q.add_vector(0);
  ASSERT_TRUE(q.SerializeToString(&bytes));
  s = CallRaw(channel_, "/quiver.v1.Search/Query", corrupt(bytes, "MARKns"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("namespace is not valid UTF-8"));
  s = CallRaw(channel_, "/quiver.v1.Search/Query", std::string("\x0a\xff\xff\xff\x0f", 5));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("QueryRequest"));
  // Nothing was written.
  v1::FetchRequest f;
  f.set_collection("docs");
  f.add_ids("fine");
  v1::FetchResponse fr;
  grpc::ClientContext ctx;
  ASSERT_TRUE(points_->Fetch(&ctx, f, &fr).ok());
  EXPECT_EQ(fr.records_size(), 0);
}

// Found from outside: from about 20 nested $and levels protobuf's recursion
// limit (100 messages) refused the request and the client got INTERNAL "".
TEST_F(ServingTest, DeepFiltersAreInvalidArgumentWithAReason) {
  Start();
  CreateCollection("docs", 2, /*hnsw=*/false);
  for (int levels : {10, 17, 20, 30, 60}) {
    google::protobuf::Struct filter;
    (*filter.mutable_fields())["genre"].set_string_value("x");
    for (int i = 0; i < levels; ++i) {
      google::protobuf::Struct outer;
      *(*outer.mutable_fields())["$and"]
           .mutable_list_value()
           ->add_values()
           ->mutable_struct_value() = filter;
      filter = std::move(outer);
    }
    v1::QueryRequest q;
    q.set_collection("docs");
    q.set_top_k(1);
    q.add_vector(1);
    q.add_vector(0);
    *q.mutable_filter() = filter;
    v1::QueryResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Status s = search_->Query(&ctx, q, &resp);
    if (levels <= 16) {
      EXPECT_TRUE(s.ok()) << levels << ": " << s.error_message();
      continue;
    }
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << levels;
    EXPECT_THAT(s.error_message(), HasSubstr("nest")) << levels;
    v1::DescribeStatsRequest d;
    d.set_collection("docs");
    *d.mutable_filter() = filter;
    v1::DescribeStatsResponse dr;
    grpc::ClientContext ctx2;
    s = points_->DescribeStats(&ctx2, d, &dr);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << levels;
    EXPECT_THAT(s.error_message(), HasSubstr("nest")) << levels;
  }
}

// Found from outside: 32 concurrent Generate streams gave 17 answers and
// 15 refusals. With default flags 1,000 concurrent streams are all answered
// (queued behind continuous batching), each with the reference text.
TEST_F(ServingTest, AThousandConcurrentGenerateStreamsAreAllAnswered) {
  const std::string dir = testing::FixturePath("stories260K");
  if (dir.empty()) GTEST_SKIP() << "fixture stories260K not found ($QUIVER_FIXTURES)";
  Start({"--llm-model=" + dir + "/stories260K.bin", "--llm-tokenizer=" + dir + "/tok512.bin"});
  const std::string expected = testing::ReadFileBytes(dir + "/expected_greedy_n200.txt");
  constexpr int kStreams = 1000;
  class Reader final : public grpc::ClientReadReactor<v1::GenerateResponse> {
   public:
    Reader(v1::Models::Stub* stub, Latch* latch) : latch_(latch) {
      req_.mutable_sampling()->set_max_tokens(40);
      ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(240));
      stub->async()->Generate(&ctx_, &req_, this);
      StartRead(&resp_);
      StartCall();
    }
    void OnReadDone(bool ok) override {
      if (!ok) return;
      text_ += resp_.text();
      ++messages_;
      StartRead(&resp_);
    }
    void OnDone(const grpc::Status& s) override {
      status_ = s;
      latch_->Done();
    }
    grpc::Status status_;
    std::string text_;
    int messages_ = 0;

   private:
    Latch* latch_;
    grpc::ClientContext ctx_;
    v1::GenerateRequest req_;
    v1::GenerateResponse resp_;
  };
  Latch latch;
  std::vector<std::unique_ptr<Reader>> readers;
  for (int i = 0; i < kStreams; ++i) {
    readers.push_back(std::make_unique<Reader>(models_.get(), &latch));
  }
  ASSERT_TRUE(latch.Wait(kStreams, absl::Seconds(280)));
  std::map<grpc::StatusCode, int> codes;
  int exact = 0;
  for (const auto& r : readers) {
    ++codes[r->status_.error_code()];
    if (r->status_.ok() && expected.starts_with(r->text_) && r->messages_ >= 40) ++exact;
  }
  EXPECT_EQ(codes[grpc::StatusCode::OK], kStreams);
  for (const auto& [code, count] : codes) {
    EXPECT_EQ(code, grpc::StatusCode::OK) << count << " streams ended with code " << code;
  }
  EXPECT_EQ(exact, kStreams) << "streams whose text is the reference's first 40 tokens";
}

// Found from outside: 40 concurrent one-text Embed calls gave 17 answers and
// 23 refusals. 500 at once are all answered, batched by the worker.
TEST_F(ServingTest, FiveHundredConcurrentEmbedsAreAllAnswered) {
  const std::string fixtures = testing::FixturePath("model2vec-rs-fixtures");
  if (fixtures.empty())
    GTEST_SKIP() << "fixture model2vec-rs-fixtures not found ($QUIVER_FIXTURES)";
  Start({"--embed-model=" + fixtures + "/test-model-float32", "--device=cpu"});
  constexpr int kCalls = 500;
  struct Call {
    grpc::ClientContext ctx;
    v1::EmbedRequest req;
    v1::EmbedResponse resp;
    grpc::Status status;
  };
  std::vector<std::unique_ptr<Call>> calls;
  Latch latch;
  for (int i = 0; i < kCalls; ++i) {
    calls.push_back(std::make_unique<Call>());
    Call* c = calls.back().get();
    c->req.add_inputs(i % 2 == 0 ? "the quick brown fox" : "a lazy dog sleeps");
    c->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    models_->async()->Embed(&c->ctx, &c->req, &c->resp, [c, &latch](grpc::Status s) {
      c->status = std::move(s);
      latch.Done();
    });
  }
  ASSERT_TRUE(latch.Wait(kCalls, absl::Seconds(150)));
  int ok = 0;
  for (const auto& c : calls) {
    if (!c->status.ok()) {
      ADD_FAILURE() << c->status.error_code() << ": " << c->status.error_message();
      continue;
    }
    ASSERT_EQ(c->resp.embeddings_size(), 1);
    ++ok;
  }
  EXPECT_EQ(ok, kCalls);
  // Same text, same vector, however the worker batched it.
  for (int i = 2; i < kCalls; ++i) {
    if (!calls[i]->status.ok() || !calls[i % 2]->status.ok()) continue;
    const auto& a = calls[i]->resp.embeddings(0).values();
    const auto& b = calls[i % 2]->resp.embeddings(0).values();
    ASSERT_EQ(a.size(), b.size());
    for (int d = 0; d < a.size(); ++d) ASSERT_EQ(a[d], b[d]) << "call " << i;
  }
}

// The memory budget: writes past it are refused with what is full, usage
// is reported, a collection that no longer fits is not loaded (and says
// why), and a server whose fixed parts do not fit refuses to start.
TEST_F(ServingTest, AMemoryBudgetRefusesWritesSayingWhatIsFullAndReportsUsage) {
  const std::vector<std::string> small_caches = {"--block_cache_mb=8", "--memtable_mb=8",
                                                 "--answer_cache_mb=8"};
  auto with = [&](std::string budget) {
    std::vector<std::string> flags = small_caches;
    flags.push_back("--memory_budget_mb=" + budget);
    return flags;
  };
  Start(with("30"));  // 24 MB of caches, 6 MB for data.
  CreateCollection("vecs", 128, /*hnsw=*/false);
  std::mt19937 rng(7);
  std::normal_distribution<float> g;
  int written = 0;
  grpc::Status refused;
  for (int batch = 0; batch < 100 && refused.ok(); ++batch) {
    v1::UpsertRequest req;
    req.set_collection("vecs");
    for (int i = 0; i < 500; ++i) {
      v1::Record* r = req.add_records();
      r->set_id(StrCat("r", written + i));
      for (int d = 0; d < 128; ++d) r->add_values(g(rng));
    }
    v1::UpsertResponse resp;
    grpc::ClientContext ctx;
    refused = points_->Upsert(&ctx, req, &resp);
    if (refused.ok()) written += 500;
  }
  ASSERT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_THAT(refused.error_message(),
              HasSubstr("upserting 500 records into collection \"vecs\" needs"));
  EXPECT_THAT(refused.error_message(), HasSubstr("memory budget of 30.0 MB (--memory_budget_mb)"));
  EXPECT_THAT(refused.error_message(), HasSubstr("caches 24.0 MB"));
  EXPECT_GE(written, 5000);

  v1::ServerInfoResponse info;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(admin_->ServerInfo(&ctx, {}, &info).ok());
  }
  const v1::MemoryBudget& m = info.memory();
  EXPECT_EQ(m.budget_bytes(), 30u << 20);
  EXPECT_EQ(m.used().parts().at("caches"), 24u << 20);
  EXPECT_EQ(m.used().parts().at("vectors"), static_cast<uint64_t>(written) * 128 * 4);
  EXPECT_GT(m.used().parts().at("metadata"), 0u);
  EXPECT_LE(m.used().total_bytes(), 30u << 20);
  EXPECT_GT(m.resident_bytes(), 0u);
  v1::DescribeStatsResponse stats;
  {
    v1::DescribeStatsRequest req;
    req.set_collection("vecs");
    grpc::ClientContext ctx;
    ASSERT_TRUE(points_->DescribeStats(&ctx, req, &stats).ok());
  }
  EXPECT_EQ(stats.total_record_count(), static_cast<uint64_t>(written));
  EXPECT_EQ(stats.memory().total_bytes(), m.used().total_bytes() - (24u << 20));
  EXPECT_EQ(stats.namespaces().at("").memory_bytes(), stats.memory().total_bytes());

  // Restarted with less room than the collection takes: not loaded, and
  // every call on it says why; the server serves the rest.
  ASSERT_EQ(server_->Stop(SIGTERM), 0);
  Start(with("27"));
  {
    v1::QueryRequest req;
    req.set_collection("vecs");
    req.set_top_k(1);
    for (int d = 0; d < 128; ++d) req.add_vector(0.5f);
    v1::QueryResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = search_->Query(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(s.error_message(), HasSubstr("collection \"vecs\" was not loaded at start-up: "
                                             "loading collection \"vecs\" needs"));
    v1::HealthResponse health;
    grpc::ClientContext hctx;
    ASSERT_TRUE(admin_->Health(&hctx, {}, &health).ok());
    EXPECT_THAT(health.damaged_collections(), ::testing::ElementsAre("vecs"));
  }
  ASSERT_EQ(server_->Stop(SIGTERM), 0);
  Start(with("64"));
  {
    v1::DescribeStatsRequest req;
    req.set_collection("vecs");
    v1::DescribeStatsResponse again;
    grpc::ClientContext ctx;
    ASSERT_TRUE(points_->DescribeStats(&ctx, req, &again).ok());
    EXPECT_EQ(again.total_record_count(), static_cast<uint64_t>(written));
  }
  ASSERT_EQ(server_->Stop(SIGTERM), 0);

  // Caches alone past the budget: quiverd does not start, and says so.
  testing::QuiverdProcess tiny(dir_.path() + "/data", {"--memory_budget_mb=100"});
  absl::Status start = tiny.Start();
  EXPECT_FALSE(start.ok());
  EXPECT_THAT(tiny.Log(), HasSubstr("the store's block cache and memtables and the answer cache"));
  EXPECT_THAT(tiny.Log(), HasSubstr("memory budget of 100.0 MB"));
}

TEST_F(ServingTest, ALanguageModelPastTheMemoryBudgetIsRefusedAtStartUp) {
  const std::string dir = testing::FixturePath("stories260K");
  if (dir.empty()) GTEST_SKIP() << "fixture stories260K not found ($QUIVER_FIXTURES)";
  const std::vector<std::string> model = {"--llm-model=" + dir + "/stories260K.bin",
                                          "--llm-tokenizer=" + dir + "/tok512.bin",
                                          "--block_cache_mb=8",
                                          "--memtable_mb=8",
                                          "--answer_cache_mb=8",
                                          "--llm_kv_cache_mb=64"};
  auto flags = model;
  flags.push_back("--memory_budget_mb=26");  // 24 MB of caches: no room for the KV cache.
  testing::QuiverdProcess refused(dir_.path() + "/data", flags);
  EXPECT_FALSE(refused.Start().ok());
  EXPECT_THAT(refused.Log(), HasSubstr("the language model stories260K"));
  EXPECT_THAT(refused.Log(), HasSubstr("kv_cache "));
  EXPECT_THAT(refused.Log(), HasSubstr("memory budget of 26.0 MB"));
  flags.back() = "--memory_budget_mb=120";
  Start(flags);
  v1::ServerInfoResponse info;
  grpc::ClientContext ctx;
  ASSERT_TRUE(admin_->ServerInfo(&ctx, {}, &info).ok());
  const auto& parts = info.memory().used().parts();
  // The KV cache: up to --llm_kv_cache_mb, at most a full context per
  // sequence (--llm_max_seqs).
  EXPECT_GT(parts.at("kv_cache"), 2u << 20);
  EXPECT_LE(parts.at("kv_cache"), 64u << 20);
  // stories260K: about 260k parameters of float32.
  EXPECT_GT(parts.at("models"), 900u << 10);
  EXPECT_LT(parts.at("models"), 2u << 20);
}

}  // namespace
}  // namespace quiver
