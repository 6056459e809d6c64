#include "client/record_json.h"

#include "client/args.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace quiver::client {
namespace {

using ::quiver::testing::StatusIs;

TEST(RecordJsonTest, ParsesEveryField) {
  v1::Record r;
  ASSERT_TRUE(ParseRecordJson(R"({"id": "a", "values": [1, -2.5e-3, 3],
      "sparseValues": {"indices": [4, 9], "values": [0.5, 0.25]},
      "metadata": {"genre": "drama", "year": 2001, "tags": ["x"]}, "text": "안녕"})",
                              &r)
                  .ok());
  EXPECT_EQ(r.id(), "a");
  ASSERT_EQ(r.values_size(), 3);
  EXPECT_FLOAT_EQ(r.values(1), -2.5e-3f);
  EXPECT_EQ(r.sparse_values().indices(1), 9u);
  EXPECT_FLOAT_EQ(r.sparse_values().values(0), 0.5f);
  EXPECT_EQ(r.metadata().fields().at("year").number_value(), 2001);
  EXPECT_EQ(r.metadata().fields().at("tags").list_value().values(0).string_value(), "x");
  EXPECT_EQ(r.text(), "안녕");
}

TEST(RecordJsonTest, RejectsWrongShapes) {
  for (const char* bad : {R"({"id": 1})", R"({"values": "x"})", R"({"values": [1, "2"]})",
                          R"({"sparse_values": {"indices": [-1], "values": [1]}})",
                          R"({"sparse_values": {"indices": [1.5], "values": [1]}})",
                          R"({"metadata": [1]})", R"({"vector": [1]})", R"([1])", "{"}) {
    v1::Record r;
    EXPECT_THAT(ParseRecordJson(bad, &r), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
}

TEST(ArgsTest, ParsesPositionalsValuesAndBooleans) {
  auto a =
      Args::Parse({"query", "c", "--top_k=3", "--filter", "{}", "--json", "--", "--x"}, {"json"});
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->positional(), std::vector<std::string>({"query", "c", "--x"}));
  EXPECT_EQ(a->Get("top-k"), "3");
  EXPECT_EQ(a->Get("filter"), "{}");
  EXPECT_TRUE(a->Has("json"));
  EXPECT_EQ(*a->GetInt("top-k", 10, 1, 100), 3);
  EXPECT_FALSE(a->GetInt("filter", 10, 1, 100).ok());
  EXPECT_EQ(a->Unknown({"top-k", "json"}), std::vector<std::string>({"filter"}));
  EXPECT_FALSE(Args::Parse({"--limit"}, {}).ok());
  EXPECT_FALSE(Args::Parse({"--json=maybe"}, {"json"}).ok());
}

}  // namespace
}  // namespace quiver::client
