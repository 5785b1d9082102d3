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

//===----------------------------------------------------------------------===//
// Training graph construction
//===----------------------------------------------------------------------===//

def SpecializeShapes : Pass<"lora-specialize-shapes", "::mlir::ModuleOp"> {
  let summary = "Fixes the dynamic [batch, seq] dimensions to the static training token grid";
  let description = [{
    Training runs on a fixed `[micro_batch, seq_len]` grid (packing fills it),
    so every buffer size is known at compile time. Replaces dimension 0
    (batch) and 1 (sequence) of every dynamic tensor type in every function
    with `micro-batch` and `seq-len`; any other dynamic dimension is an error.
    Warns when `seq-len` exceeds the model's `max_position_embeddings`.

    Before:
    ```mlir
    func.func @forward(%tokens: tensor<?x?xi32>, ...) -> tensor<?x?x32000xf32>
    ```
    After `-lora-specialize-shapes="micro-batch=4 seq-len=512"`:
    ```mlir
    func.func @forward(%tokens: tensor<4x512xi32>, ...) -> tensor<4x512x32000xf32>
    ```
  }];
  let options = [
    Option<"microBatch", "micro-batch", "int64_t", /*default=*/"1",
           "Sequences per micro-batch (> 0)">,
    Option<"seqLen", "seq-len", "int64_t", /*default=*/"512",
           "Tokens per sequence (> 0)">
  ];
  let dependentDialects = ["::mlir::lora::LoraDialect", "::mlir::func::FuncDialect"];
}

def Objective : Pass<"lora-objective", "::mlir::ModuleOp"> {
  let summary = "Turns the forward graph's logits into the training loss: summed next-token cross-entropy and token count";
  let description = [{
    Adds the inputs `targets` (`[batch, seq]` i32: the next token) and
    `loss_mask` (`[batch, seq]` i1) to `function`, and returns
    `lora.cross_entropy`'s summed loss and target-token count instead of the
    logits. Sum and count (not a mean) let gradient accumulation normalise by
    the number of target tokens of the whole accumulated batch.

    `objective=sft` and `objective=pretrain` build the same graph; they
    differ in which tokens the runtime's data pipeline marks in `loss_mask`
    (assistant/response tokens only, or every real token), recorded as the
    function's `lora.objective` attribute. `dpo` (two forward passes, with and
    without adapters) is not implemented yet and is refused.

    Before:
    ```mlir
    func.func @forward(%tokens: tensor<4x512xi32>, %positions: tensor<4x512xi32>) -> tensor<4x512x32000xf32>
    ```
    After `-lora-objective="objective=sft"`:
    ```mlir
    func.func @forward(%tokens: ..., %positions: ..., %targets: tensor<4x512xi32> {lora.input = "targets"},
                       %mask: tensor<4x512xi1> {lora.input = "loss_mask"}) -> (tensor<f32>, tensor<i64>)
        attributes {lora.objective = "sft"} {
      ...
      %loss, %count = lora.cross_entropy %logits, %targets, %mask : ...
      return %loss, %count : tensor<f32>, tensor<i64>
    }
    ```
  }];
  let options = [
    Option<"objective", "objective", "std::string", /*default=*/"\"sft\"",
           "sft or pretrain">,
    Option<"function", "function", "std::string", /*default=*/"\"forward\"",
           "The forward function">
  ];
  let dependentDialects = ["::mlir::lora::LoraDialect", "::mlir::func::FuncDialect"];
}

def SequencePacking : Pass<"lora-packing", "::mlir::ModuleOp"> {
  let summary = "Packs several documents per row: block-diagonal attention and a loss that never crosses documents";
  let description = [{
    Adds a `segment_ids` input (`[batch, seq]`, one id per packed document,
    after `positions`) to every function with attention, passes it to every
    `lora.attention` (a query attends only to keys of its own document), and
    puts a `lora.segment_boundary_mask` in front of the loss mask so that the
    last token of a document is never trained to predict the first token of
    the next. RoPE positions restart at every document: the runtime fills the
    `positions` input that way. A packed grid therefore gives exactly the
    losses and gradients of the same documents run separately.

    Before:
    ```mlir
    %o = lora.attention %q, %k, %v {...}
    %l, %n = lora.cross_entropy %logits, %t, %mask
    ```
    After:
    ```mlir
    %o = lora.attention %q, %k, %v segments %seg {...}
    %m = lora.segment_boundary_mask %mask, %seg
    %l, %n = lora.cross_entropy %logits, %t, %m
    ```
  }];
  let dependentDialects = ["::mlir::lora::LoraDialect", "::mlir::func::FuncDialect"];
}

def Autodiff : Pass<"lora-autodiff", "::mlir::ModuleOp"> {
  let summary = "Reverse-mode autodiff: builds @train_step (loss, count, gradients of the trainable parameters)";
  let description = [{
    Clones `function` (which must return the summed loss first, as made by
    `lora-objective`) into `@train_step` and renames the original
    `@eval_step`. In `@train_step`, after the forward ops, a seed
    `lora.scalar 1.0` starts the backward pass: ops are visited in reverse and
    each builds its vector-Jacobian product through `GradientOpInterface`
    (implemented beside every differentiable op). Gradients are built only
    for values that depend on a trainable parameter and that the loss depends
    on: no weight gradient is built for a frozen weight, while the input
    gradient through it (possibly NF4, dequantized in the kernel) is.
    Gradients of values used several times are summed with `lora.add`.
    `@train_step` returns the loss, the token count and one gradient per
    trainable parameter (of the summed, unnormalised loss), each result
    tagged `lora.grad_of = "<parameter name>"`.

    `train=full` first makes every frozen float parameter trainable (full
    fine-tuning); an NF4 parameter then is an error.

    After:
    ```mlir
    func.func @train_step(...) -> (tensor<f32>, tensor<i64>,
        tensor<16x64xbf16> {lora.grad_of = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"}, ...) {
      ... forward ...
      %seed = lora.scalar 1.000000e+00 : tensor<f32>
      %dx = lora.lm_head_cross_entropy_grad %h, %w, %t, %m, %seed {chunk_size = 1024 : i64} : ...
      ...
      %dx1, %da, %db = lora.fused_linear_grad %dy, %x, %wq, %a, %b {alpha = 3.2e+01 : f64} : ...
      return %loss, %count, %da, %db, ...
    }
    ```
  }];
  let options = [
    Option<"function", "function", "std::string", /*default=*/"\"forward\"",
           "The function to differentiate">,
    Option<"train", "train", "std::string", /*default=*/"\"lora\"",
           "lora (adapters only) or full (every float weight)">
  ];
  let dependentDialects = ["::mlir::lora::LoraDialect", "::mlir::func::FuncDialect"];
}

#endif // LORA_TRANSFORMS_PASSES_TD
