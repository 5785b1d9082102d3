// Chat templates: how a record becomes one token sequence with the tokens to
// train on marked. Loss falls only on assistant replies (and the EOS that
// ends each reply) for SFT; on every token for raw text and for the pretrain
// objective. The exact strings are in docs/data.md.
#ifndef LORART_DATA_TEMPLATE_H_
#define LORART_DATA_TEMPLATE_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "lorart/base/status.h"
#include "lorart/data/jsonl.h"
#include "lorart/data/packing.h"
#include "lorart/data/tokenizer.h"

namespace lorart {
namespace data {

enum class ChatTemplate {
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
};
// "llama2" or "simple"; anything else is INVALID_ARGUMENT listing both.
StatusOr<ChatTemplate> ParseChatTemplate(std::string_view name);
const char* ChatTemplateName(ChatTemplate chat_template);

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
  bool target = false;  // kBos/kEos: is this token trained on?
};
using RenderedDocument = std::vector<RenderedPart>;

// Renders a record with `chat_template` (text records ignore it: BOS, text,
// EOS). Records from ReadJsonl are valid; a chat record whose roles do not
// alternate renders in message order anyway.
RenderedDocument Render(const Record& record, ChatTemplate chat_template, Objective objective);

// Tokenizes a rendered document. The BOS part is dropped when the tokenizer
// has no BOS; a tokenizer with no EOS is an error. `out->is_target[0]` is
// always 0: nothing in the document predicts its first token.
Status Tokenize(const RenderedDocument& document, const Tokenizer& tokenizer, Example* out);

// Render + Tokenize.
Status RecordToExample(const Record& record, ChatTemplate chat_template, Objective objective,
                       const Tokenizer& tokenizer, Example* out);

}  // namespace data
}  // namespace lorart

#endif  // LORART_DATA_TEMPLATE_H_
