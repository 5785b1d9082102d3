#include "data_test_util.h"

#include <cstdint>
#include <stdexcept>

namespace lorart {
namespace testing {

std::vector<std::string> DataTestCorpus() {
  static const char* const kWords[] = {
      "the", "cat", "sat", "on", "mat", "dog", "ran", "fast", "blue", "green", "apple",
      "tree", "house", "river", "small", "big", "and", "hello", "there", "what", "is",
      "a", "model", "train", "loss", "token", "answer", "question", "please", "brief"};
  const size_t n_words = sizeof(kWords) / sizeof(kWords[0]);
  uint64_t state = 12345;
  auto next = [&]() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<size_t>(state >> 33);
  };
  std::vector<std::string> lines;
  for (int i = 0; i < 300; ++i) {
    std::string line;
    switch (i % 4) {
      case 0: line = "[INST] "; break;
      case 1: line = "### User: "; break;
      case 2: line = "<<SYS>> "; break;
      default: break;
    }
    size_t words = 4 + next() % 12;
    for (size_t w = 0; w < words; ++w) {
      if (w > 0) line += ' ';
      line += kWords[next() % n_words];
    }
    switch (i % 4) {
      case 0: line += " [/INST] ok."; break;
      case 1: line += " ### Assistant: yes."; break;
      case 2: line += " <</SYS>> ### System: fine, 42"; break;
      default: line += "."; break;
    }
    lines.push_back(line);
  }
  return lines;
}

data::TokenizerTrainOptions DataTestTokenizerOptions() {
  data::TokenizerTrainOptions options;
  options.vocab_size = 320;
  options.model_type = "unigram";
  return options;
}

const std::string& DataTestTokenizerBytes() {
  static const std::string* bytes = [] {
    StatusOr<std::string> model =
        data::TrainTokenizerFromLines(DataTestCorpus(), DataTestTokenizerOptions());
    if (!model.ok()) throw std::runtime_error(model.status().ToString());
    return new std::string(std::move(model).value());
  }();
  return *bytes;
}

std::unique_ptr<data::Tokenizer> DataTestTokenizer() {
  StatusOr<std::unique_ptr<data::Tokenizer>> tokenizer =
      data::Tokenizer::FromBytes(DataTestTokenizerBytes(), "test/tokenizer.model");
  if (!tokenizer.ok()) throw std::runtime_error(tokenizer.status().ToString());
  return std::move(tokenizer).value();
}

}  // namespace testing
}  // namespace lorart
