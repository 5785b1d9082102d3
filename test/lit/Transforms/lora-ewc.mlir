// RUN: lorac-opt %s -split-input-file -lora-ewc="lambda=100" | FileCheck %s
// Negative cases.
// RUN: not lorac-opt %s -split-input-file -lora-ewc="lambda=0" 2>&1 | FileCheck %s --check-prefix=LAMBDA
// RUN: echo 'func.func @forward(%%l: tensor<f32>, %%c: tensor<i64>) -> (tensor<f32>, tensor<i64>) { return %%l, %%c : tensor<f32>, tensor<i64> }' > %t.noadapter.mlir
// RUN: not lorac-opt %t.noadapter.mlir -lora-ewc 2>&1 | FileCheck %s --check-prefix=NOADAPTER
// RUN: not lorac-opt %s -split-input-file -lora-ewc="function=missing" 2>&1 | FileCheck %s --check-prefix=NOFN

// Every adapter's update, on a dense and on an NF4 base weight, gets its
// Fisher parameter (named after the weight) and a penalty; their weighted sum
// joins the loss, the plain sum is the new output ewc_penalty.
// CHECK-LABEL: func.func @forward
// CHECK-SAME: -> (tensor<f32> {lora.output = "loss_sum"}, tensor<i64> {lora.output = "count"}, tensor<f32> {lora.output = "ewc_penalty"})
// CHECK: %[[L:[a-z0-9_]+]], %[[N:[a-z0-9_]+]] = lora.cross_entropy
// CHECK: %[[F0:.*]] = lora.param "ewc.fisher/model.layers.0.self_attn.q_proj.weight" frozen init(fisher) {of = "model.layers.0.self_attn.q_proj.weight"} : tensor<64x64xf32>
// CHECK: %[[W0:.*]], %[[P0:.*]] = lora.ewc_penalty %{{.*}}, %{{.*}}, %[[F0]], %[[N]] {lambda = 1.000000e+02 : f64, scaling = 2.000000e+00 : f64}
// CHECK: %[[T0:.*]] = lora.add %[[L]], %[[W0]]
// CHECK: %[[F1:.*]] = lora.param "ewc.fisher/model.layers.0.mlp.up_proj.weight" frozen init(fisher) {of = "model.layers.0.mlp.up_proj.weight"} : tensor<128x64xf32>
// CHECK: %[[W1:.*]], %[[P1:.*]] = lora.ewc_penalty %{{.*}}, %{{.*}}, %[[F1]], %[[N]]
// CHECK: %[[T1:.*]] = lora.add %[[T0]], %[[W1]]
// CHECK: %[[P:.*]] = lora.add %[[P0]], %[[P1]]
// CHECK: return %[[T1]], %[[N]], %[[P]]

// LAMBDA: error: option 'lambda' must be positive, got 0
// NOADAPTER: error: 'func.func' op has no adapters: the EWC penalty acts on LoRA updates
// NOFN: error: no function @missing to add the EWC penalty to

func.func @forward(%x: tensor<2x8x64xf32>, %t: tensor<2x8xi32> {lora.input = "targets"}, %m: tensor<2x8xi1> {lora.input = "loss_mask"}) -> (tensor<f32> {lora.output = "loss_sum"}, tensor<i64> {lora.output = "count"}) {
  %w = lora.param "model.layers.0.self_attn.q_proj.weight" frozen : tensor<64x64xf32>
  %a = lora.param "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" trainable : tensor<4x64xf32>
  %b = lora.param "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight" trainable : tensor<64x4xf32>
  %y = lora.linear %x, %w : (tensor<2x8x64xf32>, tensor<64x64xf32>) -> tensor<2x8x64xf32>
  %d = lora.adapter %x, %a, %b {alpha = 8.0 : f64, dropout = 0.0 : f64} : (tensor<2x8x64xf32>, tensor<4x64xf32>, tensor<64x4xf32>) -> tensor<2x8x64xf32>
  %s = lora.add %y, %d : (tensor<2x8x64xf32>, tensor<2x8x64xf32>) -> tensor<2x8x64xf32>
  %q = lora.param "model.layers.0.mlp.up_proj.weight" frozen : !lora.nf4<128x64, block_size = 64, double_quant = 256>
  %qd = lora.dequantize %q : !lora.nf4<128x64, block_size = 64, double_quant = 256> -> tensor<128x64xf32>
  %a2 = lora.param "base_model.model.model.layers.0.mlp.up_proj.lora_A.weight" trainable : tensor<4x64xf32>
  %b2 = lora.param "base_model.model.model.layers.0.mlp.up_proj.lora_B.weight" trainable : tensor<128x4xf32>
  %y2 = lora.linear %s, %qd : (tensor<2x8x64xf32>, tensor<128x64xf32>) -> tensor<2x8x128xf32>
  %d2 = lora.adapter %s, %a2, %b2 {alpha = 8.0 : f64, dropout = 0.0 : f64} : (tensor<2x8x64xf32>, tensor<4x64xf32>, tensor<128x4xf32>) -> tensor<2x8x128xf32>
  %s2 = lora.add %y2, %d2 : (tensor<2x8x128xf32>, tensor<2x8x128xf32>) -> tensor<2x8x128xf32>
  %e = lora.param "lm_head.weight" frozen : tensor<100x128xf32>
  %logits = lora.lm_head %s2, %e : (tensor<2x8x128xf32>, tensor<100x128xf32>) -> tensor<2x8x100xf32>
  %l, %n = lora.cross_entropy %logits, %t, %m : (tensor<2x8x100xf32>, tensor<2x8xi32>, tensor<2x8xi1>) -> (tensor<f32>, tensor<i64>)
  return %l, %n : tensor<f32>, tensor<i64>
}
