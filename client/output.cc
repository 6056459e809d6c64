#include "client/output.h"

#include <algorithm>

#include "common/strings.h"
#include "google/protobuf/util/json_util.h"

namespace quiver::client {

std::string Table::Render() const {
  std::vector<size_t> width(header_.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
      width[i] = std::max(width[i], row[i].size());
    }
  };
  measure(header_);
  for (const auto& r : rows_) measure(r);
  std::string out;
  auto emit = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(width[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  };
  emit(header_);
  for (const auto& r : rows_) emit(r);
  return out;
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  opts.always_print_primitive_fields = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out, opts);
  return out;
}

std::string StructToCompactJson(const google::protobuf::Struct& s) {
  if (s.fields().empty()) return "{}";
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(s, &out);
  return out;
}

std::string PreviewFloats(const google::protobuf::RepeatedField<float>& values, int n) {
  std::string out = "[";
  for (int i = 0; i < values.size() && i < n; ++i) {
    if (i > 0) out += ", ";
    StrAppend(&out, values[i]);
  }
  if (values.size() > n) StrAppend(&out, ", ... (", values.size(), ")");
  return out + "]";
}

}  // namespace quiver::client
