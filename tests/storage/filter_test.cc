#include "storage/filter.h"

#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace quiver::storage {
namespace {

using ::quiver::testing::StatusIs;

Metadata Md(const char* json) { return *MetadataFromJson(*ParseJson(json)); }

bool Match(const char* filter, const char* metadata) {
  auto j = ParseJson(filter);
  EXPECT_TRUE(j.ok()) << filter;
  auto f = Filter::Parse(*j);
  EXPECT_TRUE(f.ok()) << filter << ": " << f.status();
  return f.ok() && f->Matches(Md(metadata));
}

absl::Status ParseError(const char* filter) {
  auto j = ParseJson(filter);
  EXPECT_TRUE(j.ok()) << filter;
  return Filter::Parse(*j).status();
}

constexpr char kDoc[] =
    R"({"genre": "drama", "year": 2001, "rating": 4.5, "free": true, "tags": ["a", "b"]})";

TEST(FilterTest, ImplicitAndExplicitEquality) {
  EXPECT_TRUE(Match(R"({"genre": "drama"})", kDoc));
  EXPECT_FALSE(Match(R"({"genre": "comedy"})", kDoc));
  EXPECT_TRUE(Match(R"({"genre": {"$eq": "drama"}})", kDoc));
  EXPECT_TRUE(Match(R"({"year": 2001})", kDoc));
  EXPECT_TRUE(Match(R"({"free": true})", kDoc));
  EXPECT_FALSE(Match(R"({"free": 1})", kDoc));  // A boolean is not a number.
  EXPECT_FALSE(Match(R"({"year": "2001"})", kDoc));
}

TEST(FilterTest, NotEqualMatchesMissingFields) {
  EXPECT_TRUE(Match(R"({"genre": {"$ne": "comedy"}})", kDoc));
  EXPECT_FALSE(Match(R"({"genre": {"$ne": "drama"}})", kDoc));
  EXPECT_TRUE(Match(R"({"director": {"$ne": "x"}})", kDoc));
}

TEST(FilterTest, NumericComparisonsMatchOnlyNumbers) {
  EXPECT_TRUE(Match(R"({"year": {"$gt": 2000}})", kDoc));
  EXPECT_FALSE(Match(R"({"year": {"$gt": 2001}})", kDoc));
  EXPECT_TRUE(Match(R"({"year": {"$gte": 2001}})", kDoc));
  EXPECT_TRUE(Match(R"({"rating": {"$lt": 5}})", kDoc));
  EXPECT_TRUE(Match(R"({"rating": {"$lte": 4.5}})", kDoc));
  EXPECT_FALSE(Match(R"({"genre": {"$gt": 0}})", kDoc));
  EXPECT_FALSE(Match(R"({"missing": {"$lt": 10}})", kDoc));
  EXPECT_TRUE(Match(R"({"year": {"$gte": 2000, "$lt": 2002}})", kDoc));
  EXPECT_FALSE(Match(R"({"year": {"$gte": 2000, "$lt": 2001}})", kDoc));
}

TEST(FilterTest, InAndNinWorkOnScalarsAndLists) {
  EXPECT_TRUE(Match(R"({"genre": {"$in": ["comedy", "drama"]}})", kDoc));
  EXPECT_FALSE(Match(R"({"genre": {"$in": ["comedy"]}})", kDoc));
  EXPECT_TRUE(Match(R"({"year": {"$in": [1999, 2001]}})", kDoc));
  EXPECT_TRUE(Match(R"({"genre": {"$nin": ["comedy"]}})", kDoc));
  EXPECT_TRUE(Match(R"({"missing": {"$nin": ["comedy"]}})", kDoc));
  EXPECT_TRUE(Match(R"({"tags": "a"})", kDoc));
  EXPECT_FALSE(Match(R"({"tags": "z"})", kDoc));
  EXPECT_TRUE(Match(R"({"tags": {"$in": ["z", "b"]}})", kDoc));
  EXPECT_FALSE(Match(R"({"tags": {"$nin": ["z", "b"]}})", kDoc));
  EXPECT_FALSE(Match(R"({"tags": {"$ne": "a"}})", kDoc));
}

TEST(FilterTest, Exists) {
  EXPECT_TRUE(Match(R"({"genre": {"$exists": true}})", kDoc));
  EXPECT_FALSE(Match(R"({"genre": {"$exists": false}})", kDoc));
  EXPECT_TRUE(Match(R"({"nope": {"$exists": false}})", kDoc));
}

TEST(FilterTest, LogicalOperatorsNest) {
  EXPECT_TRUE(Match(R"({"$or": [{"genre": "comedy"}, {"year": 2001}]})", kDoc));
  EXPECT_FALSE(Match(R"({"$or": [{"genre": "comedy"}, {"year": 1999}]})", kDoc));
  EXPECT_TRUE(
      Match(R"({"$and": [{"genre": "drama"}, {"$or": [{"free": false}, {"tags": "b"}]}]})", kDoc));
  EXPECT_FALSE(Match(R"({"genre": "drama", "$or": [{"free": false}, {"tags": "q"}]})", kDoc));
}

TEST(FilterTest, EmptyFilterMatchesEverything) {
  auto f = Filter::Parse(*ParseJson("{}"));
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->MatchesAll());
  EXPECT_TRUE(f->Matches(Metadata{}));
  EXPECT_TRUE(Filter().MatchesAll());
}

TEST(FilterTest, MalformedFiltersAreRejectedWithClearMessages) {
  EXPECT_THAT(ParseError(R"({"genre": {"$regex": "x"}})"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_NE(ParseError(R"({"genre": {"$regex": "x"}})").message().find("$regex"),
            std::string::npos);
  EXPECT_THAT(ParseError(R"({"$not": {"a": 1}})"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseError(R"({"year": {"$gt": "2000"}})"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseError(R"({"year": {"$in": 2000}})"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseError(R"({"year": {"$in": []}})"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseError(R"({"year": {"$in": [{"a": 1}]}})"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseError(R"({"year": {"$exists": 1}})"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseError(R"({"$and": []})"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseError(R"({"$or": {"a": 1}})"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseError(R"({"a": null})"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseError(R"({"a": [1, 2]})"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseError(R"({"a": {}})"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseError(R"([1])"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(FilterTest, TooDeepFiltersAreRejected) {
  std::string f = R"({"a": 1})";
  for (int i = 0; i < kMaxFilterDepth + 1; ++i) f = R"({"$and": [)" + f + "]}";
  EXPECT_THAT(ParseError(f.c_str()), StatusIs(absl::StatusCode::kInvalidArgument));
  std::string ok = R"({"a": 1})";
  for (int i = 0; i < kMaxFilterDepth - 2; ++i) ok = R"({"$and": [)" + ok + "]}";
  EXPECT_TRUE(ParseError(ok.c_str()).ok());
}

TEST(FilterTest, TooLargeFiltersAreRejected) {
  std::string f = R"({"a": {"$in": [)";
  for (int i = 0; i <= kMaxFilterTerms; ++i) f += (i ? "," : "") + std::to_string(i);
  f += "]}}";
  EXPECT_THAT(ParseError(f.c_str()), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace quiver::storage
