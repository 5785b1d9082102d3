//===- LoraOps.td - lora operations -------------------------*- tablegen -*-===//
#ifndef LORA_OPS_TD
#define LORA_OPS_TD

include "lora/Dialect/Lora/IR/LoraDialect.td"
include "lora/Dialect/Lora/IR/LoraAttrs.td"
include "lora/Dialect/Lora/IR/LoraTypes.td"
include "lora/Dialect/Lora/IR/LoraInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

//===----------------------------------------------------------------------===//
// Type constraints
//===----------------------------------------------------------------------===//

def Lora_FloatTensor : RankedTensorOf<[BF16, F16, F32]>;
def Lora_IndexTensor : RankedTensorOf<[I32, I64]>;
def Lora_MaskTensor : RankedTensorOf<[I1]>;
def Lora_WeightType : AnyTypeOf<[Lora_FloatTensor, Lora_NF4Type]>;
def Lora_F32Scalar : 0DTensorOf<[F32]>;
def Lora_I64Scalar : 0DTensorOf<[I64]>;

def Lora_PositiveF64 : ConfinedAttr<F64Attr, [
    AttrConstraint<CPred<"::llvm::cast<::mlir::FloatAttr>($_self).getValueAsDouble() > 0.0">,
                   "whose value is positive">]>;

//===----------------------------------------------------------------------===//
// Parameters
//===----------------------------------------------------------------------===//

def Lora_ParamOp : Lora_Op<"param", [Pure]> {
  let summary = "a parameter tensor, referenced by its checkpoint name";
  let description = [{
    Produces the tensor stored under `name` in the model's safetensors (or, for
    adapters, PEFT's `adapter_model.safetensors`). The data never lives in the
    IR: the runtime binds it by name. `role` says what training does with it:

    * `frozen`: read only; no gradient is built for it (an input gradient
      through it is).
    * `trainable`: receives a gradient and an optimizer update.
    * `optimizer_state`: state owned by the optimizer (AdamW moments, float32
      master copies); `of` names the trainable parameter it belongs to.
    * `gradient`: the float32 gradient accumulator of the trainable
      parameter `of`.

    `init` says how the runtime fills it before the first step (train.bin's
    `TensorInit`); without it, `frozen` and `trainable` parameters come from
    the checkpoint by name and `optimizer_state` and `gradient` start at
    zero:

    * `checkpoint`: bound by name from the model's safetensors;
    * `kaiming_uniform`: PEFT's initialization of a new `lora_A`;
    * `zeros`: all zero (a new `lora_B`, moments, gradients);
    * `copy_of_owner`: a float32 copy of `of` (the optimizer's master
      weights);
    * `fisher`: a frozen tensor bound from `lorart run --ewc-fisher FILE`,
      the diagonal Fisher of the weight `of` (EWC).

    Meaning is carried by `role`, `init` and `of`, never by the name, which
    is only the key the runtime binds or saves the tensor under.

    The result is a float tensor, or `!lora.nf4` for a quantized frozen weight.

    ```mlir
    %w = lora.param "model.layers.0.self_attn.q_proj.weight" frozen : tensor<4096x4096xbf16>
    %a = lora.param "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" trainable init(kaiming_uniform) : tensor<16x4096xbf16>
    %m = lora.param "adamw.m.lora_A" optimizer_state {of = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"} : tensor<16x4096xf32>
    ```
  }];
  let arguments = (ins StrAttr:$name, Lora_ParamRole:$role,
                       OptionalAttr<StrAttr>:$of,
                       OptionalAttr<Lora_ParamInit>:$init);
  let results = (outs Lora_WeightType:$result);
  let assemblyFormat = "$name $role (`init` `(` $init^ `)`)? attr-dict `:` type($result)";
  let builders = [
    OpBuilder<(ins "::mlir::Type":$type, "::llvm::StringRef":$name,
                   "::mlir::lora::ParamRole":$role,
                   CArg<"::llvm::StringRef", "{}">:$of,
                   CArg<"std::optional<::mlir::lora::ParamInit>", "std::nullopt">:$init), [{
      build($_builder, $_state, type, $_builder.getStringAttr(name),
            ::mlir::lora::ParamRoleAttr::get($_builder.getContext(), role),
            of.empty() ? ::mlir::StringAttr() : $_builder.getStringAttr(of),
            init ? ::mlir::lora::ParamInitAttr::get($_builder.getContext(), *init)
                 : ::mlir::lora::ParamInitAttr());
    }]>
  ];
  let extraClassDeclaration = [{
    /// `init`, or the role's default (checkpoint for frozen and trainable,
    /// zeros for optimizer_state and gradient).
    ::mlir::lora::ParamInit getEffectiveInit();
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Transformer building blocks
//===----------------------------------------------------------------------===//

def Lora_EmbeddingOp : Lora_Op<"embedding", [Pure, DeclareOpInterfaceMethods<Lora_GradientOpInterface>]> {
  let summary = "gathers rows of an embedding table by token id";
  let description = [{
    `result[b, t, :] = table[ids[b, t], :]`. The table is `[vocab, hidden]`; the
    result has the shape of `ids` with `hidden` appended and the table's
    element type. Ids outside `[0, vocab)` are a runtime error.

    ```mlir
    %h = lora.embedding %table, %ids : (tensor<32000x4096xbf16>, tensor<?x?xi32>) -> tensor<?x?x4096xbf16>
    ```
  }];
  let arguments = (ins Lora_FloatTensor:$table, Lora_IndexTensor:$ids);
  let results = (outs Lora_FloatTensor:$result);
  let assemblyFormat = "$table `,` $ids attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Lora_RMSNormOp : Lora_Op<"rms_norm", [Pure, DeclareOpInterfaceMethods<Lora_GradientOpInterface>]> {
  let summary = "root-mean-square layer normalization with a learned scale";
  let description = [{
    `y = x / sqrt(mean(x², last axis) + eps) * weight`, computed in float32 and
    rounded to the element type of `x` (as Hugging Face's LlamaRMSNorm).
    `weight` has the size of the last axis of `x`, or of a divisor `g` of it:
    then each contiguous group of `g` features is normalized on its own with
    the same `weight` (Qwen3's per-head `q_norm`/`k_norm` on `[..., heads·g]`).

    ```mlir
    %y = lora.rms_norm %x, %w {eps = 1.0e-05 : f64} : (tensor<?x?x4096xbf16>, tensor<4096xbf16>) -> tensor<?x?x4096xbf16>
    ```
  }];
  let arguments = (ins Lora_FloatTensor:$x, Lora_FloatTensor:$weight,
                       Lora_PositiveF64:$eps);
  let results = (outs Lora_FloatTensor:$result);
  let assemblyFormat = "$x `,` $weight attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Lora_LinearOp : Lora_Op<"linear", [Pure, DeclareOpInterfaceMethods<Lora_GradientOpInterface>]> {
  let summary = "a linear layer `x·Wᵀ (+ bias)` with the weight in Hugging Face layout";
  let description = [{
    `x` is `[..., in]`, `weight` is `[out, in]` (as stored by PyTorch's
    `nn.Linear`), the optional `bias` is `[out]` (Qwen2's q/k/v projections,
    or Llama's with `attention_bias`). The result is `[..., out]` with the
    element type of `x`. The weight is a float tensor; an NF4 weight is read
    through `lora.dequantize` (the training compiler fuses the two).

    ```mlir
    %y = lora.linear %x, %w : (tensor<?x?x4096xbf16>, tensor<1024x4096xbf16>) -> tensor<?x?x1024xbf16>
    %z = lora.linear %x, %w, bias %b : (tensor<?x?x896xbf16>, tensor<128x896xbf16>, tensor<128xbf16>) -> tensor<?x?x128xbf16>
    ```
  }];
  let arguments = (ins Lora_FloatTensor:$x, Lora_FloatTensor:$weight,
                       Optional<Lora_FloatTensor>:$bias);
  let results = (outs Lora_FloatTensor:$result);
  let assemblyFormat = [{
    $x `,` $weight (`,` `bias` $bias^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Lora_AdapterOp : Lora_Op<"adapter", [Pure, DeclareOpInterfaceMethods<Lora_GradientOpInterface>]> {
  let summary = "the low-rank update of a LoRA adapter, `(alpha/r)·drop(x)·Aᵀ·Bᵀ`";
  let description = [{
    The contribution of one LoRA adapter (Hu et al. 2021) to the output of the
    linear layer it is attached to: `x` is the layer's input `[..., in]`,
    `a` is `lora_A` `[r, in]`, `b` is `lora_B` `[out, r]`, and the result
    `[..., out]` is added to the layer's output with `lora.add`. The rank `r`
    is the leading dimension of `a`; the scaling is `alpha / r`. `dropout`
    is the probability of zeroing an element of `x` on the adapter path in
    training (inverted dropout, as PEFT); it is ignored in evaluation.

    The adapter is its own op rather than an attribute of `lora.linear` so
    that it can be attached to any linear layer by a pass, switched off for
    DPO's reference pass, differentiated on its own (its weights are the
    trainable ones) and folded into the base weight when merging; the
    training compiler fuses it back with its linear layer.

    ```mlir
    %d = lora.adapter %x, %a, %b {alpha = 32.0 : f64, dropout = 5.0e-02 : f64} : (tensor<?x?x4096xbf16>, tensor<16x4096xbf16>, tensor<1024x16xbf16>) -> tensor<?x?x1024xbf16>
    ```
  }];
  let arguments = (ins Lora_FloatTensor:$x, Lora_FloatTensor:$a,
                       Lora_FloatTensor:$b, Lora_PositiveF64:$alpha,
                       DefaultValuedAttr<F64Attr, "0.0">:$dropout);
  let results = (outs Lora_FloatTensor:$result);
  let assemblyFormat = "$x `,` $a `,` $b attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The adapter rank r (leading dimension of A).
    int64_t getRank();
    /// alpha / r.
    double getScaling();
  }];
}

def Lora_RopeOp : Lora_Op<"rope", [Pure, DeclareOpInterfaceMethods<Lora_GradientOpInterface>]> {
  let summary = "rotary position embedding of every head at per-token positions";
  let description = [{
    Rotates each head of `x` (`[batch, seq, heads * head_dim]`) by the angle
    `positions[b, t] * inv_freq[i]`, `inv_freq[i] = theta^(-2i / head_dim)`,
    pairing element `i` with `i + head_dim/2` (Hugging Face's `rotate_half`
    layout). `positions` is `[batch, seq]`; with sequence packing the
    positions restart at every document. The optional `scaling` rescales the
    frequencies (`#lora.rope_scaling`).

    ```mlir
    %q2 = lora.rope %q, %pos {head_dim = 128 : i64, theta = 5.0e+05 : f64} : (tensor<?x?x4096xbf16>, tensor<?x?xi32>) -> tensor<?x?x4096xbf16>
    ```
  }];
  let arguments = (ins Lora_FloatTensor:$x, Lora_IndexTensor:$positions,
                       I64Attr:$head_dim, Lora_PositiveF64:$theta,
                       OptionalAttr<Lora_RopeScalingAttr>:$scaling);
  let results = (outs Lora_FloatTensor:$result);
  let assemblyFormat = "$x `,` $positions attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Lora_AttentionOp : Lora_Op<"attention", [Pure, DeclareOpInterfaceMethods<Lora_GradientOpInterface>]> {
  let summary = "causal grouped-query attention, optionally block-diagonal over packed documents";
  let description = [{
    Scaled dot-product attention with a causal mask. `q` is
    `[batch, seq, num_heads * head_dim]`, `k` and `v` are
    `[batch, seq, num_kv_heads * head_dim]`; query head `h` reads key/value
    head `h / (num_heads / num_kv_heads)` (grouped-query attention; MHA when
    the counts are equal, MQA when `num_kv_heads` is 1). The result has the
    type of `q`. `scale` defaults to `1/sqrt(head_dim)`.

    With `segment_ids` (`[batch, seq]`, one id per packed document) a query
    attends only to keys of its own segment, so packed sequences never attend
    across documents. With `sliding_window = W` (Mistral) a query at `i`
    attends only to keys `j` with `i - j < W`.

    ```mlir
    %o = lora.attention %q, %k, %v {num_heads = 32 : i64, num_kv_heads = 8 : i64, head_dim = 128 : i64} : (tensor<?x?x4096xbf16>, tensor<?x?x1024xbf16>, tensor<?x?x1024xbf16>) -> tensor<?x?x4096xbf16>
    %p = lora.attention %q, %k, %v segments %seg {num_heads = 4 : i64, num_kv_heads = 4 : i64, head_dim = 16 : i64} : (tensor<2x64x64xf32>, tensor<2x64x64xf32>, tensor<2x64x64xf32>, tensor<2x64xi32>) -> tensor<2x64x64xf32>
    ```
  }];
  let arguments = (ins Lora_FloatTensor:$q, Lora_FloatTensor:$k,
                       Lora_FloatTensor:$v,
                       Optional<Lora_IndexTensor>:$segment_ids,
                       I64Attr:$num_heads, I64Attr:$num_kv_heads,
                       I64Attr:$head_dim,
                       OptionalAttr<Lora_PositiveF64>:$scale,
                       OptionalAttr<I64Attr>:$sliding_window);
  let results = (outs Lora_FloatTensor:$result);
  let assemblyFormat = [{
    $q `,` $k `,` $v (`segments` $segment_ids^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The softmax scale: `scale` if set, else 1/sqrt(head_dim).
    double getEffectiveScale();
  }];
}

def Lora_SwiGLUOp : Lora_Op<"swiglu", [Pure, DeclareOpInterfaceMethods<Lora_GradientOpInterface>]> {
  let summary = "the SwiGLU gate `silu(gate) * up`";
  let description = [{
    Elementwise `gate * sigmoid(gate) * up` of two tensors of the same type,
    the activation of the Llama MLP between `gate_proj`/`up_proj` and
    `down_proj`.

    ```mlir
    %a = lora.swiglu %g, %u : (tensor<?x?x11008xbf16>, tensor<?x?x11008xbf16>) -> tensor<?x?x11008xbf16>
    ```
  }];
  let arguments = (ins Lora_FloatTensor:$gate, Lora_FloatTensor:$up);
  let results = (outs Lora_FloatTensor:$result);
  let assemblyFormat = "$gate `,` $up attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Lora_AddOp : Lora_Op<"add", [Pure, Commutative, DeclareOpInterfaceMethods<Lora_GradientOpInterface>]> {
  let summary = "elementwise sum of two tensors of the same type (residual connections, adapter outputs)";
  let description = [{
    ```mlir
    %h1 = lora.add %h0, %o : (tensor<?x?x4096xbf16>, tensor<?x?x4096xbf16>) -> tensor<?x?x4096xbf16>
    ```
  }];
  let arguments = (ins Lora_FloatTensor:$lhs, Lora_FloatTensor:$rhs);
  let results = (outs Lora_FloatTensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Lora_LMHeadOp : Lora_Op<"lm_head", [Pure, DeclareOpInterfaceMethods<Lora_GradientOpInterface>]> {
  let summary = "the output projection to float32 vocabulary logits";
  let description = [{
    `logits = x·Wᵀ` with `x` `[..., hidden]` and `weight` `[vocab, hidden]`,
    accumulated and returned in float32. With tied embeddings the weight is the
    embedding table itself (the same `lora.param` value).

    ```mlir
    %logits = lora.lm_head %h, %w : (tensor<?x?x4096xbf16>, tensor<32000x4096xbf16>) -> tensor<?x?x32000xf32>
    ```
  }];
  let arguments = (ins Lora_FloatTensor:$x, Lora_FloatTensor:$weight);
  let results = (outs RankedTensorOf<[F32]>:$logits);
  let assemblyFormat = "$x `,` $weight attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Lora_CrossEntropyOp : Lora_Op<"cross_entropy", [Pure, DeclareOpInterfaceMethods<Lora_GradientOpInterface>]> {
  let summary = "summed token cross-entropy over the unmasked positions, and their count";
  let description = [{
    For logits `[..., vocab]`, integer `targets` and an `i1` `mask` of the same
    leading shape, returns `loss_sum = Σ_{mask} -log softmax(logits)[target]`
    and `count = Σ mask` (the number of target tokens) as 0-d tensors. Masked-out
    positions may hold any target value (they are never read). Returning the sum
    and the count, not the mean, lets gradient accumulation normalise by the
    number of target tokens of the whole accumulated batch.

    ```mlir
    %loss, %n = lora.cross_entropy %logits, %targets, %mask : (tensor<2x128x32000xf32>, tensor<2x128xi32>, tensor<2x128xi1>) -> (tensor<f32>, tensor<i64>)
    ```
  }];
  let arguments = (ins Lora_FloatTensor:$logits, Lora_IndexTensor:$targets,
                       Lora_MaskTensor:$mask);
  let results = (outs Lora_F32Scalar:$loss_sum, Lora_I64Scalar:$count);
  let assemblyFormat = "$logits `,` $targets `,` $mask attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Lora_SequenceLogProbsOp : Lora_Op<"sequence_logprobs", [Pure, DeclareOpInterfaceMethods<Lora_GradientOpInterface>]> {
  let summary = "summed log-probability of each sequence's target tokens (for preference objectives)";
  let description = [{
    For logits `[batch, seq, vocab]`, `targets` and `mask` `[batch, seq]` and
    `sequence_ids` `[batch, seq]` (i32), returns `[num_sequences]` float32:
    `result[s] = Σ_{mask, sequence_ids == s} log softmax(logits)[target]`.
    Masked-in tokens must carry an id in `[0, num_sequences)`; masked-out
    ones may carry any id (-1 by convention). DPO's objective uses it for the
    chosen (`2p`) and rejected (`2p + 1`) response of each pair `p`, packed
    into one grid.

    ```mlir
    %lp = lora.sequence_logprobs %logits, %targets, %mask, %seq {num_sequences = 8 : i64} : (tensor<4x512x32000xf32>, tensor<4x512xi32>, tensor<4x512xi1>, tensor<4x512xi32>) -> tensor<8xf32>
    ```
  }];
  let arguments = (ins Lora_FloatTensor:$logits, Lora_IndexTensor:$targets,
                       Lora_MaskTensor:$mask, Lora_IndexTensor:$sequence_ids,
                       I64Attr:$num_sequences);
  let results = (outs RankedTensorOf<[F32]>:$logprobs);
  let assemblyFormat = "$logits `,` $targets `,` $mask `,` $sequence_ids attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Lora_DPOLossOp : Lora_Op<"dpo_loss", [Pure, DeclareOpInterfaceMethods<Lora_GradientOpInterface>]> {
  let summary = "DPO (or IPO) loss of preference pairs from policy and reference log-probabilities";
  let description = [{
    `policy` and `reference` are `[2 * pairs]` summed log-probabilities of
    each pair's chosen (even index) and rejected (odd index) response under
    the policy (adapters on) and the reference (the same base, adapters
    off); `pair_mask` `[pairs]` marks the pairs present. With
    `h = (π_c − r_c) − (π_r − r_r)` per pair, the loss is summed over the
    pairs present: `sigmoid`, DPO's `−log σ(β·h)`; `ipo`, `(h − 1/(2β))²`.
    Also returns the number of pairs (the normaliser, like a token count)
    and, summed over the pairs, the rewards `β(π_c − r_c)` and
    `β(π_r − r_r)`, the pairs whose chosen reward is higher, and the reward
    margins. Only the loss is differentiated, with respect to `policy`.

    ```mlir
    %loss, %n, %rc, %rr, %acc, %margin = lora.dpo_loss %pol, %ref, %pairs {beta = 1.0e-01 : f64, loss_type = "sigmoid"} : (tensor<8xf32>, tensor<8xf32>, tensor<4xi1>) -> (tensor<f32>, tensor<i64>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>)
    ```
  }];
  let arguments = (ins RankedTensorOf<[F32]>:$policy, RankedTensorOf<[F32]>:$reference,
                       Lora_MaskTensor:$pair_mask, Lora_PositiveF64:$beta,
                       StrAttr:$loss_type);
  let results = (outs Lora_F32Scalar:$loss_sum, Lora_I64Scalar:$count,
                      Lora_F32Scalar:$chosen_rewards, Lora_F32Scalar:$rejected_rewards,
                      Lora_F32Scalar:$accuracy, Lora_F32Scalar:$margin);
  let assemblyFormat = "$policy `,` $reference `,` $pair_mask attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Lora_ReplayLossOp : Lora_Op<"replay_loss", [Pure, DeclareOpInterfaceMethods<Lora_GradientOpInterface>]> {
  let summary = "a language-modelling loss on replayed general text, weighted into a per-pair objective";
  let description = [{
    For a DPO step that also trains on replayed general text: with `lm_sum`
    and `lm_count` the summed cross-entropy of the replay tokens and their
    number, and `pairs` the pairs present in `pair_mask`, returns
    `weight · pairs · lm_sum / max(lm_count, 1)`, added to the summed DPO
    loss: divided by the pair count (as the optimizer does), the step's loss
    is the mean DPO loss plus `weight` times the replay tokens' mean
    cross-entropy. Built by `lora-objective{objective=dpo replay-weight=W}`.

    ```mlir
    %r = lora.replay_loss %sum, %count, %pairs {weight = 1.0 : f64} : (tensor<f32>, tensor<i64>, tensor<4xi1>) -> tensor<f32>
    ```
  }];
  let arguments = (ins Lora_F32Scalar:$lm_sum, Lora_I64Scalar:$lm_count, Lora_MaskTensor:$pair_mask,
                       Lora_PositiveF64:$weight);
  let results = (outs Lora_F32Scalar:$result);
  let assemblyFormat = "$lm_sum `,` $lm_count `,` $pair_mask attr-dict `:` functional-type(operands, results)";
}

def Lora_ReplayLossGradOp : Lora_Op<"replay_loss_grad", [Pure]> {
  let summary = "gradient of lora.replay_loss with respect to the summed replay cross-entropy";
  let description = [{
    `dlm_sum = dloss · weight · pairs / max(lm_count, 1)`.
  }];
  let arguments = (ins Lora_I64Scalar:$lm_count, Lora_MaskTensor:$pair_mask, Lora_F32Scalar:$dloss,
                       Lora_PositiveF64:$weight);
  let results = (outs Lora_F32Scalar:$dlm_sum);
  let assemblyFormat = "$lm_count `,` $pair_mask `,` $dloss attr-dict `:` functional-type(operands, results)";
}

def Lora_EWCPenaltyOp : Lora_Op<"ewc_penalty", [Pure, DeclareOpInterfaceMethods<Lora_GradientOpInterface>]> {
  let summary = "elastic weight consolidation penalty on an adapter's effective weight update";
  let description = [{
    With `ΔW = scaling · B · A` (`B` `[out, r]`, `A` `[r, in]`) and a diagonal
    Fisher `F` `[out, in]` of the base weight the adapter updates, returns
    `penalty = lambda · Σ F ⊙ ΔW²` and `weighted = count · penalty`, the term
    added to a summed token loss (so that dividing by the token count, as the
    optimizer does, leaves the penalty once per step). Only `weighted` is
    differentiated, with respect to `A` and `B`. Built by `lora-ewc`.

    ```mlir
    %w, %p = lora.ewc_penalty %a, %b, %f, %count {lambda = 1.0e+02 : f64, scaling = 2.0 : f64} : (tensor<8x64xf32>, tensor<64x8xf32>, tensor<64x64xf32>, tensor<i64>) -> (tensor<f32>, tensor<f32>)
    ```
  }];
  let arguments = (ins Lora_FloatTensor:$a, Lora_FloatTensor:$b, Lora_FloatTensor:$fisher,
                       Lora_I64Scalar:$count, F64Attr:$scaling, Lora_PositiveF64:$lambda);
  let results = (outs Lora_F32Scalar:$weighted, Lora_F32Scalar:$penalty);
  let assemblyFormat = "$a `,` $b `,` $fisher `,` $count attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Quantization
//===----------------------------------------------------------------------===//

def Lora_DequantizeOp : Lora_Op<"dequantize", [Pure]> {
  let summary = "expands an NF4 weight to a float tensor of the same shape";
  let description = [{
    `w[i] = codebook[code[i]] * absmax[i / block_size]`, where the absmax scale
    is itself dequantized first when the type uses double quantization. The
    training compiler fuses this op into the matmul that consumes it, so the
    full dequantized matrix is never materialized.

    ```mlir
    %w = lora.dequantize %q : !lora.nf4<4096x4096, block_size = 64, double_quant = 256> -> tensor<4096x4096xbf16>
    ```
  }];
  let arguments = (ins Lora_NF4Type:$input);
  let results = (outs Lora_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` qualified(type($input)) `->` type($result)";
  let hasVerifier = 1;
}

include "lora/Dialect/Lora/IR/LoraTrainingOps.td"

#endif // LORA_OPS_TD
