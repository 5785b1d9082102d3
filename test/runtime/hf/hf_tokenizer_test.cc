// Unit and error tests of the tokenizer.json tokenizer and its components
// (the differential tests against `tokenizers` are in
// hf_tokenizer_diff_test.cc).
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "lorart/base/strings.h"
#include "lorart/data/hf/added_vocabulary.h"
#include "lorart/data/hf/hf_tokenizer.h"
#include "lorart/data/hf/normalized_string.h"
#include "lorart/data/hf/regex.h"
#include "lorart/data/hf/unicode.h"
#include "lorart/io/json.h"

namespace lorart {
namespace data {
namespace {

// A small BPE over "▁abc" with SentencePiece-style normalization.
Json BaseJson() {
  Json j = Json::parse(R"({
    "version": "1.0", "truncation": null, "padding": null,
    "added_tokens": [
      {"id": 0, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
      {"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
      {"id": 2, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
      {"id": 12, "content": "<tool>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false}
    ],
    "normalizer": {"type": "Sequence", "normalizers": [
      {"type": "Prepend", "prepend": "▁"},
      {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
    "pre_tokenizer": null,
    "post_processor": {"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
      "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
    "decoder": {"type": "Sequence", "decoders": [
      {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
      {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null,
      "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": false, "ignore_merges": false,
      "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "▁": 3, "a": 4, "b": 5, "c": 6, "ab": 7, "abc": 8,
                "▁abc": 9, "<": 10, ">": 11},
      "merges": ["a b", ["ab", "c"], "▁ abc"]}
  })");
  return j;
}

std::unique_ptr<Tokenizer> Make(const Json& j, const std::string& config = "") {
  auto t = HfTokenizerFromJson(j.dump(), config, "dir/tokenizer.json");
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? std::move(t).value() : nullptr;
}

std::string LoadError(const Json& j) {
  auto t = HfTokenizerFromJson(j.dump(), "", "dir/tokenizer.json");
  EXPECT_FALSE(t.ok());
  if (t.ok()) return "";
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  return t.status().message();
}

TEST(HfTokenizerTest, EncodesDecodesAndMaps) {
  auto t = Make(BaseJson());
  ASSERT_TRUE(t);
  EXPECT_STREQ(t->kind(), "tokenizers");
  std::vector<int32_t> ids;
  std::vector<TokenSpan> spans;
  ASSERT_TRUE(t->Encode("abc abc", &ids, &spans).ok());
  EXPECT_EQ(ids, (std::vector<int32_t>{9, 9}));
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0].begin, 0u);  // the prepended ▁ takes the span of 'a'
  EXPECT_EQ(spans[0].end, 3u);
  EXPECT_EQ(spans[1].begin, 3u);  // "▁abc" from " abc"
  EXPECT_EQ(spans[1].end, 7u);
  EXPECT_EQ(*t->Decode(ids), "abc abc");
  // Unknown characters fuse into one <unk>.
  ASSERT_TRUE(t->Encode("abxyc", &ids).ok());
  EXPECT_EQ(ids, (std::vector<int32_t>{3, 7, 0, 6}));
  EXPECT_EQ(t->vocab_size(), 13);
  EXPECT_EQ(t->PieceToId("<tool>"), 12);
  EXPECT_EQ(t->PieceToId("▁abc"), 9);
  EXPECT_EQ(t->PieceToId("nope"), -1);
  EXPECT_EQ(t->IdToPiece(9), "▁abc");
  EXPECT_EQ(t->IdToPiece(99), "");
  EXPECT_TRUE(t->IsControl(1));
  EXPECT_FALSE(t->IsControl(12));
  EXPECT_FALSE(t->IsControl(9));
  std::vector<int32_t> prefix, suffix;
  t->SpecialTokensAround(&prefix, &suffix);
  EXPECT_EQ(prefix, std::vector<int32_t>{1});
  EXPECT_TRUE(suffix.empty());
  // No config: BOS is the template's token, EOS unknown, pad falls back to 0.
  EXPECT_EQ(t->bos_id(), 1);
  EXPECT_EQ(t->bos_token(), "<s>");
  EXPECT_EQ(t->eos_id(), -1);
  EXPECT_EQ(t->unk_id(), 0);
  EXPECT_EQ(t->pad_id(), 0);
  ASSERT_TRUE(t->Encode("", &ids).ok());
  EXPECT_TRUE(ids.empty());
}

TEST(HfTokenizerTest, SpecialTokensOnlyInsideSpecialRanges) {
  auto t = Make(BaseJson());
  ASSERT_TRUE(t);
  std::string text = "<s>abc<tool></s>";
  std::vector<int32_t> ids;
  // No ranges: <s> and </s> are text; the non-special <tool> is still a token.
  ASSERT_TRUE(t->Encode(text, &ids).ok());
  EXPECT_EQ(ids, (std::vector<int32_t>{3, 10, 0, 11, 8, 12, 3, 10, 0, 11}));
  // <s> inside a range, </s> not.
  ASSERT_TRUE(t->EncodeWithSpecial(text, {{0, 3}}, &ids, nullptr).ok());
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 9, 12, 3, 10, 0, 11}));
  // A range covering only part of a special token does not count.
  ASSERT_TRUE(t->EncodeWithSpecial(text, {{0, 2}, {12, 16}}, &ids, nullptr).ok());
  EXPECT_EQ(ids, (std::vector<int32_t>{3, 10, 0, 11, 8, 12, 2}));
  // As HF: the Strip decoder removes a space only at the very start.
  EXPECT_EQ(*t->DecodeWithControls({1, 9, 12, 2}), "<s> abc<tool></s>");
  EXPECT_EQ(*t->Decode({1, 9, 12, 2}), "abc<tool>");
  // Ranges must be sorted, disjoint and inside the text.
  EXPECT_EQ(t->EncodeWithSpecial(text, {{3, 5}, {0, 2}}, &ids, nullptr).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(t->EncodeWithSpecial(text, {{0, 99}}, &ids, nullptr).code(),
            StatusCode::kInvalidArgument);
}

TEST(HfTokenizerTest, InvalidUtf8AndBadIds) {
  auto t = Make(BaseJson());
  ASSERT_TRUE(t);
  std::vector<int32_t> ids;
  for (std::string bad : {std::string("ab\xC3"), std::string("a\xED\xA0\x80"),
                          std::string("ab\xC0\xAF"), std::string("\xF5\x80\x80\x80")}) {
    Status s = t->Encode(bad, &ids);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << Quote(bad);
    EXPECT_NE(s.message().find("not valid UTF-8 at byte"), std::string::npos) << s.message();
  }
  EXPECT_NE(t->Encode("ab\xC3", &ids).message().find("byte 2"), std::string::npos);
  EXPECT_EQ(t->Decode({1, 13}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(t->DecodeWithControls({-1}).status().code(), StatusCode::kInvalidArgument);
}

TEST(HfTokenizerTest, ReadsTokenizerConfig) {
  auto t = Make(BaseJson(), R"({"bos_token": {"__type": "AddedToken", "content": "<s>"},
                                "eos_token": "</s>", "unk_token": "<unk>", "pad_token": null})");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->bos_id(), 1);
  EXPECT_EQ(t->eos_id(), 2);
  EXPECT_EQ(t->eos_token(), "</s>");
  EXPECT_EQ(t->pad_id(), 2);  // no pad: EOS
  auto u = Make(BaseJson(), R"({"bos_token": null, "eos_token": "</s>", "pad_token": "<unk>"})");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->bos_id(), -1);
  EXPECT_EQ(u->bos_token(), "");
  EXPECT_EQ(u->pad_id(), 0);
  auto bad = HfTokenizerFromJson(BaseJson().dump(), R"({"eos_token": 3})", "d/tokenizer.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("d/tokenizer_config.json: eos_token: must be a string"),
            std::string::npos)
      << bad.status().message();
}

TEST(HfTokenizerTest, ErrorsNameFileAndField) {
  EXPECT_NE(HfTokenizerFromJson("{\"model\": ", "", "x/tokenizer.json").status().message().find(
                "x/tokenizer.json"),
            std::string::npos);
  Json j = BaseJson();
  j["model"]["type"] = "WordPiece";
  EXPECT_NE(LoadError(j).find("dir/tokenizer.json: model.type: model type 'WordPiece' is not "
                              "supported (lorart reads BPE tokenizers)"),
            std::string::npos);
  j = BaseJson();
  j["model"]["merges"][1] = 5;
  EXPECT_NE(LoadError(j).find("dir/tokenizer.json: model.merges[1]: must be a string"),
            std::string::npos);
  j = BaseJson();
  j["model"]["merges"][0] = "a x";
  EXPECT_NE(LoadError(j).find("model.merges[0]: piece 'x' is not in the vocabulary"),
            std::string::npos);
  j = BaseJson();
  j["model"]["merges"][0] = "a b c";
  EXPECT_NE(LoadError(j).find("model.merges[0]"), std::string::npos);
  j = BaseJson();
  j["model"].erase("vocab");
  EXPECT_NE(LoadError(j).find("model.vocab: is missing"), std::string::npos);
  j = BaseJson();
  j["model"]["vocab"]["a"] = -4;
  EXPECT_NE(LoadError(j).find("out of range"), std::string::npos);
  j = BaseJson();
  j["model"]["dropout"] = 0.1;
  EXPECT_NE(LoadError(j).find("model.dropout"), std::string::npos);
  j = BaseJson();
  j["model"]["dropout"] = 0.0;
  EXPECT_TRUE(Make(j));
  j = BaseJson();
  j["normalizer"]["normalizers"][1] = Json::parse(R"({"type": "BertNormalizer"})");
  EXPECT_NE(LoadError(j).find("normalizer.normalizers[1].type: normalizer type 'BertNormalizer' "
                              "is not supported"),
            std::string::npos);
  j = BaseJson();
  j["normalizer"] = Json::parse(R"({"type": "Precompiled", "precompiled_charsmap": "AAAA"})");
  EXPECT_NE(LoadError(j).find("'Precompiled' is not supported"), std::string::npos);
  j = BaseJson();
  j["pre_tokenizer"] = Json::parse(R"({"type": "UnicodeScripts"})");
  EXPECT_NE(LoadError(j).find("pre_tokenizer.type: pre-tokenizer type 'UnicodeScripts' is not "
                              "supported"),
            std::string::npos);
  j = BaseJson();
  j["pre_tokenizer"] = Json::parse(R"({"type": "Split", "pattern": {"Regex": "(a"},
                                       "behavior": "Isolated", "invert": false})");
  EXPECT_NE(LoadError(j).find("pre_tokenizer.pattern: regex '(a' does not compile"),
            std::string::npos);
  j = BaseJson();
  j["pre_tokenizer"] = Json::parse(R"({"type": "Split", "pattern": {"Regex": "a"},
                                       "behavior": "Sideways", "invert": false})");
  EXPECT_NE(LoadError(j).find("pre_tokenizer.behavior: unknown split behavior"), std::string::npos);
  j = BaseJson();
  j["decoder"]["decoders"][0] = Json::parse(R"({"type": "CTC"})");
  EXPECT_NE(LoadError(j).find("decoder.decoders[0].type: decoder type 'CTC' is not supported"),
            std::string::npos);
  j = BaseJson();
  j["post_processor"]["single"][0]["SpecialToken"]["id"] = "<cls>";
  EXPECT_NE(LoadError(j).find("post_processor.single[0]: special token '<cls>' is not in "
                              "special_tokens"),
            std::string::npos);
  j = BaseJson();
  j["post_processor"] = Json::parse(R"({"type": "Nonsense"})");
  EXPECT_NE(LoadError(j).find("post-processor type 'Nonsense' is not supported"), std::string::npos);
  j = BaseJson();
  j["added_tokens"][1].erase("content");
  EXPECT_NE(LoadError(j).find("added_tokens[1].content: is missing"), std::string::npos);
  j = BaseJson();
  j["added_tokens"][1]["lstrip"] = "yes";
  EXPECT_NE(LoadError(j).find("added_tokens[1].lstrip: must be a boolean, not a string"),
            std::string::npos);
  j = BaseJson();
  j.erase("model");
  EXPECT_NE(LoadError(j).find("model: is missing"), std::string::npos);
  EXPECT_NE(LoadError(Json::array()).find("must be an object"), std::string::npos);
  auto missing = LoadHfTokenizer("/nonexistent/tokenizer.json", "");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/tokenizer.json"), std::string::npos);
}

TEST(HfTokenizerTest, ThreadSafe) {
  auto t = Make(BaseJson());
  ASSERT_TRUE(t);
  std::vector<int32_t> want;
  std::string text = "abc ab c abxyz <tool> cab bca abcabc";
  ASSERT_TRUE(t->Encode(text, &want).ok());
  std::vector<std::thread> threads;
  std::vector<int> bad(4, 0);
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (int i = 0; i < 200; ++i) {
        std::vector<int32_t> ids;
        if (!t->Encode(text + std::string(i % 7, 'a'), &ids).ok()) ++bad[k];
        if (i % 7 == 0 && ids != want) ++bad[k];
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad, std::vector<int>(4, 0));
}

// ---- Components ----------------------------------------------------------

TEST(HfComponentsTest, NormalizedStringAlignments) {
  hf::NormalizedString s("ab cd", 10, true);
  s.Prepend("▁");
  EXPECT_EQ(s.get(), "▁ab cd");
  hf::Offsets o = s.OriginalRange(0, 3);  // "▁" aligns with 'a'
  EXPECT_EQ(o.b, 10u);
  EXPECT_EQ(o.e, 11u);
  s.ReplaceMatches({{0, 5, false}, {5, 6, true}, {6, 8, false}}, "▁");
  EXPECT_EQ(s.get(), "▁ab▁cd");
  o = s.OriginalRange(5, 8);  // the second "▁" is the space
  EXPECT_EQ(o.b, 12u);
  EXPECT_EQ(o.e, 13u);
  hf::NormalizedString n("x\xC3\xA9", 0, true);  // "xé"
  n.ByteLevelMap();
  EXPECT_EQ(n.get(), "xÃ©");
  o = n.OriginalRange(3, 5);  // the second byte of é still spans all of é
  EXPECT_EQ(o.b, 1u);
  EXPECT_EQ(o.e, 3u);
  hf::NormalizedString u("e\xCC\x81x", 0, true);  // e + combining acute
  ASSERT_TRUE(u.ApplyNormalForm(hf::NormalForm::kNFC));
  EXPECT_EQ(u.get(), "\xC3\xA9x");
  o = u.OriginalRange(2, 3);
  EXPECT_EQ(o.b, 3u);
  EXPECT_EQ(o.e, 4u);
  hf::NormalizedString w("  a b  ", 0, true);
  w.Strip(true, true);
  EXPECT_EQ(w.get(), "a b");
  EXPECT_EQ(w.OriginalRange(0, 3).b, 2u);
  EXPECT_EQ(w.OriginalRange(0, 3).e, 5u);
}

TEST(HfComponentsTest, RegexMatchesOnigurumaClasses) {
  auto re = hf::Regex::Compile("\\s+");
  ASSERT_TRUE(re.ok());
  std::vector<hf::Match> m;
  // U+180E is not White_Space (Oniguruma), U+3000 is.
  ASSERT_TRUE((*re)->FindMatches("a\xE1\xA0\x8E" "b\xE3\x80\x80" "c", &m).ok());
  ASSERT_EQ(m.size(), 3u);
  EXPECT_FALSE(m[0].is_match);
  EXPECT_EQ(m[0].e, 5u);
  EXPECT_TRUE(m[1].is_match);
  EXPECT_EQ(hf::TranslateOnigPattern("[^\\s\\p{L}]"),
            "[^\\t-\\r\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}"
            "\\x{205f}\\x{3000}\\p{L}]");
  auto ci = hf::Regex::Compile("(?i:'s|'t)");
  ASSERT_TRUE(ci.ok());
  ASSERT_TRUE((*ci)->FindMatches("x'Sy", &m).ok());
  ASSERT_EQ(m.size(), 3u);
  EXPECT_TRUE(m[1].is_match);
  // Empty matches: not right after a match (onig's find_iter).
  auto star = hf::Regex::Compile("a*");
  ASSERT_TRUE(star.ok());
  ASSERT_TRUE((*star)->FindMatches("baab", &m).ok());
  std::string shape;
  for (const auto& x : m) shape += StrFormat("%zu-%zu%c ", x.b, x.e, x.is_match ? 'm' : '.');
  EXPECT_EQ(shape, "0-0m 0-1. 1-3m 3-4. 4-4m ");
  EXPECT_FALSE(hf::Regex::Compile("[a").ok());
}

TEST(HfComponentsTest, LeftmostLongestMatcher) {
  hf::StringMatcher m;
  m.Add("<s>", 0);
  m.Add("<s>x", 1);
  m.Add("s>", 2);
  size_t b, e;
  int32_t v;
  ASSERT_TRUE(m.FindNext("a<s>xy", 0, &b, &e, &v));
  EXPECT_EQ(b, 1u);
  EXPECT_EQ(e, 5u);
  EXPECT_EQ(v, 1);
  ASSERT_TRUE(m.FindNext("a<s>y", 0, &b, &e, &v));
  EXPECT_EQ(v, 0);
  EXPECT_FALSE(m.FindNext("a<s>y", 4, &b, &e, &v));
}

TEST(HfComponentsTest, Utf8Helpers) {
  EXPECT_EQ(hf::FindInvalidUtf8("h\xC3\xA9llo"), std::string::npos);
  EXPECT_EQ(hf::FindInvalidUtf8("ab\xFF"), 2u);
  EXPECT_EQ(hf::FromUtf8Lossy("a\xF0\x9F\x98" "b"), "a\xEF\xBF\xBD" "b");  // one maximal subpart
  EXPECT_EQ(hf::FromUtf8Lossy("\xC3\xA9\xA9"), "\xC3\xA9\xEF\xBF\xBD");
  EXPECT_EQ(hf::FromUtf8Lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_TRUE(hf::IsWhitespace(0x3000));
  EXPECT_FALSE(hf::IsWhitespace(0x180E));
  EXPECT_EQ(hf::ByteLevelChar(' '), "Ġ");
  EXPECT_EQ(hf::ByteLevelByte(0x120), ' ');
  EXPECT_EQ(hf::ByteLevelByte('a'), 'a');
  EXPECT_EQ(hf::ByteLevelByte(0x4E00), -1);
}

}  // namespace
}  // namespace data
}  // namespace lorart
