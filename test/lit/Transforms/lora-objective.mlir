// RUN: lorac-opt %s -lora-objective | FileCheck %s
// RUN: lorac-opt %s -lora-objective="objective=pretrain" | FileCheck %s --check-prefix=PRETRAIN
// Negative cases.
// RUN: not lorac-opt %s -lora-objective="objective=dpo" 2>&1 | FileCheck %s --check-prefix=DPO
// RUN: not lorac-opt %s -lora-objective="objective=rlhf" 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not lorac-opt %s -lora-objective -lora-objective 2>&1 | FileCheck %s --check-prefix=TWICE
// RUN: not lorac-opt %s -lora-objective="function=missing" 2>&1 | FileCheck %s --check-prefix=NOFN
// RUN: echo 'func.func @forward(%%x: tensor<2x4xf32>) -> tensor<2x4xf32> { return %%x : tensor<2x4xf32> }' > %t.nologits.mlir
// RUN: not lorac-opt %t.nologits.mlir -lora-objective 2>&1 | FileCheck %s --check-prefix=NOLOGITS

// SFT: targets and the loss mask become inputs; the function returns the
// summed loss and the number of target tokens.
// CHECK-LABEL: func.func @forward
// CHECK-SAME: %[[TGT:[a-z0-9]+]]: tensor<2x8xi32> {lora.input = "targets"}, %[[MASK:[a-z0-9]+]]: tensor<2x8xi1> {lora.input = "loss_mask"}) -> (tensor<f32> {lora.output = "loss_sum"}, tensor<i64> {lora.output = "count"})
// CHECK-SAME: attributes {lora.objective = "sft"}
// CHECK: %[[LOGITS:.*]] = lora.lm_head
// CHECK: %[[L:.*]], %[[N:.*]] = lora.cross_entropy %[[LOGITS]], %[[TGT]], %[[MASK]] : (tensor<2x8x100xf32>, tensor<2x8xi32>, tensor<2x8xi1>) -> (tensor<f32>, tensor<i64>)
// CHECK: return %[[L]], %[[N]] : tensor<f32>, tensor<i64>

// Pretraining builds the same graph (the runtime marks every real token).
// PRETRAIN: attributes {lora.objective = "pretrain"}
// PRETRAIN: lora.cross_entropy

// DPO: error: objective 'dpo' is not implemented yet
// BAD: error: option 'objective' must be sft or pretrain, got 'rlhf'
// TWICE: error: 'func.func' op already has an objective ("sft")
// NOFN: error: no function @missing to attach the objective to
// NOLOGITS: error: 'func.func' op must return the logits of a lora.lm_head

module {
  func.func @forward(%tokens: tensor<2x8xi32> {lora.input = "tokens"}, %pos: tensor<2x8xi32> {lora.input = "positions"}) -> tensor<2x8x100xf32> {
    %e = lora.param "model.embed_tokens.weight" frozen : tensor<100x64xf32>
    %h = lora.embedding %e, %tokens : (tensor<100x64xf32>, tensor<2x8xi32>) -> tensor<2x8x64xf32>
    %l = lora.lm_head %h, %e : (tensor<2x8x64xf32>, tensor<100x64xf32>) -> tensor<2x8x100xf32>
    return %l : tensor<2x8x100xf32>
  }
}
