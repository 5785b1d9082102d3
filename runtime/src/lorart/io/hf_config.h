// A Hugging Face model's config.json and PEFT's adapter_config.json, read
// once for the compiler and the runtime: `lorac import`/`compile` build the
// graph from ModelConfig (frontend/HFConfig.h re-exports it), `lorart
// init-model` writes a random model of it, and both derive the checkpoint
// layout from it (hf_layout.h). Free of LLVM and MLIR.
//
// The fields are the ones the model graph depends on, with Hugging Face's
// class defaults applied, the same for a config written by transformers
// 4.x (`rope_theta`, `rope_scaling`, `torch_dtype`) and by 5.x
// (`rope_parameters`, `dtype`, `layer_types`). Errors are one line naming
// the file and the key: "cfg/config.json: key 'hidden_size' must be a
// positive integer, got \"x\"". Both layouts in one file must agree, and a
// key that changes the math in a way lorac does not implement (yarn RoPE,
// partial rotary embeddings, soft-capping, attention dropout, per-layer
// sliding windows, ...) is an error, never ignored. docs/cli.md lists them.
#ifndef LORART_IO_HF_CONFIG_H_
#define LORART_IO_HF_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lorart/base/status.h"

namespace lorart::hf {

// Architectures lorac understands (all "RMSNorm + RoPE + GQA + SwiGLU"
// decoders; Qwen3 adds a per-head RMSNorm on q and k).
enum class Architecture { Llama, Mistral, Qwen2, Qwen3 };
inline constexpr Architecture kArchitectures[] = {Architecture::Llama, Architecture::Mistral,
                                                  Architecture::Qwen2, Architecture::Qwen3};
const char* ArchitectureName(Architecture arch);  // "LlamaForCausalLM", ...

struct RopeScaling {
  std::string type;  // "linear" or "llama3"
  double factor = 1.0;
  double lowFreqFactor = 1.0;
  double highFreqFactor = 4.0;
  int64_t originalMaxPositionEmbeddings = 8192;
};

// (Field names in the compiler's camelCase: the struct was the importer's
// before it moved here, and most of its readers are compiler code.)
struct ModelConfig {
  std::string path;  // the config.json it came from
  Architecture architecture = Architecture::Llama;
  int64_t hiddenSize = 0;
  int64_t intermediateSize = 0;
  int64_t numHiddenLayers = 0;
  int64_t numAttentionHeads = 0;
  int64_t numKeyValueHeads = 0;
  int64_t headDim = 0;
  int64_t vocabSize = 0;
  double rmsNormEps = 1e-6;
  double ropeTheta = 10000.0;
  std::optional<RopeScaling> ropeScaling;
  bool tieWordEmbeddings = false;
  bool attentionBias = false;  // bias on q/k/v (and o for Llama)
  bool outputBias = false;     // bias on o_proj
  bool mlpBias = false;
  // RMSNorm over each head of q and k before RoPE (`q_norm`, `k_norm`, a
  // `[head_dim]` scale each; Qwen3).
  bool qkNorm = false;
  std::optional<int64_t> slidingWindow;
  std::optional<int64_t> maxPositionEmbeddings;
  std::optional<int64_t> bosTokenId, eosTokenId;
  std::string torchDtype;         // `dtype` or `torch_dtype`; informational
  double initializerRange = 0.02;  // std of a new model's weights (init-model)
};

// Parses and validates a config.json in either transformers layout.
StatusOr<ModelConfig> ParseModelConfig(const std::string& path);

// LoRA options, from the command line or PEFT's adapter_config.json.
struct LoraOptions {
  int64_t rank = 16;
  double alpha = 32.0;
  double dropout = 0.05;
  std::string targets = "all-linear";  // comma list or all-linear
  std::string targetRegex;             // overrides targets when set
  std::vector<int64_t> layers;         // layers_to_transform
};

// Reads PEFT's adapter_config.json (r, lora_alpha, lora_dropout,
// target_modules as a list or a regex string, layers_to_transform) and
// rejects the options lorac does not implement (DoRA, rsLoRA, per-module
// rank/alpha patterns, modules_to_save, bias training) with one clear line.
StatusOr<LoraOptions> ParsePeftAdapterConfig(const std::string& path);

}  // namespace lorart::hf

#endif  // LORART_IO_HF_CONFIG_H_
