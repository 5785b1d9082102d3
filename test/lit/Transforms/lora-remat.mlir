// RUN: lorac-opt %s -lora-remat | FileCheck %s --check-prefix=NONE
// RUN: lorac-opt %s -lora-remat="policy=none" | FileCheck %s --check-prefix=NONE
// RUN: lorac-opt %s -lora-remat="policy=layer" | FileCheck %s --check-prefix=LAYER
// RUN: lorac-opt %s -lora-remat="policy=layer" | FileCheck %s --check-prefix=ORIG
// RUN: lorac-opt %s -lora-remat="policy=auto layers-to-remat=1 memory-budget=24GiB" | FileCheck %s --check-prefix=AUTO
// Running it twice recomputes nothing more: 8 clones (4 per layer) either way.
// RUN: lorac-opt %s -lora-remat="policy=layer" -lora-remat="policy=layer" | grep -c "lora.recompute" | FileCheck %s --check-prefix=COUNT8
// Negative cases: options, a layer that does not exist, no gradient seed.
// RUN: not lorac-opt %s -lora-remat="policy=sometimes" 2>&1 | FileCheck %s --check-prefix=POLICY
// RUN: not lorac-opt %s -lora-remat="policy=auto" 2>&1 | FileCheck %s --check-prefix=AUTONOLAYERS
// RUN: not lorac-opt %s -lora-remat="policy=auto layers-to-remat=1 memory-budget=lots" 2>&1 | FileCheck %s --check-prefix=BUDGET
// RUN: not lorac-opt %s -lora-remat="policy=auto layers-to-remat=1 memory-budget=0GiB" 2>&1 | FileCheck %s --check-prefix=BUDGET0
// RUN: not lorac-opt %s -lora-remat="policy=layer layers-to-remat=0" 2>&1 | FileCheck %s --check-prefix=LAYERSNEEDAUTO
// RUN: not lorac-opt %s -lora-remat="policy=auto layers-to-remat=5" 2>&1 | FileCheck %s --check-prefix=NOLAYER
// RUN: not lorac-opt %s -split-input-file -lora-remat="policy=layer" 2>&1 | FileCheck %s --check-prefix=NOSEED
// Locations dropped by a round trip through a file printed without
// -mlir-print-debuginfo: no op names a decoder layer.
// RUN: lorac-opt %s -o %t.noloc.mlir
// RUN: not lorac-opt %t.noloc.mlir -lora-remat="policy=layer" 2>&1 | FileCheck %s --check-prefix=NOLOCS

// POLICY: error: option 'policy' must be none, layer or auto, got 'sometimes'
// AUTONOLAYERS: error: policy=auto needs option 'layers-to-remat'
// BUDGET: error: option 'memory-budget' must be a positive byte size such as 24GiB, 512MiB or 1073741824, got 'lots'
// BUDGET0: error: option 'memory-budget' must be a positive byte size {{.*}}, got '0GiB'
// LAYERSNEEDAUTO: error: option 'layers-to-remat' needs policy=auto
// NOLAYER: error: decoder layer 5 has no forward ops in @train_step (layers: 0, 1)
// The second chunk alone holds no training function.
// NOSEED: error: no gradient seed (lora.scalar) found: run lora-autodiff first
// NOLOCS: error: found no decoder layer in @train_step: forward ops need NameLoc locations 'model.layers.N...'

// A training step as lora-autodiff builds it for a two-layer slice of a
// Llama model (MLP half of each decoder layer, adapter on down_proj): the
// forward ops, the seed, then the backward ops. Without -split-input-file
// both chunks form one module; the forward-only @forward is left alone.

// policy=none (the default) leaves the IR unchanged.
// NONE-LABEL: func.func @train_step
// NONE-NOT: lora.recompute
// NONE: %[[ACT1:.*]] = lora.swiglu
// NONE: lora.scalar 1.0
// NONE: lora.fused_linear_grad %{{.*}}, %[[ACT1]],
// NONE: return

// policy=layer: each layer's activations are recomputed in the backward
// pass, right before the layer's first backward op, from the layer input.
// LAYER-LABEL: func.func @train_step
// LAYER: %[[H0:.*]] = lora.embedding
// LAYER: %[[NW0:.*]] = lora.param "model.layers.0.post_attention_layernorm.weight"
// LAYER: lora.rms_norm %[[H0]], %[[NW0]]
// LAYER: %[[WG0:.*]] = lora.param "model.layers.0.mlp.gate_proj.weight"
// LAYER: %[[WU0:.*]] = lora.param "model.layers.0.mlp.up_proj.weight"
// LAYER: %[[WD0:.*]] = lora.param "model.layers.0.mlp.down_proj.weight"
// LAYER: %[[A0:.*]] = lora.param "{{.*}}layers.0.mlp.down_proj.lora_A.weight"
// LAYER: %[[B0:.*]] = lora.param "{{.*}}layers.0.mlp.down_proj.lora_B.weight"
// LAYER: %[[H1:.*]] = lora.add %[[H0]],
// LAYER: %[[NW1:.*]] = lora.param "model.layers.1.post_attention_layernorm.weight"
// LAYER: %[[WG1:.*]] = lora.param "model.layers.1.mlp.gate_proj.weight"
// LAYER: %[[WU1:.*]] = lora.param "model.layers.1.mlp.up_proj.weight"
// LAYER: %[[WD1:.*]] = lora.param "model.layers.1.mlp.down_proj.weight"
// LAYER: %[[A1:.*]] = lora.param "{{.*}}layers.1.mlp.down_proj.lora_A.weight"
// LAYER: %[[B1:.*]] = lora.param "{{.*}}layers.1.mlp.down_proj.lora_B.weight"
// LAYER: lora.scalar 1.0
// LAYER-NOT: lora.recompute
// LAYER: %[[DH2:.*]], %{{.*}} = lora.rms_norm_grad
// Layer 1's clones read its input %[[H1]] and its parameters.
// LAYER-NEXT: %[[RX1:.*]] = lora.rms_norm %[[H1]], %[[NW1]] {eps = 1.000000e-05 : f64, lora.recompute}
// LAYER-NEXT: %[[RG1:.*]] = lora.linear %[[RX1]], %[[WG1]] {lora.recompute}
// LAYER-NEXT: %[[RU1:.*]] = lora.linear %[[RX1]], %[[WU1]] {lora.recompute}
// LAYER-NEXT: %[[RACT1:.*]] = lora.swiglu %[[RG1]], %[[RU1]] {lora.recompute}
// LAYER-NEXT: %[[DACT1:.*]], %{{.*}}, %{{.*}} = lora.fused_linear_grad %[[DH2]], %[[RACT1]], %[[WD1]], %[[A1]], %[[B1]]
// LAYER-NEXT: lora.swiglu_grad %[[DACT1]], %[[RG1]], %[[RU1]]
// The layer input itself is kept, not recomputed.
// LAYER: lora.rms_norm_grad %{{.*}}, %[[H1]], %[[NW1]]
// LAYER: %[[DH1:.*]] = lora.add
// Layer 0's clones, from the embedding output.
// LAYER-NEXT: %[[RX0:.*]] = lora.rms_norm %[[H0]], %[[NW0]] {eps = 1.000000e-05 : f64, lora.recompute}
// LAYER-NEXT: %[[RG0:.*]] = lora.linear %[[RX0]], %[[WG0]] {lora.recompute}
// LAYER-NEXT: %[[RU0:.*]] = lora.linear %[[RX0]], %[[WU0]] {lora.recompute}
// LAYER-NEXT: %[[RACT0:.*]] = lora.swiglu %[[RG0]], %[[RU0]] {lora.recompute}
// LAYER-NEXT: lora.fused_linear_grad %[[DH1]], %[[RACT0]], %[[WD0]], %[[A0]], %[[B0]]
// LAYER-NEXT: return
// LAYER-LABEL: func.func @forward
// LAYER-NOT: lora.recompute
// LAYER: return

// No backward op reads a forward value of a layer other than the layer
// inputs (%[[H0]], %[[H1]]) and the final residual %[[H2]].
// ORIG-LABEL: func.func @train_step
// ORIG: %[[X0:.*]] = lora.rms_norm
// ORIG: %[[G0:.*]] = lora.linear
// ORIG: %[[U0:.*]] = lora.linear
// ORIG: %[[ACT0:.*]] = lora.swiglu
// ORIG: %[[D0:.*]] = lora.fused_linear
// ORIG: %[[X1:.*]] = lora.rms_norm
// ORIG: %[[G1:.*]] = lora.linear
// ORIG: %[[U1:.*]] = lora.linear
// ORIG: %[[ACT1:.*]] = lora.swiglu
// ORIG: %[[D1:.*]] = lora.fused_linear
// ORIG: lora.scalar 1.0
// ORIG-NOT: {{ }}%[[X0]]{{[, ]}}
// ORIG-NOT: {{ }}%[[G0]]{{[, ]}}
// ORIG-NOT: {{ }}%[[U0]]{{[, ]}}
// ORIG-NOT: {{ }}%[[ACT0]]{{[, ]}}
// ORIG-NOT: {{ }}%[[D0]]{{[, ]}}
// ORIG-NOT: {{ }}%[[X1]]{{[, ]}}
// ORIG-NOT: {{ }}%[[G1]]{{[, ]}}
// ORIG-NOT: {{ }}%[[U1]]{{[, ]}}
// ORIG-NOT: {{ }}%[[ACT1]]{{[, ]}}
// ORIG-NOT: {{ }}%[[D1]]{{[, ]}}
// ORIG: return

// policy=auto with layers-to-remat=1: only layer 1 is recomputed; layer 0's
// backward still reads its forward activation.
// AUTO-LABEL: func.func @train_step
// AUTO: %[[ACT0:.*]] = lora.swiglu
// AUTO: lora.scalar 1.0
// AUTO: lora.rms_norm {{.*}}lora.recompute
// AUTO-COUNT-3: {lora.recompute}
// AUTO-NOT: lora.recompute
// AUTO: lora.fused_linear_grad %{{.*}}, %[[ACT0]],
// AUTO-NEXT: return

// COUNT8: 8

func.func @train_step(%ids: tensor<2x4xi32>, %targets: tensor<2x4xi32>, %mask: tensor<2x4xi1>) -> (tensor<f32>, tensor<i64>, tensor<4x32xbf16>, tensor<16x4xbf16>, tensor<4x32xbf16>, tensor<16x4xbf16>) {
  // Forward: embedding.
  %emb = lora.param "model.embed_tokens.weight" frozen : tensor<50x16xbf16> loc("model.embed_tokens")
  %h0 = lora.embedding %emb, %ids : (tensor<50x16xbf16>, tensor<2x4xi32>) -> tensor<2x4x16xbf16> loc("model.embed_tokens")
  // Forward: layer 0 (norm, gate/up, SwiGLU, adapted down_proj, residual).
  %nw0 = lora.param "model.layers.0.post_attention_layernorm.weight" frozen : tensor<16xbf16> loc("model.layers.0.post_attention_layernorm")
  %x0 = lora.rms_norm %h0, %nw0 {eps = 1.0e-05 : f64} : (tensor<2x4x16xbf16>, tensor<16xbf16>) -> tensor<2x4x16xbf16> loc("model.layers.0.post_attention_layernorm")
  %wg0 = lora.param "model.layers.0.mlp.gate_proj.weight" frozen : tensor<32x16xbf16> loc("model.layers.0.mlp.gate_proj")
  %g0 = lora.linear %x0, %wg0 : (tensor<2x4x16xbf16>, tensor<32x16xbf16>) -> tensor<2x4x32xbf16> loc("model.layers.0.mlp.gate_proj")
  %wu0 = lora.param "model.layers.0.mlp.up_proj.weight" frozen : tensor<32x16xbf16> loc("model.layers.0.mlp.up_proj")
  %u0 = lora.linear %x0, %wu0 : (tensor<2x4x16xbf16>, tensor<32x16xbf16>) -> tensor<2x4x32xbf16> loc("model.layers.0.mlp.up_proj")
  %act0 = lora.swiglu %g0, %u0 : (tensor<2x4x32xbf16>, tensor<2x4x32xbf16>) -> tensor<2x4x32xbf16> loc("model.layers.0.mlp.act_fn")
  %wd0 = lora.param "model.layers.0.mlp.down_proj.weight" frozen : tensor<16x32xbf16> loc("model.layers.0.mlp.down_proj")
  %a0 = lora.param "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight" trainable : tensor<4x32xbf16> loc("model.layers.0.mlp.down_proj")
  %b0 = lora.param "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight" trainable : tensor<16x4xbf16> loc("model.layers.0.mlp.down_proj")
  %d0 = lora.fused_linear %act0, %wd0 adapter(%a0, %b0) {alpha = 8.0 : f64} : (tensor<2x4x32xbf16>, tensor<16x32xbf16>, tensor<4x32xbf16>, tensor<16x4xbf16>) -> tensor<2x4x16xbf16> loc("model.layers.0.mlp.down_proj")
  %h1 = lora.add %h0, %d0 : (tensor<2x4x16xbf16>, tensor<2x4x16xbf16>) -> tensor<2x4x16xbf16> loc("model.layers.0.residual.1")
  // Forward: layer 1.
  %nw1 = lora.param "model.layers.1.post_attention_layernorm.weight" frozen : tensor<16xbf16> loc("model.layers.1.post_attention_layernorm")
  %x1 = lora.rms_norm %h1, %nw1 {eps = 1.0e-05 : f64} : (tensor<2x4x16xbf16>, tensor<16xbf16>) -> tensor<2x4x16xbf16> loc("model.layers.1.post_attention_layernorm")
  %wg1 = lora.param "model.layers.1.mlp.gate_proj.weight" frozen : tensor<32x16xbf16> loc("model.layers.1.mlp.gate_proj")
  %g1 = lora.linear %x1, %wg1 : (tensor<2x4x16xbf16>, tensor<32x16xbf16>) -> tensor<2x4x32xbf16> loc("model.layers.1.mlp.gate_proj")
  %wu1 = lora.param "model.layers.1.mlp.up_proj.weight" frozen : tensor<32x16xbf16> loc("model.layers.1.mlp.up_proj")
  %u1 = lora.linear %x1, %wu1 : (tensor<2x4x16xbf16>, tensor<32x16xbf16>) -> tensor<2x4x32xbf16> loc("model.layers.1.mlp.up_proj")
  %act1 = lora.swiglu %g1, %u1 : (tensor<2x4x32xbf16>, tensor<2x4x32xbf16>) -> tensor<2x4x32xbf16> loc("model.layers.1.mlp.act_fn")
  %wd1 = lora.param "model.layers.1.mlp.down_proj.weight" frozen : tensor<16x32xbf16> loc("model.layers.1.mlp.down_proj")
  %a1 = lora.param "base_model.model.model.layers.1.mlp.down_proj.lora_A.weight" trainable : tensor<4x32xbf16> loc("model.layers.1.mlp.down_proj")
  %b1 = lora.param "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight" trainable : tensor<16x4xbf16> loc("model.layers.1.mlp.down_proj")
  %d1 = lora.fused_linear %act1, %wd1 adapter(%a1, %b1) {alpha = 8.0 : f64} : (tensor<2x4x32xbf16>, tensor<16x32xbf16>, tensor<4x32xbf16>, tensor<16x4xbf16>) -> tensor<2x4x16xbf16> loc("model.layers.1.mlp.down_proj")
  %h2 = lora.add %h1, %d1 : (tensor<2x4x16xbf16>, tensor<2x4x16xbf16>) -> tensor<2x4x16xbf16> loc("model.layers.1.residual.1")
  // Forward: final norm and the chunked LM head + loss.
  %fnw = lora.param "model.norm.weight" frozen : tensor<16xbf16> loc("model.norm")
  %hn = lora.rms_norm %h2, %fnw {eps = 1.0e-05 : f64} : (tensor<2x4x16xbf16>, tensor<16xbf16>) -> tensor<2x4x16xbf16> loc("model.norm")
  %lm = lora.param "lm_head.weight" frozen : tensor<50x16xbf16> loc("lm_head")
  %loss, %n = lora.lm_head_cross_entropy %hn, %lm, %targets, %mask {chunk_size = 1024 : i64} : (tensor<2x4x16xbf16>, tensor<50x16xbf16>, tensor<2x4xi32>, tensor<2x4xi1>) -> (tensor<f32>, tensor<i64>) loc("lm_head")
  // The gradient seed, then backward.
  %seed = lora.scalar 1.0 : tensor<f32>
  %dhn = lora.lm_head_cross_entropy_grad %hn, %lm, %targets, %mask, %seed {chunk_size = 1024 : i64} : (tensor<2x4x16xbf16>, tensor<50x16xbf16>, tensor<2x4xi32>, tensor<2x4xi1>, tensor<f32>) -> tensor<2x4x16xbf16> loc("lm_head")
  %dh2, %dfnw = lora.rms_norm_grad %dhn, %h2, %fnw {eps = 1.0e-05 : f64} : (tensor<2x4x16xbf16>, tensor<2x4x16xbf16>, tensor<16xbf16>) -> (tensor<2x4x16xbf16>, tensor<16xbf16>) loc("model.norm")
  // Backward: layer 1.
  %dact1, %da1, %db1 = lora.fused_linear_grad %dh2, %act1, %wd1, %a1, %b1 {alpha = 8.0 : f64} : (tensor<2x4x16xbf16>, tensor<2x4x32xbf16>, tensor<16x32xbf16>, tensor<4x32xbf16>, tensor<16x4xbf16>) -> (tensor<2x4x32xbf16>, tensor<4x32xbf16>, tensor<16x4xbf16>) loc("model.layers.1.mlp.down_proj")
  %dg1, %du1 = lora.swiglu_grad %dact1, %g1, %u1 : (tensor<2x4x32xbf16>, tensor<2x4x32xbf16>, tensor<2x4x32xbf16>) -> (tensor<2x4x32xbf16>, tensor<2x4x32xbf16>) loc("model.layers.1.mlp.act_fn")
  %dxg1 = lora.linear_grad_x %dg1, %wg1 : (tensor<2x4x32xbf16>, tensor<32x16xbf16>) -> tensor<2x4x16xbf16> loc("model.layers.1.mlp.gate_proj")
  %dxu1 = lora.linear_grad_x %du1, %wu1 : (tensor<2x4x32xbf16>, tensor<32x16xbf16>) -> tensor<2x4x16xbf16> loc("model.layers.1.mlp.up_proj")
  %dx1 = lora.add %dxg1, %dxu1 : (tensor<2x4x16xbf16>, tensor<2x4x16xbf16>) -> tensor<2x4x16xbf16> loc("model.layers.1.post_attention_layernorm")
  %dh1n, %dnw1 = lora.rms_norm_grad %dx1, %h1, %nw1 {eps = 1.0e-05 : f64} : (tensor<2x4x16xbf16>, tensor<2x4x16xbf16>, tensor<16xbf16>) -> (tensor<2x4x16xbf16>, tensor<16xbf16>) loc("model.layers.1.post_attention_layernorm")
  %dh1 = lora.add %dh2, %dh1n : (tensor<2x4x16xbf16>, tensor<2x4x16xbf16>) -> tensor<2x4x16xbf16> loc("model.layers.1.residual.1")
  // Backward: layer 0 (only the adapter's gradients are needed: the
  // embedding is frozen).
  %dact0, %da0, %db0 = lora.fused_linear_grad %dh1, %act0, %wd0, %a0, %b0 {alpha = 8.0 : f64} : (tensor<2x4x16xbf16>, tensor<2x4x32xbf16>, tensor<16x32xbf16>, tensor<4x32xbf16>, tensor<16x4xbf16>) -> (tensor<2x4x32xbf16>, tensor<4x32xbf16>, tensor<16x4xbf16>) loc("model.layers.0.mlp.down_proj")
  return %loss, %n, %da0, %db0, %da1, %db1 : tensor<f32>, tensor<i64>, tensor<4x32xbf16>, tensor<16x4xbf16>, tensor<4x32xbf16>, tensor<16x4xbf16>
}

// -----

// A forward-only function (no seed) with decoder-layer locations.
func.func @forward(%h: tensor<2x4x16xbf16>) -> tensor<2x4x16xbf16> {
  %nw = lora.param "model.layers.0.post_attention_layernorm.weight" frozen : tensor<16xbf16> loc("model.layers.0.post_attention_layernorm")
  %x = lora.rms_norm %h, %nw {eps = 1.0e-05 : f64} : (tensor<2x4x16xbf16>, tensor<16xbf16>) -> tensor<2x4x16xbf16> loc("model.layers.0.post_attention_layernorm")
  return %x : tensor<2x4x16xbf16>
}
