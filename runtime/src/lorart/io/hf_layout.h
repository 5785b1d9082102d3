// The checkpoint layout of a Llama-family model (Llama, Mistral, Qwen2, Qwen3): the
// name and shape of every tensor a Hugging Face config implies. Shared by the
// compiler's importer (to check safetensors headers) and the runtime (to
// create a randomly initialized model, to merge adapters).
#ifndef LORART_IO_HF_LAYOUT_H_
#define LORART_IO_HF_LAYOUT_H_

#include <cstdint>
#include <string>
#include <vector>

namespace lorart {

struct HfModelDims {
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab_size = 0;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;     // bias on q/k/v projections
  bool output_bias = false;  // bias on o_proj
  bool mlp_bias = false;
  bool qk_norm = false;      // q_norm/k_norm [head_dim] per layer (Qwen3)
};

struct HfTensorSpec {
  std::string name;
  std::vector<int64_t> shape;
};

// In checkpoint order: embeddings, each layer's tensors, final norm, LM head
// (unless tied).
std::vector<HfTensorSpec> LlamaFamilyTensors(const HfModelDims& dims);

}  // namespace lorart

#endif  // LORART_IO_HF_LAYOUT_H_
