// RUN: lorac-opt %s -lora-optimizer="beta1=0.8 weight-decay=0.01 max-grad-norm=0.5" | FileCheck %s
// Negative cases.
// RUN: not lorac-opt %s -lora-optimizer="beta2=1.0" 2>&1 | FileCheck %s --check-prefix=BETA2
// RUN: not lorac-opt %s -lora-optimizer="eps=0" 2>&1 | FileCheck %s --check-prefix=EPS
// RUN: not lorac-opt %s -lora-optimizer="max-grad-norm=-1" 2>&1 | FileCheck %s --check-prefix=CLIP
// RUN: not lorac-opt %s -lora-optimizer -lora-optimizer 2>&1 | FileCheck %s --check-prefix=TWICE
// RUN: echo 'module {}' > %t.empty.mlir
// RUN: not lorac-opt %t.empty.mlir -lora-optimizer 2>&1 | FileCheck %s --check-prefix=NOTRAIN

// @train_step keeps its loss and count and accumulates each gradient, in
// float32, into its persistent accumulator.
// CHECK-LABEL: func.func @train_step
// CHECK-SAME: -> (tensor<f32>, tensor<i64>)
// CHECK: %[[ACC:.*]] = lora.param "grad/a" gradient {of = "a"} : tensor<4x8xf32>
// CHECK: %[[SUM:.*]] = lora.accumulate %[[ACC]], %{{.*}} : (tensor<4x8xf32>, tensor<4x8xbf16>) -> tensor<4x8xf32>
// CHECK: lora.assign "grad/a", %[[SUM]] : tensor<4x8xf32>
// CHECK: lora.param "grad/b" gradient {of = "b"} : tensor<8x4xf32>
// CHECK: return %{{.*}}, %{{.*}} : tensor<f32>, tensor<i64>

// @optimizer_step: norm of the summed gradients, normalisation by the
// token count of the accumulated batch and clipping, AdamW on the float32
// master, cast back to bf16, accumulator reset.
// CHECK-LABEL: func.func @optimizer_step
// CHECK-SAME: (%[[LR:.*]]: tensor<f32> {lora.input = "learning_rate"}, %[[STEP:.*]]: tensor<f32> {lora.input = "step"}, %[[N:.*]]: tensor<f32> {lora.input = "token_count"})
// CHECK: %[[GA:.*]] = lora.param "grad/a" gradient {of = "a"}
// CHECK: %[[GB:.*]] = lora.param "grad/b"
// CHECK: %[[NORM:.*]] = lora.global_norm %[[GA]], %[[GB]] : (tensor<4x8xf32>, tensor<8x4xf32>) -> tensor<f32>
// CHECK: %[[SCALE:.*]] = lora.clip_scale %[[NORM]], %[[N]] {max_norm = 5.000000e-01 : f64}
// CHECK: %[[P:.*]] = lora.param "master/a" optimizer_state init(copy_of_owner) {of = "a"} : tensor<4x8xf32>
// CHECK: %[[M:.*]] = lora.param "adam_m/a" optimizer_state {of = "a"}
// CHECK: %[[V:.*]] = lora.param "adam_v/a"
// CHECK: %[[NP:.*]], %[[NM:.*]], %[[NV:.*]] = lora.adamw %[[P]], %[[GA]], %[[M]], %[[V]], %[[LR]], %[[STEP]], %[[SCALE]] {beta1 = 8.000000e-01 : f64, beta2 = 0.99899999999999999 : f64, eps = 1.000000e-08 : f64, weight_decay = 1.000000e-02 : f64}
// CHECK: lora.assign "master/a", %[[NP]]
// CHECK: lora.assign "adam_m/a", %[[NM]]
// CHECK: lora.assign "adam_v/a", %[[NV]]
// CHECK: %[[W:.*]] = lora.cast %[[NP]] : (tensor<4x8xf32>) -> tensor<4x8xbf16>
// CHECK: lora.assign "a", %[[W]] : tensor<4x8xbf16>
// CHECK: lora.reset "grad/a" : tensor<4x8xf32>
// CHECK: lora.adamw
// CHECK: return %[[NORM]], %[[SCALE]]

// BETA2: error: option 'beta2' must be in [0, 1), got 1
// EPS: error: option 'eps' must be positive, got 0
// CLIP: error: option 'max-grad-norm' must be >= 0 (0: no clipping), got -1
// TWICE: error: the module already has @optimizer_step
// NOTRAIN: error: no @train_step: run lora-autodiff first

module {
  // A stand-in for a differentiated step: the "gradients" are the parameters.
  func.func @train_step(%x: tensor<2x8xbf16> {lora.input = "tokens"}, %n: tensor<i64> {lora.input = "count"}) -> (tensor<f32>, tensor<i64>, tensor<4x8xbf16> {lora.grad_of = "a"}, tensor<8x4xbf16> {lora.grad_of = "b"}) {
    %a = lora.param "a" trainable : tensor<4x8xbf16>
    %b = lora.param "b" trainable : tensor<8x4xbf16>
    %l = lora.scalar 1.0 : tensor<f32>
    return %l, %n, %a, %b : tensor<f32>, tensor<i64>, tensor<4x8xbf16>, tensor<8x4xbf16>
  }
}
