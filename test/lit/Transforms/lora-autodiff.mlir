// RUN: lorac-opt %s -split-input-file -lora-autodiff | FileCheck %s
// RUN: not lorac-opt %s -split-input-file -lora-autodiff="train=full" 2>&1 | FileCheck %s --check-prefix=FULL
// Negative cases.
// RUN: not lorac-opt %s -split-input-file -lora-autodiff="train=some" 2>&1 | FileCheck %s --check-prefix=TRAIN
// RUN: not lorac-opt %s -split-input-file -lora-autodiff -lora-autodiff="function=eval_step" 2>&1 | FileCheck %s --check-prefix=TWICE
// RUN: echo 'func.func @forward(%%x: tensor<2x4xf32>) -> tensor<2x4xf32> { return %%x : tensor<2x4xf32> }' > %t.noloss.mlir
// RUN: not lorac-opt %t.noloss.mlir -lora-autodiff 2>&1 | FileCheck %s --check-prefix=NOLOSS

// A one-layer model: embedding, RMSNorm, a linear layer with a LoRA adapter
// whose output feeds the residual twice (so gradients accumulate), an
// NF4-quantized frozen linear, and a tied LM head with cross-entropy.

// The forward graph is kept as @eval_step.
// CHECK-LABEL: func.func @eval_step
// CHECK-NOT: lora.scalar
// CHECK: return

// CHECK-LABEL: func.func @train_step
// CHECK-SAME: -> (tensor<f32>, tensor<i64>, tensor<4x64xf32> {lora.grad_of = "a"}, tensor<64x4xf32> {lora.grad_of = "b"})
// CHECK: %[[X:.*]] = lora.rms_norm
// CHECK: %[[D:.*]] = lora.adapter %[[X]], %[[A:.*]], %[[B:.*]] {alpha = 8.000000e+00 : f64}
// CHECK: %[[SEED:.*]] = lora.scalar 1.000000e+00 : tensor<f32>
// The loss gradient, then the LM head's input gradient (the tied table is frozen: no weight gradient).
// CHECK: %[[DL:.*]] = lora.cross_entropy_grad %{{.*}}, %{{.*}}, %{{.*}}, %[[SEED]]
// CHECK: %[[DH:.*]] = lora.linear_grad_x %[[DL]], %{{.*}} : (tensor<2x8x100xf32>, tensor<100x64xf32>) -> tensor<2x8x64xf32>
// Input gradient through the NF4 weight (dequantized in the kernel).
// CHECK: lora.linear_grad_x %{{.*}}, %{{.*}} : (tensor<2x8x64xf32>, !lora.nf4<64x64, block_size = 64, double_quant = 256>) -> tensor<2x8x64xf32>
// Two uses of the adapter output: their gradients are summed.
// CHECK: %[[DSUM:.*]] = lora.add
// Nothing below the adapter is trained (x comes from a frozen norm over a
// frozen embedding): its gradient op has no dx result.
// CHECK: %[[DA:.*]], %[[DB:.*]] = lora.adapter_grad %[[DSUM]], %[[X]], %[[A]], %[[B]] {alpha = 8.000000e+00 : f64} : ({{.*}}) -> (tensor<4x64xf32>, tensor<64x4xf32>)
// No gradient for frozen weights, nor below the first trainable value.
// CHECK-NOT: lora.linear_grad_w
// CHECK-NOT: lora.embedding_grad
// CHECK-NOT: lora.rms_norm_grad
// CHECK: return %{{.*}}, %{{.*}}, %[[DA]], %[[DB]]

// Full fine-tuning refuses NF4 weights (first split)...
// FULL: error: 'lora.param' op parameter 'w_nf4' is NF4-quantized and cannot be fully trained

// TRAIN: error: option 'train' must be lora or full, got 'some'
// TWICE: error: the module already has @train_step
// NOLOSS: error: 'func.func' op must return the summed loss (tensor<f32>) first: run lora-objective before lora-autodiff

module {
  func.func @forward(%tokens: tensor<2x8xi32> {lora.input = "tokens"}, %t: tensor<2x8xi32> {lora.input = "targets"}, %m: tensor<2x8xi1> {lora.input = "loss_mask"}) -> (tensor<f32>, tensor<i64>) attributes {lora.objective = "sft"} {
    %e = lora.param "embed" frozen : tensor<100x64xf32>
    %h = lora.embedding %e, %tokens : (tensor<100x64xf32>, tensor<2x8xi32>) -> tensor<2x8x64xf32>
    %nw = lora.param "norm" frozen : tensor<64xf32>
    %x = lora.rms_norm %h, %nw {eps = 1.0e-05 : f64} : (tensor<2x8x64xf32>, tensor<64xf32>) -> tensor<2x8x64xf32>
    %w = lora.param "w" frozen : tensor<64x64xf32>
    %y = lora.linear %x, %w : (tensor<2x8x64xf32>, tensor<64x64xf32>) -> tensor<2x8x64xf32>
    %a = lora.param "a" trainable : tensor<4x64xf32>
    %b = lora.param "b" trainable : tensor<64x4xf32>
    %d = lora.adapter %x, %a, %b {alpha = 8.0 : f64} : (tensor<2x8x64xf32>, tensor<4x64xf32>, tensor<64x4xf32>) -> tensor<2x8x64xf32>
    %y2 = lora.add %y, %d : (tensor<2x8x64xf32>, tensor<2x8x64xf32>) -> tensor<2x8x64xf32>
    %q = lora.param "w_nf4" frozen : !lora.nf4<64x64, block_size = 64, double_quant = 256>
    %z = lora.fused_linear %y2, %q : (tensor<2x8x64xf32>, !lora.nf4<64x64, block_size = 64, double_quant = 256>) -> tensor<2x8x64xf32>
    %r = lora.add %z, %y2 : (tensor<2x8x64xf32>, tensor<2x8x64xf32>) -> tensor<2x8x64xf32>
    %logits = lora.lm_head %r, %e : (tensor<2x8x64xf32>, tensor<100x64xf32>) -> tensor<2x8x100xf32>
    %loss, %n = lora.cross_entropy %logits, %t, %m : (tensor<2x8x100xf32>, tensor<2x8xi32>, tensor<2x8xi1>) -> (tensor<f32>, tensor<i64>)
    return %loss, %n : tensor<f32>, tensor<i64>
  }
}

// -----

// ...and makes every float weight trainable: weight gradients for the linear
// layer, the norm and the (tied, hence summed) embedding table.
// CHECK-LABEL: func.func @train_step
// CHECK-SAME: -> (tensor<f32>, tensor<i64>, tensor<2x64xf32> {lora.grad_of = "a2"}, tensor<64x2xf32> {lora.grad_of = "b2"})
// FULL-LABEL: func.func @train_step
// FULL-SAME: {lora.grad_of = "embed"}, tensor<64xf32> {lora.grad_of = "norm"}, tensor<64x64xf32> {lora.grad_of = "w"}, tensor<2x64xf32> {lora.grad_of = "a2"}, tensor<64x2xf32> {lora.grad_of = "b2"})
// FULL: lora.param "embed" trainable
// FULL: %[[SEED:.*]] = lora.scalar
// FULL: %[[DL:.*]] = lora.cross_entropy_grad
// FULL: %[[DX:.*]] = lora.linear_grad_x %[[DL]]
// FULL: %[[DW_HEAD:.*]] = lora.linear_grad_w %[[DL]], %{{.*}} : (tensor<2x8x100xf32>, tensor<2x8x64xf32>) -> tensor<100x64xf32>
// FULL: lora.adapter_grad %[[DX]]
// FULL: lora.linear_grad_w %[[DX]], %{{.*}} : (tensor<2x8x64xf32>, tensor<2x8x64xf32>) -> tensor<64x64xf32>
// FULL: %{{.*}}, %[[DN:.*]] = lora.rms_norm_grad
// FULL: %[[DE:.*]] = lora.embedding_grad %{{.*}}, %{{.*}} : (tensor<2x8x64xf32>, tensor<2x8xi32>) -> tensor<100x64xf32>
// The embedding table is used twice (tied head): its gradients are summed.
// FULL: %[[DT:.*]] = lora.add %[[DW_HEAD]], %[[DE]]
// FULL: return %{{.*}}, %{{.*}}, %[[DT]], %[[DN]], %{{.*}}, %{{.*}}, %{{.*}}
module {
  func.func @forward(%tokens: tensor<2x8xi32> {lora.input = "tokens"}, %t: tensor<2x8xi32> {lora.input = "targets"}, %m: tensor<2x8xi1> {lora.input = "loss_mask"}) -> (tensor<f32>, tensor<i64>) attributes {lora.objective = "sft"} {
    %e = lora.param "embed" frozen : tensor<100x64xf32>
    %h = lora.embedding %e, %tokens : (tensor<100x64xf32>, tensor<2x8xi32>) -> tensor<2x8x64xf32>
    %nw = lora.param "norm" frozen : tensor<64xf32>
    %x = lora.rms_norm %h, %nw {eps = 1.0e-05 : f64} : (tensor<2x8x64xf32>, tensor<64xf32>) -> tensor<2x8x64xf32>
    %w = lora.param "w" frozen : tensor<64x64xf32>
    %y = lora.linear %x, %w : (tensor<2x8x64xf32>, tensor<64x64xf32>) -> tensor<2x8x64xf32>
    %a2 = lora.param "a2" trainable : tensor<2x64xf32>
    %b2 = lora.param "b2" trainable : tensor<64x2xf32>
    %d = lora.adapter %x, %a2, %b2 {alpha = 2.0 : f64} : (tensor<2x8x64xf32>, tensor<2x64xf32>, tensor<64x2xf32>) -> tensor<2x8x64xf32>
    %y2 = lora.add %y, %d : (tensor<2x8x64xf32>, tensor<2x8x64xf32>) -> tensor<2x8x64xf32>
    %logits = lora.lm_head %y2, %e : (tensor<2x8x64xf32>, tensor<100x64xf32>) -> tensor<2x8x100xf32>
    %loss, %n = lora.cross_entropy %logits, %t, %m : (tensor<2x8x100xf32>, tensor<2x8xi32>, tensor<2x8xi1>) -> (tensor<f32>, tensor<i64>)
    return %loss, %n : tensor<f32>, tensor<i64>
  }
}

// -----

// Two fused layers with adapters: the first one's input gradient is not
// wanted (no dx result: its kernel skips dy·W and the adapter's dx term);
// the second one's flows into the first, so it keeps its dx.
// CHECK-LABEL: func.func @train_step
// CHECK: %[[DX2:.*]], %[[DA2:.*]], %[[DB2:.*]] = lora.fused_linear_grad %{{.*}}, %[[H1:.*]], %{{.*}}, %{{.*}}, %{{.*}} {alpha = 8.000000e+00 : f64} : ({{.*}}) -> (tensor<2x8x64xf32>, tensor<4x64xf32>, tensor<64x4xf32>)
// CHECK: %[[DA1:.*]], %[[DB1:.*]] = lora.fused_linear_grad %[[DX2]], %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} {alpha = 8.000000e+00 : f64} : ({{.*}}) -> (tensor<4x64xf32>, tensor<64x4xf32>)
// CHECK: return %{{.*}}, %{{.*}}, %[[DA1]], %[[DB1]], %[[DA2]], %[[DB2]]
// FULL-LABEL: func.func @train_step
module {
  func.func @forward(%tokens: tensor<2x8xi32> {lora.input = "tokens"}, %t: tensor<2x8xi32> {lora.input = "targets"}, %m: tensor<2x8xi1> {lora.input = "loss_mask"}) -> (tensor<f32>, tensor<i64>) attributes {lora.objective = "sft"} {
    %e = lora.param "embed" frozen : tensor<100x64xf32>
    %x = lora.embedding %e, %tokens : (tensor<100x64xf32>, tensor<2x8xi32>) -> tensor<2x8x64xf32>
    %w1 = lora.param "w1" frozen : tensor<64x64xf32>
    %a1 = lora.param "a1" trainable : tensor<4x64xf32>
    %b1 = lora.param "b1" trainable : tensor<64x4xf32>
    %h1 = lora.fused_linear %x, %w1 adapter(%a1, %b1) {alpha = 8.0 : f64} : (tensor<2x8x64xf32>, tensor<64x64xf32>, tensor<4x64xf32>, tensor<64x4xf32>) -> tensor<2x8x64xf32>
    %w2 = lora.param "w2" frozen : tensor<64x64xf32>
    %a2 = lora.param "a2" trainable : tensor<4x64xf32>
    %b2 = lora.param "b2" trainable : tensor<64x4xf32>
    %h2 = lora.fused_linear %h1, %w2 adapter(%a2, %b2) {alpha = 8.0 : f64} : (tensor<2x8x64xf32>, tensor<64x64xf32>, tensor<4x64xf32>, tensor<64x4xf32>) -> tensor<2x8x64xf32>
    %logits = lora.lm_head %h2, %e : (tensor<2x8x64xf32>, tensor<100x64xf32>) -> tensor<2x8x100xf32>
    %loss, %n = lora.cross_entropy %logits, %t, %m : (tensor<2x8x100xf32>, tensor<2x8xi32>, tensor<2x8xi1>) -> (tensor<f32>, tensor<i64>)
    return %loss, %n : tensor<f32>, tensor<i64>
  }
}
