// Unit tests of the chat-template language: snippets compared with jinja2
// (whitespace control, loops, slicing, filters, tests, macros, namespaces,
// Python printing, errors), provenance of each string operation, generation
// ranges, error positions, unsupported constructs and limits.
#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "lorart/data/jinja/jinja.h"
#include "lorart/io/json.h"

namespace lorart::data::jinja {
namespace {

using OJson = nlohmann::ordered_json;

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

StatusOr<Rendered> Render(const std::string& source, const Value& ctx = Value::Dict()) {
  auto t = Template::Parse(source, "t.jinja");
  if (!t.ok()) return t.status();
  return t->Render(ctx);
}

std::string RenderText(const std::string& source, const Value& ctx = Value::Dict()) {
  auto r = Render(source, ctx);
  return r.ok() ? r->text : "ERROR: " + r.status().message();
}

struct Snippet {
  const char* source;
  const char* context;  // JSON object
};

// Each snippet is rendered by jinja2 (as transformers configures it) and by
// us: same text, or both fail with jinja2's message inside ours.
const Snippet kSnippets[] = {
    // whitespace control, trim_blocks, lstrip_blocks
    {"a\n  {% if true %}\n  b\n  {% endif %}\nc", "{}"},
    {"a  {%- if true -%}  b  {%- endif -%}  c", "{}"},
    {"  {%+ if true %}x{% endif %}\n", "{}"},
    {"x {{- ' y ' -}} z\n\n", "{}"},
    {"{# c #}\n  {#- c2 -#}  a {# c3 +#}\nb", "{}"},
    {"line\n    {% for i in [1, 2] %}\n    {{ i }}\n    {% endfor %}\nend", "{}"},
    {"{% raw %}{{ not evaluated }}{% endraw %}\n{%- raw -%}  {% x %}  {%- endraw %}", "{}"},
    {"\r\nwin\r\nlines\r\n", "{}"},
    {"{{ 'a' }}  {% if true %}x{% endif %}", "{}"},
    // literals and printing
    {"{{ none }}|{{ None }}|{{ true }}|{{ False }}|{{ 1.0 }}|{{ 1e20 }}|{{ 0.1 + 0.2 }}|{{ 1e-5 }}|{{ -0.0 }}", "{}"},
    {"{{ [1, 'a', none, true, 1.5, {'k': \"v'\"}, (1,), (1, 2)] }}", "{}"},
    {"{{ 'a\\tb\\n\\\\c\\x41\\u00e9\\101' }}|{{ \"it's\" }}|{{ 'x' 'y' }}", "{}"},
    {"{{ ['\\x00\\xa0\\u200b\\u00e9', \"a'b\", 'a\"b', 'a\\'\"b'] }}", "{}"},
    {"{{ 0x1F }} {{ 0o17 }} {{ 0b101 }} {{ 1_000 }} {{ 1.5e3 }} {{ 007 }}", "{}"},
    {"{{ x }}|{{ d }}|{{ l }}", "{\"x\": 3, \"d\": {\"b\": 1, \"a\": [true, null]}, \"l\": []}"},
    // arithmetic and comparisons
    {"{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % -3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 7.5 // 2 }}", "{}"},
    {"{{ 'ab' * 3 }} {{ [1] * 2 }} {{ 'a' ~ 1 ~ none }} {{ [1] + [2] }} {{ 1 + true }}", "{}"},
    {"{{ 1 < 2 < 3 }} {{ 1 < 2 > 3 }} {{ 'a' in 'cat' }} {{ 2 not in [1] }} {{ 'k' in {'k': 1} }} {{ 1 == 1.0 }}", "{}"},
    {"{{ 'a' + 1 }}", "{}"},
    {"{{ 1 + 'a' }}", "{}"},
    {"{{ [1] < 'a' }}", "{}"},
    {"{{ 1 / 0 }}", "{}"},
    {"{{ x + 1 }}", "{}"},
    {"{{ none + 1 }}", "{}"},
    {"{{ 1 and 'x' }}|{{ 0 or '' or 'y' }}|{{ not [] }}", "{}"},
    {"{{ 'y' if x else 'n' }}|{{ 'y' if x }}|{{ ('y' if not x) }}", "{}"},
    // subscripts and slicing
    {"{{ s[1:] }}|{{ s[::-1] }}|{{ s[-2:] }}|{{ s[::2] }}|{{ s[10:] }}|{{ s[1:-1:1] }}|{{ s[-1] }}", "{\"s\": \"h\u00e9llo\"}"},
    {"{{ l[1:] }}|{{ l[::-1] }}|{{ l[-1] }}|{{ l[5] }}|{{ l[:-1] }}|{{ l[::-2] }}", "{\"l\": [1, 2, 3, 4]}"},
    {"{{ d.a }}|{{ d['a'] }}|{{ d.missing }}|{{ d['items'] }}|{{ d.items is defined }}", "{\"d\": {\"a\": 1, \"items\": 2}}"},
    {"{{ d.missing.x }}", "{\"d\": {}}"},
    {"{{ l[3].x }}", "{\"l\": [1]}"},
    {"{{ foo.bar }}", "{}"},
    {"{{ l.0 }}|{{ d.get('a') }}|{{ d.get('b', 'dflt') }}|{{ d.get('b') }}", "{\"l\": [9], \"d\": {\"a\": 1}}"},
    {"{{ l.append(3) }}", "{\"l\": [1]}"},
    // loops
    {"{% for x in l %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}"
     "{{ loop.last }}{{ loop.length }}{{ loop.cycle('a', 'b') }}|{% endfor %}",
     "{\"l\": [\"x\", \"y\", \"z\"]}"},
    {"{% for x in l %}[{{ loop.previtem }}>{{ x }}<{{ loop.nextitem }}]{% endfor %}", "{\"l\": [1, 2, 3]}"},
    {"{% for x in l if x is odd %}{{ x }}{{ loop.length }}{% else %}none{% endfor %}", "{\"l\": [1, 2, 3]}"},
    {"{% for x in [] %}x{% else %}empty{% endfor %}{% for x in u %}{% else %}undef{% endfor %}", "{}"},
    {"{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}",
     "{\"d\": {\"b\": 1, \"a\": 2}}"},
    {"{% for x in l %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}",
     "{\"l\": [1, 2, 3, 4, 5]}"},
    {"{% for c in 'h\u00e9!' %}{{ c }},{% endfor %}", "{}"},
    {"{% for i in [1, 2] %}{% if i == 2 %}[{{ x }}]{% endif %}{% set x = i %}{% endfor %}{{ x }}", "{}"},
    {"{% set x = 5 %}{% for i in [1, 2] %}[{{ x }}]{% set x = i %}{% endfor %}{{ x }}", "{}"},
    {"{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}", "{}"},
    {"{% for a, b in [[1, 2, 3]] %}{% endfor %}", "{}"},
    {"{% for x in 5 %}{% endfor %}", "{}"},
    {"{% for i in range(3) %}{{ i }}{% endfor %}{% for i in range(5, 0, -2) %}{{ i }}{% endfor %}", "{}"},
    // set, namespace, with
    {"{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set t = (1, 2) %}{{ t }}", "{}"},
    {"{% set ns = namespace(n=0, s='') %}{% for i in [1, 2, 3] %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}",
     "{}"},
    {"{% set ns = namespace() %}{% set ns.x = 'v' %}{{ ns.x }}{{ ns.y }}", "{}"},
    {"{% set x = 1 %}{% set x.y = 2 %}", "{}"},
    {"{% set body %}  inner {{ 1 + 1 }}  {% endset %}[{{ body }}]{% set b2 | trim | upper %} t {% endset %}[{{ b2 }}]",
     "{}"},
    {"{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a }}", "{}"},
    {"{{ dict(a=1, b='x') }}{{ namespace(a=1).a }}", "{}"},
    // macros and call blocks
    {"{% macro m(a, b=2, c='x') %}{{ a }}-{{ b }}-{{ c }}{% endmacro %}{{ m(1) }}|{{ m(1, c='y') }}|{{ m(1, 3, 4) }}",
     "{}"},
    {"{% macro m(a) %}[{{ a }}]{% endmacro %}{{ m() }}", "{}"},
    {"{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}", "{}"},
    {"{% macro m() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, k=3) }}", "{}"},
    {"{% macro wrap(t) %}<{{ t }}>{{ caller() }}</{{ t }}>{% endmacro %}{% call wrap('b') %}body{% endcall %}", "{}"},
    {"{% macro r(n) %}{{ n }}{% if n > 0 %}{{ r(n - 1) }}{% endif %}{% endmacro %}{{ r(3) }}", "{}"},
    {"{% set x = 1 %}{% macro m() %}{{ x }}{% endmacro %}{% set x = 2 %}{{ m() }}", "{}"},
    {"{% filter upper %}shout {{ 'it' }}{% endfilter %}", "{}"},
    // filters
    {"{{ '  a b  ' | trim }}|{{ 'xxaxx' | trim('x') }}|{{ s | length }}|{{ l | count }}|{{ d | length }}",
     "{\"s\": \"h\u00e9\", \"l\": [1, 2], \"d\": {\"a\": 1}}"},
    {"{{ 'hello wORLD-foo(bar' | title }}|{{ 'hELLO' | capitalize }}|{{ 'MiXed' | lower }}|{{ 'MiXed' | upper }}", "{}"},
    {"{{ x | default('d') }}|{{ '' | default('d') }}|{{ '' | default('d', true) }}|{{ none | d('n') }}", "{}"},
    {"{{ l | join(', ') }}|{{ l | join }}|{{ users | join(',', attribute='name') }}",
     "{\"l\": [1, \"a\", null], \"users\": [{\"name\": \"x\"}, {\"name\": \"y\"}]}"},
    {"{{ 'aXbXc' | replace('X', '-') }}|{{ 'aXbXc' | replace('X', '', 1) }}|{{ 'abc' | replace('', '.') }}", "{}"},
    {"{{ l | first }}|{{ l | last }}|{{ [] | first }}|{{ 'abc' | first }}|{{ d | first }}",
     "{\"l\": [1, 2, 3], \"d\": {\"k\": 1}}"},
    {"{{ 'abc' | list }}|{{ d | list }}|{{ 1 | string }}|{{ none | string }}|{{ [1] | string }}", "{\"d\": {\"k\": 1}}"},
    {"{{ '42' | int }}|{{ '4.7' | int }}|{{ 'x' | int }}|{{ 'x' | int(7) }}|{{ 3.9 | int }}|{{ '0x1A' | int(0, 16) }}",
     "{}"},
    {"{{ '1.5' | float }}|{{ 'x' | float }}|{{ 2 | float }}|{{ -3 | abs }}|{{ 2.5 | round }}|{{ 3.14159 | round(2) }}"
     "|{{ 2.7 | round(0, 'floor') }}|{{ 3 | round }}",
     "{}"},
    {"{{ d | items | list }}|{{ d | dictsort }}|{{ d | dictsort(by='value', reverse=true) }}",
     "{\"d\": {\"b\": 2, \"A\": 3, \"c\": 1}}"},
    {"{{ users | selectattr('role', 'equalto', 'u') | map(attribute='name') | list }}"
     "|{{ users | rejectattr('role', 'eq', 'u') | list | length }}"
     "|{{ [1, 2, 3, 4] | select('odd') | list }}|{{ [0, 1, '', 'a'] | select | list }}|{{ [1, 2] | reject('even') | list }}",
     "{\"users\": [{\"name\": \"a\", \"role\": \"u\"}, {\"name\": \"b\", \"role\": \"s\"}, {\"name\": \"c\", \"role\": \"u\"}]}"},
    {"{{ users | map(attribute='missing', default='?') | list }}|{{ ['a', 'B'] | map('upper') | join }}",
     "{\"users\": [{\"name\": \"a\"}]}"},
    {"{{ ['b', 'A', 'a', 'c'] | unique | list }}|{{ ['b', 'A', 'a'] | sort }}|{{ ['b', 'A', 'a'] | sort(case_sensitive=true) }}"
     "|{{ users | sort(attribute='n', reverse=true) | map(attribute='n') | join }}",
     "{\"users\": [{\"n\": 2}, {\"n\": 3}, {\"n\": 1}]}"},
    {"{{ [3, 1, 2] | sum }}|{{ [3, 1, 2] | min }}|{{ ['b', 'A'] | max }}|{{ [] | max }}|{{ 'abc' | reverse }}"
     "|{{ [1, 2] | reverse | list }}",
     "{}"},
    {"{{ 'a\\nb\\n\\nc' | indent }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'a\\n\\nb' | indent('> ', blank=true) }}", "{}"},
    {"{{ '<a href=\"x\">&\\'' | e }}|{{ 'x' | safe }}|{{ 'one two  three' | wordcount }}|{{ 'ab' | center(6) }}|", "{}"},
    {"{{ '%s-%d-%.2f-%5s-%-3s|' | format('a', 3, 2.5, 'r', 'l') }}{{ '%(k)s' % {'k': 'v'} }}{{ '%s' % 'x' }}", "{}"},
    {"{{ [1, 2, 3, 4, 5] | batch(2) | list }}|{{ [1, 2, 3] | batch(2, 0) | list }}", "{}"},
    {"{{ x | tojson }}|{{ x | tojson(indent=2) }}|{{ s | tojson }}|{{ s | tojson(ensure_ascii=true) }}"
     "|{{ x | tojson(separators=(',', ':'), sort_keys=true) }}|{{ [] | tojson(indent=4) }}|{{ 1.0 | tojson }}",
     "{\"x\": {\"b\": [1, 2.5, null, true], \"a\": {\"c\": \"d\"}, \"e\": {}}, \"s\": \"q\\\"\\\\\\n\\t\\u0001\\u00e9\\ud83d\\ude00\"}"},
    {"{{ u | tojson }}", "{}"},
    {"{{ x | keys }}", "{}"},
    {"{% if false %}{{ x | keys }}{% endif %}ok", "{}"},
    {"{{ [1] | select('nope') | list }}", "{}"},
    // tests
    {"{{ x is defined }}{{ y is undefined }}{{ n is none }}{{ 's' is string }}{{ d is mapping }}{{ l is iterable }}"
     "{{ 's' is sequence }}{{ 1 is number }}{{ 1 is integer }}{{ 1.0 is float }}{{ true is boolean }}{{ true is number }}",
     "{\"x\": 1, \"n\": null, \"d\": {}, \"l\": []}"},
    {"{{ false is false }}{{ 0 is false }}{{ true is true }}{{ 4 is even }}{{ 3 is odd }}{{ 9 is divisibleby 3 }}"
     "{{ 2 is in [1, 2] }}{{ 'a' is eq 'a' }}{{ 1 is equalto 1 }}{{ 2 is ge 2 }}{{ 3 is lt 2 }}{{ none is sameas none }}"
     "{{ 'ab' is lower }}{{ 'AB' is upper }}{{ x is not none }}{{ 'upper' is filter }}{{ 'odd' is test }}",
     "{\"x\": 1}"},
    {"{{ x is nosuchtest }}", "{}"},
    {"{{ x.y is defined }}", "{}"},
    // string methods
    {"{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ 'xxhixx'.strip('x') }}|{{ s.split() }}|{{ 'a,b,,c'.split(',') }}"
     "|{{ 'a,b,c'.split(',', 1) }}|{{ 'a,b,c'.rsplit(',', 1) }}|{{ ' a  b '.split(None, 1) }}",
     "{\"s\": \"\u00a0 hi there \\n\"}"},
    {"{{ 'Hello'.startswith('He') }}{{ 'Hello'.endswith(('x', 'lo')) }}{{ 'ab'.upper() }}{{ 'AB'.lower() }}"
     "{{ \"they're bill's\".title() }}{{ 'hELLO'.capitalize() }}{{ 'aXa'.replace('a', 'b') }}{{ 'h\u00e9llo'.find('l') }}"
     "{{ 'abc'.find('z') }}{{ 'aaa'.count('a') }}{{ '-'.join(['a', 'b']) }}{{ 'a{}b{}'.format(1, 'x') }}"
     "{{ '{0}{name}'.format('p', name='n') }}{{ '12'.isdigit() }}{{ 'ab'.isalpha() }}{{ ' '.isspace() }}",
     "{}"},
    {"{{ 'a\\nb\\r\\nc'.splitlines() }}|{{ 'ab'.center(6, '*') }}|{{ '5'.zfill(3) }}|{{ 'pre_x'.removeprefix('pre_') }}"
     "|{{ 'a=b=c'.partition('=') }}|{{ 'abc'.ljust(5) }}|",
     "{}"},
    {"{{ '-'.join([1, 2]) }}", "{}"},
    // errors and globals
    {"{{ raise_exception('Conversation roles must alternate') }}", "{}"},
    {"{{ range(200000) | length }}", "{}"},
    {"{{ undefined_function() }}", "{}"},
    {"{{ 1() }}", "{}"},
    {"{% if %}{% endif %}", "{}"},
    {"{% for x in l %}", "{\"l\": []}"},
    {"{% endfor %}", "{}"},
    {"{{ 'unterminated }}", "{}"},
    {"{{ 1 + }}", "{}"},
    {"{% generation %}gen {{ 1 }}{% endgeneration %}", "{}"},
    {"{% set x = 1 %}{% generation %}{% set x = 2 %}{{ x }}{% endgeneration %}{{ x }}", "{}"},
};

bool HaveJinja2() {
  std::string cmd = std::string("PYTHONPATH=") + LORAC_PYDEPS_DIR + " " + LORAC_PYTHON +
                    " -c 'import jinja2' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

TEST(JinjaLanguage, SnippetsMatchJinja2) {
  if (!HaveJinja2()) GTEST_SKIP() << "jinja2 is not importable from " << LORAC_PYDEPS_DIR;
  OJson list = OJson::array();
  for (const Snippet& s : kSnippets) {
    OJson ctx = OJson::parse(s.context);
    list.push_back({{"source", s.source}, {"context", ctx}});
  }
  std::string in = ::testing::TempDir() + "/lorart_jinja_snippets.json";
  std::string out = ::testing::TempDir() + "/lorart_jinja_snippets_out.json";
  std::ofstream(in) << list.dump();
  int64_t now = static_cast<int64_t>(time(nullptr));
  std::string cmd = std::string("PYTHONPATH=") + LORAC_PYDEPS_DIR + " " + LORAC_PYTHON + " " + LORAC_SOURCE_DIR +
                    "/test/runtime/jinja/render_reference.py --snippets " + in + " " + out + " " + std::to_string(now);
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  OJson ref = OJson::parse(ReadFile(out));
  ASSERT_EQ(ref.size(), list.size());
  RenderOptions options;
  options.now_unix_seconds = now;
  for (size_t i = 0; i < ref.size(); ++i) {
    const Snippet& s = kSnippets[i];
    SCOPED_TRACE(std::string("template: ") + s.source + "\ncontext: " + s.context);
    auto t = Template::Parse(s.source, "snippet.jinja");
    StatusOr<Rendered> r = t.ok() ? t->Render(*Value::ParseJson(s.context), options) : StatusOr<Rendered>(t.status());
    if (ref[i]["ok"].get<bool>()) {
      EXPECT_TRUE(r.ok()) << r.status().message();
      if (r.ok()) {
        EXPECT_EQ(r->text, ref[i]["text"].get<std::string>());
      }
    } else {
      std::string py = ref[i]["error"].get<std::string>();
      EXPECT_FALSE(r.ok()) << "jinja2 failed (" << py << ") but we rendered: " << r->text;
      if (r.ok()) continue;
      EXPECT_NE(r.status().message().find(py), std::string::npos)
          << "ours: " << r.status().message() << "\njinja2: " << py;
    }
  }
}

// ---------------------------------------------------------------------------
// Provenance

Value Labelled(const std::string& s, uint32_t label) { return Value::String(s, label); }

// The bytes of `r` with label `label`, concatenated.
std::string BytesWithLabel(const Rendered& r, uint32_t label) {
  std::string out;
  for (const LabelRun& run : r.runs) {
    if (run.label == label) out += r.text.substr(run.begin, run.end - run.begin);
  }
  return out;
}

// A compact picture of the labels: one digit per byte.
std::string LabelMap(const Rendered& r) {
  std::string out;
  for (size_t i = 0; i < r.text.size(); ++i) out += static_cast<char>('0' + r.LabelAt(i));
  return out;
}

TEST(JinjaProvenance, OperationsKeepLabels) {
  Value ctx = Value::Dict();
  ctx.Insert("a", Labelled("  Hello World  ", 1));
  ctx.Insert("b", Labelled("xyz", 2));
  auto r = Render("<{{ a | trim }}>", ctx);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->text, "<Hello World>");
  EXPECT_EQ(LabelMap(*r), "0111111111110");

  r = Render("{{ a.strip() + '|' + b }}{{ b ~ 1 }}", ctx);
  EXPECT_EQ(LabelMap(*r), "1111111111102222220");
  r = Render("{{ a.strip()[:5] }}|{{ b[::-1] }}|{{ b[1] }}", ctx);
  EXPECT_EQ(r->text, "Hello|zyx|y");
  EXPECT_EQ(LabelMap(*r), "11111022202");
  r = Render("{{ a.strip().split(' ') | join(b) }}", ctx);
  EXPECT_EQ(r->text, "HelloxyzWorld");
  EXPECT_EQ(LabelMap(*r), "1111122211111");
  r = Render("{{ a.strip().replace('World', b) }}", ctx);
  EXPECT_EQ(r->text, "Hello xyz");
  EXPECT_EQ(LabelMap(*r), "111111222");
  r = Render("{{ b | upper }}{{ b.title() }}", ctx);
  EXPECT_EQ(r->text, "XYZXyz");
  EXPECT_EQ(LabelMap(*r), "222222");
  r = Render("{{ b | tojson }}{{ [b] | tojson }}{{ {b: 1} | tojson }}", ctx);
  EXPECT_EQ(r->text, "\"xyz\"[\"xyz\"]{\"xyz\": 1}");
  EXPECT_EQ(LabelMap(*r), "2222202222200222220000");
  r = Render("{{ '%s!' % b }}{{ '{}?'.format(b) }}{{ b | default('d') }}{{ u | default(b) }}{{ b | first }}", ctx);
  EXPECT_EQ(r->text, "xyz!xyz?xyzxyzx");
  EXPECT_EQ(LabelMap(*r), "222022202222222");
  r = Render("{% set s %}[{{ b }}]{% endset %}{{ s }}{% macro m(x) %}({{ x }}){% endmacro %}{{ m(b) }}", ctx);
  EXPECT_EQ(LabelMap(*r), "0222002220");
  r = Render("{% for c in b %}{{ c }}.{% endfor %}", ctx);
  EXPECT_EQ(LabelMap(*r), "202020");
  EXPECT_EQ(BytesWithLabel(*r, 2), "xyz");
}

TEST(JinjaProvenance, JsonContextAndRuns) {
  auto ctx = Value::ParseJson(R"({"messages": [{"role": "user", "content": "hi"}]})", 5);
  ASSERT_TRUE(ctx.ok());
  auto r = Render("{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}", *ctx);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->text, "<user>hi");
  std::vector<LabelRun> want = {{0, 1, 0}, {1, 5, 5}, {5, 6, 0}, {6, 8, 5}};
  EXPECT_EQ(r->runs, want);
}

TEST(JinjaProvenance, GenerationRanges) {
  Value ctx = Value::Dict();
  ctx.Insert("x", Labelled("ans", 3));
  auto r = Render("pre {% generation %}[{{ x }}]{% endgeneration %} mid {% generation %}{% endgeneration %}end", ctx);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->text, "pre [ans] mid end");
  ASSERT_EQ(r->generation.size(), 2u);
  EXPECT_EQ(r->generation[0], std::make_pair(size_t{4}, size_t{9}));
  EXPECT_EQ(r->generation[1], std::make_pair(size_t{14}, size_t{14}));
}

// ---------------------------------------------------------------------------
// Errors, unsupported constructs, limits

TEST(JinjaErrors, PositionsAndMessages) {
  EXPECT_EQ(RenderText("ab\n  {{ x.y }}"), "ERROR: t.jinja:2:7: 'x' is undefined");
  EXPECT_EQ(RenderText("{% include 'x' %}"),
            "ERROR: t.jinja:1:4: '{% include %}' is not supported by lorart's chat-template interpreter");
  EXPECT_EQ(RenderText("{% extends 'x' %}"),
            "ERROR: t.jinja:1:4: '{% extends %}' is not supported by lorart's chat-template interpreter");
  EXPECT_EQ(RenderText("\n{% do x %}"), "ERROR: t.jinja:2:4: Encountered unknown tag 'do'.");
  EXPECT_EQ(RenderText("{% for x in y recursive %}{% endfor %}"),
            "ERROR: t.jinja:1:15: recursive for loops are not supported by lorart's chat-template interpreter");
  EXPECT_EQ(RenderText("{{ f(*a) }}"),
            "ERROR: t.jinja:1:6: '*args' and '**kwargs' in calls are not supported by lorart's chat-template "
            "interpreter");
  EXPECT_EQ(RenderText("{{ x | truncate(3) }}"),
            "ERROR: t.jinja:1:8: the filter 'truncate' is not supported by lorart's chat-template interpreter");
  EXPECT_EQ(RenderText("{{ 'a'.encode() }}"),
            "ERROR: t.jinja:1:7: str.encode() is not supported by lorart's chat-template interpreter");
  EXPECT_EQ(RenderText("line1\n{% if x %}"),
            "ERROR: t.jinja:2:11: Unexpected end of template. Jinja was looking for the following tags: 'elif', "
            "'else' or 'endif'. The innermost block that needs to be closed is 'if'.");
  EXPECT_EQ(RenderText("{{ x ! }}"), "ERROR: t.jinja:1:6: unexpected char '!' at 5");
  EXPECT_EQ(RenderText("{{ raise_exception('Only user and assistant roles are supported!') }}"),
            "ERROR: t.jinja:1:19: chat template raised: Only user and assistant roles are supported!");
  EXPECT_EQ(RenderText("{% break %}"),
            "ERROR: t.jinja:1:4: 'break' outside of a loop is not supported by lorart's chat-template interpreter");
}

TEST(JinjaLimits, NestingRecursionOutputLoops) {
  // Parse nesting.
  std::string deep = "{{ " + std::string(1000, '(') + "1" + std::string(1000, ')') + " }}";
  EXPECT_NE(RenderText(deep).find("nests deeper than 256 levels"), std::string::npos);
  std::string deep_if;
  for (int i = 0; i < 400; ++i) deep_if += "{% if true %}";
  EXPECT_NE(RenderText(deep_if).find("nests deeper than 256 levels"), std::string::npos);
  std::string long_chain = "{{ 1" + [] {
    std::string s;
    for (int i = 0; i < 100000; ++i) s += " + 1";
    return s;
  }() + " }}";
  EXPECT_NE(RenderText(long_chain).find("nests deeper"), std::string::npos);
  // Macro recursion.
  EXPECT_NE(RenderText("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").find("maximum recursion depth"),
            std::string::npos);
  // Output size.
  EXPECT_NE(RenderText("{{ 'x' * 100000000 }}").find("would exceed"), std::string::npos);
  EXPECT_NE(RenderText("{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(30) %}"
                       "{% set ns.s = ns.s ~ ns.s %}{% endfor %}")
                .find("would exceed"),
            std::string::npos);
  // Loop iterations.
  EXPECT_NE(RenderText("{% for a in range(100000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}")
                .find("loop iterations"),
            std::string::npos);
}

TEST(JinjaApi, TrailingNewlineAndReuse) {
  auto t = Template::Parse("{{ x }}\n", "n.jinja");
  ASSERT_TRUE(t.ok());
  Value ctx = Value::Dict();
  ctx.Insert("x", Value::Int(1));
  EXPECT_EQ(t->Render(ctx)->text, "1");
  ctx.Insert("x", Value::Double(2.5));
  EXPECT_EQ(t->Render(ctx)->text, "2.5");
  EXPECT_EQ(t->name(), "n.jinja");
  EXPECT_FALSE(t->Render(Value::List({})).ok());
  RenderOptions o;
  o.now_unix_seconds = 0;
  setenv("TZ", "UTC", 1);
  tzset();
  EXPECT_EQ(Template::Parse("{{ strftime_now('%Y-%m-%d %b') }}", "d")->Render(Value::Dict(), o)->text,
            "1970-01-01 Jan");
}

}  // namespace
}  // namespace lorart::data::jinja
