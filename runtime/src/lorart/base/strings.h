// Small string helpers for messages and CLI output.
#ifndef LORART_BASE_STRINGS_H_
#define LORART_BASE_STRINGS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lorart {

// `s` in single quotes for a one-line message: bytes outside printable ASCII
// (control bytes, DEL; UTF-8 is kept) and the quote and backslash are escaped
// (\n, \t, \xNN, \', \\); longer than `max_bytes` is cut with "...".
std::string Quote(std::string_view s, size_t max_bytes = 200);

// Like Quote without the quotes: makes arbitrary text safe for one line.
std::string EscapeForMessage(std::string_view s, size_t max_bytes = 200);

// 1536 -> "1.50 KiB"; below 1024 -> "512 B".
std::string HumanBytes(uint64_t bytes);
// 6738415616 -> "6.74B", 1500000 -> "1.50M", 999 -> "999".
std::string HumanCount(uint64_t count);

// "a/b" from "a" or "a/" and "b".
std::string JoinPath(std::string_view dir, std::string_view name);

// Natural order: runs of digits compare as numbers, so "layers.2" < "layers.10".
bool NaturalLess(std::string_view a, std::string_view b);

// An argument of Format: an integer, a double (written as printf's `%e`:
// spelled `{N:e}`) or text.
struct FormatArg {
  enum class Type { kInt, kDouble, kText } type;
  int64_t i = 0;
  double d = 0;
  std::string s;
  FormatArg(int v) : type(Type::kInt), i(v) {}                                  // NOLINT
  FormatArg(long v) : type(Type::kInt), i(v) {}                                 // NOLINT
  FormatArg(long long v) : type(Type::kInt), i(v) {}                            // NOLINT
  FormatArg(unsigned long v) : type(Type::kInt), i(static_cast<int64_t>(v)) {}  // NOLINT
  FormatArg(double v) : type(Type::kDouble), d(v) {}                            // NOLINT
  FormatArg(std::string v) : type(Type::kText), s(std::move(v)) {}              // NOLINT
  FormatArg(const char* v) : type(Type::kText), s(v) {}                         // NOLINT
};
// `{N}` replaced by argument N (`{N:e}`: a double as printf's %e), `{{` by
// `{`: the small subset of llvm::formatv that code shared with the compiler
// (the CUDA templates, the config reader's messages) uses, without LLVM.
std::string Format(std::string_view tpl, const std::vector<FormatArg>& args);

}  // namespace lorart

#endif  // LORART_BASE_STRINGS_H_
