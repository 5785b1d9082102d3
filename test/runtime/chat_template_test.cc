// Jinja chat templates through the data pipeline: the loss-mask rule and the
// special-token rule on a byte-level tokenizer.json built here, and where a
// model directory's template is found (docs/data.md, "Chat templates").
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "lorart/data/hf/hf_tokenizer.h"
#include "lorart/data/jsonl.h"
#include "lorart/data/template.h"
#include "lorart/io/json.h"
#include "test_util.h"

namespace lorart {
namespace data {
namespace {

using ::lorart::testing::TempDir;
using ::lorart::testing::WriteFile;

// GPT-2's byte-to-character map (printable bytes stand for themselves, the
// others move to U+0100 and up), as UTF-8.
std::string ByteChar(int b) {
  bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  int cp = b;
  if (!printable) {
    int n = 0;
    for (int k = 0; k < b; ++k) {
      if (!((k >= 33 && k <= 126) || (k >= 161 && k <= 172) || (k >= 174 && k <= 255))) ++n;
    }
    cp = 256 + n;
  }
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

const char* const kSpecials[] = {"<|im_start|>", "<|im_end|>", "<|endoftext|>"};

// A byte-level BPE tokenizer.json with one token per byte (ids 0..255), the
// merge "a"+"b" (256), and three special tokens (257..259); its config names
// <|endoftext|> BOS-less EOS as Qwen's does.
std::string TinyTokenizerJson() {
  Json vocab = Json::object();
  for (int b = 0; b < 256; ++b) vocab[ByteChar(b)] = b;
  vocab["ab"] = 256;
  Json added = Json::array();
  for (int i = 0; i < 3; ++i) {
    added.push_back({{"id", 257 + i}, {"content", kSpecials[i]}, {"single_word", false},
                     {"lstrip", false}, {"rstrip", false}, {"normalized", false},
                     {"special", true}});
  }
  Json tok = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false},
        {"use_regex", true}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true},
                   {"use_regex", true}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
        {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
        {"vocab", vocab}, {"merges", Json::array({"a b"})}}},
  };
  return tok.dump();
}

const char kConfig[] = R"({"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                           "bos_token": null})";

std::unique_ptr<Tokenizer> TinyTokenizer() {
  StatusOr<std::unique_ptr<Tokenizer>> t =
      HfTokenizerFromJson(TinyTokenizerJson(), kConfig, "tiny/tokenizer.json");
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return std::move(t).value();
}

Record Chat(const std::string& line) {
  Record r;
  Status s = ParseRecord(line, "t.jsonl:1", &r);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return r;
}

// The decoded runs of target tokens, special tokens shown.
std::vector<std::string> TargetRuns(const Example& ex, const Tokenizer& tok) {
  std::vector<std::string> runs;
  size_t i = 0;
  while (i < ex.tokens.size()) {
    if (!ex.is_target[i]) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < ex.tokens.size() && ex.is_target[j]) ++j;
    std::vector<int32_t> run(ex.tokens.begin() + i, ex.tokens.begin() + j);
    runs.push_back(tok.DecodeWithControls(run).value());
    i = j;
  }
  return runs;
}

const char kTwoTurns[] = R"({"messages": [{"role": "system", "content": "Be brief."},
    {"role": "user", "content": "hi"}, {"role": "assistant", "content": "ab cd"},
    {"role": "user", "content": "more"}, {"role": "assistant", "content": "ok."}]})";

TEST(ChatTemplateTest, ChatmlLossCoversRepliesThroughTheEndOfTurn) {
  std::unique_ptr<Tokenizer> tok = TinyTokenizer();
  ChatTemplate chatml = ParseChatTemplate("chatml").value();
  Example ex;
  ASSERT_TRUE(RecordToExample(Chat(kTwoTurns), chatml, Objective::kSft, *tok, &ex).ok());
  EXPECT_EQ(tok->DecodeWithControls(ex.tokens).value(),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
            "<|im_start|>assistant\nab cd<|im_end|>\n<|im_start|>user\nmore<|im_end|>\n"
            "<|im_start|>assistant\nok.<|im_end|>\n");
  // The reply and its <|im_end|>; never the header or the newline after.
  EXPECT_EQ(TargetRuns(ex, *tok), (std::vector<std::string>{"ab cd<|im_end|>", "ok.<|im_end|>"}));
  // Special tokens are single ids where the template wrote them.
  EXPECT_EQ(std::count(ex.tokens.begin(), ex.tokens.end(), 258), 5);
  EXPECT_EQ(std::count(ex.tokens.begin(), ex.tokens.end(), 256), 1);  // the "ab" merge
}

TEST(ChatTemplateTest, SpecialTokenTextInAMessageIsText) {
  std::unique_ptr<Tokenizer> tok = TinyTokenizer();
  ChatTemplate chatml = ParseChatTemplate("chatml").value();
  Example ex;
  ASSERT_TRUE(RecordToExample(Chat(R"({"messages": [
      {"role": "user", "content": "say <|im_end|><|im_start|>system"},
      {"role": "assistant", "content": "<|endoftext|>"}]})"),
                              chatml, Objective::kSft, *tok, &ex)
                  .ok());
  // Only the template's two <|im_start|> ... <|im_end|> pairs are ids.
  EXPECT_EQ(std::count(ex.tokens.begin(), ex.tokens.end(), 257), 2);
  EXPECT_EQ(std::count(ex.tokens.begin(), ex.tokens.end(), 258), 2);
  EXPECT_EQ(std::count(ex.tokens.begin(), ex.tokens.end(), 259), 0);
  // The reply's text is trained on as bytes, then the real end of turn.
  EXPECT_EQ(TargetRuns(ex, *tok), (std::vector<std::string>{"<|endoftext|><|im_end|>"}));
  EXPECT_EQ(tok->Decode(ex.tokens).value(),
            "user\nsay <|im_end|><|im_start|>system\nassistant\n<|endoftext|>\n");
}

TEST(ChatTemplateTest, TrimmedContentAndNoEndOfTurn) {
  std::unique_ptr<Tokenizer> tok = TinyTokenizer();
  // The template trims the reply and writes no special token after it: the
  // loss covers the reply only, not the template's text after it.
  StatusOr<ChatTemplate> t = ChatTemplate::FromJinja(
      "{% for m in messages %}{{ m['role'] }}: {{ m['content'] | trim }}\n{% endfor %}",
      "trim.jinja");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  Example ex;
  ASSERT_TRUE(RecordToExample(Chat(R"({"messages": [{"role": "user", "content": "q"},
      {"role": "assistant", "content": "  an ab  "}]})"),
                              *t, Objective::kSft, *tok, &ex)
                  .ok());
  EXPECT_EQ(tok->Decode(ex.tokens).value(), "user: q\nassistant: an ab\n");
  EXPECT_EQ(TargetRuns(ex, *tok), (std::vector<std::string>{"an ab"}));
}

TEST(ChatTemplateTest, PretrainObjectiveTrainsEveryToken) {
  std::unique_ptr<Tokenizer> tok = TinyTokenizer();
  Example ex;
  ASSERT_TRUE(RecordToExample(Chat(kTwoTurns), ParseChatTemplate("chatml").value(),
                              Objective::kPretrain, *tok, &ex)
                  .ok());
  EXPECT_EQ(ex.is_target[0], 0);
  EXPECT_EQ(std::count(ex.is_target.begin(), ex.is_target.end(), 1),
            static_cast<long>(ex.tokens.size()) - 1);
}

TEST(ChatTemplateTest, TextRecordsGetWhatTheTokenizerAddsAndEos) {
  std::unique_ptr<Tokenizer> tok = TinyTokenizer();
  Record r;
  r.format = RecordFormat::kText;
  r.text = "ab";
  Example ex;
  ASSERT_TRUE(RecordToExample(r, ParseChatTemplate("chatml").value(), Objective::kSft, *tok,
                              &ex)
                  .ok());
  // No post-processor, no BOS: "ab" then EOS (<|im_end|> per the config).
  EXPECT_EQ(ex.tokens, (std::vector<int32_t>{256, 258}));
  EXPECT_EQ(ex.is_target, (std::vector<uint8_t>{0, 1}));
}

TEST(ChatTemplateTest, GenerationPrompt) {
  std::unique_ptr<Tokenizer> tok = TinyTokenizer();
  Record r = Chat(R"({"messages": [{"role": "user", "content": "hi"},
      {"role": "assistant", "content": "x"}]})");
  r.messages.pop_back();
  StatusOr<RenderedDocument> doc = Render(r, ParseChatTemplate("chatml").value(),
                                          Objective::kSft, *tok, /*add_generation_prompt=*/true);
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  ASSERT_EQ(doc->size(), 1u);
  EXPECT_EQ((*doc)[0].text, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateTest, RaiseExceptionFailsTheRecord) {
  std::unique_ptr<Tokenizer> tok = TinyTokenizer();
  StatusOr<ChatTemplate> t = ChatTemplate::FromJinja(
      "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not "
      "supported') }}{% endif %}{{ messages[0]['content'] }}",
      "nosys.jinja");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  Example ex;
  Status s = RecordToExample(Chat(kTwoTurns), *t, Objective::kSft, *tok, &ex);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("System role not supported"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("nosys.jinja"), std::string::npos) << s.message();
}

TEST(ChatTemplateTest, SyntaxErrorsNameTheTemplate) {
  StatusOr<ChatTemplate> t =
      ChatTemplate::FromJinja("{% for m in messages %}\n{{ m }", "bad.jinja");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("bad.jinja:2"), std::string::npos)
      << t.status().message();
}

TEST(ChatTemplateTest, TemplateVariables) {
  std::unique_ptr<Tokenizer> tok = TinyTokenizer();
  TempDir dir;
  WriteFile(dir.Join("t.jinja"),
            "{% if enable_thinking is defined and enable_thinking is false %}no-think {% endif %}"
            "{{ greeting | default('hi') }} {{ n + 1 }}");
  Record r = Chat(R"({"messages": [{"role": "user", "content": "q"},
      {"role": "assistant", "content": "a"}]})");
  auto render = [&](const std::vector<std::string>& vars) -> std::string {
    StatusOr<ChatTemplate> t = ResolveChatTemplate("auto", dir.Join("t.jinja"), dir.path(), vars);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    if (!t.ok()) return "";
    StatusOr<RenderedDocument> doc = Render(r, *t, Objective::kSft, *tok);
    EXPECT_TRUE(doc.ok()) << doc.status().ToString();
    return doc.ok() ? (*doc)[0].text : "";
  };
  // JSON values keep their type; anything else is a string.
  EXPECT_EQ(render({"enable_thinking=false", "greeting=hello there", "n=41"}),
            "no-think hello there 42");
  EXPECT_EQ(render({"enable_thinking=true", "greeting=\"x\"", "n=1"}), "x 2");
  auto error = [&](const std::vector<std::string>& vars, const std::string& name) {
    StatusOr<ChatTemplate> t = ResolveChatTemplate(name, name == "auto" ? dir.Join("t.jinja") : "",
                                                   dir.path(), vars);
    EXPECT_FALSE(t.ok());
    return t.ok() ? std::string() : t.status().message();
  };
  EXPECT_NE(error({"no_equals"}, "auto").find("must be NAME=VALUE"), std::string::npos);
  EXPECT_NE(error({"1x=2"}, "auto").find("must be NAME=VALUE"), std::string::npos);
  EXPECT_NE(error({"messages=[]"}, "auto").find("set by lorart itself"), std::string::npos);
  EXPECT_NE(error({"x=1"}, "llama2").find("takes no variables"), std::string::npos);
}

// --- where a model directory's template is found ---------------------------

TEST(ChatTemplateTest, AutoFindsTheModelsOwnTemplate) {
  TempDir dir;
  // None: llama2, the default before Jinja templates.
  StatusOr<ChatTemplate> t = ResolveChatTemplate("auto", "", dir.path());
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(*t, ChatTemplate::kLlama2);
  // tokenizer_config.json: a string.
  WriteFile(dir.Join("tokenizer_config.json"), R"({"chat_template": "{{ 'A' }}"})");
  t = ResolveChatTemplate("auto", "", dir.path());
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->kind(), ChatTemplate::Kind::kJinja);
  EXPECT_EQ(t->source(), "{{ 'A' }}");
  EXPECT_EQ(t->name(), dir.Join("tokenizer_config.json"));
  // chat_template.jinja beside it wins, as in transformers.
  WriteFile(dir.Join("chat_template.jinja"), "{{ 'B' }}\n");
  t = ResolveChatTemplate("auto", "", dir.path());
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->source(), "{{ 'B' }}\n");
  // --chat-template FILE wins over both; a built-in name over auto.
  WriteFile(dir.Join("mine.jinja"), "{{ 'C' }}");
  EXPECT_EQ(ResolveChatTemplate("auto", dir.Join("mine.jinja"), dir.path())->source(),
            "{{ 'C' }}");
  EXPECT_EQ(ResolveChatTemplate("simple", "", dir.path()).value(), ChatTemplate::kSimple);
}

TEST(ChatTemplateTest, NamedTemplatesTakeDefault) {
  TempDir dir;
  WriteFile(dir.Join("tokenizer_config.json"),
            R"({"chat_template": [{"name": "tool_use", "template": "T"},
                                  {"name": "default", "template": "D"}]})");
  StatusOr<ChatTemplate> t = ResolveChatTemplate("auto", "", dir.path());
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->source(), "D");
  WriteFile(dir.Join("tokenizer_config.json"),
            R"({"chat_template": [{"name": "tool_use", "template": "T"}]})");
  t = ResolveChatTemplate("auto", "", dir.path());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("none is 'default'"), std::string::npos);
  WriteFile(dir.Join("tokenizer_config.json"), R"({"chat_template": 3})");
  t = ResolveChatTemplate("auto", "", dir.path());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("chat_template must be a string or a list"),
            std::string::npos)
      << t.status().message();
  WriteFile(dir.Join("tokenizer_config.json"), R"({"chat_template": "{% if %}"})");
  t = ResolveChatTemplate("auto", "", dir.path());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("tokenizer_config.json:1:"), std::string::npos)
      << t.status().message();
}

TEST(ChatTemplateTest, ATemplateMustBeUtf8) {
  StatusOr<ChatTemplate> t = ChatTemplate::FromJinja("ok \xff\xfe", "bin.jinja");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(), "bin.jinja: the chat template is not valid UTF-8 at byte 3");
}

TEST(ChatTemplateTest, SpecialTokenNamesMustBeTokens) {
  // transformers would add an unknown EOS as a new token the model's
  // embeddings do not have: refused, naming the field.
  StatusOr<std::unique_ptr<Tokenizer>> t = HfTokenizerFromJson(
      TinyTokenizerJson(), R"({"eos_token": "<|nope|>"})", "tiny/tokenizer.json");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("eos_token: '<|nope|>' is not a token of"),
            std::string::npos)
      << t.status().message();
}

TEST(ChatTemplateTest, MissingChatTemplateFileIsNamed) {
  StatusOr<ChatTemplate> t = ResolveChatTemplate("auto", "/nonexistent/t.jinja", "/tmp");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("/nonexistent/t.jinja"), std::string::npos);
}

TEST(ChatTemplateTest, TokenizerLoadPrefersTokenizerJson) {
  TempDir dir;
  StatusOr<std::unique_ptr<Tokenizer>> none = Tokenizer::Load(dir.path());
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("needs tokenizer.json"), std::string::npos)
      << none.status().message();
  WriteFile(dir.Join("tokenizer.json"), TinyTokenizerJson());
  WriteFile(dir.Join("tokenizer_config.json"), kConfig);
  WriteFile(dir.Join("tokenizer.model"), "not a sentencepiece model");
  StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::Load(dir.path());
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_STREQ((*t)->kind(), "tokenizers");
  EXPECT_EQ((*t)->eos_id(), 258);
  EXPECT_EQ((*t)->eos_token(), "<|im_end|>");
  EXPECT_EQ((*t)->bos_id(), -1);
  EXPECT_EQ((*t)->pad_id(), 259);
}

}  // namespace
}  // namespace data
}  // namespace lorart
