// RUN: lorac-opt %s -split-input-file -lora-fuse-lm-head-loss | FileCheck %s
// With target=cuda the pass changes nothing (the CUDA backend has no kernel
// for the fused kind).
// RUN: lorac-opt %s -split-input-file -lora-fuse-lm-head-loss="target=cuda" | FileCheck %s --check-prefix=CUDA
// Negative case: an unknown target.
// RUN: not lorac-opt %s -split-input-file -lora-fuse-lm-head-loss="target=tpu" 2>&1 | FileCheck %s --check-prefix=TARGET

// TARGET: error: option 'target' must be cpu or cuda, got 'tpu'

// The loss, the constant seed and the input gradient become one op at the
// forward's place, with the seed as its dloss; the seed is gone.
// CHECK-LABEL: func.func @train_step
// CHECK-SAME: (%[[H:.*]]: tensor<2x4x16xbf16>, %[[W:.*]]: tensor<50x16xbf16>, %[[T:.*]]: tensor<2x4xi32>, %[[M:.*]]: tensor<2x4xi1>)
// CHECK-NEXT: %[[L:.*]], %[[N:.*]], %[[DX:.*]] = lora.lm_head_cross_entropy_with_grad %[[H]], %[[W]], %[[T]], %[[M]] {chunk_size = 8 : i64, dloss = 5.000000e-01 : f64} : (tensor<2x4x16xbf16>, tensor<50x16xbf16>, tensor<2x4xi32>, tensor<2x4xi1>) -> (tensor<f32>, tensor<i64>, tensor<2x4x16xbf16>)
// CHECK-NOT: lora.scalar
// CHECK-NOT: lora.lm_head_cross_entropy_grad
// CHECK: return %[[L]], %[[N]], %[[DX]]
// CUDA-LABEL: func.func @train_step
// CUDA: lora.lm_head_cross_entropy %
// CUDA: lora.scalar
// CUDA: lora.lm_head_cross_entropy_grad
func.func @train_step(%h: tensor<2x4x16xbf16>, %w: tensor<50x16xbf16>, %t: tensor<2x4xi32>, %m: tensor<2x4xi1>) -> (tensor<f32>, tensor<i64>, tensor<2x4x16xbf16>) {
  %loss, %n = lora.lm_head_cross_entropy %h, %w, %t, %m {chunk_size = 8 : i64} : (tensor<2x4x16xbf16>, tensor<50x16xbf16>, tensor<2x4xi32>, tensor<2x4xi1>) -> (tensor<f32>, tensor<i64>)
  %seed = lora.scalar 0.5 : tensor<f32>
  %dx = lora.lm_head_cross_entropy_grad %h, %w, %t, %m, %seed {chunk_size = 8 : i64} : (tensor<2x4x16xbf16>, tensor<50x16xbf16>, tensor<2x4xi32>, tensor<2x4xi1>, tensor<f32>) -> tensor<2x4x16xbf16>
  return %loss, %n, %dx : tensor<f32>, tensor<i64>, tensor<2x4x16xbf16>
}

// -----

// A seed that something else reads stays.
// CHECK-LABEL: func.func @seed_reused
// CHECK: lora.lm_head_cross_entropy_with_grad
// CHECK: %[[S:.*]] = lora.scalar 1.000000e+00
// CHECK: return {{.*}}, %[[S]]
func.func @seed_reused(%h: tensor<2x4x16xbf16>, %w: tensor<50x16xbf16>, %t: tensor<2x4xi32>, %m: tensor<2x4xi1>) -> (tensor<f32>, tensor<2x4x16xbf16>, tensor<f32>) {
  %loss, %n = lora.lm_head_cross_entropy %h, %w, %t, %m {chunk_size = 8 : i64} : (tensor<2x4x16xbf16>, tensor<50x16xbf16>, tensor<2x4xi32>, tensor<2x4xi1>) -> (tensor<f32>, tensor<i64>)
  %seed = lora.scalar 1.0 : tensor<f32>
  %dx = lora.lm_head_cross_entropy_grad %h, %w, %t, %m, %seed {chunk_size = 8 : i64} : (tensor<2x4x16xbf16>, tensor<50x16xbf16>, tensor<2x4xi32>, tensor<2x4xi1>, tensor<f32>) -> tensor<2x4x16xbf16>
  return %loss, %dx, %seed : tensor<f32>, tensor<2x4x16xbf16>, tensor<f32>
}

// -----

// Negative cases: a gradient that is not a constant, a forward of other
// operands or another chunk size, and a gradient without its forward stay
// as they are.
// CHECK-LABEL: func.func @not_fused
// CHECK-NOT: lora.lm_head_cross_entropy_with_grad
// CHECK: lora.lm_head_cross_entropy_grad
// CHECK: lora.lm_head_cross_entropy_grad
// CHECK: lora.lm_head_cross_entropy_grad
// CHECK-NOT: lora.lm_head_cross_entropy_with_grad
func.func @not_fused(%h: tensor<2x4x16xbf16>, %h2: tensor<2x4x16xbf16>, %w: tensor<50x16xbf16>, %t: tensor<2x4xi32>, %m: tensor<2x4xi1>, %g: tensor<f32>) -> (tensor<f32>, tensor<2x4x16xbf16>, tensor<2x4x16xbf16>, tensor<2x4x16xbf16>) {
  %loss, %n = lora.lm_head_cross_entropy %h, %w, %t, %m {chunk_size = 8 : i64} : (tensor<2x4x16xbf16>, tensor<50x16xbf16>, tensor<2x4xi32>, tensor<2x4xi1>) -> (tensor<f32>, tensor<i64>)
  %dx1 = lora.lm_head_cross_entropy_grad %h, %w, %t, %m, %g {chunk_size = 8 : i64} : (tensor<2x4x16xbf16>, tensor<50x16xbf16>, tensor<2x4xi32>, tensor<2x4xi1>, tensor<f32>) -> tensor<2x4x16xbf16>
  %seed = lora.scalar 1.0 : tensor<f32>
  %dx2 = lora.lm_head_cross_entropy_grad %h2, %w, %t, %m, %seed {chunk_size = 8 : i64} : (tensor<2x4x16xbf16>, tensor<50x16xbf16>, tensor<2x4xi32>, tensor<2x4xi1>, tensor<f32>) -> tensor<2x4x16xbf16>
  %dx3 = lora.lm_head_cross_entropy_grad %h, %w, %t, %m, %seed {chunk_size = 4 : i64} : (tensor<2x4x16xbf16>, tensor<50x16xbf16>, tensor<2x4xi32>, tensor<2x4xi1>, tensor<f32>) -> tensor<2x4x16xbf16>
  return %loss, %dx1, %dx2, %dx3 : tensor<f32>, tensor<2x4x16xbf16>, tensor<2x4x16xbf16>, tensor<2x4x16xbf16>
}
