// A small Jinja interpreter for Hugging Face chat templates, with per-byte
// provenance.
//
// It renders `chat_template` strings byte-identically to Python jinja2 as
// transformers' `apply_chat_template` configures it (ImmutableSandboxed
// environment, trim_blocks, lstrip_blocks, loopcontrols, the `generation`
// tag, transformers' `tojson`, `raise_exception`, `strftime_now`), for the
// subset of the language that published chat templates use (docs/jinja.md
// lists it). Anything outside the subset is an error naming the construct.
//
// Every string carries a uint32 label per byte. Text the template itself
// produces (literal text, string literals, printed numbers, reprs) has label
// 0; strings the caller puts in the context carry the caller's labels, and the
// operations that copy bytes (concatenation, slicing, strip, split, replace,
// join, case changes, tojson, ...) keep them. The rendered output is a text
// plus label runs plus the byte ranges of `{% generation %}` blocks.
//
//   using namespace lorart::data::jinja;
//   LORA_ASSIGN_OR_RETURN(Template t, Template::Parse(source, "chat_template.jinja"));
//   Value messages = Value::List({});
//   Value m = Value::Dict();
//   m.Insert("role", Value::String("user"));
//   m.Insert("content", Value::String("Hi!", /*label=*/1));
//   messages.Append(std::move(m));
//   Value ctx = Value::Dict();
//   ctx.Insert("messages", messages);
//   ctx.Insert("add_generation_prompt", Value::Bool(true));
//   ctx.Insert("bos_token", Value::String("<s>"));
//   LORA_ASSIGN_OR_RETURN(Rendered r, t.Render(ctx));
//   for (const LabelRun& run : r.runs) { ... r.text.substr(run.begin, run.end - run.begin) ... }
#ifndef LORART_DATA_JINJA_JINJA_H_
#define LORART_DATA_JINJA_JINJA_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lorart/base/status.h"
#include "lorart/io/json.h"

namespace lorart::data::jinja {

// A byte range [begin, end) of a text with one label.
struct LabelRun {
  size_t begin = 0;
  size_t end = 0;
  uint32_t label = 0;
  bool operator==(const LabelRun& o) const {
    return begin == o.begin && end == o.end && label == o.label;
  }
};

// Bytes plus a label per byte, stored as runs (one entry per change of label).
class LabelledString {
 public:
  LabelledString() = default;
  explicit LabelledString(std::string text, uint32_t label = 0);

  const std::string& text() const { return text_; }
  size_t size() const { return text_.size(); }
  bool empty() const { return text_.empty(); }
  // The label of byte `offset` (< size()).
  uint32_t LabelAt(size_t offset) const;
  // Maximal runs of equal labels covering the text, in order.
  std::vector<LabelRun> Runs() const;

  void Append(const LabelledString& other);
  void Append(std::string_view text, uint32_t label);
  // Appends other's bytes [begin, end) with their labels.
  void AppendSlice(const LabelledString& other, size_t begin, size_t end);
  LabelledString Slice(size_t begin, size_t end) const;
  void Clear();

 private:
  std::string text_;
  // (first byte, label) of each run; starts_[0].first == 0 when non-empty.
  std::vector<std::pair<size_t, uint32_t>> starts_;
};

struct Object;  // namespaces, macros, builtins, loop objects (internal)
struct ListRep;
struct DictRep;

// A Jinja/Python value: undefined, None, bool, int (int64), float (double),
// str (LabelledString), list, tuple, dict (insertion-ordered), plus internal
// kinds (an iterator such as the result of `select`, a namespace, a callable).
// Lists and dicts are shared and immutable once a template sees them (the
// sandbox forbids `append`); Insert/Append copy on write.
class Value {
 public:
  enum class Kind : uint8_t {
    kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kTuple, kDict,
    kIterator,  // a one-shot iterator (select, map, items, reverse...): no len
    kNamespace, kCallable, kLoop,
  };

  Value() = default;  // undefined
  static Value Undefined() { return Value(); }
  static Value None();
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value Double(double d);
  static Value String(std::string s, uint32_t label = 0);
  static Value String(LabelledString s);
  static Value List(std::vector<Value> items);
  static Value Tuple(std::vector<Value> items);
  static Value Dict();
  // Converts JSON: objects become dicts, arrays lists, strings (values and
  // keys) take `label`, numbers int or float. Key order matters (templates
  // iterate dicts and print them with tojson): lorart::Json (nlohmann::json)
  // has already sorted the keys, nlohmann::ordered_json and ParseJson keep the
  // order of the text, as Python's json.load does. JSON nested deeper than
  // kMaxJsonDepth converts to undefined.
  static Value FromJson(const Json& json, uint32_t label = 0);
  static Value FromJson(const nlohmann::ordered_json& json, uint32_t label = 0);
  // Parses JSON text keeping key order; INVALID_ARGUMENT on bad JSON or
  // nesting deeper than kMaxJsonDepth.
  static StatusOr<Value> ParseJson(std::string_view text, uint32_t label = 0);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_list_like() const {
    return kind_ == Kind::kList || kind_ == Kind::kTuple || kind_ == Kind::kIterator;
  }
  bool bool_value() const { return i_ != 0; }
  int64_t int_value() const { return i_; }
  double double_value() const { return d_; }
  const LabelledString& string_value() const;  // kString only
  const std::vector<Value>& items() const;      // list, tuple, iterator
  // Dict entries in insertion order.
  const std::vector<std::pair<Value, Value>>& entries() const;

  // Builders (copy on write when shared).
  void Append(Value v);                    // list/tuple
  void Insert(std::string key, Value v);   // dict, string key (label 0)
  void Insert(Value key, Value v);         // dict; replaces an equal key
  // Dict lookup by string key; nullptr when absent.
  const Value* Find(std::string_view key) const;

  // Internal accessors.
  const std::shared_ptr<Object>& object() const { return obj_; }
  static Value FromObject(Kind kind, std::shared_ptr<Object> obj);
  static Value IteratorOf(std::vector<Value> items);
  // An undefined value whose use raises `message` (an UndefinedError, or a
  // SecurityError when `security` is set).
  static Value UndefinedWith(std::string message, bool security = false);
  const std::string* undefined_message() const;
  bool undefined_is_security() const;

 private:
  Kind kind_ = Kind::kUndefined;
  int64_t i_ = 0;
  double d_ = 0;
  std::shared_ptr<const LabelledString> str_;
  std::shared_ptr<ListRep> list_;
  std::shared_ptr<DictRep> dict_;
  std::shared_ptr<Object> obj_;
};

// The output of a render.
struct Rendered {
  std::string text;
  // Runs of equal labels covering `text` (empty when text is empty).
  std::vector<LabelRun> runs;
  // Byte ranges [first, second) of `{% generation %}` blocks rendered at the
  // top level, in output order (transformers counts characters; we count
  // bytes).
  std::vector<std::pair<size_t, size_t>> generation;
  uint32_t LabelAt(size_t offset) const;
};

struct RenderOptions {
  // strftime_now() formats this time (seconds since the epoch, local time);
  // < 0 means the current time.
  int64_t now_unix_seconds = -1;
  size_t max_output_bytes = size_t{64} << 20;  // any rendered/captured text or built string
  // All loop iterations and macro calls of one render together; comparisons
  // (==, <, in, sort) get as many steps of their own.
  int64_t max_loop_iterations = 10'000'000;
  int max_call_depth = 256;                     // nested macro calls
};

struct TemplateImpl;

class Template {
 public:
  // Parses `source` as transformers does (one trailing newline dropped, \r\n
  // and \r read as \n). `name` prefixes messages: "NAME:LINE:COL: ...".
  static StatusOr<Template> Parse(std::string_view source, std::string name);

  // Renders with `context` (a dict) as the template's variables; the
  // builtins range, dict, namespace, raise_exception and strftime_now are
  // always available (a context entry of the same name wins).
  StatusOr<Rendered> Render(const Value& context, const RenderOptions& options = {}) const;

  const std::string& name() const;

  Template() = default;

 private:
  std::shared_ptr<const TemplateImpl> impl_;
};

}  // namespace lorart::data::jinja

#endif  // LORART_DATA_JINJA_JINJA_H_
