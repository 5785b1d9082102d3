// Mutation fuzzing of the chat-template interpreter with fixed seeds. The
// published templates (templates/*.jinja) and small grammar-generated
// snippets (nested if/for/set/macro/call/filter blocks, filters, operators,
// slices) are mutated byte by byte and token by token; Parse must return a
// template or a status, and templates that parse are rendered with random
// contexts (messages of random roles and contents, non-strings, missing keys,
// nested dicts, huge ints, floats, None) under lowered limits: every render
// returns a text or a status. Adversarial inputs (deep nesting, unterminated
// tags, huge literals, huge or zero range steps and repetitions, recursion
// through macros and caller, slices with step 0, unicode identifiers) are
// listed too. A crash, a hang, a sanitizer report or an escaping exception
// fails.
#include <gtest/gtest.h>

#include "../fuzz_util.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "lorart/data/jinja/jinja.h"

namespace lorart::data::jinja {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The published templates, in name order.
std::vector<std::string> PublishedTemplates() {
  const std::string dir = std::string(LORAC_SOURCE_DIR) + "/test/runtime/jinja/templates";
  std::vector<std::string> paths;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".jinja") paths.push_back(e.path().string());
  }
  std::sort(paths.begin(), paths.end());
  std::vector<std::string> out;
  for (const auto& p : paths) out.push_back(ReadFile(p));
  return out;
}

using ::lorart::testing::FuzzScale;
using ::lorart::testing::FuzzSeed;
using ::lorart::testing::Rng;

// ---- Grammar-generated snippets ----------------------------------------------

const char* const kNames[] = {"x", "y", "m", "messages", "message", "ns", "loop", "caller",
                              "item", "i", "s", "d", "tools", "bos_token", "undefined_name",
                              "namespace", "range", "dict", "raise_exception"};
const char* const kLiterals[] = {
    "0", "1", "-1", "2", "3", "10", "1.5", "-0.0", "1e20", "1e400", "9223372036854775807",
    "0x10", "1_000", "'a'", "'abc'", "\"q\"",
    "''", "'\\n'", "'é中😀'", "none", "None", "true", "false", "True", "[]", "[1, 2, 3]",
    "['a', 'b']", "{}", "{'role': 'user', 'content': 'hi'}", "(1, 'a')", "()", "(1,)",
    "messages[0]", "loop.index", "loop.cycle('a', 'b')", "loop.cycle()", "caller()",
    "namespace(a=1)", "range(3)", "range(10**12)", "range(0, 10, 0)", "range(5, -5, -2)",
    "dict(a=1, b=2)", "'a' * 10**12", "10**12", "2**63", "-(2**63)", "[1] * 3",
};
const char* const kBinOps[] = {"+",  "-",  "*",  "/",  "//", "%",  "**", "~",   "==", "!=",
                               "<",  "<=", ">",  ">=", "in", "not in", "and", "or", "is"};
const char* const kFilters[] = {
    "length",  "string", "upper", "lower", "trim", "title", "capitalize", "list", "first",
    "last",    "reverse", "sort",  "unique", "join", "join(', ')", "tojson", "tojson(indent=2)",
    "int",     "float",   "abs",   "round", "round(2)", "default('d')", "d", "e", "escape",
    "safe",    "items",   "map(attribute='role')", "selectattr('role', 'equalto', 'user')",
    "rejectattr('content')", "select('string')", "reject", "replace('a', 'bb')",
    "indent(4)", "center(9)", "wordcount", "count", "sum", "min", "max", "batch(2)",
    "dictsort", "groupby('role')", "truncate(3)", "format(1)", "pprint", "attr('x')",
};
const char* const kTests[] = {"defined", "undefined", "none", "string", "number", "mapping",
                              "iterable", "sequence", "boolean", "integer", "float", "true",
                              "false", "divisibleby(3)", "equalto(1)", "odd", "even", "in([1])",
                              "callable", "lower", "upper", "sameas(none)"};
const char* const kMethods[] = {".strip()", ".split()", ".split(',')", ".startswith('a')",
                                ".endswith('x')", ".replace('a', 'b')", ".upper()", ".title()",
                                ".items()", ".keys()", ".values()", ".get('role')",
                                ".get('x', 1)", ".lstrip('a')", ".rstrip()", ".format(1, 2)",
                                ".append(1)", ".pop()", ".count('a')", ".find('a')",
                                ".splitlines()", ".ljust(5)", ".zfill(10**12)"};

std::string Expr(Rng& r, int depth) {
  if (depth <= 0 || r.Chance(0.25)) {
    return r.Chance(0.5) ? std::string(r.Pick(kNames)) : std::string(r.Pick(kLiterals));
  }
  switch (r.Below(11)) {
    case 0:
    case 1:
      return Expr(r, depth - 1) + " " + r.Pick(kBinOps) + " " + Expr(r, depth - 1);
    case 2:
      return Expr(r, depth - 1) + " | " + r.Pick(kFilters);
    case 3:
      return Expr(r, depth - 1) + " is " + (r.Chance(0.3) ? "not " : "") + r.Pick(kTests);
    case 4:
      return "(" + Expr(r, depth - 1) + ")";
    case 5: {  // subscripts and slices
      std::string s = Expr(r, depth - 1) + "[";
      static const char* const kIdx[] = {"0", "-1", "1:", ":-1", "::-1", "::0", "::2",
                                         "1:2:0", "'role'", "'content'", "9223372036854775807",
                                         "-9223372036854775808", ":(-9223372036854775807-1)",
                                         "::(-9223372036854775807-1)", "none", "[]"};
      return s + r.Pick(kIdx) + "]";
    }
    case 6:
      return Expr(r, depth - 1) + r.Pick(kMethods);
    case 7:
      return (r.Chance(0.5) ? "not " : "-") + Expr(r, depth - 1);
    case 8:
      return Expr(r, depth - 1) + " if " + Expr(r, depth - 1) + " else " + Expr(r, depth - 1);
    case 9:
      return "[" + Expr(r, depth - 1) + ", " + Expr(r, depth - 1) + "]";
    default:
      return "{" + Expr(r, depth - 1) + ": " + Expr(r, depth - 1) + "}";
  }
}

std::string Block(Rng& r, int depth);

std::string Body(Rng& r, int depth) {
  std::string s;
  for (size_t i = 0, n = 1 + r.Below(3); i < n; ++i) s += Block(r, depth);
  return s;
}

std::string Block(Rng& r, int depth) {
  static const char* const kOpen[] = {"{%", "{%-", "{%+"};
  static const char* const kClose[] = {"%}", "-%}", "+%}"};
  auto tag = [&](const std::string& inner) {
    return std::string(r.Pick(kOpen)) + " " + inner + " " + r.Pick(kClose);
  };
  if (depth <= 0 || r.Chance(0.2)) {
    switch (r.Below(4)) {
      case 0: return "text\n  ";
      case 1: return "{{ " + Expr(r, 3) + " }}";
      case 2: return "{# comment #}";
      default: return r.Chance(0.5) ? "{{- " + Expr(r, 2) + " -}}" : " é\n";
    }
  }
  switch (r.Below(10)) {
    case 0:
      return tag("if " + Expr(r, 2)) + Body(r, depth - 1) +
             (r.Chance(0.5) ? tag("elif " + Expr(r, 2)) + Body(r, depth - 1) : "") +
             (r.Chance(0.5) ? tag("else") + Body(r, depth - 1) : "") + tag("endif");
    case 1:
      return tag("for " + std::string(r.Chance(0.3) ? "k, v" : "item") + " in " + Expr(r, 2) +
                 (r.Chance(0.2) ? " if " + Expr(r, 1) : "")) +
             Body(r, depth - 1) + (r.Chance(0.2) ? tag("break") : "") +
             (r.Chance(0.2) ? tag("continue") : "") +
             (r.Chance(0.3) ? tag("else") + Body(r, depth - 1) : "") + tag("endfor");
    case 2:
      return tag("set " + std::string(r.Pick(kNames)) + " = " + Expr(r, 3));
    case 3:
      return tag("set ns = namespace(a=" + Expr(r, 1) + ")") +
             tag("set ns.a = " + Expr(r, 2)) + "{{ ns.a }}";
    case 4:
      return tag("set s") + Body(r, depth - 1) + tag("endset") + "{{ s }}";
    case 5:
      return tag("macro m(a, b=" + Expr(r, 1) + ")") + Body(r, depth - 1) + tag("endmacro") +
             "{{ m(" + Expr(r, 1) + ") }}";
    case 6:
      return tag("macro m(x)") + "[{{ caller(x) }}]" + tag("endmacro") + tag("call(v) m(1)") +
             Body(r, depth - 1) + "{{ v }}" + tag("endcall");
    case 7:
      return tag("filter upper") + Body(r, depth - 1) + tag("endfilter");
    case 8:
      return tag("generation") + Body(r, depth - 1) + tag("endgeneration");
    default:
      return "{% raw %}{{ " + Expr(r, 1) + " }}{% endraw %}";
  }
}

// ---- Mutations ---------------------------------------------------------------

// Tokens inserted by token-level mutations.
const char* const kTokens[] = {
    "{{", "}}", "{%", "%}", "{#", "#}", "{%-", "-%}", "{{-", "-}}", "if", "elif", "else", "endif",
    "for", "in", "endfor", "set", "endset", "macro", "endmacro", "call", "endcall", "filter",
    "endfilter", "raw", "endraw", "generation", "endgeneration", "break", "continue", "not",
    "and", "or", "is", "|", ".", ",", ":", "(", ")", "[", "]", "{", "}", "~", "+", "-", "*", "**",
    "/", "//", "%", "==", "=", "!", "'", "\"", "\\", "loop", "caller", "caller()", "loop.cycle()",
    "10**12", "9223372036854775807", "-9223372036854775808", "1e400", "0", "-1", "'a' * 10**12",
    "range(10**18)", "range(1, 10, 0)", "[::0]", "[::-1]", "none", "messages", "message",
    "namespace()", "raise_exception('x')", "x", "é", "\xff", "\xc3", "\n", " ", "\r",
};

// Splits `s` into rough tokens: runs of letters/digits, runs of spaces,
// single other bytes (UTF-8 sequences kept whole).
std::vector<std::string> Tokenize(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  auto word = [](unsigned char c) { return std::isalnum(c) || c == '_' || c >= 0x80; };
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t j = i + 1;
    if (word(c)) {
      while (j < s.size() && word(static_cast<unsigned char>(s[j]))) ++j;
    } else if (c == ' ') {
      while (j < s.size() && s[j] == ' ') ++j;
    } else if ((c == '{' || c == '%' || c == '}' || c == '#') && j < s.size() &&
               (s[j] == '{' || s[j] == '%' || s[j] == '}' || s[j] == '#' || s[j] == '-')) {
      ++j;
    }
    out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

void MutateBytes(Rng& r, std::string* s) {
  switch (r.Below(6)) {
    case 0:
      if (!s->empty()) (*s)[r.Below(s->size())] ^= static_cast<char>(1u << r.Below(8));
      break;
    case 1:
      s->insert(r.Below(s->size() + 1), 1, static_cast<char>(r.Below(256)));
      break;
    case 2:
      if (!s->empty()) s->erase(r.Below(s->size()), 1 + r.Below(24));
      break;
    case 3: {
      if (s->empty()) break;
      std::string piece = s->substr(r.Below(s->size()), 1 + r.Below(60));
      s->insert(r.Below(s->size() + 1), piece);
      break;
    }
    case 4:
      s->resize(r.Below(s->size() + 1));
      break;
    default:
      s->insert(r.Below(s->size() + 1), r.Pick(kTokens));
      break;
  }
}

void MutateTokens(Rng& r, std::string* s) {
  std::vector<std::string> t = Tokenize(*s);
  if (t.empty()) {
    *s = r.Pick(kTokens);
    return;
  }
  switch (r.Below(6)) {
    case 0:  // delete a token or a run of them
      t.erase(t.begin() + static_cast<std::ptrdiff_t>(r.Below(t.size())));
      break;
    case 1:  // duplicate one
    {
      size_t k = r.Below(t.size());
      t.insert(t.begin() + static_cast<std::ptrdiff_t>(k), t[k]);
      break;
    }
    case 2:  // swap two
      std::swap(t[r.Below(t.size())], t[r.Below(t.size())]);
      break;
    case 3:  // replace one by a token of the dictionary
      t[r.Below(t.size())] = r.Pick(kTokens);
      break;
    case 4:  // insert a dictionary token
      t.insert(t.begin() + static_cast<std::ptrdiff_t>(r.Below(t.size() + 1)), r.Pick(kTokens));
      break;
    default: {  // copy a span of tokens elsewhere
      size_t b = r.Below(t.size());
      size_t e = std::min(t.size(), b + 1 + r.Below(12));
      std::vector<std::string> span(t.begin() + static_cast<std::ptrdiff_t>(b),
                                    t.begin() + static_cast<std::ptrdiff_t>(e));
      t.insert(t.begin() + static_cast<std::ptrdiff_t>(r.Below(t.size() + 1)), span.begin(),
               span.end());
      break;
    }
  }
  s->clear();
  for (const auto& x : t) *s += x;
}

// ---- Contexts ----------------------------------------------------------------

Value RandomScalar(Rng& r, uint32_t label) {
  static const char* const kStrings[] = {"hi", "", "Hello, world!", "é中😀", "<s>",
                                         "{{ not a template }}", "a\nb\n", "   ", "\xff\xfe",
                                         "tool_call", "<|im_end|>", "[INST]", "\"quoted\""};
  switch (r.Below(12)) {
    case 0: return Value::None();
    case 1: return Value::Bool(r.Chance(0.5));
    case 2: return Value::Int(std::numeric_limits<int64_t>::max());
    case 3: return Value::Int(std::numeric_limits<int64_t>::min());
    case 4: return Value::Int(static_cast<int64_t>(r.Below(100)) - 50);
    case 5: return Value::Double(r.Chance(0.5) ? 1e300 : -2.5);
    case 6: return Value::Double(r.Chance(0.5) ? std::numeric_limits<double>::infinity()
                                               : std::numeric_limits<double>::quiet_NaN());
    case 7: return Value::Undefined();
    case 8: return Value::String(std::string(1 + r.Below(3000), 'x'), label);
    default: return Value::String(r.Pick(kStrings), label);
  }
}

Value RandomValue(Rng& r, int depth, uint32_t label) {
  if (depth <= 0 || r.Chance(0.5)) return RandomScalar(r, label);
  if (r.Chance(0.5)) {
    std::vector<Value> items;
    for (size_t i = 0, n = r.Below(4); i < n; ++i) items.push_back(RandomValue(r, depth - 1, label));
    return r.Chance(0.8) ? Value::List(std::move(items)) : Value::Tuple(std::move(items));
  }
  static const char* const kKeys[] = {"type", "text", "role", "content", "name", "arguments",
                                      "function", "", "é"};
  Value d = Value::Dict();
  for (size_t i = 0, n = r.Below(4); i < n; ++i) d.Insert(r.Pick(kKeys), RandomValue(r, depth - 1, label));
  if (r.Chance(0.2)) d.Insert(Value::Int(1), Value::String("int key"));
  return d;
}

Value RandomMessage(Rng& r, uint32_t label) {
  static const char* const kRoles[] = {"system", "user", "assistant", "tool", "ipython",
                                       "developer", "", "USER", "function"};
  Value m = Value::Dict();
  if (!r.Chance(0.05)) {
    m.Insert("role", r.Chance(0.9) ? Value::String(r.Pick(kRoles)) : RandomScalar(r, 0));
  }
  if (!r.Chance(0.05)) {
    Value content;
    switch (r.Below(5)) {
      case 0: {  // a list of parts
        std::vector<Value> parts;
        for (size_t i = 0, n = r.Below(3); i < n; ++i) {
          Value p = Value::Dict();
          p.Insert("type", Value::String(r.Chance(0.7) ? "text" : "image"));
          p.Insert("text", Value::String("part", label));
          parts.push_back(std::move(p));
        }
        content = Value::List(std::move(parts));
        break;
      }
      case 1: content = RandomValue(r, 3, label); break;
      default: content = Value::String(r.Chance(0.5) ? "Hello there" : "ok <think>x</think> y", label);
    }
    m.Insert("content", content);
  }
  if (r.Chance(0.15)) {
    Value call = Value::Dict();
    Value f = Value::Dict();
    f.Insert("name", Value::String("get_weather"));
    f.Insert("arguments", r.Chance(0.5) ? RandomValue(r, 2, label) : Value::String("{\"a\": 1}"));
    call.Insert("function", f);
    call.Insert("type", Value::String("function"));
    m.Insert("tool_calls", Value::List({call}));
  }
  if (r.Chance(0.1)) m.Insert("reasoning_content", Value::String("thinking...", label));
  if (r.Chance(0.1)) m.Insert("tool_call_id", RandomScalar(r, 0));
  return m;
}

Value RandomContext(Rng& r) {
  Value ctx = Value::Dict();
  std::vector<Value> messages;
  size_t n = r.Below(6);
  for (size_t i = 0; i < n; ++i) messages.push_back(RandomMessage(r, static_cast<uint32_t>(i + 1)));
  if (r.Chance(0.9)) {
    ctx.Insert("messages", r.Chance(0.95) ? Value::List(std::move(messages)) : RandomScalar(r, 0));
  }
  ctx.Insert("add_generation_prompt", r.Chance(0.9) ? Value::Bool(r.Chance(0.5)) : RandomScalar(r, 0));
  if (r.Chance(0.7)) ctx.Insert("bos_token", Value::String("<s>"));
  if (r.Chance(0.7)) ctx.Insert("eos_token", Value::String("</s>"));
  if (r.Chance(0.3)) {
    Value tool = Value::Dict();
    tool.Insert("type", Value::String("function"));
    Value f = Value::Dict();
    f.Insert("name", Value::String("get_weather"));
    f.Insert("description", Value::String("Get the weather"));
    f.Insert("parameters", RandomValue(r, 3, 0));
    tool.Insert("function", f);
    ctx.Insert("tools", r.Chance(0.8) ? Value::List({tool}) : RandomValue(r, 2, 0));
  } else if (r.Chance(0.5)) {
    ctx.Insert("tools", Value::None());
  }
  if (r.Chance(0.3)) ctx.Insert("enable_thinking", Value::Bool(r.Chance(0.5)));
  if (r.Chance(0.2)) ctx.Insert("x", RandomValue(r, 3, 7));
  if (r.Chance(0.1)) ctx.Insert("range", Value::Int(1));  // a context entry shadows a builtin
  return ctx;
}

RenderOptions FuzzOptions() {
  RenderOptions o;
  o.now_unix_seconds = 1700000000;
  o.max_output_bytes = size_t{1} << 20;
  o.max_loop_iterations = 100000;
  o.max_call_depth = 64;
  return o;
}

struct Counts {
  int parsed = 0, rejected = 0, rendered = 0, render_errors = 0;
};

// Renders `t` and checks what a successful render promises.
void CheckRender(const Template& t, const Value& ctx, const RenderOptions& o, Counts* counts) {
  StatusOr<Rendered> r = t.Render(ctx, o);
  if (!r.ok()) {
    ++counts->render_errors;
    ASSERT_FALSE(r.status().message().empty());
    return;
  }
  ++counts->rendered;
  const Rendered& out = *r;
  ASSERT_LE(out.text.size(), o.max_output_bytes);
  size_t pos = 0;
  for (const LabelRun& run : out.runs) {
    ASSERT_EQ(run.begin, pos);
    ASSERT_LT(run.begin, run.end);
    pos = run.end;
  }
  ASSERT_EQ(pos, out.text.size());
  for (const auto& g : out.generation) {
    ASSERT_LE(g.first, g.second);
    ASSERT_LE(g.second, out.text.size());
  }
}

// Parses `source`; renders it `renders` times when it parses.
void ParseAndRender(const std::string& source, Rng& r, int renders, Counts* counts) {
  StatusOr<Template> t = Template::Parse(source, "fuzz.jinja");
  if (!t.ok()) {
    ++counts->rejected;
    ASSERT_EQ(t.status().message().rfind("fuzz.jinja", 0), 0u) << t.status().message();
    return;
  }
  ++counts->parsed;
  const RenderOptions o = FuzzOptions();
  for (int i = 0; i < renders; ++i) {
    CheckRender(*t, RandomContext(r), o, counts);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST(JinjaFuzzTest, PublishedTemplatesRenderRandomContexts) {
  const std::vector<std::string> templates = PublishedTemplates();
  ASSERT_GE(templates.size(), 13u);
  Rng r(FuzzSeed(11));
  Counts counts;
  for (const std::string& source : templates) {
    ParseAndRender(source, r, 60, &counts);
    if (HasFatalFailure()) return;
  }
  EXPECT_EQ(counts.rejected, 0);
  EXPECT_GT(counts.rendered, 100);
  EXPECT_GT(counts.render_errors, 50);  // raise_exception on odd roles, bad types
}

// `rounds` mutations of `s`, each of its tokens with probability
// `token_chance`, else of its bytes.
void Mutate(Rng& r, size_t rounds, double token_chance, std::string* s) {
  for (size_t k = 0; k < rounds; ++k) {
    if (r.Chance(token_chance)) {
      MutateTokens(r, s);
    } else {
      MutateBytes(r, s);
    }
  }
}

TEST(JinjaFuzzTest, MutatedTemplatesParseAndRenderOrFailCleanly) {
  const std::vector<std::string> templates = PublishedTemplates();
  const int kMutantsPerTemplate = 150 * FuzzScale();  // 13 templates: ~2000 sources
  Rng r(FuzzSeed(0x1171a));
  Counts counts;
  for (const std::string& seed : templates) {
    for (int i = 0; i < kMutantsPerTemplate; ++i) {
      std::string s = seed;
      Mutate(r, 1 + r.Below(3), 0.5, &s);
      ParseAndRender(s, r, 2, &counts);
      if (HasFatalFailure()) {
        ADD_FAILURE() << "template: " << s;
        return;
      }
    }
  }
  std::printf("jinja fuzz (published): %d parsed, %d rejected; %d renders, %d render errors\n",
              counts.parsed, counts.rejected, counts.rendered, counts.render_errors);
  EXPECT_GT(counts.parsed, 300);
  EXPECT_GT(counts.rejected, 300);
  EXPECT_GT(counts.rendered, 100);
}

TEST(JinjaFuzzTest, GeneratedSnippetsParseAndRenderOrFailCleanly) {
  Rng r(FuzzSeed(0x5eed));
  Counts counts;
  for (int i = 0; i < 3000 * FuzzScale(); ++i) {
    std::string s = Body(r, 1 + static_cast<int>(r.Below(4)));
    if (r.Chance(0.5)) Mutate(r, 1 + r.Below(2), 0.6, &s);
    ParseAndRender(s, r, 2, &counts);
    if (HasFatalFailure()) {
      ADD_FAILURE() << "template: " << s;
      return;
    }
  }
  std::printf("jinja fuzz (generated): %d parsed, %d rejected; %d renders, %d render errors\n",
              counts.parsed, counts.rejected, counts.rendered, counts.render_errors);
  EXPECT_GT(counts.parsed, 1000);
  EXPECT_GT(counts.rendered, 500);
}

std::string Repeat(const std::string& s, size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (size_t i = 0; i < n; ++i) out += s;
  return out;
}

// Adversarial sources: each parses or not, renders or not, and returns.
TEST(JinjaFuzzTest, AdversarialTemplatesReturn) {
  const size_t kDeep = 10000;
  const std::vector<std::string> sources = {
      // deep nesting
      "{{ " + Repeat("(", kDeep) + "1" + Repeat(")", kDeep) + " }}",
      "{{ " + Repeat("[", kDeep) + Repeat("]", kDeep) + " }}",
      "{{ " + Repeat("{'a': ", kDeep) + "1" + Repeat("}", kDeep) + " }}",
      "{{ " + Repeat("[", kDeep),
      "{{ x" + Repeat(" | string", kDeep) + " }}",
      "{{ x" + Repeat(".a", kDeep) + " }}",
      "{{ x" + Repeat("[0]", kDeep) + " }}",
      "{{ f" + Repeat("()", kDeep) + " }}",
      "{{ " + Repeat("not ", kDeep) + "x }}",
      "{{ " + Repeat("-", kDeep) + "1 }}",
      "{{ 1" + Repeat(" ~ 1", kDeep) + " }}",
      "{{ 1" + Repeat(" < 1", kDeep) + " }}",
      "{{ 1" + Repeat(" and 1", kDeep) + " }}",
      "{{ 1" + Repeat(" ** 1", kDeep) + " }}",
      "{{ 1" + Repeat(" if 1 else 1", kDeep) + " }}",
      "{{ x" + Repeat(" is defined", 100) + " }}",
      Repeat("{% if true %}", kDeep) + "x" + Repeat("{% endif %}", kDeep),
      Repeat("{% for i in [1] %}", kDeep),
      Repeat("{% macro m() %}", 300) + Repeat("{% endmacro %}", 300),
      Repeat("{% filter upper %}", kDeep),
      Repeat("{{ x }}", 20000),
      // unterminated tags and strings
      "{% if", "{% if x", "{% if x %}", "{{", "{{ x", "{{ 'abc", "{{ \"abc }}", "{#", "{# x",
      "{% raw %}x", "{% for x in y %}", "{% macro m() %}", "{% call m() %}", "{% set x %}",
      "{% set x = %}", "{{ x | }}", "{{ x. }}", "{{ x[ }}", "{{ (1, }}", "{{ {1: }}",
      "{% generation %}", "{% endif %}", "{% else %}", "{%- -%}", "{{}}", "{% %}", "%}", "}}",
      "{{ 'a' 'b' }}", "{{ 1 2 }}", "{% for %}{% endfor %}", "{% for in x %}{% endfor %}",
      "{% set = 1 %}", "{% set 1 = 1 %}", "{% set x.y.z = 1 %}", "{% macro 1() %}{% endmacro %}",
      // huge literals and integer edge cases
      "{{ 99999999999999999999999999999999999999 }}", "{{ " + std::string(5000, '9') + " }}",
      "{{ 1" + std::string(400, '0') + ".5 }}", "{{ 1e99999 }}", "{{ 0x }}", "{{ 1_ }}",
      "{{ 9223372036854775807 + 1 }}", "{{ -9223372036854775807 - 2 }}",
      "{{ (-9223372036854775807 - 1) // -1 }}", "{{ (-9223372036854775807 - 1) % -1 }}",
      "{{ (-9223372036854775807 - 1) * -1 }}", "{{ -(-9223372036854775807 - 1) }}",
      "{{ (-9223372036854775807 - 1) | abs }}", "{{ 2 ** 64 }}", "{{ 2 ** 63 }}", "{{ 2 ** -1 }}",
      "{{ 0 ** -1 }}", "{{ (-2) ** 63 }}", "{{ 10 ** 10 ** 10 }}", "{{ 1e308 * 10 }}",
      "{{ 1 / 0 }}", "{{ 1 // 0 }}", "{{ 1 % 0 }}", "{{ 1.0 // 0.0 }}", "{{ 1.0 % 0.0 }}",
      "{{ 1e400 | int }}", "{{ -1e400 | int }}", "{{ (1e400 - 1e400) | int }}",
      "{{ 1e19 | int }}", "{{ -1e19 | int }}", "{{ 9.3e18 | int }}", "{{ '1e400' | float | int }}",
      "{{ 'nan' | float | int }}", "{{ '99999999999999999999' | int }}", "{{ 1e300 | round(2) }}",
      "{{ 3.5 | round(-400) }}", "{{ 1.5 | round(400) }}", "{{ 1e400 | round }}",
      "{{ (1e400 - 1e400) | round }}", "{{ 1e400 | string }}", "{{ (1e400 - 1e400) | tojson }}",
      "{{ 9223372036854775807 | float | int }}", "{{ 1e400 | abs }}", "{{ [1e400, 1] | sort }}",
      "{{ [1e400 - 1e400, 1, 0] | sort }}", "{{ [1e400 - 1e400, 1] | max }}",
      "{{ '%d' % 1e300 }}", "{{ '%d' % 1e400 }}", "{{ '%.1000f' % 1.0 }}",
      "{{ '%999999999d' % 1 }}", "{{ '%.999999999f' % 1.0 }}", "{{ '%*d' % (5, 1) }}",
      "{{ '{:>999999999}'.format(1) }}", "{{ '{:.999999999f}'.format(1.5) }}",
      "{{ '{0[0]}'.format([]) }}", "{{ '{' .format(1) }}", "{{ '%' % 1 }}", "{{ '%(a)s' % 1 }}",
      "{{ 1e400 | int is number }}", "{{ 9223372036854775807 | string | int + 1 }}",
      // ranges
      "{{ range(10**12) | list }}", "{{ range(10**12) | length }}", "{{ range(0, 10, 0) }}",
      "{{ range(-10**18, 10**18) | length }}", "{{ range(-9223372036854775807 - 1, 9223372036854775807) | length }}",
      "{{ range(0, -9223372036854775807 - 1, -1) | length }}",
      "{{ range(9223372036854775807 - 1, 9223372036854775807) | list }}",
      "{{ range(0, 9223372036854775807, 9223372036854775807) | list }}",
      "{{ range(-9223372036854775807 - 1, 9223372036854775807, 9223372036854775807) | list }}",
      "{{ range(9223372036854775807, -9223372036854775807 - 1, -9223372036854775807 - 1) | list }}",
      "{{ range(5, 0, -9223372036854775807 - 1) | list }}", "{{ range(-5) | list }}",
      "{{ range(1.5) }}", "{{ range('a') }}", "{{ range() }}", "{{ range(1, 2, 3, 4) }}",
      "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
      "{% for i in range(99999) %}{{ i }}{% endfor %}",
      // repetition
      "{{ 'a' * 10**12 }}", "{{ 'a' * (2**62) }}", "{{ '' * 10**18 }}", "{{ [] * 10**18 }}",
      "{{ 'aaaaaaaaaaaaaaaa' * 2**60 }}", "{{ [1, 2, 3, 4] * 2**62 }}", "{{ () * 10**18 }}", "{{ 'ab' * 9223372036854775807 }}",
      "{{ 'ab' * (-9223372036854775807 - 1) }}", "{{ 'a' * -1 }}", "{{ [1] * 10**12 }}",
      "{{ [1, 2] * 9223372036854775807 }}", "{{ (1,) * 10**12 }}", "{{ 10**12 * 'a' }}",
      "{{ ([1] * 100000) * 100000 }}", "{{ (([1] * 1000) * 1000) * 1000 }}",
      "{{ ('a' * 1000).replace('', 'b' * 1000) }}", "{{ 'a' | center(10**12) }}",
      "{{ 'a' | center(-5) }}", "{{ 'a' | indent(10**9) }}", "{{ 'a\\nb' | indent(10**9) }}",
      "{{ 'a'.ljust(10**12) }}", "{{ 'a'.rjust(9223372036854775807) }}", "{{ 'a'.zfill(10**12) }}",
      "{{ 'a'.center(10**12, 'x') }}", "{{ ('a' * 1000) | wordwrap(0) }}",
      "{{ 'abc'.split('') }}", "{{ 'abc'.replace('', '') }}", "{{ 'abc'.count('') }}",
      "{{ 'x' | batch(0) | list }}", "{{ [1] | batch(-1) | list }}", "{{ [1] | batch(10**12) | list }}",
      "{{ [1, 2] | join('x' * 1000000) }}", "{{ 'a' | truncate(-1) }}",
      "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | length }}",
      "{% set ns = namespace(d={}) %}{% for i in range(64) %}{% set ns.d = {'a': ns.d, 'b': ns.d} %}{% endfor %}{{ ns.d | tojson }}",
      "{% set ns = namespace(d=[]) %}{% for i in range(64) %}{% set ns.d = [ns.d, ns.d] %}{% endfor %}{{ ns.d | length }}{{ ns.d | string | length }}",
      "{% set ns = namespace(d=[]) %}{% for i in range(3000) %}{% set ns.d = [ns.d] %}{% endfor %}{{ ns.d }}",
      "{% set ns = namespace(d=[]) %}{% for i in range(3000) %}{% set ns.d = [ns.d] %}{% endfor %}{{ ns.d | tojson }}",
      "{% set ns = namespace(d=[]) %}{% for i in range(3000) %}{% set ns.d = {'k': ns.d} %}{% endfor %}{{ ns.d == ns.d }}{{ ns.d | length }}{{ [ns.d] | sort }}",
      "{% set ns = namespace(d=[]) %}{% for i in range(3000) %}{% set ns.d = [ns.d] %}{% endfor %}{{ ns.d is iterable }}{{ ns.d in [ns.d] }}{{ ns.d | unique | list | length }}",
      // recursion
      "{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}",
      "{% macro m() %}{% call m() %}x{% endcall %}{% endmacro %}{{ m() }}",
      "{% macro m() %}{{ caller() }}{% endmacro %}{% call m() %}{{ caller() }}{% endcall %}",
      "{% macro m() %}{{ caller() }}{% endmacro %}{% call m() %}{% call m() %}{{ caller() }}{% endcall %}{% endcall %}",
      "{% macro m(f) %}{{ f(f) }}{% endmacro %}{{ m(m) }}",
      "{% set ns = namespace(f=none) %}{% macro a() %}{{ ns.f() }}{% endmacro %}{% set ns.f = a %}{{ a() }}",
      "{% macro m(n) %}{% if n > 0 %}{{ m(n - 1) }}{{ m(n - 1) }}{% endif %}{% endmacro %}{{ m(40) }}",
      "{% macro m(n) %}{% if n > 0 %}{{ m(n - 1) }}{{ m(n - 1) }}{% else %}x{% endif %}{% endmacro %}{{ m(40) }}",
      "{% macro m(n) %}{% for i in range(10) %}{{ m(n - 1) if n > 0 }}{% endfor %}{% endmacro %}{{ m(12) }}",
      "{% macro m() %}{{ caller }}{% endmacro %}{{ m() }}",
      "{{ caller() }}", "{% macro m() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, a=3) }}",
      // loops
      "{% for x in [1] %}{{ loop.cycle() }}{% endfor %}",
      "{% for x in [1, 2] %}{{ loop.cycle() }}{{ loop.cycle }}{{ loop }}{{ loop.cycle('a') }}{% endfor %}",
      "{% for x in [] %}{% else %}{{ loop.index }}{% endfor %}", "{{ loop.cycle('a') }}",
      "{% for a, b in [1, [1], [1, 2, 3]] %}{{ a }}{% endfor %}",
      "{% for x in 5 %}{% endfor %}", "{% for x in none %}{% endfor %}",
      "{% for x in {'a': 1} %}{{ x }}{% endfor %}", "{% for x in 'abc' %}{{ x }}{% endfor %}",
      "{% for x in messages %}{% set messages = [] %}{% endfor %}",
      "{% for x in range(3) %}{{ loop.previtem }}{{ loop.nextitem }}{{ loop.revindex }}{% endfor %}",
      // slices
      "{{ [1, 2][::0] }}", "{{ 'abc'[::0] }}", "{{ 'abc'[1:2:0] }}",
      "{{ 'abc'[(-9223372036854775807 - 1):] }}", "{{ 'abc'[:(-9223372036854775807 - 1)] }}",
      "{{ 'abc'[::(-9223372036854775807 - 1)] }}", "{{ [1, 2, 3][::(-9223372036854775807 - 1)] }}",
      "{{ [1, 2, 3][9223372036854775807::-1] }}", "{{ 'abc'[9223372036854775807::-9223372036854775807] }}",
      "{{ [1, 2][-9223372036854775807 - 1] }}", "{{ 'ab'[-9223372036854775807 - 1] }}",
      "{{ [1, 2][9223372036854775807] }}", "{{ 'é中'[1:] }}", "{{ 'é中'[::-1] }}", "{{ 'abc'[1.5] }}",
      "{{ [1][none:none:none] }}", "{{ 'abc'['a':] }}", "{{ (1, 2)[::-1] }}", "{{ {}[::1] }}",
      "{{ range(10)[::0] }}", "{{ range(10)[2:] }}",
      // unicode identifiers and odd bytes
      "{{ café }}", "{% set 変数 = 1 %}{{ 変数 }}", "{{ x.é }}", "{% set é = 'a' %}{{ é * 3 }}",
      "{{ 'a\xff' }}", "\xff{{ 1 }}\xfe", "{{ x\xc3 }}", std::string("{{ 1 }}\0{{ 2 }}", 15),
      "{{ '\\u0000\\x00\\N{DIGIT ONE}\\U0010FFFF\\U00110000\\ud800' }}",
      "{{ strftime_now('%Y' * 100000) }}", "{{ strftime_now('%') }}", "{{ strftime_now('') }}",
      "{{ strftime_now(1) }}", "{{ raise_exception() }}", "{{ raise_exception(1) }}",
      "{{ namespace(1) }}", "{{ dict(1) }}", "{{ messages | tojson(indent=10**9) }}",
      "{{ messages | tojson(indent=-1) }}", "{{ {'a': 1} | tojson(indent='\\t') }}",
      "{{ x.__class__ }}", "{{ ''.__class__.__mro__ }}", "{{ x.append }}", "{{ messages.pop() }}",
      "{{ messages.append(1) }}", "{{ (messages | first).update({}) }}",
  };
  Rng r(99);
  Counts counts;
  for (const std::string& s : sources) {
    SCOPED_TRACE(s.substr(0, 200));
    ParseAndRender(s, r, 2, &counts);
    if (HasFatalFailure()) return;
  }
  std::printf("jinja adversarial: %d parsed, %d rejected; %d renders, %d render errors\n",
              counts.parsed, counts.rejected, counts.rendered, counts.render_errors);
}

// strftime_now with times far outside what localtime can represent.
TEST(JinjaFuzzTest, StrftimeNowWithOddTimes) {
  auto t = Template::Parse("{{ strftime_now('%Y-%m-%d %H:%M:%S %A %B %j %Z') }}", "t.jinja");
  ASSERT_TRUE(t.ok());
  for (int64_t now : {int64_t{0}, int64_t{-1}, int64_t{-2}, std::numeric_limits<int64_t>::max(),
                      std::numeric_limits<int64_t>::min(), int64_t{1} << 40, int64_t{1} << 56}) {
    RenderOptions o = FuzzOptions();
    o.now_unix_seconds = now;
    auto r = t->Render(Value::Dict(), o);
    (void)r;  // ok or a status
  }
}

// ---- Regressions: inputs that crashed, hung or tripped a sanitizer ----------

std::string RenderText(const std::string& source, const RenderOptions& o = RenderOptions()) {
  auto t = Template::Parse(source, "t.jinja");
  if (!t.ok()) return "PARSE ERROR: " + t.status().message();
  auto r = t->Render(Value::Dict(), o);
  return r.ok() ? r->text : "ERROR: " + r.status().message();
}

// INT64_MIN // -1 and INT64_MIN % -1 were undefined (UBSan: division
// overflow); range() stepped past INT64_MAX (UBSan: signed overflow).
TEST(JinjaFuzzRegressions, IntegerEdges) {
  EXPECT_EQ(RenderText("{{ (-9223372036854775807 - 1) // -1 }}"),
            "ERROR: t.jinja:1:31: integer overflow");
  EXPECT_EQ(RenderText("{{ (-9223372036854775807 - 1) % -1 }}|{{ -7 % -1 }}|{{ 7 % -1 }}"), "0|0|0");
  EXPECT_EQ(RenderText("{{ range(9223372036854775806, 9223372036854775807, 9223372036854775807) | list }}"),
            "[9223372036854775806]");
  EXPECT_EQ(RenderText("{{ range(-9223372036854775807 - 1, 9223372036854775807, 9223372036854775807) | list }}"),
            "[-9223372036854775808, -1, 9223372036854775806]");
  EXPECT_EQ(RenderText("{{ range(9223372036854775807, -9223372036854775807 - 1, -9223372036854775807 - 1) | list }}"),
            "[9223372036854775807, -1]");
  // A float outside int64 converted to int (undefined in C++).
  EXPECT_EQ(RenderText("{{ 1e19 | int }}"), "ERROR: t.jinja:1:11: integer overflow");
  EXPECT_EQ(RenderText("{{ -1e19 | int(5) }}"), "ERROR: t.jinja:1:12: integer overflow");
  EXPECT_EQ(RenderText("{{ 1e400 | int }}|{{ 2.7 | int }}|{{ '-9e18' | int }}"), "0|2|-9000000000000000000");
  EXPECT_EQ(RenderText("{{ '%d' % 1e300 }}"), "ERROR: t.jinja:1:9: integer overflow");
  EXPECT_EQ(RenderText("{{ '%d' % 2.9 }}|{{ '%c' % 233 }}"), "2|é");
  EXPECT_NE(RenderText("{{ '%c' % -1 }}").find("OverflowError: %c arg not in range(0x110000)"),
            std::string::npos);
}

// Repetitions that looped (almost) forever: '' * 10**18 repeated nothing
// 10**18 times; a length times a count that wrapped around 2**64 passed the
// output check ('x' * 16 * 2**60, center(2**62, '😀')).
TEST(JinjaFuzzRegressions, RepetitionsAreBounded) {
  EXPECT_EQ(RenderText("[{{ '' * 10**18 }}][{{ [] * 10**18 }}][{{ () * 10**18 }}]"), "[][[]][()]");
  EXPECT_NE(RenderText("{{ 'xxxxxxxxxxxxxxxx' * 2**60 }}").find("would exceed"), std::string::npos);
  EXPECT_NE(RenderText("{{ [1, 2, 3, 4] * 2**62 }}").find("would exceed"), std::string::npos);
  EXPECT_NE(RenderText("{{ 'a'.center(2**62, '😀') }}").find("would exceed"), std::string::npos);
  EXPECT_EQ(RenderText("{{ 'a'.center(5, '😀') }}"), "😀😀a😀😀");
  // A list doubled in a loop: the slots the render's lists hold are counted
  // against four times the output limit (its length alone, checked as a
  // repetition's is, let it reach gigabytes at the default limit).
  RenderOptions o;
  o.max_output_bytes = 1 << 20;
  EXPECT_NE(RenderText("{% set ns = namespace(l=[1]) %}{% for i in range(64) %}"
                       "{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | length }}",
                       o)
                .find("the template's strings, lists and dicts would hold more than 4194304 bytes"),
            std::string::npos);
}

// Many large strings kept at once: each is below the output limit, together
// they are not (4096 strings of 1 MiB took 4 GiB and rendered).
TEST(JinjaFuzzRegressions, LiveValuesAreBounded) {
  RenderOptions o;
  o.max_output_bytes = 1 << 20;
  const std::string keep_many =
      "{% set ns = namespace(l=[]) %}{% for i in range(64) %}"
      "{% set ns.l = ns.l + [('x' * 100000) ~ i] %}{% endfor %}{{ ns.l | length }}";
  EXPECT_NE(RenderText(keep_many, o).find("would hold more than 4194304 bytes"), std::string::npos);
  // The same strings made and dropped one at a time are fine: only what is
  // held at once counts.
  EXPECT_EQ(RenderText("{% for i in range(200) %}{% set s = ('x' * 100000) ~ i %}{% endfor %}"
                       "{{ (('y' * 100000) | length) }}",
                       o),
            "100000");
  // A render's account starts empty: the failure above leaves nothing behind.
  EXPECT_EQ(RenderText("{{ ['a', 'b'] | join('-') }}", o), "a-b");
}

// Widths and precisions past the output limit built the whole string (a
// gigabyte, seconds) before the check; %-formatting cut results at 511
// bytes.
TEST(JinjaFuzzRegressions, HugeWidthsFailEarly) {
  RenderOptions o;
  o.max_output_bytes = 1 << 20;
  for (const char* s : {"{{ '%999999999d' % 1 }}", "{{ '%.999999999f' % 1.0 }}",
                        "{{ '%99999999999999999999999s' % 'a' }}", "{{ 'a\\nb' | indent(10**9) }}",
                        "{{ 'a\\nb' | indent(2**62) }}", "{{ [1] | tojson(indent=10**9) }}",
                        "{{ [[[1]]] | tojson(indent=2**62) }}"}) {
    EXPECT_NE(RenderText(s, o).find("would exceed 1048576 bytes"), std::string::npos) << s;
  }
  EXPECT_EQ(RenderText("{{ 'a' | indent(10**9) }}|{{ 1 | tojson(indent=10**9) }}", o), "a|1");
  EXPECT_EQ(RenderText("{{ ('%.600f' % 1.0) | length }}|{{ '%5d|%-4s|%.2f' % (42, 'ab', 3.14159) }}"),
            "602|   42|ab  |3.14");
}

// Values that share their parts, built in a loop ([d, d] 64 times), took
// exponential time and memory to print or compare; a list nested 10**5 deep
// overflowed the stack when destroyed or compared.
TEST(JinjaFuzzRegressions, SharedAndDeepValues) {
  RenderOptions o;
  o.max_output_bytes = 1 << 20;
  o.max_loop_iterations = 100000;
  const std::string dag =
      "{% set ns = namespace(a=[], b=[]) %}{% for i in range(64) %}"
      "{% set ns.a = [ns.a, ns.a] %}{% set ns.b = [ns.b, ns.b] %}{% endfor %}";
  EXPECT_EQ(RenderText(dag + "{{ ns.a | length }}", o), "2");
  EXPECT_NE(RenderText(dag + "{{ ns.a }}", o).find("would exceed 1048576 bytes"), std::string::npos);
  EXPECT_NE(RenderText(dag + "{{ ns.a | tojson }}", o).find("would exceed 1048576 bytes"),
            std::string::npos);
  EXPECT_NE(RenderText(dag + "{{ ns.a == ns.b }}", o).find("comparing values took more than 100000 steps"),
            std::string::npos);
  EXPECT_NE(RenderText(dag + "{{ ns.a < ns.b }}", o).find("comparing values took more than"),
            std::string::npos);
  const std::string deep =
      "{% set ns = namespace(a=[], b=[], d={}) %}{% for i in range(3000) %}"
      "{% set ns.a = [ns.a] %}{% set ns.b = [ns.b] %}{% set ns.d = {'k': ns.d} %}{% endfor %}";
  EXPECT_NE(RenderText(deep + "{{ ns.a == ns.b }}", o).find("maximum recursion depth exceeded in comparison"),
            std::string::npos);
  EXPECT_NE(RenderText(deep + "{{ ns.a in [ns.b] }}", o).find("maximum recursion depth"), std::string::npos);
  EXPECT_NE(RenderText(deep + "{{ [ns.a, ns.b] | sort }}", o).find("maximum recursion depth"),
            std::string::npos);
  EXPECT_NE(RenderText(deep + "{{ ns.d | tojson }}", o).find("maximum recursion depth"), std::string::npos);
  // Ordinary comparisons are unaffected.
  EXPECT_EQ(RenderText("{{ [1, [2, 3]] == [1, [2, 3]] }}|{{ [1, 2] < [1, 3] }}|{{ {'a': [1]} == {'a': [1]} }}"),
            "True|True|True");
  // A list nested 80000 deep is destroyed without recursion.
  EXPECT_EQ(RenderText("{% set ns = namespace(a=[]) %}{% for i in range(40000) %}"
                       "{% for k in [1, 2] %}{% set ns.a = [ns.a] %}{% endfor %}{% endfor %}done"),
            "done");
  // So are values nested deeper still, built through the API.
  Value v = Value::List({});
  for (int i = 0; i < 1000000; ++i) v = Value::List({v});
  Value d = Value::Dict();
  for (int i = 0; i < 200000; ++i) {
    Value next = Value::Dict();
    next.Insert("k", d);
    d = next;
  }
}

// A macro that calls itself twice ran 2**40 times: calls count as loop
// iterations now.
TEST(JinjaFuzzRegressions, MacroFanOutIsBounded) {
  RenderOptions o;
  o.max_loop_iterations = 100000;
  EXPECT_NE(RenderText("{% macro m(n) %}{% if n %}{{ m(n[1:]) }}{{ m(n[1:]) }}{% endif %}{% endmacro %}"
                       "{{ m('x' * 40) }}",
                       o)
                .find("the template ran more than 100000 loop iterations and macro calls"),
            std::string::npos);
  EXPECT_EQ(RenderText("{% macro m(n) %}{% if n %}{{ m(n - 1) }}{{ m(n - 1) }}{% else %}x{% endif %}"
                       "{% endmacro %}{{ m(4) }}",
                       o),
            "xxxxxxxxxxxxxxxx");
}

}  // namespace
}  // namespace lorart::data::jinja
