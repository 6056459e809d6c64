#include "proto/struct_json.h"

namespace quiver {

Json ValueToJson(const google::protobuf::Value& v) {
  using google::protobuf::Value;
  switch (v.kind_case()) {
    case Value::kNumberValue:
      return Json(v.number_value());
    case Value::kStringValue:
      return Json(v.string_value());
    case Value::kBoolValue:
      return Json(v.bool_value());
    case Value::kStructValue:
      return StructToJson(v.struct_value());
    case Value::kListValue: {
      Json::Array arr;
      for (const Value& e : v.list_value().values()) arr.push_back(ValueToJson(e));
      return Json(std::move(arr));
    }
    case Value::kNullValue:
    case Value::KIND_NOT_SET:
      break;
  }
  return Json();
}

Json StructToJson(const google::protobuf::Struct& s) {
  Json::Object obj;
  for (const auto& [k, v] : s.fields()) obj.emplace(k, ValueToJson(v));
  return Json(std::move(obj));
}

void JsonToValue(const Json& j, google::protobuf::Value* v) {
  switch (j.type()) {
    case Json::Type::kNull:
      v->set_null_value(google::protobuf::NULL_VALUE);
      break;
    case Json::Type::kBool:
      v->set_bool_value(j.as_bool());
      break;
    case Json::Type::kNumber:
      v->set_number_value(j.as_number());
      break;
    case Json::Type::kString:
      v->set_string_value(j.as_string());
      break;
    case Json::Type::kArray: {
      auto* list = v->mutable_list_value();
      for (const Json& e : j.as_array()) JsonToValue(e, list->add_values());
      break;
    }
    case Json::Type::kObject:
      JsonToStruct(j, v->mutable_struct_value());
      break;
  }
}

void JsonToStruct(const Json& j, google::protobuf::Struct* s) {
  for (const auto& [k, v] : j.as_object()) JsonToValue(v, &(*s->mutable_fields())[k]);
}

}  // namespace quiver
