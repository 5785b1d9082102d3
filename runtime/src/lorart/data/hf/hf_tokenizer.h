// The Hugging Face `tokenizer.json` tokenizer (the `tokenizers` library's
// pipeline: added tokens, normalizer, pre-tokenizer, BPE model,
// post-processor, decoder). See docs/tokenizers.md for what is read.
#ifndef LORART_DATA_HF_HF_TOKENIZER_H_
#define LORART_DATA_HF_HF_TOKENIZER_H_

#include <memory>
#include <string>
#include <string_view>

#include "lorart/base/status.h"
#include "lorart/data/tokenizer.h"

namespace lorart {
namespace data {

// tokenizer.json (+ optional tokenizer_config.json, "" = none) → Tokenizer.
// Files that cannot be read are NOT_FOUND/INVALID_ARGUMENT naming them;
// malformed or unsupported content is INVALID_ARGUMENT naming the file and
// the JSON field ("tokenizer.json: model.merges[17]: ...").
StatusOr<std::unique_ptr<Tokenizer>> LoadHfTokenizer(const std::string& tokenizer_json_path,
                                                     const std::string& tokenizer_config_path);
// The same from JSON text in memory (tests); names stand for paths in messages.
StatusOr<std::unique_ptr<Tokenizer>> HfTokenizerFromJson(std::string_view tokenizer_json,
                                                         std::string_view tokenizer_config_json,
                                                         const std::string& name);

}  // namespace data
}  // namespace lorart

#endif  // LORART_DATA_HF_HF_TOKENIZER_H_
