#include "lorart/io/hf_layout.h"

namespace lorart {

std::vector<HfTensorSpec> LlamaFamilyTensors(const hf::ModelConfig& c) {
  std::vector<HfTensorSpec> t;
  const int64_t D = c.hiddenSize, I = c.intermediateSize, V = c.vocabSize;
  const int64_t q = c.numAttentionHeads * c.headDim;
  const int64_t kv = c.numKeyValueHeads * c.headDim;
  t.push_back({"model.embed_tokens.weight", {V, D}});
  for (int64_t i = 0; i < c.numHiddenLayers; ++i) {
    std::string p = "model.layers." + std::to_string(i) + ".";
    auto lin = [&](const std::string& m, int64_t out, int64_t in, bool bias) {
      t.push_back({p + m + ".weight", {out, in}});
      if (bias) t.push_back({p + m + ".bias", {out}});
    };
    t.push_back({p + "input_layernorm.weight", {D}});
    lin("self_attn.q_proj", q, D, c.attentionBias);
    lin("self_attn.k_proj", kv, D, c.attentionBias);
    lin("self_attn.v_proj", kv, D, c.attentionBias);
    lin("self_attn.o_proj", D, q, c.outputBias);
    if (c.qkNorm) {
      t.push_back({p + "self_attn.q_norm.weight", {c.headDim}});
      t.push_back({p + "self_attn.k_norm.weight", {c.headDim}});
    }
    t.push_back({p + "post_attention_layernorm.weight", {D}});
    lin("mlp.gate_proj", I, D, c.mlpBias);
    lin("mlp.up_proj", I, D, c.mlpBias);
    lin("mlp.down_proj", D, I, c.mlpBias);
  }
  t.push_back({"model.norm.weight", {D}});
  if (!c.tieWordEmbeddings) t.push_back({"lm_head.weight", {V, D}});
  return t;
}

}  // namespace lorart
