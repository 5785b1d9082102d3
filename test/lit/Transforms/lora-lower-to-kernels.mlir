// RUN: lorac-opt %s -split-input-file -lora-lower-to-kernels="attention-block=32" | FileCheck %s
// Negative cases.
// RUN: not lorac-opt %s -split-input-file -lora-lower-to-kernels="target=tpu" 2>&1 | FileCheck %s --check-prefix=TARGET
// RUN: not lorac-opt %s -split-input-file -lora-lower-to-kernels="attention-block=0" 2>&1 | FileCheck %s --check-prefix=BLOCK
// RUN: echo 'func.func @f(%%x: tensor<?x8xf32>) -> tensor<?x8xf32> { %%0 = lora.add %%x, %%x : (tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x8xf32> return %%0 : tensor<?x8xf32> }' > %t.dyn.mlir
// RUN: not lorac-opt %t.dyn.mlir -lora-lower-to-kernels 2>&1 | FileCheck %s --check-prefix=DYN

// TARGET: error: option 'target' must be cpu or cuda, got 'tpu'
// BLOCK: error: option 'attention-block' must be positive, got 0
// DYN: error: 'lora.add' op has a dynamic operand 'tensor<?x8xf32>': run lora-specialize-shapes first

// The fused NF4 linear with its adapter: problem sizes, the NF4 layout, the
// adapter's rank and scaling. Parameters get no kernel.
// CHECK-LABEL: func.func @forward
// CHECK: lora.param "w" frozen : !lora.nf4<64x32, block_size = 64, double_quant = 256>
// CHECK-NOT: lora.kernel
// CHECK: lora.fused_linear {{.*}}lora.kernel = {bias = 0 : i64, block_size = 64 : i64, double_quant_block = 256 : i64, dropout = 0.000000e+00 : f64, k = 32 : i64, kind = "fused_linear_fwd", m = 16 : i64, n = 64 : i64, rank = 4 : i64, rng_stream = 0 : i64, scaling = 2.000000e+00 : f64, weight_format = "nf4"}
// CHECK: lora.attention {{.*}}lora.kernel = {batch = 2 : i64, block_k = 32 : i64, block_q = 32 : i64, causal = 1 : i64, head_dim = 16 : i64, kind = "attention_fwd", num_heads = 4 : i64, num_kv_heads = 4 : i64, scale = 2.500000e-01 : f64, segments = 1 : i64, seq = 8 : i64, sliding_window = 0 : i64}
// CHECK: lora.lm_head_cross_entropy {{.*}}lora.kernel = {chunk_size = 8 : i64, hidden = 64 : i64, kind = "lm_head_ce_fwd", tokens = 16 : i64, vocab = 100 : i64}
// CHECK: lora.scalar {{.*}}lora.kernel = {elements = 1 : i64, kind = "fill", value = 1.000000e+00 : f64}
func.func @forward(%x: tensor<2x8x32xbf16>, %seg: tensor<2x8xi32>, %t: tensor<2x8xi32>, %m: tensor<2x8xi1>) -> (tensor<f32>, tensor<i64>, tensor<f32>) {
  %w = lora.param "w" frozen : !lora.nf4<64x32, block_size = 64, double_quant = 256>
  %a = lora.param "a" trainable : tensor<4x32xbf16>
  %b = lora.param "b" trainable : tensor<64x4xbf16>
  %y = lora.fused_linear %x, %w adapter(%a, %b) {alpha = 8.0 : f64} : (tensor<2x8x32xbf16>, !lora.nf4<64x32, block_size = 64, double_quant = 256>, tensor<4x32xbf16>, tensor<64x4xbf16>) -> tensor<2x8x64xbf16>
  %o = lora.attention %y, %y, %y segments %seg {num_heads = 4 : i64, num_kv_heads = 4 : i64, head_dim = 16 : i64} : (tensor<2x8x64xbf16>, tensor<2x8x64xbf16>, tensor<2x8x64xbf16>, tensor<2x8xi32>) -> tensor<2x8x64xbf16>
  %e = lora.param "e" frozen : tensor<100x64xbf16>
  %l, %n = lora.lm_head_cross_entropy %o, %e, %t, %m {chunk_size = 8 : i64} : (tensor<2x8x64xbf16>, tensor<100x64xbf16>, tensor<2x8xi32>, tensor<2x8xi1>) -> (tensor<f32>, tensor<i64>)
  %s = lora.scalar 1.0 : tensor<f32>
  return %l, %n, %s : tensor<f32>, tensor<i64>, tensor<f32>
}

// -----

// Optimizer kernels.
// CHECK-LABEL: func.func @optimizer_step
// CHECK: lora.global_norm {{.*}}lora.kernel = {kind = "global_norm", tensors = 1 : i64}
// CHECK: lora.clip_scale {{.*}}lora.kernel = {kind = "clip_scale", max_norm = 1.000000e+00 : f64}
// CHECK: lora.adamw {{.*}}lora.kernel = {beta1 = 9.000000e-01 : f64, beta2 = 0.99899999999999999 : f64, elements = 8 : i64, eps = 1.000000e-08 : f64, kind = "adamw", weight_decay = 0.000000e+00 : f64}
// CHECK: lora.cast {{.*}}lora.kernel = {elements = 8 : i64, kind = "cast"}
// CHECK: lora.assign {{.*}}lora.kernel = {elements = 8 : i64, kind = "copy"}
// CHECK: lora.reset {{.*}}lora.kernel = {elements = 8 : i64, kind = "zero"}
func.func @optimizer_step(%lr: tensor<f32>, %step: tensor<f32>, %count: tensor<f32>) -> tensor<f32> {
  %g = lora.param "grad/a" optimizer_state {of = "a"} : tensor<2x4xf32>
  %norm = lora.global_norm %g : (tensor<2x4xf32>) -> tensor<f32>
  %scale = lora.clip_scale %norm, %count {max_norm = 1.0 : f64} : (tensor<f32>, tensor<f32>) -> tensor<f32>
  %p = lora.param "master/a" optimizer_state {of = "a"} : tensor<2x4xf32>
  %p2, %m2, %v2 = lora.adamw %p, %g, %p, %p, %lr, %step, %scale {beta1 = 0.9 : f64, beta2 = 0.999 : f64, eps = 1.0e-8 : f64, weight_decay = 0.0 : f64} : (tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4xf32>, tensor<f32>, tensor<f32>, tensor<f32>) -> (tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4xf32>)
  %c = lora.cast %p2 : (tensor<2x4xf32>) -> tensor<2x4xbf16>
  lora.assign "a", %c : tensor<2x4xbf16>
  lora.reset "grad/a" : tensor<2x4xf32>
  return %norm : tensor<f32>
}

// -----

// RMSNorm over the whole feature axis, and per 16-feature group (Qwen3's
// q_norm on 4 heads of 16): the same kernel over [rows · groups, group].
// CHECK-LABEL: func.func @norms
// CHECK: lora.rms_norm {{.*}}lora.kernel = {eps = 9.9999999999999995E-7 : f64, hidden = 64 : i64, kind = "rms_norm_fwd", rows = 16 : i64}
// CHECK: lora.rms_norm {{.*}}lora.kernel = {eps = 9.9999999999999995E-7 : f64, hidden = 16 : i64, kind = "rms_norm_fwd", rows = 64 : i64}
// CHECK: lora.rms_norm_grad {{.*}}lora.kernel = {eps = 9.9999999999999995E-7 : f64, hidden = 16 : i64, kind = "rms_norm_bwd", rows = 64 : i64}
func.func @norms(%x: tensor<2x8x64xf32>, %w: tensor<64xf32>, %g: tensor<16xf32>) -> (tensor<2x8x64xf32>, tensor<2x8x64xf32>, tensor<16xf32>) {
  %a = lora.rms_norm %x, %w {eps = 1.0e-06 : f64} : (tensor<2x8x64xf32>, tensor<64xf32>) -> tensor<2x8x64xf32>
  %b = lora.rms_norm %a, %g {eps = 1.0e-06 : f64} : (tensor<2x8x64xf32>, tensor<16xf32>) -> tensor<2x8x64xf32>
  %dx, %dg = lora.rms_norm_grad %b, %a, %g {eps = 1.0e-06 : f64} : (tensor<2x8x64xf32>, tensor<2x8x64xf32>, tensor<16xf32>) -> (tensor<2x8x64xf32>, tensor<16xf32>)
  return %b, %dx, %dg : tensor<2x8x64xf32>, tensor<2x8x64xf32>, tensor<16xf32>
}

// -----

// Gradient ops of the linear family: with a dx result the kernel has three
// outputs; without one (lora-autodiff found nothing that needs it) the
// kernel gets no_dx = 1 and two outputs.
// CHECK-LABEL: func.func @train_step
// CHECK: lora.fused_linear_grad {{.*}}lora.kernel = {dropout = 1.000000e-01 : f64, k = 32 : i64, kind = "fused_linear_bwd", m = 16 : i64, n = 64 : i64, rank = 4 : i64, rng_stream = {{-?[0-9]+}} : i64, scaling = 2.000000e+00 : f64, weight_format = "dense"}
// CHECK: lora.fused_linear_grad {{.*}}lora.kernel = {dropout = 1.000000e-01 : f64, k = 32 : i64, kind = "fused_linear_bwd", m = 16 : i64, n = 64 : i64, no_dx = 1 : i64, rank = 4 : i64, rng_stream = {{-?[0-9]+}} : i64, scaling = 2.000000e+00 : f64, weight_format = "dense"}
// CHECK: lora.adapter_grad {{.*}}lora.kernel = {dropout = 0.000000e+00 : f64, k = 32 : i64, kind = "lora_bwd", m = 16 : i64, n = 64 : i64, no_dx = 1 : i64, rank = 4 : i64, rng_stream = 0 : i64, scaling = 2.000000e+00 : f64}
func.func @train_step(%dy: tensor<2x8x64xf32>, %x: tensor<2x8x32xf32>) -> (tensor<2x8x32xf32>, tensor<4x32xf32>, tensor<64x4xf32>, tensor<4x32xf32>, tensor<64x4xf32>, tensor<4x32xf32>, tensor<64x4xf32>) {
  %w = lora.param "w" frozen : tensor<64x32xf32>
  %a = lora.param "a" trainable : tensor<4x32xf32>
  %b = lora.param "b" trainable : tensor<64x4xf32>
  %dx, %da, %db = lora.fused_linear_grad %dy, %x, %w, %a, %b {alpha = 8.0 : f64, dropout = 0.1 : f64} : (tensor<2x8x64xf32>, tensor<2x8x32xf32>, tensor<64x32xf32>, tensor<4x32xf32>, tensor<64x4xf32>) -> (tensor<2x8x32xf32>, tensor<4x32xf32>, tensor<64x4xf32>)
  %da2, %db2 = lora.fused_linear_grad %dy, %x, %w, %a, %b {alpha = 8.0 : f64, dropout = 0.1 : f64} : (tensor<2x8x64xf32>, tensor<2x8x32xf32>, tensor<64x32xf32>, tensor<4x32xf32>, tensor<64x4xf32>) -> (tensor<4x32xf32>, tensor<64x4xf32>)
  %da3, %db3 = lora.adapter_grad %dy, %x, %a, %b {alpha = 8.0 : f64} : (tensor<2x8x64xf32>, tensor<2x8x32xf32>, tensor<4x32xf32>, tensor<64x4xf32>) -> (tensor<4x32xf32>, tensor<64x4xf32>)
  return %dx, %da, %db, %da2, %db2, %da3, %db3 : tensor<2x8x32xf32>, tensor<4x32xf32>, tensor<64x4xf32>, tensor<4x32xf32>, tensor<64x4xf32>, tensor<4x32xf32>, tensor<64x4xf32>
}
