#include "lorart/data/hf/unicode.h"

#include <cstdlib>

#include <utf8proc.h>

namespace lorart {
namespace data {
namespace hf {

size_t FindInvalidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    unsigned char b = p[i];
    if (b < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    char32_t min;
    char32_t c;
    if ((b & 0xE0) == 0xC0) {
      len = 2, min = 0x80, c = b & 0x1F;
    } else if ((b & 0xF0) == 0xE0) {
      len = 3, min = 0x800, c = b & 0x0F;
    } else if ((b & 0xF8) == 0xF0) {
      len = 4, min = 0x10000, c = b & 0x07;
    } else {
      return i;
    }
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      c = (c << 6) | (p[i + k] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return i;
    i += len;
  }
  return std::string_view::npos;
}

char32_t DecodeUtf8(std::string_view s, size_t i, size_t* len) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + i;
  unsigned char b = p[0];
  if (b < 0x80) {
    *len = 1;
    return b;
  }
  if ((b & 0xE0) == 0xC0) {
    *len = 2;
    return (char32_t(b & 0x1F) << 6) | (p[1] & 0x3F);
  }
  if ((b & 0xF0) == 0xE0) {
    *len = 3;
    return (char32_t(b & 0x0F) << 12) | (char32_t(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
  }
  *len = 4;
  return (char32_t(b & 0x07) << 18) | (char32_t(p[1] & 0x3F) << 12) |
         (char32_t(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
}

void AppendUtf8(char32_t c, std::string* out) {
  if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (c >> 12)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (c >> 18)));
    out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::vector<char32_t> DecodeAll(std::string_view s) {
  std::vector<char32_t> out;
  out.reserve(s.size());
  for (size_t i = 0, len = 0; i < s.size(); i += len) out.push_back(DecodeUtf8(s, i, &len));
  return out;
}

size_t CountChars(std::string_view s) {
  size_t n = 0;
  for (unsigned char b : s) n += (b & 0xC0) != 0x80;
  return n;
}

std::string FromUtf8Lossy(std::string_view s) {
  // The WHATWG/Unicode "maximal subpart" rule Rust follows: a truncated but
  // otherwise valid prefix of a sequence is one U+FFFD; any other bad byte
  // is one U+FFFD of its own.
  std::string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size();
  size_t i = 0;
  static const char kReplacement[] = "\xEF\xBF\xBD";
  while (i < n) {
    unsigned char b = p[i];
    if (b < 0x80) {
      out.push_back(static_cast<char>(b));
      ++i;
      continue;
    }
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
      need = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
      need = 2;
      if (b == 0xE0) lo = 0xA0;
      if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      need = 3;
      if (b == 0xF0) lo = 0x90;
      if (b == 0xF4) hi = 0x8F;
    } else {
      out.append(kReplacement);
      ++i;
      continue;
    }
    size_t k = 1;
    bool ok = true;
    for (; k <= need; ++k) {
      if (i + k >= n) {
        ok = false;
        break;
      }
      unsigned char c = p[i + k];
      unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
      if (c < l || c > h) {
        ok = false;
        break;
      }
    }
    if (ok) {
      out.append(reinterpret_cast<const char*>(p + i), need + 1);
      i += need + 1;
    } else {
      out.append(kReplacement);
      i += k;  // the valid prefix is one maximal subpart
    }
  }
  return out;
}

bool IsWhitespace(char32_t c) {
  if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D);
  if (c < 0x85) return false;
  switch (c) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F:
    case 0x205F: case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

namespace {
utf8proc_category_t Category(char32_t c) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(c));
}
}  // namespace

bool IsNumeric(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  auto cat = Category(c);
  return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
}

bool IsPunctuation(char32_t c) {
  if (c < 0x80) {
    return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
           (c >= 0x7B && c <= 0x7E);
  }
  auto cat = Category(c);
  return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

bool IsWordChar(char32_t c) {
  if (c < 0x80) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  }
  if (c == 0x200C || c == 0x200D) return true;  // Join_Control
  // Other_Alphabetic symbols (circled letters) outside L and M.
  if ((c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F149) ||
      (c >= 0x1F150 && c <= 0x1F169) || (c >= 0x1F170 && c <= 0x1F189)) {
    return true;
  }
  auto cat = Category(c);
  switch (cat) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

void ToLowerFull(char32_t c, std::vector<char32_t>* out) {
  if (c < 0x80) {
    out->push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
    return;
  }
  if (c == 0x130) {  // SpecialCasing: İ -> i + COMBINING DOT ABOVE
    out->push_back('i');
    out->push_back(0x307);
    return;
  }
  out->push_back(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
}

namespace {

utf8proc_option_t Options(NormalForm form) {
  int o = UTF8PROC_STABLE;
  switch (form) {
    case NormalForm::kNFC: o |= UTF8PROC_COMPOSE; break;
    case NormalForm::kNFD: o |= UTF8PROC_DECOMPOSE; break;
    case NormalForm::kNFKC: o |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case NormalForm::kNFKD: o |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
  }
  return static_cast<utf8proc_option_t>(o);
}

bool MapUtf8(std::string_view s, utf8proc_option_t options, std::string* out) {
  out->clear();
  if (s.empty()) return true;
  utf8proc_uint8_t* result = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                    static_cast<utf8proc_ssize_t>(s.size()), &result, options);
  if (n < 0) return false;
  out->assign(reinterpret_cast<const char*>(result), static_cast<size_t>(n));
  std::free(result);
  return true;
}

// Whether a normalization chunk may start at `c`: a starter that never
// composes with what comes before it.
bool IsChunkStart(char32_t c) {
  if (c < 0x300) return true;
  if ((c >= 0x1161 && c <= 0x1175) || (c >= 0x11A8 && c <= 0x11C2)) return false;  // Hangul V/T
  const utf8proc_property_t* p = utf8proc_get_property(static_cast<utf8proc_int32_t>(c));
  if (p->combining_class != 0) return false;
  if (p->comb_index != UINT16_MAX && p->comb_index >= 0x8000) return false;
  return true;
}

void AppendChanges(std::string_view normalized, size_t m,
                   std::vector<std::pair<char32_t, int>>* changes) {
  std::vector<char32_t> out = DecodeAll(normalized);
  size_t n = out.size();
  for (size_t j = 0; j < n; ++j) {
    int change = 0;
    if (n > m && j >= m) change = 1;
    if (n < m && j == 0) change = -static_cast<int>(m - n);  // composed into the starter
    changes->emplace_back(out[j], change);
  }
}

}  // namespace

bool Normalize(std::string_view s, NormalForm form, std::string* out,
               std::vector<std::pair<char32_t, int>>* changes) {
  bool ascii = true;
  for (unsigned char b : s) {
    if (b >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) {
    out->assign(s.data(), s.size());
    if (changes) {
      changes->clear();
      for (unsigned char b : s) changes->emplace_back(b, 0);
    }
    return true;
  }
  utf8proc_option_t options = Options(form);
  if (!MapUtf8(s, options, out)) return false;
  if (!changes) return true;
  changes->clear();
  // Alignment: normalize chunk by chunk (a chunk never interacts with the
  // next under normalization); within a chunk of m characters giving n, the
  // first characters replace one another, the rest are insertions, and
  // characters composed away are removed after the first (the starter), as
  // unicode-normalization-alignments reports them. If the chunks do not add up to the whole (never expected),
  // the whole string is one chunk.
  std::string joined, piece;
  size_t start = 0, m = 0;
  std::vector<std::pair<size_t, size_t>> chunks;  // byte start, char count
  for (size_t i = 0, len = 0; i < s.size(); i += len) {
    char32_t c = DecodeUtf8(s, i, &len);
    if (i > start && IsChunkStart(c)) {
      chunks.emplace_back(start, m);
      start = i;
      m = 0;
    }
    ++m;
  }
  chunks.emplace_back(start, m);
  for (size_t k = 0; k < chunks.size(); ++k) {
    size_t b = chunks[k].first;
    size_t e = k + 1 < chunks.size() ? chunks[k + 1].first : s.size();
    if (!MapUtf8(s.substr(b, e - b), options, &piece)) return false;
    AppendChanges(piece, chunks[k].second, changes);
    joined += piece;
  }
  if (joined != *out) {
    changes->clear();
    AppendChanges(*out, CountChars(s), changes);
  }
  return true;
}

}  // namespace hf
}  // namespace data
}  // namespace lorart
