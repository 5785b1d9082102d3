// Training records from JSONL files: one JSON object per line, in one of four
// formats detected per record by its keys (chat, Alpaca, prompt/completion,
// raw text). Errors name "file:line" and the field. See docs/data.md.
#ifndef LORART_DATA_JSONL_H_
#define LORART_DATA_JSONL_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "lorart/base/status.h"

namespace lorart {
namespace data {

enum class Role { kSystem, kUser, kAssistant };
const char* RoleName(Role role);  // "system", "user", "assistant"

enum class RecordFormat {
  kChat,              // {"messages": [{"role": ..., "content": ...}, ...]}
  kAlpaca,            // {"instruction": ..., "input": ... (optional), "output": ...}
  kPromptCompletion,  // {"prompt": ..., "completion": ...}
  kText,              // {"text": ...}  (continued pretraining)
};
constexpr int kNumRecordFormats = 4;
const char* RecordFormatName(RecordFormat format);  // "chat", "alpaca", "prompt_completion", "text"

struct Message {
  Role role;
  std::string content;
};

// One training record. Alpaca and prompt/completion records are mapped to a
// user message and an assistant message when parsed (Alpaca's user message is
// `instruction + "\n\n" + input` when `input` is present and not empty); a
// text record has no messages, only `text`.
struct Record {
  RecordFormat format = RecordFormat::kText;
  std::vector<Message> messages;  // chat, Alpaca, prompt/completion
  std::string text;               // text
  int64_t line = 0;               // 1-based line in its file
};

// One line of help listing the accepted formats, used in error messages.
extern const char kAcceptedFormats[];

// Parses one non-empty JSONL line. `where` ("file:line") starts every error
// message (INVALID_ARGUMENT): "train.jsonl:7: invalid JSON: ...",
// "train.jsonl:7: messages[2].role 'user' must be 'assistant' ...".
// Unknown keys beside a format's keys are ignored (datasets often carry an
// "id" or "source"); keys of two formats in one record are an error.
Status ParseRecord(std::string_view line, const std::string& where, Record* out);

// Reads every record of a JSONL file. Lines holding only whitespace are
// skipped; "\r\n" line ends are accepted. A file with no records is an error.
// The first error stops the read.
StatusOr<std::vector<Record>> ReadJsonl(const std::string& path);

// Streams the records of a JSONL file (memory-mapped, one line parsed at a
// time): `fn` gets each record, which it may move from. The first error (of
// a line or of `fn`) stops the read; a file with no records is an error.
Status ForEachRecord(const std::string& path, const std::function<Status(Record&)>& fn);

// A preference pair for DPO: {"prompt", "chosen", "rejected"}, each a string
// (the prompt a user message, the responses assistant messages) or a list of
// chat messages (the prompt's ending with a user message, the responses'
// assistant messages). `chosen` and `rejected` are the whole conversations
// (prompt, then the response), checked as chat records are.
struct PreferenceRecord {
  Record chosen, rejected;
  int64_t line = 0;
};
// Errors name "file:line" and the field.
Status ParsePreferenceRecord(std::string_view line, const std::string& where,
                             PreferenceRecord* out);
StatusOr<std::vector<PreferenceRecord>> ReadPreferenceJsonl(const std::string& path);
// Streams the preference pairs of a JSONL file, as ForEachRecord.
Status ForEachPreferenceRecord(const std::string& path,
                               const std::function<Status(PreferenceRecord&)>& fn);

// The same over text already in memory; `path` only names it in messages.
StatusOr<std::vector<Record>> ParseJsonl(std::string_view text, const std::string& path);

}  // namespace data
}  // namespace lorart

#endif  // LORART_DATA_JSONL_H_
