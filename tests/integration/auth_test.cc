// API keys on both transports: no key, a wrong key, a read-only key on a
// write, health open; the CLI's --api-key and $QUIVER_API_KEY.
#include <cstdlib>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "quiver/v1/admin.grpc.pb.h"
#include "quiver/v1/collections.grpc.pb.h"
#include "tests/testing/quiverd_process.h"
#include "tests/testing/test_util.h"

namespace quiver {
namespace {

using ::testing::HasSubstr;

constexpr char kWriteKey[] = "rw-key-0123456789";
constexpr char kReadKey[] = "ro-key-0123456789";

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string keys = dir_.path() + "/keys";
    std::ofstream(keys) << "# keys\n" << kReadKey << " read-only\n\n";
    server_ = std::make_unique<testing::QuiverdProcess>(
        dir_.path() + "/data",
        std::vector<std::string>{std::string("--api_key=") + kWriteKey, "--api_key_file=" + keys});
    QUIVER_ASSERT_OK(server_->Start());
    auto ch = server_->NewChannel();
    collections_ = v1::Collections::NewStub(ch);
    admin_ = v1::Admin::NewStub(ch);
  }
  grpc::Status List(const std::string& key, const std::string& header = "api-key") {
    grpc::ClientContext ctx;
    if (!key.empty()) ctx.AddMetadata(header, header == "authorization" ? "Bearer " + key : key);
    v1::ListCollectionsResponse resp;
    return collections_->List(&ctx, v1::ListCollectionsRequest(), &resp);
  }
  grpc::Status Create(const std::string& key, const std::string& name) {
    grpc::ClientContext ctx;
    if (!key.empty()) ctx.AddMetadata("api-key", key);
    v1::CreateCollectionRequest req;
    req.mutable_config()->set_name(name);
    req.mutable_config()->set_dimension(3);
    v1::CreateCollectionResponse resp;
    return collections_->Create(&ctx, req, &resp);
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::QuiverdProcess> server_;
  std::unique_ptr<v1::Collections::Stub> collections_;
  std::unique_ptr<v1::Admin::Stub> admin_;
};

TEST_F(AuthTest, GrpcCallsNeedAKeyAndWritesAReadWriteOne) {
  EXPECT_EQ(List("").error_code(), grpc::UNAUTHENTICATED);
  EXPECT_THAT(List("").error_message(), HasSubstr("api-key"));
  EXPECT_EQ(List("wrong-key-0123456789").error_code(), grpc::UNAUTHENTICATED);
  EXPECT_EQ(List(std::string(kWriteKey).substr(0, 8)).error_code(), grpc::UNAUTHENTICATED);
  EXPECT_TRUE(List(kWriteKey).ok());
  EXPECT_TRUE(List(kWriteKey, "authorization").ok());
  EXPECT_TRUE(List(kReadKey).ok());
  EXPECT_TRUE(Create(kWriteKey, "c1").ok());
  grpc::Status denied = Create(kReadKey, "c2");
  EXPECT_EQ(denied.error_code(), grpc::PERMISSION_DENIED);
  EXPECT_THAT(denied.error_message(), HasSubstr("read-only"));
  // Without a key nothing is revealed, not even whether a collection exists.
  {
    grpc::ClientContext ctx;
    v1::GetCollectionRequest req;
    req.set_name("c1");
    v1::GetCollectionResponse resp;
    EXPECT_EQ(collections_->Get(&ctx, req, &resp).error_code(), grpc::UNAUTHENTICATED);
  }
  EXPECT_EQ(Create("", "c3").error_code(), grpc::UNAUTHENTICATED);
  // Health stays open.
  grpc::ClientContext ctx;
  v1::HealthResponse health;
  EXPECT_TRUE(admin_->Health(&ctx, v1::HealthRequest(), &health).ok());
  // The keys never reach the log.
  EXPECT_THAT(server_->Log(), ::testing::Not(HasSubstr(kWriteKey)));
  EXPECT_THAT(server_->Log(), ::testing::Not(HasSubstr(kReadKey)));
}

TEST_F(AuthTest, HttpRoutesNeedAKeyButHealthDoesNot) {
  httplib::Client http("127.0.0.1", server_->http_port());
  auto health = http.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto ready = http.Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
  auto none = http.Get("/v1/models");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  EXPECT_THAT(none->body, HasSubstr("authentication_error"));
  auto unknown_route = http.Get("/v9/secret");
  ASSERT_TRUE(unknown_route);
  EXPECT_EQ(unknown_route->status, 401);
  auto wrong = http.Get("/v1/models", {{"Authorization", "Bearer wrong-key-0123456789"}});
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  auto bearer = http.Get("/v1/models", {{"Authorization", std::string("Bearer ") + kReadKey}});
  ASSERT_TRUE(bearer);
  EXPECT_EQ(bearer->status, 200);
  auto api_key = http.Get("/v1/models", {{"Api-Key", kWriteKey}});
  ASSERT_TRUE(api_key);
  EXPECT_EQ(api_key->status, 200);
}

TEST_F(AuthTest, TheCliSendsItsKey) {
  std::string out;
  const std::string addr = "--addr=" + server_->address();
  EXPECT_EQ(testing::RunCli({addr, "collections", "list"}, &out), 1);
  EXPECT_THAT(out, HasSubstr("UNAUTHENTICATED"));
  EXPECT_EQ(testing::RunCli({addr, std::string("--api-key=") + kWriteKey, "collections", "create",
                             "films", "--dimension=2"},
                            &out),
            0)
      << out;
  ASSERT_EQ(setenv("QUIVER_API_KEY", kReadKey, 1), 0);
  EXPECT_EQ(testing::RunCli({addr, "collections", "list"}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("films"));
  EXPECT_EQ(testing::RunCli({addr, "collections", "delete", "films"}, &out), 1);
  EXPECT_THAT(out, HasSubstr("PERMISSION_DENIED"));
  unsetenv("QUIVER_API_KEY");
}

TEST(AuthConfigTest, BadKeyFilesStopTheServerWithAReason) {
  testing::TempDir dir;
  const std::string keys = dir.path() + "/keys";
  std::ofstream(keys) << "short\n";
  testing::QuiverdProcess server(dir.path() + "/data", {"--api_key_file=" + keys});
  server.set_start_timeout_s(10);
  EXPECT_FALSE(server.Start().ok());
  EXPECT_THAT(server.Log(), HasSubstr("at least 8 characters"));
  std::ofstream(keys) << "good-key-0123456789 admin\n";
  testing::QuiverdProcess second(dir.path() + "/data2", {"--api_key_file=" + keys});
  second.set_start_timeout_s(10);
  EXPECT_FALSE(second.Start().ok());
  EXPECT_THAT(second.Log(), HasSubstr("read-only or rw"));
}

}  // namespace
}  // namespace quiver
