// tokenizer.json against Hugging Face `tokenizers`: make_references.py
// builds tokenizers of every supported shape (Llama 3, GPT-2, SmolLM2,
// Qwen2, Llama 2 / Mistral / Gemma SentencePiece-style BPE, Metaspace,
// added tokens, other components) and writes what `tokenizers` makes of
// each line of stress_corpus.txt and of the whole corpus; lorart must give
// the same ids, spans and decodes. Skips when `tokenizers` is missing.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include "lorart/base/strings.h"
#include "lorart/data/hf/hf_tokenizer.h"
#include "lorart/io/files.h"
#include "lorart/io/json.h"

namespace lorart {
namespace data {
namespace {

std::string g_ref_dir;
int g_script_status = -1;

class HfDiffTest : public ::testing::TestWithParam<const char*> {
 public:
  static void SetUpTestSuite() {
    if (g_script_status >= 0) return;
    g_ref_dir = ::testing::TempDir() + "lorart_hf_refs_" + std::to_string(getpid());
    std::string cmd = StrFormat(
        "PYTHONPATH='%s' '%s' '%s/test/runtime/hf/make_references.py' '%s' '%s' 2>%s.log",
        LORAC_PYDEPS_DIR, LORAC_PYTHON, LORAC_SOURCE_DIR, LORAC_SOURCE_DIR, g_ref_dir.c_str(),
        g_ref_dir.c_str());
    int rc = std::system(cmd.c_str());
    g_script_status = WIFEXITED(rc) ? WEXITSTATUS(rc) : 255;
  }
  static void TearDownTestSuite() {
    if (!g_ref_dir.empty()) (void)RemoveTree(g_ref_dir);
  }
};

std::string Show(const std::vector<int32_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size() && i < 40; ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + (v.size() > 40 ? ",...]" : "]");
}

TEST_P(HfDiffTest, MatchesTokenizers) {
  if (g_script_status == 3) GTEST_SKIP() << "Python tokenizers is not importable from " << LORAC_PYDEPS_DIR;
  ASSERT_EQ(g_script_status, 0) << "make_references.py failed; see " << g_ref_dir << ".log";
  std::string dir = g_ref_dir + "/" + GetParam();
  std::string config = dir + "/tokenizer_config.json";
  auto tok = LoadHfTokenizer(dir + "/tokenizer.json", PathExists(config) ? config : "");
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  auto ref_text = ReadWholeFile(dir + "/reference.json");
  ASSERT_TRUE(ref_text.ok());
  Json ref;
  ASSERT_TRUE(ParseJson(*ref_text, "reference.json", "reference", &ref).ok());
  std::vector<int32_t> prefix, suffix;
  (*tok)->SpecialTokensAround(&prefix, &suffix);

  // Kinds whose decode gives back the text (byte-level BPE, or byte fallback
  // with the Llama 2 decoder) when special tokens are read as text.
  const std::string kind = GetParam();
  const bool lossless = kind == "llama3" || kind == "gpt2" || kind == "smollm2" || kind == "llama2";
  int cases = 0, bad_ids = 0, bad_spans = 0, bad_text_only = 0, bad_special = 0, bad_decode = 0;
  int bad_roundtrip = 0;
  int shown = 0;
  for (const Json& c : ref["cases"]) {
    ++cases;
    const std::string& text = c["text"].get_ref<const std::string&>();
    std::vector<int32_t> want = c["ids"].get<std::vector<int32_t>>();
    std::vector<int32_t> ids;
    std::vector<TokenSpan> spans;
    std::vector<ByteRange> all{{0, static_cast<uint32_t>(text.size())}};
    Status s = (*tok)->EncodeWithSpecial(text, all, &ids, &spans);
    ASSERT_TRUE(s.ok()) << s.ToString();
    if (ids != want) {
      ++bad_ids;
      if (shown++ < 5) {
        ADD_FAILURE() << GetParam() << ": ids differ for " << Quote(text, 300) << "\n  lorart: "
                      << Show(ids) << "\n  HF:     " << Show(want);
      }
      continue;
    }
    const Json& want_spans = c["spans"];
    bool spans_ok = spans.size() == want_spans.size();
    for (size_t i = 0; spans_ok && i < spans.size(); ++i) {
      spans_ok = spans[i].begin == want_spans[i][0].get<uint32_t>() &&
                 spans[i].end == want_spans[i][1].get<uint32_t>();
    }
    if (!spans_ok) {
      ++bad_spans;
      if (shown++ < 5) {
        std::string got, exp;
        for (size_t i = 0; i < spans.size() && i < 30; ++i) {
          got += StrFormat("(%u,%u)", spans[i].begin, spans[i].end);
          exp += StrFormat("(%u,%u)", want_spans[i][0].get<uint32_t>(),
                           want_spans[i][1].get<uint32_t>());
        }
        ADD_FAILURE() << GetParam() << ": spans differ for " << Quote(text, 300)
                      << "\n  lorart: " << got << "\n  HF:     " << exp;
      }
    }
    std::vector<int32_t> text_only;
    ASSERT_TRUE((*tok)->Encode(text, &text_only).ok());
    if (text_only != c["ids_text_only"].get<std::vector<int32_t>>()) {
      ++bad_text_only;
      if (shown++ < 5) {
        ADD_FAILURE() << GetParam() << ": ids without special tokens differ for "
                      << Quote(text, 300) << "\n  lorart: " << Show(text_only)
                      << "\n  HF:     " << Show(c["ids_text_only"].get<std::vector<int32_t>>());
      }
    }
    if (lossless) {
      auto back = (*tok)->DecodeWithControls(text_only);
      ASSERT_TRUE(back.ok());
      if (*back != text) {
        ++bad_roundtrip;
        if (shown++ < 5) {
          ADD_FAILURE() << GetParam() << ": decode(encode(x)) != x for " << Quote(text, 300)
                        << ": " << Quote(*back, 300);
        }
      }
    }
    std::vector<int32_t> framed = prefix;
    framed.insert(framed.end(), ids.begin(), ids.end());
    framed.insert(framed.end(), suffix.begin(), suffix.end());
    if (framed != c["ids_with_special"].get<std::vector<int32_t>>()) ++bad_special;
    auto dec = (*tok)->Decode(ids);
    auto keep = (*tok)->DecodeWithControls(ids);
    ASSERT_TRUE(dec.ok() && keep.ok());
    if (*dec != c["decode"].get_ref<const std::string&>() ||
        *keep != c["decode_keep"].get_ref<const std::string&>()) {
      ++bad_decode;
      if (shown++ < 5) {
        ADD_FAILURE() << GetParam() << ": decode differs for " << Quote(text, 300)
                      << "\n  lorart: " << Quote(*dec) << " / " << Quote(*keep)
                      << "\n  HF:     " << Quote(c["decode"].get<std::string>()) << " / "
                      << Quote(c["decode_keep"].get<std::string>());
      }
    }
  }
  std::printf("[ %s ] %d cases (each line + whole corpus): ids %d bad, spans %d bad, "
              "text-only ids %d bad, with-special %d bad, decode %d bad, round trip %s\n",
              GetParam(), cases, bad_ids, bad_spans, bad_text_only, bad_special, bad_decode,
              lossless ? std::to_string(bad_roundtrip).append(" bad").c_str() : "n/a");
  EXPECT_GT(cases, 60);
  EXPECT_EQ(bad_ids, 0);
  EXPECT_EQ(bad_spans, 0);
  EXPECT_EQ(bad_text_only, 0);
  EXPECT_EQ(bad_special, 0);
  EXPECT_EQ(bad_decode, 0);
  EXPECT_EQ(bad_roundtrip, 0);
}

INSTANTIATE_TEST_SUITE_P(Kinds, HfDiffTest,
                         ::testing::Values("llama3", "gpt2", "gpt2_prefix_space", "smollm2",
                                           "qwen2", "llama2", "llama2_unk", "metaspace_first",
                                           "metaspace_always", "gemma", "added",
                                           "misc_wordpiece_style", "misc_suffix",
                                           "misc_bytelevel"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return std::string(info.param);
                         });

}  // namespace
}  // namespace data
}  // namespace lorart
