// Published chat templates (templates/*.jinja) rendered by lorart's
// interpreter against Python jinja2 configured as transformers does
// (render_reference.py), over the conversations of conversations.json:
// outputs must be byte-identical, errors must occur in the same cases with
// jinja2's message inside ours, and the bytes labelled with a message's
// content label must be bytes of that content.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "lorart/data/jinja/jinja.h"
#include "lorart/io/json.h"

// Key order matters (tojson prints dicts in order): parse as Python does.
using OJson = nlohmann::ordered_json;

namespace lorart::data::jinja {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

const std::string kDir = std::string(LORAC_SOURCE_DIR) + "/test/runtime/jinja";

bool HaveJinja2() {
  std::string cmd = std::string("PYTHONPATH=") + LORAC_PYDEPS_DIR + " " + LORAC_PYTHON +
                    " -c 'import jinja2' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

// Message i's content gets label i + 1, reasoning_content label 1000 + i.
Value BuildContext(const OJson& templ_tokens, const OJson& c, bool agp) {
  Value ctx = Value::Dict();
  Value messages = Value::List({});
  const OJson& ms = c["messages"];
  for (size_t i = 0; i < ms.size(); ++i) {
    Value m = Value::Dict();
    for (auto it = ms[i].begin(); it != ms[i].end(); ++it) {
      uint32_t label = 0;
      if (it.key() == "content") label = static_cast<uint32_t>(i + 1);
      if (it.key() == "reasoning_content") label = static_cast<uint32_t>(1000 + i);
      m.Insert(it.key(), Value::FromJson(it.value(), label));
    }
    messages.Append(std::move(m));
  }
  ctx.Insert("messages", messages);
  ctx.Insert("tools", c.contains("tools") ? Value::FromJson(c["tools"]) : Value::None());
  ctx.Insert("documents", Value::None());
  ctx.Insert("add_generation_prompt", Value::Bool(agp));
  for (auto it = templ_tokens.begin(); it != templ_tokens.end(); ++it) {
    if (!it.value().is_null()) ctx.Insert(it.key(), Value::FromJson(it.value()));
  }
  if (c.contains("kwargs")) {
    for (auto it = c["kwargs"].begin(); it != c["kwargs"].end(); ++it) ctx.Insert(it.key(), Value::FromJson(it.value()));
  }
  return ctx;
}

bool IsSpace(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f); }

// Python's str.strip() for the whitespace our test contents use.
std::string PyStrip(const std::string& s) {
  static const char* const kUnicodeSpaces[] = {"\xc2\xa0", "\xe3\x80\x80", "\xe2\x80\x83", "\xc2\x85"};
  size_t b = 0, e = s.size();
  bool changed = true;
  while (changed) {
    changed = false;
    if (b < e && IsSpace(static_cast<unsigned char>(s[b]))) {
      ++b;
      changed = true;
    }
    if (e > b && IsSpace(static_cast<unsigned char>(s[e - 1]))) {
      --e;
      changed = true;
    }
    for (const char* u : kUnicodeSpaces) {
      size_t n = strlen(u);
      if (e - b >= n && s.compare(b, n, u) == 0) {
        b += n;
        changed = true;
      }
      if (e - b >= n && s.compare(e - n, n, u) == 0) {
        e -= n;
        changed = true;
      }
    }
  }
  return s.substr(b, e - b);
}

TEST(JinjaTemplates, MatchJinja2) {
  if (!HaveJinja2()) GTEST_SKIP() << "jinja2 is not importable from " << LORAC_PYDEPS_DIR;
  std::string out = ::testing::TempDir() + "/lorart_jinja_reference.json";
  int64_t now = static_cast<int64_t>(time(nullptr));
  std::string cmd = std::string("PYTHONPATH=") + LORAC_PYDEPS_DIR + " " + LORAC_PYTHON + " " + kDir +
                    "/render_reference.py " + kDir + "/templates " + kDir + "/conversations.json " + out + " " +
                    std::to_string(now);
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  OJson spec = OJson::parse(ReadFile(kDir + "/conversations.json"));
  OJson ref = OJson::parse(ReadFile(out));
  std::map<std::string, OJson> cases;
  for (const OJson& c : spec["cases"]) cases[c["name"].get<std::string>()] = c;
  std::map<std::string, Template> templates;
  for (auto it = spec["templates"].begin(); it != spec["templates"].end(); ++it) {
    auto t = Template::Parse(ReadFile(kDir + "/templates/" + it.key()), it.key());
    ASSERT_TRUE(t.ok()) << t.status().message();
    templates[it.key()] = *t;
  }
  RenderOptions options;
  options.now_unix_seconds = now;
  int compared = 0, identical = 0, errors_matched = 0, rendered_ok = 0;
  for (const OJson& r : ref) {
    std::string tname = r["template"].get<std::string>();
    std::string cname = r["case"].get<std::string>();
    bool agp = r["add_generation_prompt"].get<bool>();
    SCOPED_TRACE(tname + " / " + cname + (agp ? " / add_generation_prompt" : ""));
    const OJson& c = cases[cname];
    Value ctx = BuildContext(spec["templates"][tname], c, agp);
    auto got = templates[tname].Render(ctx, options);
    ++compared;
    if (!r["ok"].get<bool>()) {
      std::string py_error = r["error"].get<std::string>();
      EXPECT_FALSE(got.ok()) << "jinja2 failed with " << py_error << " but we rendered:\n" << got->text;
      if (!got.ok()) {
        EXPECT_NE(got.status().message().find(py_error), std::string::npos)
            << "ours: " << got.status().message() << "\njinja2: " << py_error;
        EXPECT_NE(got.status().message().find(tname), std::string::npos);
        ++errors_matched;
      }
      continue;
    }
    ASSERT_TRUE(got.ok()) << got.status().message();
    ++rendered_ok;
    std::string expected = r["text"].get<std::string>();
    EXPECT_EQ(got->text, expected);
    if (got->text == expected) ++identical;

    // Provenance: runs labelled with message i's content label are
    // substrings of that content, and their concatenation lies between
    // content.strip() and content (the transformations these templates
    // apply are identity, trim and strip; contents with <think> are split).
    const OJson& ms = c["messages"];
    std::map<uint32_t, std::string> by_label;
    for (const LabelRun& run : got->runs) {
      std::string bytes = got->text.substr(run.begin, run.end - run.begin);
      if (run.label == 0) continue;
      std::string source;
      if (run.label >= 1000) {
        size_t i = run.label - 1000;
        ASSERT_LT(i, ms.size());
        source = ms[i]["reasoning_content"].get<std::string>();
      } else {
        size_t i = run.label - 1;
        ASSERT_LT(i, ms.size());
        source = ms[i]["content"].get<std::string>();
      }
      // Templates print some contents through tojson (Llama 3 tool results).
      std::string as_json = Json(source).dump();
      EXPECT_TRUE(source.find(bytes) != std::string::npos || as_json.find(bytes) != std::string::npos)
          << "label " << run.label << " run '" << bytes << "'";
      by_label[run.label] += bytes;
    }
    for (auto& [label, bytes] : by_label) {
      if (label >= 1000) continue;
      std::string content = ms[label - 1]["content"].get<std::string>();
      if (content.find("</think>") != std::string::npos) continue;
      if (bytes == Json(content).dump()) continue;
      EXPECT_NE(content.find(bytes), std::string::npos) << "label " << label << ": '" << bytes << "'";
      EXPECT_NE(bytes.find(PyStrip(content)), std::string::npos) << "label " << label << ": '" << bytes << "'";
    }
    // Every message whose stripped content is non-empty and printed shows up
    // under its label.
    for (size_t i = 0; i < ms.size(); ++i) {
      if (!ms[i].contains("content") || !ms[i]["content"].is_string()) continue;
      std::string stripped = PyStrip(ms[i]["content"].get<std::string>());
      if (stripped.size() < 8 || ms[i]["content"].get<std::string>().find("</think>") != std::string::npos) continue;
      if (expected.find(stripped) == std::string::npos) continue;
      EXPECT_TRUE(by_label.count(static_cast<uint32_t>(i + 1))) << "message " << i << " printed without its label";
    }
  }
  printf("[ jinja   ] %d renders compared, %d byte-identical, %d errors matched, %zu templates\n", compared, identical,
         errors_matched, templates.size());
  EXPECT_EQ(identical, rendered_ok);
}

}  // namespace
}  // namespace lorart::data::jinja
