// RUN: lorac-opt %s -split-input-file -lora-objective | FileCheck %s
// RUN: lorac-opt %s -split-input-file -lora-objective="objective=pretrain" | FileCheck %s --check-prefix=PRETRAIN
// Negative cases.
// RUN: lorac-opt %s -split-input-file -lora-objective="objective=dpo beta=0.25 loss-type=ipo" | FileCheck %s --check-prefix=DPO
// RUN: lorac-opt %s -split-input-file -lora-objective="objective=dpo replay-weight=0.5" | FileCheck %s --check-prefix=REPLAY
// RUN: not lorac-opt %s -split-input-file -lora-objective="objective=dpo loss-type=kto" 2>&1 | FileCheck %s --check-prefix=DPOBAD
// RUN: echo 'module { func.func @forward(%%tokens: tensor<2x8xi32> {lora.input = "tokens"}, %%pos: tensor<2x8xi32> {lora.input = "positions"}) -> tensor<2x8x100xf32> { %%e = lora.param "model.embed_tokens.weight" frozen : tensor<100x64xf32> %%a = lora.param "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" trainable : tensor<4x64xf32> %%b = lora.param "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight" trainable : tensor<64x4xf32> %%h = lora.embedding %%e, %%tokens : (tensor<100x64xf32>, tensor<2x8xi32>) -> tensor<2x8x64xf32> %%d = lora.adapter %%h, %%a, %%b {alpha = 8.0 : f64, dropout = 0.0 : f64} : (tensor<2x8x64xf32>, tensor<4x64xf32>, tensor<64x4xf32>) -> tensor<2x8x64xf32> %%l = lora.lm_head %%d, %%e : (tensor<2x8x64xf32>, tensor<100x64xf32>) -> tensor<2x8x100xf32> return %%l : tensor<2x8x100xf32> } }' > %t.use.mlir
// RUN: not lorac-opt %t.use.mlir -lora-objective="objective=dpo" 2>&1 | FileCheck %s --check-prefix=DPOUSE
// RUN: not lorac-opt %s -split-input-file -lora-objective="objective=rlhf" 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not lorac-opt %s -split-input-file -lora-objective -lora-objective 2>&1 | FileCheck %s --check-prefix=TWICE
// RUN: not lorac-opt %s -split-input-file -lora-objective="function=missing" 2>&1 | FileCheck %s --check-prefix=NOFN
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

// Direct preference optimization: policy log-probabilities from the
// forward graph, the reference's from its clone without the adapter (the
// same parameters: no second lora.param), and the pairs' loss with its
// metrics as outputs.
// DPO-LABEL: func.func @forward
// DPO-SAME: {lora.input = "targets"}, %[[MASK:[a-z0-9]+]]: tensor<2x8xi1> {lora.input = "loss_mask"}, %[[SEQ:[a-z0-9]+]]: tensor<2x8xi32> {lora.input = "sequence_ids"}, %[[PAIRS:[a-z0-9]+]]: tensor<2xi1> {lora.input = "pair_mask"})
// DPO-SAME: -> (tensor<f32> {lora.output = "loss_sum"}, tensor<i64> {lora.output = "count"}, tensor<f32> {lora.output = "chosen_rewards"}, tensor<f32> {lora.output = "rejected_rewards"}, tensor<f32> {lora.output = "accuracy"}, tensor<f32> {lora.output = "margin"})
// DPO-SAME: attributes {lora.objective = "dpo"}
// DPO: %[[Y:.*]] = lora.linear %{{.*}}, %[[W:[a-z0-9]+]]
// DPO: %[[D:.*]] = lora.adapter
// DPO: %[[S:.*]] = lora.add %[[Y]], %[[D]]
// DPO: %[[LOGITS:.*]] = lora.lm_head %[[S]]
// The reference pass: the linear layer again, no adapter, no add.
// DPO: %[[RY:.*]] = lora.linear %{{.*}}, %[[W]]
// DPO-NOT: lora.adapter
// DPO-NOT: lora.param
// DPO: %[[RLOGITS:.*]] = lora.lm_head %[[RY]]
// DPO: %[[POL:.*]] = lora.sequence_logprobs %[[LOGITS]], %{{.*}}, %[[MASK]], %[[SEQ]] {num_sequences = 4 : i64}
// DPO: %[[REF:.*]] = lora.sequence_logprobs %[[RLOGITS]], %{{.*}}, %[[MASK]], %[[SEQ]] {num_sequences = 4 : i64}
// DPO: lora.dpo_loss %[[POL]], %[[REF]], %[[PAIRS]] {beta = 2.500000e-01 : f64, loss_type = "ipo"}
// DPO with replay: a replay_mask input, the policy's cross-entropy on it
// weighted into the loss, and its sum and count as outputs.
// REPLAY-LABEL: func.func @forward
// REPLAY-SAME: %[[PAIRS:[a-z0-9]+]]: tensor<2xi1> {lora.input = "pair_mask"}, %[[RM:[a-z0-9]+]]: tensor<2x8xi1> {lora.input = "replay_mask"})
// REPLAY-SAME: tensor<f32> {lora.output = "replay_loss_sum"}, tensor<i64> {lora.output = "replay_count"})
// REPLAY: %[[L:.*]], %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} = lora.dpo_loss
// REPLAY: %[[CE:.*]], %[[N:.*]] = lora.cross_entropy %{{.*}}, %{{.*}}, %[[RM]]
// REPLAY: %[[R:.*]] = lora.replay_loss %[[CE]], %[[N]], %[[PAIRS]] {weight = 5.000000e-01 : f64}
// REPLAY: %[[T:.*]] = lora.add %[[L]], %[[R]]
// REPLAY: return %[[T]],

// Negative: an adapter whose output is not simply added to its linear
// layer's cannot be dropped from the reference pass.
// DPOUSE: error: 'lora.adapter' op dpo: an adapter's output must only be added to its linear layer's
// DPOBAD: error: dpo: option 'loss-type' must be sigmoid or ipo, got 'kto'
// BAD: error: option 'objective' must be sft, pretrain or dpo, got 'rlhf'
// TWICE: error: 'func.func' op already has an objective ("sft")
// NOFN: error: no function @missing to attach the objective to
// NOLOGITS: error: 'func.func' op must return the logits of a lora.lm_head

module {
  func.func @forward(%tokens: tensor<2x8xi32> {lora.input = "tokens"}, %pos: tensor<2x8xi32> {lora.input = "positions"}) -> tensor<2x8x100xf32> {
    %e = lora.param "model.embed_tokens.weight" frozen : tensor<100x64xf32>
    %w = lora.param "model.layers.0.self_attn.q_proj.weight" frozen : tensor<64x64xf32>
    %a = lora.param "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" trainable : tensor<4x64xf32>
    %h = lora.embedding %e, %tokens : (tensor<100x64xf32>, tensor<2x8xi32>) -> tensor<2x8x64xf32>
    %y = lora.linear %h, %w : (tensor<2x8x64xf32>, tensor<64x64xf32>) -> tensor<2x8x64xf32>
    %b = lora.param "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight" trainable : tensor<64x4xf32>
    %d = lora.adapter %h, %a, %b {alpha = 8.0 : f64, dropout = 0.0 : f64} : (tensor<2x8x64xf32>, tensor<4x64xf32>, tensor<64x4xf32>) -> tensor<2x8x64xf32>
    %s = lora.add %y, %d : (tensor<2x8x64xf32>, tensor<2x8x64xf32>) -> tensor<2x8x64xf32>
    %l = lora.lm_head %s, %e : (tensor<2x8x64xf32>, tensor<100x64xf32>) -> tensor<2x8x100xf32>
    return %l : tensor<2x8x100xf32>
  }
}

// -----

module {
  func.func @forward(%tokens: tensor<2x8xi32> {lora.input = "tokens"}, %pos: tensor<2x8xi32> {lora.input = "positions"}) -> tensor<2x8x100xf32> {
    %e = lora.param "model.embed_tokens.weight" frozen : tensor<100x64xf32>
    %h = lora.embedding %e, %tokens : (tensor<100x64xf32>, tensor<2x8xi32>) -> tensor<2x8x64xf32>
    %l = lora.lm_head %h, %e : (tensor<2x8x64xf32>, tensor<100x64xf32>) -> tensor<2x8x100xf32>
    return %l : tensor<2x8x100xf32>
  }
}
