// Checked JSON parsing for untrusted files (safetensors headers, indexes,
// configs): never throws, bounds nesting depth, rejects duplicate keys.
#ifndef LORART_IO_JSON_H_
#define LORART_IO_JSON_H_

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "lorart/base/status.h"

namespace lorart {

using Json = nlohmann::json;

// Deepest nesting of arrays/objects accepted (the top-level value is depth 1).
constexpr int kMaxJsonDepth = 64;

// Whether brackets outside strings nest deeper than kMaxJsonDepth; `offset`
// receives the byte where they first do. Check before parsing untrusted JSON
// with nlohmann directly (ParseJson does): the parsed value's destructor and
// every walk over it recurse.
bool JsonTooDeep(std::string_view text, size_t* offset);

// The reason of a nlohmann exception without its "[json.exception.KIND.N] "
// prefix: "number overflow parsing '1e400'".
std::string JsonExceptionReason(const std::exception& e);

// Finds duplicate keys while nlohmann parses: pass Callback() to
// Json::parse, then first() is "" or the first duplicate as a message
// ("has the key \"x\" twice in \"y\""). Python's json keeps the last of
// two equal keys silently; configs that have them are refused instead.
class DuplicateKeys {
 public:
  DuplicateKeys();
  Json::parser_callback_t Callback();
  const std::string& first() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// Parses `text` into `out`. Errors (INVALID_ARGUMENT) are one line, start with
// "<path>: <what> ", and say why: "is not valid JSON: syntax error at byte 17
// ...", "nests deeper than 64 levels at byte 130", "has a duplicate key
// 'x' in 'y'". `what` is e.g. "header" or "index".
Status ParseJson(std::string_view text, const std::string& path, const char* what, Json* out);

// A JSON value for a message: compact, escaped to one line, cut after
// `max_bytes` with "...". Never throws.
std::string JsonSnippet(const Json& value, size_t max_bytes = 60);

// "a number", "a string", "an object", ... for "must be X, not Y" messages.
const char* JsonTypeName(const Json& value);

}  // namespace lorart

#endif  // LORART_IO_JSON_H_
