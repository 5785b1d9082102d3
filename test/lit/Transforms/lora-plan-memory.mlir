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

// A kernel's CUDA workspace (`cuda_workspace` bytes, from lora-emit-cuda) is
// a buffer live during its op only: 8 KiB next to x and a (4 KiB each) makes
// a 16 KiB arena, and the later add reuses the workspace's bytes for its
// result. An op without a workspace gets no lora.workspace.
// CHECK-LABEL: func.func @workspace
// CHECK-SAME: attributes {lora.arena_size = 16384 : i64}
// CHECK: lora.add {{.*}}lora.offsets = array<i64: [[A:[0-9]+]]>, lora.workspace = [[W:[0-9]+]] : i64
// CHECK: lora.add
// CHECK-NOT: lora.workspace
// CHECK-SAME: lora.offsets = array<i64: [[W]]>
func.func @workspace(%x: tensor<2x8x64xf32>) -> tensor<2x8x64xf32> {
  %a = lora.add %x, %x {lora.kernel = {kind = "add", elements = 1024 : i64, cuda_workspace = 8192 : i64}} : (tensor<2x8x64xf32>, tensor<2x8x64xf32>) -> tensor<2x8x64xf32>
  %b = lora.add %a, %a : (tensor<2x8x64xf32>, tensor<2x8x64xf32>) -> tensor<2x8x64xf32>
  return %b : tensor<2x8x64xf32>
}
