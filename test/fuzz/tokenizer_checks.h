// What the two tokenizer fuzz targets (tokenizer.json: tokenizer.cc;
// SentencePiece tokenizer.model: sentencepiece.cc) check on a tokenizer that
// loaded: encoding a text as data and with the whole text allowed to spell
// special tokens keeps the Tokenizer interface's promises (ids inside the
// vocabulary, one span per id, spans inside the text); decoding what was
// encoded, and the text's bytes read as ids (past the vocabulary: an error,
// never a read), returns.
#ifndef LORAC_TEST_FUZZ_TOKENIZER_CHECKS_H_
#define LORAC_TEST_FUZZ_TOKENIZER_CHECKS_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "fuzz_target.h"
#include "lorart/data/tokenizer.h"

namespace lorac_fuzz {

inline void CheckEncoding(const lorart::data::Tokenizer& t, std::string_view text,
                          const std::vector<int32_t>& ids,
                          const std::vector<lorart::data::TokenSpan>& spans) {
  FUZZ_CHECK(ids.size() == spans.size());
  for (int32_t id : ids) FUZZ_CHECK(id >= 0 && id < t.vocab_size());
  for (const lorart::data::TokenSpan& span : spans) {
    FUZZ_CHECK(span.begin <= span.end && span.end <= text.size());
  }
}

inline void ExerciseTokenizer(const lorart::data::Tokenizer& tokenizer, std::string_view text) {
  namespace data = lorart::data;
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
}

}  // namespace lorac_fuzz

#endif  // LORAC_TEST_FUZZ_TOKENIZER_CHECKS_H_
