//===- HFConfig.cpp - Hugging Face config.json and PEFT configs -----------===//
#include "lora/Frontend/HFConfig.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cmath>
#include <nlohmann/json.hpp>

using json = nlohmann::json;
using llvm::Expected;

namespace mlir::lora::frontend {

const char *architectureName(Architecture arch) {
  switch (arch) {
  case Architecture::Llama:
    return "LlamaForCausalLM";
  case Architecture::Mistral:
    return "MistralForCausalLM";
  case Architecture::Qwen2:
    return "Qwen2ForCausalLM";
  }
  return "?";
}

namespace {

llvm::Error fail(const std::string &path, const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 (path + ": " + msg).str());
}

/// Loads a JSON object; syntax errors name line and column.
Expected<json> loadJsonObject(const std::string &path) {
  auto buf = llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buf)
    return fail(path, "cannot read: " + buf.getError().message());
  llvm::StringRef text = (*buf)->getBuffer();
  json j = json::parse(text.begin(), text.end(), nullptr,
                       /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    // Re-parse with exceptions to learn where it failed.
    try {
      json discard = json::parse(text.begin(), text.end());
      (void)discard;
    } catch (const json::parse_error &e) {
      size_t byte = e.byte > 0 ? e.byte - 1 : 0;
      size_t line = 1, col = 1;
      for (size_t i = 0; i < byte && i < text.size(); ++i) {
        if (text[i] == '\n') {
          ++line;
          col = 1;
        } else {
          ++col;
        }
      }
      return fail(path, llvm::formatv("{0}:{1}: invalid JSON", line, col));
    }
    return fail(path, "invalid JSON");
  }
  if (!j.is_object())
    return fail(path, "expected a JSON object at the top level");
  return j;
}

std::string show(const json &v) {
  std::string s = v.dump();
  if (s.size() > 60)
    s = s.substr(0, 57) + "...";
  return s;
}

/// Typed access to keys of a JSON object with errors naming file and key.
class Reader {
public:
  Reader(const std::string &path, const json &obj) : path(path), obj(obj) {}

  bool has(const char *key) const {
    return obj.contains(key) && !obj[key].is_null();
  }

  Expected<int64_t> positiveInt(const char *key) const {
    if (!has(key))
      return fail(path, llvm::formatv("missing required key '{0}'", key));
    return positiveIntOf(key, obj[key]);
  }
  Expected<int64_t> positiveIntOr(const char *key, int64_t dflt) const {
    if (!has(key))
      return dflt;
    return positiveIntOf(key, obj[key]);
  }
  Expected<int64_t> positiveIntOf(const char *key, const json &v) const {
    if (!v.is_number_integer() || v.get<int64_t>() <= 0)
      return fail(path, llvm::formatv("key '{0}' must be a positive integer, "
                                      "got {1}",
                                      key, show(v)));
    return v.get<int64_t>();
  }
  Expected<double> positiveNumberOr(const char *key, double dflt) const {
    if (!has(key))
      return dflt;
    const json &v = obj[key];
    if (!v.is_number() || !(v.get<double>() > 0.0) ||
        !std::isfinite(v.get<double>()))
      return fail(path, llvm::formatv("key '{0}' must be a positive number, "
                                      "got {1}",
                                      key, show(v)));
    return v.get<double>();
  }
  Expected<bool> boolOr(const char *key, bool dflt) const {
    if (!has(key))
      return dflt;
    if (!obj[key].is_boolean())
      return fail(path, llvm::formatv("key '{0}' must be true or false, got "
                                      "{1}",
                                      key, show(obj[key])));
    return obj[key].get<bool>();
  }
  Expected<std::string> stringOr(const char *key,
                                 const std::string &dflt) const {
    if (!has(key))
      return dflt;
    if (!obj[key].is_string())
      return fail(path, llvm::formatv("key '{0}' must be a string, got {1}",
                                      key, show(obj[key])));
    return obj[key].get<std::string>();
  }

  const std::string &path;
  const json &obj;
};

#define ASSIGN_OR_RETURN_ERR(lhs, expr)                                        \
  do {                                                                         \
    auto _v = (expr);                                                          \
    if (!_v)                                                                   \
      return _v.takeError();                                                   \
    lhs = std::move(*_v);                                                      \
  } while (0)

Expected<Architecture> readArchitecture(const Reader &r) {
  std::string name;
  if (r.has("architectures")) {
    const json &a = r.obj["architectures"];
    if (!a.is_array() || a.empty() || !a[0].is_string())
      return fail(r.path, "key 'architectures' must be a non-empty list of "
                          "strings, got " +
                              show(a));
    name = a[0].get<std::string>();
  } else if (r.has("model_type") && r.obj["model_type"].is_string()) {
    std::string type = r.obj["model_type"].get<std::string>();
    if (type == "llama")
      name = "LlamaForCausalLM";
    else if (type == "mistral")
      name = "MistralForCausalLM";
    else if (type == "qwen2")
      name = "Qwen2ForCausalLM";
    else
      return fail(r.path, "unsupported model_type '" + type +
                              "' (supported: llama, mistral, qwen2)");
  } else {
    return fail(r.path, "missing required key 'architectures'");
  }
  if (name == "LlamaForCausalLM")
    return Architecture::Llama;
  if (name == "MistralForCausalLM")
    return Architecture::Mistral;
  if (name == "Qwen2ForCausalLM")
    return Architecture::Qwen2;
  return fail(r.path, "key 'architectures': unsupported architecture '" +
                          name +
                          "' (supported: LlamaForCausalLM, "
                          "MistralForCausalLM, Qwen2ForCausalLM)");
}

Expected<std::optional<RopeScaling>> readRopeScaling(const Reader &r) {
  if (!r.has("rope_scaling"))
    return std::nullopt;
  const json &v = r.obj["rope_scaling"];
  if (!v.is_object())
    return fail(r.path, "key 'rope_scaling' must be an object or null, got " +
                            show(v));
  Reader s(r.path, v);
  std::string type;
  ASSIGN_OR_RETURN_ERR(type, s.stringOr("rope_type", ""));
  if (type.empty())
    ASSIGN_OR_RETURN_ERR(type, s.stringOr("type", ""));
  if (type.empty())
    return fail(r.path, "key 'rope_scaling' has no 'rope_type'");
  if (type == "default")
    return std::nullopt;
  if (type != "linear" && type != "llama3")
    return fail(r.path, "key 'rope_scaling.rope_type': '" + type +
                            "' is not supported (supported: default, linear, "
                            "llama3)");
  RopeScaling rs;
  rs.type = type;
  if (!s.has("factor"))
    return fail(r.path, "missing required key 'rope_scaling.factor'");
  ASSIGN_OR_RETURN_ERR(rs.factor, s.positiveNumberOr("factor", 1.0));
  if (type == "llama3") {
    for (const char *k : {"low_freq_factor", "high_freq_factor",
                          "original_max_position_embeddings"})
      if (!s.has(k))
        return fail(r.path,
                    llvm::formatv("missing required key 'rope_scaling.{0}'", k));
    ASSIGN_OR_RETURN_ERR(rs.lowFreqFactor,
                         s.positiveNumberOr("low_freq_factor", 1.0));
    ASSIGN_OR_RETURN_ERR(rs.highFreqFactor,
                         s.positiveNumberOr("high_freq_factor", 4.0));
    ASSIGN_OR_RETURN_ERR(rs.originalMaxPositionEmbeddings,
                         s.positiveIntOr("original_max_position_embeddings",
                                         8192));
    if (!(rs.highFreqFactor > rs.lowFreqFactor))
      return fail(r.path, "key 'rope_scaling.high_freq_factor' must be "
                          "larger than 'rope_scaling.low_freq_factor'");
  }
  return rs;
}

/// bos/eos ids may be an integer or (Llama 3.1) a list; we keep the first.
Expected<std::optional<int64_t>> readTokenId(const Reader &r, const char *key) {
  if (!r.has(key))
    return std::nullopt;
  json v = r.obj[key];
  if (v.is_array() && !v.empty())
    v = v[0];
  if (!v.is_number_integer() || v.get<int64_t>() < 0)
    return fail(r.path, llvm::formatv("key '{0}' must be a non-negative "
                                      "integer or a list of them, got {1}",
                                      key, show(r.obj[key])));
  return v.get<int64_t>();
}

} // namespace

Expected<ModelConfig> parseModelConfig(const std::string &path) {
  json j;
  ASSIGN_OR_RETURN_ERR(j, loadJsonObject(path));
  Reader r(path, j);
  ModelConfig c;
  c.path = path;
  ASSIGN_OR_RETURN_ERR(c.architecture, readArchitecture(r));

  std::string act;
  ASSIGN_OR_RETURN_ERR(act, r.stringOr("hidden_act", "silu"));
  if (act != "silu")
    return fail(path, "key 'hidden_act': '" + act +
                          "' is not supported (the SwiGLU MLP needs silu)");

  ASSIGN_OR_RETURN_ERR(c.hiddenSize, r.positiveInt("hidden_size"));
  ASSIGN_OR_RETURN_ERR(c.intermediateSize, r.positiveInt("intermediate_size"));
  ASSIGN_OR_RETURN_ERR(c.numHiddenLayers, r.positiveInt("num_hidden_layers"));
  ASSIGN_OR_RETURN_ERR(c.numAttentionHeads,
                       r.positiveInt("num_attention_heads"));
  ASSIGN_OR_RETURN_ERR(c.vocabSize, r.positiveInt("vocab_size"));

  // Hugging Face's class defaults for num_key_value_heads.
  int64_t kvDefault = c.numAttentionHeads;
  if (c.architecture == Architecture::Mistral)
    kvDefault = 8;
  else if (c.architecture == Architecture::Qwen2)
    kvDefault = 32;
  ASSIGN_OR_RETURN_ERR(c.numKeyValueHeads,
                       r.positiveIntOr("num_key_value_heads", kvDefault));
  if (c.numAttentionHeads % c.numKeyValueHeads != 0)
    return fail(path, llvm::formatv("key 'num_key_value_heads' ({0}) must "
                                    "divide 'num_attention_heads' ({1})",
                                    c.numKeyValueHeads, c.numAttentionHeads));
  if (r.has("head_dim")) {
    ASSIGN_OR_RETURN_ERR(c.headDim, r.positiveInt("head_dim"));
  } else {
    if (c.hiddenSize % c.numAttentionHeads != 0)
      return fail(path, llvm::formatv("key 'hidden_size' ({0}) must be a "
                                      "multiple of 'num_attention_heads' "
                                      "({1}) when 'head_dim' is not given",
                                      c.hiddenSize, c.numAttentionHeads));
    c.headDim = c.hiddenSize / c.numAttentionHeads;
  }
  if (c.headDim % 2 != 0)
    return fail(path, llvm::formatv("head_dim ({0}) must be even for rotary "
                                    "embeddings",
                                    c.headDim));

  ASSIGN_OR_RETURN_ERR(c.rmsNormEps, r.positiveNumberOr("rms_norm_eps", 1e-6));
  ASSIGN_OR_RETURN_ERR(c.ropeTheta, r.positiveNumberOr("rope_theta", 10000.0));
  ASSIGN_OR_RETURN_ERR(c.ropeScaling, readRopeScaling(r));
  ASSIGN_OR_RETURN_ERR(c.tieWordEmbeddings,
                       r.boolOr("tie_word_embeddings", false));

  switch (c.architecture) {
  case Architecture::Llama:
    ASSIGN_OR_RETURN_ERR(c.attentionBias, r.boolOr("attention_bias", false));
    c.outputBias = c.attentionBias;
    ASSIGN_OR_RETURN_ERR(c.mlpBias, r.boolOr("mlp_bias", false));
    break;
  case Architecture::Mistral:
    if (r.has("sliding_window"))
      ASSIGN_OR_RETURN_ERR(c.slidingWindow, r.positiveInt("sliding_window"));
    break;
  case Architecture::Qwen2: {
    c.attentionBias = true; // Qwen2 always has q/k/v biases, never o_proj.
    bool sliding;
    ASSIGN_OR_RETURN_ERR(sliding, r.boolOr("use_sliding_window", false));
    if (sliding)
      return fail(path, "key 'use_sliding_window': per-layer sliding windows "
                        "of Qwen2 are not supported yet");
    break;
  }
  }

  if (r.has("max_position_embeddings"))
    ASSIGN_OR_RETURN_ERR(c.maxPositionEmbeddings,
                         r.positiveInt("max_position_embeddings"));
  ASSIGN_OR_RETURN_ERR(c.bosTokenId, readTokenId(r, "bos_token_id"));
  ASSIGN_OR_RETURN_ERR(c.eosTokenId, readTokenId(r, "eos_token_id"));
  ASSIGN_OR_RETURN_ERR(c.torchDtype, r.stringOr("torch_dtype", ""));
  return c;
}

Expected<LoraOptions> parsePeftAdapterConfig(const std::string &path) {
  json j;
  ASSIGN_OR_RETURN_ERR(j, loadJsonObject(path));
  Reader r(path, j);
  LoraOptions o;
  std::string peftType, task, bias;
  ASSIGN_OR_RETURN_ERR(peftType, r.stringOr("peft_type", "LORA"));
  if (peftType != "LORA")
    return fail(path, "key 'peft_type': '" + peftType +
                          "' is not supported (only LORA)");
  ASSIGN_OR_RETURN_ERR(task, r.stringOr("task_type", "CAUSAL_LM"));
  if (task != "CAUSAL_LM")
    return fail(path, "key 'task_type': '" + task +
                          "' is not supported (only CAUSAL_LM)");
  ASSIGN_OR_RETURN_ERR(o.rank, r.positiveIntOr("r", 8));
  ASSIGN_OR_RETURN_ERR(o.alpha, r.positiveNumberOr("lora_alpha", 8.0));
  if (r.has("lora_dropout")) {
    const json &d = r.obj["lora_dropout"];
    if (!d.is_number() || d.get<double>() < 0.0 || d.get<double>() >= 1.0)
      return fail(path, "key 'lora_dropout' must be a number in [0, 1), got " +
                            show(d));
    o.dropout = d.get<double>();
  } else {
    o.dropout = 0.0;
  }
  ASSIGN_OR_RETURN_ERR(bias, r.stringOr("bias", "none"));
  if (bias != "none")
    return fail(path, "key 'bias': '" + bias +
                          "' is not supported (only \"none\")");
  for (const char *k : {"use_dora", "use_rslora", "fan_in_fan_out"}) {
    bool on;
    ASSIGN_OR_RETURN_ERR(on, r.boolOr(k, false));
    if (on)
      return fail(path, llvm::formatv("key '{0}': true is not supported yet",
                                      k));
  }
  for (const char *k : {"rank_pattern", "alpha_pattern"})
    if (r.has(k) && !(r.obj[k].is_object() && r.obj[k].empty()))
      return fail(path, llvm::formatv("key '{0}': per-module ranks/alphas are "
                                      "not supported yet",
                                      k));
  if (r.has("modules_to_save") &&
      !(r.obj["modules_to_save"].is_array() &&
        r.obj["modules_to_save"].empty()))
    return fail(path, "key 'modules_to_save': fully trained extra modules "
                      "are not supported yet");
  if (r.has("target_modules")) {
    const json &t = r.obj["target_modules"];
    if (t.is_string()) {
      std::string s = t.get<std::string>();
      if (s == "all-linear")
        o.targets = s;
      else
        o.targetRegex = s; // PEFT: a string is a regex (full match)
    } else if (t.is_array() && !t.empty()) {
      std::string joined;
      for (const json &e : t) {
        if (!e.is_string() || e.get<std::string>().empty())
          return fail(path, "key 'target_modules' must be a regex string or "
                            "a list of module names, got " +
                                show(t));
        joined += (joined.empty() ? "" : ",") + e.get<std::string>();
      }
      o.targets = joined;
    } else {
      return fail(path, "key 'target_modules' must be a regex string or a "
                        "non-empty list of module names, got " +
                            show(t));
    }
  } else {
    o.targets = "q_proj,v_proj"; // PEFT's default for Llama-family models
  }
  if (r.has("layers_to_transform")) {
    const json &l = r.obj["layers_to_transform"];
    std::vector<json> items;
    if (l.is_array())
      items.assign(l.begin(), l.end());
    else
      items.push_back(l);
    for (const json &e : items) {
      if (!e.is_number_integer() || e.get<int64_t>() < 0)
        return fail(path, "key 'layers_to_transform' must be a non-negative "
                          "integer or a list of them, got " +
                              show(l));
      o.layers.push_back(e.get<int64_t>());
    }
  }
  return o;
}

} // namespace mlir::lora::frontend
