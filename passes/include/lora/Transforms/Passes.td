//===- Passes.td - lora transformation passes ---------------*- tablegen -*-===//
#ifndef LORA_TRANSFORMS_PASSES_TD
#define LORA_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

//===----------------------------------------------------------------------===//
// Adapter attachment
//===----------------------------------------------------------------------===//

def AttachAdapters : Pass<"lora-attach-adapters", "::mlir::ModuleOp"> {
  let summary = "Attaches LoRA adapters to the linear layers selected by PEFT-style target rules";
  let description = [{
    For every `lora.linear` whose weight is a checkpoint parameter
    `<module>.weight` and whose module is selected, adds a pair of trainable
    parameters named as PEFT saves them
    (`base_model.model.<module>.lora_A.weight` `[r, in]` and
    `...lora_B.weight` `[out, r]`), a `lora.adapter` computing the low-rank
    update and a `lora.add` of it to the layer's output, and records the
    configuration on the module as `lora.adapter_config` (written out as
    PEFT's `adapter_config.json` by the runtime).

    Selection follows PEFT's `LoraConfig`: a module is selected when its name
    equals a target or ends with `.` + target (`targets=q_proj,v_proj`), or
    with `target-regex` when the regex matches the whole module name.
    `all-linear` selects every linear layer of the decoder (not the LM head).
    `layers` restricts the selection to the given decoder layer indices
    (PEFT's `layers_to_transform`).

    Before:
    ```mlir
    %w = lora.param "model.layers.0.self_attn.q_proj.weight" frozen : tensor<64x64xf32>
    %q = lora.linear %x, %w : (tensor<?x?x64xf32>, tensor<64x64xf32>) -> tensor<?x?x64xf32>
    ```
    After `-lora-attach-adapters="targets=q_proj rank=8 alpha=16"`:
    ```mlir
    %w = lora.param "model.layers.0.self_attn.q_proj.weight" frozen : tensor<64x64xf32>
    %q = lora.linear %x, %w : (tensor<?x?x64xf32>, tensor<64x64xf32>) -> tensor<?x?x64xf32>
    %a = lora.param "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" trainable : tensor<8x64xf32>
    %b = lora.param "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight" trainable : tensor<64x8xf32>
    %d = lora.adapter %x, %a, %b {alpha = 1.600000e+01 : f64, dropout = 5.000000e-02 : f64} : ...
    %q2 = lora.add %q, %d : ...
    ```

    Fails with a diagnostic when an option is out of range, when no linear
    layer is selected (naming the layers that exist), or when the module
    already has adapters.
  }];
  let options = [
    Option<"targets", "targets", "std::string", /*default=*/"\"all-linear\"",
           "Comma-separated target module names (suffix match), or all-linear">,
    Option<"targetRegex", "target-regex", "std::string", /*default=*/"\"\"",
           "ECMAScript regex matched against the whole module name; overrides targets">,
    Option<"rank", "rank", "int64_t", /*default=*/"16",
           "LoRA rank r (> 0)">,
    Option<"alpha", "alpha", "double", /*default=*/"32.0",
           "LoRA alpha; the update is scaled by alpha / r (> 0)">,
    Option<"dropout", "dropout", "double", /*default=*/"0.05",
           "Dropout probability on the adapter input, in [0, 1)">,
    ListOption<"layers", "layers", "int64_t",
               "Only adapt these decoder layer indices (default: all)">
  ];
  let dependentDialects = ["::mlir::lora::LoraDialect"];
}

#endif // LORA_TRANSFORMS_PASSES_TD
