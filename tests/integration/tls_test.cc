// TLS on both transports: quiverd with a self-signed certificate (made by
// the openssl command line for localhost / 127.0.0.1), reached over TLS by a
// gRPC client, an HTTPS client and the CLI; plaintext clients fail.
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "quiver/v1/collections.grpc.pb.h"
#include "tests/testing/quiverd_process.h"
#include "tests/testing/test_util.h"

namespace quiver {
namespace {

using ::testing::HasSubstr;

TEST(TlsTest, BothTransportsServeTls) {
  if (std::system("openssl version > /dev/null 2>&1") != 0) {
    GTEST_SKIP() << "no openssl command to make a test certificate";
  }
  testing::TempDir dir;
  const std::string cert = dir.path() + "/cert.pem", key = dir.path() + "/key.pem";
  const std::string make =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
      "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " +
      key + " -out " + cert + " > /dev/null 2>&1";
  ASSERT_EQ(std::system(make.c_str()), 0) << make;
  testing::QuiverdProcess server(dir.path() + "/data", {"--tls_cert=" + cert, "--tls_key=" + key});
  QUIVER_ASSERT_OK(server.Start());

  std::stringstream pem;
  pem << std::ifstream(cert).rdbuf();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = pem.str();
  auto tls = v1::Collections::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(server.port()), grpc::SslCredentials(ssl)));
  {
    grpc::ClientContext ctx;
    v1::ListCollectionsResponse resp;
    grpc::Status s = tls->List(&ctx, v1::ListCollectionsRequest(), &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
  }
  {
    auto plain = v1::Collections::NewStub(server.NewChannel());
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::ListCollectionsResponse resp;
    EXPECT_FALSE(plain->List(&ctx, v1::ListCollectionsRequest(), &resp).ok());
  }

  httplib::SSLClient https("127.0.0.1", server.http_port());
  https.set_ca_cert_path(cert.c_str());
  https.enable_server_certificate_verification(true);
  auto health = https.Get("/healthz");
  ASSERT_TRUE(health) << httplib::to_string(health.error());
  EXPECT_EQ(health->status, 200);
  // The Pinecone host it hands out says https.
  auto created = https.Post("/indexes", R"({"name": "films", "dimension": 2})", "application/json");
  ASSERT_TRUE(created);
  EXPECT_EQ(created->status, 201);
  EXPECT_THAT(created->body, HasSubstr("\"host\":\"https://"));
  httplib::Client plain_http("127.0.0.1", server.http_port());
  auto refused = plain_http.Get("/healthz");
  EXPECT_TRUE(!refused || refused->status != 200);

  std::string out;
  EXPECT_EQ(testing::RunCli({"--addr=127.0.0.1:" + std::to_string(server.port()),
                             "--ca-cert=" + cert, "collections", "list"},
                            &out),
            0)
      << out;
  EXPECT_THAT(out, HasSubstr("films"));
}

TEST(TlsTest, AKeyWithoutACertificateIsRefused) {
  testing::TempDir dir;
  testing::QuiverdProcess server(dir.path() + "/data", {"--tls_key=/nonexistent.pem"});
  server.set_start_timeout_s(10);
  EXPECT_FALSE(server.Start().ok());
  EXPECT_THAT(server.Log(), HasSubstr("--tls_cert and --tls_key"));
}

}  // namespace
}  // namespace quiver
