#include "lorart/io/json.h"

#include <memory>
#include <unordered_set>
#include <vector>

#include "lorart/base/strings.h"

namespace lorart {

// nlohmann's parser is iterative, but its DOM and every recursive walk over it
// are not: bounding depth up front keeps hostile input like "[[[[...]]]]" from
// exhausting the stack anywhere.
bool JsonTooDeep(std::string_view text, size_t* offset) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // skip the escaped byte
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) {
        *offset = i;
        return true;
      }
    } else if (c == ']' || c == '}') {
      if (depth > 0) --depth;
    }
  }
  return false;
}

namespace {

struct Frame {
  bool is_object;
  std::string name;  // the key this value is under, "" at the top
  std::unordered_set<std::string> keys;
};

}  // namespace

struct DuplicateKeys::State {
  std::vector<Frame> stack;
  std::string pending_key;
  std::string duplicate;  // the first duplicate key found, as a message
};

DuplicateKeys::DuplicateKeys() : state_(std::make_shared<State>()) {}

const std::string& DuplicateKeys::first() const { return state_->duplicate; }

Json::parser_callback_t DuplicateKeys::Callback() {
  std::shared_ptr<State> st = state_;
  return [st](int /*depth*/, Json::parse_event_t event, Json& parsed) -> bool {
    std::vector<Frame>& stack = st->stack;
    switch (event) {
      case Json::parse_event_t::object_start:
      case Json::parse_event_t::array_start: {
        std::string name;
        if (!stack.empty())
          name = stack.back().is_object ? st->pending_key : stack.back().name + "[]";
        stack.push_back(Frame{event == Json::parse_event_t::object_start, std::move(name), {}});
        break;
      }
      case Json::parse_event_t::object_end:
      case Json::parse_event_t::array_end:
        if (!stack.empty()) stack.pop_back();
        break;
      case Json::parse_event_t::key: {
        const std::string* key = parsed.get_ptr<const std::string*>();
        if (key == nullptr || stack.empty()) break;
        if (st->duplicate.empty() && !stack.back().keys.insert(*key).second) {
          if (stack.size() == 1) {
            st->duplicate = StrFormat("has the key %s twice", Quote(*key).c_str());
          } else {
            st->duplicate = StrFormat("has the key %s twice in %s", Quote(*key).c_str(),
                                      Quote(stack.back().name).c_str());
          }
        }
        st->pending_key = *key;
        break;
      }
      case Json::parse_event_t::value:
        break;
    }
    return true;
  };
}

const char* JsonTypeName(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::object: return "an object";
    case Json::value_t::array: return "an array";
    case Json::value_t::string: return "a string";
    case Json::value_t::boolean: return "a boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return "an integer";
    case Json::value_t::number_float: return "a number";
    case Json::value_t::binary: return "binary";
    case Json::value_t::discarded: return "discarded";
  }
  return "unknown";
}

std::string JsonSnippet(const Json& value, size_t max_bytes) {
  std::string text;
  try {
    text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  } catch (...) {
    return "<unprintable>";
  }
  return EscapeForMessage(text, max_bytes);
}

std::string JsonExceptionReason(const std::exception& e) {
  std::string reason = e.what();
  size_t bracket = reason.find("] ");
  if (reason.rfind("[json.exception.", 0) == 0 && bracket != std::string::npos) {
    reason.erase(0, bracket + 2);
  }
  return reason;
}

Status ParseJson(std::string_view text, const std::string& path, const char* what, Json* out) {
  *out = Json();
  size_t deep_at = 0;
  if (JsonTooDeep(text, &deep_at)) {
    return InvalidArgumentError(StrFormat("%s: %s nests deeper than %d levels at byte %zu",
                                          path.c_str(), what, kMaxJsonDepth, deep_at));
  }
  DuplicateKeys dups;
  Json::parser_callback_t callback = dups.Callback();
  try {
    *out = Json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/true,
                       /*ignore_comments=*/false);
  } catch (const Json::parse_error& e) {
    // e.what(): "[json.exception.parse_error.101] parse error at line 1,
    // column 5: syntax error while parsing value - ...; last read: '...'".
    const std::string reason = JsonExceptionReason(e);
    *out = Json();
    return InvalidArgumentError(StrFormat("%s: %s is not valid JSON: %s (byte %zu)", path.c_str(),
                                          what, EscapeForMessage(reason, 300).c_str(), e.byte));
  } catch (const Json::exception& e) {
    // e.g. out_of_range.406 "number overflow parsing '1e400'".
    const std::string reason = JsonExceptionReason(e);
    *out = Json();
    return InvalidArgumentError(StrFormat("%s: %s is not valid JSON: %s", path.c_str(), what,
                                          EscapeForMessage(reason, 300).c_str()));
  } catch (const std::exception& e) {
    *out = Json();
    return InvalidArgumentError(StrFormat("%s: %s could not be parsed: %s", path.c_str(), what,
                                          EscapeForMessage(e.what(), 300).c_str()));
  }
  if (!dups.first().empty()) {
    *out = Json();
    return InvalidArgumentError(StrFormat("%s: %s %s", path.c_str(), what, dups.first().c_str()));
  }
  return OkStatus();
}

}  // namespace lorart
