// Fuzz target: the tokenizer.json loader and the tokenizer it builds
// (data/hf/). The input is a tokenizer.json text, then (after a NUL byte,
// optional) a text to encode. A tokenizer that loads is exercised as
// tokenizer_checks.h says: ids inside the vocabulary, one span per id, spans
// inside the text; decoding returns.
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_target.h"
#include "lorart/data/hf/hf_tokenizer.h"
#include "tokenizer_checks.h"

namespace data = lorart::data;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto [json, text] =
      lorac_fuzz::SplitAtNul(std::string_view(reinterpret_cast<const char*>(data), size));
  auto t = data::HfTokenizerFromJson(json, "", "fuzz/tokenizer.json");
  lorac_fuzz::Note("tokenizer.json", t.ok() ? "loaded" : t.status().message());
  if (!t.ok()) {
    FUZZ_CHECK(std::string(t.status().message()).rfind("fuzz/tokenizer.json", 0) == 0);
    return 0;
  }
  lorac_fuzz::ExerciseTokenizer(**t, text);
  return 0;
}
