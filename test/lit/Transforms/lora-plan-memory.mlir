// RUN: lorac-opt %s -lora-plan-memory | FileCheck %s
// RUN: lorac-opt %s -lora-plan-memory="alignment=256" | FileCheck %s --check-prefix=ALIGN
// RUN: not lorac-opt %s -lora-plan-memory="alignment=48" 2>&1 | FileCheck %s --check-prefix=BADALIGN
// RUN: echo 'func.func @f(%%x: tensor<?x8xf32>) -> tensor<?x8xf32> { return %%x : tensor<?x8xf32> }' > %t.dyn.mlir
// RUN: not lorac-opt %t.dyn.mlir -lora-plan-memory 2>&1 | FileCheck %s --check-prefix=DYN

// BADALIGN: error: option 'alignment' must be a positive power of two, got 48
// DYN: error: 'func.func' op has a dynamic input 'tensor<?x8xf32>': run lora-specialize-shapes first

// A chain x -> a -> b -> c -> d of 4 KiB values (f32 [2,8,64]). Lifetimes
// are inclusive (no value is written over an operand of the same op), so at
// most three are live at once: a 12 KiB arena. The input x lives from the
// start to its last use (the add making b); c then reuses its bytes.
// Parameters are persistent: they get no offset.
// CHECK-LABEL: func.func @chain
// CHECK-SAME: %{{.*}}: tensor<2x8x64xf32> {lora.offset = [[X:[0-9]+]] : i64}
// CHECK-SAME: attributes {lora.arena_size = 12288 : i64}
// CHECK: lora.param "w" frozen : tensor<64x64xf32>
// CHECK-NOT: lora.offsets
// CHECK: %[[A:.*]] = lora.linear {{.*}} {lora.offsets = array<i64: [[OA:[0-9]+]]>}
// CHECK: %[[B:.*]] = lora.add {{.*}} {lora.offsets = array<i64: [[OB:[0-9]+]]>}
// c reuses the bytes of x (x and a are both dead by then).
// CHECK: %[[C:.*]] = lora.linear %[[B]], {{.*}} {lora.offsets = array<i64: [[X]]>}
// d reuses a's bytes.
// CHECK: lora.add %[[C]], %[[C]] {lora.offsets = array<i64: [[OA]]>}
// ALIGN: attributes {lora.arena_size = 12288 : i64}
func.func @chain(%x: tensor<2x8x64xf32>) -> tensor<2x8x64xf32> {
  %w = lora.param "w" frozen : tensor<64x64xf32>
  %a = lora.linear %x, %w : (tensor<2x8x64xf32>, tensor<64x64xf32>) -> tensor<2x8x64xf32>
  %b = lora.add %a, %x : (tensor<2x8x64xf32>, tensor<2x8x64xf32>) -> tensor<2x8x64xf32>
  %c = lora.linear %b, %w : (tensor<2x8x64xf32>, tensor<64x64xf32>) -> tensor<2x8x64xf32>
  %d = lora.add %c, %c : (tensor<2x8x64xf32>, tensor<2x8x64xf32>) -> tensor<2x8x64xf32>
  return %d : tensor<2x8x64xf32>
}
