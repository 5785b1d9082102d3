// lorart init-model: a randomly initialized Hugging Face model directory from
// a config.json (for pretraining from scratch, the demo, and tests).
#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "lorart/cli/commands.h"
#include "lorart/cpu/kernel.h"
#include "lorart/io/hf_config.h"
#include "lorart/io/hf_layout.h"
#include "lorart/io/files.h"
#include "lorart/io/safetensors_write.h"

namespace lorart {
namespace cli {

Command AddInitModelCommand(CLI::App& root, std::ostream& out) {
  struct Options {
    std::string config, output, dtype = "bf16", tokenizer;
    uint64_t seed = 0;
  };
  auto opts = std::make_shared<Options>();
  Command command;
  command.app = root.add_subcommand(
      "init-model", "Write a randomly initialized Hugging Face model directory for a config.json "
                    "(normal(0, initializer_range) weights, unit norms)");
  command.app->add_option("--config", opts->config, "config.json of a Llama-family model")
      ->required();
  command.app->add_option("-o,--output", opts->output, "Output model directory")->required();
  command.app->add_option("--dtype", opts->dtype, "Stored dtype: bf16 or f32");
  command.app->add_option("--seed", opts->seed, "Random seed");
  command.app->add_option("--tokenizer", opts->tokenizer,
                          "A SentencePiece tokenizer.model to copy into the directory");
  command.run = [opts, &out]() -> Status {
    if (opts->dtype != "bf16" && opts->dtype != "f32")
      return InvalidArgumentError("--dtype must be bf16 or f32, got '" + opts->dtype + "'");
    // The same reading of config.json as lorac's importer (hf_config.h):
    // a config lorac could not import is refused here too.
    LORA_ASSIGN_OR_RETURN(hf::ModelConfig config, hf::ParseModelConfig(opts->config));
    const double stddev = config.initializerRange;
    if (::mkdir(opts->output.c_str(), 0755) != 0 && errno != EEXIST)
      return UnavailableError(StrFormat("%s: cannot create directory: %s", opts->output.c_str(),
                                        std::strerror(errno)));
    std::vector<HfTensorSpec> specs = LlamaFamilyTensors(config);
    std::vector<std::vector<uint8_t>> storage;
    std::vector<TensorToWrite> tensors;
    bool bf16 = opts->dtype == "bf16";
    std::mt19937_64 rng(opts->seed);
    std::normal_distribution<float> normal(0.0f, static_cast<float>(stddev));
    for (const HfTensorSpec& spec : specs) {
      int64_t n = 1;
      for (int64_t d : spec.shape) n *= d;
      storage.emplace_back(static_cast<size_t>(n) * (bf16 ? 2 : 4));
      bool norm = spec.name.find("norm.weight") != std::string::npos;
      bool bias = spec.name.size() > 5 && spec.name.compare(spec.name.size() - 5, 5, ".bias") == 0;
      for (int64_t i = 0; i < n; ++i) {
        float v = norm ? 1.0f : bias ? 0.0f : normal(rng);
        if (bf16)
          reinterpret_cast<uint16_t*>(storage.back().data())[i] = cpu::FloatToBf16(v);
        else
          reinterpret_cast<float*>(storage.back().data())[i] = v;
      }
      tensors.push_back({spec.name, bf16 ? DType::kBF16 : DType::kF32, spec.shape,
                         storage.back().data()});
    }
    LORA_RETURN_IF_ERROR(WriteSafetensors(opts->output + "/model.safetensors", tensors,
                                          {{"format", "pt"}}));
    LORA_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(opts->config));
    LORA_RETURN_IF_ERROR(WriteFileAtomically(opts->output + "/config.json", text));
    if (!opts->tokenizer.empty()) {
      LORA_ASSIGN_OR_RETURN(std::string tok, ReadWholeFile(opts->tokenizer));
      LORA_RETURN_IF_ERROR(WriteFileAtomically(opts->output + "/tokenizer.model", tok));
    }
    out << "wrote " << opts->output << ": " << specs.size() << " tensors ("
        << opts->dtype << ")\n";
    return OkStatus();
  };
  return command;
}

}  // namespace cli
}  // namespace lorart
