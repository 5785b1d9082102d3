// RUN: lorac-opt %s -lora-optimizer -lora-data-parallel="bucket-mb=0.01" | FileCheck %s
// One bucket holding everything (the default 25 MiB):
// RUN: lorac-opt %s -lora-optimizer -lora-data-parallel | FileCheck %s --check-prefix=ONE
// The plan stays complete: lowered to kernels it has the collective kinds.
// RUN: lorac-opt %s -lora-optimizer -lora-data-parallel -lora-lower-to-kernels | FileCheck %s --check-prefix=KINDS
// Negative cases.
// RUN: not lorac-opt %s -lora-optimizer -lora-data-parallel="bucket-mb=0" 2>&1 | FileCheck %s --check-prefix=BUCKET
// RUN: not lorac-opt %s -lora-optimizer -lora-data-parallel -lora-data-parallel 2>&1 | FileCheck %s --check-prefix=TWICE
// RUN: not lorac-opt %s -lora-data-parallel 2>&1 | FileCheck %s --check-prefix=NOOPT
// RUN: echo 'module {}' > %t.empty.mlir
// RUN: not lorac-opt %t.empty.mlir -lora-data-parallel 2>&1 | FileCheck %s --check-prefix=NOOPT

// @train_step: each accumulation follows its gradient's producer (in the
// order of the backward: c, then b, then a), and a bucket of at least
// 0.01 MiB (10485 bytes) starts after its last accumulation, gated by the
// new sync_gradients input. c (16 KiB) fills bucket 0 alone; b and a
// (128 B each) make the last, smaller bucket 1.
// CHECK-LABEL: func.func @train_step
// CHECK-SAME: %[[SYNC:[^:]*]]: tensor<f32> {lora.input = "sync_gradients"}
// CHECK: %[[A:.*]] = lora.param "a" trainable
// CHECK-NEXT: %[[B:.*]] = lora.param "b" trainable
// CHECK-NEXT: %[[C:.*]] = lora.param "c" trainable
// CHECK-NEXT: %[[GC:.*]] = lora.add %[[C]], %[[C]]
// CHECK-NEXT: %[[ACCC:.*]] = lora.param "grad/c" gradient {of = "c"} : tensor<64x64xf32>
// CHECK-NEXT: %[[SC:.*]] = lora.accumulate %[[ACCC]], %[[GC]]
// CHECK-NEXT: lora.assign "grad/c", %[[SC]] : tensor<64x64xf32>
// CHECK-NEXT: lora.grad_all_reduce_start ["grad/c"] sync(%[[SYNC]]) {bucket = 0 : i64, bytes = 16384 : i64} : tensor<f32>
// CHECK-NEXT: lora.add %[[B]], %[[B]]
// CHECK-NEXT: lora.param "grad/b"
// CHECK-NEXT: lora.accumulate
// CHECK-NEXT: lora.assign "grad/b"
// CHECK-NEXT: lora.add %[[A]], %[[A]]
// CHECK-NEXT: lora.param "grad/a"
// CHECK-NEXT: lora.accumulate
// CHECK-NEXT: lora.assign "grad/a"
// CHECK-NEXT: lora.grad_all_reduce_start ["grad/b", "grad/a"] sync(%[[SYNC]]) {bucket = 1 : i64, bytes = 256 : i64} : tensor<f32>
// CHECK-NEXT: lora.scalar
// CHECK-NEXT: return

// @optimizer_step waits for every bucket before reading the accumulators
// and normalises by the token count summed over the ranks.
// CHECK-LABEL: func.func @optimizer_step
// CHECK-SAME: %[[N:[^:]*]]: tensor<f32> {lora.input = "token_count"}
// CHECK-NEXT: lora.grad_all_reduce_wait ["grad/c"] {bucket = 0 : i64, bytes = 16384 : i64}
// CHECK-NEXT: lora.grad_all_reduce_wait ["grad/b", "grad/a"] {bucket = 1 : i64, bytes = 256 : i64}
// CHECK-NEXT: %[[ALL:.*]] = lora.all_reduce_sum %[[N]] : (tensor<f32>) -> tensor<f32>
// CHECK: lora.global_norm
// CHECK-NEXT: lora.clip_scale %{{.*}}, %[[ALL]]

// ONE: lora.grad_all_reduce_start ["grad/c", "grad/b", "grad/a"] sync(%{{.*}}) {bucket = 0 : i64, bytes = 16640 : i64}
// ONE-NOT: lora.grad_all_reduce_start
// ONE: lora.grad_all_reduce_wait ["grad/c", "grad/b", "grad/a"] {bucket = 0 : i64, bytes = 16640 : i64}
// ONE-NOT: lora.grad_all_reduce_wait

// KINDS: lora.grad_all_reduce_start {{.*}}kind = "grad_all_reduce_start", tensors = 3 : i64
// KINDS: lora.grad_all_reduce_wait {{.*}}kind = "grad_all_reduce_wait", tensors = 3 : i64
// KINDS: lora.all_reduce_sum {{.*}}elements = 1 : i64, kind = "all_reduce_sum"

// BUCKET: error: option 'bucket-mb' must be positive, got 0
// TWICE: error: 'func.func' op already has a sync_gradients input: the plan is data-parallel already
// NOOPT: error: no @train_step and @optimizer_step: run lora-optimizer first

module {
  // A stand-in for a differentiated step whose backward produces the
  // gradients of c, b and a in that order.
  func.func @train_step(%x: tensor<2x8xbf16> {lora.input = "tokens"}, %n: tensor<i64> {lora.input = "count"}) -> (tensor<f32>, tensor<i64>, tensor<4x8xbf16> {lora.grad_of = "a"}, tensor<8x4xbf16> {lora.grad_of = "b"}, tensor<64x64xbf16> {lora.grad_of = "c"}) {
    %a = lora.param "a" trainable : tensor<4x8xbf16>
    %b = lora.param "b" trainable : tensor<8x4xbf16>
    %c = lora.param "c" trainable : tensor<64x64xbf16>
    %gc = lora.add %c, %c : (tensor<64x64xbf16>, tensor<64x64xbf16>) -> tensor<64x64xbf16>
    %gb = lora.add %b, %b : (tensor<8x4xbf16>, tensor<8x4xbf16>) -> tensor<8x4xbf16>
    %ga = lora.add %a, %a : (tensor<4x8xbf16>, tensor<4x8xbf16>) -> tensor<4x8xbf16>
    %l = lora.scalar 1.0 : tensor<f32>
    return %l, %n, %ga, %gb, %gc : tensor<f32>, tensor<i64>, tensor<4x8xbf16>, tensor<8x4xbf16>, tensor<64x64xbf16>
  }
}
