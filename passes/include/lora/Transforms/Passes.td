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

    Selection is PEFT's rule (`hf::TargetRule` in lorart/io/hf_config.h,
    shared with `lorac import --adapter-config` and `lorart merge`, and
    checked against peft's own choices): a module is selected when its name
    equals a target or ends with `.` + target (`targets=q_proj,v_proj`), or
    with `target-regex` when the regex (PCRE2, which reads Python's `re`
    syntax) matches the whole module name. `all-linear` selects every linear
    layer of the decoder (not the LM head). `layers` restricts the selection
    to the given decoder layer indices (PEFT's `layers_to_transform`; the
    index is the first numbered component of the name), except for a target
    that equals a module's whole name, which is selected in any layer, as in
    PEFT. `layers` with `target-regex` is an error: PEFT refuses that
    adapter_config.json. The recorded `target_modules` are the targets that
    selected a module, so PEFT selects the same modules again. The new
    `lora_A` starts as PEFT's
    `init(kaiming_uniform)` and `lora_B` as `init(zeros)`: the plan takes the
    initialization from these attributes, not from the names.

    Before:
    ```mlir
    %w = lora.param "model.layers.0.self_attn.q_proj.weight" frozen : tensor<64x64xf32>
    %q = lora.linear %x, %w : (tensor<?x?x64xf32>, tensor<64x64xf32>) -> tensor<?x?x64xf32>
    ```
    After `-lora-attach-adapters="targets=q_proj rank=8 alpha=16"`:
    ```mlir
    %w = lora.param "model.layers.0.self_attn.q_proj.weight" frozen : tensor<64x64xf32>
    %q = lora.linear %x, %w : (tensor<?x?x64xf32>, tensor<64x64xf32>) -> tensor<?x?x64xf32>
    %a = lora.param "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" trainable init(kaiming_uniform) : tensor<8x64xf32>
    %b = lora.param "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight" trainable init(zeros) : tensor<64x8xf32>
    %d = lora.adapter %x, %a, %b {alpha = 1.600000e+01 : f64, dropout = 5.000000e-02 : f64} : ...
    %q2 = lora.add %q, %d : ...
    ```

    Fails with a diagnostic when an option is out of range, when the regex
    does not compile, when `layers` is given with `target-regex`, when no
    linear layer is selected (naming the layers that exist), or when the
    module already has adapters.
  }];
  let options = [
    Option<"targets", "targets", "std::string", /*default=*/"\"all-linear\"",
           "Comma-separated target module names (suffix match), or all-linear">,
    Option<"targetRegex", "target-regex", "std::string", /*default=*/"\"\"",
           "Regex (Python/PCRE2 syntax) matched against the whole module name; replaces targets">,
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
    function's `lora.objective` attribute.

    `objective=dpo` (Direct Preference Optimization) adds the inputs
    `sequence_ids` (`[batch, seq]` i32: which response a token's target
    belongs to, `2p` for pair `p`'s chosen and `2p + 1` for its rejected
    response, -1 elsewhere) and `pair_mask` (`[pairs]` i1), clones the
    forward graph without its adapters as the reference pass (parameters are
    shared, so the reference is the base model with no second copy; it
    depends on no trainable parameter, so autodiff keeps none of its
    activations for the backward), sums each response's log-probabilities
    under both (`lora.sequence_logprobs`) and returns `lora.dpo_loss`'s loss
    sum, pair count and reward metrics (outputs `loss_sum`, `count`,
    `chosen_rewards`, `rejected_rewards`, `accuracy`, `margin`). With
    `replay-weight=W` it also takes `replay_mask` (the tokens of replayed
    general text packed beside the pairs) and adds `lora.replay_loss`: `W`
    times the policy's mean cross-entropy on them, per pair (outputs
    `replay_loss_sum`, `replay_count`). The logits of both passes are
    materialized (`[batch, seq, vocab]` float32 each; no
    chunked fusion yet).

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
           "sft, pretrain or dpo">,
    Option<"beta", "beta", "double", /*default=*/"0.1",
           "dpo: the inverse temperature β of the implicit reward">,
    Option<"lossType", "loss-type", "std::string", /*default=*/"\"sigmoid\"",
           "dpo: sigmoid (DPO) or ipo">,
    Option<"pairs", "pairs", "int64_t", /*default=*/"0",
           "dpo: preference pairs per micro-batch (0: the micro-batch size)">,
    Option<"replayWeight", "replay-weight", "double", /*default=*/"0.0",
           "dpo: weight of a language-modelling loss on replayed general text (input replay_mask; 0: none)">,
    Option<"function", "function", "std::string", /*default=*/"\"forward\"",
           "The forward function">
  ];
  let dependentDialects = ["::mlir::lora::LoraDialect", "::mlir::func::FuncDialect"];
}

def ElasticWeightConsolidation : Pass<"lora-ewc", "::mlir::ModuleOp"> {
  let summary = "Adds the EWC penalty λ·Σ F ⊙ ((α/r)·B·A)² of every adapter to the objective, against forgetting";
  let description = [{
    Elastic weight consolidation keeps the fine-tuned model close to the base
    where the base's loss on reference data is sensitive: for each adapter,
    with `ΔW = (α/r)·B·A` the update it makes to its linear layer's weight
    `W` and `F` the diagonal Fisher of `W` on reference data (estimated by
    `lorart fisher`, bound at run time from its file as a frozen parameter
    with `init(fisher)` and `of` = W's name; its own name
    `ewc.fisher/<W's name>` is only a unique key), the pass adds `count · λ · Σ F ⊙ ΔW²`
    (`lora.ewc_penalty`) to the summed loss that `function` returns, so that
    the optimizer's division by the token count leaves `λ · Σ F ⊙ ΔW²` once
    per step, and returns the penalty itself as the extra output
    `ewc_penalty`. Autodiff differentiates it like any op (`dA`, `dB` through
    `lora.ewc_penalty_grad`). Runs after `lora-objective`.

    After `-lora-ewc="lambda=100"`:
    ```mlir
    %f = lora.param "ewc.fisher/model.layers.0.self_attn.q_proj.weight" frozen init(fisher) {of = "model.layers.0.self_attn.q_proj.weight"} : tensor<64x64xf32>
    %w, %p = lora.ewc_penalty %a, %b, %f, %count {lambda = 1.000000e+02 : f64, scaling = 2.000000e+00 : f64} : ...
    %total = lora.add %loss, %w : ...
    return %total, %count, %p : tensor<f32>, tensor<i64>, tensor<f32>
    ```
  }];
  let options = [
    Option<"lambda", "lambda", "double", /*default=*/"1.0",
           "The penalty's strength λ">,
    Option<"function", "function", "std::string", /*default=*/"\"forward\"",
           "The function whose loss gets the penalty">
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
    A multi-result gradient op is built with only what is needed: where the
    input of a `lora.fused_linear` or `lora.adapter` needs no gradient (the
    first layer's q/k/v projections read a frozen embedding through a frozen
    norm), its `lora.fused_linear_grad` / `lora.adapter_grad` has no `dx`
    result, and its kernel (`no_dx`) skips `dy·deq(W)` and the adapter's dx
    term: the work PyTorch's autograd skips for a tensor that does not
    require a gradient.
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

//===----------------------------------------------------------------------===//
// Fusion
//===----------------------------------------------------------------------===//

def Fuse : Pass<"lora-fuse", "::mlir::ModuleOp"> {
  let summary = "Fuses NF4 dequantization, linear layers and their LoRA adapters, and the LM head with the cross-entropy";
  let description = [{
    Runs on the forward graph, before `lora-autodiff`, so that the VJPs of the
    fused ops build the fused backward ops (`lora.fused_linear_grad`,
    `lora.lm_head_cross_entropy_grad`). Every match is decided on the
    original graph in program order (a direct walk, not a greedy driver), so
    the result is deterministic.

    * **Linear + adapter.** `%y = lora.linear %x, %w [, bias %c]`,
      `%d = lora.adapter %x, %a, %b` (the same `%x`) and `%s = lora.add %y, %d`
      (either operand order), where the add is the only user of `%y` and of
      `%d`, become one `lora.fused_linear %x, %w [bias %c] adapter(%a, %b)`
      carrying the adapter's `alpha` and `dropout`. When `%w` is
      `lora.dequantize %q`, the fused op reads the NF4 weight `%q` directly.
      A linear whose output has another user keeps its adapter apart.
    * **NF4 linear without adapter.** `lora.linear %x, (lora.dequantize %q)`
      becomes `lora.fused_linear %x, %q`: the dequantized matrix is never a
      buffer. A `lora.dequantize` left without users is erased (one that
      still has users stays).
    * A float `lora.linear` without adapter is already one kernel and is left
      as it is.
    * **LM head + cross-entropy.** `%logits = lora.lm_head %h, %w` whose only
      user is `lora.cross_entropy %logits, %t, %m` becomes
      `lora.lm_head_cross_entropy %h, %w, %t, %m {chunk_size = C}`: only
      `[C, vocab]` float32 logits exist at once. Logits with another user
      stay unfused.
    * RMSNorm (`lora.rms_norm`), RoPE (`lora.rope`) and SwiGLU
      (`lora.swiglu`) are already single fused ops, forward and backward
      (`lora.rms_norm_grad`, `lora.rope_grad`, `lora.swiglu_grad`), and
      attention is one FlashAttention-style op: nothing to do for them.

    Before:
    ```mlir
    %w = lora.dequantize %q : !lora.nf4<64x64, block_size = 64, double_quant = none> -> tensor<64x64xbf16>
    %y = lora.linear %x, %w : (tensor<2x8x64xbf16>, tensor<64x64xbf16>) -> tensor<2x8x64xbf16>
    %d = lora.adapter %x, %a, %b {alpha = 1.600000e+01 : f64, dropout = 5.000000e-02 : f64} : ...
    %s = lora.add %y, %d : ...
    %logits = lora.lm_head %h, %lm : (tensor<2x8x64xbf16>, tensor<100x64xbf16>) -> tensor<2x8x100xf32>
    %loss, %n = lora.cross_entropy %logits, %t, %m : ...
    ```
    After `-lora-fuse="chunk-size=512"`:
    ```mlir
    %s = lora.fused_linear %x, %q adapter(%a, %b) {alpha = 1.600000e+01 : f64, dropout = 5.000000e-02 : f64} : (tensor<2x8x64xbf16>, !lora.nf4<64x64, block_size = 64, double_quant = none>, tensor<8x64xbf16>, tensor<64x8xbf16>) -> tensor<2x8x64xbf16>
    %loss, %n = lora.lm_head_cross_entropy %h, %lm, %t, %m {chunk_size = 512 : i64} : ...
    ```

    Fails with a diagnostic when `chunk-size` is not positive.
  }];
  let options = [
    Option<"chunkSize", "chunk-size", "int64_t", /*default=*/"1024",
           "Tokens per chunk of the fused LM head + cross-entropy (> 0)">
  ];
  let dependentDialects = ["::mlir::lora::LoraDialect"];
}

//===----------------------------------------------------------------------===//
// Rematerialization
//===----------------------------------------------------------------------===//

def SaveAttentionStats : Pass<"lora-save-attention-stats", "::mlir::ModuleOp"> {
  let summary = "Lets the attention backward read the forward's output and softmax logsumexp instead of recomputing the forward";
  let description = [{
    Runs after `lora-autodiff` (and `lora-remat`). A
    `lora.attention_grad %dout, %q, %k, %v` that recomputes its statistics
    must run the forward again (`s = q·kᵀ` and `P·V` over every key block:
    two of its nine tile products) to get each query row's logsumexp `L`
    and `D = rowsum(dout ∘ out)`. This pass finds the grad op's forward —
    the `lora.attention` of the same `q`, `k`, `v`, segment ids and
    attributes earlier in the block (after `lora-remat`, the recomputed
    clone) — makes it a `lora.attention_with_lse` whose second result is
    `L` (`[batch, num_heads, seq]` f32), and passes the forward's output and
    `L` to the grad op (`saved(%out, %lse)`): the backward then takes seven
    tile products, and in f32 gives bitwise the same gradients.

    It keeps activation memory as it was: the forward's output is passed
    only when it is already live when `%dout` is computed (some use of it at
    or after `%dout`'s definition, e.g. the adapter gradient of `o_proj`,
    which reads its input), so that the cost is `L` (one float per query
    row and head) and `out` held a few ops longer. Otherwise (no adapter on
    the next linear layer) the grad op is left to recompute, as it is when
    no forward op matches.

    `target` is `cpu` or `cuda`: the CUDA kernels do not take the saved
    statistics yet, so with `target = cuda` the pass changes nothing
    (`lorac compile` runs it for both).

    Before:
    ```mlir
    %o = lora.attention %q, %k, %v {num_heads = 8 : i64, num_kv_heads = 4 : i64, head_dim = 64 : i64} : ...
    ...
    %dq, %dk, %dv = lora.attention_grad %do, %q, %k, %v {num_heads = 8 : i64, num_kv_heads = 4 : i64, head_dim = 64 : i64} : ...
    ```
    After:
    ```mlir
    %o, %lse = lora.attention_with_lse %q, %k, %v {num_heads = 8 : i64, num_kv_heads = 4 : i64, head_dim = 64 : i64} : ...
    ...
    %dq, %dk, %dv = lora.attention_grad %do, %q, %k, %v saved(%o, %lse) {num_heads = 8 : i64, num_kv_heads = 4 : i64, head_dim = 64 : i64} : ...
    ```
  }];
  let options = [
    Option<"target", "target", "std::string", /*default=*/"\"cpu\"",
           "cpu or cuda">
  ];
  let dependentDialects = ["::mlir::lora::LoraDialect"];
}

def Rematerialize : Pass<"lora-remat", "::mlir::ModuleOp"> {
  let summary = "Gradient checkpointing: recomputes a decoder layer's activations in the backward pass";
  let description = [{
    Works on the training functions `lora-autodiff` builds: forward ops, the
    gradient seed `lora.scalar 1.0`, then the backward ops (the ops that
    depend on a seed). Functions without a seed (an evaluation function, the
    forward graph) are left alone. A forward op belongs to decoder layer N
    when the first `NameLoc` of its location (looking through fused and
    call-site locations) names a module `model.layers.N....`.

    For a rematerialized layer N, the only forward activations of the layer
    kept for backward are its input (the residual stream entering it, which
    layer N-1 or the embedding produced) and its outputs (the next layer's
    input). Every other value of the layer that a backward op reads is
    recomputed: the forward ops of layer N that produce it (closed over
    their operands within the layer; parameters and values from outside
    the layer are reused, never cloned) are cloned once per layer, in
    program order, right before the first backward op that reads any of
    them, each clone marked with the unit attribute `lora.recompute`, and
    every backward use is redirected to the clones. The originals' values
    then die at the end of the forward pass.

    Clones keep the original ops' locations, so ops with dropout
    (`lora.fused_linear`, `lora.adapter`) must draw their mask from the
    step's seed and the op's location for the recomputation to reproduce
    the forward's mask.

    Policies (`policy`):
    * `none` (default): the IR is unchanged.
    * `layer`: every decoder layer is rematerialized.
    * `auto`: the layers in `layers-to-remat` are rematerialized. `lorac
      compile --remat auto` picks them under `memory-budget` with
      `chooseRematForBudget` (`lora/Transforms/Rematerialize.h`, next to this
      pass: it re-plans clones of the module with the memory planner and
      searches the fewest layers that fit); here the budget is only checked.

    Before (layer 1 of a training function):
    ```mlir
    %x1 = lora.rms_norm %h1, %n1 {eps = 1.000000e-05 : f64} : ... loc("model.layers.1.post_attention_layernorm")
    %g1 = lora.linear %x1, %wg1 : ... loc("model.layers.1.mlp.gate_proj")
    %u1 = lora.linear %x1, %wu1 : ... loc("model.layers.1.mlp.up_proj")
    %act1 = lora.swiglu %g1, %u1 : ... loc("model.layers.1.mlp.act_fn")
    ...
    %seed = lora.scalar 1.000000e+00 : tensor<f32>
    ...
    %dx, %da, %db = lora.fused_linear_grad %dy, %act1, %wd1, %a1, %b1 {alpha = 1.600000e+01 : f64} : ...
    %dg, %du = lora.swiglu_grad %dx, %g1, %u1 : ...
    ```
    After `-lora-remat="policy=layer"`:
    ```mlir
    %seed = lora.scalar 1.000000e+00 : tensor<f32>
    ...
    %rx1 = lora.rms_norm %h1, %n1 {eps = 1.000000e-05 : f64, lora.recompute} : ...
    %rg1 = lora.linear %rx1, %wg1 {lora.recompute} : ...
    %ru1 = lora.linear %rx1, %wu1 {lora.recompute} : ...
    %ract1 = lora.swiglu %rg1, %ru1 {lora.recompute} : ...
    %dx, %da, %db = lora.fused_linear_grad %dy, %ract1, %wd1, %a1, %b1 {alpha = 1.600000e+01 : f64} : ...
    %dg, %du = lora.swiglu_grad %dx, %rg1, %ru1 : ...
    ```

    Fails with a diagnostic when an option is invalid (unknown policy,
    `auto` without `layers-to-remat`, `layers-to-remat` with another policy,
    a `memory-budget` that is not a byte size), when no function of the
    module has a gradient seed, or when a layer in `layers-to-remat` has no
    forward ops.
  }];
  let options = [
    Option<"policy", "policy", "std::string", /*default=*/"\"none\"",
           "none, layer (every decoder layer) or auto (the layers in layers-to-remat)">,
    Option<"memoryBudget", "memory-budget", "std::string", /*default=*/"\"\"",
           "Device memory budget for policy=auto, e.g. 24GiB, 512MiB or bytes (checked only)">,
    ListOption<"layersToRemat", "layers-to-remat", "int64_t",
               "Decoder layers to recompute with policy=auto">
  ];
  let dependentDialects = ["::mlir::lora::LoraDialect", "::mlir::func::FuncDialect"];
}

//===----------------------------------------------------------------------===//
// Quantization
//===----------------------------------------------------------------------===//

def QuantizeBase : Pass<"lora-quantize-base", "::mlir::ModuleOp"> {
  let summary = "Stores the frozen linear weights of the decoder as NF4 (QLoRA), read through lora.dequantize";
  let description = [{
    QLoRA's base-model storage. Every `lora.param` that is `frozen`, has a
    float tensor type, and is used only as the weight operand of `lora.linear`
    ops (the decoder's q/k/v/o/gate/up/down projections) gets the type
    `!lora.nf4<shape, block_size = B, double_quant = D|none>`, and one
    `lora.dequantize` back to the original tensor type, placed right after
    the parameter, feeds all of its linear users. Never quantized: the LM
    head (`lora.lm_head`), the embedding table (`lora.embedding`), norm
    weights, biases, trainable parameters, and any frozen weight that
    something other than a linear layer also reads (a tied embedding). A
    parameter name that appears in several functions is quantized in all of
    them or in none.

    The types are the record: the runtime reads the named safetensors tensor
    and quantizes it at load time into the layout the type describes
    (bitsandbytes' NF4 and double quantization, see docs/runtime.md).
    `lora-fuse` later folds each dequantize into the linear layer that reads
    it, so the dequantized matrix is never a buffer. Run this pass on the
    forward graph, before `lora-fuse` and `lora-autodiff`.

    Before:
    ```mlir
    %w = lora.param "model.layers.0.self_attn.q_proj.weight" frozen : tensor<64x64xbf16>
    %q = lora.linear %x, %w : (tensor<?x?x64xbf16>, tensor<64x64xbf16>) -> tensor<?x?x64xbf16>
    %lm = lora.param "lm_head.weight" frozen : tensor<256x64xbf16>
    %logits = lora.lm_head %h, %lm : (tensor<?x?x64xbf16>, tensor<256x64xbf16>) -> tensor<?x?x256xf32>
    ```
    After `-lora-quantize-base` (defaults `block-size=64 double-quant-block=256`):
    ```mlir
    %w = lora.param "model.layers.0.self_attn.q_proj.weight" frozen : !lora.nf4<64x64, block_size = 64, double_quant = 256>
    %0 = lora.dequantize %w : !lora.nf4<64x64, block_size = 64, double_quant = 256> -> tensor<64x64xbf16>
    %q = lora.linear %x, %0 : (tensor<?x?x64xbf16>, tensor<64x64xbf16>) -> tensor<?x?x64xbf16>
    %lm = lora.param "lm_head.weight" frozen : tensor<256x64xbf16>
    %logits = lora.lm_head %h, %lm : (tensor<?x?x64xbf16>, tensor<256x64xbf16>) -> tensor<?x?x256xf32>
    ```

    Fails with a diagnostic, leaving the module unchanged, when `format` is
    not `nf4`, when `block-size` is not a power of two in [16, 4096] or
    `double-quant-block` is neither 0 nor a power of two in [1, 4096], when
    a weight's element count is not a multiple of the block size (naming the
    parameter and its shape), when the module already has NF4 parameters,
    or when no linear weight qualifies.
  }];
  let options = [
    Option<"format", "format", "std::string", /*default=*/"\"nf4\"",
           "Quantized storage format; nf4 (4-bit NormalFloat) is the only one">,
    Option<"blockSize", "block-size", "int64_t", /*default=*/"64",
           "Weights per absmax block, a power of two in [16, 4096]">,
    Option<"doubleQuantBlock", "double-quant-block", "int64_t", /*default=*/"256",
           "Absmax values per block of QLoRA's double quantization (8-bit); 0 keeps float32 absmax">
  ];
  let dependentDialects = ["::mlir::lora::LoraDialect"];
}

//===----------------------------------------------------------------------===//
// Optimizer
//===----------------------------------------------------------------------===//

def Optimizer : Pass<"lora-optimizer", "::mlir::ModuleOp"> {
  let summary = "AdamW on float32 master copies, global-norm clipping, gradient accumulation normalised by target tokens";
  let description = [{
    Runs after `lora-autodiff`. In `@train_step`, every gradient result
    (`lora.grad_of`) is added into a float32 accumulator
    `grad/<name>` (a `gradient` parameter; `lora.accumulate` +
    `lora.assign`) instead of being
    returned: `@train_step` runs once per micro-batch and returns its summed
    loss and target-token count. A new `@optimizer_step(learning_rate, step,
    token_count)` runs once per optimizer step: it takes the global norm of
    the summed gradients, `lora.clip_scale` turns it into the factor that
    normalises by the number of target tokens of the whole accumulated batch
    (`token_count`: the sum of the micro-batches' counts, not a mean of
    per-micro-batch means) and clips, `lora.adamw` updates the float32 master
    copy `master/<name>` (`init(copy_of_owner)`) and the moments
    `adam_m/<name>`, `adam_v/<name>` (`optimizer_state`, zero at first),
    the master is cast back to the compute dtype into the parameter, and the
    accumulator is reset. The learning rate is a per-step runtime input (the
    schedule lives in the runtime's trainer). Returns the gradient norm and
    the scale for logging.

    After:
    ```mlir
    func.func @optimizer_step(%lr: tensor<f32> {lora.input = "learning_rate"}, %step: tensor<f32> {lora.input = "step"},
                              %count: tensor<f32> {lora.input = "token_count"}) -> (tensor<f32>, tensor<f32>) {
      %g = lora.param "grad/A" gradient {of = "A"} : tensor<16x64xf32>
      %norm = lora.global_norm %g : (tensor<16x64xf32>) -> tensor<f32>
      %scale = lora.clip_scale %norm, %count {max_norm = 1.0 : f64} : ...
      %p = lora.param "master/A" optimizer_state init(copy_of_owner) {of = "A"} : tensor<16x64xf32>
      ...
      %p2, %m2, %v2 = lora.adamw %p, %g, %m, %v, %lr, %step, %scale {...}
      lora.assign "master/A", %p2 : tensor<16x64xf32>
      ...
      lora.reset "grad/A" : tensor<16x64xf32>
      return %norm, %scale : tensor<f32>, tensor<f32>
    }
    ```
  }];
  let options = [
    Option<"beta1", "beta1", "double", /*default=*/"0.9", "AdamW beta1, [0, 1)">,
    Option<"beta2", "beta2", "double", /*default=*/"0.999", "AdamW beta2, [0, 1)">,
    Option<"eps", "eps", "double", /*default=*/"1e-8", "AdamW epsilon (> 0)">,
    Option<"weightDecay", "weight-decay", "double", /*default=*/"0.0",
           "Decoupled weight decay (>= 0)">,
    Option<"maxGradNorm", "max-grad-norm", "double", /*default=*/"1.0",
           "Clip the global gradient norm to this (0: no clipping)">
  ];
  let dependentDialects = ["::mlir::lora::LoraDialect", "::mlir::func::FuncDialect"];
}

//===----------------------------------------------------------------------===//
// Lowering
//===----------------------------------------------------------------------===//

def FuseLmHeadLoss : Pass<"lora-fuse-lm-head-loss", "::mlir::ModuleOp"> {
  let summary = "Computes the LM-head loss and its input gradient in one sweep when the loss gradient is a constant";
  let description = [{
    Runs after `lora-autodiff` (and `lora-optimizer`). In each function, a
    `lora.lm_head_cross_entropy_grad %h, %w, %t, %m, %d` whose `%d` is a
    `lora.scalar` constant, and a `lora.lm_head_cross_entropy %h, %w, %t, %m`
    of the same operands and `chunk_size` in the same block before it,
    become one `lora.lm_head_cross_entropy_with_grad {dloss = d}` at the
    forward op's place: each chunk's `[chunk_size, vocab]` logits are
    computed once and give the loss and `dx`, where the backward would
    compute them again (one `tokens × hidden × vocab` product fewer per step:
    a tenth of a TinyLlama-shaped step's FLOPs). The trainer's SFT and
    pretraining steps seed the summed loss with `lora.scalar 1.0`, so they
    always match; a gradient fed from elsewhere (not a constant) stays two
    ops. The constant is erased when nothing else reads it.

    `target` is `cpu` or `cuda`: the CUDA backend has no kernel for the
    fused kind, so with `target = cuda` the pass changes nothing (`lorac
    compile` runs it for both).

    Before:
    ```mlir
    %loss, %n = lora.lm_head_cross_entropy %h, %w, %t, %m {chunk_size = 64 : i64} : ...
    %one = lora.scalar 1.0 : tensor<f32>
    %dx = lora.lm_head_cross_entropy_grad %h, %w, %t, %m, %one {chunk_size = 64 : i64} : ...
    ```
    After:
    ```mlir
    %loss, %n, %dx = lora.lm_head_cross_entropy_with_grad %h, %w, %t, %m {chunk_size = 64 : i64, dloss = 1.0 : f64} : ...
    ```
  }];
  let options = [
    Option<"target", "target", "std::string", /*default=*/"\"cpu\"",
           "cpu or cuda">
  ];
  let dependentDialects = ["::mlir::lora::LoraDialect"];
}

def DataParallel : Pass<"lora-data-parallel", "::mlir::ModuleOp"> {
  let summary = "Adds the gradient all-reduce of data-parallel training, in buckets that overlap the backward";
  let description = [{
    Runs after `lora-optimizer` (and `lora-fuse-lm-head-loss`), before
    `lora-lower-to-kernels`. Every rank of a data-parallel run executes the
    same plan on its own micro-batches; this pass makes the plan sum over the
    ranks what the optimizer step needs (docs/distributed.md):

    - In `@train_step`, each gradient's `lora.accumulate` + `lora.assign`
      moves to right after the op that produces the gradient, so the
      float32 accumulators fill in the order of the backward. In that order
      they are grouped into buckets of at least `bucket-mb` MiB (the last
      may be smaller); after a bucket's last accumulation,
      `lora.grad_all_reduce_start` starts its all-reduce, which runs while
      the rest of the backward computes. A new F32 input `sync_gradients`
      gates it: the trainer sets it on the last micro-batch of each
      optimizer step only, so gradient accumulation communicates once per
      step.
    - `@optimizer_step` begins with a `lora.grad_all_reduce_wait` per bucket
      and sums its `token_count` input over the ranks
      (`lora.all_reduce_sum`) before `lora.clip_scale`: the update divides
      the gradient summed over all ranks by the target tokens of all ranks,
      exactly as one process accumulating the same micro-batches would.

    The plan does not depend on the number of ranks (with one rank every
    collective is the identity), so a run may resume on another world size.
    `lorac compile --report` lists the buckets and the bytes each rank sends
    per step. Refused: a plan without `@train_step`/`@optimizer_step` or
    gradient accumulators, one that is data-parallel already, and a
    `bucket-mb` that is not positive.

    Before (`@train_step`, end of the function):
    ```mlir
    %acc = lora.param "grad/w" gradient {of = "w"} : tensor<16x64xf32>
    %s = lora.accumulate %acc, %dw : (tensor<16x64xf32>, tensor<16x64xbf16>) -> tensor<16x64xf32>
    lora.assign "grad/w", %s : tensor<16x64xf32>
    ```
    After (right after `%dw` is produced):
    ```mlir
    lora.assign "grad/w", %s : tensor<16x64xf32>
    lora.grad_all_reduce_start ["grad/w"] sync(%sync) {bucket = 0 : i64, bytes = 4096 : i64} : tensor<f32>
    ```
  }];
  let options = [
    Option<"bucketMb", "bucket-mb", "double", /*default=*/"25.0",
           "bucket size in MiB (PyTorch DDP's default is 25)">
  ];
  let dependentDialects = ["::mlir::lora::LoraDialect"];
}

def LowerToKernels : Pass<"lora-lower-to-kernels", "::mlir::ModuleOp"> {
  let summary = "Maps every op of the training graph to a kernel kind with its launch parameters";
  let description = [{
    Attaches to every op (except `lora.param` bindings and returns) a
    `lora.kernel` dictionary: `kind` selects the kernel family the runtime
    implements on each backend (`fused_linear_fwd`, `attention_bwd`,
    `lm_head_ce_fwd`, `adamw`, ...), the other entries are its parameters:
    problem sizes (`m`, `n`, `k`, `tokens`, ...), the weight's storage
    (`weight_format = "nf4"` with `block_size` and `double_quant_block`, or
    `"dense"`), LoRA rank, scaling and dropout, RoPE frequencies and scaling,
    and algorithm choices (`block_q`/`block_k` of the FlashAttention-style
    attention, `chunk_size` of the LM-head cross-entropy). Each builder fills
    the kind's typed parameter struct generated from
    `runtime/src/lorart/plan/kernel_kinds.def` (`lorart::kernels::params`)
    and writes it as the dictionary, so names and types come from the one
    declaration the runtime reads; the dictionary is then checked against it
    (an unknown kind, a missing or mistyped parameter is an error). Dropout
    is kept only in `@train_step`; every other program gets `dropout = 0`.
    The serializer writes the kernels into train.bin; `lora-emit-cuda`
    attaches the CUDA source.

    After:
    ```mlir
    %y = lora.fused_linear %x, %w adapter(%a, %b) {alpha = 32.0 : f64, lora.kernel = {kind = "fused_linear_fwd", m = 2048 : i64, n = 4096 : i64, k = 4096 : i64, weight_format = "nf4", block_size = 64 : i64, double_quant_block = 256 : i64, rank = 16 : i64, scaling = 2.0 : f64, ...}} : ...
    ```
  }];
  let options = [
    Option<"target", "target", "std::string", /*default=*/"\"cpu\"",
           "cpu or cuda">,
    Option<"attentionBlock", "attention-block", "int64_t", /*default=*/"64",
           "Query/key block size of the attention kernels (> 0)">
  ];
  let dependentDialects = ["::mlir::lora::LoraDialect", "::mlir::func::FuncDialect"];
}

def PlanMemory : Pass<"lora-plan-memory", "::mlir::ModuleOp"> {
  let summary = "Schedules each program, computes liveness and places every buffer in one arena (best fit)";
  let description = [{
    The schedule of a program is its op order (topological: one SSA block).
    Every value that is not a persistent parameter (inputs, activations,
    gradients, outputs) is a buffer live from its definition to its last
    use; inputs are live from the start, returned values to the end.
    Buffers are placed by best fit in decreasing size (MemoryPlanner.h): two
    buffers whose lifetimes overlap never overlap in memory. Writes
    `lora.offsets` (one per result) on ops, `lora.offset` on arguments and
    `lora.arena_size` (the peak) on each function; the programs share one
    arena of the largest size.

    After:
    ```mlir
    func.func @train_step(%tokens: tensor<4x512xi32> {lora.input = "tokens", lora.offset = 0 : i64}, ...)
        attributes {lora.arena_size = 123456 : i64} {
      %0 = lora.embedding %e, %tokens {lora.offsets = array<i64: 8192>} : ...
    ```
  }];
  let options = [
    Option<"alignment", "alignment", "int64_t", /*default=*/"64",
           "Byte alignment of every buffer (a power of two)">
  ];
  let dependentDialects = ["::mlir::lora::LoraDialect", "::mlir::func::FuncDialect"];
}

def LogitsProgram : Pass<"lora-logits-program", "::mlir::ModuleOp"> {
  let summary = "Adds @logits_step: the next-token logits at one position per sequence, for generation";
  let description = [{
    Clones the (shape-specialized) forward graph into `@logits_step` with an
    extra input `last_index` (`[batch]`: the position whose next token is
    wanted) and a `lora.select_rows` before the LM head, so only
    `[batch, 1, vocab]` logits are computed. Runs before `lora-objective`.
    The runtime's `lorart generate` calls it once per generated token (no KV
    cache yet).

    After:
    ```mlir
    func.func @logits_step(%tokens: ..., %positions: ..., %last: tensor<1xi32> {lora.input = "last_index"})
        -> (tensor<1x1x512xf32> {lora.output = "logits"}) {
      ...
      %row = lora.select_rows %h, %last : (tensor<1x64x128xf32>, tensor<1xi32>) -> tensor<1x1x128xf32>
      %logits = lora.lm_head %row, %w : ...
    ```
  }];
  let dependentDialects = ["::mlir::lora::LoraDialect", "::mlir::func::FuncDialect"];
}

def EmitCuda : Pass<"lora-emit-cuda", "::mlir::ModuleOp"> {
  let summary = "Emits CUDA C++ source, specialised by dtype and size, with launch geometry for each kernel that has a template";
  let description = [{
    Runs after `lora-lower-to-kernels` for the cuda target (`lorac compile
    --target cuda`). For every kernel whose family has a template it adds
    `cuda_source` (self-contained CUDA C++: an `extern "C" __global__`
    entry specialised by element type and problem size), `cuda_entry`,
    `cuda_grid`, `cuda_block` and `cuda_shared` to the op's `lora.kernel`;
    the serializer moves them into train.bin and the runtime compiles them
    with NVRTC (cached on disk). Kernel arguments are the launch's inputs
    then its outputs, as device pointers.

    The pass is a table-driven dispatcher: it describes each kernel without
    MLIR (its kind's typed parameters from kernel_kinds.def, and its operand
    and result element types) and calls the code generator of `codegen/cuda`
    (an MLIR-free library, one file per kernel family holding the
    tensor-core template and its CUDA-core variant), which finds the kind's
    emitter in its family's table. Values no template can take (a rope
    scaling it does not know) fail the pass with the kernel's location.

    Templates: `add`, `swiglu_fwd`, `swiglu_bwd`, `cast`,
    `accumulate`, `copy`, `zero`, `fill`, `adamw`, `global_norm` (block
    partial sums in double, then one block adding them in order),
    `clip_scale` — so every kernel of
    `@optimizer_step` has a source — `rms_norm_fwd` (one block per row,
    warp-shuffle reduction), `rope_fwd`/`rope_bwd` (the frequencies,
    with linear or llama3 scaling, are computed here and baked into the
    source as a `__constant__` table), `embedding_fwd`,
    `segment_boundary_mask`, and `linear_fwd`/`fused_linear_fwd` with bf16
    activations: the tensor-core GEMM (`mma.sync` m16n8k16, cp.async double
    buffering, ldmatrix) that dequantizes an NF4 weight tile by tile into
    shared memory (never to global memory) and runs the adapter's two
    products (with dropout) inside the same kernel; 64x64 or 128x128 tiles
    chosen by problem size (codegen/cuda/gemm.cpp); `attention_fwd` with
    bf16 q/k/v: FlashAttention-2 on tensor cores (online softmax, P kept in
    registers as the A fragment of P·V, causal / sliding-window tile
    skipping, segment ids, grouped-query heads; codegen/cuda/attention.cpp)
    and `attention_bwd` (dQ with each row's logsumexp and rowsum(dO∘O) into
    a workspace, then dK/dV per key tile in one fixed order, no atomics).
    `linear_bwd_x`/`lora_bwd`/`fused_linear_bwd` (codegen/cuda/linear_bwd.cpp:
    u = drop(x)·Aᵀ and g = dy·B on tensor cores into a workspace, then dB,
    dA and dx = dy·deq(W) + s·drop'(g·A) as further launches),
    `rms_norm_bwd` (three launches: dw's partial sums per 32-row chunk,
    their sum per column, dx per row), `embedding_bwd` (a block per vocabulary
    row, no atomics), `lm_head_ce_fwd` (online logsumexp over vocabulary
    tiles, no [tokens, vocab] matrix; codegen/cuda/lm_head.cpp),
    `lm_head_ce_bwd_x` (per chunk of `chunk_size` tokens: bf16 dlogits in
    the workspace, then dx = dlogits·W) and `lm_head_ce_bwd_w` (per chunk
    dw += dlogitsᵀ·x, summed in f32). The losses on materialized logits and
    the preference and forgetting objectives (codegen/cuda/losses.cpp):
    `cross_entropy_fwd/bwd`, `sequence_logprobs_fwd/bwd` (a block per token
    row, token sums in a second launch), `dpo_loss_fwd/bwd`,
    `replay_loss_fwd/bwd`, `ewc_penalty_fwd/bwd` (a warp per row of the
    update). `linear_bwd_x` also takes an f32 dy (rounded to bf16 as staged).

    A kernel may have several launches of its source (`cuda_next`, run in
    order with the same arguments) and ask for arena scratch
    (`cuda_workspace` bytes, placed by lora-plan-memory). Arguments: the
    launch's inputs, its outputs, the workspace if any, then for kernels
    drawing dropout masks a pointer to the mask key (DropoutKey of the step
    seed and the op's stream). `linear_bwd_w` and `bias_bwd` (full
    fine-tuning) have templates too. `lm_head_fwd` takes the GEMM with
    f32 output and `select_rows` an elementwise gather.

    What the tensor-core templates do not cover — f32 and f16 activations,
    bf16 ones with a LoRA rank above 64 or K not a multiple of 8, attention
    head_dim not a multiple of 16 up to 128 — takes the CUDA-core templates
    (the CUDA-core half of each family file, with codegen/cuda/simt.cpp):
    the same kernels and arguments, 64x64 output tiles of f32 FMAs staged through shared memory, attention a warp per
    query (and per key for dK/dV), every sum in one fixed order. So every
    kernel of a bf16, f16 or f32 plan has a source; a kernel that no
    template covers (e.g. head_dim above 256) keeps none, with a warning.

    After:
    ```mlir
    %y = lora.add %a, %b {lora.kernel = {cuda_block = array<i64: 256, 1, 1>, cuda_entry = "lora_add_bf16_n65536", cuda_grid = array<i64: 256, 1, 1>, cuda_shared = 0 : i64, cuda_source = "#include <cuda_bf16.h>...", elements = 65536 : i64, kind = "add"}} : ...
    ```
  }];
  let dependentDialects = ["::mlir::lora::LoraDialect", "::mlir::func::FuncDialect"];
}

#endif // LORA_TRANSFORMS_PASSES_TD
