// Long records (docs/data.md, "Long records"): the data pipeline tokenizes
// an SFT or pretraining record only up to seq_len + 1 tokens, encoding a
// prefix of a long text and checking it against a prefix twice as long. The
// tokens and target flags must be exactly the first tokens of the whole
// record's, for SentencePiece and tokenizer.json (byte-level BPE,
// SentencePiece-style BPE, Metaspace) tokenizers, texts that defeat the
// first guess (one long run of a letter, no spaces, long whitespace runs),
// built-in and Jinja templates; and Dataset::Load must count the cut record
// as truncated.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "data_test_util.h"
#include "lorart/data/dataset.h"
#include "lorart/data/hf/hf_tokenizer.h"
#include "lorart/data/template.h"
#include "lorart/data/tokenizer.h"
#include "test_util.h"

namespace lorart {
namespace data {
namespace {

using ::lorart::testing::TempDir;
using ::lorart::testing::WriteFile;

// The tokenizer.json texts of the fuzz seeds (written by HF tokenizers; a
// seed is the JSON, a NUL and a sample text).
std::unique_ptr<Tokenizer> SeedTokenizer(const std::string& seed) {
  std::ifstream f(std::string(LORAC_SOURCE_DIR) + "/test/fuzz/corpus/tokenizer/" + seed,
                  std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_FALSE(bytes.empty()) << seed;
  std::string json = bytes.substr(0, bytes.find('\0'));
  auto t = HfTokenizerFromJson(json, R"({"bos_token": "<s>", "eos_token": "</s>"})", seed);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? std::move(t).value() : nullptr;
}

std::vector<std::unique_ptr<Tokenizer>> Tokenizers() {
  std::vector<std::unique_ptr<Tokenizer>> out;
  out.push_back(::lorart::testing::DataTestTokenizer());
  for (const char* seed : {"byte_level_bpe_0", "sentencepiece_bpe_0", "metaspace_bpe_0"}) {
    out.push_back(SeedTokenizer(seed));
  }
  return out;
}

std::string Words(size_t bytes, uint64_t seed) {
  const char* words[] = {"the",   "quick", "brown",  "fox", "über", "中文", "😀", "1234",
                         "can't", "<s>",   "[INST]", "\n",  "  ",   "\t",   "a", "jumps"};
  Rng rng(seed);
  std::string out;
  while (out.size() < bytes) {
    out += words[rng.Below(sizeof(words) / sizeof(words[0]))];
    out += ' ';
  }
  return out;
}

// Texts that make a first prefix too short or cut inside a long token.
std::vector<std::string> LongTexts() {
  std::vector<std::string> texts = {Words(300 << 10, 1), std::string(200 << 10, 'a'),
                                    std::string(150 << 10, ' ') + "end"};
  std::string cjk;
  while (cjk.size() < (150 << 10)) cjk += "中文字符测试";
  texts.push_back(cjk);
  return texts;
}

Record TextRecord(const std::string& text) {
  Record r;
  r.format = RecordFormat::kText;
  r.text = text;
  r.line = 1;
  return r;
}

Record ChatRecord(const std::string& user, const std::string& assistant) {
  Record r;
  r.format = RecordFormat::kChat;
  r.messages = {{Role::kUser, user}, {Role::kAssistant, assistant}};
  r.line = 1;
  return r;
}

void ExpectPrefix(const Record& record, const ChatTemplate& chat_template,
                  const Tokenizer& tokenizer, const std::string& what) {
  Example whole;
  Status w = RecordToExample(record, chat_template, Objective::kSft, tokenizer, &whole);
  ASSERT_TRUE(w.ok()) << what << ": " << w.ToString();
  for (int64_t need : {1, 2, 17, 500, 4097, 30000}) {
    Example cut;
    Status s = RecordToExample(record, chat_template, Objective::kSft, tokenizer, &cut, need);
    ASSERT_TRUE(s.ok()) << s.ToString();
    const size_t n = std::min<size_t>(need, whole.tokens.size());
    ASSERT_EQ(cut.tokens.size(), n) << what << " need " << need;
    EXPECT_TRUE(std::equal(cut.tokens.begin(), cut.tokens.end(), whole.tokens.begin()))
        << what << " need " << need;
    EXPECT_TRUE(std::equal(cut.is_target.begin(), cut.is_target.end(), whole.is_target.begin()))
        << what << " need " << need;
  }
}

TEST(LongRecords, TextIsTokenizedAsAPrefixOfTheWhole) {
  for (const auto& tokenizer : Tokenizers()) {
    ASSERT_NE(tokenizer, nullptr);
    const auto texts = LongTexts();
    for (size_t i = 0; i < texts.size(); ++i) {
      ExpectPrefix(TextRecord(texts[i]), ChatTemplate::kLlama2, *tokenizer,
                   tokenizer->path() + " text " + std::to_string(i));
    }
  }
}

TEST(LongRecords, ChatTargetsAreAPrefixOfTheWhole) {
  auto chatml = ParseChatTemplate("chatml");
  ASSERT_TRUE(chatml.ok()) << chatml.status().ToString();
  const std::string words = Words(200 << 10, 2);
  for (const auto& tokenizer : Tokenizers()) {
    ASSERT_NE(tokenizer, nullptr);
    // A long prompt (the reply falls past most budgets), then a long reply.
    for (const Record& r : {ChatRecord(words, "Short reply."), ChatRecord("Summarize.", words)}) {
      const ChatTemplate* templates[] = {&ChatTemplate::kLlama2, &ChatTemplate::kSimple, &*chatml};
      for (const ChatTemplate* t : templates) {
        // chatml needs <|im_start|> (the HF seeds have it, the SentencePiece model not).
        if (t == &*chatml && tokenizer->PieceToId("<|im_start|>") < 0) continue;
        ExpectPrefix(r, *t, *tokenizer, tokenizer->path() + " " + t->name());
      }
    }
  }
}

TEST(LongRecords, DatasetCountsTheCutRecordAsTruncated) {
  auto tokenizer = ::lorart::testing::DataTestTokenizer();
  TempDir dir;
  const std::string path = dir.path() + "/long.jsonl";
  const std::string text = Words(400 << 10, 3);
  WriteFile(
      path, "{\"text\": \"short text\"}\n{\"text\": \"" + [&] {
        std::string escaped;
        for (char c : text) {
          if (c == '\n')
            escaped += "\\n";
          else if (c == '\t')
            escaped += "\\t";
          else
            escaped += c;
        }
        return escaped;
      }() + "\"}\n");
  DataOptions o;
  o.seq_len = 64;
  o.micro_batch = 1;
  o.shuffle = false;
  auto ds = Dataset::Load(path, *tokenizer, o);
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  EXPECT_EQ((*ds)->stats().records, 2);
  EXPECT_EQ((*ds)->stats().truncated, 1);
  EXPECT_EQ((*ds)->stats().longest, 65);  // counted up to seq_len + 1
  Example whole;
  ASSERT_TRUE(
      RecordToExample(TextRecord(text), ChatTemplate::kLlama2, Objective::kSft, *tokenizer, &whole)
          .ok());
  const Example& kept = (*ds)->examples()[1];
  ASSERT_EQ(kept.tokens.size(), 64u);
  EXPECT_TRUE(std::equal(kept.tokens.begin(), kept.tokens.end(), whole.tokens.begin()));
}

}  // namespace
}  // namespace data
}  // namespace lorart
