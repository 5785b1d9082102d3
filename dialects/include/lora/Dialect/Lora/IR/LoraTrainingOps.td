//===- LoraTrainingOps.td - fused, gradient and optimizer ops -*- tablegen -*-===//
//
// Ops the training compiler introduces: fused forward ops (lora-fuse), the
// gradient ops that the VJPs of forward ops build (lora-autodiff), and the
// optimizer's ops (lora-optimizer). Included from LoraOps.td.
//
//===----------------------------------------------------------------------===//
#ifndef LORA_TRAINING_OPS_TD
#define LORA_TRAINING_OPS_TD

//===----------------------------------------------------------------------===//
// Fused forward ops
//===----------------------------------------------------------------------===//

def Lora_FusedLinearOp : Lora_Op<"fused_linear", [Pure, AttrSizedOperandSegments,
    DeclareOpInterfaceMethods<Lora_GradientOpInterface>]> {
  let summary = "dequantize → matmul → LoRA adapter in one kernel";
  let description = [{
    `y = x·deq(W)ᵀ (+ bias) + (alpha/r)·(drop(x)·Aᵀ)·Bᵀ`. The weight is a float
    tensor or an `!lora.nf4` weight that the kernel dequantizes tile by tile:
    the full dequantized matrix is never a buffer. The adapter (`adapter(A, B)`)
    and the bias are optional. Built by `lora-fuse` from `lora.dequantize`,
    `lora.linear`, `lora.adapter` and the `lora.add` that joins them.

    ```mlir
    %y = lora.fused_linear %x, %w adapter(%a, %b) {alpha = 32.0 : f64} : (tensor<4x128x4096xbf16>, !lora.nf4<4096x4096, block_size = 64, double_quant = 256>, tensor<16x4096xbf16>, tensor<4096x16xbf16>) -> tensor<4x128x4096xbf16>
    ```
  }];
  let arguments = (ins Lora_FloatTensor:$x, Lora_WeightType:$weight,
                       Optional<Lora_FloatTensor>:$bias,
                       Optional<Lora_FloatTensor>:$a,
                       Optional<Lora_FloatTensor>:$b,
                       OptionalAttr<Lora_PositiveF64>:$alpha,
                       DefaultValuedAttr<F64Attr, "0.0">:$dropout);
  let results = (outs Lora_FloatTensor:$result);
  let assemblyFormat = [{
    $x `,` $weight (`bias` $bias^)? (`adapter` `(` $a^ `,` $b `)`)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Lora_LMHeadCrossEntropyOp : Lora_Op<"lm_head_cross_entropy", [Pure,
    DeclareOpInterfaceMethods<Lora_GradientOpInterface>]> {
  let summary = "LM head and cross-entropy, chunked over tokens";
  let description = [{
    `lora.lm_head` followed by `lora.cross_entropy` in one op whose kernel
    walks the tokens `chunk_size` at a time: only `[chunk_size, vocab]`
    float32 logits exist at once, never `[tokens, vocab]`. Returns the summed
    loss over the masked tokens and their count.

    ```mlir
    %loss, %n = lora.lm_head_cross_entropy %h, %w, %t, %m {chunk_size = 1024 : i64} : (tensor<4x512x4096xbf16>, tensor<32000x4096xbf16>, tensor<4x512xi32>, tensor<4x512xi1>) -> (tensor<f32>, tensor<i64>)
    ```
  }];
  let arguments = (ins Lora_FloatTensor:$x, Lora_FloatTensor:$weight,
                       Lora_IndexTensor:$targets, Lora_MaskTensor:$mask,
                       I64Attr:$chunk_size);
  let results = (outs Lora_F32Scalar:$loss_sum, Lora_I64Scalar:$count);
  let assemblyFormat = "$x `,` $weight `,` $targets `,` $mask attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Lora_ScalarOp : Lora_Op<"scalar", [Pure, ConstantLike]> {
  let summary = "a float32 scalar constant";
  let description = [{
    ```mlir
    %one = lora.scalar 1.0 : tensor<f32>
    ```
  }];
  let arguments = (ins F64Attr:$value);
  let results = (outs Lora_F32Scalar:$result);
  let assemblyFormat = "$value attr-dict `:` type($result)";
  let hasFolder = 1;
}

def Lora_SelectRowsOp : Lora_Op<"select_rows", [Pure]> {
  let summary = "picks one position per sequence: `result[b, 0, :] = x[b, index[b], :]`";
  let description = [{
    Used by the generation program to compute the next-token logits of the
    last prompt position only, instead of the `[batch, seq, vocab]` logits of
    every position.

    ```mlir
    %h1 = lora.select_rows %h, %last : (tensor<1x64x128xf32>, tensor<1xi32>) -> tensor<1x1x128xf32>
    ```
  }];
  let arguments = (ins Lora_FloatTensor:$x, Lora_IndexTensor:$index);
  let results = (outs Lora_FloatTensor:$result);
  let assemblyFormat = "$x `,` $index attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Lora_SegmentBoundaryMaskOp : Lora_Op<"segment_boundary_mask", [Pure]> {
  let summary = "clears the loss mask where the next token belongs to another packed document";
  let description = [{
    With sequence packing, the target of the last token of a document would
    be the first token of the next one. `result[b, t] = mask[b, t] and
    t + 1 < seq and segment_ids[b, t + 1] == segment_ids[b, t]`: the loss
    never crosses a document boundary (nor the end of a row), whatever the
    data pipeline wrote into the mask. Inserted by `lora-packing`.

    ```mlir
    %m2 = lora.segment_boundary_mask %mask, %seg : (tensor<4x512xi1>, tensor<4x512xi32>) -> tensor<4x512xi1>
    ```
  }];
  let arguments = (ins Lora_MaskTensor:$mask, Lora_IndexTensor:$segment_ids);
  let results = (outs Lora_MaskTensor:$result);
  let assemblyFormat = "$mask `,` $segment_ids attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Gradient ops
//===----------------------------------------------------------------------===//

class Lora_GradOp<string mnemonic, list<Trait> traits = []>
    : Lora_Op<mnemonic, !listconcat([Pure], traits)> {
  let hasVerifier = 1;
}

def Lora_LinearGradXOp : Lora_GradOp<"linear_grad_x"> {
  let summary = "input gradient of a linear layer, `dx = dy·deq(W)`";
  let description = [{
    `dy` is `[..., out]` (any float type: float32 for the LM head), the weight
    `[out, in]` is a float tensor or NF4 (dequantized in the kernel); `dx`
    is `[..., in]`. This is the gradient that flows through a frozen weight.
  }];
  let arguments = (ins Lora_FloatTensor:$dy, Lora_WeightType:$weight);
  let results = (outs Lora_FloatTensor:$dx);
  let assemblyFormat = "$dy `,` $weight attr-dict `:` functional-type(operands, results)";
}

def Lora_LinearGradWOp : Lora_GradOp<"linear_grad_w"> {
  let summary = "weight gradient of a linear layer, `dW = dyᵀ·x` summed over tokens";
  let description = [{
    Built only for trainable weights (full fine-tuning, `--train full`).
  }];
  let arguments = (ins Lora_FloatTensor:$dy, Lora_FloatTensor:$x);
  let results = (outs Lora_FloatTensor:$dweight);
  let assemblyFormat = "$dy `,` $x attr-dict `:` functional-type(operands, results)";
}

def Lora_BiasGradOp : Lora_GradOp<"bias_grad"> {
  let summary = "bias gradient: `dy` summed over every axis but the last";
  let arguments = (ins Lora_FloatTensor:$dy);
  let results = (outs Lora_FloatTensor:$dbias);
  let assemblyFormat = "$dy attr-dict `:` functional-type(operands, results)";
}

def Lora_AdapterGradOp : Lora_GradOp<"adapter_grad"> {
  let summary = "gradients of a LoRA adapter: `dx`, `dA`, `dB`";
  let description = [{
    With `s = alpha/r`, `u = drop(x)·Aᵀ`: `dB = s·dyᵀ·u`, `dA = s·(dy·B)ᵀ·drop(x)`,
    `dx = s·drop'((dy·B)·A)` (the same dropout mask as the forward). `dx` is
    optional: `lora-autodiff` leaves it out where nothing needs the input's
    gradient, and the kernel then computes only `dA` and `dB`.
  }];
  let arguments = (ins Lora_FloatTensor:$dy, Lora_FloatTensor:$x,
                       Lora_FloatTensor:$a, Lora_FloatTensor:$b,
                       Lora_PositiveF64:$alpha,
                       DefaultValuedAttr<F64Attr, "0.0">:$dropout);
  let results = (outs Optional<Lora_FloatTensor>:$dx, Lora_FloatTensor:$da,
                      Lora_FloatTensor:$db);
  let assemblyFormat = "$dy `,` $x `,` $a `,` $b attr-dict `:` functional-type(operands, results)";
}

def Lora_FusedLinearGradOp : Lora_GradOp<"fused_linear_grad"> {
  let summary = "backward of `lora.fused_linear`: `dX = dY·deq(W) + (α/r)·(dY·B)·A`, `dA`, `dB`";
  let description = [{
    One kernel for the input gradient through the (possibly NF4) frozen weight
    and the adapter, and the adapter's weight gradients; the dequantized
    weight is never a buffer. `dx` is optional: `lora-autodiff` leaves it out
    where nothing needs the input's gradient (the q/k/v projections of the
    first layer, whose input comes from a frozen embedding), and the kernel
    then skips `dy·deq(W)` and the adapter's `dx` term.

    ```mlir
    %da, %db = lora.fused_linear_grad %dy, %x, %w, %a, %b {alpha = 32.0 : f64} : (tensor<4x128x256xf32>, tensor<4x128x512xf32>, tensor<256x512xf32>, tensor<16x512xf32>, tensor<256x16xf32>) -> (tensor<16x512xf32>, tensor<256x16xf32>)
    ```
  }];
  let arguments = (ins Lora_FloatTensor:$dy, Lora_FloatTensor:$x,
                       Lora_WeightType:$weight, Lora_FloatTensor:$a,
                       Lora_FloatTensor:$b, Lora_PositiveF64:$alpha,
                       DefaultValuedAttr<F64Attr, "0.0">:$dropout);
  let results = (outs Optional<Lora_FloatTensor>:$dx, Lora_FloatTensor:$da,
                      Lora_FloatTensor:$db);
  let assemblyFormat = "$dy `,` $x `,` $weight `,` $a `,` $b attr-dict `:` functional-type(operands, results)";
}

def Lora_RMSNormGradOp : Lora_GradOp<"rms_norm_grad"> {
  let summary = "gradients of RMSNorm with respect to its input and its scale";
  let arguments = (ins Lora_FloatTensor:$dy, Lora_FloatTensor:$x,
                       Lora_FloatTensor:$weight, Lora_PositiveF64:$eps);
  let results = (outs Lora_FloatTensor:$dx, Lora_FloatTensor:$dweight);
  let assemblyFormat = "$dy `,` $x `,` $weight attr-dict `:` functional-type(operands, results)";
}

def Lora_RopeGradOp : Lora_GradOp<"rope_grad"> {
  let summary = "gradient of RoPE: the inverse rotation of the output gradient";
  let arguments = (ins Lora_FloatTensor:$dy, Lora_IndexTensor:$positions,
                       I64Attr:$head_dim, Lora_PositiveF64:$theta,
                       OptionalAttr<Lora_RopeScalingAttr>:$scaling);
  let results = (outs Lora_FloatTensor:$dx);
  let assemblyFormat = "$dy `,` $positions attr-dict `:` functional-type(operands, results)";
}

def Lora_AttentionWithLseOp : Lora_Op<"attention_with_lse", [Pure]> {
  let summary = "`lora.attention` that also returns each query row's softmax logsumexp";
  let description = [{
    The forward of `lora.attention` (same operands and attributes), with a
    second result `lse` `[batch, num_heads, seq]` f32: `log Σ_j exp(s_ij)`
    over the keys query `i` of head `h` may attend to (`+inf` for a row with
    none). `lora-save-attention-stats` makes it from a forward attention
    whose backward can read its output and `lse` (`saved`), so the backward
    does not recompute the forward.

    ```mlir
    %o, %lse = lora.attention_with_lse %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64} : (tensor<2x64x64xf32>, tensor<2x64x32xf32>, tensor<2x64x32xf32>) -> (tensor<2x64x64xf32>, tensor<2x4x64xf32>)
    ```
  }];
  let arguments = (ins Lora_FloatTensor:$q, Lora_FloatTensor:$k,
                       Lora_FloatTensor:$v,
                       Optional<Lora_IndexTensor>:$segment_ids,
                       I64Attr:$num_heads, I64Attr:$num_kv_heads,
                       I64Attr:$head_dim,
                       OptionalAttr<Lora_PositiveF64>:$scale,
                       OptionalAttr<I64Attr>:$sliding_window);
  let results = (outs Lora_FloatTensor:$result, RankedTensorOf<[F32]>:$lse);
  let assemblyFormat = [{
    $q `,` $k `,` $v (`segments` $segment_ids^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Lora_AttentionGradOp : Lora_GradOp<"attention_grad", [AttrSizedOperandSegments]> {
  let summary = "gradients of causal grouped-query attention: `dq`, `dk`, `dv`";
  let description = [{
    Recomputes the attention probabilities from `q` and `k` block by block
    (FlashAttention's backward): no `[seq, seq]` matrix is kept from the
    forward. Key/value gradients of a GQA group are summed over its query
    heads.

    With `saved(%out, %lse)` (the results of the forward's
    `lora.attention_with_lse`, set by `lora-save-attention-stats`) the row
    statistics come from the forward: `lse` directly and
    `D = rowsum(dout ∘ out)`, where without them the backward first
    recomputes the forward's output (two tile products of the nine).
  }];
  let arguments = (ins Lora_FloatTensor:$dout, Lora_FloatTensor:$q,
                       Lora_FloatTensor:$k, Lora_FloatTensor:$v,
                       Optional<Lora_FloatTensor>:$out,
                       Optional<RankedTensorOf<[F32]>>:$lse,
                       Optional<Lora_IndexTensor>:$segment_ids,
                       I64Attr:$num_heads, I64Attr:$num_kv_heads,
                       I64Attr:$head_dim,
                       OptionalAttr<Lora_PositiveF64>:$scale,
                       OptionalAttr<I64Attr>:$sliding_window);
  let results = (outs Lora_FloatTensor:$dq, Lora_FloatTensor:$dk,
                      Lora_FloatTensor:$dv);
  let assemblyFormat = [{
    $dout `,` $q `,` $k `,` $v (`saved` `(` $out^ `,` $lse `)`)? (`segments` $segment_ids^)? attr-dict `:` functional-type(operands, results)
  }];
}

def Lora_SwiGLUGradOp : Lora_GradOp<"swiglu_grad"> {
  let summary = "gradients of `silu(gate) * up` with respect to both halves";
  let arguments = (ins Lora_FloatTensor:$dy, Lora_FloatTensor:$gate,
                       Lora_FloatTensor:$up);
  let results = (outs Lora_FloatTensor:$dgate, Lora_FloatTensor:$dup);
  let assemblyFormat = "$dy `,` $gate `,` $up attr-dict `:` functional-type(operands, results)";
}

def Lora_EmbeddingGradOp : Lora_GradOp<"embedding_grad"> {
  let summary = "gradient of an embedding table: scatter-add of the rows' gradients";
  let arguments = (ins Lora_FloatTensor:$dy, Lora_IndexTensor:$ids);
  let results = (outs Lora_FloatTensor:$dtable);
  let assemblyFormat = "$dy `,` $ids attr-dict `:` functional-type(operands, results)";
}

def Lora_CrossEntropyGradOp : Lora_GradOp<"cross_entropy_grad"> {
  let summary = "gradient of the summed cross-entropy with respect to the logits";
  let description = [{
    `dlogits = dloss · mask · (softmax(logits) - onehot(target))`.
  }];
  let arguments = (ins Lora_FloatTensor:$logits, Lora_IndexTensor:$targets,
                       Lora_MaskTensor:$mask, Lora_F32Scalar:$dloss);
  let results = (outs Lora_FloatTensor:$dlogits);
  let assemblyFormat = "$logits `,` $targets `,` $mask `,` $dloss attr-dict `:` functional-type(operands, results)";
}

def Lora_SequenceLogProbsGradOp : Lora_GradOp<"sequence_logprobs_grad"> {
  let summary = "gradient of per-sequence log-probabilities with respect to the logits";
  let description = [{
    `dlogits[b, t] = mask · dlogprobs[sequence_ids[b, t]] · (onehot(target) − softmax(logits))`.
  }];
  let arguments = (ins Lora_FloatTensor:$logits, Lora_IndexTensor:$targets,
                       Lora_MaskTensor:$mask, Lora_IndexTensor:$sequence_ids,
                       RankedTensorOf<[F32]>:$dlogprobs);
  let results = (outs Lora_FloatTensor:$dlogits);
  let assemblyFormat = "$logits `,` $targets `,` $mask `,` $sequence_ids `,` $dlogprobs attr-dict `:` functional-type(operands, results)";
}

def Lora_DPOLossGradOp : Lora_GradOp<"dpo_loss_grad"> {
  let summary = "gradient of the summed DPO/IPO loss with respect to the policy log-probabilities";
  let description = [{
    Per pair present, with `h` as in `lora.dpo_loss`: `sigmoid`,
    `dπ_c = −β·σ(−β·h)·dloss`, `dπ_r = −dπ_c`; `ipo`,
    `dπ_c = 2(h − 1/(2β))·dloss`, `dπ_r = −dπ_c`; zero for absent pairs.
  }];
  let arguments = (ins RankedTensorOf<[F32]>:$policy, RankedTensorOf<[F32]>:$reference,
                       Lora_MaskTensor:$pair_mask, Lora_F32Scalar:$dloss,
                       Lora_PositiveF64:$beta, StrAttr:$loss_type);
  let results = (outs RankedTensorOf<[F32]>:$dpolicy);
  let assemblyFormat = "$policy `,` $reference `,` $pair_mask `,` $dloss attr-dict `:` functional-type(operands, results)";
}

def Lora_EWCPenaltyGradOp : Lora_GradOp<"ewc_penalty_grad"> {
  let summary = "gradients of the weighted EWC penalty with respect to the adapter's A and B";
  let description = [{
    With `G = 2 · dloss · count · lambda · F ⊙ ΔW`: `dB = scaling · G · Aᵀ`,
    `dA = scaling · Bᵀ · G`.
  }];
  let arguments = (ins Lora_FloatTensor:$a, Lora_FloatTensor:$b, Lora_FloatTensor:$fisher,
                       Lora_I64Scalar:$count, Lora_F32Scalar:$dloss, F64Attr:$scaling,
                       Lora_PositiveF64:$lambda);
  let results = (outs Lora_FloatTensor:$da, Lora_FloatTensor:$db);
  let assemblyFormat = "$a `,` $b `,` $fisher `,` $count `,` $dloss attr-dict `:` functional-type(operands, results)";
}

def Lora_LMHeadCrossEntropyGradOp : Lora_GradOp<"lm_head_cross_entropy_grad"> {
  let summary = "input gradient of the chunked LM head + cross-entropy";
  let description = [{
    Recomputes each chunk's logits, forms `dlogits` for the chunk and
    multiplies by the weight: `[tokens, vocab]` logits never exist at once.
  }];
  let arguments = (ins Lora_FloatTensor:$x, Lora_FloatTensor:$weight,
                       Lora_IndexTensor:$targets, Lora_MaskTensor:$mask,
                       Lora_F32Scalar:$dloss, I64Attr:$chunk_size);
  let results = (outs Lora_FloatTensor:$dx);
  let assemblyFormat = "$x `,` $weight `,` $targets `,` $mask `,` $dloss attr-dict `:` functional-type(operands, results)";
}

def Lora_LMHeadCrossEntropyWithGradOp : Lora_Op<"lm_head_cross_entropy_with_grad", [Pure]> {
  let summary = "the chunked LM head + cross-entropy and its input gradient in one sweep";
  let description = [{
    `lora.lm_head_cross_entropy` and `lora.lm_head_cross_entropy_grad` of
    the same operands, made one op by `lora-fuse-lm-head-loss` when the
    loss gradient is a constant (`dloss`): each chunk's logits are computed
    once and give both the loss and `dx`, instead of being recomputed by
    the backward. Results: the summed loss, the count, and `dx` with x's type.

    ```mlir
    %loss, %n, %dx = lora.lm_head_cross_entropy_with_grad %h, %w, %t, %m {chunk_size = 1024 : i64, dloss = 1.0 : f64} : (tensor<4x512x4096xbf16>, tensor<32000x4096xbf16>, tensor<4x512xi32>, tensor<4x512xi1>) -> (tensor<f32>, tensor<i64>, tensor<4x512x4096xbf16>)
    ```
  }];
  let arguments = (ins Lora_FloatTensor:$x, Lora_FloatTensor:$weight,
                       Lora_IndexTensor:$targets, Lora_MaskTensor:$mask,
                       I64Attr:$chunk_size, F64Attr:$dloss);
  let results = (outs Lora_F32Scalar:$loss_sum, Lora_I64Scalar:$count,
                      Lora_FloatTensor:$dx);
  let assemblyFormat = "$x `,` $weight `,` $targets `,` $mask attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Lora_LMHeadCrossEntropyGradWOp : Lora_GradOp<"lm_head_cross_entropy_grad_w"> {
  let summary = "weight gradient of the chunked LM head + cross-entropy (full fine-tuning)";
  let arguments = (ins Lora_FloatTensor:$x, Lora_FloatTensor:$weight,
                       Lora_IndexTensor:$targets, Lora_MaskTensor:$mask,
                       Lora_F32Scalar:$dloss, I64Attr:$chunk_size);
  let results = (outs Lora_FloatTensor:$dweight);
  let assemblyFormat = "$x `,` $weight `,` $targets `,` $mask `,` $dloss attr-dict `:` functional-type(operands, results)";
}


//===----------------------------------------------------------------------===//
// Optimizer ops
//===----------------------------------------------------------------------===//

def Lora_AccumulateOp : Lora_Op<"accumulate", [Pure]> {
  let summary = "adds a gradient (any float type) into a float32 accumulator";
  let description = [{
    `result = acc + f32(value)`: gradients of the micro-batches of one
    optimizer step are summed in float32, whatever the compute dtype.

    ```mlir
    %g2 = lora.accumulate %acc, %g : (tensor<16x64xf32>, tensor<16x64xbf16>) -> tensor<16x64xf32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[F32]>:$acc, Lora_FloatTensor:$value);
  let results = (outs RankedTensorOf<[F32]>:$result);
  let assemblyFormat = "$acc `,` $value attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Lora_AssignOp : Lora_Op<"assign"> {
  let summary = "writes a value into the persistent storage of a named parameter or state";
  let description = [{
    The persistent tensors (parameters, optimizer state, gradient
    accumulators) are read with `lora.param` and written with `lora.assign`.
    A program reads every name before it assigns it, so the order of effects
    is the order of the ops.

    ```mlir
    lora.assign "grad/base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", %g2 : tensor<16x64xf32>
    ```
  }];
  let arguments = (ins StrAttr:$name, Lora_FloatTensor:$value);
  let assemblyFormat = "$name `,` $value attr-dict `:` type($value)";
  let hasVerifier = 1;
}

def Lora_ResetOp : Lora_Op<"reset"> {
  let summary = "sets the persistent storage of a named state to zero";
  let description = [{
    ```mlir
    lora.reset "optimizer.token_count" : tensor<f32>
    ```
  }];
  let arguments = (ins StrAttr:$name, TypeAttr:$storage_type);
  let assemblyFormat = "$name attr-dict `:` $storage_type";
  let hasVerifier = 1;
}

def Lora_GlobalNormOp : Lora_Op<"global_norm", [Pure]> {
  let summary = "the L2 norm of several tensors taken together";
  let description = [{
    `sqrt(Σ_i Σ g_i²)`, accumulated in float32: the global gradient norm used
    for clipping.
  }];
  let arguments = (ins Variadic<Lora_FloatTensor>:$inputs);
  let results = (outs Lora_F32Scalar:$norm);
  let assemblyFormat = "$inputs attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Lora_ClipScaleOp : Lora_Op<"clip_scale", [Pure]> {
  let summary = "the factor that normalises summed gradients by the token count and clips their norm";
  let description = [{
    Gradients are sums over the target tokens of the accumulated batch. With
    `n = count` and `norm` the global norm of the sums:
    `scale = min(1, max_norm / (norm / n + 1e-6)) / n` (no clipping when
    `max_norm` is 0). Multiplying the summed gradients by `scale` gives the
    gradient of the mean loss over all target tokens, clipped.
  }];
  let arguments = (ins Lora_F32Scalar:$norm, Lora_F32Scalar:$count,
                       F64Attr:$max_norm);
  let results = (outs Lora_F32Scalar:$scale);
  let assemblyFormat = "$norm `,` $count attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Lora_AdamWOp : Lora_Op<"adamw", [Pure]> {
  let summary = "one AdamW update of a float32 master weight and its moments";
  let description = [{
    With `g = scale · grad` and bias corrections at step `t` (1-based):
    `m' = β1·m + (1-β1)·g`, `v' = β2·v + (1-β2)·g²`,
    `p' = p − lr·(m'/(1-β1ᵗ) / (sqrt(v'/(1-β2ᵗ)) + eps) + weight_decay·p)`
    (decoupled weight decay, Loshchilov & Hutter). All float32.
  }];
  let arguments = (ins RankedTensorOf<[F32]>:$param, RankedTensorOf<[F32]>:$grad,
                       RankedTensorOf<[F32]>:$m, RankedTensorOf<[F32]>:$v,
                       Lora_F32Scalar:$lr, Lora_F32Scalar:$step,
                       Lora_F32Scalar:$scale,
                       F64Attr:$beta1, F64Attr:$beta2, F64Attr:$eps,
                       F64Attr:$weight_decay);
  let results = (outs RankedTensorOf<[F32]>:$new_param,
                      RankedTensorOf<[F32]>:$new_m,
                      RankedTensorOf<[F32]>:$new_v);
  let assemblyFormat = [{
    $param `,` $grad `,` $m `,` $v `,` $lr `,` $step `,` $scale attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Lora_CastOp : Lora_Op<"cast", [Pure]> {
  let summary = "converts a float tensor to another float element type (round to nearest even)";
  let arguments = (ins Lora_FloatTensor:$input);
  let results = (outs Lora_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Data-parallel collectives (lora-data-parallel)
//===----------------------------------------------------------------------===//

def Lora_AllReduceSumOp : Lora_Op<"all_reduce_sum"> {
  let summary = "sums a float32 tensor over the ranks of a data-parallel run";
  let description = [{
    Every rank gets the sum of every rank's `input` (blocking). With one
    rank it is the identity. `lora-data-parallel` sums the optimizer step's
    token count with it, so that the gradients are normalised by the target
    tokens of all ranks.

    ```mlir
    %all = lora.all_reduce_sum %count : (tensor<f32>) -> tensor<f32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[F32]>:$input);
  let results = (outs RankedTensorOf<[F32]>:$result);
  let assemblyFormat = "$input attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Lora_GradAllReduceStartOp : Lora_Op<"grad_all_reduce_start"> {
  let summary = "starts summing a bucket of gradient accumulators over the ranks";
  let description = [{
    When `sync` is not 0, starts the all-reduce (sum, in place) of the
    persistent float32 accumulators `names` and returns at once, so that
    communication overlaps the rest of the backward; the matching
    `lora.grad_all_reduce_wait` of the same `bucket` ends it. When `sync` is
    0 (a micro-batch that is not the last of its optimizer step) it does
    nothing. `bytes` is the bucket's size.

    ```mlir
    lora.grad_all_reduce_start ["grad/a", "grad/b"] sync(%sync) {bucket = 0 : i64, bytes = 8192 : i64} : tensor<f32>
    ```
  }];
  let arguments = (ins Lora_F32Scalar:$sync, StrArrayAttr:$names,
                       I64Attr:$bucket, I64Attr:$bytes);
  let assemblyFormat = "$names `sync` `(` $sync `)` attr-dict `:` type($sync)";
  let hasVerifier = 1;
}

def Lora_GradAllReduceWaitOp : Lora_Op<"grad_all_reduce_wait"> {
  let summary = "waits for a bucket's gradient all-reduce";
  let description = [{
    Returns when the all-reduce that `lora.grad_all_reduce_start` began for
    `bucket` has summed the accumulators `names` on this rank (at once when
    none was started). Reads of the accumulators come after it.

    ```mlir
    lora.grad_all_reduce_wait ["grad/a", "grad/b"] {bucket = 0 : i64, bytes = 8192 : i64}
    ```
  }];
  let arguments = (ins StrArrayAttr:$names, I64Attr:$bucket, I64Attr:$bytes);
  let assemblyFormat = "$names attr-dict";
  let hasVerifier = 1;
}

#endif // LORA_TRAINING_OPS_TD
