// Chat templates: how a record becomes one token sequence with the tokens to
// train on marked. Loss falls only on assistant replies (and the EOS that
// ends each reply) for SFT; on every token for raw text and for the pretrain
// objective. The exact strings are in docs/data.md.
#ifndef LORART_DATA_TEMPLATE_H_
#define LORART_DATA_TEMPLATE_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lorart/base/status.h"
#include "lorart/data/jsonl.h"
#include "lorart/data/packing.h"
#include "lorart/data/tokenizer.h"

namespace lorart {
namespace data {

namespace jinja {
class Template;
class Value;
}  // namespace jinja

// How a chat record becomes text: one of two hand-written renderers (kept
// for their exact per-turn SentencePiece encoding) or a Jinja template (the
// model's own `chat_template`, a file, or a built-in one written in Jinja).
class ChatTemplate {
 public:
  enum class Kind {
    // Llama-2 chat, as Meta's `chat_completion` and the Hugging Face template:
    //   <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s>
    //   <s>[INST] {user} [/INST] {assistant} </s> ...
    // Contents are stripped of surrounding whitespace; the system block is
    // joined to the first user message before it is stripped, as Meta does.
    // The loss covers " {assistant} " (from the space after [/INST]) and EOS.
    kLlama2,
    // <s>### System:\n{system}\n### User:\n{user}\n### Assistant:\n{assistant}\n</s>
    //    ### User:\n{user}\n### Assistant:\n{assistant}\n</s> ...
    kSimple,
    // A Jinja chat template rendered as transformers' apply_chat_template
    // does (jinja/jinja.h); the loss rule and the special-token rule follow
    // from the provenance of every rendered byte (docs/data.md).
    kJinja,
  };
  static const ChatTemplate kLlama2;
  static const ChatTemplate kSimple;
  // llama2.
  ChatTemplate() : ChatTemplate(Kind::kLlama2, "llama2") {}

  // Parses a Jinja chat template; `name` stands for it in messages and logs
  // (a file name, or "chatml"). Syntax errors name it with line and column.
  static StatusOr<ChatTemplate> FromJinja(std::string_view source, const std::string& name);

  Kind kind() const { return kind_; }
  // "llama2", "simple", or the name given to FromJinja.
  const std::string& name() const { return name_; }
  const std::string& source() const { return source_; }
  const jinja::Template* jinja() const { return jinja_.get(); }
  // Special tokens the template writes that a tokenizer must have (the
  // built-ins name theirs; rendering checks them).
  const std::vector<std::string>& special_tokens() const { return special_tokens_; }
  void set_special_tokens(std::vector<std::string> tokens) { special_tokens_ = std::move(tokens); }
  // Extra variables a Jinja template sees beside messages and the special
  // tokens, as transformers' apply_chat_template(**kwargs) passes them
  // (e.g. enable_thinking for Qwen3): "NAME=VALUE" with VALUE a JSON value
  // (false, 3, "text", {...}) or else a string. A name the renderer sets
  // itself (messages, add_generation_prompt, bos_token, ...) is an error.
  Status AddVariable(std::string_view assignment);
  struct Variable {
    std::string name;
    std::string json;  // the value as JSON text (what == compares)
    std::shared_ptr<const jinja::Value> value;  // parsed once, by AddVariable
  };
  const std::vector<Variable>& variables() const { return variables_; }

  bool operator==(const ChatTemplate& other) const {
    if (kind_ != other.kind_ || source_ != other.source_ ||
        variables_.size() != other.variables_.size()) {
      return false;
    }
    for (size_t i = 0; i < variables_.size(); ++i) {
      if (variables_[i].name != other.variables_[i].name ||
          variables_[i].json != other.variables_[i].json) {
        return false;
      }
    }
    return true;
  }
  bool operator!=(const ChatTemplate& other) const { return !(*this == other); }

 private:
  ChatTemplate(Kind kind, std::string name) : kind_(kind), name_(std::move(name)) {}

  Kind kind_;
  std::string name_;
  std::string source_;
  std::shared_ptr<const jinja::Template> jinja_;
  std::vector<std::string> special_tokens_;
  std::vector<Variable> variables_;
};

inline const ChatTemplate ChatTemplate::kLlama2{ChatTemplate::Kind::kLlama2, "llama2"};
inline const ChatTemplate ChatTemplate::kSimple{ChatTemplate::Kind::kSimple, "simple"};

// A built-in template by name: llama2 and simple (hand-written), chatml,
// llama3 and mistral (Jinja sources in template.cc). Anything else is
// INVALID_ARGUMENT listing them.
StatusOr<ChatTemplate> ParseChatTemplate(std::string_view name);
const char* ChatTemplateName(const ChatTemplate& chat_template);

// The model directory's own chat template, where transformers looks for it:
// `chat_template.jinja`, else `tokenizer_config.json`'s "chat_template" (a
// string, or a list of {"name", "template"} of which "default" is taken).
// NOT_FOUND when the directory has none.
StatusOr<ChatTemplate> LoadModelChatTemplate(const std::string& model_dir);

// The template of `lorart run/eval/generate/tokenize`: `file` (from
// --chat-template) when given, else `name` (from --template): "auto" is the
// model's own template and, where the model has none, llama2 (the default of
// lorart before Jinja templates: SentencePiece Llama-2-era directories have
// none); any other name is a built-in.
// `variables` ("NAME=VALUE", from --template-var) go to a Jinja template;
// the hand-written ones take none.
StatusOr<ChatTemplate> ResolveChatTemplate(std::string_view name, const std::string& file,
                                           const std::string& model_dir,
                                           const std::vector<std::string>& variables = {});

enum class Objective {
  kSft,       // loss on assistant replies (+ their EOS); text records: every token
  kPretrain,  // loss on every token of every record
};
// "sft" or "pretrain".
StatusOr<Objective> ParseObjective(std::string_view name);
const char* ObjectiveName(Objective objective);

// A document before tokenization: text parts, each encoded by one tokenizer
// call (so each gets SentencePiece's "▁" prefix, as Llama's tokenizer does
// for each turn), and BOS/EOS tokens between them as ids, never as text.
struct RenderedPart {
  enum class Kind { kText, kBos, kEos };
  Kind kind = Kind::kText;
  std::string text;  // kText
  // Byte ranges [first, second) of `text` whose tokens are targets. A token
  // is a target if its bytes overlap a range (a token with no bytes of its
  // own, like the "▁" prefix, if it sits inside one); a token straddling the
  // start of a reply ("▁Sure" after "[/INST]") is a target.
  std::vector<std::pair<size_t, size_t>> target_ranges;
  // Byte ranges of `text` the template wrote itself: only there may text
  // spell a special token ("<|im_end|>"); in message contents it is text.
  std::vector<ByteRange> special_ranges;
  // After the last token of each target range, the template's own tokens up
  // to and including the first special token (the end of turn: "<|im_end|>",
  // "<|eot_id|>", "</s>") are targets too, when one comes before any message
  // text; without one, they are not.
  bool targets_end_at_special = false;
  bool target = false;  // kBos/kEos: is this token trained on?
};
using RenderedDocument = std::vector<RenderedPart>;

// Renders a record with `chat_template` (text records ignore it: the
// tokenizer's BOS as it adds it, text, EOS). Records from ReadJsonl are
// valid; a chat record whose roles do not alternate renders in message order
// with the hand-written templates; a Jinja template may refuse it
// (raise_exception), which is an error naming the template.
// `add_generation_prompt` asks a Jinja template for the start of an
// assistant reply after the last message (generation).
// The tokenizer gives a Jinja template its bos_token/eos_token.
StatusOr<RenderedDocument> Render(const Record& record, const ChatTemplate& chat_template,
                                  Objective objective, const Tokenizer& tokenizer,
                                  bool add_generation_prompt = false);

// Tokenizes a rendered document. The BOS part is dropped when the tokenizer
// has no BOS; a tokenizer with no EOS is an error. `out->is_target[0]` is
// always 0: nothing in the document predicts its first token.
// `max_tokens` > 0 keeps only the document's first `max_tokens` tokens (as
// truncation would) and tokenizes little more of a long text than they
// need (docs/data.md, "Long records"): the data pipeline passes seq_len + 1,
// so that its memory does not grow with a record's length.
Status Tokenize(const RenderedDocument& document, const Tokenizer& tokenizer, Example* out,
                int64_t max_tokens = 0);

// The tokens of a rendered document a batch at a time, in memory bounded by
// a window of its text rather than by the document: the same ids and target
// flags as Tokenize gives for the whole document (the first flag 0), in
// order. A long text is encoded in windows (docs/data.md, "Long records"):
// each window is encoded with two different amounts of text before it and
// after it, and only the tokens both encodings agree on (ids and byte spans)
// are given out. `window_bytes` (0: 64 KiB) is the first window's size.
// The document and the tokenizer must outlive the stream.
class DocumentTokenStream {
 public:
  DocumentTokenStream(const RenderedDocument& document, const Tokenizer& tokenizer,
                      size_t window_bytes = 0);
  ~DocumentTokenStream();
  DocumentTokenStream(const DocumentTokenStream&) = delete;
  DocumentTokenStream& operator=(const DocumentTokenStream&) = delete;

  // Appends the next tokens and their target flags (at least one unless
  // the document has no more: then *done).
  Status Next(std::vector<int32_t>* ids, std::vector<uint8_t>* is_target, bool* done);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Render + Tokenize.
Status RecordToExample(const Record& record, const ChatTemplate& chat_template, Objective objective,
                       const Tokenizer& tokenizer, Example* out, int64_t max_tokens = 0);

}  // namespace data
}  // namespace lorart

#endif  // LORART_DATA_TEMPLATE_H_
