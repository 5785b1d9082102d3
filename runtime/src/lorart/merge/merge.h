// Merging and averaging (`lorart merge`, `lorart average`).
//
// MergeAdapter folds a PEFT LoRA adapter into its base model,
// W' = W + scaling·B·A per adapted linear layer (scaling = lora_alpha / r, or
// lora_alpha / sqrt(r) with use_rslora), and writes a Hugging Face model
// directory: sharded safetensors (model.safetensors, or
// model-0000i-of-0000n.safetensors with model.safetensors.index.json),
// config.json and the tokenizer files. For an adapter that lorart trained on
// an NF4 base (its safetensors metadata lists the quantized tensors), the
// fold starts from the dequantized NF4 weights the adapter was trained
// against — every quantized tensor of the merged model is its NF4
// round trip, so the merged model computes what training computed; folding
// into the original weights instead is an option, with a warning.
//
// AverageAdapters averages adapters (or the adapters of checkpoints) of one
// run, tensor by tensor, optionally weighted.
//
// Both write into OUT.tmp and rename it to OUT when complete: a failure leaves
// nothing behind, and OUT must not exist yet.
#ifndef LORART_MERGE_MERGE_H_
#define LORART_MERGE_MERGE_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "lorart/base/status.h"

namespace lorart {

enum class FoldInto {
  kAuto,         // dequantized NF4 weights when the adapter says it was trained on them
  kDequantized,  // required: an error when the adapter records no NF4 base
  kOriginal,     // the base directory's weights as they are
};

struct MergeOptions {
  std::string base_dir, adapter_dir, output_dir;
  FoldInto fold_into = FoldInto::kAuto;
  std::string dtype;                     // "" keeps each tensor's dtype; "bf16", "f16", "f32"
  uint64_t max_shard_bytes = 5000000000;  // Hugging Face's default shard size
  // A train.bin with a @logits_step and no NF4 base: runs random batches
  // through base + adapter and through the merged model and compares logits.
  std::string verify_plan;
  int num_threads = 0;
};

struct MergeResult {
  int64_t adapted = 0;      // linear layers folded
  int64_t dequantized = 0;  // base tensors replaced by their NF4 round trip
  int64_t tensors = 0, shards = 0;
  uint64_t bytes = 0;
  bool verified = false;
  double max_logit_diff = 0, max_abs_logit = 0, tolerance = 0;
};

Status MergeAdapter(const MergeOptions& options, std::ostream& log, MergeResult* result);

struct AverageOptions {
  // Adapter directories (adapter_model.safetensors + adapter_config.json),
  // checkpoint directories of a LoRA run hold one too.
  std::vector<std::string> inputs;
  std::vector<double> weights;  // empty: equal; else one per input, normalized to sum 1
  std::string output_dir;
};

Status AverageAdapters(const AverageOptions& options, std::ostream& log);

}  // namespace lorart

#endif  // LORART_MERGE_MERGE_H_
