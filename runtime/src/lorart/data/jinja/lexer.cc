// The lexer: jinja2's Lexer.tokeniter with the default delimiters,
// trim_blocks=True, lstrip_blocks=True and keep_trailing_newline=False.
#include <cstring>

#include <cerrno>
#include <cstdlib>
#include "lorart/data/jinja/internal.h"

namespace lorart::data::jinja {
namespace {

class Lexer {
 public:
  explicit Lexer(std::string_view source) {
    // Normalize \r\n and \r to \n; drop one trailing newline.
    src_.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        src_.push_back('\n');
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      } else {
        src_.push_back(source[i]);
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
  }

  std::vector<Token> Run() {
    bool line_starting = true;
    while (pos_ < src_.size()) {
      // Find the earliest tag opener.
      size_t start = pos_;
      size_t open = std::string::npos;
      for (size_t i = pos_; i + 1 < src_.size(); ++i) {
        if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) {
          open = i;
          break;
        }
      }
      if (open == std::string::npos) {
        Emit(Tok::kData, src_.substr(pos_), start);
        pos_ = src_.size();
        break;
      }
      char kind = src_[open + 1];
      char sign = open + 2 < src_.size() && (src_[open + 2] == '-' || src_[open + 2] == '+') ? src_[open + 2] : 0;
      std::string text = src_.substr(pos_, open - pos_);
      size_t raw_end = 0;
      bool raw = kind == '%' && MatchRawBegin(open, &raw_end);
      text = StripText(text, sign, kind != '{', line_starting);
      Emit(Tok::kData, text, start);
      if (raw) {
        pos_ = raw_end;
        line_starting = src_[raw_end - 1] == '\n';
        LexRawBody(&line_starting);
        continue;
      }
      size_t tag_pos = open;
      pos_ = open + 2 + (sign ? 1 : 0);
      if (kind == '#') {
        LexComment(tag_pos, &line_starting);
      } else {
        LexTag(kind == '%' ? Tok::kBlockBegin : Tok::kVarBegin, tag_pos, &line_starting);
      }
    }
    Token eof;
    eof.type = Tok::kEof;
    Position(src_.size(), &eof.line, &eof.col);
    tokens_.push_back(eof);
    return std::move(tokens_);
  }

 private:
  void Position(size_t pos, int* line, int* col) {
    // Incremental: positions are usually requested in increasing order.
    if (pos < line_pos_) line_pos_ = line_start_ = 0, line_ = 1;
    while (line_pos_ < pos && line_pos_ < src_.size()) {
      if (src_[line_pos_] == '\n') {
        ++line_;
        line_start_ = line_pos_ + 1;
      }
      ++line_pos_;
    }
    *line = line_;
    *col = static_cast<int>(pos - line_start_) + 1;
  }

  [[noreturn]] void ErrorAt(size_t pos, std::string message) {
    int line, col;
    Position(pos, &line, &col);
    FailAt(line, col, std::move(message));
  }

  void Emit(Tok type, std::string text, size_t pos) {
    if (type == Tok::kData && text.empty()) return;
    Token t;
    t.type = type;
    t.text = std::move(text);
    Position(pos, &t.line, &t.col);
    tokens_.push_back(std::move(t));
  }

  static bool AllWhitespace(std::string_view s) {
    if (s.empty()) return false;
    size_t pos = 0;
    while (pos < s.size()) {
      size_t len;
      if (!IsPyWhitespace(DecodeUtf8(s, pos, &len))) return false;
      pos += len;
    }
    return true;
  }

  static std::string RStrip(const std::string& s) {
    size_t end = s.size();
    while (end > 0) {
      // Step back one code point.
      size_t b = end - 1;
      while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
      size_t len;
      uint32_t cp = DecodeUtf8(s, b, &len);
      if (b + len != end || !IsPyWhitespace(cp)) break;
      end = b;
    }
    return s.substr(0, end);
  }

  // The OptionalLStrip rule: `-` strips all trailing whitespace; otherwise
  // (unless `+` or a variable tag) lstrip_blocks removes the whitespace
  // between the last newline and the tag.
  static std::string StripText(const std::string& text, char sign, bool lstrip_applies, bool line_starting) {
    if (sign == '-') return RStrip(text);
    if (sign != '+' && lstrip_applies) {
      size_t nl = text.rfind('\n');
      size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
      if ((l_pos > 0 || line_starting) && AllWhitespace(std::string_view(text).substr(l_pos))) {
        return text.substr(0, l_pos);
      }
    }
    return text;
  }

  size_t SkipWs(size_t p) const {
    while (p < src_.size()) {
      size_t len;
      if (!IsPyWhitespace(DecodeUtf8(src_, p, &len))) break;
      p += len;
    }
    return p;
  }

  bool StartsWith(size_t p, const char* s) const { return src_.compare(p, strlen(s), s) == 0; }

  // `{%(-|+|)\s*raw\s*(?:-%}\s*|%})` at `open`.
  bool MatchRawBegin(size_t open, size_t* end) {
    size_t p = open + 2;
    if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ++p;
    p = SkipWs(p);
    if (!StartsWith(p, "raw")) return false;
    p += 3;
    p = SkipWs(p);
    if (StartsWith(p, "-%}")) {
      *end = SkipWs(p + 3);
      return true;
    }
    if (StartsWith(p, "%}")) {
      *end = p + 2;
      return true;
    }
    return false;
  }

  // Block end at p: `+%}` | `-%}\s*` | `%}\n?`; returns the end or npos.
  size_t MatchBlockEnd(size_t p, const char* close) const {
    if (src_[p] == '+' && StartsWith(p + 1, close)) return p + 3;
    if (src_[p] == '-' && StartsWith(p + 1, close)) return SkipWs(p + 3);
    if (StartsWith(p, close)) {
      size_t e = p + 2;
      if (e < src_.size() && src_[e] == '\n') ++e;
      return e;
    }
    return std::string::npos;
  }

  void LexRawBody(bool* line_starting) {
    size_t body_start = pos_;
    for (size_t i = pos_; i + 1 < src_.size(); ++i) {
      if (src_[i] != '{' || src_[i + 1] != '%') continue;
      size_t p = i + 2;
      char sign = 0;
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) sign = src_[p++];
      p = SkipWs(p);
      if (!StartsWith(p, "endraw")) continue;
      p = SkipWs(p + 6);
      if (p >= src_.size()) continue;
      size_t end = MatchBlockEnd(p, "%}");
      if (end == std::string::npos) continue;
      std::string text = StripText(src_.substr(body_start, i - body_start), sign, true, *line_starting);
      Emit(Tok::kData, text, body_start);
      pos_ = end;
      *line_starting = src_[end - 1] == '\n';
      return;
    }
    ErrorAt(body_start, "Missing end of raw directive");
  }

  void LexComment(size_t tag_pos, bool* line_starting) {
    for (size_t p = pos_; p + 1 < src_.size(); ++p) {
      if (src_[p] == '+' && StartsWith(p + 1, "#}")) {
        pos_ = p + 3;
        *line_starting = false;
        return;
      }
      if (src_[p] == '-' && StartsWith(p + 1, "#}")) {
        pos_ = SkipWs(p + 3);
        *line_starting = src_[pos_ - 1] == '\n';
        return;
      }
      if (StartsWith(p, "#}")) {
        pos_ = p + 2;
        if (pos_ < src_.size() && src_[pos_] == '\n') ++pos_;
        *line_starting = src_[pos_ - 1] == '\n';
        return;
      }
    }
    ErrorAt(tag_pos, "Missing end of comment tag");
  }

  void LexTag(Tok begin, size_t tag_pos, bool* line_starting) {
    Emit(begin, begin == Tok::kBlockBegin ? "{%" : "{{", tag_pos);
    const char* close = begin == Tok::kBlockBegin ? "%}" : "}}";
    std::vector<char> balance;
    while (true) {
      size_t p = SkipWs(pos_);
      pos_ = p;
      if (p >= src_.size()) return;  // the parser reports the missing end
      if (balance.empty()) {
        size_t end = std::string::npos;
        if (begin == Tok::kBlockBegin) {
          end = MatchBlockEnd(p, close);
        } else if (src_[p] == '-' && StartsWith(p + 1, close)) {
          end = SkipWs(p + 3);
        } else if (StartsWith(p, close)) {
          end = p + 2;
        }
        if (end != std::string::npos) {
          Emit(begin == Tok::kBlockBegin ? Tok::kBlockEnd : Tok::kVarEnd, close, p);
          pos_ = end;
          *line_starting = src_[end - 1] == '\n';
          return;
        }
      }
      char c = src_[p];
      if (LexNumber(p)) continue;
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') {
        size_t e = p + 1;
        while (e < src_.size() && (isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
        if (e < src_.size() && static_cast<unsigned char>(src_[e]) >= 0x80) {
          ErrorAt(p, "non-ASCII identifiers are not supported by lorart's chat-template interpreter");
        }
        Emit(Tok::kName, src_.substr(p, e - p), p);
        pos_ = e;
        continue;
      }
      if (c == '\'' || c == '"') {
        LexString(p);
        continue;
      }
      static const char* const kOps[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[",
                                         "]",  "(",  ")",  "{",  "}",  ">",  "<", "=", ".", ":", "|", ",", ";"};
      const char* op = nullptr;
      for (const char* o : kOps) {
        if (StartsWith(p, o)) {
          op = o;
          break;
        }
      }
      if (!op) {
        size_t len;
        DecodeUtf8(src_, p, &len);
        ErrorAt(p, "unexpected char " + PyRepr(Value::String(src_.substr(p, len))).text() + " at " + std::to_string(p));
      }
      std::string o(op);
      if (o == "{" || o == "(" || o == "[") {
        balance.push_back(o == "{" ? '}' : o == "(" ? ')' : ']');
      } else if (o == "}" || o == ")" || o == "]") {
        if (balance.empty()) ErrorAt(p, "unexpected '" + o + "'");
        char expected = balance.back();
        balance.pop_back();
        if (expected != o[0]) ErrorAt(p, "unexpected '" + o + "', expected '" + std::string(1, expected) + "'");
      }
      Emit(Tok::kOp, o, p);
      pos_ = p + o.size();
    }
  }

  bool LexNumber(size_t p) {
    auto digit = [&](size_t i) { return i < src_.size() && src_[i] >= '0' && src_[i] <= '9'; };
    if (!digit(p)) return false;
    // digits with single underscores between them
    auto digits = [&](size_t i) {
      if (!digit(i)) return i;
      ++i;
      while (true) {
        if (digit(i)) {
          ++i;
        } else if (i < src_.size() && src_[i] == '_' && digit(i + 1)) {
          i += 2;
        } else {
          break;
        }
      }
      return i;
    };
    auto strip_us = [&](size_t a, size_t b) {
      std::string s;
      for (size_t i = a; i < b; ++i) {
        if (src_[i] != '_') s.push_back(src_[i]);
      }
      return s;
    };
    // float: (?<!\.) digits ( (\.digits)? e[+-]?digits | \.digits )
    bool after_dot = p > 0 && src_[p - 1] == '.';
    size_t e1 = digits(p);
    if (!after_dot) {
      size_t q = e1;
      bool frac = false;
      if (q < src_.size() && src_[q] == '.' && digit(q + 1)) {
        q = digits(q + 1);
        frac = true;
      }
      size_t r = q;
      bool expo = false;
      if (r < src_.size() && (src_[r] == 'e' || src_[r] == 'E')) {
        size_t s = r + 1;
        if (s < src_.size() && (src_[s] == '+' || src_[s] == '-')) ++s;
        if (digit(s)) {
          r = digits(s);
          expo = true;
        }
      }
      if (expo || frac) {
        size_t end = expo ? r : q;
        Token t;
        t.type = Tok::kFloat;
        t.text = src_.substr(p, end - p);
        t.float_value = strtod(strip_us(p, end).c_str(), nullptr);
        Position(p, &t.line, &t.col);
        tokens_.push_back(std::move(t));
        pos_ = end;
        return true;
      }
    }
    // integer
    size_t end;
    int64_t value = 0;
    if (src_[p] == '0') {
      char x = p + 1 < src_.size() ? static_cast<char>(tolower(src_[p + 1])) : 0;
      if (x == 'b' || x == 'o' || x == 'x') {
        int base = x == 'b' ? 2 : x == 'o' ? 8 : 16;
        size_t i = p + 2;
        std::string ds;
        while (i < src_.size()) {
          char c = src_[i];
          if (c == '_' && i + 1 < src_.size()) {
            ++i;
            c = src_[i];
          }
          int d = isdigit(static_cast<unsigned char>(c)) ? c - '0'
                  : (tolower(c) >= 'a' && tolower(c) <= 'f') ? tolower(c) - 'a' + 10
                                                               : 99;
          if (d >= base) break;
          ds.push_back(c);
          ++i;
        }
        if (ds.empty()) {
          end = p + 1;  // just "0"
        } else {
          end = i;
          value = static_cast<int64_t>(strtoull(ds.c_str(), nullptr, base));
        }
      } else {
        end = p + 1;
        while (end < src_.size() && (src_[end] == '0' || (src_[end] == '_' && end + 1 < src_.size() && src_[end + 1] == '0'))) {
          end += src_[end] == '_' ? 2 : 1;
        }
      }
    } else {
      end = e1;
      std::string ds = strip_us(p, end);
      errno = 0;
      char* stop = nullptr;
      unsigned long long v = strtoull(ds.c_str(), &stop, 10);
      if (errno == ERANGE || v > static_cast<unsigned long long>(INT64_MAX)) {
        ErrorAt(p, "integer literals beyond 64 bits are not supported by lorart's chat-template interpreter");
      }
      value = static_cast<int64_t>(v);
    }
    Token t;
    t.type = Tok::kInt;
    t.text = src_.substr(p, end - p);
    t.int_value = value;
    Position(p, &t.line, &t.col);
    tokens_.push_back(std::move(t));
    pos_ = end;
    return true;
  }

  // A string literal, unescaped as Python's "unicode-escape" codec does.
  void LexString(size_t p) {
    char q = src_[p];
    size_t i = p + 1;
    std::string out;
    while (true) {
      if (i >= src_.size()) {
        ErrorAt(p, "unexpected char " + PyRepr(Value::String(src_.substr(p, 1))).text() + " at " + std::to_string(p));
      }
      char c = src_[i];
      if (c == q) break;
      if (c != '\\') {
        out.push_back(c);
        ++i;
        continue;
      }
      if (i + 1 >= src_.size()) {
        ErrorAt(p, "unexpected char " + PyRepr(Value::String(src_.substr(p, 1))).text() + " at " + std::to_string(p));
      }
      char e = src_[i + 1];
      i += 2;
      auto hex = [&](int n) -> uint32_t {
        uint32_t v = 0;
        for (int k = 0; k < n; ++k) {
          if (i >= src_.size() || !isxdigit(static_cast<unsigned char>(src_[i]))) {
            ErrorAt(p, "truncated \\xXX escape");
          }
          char h = static_cast<char>(tolower(src_[i++]));
          v = v * 16 + static_cast<uint32_t>(isdigit(static_cast<unsigned char>(h)) ? h - '0' : h - 'a' + 10);
        }
        return v;
      };
      switch (e) {
        case '\n': break;  // line continuation
        case '\\': out.push_back('\\'); break;
        case '\'': out.push_back('\''); break;
        case '"': out.push_back('"'); break;
        case 'a': out.push_back('\a'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'v': out.push_back('\v'); break;
        case 'x': EncodeUtf8(hex(2), &out); break;
        case 'u': EncodeUtf8(hex(4), &out); break;
        case 'U': {
          uint32_t cp = hex(8);
          if (cp > 0x10FFFF) ErrorAt(p, "illegal Unicode character");
          EncodeUtf8(cp, &out);
          break;
        }
        case 'N': ErrorAt(p, "\\N{...} escapes are not supported by lorart's chat-template interpreter");
        default:
          if (e >= '0' && e <= '7') {
            uint32_t v = static_cast<uint32_t>(e - '0');
            for (int k = 0; k < 2 && i < src_.size() && src_[i] >= '0' && src_[i] <= '7'; ++k) {
              v = v * 8 + static_cast<uint32_t>(src_[i++] - '0');
            }
            EncodeUtf8(v, &out);
          } else {
            // Unknown escapes keep the backslash.
            out.push_back('\\');
            out.push_back(e);
          }
      }
    }
    Token t;
    t.type = Tok::kString;
    t.text = std::move(out);
    Position(p, &t.line, &t.col);
    tokens_.push_back(std::move(t));
    pos_ = i + 1;
  }

  std::string src_;
  size_t pos_ = 0;
  std::vector<Token> tokens_;
  size_t line_pos_ = 0, line_start_ = 0;
  int line_ = 1;
};

}  // namespace

std::vector<Token> Lex(std::string_view source) { return Lexer(source).Run(); }

}  // namespace lorart::data::jinja
