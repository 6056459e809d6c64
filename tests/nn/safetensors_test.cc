#include "nn/safetensors.h"

#include <cstring>
#include <fstream>

#include "gtest/gtest.h"
#include "nn/half.h"
#include "tests/testing/test_util.h"

namespace quiver::nn {
namespace {

using ::quiver::testing::StatusIs;

// A safetensors file from a header and raw data bytes.
std::string WriteFile(const std::string& path, const std::string& header, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  uint64_t n = header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header << data;
  return path;
}

std::string Bytes(const void* p, size_t n) { return std::string(static_cast<const char*>(p), n); }

TEST(SafetensorsTest, ReadsTensorsOfEachDtype) {
  testing::TempDir dir;
  const float f32[] = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, 8.0f};
  const uint16_t f16[] = {0x3C00, 0xC000};   // 1.0, -2.0
  const uint16_t bf16[] = {0x3FC0, 0x4049};  // 1.5, ~3.14
  const int32_t i32[] = {4, -1, 9};
  const double f64[] = {0.125};
  std::string data =
      Bytes(f32, 24) + Bytes(f16, 4) + Bytes(bf16, 4) + Bytes(i32, 12) + Bytes(f64, 8);
  const std::string header =
      R"({"__metadata__": {"format": "pt"},
          "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
          "h": {"dtype": "F16", "shape": [2], "data_offsets": [24, 28]},
          "b": {"dtype": "BF16", "shape": [2], "data_offsets": [28, 32]},
          "m": {"dtype": "I32", "shape": [3], "data_offsets": [32, 44]},
          "d": {"dtype": "F64", "shape": [1], "data_offsets": [44, 52]}})";
  auto f = SafetensorsFile::Open(WriteFile(dir.path() + "/a.safetensors", header, data));
  QUIVER_ASSERT_OK(f.status());
  EXPECT_EQ((*f)->metadata().at("format"), "pt");
  EXPECT_EQ(*(*f)->ReadFloat("w", {2, 3}), std::vector<float>(f32, f32 + 6));
  EXPECT_EQ(*(*f)->ReadFloat("h"), (std::vector<float>{1.0f, -2.0f}));
  EXPECT_FLOAT_EQ((*(*f)->ReadFloat("b"))[1], 3.140625f);
  EXPECT_EQ(*(*f)->ReadInt("m"), (std::vector<int64_t>{4, -1, 9}));
  EXPECT_EQ(*(*f)->ReadFloat("d"), (std::vector<float>{0.125f}));
  EXPECT_THAT((*f)->ReadFloat("w", {3, 2}).status(), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT((*f)->ReadFloat("missing").status(), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT((*f)->ReadInt("w").status(), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(SafetensorsTest, DamagedFilesAreErrorsNotCrashes) {
  testing::TempDir dir;
  const std::string ok = R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})";
  // Truncated data.
  EXPECT_THAT(
      SafetensorsFile::Open(WriteFile(dir.path() + "/t", ok, std::string(8, '\0'))).status(),
      StatusIs(absl::StatusCode::kDataLoss));
  // Size that does not match dtype x shape.
  EXPECT_THAT(SafetensorsFile::Open(
                  WriteFile(dir.path() + "/s",
                            R"({"w": {"dtype": "F32", "shape": [5], "data_offsets": [0, 16]}})",
                            std::string(16, '\0')))
                  .status(),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(SafetensorsFile::Open(
                  WriteFile(dir.path() + "/u",
                            R"({"w": {"dtype": "F8", "shape": [1], "data_offsets": [0, 1]}})", "x"))
                  .status(),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(SafetensorsFile::Open(WriteFile(dir.path() + "/j", "{not json", "")).status(),
              StatusIs(absl::StatusCode::kDataLoss));
  {
    std::ofstream out(dir.path() + "/short", std::ios::binary);
    out << "abc";
  }
  EXPECT_THAT(SafetensorsFile::Open(dir.path() + "/short").status(),
              StatusIs(absl::StatusCode::kDataLoss));
  {  // A header length beyond the file.
    std::ofstream out(dir.path() + "/big", std::ios::binary);
    uint64_t n = 1 << 20;
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << "{}";
  }
  EXPECT_THAT(SafetensorsFile::Open(dir.path() + "/big").status(),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(SafetensorsFile::Open(dir.path() + "/none").status(),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST(SafetensorsTest, HalfConversionCoversSpecialValues) {
  EXPECT_EQ(HalfToFloat(0x0000), 0.0f);
  EXPECT_EQ(HalfToFloat(0x7BFF), 65504.0f);
  EXPECT_FLOAT_EQ(HalfToFloat(0x0001), 5.9604645e-08f);  // Smallest subnormal.
  EXPECT_TRUE(std::isinf(HalfToFloat(0x7C00)));
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7E00)));
  EXPECT_EQ(HalfToFloat(0x3555), 0.333251953125f);
}

}  // namespace
}  // namespace quiver::nn
