#include "nn/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/json.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "nn/half.h"

namespace quiver::nn {
namespace {

struct DTypeEntry {
  std::string_view name;
  DType type;
  size_t size;
};
constexpr DTypeEntry kDTypes[] = {
    {"F64", DType::kF64, 8},   {"F32", DType::kF32, 4}, {"F16", DType::kF16, 2},
    {"BF16", DType::kBF16, 2}, {"I64", DType::kI64, 8}, {"I32", DType::kI32, 4},
    {"I16", DType::kI16, 2},   {"I8", DType::kI8, 1},   {"U8", DType::kU8, 1},
    {"BOOL", DType::kBool, 1},
};

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) StrAppend(&s, i ? ", " : "", shape[i]);
  return s + "]";
}

template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace

std::string_view DTypeName(DType t) {
  for (const auto& e : kDTypes) {
    if (e.type == t) return e.name;
  }
  return "?";
}

size_t DTypeSize(DType t) {
  for (const auto& e : kDTypes) {
    if (e.type == t) return e.size;
  }
  return 0;
}

int64_t TensorInfo::elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const std::string why = std::strerror(errno);
    if (errno == ENOENT) return absl::NotFoundError(StrCat(path, ": no such file"));
    return absl::FailedPreconditionError(StrCat("cannot open ", path, ": ", why));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return absl::FailedPreconditionError(StrCat("cannot stat ", path));
  }
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->size_ = static_cast<size_t>(st.st_size);
  if (f->size_ < 8) {
    ::close(fd);
    return absl::DataLossError(StrCat(path, ": truncated safetensors file (", f->size_, " bytes)"));
  }
  f->map_ = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (f->map_ == MAP_FAILED) {
    f->map_ = nullptr;
    return absl::FailedPreconditionError(StrCat("cannot map ", path));
  }
  const auto* base = static_cast<const uint8_t*>(f->map_);
  const uint64_t header_len = Load<uint64_t>(base);
  if (header_len > f->size_ - 8 || header_len > (100u << 20)) {
    return absl::DataLossError(StrCat(path, ": header length ", header_len,
                                      " does not fit the file of ", f->size_, " bytes"));
  }
  auto header =
      ParseJson(std::string_view(reinterpret_cast<const char*>(base + 8), header_len), 16);
  if (!header.ok() || !header->is_object()) {
    return absl::DataLossError(StrCat(path, ": the header is not a JSON object"));
  }
  const uint8_t* data = base + 8 + header_len;
  const uint64_t data_size = f->size_ - 8 - header_len;
  for (const auto& [name, entry] : header->as_object()) {
    if (name == "__metadata__") {
      if (entry.is_object()) {
        for (const auto& [k, v] : entry.as_object()) {
          if (v.is_string()) f->metadata_[k] = v.as_string();
        }
      }
      continue;
    }
    // (A copy: clang 14 cannot capture a structured binding.)
    auto bad = [&, tensor = std::string_view(name)](std::string_view why) {
      return absl::DataLossError(StrCat(path, ": tensor ", Quoted(tensor), ": ", why));
    };
    const Json* dtype = entry.Find("dtype");
    const Json* shape = entry.Find("shape");
    const Json* offsets = entry.Find("data_offsets");
    if (dtype == nullptr || !dtype->is_string() || shape == nullptr || !shape->is_array() ||
        offsets == nullptr || !offsets->is_array() || offsets->as_array().size() != 2) {
      return bad("needs dtype, shape and data_offsets");
    }
    TensorInfo info;
    bool known = false;
    for (const auto& e : kDTypes) {
      if (e.name == dtype->as_string()) {
        info.dtype = e.type;
        known = true;
      }
    }
    if (!known) return bad(StrCat("unsupported dtype ", dtype->as_string()));
    for (const Json& d : shape->as_array()) {
      if (!d.is_number() || d.as_number() < 0 ||
          d.as_number() != static_cast<int64_t>(d.as_number())) {
        return bad("shape must hold non-negative integers");
      }
      info.shape.push_back(static_cast<int64_t>(d.as_number()));
    }
    const Json& b = offsets->as_array()[0];
    const Json& e = offsets->as_array()[1];
    if (!b.is_number() || !e.is_number() || b.as_number() < 0 || e.as_number() < b.as_number()) {
      return bad("malformed data_offsets");
    }
    const uint64_t begin = static_cast<uint64_t>(b.as_number());
    const uint64_t end = static_cast<uint64_t>(e.as_number());
    if (end > data_size) {
      return bad(StrCat("data ends at byte ", end, " but the file holds ", data_size,
                        " data bytes (truncated?)"));
    }
    if (end - begin != static_cast<uint64_t>(info.elements()) * DTypeSize(info.dtype)) {
      return bad(StrCat("holds ", end - begin, " bytes; ", DTypeName(info.dtype), " ",
                        ShapeString(info.shape), " needs ",
                        info.elements() * static_cast<int64_t>(DTypeSize(info.dtype))));
    }
    info.bytes = std::span<const uint8_t>(data + begin, end - begin);
    f->tensors_.emplace(name, std::move(info));
  }
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(map_, size_);
}

absl::StatusOr<const TensorInfo*> SafetensorsFile::Find(std::string_view name,
                                                        const std::vector<int64_t>& shape) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(StrCat(path_, ": missing tensor \"", name, "\""));
  }
  if (!shape.empty() && it->second.shape != shape) {
    return absl::InvalidArgumentError(StrCat(path_, ": tensor \"", name, "\" has shape ",
                                             ShapeString(it->second.shape), "; expected ",
                                             ShapeString(shape)));
  }
  return &it->second;
}

absl::StatusOr<std::vector<float>> SafetensorsFile::ReadFloat(
    std::string_view name, const std::vector<int64_t>& shape) const {
  ASSIGN_OR_RETURN(const TensorInfo* t, Find(name, shape));
  const size_t n = static_cast<size_t>(t->elements());
  std::vector<float> out(n);
  const uint8_t* p = t->bytes.data();
  switch (t->dtype) {
    case DType::kF32:
      std::memcpy(out.data(), p, n * 4);
      break;
    case DType::kF64:
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(Load<double>(p + 8 * i));
      break;
    case DType::kF16:
      for (size_t i = 0; i < n; ++i) out[i] = HalfToFloat(Load<uint16_t>(p + 2 * i));
      break;
    case DType::kBF16:
      for (size_t i = 0; i < n; ++i) out[i] = Bf16ToFloat(Load<uint16_t>(p + 2 * i));
      break;
    default: {
      ASSIGN_OR_RETURN(std::vector<int64_t> ints, ReadInt(name, shape));
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(ints[i]);
    }
  }
  return out;
}

absl::StatusOr<std::vector<int64_t>> SafetensorsFile::ReadInt(
    std::string_view name, const std::vector<int64_t>& shape) const {
  ASSIGN_OR_RETURN(const TensorInfo* t, Find(name, shape));
  const size_t n = static_cast<size_t>(t->elements());
  std::vector<int64_t> out(n);
  const uint8_t* p = t->bytes.data();
  for (size_t i = 0; i < n; ++i) {
    switch (t->dtype) {
      case DType::kI64:
        out[i] = Load<int64_t>(p + 8 * i);
        break;
      case DType::kI32:
        out[i] = Load<int32_t>(p + 4 * i);
        break;
      case DType::kI16:
        out[i] = Load<int16_t>(p + 2 * i);
        break;
      case DType::kI8:
        out[i] = static_cast<int8_t>(p[i]);
        break;
      case DType::kU8:
      case DType::kBool:
        out[i] = p[i];
        break;
      default:
        return absl::InvalidArgumentError(StrCat(path_, ": tensor \"", name, "\" is ",
                                                 DTypeName(t->dtype), ", not an integer type"));
    }
  }
  return out;
}

}  // namespace quiver::nn
