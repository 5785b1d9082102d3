// Fuzz target: loading a SentencePiece tokenizer.model (a protobuf; the
// parser is the sentencepiece library's, the checks after it are ours:
// data/tokenizer.cc) and the tokenizer it builds. The input is a text to
// encode (no NUL in it), a NUL byte, then the model's bytes (which hold NULs
// of their own). A model that loads is exercised as tokenizer_checks.h says;
// one that does not is refused with a message naming the file.
#include <string>
#include <string_view>

#include "fuzz_target.h"
#include "lorart/data/tokenizer.h"
#include "tokenizer_checks.h"

namespace data = lorart::data;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto [text, model] =
      lorac_fuzz::SplitAtNul(std::string_view(reinterpret_cast<const char*>(data), size));
  auto t = data::Tokenizer::FromBytes(model, "fuzz/tokenizer.model");
  lorac_fuzz::Note("tokenizer.model", t.ok() ? "loaded" : t.status().message());
  if (!t.ok()) {
    FUZZ_CHECK(std::string(t.status().message()).rfind("fuzz/tokenizer.model", 0) == 0);
    return 0;
  }
  lorac_fuzz::ExerciseTokenizer(**t, text);
  return 0;
}
