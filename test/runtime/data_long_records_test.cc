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

// DocumentTokenStream gives exactly the whole document's tokens and target
// flags, also with windows so small that a long text restarts mid-text
// hundreds of times (sync and agreement at every restart).
TEST(LongRecords, StreamGivesTheWholeDocumentsTokens) {
  auto chatml = ParseChatTemplate("chatml");
  ASSERT_TRUE(chatml.ok()) << chatml.status().ToString();
  const std::string words = Words(120 << 10, 4);
  for (const auto& tokenizer : Tokenizers()) {
    ASSERT_NE(tokenizer, nullptr);
    std::vector<std::pair<Record, const ChatTemplate*>> cases;
    for (const std::string& text : LongTexts())
      cases.push_back({TextRecord(text), &ChatTemplate::kLlama2});
    for (const Record& r : {ChatRecord(words, "Short reply."), ChatRecord("Summarize.", words)}) {
      cases.push_back({r, &ChatTemplate::kLlama2});
      cases.push_back({r, &ChatTemplate::kSimple});
      if (tokenizer->PieceToId("<|im_start|>") >= 0) cases.push_back({r, &*chatml});
    }
    for (size_t c = 0; c < cases.size(); ++c) {
      const auto& [record, chat_template] = cases[c];
      const std::string what = tokenizer->path() + " case " + std::to_string(c);
      Example whole;
      ASSERT_TRUE(
          RecordToExample(record, *chat_template, Objective::kSft, *tokenizer, &whole).ok());
      auto doc = Render(record, *chat_template, Objective::kSft, *tokenizer);
      ASSERT_TRUE(doc.ok()) << doc.status().ToString();
      for (size_t window : {size_t{1} << 10, size_t{16} << 10}) {
        DocumentTokenStream stream(*doc, *tokenizer, window);
        std::vector<int32_t> ids;
        std::vector<uint8_t> targets;
        bool done = false;
        int batches = 0;
        while (!done) {
          ASSERT_TRUE(stream.Next(&ids, &targets, &done).ok()) << what;
          ++batches;
        }
        EXPECT_GT(batches, 2) << what;
        if (std::string(tokenizer->kind()) == "sentencepiece") {
          // SentencePiece's unigram Viterbi adds float32 scores along the
          // whole text: two segmentations of equal score ("#" "##" and "##"
          // "#") are told apart by the rounding of a running sum that grows
          // with the text, so the whole text's choice between them depends
          // on where they lie. A window makes the choice a short text makes.
          // The text is the same; the segmentations differ in ties only.
          auto text = tokenizer->Decode(ids), whole_text = tokenizer->Decode(whole.tokens);
          ASSERT_TRUE(text.ok() && whole_text.ok());
          EXPECT_EQ(*text, *whole_text) << what << " window " << window;
          size_t same = 0;
          for (size_t k = 0; k < std::min(ids.size(), whole.tokens.size()); ++k)
            same += ids[k] == whole.tokens[k];
          EXPECT_GE(same, whole.tokens.size() - whole.tokens.size() / 1000)
              << what << " window " << window;
          const double n_targets = std::count(targets.begin(), targets.end(), 1);
          const double whole_targets =
              std::count(whole.is_target.begin(), whole.is_target.end(), 1);
          EXPECT_NEAR(n_targets, whole_targets, 1 + whole_targets / 1000) << what;
          continue;
        }
        EXPECT_EQ(ids, whole.tokens) << what << " window " << window;
        EXPECT_EQ(targets, whole.is_target) << what << " window " << window;
      }
    }
  }
}

// A tokenizer that is not local at all: 3-byte tokens counted from the start
// of whatever text it is given, so every window that begins elsewhere than at
// a multiple of 3 cuts other tokens. The stream must still end, and give the
// whole text's tokens (its windows grow until they begin where the text
// does).
class PeriodicTokenizer final : public Tokenizer {
 public:
  PeriodicTokenizer() {
    vocab_size_ = 1 << 24;
    eos_id_ = 1;
    path_ = "periodic";
  }
  const char* kind() const override { return "periodic"; }
  Status EncodeWithSpecial(std::string_view text, const std::vector<ByteRange>&,
                           std::vector<int32_t>* ids,
                           std::vector<TokenSpan>* spans) const override {
    for (size_t b = 0; b < text.size(); b += 3) {
      const size_t e = std::min(text.size(), b + 3);
      int32_t id = 2;
      for (size_t k = b; k < e; ++k) id = id * 31 + static_cast<uint8_t>(text[k]);
      ids->push_back(id & 0xFFFFFF);
      if (spans) spans->push_back({static_cast<uint32_t>(b), static_cast<uint32_t>(e)});
    }
    return OkStatus();
  }
  void SpecialTokensAround(std::vector<int32_t>* prefix,
                           std::vector<int32_t>* suffix) const override {
    prefix->clear();
    suffix->clear();
  }
  StatusOr<std::string> Decode(const std::vector<int32_t>&) const override { return std::string(); }
  StatusOr<std::string> DecodeWithControls(const std::vector<int32_t>&) const override {
    return std::string();
  }
  std::string IdToPiece(int32_t) const override { return ""; }
  int32_t PieceToId(std::string_view) const override { return -1; }
  bool IsControl(int32_t) const override { return false; }
};

TEST(LongRecords, StreamEndsForATokenizerThatIsNotLocal) {
  PeriodicTokenizer tokenizer;
  const std::string text = Words(100 << 10, 7);
  RenderedDocument doc(1);
  doc[0].text = text;
  doc[0].target_ranges.push_back({0, text.size()});
  std::vector<int32_t> whole;
  std::vector<TokenSpan> spans;
  ASSERT_TRUE(tokenizer.EncodeWithSpecial(text, {}, &whole, &spans).ok());
  DocumentTokenStream stream(doc, tokenizer, 1 << 10);
  std::vector<int32_t> ids;
  std::vector<uint8_t> targets;
  bool done = false;
  for (int calls = 0; !done && calls < 100000; ++calls) {
    ASSERT_TRUE(stream.Next(&ids, &targets, &done).ok());
  }
  EXPECT_TRUE(done);
  EXPECT_EQ(ids, whole);
}

// The rule for a pair longer than its row, on whole tokenizations: what
// Dataset did before it streamed long sides (the reference).
void ReferencePair(const PreferenceRecord& r, const ChatTemplate& chat_template,
                   const Tokenizer& tokenizer, int64_t seq_len, std::vector<Example>* out,
                   int64_t* truncated) {
  Example pair[2];
  int64_t prompt_len[2];
  const Record* sides[2] = {&r.chosen, &r.rejected};
  for (int k = 0; k < 2; ++k) {
    ASSERT_TRUE(
        RecordToExample(*sides[k], chat_template, Objective::kSft, tokenizer, &pair[k]).ok());
    std::vector<uint8_t>& t = pair[k].is_target;
    int64_t end = static_cast<int64_t>(t.size());
    while (end > 0 && !t[end - 1]) --end;
    int64_t begin = end;
    while (begin > 0 && t[begin - 1]) --begin;
    std::fill(t.begin(), t.begin() + begin, 0);
    prompt_len[k] = begin;
  }
  int64_t len[2] = {static_cast<int64_t>(pair[0].tokens.size()),
                    static_cast<int64_t>(pair[1].tokens.size())};
  if (len[0] + len[1] > seq_len) {
    ++*truncated;
    int64_t over = len[0] + len[1] - seq_len;
    for (int k = 0; k < 2 && over > 0; ++k) {
      int64_t want = k == 0 ? (over + 1) / 2 : over;
      int64_t cut = std::min(want, std::max<int64_t>(0, prompt_len[k] - 1));
      pair[k].tokens.erase(pair[k].tokens.begin() + 1, pair[k].tokens.begin() + 1 + cut);
      pair[k].is_target.erase(pair[k].is_target.begin() + 1, pair[k].is_target.begin() + 1 + cut);
      len[k] -= cut;
      over -= cut;
    }
    if (over > 0 && len[0] + len[1] > seq_len) {
      int64_t half = seq_len / 2;
      if (len[0] <= half)
        len[1] = seq_len - len[0];
      else if (len[1] <= half)
        len[0] = seq_len - len[1];
      else
        len[0] = half, len[1] = seq_len - half;
    }
    for (int k = 0; k < 2; ++k) {
      pair[k].tokens.resize(len[k]);
      pair[k].is_target.resize(len[k]);
    }
  }
  for (Example& ex : pair) {
    ex.is_target[0] = 0;
    if (std::count(ex.is_target.begin(), ex.is_target.end(), 1) == 0) return;  // dropped
  }
  out->push_back(pair[0]);
  out->push_back(pair[1]);
}

// Pairs far longer than the row: the sides past seq_len tokens are streamed
// (never held whole), and the row holds the same tokens as the rule applied
// to the whole pair: the prompts' oldest tokens go first, then the replies'
// ends.
TEST(LongRecords, PreferencePairsLongerThanTheRowKeepWhatTheWholePairWould) {
  auto chatml = ParseChatTemplate("chatml");
  ASSERT_TRUE(chatml.ok()) << chatml.status().ToString();
  const std::string long_a = Words(90 << 10, 5), long_b = Words(70 << 10, 6);
  auto pair = [](const std::string& prompt, const std::string& chosen,
                 const std::string& rejected) {
    PreferenceRecord r;
    r.chosen = ChatRecord(prompt, chosen);
    r.rejected = ChatRecord(prompt, rejected);
    r.line = 1;
    return r;
  };
  const std::vector<PreferenceRecord> records = {
      pair(long_a, "Yes, briefly.", "No."),     // long prompt
      pair("Explain.", long_a, "Short."),       // a long chosen reply
      pair("Explain.", "Short.", long_b),       // a long rejected reply
      pair(long_b, long_a, long_b),             // everything long
      pair("Hi.", "Hello there.", "Go away."),  // fits
  };
  for (const auto& tokenizer : Tokenizers()) {
    ASSERT_NE(tokenizer, nullptr);
    std::vector<const ChatTemplate*> templates = {&ChatTemplate::kSimple};
    if (tokenizer->PieceToId("<|im_start|>") >= 0) templates.push_back(&*chatml);
    for (const ChatTemplate* chat_template : templates) {
      for (int64_t seq_len : {64, 3000}) {
        DataOptions o;
        o.seq_len = seq_len;
        o.micro_batch = 1;
        o.preference = true;
        o.shuffle = false;
        o.chat_template = *chat_template;
        auto ds = Dataset::FromPreferences(records, "prefs", *tokenizer, o);
        ASSERT_TRUE(ds.ok()) << ds.status().ToString();
        std::vector<Example> want;
        int64_t truncated = 0;
        for (const PreferenceRecord& r : records) {
          ReferencePair(r, *chat_template, *tokenizer, seq_len, &want, &truncated);
        }
        const std::string what =
            tokenizer->path() + " " + chat_template->name() + " seq_len " + std::to_string(seq_len);
        ASSERT_EQ((*ds)->examples().size(), want.size()) << what;
        EXPECT_GE(truncated, 4) << what;
        EXPECT_EQ((*ds)->stats().truncated, truncated) << what;
        for (size_t i = 0; i < want.size(); ++i) {
          EXPECT_EQ((*ds)->examples()[i].tokens, want[i].tokens) << what << " example " << i;
          EXPECT_EQ((*ds)->examples()[i].is_target, want[i].is_target) << what << " example " << i;
        }
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
