#include "lorart/data/jsonl.h"

#include <utility>

#include "lorart/base/strings.h"
#include "lorart/io/json.h"
#include "lorart/io/mapped_file.h"

namespace lorart {
namespace data {

const char kAcceptedFormats[] =
    "accepted formats: chat {\"messages\": [{\"role\": \"system|user|assistant\", \"content\": "
    "...}]}, Alpaca {\"instruction\", \"input\" (optional), \"output\"}, {\"prompt\", "
    "\"completion\"}, {\"text\"}";

const char* RoleName(Role role) {
  switch (role) {
    case Role::kSystem: return "system";
    case Role::kUser: return "user";
    case Role::kAssistant: return "assistant";
  }
  return "?";
}

const char* RecordFormatName(RecordFormat format) {
  switch (format) {
    case RecordFormat::kChat: return "chat";
    case RecordFormat::kAlpaca: return "alpaca";
    case RecordFormat::kPromptCompletion: return "prompt_completion";
    case RecordFormat::kText: return "text";
  }
  return "?";
}

namespace {

bool IsBlank(std::string_view line) {
  for (char c : line) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\f' && c != '\v') return false;
  }
  return true;
}

// A value for "must be X, not ..." messages: its type and a snippet of it
// ("an integer 5", "an array [1, 2]"), or just "null".
std::string Described(const Json& value) {
  if (value.is_null()) return "null";
  return std::string(JsonTypeName(value)) + " " + JsonSnippet(value);
}

// `obj[key]` as a string, or an error naming the field.
Status GetString(const Json& obj, const char* key, const std::string& where, std::string* out) {
  const Json& value = obj.at(key);
  if (!value.is_string()) {
    return InvalidArgumentError(StrFormat("%s: field '%s' must be a string, not %s", where.c_str(),
                                          key, Described(value).c_str()));
  }
  *out = value.get<std::string>();
  return OkStatus();
}

Status ParseRole(const Json& value, const std::string& field, const std::string& where,
                 Role* out) {
  if (!value.is_string()) {
    return InvalidArgumentError(StrFormat("%s: %s must be a string, not %s", where.c_str(),
                                          field.c_str(), Described(value).c_str()));
  }
  const std::string& role = value.get_ref<const std::string&>();
  if (role == "system") {
    *out = Role::kSystem;
  } else if (role == "user") {
    *out = Role::kUser;
  } else if (role == "assistant") {
    *out = Role::kAssistant;
  } else {
    return InvalidArgumentError(StrFormat("%s: %s %s is not a role (system, user or assistant)",
                                          where.c_str(), field.c_str(), Quote(role).c_str()));
  }
  return OkStatus();
}

Status ParseChat(const Json& obj, const std::string& where, Record* out) {
  const Json& messages = obj.at("messages");
  if (!messages.is_array()) {
    return InvalidArgumentError(StrFormat("%s: field 'messages' must be an array, not %s",
                                          where.c_str(), JsonTypeName(messages)));
  }
  if (messages.empty()) {
    return InvalidArgumentError(StrFormat("%s: field 'messages' is empty", where.c_str()));
  }
  bool has_assistant = false;
  for (size_t i = 0; i < messages.size(); ++i) {
    const Json& m = messages[i];
    std::string name = StrFormat("messages[%zu]", i);
    if (!m.is_object()) {
      return InvalidArgumentError(StrFormat("%s: %s must be an object with 'role' and "
                                            "'content', not %s",
                                            where.c_str(), name.c_str(), JsonTypeName(m)));
    }
    for (const char* key : {"role", "content"}) {
      if (!m.contains(key)) {
        return InvalidArgumentError(
            StrFormat("%s: %s has no '%s'", where.c_str(), name.c_str(), key));
      }
    }
    Message message;
    LORA_RETURN_IF_ERROR(ParseRole(m.at("role"), name + ".role", where, &message.role));
    const Json& content = m.at("content");
    if (!content.is_string()) {
      return InvalidArgumentError(StrFormat("%s: %s.content must be a string, not %s",
                                            where.c_str(), name.c_str(),
                                            Described(content).c_str()));
    }
    message.content = content.get<std::string>();
    // An optional system message first, then user/assistant alternating,
    // starting with user.
    bool has_system = i == 0 ? message.role == Role::kSystem
                             : out->messages[0].role == Role::kSystem;
    size_t first_turn = has_system ? 1 : 0;
    Role expected = Role::kSystem;
    if (i >= first_turn) expected = (i - first_turn) % 2 == 0 ? Role::kUser : Role::kAssistant;
    if (message.role != expected) {
      const std::string role = RoleName(message.role);
      if (message.role == Role::kSystem) {
        return InvalidArgumentError(StrFormat(
            "%s: %s.role 'system' is only allowed as the first message", where.c_str(),
            name.c_str()));
      }
      if (i == 0 || (i == 1 && first_turn == 1)) {
        return InvalidArgumentError(StrFormat(
            "%s: %s.role %s must be 'user' (a conversation starts with an optional system "
            "message, then a user message)",
            where.c_str(), name.c_str(), Quote(role).c_str()));
      }
      return InvalidArgumentError(StrFormat(
          "%s: %s.role %s must be '%s' (user and assistant messages alternate)", where.c_str(),
          name.c_str(), Quote(role).c_str(), RoleName(expected)));
    }
    has_assistant |= message.role == Role::kAssistant;
    out->messages.push_back(std::move(message));
  }
  if (!has_assistant) {
    return InvalidArgumentError(StrFormat(
        "%s: messages has no assistant message (there is nothing to train on)", where.c_str()));
  }
  return OkStatus();
}

}  // namespace

Status ParseRecord(std::string_view line, const std::string& where, Record* out) {
  *out = Record();
  Json obj;
  Status parsed = ParseJson(line, where, "record", &obj);
  if (!parsed.ok()) {
    const std::string prefix = where + ": record is not valid JSON: ";
    std::string message = parsed.message();
    if (message.rfind(prefix, 0) == 0) {
      return InvalidArgumentError(where + ": invalid JSON: " + message.substr(prefix.size()));
    }
    return parsed;
  }
  if (!obj.is_object()) {
    return InvalidArgumentError(StrFormat("%s: a record must be a JSON object, not %s; %s",
                                          where.c_str(), Described(obj).c_str(), kAcceptedFormats));
  }

  // Which formats does the record have keys of?
  struct Shape {
    RecordFormat format;
    const char* name;
    std::vector<const char*> required;
    std::vector<const char*> optional;
  };
  static const Shape kShapes[] = {
      {RecordFormat::kChat, "chat", {"messages"}, {}},
      {RecordFormat::kAlpaca, "Alpaca", {"instruction", "output"}, {"input"}},
      {RecordFormat::kPromptCompletion, "prompt/completion", {"prompt", "completion"}, {}},
      {RecordFormat::kText, "text", {"text"}, {}},
  };
  std::vector<const Shape*> matched;
  std::vector<std::string> matched_keys;
  for (const Shape& shape : kShapes) {
    for (const char* key : shape.required) {
      if (obj.contains(key)) {
        matched.push_back(&shape);
        matched_keys.push_back(key);
        break;
      }
    }
  }
  if (matched.empty()) {
    std::string keys;
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      if (!keys.empty()) keys += ", ";
      keys += Quote(it.key(), 40);
      if (keys.size() > 200) {
        keys += ", ...";
        break;
      }
    }
    return InvalidArgumentError(StrFormat("%s: unknown record format (keys: %s); %s",
                                          where.c_str(), keys.empty() ? "none" : keys.c_str(),
                                          kAcceptedFormats));
  }
  if (matched.size() > 1) {
    return InvalidArgumentError(StrFormat(
        "%s: record has keys of two formats: '%s' (%s) and '%s' (%s); %s", where.c_str(),
        matched_keys[0].c_str(), matched[0]->name, matched_keys[1].c_str(), matched[1]->name,
        kAcceptedFormats));
  }
  const Shape& shape = *matched[0];
  for (const char* key : shape.required) {
    if (!obj.contains(key)) {
      std::string needs;
      for (const char* k : shape.required) needs += StrFormat("%s'%s'", needs.empty() ? "" : " and ", k);
      return InvalidArgumentError(StrFormat("%s: field '%s' is missing (%s records need %s)",
                                            where.c_str(), key, shape.name, needs.c_str()));
    }
  }
  out->format = shape.format;
  switch (shape.format) {
    case RecordFormat::kChat:
      return ParseChat(obj, where, out);
    case RecordFormat::kAlpaca: {
      std::string instruction, input, output;
      LORA_RETURN_IF_ERROR(GetString(obj, "instruction", where, &instruction));
      if (obj.contains("input") && !obj.at("input").is_null()) {
        LORA_RETURN_IF_ERROR(GetString(obj, "input", where, &input));
      }
      LORA_RETURN_IF_ERROR(GetString(obj, "output", where, &output));
      if (!input.empty()) instruction += "\n\n" + input;
      out->messages.push_back(Message{Role::kUser, std::move(instruction)});
      out->messages.push_back(Message{Role::kAssistant, std::move(output)});
      return OkStatus();
    }
    case RecordFormat::kPromptCompletion: {
      std::string prompt, completion;
      LORA_RETURN_IF_ERROR(GetString(obj, "prompt", where, &prompt));
      LORA_RETURN_IF_ERROR(GetString(obj, "completion", where, &completion));
      out->messages.push_back(Message{Role::kUser, std::move(prompt)});
      out->messages.push_back(Message{Role::kAssistant, std::move(completion)});
      return OkStatus();
    }
    case RecordFormat::kText:
      return GetString(obj, "text", where, &out->text);
  }
  return InternalError("unreachable record format");
}

// Calls fn(line, "path:N", N) for every non-blank line (1-based N), without
// a UTF-8 byte order mark or a trailing CR; stops at the first error.
template <typename Fn>
Status ForEachJsonlLine(std::string_view text, const std::string& path, Fn fn) {
  // A UTF-8 byte order mark (some editors write one) is not part of the JSON.
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  int64_t line_number = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    if (IsBlank(line)) continue;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    LORA_RETURN_IF_ERROR(
        fn(line, StrFormat("%s:%lld", path.c_str(), static_cast<long long>(line_number)),
           line_number));
  }
  return OkStatus();
}

// The records of `text`, one at a time, then the empty file's error.
static Status ForEachRecordIn(std::string_view text, const std::string& path,
                              const std::function<Status(Record&)>& fn) {
  int64_t count = 0;
  LORA_RETURN_IF_ERROR(ForEachJsonlLine(
      text, path, [&](std::string_view line, const std::string& where, int64_t number) {
        Record record;
        LORA_RETURN_IF_ERROR(ParseRecord(line, where, &record));
        record.line = number;
        ++count;
        return fn(record);
      }));
  if (count == 0) {
    return InvalidArgumentError(StrFormat("%s: no examples (the file is empty or has only blank "
                                          "lines; %s)",
                                          path.c_str(), kAcceptedFormats));
  }
  return OkStatus();
}

StatusOr<std::vector<Record>> ParseJsonl(std::string_view text, const std::string& path) {
  std::vector<Record> records;
  LORA_RETURN_IF_ERROR(ForEachRecordIn(text, path, [&](Record& r) {
    records.push_back(std::move(r));
    return OkStatus();
  }));
  return records;
}

Status ForEachRecord(const std::string& path, const std::function<Status(Record&)>& fn) {
  MappedFile file;
  LORA_RETURN_IF_ERROR(file.Open(path));
  return ForEachRecordIn(file.view(), path, fn);
}

Status ParsePreferenceRecord(std::string_view line, const std::string& where,
                             PreferenceRecord* out) {
  *out = PreferenceRecord();
  Json obj;
  LORA_RETURN_IF_ERROR(ParseJson(line, where, "record", &obj));
  if (!obj.is_object())
    return InvalidArgumentError(StrFormat("%s: a preference record must be an object with "
                                          "\"prompt\", \"chosen\" and \"rejected\", not %s",
                                          where.c_str(), JsonTypeName(obj)));
  for (const char* key : {"prompt", "chosen", "rejected"})
    if (!obj.contains(key))
      return InvalidArgumentError(StrFormat("%s: no field '%s' (a preference record has "
                                            "\"prompt\", \"chosen\" and \"rejected\")",
                                            where.c_str(), key));
  // Each field as a list of chat messages.
  auto messages = [&](const char* key, const char* role, Json* list) -> Status {
    const Json& v = obj.at(key);
    if (v.is_string()) {
      *list = Json::array({{{"role", role}, {"content", v.get<std::string>()}}});
      return OkStatus();
    }
    if (!v.is_array() || v.empty())
      return InvalidArgumentError(
          StrFormat("%s: field '%s' must be a string or a non-empty list "
                    "of chat messages, not %s",
                    where.c_str(), key, Described(v).c_str()));
    *list = v;
    return OkStatus();
  };
  Json prompt, chosen, rejected;
  LORA_RETURN_IF_ERROR(messages("prompt", "user", &prompt));
  LORA_RETURN_IF_ERROR(messages("chosen", "assistant", &chosen));
  LORA_RETURN_IF_ERROR(messages("rejected", "assistant", &rejected));
  for (auto [key, list] : {std::pair<const char*, const Json*>{"chosen", &chosen},
                           {"rejected", &rejected}}) {
    for (size_t i = 0; i < list->size(); ++i) {
      const Json& m = (*list)[i];
      if (!m.is_object() || !m.contains("role") || m.at("role") != "assistant")
        return InvalidArgumentError(StrFormat("%s: %s[%zu] must be an assistant message (the "
                                              "prompt holds the rest of the conversation)",
                                              where.c_str(), key, i));
    }
    Json convo = {{"messages", prompt}};
    for (const Json& m : *list) convo["messages"].push_back(m);
    Record& r = std::string(key) == "chosen" ? out->chosen : out->rejected;
    LORA_RETURN_IF_ERROR(ParseChat(convo, StrFormat("%s: prompt + %s", where.c_str(), key), &r));
    r.format = RecordFormat::kChat;
  }
  return OkStatus();
}

Status ForEachPreferenceRecord(const std::string& path,
                               const std::function<Status(PreferenceRecord&)>& fn) {
  MappedFile file;
  LORA_RETURN_IF_ERROR(file.Open(path));
  int64_t count = 0;
  LORA_RETURN_IF_ERROR(ForEachJsonlLine(
      file.view(), path, [&](std::string_view line, const std::string& where, int64_t number) {
        PreferenceRecord r;
        LORA_RETURN_IF_ERROR(ParsePreferenceRecord(line, where, &r));
        r.line = r.chosen.line = r.rejected.line = number;
        ++count;
        return fn(r);
      }));
  if (count == 0)
    return InvalidArgumentError(path + ": no preference pairs (the file is empty or has only "
                                       "blank lines)");
  return OkStatus();
}

StatusOr<std::vector<PreferenceRecord>> ReadPreferenceJsonl(const std::string& path) {
  std::vector<PreferenceRecord> records;
  LORA_RETURN_IF_ERROR(ForEachPreferenceRecord(path, [&](PreferenceRecord& r) {
    records.push_back(std::move(r));
    return OkStatus();
  }));
  return records;
}

StatusOr<std::vector<Record>> ReadJsonl(const std::string& path) {
  MappedFile file;
  LORA_RETURN_IF_ERROR(file.Open(path));
  return ParseJsonl(file.view(), path);
}

}  // namespace data
}  // namespace lorart
