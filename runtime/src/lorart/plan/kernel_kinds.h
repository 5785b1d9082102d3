// The kernel kinds of train.bin, declared once in kernel_kinds.def: each
// kind's parameters (name, type, required or optional), its operands as
// documentation, and the one FLOP model that `lorac compile --report` and
// `lorart profile` share. Header-only and free of MLIR, so that the compiler
// (lora-lower-to-kernels, lora-emit-cuda, the report) and the runtime (the
// plan loader, the profiler) read the same table.
#ifndef LORART_PLAN_KERNEL_KINDS_H_
#define LORART_PLAN_KERNEL_KINDS_H_

#include <cstddef>
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

struct KindSpec {
  const char* kind;
  const char* operands;  // "inputs -> outputs"
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
#define LORA_KERNEL(kind, operands, flops, params)                          \
  KindSpec{#kind, operands,                                               \
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
    s += std::string("| `") + k.kind + "` | " + k.operands + " | " + params + " | " +
         (flops == "0" ? std::string() : "`" + flops + "`") + " |\n";
  }
  return s;
}

}  // namespace lorart::kernels

#endif  // LORART_PLAN_KERNEL_KINDS_H_
