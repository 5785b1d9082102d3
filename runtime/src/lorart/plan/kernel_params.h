// Typed parameters of every kernel kind, generated from kernel_kinds.def:
// for kind K, `lorart::kernels::params::K` holds one field per declared
// parameter (int64_t, double or std::string; std::optional<> when the
// parameter is optional) and `Kind::K` names it. `ReadParams` fills the
// struct from any source of named values (the runtime's schema::Kernel, the
// compiler's attribute dictionary); `WriteParams` hands each field to a sink
// (the compiler's builders). Header-only and free of MLIR, like
// kernel_kinds.h, so that the compiler, the CUDA code generator and the
// runtime read one declaration.
//
// A kernel body takes its kind's struct, never a string key:
//
//   Status RunAttention(const params::attention_fwd& p, ...) { ... p.head_dim ... }
#ifndef LORART_PLAN_KERNEL_PARAMS_H_
#define LORART_PLAN_KERNEL_PARAMS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace lorart::kernels {

// Every kind, in kernel_kinds.def's order.
enum class Kind {
#define LORA_KERNEL(kind, operands, flops, fields) kind,
#include "lorart/plan/kernel_kinds.def"
#undef LORA_KERNEL
};

inline const char* KindName(Kind k) {
  switch (k) {
#define LORA_KERNEL(kind, operands, flops, fields) \
  case Kind::kind:                                 \
    return #kind;
#include "lorart/plan/kernel_kinds.def"
#undef LORA_KERNEL
  }
  return "?";
}

// The kind named `name`, or nothing.
inline std::optional<Kind> KindOf(std::string_view name) {
#define LORA_KERNEL(kind, operands, flops, fields) \
  if (name == #kind) return Kind::kind;
#include "lorart/plan/kernel_kinds.def"
#undef LORA_KERNEL
  return std::nullopt;
}

namespace params {

#define LORA_FIELD_Int_Required int64_t
#define LORA_FIELD_Float_Required double
#define LORA_FIELD_String_Required std::string
#define LORA_FIELD_Int_Optional std::optional<int64_t>
#define LORA_FIELD_Float_Optional std::optional<double>
#define LORA_FIELD_String_Optional std::optional<std::string>
#define LORA_PARAM(name, type, need, doc) LORA_FIELD_##type##_##need name{};
#define LORA_KERNEL(kind, operands, flops, fields) \
  struct kind {                                    \
    static constexpr Kind kKind = Kind::kind;      \
    fields                                         \
  };
#include "lorart/plan/kernel_kinds.def"
#undef LORA_KERNEL
#undef LORA_PARAM
#undef LORA_FIELD_Int_Required
#undef LORA_FIELD_Float_Required
#undef LORA_FIELD_String_Required
#undef LORA_FIELD_Int_Optional
#undef LORA_FIELD_Float_Optional
#undef LORA_FIELD_String_Optional

}  // namespace params

// One kernel's parameters, whatever its kind.
using AnyParams = std::variant<std::monostate
#define LORA_KERNEL(kind, operands, flops, fields) , params::kind
#include "lorart/plan/kernel_kinds.def"
#undef LORA_KERNEL
                               >;

namespace detail {
// A source gives `bool Get(const char* name, T* out)` for T in int64_t,
// double, std::string: whether it has the parameter with a value of exactly
// that type (the declared type was checked when the kernel was loaded or
// built).
template <class Source, class T>
bool ReadField(const Source& src, const char* name, T* out) {
  return src.Get(name, out);
}
// A float parameter given as an integer reads as its value.
template <class Source>
bool ReadField(const Source& src, const char* name, double* out) {
  if (src.Get(name, out)) return true;
  int64_t i = 0;
  if (!src.Get(name, &i)) return false;
  *out = static_cast<double>(i);
  return true;
}
template <class Source, class T>
bool ReadField(const Source& src, const char* name, std::optional<T>* out) {
  T v{};
  if (ReadField(src, name, &v)) *out = std::move(v);
  return true;  // optional: absence is fine
}
template <class Sink, class T>
void WriteField(Sink& sink, const char* name, const T& v) {
  sink.Set(name, v);
}
template <class Sink, class T>
void WriteField(Sink& sink, const char* name, const std::optional<T>& v) {
  if (v) sink.Set(name, *v);
}
}  // namespace detail

// A field as an optional, whether its parameter is declared Required or
// Optional (for helpers shared by kinds that differ in that).
template <class T>
std::optional<T> AsOptional(const T& v) {
  return v;
}
template <class T>
std::optional<T> AsOptional(const std::optional<T>& v) {
  return v;
}

// Fills `out` from `src`; the name of the first missing required parameter
// in `*missing` (and false) when one is absent.
#define LORA_PARAM(name, type, need, doc) \
  if (!detail::ReadField(src, #name, &out->name) && missing->empty()) *missing = #name;
#define LORA_KERNEL(kind, operands, flops, fields)                              \
  template <class Source>                                                       \
  bool ReadParams(const Source& src, params::kind* out, std::string* missing) { \
    missing->clear();                                                           \
    fields return missing->empty();                                             \
  }
#include "lorart/plan/kernel_kinds.def"
#undef LORA_KERNEL
#undef LORA_PARAM

// Calls `sink.Set(name, value)` for every parameter `p` has (optional ones
// only when set), in declaration order.
#define LORA_PARAM(name, type, need, doc) detail::WriteField(sink, #name, p.name);
#define LORA_KERNEL(kind, operands, flops, fields)      \
  template <class Sink>                                 \
  void WriteParams(Sink& sink, const params::kind& p) { \
    fields                                              \
  }
#include "lorart/plan/kernel_kinds.def"
#undef LORA_KERNEL
#undef LORA_PARAM

// Reads the parameters of a kernel of kind `kind` into the variant.
template <class Source>
bool ReadAnyParams(Kind kind, const Source& src, AnyParams* out, std::string* missing) {
  switch (kind) {
#define LORA_KERNEL(k, operands, flops, fields) \
  case Kind::k: {                               \
    params::k p;                                \
    bool ok = ReadParams(src, &p, missing);     \
    *out = std::move(p);                        \
    return ok;                                  \
  }
#include "lorart/plan/kernel_kinds.def"
#undef LORA_KERNEL
  }
  return false;
}

// The dropout an adapter kernel draws (probability > 0), or nothing: the
// kinds that declare `dropout` and `rng_stream` (the CUDA executor passes
// such launches a per-step mask key).
struct DropoutDraw {
  double probability = 0;
  int64_t stream = 0;
};
namespace detail {
template <class P, class = void>
struct HasDropout : std::false_type {};
template <class P>
struct HasDropout<
    P, std::void_t<decltype(std::declval<P>().dropout), decltype(std::declval<P>().rng_stream)>>
    : std::true_type {};
}  // namespace detail
inline std::optional<DropoutDraw> DropoutOf(const AnyParams& any) {
  return std::visit(
      [](const auto& p) -> std::optional<DropoutDraw> {
        using P = std::decay_t<decltype(p)>;
        if constexpr (detail::HasDropout<P>::value) {
          const double prob = AsOptional(p.dropout).value_or(0.0);
          if (prob > 0.0) return DropoutDraw{prob, AsOptional(p.rng_stream).value_or(0)};
        }
        return std::nullopt;
      },
      any);
}

}  // namespace lorart::kernels

#endif  // LORART_PLAN_KERNEL_PARAMS_H_
