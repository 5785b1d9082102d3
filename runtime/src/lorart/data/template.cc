#include "lorart/data/template.h"

#include <utility>

#include "lorart/base/strings.h"

namespace lorart {
namespace data {
namespace {

// Python's str.strip() for ASCII whitespace, as Llama-2's reference code
// strips user and assistant contents.
std::string Strip(std::string_view s) {
  const char* kSpace = " \t\n\r\f\v";
  size_t begin = s.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return "";
  size_t end = s.find_last_not_of(kSpace);
  return std::string(s.substr(begin, end - begin + 1));
}

RenderedPart Special(RenderedPart::Kind kind, bool target) {
  RenderedPart part;
  part.kind = kind;
  part.target = target;
  return part;
}

RenderedPart Text(std::string text, std::vector<std::pair<size_t, size_t>> ranges = {}) {
  RenderedPart part;
  part.text = std::move(text);
  part.target_ranges = std::move(ranges);
  return part;
}

// Llama-2 chat (Meta's llama/generation.py `chat_completion`):
//   B_INST, E_INST = "[INST]", "[/INST]"
//   B_SYS, E_SYS = "<<SYS>>\n", "\n<</SYS>>\n\n"
//   per (user, assistant): encode(f"{B_INST} {user.strip()} {E_INST} {answer.strip()} ",
//                                 bos=True, eos=True)
//   a trailing user:       encode(f"{B_INST} {user.strip()} {E_INST}", bos=True, eos=False)
// with the system prompt folded into the first user message before that
// message is stripped (so the user's leading whitespace stays after E_SYS).
RenderedDocument RenderLlama2(const std::vector<Message>& messages) {
  RenderedDocument doc;
  size_t i = 0;
  std::string system_block;
  if (!messages.empty() && messages[0].role == Role::kSystem) {
    system_block = "<<SYS>>\n" + messages[0].content + "\n<</SYS>>\n\n";
    i = 1;
  }
  bool first = true;
  for (; i < messages.size(); i += 2) {
    std::string user = messages[i].content;
    if (first) user = system_block + user;
    first = false;
    doc.push_back(Special(RenderedPart::Kind::kBos, false));
    std::string text = "[INST] " + Strip(user) + " [/INST]";
    if (i + 1 < messages.size()) {
      // The reply is " {assistant} " as in the Hugging Face template
      // (' ' + content.strip() + ' ' + eos_token): the space after [/INST]
      // is the reply's, so its "▁" is trained on; at inference the prompt
      // ends with "[/INST]" and the model writes the space.
      size_t begin = text.size();
      text += " " + Strip(messages[i + 1].content) + " ";
      size_t end = text.size();
      doc.push_back(Text(std::move(text), {{begin, end}}));
      doc.push_back(Special(RenderedPart::Kind::kEos, true));
    } else {
      doc.push_back(Text(std::move(text)));
    }
  }
  return doc;
}

RenderedDocument RenderSimple(const std::vector<Message>& messages) {
  RenderedDocument doc;
  doc.push_back(Special(RenderedPart::Kind::kBos, false));
  std::string text;
  for (const Message& m : messages) {
    switch (m.role) {
      case Role::kSystem: text += "### System:\n"; break;
      case Role::kUser: text += "### User:\n"; break;
      case Role::kAssistant: text += "### Assistant:\n"; break;
    }
    if (m.role == Role::kAssistant) {
      size_t begin = text.size();
      text += m.content + "\n";
      size_t end = text.size();
      doc.push_back(Text(std::move(text), {{begin, end}}));
      doc.push_back(Special(RenderedPart::Kind::kEos, true));
      text.clear();
    } else {
      text += m.content + "\n";
    }
  }
  if (!text.empty()) doc.push_back(Text(std::move(text)));
  return doc;
}

}  // namespace

StatusOr<ChatTemplate> ParseChatTemplate(std::string_view name) {
  if (name == "llama2") return ChatTemplate::kLlama2;
  if (name == "simple") return ChatTemplate::kSimple;
  return InvalidArgumentError(
      StrFormat("chat template %s is not one of: llama2, simple", Quote(name).c_str()));
}

const char* ChatTemplateName(ChatTemplate chat_template) {
  switch (chat_template) {
    case ChatTemplate::kLlama2: return "llama2";
    case ChatTemplate::kSimple: return "simple";
  }
  return "?";
}

StatusOr<Objective> ParseObjective(std::string_view name) {
  if (name == "sft") return Objective::kSft;
  if (name == "pretrain") return Objective::kPretrain;
  return InvalidArgumentError(
      StrFormat("data objective %s is not one of: sft, pretrain", Quote(name).c_str()));
}

const char* ObjectiveName(Objective objective) {
  switch (objective) {
    case Objective::kSft: return "sft";
    case Objective::kPretrain: return "pretrain";
  }
  return "?";
}

RenderedDocument Render(const Record& record, ChatTemplate chat_template, Objective objective) {
  RenderedDocument doc;
  if (record.format == RecordFormat::kText) {
    doc.push_back(Special(RenderedPart::Kind::kBos, false));
    doc.push_back(Text(record.text));
    doc.push_back(Special(RenderedPart::Kind::kEos, true));
    objective = Objective::kPretrain;  // raw text: every token is a target
  } else if (chat_template == ChatTemplate::kLlama2) {
    doc = RenderLlama2(record.messages);
  } else {
    doc = RenderSimple(record.messages);
  }
  if (objective == Objective::kPretrain) {
    for (RenderedPart& part : doc) {
      part.target = true;
      part.target_ranges.clear();
      if (part.kind == RenderedPart::Kind::kText) part.target_ranges.push_back({0, part.text.size()});
    }
  }
  return doc;
}

Status Tokenize(const RenderedDocument& document, const Tokenizer& tokenizer, Example* out) {
  out->tokens.clear();
  out->is_target.clear();
  std::vector<int32_t> ids;
  std::vector<TokenSpan> spans;
  for (const RenderedPart& part : document) {
    switch (part.kind) {
      case RenderedPart::Kind::kBos:
        if (tokenizer.bos_id() < 0) break;  // the model family uses no BOS
        out->tokens.push_back(tokenizer.bos_id());
        out->is_target.push_back(part.target ? 1 : 0);
        break;
      case RenderedPart::Kind::kEos:
        if (tokenizer.eos_id() < 0) {
          return InvalidArgumentError(StrFormat(
              "%s: the tokenizer has no EOS token (templates end each reply and text with one)",
              tokenizer.path().c_str()));
        }
        out->tokens.push_back(tokenizer.eos_id());
        out->is_target.push_back(part.target ? 1 : 0);
        break;
      case RenderedPart::Kind::kText: {
        LORA_RETURN_IF_ERROR(tokenizer.Encode(part.text, &ids, &spans));
        for (size_t k = 0; k < ids.size(); ++k) {
          size_t b = spans[k].begin, e = spans[k].end;
          bool target = false;
          for (const auto& [rb, re] : part.target_ranges) {
            if (b < e ? (b < re && rb < e) : (rb <= b && b < re)) {
              target = true;
              break;
            }
          }
          out->tokens.push_back(ids[k]);
          out->is_target.push_back(target ? 1 : 0);
        }
        break;
      }
    }
  }
  if (!out->is_target.empty()) out->is_target[0] = 0;
  return OkStatus();
}

Status RecordToExample(const Record& record, ChatTemplate chat_template, Objective objective,
                       const Tokenizer& tokenizer, Example* out) {
  LORA_RETURN_IF_ERROR(Tokenize(Render(record, chat_template, objective), tokenizer, out));
  out->line = record.line;
  return OkStatus();
}

}  // namespace data
}  // namespace lorart
