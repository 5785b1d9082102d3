// LabelledString, Value, Unicode helpers and Python's str/repr/json/==/<.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "lorart/base/strings.h"
#include "lorart/data/jinja/internal.h"

namespace lorart::data::jinja {

// ---------------------------------------------------------------------------
// Errors

void Fail(std::string message) { throw JinjaError{std::move(message), 0, 0}; }

void FailAt(int line, int col, std::string message) {
  throw JinjaError{std::move(message), line, col};
}

void Unsupported(const std::string& construct) {
  Fail(construct + " is not supported by lorart's chat-template interpreter");
}

// ---------------------------------------------------------------------------
// Destruction of nested values, limits of value operations

struct LiveBytes {
  std::atomic<size_t> bytes{0};
  size_t limit = SIZE_MAX;
};

namespace {
thread_local std::vector<Value>* t_pending = nullptr;  // the outermost DestroyIteratively's queue
thread_local ValueLimits t_limits;
thread_local int64_t t_steps = 0;  // comparison steps of the render so far
thread_local std::shared_ptr<LiveBytes> t_account;  // the render's, when it counts
}  // namespace

void Charge::Add(size_t more) {
  if (!account) account = t_account;
  if (!account || more == 0) return;
  const size_t now = account->bytes.fetch_add(more) + more;
  if (now > account->limit) {
    account->bytes.fetch_sub(more);
    Fail(StrFormat("the template's strings, lists and dicts would hold more than %zu bytes",
                   account->limit));
  }
  bytes += more;
}

Charge::~Charge() {
  if (account) account->bytes.fetch_sub(bytes);
}

// What a list or dict holds: its slots (the values they point to are charged
// on their own).
static size_t SlotBytes(const std::vector<Value>& v) { return v.capacity() * sizeof(Value); }
static size_t SlotBytes(const std::vector<std::pair<Value, Value>>& v) {
  return v.capacity() * sizeof(std::pair<Value, Value>);
}

ListRep::ListRep(const ListRep& other) : items(other.items) { charge.Add(SlotBytes(items)); }
DictRep::DictRep(const DictRep& other) : entries(other.entries) { charge.Add(SlotBytes(entries)); }

void DestroyIteratively(std::vector<Value>* values) {
  if (t_pending != nullptr) {  // inside the loop below: it destroys them
    for (auto& v : *values) t_pending->push_back(std::move(v));
    values->clear();
    return;
  }
  std::vector<Value> queue;
  t_pending = &queue;
  values->clear();  // containers released here append their values to `queue`
  while (!queue.empty()) {
    Value v = std::move(queue.back());
    queue.pop_back();
    v = Value();  // and here
  }
  t_pending = nullptr;
}

ListRep::~ListRep() { DestroyIteratively(&items); }

DictRep::~DictRep() {
  std::vector<Value> values;
  values.reserve(entries.size() * 2);
  for (auto& e : entries) {
    values.push_back(std::move(e.first));
    values.push_back(std::move(e.second));
  }
  entries.clear();
  DestroyIteratively(&values);
}

NamespaceObj::~NamespaceObj() {
  std::vector<Value> values;
  values.reserve(attrs.size());
  for (auto& a : attrs) values.push_back(std::move(a.second));
  attrs.clear();
  DestroyIteratively(&values);
}

ValueLimitsScope::ValueLimitsScope(const ValueLimits& limits)
    : saved_(t_limits), saved_steps_(t_steps), saved_account_(t_account) {
  t_limits = limits;
  t_steps = 0;
  if (limits.max_live_bytes != SIZE_MAX) {
    t_account = std::make_shared<LiveBytes>();
    t_account->limit = limits.max_live_bytes;
  }
}

ValueLimitsScope::~ValueLimitsScope() {
  t_limits = saved_;
  t_steps = saved_steps_;
  t_account = saved_account_;
}

// A str/repr/tojson result may not pass the output limit.
static void CheckBuilt(const LabelledString& out) {
  if (out.size() > t_limits.max_bytes) {
    Fail(StrFormat("the output would exceed %zu bytes", t_limits.max_bytes));
  }
}

// One step of a comparison, `depth` levels into the values.
static void CountCompareStep(int depth) {
  if (depth > t_limits.max_depth) Fail("RecursionError: maximum recursion depth exceeded in comparison");
  if (++t_steps > t_limits.max_steps) {
    Fail(StrFormat("comparing values took more than %lld steps", static_cast<long long>(t_limits.max_steps)));
  }
}

// ---------------------------------------------------------------------------
// LabelledString

LabelledString::LabelledString(std::string text, uint32_t label) : text_(std::move(text)) {
  if (!text_.empty()) starts_.push_back({0, label});
}

uint32_t LabelledString::LabelAt(size_t offset) const {
  auto it = std::upper_bound(starts_.begin(), starts_.end(), offset,
                             [](size_t off, const std::pair<size_t, uint32_t>& r) { return off < r.first; });
  if (it == starts_.begin()) return 0;
  return std::prev(it)->second;
}

std::vector<LabelRun> LabelledString::Runs() const {
  std::vector<LabelRun> runs;
  runs.reserve(starts_.size());
  for (size_t i = 0; i < starts_.size(); ++i) {
    size_t end = i + 1 < starts_.size() ? starts_[i + 1].first : text_.size();
    runs.push_back({starts_[i].first, end, starts_[i].second});
  }
  return runs;
}

void LabelledString::Append(std::string_view text, uint32_t label) {
  if (text.empty()) return;
  if (starts_.empty() || starts_.back().second != label) starts_.push_back({text_.size(), label});
  text_.append(text);
}

void LabelledString::Append(const LabelledString& other) { AppendSlice(other, 0, other.size()); }

void LabelledString::AppendSlice(const LabelledString& other, size_t begin, size_t end) {
  if (end > other.size()) end = other.size();
  if (begin >= end) return;
  auto it = std::upper_bound(other.starts_.begin(), other.starts_.end(), begin,
                             [](size_t off, const std::pair<size_t, uint32_t>& r) { return off < r.first; });
  size_t i = static_cast<size_t>(std::prev(it) - other.starts_.begin());
  size_t pos = begin;
  while (pos < end) {
    size_t run_end = i + 1 < other.starts_.size() ? other.starts_[i + 1].first : other.size();
    size_t stop = std::min(run_end, end);
    Append(std::string_view(other.text_).substr(pos, stop - pos), other.starts_[i].second);
    pos = stop;
    ++i;
  }
}

LabelledString LabelledString::Slice(size_t begin, size_t end) const {
  LabelledString out;
  out.AppendSlice(*this, begin, end);
  return out;
}

void LabelledString::Clear() {
  text_.clear();
  starts_.clear();
}

uint32_t Rendered::LabelAt(size_t offset) const {
  auto it = std::upper_bound(runs.begin(), runs.end(), offset,
                             [](size_t off, const LabelRun& r) { return off < r.begin; });
  if (it == runs.begin()) return 0;
  return std::prev(it)->label;
}

// ---------------------------------------------------------------------------
// Value

Value Value::None() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}
Value Value::Bool(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.i_ = b ? 1 : 0;
  v.d_ = v.i_;
  return v;
}
Value Value::Int(int64_t i) {
  Value v;
  v.kind_ = Kind::kInt;
  v.i_ = i;
  v.d_ = static_cast<double>(i);
  return v;
}
Value Value::Double(double d) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.d_ = d;
  return v;
}
Value Value::String(std::string s, uint32_t label) { return String(LabelledString(std::move(s), label)); }
Value Value::String(LabelledString s) {
  Value v;
  v.kind_ = Kind::kString;
  if (!t_account || s.empty()) {
    v.str_ = std::make_shared<const LabelledString>(std::move(s));
    return v;
  }
  // The string and its charge in one allocation (the pointer aliases the
  // string); charged before it is kept, refunded when the last copy goes.
  struct Charged {
    LabelledString text;
    Charge charge;
  };
  auto held = std::make_shared<Charged>();
  held->charge.Add(s.size());
  held->text = std::move(s);
  v.str_ = std::shared_ptr<const LabelledString>(held, &held->text);
  return v;
}
Value Value::List(std::vector<Value> items) {
  Value v;
  v.kind_ = Kind::kList;
  v.list_ = std::make_shared<ListRep>();
  v.list_->charge.Add(SlotBytes(items));
  v.list_->items = std::move(items);
  return v;
}
Value Value::Tuple(std::vector<Value> items) {
  Value v = List(std::move(items));
  v.kind_ = Kind::kTuple;
  return v;
}
Value Value::IteratorOf(std::vector<Value> items) {
  Value v = List(std::move(items));
  v.kind_ = Kind::kIterator;
  return v;
}
Value Value::Dict() {
  Value v;
  v.kind_ = Kind::kDict;
  v.dict_ = std::make_shared<DictRep>();
  return v;
}
Value Value::FromObject(Kind kind, std::shared_ptr<Object> obj) {
  Value v;
  v.kind_ = kind;
  v.obj_ = std::move(obj);
  return v;
}
Value Value::UndefinedWith(std::string message, bool security) {
  auto info = std::make_shared<UndefinedInfo>();
  info->message = std::move(message);
  info->security = security;
  return FromObject(Kind::kUndefined, std::move(info));
}
const std::string* Value::undefined_message() const {
  if (kind_ != Kind::kUndefined || !obj_) return nullptr;
  return &static_cast<const UndefinedInfo*>(obj_.get())->message;
}
bool Value::undefined_is_security() const {
  return kind_ == Kind::kUndefined && obj_ && static_cast<const UndefinedInfo*>(obj_.get())->security;
}

namespace {
template <typename J>
Value ConvertJson(const J& json, uint32_t label, int depth) {
  if (depth > kMaxJsonDepth) Fail("JSON nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  switch (json.type()) {
    case J::value_t::null: return Value::None();
    case J::value_t::boolean: return Value::Bool(json.template get<bool>());
    case J::value_t::number_integer: return Value::Int(json.template get<int64_t>());
    case J::value_t::number_unsigned: {
      uint64_t u = json.template get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value::Double(static_cast<double>(u));
      return Value::Int(static_cast<int64_t>(u));
    }
    case J::value_t::number_float: return Value::Double(json.template get<double>());
    case J::value_t::string: return Value::String(json.template get<std::string>(), label);
    case J::value_t::array: {
      std::vector<Value> items;
      items.reserve(json.size());
      for (const auto& item : json) items.push_back(ConvertJson(item, label, depth + 1));
      return Value::List(std::move(items));
    }
    case J::value_t::object: {
      Value d = Value::Dict();
      for (auto it = json.begin(); it != json.end(); ++it) {
        d.Insert(Value::String(it.key(), label), ConvertJson(it.value(), label, depth + 1));
      }
      return d;
    }
    default: return Value();
  }
}
}  // namespace

Value Value::FromJson(const Json& json, uint32_t label) {
  try {
    return ConvertJson(json, label, 1);
  } catch (const JinjaError&) {
    return Value();
  }
}

Value Value::FromJson(const nlohmann::ordered_json& json, uint32_t label) {
  try {
    return ConvertJson(json, label, 1);
  } catch (const JinjaError&) {
    return Value();
  }
}

StatusOr<Value> Value::ParseJson(std::string_view text, uint32_t label) {
  nlohmann::ordered_json json = nlohmann::ordered_json::parse(text.begin(), text.end(), nullptr, false);
  if (json.is_discarded()) return InvalidArgumentError("chat-template context: not valid JSON");
  try {
    return ConvertJson(json, label, 1);
  } catch (const JinjaError& e) {
    return InvalidArgumentError("chat-template context: " + e.message);
  }
}

static const LabelledString kEmptyLString;
static const std::vector<Value> kEmptyItems;
static const std::vector<std::pair<Value, Value>> kEmptyEntries;

const LabelledString& Value::string_value() const { return str_ ? *str_ : kEmptyLString; }
const std::vector<Value>& Value::items() const { return list_ ? list_->items : kEmptyItems; }
const std::vector<std::pair<Value, Value>>& Value::entries() const {
  return dict_ ? dict_->entries : kEmptyEntries;
}

void Value::Append(Value v) {
  if (!list_) list_ = std::make_shared<ListRep>();
  if (list_.use_count() > 1) list_ = std::make_shared<ListRep>(*list_);
  if (list_->items.size() == list_->items.capacity())  // the vector grows
    list_->charge.Add(SlotBytes(list_->items) + sizeof(Value));
  list_->items.push_back(std::move(v));
}

void Value::Insert(std::string key, Value v) { Insert(String(std::move(key)), std::move(v)); }

void Value::Insert(Value key, Value v) {
  if (!dict_) dict_ = std::make_shared<DictRep>();
  if (dict_.use_count() > 1) dict_ = std::make_shared<DictRep>(*dict_);
  for (auto& e : dict_->entries) {
    if (PyEq(e.first, key)) {
      e.second = std::move(v);
      return;
    }
  }
  if (dict_->entries.size() == dict_->entries.capacity())  // the vector grows
    dict_->charge.Add(SlotBytes(dict_->entries) + sizeof(std::pair<Value, Value>));
  dict_->entries.emplace_back(std::move(key), std::move(v));
}

const Value* Value::Find(std::string_view key) const {
  if (!dict_) return nullptr;
  for (const auto& e : dict_->entries) {
    if (e.first.kind_ == Kind::kString && e.first.str_->text() == key) return &e.second;
  }
  return nullptr;
}

Value* NamespaceObj::Find(std::string_view name) {
  for (auto& a : attrs) {
    if (a.first == name) return &a.second;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------
// UTF-8 and character classes

uint32_t DecodeUtf8(std::string_view s, size_t pos, size_t* len) {
  unsigned char c = static_cast<unsigned char>(s[pos]);
  size_t n = 0;
  uint32_t cp = 0;
  if (c < 0x80) {
    *len = 1;
    return c;
  } else if ((c & 0xE0) == 0xC0) {
    n = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4;
    cp = c & 0x07;
  } else {
    *len = 1;
    return c;
  }
  if (pos + n > s.size()) {
    *len = 1;
    return c;
  }
  for (size_t i = 1; i < n; ++i) {
    unsigned char cc = static_cast<unsigned char>(s[pos + i]);
    if ((cc & 0xC0) != 0x80) {
      *len = 1;
      return c;
    }
    cp = (cp << 6) | (cc & 0x3F);
  }
  *len = n;
  return cp;
}

void EncodeUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool IsAscii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

std::vector<size_t> CodePointOffsets(std::string_view s) {
  std::vector<size_t> offs;
  offs.reserve(s.size() + 1);
  size_t pos = 0;
  while (pos < s.size()) {
    offs.push_back(pos);
    size_t len;
    DecodeUtf8(s, pos, &len);
    pos += len;
  }
  offs.push_back(s.size());
  return offs;
}

size_t CodePointCount(std::string_view s) {
  if (IsAscii(s)) return s.size();
  size_t n = 0, pos = 0;
  while (pos < s.size()) {
    size_t len;
    DecodeUtf8(s, pos, &len);
    pos += len;
    ++n;
  }
  return n;
}

bool IsPyWhitespace(uint32_t cp) {
  if (cp < 0x80) return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20);
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

bool IsPyLineBreak(uint32_t cp) {
  return cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C || cp == 0x1C || cp == 0x1D || cp == 0x1E ||
         cp == 0x85 || cp == 0x2028 || cp == 0x2029;
}

bool IsPyPrintable(uint32_t cp) {
  if (cp < 0x20 || cp == 0x7F) return false;
  if (cp < 0x7F) return true;
  if (cp <= 0xA0) return false;  // C1 controls and NBSP (Zs)
  if (cp == 0xAD) return false;  // soft hyphen (Cf)
  if (cp >= 0x600 && cp <= 0x605) return false;
  if (cp == 0x61C || cp == 0x6DD || cp == 0x70F || cp == 0x180E || cp == 0x1680) return false;
  if (cp >= 0x2000 && cp <= 0x200F) return false;
  if (cp >= 0x2028 && cp <= 0x202F) return false;
  if (cp >= 0x205F && cp <= 0x206F) return false;
  if (cp == 0x3000 || cp == 0xFEFF) return false;
  if (cp >= 0xD800 && cp <= 0xF8FF) return false;  // surrogates, private use
  if (cp >= 0xFFF0 && cp <= 0xFFFB) return false;
  if (cp == 0xFFFE || cp == 0xFFFF) return false;
  if (cp >= 0xE0000 && cp <= 0xE0FFF) return false;
  if (cp >= 0xF0000) return false;
  return true;
}

// Simple case mappings: ASCII, Latin-1, Latin Extended-A pairs, Greek,
// Cyrillic. Other scripts are left unchanged (documented).
uint32_t PyLower(uint32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  if ((cp >= 0xC0 && cp <= 0xDE && cp != 0xD7)) return cp + 32;
  if (cp >= 0x100 && cp <= 0x17F && cp != 0x130 && cp != 0x131 && cp != 0x138 && cp != 0x149 &&
      cp != 0x17F) {
    bool odd_pairs = (cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E);
    if (odd_pairs) return (cp % 2 == 1) ? cp + 1 : cp;
    return (cp % 2 == 0) ? cp + 1 : cp;
  }
  if (cp == 0x178) return 0xFF;
  if (cp >= 0x391 && cp <= 0x3AB && cp != 0x3A2) return cp + 32;
  if (cp >= 0x410 && cp <= 0x42F) return cp + 32;
  if (cp >= 0x400 && cp <= 0x40F) return cp + 80;
  return cp;
}

uint32_t PyUpper(uint32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') ? cp - 32 : cp;
  if (cp >= 0xE0 && cp <= 0xFE && cp != 0xF7) return cp - 32;
  if (cp == 0xFF) return 0x178;
  if (cp == 0xB5) return 0x39C;
  if (cp >= 0x100 && cp <= 0x17F && cp != 0x130 && cp != 0x131 && cp != 0x138 && cp != 0x149 &&
      cp != 0x17F) {
    bool odd_pairs = (cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E);
    if (odd_pairs) return (cp % 2 == 0) ? cp - 1 : cp;
    return (cp % 2 == 1) ? cp - 1 : cp;
  }
  if (cp >= 0x3B1 && cp <= 0x3CB && cp != 0x3C2) return cp - 32;
  if (cp == 0x3C2) return 0x3A3;
  if (cp >= 0x430 && cp <= 0x44F) return cp - 32;
  if (cp >= 0x450 && cp <= 0x45F) return cp - 80;
  return cp;
}

bool IsCased(uint32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
  return PyLower(cp) != cp || PyUpper(cp) != cp || cp == 0xDF || cp == 0xAA || cp == 0xBA;
}

bool IsAlpha(uint32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
  if (cp < 0xC0) return cp == 0xAA || cp == 0xB5 || cp == 0xBA;
  if (cp == 0xD7 || cp == 0xF7) return false;
  // Treat other non-ASCII code points outside punctuation/space blocks as
  // letters (CJK, scripts); an approximation documented in docs/jinja.md.
  if (IsPyWhitespace(cp) || (cp >= 0x2000 && cp <= 0x2BFF) || (cp >= 0x3000 && cp <= 0x303F) ||
      (cp >= 0xFF00 && cp <= 0xFF0F) || (cp >= 0x1F000 && cp <= 0x1FAFF))
    return false;
  return true;
}

bool IsDigit(uint32_t cp) { return cp >= '0' && cp <= '9'; }

// ---------------------------------------------------------------------------
// Python conversions

std::string TypeName(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return "Undefined";
    case Value::Kind::kNone: return "NoneType";
    case Value::Kind::kBool: return "bool";
    case Value::Kind::kInt: return "int";
    case Value::Kind::kFloat: return "float";
    case Value::Kind::kString: return "str";
    case Value::Kind::kList: return "list";
    case Value::Kind::kTuple: return "tuple";
    case Value::Kind::kDict: return "dict";
    case Value::Kind::kIterator: return "generator";
    case Value::Kind::kNamespace: return "Namespace";
    case Value::Kind::kCallable: return "function";
    case Value::Kind::kLoop: return "LoopContext";
  }
  return "object";
}

std::string ObjectTypeRepr(const Value& v) {
  if (v.is_none()) return "None";
  if (v.kind() == Value::Kind::kNamespace) return "jinja2.utils.Namespace object";
  if (v.kind() == Value::Kind::kLoop) return "jinja2.runtime.LoopContext object";
  if (v.kind() == Value::Kind::kUndefined) return "jinja2.runtime.Undefined object";
  return TypeName(v) + " object";
}

std::string FloatRepr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  char buf[64];
  int prec = 0;
  for (prec = 0; prec <= 17; ++prec) {
    snprintf(buf, sizeof(buf), "%.*e", prec, d);
    if (strtod(buf, nullptr) == d) break;
  }
  // buf: [-]D[.DDD]e[+-]XX
  std::string s(buf);
  bool neg = s[0] == '-';
  if (neg) s = s.substr(1);
  size_t e = s.find('e');
  std::string mant = s.substr(0, e);
  int exp = atoi(s.c_str() + e + 1);
  std::string digits;
  for (char c : mant) {
    if (c != '.') digits.push_back(c);
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  int decpt = exp + 1;  // digits = 0.DDDD * 10^decpt
  std::string out = neg ? "-" : "";
  if (decpt > 16 || decpt < -3) {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char eb[16];
    snprintf(eb, sizeof(eb), "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    out += eb;
  } else if (decpt <= 0) {
    out += "0." + std::string(static_cast<size_t>(-decpt), '0') + digits;
  } else if (static_cast<size_t>(decpt) >= digits.size()) {
    out += digits + std::string(static_cast<size_t>(decpt) - digits.size(), '0') + ".0";
  } else {
    out += digits.substr(0, static_cast<size_t>(decpt)) + "." + digits.substr(static_cast<size_t>(decpt));
  }
  return out;
}

static void ReprString(const LabelledString& s, LabelledString* out) {
  const std::string& t = s.text();
  bool has_single = t.find('\'') != std::string::npos;
  bool has_double = t.find('"') != std::string::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  uint32_t first_label = s.empty() ? 0 : s.LabelAt(0);
  uint32_t last_label = s.empty() ? 0 : s.LabelAt(s.size() - 1);
  out->Append(std::string_view(&quote, 1), first_label);
  size_t pos = 0;
  while (pos < t.size()) {
    size_t len;
    uint32_t cp = DecodeUtf8(t, pos, &len);
    uint32_t label = s.LabelAt(pos);
    char buf[16];
    if (cp == static_cast<uint32_t>(quote) || cp == '\\') {
      buf[0] = '\\';
      buf[1] = static_cast<char>(cp);
      out->Append(std::string_view(buf, 2), label);
    } else if (cp == '\t') {
      out->Append("\\t", label);
    } else if (cp == '\n') {
      out->Append("\\n", label);
    } else if (cp == '\r') {
      out->Append("\\r", label);
    } else if (IsPyPrintable(cp)) {
      out->Append(std::string_view(t).substr(pos, len), label);
    } else if (cp < 0x100) {
      snprintf(buf, sizeof(buf), "\\x%02x", cp);
      out->Append(buf, label);
    } else if (cp < 0x10000) {
      snprintf(buf, sizeof(buf), "\\u%04x", cp);
      out->Append(buf, label);
    } else {
      snprintf(buf, sizeof(buf), "\\U%08x", cp);
      out->Append(buf, label);
    }
    pos += len;
  }
  out->Append(std::string_view(&quote, 1), last_label);
}

static void ReprInto(const Value& v, LabelledString* out, int depth);

static void StrInto(const Value& v, LabelledString* out, int depth) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return;
    case Value::Kind::kString: out->Append(v.string_value()); return;
    default: ReprInto(v, out, depth);
  }
}

static void ReprInto(const Value& v, LabelledString* out, int depth) {
  if (depth > 200) Fail("maximum recursion depth exceeded while getting the repr of an object");
  CheckBuilt(*out);
  switch (v.kind()) {
    case Value::Kind::kUndefined: return;
    case Value::Kind::kNone: out->Append("None", 0); return;
    case Value::Kind::kBool: out->Append(v.bool_value() ? "True" : "False", 0); return;
    case Value::Kind::kInt: out->Append(std::to_string(v.int_value()), 0); return;
    case Value::Kind::kFloat: out->Append(FloatRepr(v.double_value()), 0); return;
    case Value::Kind::kString: ReprString(v.string_value(), out); return;
    case Value::Kind::kList:
    case Value::Kind::kTuple: {
      bool tuple = v.kind() == Value::Kind::kTuple;
      out->Append(tuple ? "(" : "[", 0);
      const auto& items = v.items();
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out->Append(", ", 0);
        ReprInto(items[i], out, depth + 1);
      }
      if (tuple && items.size() == 1) out->Append(",", 0);
      out->Append(tuple ? ")" : "]", 0);
      return;
    }
    case Value::Kind::kDict: {
      out->Append("{", 0);
      bool first = true;
      for (const auto& e : v.entries()) {
        if (!first) out->Append(", ", 0);
        first = false;
        ReprInto(e.first, out, depth + 1);
        out->Append(": ", 0);
        ReprInto(e.second, out, depth + 1);
      }
      out->Append("}", 0);
      return;
    }
    case Value::Kind::kNamespace: {
      out->Append("<Namespace {", 0);
      auto* ns = static_cast<NamespaceObj*>(v.object().get());
      bool first = true;
      for (const auto& a : ns->attrs) {
        if (!first) out->Append(", ", 0);
        first = false;
        ReprString(LabelledString(a.first), out);
        out->Append(": ", 0);
        ReprInto(a.second, out, depth + 1);
      }
      out->Append("}>", 0);
      return;
    }
    case Value::Kind::kIterator: Unsupported("printing an iterator (Python prints '<generator object ...>')");
    case Value::Kind::kCallable: Unsupported("printing a function or method");
    case Value::Kind::kLoop: Unsupported("printing a loop object");
  }
}

LabelledString PyStr(const Value& v) {
  if (v.kind() == Value::Kind::kString) return v.string_value();
  LabelledString out;
  StrInto(v, &out, 0);
  return out;
}

LabelledString PyRepr(const Value& v) {
  LabelledString out;
  if (v.kind() == Value::Kind::kUndefined) return out;
  ReprInto(v, &out, 0);
  return out;
}

// ---------------------------------------------------------------------------
// JSON (Python json.dumps)

static void JsonString(const LabelledString& s, bool ensure_ascii, LabelledString* out) {
  const std::string& t = s.text();
  uint32_t first_label = s.empty() ? 0 : s.LabelAt(0);
  uint32_t last_label = s.empty() ? 0 : s.LabelAt(s.size() - 1);
  out->Append("\"", first_label);
  size_t pos = 0;
  while (pos < t.size()) {
    size_t len;
    uint32_t cp = DecodeUtf8(t, pos, &len);
    uint32_t label = s.LabelAt(pos);
    char buf[16];
    switch (cp) {
      case '"': out->Append("\\\"", label); break;
      case '\\': out->Append("\\\\", label); break;
      case '\n': out->Append("\\n", label); break;
      case '\r': out->Append("\\r", label); break;
      case '\t': out->Append("\\t", label); break;
      case '\b': out->Append("\\b", label); break;
      case '\f': out->Append("\\f", label); break;
      default:
        if (cp < 0x20 || (ensure_ascii && cp >= 0x7F)) {
          if (cp >= 0x10000) {
            uint32_t v = cp - 0x10000;
            snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
          } else {
            snprintf(buf, sizeof(buf), "\\u%04x", cp);
          }
          out->Append(buf, label);
        } else {
          out->Append(std::string_view(t).substr(pos, len), label);
        }
    }
    pos += len;
  }
  out->Append("\"", last_label);
}

static std::string JsonFloat(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return FloatRepr(d);
}

static void JsonNewline(const JsonOptions& o, int level, LabelledString* out) {
  out->Append("\n", 0);
  for (int i = 0; i < level; ++i) {
    out->Append(o.indent, 0);
    CheckBuilt(*out);
  }
}

void ToJson(const Value& v, const JsonOptions& o, int level, LabelledString* out) {
  if (level > 200) Fail("maximum recursion depth exceeded while encoding a JSON object");
  CheckBuilt(*out);
  switch (v.kind()) {
    case Value::Kind::kNone: out->Append("null", 0); return;
    case Value::Kind::kBool: out->Append(v.bool_value() ? "true" : "false", 0); return;
    case Value::Kind::kInt: out->Append(std::to_string(v.int_value()), 0); return;
    case Value::Kind::kFloat: out->Append(JsonFloat(v.double_value()), 0); return;
    case Value::Kind::kString: JsonString(v.string_value(), o.ensure_ascii, out); return;
    case Value::Kind::kList:
    case Value::Kind::kTuple: {
      const auto& items = v.items();
      if (items.empty()) {
        out->Append("[]", 0);
        return;
      }
      out->Append("[", 0);
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out->Append(o.item_sep, 0);
        if (o.has_indent) JsonNewline(o, level + 1, out);
        ToJson(items[i], o, level + 1, out);
      }
      if (o.has_indent) JsonNewline(o, level, out);
      out->Append("]", 0);
      return;
    }
    case Value::Kind::kDict: {
      std::vector<const std::pair<Value, Value>*> entries;
      for (const auto& e : v.entries()) entries.push_back(&e);
      if (entries.empty()) {
        out->Append("{}", 0);
        return;
      }
      // Keys become strings first (as json.dumps does).
      std::vector<LabelledString> keys;
      for (const auto* e : entries) {
        const Value& k = e->first;
        switch (k.kind()) {
          case Value::Kind::kString: keys.push_back(k.string_value()); break;
          case Value::Kind::kInt: keys.emplace_back(std::to_string(k.int_value())); break;
          case Value::Kind::kFloat: keys.emplace_back(JsonFloat(k.double_value())); break;
          case Value::Kind::kBool: keys.emplace_back(k.bool_value() ? "true" : "false"); break;
          case Value::Kind::kNone: keys.emplace_back("null"); break;
          default:
            Fail("TypeError: keys must be str, int, float, bool or None, not " + TypeName(k));
        }
      }
      std::vector<size_t> order(entries.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      if (o.sort_keys) {
        for (const auto* e : entries) {
          if (e->first.kind() != entries[0]->first.kind()) Fail("TypeError: '<' not supported between dict keys of different types");
        }
        std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
          return PyLess(entries[a]->first, entries[b]->first);
        });
      }
      out->Append("{", 0);
      for (size_t i = 0; i < order.size(); ++i) {
        if (i) out->Append(o.item_sep, 0);
        if (o.has_indent) JsonNewline(o, level + 1, out);
        JsonString(keys[order[i]], o.ensure_ascii, out);
        out->Append(o.key_sep, 0);
        ToJson(entries[order[i]]->second, o, level + 1, out);
      }
      if (o.has_indent) JsonNewline(o, level, out);
      out->Append("}", 0);
      return;
    }
    case Value::Kind::kUndefined:
      Fail("TypeError: Object of type Undefined is not JSON serializable");
    default:
      Fail("TypeError: Object of type " + TypeName(v) + " is not JSON serializable");
  }
}

// ---------------------------------------------------------------------------
// Truthiness, equality, ordering, iteration

bool Truthy(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: return false;
    case Value::Kind::kBool:
    case Value::Kind::kInt: return v.int_value() != 0;
    case Value::Kind::kFloat: return v.double_value() != 0;
    case Value::Kind::kString: return !v.string_value().empty();
    case Value::Kind::kList:
    case Value::Kind::kTuple: return !v.items().empty();
    case Value::Kind::kDict: return !v.entries().empty();
    default: return true;
  }
}

static bool IsNumber(const Value& v) {
  return v.kind() == Value::Kind::kBool || v.kind() == Value::Kind::kInt || v.kind() == Value::Kind::kFloat;
}

static bool PyEqAt(const Value& a, const Value& b, int depth);
static bool PyLessAt(const Value& a, const Value& b, const char* op, int depth);

bool PyEq(const Value& a, const Value& b) { return PyEqAt(a, b, 0); }

static bool PyEqAt(const Value& a, const Value& b, int depth) {
  CountCompareStep(depth);
  if (IsNumber(a) && IsNumber(b)) {
    if (a.kind() != Value::Kind::kFloat && b.kind() != Value::Kind::kFloat) return a.int_value() == b.int_value();
    return a.double_value() == b.double_value();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: return true;
    case Value::Kind::kString: return a.string_value().text() == b.string_value().text();
    case Value::Kind::kList:
    case Value::Kind::kTuple: {
      const auto& x = a.items();
      const auto& y = b.items();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!PyEqAt(x[i], y[i], depth + 1)) return false;
      }
      return true;
    }
    case Value::Kind::kDict: {
      if (a.entries().size() != b.entries().size()) return false;
      for (const auto& e : a.entries()) {
        bool found = false;
        for (const auto& f : b.entries()) {
          if (PyEqAt(e.first, f.first, depth + 1)) {
            if (!PyEqAt(e.second, f.second, depth + 1)) return false;
            found = true;
            break;
          }
        }
        if (!found) return false;
      }
      return true;
    }
    default: return a.object() == b.object();
  }
}

void FailUndefined(const Value& v) {
  const std::string* msg = v.undefined_message();
  if (v.undefined_is_security()) Fail("SecurityError: " + *msg);
  Fail(msg ? *msg : std::string("value is undefined"));
}

void CheckDefined(const Value& v) {
  if (v.is_undefined()) FailUndefined(v);
}

bool PyLess(const Value& a, const Value& b, const char* op) { return PyLessAt(a, b, op, 0); }

static bool PyLessAt(const Value& a, const Value& b, const char* op, int depth) {
  CountCompareStep(depth);
  CheckDefined(a);
  CheckDefined(b);
  if (IsNumber(a) && IsNumber(b)) {
    if (a.kind() != Value::Kind::kFloat && b.kind() != Value::Kind::kFloat) return a.int_value() < b.int_value();
    return a.double_value() < b.double_value();
  }
  if (a.kind() == Value::Kind::kString && b.kind() == Value::Kind::kString) {
    return a.string_value().text() < b.string_value().text();
  }
  if (a.kind() == b.kind() && (a.kind() == Value::Kind::kList || a.kind() == Value::Kind::kTuple)) {
    const auto& x = a.items();
    const auto& y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!PyEqAt(x[i], y[i], depth + 1)) return PyLessAt(x[i], y[i], op, depth + 1);
    }
    return x.size() < y.size();
  }
  Fail(StrFormat("TypeError: '%s' not supported between instances of '%s' and '%s'", op, TypeName(a).c_str(),
                 TypeName(b).c_str()));
}

std::vector<Value> Iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      if (v.undefined_is_security()) FailUndefined(v);
      return {};
    case Value::Kind::kList:
    case Value::Kind::kTuple:
    case Value::Kind::kIterator: return v.items();
    case Value::Kind::kDict: {
      std::vector<Value> keys;
      for (const auto& e : v.entries()) keys.push_back(e.first);
      return keys;
    }
    case Value::Kind::kString: {
      const LabelledString& s = v.string_value();
      std::vector<Value> chars;
      size_t pos = 0;
      while (pos < s.size()) {
        size_t len;
        DecodeUtf8(s.text(), pos, &len);
        chars.push_back(Value::String(s.Slice(pos, pos + len)));
        pos += len;
      }
      return chars;
    }
    default: Fail("TypeError: '" + TypeName(v) + "' object is not iterable");
  }
}

int64_t PyLen(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return 0;
    case Value::Kind::kString: return static_cast<int64_t>(CodePointCount(v.string_value().text()));
    case Value::Kind::kList:
    case Value::Kind::kTuple: return static_cast<int64_t>(v.items().size());
    case Value::Kind::kDict: return static_cast<int64_t>(v.entries().size());
    default: Fail("TypeError: object of type '" + TypeName(v) + "' has no len()");
  }
}

}  // namespace lorart::data::jinja
