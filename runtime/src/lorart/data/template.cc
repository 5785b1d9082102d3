#include "lorart/data/template.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <limits>
#include <utility>

#include "lorart/base/strings.h"
#include "lorart/data/hf/unicode.h"
#include "lorart/data/jinja/jinja.h"
#include "lorart/io/files.h"
#include "lorart/io/json.h"

namespace lorart {
namespace data {
namespace {

// Built-in templates written in Jinja, for models that ship none or for data
// meant for another family. Each is the widely used form of its family's
// format (ChatML as Qwen/SmolLM2 write it; Llama 3 Instruct; Mistral
// Instruct with the system prompt before the first user message).
struct BuiltinTemplate {
  const char* name;
  const char* source;
  // The special tokens it writes: a tokenizer without them cannot use it.
  std::vector<std::string> special_tokens;
};
const BuiltinTemplate kBuiltinTemplates[] = {
    {"chatml",
     "{% for message in messages %}"
     "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
     "{% endfor %}"
     "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
     {"<|im_start|>", "<|im_end|>"}},
    {"llama3",
     "{{ bos_token }}"
     "{% for message in messages %}"
     "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + "
     "message['content'] | trim + '<|eot_id|>' }}"
     "{% endfor %}"
     "{% if add_generation_prompt %}"
     "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
     {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"}},
    {"mistral",
     "{{ bos_token }}"
     "{% if messages[0]['role'] == 'system' %}"
     "{% set system = messages[0]['content'] + '\n\n' %}{% set turns = messages[1:] %}"
     "{% else %}{% set system = '' %}{% set turns = messages %}{% endif %}"
     "{% for message in turns %}"
     "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
     "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
     "{% endif %}"
     "{% if message['role'] == 'user' %}"
     "{% if loop.first %}{{ '[INST] ' + system + message['content'] + ' [/INST]' }}"
     "{% else %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endif %}"
     "{% else %}{{ message['content'] + eos_token }}{% endif %}"
     "{% endfor %}",
     {}},
};

std::string BuiltinNames() {
  std::string names = "llama2, simple";
  for (const BuiltinTemplate& t : kBuiltinTemplates) names += std::string(", ") + t.name;
  return names;
}

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

// Provenance labels of a Jinja render: 0 is the template's own text (and
// bos_token/eos_token, which it may write as special tokens); message i's
// content is 2i + 1, its role 2i + 2.
uint32_t ContentLabel(size_t i) { return static_cast<uint32_t>(2 * i + 1); }
uint32_t RoleLabel(size_t i) { return static_cast<uint32_t>(2 * i + 2); }

// The context transformers' apply_chat_template gives a template.
jinja::Value ChatContext(const std::vector<Message>& messages, const ChatTemplate& chat_template,
                         const Tokenizer& tokenizer, bool add_generation_prompt) {
  std::vector<jinja::Value> list;
  list.reserve(messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    jinja::Value m = jinja::Value::Dict();
    m.Insert("role", jinja::Value::String(RoleName(messages[i].role), RoleLabel(i)));
    m.Insert("content", jinja::Value::String(messages[i].content, ContentLabel(i)));
    list.push_back(std::move(m));
  }
  jinja::Value ctx = jinja::Value::Dict();
  ctx.Insert("messages", jinja::Value::List(std::move(list)));
  ctx.Insert("add_generation_prompt", jinja::Value::Bool(add_generation_prompt));
  ctx.Insert("tools", jinja::Value::None());
  ctx.Insert("documents", jinja::Value::None());
  // transformers passes the special tokens the tokenizer has (None for the
  // others, which templates test with `is defined`/`is none` or print as "").
  auto special = [&](const char* name, int32_t id, const std::string& text) {
    if (!text.empty()) {
      ctx.Insert(name, jinja::Value::String(text));
    } else if (id >= 0) {
      ctx.Insert(name, jinja::Value::String(tokenizer.IdToPiece(id)));
    }
  };
  special("bos_token", tokenizer.bos_id(), tokenizer.bos_token());
  special("eos_token", tokenizer.eos_id(), tokenizer.eos_token());
  special("unk_token", tokenizer.unk_id(), "");
  for (const ChatTemplate::Variable& v : chat_template.variables()) ctx.Insert(v.name, *v.value);
  return ctx;
}

StatusOr<RenderedPart> RenderJinja(const std::vector<Message>& messages,
                                   const ChatTemplate& chat_template, const Tokenizer& tokenizer,
                                   bool add_generation_prompt) {
  const jinja::Template* t = chat_template.jinja();
  if (t == nullptr) return InternalError("RenderJinja needs a Jinja template");
  for (const std::string& token : chat_template.special_tokens()) {
    int32_t id = tokenizer.PieceToId(token);
    if (id < 0 || !tokenizer.IsControl(id)) {
      return InvalidArgumentError(StrFormat(
          "chat template '%s' writes %s, which is not a special token of %s: use the model's own "
          "template (--template auto) or one written for its tokens",
          chat_template.name().c_str(), Quote(token).c_str(), tokenizer.path().c_str()));
    }
  }
  jinja::Value context = ChatContext(messages, chat_template, tokenizer, add_generation_prompt);
  LORA_ASSIGN_OR_RETURN(jinja::Rendered out, t->Render(context));
  RenderedPart part;
  part.text = std::move(out.text);
  part.targets_end_at_special = true;
  for (const jinja::LabelRun& run : out.runs) {
    if (run.label == 0) {
      if (!part.special_ranges.empty() && part.special_ranges.back().end == run.begin) {
        part.special_ranges.back().end = static_cast<uint32_t>(run.end);
      } else {
        part.special_ranges.push_back(
            ByteRange{static_cast<uint32_t>(run.begin), static_cast<uint32_t>(run.end)});
      }
      continue;
    }
    if (run.label % 2 == 1) {
      size_t i = (run.label - 1) / 2;
      if (i < messages.size() && messages[i].role == Role::kAssistant) {
        if (!part.target_ranges.empty() && part.target_ranges.back().second == run.begin) {
          part.target_ranges.back().second = run.end;
        } else {
          part.target_ranges.emplace_back(run.begin, run.end);
        }
      }
    }
  }
  if (part.text.size() > std::numeric_limits<uint32_t>::max()) {
    return InvalidArgumentError(StrFormat("%s: the rendered conversation is too long (%zu bytes)",
                                          chat_template.name().c_str(), part.text.size()));
  }
  return part;
}

}  // namespace

StatusOr<ChatTemplate> ChatTemplate::FromJinja(std::string_view source, const std::string& name) {
  // Templates are text: transformers reads them as UTF-8.
  size_t bad = hf::FindInvalidUtf8(source);
  if (bad != std::string_view::npos) {
    return InvalidArgumentError(
        StrFormat("%s: the chat template is not valid UTF-8 at byte %zu", name.c_str(), bad));
  }
  ChatTemplate t(Kind::kJinja, name);
  t.source_ = std::string(source);
  LORA_ASSIGN_OR_RETURN(jinja::Template parsed, jinja::Template::Parse(source, name));
  t.jinja_ = std::make_shared<const jinja::Template>(std::move(parsed));
  return t;
}

Status ChatTemplate::AddVariable(std::string_view assignment) {
  size_t eq = assignment.find('=');
  std::string name(assignment.substr(0, eq));
  bool identifier = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0]));
  for (char c : name) identifier &= std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  if (eq == std::string_view::npos || !identifier) {
    return InvalidArgumentError(StrFormat(
        "template variable %s must be NAME=VALUE with NAME an identifier (e.g. "
        "enable_thinking=false)",
        Quote(assignment).c_str()));
  }
  for (const char* reserved : {"messages", "add_generation_prompt", "bos_token", "eos_token",
                               "unk_token", "tools", "documents"}) {
    if (name == reserved) {
      return InvalidArgumentError(StrFormat(
          "template variable '%s' is set by lorart itself and cannot be given", reserved));
    }
  }
  if (kind_ != Kind::kJinja) {
    return InvalidArgumentError(StrFormat(
        "template variable '%s': the %s template takes no variables (only Jinja templates do)",
        name.c_str(), name_.c_str()));
  }
  std::string json(assignment.substr(eq + 1));
  // A JSON value, or else the text itself as a string.
  StatusOr<jinja::Value> value = jinja::Value::ParseJson(json);
  if (!value.ok()) {
    json = Json(json).dump();
    value = jinja::Value::ParseJson(json);
    if (!value.ok()) return value.status();
  }
  Variable v{name, json, std::make_shared<const jinja::Value>(std::move(value).value())};
  for (Variable& existing : variables_) {
    if (existing.name == name) {
      existing = std::move(v);
      return OkStatus();
    }
  }
  variables_.push_back(std::move(v));
  return OkStatus();
}

StatusOr<ChatTemplate> ParseChatTemplate(std::string_view name) {
  if (name == "llama2") return ChatTemplate::kLlama2;
  if (name == "simple") return ChatTemplate::kSimple;
  for (const BuiltinTemplate& t : kBuiltinTemplates) {
    if (name == t.name) {
      LORA_ASSIGN_OR_RETURN(ChatTemplate chat, ChatTemplate::FromJinja(t.source, t.name));
      chat.set_special_tokens(t.special_tokens);
      return chat;
    }
  }
  return InvalidArgumentError(
      StrFormat("chat template %s is not one of: auto, %s", Quote(name).c_str(),
                BuiltinNames().c_str()));
}

const char* ChatTemplateName(const ChatTemplate& chat_template) {
  return chat_template.name().c_str();
}

StatusOr<ChatTemplate> LoadModelChatTemplate(const std::string& model_dir) {
  std::string file = JoinPath(model_dir, "chat_template.jinja");
  if (PathExists(file)) {
    LORA_ASSIGN_OR_RETURN(std::string source, ReadWholeFile(file));
    return ChatTemplate::FromJinja(source, file);
  }
  std::string config = JoinPath(model_dir, "tokenizer_config.json");
  if (!PathExists(config)) {
    return NotFoundError(StrFormat("%s: the model has no chat template (no chat_template.jinja "
                                   "or tokenizer_config.json)",
                                   model_dir.c_str()));
  }
  LORA_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(config));
  Json json;
  LORA_RETURN_IF_ERROR(ParseJson(text, config, "tokenizer config", &json));
  if (!json.is_object() || !json.contains("chat_template") || json["chat_template"].is_null()) {
    return NotFoundError(StrFormat("%s: the model has no chat template (no \"chat_template\" "
                                   "here and no chat_template.jinja beside it)",
                                   config.c_str()));
  }
  const Json& value = json["chat_template"];
  if (value.is_string()) {
    return ChatTemplate::FromJinja(value.get_ref<const std::string&>(), config);
  }
  if (value.is_array()) {
    // transformers' named templates: [{"name": "default", "template": ...}, ...].
    for (size_t i = 0; i < value.size(); ++i) {
      const Json& entry = value[i];
      if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string() ||
          !entry.contains("template") || !entry["template"].is_string()) {
        return InvalidArgumentError(StrFormat(
            "%s: chat_template[%zu] must be an object with string fields 'name' and 'template'",
            config.c_str(), i));
      }
      if (entry["name"].get_ref<const std::string&>() == "default") {
        return ChatTemplate::FromJinja(entry["template"].get_ref<const std::string&>(),
                                       config + " (chat_template 'default')");
      }
    }
    return InvalidArgumentError(StrFormat("%s: chat_template lists named templates but none is "
                                          "'default'; name one with --chat-template FILE",
                                          config.c_str()));
  }
  return InvalidArgumentError(
      StrFormat("%s: chat_template must be a string or a list of named templates, not %s",
                config.c_str(), JsonTypeName(value)));
}

namespace {

StatusOr<ChatTemplate> ResolveWithoutVariables(std::string_view name, const std::string& file,
                                               const std::string& model_dir) {
  if (!file.empty()) {
    LORA_ASSIGN_OR_RETURN(std::string source, ReadWholeFile(file));
    return ChatTemplate::FromJinja(source, file);
  }
  if (name != "auto") return ParseChatTemplate(name);
  StatusOr<ChatTemplate> own = LoadModelChatTemplate(model_dir);
  if (own.ok()) return own;
  if (own.status().code() != StatusCode::kNotFound) return own.status();
  return ChatTemplate::kLlama2;
}

}  // namespace

StatusOr<ChatTemplate> ResolveChatTemplate(std::string_view name, const std::string& file,
                                           const std::string& model_dir,
                                           const std::vector<std::string>& variables) {
  LORA_ASSIGN_OR_RETURN(ChatTemplate t, ResolveWithoutVariables(name, file, model_dir));
  for (const std::string& v : variables) LORA_RETURN_IF_ERROR(t.AddVariable(v));
  return t;
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

StatusOr<RenderedDocument> Render(const Record& record, const ChatTemplate& chat_template,
                                  Objective objective, const Tokenizer& tokenizer,
                                  bool add_generation_prompt) {
  RenderedDocument doc;
  if (record.format == RecordFormat::kText) {
    doc.push_back(Special(RenderedPart::Kind::kBos, false));
    doc.push_back(Text(record.text));
    doc.push_back(Special(RenderedPart::Kind::kEos, true));
    objective = Objective::kPretrain;  // raw text: every token is a target
  } else {
    switch (chat_template.kind()) {
      case ChatTemplate::Kind::kLlama2: doc = RenderLlama2(record.messages); break;
      case ChatTemplate::Kind::kSimple: doc = RenderSimple(record.messages); break;
      case ChatTemplate::Kind::kJinja: {
        LORA_ASSIGN_OR_RETURN(RenderedPart part, RenderJinja(record.messages, chat_template,
                                                             tokenizer, add_generation_prompt));
        doc.push_back(std::move(part));
        break;
      }
    }
  }
  if (objective == Objective::kPretrain) {
    for (RenderedPart& part : doc) {
      part.target = true;
      part.target_ranges.clear();
      part.targets_end_at_special = false;
      if (part.kind == RenderedPart::Kind::kText) part.target_ranges.push_back({0, part.text.size()});
    }
  }
  return doc;
}

namespace {

// The first byte of the UTF-8 character holding byte `i` (or `i` itself at
// the end of the text).
size_t CharStart(std::string_view text, size_t i) {
  while (i > 0 && i < text.size() && (static_cast<uint8_t>(text[i]) & 0xC0) == 0x80) --i;
  return i;
}

// Bytes [begin, end) of `text` encoded with the special ranges that lie inside
// them; spans are made offsets into `text`.
Status EncodeSlice(const Tokenizer& tokenizer, std::string_view text,
                   const std::vector<ByteRange>& special_ranges, size_t begin, size_t end,
                   std::vector<int32_t>* ids, std::vector<TokenSpan>* spans) {
  std::vector<ByteRange> ranges;
  for (const ByteRange& r : special_ranges) {
    if (r.begin >= begin && r.end <= end) {
      ranges.push_back(
          {static_cast<uint32_t>(r.begin - begin), static_cast<uint32_t>(r.end - begin)});
    }
  }
  ids->clear();
  spans->clear();
  LORA_RETURN_IF_ERROR(
      tokenizer.EncodeWithSpecial(text.substr(begin, end - begin), ranges, ids, spans));
  for (TokenSpan& span : *spans) {
    span.begin += static_cast<uint32_t>(begin);
    span.end += static_cast<uint32_t>(begin);
  }
  return OkStatus();
}

// The tokens of one text, window by window (DocumentTokenStream). From byte
// `pos_` on (a token boundary; nothing given out starts there), window A is
// `context_` bytes before pos_ to `window_` bytes after it, window B twice
// both; at the start of the text both begin at byte 0, and where B reaches
// the end both end there. The tokens from pos_ on that A and B agree on (ids
// and spans) are the whole text's: tokenizers are local, so how a window
// begins or ends changes only the tokens near its edges, and two different
// edges agreeing is the check that they did not reach these tokens. The last
// agreed token is kept back (its end may lie at A's edge) and so is every
// token that begins where the next kept-back one begins. Without agreement
// both sizes double, up to the whole text.
class TextTokens {
 public:
  TextTokens(const Tokenizer& tokenizer, std::string_view text,
             const std::vector<ByteRange>& special_ranges, size_t window_bytes)
      : tokenizer_(tokenizer),
        text_(text),
        special_ranges_(special_ranges),
        window_(std::max(window_bytes, size_t{1} << 10)),
        context_(std::max<size_t>(window_ / 16, 256)) {}

  // Appends the next tokens (at least one unless the text has no more:
  // then *done).
  Status Next(std::vector<int32_t>* ids, std::vector<TokenSpan>* spans, bool* done) {
    *done = false;
    if (done_) {
      *done = true;
      return OkStatus();
    }
    const size_t n = text_.size();
    while (true) {
      const bool last = pos_ + 2 * window_ >= n;
      const size_t a_begin =
          pos_ == 0 ? 0 : CharStart(text_, pos_ > context_ ? pos_ - context_ : 0);
      const size_t b_begin =
          pos_ == 0 ? 0 : CharStart(text_, pos_ > 2 * context_ ? pos_ - 2 * context_ : 0);
      const size_t a_end = last ? n : CharStart(text_, pos_ + window_);
      const size_t b_end = last ? n : CharStart(text_, pos_ + 2 * window_);
      LORA_RETURN_IF_ERROR(
          EncodeSlice(tokenizer_, text_, special_ranges_, a_begin, a_end, &a_ids_, &a_spans_));
      const bool same = a_begin == b_begin && a_end == b_end;
      if (!same) {
        LORA_RETURN_IF_ERROR(
            EncodeSlice(tokenizer_, text_, special_ranges_, b_begin, b_end, &b_ids_, &b_spans_));
      }
      const std::vector<int32_t>& b_ids = same ? a_ids_ : b_ids_;
      const std::vector<TokenSpan>& b_spans = same ? a_spans_ : b_spans_;
      // The first token at or after pos_ in each: both must begin at pos_.
      auto first_at = [&](const std::vector<TokenSpan>& spans) {
        size_t i = 0;
        while (i < spans.size() && spans[i].begin < pos_) ++i;
        return i;
      };
      const size_t sa = first_at(a_spans_), sb = first_at(b_spans_);
      const bool synced = pos_ == 0 || (sa < a_ids_.size() && sb < b_ids.size() &&
                                        a_spans_[sa].begin == pos_ && b_spans[sb].begin == pos_);
      if (synced) {
        size_t m = 0;
        while (sa + m < a_ids_.size() && sb + m < b_ids.size() && a_ids_[sa + m] == b_ids[sb + m] &&
               a_spans_[sa + m].begin == b_spans[sb + m].begin &&
               a_spans_[sa + m].end == b_spans[sb + m].end) {
          ++m;
        }
        if (last) {
          if (sa + m == a_ids_.size() && sb + m == b_ids.size()) {
            EmitRest(sa, ids, spans, done);
            return OkStatus();
          }
        } else if (m >= 2) {
          size_t c = sa + m - 1;
          while (c > sa && a_spans_[c].begin == a_spans_[c - 1].begin) --c;
          if (c > sa && a_spans_[c].begin > pos_) {
            Emit(sa, c, ids, spans);
            pos_ = a_spans_[c].begin;
            return OkStatus();
          }
        }
      }
      if (same && a_begin == 0) {
        // The rest of the text encoded from its start (the most any window
        // can hold), and still no token begins at pos_: the text is not local
        // where an earlier window judged it so. The whole encoding's tokens
        // from pos_ on end the text, so that the stream always ends.
        EmitRest(sa, ids, spans, done);
        return OkStatus();
      }
      window_ *= 2;
      context_ *= 2;
    }
  }

 private:
  void Emit(size_t from, size_t to, std::vector<int32_t>* ids, std::vector<TokenSpan>* spans) {
    ids->insert(ids->end(), a_ids_.begin() + from, a_ids_.begin() + to);
    spans->insert(spans->end(), a_spans_.begin() + from, a_spans_.begin() + to);
  }
  // A's tokens from `from` on end the text (*done at once if there are none).
  void EmitRest(size_t from, std::vector<int32_t>* ids, std::vector<TokenSpan>* spans, bool* done) {
    Emit(from, a_ids_.size(), ids, spans);
    done_ = true;
    *done = from == a_ids_.size();
  }

  const Tokenizer& tokenizer_;
  std::string_view text_;
  const std::vector<ByteRange>& special_ranges_;
  size_t window_, context_;
  size_t pos_ = 0;
  bool done_ = false;
  std::vector<int32_t> a_ids_, b_ids_;
  std::vector<TokenSpan> a_spans_, b_spans_;
};

// Whether a token of a text part is a target by its bytes: it overlaps one
// of the part's target ranges (a token with no bytes of its own: if it sits
// inside one).
bool InTargetRange(const RenderedPart& part, const TokenSpan& span) {
  const size_t b = span.begin, e = span.end;
  for (const auto& [rb, re] : part.target_ranges) {
    if (b < e ? (b < re && rb < e) : (rb <= b && b < re)) return true;
  }
  return false;
}

}  // namespace

// The parts of the document one after the other; a text part through
// TextTokens, its target flags by byte ranges, and the end-of-turn rule
// (RenderedPart::targets_end_at_special) applied as tokens arrive: after a
// run of targets, the template's own tokens wait in `pending` until the first
// special token makes them targets or anything else makes them not.
struct DocumentTokenStream::State {
  State(const RenderedDocument& d, const Tokenizer& t, size_t window)
      : document(d), tokenizer(t), window_bytes(window) {}

  const RenderedDocument& document;
  const Tokenizer& tokenizer;
  size_t window_bytes;
  size_t part = 0;
  std::unique_ptr<TextTokens> text;
  bool first = true;
  bool after_target = false;  // the last token given out was a byte-range target
  std::vector<int32_t> pending;
  std::vector<int32_t> ids;
  std::vector<TokenSpan> spans;

  void Flush(bool target, std::vector<int32_t>* out_ids, std::vector<uint8_t>* out_targets) {
    out_ids->insert(out_ids->end(), pending.begin(), pending.end());
    out_targets->insert(out_targets->end(), pending.size(), target ? 1 : 0);
    pending.clear();
  }
  // One token of text part `p`.
  void Add(const RenderedPart& p, int32_t id, const TokenSpan& span, std::vector<int32_t>* out_ids,
           std::vector<uint8_t>* out_targets) {
    const bool target = InTargetRange(p, span);
    if (p.targets_end_at_special && !target && (after_target || !pending.empty())) {
      const bool special = InByteRanges(p.special_ranges, span.begin, span.end);
      if (special && !tokenizer.IsControl(id)) {
        pending.push_back(id);
        after_target = false;
        return;
      }
      if (special && tokenizer.IsControl(id)) {
        pending.push_back(id);
        Flush(true, out_ids, out_targets);
        after_target = false;
        return;
      }
    }
    Flush(false, out_ids, out_targets);
    out_ids->push_back(id);
    out_targets->push_back(target ? 1 : 0);
    after_target = target;
  }
};

DocumentTokenStream::DocumentTokenStream(const RenderedDocument& document,
                                         const Tokenizer& tokenizer, size_t window_bytes)
    : state_(std::make_unique<State>(document, tokenizer,
                                     window_bytes == 0 ? size_t{64} << 10 : window_bytes)) {}

DocumentTokenStream::~DocumentTokenStream() = default;

Status DocumentTokenStream::Next(std::vector<int32_t>* ids, std::vector<uint8_t>* is_target,
                                 bool* done) {
  State& s = *state_;
  *done = false;
  const size_t before = ids->size();
  while (ids->size() == before) {
    if (s.part == s.document.size()) {
      *done = true;
      return OkStatus();
    }
    const RenderedPart& part = s.document[s.part];
    switch (part.kind) {
      case RenderedPart::Kind::kBos: {
        // What the tokenizer adds before a sequence (its BOS; none for
        // families without one, such as Qwen).
        std::vector<int32_t> prefix, suffix;
        s.tokenizer.SpecialTokensAround(&prefix, &suffix);
        ids->insert(ids->end(), prefix.begin(), prefix.end());
        is_target->insert(is_target->end(), prefix.size(), part.target ? 1 : 0);
        ++s.part;
        break;
      }
      case RenderedPart::Kind::kEos:
        if (s.tokenizer.eos_id() < 0) {
          return InvalidArgumentError(StrFormat(
              "%s: the tokenizer has no EOS token (templates end each reply and text with one; "
              "a Hugging Face tokenizer names it as eos_token in tokenizer_config.json)",
              s.tokenizer.path().c_str()));
        }
        ids->push_back(s.tokenizer.eos_id());
        is_target->push_back(part.target ? 1 : 0);
        ++s.part;
        break;
      case RenderedPart::Kind::kText: {
        if (!s.text) {
          s.text = std::make_unique<TextTokens>(s.tokenizer, part.text, part.special_ranges,
                                                s.window_bytes);
          s.after_target = false;
        }
        bool text_done = false;
        s.ids.clear();
        s.spans.clear();
        LORA_RETURN_IF_ERROR(s.text->Next(&s.ids, &s.spans, &text_done));
        for (size_t k = 0; k < s.ids.size(); ++k) s.Add(part, s.ids[k], s.spans[k], ids, is_target);
        if (text_done) {
          // The end-of-turn rule stays inside one part.
          s.Flush(false, ids, is_target);
          s.text.reset();
          ++s.part;
        }
        break;
      }
    }
  }
  if (s.first) {
    (*is_target)[before] = 0;  // nothing in the document predicts its first token
    s.first = false;
  }
  return OkStatus();
}

Status Tokenize(const RenderedDocument& document, const Tokenizer& tokenizer, Example* out,
                int64_t max_tokens) {
  out->tokens.clear();
  out->is_target.clear();
  const size_t limit = max_tokens > 0 ? static_cast<size_t>(max_tokens) : SIZE_MAX;
  // A first window of 16 bytes per needed token (at least 64 KiB).
  constexpr size_t kBytesPerTokenGuess = 16;
  const size_t window =
      limit == SIZE_MAX
          ? SIZE_MAX / 4
          : std::max(size_t{64} << 10, std::min(limit, SIZE_MAX / 64) * kBytesPerTokenGuess);
  DocumentTokenStream stream(document, tokenizer, window);
  bool done = false;
  while (!done && out->tokens.size() < limit) {
    LORA_RETURN_IF_ERROR(stream.Next(&out->tokens, &out->is_target, &done));
  }
  if (out->tokens.size() > limit) {
    out->tokens.resize(limit);
    out->is_target.resize(limit);
  }
  return OkStatus();
}

Status RecordToExample(const Record& record, const ChatTemplate& chat_template, Objective objective,
                       const Tokenizer& tokenizer, Example* out, int64_t max_tokens) {
  LORA_ASSIGN_OR_RETURN(RenderedDocument doc,
                        Render(record, chat_template, objective, tokenizer));
  LORA_RETURN_IF_ERROR(Tokenize(doc, tokenizer, out, max_tokens));
  out->line = record.line;
  return OkStatus();
}

}  // namespace data
}  // namespace lorart
