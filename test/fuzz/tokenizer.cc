// Fuzz target: the tokenizer.json loader and the tokenizer it builds
// (data/hf/). The input is a tokenizer.json text, then (after a NUL byte,
// optional) a text to encode. A tokenizer that loads encodes the text as data
// and with the whole text allowed to spell special tokens, and decodes what
// it encoded and the text's bytes read as ids. Promises checked: ids inside
// the vocabulary, one span per id, spans inside the text and in order.
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_target.h"
#include "lorart/data/hf/hf_tokenizer.h"
#include "lorart/data/tokenizer.h"

namespace {

namespace data = lorart::data;

void CheckEncoding(const data::Tokenizer& t, std::string_view text, const std::vector<int32_t>& ids,
                   const std::vector<data::TokenSpan>& spans) {
  FUZZ_CHECK(ids.size() == spans.size());
  for (int32_t id : ids) FUZZ_CHECK(id >= 0 && id < t.vocab_size());
  for (const data::TokenSpan& span : spans) {
    FUZZ_CHECK(span.begin <= span.end && span.end <= text.size());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto [json, text] =
      lorac_fuzz::SplitAtNul(std::string_view(reinterpret_cast<const char*>(data), size));
  auto t = data::HfTokenizerFromJson(json, "", "fuzz/tokenizer.json");
  lorac_fuzz::Note("tokenizer.json", t.ok() ? "loaded" : t.status().message());
  if (!t.ok()) {
    FUZZ_CHECK(std::string(t.status().message()).rfind("fuzz/tokenizer.json", 0) == 0);
    return 0;
  }
  const data::Tokenizer& tokenizer = **t;
  FUZZ_CHECK(tokenizer.vocab_size() > 0);
  std::vector<int32_t> ids;
  std::vector<data::TokenSpan> spans;
  if (tokenizer.Encode(text, &ids, &spans).ok()) {
    CheckEncoding(tokenizer, text, ids, spans);
    (void)tokenizer.Decode(ids);
    (void)tokenizer.DecodeWithControls(ids);
  }
  const std::vector<data::ByteRange> all = {{0, static_cast<uint32_t>(text.size())}};
  ids.clear();
  spans.clear();
  if (tokenizer.EncodeWithSpecial(text, all, &ids, &spans).ok()) {
    CheckEncoding(tokenizer, text, ids, spans);
  }
  std::vector<int32_t> raw;
  for (size_t i = 0; i + 1 < text.size() && raw.size() < 64; i += 2) {
    raw.push_back(static_cast<uint8_t>(text[i]) | (static_cast<uint8_t>(text[i + 1]) << 8));
  }
  auto decoded = tokenizer.Decode(raw);  // ids past the vocabulary are an error, never a read
  (void)decoded;
  for (int32_t id : raw) (void)tokenizer.IdToPiece(id);
  return 0;
}
