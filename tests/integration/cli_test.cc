// The quiver CLI against a real server, as an operator uses it.
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/quiverd_process.h"
#include "tests/testing/test_util.h"

namespace quiver {
namespace {

using ::testing::HasSubstr;

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<testing::QuiverdProcess>(dir_.path() + "/data");
    QUIVER_ASSERT_OK(server_->Start());
  }
  int Cli(std::vector<std::string> args, std::string* out) {
    args.insert(args.begin(), "--addr=" + server_->address());
    return testing::RunCli(args, out);
  }
  std::string WriteFile(const std::string& name, const std::string& content) {
    const std::string path = dir_.path() + "/" + name;
    std::ofstream(path) << content;
    return path;
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::QuiverdProcess> server_;
};

TEST_F(CliTest, CreateImportQueryFetchUpdateDeleteStatsDrop) {
  std::string out;
  ASSERT_EQ(Cli({"collections", "create", "films", "--dimension=3", "--metric=cosine"}, &out), 0)
      << out;
  EXPECT_THAT(out, HasSubstr("films"));
  std::string jsonl;
  for (int i = 0; i < 1234; ++i) {
    jsonl += "{\"id\": \"f" + std::to_string(i) + "\", \"values\": [1, " + std::to_string(i) +
             ", 0.5], \"metadata\": {\"year\": " + std::to_string(1900 + i % 100) +
             ", \"genre\": \"" + (i % 2 ? "drama" : "comedy") + "\"}}\n";
  }
  const std::string file = WriteFile("films.jsonl", jsonl);
  ASSERT_EQ(Cli({"import", "films", file, "--batch=100"}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("imported 1234 records into films"));
  EXPECT_THAT(out, HasSubstr("records/s"));

  ASSERT_EQ(
      Cli({"--json", "query", "films", "--vector=[1, 0, 0.5]", "--top-k=3",
           "--filter={\"genre\": \"drama\", \"year\": {\"$gte\": 1950}}", "--include-metadata"},
          &out),
      0)
      << out;
  EXPECT_THAT(out, HasSubstr("\"matches\""));
  EXPECT_THAT(out, HasSubstr("drama"));
  EXPECT_THAT(out, ::testing::Not(HasSubstr("comedy")));

  ASSERT_EQ(Cli({"query", "films", "--id=f1", "--top-k=2"}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("RANK"));
  EXPECT_THAT(out, HasSubstr("f1 "));

  ASSERT_EQ(Cli({"update", "films", "f1", "--set-metadata={\"genre\": \"noir\"}"}, &out), 0);
  ASSERT_EQ(Cli({"fetch", "films", "f1", "nope"}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("noir"));
  EXPECT_THAT(out, HasSubstr("not found: nope"));

  ASSERT_EQ(Cli({"delete", "films", "--filter={\"genre\": \"comedy\"}"}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("deleted 617 records"));
  ASSERT_EQ(Cli({"stats", "films"}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("total records: 617"));
  ASSERT_EQ(Cli({"list-ids", "films", "--prefix=f12", "--limit=5"}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("f1201\nf1203\n"));
  EXPECT_THAT(out, HasSubstr("more: --token="));

  ASSERT_EQ(Cli({"collections", "delete", "films"}, &out), 0) << out;
  EXPECT_EQ(Cli({"collections", "get", "films"}, &out), 1);
  EXPECT_THAT(out, HasSubstr("NOT_FOUND"));
}

TEST_F(CliTest, ImportReportsTheBadLineAndResumes) {
  std::string out;
  ASSERT_EQ(Cli({"collections", "create", "c", "--dimension=2"}, &out), 0) << out;
  std::string good, jsonl;
  for (int i = 0; i < 50; ++i) {
    jsonl +=
        "{\"id\": \"r" + std::to_string(i) + "\", \"values\": [1, " + std::to_string(i) + "]}\n";
  }
  const std::string bad_line = "{\"id\": \"bad\", \"values\": [1, 2, 3]}\n";
  const std::string file = WriteFile("c.jsonl", jsonl + bad_line + jsonl);
  EXPECT_EQ(Cli({"import", "c", file, "--batch=10", "--parallel=1"}, &out), 1);
  EXPECT_THAT(out, HasSubstr("batch starting at line 51"));
  EXPECT_THAT(out, HasSubstr("has 3 values"));
  EXPECT_THAT(out, HasSubstr("50 records acknowledged"));

  // Fix the line in place (same length) and resume from the acknowledged prefix.
  std::string fixed_line = "{\"id\": \"bad\", \"values\": [1, 2   ]}\n";
  ASSERT_EQ(fixed_line.size(), bad_line.size());
  WriteFile("c.jsonl", jsonl + fixed_line + jsonl);
  ASSERT_EQ(Cli({"import", "c", file, "--batch=10", "--parallel=1", "--resume"}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("50 records already imported"));
  EXPECT_THAT(out, HasSubstr("imported 51 records"));
  ASSERT_EQ(Cli({"stats", "c"}, &out), 0);
  EXPECT_THAT(out, HasSubstr("total records: 51"));

  const std::string garbage =
      WriteFile("g.jsonl", "{\"id\": \"x\", \"values\": [1, 2]}\nnot json\n");
  EXPECT_EQ(Cli({"import", "c", garbage}, &out), 1);
  EXPECT_THAT(out, HasSubstr("g.jsonl:2"));
}

TEST_F(CliTest, HnswCollectionThroughTheCli) {
  std::string out;
  ASSERT_EQ(Cli({"collections", "create", "g", "--dimension=2", "--metric=l2", "--index=hnsw",
                 "--m=8", "--ef-construction=64"},
                &out),
            0)
      << out;
  EXPECT_THAT(out, HasSubstr("hnsw"));
  std::string jsonl;
  for (int i = 0; i < 300; ++i) {
    jsonl += "{\"id\": \"p" + std::to_string(i) + "\", \"values\": [" + std::to_string(i) + ", " +
             std::to_string(i % 7) + "]}\n";
  }
  ASSERT_EQ(Cli({"import", "g", WriteFile("g.jsonl", jsonl)}, &out), 0) << out;
  ASSERT_EQ(Cli({"query", "g", "--vector=[42, 0]", "--top-k=1", "--ef-search=32"}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("p42 "));
  ASSERT_EQ(Cli({"stats", "g"}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("index: hnsw"));
  EXPECT_THAT(out, HasSubstr("total records: 300"));
  EXPECT_EQ(Cli({"collections", "create", "bad", "--dimension=2", "--index=hnsw", "--m=1"}, &out),
            2);
}

TEST_F(CliTest, TextSearchThroughTheCli) {
  std::string out;
  ASSERT_EQ(Cli({"collections", "create", "n", "--dimension=2", "--text-analyzer=english"}, &out),
            0)
      << out;
  const std::string file =
      WriteFile("n.jsonl",
                "{\"id\": \"x\", \"values\": [1, 0], \"text\": \"Indexing vectors quickly\"}\n"
                "{\"id\": \"y\", \"values\": [0, 1], \"text\": \"Cooking pasta\", "
                "\"sparse_values\": {\"indices\": [4], \"values\": [2.5]}}\n");
  ASSERT_EQ(Cli({"import", "n", file}, &out), 0) << out;
  ASSERT_EQ(Cli({"query", "n", "--text=vector index", "--top-k=5"}, &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("x "));
  EXPECT_THAT(out, ::testing::Not(HasSubstr("y ")));
  ASSERT_EQ(Cli({"query", "n", R"(--sparse={"indices": [4], "values": [2]})", "--explain"}, &out),
            0)
      << out;
  EXPECT_THAT(out, HasSubstr("sparse#1=5"));
  // Hybrid: text finds x, the vector prefers y; weights decide.
  ASSERT_EQ(Cli({"query", "n", "--text=vector", "--vector=[0, 1]", "--fusion=weighted",
                 "--text-weight=3", "--explain", "--top-k=1"},
                &out),
            0)
      << out;
  EXPECT_THAT(out, HasSubstr("x "));
  EXPECT_THAT(out, HasSubstr("dense#2"));
  EXPECT_THAT(out, HasSubstr("text#1"));
  EXPECT_EQ(Cli({"query", "n", "--text=vector", "--vector=[0, 1]", "--fusion=borda"}, &out), 2);
}

TEST_F(CliTest, UsageErrorsExitWithTwo) {
  std::string out;
  EXPECT_EQ(Cli({"frobnicate"}, &out), 2);
  EXPECT_THAT(out, HasSubstr("unknown command"));
  EXPECT_EQ(Cli({"query", "x", "--top-k=3"}, &out), 2);
  EXPECT_EQ(Cli({"collections", "create", "x"}, &out), 2);
  EXPECT_EQ(Cli({"stats", "x", "--bogus=1"}, &out), 2);
  EXPECT_THAT(out, HasSubstr("--bogus"));
  EXPECT_EQ(Cli({"health"}, &out), 0);
  EXPECT_THAT(out, HasSubstr("serving: yes"));
}

}  // namespace
}  // namespace quiver
