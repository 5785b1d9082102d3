// The checkpoint layout of a Llama-family model (Llama, Mistral, Qwen2, Qwen3): the
// name and shape of every tensor a Hugging Face config (hf_config.h) implies. Shared by the
// compiler's importer (to check safetensors headers) and the runtime (to
// create a randomly initialized model, to merge adapters).
#ifndef LORART_IO_HF_LAYOUT_H_
#define LORART_IO_HF_LAYOUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "lorart/io/hf_config.h"

namespace lorart {

struct HfTensorSpec {
  std::string name;
  std::vector<int64_t> shape;
};

// In checkpoint order: embeddings, each layer's tensors, final norm, LM head
// (unless tied).
std::vector<HfTensorSpec> LlamaFamilyTensors(const hf::ModelConfig& config);

}  // namespace lorart

#endif  // LORART_IO_HF_LAYOUT_H_
