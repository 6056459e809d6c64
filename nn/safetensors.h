// Reads safetensors files (Hugging Face's tensor container): an 8-byte
// little-endian header length, a JSON header naming each tensor's dtype,
// shape and byte range, then the data. The file is memory-mapped; tensors
// are read in place or converted to float32.
#ifndef QUIVER_NN_SAFETENSORS_H_
#define QUIVER_NN_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace quiver::nn {

enum class DType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };
std::string_view DTypeName(DType t);
size_t DTypeSize(DType t);

struct TensorInfo {
  DType dtype;
  std::vector<int64_t> shape;
  std::span<const uint8_t> bytes;  // Into the mapping.
  int64_t elements() const;
};

class SafetensorsFile {
 public:
  // INVALID_ARGUMENT / DATA_LOSS with the file name for a malformed or
  // truncated file; NOT_FOUND when it does not exist.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();

  const std::map<std::string, TensorInfo, std::less<>>& tensors() const { return tensors_; }
  const std::map<std::string, std::string, std::less<>>& metadata() const { return metadata_; }
  bool Has(std::string_view name) const { return tensors_.contains(name); }

  // The tensor converted to float32, after checking it exists and has
  // `shape` (empty: any). Floating and integer dtypes convert.
  absl::StatusOr<std::vector<float>> ReadFloat(std::string_view name,
                                               const std::vector<int64_t>& shape = {}) const;
  // An integer tensor (I8..I64, U8) as int64.
  absl::StatusOr<std::vector<int64_t>> ReadInt(std::string_view name,
                                               const std::vector<int64_t>& shape = {}) const;
  absl::StatusOr<const TensorInfo*> Find(std::string_view name,
                                         const std::vector<int64_t>& shape = {}) const;
  const std::string& path() const { return path_; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  std::map<std::string, TensorInfo, std::less<>> tensors_;
  std::map<std::string, std::string, std::less<>> metadata_;
};

}  // namespace quiver::nn

#endif  // QUIVER_NN_SAFETENSORS_H_
