#include "lorart/data/hf/json_fields.h"

#include "lorart/base/strings.h"
#include "lorart/data/hf/unicode.h"

namespace lorart {
namespace data {
namespace hf {

Status JsonFields::Error(const std::string& path, const std::string& message) const {
  return InvalidArgumentError(StrFormat("%s: %s: %s", file_.c_str(),
                                        path.empty() ? "(top level)" : path.c_str(),
                                        message.c_str()));
}

Status JsonFields::ExpectObject(const Json& value, const std::string& path) const {
  if (!value.is_object()) {
    return Error(path, StrFormat("must be an object, not %s", JsonTypeName(value)));
  }
  return OkStatus();
}

const Json* JsonFields::Find(const Json& object, const char* key) const {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

Status JsonFields::AsString(const Json& value, const std::string& path, std::string* out) const {
  if (!value.is_string()) {
    return Error(path, StrFormat("must be a string, not %s", JsonTypeName(value)));
  }
  *out = value.get_ref<const std::string&>();
  return OkStatus();
}

Status JsonFields::AsInt(const Json& value, const std::string& path, int64_t* out) const {
  if (value.is_number_unsigned()) {
    uint64_t v = value.get<uint64_t>();
    if (v > static_cast<uint64_t>(INT64_MAX)) return Error(path, "is too large");
    *out = static_cast<int64_t>(v);
    return OkStatus();
  }
  if (value.is_number_integer()) {
    *out = value.get<int64_t>();
    return OkStatus();
  }
  return Error(path, StrFormat("must be an integer, not %s", JsonTypeName(value)));
}

Status JsonFields::GetString(const Json& object, const std::string& path, const char* key,
                             bool required, std::string* out) const {
  const Json* v = Find(object, key);
  if (v == nullptr) {
    if (required) return Error(Join(path, key), "is missing");
    return OkStatus();
  }
  return AsString(*v, Join(path, key), out);
}

Status JsonFields::GetBool(const Json& object, const std::string& path, const char* key,
                           bool* out) const {
  const Json* v = Find(object, key);
  if (v == nullptr) return OkStatus();
  if (!v->is_boolean()) {
    return Error(Join(path, key), StrFormat("must be a boolean, not %s", JsonTypeName(*v)));
  }
  *out = v->get<bool>();
  return OkStatus();
}

Status JsonFields::GetInt(const Json& object, const std::string& path, const char* key,
                          bool required, int64_t* out) const {
  const Json* v = Find(object, key);
  if (v == nullptr) {
    if (required) return Error(Join(path, key), "is missing");
    return OkStatus();
  }
  return AsInt(*v, Join(path, key), out);
}

StatusOr<const Json*> JsonFields::GetArray(const Json& object, const std::string& path,
                                           const char* key) const {
  const Json* v = Find(object, key);
  if (v == nullptr) return Error(Join(path, key), "is missing");
  if (!v->is_array()) {
    return Error(Join(path, key), StrFormat("must be an array, not %s", JsonTypeName(*v)));
  }
  return v;
}

Status JsonFields::GetType(const Json& object, const std::string& path, std::string* type) const {
  LORA_RETURN_IF_ERROR(ExpectObject(object, path));
  return GetString(object, path, "type", true, type);
}

Status JsonFields::GetChar(const Json& object, const std::string& path, const char* key,
                           char32_t* out) const {
  std::string s;
  LORA_RETURN_IF_ERROR(GetString(object, path, key, true, &s));
  if (FindInvalidUtf8(s) != std::string::npos || CountChars(s) != 1) {
    return Error(Join(path, key), StrFormat("must be one character, not %s", Quote(s).c_str()));
  }
  size_t len;
  *out = DecodeUtf8(s, 0, &len);
  return OkStatus();
}

}  // namespace hf
}  // namespace data
}  // namespace lorart
