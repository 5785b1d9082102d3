#include "lorart/base/strings.h"

#include <cstdio>

#include "lorart/base/status.h"

namespace lorart {

std::string EscapeForMessage(std::string_view s, size_t max_bytes) {
  std::string out;
  size_t n = s.size() < max_bytes ? s.size() : max_bytes;
  out.reserve(n + 8);
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\\': out += "\\\\"; break;
      case '\'': out += "\\'"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += StrFormat("\\x%02x", c);
        } else if (c < 0x80) {
          out += static_cast<char>(c);
        } else {
          // A whole UTF-8 sequence is kept (names and text in any script);
          // a byte that does not start one is escaped, so a message never
          // carries invalid UTF-8 to the terminal.
          const size_t len = c >= 0xc2 && c <= 0xdf   ? 2
                             : c >= 0xe0 && c <= 0xef ? 3
                             : c >= 0xf0 && c <= 0xf4 ? 4
                                                      : 0;
          bool whole = len > 0 && i + len <= n;
          for (size_t k = 1; whole && k < len; ++k)
            whole = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
          if (!whole) {
            out += StrFormat("\\x%02x", c);
          } else {
            out.append(s.data() + i, len);
            i += len - 1;
          }
        }
    }
  }
  if (n < s.size()) out += "...";
  return out;
}

std::string Quote(std::string_view s, size_t max_bytes) {
  return "'" + EscapeForMessage(s, max_bytes) + "'";
}

std::string HumanBytes(uint64_t bytes) {
  static const char* const kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return StrFormat("%llu B", static_cast<unsigned long long>(bytes));
  double v = static_cast<double>(bytes) / 1024.0;
  size_t unit = 0;
  while (v >= 1024.0 && unit + 1 < sizeof(kUnits) / sizeof(kUnits[0])) {
    v /= 1024.0;
    ++unit;
  }
  return StrFormat("%.2f %s", v, kUnits[unit]);
}

std::string HumanCount(uint64_t count) {
  static const char* const kUnits[] = {"K", "M", "B", "T"};
  if (count < 1000) return StrFormat("%llu", static_cast<unsigned long long>(count));
  double v = static_cast<double>(count) / 1000.0;
  size_t unit = 0;
  while (v >= 1000.0 && unit + 1 < sizeof(kUnits) / sizeof(kUnits[0])) {
    v /= 1000.0;
    ++unit;
  }
  return StrFormat("%.2f%s", v, kUnits[unit]);
}

std::string JoinPath(std::string_view dir, std::string_view name) {
  std::string out(dir);
  if (!out.empty() && out.back() != '/') out += '/';
  out += name;
  return out;
}

bool NaturalLess(std::string_view a, std::string_view b) {
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (is_digit(a[i]) && is_digit(b[j])) {
      size_t i0 = i, j0 = j;
      while (i0 < a.size() && a[i0] == '0') ++i0;  // skip leading zeros
      while (j0 < b.size() && b[j0] == '0') ++j0;
      size_t i1 = i0, j1 = j0;
      while (i1 < a.size() && is_digit(a[i1])) ++i1;
      while (j1 < b.size() && is_digit(b[j1])) ++j1;
      size_t la = i1 - i0, lb = j1 - j0;
      if (la != lb) return la < lb;
      int cmp = a.substr(i0, la).compare(b.substr(j0, lb));
      if (cmp != 0) return cmp < 0;
      // Equal values: fewer leading zeros first, then go on.
      if ((i1 - i) != (j1 - j)) return (i1 - i) < (j1 - j);
      i = i1;
      j = j1;
    } else {
      if (a[i] != b[j]) {
        return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]);
      }
      ++i;
      ++j;
    }
  }
  return (a.size() - i) < (b.size() - j);
}

std::string Format(std::string_view tpl, const std::vector<FormatArg>& args) {
  std::string out;
  for (size_t i = 0; i < tpl.size(); ++i) {
    if (tpl[i] != '{') {
      out += tpl[i];
      continue;
    }
    if (i + 1 < tpl.size() && tpl[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    size_t close = tpl.find('}', i);
    std::string spec(tpl.substr(i + 1, close - i - 1));
    size_t colon = spec.find(':');
    const FormatArg& a = args.at(std::stoul(spec.substr(0, colon)));
    char buf[64];
    switch (a.type) {
      case FormatArg::Type::kInt:
        out += std::to_string(a.i);
        break;
      case FormatArg::Type::kDouble:
        snprintf(buf, sizeof buf, "%e", a.d);
        out += buf;
        break;
      case FormatArg::Type::kText:
        out += a.s;
        break;
    }
    i = close;
  }
  return out;
}

}  // namespace lorart
