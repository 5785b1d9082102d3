// Typed, never-throwing access to the fields of tokenizer.json, with errors
// that name the file and the JSON path ("tokenizer.json: model.merges[17]:
// must be a string or a pair of strings, not an integer").
#ifndef LORART_DATA_HF_JSON_FIELDS_H_
#define LORART_DATA_HF_JSON_FIELDS_H_

#include <cstdint>
#include <string>

#include "lorart/base/status.h"
#include "lorart/io/json.h"

namespace lorart {
namespace data {
namespace hf {

class JsonFields {
 public:
  explicit JsonFields(std::string file) : file_(std::move(file)) {}
  const std::string& file() const { return file_; }

  // INVALID_ARGUMENT "<file>: <path>: <message>".
  Status Error(const std::string& path, const std::string& message) const;
  static std::string Join(const std::string& path, const char* key) {
    return path.empty() ? std::string(key) : path + "." + key;
  }
  static std::string Index(const std::string& path, size_t i) {
    return path + "[" + std::to_string(i) + "]";
  }

  // `value` must be an object.
  Status ExpectObject(const Json& value, const std::string& path) const;
  // The field, or null when absent (a JSON null counts as absent).
  const Json* Find(const Json& object, const char* key) const;
  // Required/optional typed fields; optional ones keep *out when absent.
  Status GetString(const Json& object, const std::string& path, const char* key, bool required,
                   std::string* out) const;
  Status GetBool(const Json& object, const std::string& path, const char* key, bool* out) const;
  Status GetInt(const Json& object, const std::string& path, const char* key, bool required,
                int64_t* out) const;
  // A required string field holding exactly one character (Metaspace's
  // replacement, a delimiter).
  Status GetChar(const Json& object, const std::string& path, const char* key,
                 char32_t* out) const;
  // A required array field.
  StatusOr<const Json*> GetArray(const Json& object, const std::string& path, const char* key) const;
  // The "type" of a component object.
  Status GetType(const Json& object, const std::string& path, std::string* type) const;
  // `value` as a string / integer, with the path for the message.
  Status AsString(const Json& value, const std::string& path, std::string* out) const;
  Status AsInt(const Json& value, const std::string& path, int64_t* out) const;

 private:
  std::string file_;
};

}  // namespace hf
}  // namespace data
}  // namespace lorart

#endif  // LORART_DATA_HF_JSON_FIELDS_H_
