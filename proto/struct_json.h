// google.protobuf.Struct/Value <-> quiver::Json, shared by the server and
// the CLI.
#ifndef QUIVER_PROTO_STRUCT_JSON_H_
#define QUIVER_PROTO_STRUCT_JSON_H_

#include "common/json.h"
#include "google/protobuf/struct.pb.h"

namespace quiver {

Json StructToJson(const google::protobuf::Struct& s);
Json ValueToJson(const google::protobuf::Value& v);
void JsonToValue(const Json& j, google::protobuf::Value* v);
// REQUIRES: j.is_object().
void JsonToStruct(const Json& j, google::protobuf::Struct* s);

}  // namespace quiver

#endif  // QUIVER_PROTO_STRUCT_JSON_H_
