#include "storage/record.h"

#include "gtest/gtest.h"
#include "storage/collection_config.h"
#include "storage/metadata.h"
#include "tests/testing/test_util.h"

namespace quiver::storage {
namespace {

using ::quiver::testing::StatusIs;

StoredRecord Sample() {
  StoredRecord s;
  s.label = 123456789;
  s.record.id = "doc-1";
  s.record.values = {0.5f, -1.25f, 3e-8f};
  s.record.sparse = {{3, 17, 400000}, {0.1f, 0.2f, 0.3f}};
  s.record.metadata =
      *MetadataFromJson(*ParseJson(R"({"genre":"drama","year":2001,"ok":false,"tags":["x","y"]})"));
  s.record.text = "안녕하세요 hello";
  return s;
}

TEST(RecordTest, EncodingRoundTrips) {
  const StoredRecord s = Sample();
  auto back = DecodeStoredRecord(s.record.id, EncodeStoredRecord(s));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->label, s.label);
  EXPECT_EQ(back->record, s.record);
}

TEST(RecordTest, EveryTruncationIsDataLoss) {
  const std::string enc = EncodeStoredRecord(Sample());
  for (size_t cut = 0; cut < enc.size(); ++cut) {
    EXPECT_THAT(DecodeStoredRecord("x", std::string_view(enc.data(), cut)),
                StatusIs(absl::StatusCode::kDataLoss))
        << cut;
  }
  std::string future = enc;
  future[0] = 99;
  EXPECT_THAT(DecodeStoredRecord("x", future), StatusIs(absl::StatusCode::kDataLoss));
}

TEST(MetadataTest, RejectsValuesOutsideTheModel) {
  for (const char* bad : {R"({"a": null})", R"({"a": {"b": 1}})", R"({"a": [1, 2]})",
                          R"({"a": ["x", true]})", R"([1])", R"({"": 1})"}) {
    EXPECT_THAT(MetadataFromJson(*ParseJson(bad)), StatusIs(absl::StatusCode::kInvalidArgument))
        << bad;
  }
  auto md = MetadataFromJson(*ParseJson(R"({"a": "x", "b": [], "c": 1e300})"));
  ASSERT_TRUE(md.ok());
  EXPECT_EQ(MetadataToJson(*md).Dump(), R"({"a":"x","b":[],"c":1.0000000000000001e+300})");
  EXPECT_EQ(MetadataJsonBytes(*md), MetadataToJson(*md).Dump().size());
}

TEST(CollectionConfigTest, ValidatesNamesDimensionsAndParameters) {
  CollectionConfig c;
  c.name = "docs_1-x";
  c.dimension = 128;
  EXPECT_TRUE(c.Validate().ok());
  for (const char* bad : {"", "-x", "a b", "ü", "a/b"}) {
    c.name = bad;
    EXPECT_THAT(c.Validate(), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
  c.name = std::string(kMaxCollectionNameBytes + 1, 'a');
  EXPECT_THAT(c.Validate(), StatusIs(absl::StatusCode::kInvalidArgument));
  c.name = "ok";
  c.dimension = 0;
  EXPECT_THAT(c.Validate(), StatusIs(absl::StatusCode::kInvalidArgument));
  c.dimension = kMaxDimension + 1;
  EXPECT_THAT(c.Validate(), StatusIs(absl::StatusCode::kInvalidArgument));
  c.dimension = 8;
  c.index = IndexKind::kHnsw;
  c.hnsw.m = 1;
  EXPECT_THAT(c.Validate(), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(CollectionConfigTest, CatalogEntryRoundTripsAndRejectsDamage) {
  CollectionMeta meta;
  meta.id = 7;
  meta.created_unix_ms = 1700000000000;
  meta.config.name = "docs";
  meta.config.dimension = 384;
  meta.config.metric = ann::Metric::kL2;
  meta.config.embedding_model = "minilm";
  const std::string enc = EncodeCollectionMeta(meta);
  auto back = DecodeCollectionMeta(enc);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->id, 7u);
  EXPECT_EQ(back->created_unix_ms, meta.created_unix_ms);
  EXPECT_EQ(back->config.dimension, 384u);
  EXPECT_EQ(back->config.metric, ann::Metric::kL2);
  EXPECT_EQ(back->config.embedding_model, "minilm");
  EXPECT_THAT(DecodeCollectionMeta(enc.substr(0, enc.size() - 1)),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST(CollectionConfigTest, QuantizationRoundTripsAndOlderEntriesDecodeWithoutIt) {
  CollectionMeta meta;
  meta.id = 3;
  meta.config.name = "q";
  meta.config.dimension = 768;
  meta.config.index = IndexKind::kHnsw;
  meta.config.hnsw.quantization = ann::Quantization::kSq8;
  meta.config.hnsw.oversampling = 4.5f;
  meta.config.hnsw.rescore = false;
  meta.config.hnsw.full_vectors_on_disk = true;
  const std::string enc = EncodeCollectionMeta(meta);
  auto back = DecodeCollectionMeta(enc);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->config.hnsw.quantization, ann::Quantization::kSq8);
  EXPECT_EQ(back->config.hnsw.oversampling, 4.5f);
  EXPECT_FALSE(back->config.hnsw.rescore);
  EXPECT_TRUE(back->config.hnsw.full_vectors_on_disk);
  // An entry written before quantization existed ends 6 bytes earlier.
  meta.config.hnsw = HnswParams{};
  const std::string plain = EncodeCollectionMeta(meta);
  auto old = DecodeCollectionMeta(plain.substr(0, plain.size() - 6));
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->config.hnsw.quantization, ann::Quantization::kNone);
  EXPECT_TRUE(old->config.hnsw.rescore);
  std::string bad_flags = enc;
  bad_flags.back() = 9;
  EXPECT_THAT(DecodeCollectionMeta(bad_flags), StatusIs(absl::StatusCode::kDataLoss));

  CollectionConfig c = meta.config;
  c.hnsw.quantization = ann::Quantization::kSq8;
  EXPECT_TRUE(c.Validate().ok());
  c.hnsw.oversampling = 0.5f;
  EXPECT_THAT(c.Validate(), StatusIs(absl::StatusCode::kInvalidArgument));
  c.hnsw.oversampling = 3;
  c.index = IndexKind::kFlat;
  EXPECT_THAT(c.Validate(), StatusIs(absl::StatusCode::kInvalidArgument));
  c.index = IndexKind::kHnsw;
  c.hnsw.quantization = ann::Quantization::kNone;
  c.hnsw.full_vectors_on_disk = true;
  EXPECT_THAT(c.Validate(), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace quiver::storage
