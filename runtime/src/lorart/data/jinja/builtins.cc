// Builtins: jinja2's filters and tests, the methods of str/dict/list that the
// sandbox allows, the global functions, and printf-style formatting. Each
// follows jinja2 3.1 (filters.py, tests.py) and CPython semantics, keeping
// byte labels of the strings it copies.
#include <algorithm>
#include <cmath>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <optional>
#include <set>

#include "lorart/base/strings.h"
#include "lorart/data/jinja/internal.h"

namespace lorart::data::jinja {
namespace {

using Kind = Value::Kind;
using Args = std::vector<std::optional<Value>>;

// Binds call arguments to parameter names (Python's rules for positional and
// keyword arguments).
Args Bind(const std::string& fname, CallArgs& args, std::initializer_list<const char*> names) {
  Args out(names.size());
  std::vector<const char*> n(names);
  if (args.pos.size() > n.size()) {
    Fail(StrFormat("TypeError: %s() takes at most %zu arguments (%zu given)", fname.c_str(), n.size(),
                   args.pos.size()));
  }
  for (size_t i = 0; i < args.pos.size(); ++i) out[i] = args.pos[i];
  for (auto& kw : args.kw) {
    size_t i = 0;
    while (i < n.size() && kw.first != n[i]) ++i;
    if (i == n.size()) Fail("TypeError: " + fname + "() got an unexpected keyword argument '" + kw.first + "'");
    if (out[i]) Fail("TypeError: " + fname + "() got multiple values for argument '" + kw.first + "'");
    out[i] = kw.second;
  }
  return out;
}

Value Or(const std::optional<Value>& v, Value def) { return v ? *v : std::move(def); }

int64_t AsInt(const Value& v, const char* what) {
  if (v.kind() == Kind::kInt || v.kind() == Kind::kBool) return v.int_value();
  CheckDefined(v);
  Fail(std::string("TypeError: ") + what + " must be an integer, not " + TypeName(v));
}

// Python int(x) of a float, truncating; our ints are int64, so a float
// outside their range is an error (a C++ cast of it is undefined).
int64_t TruncToInt(double d) {
  if (std::isnan(d)) Fail("ValueError: cannot convert float NaN to integer");
  if (std::isinf(d)) Fail("OverflowError: cannot convert float infinity to integer");
  double t = std::trunc(d);
  if (!(t >= -9223372036854775808.0 && t < 9223372036854775808.0)) Fail("integer overflow");
  return static_cast<int64_t>(t);
}

// n * m for size checks, SIZE_MAX when it does not fit.
size_t SaturatingMul(size_t n, size_t m) {
  size_t r;
  return __builtin_mul_overflow(n, m, &r) ? SIZE_MAX : r;
}

const LabelledString& AsStr(const Value& v, const char* what) {
  if (!v.is_string()) {
    CheckDefined(v);
    Fail(std::string("TypeError: ") + what + " must be str, not " + TypeName(v));
  }
  return v.string_value();
}

// ---------------------------------------------------------------------------
// String operations on labelled text (code-point semantics)

using CpPred = std::function<bool(uint32_t)>;

LabelledString Strip(const LabelledString& s, const CpPred& strip, bool left, bool right) {
  const std::string& t = s.text();
  size_t b = 0, e = t.size();
  if (left) {
    while (b < e) {
      size_t len;
      uint32_t cp = DecodeUtf8(t, b, &len);
      if (!strip(cp)) break;
      b += len;
    }
  }
  if (right) {
    while (e > b) {
      size_t p = e - 1;
      while (p > b && (static_cast<unsigned char>(t[p]) & 0xC0) == 0x80) --p;
      size_t len;
      uint32_t cp = DecodeUtf8(t, p, &len);
      if (p + len != e || !strip(cp)) break;
      e = p;
    }
  }
  return s.Slice(b, e);
}

CpPred StripSet(const std::optional<Value>& chars) {
  if (!chars || chars->is_none()) return IsPyWhitespace;
  const std::string& c = AsStr(*chars, "strip arg").text();
  std::set<uint32_t> set;
  size_t pos = 0;
  while (pos < c.size()) {
    size_t len;
    set.insert(DecodeUtf8(c, pos, &len));
    pos += len;
  }
  return [set](uint32_t cp) { return set.count(cp) > 0; };
}

// Applies a per-code-point mapping; each produced byte takes the label of the
// source code point.
LabelledString MapChars(const LabelledString& s, const std::function<std::string(uint32_t, size_t)>& f) {
  const std::string& t = s.text();
  LabelledString out;
  size_t pos = 0, index = 0;
  while (pos < t.size()) {
    size_t len;
    uint32_t cp = DecodeUtf8(t, pos, &len);
    out.Append(f(cp, index++), s.LabelAt(pos));
    pos += len;
  }
  return out;
}

std::string Cp(uint32_t cp) {
  std::string s;
  EncodeUtf8(cp, &s);
  return s;
}
std::string UpperS(uint32_t cp) { return cp == 0xDF ? std::string("SS") : Cp(PyUpper(cp)); }
std::string LowerS(uint32_t cp) { return Cp(PyLower(cp)); }

LabelledString Upper(const LabelledString& s) { return MapChars(s, [](uint32_t c, size_t) { return UpperS(c); }); }
LabelledString Lower(const LabelledString& s) { return MapChars(s, [](uint32_t c, size_t) { return LowerS(c); }); }
LabelledString Capitalize(const LabelledString& s) {
  return MapChars(s, [](uint32_t c, size_t i) { return i == 0 ? (c == 0xDF ? std::string("Ss") : Cp(PyUpper(c))) : LowerS(c); });
}
LabelledString PyTitle(const LabelledString& s) {
  bool prev_cased = false;
  return MapChars(s, [&](uint32_t c, size_t) {
    std::string r;
    if (IsCased(c)) {
      r = prev_cased ? LowerS(c) : (c == 0xDF ? std::string("Ss") : Cp(PyUpper(c)));
      prev_cased = true;
    } else {
      r = Cp(c);
      prev_cased = false;
    }
    return r;
  });
}
LabelledString SwapCase(const LabelledString& s) {
  return MapChars(s, [](uint32_t c, size_t) { return PyLower(c) != c ? LowerS(c) : UpperS(c); });
}

// jinja2's do_title: split on runs of [-\s({\[<] and capitalize each piece.
LabelledString JinjaTitle(const LabelledString& s) {
  bool at_start = true;
  return MapChars(s, [&](uint32_t c, size_t) {
    bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || IsPyWhitespace(c);
    std::string r;
    if (sep) {
      r = Cp(c);
      at_start = true;
    } else {
      r = at_start ? UpperS(c) : LowerS(c);
      at_start = false;
    }
    return r;
  });
}

std::vector<LabelledString> Split(const LabelledString& s, const std::optional<Value>& sep_v, int64_t maxsplit,
                                  bool from_right) {
  const std::string& t = s.text();
  std::vector<LabelledString> parts;
  if (!sep_v || sep_v->is_none()) {
    // Runs of whitespace; leading/trailing whitespace ignored.
    std::vector<std::pair<size_t, size_t>> words;
    size_t pos = 0;
    while (pos < t.size()) {
      size_t len;
      uint32_t cp = DecodeUtf8(t, pos, &len);
      if (IsPyWhitespace(cp)) {
        pos += len;
        continue;
      }
      size_t b = pos;
      while (pos < t.size()) {
        cp = DecodeUtf8(t, pos, &len);
        if (IsPyWhitespace(cp)) break;
        pos += len;
      }
      words.emplace_back(b, pos);
    }
    if (maxsplit < 0 || static_cast<size_t>(maxsplit) + 1 > words.size()) {
      for (auto& w : words) parts.push_back(s.Slice(w.first, w.second));
      return parts;
    }
    size_t m = static_cast<size_t>(maxsplit);
    // Limited split: the remainder keeps its whitespace beyond the first
    // (last) word, as CPython does.
    if (!from_right) {
      for (size_t i = 0; i < m; ++i) parts.push_back(s.Slice(words[i].first, words[i].second));
      parts.push_back(s.Slice(words[m].first, t.size()));
      return parts;
    }
    std::vector<LabelledString> tail;
    for (size_t i = 0; i < m; ++i) tail.push_back(s.Slice(words[words.size() - 1 - i].first, words[words.size() - 1 - i].second));
    size_t end = words[words.size() - 1 - m].second;
    parts.push_back(s.Slice(0, end));
    for (auto it = tail.rbegin(); it != tail.rend(); ++it) parts.push_back(*it);
    return parts;
  }
  const std::string& sep = AsStr(*sep_v, "separator").text();
  if (sep.empty()) Fail("ValueError: empty separator");
  std::vector<size_t> hits;
  if (!from_right) {
    size_t pos = 0;
    while (maxsplit < 0 || static_cast<int64_t>(hits.size()) < maxsplit) {
      size_t f = t.find(sep, pos);
      if (f == std::string::npos) break;
      hits.push_back(f);
      pos = f + sep.size();
    }
  } else {
    size_t end = t.size();
    while (maxsplit < 0 || static_cast<int64_t>(hits.size()) < maxsplit) {
      if (end < sep.size()) break;
      size_t f = t.rfind(sep, end - sep.size());
      if (f == std::string::npos) break;
      hits.push_back(f);
      end = f;
    }
    std::reverse(hits.begin(), hits.end());
  }
  size_t prev = 0;
  for (size_t h : hits) {
    parts.push_back(s.Slice(prev, h));
    prev = h + sep.size();
  }
  parts.push_back(s.Slice(prev, t.size()));
  return parts;
}

std::vector<LabelledString> SplitLines(const LabelledString& s, bool keepends) {
  const std::string& t = s.text();
  std::vector<LabelledString> lines;
  size_t start = 0, pos = 0;
  while (pos < t.size()) {
    size_t len;
    uint32_t cp = DecodeUtf8(t, pos, &len);
    if (IsPyLineBreak(cp)) {
      size_t eol = pos + len;
      if (cp == '\r' && eol < t.size() && t[eol] == '\n') ++eol;
      lines.push_back(s.Slice(start, keepends ? eol : pos));
      start = pos = eol;
    } else {
      pos += len;
    }
  }
  if (start < t.size()) lines.push_back(s.Slice(start, t.size()));
  return lines;
}

LabelledString Replace(const LabelledString& s, const LabelledString& old, const LabelledString& rep, int64_t count) {
  const std::string& t = s.text();
  LabelledString out;
  if (old.empty()) {
    auto offs = CodePointOffsets(t);
    int64_t done = 0;
    for (size_t i = 0; i + 1 < offs.size() || i == 0; ++i) {
      if (count < 0 || done < count) {
        out.Append(rep);
        ++done;
      }
      if (i + 1 < offs.size()) out.AppendSlice(s, offs[i], offs[i + 1]);
      if (i + 1 >= offs.size()) break;
    }
    if (offs.size() > 1 && (count < 0 || done < count)) out.Append(rep);
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t f = t.find(old.text(), pos);
    if (f == std::string::npos) break;
    out.AppendSlice(s, pos, f);
    out.Append(rep);
    pos = f + old.size();
    ++done;
  }
  out.AppendSlice(s, pos, t.size());
  return out;
}

LabelledString Join(const LabelledString& sep, const std::vector<Value>& items, bool soft) {
  LabelledString out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out.Append(sep);
    if (!soft && !items[i].is_string()) {
      Fail(StrFormat("TypeError: sequence item %zu: expected str instance, %s found", i, TypeName(items[i]).c_str()));
    }
    out.Append(PyStr(items[i]));
  }
  return out;
}

LabelledString Pad(const LabelledString& s, int64_t width, const LabelledString& fill, int mode /*0 center,1 ljust,2 rjust*/) {
  int64_t n = static_cast<int64_t>(CodePointCount(s.text()));
  if (width <= n) return s;
  int64_t total = width - n;
  int64_t left = 0;
  if (mode == 0) left = total / 2 + ((total & width & 1) ? 1 : 0);
  if (mode == 2) left = total;
  int64_t right = total - left;
  LabelledString out;
  for (int64_t i = 0; i < left; ++i) out.Append(fill);
  out.Append(s);
  for (int64_t i = 0; i < right; ++i) out.Append(fill);
  return out;
}

// Byte offset -> code point index.
int64_t CpIndex(const std::string& t, size_t byte) {
  return static_cast<int64_t>(CodePointCount(std::string_view(t).substr(0, byte)));
}

// str.format with automatic/explicit positional and keyword fields, `!s`,
// `!r`, and no format spec.
LabelledString StrFormatMethod(Interp& in, const LabelledString& fmt, CallArgs& args) {
  const std::string& t = fmt.text();
  LabelledString out;
  size_t auto_index = 0;
  size_t i = 0;
  while (i < t.size()) {
    char c = t[i];
    if (c == '{' && i + 1 < t.size() && t[i + 1] == '{') {
      out.AppendSlice(fmt, i, i + 1);
      i += 2;
      continue;
    }
    if (c == '}' && i + 1 < t.size() && t[i + 1] == '}') {
      out.AppendSlice(fmt, i, i + 1);
      i += 2;
      continue;
    }
    if (c == '}') Fail("ValueError: Single '}' encountered in format string");
    if (c != '{') {
      out.AppendSlice(fmt, i, i + 1);
      ++i;
      continue;
    }
    size_t close = t.find('}', i);
    if (close == std::string::npos) Fail("ValueError: Single '{' encountered in format string");
    std::string field = t.substr(i + 1, close - i - 1);
    i = close + 1;
    char conv = 0;
    size_t bang = field.find('!');
    size_t colon = field.find(':');
    if (colon != std::string::npos && (bang == std::string::npos || colon < bang)) {
      if (colon + 1 < field.size()) Unsupported("format specs in str.format()");
      field = field.substr(0, colon);
    }
    if (bang != std::string::npos && bang < field.size()) {
      if (bang + 2 != field.size() || (field[bang + 1] != 's' && field[bang + 1] != 'r')) {
        Unsupported("this conversion in str.format()");
      }
      conv = field[bang + 1];
      field = field.substr(0, bang);
    }
    if (field.find_first_of(".[") != std::string::npos) Unsupported("attribute access in str.format() fields");
    Value v;
    if (field.empty()) {
      if (auto_index >= args.pos.size()) Fail("IndexError: Replacement index " + std::to_string(auto_index) + " out of range for positional args tuple");
      v = args.pos[auto_index++];
    } else if (isdigit(static_cast<unsigned char>(field[0]))) {
      size_t k = static_cast<size_t>(atoll(field.c_str()));
      if (k >= args.pos.size()) Fail("IndexError: Replacement index " + field + " out of range for positional args tuple");
      v = args.pos[k];
    } else {
      bool found = false;
      for (auto& kw : args.kw) {
        if (kw.first == field) {
          v = kw.second;
          found = true;
        }
      }
      if (!found) Fail("KeyError: '" + field + "'");
    }
    out.Append(conv == 'r' ? PyRepr(v) : PyStr(v));
    in.CheckSize(out.size());
  }
  return out;
}

bool StartsEnds(const LabelledString& s, const Value& arg, bool ends, const char* name) {
  std::vector<Value> cands;
  if (arg.kind() == Kind::kTuple) {
    cands = arg.items();
  } else if (arg.is_string()) {
    cands.push_back(arg);
  } else {
    Fail(std::string("TypeError: ") + name + " first arg must be str or a tuple of str, not " + TypeName(arg));
  }
  const std::string& t = s.text();
  for (const auto& c : cands) {
    const std::string& p = AsStr(c, "tuple item").text();
    if (p.size() > t.size()) continue;
    if (ends ? t.compare(t.size() - p.size(), p.size(), p) == 0 : t.compare(0, p.size(), p) == 0) return true;
  }
  return false;
}

bool AllChars(const std::string& t, const std::function<bool(uint32_t)>& f) {
  if (t.empty()) return false;
  size_t pos = 0;
  while (pos < t.size()) {
    size_t len;
    if (!f(DecodeUtf8(t, pos, &len))) return false;
    pos += len;
  }
  return true;
}

bool CasedCheck(const std::string& t, bool upper) {
  bool any = false;
  size_t pos = 0;
  while (pos < t.size()) {
    size_t len;
    uint32_t cp = DecodeUtf8(t, pos, &len);
    pos += len;
    if (!IsCased(cp)) continue;
    bool is_upper = PyLower(cp) != cp;
    if (is_upper != upper) return false;
    any = true;
  }
  return any;
}

// ---------------------------------------------------------------------------
// Methods (bound to their receiver)

struct BoundMethod : CallableObj {
  Value self;
  Value Call(Interp& in, CallArgs& args) override;
};

const std::set<std::string>& StrMethods() {
  static const std::set<std::string> m = {
      "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "startswith", "endswith", "upper", "lower",
      "title", "capitalize", "swapcase", "replace", "find", "rfind", "index", "rindex", "count", "join", "format",
      "isdigit", "isalpha", "isalnum", "isspace", "islower", "isupper", "isdecimal", "isnumeric", "center", "ljust",
      "rjust", "zfill", "removeprefix", "removesuffix", "partition", "rpartition", "casefold"};
  return m;
}
const std::set<std::string>& StrMethodsUnsupported() {
  static const std::set<std::string> m = {"encode", "expandtabs", "format_map", "isascii", "isidentifier",
                                          "isprintable", "istitle", "maketrans", "translate"};
  return m;
}
const std::set<std::string>& DictMethods() {
  static const std::set<std::string> m = {"get", "items", "keys", "values", "copy"};
  return m;
}
const std::set<std::string>& DictUnsafe() {
  static const std::set<std::string> m = {"clear", "pop", "popitem", "setdefault", "update"};
  return m;
}
const std::set<std::string>& ListMethods() {
  static const std::set<std::string> m = {"index", "count", "copy"};
  return m;
}
const std::set<std::string>& ListUnsafe() {
  static const std::set<std::string> m = {"append", "clear", "pop", "reverse", "insert", "sort", "extend", "remove"};
  return m;
}

Value CallStrMethod(Interp& in, const Value& self, const std::string& name, CallArgs& args) {
  const LabelledString& s = self.string_value();
  const std::string& t = s.text();
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    Args a = Bind(name, args, {"chars"});
    return Value::String(Strip(s, StripSet(a[0]), name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    Args a = Bind(name, args, {"sep", "maxsplit"});
    std::vector<Value> out;
    for (auto& p : Split(s, a[0], a[1] ? AsInt(*a[1], "maxsplit") : -1, name == "rsplit")) out.push_back(Value::String(std::move(p)));
    return Value::List(std::move(out));
  }
  if (name == "splitlines") {
    Args a = Bind(name, args, {"keepends"});
    std::vector<Value> out;
    for (auto& p : SplitLines(s, a[0] && Truthy(*a[0]))) out.push_back(Value::String(std::move(p)));
    return Value::List(std::move(out));
  }
  if (name == "startswith" || name == "endswith") {
    if (args.pos.size() != 1 || !args.kw.empty()) Unsupported(name + "() with start/end arguments");
    return Value::Bool(StartsEnds(s, args.pos[0], name == "endswith", name.c_str()));
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize" || name == "swapcase" ||
      name == "casefold") {
    Bind(name, args, {});
    if (name == "upper") return Value::String(Upper(s));
    if (name == "lower" || name == "casefold") return Value::String(Lower(s));
    if (name == "title") return Value::String(PyTitle(s));
    if (name == "capitalize") return Value::String(Capitalize(s));
    return Value::String(SwapCase(s));
  }
  if (name == "replace") {
    Args a = Bind(name, args, {"old", "new", "count"});
    if (!a[0] || !a[1]) Fail("TypeError: replace() takes at least 2 arguments");
    LabelledString r = Replace(s, AsStr(*a[0], "replace() argument 1"), AsStr(*a[1], "replace() argument 2"),
                               a[2] ? AsInt(*a[2], "count") : -1);
    in.CheckSize(r.size());
    return Value::String(std::move(r));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    if (args.pos.size() != 1 || !args.kw.empty()) Unsupported(name + "() with start/end arguments");
    const std::string& sub = AsStr(args.pos[0], "argument").text();
    if (name == "count") {
      if (sub.empty()) return Value::Int(static_cast<int64_t>(CodePointCount(t)) + 1);
      int64_t n = 0;
      for (size_t p = t.find(sub); p != std::string::npos; p = t.find(sub, p + sub.size())) ++n;
      return Value::Int(n);
    }
    size_t p = (name[0] == 'r') ? t.rfind(sub) : t.find(sub);
    if (p == std::string::npos) {
      if (name == "index" || name == "rindex") Fail("ValueError: substring not found");
      return Value::Int(-1);
    }
    return Value::Int(CpIndex(t, p));
  }
  if (name == "join") {
    Args a = Bind(name, args, {"iterable"});
    if (!a[0]) Fail("TypeError: join() takes exactly one argument (0 given)");
    LabelledString r = Join(s, Iterate(*a[0]), false);
    in.CheckSize(r.size());
    return Value::String(std::move(r));
  }
  if (name == "format") return Value::String(StrFormatMethod(in, s, args));
  if (name == "isdigit" || name == "isdecimal" || name == "isnumeric") return Value::Bool(AllChars(t, IsDigit));
  if (name == "isalpha") return Value::Bool(AllChars(t, IsAlpha));
  if (name == "isalnum") return Value::Bool(AllChars(t, [](uint32_t c) { return IsAlpha(c) || IsDigit(c); }));
  if (name == "isspace") return Value::Bool(AllChars(t, IsPyWhitespace));
  if (name == "islower") return Value::Bool(CasedCheck(t, false));
  if (name == "isupper") return Value::Bool(CasedCheck(t, true));
  if (name == "center" || name == "ljust" || name == "rjust") {
    Args a = Bind(name, args, {"width", "fillchar"});
    if (!a[0]) Fail("TypeError: " + name + "() takes at least 1 argument (0 given)");
    LabelledString fill = a[1] ? AsStr(*a[1], "fillchar") : LabelledString(" ");
    if (CodePointCount(fill.text()) != 1) Fail("TypeError: The fill character must be exactly one character long");
    int64_t w = AsInt(*a[0], "width");
    in.CheckSize(SaturatingMul(static_cast<size_t>(std::max<int64_t>(w, 0)), fill.size()));
    return Value::String(Pad(s, w, fill, name == "center" ? 0 : name == "ljust" ? 1 : 2));
  }
  if (name == "zfill") {
    Args a = Bind(name, args, {"width"});
    if (!a[0]) Fail("TypeError: zfill() takes exactly one argument (0 given)");
    int64_t w = AsInt(*a[0], "width");
    int64_t n = static_cast<int64_t>(CodePointCount(t));
    if (w <= n) return self;
    in.CheckSize(static_cast<size_t>(w));
    LabelledString out;
    size_t sign = (!t.empty() && (t[0] == '+' || t[0] == '-')) ? 1 : 0;
    out.AppendSlice(s, 0, sign);
    out.Append(std::string(static_cast<size_t>(w - n), '0'), 0);
    out.AppendSlice(s, sign, t.size());
    return Value::String(std::move(out));
  }
  if (name == "removeprefix" || name == "removesuffix") {
    Args a = Bind(name, args, {"affix"});
    if (!a[0]) Fail("TypeError: " + name + "() takes exactly one argument (0 given)");
    const std::string& x = AsStr(*a[0], "argument").text();
    if (name == "removeprefix" && t.compare(0, x.size(), x) == 0 && x.size() <= t.size()) {
      return Value::String(s.Slice(x.size(), t.size()));
    }
    if (name == "removesuffix" && !x.empty() && x.size() <= t.size() && t.compare(t.size() - x.size(), x.size(), x) == 0) {
      return Value::String(s.Slice(0, t.size() - x.size()));
    }
    return self;
  }
  if (name == "partition" || name == "rpartition") {
    Args a = Bind(name, args, {"sep"});
    if (!a[0]) Fail("TypeError: " + name + "() takes exactly one argument (0 given)");
    const std::string& sep = AsStr(*a[0], "argument").text();
    if (sep.empty()) Fail("ValueError: empty separator");
    size_t p = name == "partition" ? t.find(sep) : t.rfind(sep);
    if (p == std::string::npos) {
      if (name == "partition") return Value::Tuple({self, Value::String(""), Value::String("")});
      return Value::Tuple({Value::String(""), Value::String(""), self});
    }
    return Value::Tuple({Value::String(s.Slice(0, p)), Value::String(s.Slice(p, p + sep.size())),
                         Value::String(s.Slice(p + sep.size(), t.size()))});
  }
  Unsupported("str." + name + "()");
}

Value CallDictMethod(const Value& self, const std::string& name, CallArgs& args) {
  if (name == "get") {
    Args a = Bind(name, args, {"key", "default"});
    if (!a[0]) Fail("TypeError: get expected at least 1 argument, got 0");
    for (const auto& e : self.entries()) {
      if (PyEq(e.first, *a[0])) return e.second;
    }
    return Or(a[1], Value::None());
  }
  Bind(name, args, {});
  if (name == "items") {
    std::vector<Value> out;
    for (const auto& e : self.entries()) out.push_back(Value::Tuple({e.first, e.second}));
    return Value::List(std::move(out));
  }
  if (name == "keys" || name == "values") {
    std::vector<Value> out;
    for (const auto& e : self.entries()) out.push_back(name == "keys" ? e.first : e.second);
    return Value::List(std::move(out));
  }
  if (name == "copy") return self;
  Unsupported("dict." + name + "()");
}

Value CallListMethod(const Value& self, const std::string& name, CallArgs& args) {
  if (name == "copy") {
    Bind(name, args, {});
    return Value::List(self.items());
  }
  if (args.pos.size() != 1 || !args.kw.empty()) Unsupported(TypeName(self) + "." + name + "() with these arguments");
  const auto& items = self.items();
  if (name == "count") {
    int64_t n = 0;
    for (const auto& v : items) n += PyEq(v, args.pos[0]) ? 1 : 0;
    return Value::Int(n);
  }
  for (size_t i = 0; i < items.size(); ++i) {
    if (PyEq(items[i], args.pos[0])) return Value::Int(static_cast<int64_t>(i));
  }
  Fail("ValueError: " + PyRepr(args.pos[0]).text() + " is not in " + TypeName(self));
}

Value BoundMethod::Call(Interp& in, CallArgs& args) {
  switch (self.kind()) {
    case Kind::kString: return CallStrMethod(in, self, name, args);
    case Kind::kDict: return CallDictMethod(self, name, args);
    default: return CallListMethod(self, name, args);
  }
}

// ---------------------------------------------------------------------------
// Globals

struct Builtin : CallableObj {
  std::function<Value(Interp&, CallArgs&)> fn;
  Value Call(Interp& in, CallArgs& args) override { return fn(in, args); }
};

Value MakeBuiltin(const std::string& name, std::function<Value(Interp&, CallArgs&)> fn) {
  auto b = std::make_shared<Builtin>();
  b->name = name;
  b->fn = std::move(fn);
  return Value::FromObject(Kind::kCallable, b);
}

Value RangeFn(Interp& in, CallArgs& args) {
  if (!args.kw.empty()) Fail("TypeError: range() takes no keyword arguments");
  if (args.pos.empty() || args.pos.size() > 3) Fail("TypeError: range expected at least 1 argument");
  int64_t start = 0, stop, step = 1;
  if (args.pos.size() == 1) {
    stop = AsInt(args.pos[0], "range() argument");
  } else {
    start = AsInt(args.pos[0], "range() argument");
    stop = AsInt(args.pos[1], "range() argument");
    if (args.pos.size() == 3) step = AsInt(args.pos[2], "range() argument");
  }
  if (step == 0) Fail("ValueError: range() arg 3 must not be zero");
  std::vector<Value> out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
    if (out.size() >= 100000) {
      Fail("OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    }
    out.push_back(Value::Int(i));
    if (__builtin_add_overflow(i, step, &i)) break;  // past int64: past stop too
  }
  in.CountIterations(0);
  return Value::List(std::move(out));
}

Value NamespaceFn(Interp& in, CallArgs& args) {
  auto ns = std::make_shared<NamespaceObj>();
  in.Track(ns);
  auto set = [&](const std::string& k, const Value& v) {
    if (Value* slot = ns->Find(k)) {
      *slot = v;
    } else {
      ns->attrs.emplace_back(k, v);
    }
  };
  if (args.pos.size() > 1) Fail("TypeError: namespace expected at most 1 positional argument");
  if (!args.pos.empty()) {
    const Value& init = args.pos[0];
    if (init.is_dict()) {
      for (const auto& e : init.entries()) set(PyStr(e.first).text(), e.second);
    } else {
      for (const auto& item : Iterate(init)) {
        std::vector<Value> kv = Iterate(item);
        if (kv.size() != 2) Fail("ValueError: dictionary update sequence element has wrong length");
        set(PyStr(kv[0]).text(), kv[1]);
      }
    }
  }
  for (auto& kw : args.kw) set(kw.first, kw.second);
  return Value::FromObject(Kind::kNamespace, ns);
}

Value DictFn(Interp&, CallArgs& args) {
  Value d = Value::Dict();
  if (args.pos.size() > 1) Fail("TypeError: dict expected at most 1 argument");
  if (!args.pos.empty()) {
    if (args.pos[0].is_dict()) {
      d = Value::Dict();
      for (const auto& e : args.pos[0].entries()) d.Insert(e.first, e.second);
    } else {
      for (const auto& item : Iterate(args.pos[0])) {
        std::vector<Value> kv = Iterate(item);
        if (kv.size() != 2) Fail("ValueError: dictionary update sequence element has wrong length");
        d.Insert(kv[0], kv[1]);
      }
    }
  }
  for (auto& kw : args.kw) d.Insert(kw.first, kw.second);
  return d;
}

Value RaiseException(Interp&, CallArgs& args) {
  std::string msg = args.pos.empty() ? std::string() : PyStr(args.pos[0]).text();
  Fail("chat template raised: " + msg);
}

Value StrftimeNow(Interp& in, CallArgs& args) {
  Args a = Bind("strftime_now", args, {"format"});
  if (!a[0]) Fail("TypeError: strftime_now() missing 1 required positional argument: 'format'");
  const std::string& fmt = AsStr(*a[0], "format").text();
  time_t now = in.options().now_unix_seconds >= 0 ? static_cast<time_t>(in.options().now_unix_seconds) : time(nullptr);
  struct tm tm_local;
  localtime_r(&now, &tm_local);
  if (fmt.empty()) return Value::String("");
  std::vector<char> buf(256 + fmt.size() * 8);
  size_t n = strftime(buf.data(), buf.size(), fmt.c_str(), &tm_local);
  return Value::String(std::string(buf.data(), n));
}

// ---------------------------------------------------------------------------
// Filters

const std::set<std::string>& SupportedFilters() {
  static const std::set<std::string> f = {
      "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
      "first", "float", "forceescape", "format", "indent", "int", "items", "join", "last", "length", "list",
      "lower", "map", "max", "min", "reject", "rejectattr", "replace", "reverse", "round", "safe", "select",
      "selectattr", "sort", "string", "sum", "title", "tojson", "trim", "unique", "upper", "wordcount"};
  return f;
}
const std::set<std::string>& UnsupportedFilters() {
  static const std::set<std::string> f = {"filesizeformat", "groupby", "pprint", "random", "slice", "striptags",
                                          "truncate", "urlencode", "urlize", "wordwrap", "xmlattr"};
  return f;
}
const std::set<std::string>& SupportedTests() {
  static const std::set<std::string> t = {
      "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "escaped", "even", "false", "filter",
      "float", "ge", "gt", "greaterthan", "in", "integer", "iterable", "le", "lower", "lessthan", "lt", "mapping",
      "ne", "none", "number", "odd", "sameas", "sequence", "string", "test", "true", "undefined", "upper", "==",
      "!=", "<", "<=", ">", ">="};
  return t;
}

// environment.getitem along a dotted attribute path ("a.b", "0").
Value AttrPath(Interp& in, Value item, const Value& attribute, const std::optional<Value>& def = std::nullopt) {
  std::vector<Value> parts;
  if (attribute.is_string()) {
    const std::string& a = attribute.string_value().text();
    size_t start = 0;
    while (true) {
      size_t dot = a.find('.', start);
      std::string p = a.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      bool digits = !p.empty() && std::all_of(p.begin(), p.end(), [](char c) { return isdigit(static_cast<unsigned char>(c)); });
      parts.push_back(digits ? Value::Int(atoll(p.c_str())) : Value::String(p));
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
  } else if (!attribute.is_none()) {
    parts.push_back(attribute);
  }
  for (const auto& p : parts) {
    item = in.GetItem(item, p);
    if (def && !def->is_none() && item.is_undefined()) item = *def;
  }
  return item;
}

Value IgnoreCase(const Value& v) {
  if (v.is_string()) return Value::String(Lower(v.string_value()));
  return v;
}

LabelledString SoftStr(const Value& v) { return PyStr(v); }

LabelledString Indent(const LabelledString& s_in, const Value& width, bool first, bool blank) {
  LabelledString indention;
  if (width.is_string()) {
    indention = width.string_value();
  } else {
    indention = LabelledString(std::string(static_cast<size_t>(std::max<int64_t>(0, AsInt(width, "width"))), ' '));
  }
  LabelledString s = s_in;
  s.Append("\n", 0);
  std::vector<LabelledString> lines = SplitLines(s, false);
  LabelledString rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i) {
        rv.Append("\n", 0);
        rv.Append(indention);
      }
      rv.Append(lines[i]);
    }
  } else {
    rv = lines.empty() ? LabelledString() : lines[0];
    for (size_t i = 1; i < lines.size(); ++i) {
      rv.Append("\n", 0);
      if (!lines[i].empty()) rv.Append(indention);
      rv.Append(lines[i]);
    }
  }
  if (first) {
    LabelledString out = indention;
    out.Append(rv);
    return out;
  }
  return rv;
}

double PyRound(double x, int64_t ndigits) {
  if (!std::isfinite(x)) return x;
  if (ndigits > 300) return x;
  if (ndigits < -300) return 0.0 * x;
  char buf[512];
  if (ndigits >= 0) {
    snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(ndigits), x);
    return strtod(buf, nullptr);
  }
  double p = std::pow(10.0, static_cast<double>(-ndigits));
  double y = x / p;
  snprintf(buf, sizeof(buf), "%.0f", y);
  return strtod(buf, nullptr) * p;
}

bool ParsePyInt(std::string s, int base, int64_t* out) {
  // int(str, base): surrounding whitespace, sign, underscores between digits.
  size_t b = 0, e = s.size();
  while (b < e && isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  s = s.substr(b, e - b);
  if (s.empty()) return false;
  bool neg = false;
  size_t i = 0;
  if (s[0] == '+' || s[0] == '-') {
    neg = s[0] == '-';
    ++i;
  }
  if ((base == 16 || base == 8 || base == 2 || base == 0) && i + 1 < s.size() && s[i] == '0' && isalpha(static_cast<unsigned char>(s[i + 1]))) {
    char p = static_cast<char>(tolower(s[i + 1]));
    int pb = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
    if (pb && (base == 0 || base == pb)) {
      base = pb;
      i += 2;
      if (i < s.size() && s[i] == '_') ++i;
    }
  }
  if (base == 0) base = 10;
  std::string digits;
  for (; i < s.size(); ++i) {
    char c = s[i];
    if (c == '_' && !digits.empty() && i + 1 < s.size() && s[i + 1] != '_') continue;
    int d = isdigit(static_cast<unsigned char>(c)) ? c - '0' : isalpha(static_cast<unsigned char>(c)) ? tolower(c) - 'a' + 10 : 99;
    if (d >= base) return false;
    digits.push_back(c);
  }
  if (digits.empty()) return false;
  errno = 0;
  unsigned long long v = strtoull(digits.c_str(), nullptr, base);
  if (errno == ERANGE || v > static_cast<unsigned long long>(INT64_MAX)) return false;
  *out = neg ? -static_cast<int64_t>(v) : static_cast<int64_t>(v);
  return true;
}

bool ParsePyFloat(std::string s, double* out) {
  size_t b = 0, e = s.size();
  while (b < e && isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  s = s.substr(b, e - b);
  std::string clean;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_') {
      if (i == 0 || i + 1 >= s.size() || !isdigit(static_cast<unsigned char>(s[i - 1])) || !isdigit(static_cast<unsigned char>(s[i + 1]))) return false;
      continue;
    }
    clean.push_back(s[i]);
  }
  if (clean.empty()) return false;
  std::string low;
  for (char c : clean) low.push_back(static_cast<char>(tolower(c)));
  size_t k = (low[0] == '+' || low[0] == '-') ? 1 : 0;
  std::string body = low.substr(k);
  if (body == "inf" || body == "infinity" || body == "nan") {
    double v = body == "nan" ? NAN : INFINITY;
    *out = low[0] == '-' ? -v : v;
    return true;
  }
  for (char c : body) {
    if (!(isdigit(static_cast<unsigned char>(c)) || c == '.' || c == 'e' || c == '+' || c == '-')) return false;
  }
  char* end = nullptr;
  *out = strtod(clean.c_str(), &end);
  return end && *end == 0;
}

std::vector<Value> SortValues(Interp& in, std::vector<Value> items, bool reverse, bool case_sensitive,
                              const std::optional<Value>& attribute) {
  // Keys: lists of attribute values (make_multi_attrgetter) or the items.
  std::vector<std::vector<Value>> keys;
  std::vector<Value> attrs;
  if (attribute && !attribute->is_none()) {
    if (attribute->is_string()) {
      for (auto& p : Split(attribute->string_value(), Value::String(","), -1, false)) attrs.push_back(Value::String(p));
    } else {
      attrs.push_back(*attribute);
    }
  }
  for (const auto& item : items) {
    std::vector<Value> k;
    if (attrs.empty()) {
      k.push_back(case_sensitive ? item : IgnoreCase(item));
    } else {
      for (const auto& a : attrs) {
        Value v = AttrPath(in, item, a);
        k.push_back(case_sensitive ? v : IgnoreCase(v));
      }
    }
    keys.push_back(std::move(k));
  }
  std::vector<size_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto less = [&](size_t a, size_t b) {
    const auto& x = keys[a];
    const auto& y = keys[b];
    for (size_t i = 0; i < x.size(); ++i) {
      if (!PyEq(x[i], y[i])) return PyLess(x[i], y[i]);
    }
    return false;
  };
  if (reverse) {
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return less(b, a); });
  } else {
    std::stable_sort(order.begin(), order.end(), less);
  }
  std::vector<Value> out;
  for (size_t i : order) out.push_back(items[i]);
  return out;
}

Value MinMax(Interp& in, const Value& input, CallArgs& args, bool max) {
  Args a = Bind(max ? "do_max" : "do_min", args, {"case_sensitive", "attribute"});
  std::vector<Value> items = Iterate(input);
  if (items.empty()) return Value::UndefinedWith("No aggregated item, sequence was empty.");
  bool cs = a[0] && Truthy(*a[0]);
  size_t best = 0;
  auto key = [&](size_t i) {
    Value v = a[1] && !a[1]->is_none() ? AttrPath(in, items[i], *a[1]) : items[i];
    return cs ? v : IgnoreCase(v);
  };
  Value best_key = key(0);
  for (size_t i = 1; i < items.size(); ++i) {
    Value k = key(i);
    if (max ? PyLess(best_key, k) : PyLess(k, best_key)) {
      best = i;
      best_key = k;
    }
  }
  return items[best];
}

Value SelectReject(Interp& in, const Value& input, CallArgs& args, bool select, bool attr) {
  std::vector<Value> out;
  if (!Truthy(input)) return Value::IteratorOf({});
  std::vector<Value> items = Iterate(input);
  size_t off = 0;
  Value attribute;
  if (attr) {
    if (args.pos.empty()) Fail("FilterArgumentError: Missing parameter for attribute name");
    attribute = args.pos[0];
    off = 1;
  }
  bool has_test = args.pos.size() > off;
  std::string test = has_test ? AsStr(args.pos[off], "test name").text() : std::string();
  CallArgs targs;
  for (size_t i = off + 1; i < args.pos.size(); ++i) targs.pos.push_back(args.pos[i]);
  targs.kw = args.kw;
  if (has_test && !SupportedTests().count(test)) Fail("No test named '" + test + "'.");
  for (const auto& item : items) {
    Value v = attr ? AttrPath(in, item, attribute) : item;
    bool r;
    if (has_test) {
      CallArgs copy = targs;
      r = ApplyTest(in, test, v, copy);
    } else {
      r = Truthy(v);
    }
    if (r == select) out.push_back(item);
  }
  return Value::IteratorOf(std::move(out));
}

LabelledString HtmlEscape(const LabelledString& s) {
  return MapChars(s, [](uint32_t c, size_t) -> std::string {
    switch (c) {
      case '&': return "&amp;";
      case '<': return "&lt;";
      case '>': return "&gt;";
      case '"': return "&#34;";
      case '\'': return "&#39;";
      default: return Cp(c);
    }
  });
}

}  // namespace

bool IsKnownFilter(const std::string& name) {
  return SupportedFilters().count(name) > 0 || UnsupportedFilters().count(name) > 0;
}
bool IsKnownTest(const std::string& name) { return SupportedTests().count(name) > 0; }

Value GetMethod(const Value& obj, const std::string& name, bool* found) {
  *found = false;
  bool unsafe = false;
  switch (obj.kind()) {
    case Kind::kString:
      if (StrMethodsUnsupported().count(name)) Unsupported("str." + name + "()");
      *found = StrMethods().count(name) > 0;
      break;
    case Kind::kDict:
      if (name == "fromkeys") Unsupported("dict.fromkeys()");
      *found = DictMethods().count(name) > 0;
      unsafe = DictUnsafe().count(name) > 0;
      break;
    case Kind::kList:
    case Kind::kTuple:
      *found = ListMethods().count(name) > 0 && !(obj.kind() == Kind::kTuple && name == "copy");
      unsafe = obj.kind() == Kind::kList && ListUnsafe().count(name) > 0;
      break;
    default: break;
  }
  if (unsafe) {
    *found = true;
    return Value::UndefinedWith("access to attribute '" + name + "' of '" + TypeName(obj) + "' object is unsafe.", true);
  }
  if (!*found) return Value();
  auto m = std::make_shared<BoundMethod>();
  m->name = name;
  m->self = obj;
  return Value::FromObject(Kind::kCallable, m);
}

const std::vector<std::string>& GlobalNames() {
  static const std::vector<std::string> names = {"range",    "dict",   "namespace", "raise_exception",
                                                 "strftime_now", "lipsum", "cycler",    "joiner"};
  return names;
}

Value MakeGlobal(const std::string& name) {
  if (name == "range") return MakeBuiltin(name, RangeFn);
  if (name == "dict") return MakeBuiltin(name, DictFn);
  if (name == "namespace") return MakeBuiltin(name, NamespaceFn);
  if (name == "raise_exception") return MakeBuiltin(name, RaiseException);
  if (name == "strftime_now") return MakeBuiltin(name, StrftimeNow);
  if (name == "lipsum" || name == "cycler" || name == "joiner") {
    return MakeBuiltin(name, [name](Interp&, CallArgs&) -> Value { Unsupported("the global '" + name + "'"); });
  }
  return Value();
}

Value ApplyFilter(Interp& in, const std::string& name, const Value& input, CallArgs& args) {
  if (UnsupportedFilters().count(name)) Unsupported("the filter '" + name + "'");
  if (name == "default" || name == "d") {
    Args a = Bind("do_default", args, {"default_value", "boolean"});
    bool boolean = a[1] && Truthy(*a[1]);
    if (input.is_undefined() || (boolean && !Truthy(input))) return Or(a[0], Value::String(""));
    return input;
  }
  if (name == "trim") {
    Args a = Bind("do_trim", args, {"chars"});
    return Value::String(Strip(SoftStr(input), StripSet(a[0]), true, true));
  }
  if (name == "length" || name == "count") {
    Bind(name, args, {});
    return Value::Int(PyLen(input));
  }
  if (name == "upper" || name == "lower" || name == "capitalize" || name == "title") {
    Bind("do_" + name, args, {});
    LabelledString s = SoftStr(input);
    if (name == "upper") return Value::String(Upper(s));
    if (name == "lower") return Value::String(Lower(s));
    if (name == "capitalize") return Value::String(Capitalize(s));
    return Value::String(JinjaTitle(s));
  }
  if (name == "string") {
    Bind(name, args, {});
    return Value::String(SoftStr(input));
  }
  if (name == "safe" || name == "forceescape" || name == "escape" || name == "e") {
    Bind(name, args, {});
    if (name == "safe") return input.is_string() ? input : Value::String(SoftStr(input));
    return Value::String(HtmlEscape(SoftStr(input)));
  }
  if (name == "tojson") {
    Args a = Bind("tojson", args, {"ensure_ascii", "indent", "separators", "sort_keys"});
    JsonOptions o;
    o.ensure_ascii = a[0] && Truthy(*a[0]);
    if (a[1] && !a[1]->is_none()) {
      o.has_indent = true;
      if (a[1]->is_string()) {
        o.indent = a[1]->string_value().text();
      } else {
        // Cut to one byte past the output limit, as for the indent filter.
        const int64_t max_width = static_cast<int64_t>(std::min<size_t>(in.options().max_output_bytes, INT64_MAX - 1)) + 1;
        o.indent = std::string(static_cast<size_t>(std::clamp<int64_t>(AsInt(*a[1], "indent"), 0, max_width)), ' ');
      }
      o.item_sep = ",";
    }
    if (a[2] && !a[2]->is_none()) {
      std::vector<Value> seps = Iterate(*a[2]);
      if (seps.size() != 2) Fail("ValueError: separators must be a (item_separator, key_separator) pair");
      o.item_sep = AsStr(seps[0], "separator").text();
      o.key_sep = AsStr(seps[1], "separator").text();
    }
    o.sort_keys = a[3] && Truthy(*a[3]);
    LabelledString out;
    ToJson(input, o, 0, &out);
    in.CheckSize(out.size());
    return Value::String(std::move(out));
  }
  if (name == "join") {
    Args a = Bind("do_join", args, {"d", "attribute"});
    std::vector<Value> items = Iterate(input);
    if (a[1] && !a[1]->is_none()) {
      for (auto& v : items) v = AttrPath(in, v, *a[1]);
    }
    LabelledString sep = a[0] ? PyStr(*a[0]) : LabelledString();
    LabelledString r = Join(sep, items, true);
    in.CheckSize(r.size());
    return Value::String(std::move(r));
  }
  if (name == "replace") {
    Args a = Bind("do_replace", args, {"old", "new", "count"});
    if (!a[0] || !a[1]) Fail("TypeError: do_replace() missing required arguments 'old' and 'new'");
    int64_t count = a[2] && !a[2]->is_none() ? AsInt(*a[2], "count") : -1;
    LabelledString r = Replace(SoftStr(input), PyStr(*a[0]), PyStr(*a[1]), count);
    in.CheckSize(r.size());
    return Value::String(std::move(r));
  }
  if (name == "first") {
    Bind("do_first", args, {});
    std::vector<Value> items = Iterate(input);
    if (items.empty()) return Value::UndefinedWith("No first item, sequence was empty.");
    return items.front();
  }
  if (name == "last") {
    Bind("do_last", args, {});
    if (input.kind() == Kind::kIterator) Fail("TypeError: 'generator' object is not reversible");
    std::vector<Value> items = Iterate(input);
    if (items.empty()) return Value::UndefinedWith("No last item, sequence was empty.");
    return items.back();
  }
  if (name == "list") {
    Bind("do_list", args, {});
    return Value::List(Iterate(input));
  }
  if (name == "items") {
    Bind("do_items", args, {});
    if (input.is_undefined()) return Value::IteratorOf({});
    if (!input.is_dict()) Fail("TypeError: Can only get item pairs from a mapping.");
    std::vector<Value> out;
    for (const auto& e : input.entries()) out.push_back(Value::Tuple({e.first, e.second}));
    return Value::IteratorOf(std::move(out));
  }
  if (name == "dictsort") {
    Args a = Bind("do_dictsort", args, {"case_sensitive", "by", "reverse"});
    if (!input.is_dict()) {
      CheckDefined(input);
      Fail("AttributeError: '" + TypeName(input) + "' object has no attribute 'items'");
    }
    std::string by = a[1] ? AsStr(*a[1], "by").text() : "key";
    if (by != "key" && by != "value") Fail("FilterArgumentError: You can only sort by either \"key\" or \"value\"");
    std::vector<Value> pairs;
    for (const auto& e : input.entries()) pairs.push_back(Value::Tuple({e.first, e.second}));
    return Value::List(SortValues(in, std::move(pairs), a[2] && Truthy(*a[2]), a[0] && Truthy(*a[0]),
                                  Value::Int(by == "key" ? 0 : 1)));
  }
  if (name == "sort") {
    Args a = Bind("do_sort", args, {"reverse", "case_sensitive", "attribute"});
    return Value::List(SortValues(in, Iterate(input), a[0] && Truthy(*a[0]), a[1] && Truthy(*a[1]), a[2]));
  }
  if (name == "unique") {
    Args a = Bind("do_unique", args, {"case_sensitive", "attribute"});
    bool cs = a[0] && Truthy(*a[0]);
    std::vector<Value> out, seen;
    for (const auto& item : Iterate(input)) {
      Value k = a[1] && !a[1]->is_none() ? AttrPath(in, item, *a[1]) : item;
      if (!cs) k = IgnoreCase(k);
      if (k.kind() == Kind::kList || k.kind() == Kind::kDict) Fail("TypeError: unhashable type: '" + TypeName(k) + "'");
      bool dup = false;
      for (const auto& s : seen) dup = dup || PyEq(s, k);
      if (!dup) {
        seen.push_back(k);
        out.push_back(item);
      }
    }
    return Value::IteratorOf(std::move(out));
  }
  if (name == "reverse") {
    Bind("do_reverse", args, {});
    if (input.is_string()) {
      const LabelledString& s = input.string_value();
      auto offs = CodePointOffsets(s.text());
      LabelledString out;
      for (size_t i = offs.size() - 1; i > 0; --i) out.AppendSlice(s, offs[i - 1], offs[i]);
      return Value::String(std::move(out));
    }
    std::vector<Value> items = Iterate(input);
    std::reverse(items.begin(), items.end());
    if (input.kind() == Kind::kIterator) return Value::List(std::move(items));
    return Value::IteratorOf(std::move(items));
  }
  if (name == "map") {
    std::vector<Value> items = Iterate(input);
    std::vector<Value> out;
    bool by_attr = args.pos.empty();
    for (auto& kw : args.kw) by_attr = by_attr && (kw.first == "attribute" || kw.first == "default");
    bool has_attr = false;
    for (auto& kw : args.kw) has_attr = has_attr || kw.first == "attribute";
    if (args.pos.empty() && has_attr) {
      Args a = Bind("map", args, {"attribute", "default"});
      for (const auto& item : items) out.push_back(AttrPath(in, item, *a[0], a[1] ? a[1] : std::optional<Value>(Value::None())));
    } else {
      if (args.pos.empty()) Fail("FilterArgumentError: map requires a filter argument");
      std::string f = AsStr(args.pos[0], "filter name").text();
      if (!IsKnownFilter(f)) Fail("No filter named '" + f + "'.");
      CallArgs fargs;
      fargs.pos.assign(args.pos.begin() + 1, args.pos.end());
      fargs.kw = args.kw;
      for (const auto& item : items) {
        CallArgs copy = fargs;
        out.push_back(ApplyFilter(in, f, item, copy));
      }
    }
    return Value::IteratorOf(std::move(out));
  }
  if (name == "select" || name == "reject") return SelectReject(in, input, args, name == "select", false);
  if (name == "selectattr" || name == "rejectattr") return SelectReject(in, input, args, name == "selectattr", true);
  if (name == "sum") {
    Args a = Bind("do_sum", args, {"attribute", "start"});
    Value acc = Or(a[1], Value::Int(0));
    for (const auto& item : Iterate(input)) {
      Value v = a[0] && !a[0]->is_none() ? AttrPath(in, item, *a[0]) : item;
      CheckDefined(v);
      bool num_acc = acc.kind() == Kind::kInt || acc.kind() == Kind::kBool || acc.kind() == Kind::kFloat;
      bool num_v = v.kind() == Kind::kInt || v.kind() == Kind::kBool || v.kind() == Kind::kFloat;
      if (!num_acc || !num_v) {
        if (acc.kind() == v.kind() && (acc.kind() == Kind::kList || acc.kind() == Kind::kTuple)) {
          std::vector<Value> items = acc.items();
          items.insert(items.end(), v.items().begin(), v.items().end());
          acc = acc.kind() == Kind::kList ? Value::List(std::move(items)) : Value::Tuple(std::move(items));
          continue;
        }
        if (acc.is_string() || v.is_string()) Fail("TypeError: unsupported operand type(s) for +: '" + TypeName(acc) + "' and '" + TypeName(v) + "'");
        Fail("TypeError: unsupported operand type(s) for +: '" + TypeName(acc) + "' and '" + TypeName(v) + "'");
      }
      if (acc.kind() == Kind::kFloat || v.kind() == Kind::kFloat) {
        acc = Value::Double(acc.double_value() + v.double_value());
      } else {
        int64_t r;
        if (__builtin_add_overflow(acc.int_value(), v.int_value(), &r)) Fail("integer overflow");
        acc = Value::Int(r);
      }
    }
    return acc;
  }
  if (name == "min" || name == "max") return MinMax(in, input, args, name == "max");
  if (name == "abs") {
    Bind("abs", args, {});
    CheckDefined(input);
    if (input.kind() == Kind::kInt || input.kind() == Kind::kBool) {
      if (input.int_value() == INT64_MIN) Fail("integer overflow");
      return Value::Int(std::llabs(input.int_value()));
    }
    if (input.kind() == Kind::kFloat) return Value::Double(std::fabs(input.double_value()));
    Fail("TypeError: bad operand type for abs(): '" + TypeName(input) + "'");
  }
  if (name == "int") {
    Args a = Bind("do_int", args, {"default", "base"});
    Value def = Or(a[0], Value::Int(0));
    int base = a[1] ? static_cast<int>(AsInt(*a[1], "base")) : 10;
    CheckDefined(input);
    int64_t r;
    double d;
    switch (input.kind()) {
      case Kind::kInt:
      case Kind::kBool: return Value::Int(input.int_value());
      case Kind::kFloat:
        if (!std::isfinite(input.double_value())) return def;
        return Value::Int(TruncToInt(input.double_value()));
      case Kind::kString:
        if (ParsePyInt(input.string_value().text(), base, &r)) return Value::Int(r);
        if (ParsePyFloat(input.string_value().text(), &d) && std::isfinite(d)) return Value::Int(TruncToInt(d));
        return def;
      default: return def;
    }
  }
  if (name == "float") {
    Args a = Bind("do_float", args, {"default"});
    Value def = Or(a[0], Value::Double(0.0));
    CheckDefined(input);
    double d;
    switch (input.kind()) {
      case Kind::kInt:
      case Kind::kBool: return Value::Double(static_cast<double>(input.int_value()));
      case Kind::kFloat: return input;
      case Kind::kString:
        if (ParsePyFloat(input.string_value().text(), &d)) return Value::Double(d);
        return def;
      default: return def;
    }
  }
  if (name == "round") {
    Args a = Bind("do_round", args, {"precision", "method"});
    int64_t prec = a[0] ? AsInt(*a[0], "precision") : 0;
    std::string method = a[1] ? AsStr(*a[1], "method").text() : "common";
    if (method != "common" && method != "ceil" && method != "floor") {
      Fail("FilterArgumentError: method must be common, ceil or floor");
    }
    CheckDefined(input);
    if (input.kind() != Kind::kInt && input.kind() != Kind::kBool && input.kind() != Kind::kFloat) {
      Fail("TypeError: type " + TypeName(input) + " doesn't define __round__ method");
    }
    if (method == "common") {
      if (input.kind() != Kind::kFloat) return Value::Int(input.int_value());
      return Value::Double(PyRound(input.double_value(), prec));
    }
    double p = std::pow(10.0, static_cast<double>(prec));
    double v = input.double_value() * p;
    return Value::Double((method == "ceil" ? std::ceil(v) : std::floor(v)) / p);
  }
  if (name == "indent") {
    Args a = Bind("do_indent", args, {"width", "first", "blank"});
    if (!input.is_string()) {
      CheckDefined(input);
      Fail("TypeError: unsupported operand type(s) for +=: '" + TypeName(input) + "' and 'str'");
    }
    Value width = Or(a[0], Value::Int(4));
    // An indentation longer than the output limit is cut to one byte past
    // it: any line it indents fails the check below (building it could take
    // seconds), a text it does not indent is unchanged.
    const int64_t max_width = static_cast<int64_t>(std::min<size_t>(in.options().max_output_bytes, INT64_MAX - 1)) + 1;
    if (!width.is_string() && AsInt(width, "width") > max_width) width = Value::Int(max_width);
    LabelledString r = Indent(input.string_value(), width, a[1] && Truthy(*a[1]), a[2] && Truthy(*a[2]));
    in.CheckSize(r.size());
    return Value::String(std::move(r));
  }
  if (name == "center") {
    Args a = Bind("do_center", args, {"width"});
    int64_t w = a[0] ? AsInt(*a[0], "width") : 80;
    in.CheckSize(static_cast<size_t>(std::max<int64_t>(0, w)));
    return Value::String(Pad(SoftStr(input), w, LabelledString(" "), 0));
  }
  if (name == "wordcount") {
    Bind("do_wordcount", args, {});
    const std::string t = SoftStr(input).text();
    int64_t n = 0;
    bool in_word = false;
    size_t pos = 0;
    while (pos < t.size()) {
      size_t len;
      uint32_t cp = DecodeUtf8(t, pos, &len);
      bool w = IsAlpha(cp) || IsDigit(cp) || cp == '_';
      if (w && !in_word) ++n;
      in_word = w;
      pos += len;
    }
    return Value::Int(n);
  }
  if (name == "format") {
    if (!args.pos.empty() && !args.kw.empty()) {
      Fail("FilterArgumentError: can't handle positional and keyword arguments at the same time");
    }
    Value fargs;
    if (!args.kw.empty()) {
      fargs = Value::Dict();
      for (auto& kw : args.kw) fargs.Insert(kw.first, kw.second);
    } else {
      fargs = Value::Tuple(args.pos);
    }
    LabelledString r = PercentFormat(SoftStr(input), fargs, in.options().max_output_bytes);
    in.CheckSize(r.size());
    return Value::String(std::move(r));
  }
  if (name == "batch") {
    Args a = Bind("do_batch", args, {"linecount", "fill_with"});
    if (!a[0]) Fail("TypeError: do_batch() missing 1 required positional argument: 'linecount'");
    int64_t n = AsInt(*a[0], "linecount");
    std::vector<Value> out, tmp;
    for (const auto& item : Iterate(input)) {
      if (static_cast<int64_t>(tmp.size()) == n) {
        out.push_back(Value::List(std::move(tmp)));
        tmp.clear();
      }
      tmp.push_back(item);
    }
    if (!tmp.empty()) {
      if (a[1] && !a[1]->is_none()) {
        while (static_cast<int64_t>(tmp.size()) < n) tmp.push_back(*a[1]);
      }
      out.push_back(Value::List(std::move(tmp)));
    }
    return Value::IteratorOf(std::move(out));
  }
  if (name == "attr") {
    Args a = Bind("do_attr", args, {"name"});
    if (!a[0]) Fail("TypeError: do_attr() missing 1 required positional argument: 'name'");
    const std::string& attr = AsStr(*a[0], "name").text();
    if (input.is_dict() && !DictMethods().count(attr) && !DictUnsafe().count(attr)) {
      return Value::UndefinedWith("'dict object' has no attribute '" + attr + "'");
    }
    return in.GetAttr(input, attr);
  }
  Fail("No filter named '" + name + "' found.");
}

bool ApplyTest(Interp& in, const std::string& name, const Value& v, CallArgs& args) {
  auto one_arg = [&](const char* fname) -> Value {
    Args a = Bind(fname, args, {"other"});
    if (!a[0]) Fail(std::string("TypeError: ") + fname + "() missing 1 required positional argument");
    return *a[0];
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.kind() == Kind::kBool;
  if (name == "false") return v.kind() == Kind::kBool && !v.bool_value();
  if (name == "true") return v.kind() == Kind::kBool && v.bool_value();
  if (name == "integer") return v.kind() == Kind::kInt;
  if (name == "float") return v.kind() == Kind::kFloat;
  if (name == "number") return v.kind() == Kind::kInt || v.kind() == Kind::kBool || v.kind() == Kind::kFloat;
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable") {
    return v.is_undefined() || v.is_string() || v.is_dict() || v.is_list_like();
  }
  if (name == "sequence") {
    return v.is_undefined() || v.is_string() || v.is_dict() || v.kind() == Kind::kList || v.kind() == Kind::kTuple;
  }
  if (name == "callable") return v.kind() == Kind::kCallable;
  if (name == "escaped") return false;
  if (name == "filter") return v.is_string() && IsKnownFilter(v.string_value().text());
  if (name == "test") return v.is_string() && IsKnownTest(v.string_value().text());
  if (name == "lower" || name == "upper") {
    return CasedCheck(PyStr(v).text(), name == "upper");
  }
  if (name == "even" || name == "odd" || name == "divisibleby") {
    CheckDefined(v);
    if (v.kind() != Kind::kInt && v.kind() != Kind::kBool && v.kind() != Kind::kFloat) {
      Fail("TypeError: unsupported operand type(s) for %: '" + TypeName(v) + "' and 'int'");
    }
    double d = v.double_value();
    int64_t num = name == "divisibleby" ? AsInt(one_arg("test_divisibleby"), "num") : 2;
    if (num == 0) Fail("ZeroDivisionError: integer division or modulo by zero");
    bool divisible = v.kind() == Kind::kFloat ? std::fmod(d, static_cast<double>(num)) == 0 : v.int_value() % num == 0;
    return name == "odd" ? !divisible : divisible;
  }
  if (name == "eq" || name == "equalto" || name == "==") return PyEq(v, one_arg("test_eq"));
  if (name == "ne" || name == "!=") return !PyEq(v, one_arg("test_ne"));
  if (name == "lt" || name == "lessthan" || name == "<") return PyLess(v, one_arg("test_lt"), "<");
  if (name == "gt" || name == "greaterthan" || name == ">") return PyLess(one_arg("test_gt"), v, ">");
  if (name == "le" || name == "<=") {
    Value o = one_arg("test_le");
    return PyLess(v, o, "<=") || PyEq(v, o);
  }
  if (name == "ge" || name == ">=") {
    Value o = one_arg("test_ge");
    return PyLess(o, v, ">=") || PyEq(v, o);
  }
  if (name == "in") {
    Value seq = one_arg("test_in");
    CallArgs none;
    switch (seq.kind()) {
      case Kind::kString:
        if (!v.is_string()) Fail("TypeError: 'in <string>' requires string as left operand, not " + TypeName(v));
        return seq.string_value().text().find(v.string_value().text()) != std::string::npos;
      case Kind::kDict:
      case Kind::kList:
      case Kind::kTuple:
      case Kind::kIterator:
      case Kind::kUndefined:
        for (const auto& item : Iterate(seq)) {
          if (PyEq(item, v)) return true;
        }
        return false;
      default: Fail("TypeError: argument of type '" + TypeName(seq) + "' is not iterable");
    }
  }
  if (name == "sameas") {
    Value o = one_arg("test_sameas");
    if (v.kind() != o.kind()) return false;
    switch (v.kind()) {
      case Kind::kNone:
      case Kind::kUndefined: return true;
      case Kind::kBool:
      case Kind::kInt: return v.int_value() == o.int_value();
      case Kind::kFloat: return false;
      case Kind::kString: return v.string_value().text() == o.string_value().text();
      case Kind::kList:
      case Kind::kTuple:
      case Kind::kIterator: return &v.items() == &o.items();
      case Kind::kDict: return &v.entries() == &o.entries();
      default: return v.object() == o.object();
    }
  }
  (void)in;
  Fail("No test named '" + name + "' found.");
}

// ---------------------------------------------------------------------------
// printf-style formatting

LabelledString PercentFormat(const LabelledString& fmt, const Value& args, size_t max_bytes) {
  const std::string& t = fmt.text();
  LabelledString out;
  std::vector<Value> pos;
  bool is_map = args.is_dict();
  if (args.kind() == Kind::kTuple) {
    pos = args.items();
  } else if (!is_map) {
    pos.push_back(args);
  }
  size_t next = 0;
  size_t i = 0;
  bool used_map = false;
  while (i < t.size()) {
    if (t[i] != '%') {
      size_t j = t.find('%', i);
      if (j == std::string::npos) j = t.size();
      out.AppendSlice(fmt, i, j);
      i = j;
      continue;
    }
    size_t start = i++;
    if (i >= t.size()) Fail("ValueError: incomplete format");
    Value v;
    bool have = false;
    if (t[i] == '(') {
      size_t close = t.find(')', i);
      if (close == std::string::npos) Fail("ValueError: incomplete format key");
      std::string key = t.substr(i + 1, close - i - 1);
      if (!is_map) Fail("TypeError: format requires a mapping");
      const Value* found = args.Find(key);
      if (!found) Fail("KeyError: '" + key + "'");
      v = *found;
      have = true;
      used_map = true;
      i = close + 1;
    }
    std::string flags;
    while (i < t.size() && strchr("-+ #0", t[i])) flags.push_back(t[i++]);
    std::string width, prec;
    // A width or precision is a number of output bytes (or more): past the
    // output limit the result would be (formatting it takes seconds).
    auto number = [&](std::string* out) {
      size_t v = 0;
      while (i < t.size() && isdigit(static_cast<unsigned char>(t[i]))) {
        v = v * 10 + static_cast<size_t>(t[i] - '0');
        if (v > max_bytes) Fail(StrFormat("the output would exceed %zu bytes", max_bytes));
        out->push_back(t[i++]);
      }
    };
    number(&width);
    if (i < t.size() && t[i] == '.') {
      ++i;
      prec = ".";
      number(&prec);
    }
    if (i < t.size() && (t[i] == 'l' || t[i] == 'h' || t[i] == 'L')) ++i;
    if (i >= t.size()) Fail("ValueError: incomplete format");
    char conv = t[i++];
    if (conv == '%') {
      out.Append("%", fmt.LabelAt(start));
      continue;
    }
    if (!have) {
      if (is_map) {
        v = args;
      } else {
        if (next >= pos.size()) Fail("TypeError: not enough arguments for format string");
        v = pos[next++];
      }
    }
    std::string spec = "%" + flags + width + prec;
    // snprintf into a string of the size it needs.
    auto format = [&](const std::string& f, auto value) {
      int n = snprintf(nullptr, 0, f.c_str(), value);
      if (n < 0) Fail("ValueError: cannot format with '" + f + "'");
      std::string s(static_cast<size_t>(n) + 1, '\0');
      snprintf(s.data(), s.size(), f.c_str(), value);
      s.resize(static_cast<size_t>(n));
      out.Append(s, 0);
    };
    switch (conv) {
      case 's':
      case 'r':
      case 'a': {
        LabelledString s = conv == 's' ? PyStr(v) : PyRepr(v);
        if (!prec.empty()) {
          size_t p = prec.size() > 1 ? static_cast<size_t>(atoi(prec.c_str() + 1)) : 0;
          auto offs = CodePointOffsets(s.text());
          if (p + 1 < offs.size()) s = s.Slice(0, offs[p]);
        }
        int64_t w = width.empty() ? 0 : atoll(width.c_str());
        LabelledString pad(" ");
        s = Pad(s, w, pad, flags.find('-') != std::string::npos ? 1 : 2);
        out.Append(s);
        break;
      }
      case 'd':
      case 'i':
      case 'u':
      case 'x':
      case 'X':
      case 'o':
      case 'c': {
        CheckDefined(v);
        int64_t n;
        if (v.kind() == Kind::kInt || v.kind() == Kind::kBool) {
          n = v.int_value();
        } else if (v.kind() == Kind::kFloat && conv != 'x' && conv != 'X' && conv != 'o' && conv != 'c') {
          n = TruncToInt(v.double_value());
        } else {
          Fail(StrFormat("TypeError: %%%c format: a real number is required, not %s", conv, TypeName(v).c_str()));
        }
        if (conv == 'c') {
          if (n < 0 || n > 0x10FFFF) Fail("OverflowError: %c arg not in range(0x110000)");
          std::string c;
          EncodeUtf8(static_cast<uint32_t>(n), &c);
          out.Append(c, 0);
          break;
        }
        format(spec + "ll" + std::string(1, conv == 'u' || conv == 'i' ? 'd' : conv), static_cast<long long>(n));
        break;
      }
      case 'f':
      case 'F':
      case 'e':
      case 'E':
      case 'g':
      case 'G': {
        CheckDefined(v);
        if (v.kind() != Kind::kInt && v.kind() != Kind::kBool && v.kind() != Kind::kFloat) {
          Fail("TypeError: must be real number, not " + TypeName(v));
        }
        format(spec + std::string(1, conv), v.double_value());
        break;
      }
      default: Fail(StrFormat("ValueError: unsupported format character '%c' (0x%x)", conv, conv));
    }
  }
  if (!is_map && next < pos.size()) Fail("TypeError: not all arguments converted during string formatting");
  (void)used_map;
  return out;
}

}  // namespace lorart::data::jinja
