// The data pipeline's front half: JSONL records, the SentencePiece tokenizer
// (trained in the test), chat templates and their loss masks.
#include <cstdio>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "data_test_util.h"
#include "lorart/data/jsonl.h"
#include "lorart/data/sentencepiece_model.h"
#include "lorart/data/template.h"
#include "lorart/data/tokenizer.h"
#include "test_util.h"

namespace lorart {
namespace data {
namespace {

using ::lorart::testing::DataTestTokenizer;
using ::lorart::testing::TempDir;
using ::lorart::testing::WriteFile;

// ---------------------------------------------------------------------------
// JSONL
// ---------------------------------------------------------------------------

Status ParseOne(const std::string& line, Record* record) {
  return ParseRecord(line, "d.jsonl:7", record);
}

// The message of parsing `line` as line 7 of d.jsonl, which must fail.
std::string ErrorOf(const std::string& line) {
  Record record;
  Status status = ParseOne(line, &record);
  EXPECT_FALSE(status.ok()) << line;
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
  return status.message();
}

TEST(DataJsonlTest, ParsesEachFormat) {
  Record r;
  ASSERT_TRUE(ParseOne(R"({"messages": [{"role": "system", "content": "S"},
      {"role": "user", "content": "U1"}, {"role": "assistant", "content": "A1"},
      {"role": "user", "content": "U2"}, {"role": "assistant", "content": "A2"}]})",
                       &r)
                  .ok());
  EXPECT_EQ(r.format, RecordFormat::kChat);
  ASSERT_EQ(r.messages.size(), 5u);
  EXPECT_EQ(r.messages[0].role, Role::kSystem);
  EXPECT_EQ(r.messages[4].role, Role::kAssistant);
  EXPECT_EQ(r.messages[4].content, "A2");

  ASSERT_TRUE(ParseOne(R"({"instruction": "Do", "input": "this", "output": "done"})", &r).ok());
  EXPECT_EQ(r.format, RecordFormat::kAlpaca);
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[0].role, Role::kUser);
  EXPECT_EQ(r.messages[0].content, "Do\n\nthis");
  EXPECT_EQ(r.messages[1].role, Role::kAssistant);
  EXPECT_EQ(r.messages[1].content, "done");
  // Without input, with an empty one, with null: the instruction alone.
  for (const char* line : {R"({"instruction": "Do", "output": "done"})",
                           R"({"instruction": "Do", "input": "", "output": "done"})",
                           R"({"instruction": "Do", "input": null, "output": "done"})"}) {
    ASSERT_TRUE(ParseOne(line, &r).ok()) << line;
    EXPECT_EQ(r.messages[0].content, "Do") << line;
  }

  ASSERT_TRUE(ParseOne(R"({"prompt": "P", "completion": "C", "id": 3})", &r).ok());
  EXPECT_EQ(r.format, RecordFormat::kPromptCompletion);
  EXPECT_EQ(r.messages[0].content, "P");
  EXPECT_EQ(r.messages[1].content, "C");

  ASSERT_TRUE(ParseOne(R"({"text": "raw \u00e9 text", "source": "wiki"})", &r).ok());
  EXPECT_EQ(r.format, RecordFormat::kText);
  EXPECT_EQ(r.text, "raw \xc3\xa9 text");
  EXPECT_TRUE(r.messages.empty());
}

TEST(DataJsonlTest, MalformedJsonNamesFileAndLine) {
  TempDir dir;
  std::string path = dir.Join("bad.jsonl");
  WriteFile(path, "{\"text\": \"a\"}\n\n  \n{\"text\": \"b\"\n{\"text\": \"c\"}\n");
  StatusOr<std::vector<Record>> records = ReadJsonl(path);
  ASSERT_FALSE(records.ok());
  EXPECT_EQ(records.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(records.status().message().rfind(path + ":4: invalid JSON: ", 0), 0u)
      << records.status().message();
}

TEST(DataJsonlTest, BlankLinesCrlfAndLineNumbers) {
  StatusOr<std::vector<Record>> records = ParseJsonl(
      "\xEF\xBB\xBF{\"text\": \"a\"}\r\n\r\n\n{\"prompt\": \"p\", \"completion\": \"c\"}\r\n   \n",
      "x.jsonl");
  ASSERT_TRUE(records.ok()) << records.status().ToString();
  ASSERT_EQ(records->size(), 2u);
  EXPECT_EQ((*records)[0].line, 1);
  EXPECT_EQ((*records)[0].text, "a");
  EXPECT_EQ((*records)[1].line, 4);
  EXPECT_EQ((*records)[1].format, RecordFormat::kPromptCompletion);
}

TEST(DataJsonlTest, EmptyOrMissingFile) {
  StatusOr<std::vector<Record>> records = ParseJsonl("\n  \n\n", "empty.jsonl");
  ASSERT_FALSE(records.ok());
  EXPECT_EQ(records.status().message().rfind("empty.jsonl: no examples", 0), 0u)
      << records.status().message();
  TempDir dir;
  records = ReadJsonl(dir.Join("nope.jsonl"));
  ASSERT_FALSE(records.ok());
  EXPECT_EQ(records.status().code(), StatusCode::kNotFound);
  EXPECT_NE(records.status().message().find("nope.jsonl"), std::string::npos);
}

TEST(DataJsonlTest, UnknownAndMixedShapes) {
  std::string m = ErrorOf(R"({"question": "q", "answer": "a"})");
  EXPECT_EQ(m.rfind("d.jsonl:7: unknown record format (keys: 'answer', 'question'); accepted "
                    "formats: chat {\"messages\"",
                    0),
            0u)
      << m;
  EXPECT_NE(m.find("Alpaca {\"instruction\", \"input\" (optional), \"output\"}"), std::string::npos);
  EXPECT_NE(m.find("{\"prompt\", \"completion\"}, {\"text\"}"), std::string::npos);

  m = ErrorOf(R"({"text": "t", "messages": []})");
  EXPECT_EQ(m.rfind("d.jsonl:7: record has keys of two formats: 'messages' (chat) and 'text' "
                    "(text)",
                    0),
            0u)
      << m;
  m = ErrorOf(R"([1, 2])");
  EXPECT_EQ(m.rfind("d.jsonl:7: a record must be a JSON object, not an array", 0), 0u) << m;
  m = ErrorOf(R"({"instruction": "i"})");
  EXPECT_EQ(m, "d.jsonl:7: field 'output' is missing (Alpaca records need 'instruction' and "
               "'output')");
  m = ErrorOf(R"({"completion": "c"})");
  EXPECT_EQ(m, "d.jsonl:7: field 'prompt' is missing (prompt/completion records need 'prompt' "
               "and 'completion')");
  m = ErrorOf(R"({"text": 5})");
  EXPECT_EQ(m, "d.jsonl:7: field 'text' must be a string, not an integer 5");
  m = ErrorOf(R"({"instruction": "i", "input": ["x"], "output": "o"})");
  EXPECT_EQ(m, "d.jsonl:7: field 'input' must be a string, not an array [\"x\"]");
  m = ErrorOf(R"({"text": null})");  // null once, not "null null"
  EXPECT_EQ(m, "d.jsonl:7: field 'text' must be a string, not null");
  m = ErrorOf(R"({"text": "a", "text": "b"})");
  EXPECT_EQ(m, "d.jsonl:7: record has the key 'text' twice");
}

TEST(DataJsonlTest, ChatRolesAreValidated) {
  auto chat = [](const std::string& messages) { return "{\"messages\": [" + messages + "]}"; };
  const std::string u = R"({"role": "user", "content": "u"})";
  const std::string a = R"({"role": "assistant", "content": "a"})";
  const std::string s = R"({"role": "system", "content": "s"})";

  Record r;
  EXPECT_TRUE(ParseOne(chat(u + "," + a), &r).ok());
  EXPECT_TRUE(ParseOne(chat(s + "," + u + "," + a + "," + u), &r).ok());  // trailing user is fine

  EXPECT_EQ(ErrorOf(chat(a + "," + u)),
            "d.jsonl:7: messages[0].role 'assistant' must be 'user' (a conversation starts with "
            "an optional system message, then a user message)");
  EXPECT_EQ(ErrorOf(chat(s + "," + a)),
            "d.jsonl:7: messages[1].role 'assistant' must be 'user' (a conversation starts with "
            "an optional system message, then a user message)");
  EXPECT_EQ(ErrorOf(chat(u + "," + s + "," + a)),
            "d.jsonl:7: messages[1].role 'system' is only allowed as the first message");
  EXPECT_EQ(ErrorOf(chat(u + "," + u + "," + a)),
            "d.jsonl:7: messages[1].role 'user' must be 'assistant' (user and assistant messages "
            "alternate)");
  EXPECT_EQ(ErrorOf(chat(u + "," + a + "," + a)),
            "d.jsonl:7: messages[2].role 'assistant' must be 'user' (user and assistant messages "
            "alternate)");
  EXPECT_EQ(ErrorOf(chat(u + R"(, {"role": "bot", "content": "a"})")),
            "d.jsonl:7: messages[1].role 'bot' is not a role (system, user or assistant)");
  EXPECT_EQ(ErrorOf(chat(s + "," + u)),
            "d.jsonl:7: messages has no assistant message (there is nothing to train on)");
  EXPECT_EQ(ErrorOf(chat("")), "d.jsonl:7: field 'messages' is empty");
  EXPECT_EQ(ErrorOf(R"({"messages": {"role": "user"}})"),
            "d.jsonl:7: field 'messages' must be an array, not an object");
  EXPECT_EQ(ErrorOf(chat(u + R"(, {"role": "assistant", "content": 3})")),
            "d.jsonl:7: messages[1].content must be a string, not an integer 3");
  EXPECT_EQ(ErrorOf(chat(u + R"(, {"role": "assistant"})")),
            "d.jsonl:7: messages[1] has no 'content'");
  EXPECT_EQ(ErrorOf(chat(u + R"(, "hi")")),
            "d.jsonl:7: messages[1] must be an object with 'role' and 'content', not a string");
}

// ---------------------------------------------------------------------------
// Tokenizer
// ---------------------------------------------------------------------------

TEST(DataTokenizerTest, TrainedModelEncodesAndDecodes) {
  std::unique_ptr<Tokenizer> tok = DataTestTokenizer();
  EXPECT_EQ(tok->vocab_size(), 320);
  EXPECT_EQ(tok->unk_id(), 0);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_EQ(tok->pad_id(), 2);  // no pad piece: EOS
  EXPECT_EQ(tok->IdToPiece(1), "<s>");
  EXPECT_EQ(tok->IdToPiece(2), "</s>");
  EXPECT_TRUE(tok->IsControl(1));
  EXPECT_FALSE(tok->IsControl(0));  // <unk> is not a control token
  // Byte fallback keeps any text, newlines and repeated spaces included.
  for (const std::string text :
       {"the cat sat on the mat", "hello\nthere  x", "caf\xc3\xa9 \xe2\x82\xac 123", "<s>"}) {
    std::vector<int32_t> ids;
    ASSERT_TRUE(tok->Encode(text, &ids).ok());
    ASSERT_FALSE(ids.empty());
    for (int32_t id : ids) {
      EXPECT_NE(id, tok->unk_id()) << text;
      EXPECT_NE(id, tok->bos_id()) << text;  // "<s>" as text is never the control token
      EXPECT_NE(id, tok->eos_id()) << text;
    }
    StatusOr<std::string> back = tok->Decode(ids);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, text);
  }
  std::vector<int32_t> ids;
  std::vector<TokenSpan> spans;
  ASSERT_TRUE(tok->Encode("the dog", &ids, &spans).ok());
  ASSERT_EQ(ids.size(), spans.size());
  EXPECT_EQ(spans.back().end, 7u);
  StatusOr<std::string> bad = tok->Decode({5, 320});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("id 320 is outside the vocabulary [0, 320)"),
            std::string::npos);
  StatusOr<std::string> shown = tok->DecodeWithControls({1, ids[0], ids[1], 2, 1, ids[0]});
  ASSERT_TRUE(shown.ok());
}

// The test corpus in DIR/corpus.txt, and the tokenizer options both tests
// below train with ([INST] and [/INST] as user-defined symbols, ids 3 and 4).
TokenizerTrainOptions WriteCorpus(const TempDir& dir) {
  std::string corpus;
  for (const std::string& line : ::lorart::testing::DataTestCorpus()) corpus += line + "\n";
  WriteFile(dir.Join("corpus.txt"), corpus);
  TokenizerTrainOptions options = ::lorart::testing::DataTestTokenizerOptions();
  options.user_defined_symbols = {"[INST]", "[/INST]"};
  return options;
}

// A tokenizer.model directory takes BOS, EOS and pad from its
// tokenizer_config.json, as transformers' LlamaTokenizer does, and refuses a
// config that is not an object or names a token the model lacks.
TEST(DataTokenizerTest, SentencePieceDirectoryReadsTokenizerConfig) {
  TempDir dir;
  TokenizerTrainOptions options = WriteCorpus(dir);
  ASSERT_TRUE(TrainTokenizer(dir.Join("corpus.txt"), dir.Join("tokenizer.model"), options).ok());
  StatusOr<std::unique_ptr<Tokenizer>> plain = Tokenizer::Load(dir.path());
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ((*plain)->eos_id(), 2);
  WriteFile(dir.Join("tokenizer_config.json"),
            R"({"bos_token": {"content": "<s>"}, "eos_token": "[/INST]", "pad_token": null})");
  StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::Load(dir.path());
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ((*t)->bos_id(), 1);
  EXPECT_EQ((*t)->eos_id(), 4);
  EXPECT_EQ((*t)->eos_token(), "[/INST]");
  EXPECT_EQ((*t)->pad_id(), 4);  // no pad: EOS
  const std::pair<const char*, const char*> bad[] = {
      {"[]", "tokenizer_config.json: (top level): must be an object, not an array"},
      {R"({"eos_token": 2})", "tokenizer_config.json: eos_token: must be a string, not an integer"},
      {R"({"bos_token": "<nonexistent>"})",
       "tokenizer_config.json: bos_token: '<nonexistent>' is not a token of "}};
  for (const auto& [text, want] : bad) {
    WriteFile(dir.Join("tokenizer_config.json"), text);
    StatusOr<std::unique_ptr<Tokenizer>> r = Tokenizer::Load(dir.path());
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.status().message().find(want), std::string::npos) << r.status().message();
  }
}

TEST(DataTokenizerTest, TrainingIsDeterministicAndWritesTheModelFile) {
  TempDir dir;
  TokenizerTrainOptions options = WriteCorpus(dir);
  for (const char* type : {"unigram", "bpe"}) {
    options.model_type = type;
    std::string first = dir.Join(std::string(type) + "1.model");
    std::string second = dir.Join(std::string(type) + "2.model");
    ASSERT_TRUE(TrainTokenizer(dir.Join("corpus.txt"), first, options).ok());
    ASSERT_TRUE(TrainTokenizer(dir.Join("corpus.txt"), second, options).ok());
    StatusOr<std::unique_ptr<Tokenizer>> a = Tokenizer::Load(first);
    StatusOr<std::unique_ptr<Tokenizer>> b = Tokenizer::Load(second);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    ASSERT_TRUE(b.ok());
    EXPECT_EQ((*a)->vocab_size(), 320);
    std::vector<int32_t> ia, ib;
    ASSERT_TRUE((*a)->Encode("[INST] the big river [/INST] ok", &ia).ok());
    ASSERT_TRUE((*b)->Encode("[INST] the big river [/INST] ok", &ib).ok());
    EXPECT_EQ(ia, ib) << type;
    EXPECT_EQ((*a)->IdToPiece(3), "[INST]");  // user-defined symbols follow the specials
    EXPECT_EQ(ia[1], 3) << type;              // after the "▁" prefix, one token
  }
  // Only the model files are written: no .vocab, no temporary left behind.
  std::set<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    files.insert(entry.path().filename().string());
  }
  EXPECT_EQ(files, (std::set<std::string>{"bpe1.model", "bpe2.model", "corpus.txt",
                                          "unigram1.model", "unigram2.model"}));
}

TEST(DataTokenizerTest, TrainingErrors) {
  TempDir dir;
  TokenizerTrainOptions options = ::lorart::testing::DataTestTokenizerOptions();
  Status s = TrainTokenizer(dir.Join("missing.txt"), dir.Join("t.model"), options);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("missing.txt"), std::string::npos);
  options.model_type = "wordpiece";
  EXPECT_FALSE(TrainTokenizerFromLines({"a b c"}, options).ok());
  options = ::lorart::testing::DataTestTokenizerOptions();
  options.vocab_size = 5000;  // far more pieces than the text holds
  StatusOr<std::string> model = TrainTokenizerFromLines({"a b c", "c d e"}, options);
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("Vocabulary size too high"), std::string::npos)
      << model.status().message();
}

TEST(DataTokenizerTest, MissingOrBrokenTokenizer) {
  TempDir dir;
  StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Load(dir.path());
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(tok.status().message(),
            dir.path() + ": no tokenizer: the model directory needs tokenizer.json (Hugging "
                         "Face tokenizers) or tokenizer.model (SentencePiece); copy them from "
                         "the model's Hub repository");
  // tokenizer.json is preferred: a broken one is an error even beside a
  // good tokenizer.model.
  WriteFile(dir.Join("tokenizer.json"), "{}");
  WriteFile(dir.Join("tokenizer.model"), ::lorart::testing::DataTestTokenizerBytes());
  tok = Tokenizer::Load(dir.path());
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().message().rfind(dir.path() + "/tokenizer.json: ", 0), 0u)
      << tok.status().message();
  ASSERT_EQ(std::remove(dir.Join("tokenizer.json").c_str()), 0);

  WriteFile(dir.Join("tokenizer.model"), "this is not a protobuf \xff\xff\xff");
  tok = Tokenizer::Load(dir.path());
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(tok.status().message().rfind(dir.path() + "/tokenizer.model: not a SentencePiece "
                                                      "model: ",
                                         0),
            0u)
      << tok.status().message();

  WriteFile(dir.Join("tokenizer.model"), ::lorart::testing::DataTestTokenizerBytes());
  tok = Tokenizer::Load(dir.path());
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  EXPECT_EQ((*tok)->path(), dir.path() + "/tokenizer.model");
}

// A precompiled character map as sentencepiece stores it: the trie's size in
// bytes, its Darts units, then NUL-terminated replacement strings. This one
// maps "a" to the string at `value`.
std::string CharsMap(uint32_t value, uint32_t leaf_offset, const std::string& strings) {
  std::vector<uint32_t> units(512, 0);
  units[0] = 256u << 10;  // the root: base 256
  const uint32_t pos = 256 ^ 'a';
  units[pos] = 'a' | (1u << 8) | (leaf_offset << 10);  // label 'a', has a leaf
  if ((pos ^ leaf_offset) < units.size()) units[pos ^ leaf_offset] = (1u << 31) | value;
  uint32_t bytes = static_cast<uint32_t>(units.size() * 4);
  std::string out(reinterpret_cast<const char*>(&bytes), 4);
  out.append(reinterpret_cast<const char*>(units.data()), bytes);
  return out + strings;
}

// The library trusts a normalizer's character map; we check it before (the
// sentencepiece fuzz target found a model whose map made Encode read outside
// it, and one whose empty piece made the library throw).
TEST(DataTokenizerTest, CorruptNormalizerMapsAreRefused) {
  EXPECT_TRUE(CheckCharsMap(CharsMap(0, 1, std::string("A\0", 2))).ok());
  auto refused = [](const std::string& map, const std::string& message) {
    Status s = CheckCharsMap(map);
    EXPECT_FALSE(s.ok()) << message;
    EXPECT_EQ(s.message(), message);
  };
  refused(CharsMap(5, 1, std::string("A\0", 2)),
          "the precompiled character map's trie holds a replacement at 5, past its 2 bytes of "
          "strings");
  refused(CharsMap(0, 1, "AB"), "the precompiled character map's strings do not end with NUL");
  refused(CharsMap(0, 1024, std::string("A\0", 2)),
          "the precompiled character map's trie points outside itself");
  std::string big = CharsMap(0, 1, std::string("A\0", 2));
  big[1] = '\x7f';  // the trie's size past the map
  refused(big, "the precompiled character map's trie size 32512 does not fit its 2054 bytes");
  refused("abc", "the precompiled character map is too short");

  // Through the loader: the fuzz findings are refused naming the file; the
  // seed with an NFKC map (written by spm_train) loads.
  auto model_of = [](const std::string& path) {
    std::ifstream f(std::string(LORAC_SOURCE_DIR) + "/" + path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return bytes.substr(bytes.find('\0') + 1);
  };
  for (const char* finding : {"test/fuzz/regressions/sentencepiece/charsmap-out-of-bounds",
                              "test/fuzz/regressions/sentencepiece/empty-piece"}) {
    auto t = Tokenizer::FromBytes(model_of(finding), "bad/tokenizer.model");
    ASSERT_FALSE(t.ok()) << finding;
    EXPECT_EQ(t.status().message().rfind("bad/tokenizer.model: not a SentencePiece model: ", 0), 0u)
        << t.status().message();
  }
  auto nfkc = Tokenizer::FromBytes(model_of("test/fuzz/corpus/sentencepiece/user_symbols"), "nfkc");
  ASSERT_TRUE(nfkc.ok()) << nfkc.status().ToString();
  std::vector<int32_t> ids;
  EXPECT_TRUE((*nfkc)->Encode("ｆｕｌｌ width", &ids).ok());
  EXPECT_FALSE(ids.empty());
}

// ---------------------------------------------------------------------------
// Templates
// ---------------------------------------------------------------------------

struct Rendered {
  std::string text;                  // the whole example, controls shown
  std::vector<std::string> targets;  // maximal runs of target tokens
  std::vector<std::string> context;  // maximal runs of other tokens
};

Rendered RenderForTest(const std::string& line, ChatTemplate chat_template,
                       Objective objective = Objective::kSft) {
  std::unique_ptr<Tokenizer> tok = DataTestTokenizer();
  Record record;
  Status s = ParseRecord(line, "t.jsonl:1", &record);
  EXPECT_TRUE(s.ok()) << s.ToString();
  Example ex;
  s = RecordToExample(record, chat_template, objective, *tok, &ex);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(ex.tokens.size(), ex.is_target.size());
  Rendered out;
  out.text = tok->DecodeWithControls(ex.tokens).value();
  size_t i = 0;
  while (i < ex.tokens.size()) {
    size_t j = i;
    while (j < ex.tokens.size() && ex.is_target[j] == ex.is_target[i]) ++j;
    std::vector<int32_t> run(ex.tokens.begin() + i, ex.tokens.begin() + j);
    (ex.is_target[i] ? out.targets : out.context)
        .push_back(tok->DecodeWithControls(run).value());
    i = j;
  }
  return out;
}

using Strings = std::vector<std::string>;

const char kChat[] = R"({"messages": [{"role": "system", "content": "Be brief."},
    {"role": "user", "content": " hello there "}, {"role": "assistant", "content": "the cat sat"},
    {"role": "user", "content": "and the dog"}, {"role": "assistant", "content": "ran fast"}]})";

TEST(DataTemplateTest, Llama2Chat) {
  Rendered r = RenderForTest(kChat, ChatTemplate::kLlama2);
  EXPECT_EQ(r.text,
            "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n hello there [/INST] the cat sat </s>"
            "<s>[INST] and the dog [/INST] ran fast </s>");
  EXPECT_EQ(r.targets, (Strings{"the cat sat </s>", "ran fast </s>"}));
  // Meta strips the system block and the first user message together: the
  // user's leading space stays.
  EXPECT_EQ(r.context, (Strings{"<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n hello there [/INST]",
                                "<s>[INST] and the dog [/INST]"}));
}

TEST(DataTemplateTest, SimpleChat) {
  Rendered r = RenderForTest(kChat, ChatTemplate::kSimple);
  EXPECT_EQ(r.text,
            "<s>### System:\nBe brief.\n### User:\n hello there \n### Assistant:\nthe cat sat\n"
            "</s>### User:\nand the dog\n### Assistant:\nran fast\n</s>");
  EXPECT_EQ(r.targets, (Strings{"the cat sat\n</s>", "ran fast\n</s>"}));
  EXPECT_EQ(r.context, (Strings{"<s>### System:\nBe brief.\n### User:\n hello there \n### "
                                "Assistant:\n",
                                "### User:\nand the dog\n### Assistant:\n"}));
}

TEST(DataTemplateTest, TrailingUserTurnHasNoTargets) {
  const char* line = R"({"messages": [{"role": "user", "content": "hi"},
      {"role": "assistant", "content": "ok"}, {"role": "user", "content": "more"}]})";
  Rendered r = RenderForTest(line, ChatTemplate::kLlama2);
  EXPECT_EQ(r.text, "<s>[INST] hi [/INST] ok </s><s>[INST] more [/INST]");
  EXPECT_EQ(r.targets, (Strings{"ok </s>"}));
  r = RenderForTest(line, ChatTemplate::kSimple);
  EXPECT_EQ(r.text, "<s>### User:\nhi\n### Assistant:\nok\n</s>### User:\nmore\n");
  EXPECT_EQ(r.targets, (Strings{"ok\n</s>"}));
}

TEST(DataTemplateTest, AlpacaAndPromptCompletionAreUserAndAssistant) {
  Rendered r = RenderForTest(R"({"instruction": "what is a tree", "input": "the big tree",
      "output": "an apple tree"})",
                             ChatTemplate::kLlama2);
  EXPECT_EQ(r.text, "<s>[INST] what is a tree\n\nthe big tree [/INST] an apple tree </s>");
  EXPECT_EQ(r.targets, (Strings{"an apple tree </s>"}));
  r = RenderForTest(R"({"instruction": "what is a tree", "output": "an apple tree"})",
                    ChatTemplate::kSimple);
  EXPECT_EQ(r.text, "<s>### User:\nwhat is a tree\n### Assistant:\nan apple tree\n</s>");
  EXPECT_EQ(r.targets, (Strings{"an apple tree\n</s>"}));
  r = RenderForTest(R"({"prompt": "the question", "completion": "the answer"})",
                    ChatTemplate::kLlama2);
  EXPECT_EQ(r.text, "<s>[INST] the question [/INST] the answer </s>");
  EXPECT_EQ(r.targets, (Strings{"the answer </s>"}));
  EXPECT_EQ(r.context, (Strings{"<s>[INST] the question [/INST]"}));
}

TEST(DataTemplateTest, TextTrainsOnEveryToken) {
  for (ChatTemplate t : {ChatTemplate::kLlama2, ChatTemplate::kSimple}) {
    for (Objective o : {Objective::kSft, Objective::kPretrain}) {
      Rendered r = RenderForTest(R"({"text": "the river ran\nfast"})", t, o);
      EXPECT_EQ(r.text, "<s>the river ran\nfast</s>");
      EXPECT_EQ(r.context, (Strings{"<s>"}));  // only the first token: nothing predicts it
      EXPECT_EQ(r.targets, (Strings{"the river ran\nfast</s>"}));
    }
  }
}

TEST(DataTemplateTest, PretrainObjectiveTrainsOnChatPrompts) {
  Rendered r = RenderForTest(kChat, ChatTemplate::kLlama2, Objective::kPretrain);
  EXPECT_EQ(r.context, (Strings{"<s>"}));
  ASSERT_EQ(r.targets.size(), 1u);
  EXPECT_EQ("<s>" + r.targets[0], r.text);
}

TEST(DataTemplateTest, UnicodeAtTheReplyBoundary) {
  // Byte-fallback tokens of a character at the start of the reply are all
  // targets; those of a character just before it are not.
  Rendered r = RenderForTest(R"({"prompt": "caf\u00e9", "completion": "\u00e9t\u00e9"})",
                             ChatTemplate::kSimple);
  EXPECT_EQ(r.text, "<s>### User:\ncaf\xc3\xa9\n### Assistant:\n\xc3\xa9t\xc3\xa9\n</s>");
  EXPECT_EQ(r.targets, (Strings{"\xc3\xa9t\xc3\xa9\n</s>"}));
}

TEST(DataTemplateTest, Names) {
  EXPECT_EQ(ParseChatTemplate("llama2").value(), ChatTemplate::kLlama2);
  EXPECT_EQ(ParseChatTemplate("simple").value(), ChatTemplate::kSimple);
  EXPECT_EQ(ParseChatTemplate("chatml").value().kind(), ChatTemplate::Kind::kJinja);
  StatusOr<ChatTemplate> bad = ParseChatTemplate("vicuna");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "chat template 'vicuna' is not one of: auto, llama2, simple, chatml, llama3, mistral");
  EXPECT_EQ(ParseObjective("pretrain").value(), Objective::kPretrain);
  EXPECT_FALSE(ParseObjective("dpo").ok());
}

}  // namespace
}  // namespace data
}  // namespace lorart
