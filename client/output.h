// Human-readable tables and JSON output for the quiver CLI.
#ifndef QUIVER_CLIENT_OUTPUT_H_
#define QUIVER_CLIENT_OUTPUT_H_

#include <string>
#include <vector>

#include "google/protobuf/message.h"
#include "google/protobuf/struct.pb.h"

namespace quiver::client {

// A text table with left-aligned columns separated by two spaces.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string Render() const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// The message as JSON with proto field names, zero values included.
std::string ToJson(const google::protobuf::Message& message);
// A compact JSON rendering of a Struct ("{}" when empty).
std::string StructToCompactJson(const google::protobuf::Struct& s);
// The first `n` values then "..." when there are more.
std::string PreviewFloats(const google::protobuf::RepeatedField<float>& values, int n = 4);

}  // namespace quiver::client

#endif  // QUIVER_CLIENT_OUTPUT_H_
