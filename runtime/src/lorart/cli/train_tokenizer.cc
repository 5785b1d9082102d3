// lorart train-tokenizer: a SentencePiece tokenizer.model from text files.
#include <fstream>
#include <memory>
#include <sstream>

#include "lorart/cli/commands.h"
#include "lorart/data/tokenizer.h"
#include "lorart/io/safetensors_write.h"

namespace lorart {
namespace cli {

Command AddTrainTokenizerCommand(CLI::App& root, std::ostream& out) {
  struct Options {
    std::vector<std::string> inputs;
    std::string output;
    int32_t vocab_size = 8000;
    std::string model_type = "unigram";
  };
  auto o = std::make_shared<Options>();
  Command c;
  c.app = root.add_subcommand("train-tokenizer",
                              "Train a SentencePiece tokenizer.model (Llama conventions: "
                              "<unk>/<s>/</s> = 0/1/2, byte fallback) on text files");
  c.app->add_option("inputs", o->inputs, "Text files, one sentence or paragraph per line")
      ->required();
  c.app->add_option("-o,--output", o->output, "The tokenizer.model to write")->required();
  c.app->add_option("--vocab-size", o->vocab_size, "Vocabulary size");
  c.app->add_option("--model-type", o->model_type, "unigram or bpe");
  c.run = [o, &out]() -> Status {
    std::vector<std::string> lines;
    for (const std::string& path : o->inputs) {
      std::ifstream in(path);
      if (!in) return NotFoundError(path + ": cannot read");
      std::string line;
      while (std::getline(in, line))
        if (!line.empty()) lines.push_back(line);
    }
    data::TokenizerTrainOptions t;
    t.vocab_size = o->vocab_size;
    t.model_type = o->model_type;
    LORA_ASSIGN_OR_RETURN(std::string model, data::TrainTokenizerFromLines(lines, t));
    LORA_RETURN_IF_ERROR(WriteFileAtomically(o->output, model));
    out << "wrote " << o->output << " (vocab " << o->vocab_size << ", " << lines.size()
        << " lines)\n";
    return OkStatus();
  };
  return c;
}

}  // namespace cli
}  // namespace lorart
