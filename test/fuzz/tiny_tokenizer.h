// A small tokenizer.json built in code for the targets that need a tokenizer
// but do not fuzz one (the chat-template renderer): a SentencePiece-style BPE
// with byte fallback (every byte encodes) and the special tokens the
// published chat templates write.
#ifndef LORAC_TEST_FUZZ_TINY_TOKENIZER_H_
#define LORAC_TEST_FUZZ_TINY_TOKENIZER_H_

#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "fuzz_target.h"
#include "lorart/data/hf/hf_tokenizer.h"

namespace lorac_fuzz {

inline const lorart::data::Tokenizer& TinyTokenizer() {
  static const lorart::data::Tokenizer* tokenizer = [] {
    nlohmann::json vocab = nlohmann::json::object();
    int id = 0;
    for (const char* s : {"<unk>", "<s>", "</s>"}) vocab[s] = id++;
    for (int b = 0; b < 256; ++b) {
      char piece[8];
      std::snprintf(piece, sizeof piece, "<0x%02X>", b);
      vocab[piece] = id++;
    }
    for (const char* s : {"a", "e", "t", " ", "\n", "user", "assistant", "system"}) vocab[s] = id++;
    nlohmann::json added = nlohmann::json::array();
    auto add_special = [&](const char* s, int special_id) {
      added.push_back({{"id", special_id},
                       {"content", s},
                       {"special", true},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", false}});
    };
    int special_id = 0;
    for (const char* s : {"<unk>", "<s>", "</s>"}) add_special(s, special_id++);
    for (const char* s :
         {"<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>",
          "<|end_header_id|>", "[INST]", "[/INST]", "<start_of_turn>", "<end_of_turn>", "<|user|>",
          "<|assistant|>", "<|system|>", "<|end|>", "<|endoftext|>", "<think>", "</think>", "<bos>",
          "<eos>"}) {
      add_special(s, id);
      vocab[s] = id++;
    }
    nlohmann::json j = {
        {"version", "1.0"},
        {"added_tokens", added},
        {"normalizer", nullptr},
        {"pre_tokenizer", nullptr},
        {"post_processor", nullptr},
        {"decoder", {{"type", "ByteFallback"}}},
        {"model",
         {{"type", "BPE"},
          {"vocab", vocab},
          {"merges", nlohmann::json::array()},
          {"byte_fallback", true},
          {"unk_token", "<unk>"}}},
    };
    const std::string config = R"({"bos_token": "<s>", "eos_token": "</s>"})";
    auto t = lorart::data::HfTokenizerFromJson(j.dump(), config, "tiny/tokenizer.json");
    if (!t.ok()) {
      std::fprintf(stderr, "tiny tokenizer: %s\n", std::string(t.status().message()).c_str());
      std::abort();
    }
    return t->release();
  }();
  return *tokenizer;
}

}  // namespace lorac_fuzz

#endif  // LORAC_TEST_FUZZ_TINY_TOKENIZER_H_
