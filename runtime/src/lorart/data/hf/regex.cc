#include "lorart/data/hf/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "lorart/base/strings.h"

namespace lorart {
namespace data {
namespace hf {
namespace {

// Unicode White_Space, as a class body.
constexpr char kSpaceBody[] =
    "\\t-\\r\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}"
    "\\x{205f}\\x{3000}";
// Oniguruma's Unicode \w.
constexpr char kWordBody[] = "\\p{L}\\p{M}\\p{N}\\p{Pc}";
constexpr char kHexBody[] = "0-9a-fA-F";

// Per-thread PCRE2 state: match data and a JIT stack big enough for long
// runs of whitespace under lookahead.
struct ThreadState {
  pcre2_match_data* md = nullptr;
  pcre2_match_context* mc = nullptr;
  pcre2_jit_stack* stack = nullptr;
  ThreadState() {
    md = pcre2_match_data_create(1, nullptr);
    mc = pcre2_match_context_create(nullptr);
    stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    if (mc && stack) pcre2_jit_stack_assign(mc, nullptr, stack);
  }
  ~ThreadState() {
    if (md) pcre2_match_data_free(md);
    if (mc) pcre2_match_context_free(mc);
    if (stack) pcre2_jit_stack_free(stack);
  }
};

ThreadState& State() {
  thread_local ThreadState state;
  return state;
}

}  // namespace

std::string TranslateOnigPattern(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 16);
  int depth = 0;  // character-class nesting
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char n = p[i + 1];
      const char* body = nullptr;
      bool negate = false;
      switch (n) {
        case 's': body = kSpaceBody; break;
        case 'S': body = kSpaceBody; negate = true; break;
        case 'w': body = kWordBody; break;
        case 'W': body = kWordBody; negate = true; break;
        case 'h': body = kHexBody; break;
        case 'H': body = kHexBody; negate = true; break;
        default: break;
      }
      if (body == nullptr) {
        out += c;
        out += n;
        ++i;
        continue;
      }
      ++i;
      if (depth == 0) {
        out += negate ? "[^" : "[";
        out += body;
        out += "]";
      } else if (!negate) {
        out += body;
      } else if (n == 'S') {
        out += "\\S\\x{180e}";  // PCRE2's \S lacks only U+180E
      } else if (n == 'W') {
        out += "\\W";
      } else {
        out += "\\x{0}-/:-@G-`g-\\x{10ffff}";  // not a hex digit
      }
      continue;
    }
    if (c == '[') {
      if (depth > 0 && i + 1 < p.size() && p[i + 1] == ':') {
        size_t end = p.find(":]", i + 2);
        if (end != std::string_view::npos) {
          out.append(p.substr(i, end + 2 - i));
          i = end + 1;
          continue;
        }
      }
      ++depth;
      out += c;
      // A ']' right after '[' or '[^' is a literal.
      if (i + 1 < p.size() && p[i + 1] == '^') {
        out += '^';
        ++i;
      }
      if (i + 1 < p.size() && p[i + 1] == ']') {
        out += "\\]";
        ++i;
      }
      continue;
    }
    if (c == ']' && depth > 0) --depth;
    out += c;
  }
  return out;
}

std::string EscapeRegex(std::string_view literal) {
  std::string out;
  for (size_t i = 0, len = 0; i < literal.size(); i += len) {
    char32_t c = DecodeUtf8(literal, i, &len);
    if (c < 0x80 && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
      out += static_cast<char>(c);
    } else {
      out += StrFormat("\\x{%x}", static_cast<unsigned>(c));
    }
  }
  return out;
}

StatusOr<std::unique_ptr<Regex>> Regex::Compile(std::string_view pattern, bool pcre_syntax) {
  std::unique_ptr<Regex> re(new Regex());
  re->pattern_ = std::string(pattern);
  std::string translated = pcre_syntax ? std::string(pattern) : TranslateOnigPattern(pattern);
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  pcre2_compile_context* cc = pcre2_compile_context_create(nullptr);
  if (cc) pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
  // NEVER_BACKSLASH_C: \C matches one byte, so a match could end inside a
  // character, and the pipeline relies on pieces of valid UTF-8.
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE | PCRE2_NO_UTF_CHECK |
                                       PCRE2_NEVER_BACKSLASH_C,
                                   &err, &err_offset, cc);
  if (cc) pcre2_compile_context_free(cc);
  if (code == nullptr) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof(buf));
    return InvalidArgumentError(StrFormat("regex %s does not compile: %s (at offset %zu of %s)",
                                          Quote(pattern).c_str(), reinterpret_cast<char*>(buf),
                                          static_cast<size_t>(err_offset),
                                          Quote(translated).c_str()));
  }
  re->code_ = code;
  re->jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return re;
}

Regex::~Regex() {
  if (code_) pcre2_code_free(static_cast<pcre2_code*>(code_));
}

Status Regex::Search(std::string_view text, size_t start, size_t* b, size_t* e, bool* found) const {
  ThreadState& st = State();
  if (st.md == nullptr) return InternalError("PCRE2: out of memory");
  auto* code = static_cast<pcre2_code*>(code_);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  int rc;
  if (jit_) {
    rc = pcre2_jit_match(code, subject, text.size(), start, 0, st.md, st.mc);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      rc = pcre2_match(code, subject, text.size(), start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, st.md,
                       nullptr);
    }
  } else {
    rc = pcre2_match(code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, st.md, nullptr);
  }
  if (rc == PCRE2_ERROR_NOMATCH) {
    *found = false;
    return OkStatus();
  }
  if (rc < 0) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(rc, buf, sizeof(buf));
    return InvalidArgumentError(StrFormat("regex %s failed on a text of %zu bytes: %s",
                                          Quote(pattern_).c_str(), text.size(),
                                          reinterpret_cast<char*>(buf)));
  }
  PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st.md);
  *b = ov[0];
  *e = ov[1];
  *found = true;
  return OkStatus();
}

Status Regex::FindMatches(std::string_view text, std::vector<Match>* out) const {
  out->clear();
  if (text.empty()) {
    out->push_back({0, 0, false});
    return OkStatus();
  }
  size_t prev = 0;   // end of the last piece written
  size_t start = 0;  // where the next search starts
  bool have_last = false;
  size_t last_end = 0;
  while (start <= text.size()) {
    size_t b = 0, e = 0;
    bool found = false;
    LORA_RETURN_IF_ERROR(Search(text, start, &b, &e, &found));
    if (!found) break;
    if (b == e && have_last && last_end == e) {
      // onig's find_iter: no empty match right after the previous match.
      if (start >= text.size()) break;
      start += Utf8Len(static_cast<unsigned char>(text[start]));
      continue;
    }
    if (prev != b) out->push_back({prev, b, false});
    out->push_back({b, e, true});
    prev = e;
    have_last = true;
    last_end = e;
    start = e;
    if (b == e) {
      // Move past an empty match (the next search would find it again).
      if (start >= text.size()) break;
      start += Utf8Len(static_cast<unsigned char>(text[start]));
    }
  }
  if (prev != text.size()) out->push_back({prev, text.size(), false});
  return OkStatus();
}

void FindCharMatches(std::string_view text, bool (*pred)(char32_t, const void*), const void* arg,
                     std::vector<Match>* out) {
  out->clear();
  if (text.empty()) {
    out->push_back({0, 0, false});
    return;
  }
  size_t last = 0;
  for (size_t i = 0, len = 0; i < text.size(); i += len) {
    char32_t c = DecodeUtf8(text, i, &len);
    if (pred(c, arg)) {
      if (last < i) out->push_back({last, i, false});
      out->push_back({i, i + len, true});
      last = i + len;
    }
  }
  if (last < text.size()) out->push_back({last, text.size(), false});
}

}  // namespace hf
}  // namespace data
}  // namespace lorart
