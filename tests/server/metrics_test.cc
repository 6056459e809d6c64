#include "server/metrics.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace quiver::server {
namespace {

using ::testing::HasSubstr;

std::vector<std::string> Lines(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(RotatingFileTest, RotatesToDotOnePastTheLimitAndKeepsWholeLines) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/log";
  auto f = RotatingFile::Open(path, 100);
  QUIVER_ASSERT_OK(f.status());
  const std::string line(39, 'a');  // 40 bytes with the newline.
  for (int i = 0; i < 5; ++i) (*f)->Append(line + "\n");
  // 40 + 40 fit; the third line moved them to log.1; the fifth did again.
  EXPECT_EQ(Lines(path).size(), 1u);
  EXPECT_EQ(Lines(path + ".1").size(), 2u);
  // Reopening appends and counts what the file already holds.
  f = RotatingFile::Open(path, 100);
  QUIVER_ASSERT_OK(f.status());
  (*f)->Append(line + "\n");
  EXPECT_EQ(Lines(path).size(), 2u);
  (*f)->Append(line + "\n");
  EXPECT_EQ(Lines(path).size(), 1u);
  // A line larger than the limit is still written whole.
  (*f)->Append(std::string(300, 'b') + "\n");
  EXPECT_EQ(Lines(path).back().size(), 300u);
  EXPECT_FALSE(RotatingFile::Open(dir.path() + "/missing/dir/log", 0).ok());
}

TEST(RequestMetricsTest, CountsLatencyAndLogsTokenCountsForGenerations) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/access.log";
  auto m = RequestMetrics::Open(path, 0);
  QUIVER_ASSERT_OK(m.status());
  GenerationUsage usage{12, 5, 8};
  (*m)->Record("grpc", "/quiver.v1.Models/Generate", "OK", 0.003, 10, 20, &usage);
  (*m)->Record("http", "GET /v1/models", "200", 0.2, 0, 50);
  std::string prom;
  (*m)->AppendPrometheus(&prom);
  EXPECT_THAT(prom, HasSubstr("quiver_requests_total{transport=\"grpc\",route=\"/"
                              "quiver.v1.Models/Generate\",status=\"OK\"} 1"));
  // 3 ms: in the 0.005 bucket, not the 0.0025 one.
  EXPECT_THAT(prom, HasSubstr("route=\"/quiver.v1.Models/Generate\",le=\"0.0025\"} 0"));
  EXPECT_THAT(prom, HasSubstr("route=\"/quiver.v1.Models/Generate\",le=\"0.005\"} 1"));
  const std::vector<std::string> lines = Lines(path);
  ASSERT_EQ(lines.size(), 2u);
  auto gen = ParseJson(lines[0]);
  QUIVER_ASSERT_OK(gen.status());
  EXPECT_EQ(gen->Find("prompt_tokens")->as_number(), 12);
  EXPECT_EQ(gen->Find("completion_tokens")->as_number(), 5);
  EXPECT_EQ(gen->Find("cached_prompt_tokens")->as_number(), 8);
  auto other = ParseJson(lines[1]);
  QUIVER_ASSERT_OK(other.status());
  EXPECT_EQ(other->Find("prompt_tokens"), nullptr);
  EXPECT_EQ(other->Find("status")->as_string(), "200");
}

TEST(AuditLogTest, RecordsWhatWasAskedAndAnswered) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/audit.log";
  auto audit = AuditLog::Open(path, 0);
  QUIVER_ASSERT_OK(audit.status());
  llm::GenerationRequest g;
  g.model = "m";
  g.messages = {{"system", "Be brief."}, {"user", "Hi \"there\"\n"}};
  (*audit)->Write("http", "POST /v1/chat/completions", "200", AuditRequest(g), "Hello!",
                  GenerationUsage{9, 2, 0});
  const std::vector<std::string> lines = Lines(path);
  ASSERT_EQ(lines.size(), 1u);  // Newlines in content stay escaped.
  auto j = ParseJson(lines[0]);
  QUIVER_ASSERT_OK(j.status());
  EXPECT_EQ(j->Find("answer")->as_string(), "Hello!");
  const Json::Array& messages = j->Find("request")->Find("messages")->as_array();
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[1].Find("content")->as_string(), "Hi \"there\"\n");
  EXPECT_EQ(j->Find("request")->Find("prompt"), nullptr);
  EXPECT_EQ(j->Find("completion_tokens")->as_number(), 2);
}

}  // namespace
}  // namespace quiver::server
