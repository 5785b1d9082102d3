// lorart/io/hf_config.h: the one reader of config.json, shared by lorac's
// importer (whose lit tests in test/lit/Import check every message) and
// `lorart init-model`. Here: the runtime side on its own, and init-model
// refusing what lorac could not import.
#include "lorart/io/hf_config.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "lorart/cli/main.h"
#include "lorart/io/hf_layout.h"
#include "test_util.h"

namespace lorart {
namespace {

using testing::TempDir;
using testing::WriteFile;

// The directory the tests' files live in (removed at exit).
const TempDir& Dir() {
  static TempDir dir;
  return dir;
}

std::string Config(const std::string& body) {
  static int n = 0;
  std::string path = Dir().Join("hf_config_" + std::to_string(n++) + ".json");
  WriteFile(path, body);
  return path;
}

TEST(HfConfig, Qwen3DefaultsAndLayout) {
  // Qwen3Config: head_dim 128 unless given, per-head q/k norms, o_proj bias
  // with attention_bias; transformers 5's rope_parameters.
  std::string path = Config(R"({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
    "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100,
    "attention_bias": true, "rope_parameters": {"rope_type": "default", "rope_theta": 1000000},
    "initializer_range": 0.05})");
  StatusOr<hf::ModelConfig> c = hf::ParseModelConfig(path);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->architecture, hf::Architecture::Qwen3);
  EXPECT_EQ(c->headDim, 128);
  EXPECT_TRUE(c->qkNorm);
  EXPECT_TRUE(c->outputBias);
  EXPECT_EQ(c->ropeTheta, 1000000.0);
  EXPECT_EQ(c->initializerRange, 0.05);
  bool q_norm = false;
  for (const HfTensorSpec& t : LlamaFamilyTensors(*c))
    if (t.name == "model.layers.1.self_attn.q_norm.weight") q_norm = t.shape == std::vector<int64_t>{128};
  EXPECT_TRUE(q_norm);
}

TEST(HfConfig, ErrorsNameTheFileAndTheKey) {
  struct Case {
    std::string body, message;
  } cases[] = {
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": "x"})",
       "key 'hidden_size' must be a positive integer, got \"x\""},
      {R"({"architectures": ["GPT2LMHeadModel"]})", "key 'architectures': unsupported architecture 'GPT2LMHeadModel' (supported: "
       "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)"},
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 96,
          "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100,
          "rope_scaling": {"rope_type": "yarn", "factor": 4.0}})",
       "key 'rope_scaling.rope_type': 'yarn' is not supported (supported: default, linear, "
       "llama3)"},
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 96,
          "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100,
          "rope_theta": 10000, "rope_parameters": {"rope_type": "default", "rope_theta": 500000}})",
       "keys 'rope_theta' (10000) and 'rope_parameters.rope_theta' (500000) disagree"},
      {"{not json", "1:3: invalid JSON"},
      // A number no double holds (nlohmann throws out_of_range for it, which
      // used to abort lorac), absurd sizes, hostile nesting.
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 1e400})",
       "invalid JSON: number overflow parsing '1e400'"},
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 96,
          "num_hidden_layers": 1000000000000, "num_attention_heads": 4, "vocab_size": 100})",
       "key 'num_hidden_layers' is 1000000000000, more than the largest supported value 1024"},
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 18446744073709551615})",
       "key 'hidden_size' must be a positive integer, got 18446744073709551615"},
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 96,
          "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 4294967296})",
       "key 'vocab_size' is 4294967296, more than the largest supported value 16777216"},
      {"{\"a\": " + std::string(100, '[') + std::string(100, ']') + "}",
       "1:70: JSON nests deeper than 64 levels"},
  };
  for (const Case& c : cases) {
    std::string path = Config(c.body);
    StatusOr<hf::ModelConfig> r = hf::ParseModelConfig(path);
    ASSERT_FALSE(r.ok()) << c.body;
    EXPECT_EQ(r.status().message(), path + ": " + c.message) << c.body;
  }
  StatusOr<hf::ModelConfig> missing = hf::ParseModelConfig(Dir().Join("no_such_config.json"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("no_such_config.json: cannot read: "),
            std::string::npos);
}

TEST(HfConfig, InitModelRefusesWhatLoracCannotImport) {
  // Before the shared reader, init-model took any config with the five sizes.
  std::string path = Config(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64,
    "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
    "vocab_size": 100, "attn_logit_softcapping": 50.0})");
  std::vector<std::string> args = {"lorart", "init-model", "--config", path, "-o",
                                   Dir().Join("init_model_refused")};
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  std::ostringstream out, err;
  EXPECT_EQ(cli::Main(static_cast<int>(argv.size()), argv.data(), out, err), 1);
  EXPECT_NE(err.str().find(path + ": key 'attn_logit_softcapping': 50.0 is not supported"),
            std::string::npos)
      << err.str();
}

}  // namespace
}  // namespace lorart
