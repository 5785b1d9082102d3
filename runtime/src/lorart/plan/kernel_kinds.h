// The kernel kinds of train.bin, declared once in kernel_kinds.def: each
// kind's parameters (name, type, required or optional), its operands as
// documentation, and the one FLOP model that `lorac compile --report` and
// `lorart profile` share. Header-only and free of MLIR, so that the compiler
// (lora-lower-to-kernels, lora-emit-cuda, the report) and the runtime (the
// plan loader, the profiler) read the same table.
#ifndef LORART_PLAN_KERNEL_KINDS_H_
#define LORART_PLAN_KERNEL_KINDS_H_

#include <cstddef>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace lorart::kernels {

enum class ParamType { kInt, kFloat, kString };
enum class Need { kRequired, kOptional };

struct ParamSpec {
  const char* name;
  ParamType type;
  Need need;
  const char* doc;
};

// Reads a launch's integer parameters for the FLOP model (0 when absent).
class IntParams {
 public:
  virtual ~IntParams() = default;
  virtual double Int(const char* name) const = 0;
};

// What an operand's dtype may be: one of the float types (F32, BF16, F16),
// exactly F32, I64 or BOOL, an index (I32 or I64), the weight of a matmul
// (NF4 when the kernel's `weight_format` is "nf4", else a float type), or
// any dtype.
enum class OperandType { kFloat, kF32, kI64, kBool, kIndex, kWeight, kAny };

// A tensor's element type as CheckOperands sees it (the plan loader and the
// compiler map their own dtypes onto it).
enum class ElemType { kF32, kBF16, kF16, kI32, kI64, kBool, kNF4, kOther };

// One entry of a kind's operand list (kernel_kinds.def's IN, IN_IF, IN_N and
// OUT, OUT_IF, OUT_N): `count` operands of `type` with `elements` elements
// each. IN and OUT are one operand; IN_IF and OUT_IF one when its condition
// holds, else none; IN_N and OUT_N a run of operands of any size.
struct OperandSpec {
  enum class Arity { kOne, kIf, kRepeated };
  const char* name;
  bool output;
  OperandType type;
  Arity arity;
  const char* when;   // the condition (IN_IF) or count (IN_N) as spelled
  double (*count)(const IntParams&);
  const char* shape;  // the dimensions as spelled; "" for any size
  double (*elements)(const IntParams&);  // null: any size
};

// A launch's operand as CheckOperands sees it; for an NF4 tensor, its
// quantization blocks (0 otherwise).
struct OperandInfo {
  ElemType type = ElemType::kOther;
  double elements = 0;
  int64_t block_size = 0;
  int64_t double_quant_block = 0;
};

struct KindSpec {
  const char* kind;
  std::vector<OperandSpec> operands;
  double (*flops)(const IntParams&);
  const char* flops_text;  // the expression as kernel_kinds.def spells it
  std::vector<ParamSpec> params;

  const ParamSpec* Find(std::string_view name) const {
    for (const ParamSpec& p : params)
      if (name == p.name) return &p;
    return nullptr;
  }
};

inline const char* TypeName(ParamType t) {
  switch (t) {
    case ParamType::kInt: return "int";
    case ParamType::kFloat: return "float";
    case ParamType::kString: return "string";
  }
  return "list";  // the schema's list values, which no kind declares
}

// Every kind, in kernel_kinds.def's order.
inline const std::vector<KindSpec>& AllKinds() {
  static const std::vector<KindSpec> kinds = {
#define LORA_PARAM(name, type, need, doc) \
  ParamSpec{#name, ParamType::k##type, Need::k##need, doc},
#define LORA_OPERAND_(name, output, type, arity, when, count, shape, ...)  \
  OperandSpec{#name, output, OperandType::k##type, OperandSpec::Arity::arity, when, \
              [](const IntParams& p) -> double {                          \
                auto I = [&p](const char* n) { return p.Int(n); };        \
                (void)I;                                                  \
                return static_cast<double>(count);                        \
              },                                                          \
              shape, __VA_ARGS__},
#define LORA_ELEMENTS_(...)                                               \
  [](const IntParams& p) -> double {                                      \
    auto I = [&p](const char* n) { return p.Int(n); };                    \
    (void)I;                                                              \
    double e = 1;                                                         \
    for (double d : {__VA_ARGS__}) e *= d;                                \
    return e;                                                             \
  }
#define IN(name, type, ...) \
  LORA_OPERAND_(name, false, type, kOne, "", 1, #__VA_ARGS__, LORA_ELEMENTS_(__VA_ARGS__))
#define IN_IF(cond, name, type, ...)                                                 \
  LORA_OPERAND_(name, false, type, kIf, #cond, (cond) ? 1 : 0, #__VA_ARGS__, \
                LORA_ELEMENTS_(__VA_ARGS__))
#define IN_N(n, name, type) LORA_OPERAND_(name, false, type, kRepeated, #n, n, "", nullptr)
#define OUT_N(n, name, type) LORA_OPERAND_(name, true, type, kRepeated, #n, n, "", nullptr)
#define OUT(name, type, ...) \
  LORA_OPERAND_(name, true, type, kOne, "", 1, #__VA_ARGS__, LORA_ELEMENTS_(__VA_ARGS__))
#define OUT_IF(cond, name, type, ...)                                       \
  LORA_OPERAND_(name, true, type, kIf, #cond, (cond) ? 1 : 0, #__VA_ARGS__, \
                LORA_ELEMENTS_(__VA_ARGS__))
#define LORA_KERNEL(kind, operands, flops, params)                          \
  KindSpec{#kind, {operands},                                             \
           [](const IntParams& p) -> double {                             \
             auto I = [&p](const char* n) { return p.Int(n); };           \
             (void)I;                                                     \
             return static_cast<double>(flops);                           \
           },                                                             \
           #flops, {params}},
#define I(name) I(#name)
#include "lorart/plan/kernel_kinds.def"
#undef I
#undef LORA_KERNEL
#undef IN
#undef IN_IF
#undef IN_N
#undef OUT_N
#undef OUT
#undef OUT_IF
#undef LORA_ELEMENTS_
#undef LORA_OPERAND_
#undef LORA_PARAM
  };
  return kinds;
}

// The declaration of `kind`, or null for a kind no lorart knows.
inline const KindSpec* FindKind(std::string_view kind) {
  for (const KindSpec& k : AllKinds())
    if (kind == k.kind) return &k;
  return nullptr;
}

// Floating-point operations of one launch (0 for the kinds that are not
// matrix work, and for unknown kinds). Adapter products count; causal
// attention counts the allowed half of the scores.
inline double KernelFlops(std::string_view kind, const IntParams& params) {
  const KindSpec* k = FindKind(kind);
  return k ? k->flops(params) : 0.0;
}

// What is wrong with a kernel's parameters against its declaration: an
// empty string when nothing is. `present(name, &type)` says whether the
// kernel has the parameter and of which type; `names` lists the kernel's
// parameter names (to find undeclared ones); `quote` shows such a name in the
// one-line message (the plan loader escapes what a corrupt file holds).
template <class Present, class Quote>
std::string CheckParams(const KindSpec& spec, const std::vector<std::string>& names,
                        Present present, Quote quote) {
  for (const std::string& n : names)
    if (!spec.Find(n))
      return "parameter " + quote(n) + " is not a parameter of kernel kind '" + spec.kind + "'";
  for (const ParamSpec& p : spec.params) {
    ParamType type;
    if (!present(p.name, &type)) {
      if (p.need == Need::kRequired)
        return "required parameter '" + std::string(p.name) + "' (" + TypeName(p.type) +
               ") of kernel kind '" + spec.kind + "' is missing";
      continue;
    }
    if (type != p.type)
      return "parameter '" + std::string(p.name) + "' of kernel kind '" + spec.kind +
             "' must be " + TypeName(p.type) + ", got " + TypeName(type);
  }
  return "";
}

// `text` as kernel_kinds.def spells it, with each I(p) written p:
// "I(m), I(k)" -> "m, k".
inline std::string Unspell(const char* text) {
  std::string s(text), out;
  for (size_t i = 0; i < s.size();) {
    const bool start = s.compare(i, 2, "I(") == 0 &&
                       (i == 0 || !(std::isalnum(static_cast<unsigned char>(s[i - 1])) ||
                                    s[i - 1] == '_'));
    const size_t close = start ? s.find(')', i) : std::string::npos;
    if (close == std::string::npos) {
      out += s[i++];
      continue;
    }
    out += s.substr(i + 2, close - i - 2);
    i = close + 1;
  }
  return out;
}

// One operand as docs/kernels.md shows it: "x [m, k]", "ids [tokens] Index",
// "bias [n] if bias", "g × tensors" (the type named unless it is Float).
inline std::string OperandText(const OperandSpec& o) {
  static const char* const kTypes[] = {"", "F32", "I64", "Bool", "Index", "Weight", "Any"};
  const char* type = kTypes[static_cast<int>(o.type)];
  std::string s = o.name;
  if (o.arity == OperandSpec::Arity::kRepeated) s += " × " + Unspell(o.when);
  else if (*o.shape) s += " [" + Unspell(o.shape) + "]";
  if (*type) s += std::string(" ") + type;
  if (o.arity == OperandSpec::Arity::kIf) s += " if " + Unspell(o.when);
  return s;
}

// The kind's operands, "inputs -> outputs".
inline std::string OperandsText(const KindSpec& k) {
  std::string in, out;
  for (const OperandSpec& o : k.operands) {
    std::string& side = o.output ? out : in;
    if (!side.empty()) side += ", ";
    side += OperandText(o);
  }
  return in.empty() ? "-> " + out : in + " -> " + out;
}

inline const char* OperandTypeName(OperandType t) {
  switch (t) {
    case OperandType::kFloat: return "a float type (F32, BF16, F16)";
    case OperandType::kF32: return "F32";
    case OperandType::kI64: return "I64";
    case OperandType::kBool: return "BOOL";
    case OperandType::kIndex: return "I32 or I64";
    case OperandType::kWeight: return "a weight";
    case OperandType::kAny: return "any type";
  }
  return "?";
}

inline const char* ElemTypeName(ElemType t) {
  switch (t) {
    case ElemType::kF32: return "F32";
    case ElemType::kBF16: return "BF16";
    case ElemType::kF16: return "F16";
    case ElemType::kI32: return "I32";
    case ElemType::kI64: return "I64";
    case ElemType::kBool: return "BOOL";
    case ElemType::kNF4: return "NF4";
    case ElemType::kOther: return "another type";
  }
  return "?";
}

inline bool IsFloat(ElemType t) {
  return t == ElemType::kF32 || t == ElemType::kBF16 || t == ElemType::kF16;
}

// What is wrong with a launch's operands against the kind's declaration: an
// empty string when nothing is. `params` are the kernel's integer parameters
// (0 when absent; CheckParams has already checked them), `weight_format` its
// string parameter of that name ("" when the kind has none), `n_in`/`n_out`
// the launch's operand counts and `get(output, index)` an operand's
// OperandInfo, `label(output, index)` its name for the message. Backends index operands by position and size them from the
// parameters, so a launch that passes here cannot make a kernel read or write
// outside its tensors.
template <class Get, class Label>
std::string CheckOperands(const KindSpec& spec, const IntParams& params,
                          std::string_view weight_format, size_t n_in, size_t n_out, Get get,
                          Label label) {
  struct Slot {
    const OperandSpec* spec;
    size_t repeat;  // the index within an IN_N run
  };
  std::vector<Slot> slots[2];
  for (const OperandSpec& o : spec.operands) {
    const double count = o.count(params);
    if (!(count >= 0) || count > 1e6)
      return std::string("operand '") + o.name + "': its count " + Unspell(o.when) + " is " +
             std::to_string(static_cast<long long>(count)) + ", not a count of operands";
    for (size_t r = 0; r < static_cast<size_t>(count); ++r) slots[o.output].push_back({&o, r});
  }
  const auto list = [](const std::vector<Slot>& side) {
    std::string s;
    for (const Slot& slot : side) {
      if (slot.repeat > 0) continue;
      if (!s.empty()) s += ", ";
      s += slot.spec->name;
      if (slot.spec->arity == OperandSpec::Arity::kRepeated) s += "...";
    }
    return s;
  };
  if (slots[0].size() != n_in || slots[1].size() != n_out)
    return "kernel kind '" + std::string(spec.kind) + "' takes " +
           std::to_string(slots[0].size()) + " inputs (" + list(slots[0]) + ") and " +
           std::to_string(slots[1].size()) + " outputs (" + list(slots[1]) +
           ") with these parameters, but the launch has " + std::to_string(n_in) + " and " +
           std::to_string(n_out);
  for (int output = 0; output < 2; ++output) {
    for (size_t i = 0; i < slots[output].size(); ++i) {
      const OperandSpec& o = *slots[output][i].spec;
      std::string what = std::string(output ? "output " : "input ") + std::to_string(i) + " '" +
                         o.name + "'";
      if (o.arity == OperandSpec::Arity::kRepeated)
        what += "[" + std::to_string(slots[output][i].repeat) + "]";
      what += " (" + label(output != 0, i) + ")";
      const OperandInfo t = get(output != 0, i);
      bool ok = false;
      OperandType want = o.type;
      if (want == OperandType::kWeight)
        want = weight_format == "nf4" ? OperandType::kAny : OperandType::kFloat;
      switch (want) {
        case OperandType::kFloat: ok = IsFloat(t.type); break;
        case OperandType::kF32: ok = t.type == ElemType::kF32; break;
        case OperandType::kI64: ok = t.type == ElemType::kI64; break;
        case OperandType::kBool: ok = t.type == ElemType::kBool; break;
        case OperandType::kIndex: ok = t.type == ElemType::kI32 || t.type == ElemType::kI64; break;
        case OperandType::kAny: ok = o.type != OperandType::kWeight || t.type == ElemType::kNF4;
          break;
        case OperandType::kWeight: break;
      }
      if (!ok) {
        const char* expected = o.type == OperandType::kWeight
                                   ? (weight_format == "nf4" ? "NF4 (weight_format \"nf4\")"
                                                             : "a float type (a dense weight)")
                                   : OperandTypeName(o.type);
        return what + " is " + ElemTypeName(t.type) + ", but kernel kind '" + spec.kind +
               "' takes " + expected + " there";
      }
      if (o.elements) {
        const double want_elements = o.elements(params);
        if (want_elements != t.elements) {
          char buf[64];
          std::snprintf(buf, sizeof buf, "%.17g", want_elements);
          return what + " has " + std::to_string(static_cast<long long>(t.elements)) +
                 " elements, but kernel kind '" + spec.kind + "' takes [" + Unspell(o.shape) +
                 "] = " + buf + " there with these parameters";
        }
      }
      if (o.type == OperandType::kWeight && t.type == ElemType::kNF4) {
        const double bs = params.Int("block_size"), dqb = params.Int("double_quant_block");
        if (static_cast<double>(t.block_size) != bs ||
            static_cast<double>(t.double_quant_block) != dqb)
          return what + " is NF4 with block_size " + std::to_string(t.block_size) +
                 " and double_quant_block " + std::to_string(t.double_quant_block) +
                 ", but the kernel's parameters say " + std::to_string(static_cast<long long>(bs)) +
                 " and " + std::to_string(static_cast<long long>(dqb));
      }
    }
  }
  return "";
}

// The kinds as docs/kernels.md's reference table (`lorart kernels`). In the
// FLOPs column, I(p) is the integer parameter p.
inline std::string KindsMarkdown() {
  std::string s =
      "| kind | operands | parameters (? optional) | FLOPs of a launch |\n"
      "| --- | --- | --- | --- |\n";
  for (const KindSpec& k : AllKinds()) {
    std::string params;
    for (const ParamSpec& p : k.params) {
      if (!params.empty()) params += ", ";
      params += std::string("`") + p.name + (p.need == Need::kOptional ? "?" : "") + "` " +
                TypeName(p.type);
    }
    std::string flops = k.flops_text;
    s += std::string("| `") + k.kind + "` | " + OperandsText(k) + " | " + params + " | " +
         (flops == "0" ? std::string() : "`" + flops + "`") + " |\n";
  }
  return s;
}

}  // namespace lorart::kernels

#endif  // LORART_PLAN_KERNEL_KINDS_H_
