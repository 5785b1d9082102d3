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
#include "lorart/io/hf_layout.h"
#include "lorart/io/json.h"
#include "lorart/io/safetensors_write.h"

namespace lorart {
namespace cli {

namespace {

Status ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError(StrFormat("%s: cannot read: %s", path.c_str(), std::strerror(errno)));
  std::stringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return OkStatus();
}

Status PositiveInt(const Json& cfg, const std::string& path, const char* key, int64_t* out,
                   int64_t dflt = -1) {
  if (!cfg.contains(key) || cfg[key].is_null()) {
    if (dflt >= 0) {
      *out = dflt;
      return OkStatus();
    }
    return InvalidArgumentError(StrFormat("%s: missing required key '%s'", path.c_str(), key));
  }
  if (!cfg[key].is_number_integer() || cfg[key].get<int64_t>() <= 0)
    return InvalidArgumentError(StrFormat("%s: key '%s' must be a positive integer, got %s",
                                          path.c_str(), key, JsonSnippet(cfg[key]).c_str()));
  *out = cfg[key].get<int64_t>();
  return OkStatus();
}

}  // namespace

// Reads the dimensions of a Llama-family config.json.
Status ReadModelDims(const std::string& path, HfModelDims* dims, double* init_std) {
  std::string text;
  LORA_RETURN_IF_ERROR(ReadFile(path, &text));
  Json cfg;
  LORA_RETURN_IF_ERROR(ParseJson(text, path, "config", &cfg));
  if (!cfg.is_object()) return InvalidArgumentError(path + ": expected a JSON object");
  LORA_RETURN_IF_ERROR(PositiveInt(cfg, path, "hidden_size", &dims->hidden_size));
  LORA_RETURN_IF_ERROR(PositiveInt(cfg, path, "intermediate_size", &dims->intermediate_size));
  LORA_RETURN_IF_ERROR(PositiveInt(cfg, path, "num_hidden_layers", &dims->num_hidden_layers));
  LORA_RETURN_IF_ERROR(PositiveInt(cfg, path, "num_attention_heads", &dims->num_attention_heads));
  LORA_RETURN_IF_ERROR(PositiveInt(cfg, path, "vocab_size", &dims->vocab_size));
  LORA_RETURN_IF_ERROR(PositiveInt(cfg, path, "num_key_value_heads", &dims->num_key_value_heads,
                                   dims->num_attention_heads));
  std::string type = cfg.value("model_type", std::string("llama"));
  // Qwen3Config's head_dim defaults to 128; the others' to hidden / heads.
  bool qwen3 = type == "qwen3";
  if (dims->hidden_size % dims->num_attention_heads != 0 && !cfg.contains("head_dim") && !qwen3)
    return InvalidArgumentError(path + ": hidden_size must be a multiple of num_attention_heads");
  LORA_RETURN_IF_ERROR(PositiveInt(cfg, path, "head_dim", &dims->head_dim,
                                   qwen3 ? 128 : dims->hidden_size / dims->num_attention_heads));
  dims->tie_word_embeddings = cfg.value("tie_word_embeddings", false);
  bool bias = cfg.value("attention_bias", false);
  dims->qkv_bias = bias || type == "qwen2";
  dims->output_bias = bias && (type == "llama" || qwen3);
  dims->qk_norm = qwen3;
  dims->mlp_bias = cfg.value("mlp_bias", false);
  *init_std = cfg.value("initializer_range", 0.02);
  return OkStatus();
}

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
    HfModelDims dims;
    double stddev = 0.02;
    LORA_RETURN_IF_ERROR(ReadModelDims(opts->config, &dims, &stddev));
    if (::mkdir(opts->output.c_str(), 0755) != 0 && errno != EEXIST)
      return UnavailableError(StrFormat("%s: cannot create directory: %s", opts->output.c_str(),
                                        std::strerror(errno)));
    std::vector<HfTensorSpec> specs = LlamaFamilyTensors(dims);
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
    std::string config;
    LORA_RETURN_IF_ERROR(ReadFile(opts->config, &config));
    LORA_RETURN_IF_ERROR(WriteFileAtomically(opts->output + "/config.json", config));
    if (!opts->tokenizer.empty()) {
      std::string tok;
      LORA_RETURN_IF_ERROR(ReadFile(opts->tokenizer, &tok));
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
