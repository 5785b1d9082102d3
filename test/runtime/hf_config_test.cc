// lorart/io/hf_config.h: the one reader of config.json, shared by lorac's
// importer (whose lit tests in test/lit/Import check every message) and
// `lorart init-model`. Here: the runtime side on its own, and init-model
// refusing what lorac could not import.
#include "lorart/io/hf_config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

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
      {R"({"architectures": ["GPT2LMHeadModel"]})",
       "key 'architectures': unsupported architecture 'GPT2LMHeadModel' (supported: "
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
      {"{not json",
       "1:3: invalid JSON: syntax error while parsing object key - invalid literal; last read: "
       "'{no'; expected string literal"},
      // Token ids inside the vocabulary (every one of a list), a dtype torch
      // knows, an epsilon below 1.
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 96,
          "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100,
          "eos_token_id": [2, 100]})",
       "key 'eos_token_id': token id 100 is outside the vocabulary (vocab_size 100)"},
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 96,
          "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100,
          "torch_dtype": "float128"})",
       "key 'torch_dtype': 'float128' is not a floating-point dtype (float32, bfloat16, float16, "
       "float64 or auto)"},
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 96,
          "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100,
          "rms_norm_eps": 1e300})",
       "key 'rms_norm_eps' must be below 1, got 1.000000e+300"},
      // Python's json keeps the last of two equal keys; we refuse them.
      {R"({"hidden_size": 64, "hidden_size": 128})", "has the key 'hidden_size' twice"},
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

// PEFT's own answers (test/peft/target_rule_cases.py ran peft 0.21.2 on a
// tiny Llama; ctest peft_target_rule_cases checks the fixture against the
// installed peft): for every adapter_config.json case, TargetRule selects
// exactly the modules PEFT adapts, and refuses what PEFT refuses.
TEST(HfConfig, TargetRuleSelectsWhatPeftSelects) {
  const std::string path =
      std::string(LORAC_SOURCE_DIR) + "/test/runtime/hf/target_rule_cases.json";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  nlohmann::json fixture = nlohmann::json::parse(in);
  const nlohmann::json& modules = fixture["modules"];
  ASSERT_GT(modules.size(), 20u);
  ASSERT_GT(fixture["cases"].size(), 20u);
  for (const nlohmann::json& c : fixture["cases"]) {
    const std::string name = c["name"];
    StatusOr<hf::TargetRule> rule = hf::ReadPeftTargets(c["config"], "adapter_config.json");
    if (c.value("refused", false)) {
      EXPECT_FALSE(rule.ok()) << name << ": PEFT refuses " << c["config"].dump();
      continue;
    }
    std::vector<std::string> selected;
    if (rule.ok()) {
      for (const nlohmann::json& m : modules)
        if (rule->Matches(m.get<std::string>())) selected.push_back(m);
    } else {
      // Where PEFT finds no module, refusing the file is as good.
      EXPECT_TRUE(c["selected"].empty()) << name << ": " << rule.status().message();
    }
    EXPECT_EQ(nlohmann::json(selected), c["selected"]) << name << ": " << c["config"].dump();
  }
}

TEST(HfConfig, TargetRuleParts) {
  EXPECT_EQ(hf::LayerIndexOf("model.layers.12.mlp.up_proj"), 12);
  // The first index, not a nested one (an expert's); none without a
  // component before and after it.
  EXPECT_EQ(hf::LayerIndexOf("model.layers.3.experts.7.w1"), 3);
  EXPECT_EQ(hf::LayerIndexOf("lm_head"), std::nullopt);
  EXPECT_EQ(hf::LayerIndexOf("layers.3.mlp"), std::nullopt);
  EXPECT_EQ(hf::LayerIndexOf("model.layers.3"), std::nullopt);
  EXPECT_EQ(hf::LayerIndexOf("model.layers.99999999999999999999.q"), std::nullopt);

  auto refuse = [](const nlohmann::json& cfg, const std::string& message) {
    StatusOr<hf::TargetRule> r = hf::ReadPeftTargets(cfg, "a/adapter_config.json");
    ASSERT_FALSE(r.ok()) << cfg.dump();
    EXPECT_EQ(r.status().message(), "a/adapter_config.json: " + message) << cfg.dump();
  };
  refuse({{"target_modules", "(q_proj"}},
         "target regex '(q_proj' is not a valid regular expression (at offset 7: missing "
         "closing parenthesis)");
  refuse({{"target_modules", nlohmann::json::array()}},
         "key 'target_modules' is an empty list: no module would get an adapter");
  refuse({{"target_modules", {"q_proj", 3}}},
         "key 'target_modules' must be a regular expression string or a list of module names, "
         "got [\"q_proj\",3]");
  refuse({{"target_modules", nlohmann::json::array({"all-linear"})}},
         "key 'target_modules': PEFT reads 'all-linear' only as the whole string, not as a list "
         "entry (where it names no module)");
  refuse({{"target_modules", nlohmann::json::array({"q_proj"})}, {"layers_to_transform", {0, -1}}},
         "key 'layers_to_transform' must be a non-negative integer or a list of them, got [0,-1]");
  refuse({{"target_modules", nlohmann::json::array({"q_proj"})},
          {"target_parameters", nlohmann::json::array({"experts.w1"})}},
         "key 'target_parameters': LoRA on nn.Parameter (mixture-of-experts weights) is not "
         "supported");
  refuse({{"target_modules", nlohmann::json::array({"q_proj"})}, {"exclude_modules", "(x"}},
         "exclude_modules '(x' is not a valid regular expression (at offset 2: missing closing "
         "parenthesis)");

  // The compiler's options: names or a regex, never both; layers only with names.
  StatusOr<hf::TargetRule> both = hf::TargetRule::Make("option", {"q_proj"}, ".*", {});
  EXPECT_FALSE(both.ok());
  StatusOr<hf::TargetRule> none = hf::TargetRule::Make("option", {}, "", {});
  EXPECT_FALSE(none.ok());
  StatusOr<hf::TargetRule> all = hf::TargetRule::Make("option", {"all-linear", "lm_head"}, "", {1});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->names().size(), 8u);
  EXPECT_TRUE(all->Matches("model.layers.1.mlp.gate_proj"));
  EXPECT_FALSE(all->Matches("model.layers.0.mlp.gate_proj"));
  EXPECT_TRUE(all->Matches("lm_head"));
  EXPECT_EQ(all->Describe(),
            "target_modules [\"q_proj\",\"k_proj\",\"v_proj\",\"o_proj\",\"gate_proj\","
            "\"up_proj\",\"down_proj\",\"lm_head\"], layers_to_transform [1]");
}

// lorac import --adapter-config: what AttachAdapters cannot express
// (exclude_modules, a layers_pattern other than "layers") is refused, never
// dropped; the rest reaches LoraOptions as PEFT reads it.
TEST(HfConfig, AdapterConfigTargetsReachLoraOptions) {
  StatusOr<hf::LoraOptions> o = hf::ParsePeftAdapterConfig(
      Config(R"({"r": 4, "target_modules": ["q_proj", "self_attn.o_proj"],
                 "layers_to_transform": 2, "layers_pattern": "layers"})"));
  ASSERT_TRUE(o.ok()) << o.status().message();
  EXPECT_EQ(o->targets, "q_proj,self_attn.o_proj");
  EXPECT_EQ(o->layers, std::vector<int64_t>{2});
  EXPECT_TRUE(o->targetRegex.empty());
  StatusOr<hf::LoraOptions> re =
      hf::ParsePeftAdapterConfig(Config(R"({"target_modules": ".*v_proj"})"));
  ASSERT_TRUE(re.ok()) << re.status().message();
  EXPECT_EQ(re->targetRegex, ".*v_proj");
  StatusOr<hf::LoraOptions> dflt = hf::ParsePeftAdapterConfig(Config("{}"));
  ASSERT_TRUE(dflt.ok());
  EXPECT_EQ(dflt->targets, "q_proj,v_proj");

  std::string ex = Config(R"({"target_modules": "all-linear", "exclude_modules": ["down_proj"]})");
  StatusOr<hf::LoraOptions> r1 = hf::ParsePeftAdapterConfig(ex);
  ASSERT_FALSE(r1.ok());
  EXPECT_EQ(r1.status().message(),
            ex + ": key 'exclude_modules' is not supported yet (lorac's adapters take target "
                 "names or a regex); list the modules to adapt in 'target_modules' instead");
  std::string lp = Config(R"({"target_modules": ["q_proj"], "layers_to_transform": [0],
                               "layers_pattern": "h"})");
  StatusOr<hf::LoraOptions> r2 = hf::ParsePeftAdapterConfig(lp);
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.status().message().find("key 'layers_pattern': 'h' is not supported"),
            std::string::npos)
      << r2.status().message();
}

}  // namespace
}  // namespace lorart
