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
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

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

// The linear modules of a Llama-family decoder layer that PEFT's
// "all-linear" selects (every nn.Linear but the output layer).
extern const char* const kAllLinearModules[7];

// The layer index PEFT reads from a module name when layers_to_transform
// is set (peft.tuners.tuners_utils, `.*?\.[^.]*\.(\d+)\.`): the first
// all-digit component that has a component before it and one after it.
// "model.layers.3.mlp.up_proj" -> 3; "model.layers.3.experts.7.w1" -> 3;
// "lm_head" -> none.
std::optional<int64_t> LayerIndexOf(std::string_view module);

// Which modules get a LoRA adapter: PEFT's rule
// (check_target_module_exists), one implementation for the compiler's
// AttachAdapters, `lorac import --adapter-config` and `lorart merge`.
//  - names: a module is selected when its full name equals an entry, or
//    ends with "." + the entry ("q_proj", "self_attn.q_proj");
//  - regex: a module is selected when the regex matches its full name
//    (Python's re.fullmatch; PCRE2 reads Python's syntax);
//  - layers (layers_to_transform, optional layers_pattern): a module
//    selected by a name entry it does not equal exactly must also sit in
//    one of these layers (LayerIndexOf, or the first `<pattern>.<index>.`
//    with a layers_pattern). PEFT refuses layers with a regex, so do we.
//  - exclude (exclude_modules): names (equal or suffix) or a regex; an
//    excluded module is never selected.
class TargetRule {
 public:
  // `names` may hold "all-linear" (expanded to kAllLinearModules). Exactly
  // one of `names` and `regex` is non-empty. Errors name `what` (the file or
  // the option) and say which part is wrong.
  static StatusOr<TargetRule> Make(const std::string& what, std::vector<std::string> names,
                                   const std::string& regex, std::vector<int64_t> layers,
                                   std::vector<std::string> layersPattern = {},
                                   std::vector<std::string> excludeNames = {},
                                   const std::string& excludeRegex = "");

  bool Matches(std::string_view module) const;
  // Whether the target_modules entry `entry` names `module` (equal, or a
  // suffix after a dot), layers aside.
  static bool EntryNames(std::string_view entry, std::string_view module);

  const std::vector<std::string>& names() const { return names_; }
  const std::string& regex() const { return regex_; }
  const std::vector<int64_t>& layers() const { return layers_; }
  bool excludes() const { return !excludeNames_.empty() || !excludeRegex_.empty(); }
  const std::vector<std::string>& layersPattern() const { return layersPattern_; }
  // For messages: target_modules ["q_proj","v_proj"], layers_to_transform [0,1].
  std::string Describe() const;

 private:
  struct Compiled;
  std::vector<std::string> names_;
  std::string regex_;
  std::vector<int64_t> layers_;
  std::vector<std::string> layersPattern_;
  std::vector<std::string> excludeNames_;
  std::string excludeRegex_;
  std::shared_ptr<const Compiled> compiledRegex_, compiledExclude_;
  std::vector<std::shared_ptr<const Compiled>> compiledPatterns_;
};

// The targeting keys of an adapter_config.json object (target_modules, a
// list or a regex string or "all-linear", missing = PEFT's Llama default
// ["q_proj", "v_proj"]; layers_to_transform, an integer or a list;
// layers_pattern; exclude_modules; target_parameters, refused). Errors are
// "PATH: key 'K' ...".
StatusOr<TargetRule> ReadPeftTargets(const nlohmann::json& config, const std::string& path);

// Reads PEFT's adapter_config.json (r, lora_alpha, lora_dropout,
// target_modules as a list or a regex string, layers_to_transform) and
// rejects the options lorac does not implement (DoRA, rsLoRA, per-module
// rank/alpha patterns, modules_to_save, bias training) with one clear line.
StatusOr<LoraOptions> ParsePeftAdapterConfig(const std::string& path);

}  // namespace lorart::hf

#endif  // LORART_IO_HF_CONFIG_H_
