// lorart merge: fold a LoRA adapter into its base model (a Hugging Face model
// directory that transformers loads). lorart average: average adapters or
// checkpoints of one run. Both in lorart/merge.
#include <memory>

#include "lorart/cli/commands.h"
#include "lorart/merge/merge.h"

namespace lorart {
namespace cli {

Command AddMergeCommand(CLI::App& root, std::ostream& out) {
  struct Options {
    MergeOptions m;
    std::string fold_into = "auto";
    double max_shard_gb = 5.0;
  };
  auto o = std::make_shared<Options>();
  Command c;
  c.app = root.add_subcommand("merge", "Fold a LoRA adapter into its base model: W' = W + "
                                       "(alpha/r)·B·A, written as a Hugging Face model directory");
  CLI::App* a = c.app;
  a->add_option("--base", o->m.base_dir, "Base model directory (config.json, safetensors)")
      ->required();
  a->add_option("--adapter", o->m.adapter_dir, "PEFT adapter directory (or a checkpoint)")
      ->required();
  a->add_option("-o,--output", o->m.output_dir, "Merged model directory (must not exist)")
      ->required();
  a->add_option("--fold-into", o->fold_into,
                "auto, dequantized or original: for an adapter trained on an NF4 base, fold into "
                "the NF4-dequantized weights it was trained against (auto) or the original ones");
  a->add_option("--dtype", o->m.dtype, "Output dtype bf16, f16 or f32 (default: the base's)");
  a->add_option("--max-shard-size", o->max_shard_gb, "Largest shard in GB (10^9 bytes)");
  a->add_option("--verify", o->m.verify_plan,
                "A train.bin (with logits_step, no NF4 base) to compare base + adapter with the "
                "merged model's logits");
  a->add_option("--threads", o->m.num_threads, "CPU threads (0: all)");
  c.run = [o, &out]() -> Status {
    if (o->fold_into == "auto") o->m.fold_into = FoldInto::kAuto;
    else if (o->fold_into == "dequantized") o->m.fold_into = FoldInto::kDequantized;
    else if (o->fold_into == "original") o->m.fold_into = FoldInto::kOriginal;
    else return InvalidArgumentError("--fold-into must be auto, dequantized or original");
    if (!(o->max_shard_gb > 0)) return InvalidArgumentError("--max-shard-size must be positive");
    o->m.max_shard_bytes = static_cast<uint64_t>(o->max_shard_gb * 1e9);
    MergeResult r;
    LORA_RETURN_IF_ERROR(MergeAdapter(o->m, out, &r));
    out << "wrote " << o->m.output_dir << "\n";
    return OkStatus();
  };
  return c;
}

Command AddAverageCommand(CLI::App& root, std::ostream& out) {
  auto o = std::make_shared<AverageOptions>();
  Command c;
  c.app = root.add_subcommand("average", "Average adapters or checkpoints of one run (e.g. the "
                                         "last few checkpoints)");
  c.app->add_option("inputs", o->inputs, "Adapter or checkpoint directories")->required();
  c.app->add_option("-o,--output", o->output_dir, "Output adapter directory (must not exist)")
      ->required();
  c.app->add_option("--weights", o->weights, "One weight per input (default: equal)");
  c.run = [o, &out]() -> Status {
    LORA_RETURN_IF_ERROR(AverageAdapters(*o, out));
    out << "wrote " << o->output_dir << "\n";
    return OkStatus();
  };
  return c;
}

}  // namespace cli
}  // namespace lorart
