// Regular expressions of tokenizer.json (Split pre-tokenizer, Replace
// normalizer, the GPT-2 regex of ByteLevel), matched with PCRE2 (UTF, UCP,
// JIT) the way `tokenizers` matches them with Oniguruma.
#ifndef LORART_DATA_HF_REGEX_H_
#define LORART_DATA_HF_REGEX_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lorart/base/status.h"
#include "lorart/data/hf/normalized_string.h"

namespace lorart {
namespace data {
namespace hf {

// Rewrites an Oniguruma (Ruby syntax) pattern as a PCRE2 pattern with the
// same meaning where the two differ: \s is Unicode White_Space (PCRE2's
// also matches U+180E), \w is Oniguruma's Word class, \h a hex digit.
std::string TranslateOnigPattern(std::string_view pattern);
// The PCRE2 pattern matching `literal` exactly.
std::string EscapeRegex(std::string_view literal);

class Regex {
 public:
  // Compiles `pattern` (Oniguruma syntax unless `pcre_syntax`). Errors are
  // INVALID_ARGUMENT with PCRE2's message and offset.
  static StatusOr<std::unique_ptr<Regex>> Compile(std::string_view pattern, bool pcre_syntax = false);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Every match of `text` in order and the pieces in between, covering all
  // of `text` (Pattern::find_matches of `tokenizers`, with onig's rule for
  // empty matches). An empty text gives one empty non-match.
  Status FindMatches(std::string_view text, std::vector<Match>* out) const;
  const std::string& pattern() const { return pattern_; }

 private:
  Regex() = default;
  // The first match at or after `start`: false if none.
  Status Search(std::string_view text, size_t start, size_t* b, size_t* e, bool* found) const;

  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code*
  bool jit_ = false;
};

// Pieces of `text` where `pred` holds on single characters (Pattern for
// Fn(char) -> bool of `tokenizers`).
void FindCharMatches(std::string_view text, bool (*pred)(char32_t, const void*), const void* arg,
                     std::vector<Match>* out);

}  // namespace hf
}  // namespace data
}  // namespace lorart

#endif  // LORART_DATA_HF_REGEX_H_
