// Helpers shared by the test suites.
#ifndef QUIVER_TESTS_TESTING_TEST_UTIL_H_
#define QUIVER_TESTS_TESTING_TEST_UTIL_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"

namespace quiver::testing {

// A fresh directory under $TMPDIR, removed with everything in it when the
// object is destroyed.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// $QUIVER_FIXTURES, or ../shared/fixtures next to the repository.
std::string FixturesDir();
// FixturesDir()/relative when it exists; "" otherwise.
std::string FixturePath(const std::string& relative);

// Rows of a texmex .fvecs / .ivecs file (int32 dimension, then that many
// float32 / int32 values, little-endian, per row). Empty on error.
std::vector<std::vector<float>> ReadFvecs(const std::string& path);
std::vector<std::vector<int32_t>> ReadIvecs(const std::string& path);

// The shell command that runs tests/embed/bert_reference.py (Debian's
// /usr/bin/python3 with python3-torch): a random BERT (or, with `cross`, a
// cross-encoder) written to out_dir as a Hugging Face directory, and its
// outputs for the token ids in ids_json to out_dir/expected.json.
std::string BertReferenceCommand(const std::string& out_dir, const std::string& tokenizer_json,
                                 const std::string& ids_json, bool cross);
// Whether /usr/bin/python3 imports torch (the reference needs it).
bool HaveTorch();
// The interpreter the reference scripts run under (Debian's, with python3-torch).
inline constexpr char kPython[] = "/usr/bin/python3";
// Why a test that needs the reference skips when HaveTorch() is false.
inline constexpr char kNoTorch[] =
    "/usr/bin/python3 has no torch (Debian python3-torch; scripts/setup.sh test installs it)";

// The whole file's bytes; "" when it cannot be read.
std::string ReadFileBytes(const std::string& path);

// The largest |got[i] - want[i]|; infinity when the sizes differ or any
// value is NaN or infinite (std::max skips a NaN, so a plain running
// maximum lets NaN results pass a tolerance check).
double MaxAbsError(std::span<const float> got, std::span<const float> want);

std::string QuiverdPath();
std::string QuiverCliPath();

// The status of an absl::Status or absl::StatusOr.
inline const absl::Status& StatusOf(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& s) {
  return s.status();
}

// Matches an absl::Status (or StatusOr) with the given code.
MATCHER_P(StatusIs, code, "") {
  const absl::Status& s = StatusOf(arg);
  if (s.code() == code) return true;
  *result_listener << "status is " << s.ToString();
  return false;
}

}  // namespace quiver::testing

#define QUIVER_ASSERT_OK(expr)                                                              \
  do {                                                                                      \
    const auto& quiver_s_ = (expr);                                                         \
    ASSERT_TRUE(quiver_s_.ok()) << #expr << ": " << ::quiver::testing::StatusOf(quiver_s_); \
  } while (0)

#endif  // QUIVER_TESTS_TESTING_TEST_UTIL_H_
