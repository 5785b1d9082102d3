#include "lorart/io/hf_layout.h"

namespace lorart {

std::vector<HfTensorSpec> LlamaFamilyTensors(const HfModelDims& c) {
  std::vector<HfTensorSpec> t;
  const int64_t D = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const int64_t q = c.num_attention_heads * c.head_dim;
  const int64_t kv = c.num_key_value_heads * c.head_dim;
  t.push_back({"model.embed_tokens.weight", {V, D}});
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    std::string p = "model.layers." + std::to_string(i) + ".";
    auto lin = [&](const std::string& m, int64_t out, int64_t in, bool bias) {
      t.push_back({p + m + ".weight", {out, in}});
      if (bias) t.push_back({p + m + ".bias", {out}});
    };
    t.push_back({p + "input_layernorm.weight", {D}});
    lin("self_attn.q_proj", q, D, c.qkv_bias);
    lin("self_attn.k_proj", kv, D, c.qkv_bias);
    lin("self_attn.v_proj", kv, D, c.qkv_bias);
    lin("self_attn.o_proj", D, q, c.output_bias);
    if (c.qk_norm) {
      t.push_back({p + "self_attn.q_norm.weight", {c.head_dim}});
      t.push_back({p + "self_attn.k_norm.weight", {c.head_dim}});
    }
    t.push_back({p + "post_attention_layernorm.weight", {D}});
    lin("mlp.gate_proj", I, D, c.mlp_bias);
    lin("mlp.up_proj", I, D, c.mlp_bias);
    lin("mlp.down_proj", D, I, c.mlp_bias);
  }
  t.push_back({"model.norm.weight", {D}});
  if (!c.tie_word_embeddings) t.push_back({"lm_head.weight", {V, D}});
  return t;
}

}  // namespace lorart
