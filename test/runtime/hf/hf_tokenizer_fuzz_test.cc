// Mutation fuzzing of the tokenizer.json loader and of the tokenizer it
// builds, with fixed seeds. Valid tokenizer.json texts (byte-level BPE with a
// Split regex, SentencePiece-style BPE with byte fallback, Metaspace, a
// WordPiece-like BPE with prefixes and suffixes) are mutated byte by byte and
// structurally (values of another type, missing keys, huge, negative and
// duplicate ids, merges of unknown pieces, bad or catastrophic regexes, deep
// Sequences, odd keys); each must load or fail with a status. The ones that
// load encode random text (many scripts, invalid UTF-8, long runs, the added
// tokens' texts) with random special ranges, and decode random ids: every
// call returns ok or a status, ids are in the vocabulary, spans are in the
// text. A crash, a hang, a sanitizer report or a thrown exception fails.
#include <gtest/gtest.h>

#include "../fuzz_util.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "lorart/data/hf/hf_tokenizer.h"
#include "lorart/data/hf/normalized_string.h"
#include "lorart/io/json.h"

namespace lorart {
namespace data {
namespace {

// ---- Seeds -------------------------------------------------------------------

// A vocabulary with merges: Merge(a, b) adds a, b and the merged piece.
struct VocabBuilder {
  Json vocab = Json::object();
  Json merges = Json::array();
  int32_t next = 0;
  size_t prefix_len = 0;  // continuing_subword_prefix, dropped from b when merging

  int32_t Add(const std::string& piece) {
    auto it = vocab.find(piece);
    if (it != vocab.end()) return it->get<int32_t>();
    vocab[piece] = next;
    return next++;
  }
  void Merge(const std::string& a, const std::string& b) {
    Add(a);
    Add(b);
    Add(a + b.substr(prefix_len));
    if (merges.size() % 2 == 0) {
      merges.push_back(a + " " + b);
    } else {
      merges.push_back(Json::array({a, b}));
    }
  }
};

Json AddedToken(int32_t id, const std::string& content, bool special, bool lstrip = false,
                bool rstrip = false, bool normalized = false, bool single_word = false) {
  return Json{{"id", id},         {"content", content},       {"single_word", single_word},
              {"lstrip", lstrip}, {"rstrip", rstrip},         {"normalized", normalized},
              {"special", special}};
}

// GPT-2/Qwen2 style: NFC, Split with the Qwen2 regex, then ByteLevel.
Json ByteLevelSeed() {
  VocabBuilder v;
  for (int b = 0; b < 256; ++b) v.Add(hf::ByteLevelChar(static_cast<unsigned char>(b)));
  const char* const kMerges[][2] = {
      {"Ġ", "t"},   {"h", "e"},     {"Ġt", "he"}, {"i", "n"},     {"Ġ", "a"},  {"e", "r"},
      {"o", "n"},   {"Ġ", "w"},     {"Ġw", "o"},  {"r", "l"},     {"Ġwo", "rl"}, {"Ġworl", "d"},
      {"1", "2"},   {"12", "3"},    {"Ċ", "Ċ"},   {"Ġ", "Ġ"},     {"ĠĠ", "ĠĠ"}, {"h", "el"},
      {"e", "l"},   {"hel", "lo"},  {"l", "o"},   {"Ã", "©"},     {"ä", "¸"},  {"ä¸", "Ń"}};
  for (const auto& m : kMerges) v.Merge(m[0], m[1]);
  Json added = Json::array();
  int32_t id = v.next;
  added.push_back(AddedToken(id++, "<|endoftext|>", true));
  added.push_back(AddedToken(id++, "<|im_start|>", true));
  added.push_back(AddedToken(id++, "<|im_end|>", true, false, true));
  added.push_back(AddedToken(id++, "<tool_call>", false));
  added.push_back(AddedToken(id++, "[MASK]", true, true, true));
  added.push_back(AddedToken(id++, " hello", false, false, false, true));
  added.push_back(AddedToken(id++, "word", false, false, false, false, true));
  return Json{
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         Json::array(
             {{{"type", "Split"},
               {"pattern",
                {{"Regex",
                  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                  "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}}},
               {"behavior", "Isolated"},
               {"invert", false}},
              {{"type", "ByteLevel"},
               {"add_prefix_space", false},
               {"trim_offsets", false},
               {"use_regex", false}}})}}},
      {"post_processor",
       {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
        {"use_regex", false}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", ""},
        {"end_of_word_suffix", ""},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", v.vocab},
        {"merges", v.merges}}}};
}

// Llama-2 style: Prepend + Replace normalizers, byte fallback, <s> added.
Json SentencePieceSeed() {
  VocabBuilder v;
  v.Add("<unk>");
  v.Add("<s>");
  v.Add("</s>");
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    v.Add(buf);
  }
  const char* const kMerges[][2] = {
      {"▁", "t"},  {"h", "e"},   {"▁t", "he"}, {"▁", "a"},   {"i", "n"},   {"▁", "▁"},
      {"▁▁", "▁▁"}, {"a", "b"},  {"ab", "c"},  {"▁", "abc"}, {"é", "t"},   {"▁", "é"},
      {"中", "文"}, {"1", "2"},  {"<", "s"},   {"<s", ">"},  {"o", "r"},   {"w", "or"}};
  for (const auto& m : kMerges) v.Merge(m[0], m[1]);
  for (const char* c : {"a", "b", "c", "d", "e", "l", "o", " ", "?", "\n"}) v.Add(c);
  Json added = Json::array({AddedToken(0, "<unk>", true), AddedToken(1, "<s>", true),
                            AddedToken(2, "</s>", true),
                            AddedToken(v.next, "<|user|>", true, true, true),
                            AddedToken(v.next + 1, "▁▁", false, false, false, true)});
  return Json{
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         Json::array({{{"type", "Prepend"}, {"prepend", "▁"}},
                      {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}})}}},
      {"pre_tokenizer", nullptr},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", Json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
        {"pair", Json::array()},
        {"special_tokens",
         {{"<s>", {{"id", "<s>"}, {"ids", Json::array({1})}, {"tokens", Json::array({"<s>"})}}}}}}},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders",
         Json::array({{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
                      {{"type", "ByteFallback"}},
                      {{"type", "Fuse"}},
                      {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", "<unk>"},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", true},
        {"byte_fallback", true},
        {"ignore_merges", false},
        {"vocab", v.vocab},
        {"merges", v.merges}}}};
}

// Metaspace pre-tokenizer (prepend_scheme "first") and decoder, Digits,
// </s> after the sequence, no byte fallback: unknown characters are <unk>.
Json MetaspaceSeed() {
  VocabBuilder v;
  v.Add("<unk>");
  v.Add("<s>");
  v.Add("</s>");
  const char* const kMerges[][2] = {{"▁", "h"}, {"▁h", "i"}, {"e", "l"},   {"el", "l"},
                                    {"ell", "o"}, {"▁h", "ello"}, {"▁", "1"}, {"▁", "▁"}};
  for (const auto& m : kMerges) v.Merge(m[0], m[1]);
  for (const char* c : {"a", "b", "2", "3", "!", ".", "д", "ж"}) v.Add(c);
  Json added = Json::array({AddedToken(0, "<unk>", true), AddedToken(1, "<s>", true),
                            AddedToken(2, "</s>", true),
                            AddedToken(v.next, "<pad>", true, true, false),
                            AddedToken(v.next + 1, "hello", false, false, false, true, true)});
  return Json{
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         Json::array({{{"type", "Metaspace"},
                       {"replacement", "▁"},
                       {"prepend_scheme", "first"},
                       {"split", true}},
                      {{"type", "Digits"}, {"individual_digits", true}}})}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", Json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}})},
        {"special_tokens",
         {{"<s>", {{"id", "<s>"}, {"ids", Json::array({1})}, {"tokens", Json::array({"<s>"})}}},
          {"</s>",
           {{"id", "</s>"}, {"ids", Json::array({2})}, {"tokens", Json::array({"</s>"})}}}}}}},
      {"decoder",
       {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"},
        {"split", true}}},
      {"model",
       {{"type", "BPE"},
        {"unk_token", "<unk>"},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"vocab", v.vocab},
        {"merges", v.merges}}}};
}

// Subword prefix and word suffix, Bert-like pre-tokenization, accents
// stripped and lowercased, WordPiece decoder, BertProcessing.
Json WordSeed() {
  VocabBuilder v;
  v.prefix_len = 2;
  v.Add("[UNK]");
  v.Add("[CLS]");
  v.Add("[SEP]");
  for (char c = 'a'; c <= 'z'; ++c) {
    std::string s(1, c);
    v.Add(s);
    v.Add("##" + s);
    v.Add(s + "</w>");
    v.Add("##" + s + "</w>");
  }
  v.Merge("t", "##h");
  v.Merge("th", "##e</w>");
  v.Merge("c", "##a");
  v.Merge("ca", "##f");
  v.Merge("caf", "##e</w>");
  v.Merge("a", "##n");
  return Json{
      {"added_tokens", Json::array({AddedToken(0, "[UNK]", true), AddedToken(1, "[CLS]", true),
                                    AddedToken(2, "[SEP]", true)})},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers", Json::array({{{"type", "NFKD"}},
                                     {{"type", "StripAccents"}},
                                     {{"type", "Lowercase"}},
                                     {{"type", "Strip"}, {"strip_left", true},
                                      {"strip_right", true}}})}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers", Json::array({{{"type", "BertPreTokenizer"}},
                                       {{"type", "Punctuation"}, {"behavior", "Isolated"}},
                                       {{"type", "CharDelimiterSplit"}, {"delimiter", "x"}}})}}},
      {"post_processor",
       {{"type", "BertProcessing"},
        {"cls", Json::array({"[CLS]", 1})},
        {"sep", Json::array({"[SEP]", 2})}}},
      {"decoder", {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}},
      {"model",
       {{"type", "BPE"},
        {"unk_token", "[UNK]"},
        {"fuse_unk", true},
        {"continuing_subword_prefix", "##"},
        {"end_of_word_suffix", "</w>"},
        {"vocab", v.vocab},
        {"merges", v.merges}}}};
}

// Whitespace pre-tokenizer, ignore_merges, RobertaProcessing inside a
// Sequence, BPEDecoder.
Json WhitespaceSeed() {
  VocabBuilder v;
  v.Add("<s>");
  v.Add("</s>");
  for (const char* c : {"a", "b", "c", "1", "!", "é", "ü"}) v.Add(c);
  v.Merge("a", "b");
  v.Merge("ab", "c");
  v.Add("abcabc");
  return Json{
      {"added_tokens", Json::array({AddedToken(0, "<s>", true), AddedToken(1, "</s>", true)})},
      {"normalizer", {{"type", "NFKC"}}},
      {"pre_tokenizer", {{"type", "Whitespace"}}},
      {"post_processor",
       {{"type", "Sequence"},
        {"processors", Json::array({{{"type", "RobertaProcessing"},
                                     {"cls", Json::array({"<s>", 0})},
                                     {"sep", Json::array({"</s>", 1})},
                                     {"trim_offsets", true},
                                     {"add_prefix_space", true}}})}}},
      {"decoder", {{"type", "BPEDecoder"}, {"suffix", "</w>"}}},
      {"model",
       {{"type", "BPE"}, {"ignore_merges", true}, {"vocab", v.vocab}, {"merges", v.merges}}}};
}

std::vector<std::string> SeedTexts() {
  return {ByteLevelSeed().dump(), SentencePieceSeed().dump(), MetaspaceSeed().dump(),
          WordSeed().dump(), WhitespaceSeed().dump()};
}

const char* const kConfigs[] = {
    "",
    R"({"bos_token": "<s>", "eos_token": {"content": "</s>"}, "pad_token": null,
        "unk_token": "<unk>"})",
    R"({"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "bos_token": null})",
    R"({"bos_token": "nope"})",
    R"({"bos_token": 7})",
    "[]",
    "{",
};

// ---- Mutations ---------------------------------------------------------------

// Regexes that do not compile, that match empty strings, or that backtrack
// catastrophically.
const char* const kRegexes[] = {
    "(a+)+$",       "(a|aa)*b",     "(a*)*$",       "(x+x+)+y",    "(",          "[",
    "\\",           "a{2,1}",       "(?<=a+)b",     "\\p{Foo}",    "a{65536}",   "",
    "(?:)",         "x*",           "$",            "^",           "\\b",        "(?=a)",
    ".",            "\\X",          "\\s+(?!\\S)",  "[^\\s]",      "[[:alpha:]]", "\\h+",
    "\\K",          "(?i)É",        "\\x{110000}",  "(*ACCEPT)",   "(?R)",       "(*LIMIT_MATCH=1)a",
    "(?1)(a)",      "\\w+|\\W",     "[\\S\\W\\H]",  "(?!)",        "\\p{L}+",    "[]a]",
    "[^]a]",        "(*UTF)(*UCP)", "\\C",          "a\\z",        "(?<a>.)\\k<a>", "[a-\\d]",
    "(?m)^$",       "\\Q*\\E",      "\\R",          "(*CR)a",      "▁",          " ",
};

const char* const kTypes[] = {"BPE",        "Sequence",      "NFC",          "NFKD",
                              "Prepend",    "Replace",       "Lowercase",    "Strip",
                              "StripAccents", "ByteLevel",   "Split",        "Metaspace",
                              "Digits",     "Punctuation",   "Whitespace",   "WhitespaceSplit",
                              "BertPreTokenizer", "CharDelimiterSplit", "TemplateProcessing",
                              "RobertaProcessing", "BertProcessing", "ByteFallback", "Fuse",
                              "WordPiece",  "BPEDecoder",    "Precompiled",  "Unigram",
                              "WordLevel",  "",              "bpe"};

// Text inserted by byte-level mutations of the JSON text.
const char* const kTextTokens[] = {
    "[", "]", "{", "}", "\"", ",", ":", "0", "1", "-1", "1e400", "2.5", "null", "true", "false",
    "18446744073709551616", "9223372036854775807", "16777216", "16777215", "\\", "\\u0000",
    "\\ud800", "\\udc00\\ud800", "\xff", "\xc3", "\xed\xa0\x80", "\xc0\x80", " ", "\n",
    "\"type\"", "\"Sequence\"", "\"Regex\"", "\"(a+)+$\"", "\"vocab\"", "\"merges\"", "\"id\"",
    "\"content\"", "\"special\"", "\"▁\"", "\"Ġ\"", "\"<0x41>\"", "{\"type\":\"Fuse\"}", "[[", "]]",
};

// Component objects that load (or almost), to swap in for a section.
const char* const kNormalizers[] = {
    R"({"type":"NFC"})", R"({"type":"NFD"})", R"({"type":"NFKC"})", R"({"type":"NFKD"})",
    R"({"type":"Lowercase"})", R"({"type":"StripAccents"})", R"({"type":"ByteLevel"})",
    R"({"type":"Strip","strip_left":true,"strip_right":false})",
    R"({"type":"Prepend","prepend":"▁"})", R"({"type":"Prepend","prepend":""})",
    R"({"type":"Replace","pattern":{"String":" "},"content":"▁"})",
    R"({"type":"Replace","pattern":{"String":""},"content":"x"})",
    R"({"type":"Replace","pattern":{"Regex":"\\s+"},"content":" "})",
    R"({"type":"Replace","pattern":{"Regex":"(a+)+$"},"content":""})",
    R"({"type":"Replace","pattern":{"Regex":"a"},"content":"aa"})",
    R"({"type":"Sequence","normalizers":[]})",
    R"({"type":"Sequence","normalizers":[{"type":"NFKD"},{"type":"Lowercase"},{"type":"NFC"}]})",
    R"({"type":"Precompiled","precompiled_charsmap":""})", R"({"type":"BertNormalizer"})",
};
const char* const kPreTokenizers[] = {
    R"({"type":"ByteLevel","add_prefix_space":true,"use_regex":true})",
    R"({"type":"ByteLevel","add_prefix_space":false,"use_regex":false})",
    R"({"type":"Split","pattern":{"Regex":"\\p{N}{1,3}"},"behavior":"Isolated","invert":false})",
    R"({"type":"Split","pattern":{"String":""},"behavior":"Removed","invert":true})",
    R"({"type":"Split","pattern":{"Regex":"(a+)+$"},"behavior":"MergedWithPrevious","invert":false})",
    R"({"type":"Split","pattern":{"Regex":"$"},"behavior":"MergedWithNext","invert":true})",
    R"({"type":"Split","pattern":{"Regex":"\\b"},"behavior":"Contiguous","invert":false})",
    R"({"type":"Split","pattern":{"String":"a"},"behavior":"Sideways"})",
    R"({"type":"Metaspace","replacement":"▁","prepend_scheme":"always","split":false})",
    R"({"type":"Metaspace","replacement":"▁","prepend_scheme":"never","split":true})",
    R"({"type":"Metaspace","replacement":" ","add_prefix_space":true})",
    R"({"type":"Metaspace","replacement":"ab"})", R"({"type":"Metaspace","replacement":""})",
    R"({"type":"Digits","individual_digits":false})", R"({"type":"Punctuation"})",
    R"({"type":"Whitespace"})", R"({"type":"WhitespaceSplit"})", R"({"type":"BertPreTokenizer"})",
    R"({"type":"CharDelimiterSplit","delimiter":"▁"})",
    R"({"type":"Sequence","pretokenizers":[]})",
    R"({"type":"Sequence","pretokenizers":[{"type":"WhitespaceSplit"},{"type":"Metaspace","replacement":"▁","prepend_scheme":"first"}]})",
    R"({"type":"UnicodeScripts"})",
};
const char* const kPostProcessors[] = {
    R"({"type":"ByteLevel","trim_offsets":true,"add_prefix_space":true})",
    R"({"type":"ByteLevel","trim_offsets":false})",
    R"({"type":"RobertaProcessing","cls":["<s>",0],"sep":["</s>",2],"trim_offsets":true})",
    R"({"type":"BertProcessing","cls":["[CLS]",1],"sep":["[SEP]",16777215]})",
    R"({"type":"BertProcessing","cls":["[CLS]",-1],"sep":["[SEP]",2]})",
    R"({"type":"TemplateProcessing","single":[{"Sequence":{"id":"A"}}]})",
    R"({"type":"TemplateProcessing","single":[{"Sequence":{"id":"A"}},{"Sequence":{"id":"A"}}]})",
    R"({"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"x"}},{"Sequence":{"id":"A"}}],"special_tokens":{"x":{"ids":[2147483647]}}})",
    R"({"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"x"}},{"Sequence":{"id":"A"}}],"special_tokens":{"x":{"ids":[0,1,0]}}})",
    R"({"type":"Sequence","processors":[{"type":"ByteLevel"},{"type":"ByteLevel","trim_offsets":true}]})",
};
const char* const kDecoders[] = {
    R"({"type":"ByteLevel"})", R"({"type":"ByteFallback"})", R"({"type":"Fuse"})",
    R"({"type":"Metaspace","replacement":"▁","prepend_scheme":"always"})",
    R"({"type":"Strip","content":"▁","start":1000000,"stop":1000000})",
    R"({"type":"Strip","content":" ","start":-1,"stop":0})",
    R"({"type":"Replace","pattern":{"Regex":"(a+)+$"},"content":""})",
    R"({"type":"Replace","pattern":{"String":""},"content":"-"})",
    R"({"type":"WordPiece","prefix":"","cleanup":true})",
    R"({"type":"WordPiece","prefix":"##","cleanup":false})",
    R"({"type":"BPEDecoder","suffix":""})", R"({"type":"BPEDecoder","suffix":"</w>"})",
    R"({"type":"Sequence","decoders":[{"type":"ByteFallback"},{"type":"ByteLevel"},{"type":"Fuse"}]})",
    R"({"type":"CTC"})",
};

using ::lorart::testing::FuzzScale;
using ::lorart::testing::FuzzSeed;
using ::lorart::testing::Rng;

// A value found by walking the document: where it is.
struct Node {
  Json* value;
  Json* parent;  // null for the root
  std::string key;  // in an object parent
  size_t index;     // in an array parent
};

void Walk(Json* v, Json* parent, const std::string& key, size_t index, int depth,
          std::vector<Node>* out) {
  out->push_back({v, parent, key, index});
  if (depth > 80) return;
  if (v->is_object()) {
    for (auto it = v->begin(); it != v->end(); ++it) Walk(&it.value(), v, it.key(), 0, depth + 1, out);
  } else if (v->is_array()) {
    for (size_t i = 0; i < v->size(); ++i) Walk(&(*v)[i], v, "", i, depth + 1, out);
  }
}

// Valid UTF-8 odd strings for keys and values.
const std::vector<std::string> kOddStrings = {
    "",       std::string(1, '\0'), "é", "𝔘𝔫𝔦", "\uFFFF", "\uFEFF", "Type",
    std::string("type\0", 5),         " ",
    "<0x41>", "<0xZZ>", "▁",      "Ġ",      "ĠĠ",     "\t",     "a b",   "a  b",       "<s>",
    "</s>",   "<unk>",  "\u202e", "ﷺ",      "İ",      "👩‍👩‍👧", "a",     "ab",         "##",
};

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : r(seed) {}
  Rng r;

  Json RandomValue() {
    switch (r.Below(16)) {
      case 0: return nullptr;
      case 1: return r.Chance(0.5);
      case 2: return -1;
      case 3: return 0;
      case 4: return int64_t{1} << 24;
      case 5: return std::numeric_limits<int64_t>::max();
      case 6: return std::numeric_limits<int64_t>::min();
      case 7: return std::numeric_limits<uint64_t>::max();
      case 8: return 2.5;
      case 9: return 1e300;
      case 10: return std::string(r.Pick(kOddStrings));
      case 11: return Json::array();
      case 12: return Json::object();
      case 13: return Json::array({1, "a"});
      case 14: return Json{{"type", r.Pick(kTypes)}};
      default: return static_cast<int64_t>(r.Below(400));
    }
  }

  // The document's component sections, as pointers (null when absent).
  Json* Section(Json& j, const char* key) {
    auto it = j.find(key);
    return it == j.end() ? nullptr : &it.value();
  }

  void MutateStructure(Json& j) {
    if (!j.is_object()) return;
    std::vector<Node> nodes;
    auto walk = [&] {
      nodes.clear();
      Walk(&j, nullptr, "", 0, 0, &nodes);
    };
    Json* model = Section(j, "model");
    Json* vocab = model && model->is_object() ? Section(*model, "vocab") : nullptr;
    if (vocab && !vocab->is_object()) vocab = nullptr;
    Json* merges = model && model->is_object() ? Section(*model, "merges") : nullptr;
    if (merges && !merges->is_array()) merges = nullptr;
    Json* added = Section(j, "added_tokens");
    if (added && !added->is_array()) added = nullptr;
    // Edits that usually keep the file loadable come more often.
    static const int kWeighted[] = {0, 1, 2, 3, 3, 4, 5, 5, 6, 6, 7, 8, 8, 9, 9, 10, 11, 11, 11,
                                    11, 12, 12, 13, 13};
    switch (r.Pick(kWeighted)) {
      case 0: {  // a value of another type
        walk();
        Node& n = nodes[r.Below(nodes.size())];
        if (n.parent != nullptr) *n.value = RandomValue();
        break;
      }
      case 1: {  // drop a key
        walk();
        Node& n = nodes[r.Below(nodes.size())];
        if (n.parent != nullptr && n.parent->is_object()) {
          n.parent->erase(n.key);
        } else if (n.parent != nullptr && n.parent->is_array()) {
          n.parent->erase(n.index);
        }
        break;
      }
      case 2: {  // odd ids in the vocabulary
        if (!vocab || vocab->empty()) break;
        auto it = vocab->begin();
        std::advance(it, r.Below(vocab->size()));
        static const int64_t kIds[] = {-1, -2147483648LL, 1 << 24, 1LL << 40, 0, 1, 2, 3, 100000,
                                      2147483647, 4294967296LL};
        if (r.Chance(0.5)) {
          *it = r.Pick(kIds);
        } else {  // another piece's id
          auto other = vocab->begin();
          std::advance(other, r.Below(vocab->size()));
          *it = *other;
        }
        break;
      }
      case 3: {  // odd merges
        if (!merges) break;
        switch (r.Below(6)) {
          case 0: merges->push_back("zzz qqq"); break;
          case 1: merges->push_back(std::string(r.Pick(kOddStrings)) + " " + r.Pick(kOddStrings)); break;
          case 2: merges->push_back(r.Chance(0.5) ? Json("a") : Json("a b c")); break;
          case 3: merges->push_back(Json::array({r.Pick(kOddStrings), r.Pick(kOddStrings)})); break;
          case 4:
            if (!merges->empty()) merges->push_back((*merges)[r.Below(merges->size())]);
            break;
          case 5:
            if (merges->size() > 1) {
              std::swap((*merges)[r.Below(merges->size())], (*merges)[r.Below(merges->size())]);
            }
            break;
        }
        break;
      }
      case 4:  // empty vocabulary or merges
        if (model && model->is_object()) {
          if (r.Chance(0.5)) (*model)["vocab"] = Json::object();
          else (*model)["merges"] = Json::array();
        }
        break;
      case 5: {  // a regex that does not compile or backtracks
        std::vector<Json*> patterns;
        walk();
        for (Node& n : nodes) {
          if (n.key == "pattern" && n.value->is_object()) patterns.push_back(n.value);
        }
        Json p = r.Chance(0.8) ? Json{{"Regex", r.Pick(kRegexes)}}
                               : Json{{"String", r.Pick(kOddStrings)}};
        if (!patterns.empty() && r.Chance(0.7)) {
          *patterns[r.Below(patterns.size())] = p;
        } else {
          j["pre_tokenizer"] = Json{{"type", "Split"}, {"pattern", p},
                                    {"behavior", "Isolated"}, {"invert", r.Chance(0.3)}};
        }
        break;
      }
      case 6: {  // nested Sequences, around the JSON depth limit or within it
        static const char* const kKeys[][2] = {{"normalizer", "normalizers"},
                                               {"pre_tokenizer", "pretokenizers"},
                                               {"post_processor", "processors"},
                                               {"decoder", "decoders"}};
        const auto& k = r.Pick(kKeys);
        size_t depth = r.Chance(0.7) ? 1 + r.Below(12) : 25 + r.Below(10);
        Json v = j.contains(k[0]) ? j[k[0]] : Json();
        for (size_t d = 0; d < depth; ++d) {
          Json list = Json::array();
          if (!v.is_null()) list.push_back(v);
          if (r.Chance(0.2) && !v.is_null()) list.push_back(v);
          v = Json{{"type", "Sequence"}, {k[1], list}};
        }
        j[k[0]] = v;
        break;
      }
      case 7: {  // odd keys (also inside vocab: odd pieces)
        std::vector<Json*> objects;
        walk();
        for (Node& n : nodes) {
          if (n.value->is_object()) objects.push_back(n.value);
        }
        Json* o = objects[r.Below(objects.size())];
        std::string key = r.Pick(kOddStrings);
        if (r.Chance(0.5) && !o->empty()) {  // rename
          auto it = o->begin();
          std::advance(it, r.Below(o->size()));
          Json v = it.value();
          std::string old = it.key();
          o->erase(old);
          (*o)[key] = v;
        } else {
          (*o)[key] = o == vocab ? Json(static_cast<int64_t>(r.Below(600))) : RandomValue();
        }
        break;
      }
      case 8: {  // odd added tokens
        if (!added) break;
        Json t = AddedToken(0, r.Pick(kOddStrings), r.Chance(0.5), r.Chance(0.5), r.Chance(0.5),
                            r.Chance(0.5), r.Chance(0.3));
        static const int64_t kIds[] = {-1, 0, 1, 2, 5, 299, 300, 16777215, 16777216, 1LL << 33};
        t["id"] = r.Pick(kIds);
        if (r.Chance(0.3) && !added->empty()) {  // a prefix of another added token
          const Json& other = (*added)[r.Below(added->size())];
          if (other.is_object() && other.contains("content") && other["content"].is_string()) {
            std::string c = other["content"];
            t["content"] = c.substr(0, 1 + r.Below(c.size() + 1));
          }
        }
        added->push_back(t);
        break;
      }
      case 9: {  // flip a flag of an added token
        if (!added || added->empty()) break;
        Json& t = (*added)[r.Below(added->size())];
        static const char* const kFlags[] = {"lstrip", "rstrip", "single_word", "normalized",
                                             "special"};
        if (t.is_object()) t[r.Pick(kFlags)] = r.Chance(0.5);
        break;
      }
      case 10: {  // another component type name
        std::vector<Json*> typed;
        walk();
        for (Node& n : nodes) {
          if (n.key == "type" && n.value->is_string()) typed.push_back(n.value);
        }
        if (!typed.empty()) *typed[r.Below(typed.size())] = r.Pick(kTypes);
        break;
      }
      case 11: {  // swap in another component
        switch (r.Below(4)) {
          case 0: j["normalizer"] = Json::parse(r.Pick(kNormalizers)); break;
          case 1: j["pre_tokenizer"] = Json::parse(r.Pick(kPreTokenizers)); break;
          case 2: j["post_processor"] = Json::parse(r.Pick(kPostProcessors)); break;
          case 3: j["decoder"] = Json::parse(r.Pick(kDecoders)); break;
        }
        break;
      }
      case 12: {  // model flags
        if (!model || !model->is_object()) break;
        static const char* const kFlags[] = {"byte_fallback", "fuse_unk", "ignore_merges"};
        if (r.Chance(0.6)) {
          (*model)[r.Pick(kFlags)] = r.Chance(0.5);
        } else {
          static const char* const kStrings[] = {"unk_token", "continuing_subword_prefix",
                                                 "end_of_word_suffix"};
          (*model)[r.Pick(kStrings)] = r.Chance(0.2) ? Json() : Json(r.Pick(kOddStrings));
        }
        break;
      }
      case 13: {  // many parts in one Sequence (wide, not deep)
        Json list = Json::array();
        size_t n = 1 + r.Below(40);
        // The supported ones (the last two are not).
        const size_t supported = sizeof(kNormalizers) / sizeof(kNormalizers[0]) - 2;
        for (size_t i = 0; i < n; ++i) list.push_back(Json::parse(kNormalizers[r.Below(supported)]));
        j["normalizer"] = Json{{"type", "Sequence"}, {"normalizers", list}};
        break;
      }
    }
  }

  void MutateText(std::string* s) {
    switch (r.Below(8)) {
      case 0:
        if (!s->empty()) (*s)[r.Below(s->size())] ^= static_cast<char>(1u << r.Below(8));
        break;
      case 1:
        if (!s->empty()) (*s)[r.Below(s->size())] = static_cast<char>(r.Below(256));
        break;
      case 2:
      case 3:
        s->insert(r.Below(s->size() + 1), r.Pick(kTextTokens));
        break;
      case 4:
        if (!s->empty()) s->erase(r.Below(s->size()), 1 + r.Below(16));
        break;
      case 5: {
        if (s->empty()) break;
        std::string piece = s->substr(r.Below(s->size()), 1 + r.Below(40));
        s->insert(r.Below(s->size() + 1), piece);
        break;
      }
      case 6:  // truncate
        s->resize(r.Below(s->size() + 1));
        break;
      case 7: {  // deep nesting
        size_t depth = r.Chance(0.5) ? 60 + r.Below(10) : 100 + r.Below(1000);
        s->insert(r.Below(s->size() + 1), std::string(depth, r.Chance(0.5) ? '[' : '{'));
        break;
      }
    }
  }
};

// ---- Inputs to encode ----------------------------------------------------------

const std::vector<std::string> kTextPieces = {
    "hello", " world", "The", " the", "123", "3.14", "!?", "  ", "   ", "\t", "\n", "\r\n", "\n\n",
    "é", "e\u0301", "ñ", "Ω", "café", "中文", "日本語", "한국어", "العربية", "हिन्दी", "ไทย",
    "😀", "👩‍👩‍👧", "🇺🇸", "\u180e", "\u00a0", "\u3000", "\u200d", "ﷺ", "ǅ", "İ", "ß", "ﬁ",
    std::string(1, '\0'), "\x7f", "▁", "Ġ", "<0x41>", "<s>", "</s>", "'s", "'LL", "don't",
    "\xef\xbf\xbd", "abc", "x", "ab", "aaaa", "<|im_", "|>", "[MASK]", " [MASK] ", "##", "</w>",
    "д", "ж", "1", "2", "thé", "CAFÉ",
};
const char* const kBadUtf8[] = {"\xff", "\xc3", "\xed\xa0\x80", "\xc0\x80", "\x80",
                                "\xf4\x90\x80\x80", "\xe2\x82", "\xf0\x9f\x98"};
const char* const kRunChars[] = {"a", " ", "\n", "1", "▁", "é", "中", "\t", "!", "ab"};

std::string RandomText(Rng& r, const std::vector<std::string>& added) {
  std::string s;
  if (r.Chance(0.05)) return s;
  if (r.Chance(0.08)) {  // a long run of one character
    std::string c = r.Pick(kRunChars);
    size_t n = 1 + r.Below(1500);
    for (size_t i = 0; i < n; ++i) s += c;
    if (r.Chance(0.5)) s += "b";
    return s;
  }
  size_t n = 1 + r.Below(12);
  for (size_t i = 0; i < n; ++i) {
    size_t k = r.Below(10);
    if (k < 2 && !added.empty()) {
      s += r.Pick(added);
    } else if (k == 2 && !added.empty()) {  // part of an added token
      const std::string& a = r.Pick(added);
      s += a.substr(r.Below(a.size() + 1), r.Below(a.size() + 1));
    } else {
      s += r.Pick(kTextPieces);
    }
  }
  if (r.Chance(0.1)) s.insert(r.Below(s.size() + 1), r.Pick(kBadUtf8));
  return s;
}

// Sorted, disjoint ranges; some cover added tokens exactly, some split
// characters. With `valid` false, a broken list (expected to be refused).
std::vector<ByteRange> RandomRanges(Rng& r, const std::string& text,
                                    const std::vector<std::string>& added, bool valid) {
  std::vector<ByteRange> ranges;
  const uint32_t n = static_cast<uint32_t>(text.size());
  if (!valid) {
    switch (r.Below(3)) {
      case 0: return {{2, 1}};
      case 1: return {{0, n + 1 + static_cast<uint32_t>(r.Below(3))}};
      default:
        if (n == 0) return {{0, 1}};
        return {{0, n}, {n - 1, n}};
    }
  }
  if (r.Chance(0.15)) return ranges;
  if (r.Chance(0.3)) {
    ranges.push_back({0, n});
    return ranges;
  }
  if (r.Chance(0.4)) {  // exactly the added tokens' occurrences
    std::vector<ByteRange> found;
    for (const std::string& a : added) {
      if (a.empty()) continue;
      for (size_t p = text.find(a); p != std::string::npos; p = text.find(a, p + 1)) {
        found.push_back({static_cast<uint32_t>(p), static_cast<uint32_t>(p + a.size())});
      }
    }
    std::sort(found.begin(), found.end(),
              [](const ByteRange& x, const ByteRange& y) { return x.begin < y.begin; });
    for (const ByteRange& f : found) {
      if (ranges.empty() || f.begin >= ranges.back().end) {
        if (r.Chance(0.8)) ranges.push_back(f);
      }
    }
    return ranges;
  }
  std::vector<uint32_t> cuts;
  size_t k = 2 * (1 + r.Below(4));
  for (size_t i = 0; i < k; ++i) cuts.push_back(static_cast<uint32_t>(r.Below(n + 1)));
  std::sort(cuts.begin(), cuts.end());
  for (size_t i = 0; i + 1 < cuts.size(); i += 2) ranges.push_back({cuts[i], cuts[i + 1]});
  return ranges;
}

// Added token texts of a document (to put in the inputs).
std::vector<std::string> AddedTexts(const Json& j) {
  std::vector<std::string> out;
  if (!j.is_object()) return out;
  auto added = j.find("added_tokens");
  if (added == j.end() || !added->is_array()) return out;
  for (const Json& t : *added) {
    if (t.is_object()) {
      auto c = t.find("content");
      if (c != t.end() && c->is_string()) out.push_back(c->get<std::string>());
    }
  }
  return out;
}

// The errors a loaded tokenizer may give on valid input: a regex over PCRE2's
// match limit, a pipeline that grows the text too much.
bool ExpectedPipelineError(const Status& s) {
  return s.message().find("regex") != std::string::npos ||
         s.message().find("would grow a text") != std::string::npos;
}

struct Counts {
  int loaded = 0, rejected = 0, encoded = 0, encode_errors = 0, decoded = 0, decode_errors = 0;
  int tokens = 0;
};

// Exercises a tokenizer that loaded (fatal failures end the caller's test).
void Exercise(const Tokenizer& t, Rng& r, const std::vector<std::string>& added, int rounds,
              Counts* counts) {
  const int32_t vocab = t.vocab_size();
  ASSERT_GT(vocab, 0);
  for (int round = 0; round < rounds; ++round) {
    const std::string text = RandomText(r, added);
    const bool valid_ranges = !r.Chance(0.05);
    const std::vector<ByteRange> ranges = RandomRanges(r, text, added, valid_ranges);
    std::string trace = "text " + Json(text).dump(-1, ' ', false, Json::error_handler_t::replace) +
                        ", special ranges";
    for (const ByteRange& b : ranges) trace += " [" + std::to_string(b.begin) + ", " + std::to_string(b.end) + ")";
    SCOPED_TRACE(trace);
    std::vector<int32_t> ids;
    std::vector<TokenSpan> spans;
    const bool with_spans = r.Chance(0.7);
    Status s = t.EncodeWithSpecial(text, ranges, &ids, with_spans ? &spans : nullptr);
    if (!valid_ranges) {
      ASSERT_FALSE(s.ok()) << "broken special ranges accepted";
      continue;
    }
    if (!s.ok()) {
      ++counts->encode_errors;
      ASSERT_FALSE(s.message().empty());
      continue;
    }
    ++counts->encoded;
    counts->tokens += static_cast<int>(ids.size());
    for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < vocab) << id << " of " << vocab;
    if (with_spans) {
      ASSERT_EQ(spans.size(), ids.size());
      for (const TokenSpan& sp : spans) {
        ASSERT_LE(sp.begin, sp.end);
        ASSERT_LE(sp.end, text.size());
      }
    }
    if (r.Chance(0.3)) {  // the same ids with spans tracked or not
      std::vector<int32_t> ids2;
      std::vector<TokenSpan> spans2;
      Status s2 = t.EncodeWithSpecial(text, ranges, &ids2, with_spans ? nullptr : &spans2);
      ASSERT_TRUE(s2.ok()) << s2.ToString();
      ASSERT_EQ(ids, ids2);
    }
    auto d = t.Decode(ids);
    if (!d.ok()) {
      ASSERT_TRUE(ExpectedPipelineError(d.status())) << d.status().ToString();
    }
    auto dc = t.DecodeWithControls(ids);
    if (!dc.ok()) {
      ASSERT_TRUE(ExpectedPipelineError(dc.status())) << dc.status().ToString();
    }
  }
  // Random ids, in and out of range.
  for (int round = 0; round < 2; ++round) {
    std::vector<int32_t> ids;
    bool out_of_range = false;
    size_t n = r.Below(20);
    for (size_t i = 0; i < n; ++i) {
      int32_t id;
      switch (r.Below(8)) {
        case 0: id = -1 - static_cast<int32_t>(r.Below(3)); break;
        case 1: id = vocab + static_cast<int32_t>(r.Below(3)); break;
        case 2: id = std::numeric_limits<int32_t>::min(); break;
        case 3: id = std::numeric_limits<int32_t>::max(); break;
        default: id = static_cast<int32_t>(r.Below(static_cast<size_t>(vocab))); break;
      }
      out_of_range |= id < 0 || id >= vocab;
      ids.push_back(id);
    }
    auto d = r.Chance(0.5) ? t.Decode(ids) : t.DecodeWithControls(ids);
    if (out_of_range) {
      ASSERT_FALSE(d.ok());
      ASSERT_EQ(d.status().code(), StatusCode::kInvalidArgument);
    } else if (d.ok()) {
      ++counts->decoded;
    } else {
      ++counts->decode_errors;
      ASSERT_TRUE(ExpectedPipelineError(d.status())) << d.status().ToString();
    }
    (void)t.IdToPiece(ids.empty() ? -1 : ids[0]);
  }
}

TEST(HfTokenizerFuzzTest, SeedsLoadAndEncode) {
  Rng r(FuzzSeed(7));
  Counts counts;
  for (const std::string& seed : SeedTexts()) {
    auto t = HfTokenizerFromJson(seed, "", "seed/tokenizer.json");
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    Exercise(**t, r, AddedTexts(Json::parse(seed)), 150, &counts);
    if (::testing::Test::HasFatalFailure()) return;
  }
  EXPECT_GT(counts.encoded, 600);
  EXPECT_GT(counts.tokens, 5000);
}

TEST(HfTokenizerFuzzTest, MutatedTokenizersLoadOrFailCleanly) {
  const std::vector<std::string> seeds = SeedTexts();
  std::vector<Json> seed_docs;
  for (const std::string& seed : seeds) seed_docs.push_back(Json::parse(seed));
  const int kMutantsPerSeed = 320 * FuzzScale();  // 5 seeds: 1600 tokenizer.json texts
  Mutator m(FuzzSeed(0x70c3a1u));
  Counts counts;
  for (size_t si = 0; si < seeds.size(); ++si) {
    const std::string& seed = seeds[si];
    for (int i = 0; i < kMutantsPerSeed; ++i) {
      std::string text = seed;
      Json doc;
      if (m.r.Chance(0.75)) {
        doc = seed_docs[si];
        for (size_t k = 0, n = m.r.Chance(0.6) ? 1 : 2 + m.r.Below(2); k < n; ++k) {
          m.MutateStructure(doc);
        }
        text = doc.dump(-1, ' ', false, Json::error_handler_t::replace);
        if (m.r.Chance(0.15)) m.MutateText(&text);
      } else {
        for (size_t k = 0, n = 1 + m.r.Below(3); k < n; ++k) m.MutateText(&text);
        doc = Json::parse(text, nullptr, /*allow_exceptions=*/false);
      }
      std::string config = m.r.Chance(0.7) ? "" : m.r.Pick(kConfigs);
      if (!config.empty() && m.r.Chance(0.2)) m.MutateText(&config);
      auto t = HfTokenizerFromJson(text, config, "fuzz/tokenizer.json");
      if (!t.ok()) {
        ++counts.rejected;
        const std::string& msg = t.status().message();
        ASSERT_FALSE(msg.empty());
        ASSERT_EQ(msg.find('\n'), std::string::npos) << msg;
        continue;
      }
      ++counts.loaded;
      Exercise(**t, m.r, AddedTexts(doc), 3, &counts);
      if (::testing::Test::HasFatalFailure()) {
        ADD_FAILURE() << "tokenizer.json: " << text;
        return;
      }
    }
  }
  std::printf("hf fuzz: %d loaded, %d rejected; %d encodes ok (%d tokens), %d encode errors; "
              "%d random decodes ok, %d decode errors\n",
              counts.loaded, counts.rejected, counts.encoded, counts.tokens, counts.encode_errors,
              counts.decoded, counts.decode_errors);
  // Both outcomes happen: mutants reach the encoder, not only the loader.
  EXPECT_GT(counts.loaded, 200 * FuzzScale());
  EXPECT_GT(counts.rejected, 200 * FuzzScale());
  EXPECT_GT(counts.encoded, 300 * FuzzScale());
}

// ---- Adversarial files ---------------------------------------------------------

// A regex that backtracks catastrophically ends in bounded time: the match
// limit turns it into an error (or it finishes).
TEST(HfTokenizerFuzzTest, CatastrophicRegexEndsInBoundedTime) {
  for (const char* pattern : {"(a+)+$", "(a|aa)*b", "(a*)*$", "(x+x+)+y"}) {
    for (const char* where : {"pre_tokenizer", "normalizer", "decoder"}) {
      Json j = SentencePieceSeed();
      Json p = {{"Regex", pattern}};
      if (std::string(where) == "pre_tokenizer") {
        j[where] = {{"type", "Split"}, {"pattern", p}, {"behavior", "Isolated"}, {"invert", false}};
      } else {
        j[where] = {{"type", "Replace"}, {"pattern", p}, {"content", "x"}};
      }
      auto t = HfTokenizerFromJson(j.dump(), "", "re/tokenizer.json");
      ASSERT_TRUE(t.ok()) << t.status().ToString();
      for (const std::string& text : {std::string(3000, 'a') + "!", std::string(40, 'x') + "z"}) {
        std::vector<int32_t> ids;
        Status s = (*t)->Encode(text, &ids);
        if (!s.ok()) {
          EXPECT_TRUE(ExpectedPipelineError(s)) << s.ToString();
        }
        std::vector<int32_t> many(300, (*t)->PieceToId("a"));
        auto d = (*t)->Decode(many);
        if (!d.ok()) {
          EXPECT_TRUE(ExpectedPipelineError(d.status())) << d.status().ToString();
        }
      }
    }
  }
}

// Regression: a Split regex "\C" (one byte, even inside a character) cut
// characters apart, and spans came out with begin > end. Patterns with \C do
// not compile now.
TEST(HfTokenizerFuzzTest, ByteMatchingRegexIsRefused) {
  for (const char* pattern : {"\\C", "(?<=\\C)", "a|\\C+"}) {
    for (const char* where : {"pre_tokenizer", "normalizer"}) {
      Json j = ByteLevelSeed();
      Json p = {{"Regex", pattern}};
      if (std::string(where) == "pre_tokenizer") {
        j[where] = {{"type", "Split"}, {"pattern", p}, {"behavior", "Isolated"}, {"invert", false}};
      } else {
        j[where] = {{"type", "Replace"}, {"pattern", p}, {"content", "x"}};
      }
      auto t = HfTokenizerFromJson(j.dump(), "", "c/tokenizer.json");
      ASSERT_FALSE(t.ok()) << pattern;
      EXPECT_NE(t.status().message().find("does not compile"), std::string::npos)
          << t.status().ToString();
    }
  }
  // Text that the pattern would have split inside characters.
  Json j = ByteLevelSeed();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "."}}}, {"behavior", "Isolated"},
                        {"invert", false}};
  auto t = HfTokenizerFromJson(j.dump(), "", "c/tokenizer.json");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const std::string text = "ﬁ\n\n [MASK] word<|im_start|>1\t|> helloabc<tool_call>thé";
  std::vector<int32_t> ids;
  std::vector<TokenSpan> spans;
  ASSERT_TRUE((*t)->Encode(text, &ids, &spans).ok());
  for (const TokenSpan& s : spans) {
    EXPECT_LE(s.begin, s.end);
    EXPECT_LE(s.end, text.size());
  }
}

// Sequences nested to the JSON depth limit and beyond it: loaded or refused,
// never a stack overflow.
TEST(HfTokenizerFuzzTest, DeeplyNestedSequences) {
  static const char* const kKeys[][3] = {{"normalizer", "normalizers", R"({"type":"Lowercase"})"},
                                         {"pre_tokenizer", "pretokenizers", R"({"type":"Digits"})"},
                                         {"post_processor", "processors", R"({"type":"ByteLevel"})"},
                                         {"decoder", "decoders", R"({"type":"Fuse"})"}};
  for (const auto& k : kKeys) {
    for (int depth : {1, 10, 29, 30, 31, 32, 40, 1000}) {
      std::string inner = k[2];
      std::string text;
      for (int d = 0; d < depth; ++d) text += std::string("{\"type\":\"Sequence\",\"") + k[1] + "\":[";
      text += inner;
      for (int d = 0; d < depth; ++d) text += "]}";
      Json j = SentencePieceSeed();
      j.erase(k[0]);
      std::string doc = j.dump();
      doc.insert(1, std::string("\"") + k[0] + "\":" + text + ",");
      auto t = HfTokenizerFromJson(doc, "", "deep/tokenizer.json");
      if (t.ok()) {
        std::vector<int32_t> ids;
        EXPECT_TRUE((*t)->Encode("abc 12 déf", &ids).ok());
        EXPECT_TRUE((*t)->Decode(ids).ok());
      } else {
        EXPECT_NE(t.status().message().find("nests deeper than 64 levels"), std::string::npos)
            << t.status().ToString();
      }
    }
  }
}

// Regression: Sequences of Sequences (each holding its part twice) made
// hundreds of steps (128 ByteLevel and 128 Split pre-tokenizers took 95 s to
// encode a short text). A section may have 64 components.
TEST(HfTokenizerFuzzTest, TooManyComponentsIsAnError) {
  static const char* const kKeys[][3] = {{"normalizer", "normalizers", R"({"type":"NFC"})"},
                                         {"pre_tokenizer", "pretokenizers", R"({"type":"ByteLevel"})"},
                                         {"post_processor", "processors", R"({"type":"ByteLevel"})"},
                                         {"decoder", "decoders", R"({"type":"ByteLevel"})"}};
  for (const auto& k : kKeys) {
    for (int levels : {5, 8}) {  // 2^levels leaves, 2^(levels+1) - 1 components
      Json v = Json::parse(k[2]);
      for (int d = 0; d < levels; ++d) v = {{"type", "Sequence"}, {k[1], Json::array({v, v})}};
      Json j = ByteLevelSeed();
      j[k[0]] = v;
      auto t = HfTokenizerFromJson(j.dump(), "", "many/tokenizer.json");
      if (levels == 5) {
        EXPECT_TRUE(t.ok()) << t.status().ToString();
      } else {
        ASSERT_FALSE(t.ok());
        EXPECT_NE(t.status().message().find(std::string("many/tokenizer.json: ") + k[0] +
                                            ": has 511 components (Sequences included); lorart "
                                            "reads at most 64"),
                  std::string::npos)
            << t.status().ToString();
      }
    }
  }
}

// Regression: normalizers, pre-tokenizers or decoders that grow the text at
// every step of a Sequence (each doubles it) grew it exponentially: a
// tokenizer.json of 40 Replace "a" -> "aa" made Encode("a") run until memory
// ran out. Now each step, each Sequence and the whole encoding may grow a text
// to 64 times its size plus 64 KiB, and beyond that it is an error.
TEST(HfTokenizerFuzzTest, ExponentialGrowthIsAnError) {
  Json normalizers = Json::array();
  Json pre_tokenizers = Json::array();
  Json decoders = Json::array();
  for (int i = 0; i < 40; ++i) {
    normalizers.push_back({{"type", "Replace"}, {"pattern", {{"String", "a"}}}, {"content", "aa"}});
    pre_tokenizers.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false},
                              {"use_regex", false}});
    decoders.push_back({{"type", "Replace"}, {"pattern", {{"Regex", "a"}}}, {"content", "aa"}});
  }
  for (bool spans : {false, true}) {
    Json j = SentencePieceSeed();
    j["normalizer"] = {{"type", "Sequence"}, {"normalizers", normalizers}};
    j["decoder"] = {{"type", "Sequence"}, {"decoders", decoders}};
    auto t = HfTokenizerFromJson(j.dump(), "", "grow/tokenizer.json");
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    std::vector<int32_t> ids;
    std::vector<TokenSpan> span_list;
    Status s = (*t)->Encode("a", &ids, spans ? &span_list : nullptr);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("grow/tokenizer.json: normalizing: a Sequence normalizer would "
                               "grow a text of 1 bytes to "),
              std::string::npos)
        << s.ToString();
    s = (*t)->Encode("bcd", &ids, spans ? &span_list : nullptr);  // nothing to replace
    EXPECT_TRUE(s.ok()) << s.ToString();
    auto d = (*t)->Decode({(*t)->PieceToId("a")});
    ASSERT_FALSE(d.ok());
    EXPECT_NE(d.status().message().find("a Sequence decoder would grow"), std::string::npos)
        << d.status().ToString();
    EXPECT_TRUE((*t)->Decode({(*t)->PieceToId("b")}).ok());

    // Non-ASCII text doubles in every ByteLevel pre-tokenizer.
    j = SentencePieceSeed();
    j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", pre_tokenizers}};
    t = HfTokenizerFromJson(j.dump(), "", "grow/tokenizer.json");
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    s = (*t)->Encode("é", &ids, spans ? &span_list : nullptr);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("a Sequence pre-tokenizer would grow"), std::string::npos)
        << s.ToString();

    // One step that grows a lot: every character becomes 16 KiB.
    j = SentencePieceSeed();
    j["normalizer"] = {{"type", "Replace"}, {"pattern", {{"Regex", "."}}},
                       {"content", std::string(1 << 14, 'x')}};
    t = HfTokenizerFromJson(j.dump(), "", "grow/tokenizer.json");
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    EXPECT_TRUE((*t)->Encode("ab", &ids, spans ? &span_list : nullptr).ok());
    s = (*t)->Encode(std::string(100, 'a'), &ids, spans ? &span_list : nullptr);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("the Replace normalizer would grow a text of 100 bytes to 1638400 "
                               "bytes"),
              std::string::npos)
        << s.ToString();
  }
}

// Regression: with spans, Replace normalizers and the Metaspace
// pre-tokenizer rewrote the text once per match, moving its tail each time:
// quadratic (a 120 KB text with 40000 spaces took 15 s with sanitizers). It
// is one pass now; a 300 KB text must encode with spans as without.
TEST(HfTokenizerFuzzTest, LongTextWithManyReplacementsEncodesWithSpans) {
  std::string text;
  for (int i = 0; i < 100000; ++i) text += i % 7 == 0 ? "é " : "ab ";
  for (const Json& j : {SentencePieceSeed(), MetaspaceSeed()}) {
    auto t = HfTokenizerFromJson(j.dump(), "", "long/tokenizer.json");
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    std::vector<int32_t> ids, ids2;
    std::vector<TokenSpan> spans;
    ASSERT_TRUE((*t)->Encode(text, &ids, &spans).ok());
    ASSERT_TRUE((*t)->Encode(text, &ids2).ok());
    EXPECT_EQ(ids, ids2);
    ASSERT_EQ(spans.size(), ids.size());
    for (size_t i = 1; i < spans.size(); ++i) ASSERT_LE(spans[i - 1].begin, spans[i].begin);
    EXPECT_EQ(spans.back().end, text.size());
  }
}

}  // namespace
}  // namespace data
}  // namespace lorart
