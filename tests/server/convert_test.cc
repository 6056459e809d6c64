#include "server/convert.h"

#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace quiver::server {
namespace {

using ::quiver::testing::StatusIs;

TEST(ConvertTest, StructAndJsonRoundTrip) {
  auto j = ParseJson(R"({"a": 1, "b": "x", "c": true, "d": ["p", "q"], "e": {"f": null}})");
  ASSERT_TRUE(j.ok());
  google::protobuf::Struct s;
  JsonToStruct(*j, &s);
  EXPECT_EQ(StructToJson(s), *j);
}

TEST(ConvertTest, RecordRoundTripAndMetadataErrorsNameTheRecord) {
  v1::Record p;
  p.set_id("r1");
  p.add_values(1);
  p.add_values(2);
  (*p.mutable_metadata()->mutable_fields())["k"].set_string_value("v");
  auto r = RecordFromProto(p);
  ASSERT_TRUE(r.ok());
  v1::Record back;
  RecordToProto(*r, &back);
  EXPECT_EQ(back.SerializeAsString(), p.SerializeAsString());

  (*p.mutable_metadata()->mutable_fields())["bad"].mutable_struct_value();
  auto bad = RecordFromProto(p);
  EXPECT_THAT(bad, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_NE(bad.status().message().find("r1"), std::string::npos);
}

TEST(ConvertTest, IndexSettingsAndUnbuiltEngines) {
  v1::CollectionConfig c;
  c.set_name("x");
  c.set_dimension(4);
  EXPECT_TRUE(ConfigFromProto(c).ok());
  EXPECT_EQ(ConfigFromProto(c)->metric, ann::Metric::kCosine);
  v1::CollectionConfig hnsw = c;
  hnsw.mutable_index()->mutable_hnsw()->set_m(24);
  auto h = ConfigFromProto(hnsw);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->index, storage::IndexKind::kHnsw);
  EXPECT_EQ(h->hnsw.m, 24u);
  EXPECT_EQ(h->hnsw.ef_construction, 200u);  // Zero means the default.
  hnsw.mutable_index()->mutable_hnsw()->set_m(1);
  EXPECT_THAT(ConfigFromProto(hnsw), StatusIs(absl::StatusCode::kInvalidArgument));
  v1::CollectionConfig text = c;
  text.mutable_text()->set_enabled(true);
  auto t = ConfigFromProto(text);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->text.analyzer, "standard");
  EXPECT_FLOAT_EQ(t->text.bm25_k1, 0.9f);  // Both zero: the defaults.
  EXPECT_FLOAT_EQ(t->text.bm25_b, 0.4f);
  text.mutable_text()->set_analyzer("klingon");
  EXPECT_THAT(ConfigFromProto(text), StatusIs(absl::StatusCode::kInvalidArgument));
  text.mutable_text()->set_analyzer("english");
  text.mutable_text()->set_bm25_b(2);
  EXPECT_THAT(ConfigFromProto(text), StatusIs(absl::StatusCode::kInvalidArgument));
  v1::CollectionConfig embedding = c;
  embedding.mutable_embedding()->set_model("minilm");
  auto e = ConfigFromProto(embedding);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->embedding_model, "minilm");
  embedding.set_dimension(0);  // Left to the model.
  EXPECT_TRUE(ConfigFromProto(embedding).ok());
  v1::CollectionConfig bad = c;
  bad.set_metric(static_cast<v1::Metric>(42));
  EXPECT_THAT(ConfigFromProto(bad), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ConvertTest, AbslCodesMapOneToOne) {
  EXPECT_EQ(ToGrpcStatus(absl::NotFoundError("x")).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(ToGrpcStatus(absl::DataLossError("x")).error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_EQ(ToGrpcStatus(absl::InvalidArgumentError("msg")).error_message(), "msg");
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

}  // namespace
}  // namespace quiver::server
