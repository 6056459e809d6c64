#include "tests/testing/test_util.h"

#include <stdlib.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

namespace quiver::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base != nullptr && *base ? base : "/tmp") + "/quiver-test-XXXXXX";
  char* made = mkdtemp(tmpl.data());
  if (made == nullptr) std::abort();
  path_ = made;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string FixturesDir() {
  const char* env = std::getenv("QUIVER_FIXTURES");
  if (env != nullptr && *env != '\0') return env;
  return QUIVER_DEFAULT_FIXTURES;
}

std::string FixturePath(const std::string& relative) {
  std::string p = FixturesDir() + "/" + relative;
  std::error_code ec;
  return std::filesystem::exists(p, ec) ? p : "";
}

namespace {
template <typename T>
std::vector<std::vector<T>> ReadVecs(const std::string& path) {
  std::vector<std::vector<T>> rows;
  std::ifstream in(path, std::ios::binary);
  int32_t dim;
  while (in.read(reinterpret_cast<char*>(&dim), sizeof(dim))) {
    if (dim <= 0 || dim > (1 << 20)) return {};
    std::vector<T> row(dim);
    if (!in.read(reinterpret_cast<char*>(row.data()), dim * sizeof(T))) return {};
    rows.push_back(std::move(row));
  }
  return rows;
}
}  // namespace

std::vector<std::vector<float>> ReadFvecs(const std::string& path) { return ReadVecs<float>(path); }
std::vector<std::vector<int32_t>> ReadIvecs(const std::string& path) {
  return ReadVecs<int32_t>(path);
}

std::string QuiverdPath() { return QUIVERD_PATH; }
std::string QuiverCliPath() { return QUIVER_CLI_PATH; }

std::string BertReferenceCommand(const std::string& out_dir, const std::string& tokenizer_json,
                                 const std::string& ids_json, bool cross) {
  return std::string(kPython) + " " + QUIVER_SOURCE_DIR + "/tests/embed/bert_reference.py " +
         out_dir + " " + tokenizer_json + " " + ids_json + (cross ? " --cross" : "");
}

bool HaveTorch() {
  return std::system((std::string(kPython) + " -c 'import torch' >/dev/null 2>&1").c_str()) == 0;
}

std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

double MaxAbsError(std::span<const float> got, std::span<const float> want) {
  if (got.size() != want.size()) return std::numeric_limits<double>::infinity();
  double err = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i]) || !std::isfinite(want[i]))
      return std::numeric_limits<double>::infinity();
    err = std::max(err, std::fabs(double{got[i]} - want[i]));
  }
  return err;
}

}  // namespace quiver::testing
