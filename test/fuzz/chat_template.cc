// Fuzz target: the chat-template renderer. The input is a Jinja template, then
// (after a NUL byte, optional) a JSONL record. The template is parsed and
// rendered twice: by the interpreter alone (jinja/jinja.h) with the record's
// messages under lowered limits, and by the training renderer (template.h:
// Render + Tokenize with a small tokenizer, for templates that rendered),
// which labels every rendered byte. A template that renders must keep the renderer's promises: runs
// that tile the text, target and special ranges inside it, one target flag per token, never a
// target on the first token.
#include <string>
#include <string_view>

#include "fuzz_target.h"
#include "lorart/data/jinja/jinja.h"
#include "lorart/data/jsonl.h"
#include "lorart/data/packing.h"
#include "lorart/data/template.h"
#include "tiny_tokenizer.h"

namespace {

namespace data = lorart::data;
namespace jinja = lorart::data::jinja;

const char kDefaultRecord[] = R"({"messages": [{"role": "system", "content": "Be brief."},)"
                              R"( {"role": "user", "content": "Hi <|im_end|> there"},)"
                              R"( {"role": "assistant", "content": "Hello!"}]})";

jinja::Value Context(const data::Record& record, const data::Tokenizer& tokenizer) {
  jinja::Value ctx = jinja::Value::Dict();
  std::vector<jinja::Value> messages;
  for (const data::Message& m : record.messages) {
    jinja::Value msg = jinja::Value::Dict();
    msg.Insert("role", jinja::Value::String(data::RoleName(m.role)));
    msg.Insert("content", jinja::Value::String(m.content));
    messages.push_back(msg);
  }
  ctx.Insert("messages", jinja::Value::List(messages));
  ctx.Insert("bos_token", jinja::Value::String(tokenizer.bos_token()));
  ctx.Insert("eos_token", jinja::Value::String(tokenizer.eos_token()));
  ctx.Insert("add_generation_prompt", jinja::Value::Bool(false));
  return ctx;
}

// True when the template rendered within the lowered limits.
bool RenderWithInterpreter(std::string_view source, const data::Record& record) {
  auto t = jinja::Template::Parse(source, "fuzz.jinja");
  if (!t.ok()) {
    FUZZ_CHECK(std::string(t.status().message()).rfind("fuzz.jinja", 0) == 0);
    return false;
  }
  jinja::RenderOptions o;
  o.now_unix_seconds = 1700000000;
  o.max_output_bytes = size_t{1} << 20;
  o.max_loop_iterations = 100000;
  o.max_call_depth = 64;
  auto r = t->Render(Context(record, lorac_fuzz::TinyTokenizer()), o);
  lorac_fuzz::Note("interpreter", r.ok() ? "rendered" : r.status().message());
  if (!r.ok()) {
    FUZZ_CHECK(!r.status().message().empty());
    return false;
  }
  FUZZ_CHECK(r->text.size() <= o.max_output_bytes);
  size_t pos = 0;
  for (const jinja::LabelRun& run : r->runs) {
    FUZZ_CHECK(run.begin == pos && run.begin < run.end);
    pos = run.end;
  }
  FUZZ_CHECK(pos == r->text.size());
  for (const auto& g : r->generation) FUZZ_CHECK(g.first <= g.second && g.second <= pos);
  return true;
}

void RenderForTraining(std::string_view source, const data::Record& record) {
  auto chat_template = data::ChatTemplate::FromJinja(source, "fuzz.jinja");
  if (!chat_template.ok()) return;  // RenderWithInterpreter checked the message
  const data::Tokenizer& tokenizer = lorac_fuzz::TinyTokenizer();
  for (data::Objective objective : {data::Objective::kSft, data::Objective::kPretrain}) {
    auto doc = data::Render(record, *chat_template, objective, tokenizer);
    lorac_fuzz::Note("renderer", doc.ok() ? "rendered" : doc.status().message());
    if (!doc.ok()) {
      FUZZ_CHECK(!doc.status().message().empty());
      continue;
    }
    for (const data::RenderedPart& part : *doc) {
      for (const auto& range : part.target_ranges) {
        FUZZ_CHECK(range.first <= range.second && range.second <= part.text.size());
      }
      for (const auto& range : part.special_ranges) {
        FUZZ_CHECK(range.begin <= range.end && range.end <= part.text.size());
      }
    }
    data::Example example;
    lorart::Status s = data::Tokenize(*doc, tokenizer, &example);
    lorac_fuzz::Note("tokenize", s.ok() ? "ok" : s.message());
    if (!s.ok()) continue;
    FUZZ_CHECK(example.tokens.size() == example.is_target.size());
    if (!example.is_target.empty()) FUZZ_CHECK(example.is_target[0] == 0);
    for (int32_t id : example.tokens) FUZZ_CHECK(id >= 0 && id < tokenizer.vocab_size());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto [source, record_line] =
      lorac_fuzz::SplitAtNul(std::string_view(reinterpret_cast<const char*>(data), size));
  data::Record record;
  if (record_line.empty() || !data::ParseRecord(record_line, "fuzz.jsonl:1", &record).ok() ||
      record.format == data::RecordFormat::kText) {
    record = data::Record();
    FUZZ_CHECK(data::ParseRecord(kDefaultRecord, "default:1", &record).ok());
  }
  // The training renderer runs under the default limits (10^7 loop steps,
  // seconds under ASan): only templates that stay within the lowered ones
  // reach it, so that a legitimately long render is not a timeout.
  if (RenderWithInterpreter(source, record)) RenderForTraining(source, record);
  return 0;
}
