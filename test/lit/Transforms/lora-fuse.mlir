// RUN: lorac-opt %s -split-input-file -lora-fuse | FileCheck %s
// RUN: lorac-opt %s -split-input-file -lora-fuse="chunk-size=256" | FileCheck %s --check-prefix=CHUNK256
// RUN: lorac-opt %s -split-input-file -lora-fuse -mlir-print-debuginfo -mlir-print-local-scope | FileCheck %s --check-prefix=LOC
// Negative case: the chunk size must be positive.
// RUN: not lorac-opt %s -split-input-file -lora-fuse="chunk-size=0" 2>&1 | FileCheck %s --check-prefix=CHUNK0

// CHUNK0: error: option 'chunk-size' must be positive, got 0

// QLoRA: an NF4 weight, its dequantize, the linear and the adapter become one
// fused_linear reading the packed weight; the dequantize is gone.
// CHECK-LABEL: func.func @nf4_adapter
// CHECK-SAME: (%[[X:.*]]: tensor<2x8x64xbf16>)
// CHECK: %[[Q:.*]] = lora.param "model.layers.0.self_attn.q_proj.weight" frozen
// CHECK: %[[A:.*]] = lora.param "{{.*}}lora_A.weight" trainable
// CHECK: %[[B:.*]] = lora.param "{{.*}}lora_B.weight" trainable
// CHECK-NOT: lora.dequantize
// CHECK-NOT: lora.linear
// CHECK-NOT: lora.adapter
// CHECK-NOT: lora.add
// CHECK: %[[Y:.*]] = lora.fused_linear %[[X]], %[[Q]] adapter(%[[A]], %[[B]]) {alpha = 1.600000e+01 : f64, dropout = 5.000000e-02 : f64} : (tensor<2x8x64xbf16>, !lora.nf4<64x64, block_size = 64, double_quant = 256>, tensor<8x64xbf16>, tensor<64x8xbf16>) -> tensor<2x8x64xbf16>
// CHECK-NEXT: return %[[Y]]
// The fused op keeps the linear layer's name (remat and the report read it).
// LOC-LABEL: func.func @nf4_adapter
// LOC: lora.fused_linear {{.*}} loc("model.layers.0.self_attn.q_proj")
func.func @nf4_adapter(%x: tensor<2x8x64xbf16>) -> tensor<2x8x64xbf16> {
  %q = lora.param "model.layers.0.self_attn.q_proj.weight" frozen : !lora.nf4<64x64, block_size = 64, double_quant = 256> loc("model.layers.0.self_attn.q_proj")
  %w = lora.dequantize %q : !lora.nf4<64x64, block_size = 64, double_quant = 256> -> tensor<64x64xbf16> loc("model.layers.0.self_attn.q_proj")
  %y = lora.linear %x, %w : (tensor<2x8x64xbf16>, tensor<64x64xbf16>) -> tensor<2x8x64xbf16> loc("model.layers.0.self_attn.q_proj")
  %a = lora.param "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" trainable : tensor<8x64xbf16> loc("model.layers.0.self_attn.q_proj")
  %b = lora.param "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight" trainable : tensor<64x8xbf16> loc("model.layers.0.self_attn.q_proj")
  %d = lora.adapter %x, %a, %b {alpha = 16.0 : f64, dropout = 0.05 : f64} : (tensor<2x8x64xbf16>, tensor<8x64xbf16>, tensor<64x8xbf16>) -> tensor<2x8x64xbf16> loc("model.layers.0.self_attn.q_proj")
  %s = lora.add %y, %d : (tensor<2x8x64xbf16>, tensor<2x8x64xbf16>) -> tensor<2x8x64xbf16> loc("model.layers.0.self_attn.q_proj")
  return %s : tensor<2x8x64xbf16>
}

// -----

// Qwen2-style q_proj with a bias, NF4 weight, and the add written with the
// adapter first: the bias goes into the fused op; dropout 0 is not printed.
// CHECK-LABEL: func.func @nf4_adapter_bias
// CHECK-SAME: (%[[X:.*]]: tensor<2x8x64xbf16>, %[[C:.*]]: tensor<32xbf16>)
// CHECK: %[[Q:.*]] = lora.param "model.layers.1.self_attn.k_proj.weight"
// CHECK-NOT: lora.dequantize
// CHECK: %[[Y:.*]] = lora.fused_linear %[[X]], %[[Q]] bias %[[C]] adapter(%{{.*}}, %{{.*}}) {alpha = 3.200000e+01 : f64} : (tensor<2x8x64xbf16>, !lora.nf4<32x64, block_size = 64, double_quant = none>, tensor<32xbf16>, tensor<4x64xbf16>, tensor<32x4xbf16>) -> tensor<2x8x32xbf16>
// CHECK-NOT: lora.add
// CHECK: return %[[Y]]
func.func @nf4_adapter_bias(%x: tensor<2x8x64xbf16>, %c: tensor<32xbf16>) -> tensor<2x8x32xbf16> {
  %q = lora.param "model.layers.1.self_attn.k_proj.weight" frozen : !lora.nf4<32x64, block_size = 64, double_quant = none>
  %w = lora.dequantize %q : !lora.nf4<32x64, block_size = 64, double_quant = none> -> tensor<32x64xbf16>
  %y = lora.linear %x, %w, bias %c : (tensor<2x8x64xbf16>, tensor<32x64xbf16>, tensor<32xbf16>) -> tensor<2x8x32xbf16>
  %a = lora.param "base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight" trainable : tensor<4x64xbf16>
  %b = lora.param "base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight" trainable : tensor<32x4xbf16>
  %d = lora.adapter %x, %a, %b {alpha = 32.0 : f64} : (tensor<2x8x64xbf16>, tensor<4x64xbf16>, tensor<32x4xbf16>) -> tensor<2x8x32xbf16>
  %s = lora.add %d, %y : (tensor<2x8x32xbf16>, tensor<2x8x32xbf16>) -> tensor<2x8x32xbf16>
  return %s : tensor<2x8x32xbf16>
}

// -----

// LoRA on a float weight: linear + adapter + add fuse; the weight stays a
// float tensor.
// CHECK-LABEL: func.func @float_adapter
// CHECK: %[[W:.*]] = lora.param "model.layers.0.mlp.down_proj.weight" frozen : tensor<64x128xbf16>
// CHECK-NOT: lora.linear
// CHECK-NOT: lora.adapter
// CHECK: %[[Y:.*]] = lora.fused_linear %{{.*}}, %[[W]] adapter(%{{.*}}, %{{.*}}) {alpha = 1.600000e+01 : f64} : (tensor<2x8x128xbf16>, tensor<64x128xbf16>, tensor<8x128xbf16>, tensor<64x8xbf16>) -> tensor<2x8x64xbf16>
// CHECK-NOT: lora.add
// CHECK: return %[[Y]]
func.func @float_adapter(%x: tensor<2x8x128xbf16>) -> tensor<2x8x64xbf16> {
  %w = lora.param "model.layers.0.mlp.down_proj.weight" frozen : tensor<64x128xbf16>
  %y = lora.linear %x, %w : (tensor<2x8x128xbf16>, tensor<64x128xbf16>) -> tensor<2x8x64xbf16>
  %a = lora.param "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight" trainable : tensor<8x128xbf16>
  %b = lora.param "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight" trainable : tensor<64x8xbf16>
  %d = lora.adapter %x, %a, %b {alpha = 16.0 : f64} : (tensor<2x8x128xbf16>, tensor<8x128xbf16>, tensor<64x8xbf16>) -> tensor<2x8x64xbf16>
  %s = lora.add %y, %d : (tensor<2x8x64xbf16>, tensor<2x8x64xbf16>) -> tensor<2x8x64xbf16>
  return %s : tensor<2x8x64xbf16>
}

// -----

// An NF4 linear without adapter (e.g. an unadapted k_proj in QLoRA) still
// reads the packed weight in the kernel: fused_linear with no adapter.
// CHECK-LABEL: func.func @nf4_no_adapter
// CHECK: %[[Q:.*]] = lora.param "model.layers.0.self_attn.k_proj.weight" frozen
// CHECK-NOT: lora.dequantize
// CHECK: %[[Y:.*]] = lora.fused_linear %{{.*}}, %[[Q]] : (tensor<2x8x64xbf16>, !lora.nf4<32x64, block_size = 64, double_quant = none>) -> tensor<2x8x32xbf16>
// CHECK-NOT: lora.linear
// CHECK: return %[[Y]]
func.func @nf4_no_adapter(%x: tensor<2x8x64xbf16>) -> tensor<2x8x32xbf16> {
  %q = lora.param "model.layers.0.self_attn.k_proj.weight" frozen : !lora.nf4<32x64, block_size = 64, double_quant = none>
  %w = lora.dequantize %q : !lora.nf4<32x64, block_size = 64, double_quant = none> -> tensor<32x64xbf16>
  %y = lora.linear %x, %w : (tensor<2x8x64xbf16>, tensor<32x64xbf16>) -> tensor<2x8x32xbf16>
  return %y : tensor<2x8x32xbf16>
}

// -----

// A dequantize that still has a user after fusion (here it is returned)
// stays; the linear reading it is fused anyway.
// CHECK-LABEL: func.func @dequantize_kept
// CHECK: %[[Q:.*]] = lora.param
// CHECK: %[[W:.*]] = lora.dequantize %[[Q]]
// CHECK: %[[Y:.*]] = lora.fused_linear %{{.*}}, %[[Q]] :
// CHECK: return %[[Y]], %[[W]]
func.func @dequantize_kept(%x: tensor<2x8x64xbf16>) -> (tensor<2x8x32xbf16>, tensor<32x64xbf16>) {
  %q = lora.param "model.layers.0.self_attn.k_proj.weight" frozen : !lora.nf4<32x64, block_size = 64, double_quant = none>
  %w = lora.dequantize %q : !lora.nf4<32x64, block_size = 64, double_quant = none> -> tensor<32x64xbf16>
  %y = lora.linear %x, %w : (tensor<2x8x64xbf16>, tensor<32x64xbf16>) -> tensor<2x8x32xbf16>
  return %y, %w : tensor<2x8x32xbf16>, tensor<32x64xbf16>
}

// -----

// A float linear without adapter is already one kernel: untouched.
// CHECK-LABEL: func.func @plain_linear
// CHECK: %[[Y:.*]] = lora.linear %{{.*}}, %{{.*}} : (tensor<2x8x64xbf16>, tensor<32x64xbf16>) -> tensor<2x8x32xbf16>
// CHECK-NOT: lora.fused_linear
// CHECK: return %[[Y]]
func.func @plain_linear(%x: tensor<2x8x64xbf16>) -> tensor<2x8x32xbf16> {
  %w = lora.param "model.layers.0.self_attn.v_proj.weight" frozen : tensor<32x64xbf16>
  %y = lora.linear %x, %w : (tensor<2x8x64xbf16>, tensor<32x64xbf16>) -> tensor<2x8x32xbf16>
  return %y : tensor<2x8x32xbf16>
}

// -----

// Negative: the linear's output has a second user, so the unadapted output
// must stay available and nothing is fused.
// CHECK-LABEL: func.func @linear_output_reused
// CHECK-NOT: lora.fused_linear
// CHECK: %[[Y:.*]] = lora.linear
// CHECK: %[[D:.*]] = lora.adapter
// CHECK: %[[S:.*]] = lora.add %[[Y]], %[[D]]
// CHECK: return %[[S]], %[[Y]]
func.func @linear_output_reused(%x: tensor<2x8x64xbf16>) -> (tensor<2x8x64xbf16>, tensor<2x8x64xbf16>) {
  %w = lora.param "model.layers.0.self_attn.q_proj.weight" frozen : tensor<64x64xbf16>
  %y = lora.linear %x, %w : (tensor<2x8x64xbf16>, tensor<64x64xbf16>) -> tensor<2x8x64xbf16>
  %a = lora.param "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" trainable : tensor<8x64xbf16>
  %b = lora.param "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight" trainable : tensor<64x8xbf16>
  %d = lora.adapter %x, %a, %b {alpha = 16.0 : f64} : (tensor<2x8x64xbf16>, tensor<8x64xbf16>, tensor<64x8xbf16>) -> tensor<2x8x64xbf16>
  %s = lora.add %y, %d : (tensor<2x8x64xbf16>, tensor<2x8x64xbf16>) -> tensor<2x8x64xbf16>
  return %s, %y : tensor<2x8x64xbf16>, tensor<2x8x64xbf16>
}

// -----

// Negative: the adapter reads another input than the linear layer.
// CHECK-LABEL: func.func @adapter_other_input
// CHECK-NOT: lora.fused_linear
// CHECK: lora.linear
// CHECK: lora.adapter
// CHECK: lora.add
func.func @adapter_other_input(%x: tensor<2x8x64xbf16>, %x2: tensor<2x8x64xbf16>) -> tensor<2x8x64xbf16> {
  %w = lora.param "model.layers.0.self_attn.q_proj.weight" frozen : tensor<64x64xbf16>
  %y = lora.linear %x, %w : (tensor<2x8x64xbf16>, tensor<64x64xbf16>) -> tensor<2x8x64xbf16>
  %a = lora.param "a" trainable : tensor<8x64xbf16>
  %b = lora.param "b" trainable : tensor<64x8xbf16>
  %d = lora.adapter %x2, %a, %b {alpha = 16.0 : f64} : (tensor<2x8x64xbf16>, tensor<8x64xbf16>, tensor<64x8xbf16>) -> tensor<2x8x64xbf16>
  %s = lora.add %y, %d : (tensor<2x8x64xbf16>, tensor<2x8x64xbf16>) -> tensor<2x8x64xbf16>
  return %s : tensor<2x8x64xbf16>
}

// -----

// LM head + cross-entropy become one chunked op with the default chunk size
// (or the option's).
// CHECK-LABEL: func.func @lm_head_ce
// CHECK-SAME: (%[[H:.*]]: tensor<2x8x64xbf16>, %[[T:.*]]: tensor<2x8xi32>, %[[M:.*]]: tensor<2x8xi1>)
// CHECK: %[[W:.*]] = lora.param "lm_head.weight"
// CHECK-NOT: lora.lm_head %
// CHECK-NOT: lora.cross_entropy
// CHECK: %[[L:.*]], %[[N:.*]] = lora.lm_head_cross_entropy %[[H]], %[[W]], %[[T]], %[[M]] {chunk_size = 1024 : i64} : (tensor<2x8x64xbf16>, tensor<100x64xbf16>, tensor<2x8xi32>, tensor<2x8xi1>) -> (tensor<f32>, tensor<i64>)
// CHECK: return %[[L]], %[[N]]
// CHUNK256-LABEL: func.func @lm_head_ce
// CHUNK256: lora.lm_head_cross_entropy {{.*}} {chunk_size = 256 : i64}
func.func @lm_head_ce(%h: tensor<2x8x64xbf16>, %t: tensor<2x8xi32>, %m: tensor<2x8xi1>) -> (tensor<f32>, tensor<i64>) {
  %w = lora.param "lm_head.weight" frozen : tensor<100x64xbf16>
  %logits = lora.lm_head %h, %w : (tensor<2x8x64xbf16>, tensor<100x64xbf16>) -> tensor<2x8x100xf32>
  %loss, %n = lora.cross_entropy %logits, %t, %m : (tensor<2x8x100xf32>, tensor<2x8xi32>, tensor<2x8xi1>) -> (tensor<f32>, tensor<i64>)
  return %loss, %n : tensor<f32>, tensor<i64>
}

// -----

// Negative: the logits are also returned, so they must exist in full and the
// LM head stays apart from the loss.
// CHECK-LABEL: func.func @lm_head_logits_reused
// CHECK-NOT: lora.lm_head_cross_entropy
// CHECK: %[[LOGITS:.*]] = lora.lm_head
// CHECK: lora.cross_entropy %[[LOGITS]]
// CHECK: return {{.*}}, %[[LOGITS]]
func.func @lm_head_logits_reused(%h: tensor<2x8x64xbf16>, %t: tensor<2x8xi32>, %m: tensor<2x8xi1>) -> (tensor<f32>, tensor<2x8x100xf32>) {
  %w = lora.param "lm_head.weight" frozen : tensor<100x64xbf16>
  %logits = lora.lm_head %h, %w : (tensor<2x8x64xbf16>, tensor<100x64xbf16>) -> tensor<2x8x100xf32>
  %loss, %n = lora.cross_entropy %logits, %t, %m : (tensor<2x8x100xf32>, tensor<2x8xi32>, tensor<2x8xi1>) -> (tensor<f32>, tensor<i64>)
  return %loss, %logits : tensor<f32>, tensor<2x8x100xf32>
}
