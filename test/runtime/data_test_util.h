// Helpers for the data pipeline tests: a small SentencePiece model trained
// once per test binary from generated text.
#ifndef LORART_TEST_RUNTIME_DATA_TEST_UTIL_H_
#define LORART_TEST_RUNTIME_DATA_TEST_UTIL_H_

#include <memory>
#include <string>
#include <vector>

#include "lorart/data/tokenizer.h"

namespace lorart {
namespace testing {

// ~300 lines of generated English-like text with the chat templates' markers
// ("[INST]", "<<SYS>>", "### User:", ...). Deterministic.
std::vector<std::string> DataTestCorpus();

// The options of the shared test model: unigram, 320 pieces (3 specials,
// 256 byte pieces, the corpus's characters and learned pieces).
data::TokenizerTrainOptions DataTestTokenizerOptions();

// The bytes of a model trained on DataTestCorpus() (trained on first use).
const std::string& DataTestTokenizerBytes();

// A tokenizer loaded from those bytes.
std::unique_ptr<data::Tokenizer> DataTestTokenizer();

}  // namespace testing
}  // namespace lorart

#endif  // LORART_TEST_RUNTIME_DATA_TEST_UTIL_H_
