// Hugging Face config.json (transformers 4.x and 5.x layouts) and PEFT's
// adapter_config.json: the one reader of both, for the compiler's importer
// and the runtime (lorart init-model). Errors are one line naming the file
// and the key (hf_config.h).
#include "lorart/io/hf_config.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <nlohmann/json.hpp>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "lorart/base/strings.h"
#include "lorart/io/json.h"

using json = nlohmann::json;

namespace lorart::hf {

const char *ArchitectureName(Architecture arch) {
  switch (arch) {
  case Architecture::Llama:
    return "LlamaForCausalLM";
  case Architecture::Mistral:
    return "MistralForCausalLM";
  case Architecture::Qwen2:
    return "Qwen2ForCausalLM";
  case Architecture::Qwen3:
    return "Qwen3ForCausalLM";
  }
  return "?";
}

namespace {

Status fail(const std::string &path, const std::string &msg) {
  return InvalidArgumentError(path + ": " + msg);
}

/// Loads a JSON object; syntax errors name line and column.
StatusOr<json> loadJsonObject(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return fail(path, std::string("cannot read: ") + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  // Where byte `offset` is, as "line:column".
  auto where = [&](size_t offset) {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < offset && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    return Format("{0}:{1}", {line, col});
  };
  // Deep nesting is refused before parsing: the parsed value's destructor
  // and every walk over it recurse.
  size_t deep = 0;
  if (JsonTooDeep(text, &deep))
    return fail(path, Format("{0}: JSON nests deeper than {1} levels",
                             {where(deep), kMaxJsonDepth}));
  json j;
  DuplicateKeys dups;
  try {
    j = json::parse(text.begin(), text.end(), dups.Callback());
  } catch (const json::parse_error &e) {
    // nlohmann's reason, without its own position ("syntax error while
    // parsing value - invalid literal; last read: 'NaN'").
    std::string reason = JsonExceptionReason(e);
    if (size_t colon = reason.find(": ");
        reason.rfind("parse error", 0) == 0 && colon != std::string::npos)
      reason.erase(0, colon + 2);
    if (reason.size() > 200)
      reason = reason.substr(0, 200) + "...";
    for (char &c : reason) // bytes of the file itself: one printable line
      if (static_cast<unsigned char>(c) < 0x20 ||
          static_cast<unsigned char>(c) >= 0x7f)
        c = '?';
    return fail(path, where(e.byte > 0 ? e.byte - 1 : 0) +
                          ": invalid JSON: " + reason);
  } catch (const json::exception &e) {
    // e.g. out_of_range.406 "number overflow parsing '1e400'".
    std::string reason = e.what();
    size_t bracket = reason.find("] ");
    if (bracket != std::string::npos)
      reason.erase(0, bracket + 2);
    return fail(path, "invalid JSON: " + reason);
  }
  // Python's json (transformers, PEFT) keeps the last of two equal keys;
  // which one was meant is anyone's guess.
  if (!dups.first().empty())
    return fail(path, dups.first());
  if (!j.is_object())
    return fail(path, "expected a JSON object at the top level");
  return j;
}

std::string show(const json &v) {
  // Invalid UTF-8 in a string is shown replaced, never thrown.
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 60)
    s = s.substr(0, 57) + "...";
  return s;
}

/// The shortest decimal that reads back as `v` ("500000", "0.5", "1e-05").
std::string num(double v) {
  char buf[32];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  for (int precision = 1; precision <= 17; ++precision) {
    snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v)
      break;
  }
  return buf;
}

/// The largest value accepted for an integer key: generous for every
/// published model (Llama 3.1 405B: hidden 16384, 126 layers; Gemma:
/// vocab 262144; 10M-token contexts), small enough that products of sizes
/// stay far from overflow.
int64_t sizeLimit(const char *key) {
  static const std::pair<const char *, int64_t> kLimits[] = {
      {"hidden_size", int64_t(1) << 17},
      {"intermediate_size", int64_t(1) << 20},
      {"num_hidden_layers", 1024},
      {"num_attention_heads", 4096},
      {"num_key_value_heads", 4096},
      {"head_dim", 8192},
      {"vocab_size", int64_t(1) << 24},
      {"max_position_embeddings", int64_t(1) << 30},
      {"original_max_position_embeddings", int64_t(1) << 30},
      {"sliding_window", int64_t(1) << 30},
      {"max_window_layers", 1024},
      {"r", 65536},
  };
  for (const auto &[k, limit] : kLimits)
    if (std::strcmp(k, key) == 0)
      return limit;
  return std::numeric_limits<int32_t>::max();
}

/// Typed access to keys of a JSON object with errors naming file and key.
/// `prefix` names a nested object ("rope_parameters") in messages.
class Reader {
public:
  Reader(const std::string &path, const json &obj, std::string prefix = "")
      : path(path), obj(obj), prefix(std::move(prefix)) {}

  /// The key as messages name it: "rope_scaling.factor".
  std::string name(const char *key) const {
    return prefix.empty() ? std::string(key) : prefix + "." + key;
  }

  bool has(const char *key) const {
    return obj.contains(key) && !obj[key].is_null();
  }

  StatusOr<int64_t> positiveInt(const char *key) const {
    if (!has(key))
      return fail(path, Format("missing required key '{0}'", {name(key)}));
    return positiveIntOf(key, obj[key]);
  }
  StatusOr<int64_t> positiveIntOr(const char *key, int64_t dflt) const {
    if (!has(key))
      return dflt;
    return positiveIntOf(key, obj[key]);
  }
  StatusOr<int64_t> positiveIntOf(const char *key, const json &v) const {
    if (!v.is_number_integer() || v.get<int64_t>() <= 0)
      return fail(path, Format("key '{0}' must be a positive integer, "
                                      "got {1}", {name(key), show(v)}));
    return bounded(key, v);
  }
  /// Every size is bounded: a huge value would make the importer build
  /// an endless graph or overflow a product of sizes.
  StatusOr<int64_t> bounded(const char *key, const json &v) const {
    const int64_t limit = sizeLimit(key);
    if (v.is_number_unsigned() ? v.get<uint64_t>() > uint64_t(limit)
                               : v.get<int64_t>() > limit)
      return fail(path, Format("key '{0}' is {1}, more than the largest "
                               "supported value {2}",
                               {name(key), show(v), limit}));
    return v.get<int64_t>();
  }
  StatusOr<int64_t> nonNegativeIntOr(const char *key, int64_t dflt) const {
    if (!has(key))
      return dflt;
    const json &v = obj[key];
    if (!v.is_number_integer() || v.get<int64_t>() < 0)
      return fail(path, Format("key '{0}' must be a non-negative "
                                      "integer, got {1}", {name(key), show(v)}));
    return bounded(key, v);
  }
  StatusOr<double> positiveNumber(const char *key) const {
    if (!has(key))
      return fail(path, Format("missing required key '{0}'", {name(key)}));
    return positiveNumberOr(key, 0.0);
  }
  StatusOr<double> positiveNumberOr(const char *key, double dflt) const {
    if (!has(key))
      return dflt;
    const json &v = obj[key];
    if (!v.is_number() || !(v.get<double>() > 0.0) ||
        !std::isfinite(v.get<double>()))
      return fail(path, Format("key '{0}' must be a positive number, "
                                      "got {1}", {name(key), show(v)}));
    return v.get<double>();
  }
  StatusOr<bool> boolOr(const char *key, bool dflt) const {
    if (!has(key))
      return dflt;
    if (!obj[key].is_boolean())
      return fail(path, Format("key '{0}' must be true or false, got "
                                      "{1}", {name(key), show(obj[key])}));
    return obj[key].get<bool>();
  }
  StatusOr<std::string> stringOr(const char *key,
                                 const std::string &dflt) const {
    if (!has(key))
      return dflt;
    if (!obj[key].is_string())
      return fail(path, Format("key '{0}' must be a string, got {1}", {name(key), show(obj[key])}));
    return obj[key].get<std::string>();
  }

  const std::string &path;
  const json &obj;
  std::string prefix;
};

#define ASSIGN_OR_RETURN_ERR(lhs, expr)                                        \
  do {                                                                         \
    auto _v = (expr);                                                          \
    if (!_v.ok())                                                              \
      return _v.status();                                                      \
    lhs = std::move(*_v);                                                      \
  } while (0)

#define RETURN_IF_ERR(expr)                                                    \
  do {                                                                         \
    Status _e = (expr);                                                        \
    if (!_e.ok())                                                              \
      return _e;                                                               \
  } while (0)

//===----------------------------------------------------------------------===//
// Architecture
//===----------------------------------------------------------------------===//

/// model_type of each architecture (what AutoModelForCausalLM dispatches on).
const char *modelTypeOf(Architecture arch) {
  switch (arch) {
  case Architecture::Llama:
    return "llama";
  case Architecture::Mistral:
    return "mistral";
  case Architecture::Qwen2:
    return "qwen2";
  case Architecture::Qwen3:
    return "qwen3";
  }
  return "?";
}

StatusOr<Architecture> readArchitecture(const Reader &r) {
  std::optional<Architecture> fromType;
  std::string type;
  ASSIGN_OR_RETURN_ERR(type, r.stringOr("model_type", ""));
  if (!type.empty()) {
    for (Architecture a : kArchitectures)
      if (type == modelTypeOf(a))
        fromType = a;
    if (!fromType)
      return fail(r.path, "unsupported model_type '" + type +
                              "' (supported: llama, mistral, qwen2, qwen3)");
  }
  if (!r.has("architectures")) {
    if (fromType)
      return *fromType;
    return fail(r.path, "missing required key 'architectures'");
  }
  const json &a = r.obj["architectures"];
  if (!a.is_array() || a.empty() || !a[0].is_string())
    return fail(r.path, "key 'architectures' must be a non-empty list of "
                        "strings, got " +
                            show(a));
  std::string name = a[0].get<std::string>();
  std::optional<Architecture> arch;
  for (Architecture x : kArchitectures)
    if (name == ArchitectureName(x))
      arch = x;
  if (!arch)
    return fail(r.path, "key 'architectures': unsupported architecture '" +
                            name +
                            "' (supported: LlamaForCausalLM, "
                            "MistralForCausalLM, Qwen2ForCausalLM, "
                            "Qwen3ForCausalLM)");
  // transformers builds the config class (and its defaults) from model_type
  // and AutoModelForCausalLM picks the model from it too: a mismatch is two
  // different models.
  if (fromType && *fromType != *arch)
    return fail(r.path, Format("key 'model_type': '{0}' does not match "
                                      "'architectures' {1} (expected '{2}')", {type, name, modelTypeOf(*arch)}));
  return *arch;
}

//===----------------------------------------------------------------------===//
// RoPE: transformers 4.x `rope_theta` + `rope_scaling`, 5.x `rope_parameters`
//===----------------------------------------------------------------------===//

/// One RoPE dictionary as it is written: 4.x `rope_scaling`, 5.x
/// `rope_parameters`, or one per-layer-type entry of a nested
/// `rope_parameters`. Absent values are "no opinion".
struct RopeDict {
  std::string where;             // "rope_scaling", "rope_parameters", ...
  std::string type = "default";  // default, linear or llama3
  std::string typeKey;           // the key the type came from; empty if none
  std::optional<double> theta;
  std::optional<double> factor, lowFreqFactor, highFreqFactor;
  std::optional<int64_t> originalMaxPositionEmbeddings;

  std::string key(const char *k) const { return where + "." + k; }
  /// The type's key and value as messages show them.
  std::string typeKeyShown() const {
    return typeKey.empty() ? key("rope_type") : typeKey;
  }
  std::string typeShown() const {
    return typeKey.empty() ? "absent: '" + type + "'" : "'" + type + "'";
  }
};

StatusOr<RopeDict> readRopeDict(const std::string &path,
                                const std::string &where, const json &v,
                                bool typeRequired) {
  if (!v.is_object())
    return fail(path, "key '" + where + "' must be an object or null, got " +
                          show(v));
  Reader s(path, v, where);
  RopeDict d;
  d.where = where;
  std::string ropeType, legacyType;
  ASSIGN_OR_RETURN_ERR(ropeType, s.stringOr("rope_type", ""));
  ASSIGN_OR_RETURN_ERR(legacyType, s.stringOr("type", ""));
  if (!ropeType.empty() && !legacyType.empty() && ropeType != legacyType)
    return fail(path, Format("keys '{0}' ('{1}') and '{2}' ('{3}') "
                                    "disagree", {d.key("rope_type"), ropeType,
                                    d.key("type"), legacyType}));
  if (!ropeType.empty()) {
    d.type = ropeType;
    d.typeKey = d.key("rope_type");
  } else if (!legacyType.empty()) {
    d.type = legacyType;
    d.typeKey = d.key("type");
  } else if (typeRequired) {
    return fail(path, "key '" + where + "' has no 'rope_type'");
  } else if (s.has("factor")) {
    // transformers 5 would take it as the default RoPE and drop the factor.
    return fail(path, "key '" + where + "' has a 'factor' but no "
                                        "'rope_type'");
  }
  if (d.type != "default" && d.type != "linear" && d.type != "llama3")
    return fail(path, "key '" + d.typeKey + "': '" + d.type +
                          "' is not supported (supported: default, linear, "
                          "llama3)");
  if (s.has("rope_theta")) {
    double theta;
    ASSIGN_OR_RETURN_ERR(theta, s.positiveNumberOr("rope_theta", 0.0));
    d.theta = theta;
  }
  if (s.has("partial_rotary_factor")) {
    const json &p = v["partial_rotary_factor"];
    if (!p.is_number() || p.get<double>() != 1.0)
      return fail(path, "key '" + d.key("partial_rotary_factor") + "': " +
                            show(p) +
                            " is not supported (lorac rotates the whole "
                            "head: only 1.0)");
  }
  if (d.type == "default")
    return d; // HF's default RoPE reads nothing else
  double factor;
  ASSIGN_OR_RETURN_ERR(factor, s.positiveNumber("factor"));
  d.factor = factor;
  if (d.type == "llama3") {
    double low, high;
    ASSIGN_OR_RETURN_ERR(low, s.positiveNumber("low_freq_factor"));
    ASSIGN_OR_RETURN_ERR(high, s.positiveNumber("high_freq_factor"));
    if (!(high > low))
      return fail(path, "key '" + d.key("high_freq_factor") +
                            "' must be larger than '" +
                            d.key("low_freq_factor") + "'");
    d.lowFreqFactor = low;
    d.highFreqFactor = high;
    if (s.has("original_max_position_embeddings")) {
      int64_t omax;
      ASSIGN_OR_RETURN_ERR(omax,
                           s.positiveIntOr("original_max_position_embeddings",
                                           0));
      d.originalMaxPositionEmbeddings = omax;
    }
  }
  return d;
}

/// The first field on which two dictionaries disagree, as an error naming
/// both keys; theta and original_max_position_embeddings are compared by
/// the caller with the top-level keys.
Status checkSameScaling(const std::string &path, const RopeDict &a,
                             const RopeDict &b) {
  if (a.type != b.type)
    return fail(path, Format("keys '{0}' ({1}) and '{2}' ({3}) "
                                    "disagree", {a.typeKeyShown(), a.typeShown(),
                                    b.typeKeyShown(), b.typeShown()}));
  auto same = [&](const char *k, std::optional<double> x,
                  std::optional<double> y) -> Status {
    if (x && y && *x != *y)
      return fail(path, Format("keys '{0}' ({1}) and '{2}' ({3}) "
                                      "disagree", {a.key(k), num(*x), b.key(k), num(*y)}));
    return OkStatus();
  };
  RETURN_IF_ERR(same("factor", a.factor, b.factor));
  RETURN_IF_ERR(same("low_freq_factor", a.lowFreqFactor, b.lowFreqFactor));
  RETURN_IF_ERR(same("high_freq_factor", a.highFreqFactor, b.highFreqFactor));
  return OkStatus();
}

/// A value given under several keys (top-level and inside the RoPE
/// dictionaries): they must agree; the first one given wins.
template <typename T> struct Agreed {
  std::optional<T> value;
  std::string key;
  Status add(const std::string &path, const std::string &k,
                  std::optional<T> v) {
    if (!v)
      return OkStatus();
    if (value && *value != *v)
      return fail(path, Format("keys '{0}' ({1}) and '{2}' ({3}) "
                                      "disagree", {key, num(double(*value)), k,
                                      num(double(*v))}));
    if (!value) {
      value = v;
      key = k;
    }
    return OkStatus();
  }
};

/// `rope_parameters`: one dictionary, or (transformers 5 for models with
/// several attention kinds) one per layer type, which must then be equal.
StatusOr<RopeDict> readRopeParameters(const Reader &r,
                                      const std::vector<std::string> &types) {
  const json &v = r.obj["rope_parameters"];
  bool nested = v.is_object() && !v.empty();
  for (auto it = v.begin(); nested && it != v.end(); ++it)
    nested = it.value().is_object() &&
             (it.key() == "full_attention" ||
              it.key() == "sliding_attention" ||
              std::find(types.begin(), types.end(), it.key()) != types.end());
  if (!nested)
    return readRopeDict(r.path, "rope_parameters", v, /*typeRequired=*/false);
  std::optional<RopeDict> first;
  for (auto it = v.begin(); it != v.end(); ++it) {
    RopeDict d;
    ASSIGN_OR_RETURN_ERR(d, readRopeDict(r.path, "rope_parameters." + it.key(),
                                         it.value(), false));
    if (!first) {
      first = d;
      continue;
    }
    bool differs = !checkSameScaling(r.path, *first, d).ok();
    if (differs || first->theta != d.theta ||
        first->originalMaxPositionEmbeddings !=
            d.originalMaxPositionEmbeddings)
      return fail(r.path, "key 'rope_parameters': the RoPE of the '" +
                              it.key() + "' layers differs from the others; "
                              "lorac applies one RoPE to every layer");
  }
  return *first;
}

Status readRope(const Reader &r, const std::vector<std::string> &types,
                     ModelConfig &c) {
  std::optional<RopeDict> scaling, params;
  if (r.has("rope_scaling")) {
    RopeDict d;
    ASSIGN_OR_RETURN_ERR(d, readRopeDict(r.path, "rope_scaling",
                                         r.obj["rope_scaling"],
                                         /*typeRequired=*/true));
    scaling = d;
  }
  if (r.has("rope_parameters")) {
    RopeDict d;
    ASSIGN_OR_RETURN_ERR(d, readRopeParameters(r, types));
    params = d;
  }
  if (scaling && params)
    RETURN_IF_ERR(checkSameScaling(r.path, *scaling, *params));

  if (r.has("partial_rotary_factor")) {
    const json &p = r.obj["partial_rotary_factor"];
    if (!p.is_number() || p.get<double>() != 1.0)
      return fail(r.path, "key 'partial_rotary_factor': " + show(p) +
                              " is not supported (lorac rotates the whole "
                              "head: only 1.0)");
  }

  Agreed<double> theta;
  if (r.has("rope_theta")) {
    double t;
    ASSIGN_OR_RETURN_ERR(t, r.positiveNumberOr("rope_theta", 0.0));
    RETURN_IF_ERR(theta.add(r.path, "rope_theta", t));
  }
  for (const std::optional<RopeDict> &d : {scaling, params})
    if (d)
      RETURN_IF_ERR(theta.add(r.path, d->key("rope_theta"), d->theta));
  // Every family lorac imports has transformers' default_theta of 10000.
  c.ropeTheta = theta.value.value_or(10000.0);

  const RopeDict *eff = params ? &*params : scaling ? &*scaling : nullptr;
  if (!eff || eff->type == "default") {
    c.ropeScaling = std::nullopt;
    return OkStatus();
  }
  RopeScaling rs;
  rs.type = eff->type;
  rs.factor = *eff->factor;
  if (eff->type == "llama3") {
    rs.lowFreqFactor = *eff->lowFreqFactor;
    rs.highFreqFactor = *eff->highFreqFactor;
    // transformers 5 lets a top-level original_max_position_embeddings win
    // over the dictionary's (Phi-3 style); lorac asks that they agree.
    Agreed<int64_t> omax;
    if (r.has("original_max_position_embeddings")) {
      int64_t o;
      ASSIGN_OR_RETURN_ERR(o, r.positiveInt("original_max_position_embeddings"));
      RETURN_IF_ERR(omax.add(r.path, "original_max_position_embeddings", o));
    }
    for (const std::optional<RopeDict> &d : {scaling, params})
      if (d)
        RETURN_IF_ERR(omax.add(r.path,
                               d->key("original_max_position_embeddings"),
                               d->originalMaxPositionEmbeddings));
    if (!omax.value)
      return fail(r.path, "missing required key '" +
                              eff->key("original_max_position_embeddings") +
                              "'");
    rs.originalMaxPositionEmbeddings = *omax.value;
  }
  c.ropeScaling = rs;
  return OkStatus();
}

//===----------------------------------------------------------------------===//
// Attention kinds per layer: layer_types, sliding_window
//===----------------------------------------------------------------------===//

/// transformers 5 `layer_types` (Qwen2 writes it; 4.x from 4.53 too):
/// "full_attention" or "sliding_attention" per decoder layer.
StatusOr<std::vector<std::string>> readLayerTypes(const Reader &r,
                                                  int64_t numLayers) {
  std::vector<std::string> types;
  if (!r.has("layer_types"))
    return types;
  const json &lt = r.obj["layer_types"];
  bool ok = lt.is_array() && static_cast<int64_t>(lt.size()) == numLayers;
  for (size_t i = 0; ok && i < lt.size(); ++i)
    ok = lt[i].is_string();
  if (!ok)
    return fail(r.path, Format("key 'layer_types' must be a list of "
                                      "num_hidden_layers ({0}) strings, got "
                                      "{1}", {numLayers, show(lt)}));
  for (size_t i = 0; i < lt.size(); ++i) {
    std::string t = lt[i].get<std::string>();
    if (t != "full_attention" && t != "sliding_attention")
      return fail(r.path, Format("key 'layer_types': layer {0} is "
                                        "'{1}', which lorac does not "
                                        "implement (supported: "
                                        "full_attention, sliding_attention)", {i, t}));
    types.push_back(t);
  }
  return types;
}

/// `sliding_window`: absent means the class default, null means none.
StatusOr<std::optional<int64_t>> readWindow(const Reader &r,
                                            std::optional<int64_t> dflt) {
  if (!r.obj.contains("sliding_window"))
    return dflt;
  if (r.obj["sliding_window"].is_null())
    return std::optional<int64_t>();
  int64_t w;
  ASSIGN_OR_RETURN_ERR(w, r.positiveInt("sliding_window"));
  return std::optional<int64_t>(w);
}

Status readAttentionKinds(const Reader &r,
                               const std::vector<std::string> &types,
                               ModelConfig &c) {
  auto layerError = [&](size_t i, const std::string &why) {
    return fail(r.path, Format("key 'layer_types': layer {0} is '{1}' "
                                      "but {2}", {i, types[i], why}));
  };
  switch (c.architecture) {
  case Architecture::Llama:
    // LlamaForCausalLM attends to everything; it reads no sliding_window.
    for (size_t i = 0; i < types.size(); ++i)
      if (types[i] != "full_attention")
        return layerError(i, "LlamaForCausalLM has no sliding-window "
                             "attention");
    return OkStatus();
  case Architecture::Mistral: {
    // MistralConfig's default is 4096; MistralForCausalLM applies the window
    // to every layer and ignores layer_types.
    ASSIGN_OR_RETURN_ERR(c.slidingWindow, readWindow(r, 4096));
    for (size_t i = 0; i < types.size(); ++i) {
      bool sliding = types[i] == "sliding_attention";
      if (sliding && !c.slidingWindow)
        return layerError(i, "'sliding_window' is null");
      if (!sliding && c.slidingWindow)
        return layerError(i, Format("MistralForCausalLM applies "
                                           "'sliding_window' ({0}) to every "
                                           "layer; per-layer attention kinds "
                                           "are not supported", {*c.slidingWindow}));
    }
    return OkStatus();
  }
  case Architecture::Qwen2:
  case Architecture::Qwen3: {
    // Qwen3Config reads the window keys exactly as Qwen2Config does.
    const char *name = c.architecture == Architecture::Qwen2 ? "Qwen2" : "Qwen3";
    bool use;
    int64_t maxWindowLayers;
    std::optional<int64_t> window;
    ASSIGN_OR_RETURN_ERR(use, r.boolOr("use_sliding_window", false));
    ASSIGN_OR_RETURN_ERR(window, readWindow(r, 4096));
    ASSIGN_OR_RETURN_ERR(maxWindowLayers,
                         r.nonNegativeIntOr("max_window_layers", 28));
    // Qwen2Config: the window applies only with use_sliding_window, on the
    // layers layer_types marks (default: from max_window_layers on).
    for (int64_t i = 0; i < c.numHiddenLayers; ++i) {
      if (!types.empty()) {
        if (types[i] != "sliding_attention")
          continue;
        if (!use)
          return layerError(i, "'use_sliding_window' is false");
        if (window)
          return layerError(i, Format("per-layer sliding windows of "
                                             "{0} ({1} tokens) are not "
                                             "supported yet", {name, *window}));
      } else if (use && window && i >= maxWindowLayers) {
        return fail(r.path, Format(
                                "key 'use_sliding_window': per-layer sliding "
                                "windows of {3} are not supported yet "
                                "(layers {0} and up would attend to the last "
                                "{1} tokens; 'max_window_layers' is {2})", {i, *window, maxWindowLayers, name}));
      }
    }
    return OkStatus();
  }
  }
  return OkStatus();
}

//===----------------------------------------------------------------------===//
// Keys that change the math and that lorac does not implement
//===----------------------------------------------------------------------===//

/// The value under which a key changes nothing.
enum class Neutral { Null, False, Zero };

struct Unimplemented {
  const char *key;
  Neutral neutral;
  const char *why;
};

/// Keys of other architectures (or of training options) that the Llama
/// family would compute differently with; a config that sets them is not a
/// model lorac can reproduce. (partial_rotary_factor is read with the RoPE.)
constexpr Unimplemented kUnimplemented[] = {
    {"attention_dropout", Neutral::Zero,
     "lorac's attention has no dropout: only 0.0"},
    {"attn_logit_softcapping", Neutral::Null,
     "attention logit soft-capping is not implemented"},
    {"final_logit_softcapping", Neutral::Null,
     "final logit soft-capping is not implemented"},
    {"qk_norm", Neutral::False, "q/k normalization is not implemented"},
    {"use_qk_norm", Neutral::False, "q/k normalization is not implemented"},
    {"qk_layernorm", Neutral::False, "q/k normalization is not implemented"},
    {"use_mrope", Neutral::False,
     "multimodal RoPE (Qwen2-VL) is not implemented"},
    {"query_pre_attn_scalar", Neutral::Null,
     "lorac scales attention scores by 1/sqrt(head_dim)"},
    {"attention_multiplier", Neutral::Null,
     "lorac scales attention scores by 1/sqrt(head_dim)"},
    {"embedding_multiplier", Neutral::Null,
     "embedding multipliers are not implemented"},
    {"residual_multiplier", Neutral::Null,
     "residual multipliers are not implemented"},
    {"logits_scaling", Neutral::Null, "logit scaling is not implemented"},
};

Status rejectUnimplemented(const Reader &r) {
  for (const Unimplemented &u : kUnimplemented) {
    if (!r.has(u.key))
      continue;
    const json &v = r.obj[u.key];
    bool neutral = false;
    switch (u.neutral) {
    case Neutral::Null:
      break;
    case Neutral::False:
      neutral = v.is_boolean() && !v.get<bool>();
      break;
    case Neutral::Zero:
      neutral = v.is_number() && v.get<double>() == 0.0;
      break;
    }
    if (!neutral)
      return fail(r.path, Format("key '{0}': {1} is not supported "
                                        "({2})", {u.key, show(v), u.why}));
  }
  return OkStatus();
}

/// bos/eos ids may be an integer or (Llama 3.1) a list; we keep the first.
/// Every one must be an integer in [0, vocab).
StatusOr<std::optional<int64_t>> readTokenId(const Reader &r, const char *key,
                                             int64_t vocab) {
  if (!r.has(key))
    return std::optional<int64_t>();
  const json &given = r.obj[key];
  std::vector<json> ids;
  if (given.is_array() && !given.empty())
    ids.assign(given.begin(), given.end());
  else
    ids.push_back(given);
  for (const json &v : ids) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0)
      return fail(r.path, Format("key '{0}' must be a non-negative integer or "
                                 "a list of them, got {1}",
                                 {key, show(given)}));
    if (v.get<int64_t>() >= vocab)
      return fail(r.path, Format("key '{0}': token id {1} is outside the "
                                 "vocabulary (vocab_size {2})",
                                 {key, v.get<int64_t>(), vocab}));
  }
  return std::optional<int64_t>(ids[0].get<int64_t>());
}

} // namespace

StatusOr<ModelConfig> ParseModelConfig(const std::string &path) {
  json j;
  ASSIGN_OR_RETURN_ERR(j, loadJsonObject(path));
  Reader r(path, j);
  ModelConfig c;
  c.path = path;
  ASSIGN_OR_RETURN_ERR(c.architecture, readArchitecture(r));

  std::string act;
  ASSIGN_OR_RETURN_ERR(act, r.stringOr("hidden_act", "silu"));
  if (act != "silu" && act != "swish") // one function in transformers' ACT2FN
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
  else if (c.architecture == Architecture::Qwen2 ||
           c.architecture == Architecture::Qwen3)
    kvDefault = 32;
  ASSIGN_OR_RETURN_ERR(c.numKeyValueHeads,
                       r.positiveIntOr("num_key_value_heads", kvDefault));
  if (c.numAttentionHeads % c.numKeyValueHeads != 0)
    return fail(path, Format("key 'num_key_value_heads' ({0}) must "
                                    "divide 'num_attention_heads' ({1})", {c.numKeyValueHeads, c.numAttentionHeads}));
  // A free head_dim (q/k/v widths heads * head_dim, o_proj back to
  // hidden_size) is what all four model classes implement. Qwen3Config's
  // default is 128, not hidden_size / heads.
  if (r.has("head_dim")) {
    ASSIGN_OR_RETURN_ERR(c.headDim, r.positiveInt("head_dim"));
  } else if (c.architecture == Architecture::Qwen3) {
    c.headDim = 128;
  } else {
    if (c.hiddenSize % c.numAttentionHeads != 0)
      return fail(path, Format("key 'hidden_size' ({0}) must be a "
                                      "multiple of 'num_attention_heads' "
                                      "({1}) when 'head_dim' is not given", {c.hiddenSize, c.numAttentionHeads}));
    c.headDim = c.hiddenSize / c.numAttentionHeads;
  }
  if (c.headDim % 2 != 0)
    return fail(path, Format("head_dim ({0}) must be even for rotary "
                                    "embeddings", {c.headDim}));

  ASSIGN_OR_RETURN_ERR(c.rmsNormEps, r.positiveNumberOr("rms_norm_eps", 1e-6));
  if (c.rmsNormEps >= 1.0) // added to a mean square; real models use 1e-5..1e-6
    return fail(path, Format("key 'rms_norm_eps' must be below 1, got {0}",
                             {c.rmsNormEps}));
  std::vector<std::string> layerTypes;
  ASSIGN_OR_RETURN_ERR(layerTypes, readLayerTypes(r, c.numHiddenLayers));
  RETURN_IF_ERR(readRope(r, layerTypes, c));
  ASSIGN_OR_RETURN_ERR(c.tieWordEmbeddings,
                       r.boolOr("tie_word_embeddings", false));
  RETURN_IF_ERR(rejectUnimplemented(r));
  // pretraining_tp > 1 only sliced the projections' matmuls in transformers
  // < 4.45 (the same sums); current transformers ignore it, and so does lorac.
  if (r.has("pretraining_tp")) {
    int64_t tp;
    ASSIGN_OR_RETURN_ERR(tp, r.positiveIntOr("pretraining_tp", 1));
    (void)tp;
  }

  switch (c.architecture) {
  case Architecture::Llama:
    ASSIGN_OR_RETURN_ERR(c.attentionBias, r.boolOr("attention_bias", false));
    c.outputBias = c.attentionBias;
    ASSIGN_OR_RETURN_ERR(c.mlpBias, r.boolOr("mlp_bias", false));
    break;
  case Architecture::Mistral:
    break; // no biases, whatever attention_bias/mlp_bias say
  case Architecture::Qwen2:
    c.attentionBias = true; // Qwen2 always has q/k/v biases, never o_proj.
    break;
  case Architecture::Qwen3:
    // Qwen3Attention: attention_bias on q/k/v and o_proj alike, none on the
    // MLP; RMSNorm (rms_norm_eps) over each head of q and k before RoPE.
    ASSIGN_OR_RETURN_ERR(c.attentionBias, r.boolOr("attention_bias", false));
    c.outputBias = c.attentionBias;
    c.qkNorm = true;
    break;
  }
  RETURN_IF_ERR(readAttentionKinds(r, layerTypes, c));

  if (r.has("max_position_embeddings"))
    ASSIGN_OR_RETURN_ERR(c.maxPositionEmbeddings,
                         r.positiveInt("max_position_embeddings"));
  ASSIGN_OR_RETURN_ERR(c.bosTokenId,
                       readTokenId(r, "bos_token_id", c.vocabSize));
  ASSIGN_OR_RETURN_ERR(c.eosTokenId,
                       readTokenId(r, "eos_token_id", c.vocabSize));
  // transformers 5 writes `dtype`, 4.x `torch_dtype`.
  std::string torchDtype, dtype;
  ASSIGN_OR_RETURN_ERR(torchDtype, r.stringOr("torch_dtype", ""));
  ASSIGN_OR_RETURN_ERR(dtype, r.stringOr("dtype", ""));
  if (!torchDtype.empty() && !dtype.empty() && torchDtype != dtype)
    return fail(path, "keys 'torch_dtype' (\"" + torchDtype +
                          "\") and 'dtype' (\"" + dtype + "\") disagree");
  c.torchDtype = dtype.empty() ? torchDtype : dtype;
  // transformers maps the name onto a torch dtype and fails on any other.
  static const char *const kTorchDtypes[] = {"float32", "float16", "bfloat16",
                                             "float64", "float",   "half",
                                             "double",  "auto"};
  if (!c.torchDtype.empty() &&
      std::find(std::begin(kTorchDtypes), std::end(kTorchDtypes),
                c.torchDtype) == std::end(kTorchDtypes))
    return fail(path, "key '" +
                          std::string(dtype.empty() ? "torch_dtype" : "dtype") +
                          "': '" + c.torchDtype +
                          "' is not a floating-point dtype (float32, "
                          "bfloat16, float16, float64 or auto)");
  ASSIGN_OR_RETURN_ERR(c.initializerRange,
                       r.positiveNumberOr("initializer_range", 0.02));
  return c;
}

const char *const kAllLinearModules[7] = {"q_proj",   "k_proj",    "v_proj",
                                          "o_proj",   "gate_proj", "up_proj",
                                          "down_proj"};

namespace {
/// An all-digit layer index; none for anything else (or beyond int64).
std::optional<int64_t> parseIndex(std::string_view d) {
  if (d.empty())
    return std::nullopt;
  int64_t v = 0;
  for (char ch : d) {
    if (ch < '0' || ch > '9')
      return std::nullopt;
    if (v > (std::numeric_limits<int64_t>::max() - 9) / 10)
      return std::nullopt; // no layer has such an index
    v = v * 10 + (ch - '0');
  }
  return v;
}
} // namespace

std::optional<int64_t> LayerIndexOf(std::string_view module) {
  // Components c[0].c[1]....c[n-1]: PEFT's lazy `.*?\.[^.]*\.(\d+)\.` takes
  // the first all-digit c[i] with a dot before c[i-1] (i >= 2) and a
  // component after it (i <= n-2).
  std::vector<std::string_view> c;
  size_t start = 0;
  while (true) {
    size_t dot = module.find('.', start);
    c.push_back(module.substr(start, dot == std::string_view::npos
                                         ? std::string_view::npos
                                         : dot - start));
    if (dot == std::string_view::npos)
      break;
    start = dot + 1;
  }
  for (size_t i = 2; i + 1 < c.size(); ++i) {
    const std::string_view d = c[i];
    if (!d.empty() && std::all_of(d.begin(), d.end(), [](char ch) {
          return ch >= '0' && ch <= '9';
        }))
      return parseIndex(d); // none when it overflows: PEFT stops here too
  }
  return std::nullopt;
}

/// A compiled PCRE2 pattern (Python's `re` syntax is PCRE2's, apart from
/// rarities such as \Z).
struct TargetRule::Compiled {
  pcre2_code *code = nullptr;
  ~Compiled() { pcre2_code_free(code); }

  static StatusOr<std::shared_ptr<const Compiled>>
  make(const std::string &what, const char *key, const std::string &pattern,
       uint32_t options) {
    int err = 0;
    PCRE2_SIZE offset = 0;
    auto c = std::make_shared<Compiled>();
    c->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()),
                            pattern.size(), options | PCRE2_UTF | PCRE2_UCP,
                            &err, &offset, nullptr);
    if (!c->code) {
      PCRE2_UCHAR buf[256];
      pcre2_get_error_message(err, buf, sizeof buf);
      return fail(what, Format("{0} '{1}' is not a valid regular expression "
                               "(at offset {2}: {3})",
                               {key, pattern, static_cast<int64_t>(offset),
                                reinterpret_cast<const char *>(buf)}));
    }
    return std::shared_ptr<const Compiled>(std::move(c));
  }

  /// Matches `text` (anchored as compiled); the text of the group named
  /// "idx" in `group` when asked for.
  bool match(std::string_view text, std::string_view *group = nullptr) const {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(code, nullptr);
    if (!md)
      return false;
    int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(text.data()),
                         text.size(), 0, 0, md, nullptr);
    bool ok = rc > 0;
    if (ok && group) {
      PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
      int idx = pcre2_substring_number_from_name(
          code, reinterpret_cast<PCRE2_SPTR>("idx"));
      *group = idx > 0 && idx < rc && ov[2 * idx] != PCRE2_UNSET
                   ? text.substr(ov[2 * idx], ov[2 * idx + 1] - ov[2 * idx])
                   : std::string_view();
    }
    pcre2_match_data_free(md);
    return ok;
  }
};

namespace {
std::string lowercase(std::string s) {
  for (char &ch : s)
    if (ch >= 'A' && ch <= 'Z')
      ch = static_cast<char>(ch - 'A' + 'a');
  return s;
}
} // namespace

StatusOr<TargetRule> TargetRule::Make(const std::string &what,
                                      std::vector<std::string> names,
                                      const std::string &regex,
                                      std::vector<int64_t> layers,
                                      std::vector<std::string> layersPattern,
                                      std::vector<std::string> excludeNames,
                                      const std::string &excludeRegex) {
  TargetRule r;
  for (std::string &n : names) {
    if (lowercase(n) == "all-linear")
      r.names_.insert(r.names_.end(), std::begin(kAllLinearModules),
                      std::end(kAllLinearModules));
    else if (!n.empty())
      r.names_.push_back(std::move(n));
  }
  if (!regex.empty() && !r.names_.empty())
    return fail(what, "target modules are given both as names and as a "
                      "regular expression; give one");
  if (regex.empty() && r.names_.empty())
    return fail(what, "the target modules name no module");
  for (int64_t l : layers)
    if (l < 0)
      return fail(what, Format("layers_to_transform must hold non-negative "
                               "layer indices, got {0}",
                               {l}));
  if (!regex.empty() && !layers.empty())
    return fail(what, "layers_to_transform cannot be combined with a "
                      "target regular expression (PEFT refuses this "
                      "adapter_config.json); select the layers in the "
                      "regular expression instead");
  if (!regex.empty() && !layersPattern.empty())
    return fail(what, "layers_pattern cannot be combined with a target "
                      "regular expression (PEFT refuses it)");
  if (!layersPattern.empty() && layers.empty())
    return fail(what, "layers_pattern needs layers_to_transform (PEFT "
                      "refuses it alone)");
  r.regex_ = regex;
  r.layers_ = std::move(layers);
  r.layersPattern_ = std::move(layersPattern);
  r.excludeRegex_ = excludeRegex;
  for (std::string &n : excludeNames)
    if (!n.empty())
      r.excludeNames_.push_back(std::move(n));
  if (!regex.empty())
    ASSIGN_OR_RETURN_ERR(r.compiledRegex_,
                         Compiled::make(what, "target regex", regex,
                                        PCRE2_ANCHORED | PCRE2_ENDANCHORED));
  if (!excludeRegex.empty())
    ASSIGN_OR_RETURN_ERR(r.compiledExclude_,
                         Compiled::make(what, "exclude_modules", excludeRegex,
                                        PCRE2_ANCHORED | PCRE2_ENDANCHORED));
  for (const std::string &p : r.layersPattern_) {
    std::shared_ptr<const Compiled> c;
    ASSIGN_OR_RETURN_ERR(
        c, Compiled::make(what, "layers_pattern",
                          "(?:^|.*?\\.)" + p + "\\.(?P<idx>\\d+)\\.",
                          PCRE2_ANCHORED));
    r.compiledPatterns_.push_back(std::move(c));
  }
  return r;
}

bool TargetRule::EntryNames(std::string_view entry, std::string_view module) {
  return module == entry ||
         (module.size() > entry.size() &&
          module.substr(module.size() - entry.size()) == entry &&
          module[module.size() - entry.size() - 1] == '.');
}

namespace {
bool anyNames(const std::vector<std::string> &entries,
              std::string_view module) {
  return std::any_of(entries.begin(), entries.end(), [&](const std::string &e) {
    return TargetRule::EntryNames(e, module);
  });
}
} // namespace

bool TargetRule::Matches(std::string_view module) const {
  if (anyNames(excludeNames_, module) ||
      (compiledExclude_ && compiledExclude_->match(module)))
    return false;
  if (compiledRegex_)
    return compiledRegex_->match(module);
  // A name listed whole is selected whatever the layers say (PEFT).
  if (std::find(names_.begin(), names_.end(), module) != names_.end())
    return true;
  if (!anyNames(names_, module))
    return false;
  if (layers_.empty())
    return true;
  std::optional<int64_t> layer;
  if (compiledPatterns_.empty()) {
    layer = LayerIndexOf(module);
  } else {
    for (const auto &c : compiledPatterns_) {
      std::string_view digits;
      if (c->match(module, &digits)) {
        layer = parseIndex(digits);
        break;
      }
    }
  }
  return layer &&
         std::find(layers_.begin(), layers_.end(), *layer) != layers_.end();
}

std::string TargetRule::Describe() const {
  std::string s = "target_modules ";
  if (!regex_.empty()) {
    s += json(regex_).dump();
  } else {
    s += json(names_).dump();
  }
  if (!layers_.empty())
    s += ", layers_to_transform " + json(layers_).dump();
  if (!layersPattern_.empty())
    s += ", layers_pattern " + json(layersPattern_).dump();
  if (!excludeRegex_.empty())
    s += ", exclude_modules " + json(excludeRegex_).dump();
  else if (!excludeNames_.empty())
    s += ", exclude_modules " + json(excludeNames_).dump();
  return s;
}

StatusOr<TargetRule> ReadPeftTargets(const json &config,
                                     const std::string &path) {
  Reader r(path, config);
  // A string or a list of non-empty strings; `regex` tells which it was.
  auto stringOrList = [&](const char *key, std::vector<std::string> *list,
                          std::string *regex) -> Status {
    const json &v = config[key];
    if (v.is_string()) {
      *regex = v.get<std::string>();
      if (regex->empty())
        return fail(path, Format("key '{0}' is an empty string", {key}));
      return OkStatus();
    }
    bool ok = v.is_array();
    if (ok)
      for (const json &e : v)
        ok = ok && e.is_string() && !e.get<std::string>().empty();
    if (!ok)
      return fail(path, Format("key '{0}' must be a regular expression "
                               "string or a list of module names, got {1}",
                               {key, show(v)}));
    for (const json &e : v)
      list->push_back(e.get<std::string>());
    return OkStatus();
  };
  std::vector<std::string> names, excludeNames, patterns;
  std::string regex, excludeRegex;
  if (r.has("target_modules")) {
    RETURN_IF_ERR(stringOrList("target_modules", &names, &regex));
    if (lowercase(regex) == "all-linear") {
      names = {"all-linear"};
      regex.clear();
    } else if (regex.empty() && names.empty()) {
      return fail(path, "key 'target_modules' is an empty list: no module "
                        "would get an adapter");
    } else {
      for (const std::string &n : names)
        if (lowercase(n) == "all-linear")
          return fail(path, "key 'target_modules': PEFT reads 'all-linear' "
                            "only as the whole string, not as a list entry "
                            "(where it names no module)");
    }
  } else {
    names = {"q_proj", "v_proj"}; // PEFT's default for Llama-family models
  }
  if (r.has("target_parameters") && !(config["target_parameters"].is_array() &&
                                      config["target_parameters"].empty()))
    return fail(path, "key 'target_parameters': LoRA on nn.Parameter "
                      "(mixture-of-experts weights) is not supported");
  const bool targetString =
      config.contains("target_modules") && config["target_modules"].is_string();
  for (const char *key : {"layers_to_transform", "layers_pattern"})
    if (targetString && r.has(key))
      return fail(path, Format("key '{0}' cannot be used when "
                               "'target_modules' is a string (PEFT refuses "
                               "it)",
                               {key}));
  std::vector<int64_t> layers;
  if (r.has("layers_to_transform")) {
    const json &l = config["layers_to_transform"];
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
      layers.push_back(e.get<int64_t>());
    }
  }
  if (r.has("layers_pattern") &&
      !(config["layers_pattern"].is_string() &&
        config["layers_pattern"].get<std::string>().empty())) {
    std::string one;
    RETURN_IF_ERR(stringOrList("layers_pattern", &patterns, &one));
    if (!one.empty())
      patterns = {one};
    if (!patterns.empty() && !r.has("layers_to_transform"))
      return fail(path, "key 'layers_pattern' needs 'layers_to_transform' "
                        "(PEFT refuses it alone)");
    if (layers.empty())
      patterns.clear(); // an empty layers_to_transform selects every layer
  }
  if (r.has("exclude_modules"))
    RETURN_IF_ERR(
        stringOrList("exclude_modules", &excludeNames, &excludeRegex));
  return TargetRule::Make(path, std::move(names), regex, std::move(layers),
                          std::move(patterns), std::move(excludeNames),
                          excludeRegex);
}

StatusOr<LoraOptions> ParsePeftAdapterConfig(const std::string &path) {
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
  for (const char *k :
       {"use_dora", "use_rslora", "fan_in_fan_out", "lora_bias"}) {
    bool on;
    ASSIGN_OR_RETURN_ERR(on, r.boolOr(k, false));
    if (on)
      return fail(path, Format("key '{0}': true is not supported yet", {k}));
  }
  for (const char *k : {"rank_pattern", "alpha_pattern"})
    if (r.has(k) && !(r.obj[k].is_object() && r.obj[k].empty()))
      return fail(path, Format("key '{0}': per-module ranks/alphas are "
                                      "not supported yet", {k}));
  if (r.has("layer_replication") && !r.obj["layer_replication"].is_null())
    return fail(path, "key 'layer_replication': replicated layers are not "
                      "supported");
  if (r.has("modules_to_save") &&
      !(r.obj["modules_to_save"].is_array() &&
        r.obj["modules_to_save"].empty()))
    return fail(path, "key 'modules_to_save': fully trained extra modules "
                      "are not supported yet");
  TargetRule rule;
  ASSIGN_OR_RETURN_ERR(rule, ReadPeftTargets(j, path));
  // lorac's AttachAdapters takes names or a regex and layer indices: what
  // it cannot express is refused, never dropped.
  if (rule.excludes())
    return fail(path, "key 'exclude_modules' is not supported yet (lorac's "
                      "adapters take target names or a regex); list the "
                      "modules to adapt in 'target_modules' instead");
  // "layers" finds the same index as no pattern in a Llama-family name.
  for (const std::string &p : rule.layersPattern())
    if (p != "layers")
      return fail(path, "key 'layers_pattern': '" + p +
                            "' is not supported (only \"layers\", the "
                            "decoder layers' name)");
  if (!rule.regex().empty()) {
    o.targetRegex = rule.regex();
  } else {
    o.targets.clear();
    for (const std::string &n : rule.names())
      o.targets += (o.targets.empty() ? "" : ",") + n;
  }
  o.layers = rule.layers();
  return o;
}

} // namespace lorart::hf
