// RUN: lorac-opt %s -lora-logits-program | FileCheck %s
// Negative cases.
// RUN: not lorac-opt %s -lora-logits-program -lora-logits-program 2>&1 | FileCheck %s --check-prefix=TWICE
// RUN: lorac-opt %s -lora-objective | not lorac-opt -lora-logits-program 2>&1 | FileCheck %s --check-prefix=AFTER
// RUN: echo 'module {}' > %t.empty.mlir
// RUN: not lorac-opt %t.empty.mlir -lora-logits-program 2>&1 | FileCheck %s --check-prefix=NOFWD

// @forward is kept; @logits_step takes the position whose next token is
// wanted and computes [batch, 1, vocab] logits only.
// CHECK-LABEL: func.func @forward
// CHECK: lora.lm_head {{.*}} -> tensor<2x8x100xf32>
// CHECK-LABEL: func.func @logits_step
// CHECK-SAME: %[[LAST:[a-z0-9]+]]: tensor<2xi32> {lora.input = "last_index"}) -> (tensor<2x1x100xf32> {lora.output = "logits"})
// CHECK: %[[ROW:.*]] = lora.select_rows %{{.*}}, %[[LAST]] : (tensor<2x8x64xf32>, tensor<2xi32>) -> tensor<2x1x64xf32>
// CHECK: %[[L:.*]] = lora.lm_head %[[ROW]], %{{.*}} : (tensor<2x1x64xf32>, tensor<100x64xf32>) -> tensor<2x1x100xf32>
// CHECK: return %[[L]]

// TWICE: error: the module already has @logits_step
// AFTER: error: 'func.func' op must return the logits of a lora.lm_head (run lora-logits-program before lora-objective)
// NOFWD: error: no @forward to derive @logits_step from

module {
  func.func @forward(%tokens: tensor<2x8xi32> {lora.input = "tokens"}, %pos: tensor<2x8xi32> {lora.input = "positions"}) -> tensor<2x8x100xf32> {
    %e = lora.param "model.embed_tokens.weight" frozen : tensor<100x64xf32>
    %h = lora.embedding %e, %tokens : (tensor<100x64xf32>, tensor<2x8xi32>) -> tensor<2x8x64xf32>
    %l = lora.lm_head %h, %e : (tensor<2x8x64xf32>, tensor<100x64xf32>) -> tensor<2x8x100xf32>
    return %l : tensor<2x8x100xf32>
  }
}
