// Internals of the chat-template interpreter: errors, Unicode and Python
// helpers, tokens, the AST and the evaluator entry point. Not a public API.
//
// Errors inside the lexer, parser and evaluator are thrown as JinjaError and
// turned into a Status at the two API entry points (Template::Parse and
// Template::Render); no exception leaves the library.
#ifndef LORART_DATA_JINJA_INTERNAL_H_
#define LORART_DATA_JINJA_INTERNAL_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lorart/data/jinja/jinja.h"

namespace lorart::data::jinja {

// ---------------------------------------------------------------------------
// Errors

struct JinjaError {
  std::string message;  // without position
  int line = 0;         // 0: not yet known
  int col = 0;
};

[[noreturn]] void Fail(std::string message);
[[noreturn]] void FailAt(int line, int col, std::string message);
// "<construct> is not supported by lorart's chat-template interpreter".
[[noreturn]] void Unsupported(const std::string& construct);

// ---------------------------------------------------------------------------
// Values: representation details

// Containers destroy the values they hold with DestroyIteratively: a list
// nested 10^5 deep (a template can build one in a loop) would overflow the
// stack destroying itself recursively.
// The bytes held by the strings, lists and dicts a render creates (their
// characters and slots), against ValueLimits::max_live_bytes: a template can
// double a list in a loop, or keep thousands of megabyte strings, and take
// all the machine's memory long before its output reaches its limit. Each
// container or string charged remembers its account and refunds it when
// destroyed (on whatever thread, whenever); values made outside a render
// are not counted.
struct LiveBytes;
struct Charge {
  std::shared_ptr<LiveBytes> account;
  size_t bytes = 0;
  Charge() = default;
  Charge(const Charge&) = delete;
  Charge& operator=(const Charge&) = delete;
  ~Charge();
  // Charges `bytes` more to this render's account (this object's own once
  // it has one); over the limit it raises a template error.
  void Add(size_t more);
};

struct ListRep {
  std::vector<Value> items;
  Charge charge;
  ListRep() = default;
  ListRep(const ListRep& other);
  ~ListRep();
};
struct DictRep {
  std::vector<std::pair<Value, Value>> entries;
  Charge charge;
  DictRep() = default;
  DictRep(const DictRep& other);
  ~DictRep();
};
// Destroys `values` (leaving it empty); the containers released meanwhile
// hand their values to the outermost call, which destroys them in a loop.
void DestroyIteratively(std::vector<Value>* values);

struct Object {
  virtual ~Object() = default;
};

struct UndefinedInfo : Object {
  std::string message;
  bool security = false;
};

struct NamespaceObj : Object {
  std::vector<std::pair<std::string, Value>> attrs;
  Value* Find(std::string_view name);
  ~NamespaceObj() override;
};

// Limits of the render running on this thread, for the value operations
// that run without the evaluator (str/repr, tojson, ==, <). A template can
// build values that share their parts ([d, d] again and again, in a loop)
// so that walking them takes exponential time and space: str, repr and
// tojson stop at the output limit, comparisons after `max_steps` steps (all
// comparisons of the render together) or `max_depth` levels of nesting.
// Outside a render there are no limits.
struct ValueLimits {
  size_t max_bytes = SIZE_MAX;
  int64_t max_steps = INT64_MAX;
  int max_depth = 1 << 30;
  size_t max_live_bytes = SIZE_MAX;  // see Charge; SIZE_MAX: not counted
};
// Installs `limits` on this thread for its lifetime.
class ValueLimitsScope {
 public:
  explicit ValueLimitsScope(const ValueLimits& limits);
  ~ValueLimitsScope();
  ValueLimitsScope(const ValueLimitsScope&) = delete;
  ValueLimitsScope& operator=(const ValueLimitsScope&) = delete;

 private:
  ValueLimits saved_;
  int64_t saved_steps_;
  std::shared_ptr<LiveBytes> saved_account_;
};

// ---------------------------------------------------------------------------
// UTF-8 and Python string semantics

// Decodes one code point at `pos` (an invalid byte decodes as itself, one
// byte long). Returns the code point and sets *len.
uint32_t DecodeUtf8(std::string_view s, size_t pos, size_t* len);
void EncodeUtf8(uint32_t cp, std::string* out);
// Byte offsets of each code point start, plus s.size() at the end.
std::vector<size_t> CodePointOffsets(std::string_view s);
size_t CodePointCount(std::string_view s);
bool IsAscii(std::string_view s);
bool IsPyWhitespace(uint32_t cp);   // str.isspace()
bool IsPyPrintable(uint32_t cp);    // str.isprintable() (approximation for rare scripts)
bool IsPyLineBreak(uint32_t cp);    // str.splitlines() boundaries
uint32_t PyLower(uint32_t cp);       // ASCII, Latin-1, Greek, Cyrillic
uint32_t PyUpper(uint32_t cp);
bool IsCased(uint32_t cp);
bool IsAlpha(uint32_t cp);
bool IsDigit(uint32_t cp);

// Python type names ("int", "str", "NoneType", ...), and jinja2's
// object_type_repr ("dict object", "None").
std::string TypeName(const Value& v);
std::string ObjectTypeRepr(const Value& v);

// str(v) / repr(v) as Python prints them. Strings keep their labels (in repr
// each escaped character takes its own label, the quotes the first/last).
LabelledString PyStr(const Value& v);
LabelledString PyRepr(const Value& v);
std::string FloatRepr(double d);

struct JsonOptions {
  bool ensure_ascii = false;
  bool has_indent = false;
  std::string indent;  // the indent unit
  std::string item_sep = ", ";
  std::string key_sep = ": ";
  bool sort_keys = false;
};
void ToJson(const Value& v, const JsonOptions& opts, int level, LabelledString* out);

bool Truthy(const Value& v);
bool PyEq(const Value& a, const Value& b);
// Python `<`; throws TypeError-like errors for unorderable operands.
bool PyLess(const Value& a, const Value& b, const char* op = "<");
// Raises the UndefinedError carried by `v` when it is undefined.
void CheckDefined(const Value& v);
[[noreturn]] void FailUndefined(const Value& v);

// Items of an iterable (list, tuple, iterator, dict keys, str chars,
// undefined: none); throws "'int' object is not iterable".
std::vector<Value> Iterate(const Value& v);
// len(); throws "object of type 'int' has no len()".
int64_t PyLen(const Value& v);

// ---------------------------------------------------------------------------
// Tokens and AST

enum class Tok : uint8_t {
  kData, kVarBegin, kVarEnd, kBlockBegin, kBlockEnd, kName, kString, kInt, kFloat, kOp, kEof,
};

struct Token {
  Tok type;
  std::string text;  // data, name, string value (unescaped), operator
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1;
  int col = 1;
};

// Tokenizes `source` (newlines normalized, one trailing newline dropped,
// trim_blocks and lstrip_blocks applied as jinja2 does).
std::vector<Token> Lex(std::string_view source);

enum class NodeKind : uint8_t {
  // expressions
  kConst, kName, kTuple, kList, kDict, kGetattr, kGetitem, kSlice, kNeg, kPos, kNot,
  kBinary, kAnd, kOr, kConcat, kCompare, kCondExpr, kCall, kFilter, kTest, kNSRef,
  // statements
  kOutput, kIf, kFor, kSet, kSetBlock, kMacro, kCallBlock, kFilterBlock, kBreak,
  kContinue, kGeneration, kWith,
};

struct Node;
using NodePtr = std::unique_ptr<Node>;

struct Node {
  NodeKind kind;
  int line = 0;
  int col = 0;
  std::string name;   // Name, Getattr attribute, Filter/Test/Macro name, binary operator
  std::string attr;   // NSRef attribute
  Value constant;     // Const
  NodePtr a, b, c;    // operands (see parser.cc for each kind)
  std::vector<NodePtr> args;                              // items, call args, Output parts
  std::vector<std::pair<std::string, NodePtr>> kwargs;    // call keyword arguments
  std::vector<std::string> ops;                           // Compare operators
  std::vector<NodePtr> body, else_body;
  std::vector<std::vector<NodePtr>> branches;             // If: body of each test in args
  std::vector<std::string> params;                        // Macro/CallBlock parameters
  std::vector<NodePtr> defaults;                          // defaults of the last params
  bool uses_varargs = false, uses_kwargs = false, uses_caller = false;
  bool soft = false;  // Filter/Test whose existence is checked at run time
};

struct TemplateImpl {
  std::string name;
  std::vector<NodePtr> body;
};

// Parses tokens into a template body (throws JinjaError).
std::vector<NodePtr> ParseTokens(std::vector<Token> tokens);

bool IsKnownFilter(const std::string& name);
bool IsKnownTest(const std::string& name);

// ---------------------------------------------------------------------------
// Evaluation

class Interp;

struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
};

// Callables: builtins, bound methods, macros.
struct CallableObj : Object {
  std::string name;
  virtual Value Call(Interp& in, CallArgs& args) = 0;
};

// What builtins need from the evaluator.
class Interp {
 public:
  virtual ~Interp() = default;
  virtual Value CallValue(const Value& callee, CallArgs& args) = 0;
  virtual Value GetAttr(const Value& obj, const std::string& name) = 0;
  virtual Value GetItem(const Value& obj, const Value& key) = 0;
  virtual void CountIterations(int64_t n) = 0;
  // Fails when a string of `bytes` would exceed the output limit.
  virtual void CheckSize(size_t bytes) const = 0;
  virtual const RenderOptions& options() const = 0;
  // Namespaces can hold themselves (ns.x = ns); the evaluator clears those it
  // saw when the render ends, so that reference cycles do not leak.
  virtual void Track(std::shared_ptr<NamespaceObj> ns) = 0;
};

Rendered RenderTemplate(const TemplateImpl& tmpl, const Value& context, const RenderOptions& options);

Value ApplyFilter(Interp& in, const std::string& name, const Value& input, CallArgs& args);
bool ApplyTest(Interp& in, const std::string& name, const Value& input, CallArgs& args);
// obj.name when obj is a str/list/tuple/dict and `name` one of its methods
// (an unsafe one gives a SecurityError undefined); sets *found.
Value GetMethod(const Value& obj, const std::string& name, bool* found);
// A builtin global (range, dict, namespace, raise_exception, strftime_now,
// ...); undefined when `name` is none.
Value MakeGlobal(const std::string& name);
const std::vector<std::string>& GlobalNames();

// Python's `fmt % args` for strings (printf-style formatting).
// `max_bytes`: the output limit (a width or precision beyond it is an error).
LabelledString PercentFormat(const LabelledString& fmt, const Value& args, size_t max_bytes);

}  // namespace lorart::data::jinja

#endif  // LORART_DATA_JINJA_INTERNAL_H_
