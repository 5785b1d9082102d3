// RUN: lorac-opt %s -lora-packing | FileCheck %s
// RUN: not lorac-opt %s -lora-packing -lora-packing 2>&1 | FileCheck %s --check-prefix=TWICE
// RUN: echo 'func.func @f(%%x: tensor<2x4xf32>) -> tensor<2x4xf32> { return %%x : tensor<2x4xf32> }' > %t.noattn.mlir
// RUN: not lorac-opt %t.noattn.mlir -lora-packing 2>&1 | FileCheck %s --check-prefix=NOATTN

// segment_ids is added after positions; every attention reads it, and the
// loss mask is cleared at document boundaries.
// CHECK-LABEL: func.func @forward
// CHECK-SAME: {lora.input = "positions"}, %[[SEG:[a-z0-9]+]]: tensor<2x8xi32> {lora.input = "segment_ids"}, %[[T:[a-z0-9]+]]: tensor<2x8xi32> {lora.input = "targets"}, %[[M:[a-z0-9]+]]: tensor<2x8xi1> {lora.input = "loss_mask"}
// CHECK: lora.attention %{{.*}}, %{{.*}}, %{{.*}} segments %[[SEG]] {head_dim = 16 : i64, num_heads = 4 : i64, num_kv_heads = 4 : i64}
// CHECK: lora.attention %{{.*}}, %{{.*}}, %{{.*}} segments %[[SEG]]
// CHECK: %[[M2:.*]] = lora.segment_boundary_mask %[[M]], %[[SEG]] : (tensor<2x8xi1>, tensor<2x8xi32>) -> tensor<2x8xi1>
// CHECK: lora.cross_entropy %{{.*}}, %[[T]], %[[M2]]

// TWICE: error: 'func.func' op is already packed (has a segment_ids input)
// NOATTN: error: no function with lora.attention to pack

module {
  func.func @forward(%tokens: tensor<2x8xi32> {lora.input = "tokens"}, %pos: tensor<2x8xi32> {lora.input = "positions"}, %t: tensor<2x8xi32> {lora.input = "targets"}, %m: tensor<2x8xi1> {lora.input = "loss_mask"}) -> (tensor<f32>, tensor<i64>) {
    %e = lora.param "model.embed_tokens.weight" frozen : tensor<100x64xf32>
    %h = lora.embedding %e, %tokens : (tensor<100x64xf32>, tensor<2x8xi32>) -> tensor<2x8x64xf32>
    %r = lora.rope %h, %pos {head_dim = 16 : i64, theta = 10000.0 : f64} : (tensor<2x8x64xf32>, tensor<2x8xi32>) -> tensor<2x8x64xf32>
    %a = lora.attention %r, %r, %h {num_heads = 4 : i64, num_kv_heads = 4 : i64, head_dim = 16 : i64} : (tensor<2x8x64xf32>, tensor<2x8x64xf32>, tensor<2x8x64xf32>) -> tensor<2x8x64xf32>
    %b = lora.attention %a, %a, %a {num_heads = 4 : i64, num_kv_heads = 4 : i64, head_dim = 16 : i64} : (tensor<2x8x64xf32>, tensor<2x8x64xf32>, tensor<2x8x64xf32>) -> tensor<2x8x64xf32>
    %l = lora.lm_head %b, %e : (tensor<2x8x64xf32>, tensor<100x64xf32>) -> tensor<2x8x100xf32>
    %loss, %n = lora.cross_entropy %l, %t, %m : (tensor<2x8x100xf32>, tensor<2x8xi32>, tensor<2x8xi1>) -> (tensor<f32>, tensor<i64>)
    return %loss, %n : tensor<f32>, tensor<i64>
  }
}
