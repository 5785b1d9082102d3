// RUN: lorac-opt %s -split-input-file -lora-save-attention-stats | FileCheck %s
// With target=cuda the pass changes nothing (the CUDA kernels recompute).
// RUN: lorac-opt %s -split-input-file -lora-save-attention-stats="target=cuda" | FileCheck %s --check-prefix=CUDA
// The kernels that lora-lower-to-kernels picks for the result.
// RUN: lorac-opt %s -split-input-file -lora-save-attention-stats -lora-lower-to-kernels | FileCheck %s --check-prefix=KERNEL
// Negative case: an unknown target.
// RUN: not lorac-opt %s -split-input-file -lora-save-attention-stats="target=tpu" 2>&1 | FileCheck %s --check-prefix=TARGET

// TARGET: error: option 'target' must be cpu or cuda, got 'tpu'

// The forward's output is read by a backward op (as o_proj's adapter
// gradient reads its input) at the point %do is computed: the forward
// becomes lora.attention_with_lse and the grad op takes its output and lse.
// CHECK-LABEL: func.func @saved
// CHECK-SAME: (%[[Q:.*]]: tensor<2x8x64xf32>, %[[K:.*]]: tensor<2x8x32xf32>, %[[V:.*]]: tensor<2x8x32xf32>, %[[S:.*]]: tensor<2x8xi32>)
// CHECK-NEXT: %[[O:.*]], %[[LSE:.*]] = lora.attention_with_lse %[[Q]], %[[K]], %[[V]] segments %[[S]] {head_dim = 16 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64, sliding_window = 4 : i64} : (tensor<2x8x64xf32>, tensor<2x8x32xf32>, tensor<2x8x32xf32>, tensor<2x8xi32>) -> (tensor<2x8x64xf32>, tensor<2x4x8xf32>)
// CHECK-NEXT: %[[DO:.*]] = lora.add %[[O]], %[[O]]
// CHECK-NEXT: lora.attention_grad %[[DO]], %[[Q]], %[[K]], %[[V]] saved(%[[O]], %[[LSE]]) segments %[[S]] {head_dim = 16 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64, sliding_window = 4 : i64} : (tensor<2x8x64xf32>, tensor<2x8x64xf32>, tensor<2x8x32xf32>, tensor<2x8x32xf32>, tensor<2x8x64xf32>, tensor<2x4x8xf32>, tensor<2x8xi32>) -> (tensor<2x8x64xf32>, tensor<2x8x32xf32>, tensor<2x8x32xf32>)
// CHECK-NOT: lora.attention %
// CUDA-LABEL: func.func @saved
// CUDA: lora.attention %
// CUDA-NOT: saved(
// KERNEL-LABEL: func.func @saved
// KERNEL: lora.attention_with_lse {{.*}}kind = "attention_fwd"{{.*}}save_lse = 1 : i64
// KERNEL: lora.attention_grad {{.*}}kind = "attention_bwd"{{.*}}saved_stats = 1 : i64
func.func @saved(%q: tensor<2x8x64xf32>, %k: tensor<2x8x32xf32>, %v: tensor<2x8x32xf32>, %s: tensor<2x8xi32>) -> (tensor<2x8x64xf32>, tensor<2x8x32xf32>, tensor<2x8x32xf32>) {
  %o = lora.attention %q, %k, %v segments %s {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, sliding_window = 4 : i64} : (tensor<2x8x64xf32>, tensor<2x8x32xf32>, tensor<2x8x32xf32>, tensor<2x8xi32>) -> tensor<2x8x64xf32>
  %do = lora.add %o, %o : (tensor<2x8x64xf32>, tensor<2x8x64xf32>) -> tensor<2x8x64xf32>
  %dq, %dk, %dv = lora.attention_grad %do, %q, %k, %v segments %s {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, sliding_window = 4 : i64} : (tensor<2x8x64xf32>, tensor<2x8x64xf32>, tensor<2x8x32xf32>, tensor<2x8x32xf32>, tensor<2x8xi32>) -> (tensor<2x8x64xf32>, tensor<2x8x32xf32>, tensor<2x8x32xf32>)
  return %dq, %dk, %dv : tensor<2x8x64xf32>, tensor<2x8x32xf32>, tensor<2x8x32xf32>
}

// -----

// Two backward ops of one forward (bf16) share its lse.
// CHECK-LABEL: func.func @shared
// CHECK: %[[O:.*]], %[[LSE:.*]] = lora.attention_with_lse
// CHECK-SAME: -> (tensor<1x4x32xbf16>, tensor<1x2x4xf32>)
// CHECK: lora.attention_grad {{.*}} saved(%[[O]], %[[LSE]])
// CHECK: lora.attention_grad {{.*}} saved(%[[O]], %[[LSE]])
func.func @shared(%q: tensor<1x4x32xbf16>, %do: tensor<1x4x32xbf16>) -> (tensor<1x4x32xbf16>, tensor<1x4x32xbf16>, tensor<1x4x32xbf16>) {
  %o = lora.attention %q, %q, %q {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64} : (tensor<1x4x32xbf16>, tensor<1x4x32xbf16>, tensor<1x4x32xbf16>) -> tensor<1x4x32xbf16>
  %d1 = lora.add %do, %o : (tensor<1x4x32xbf16>, tensor<1x4x32xbf16>) -> tensor<1x4x32xbf16>
  %a:3 = lora.attention_grad %d1, %q, %q, %q {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64} : (tensor<1x4x32xbf16>, tensor<1x4x32xbf16>, tensor<1x4x32xbf16>, tensor<1x4x32xbf16>) -> (tensor<1x4x32xbf16>, tensor<1x4x32xbf16>, tensor<1x4x32xbf16>)
  %d2 = lora.add %d1, %o : (tensor<1x4x32xbf16>, tensor<1x4x32xbf16>) -> tensor<1x4x32xbf16>
  %b:3 = lora.attention_grad %d2, %q, %q, %q {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64} : (tensor<1x4x32xbf16>, tensor<1x4x32xbf16>, tensor<1x4x32xbf16>, tensor<1x4x32xbf16>) -> (tensor<1x4x32xbf16>, tensor<1x4x32xbf16>, tensor<1x4x32xbf16>)
  return %a#0, %b#1, %b#2 : tensor<1x4x32xbf16>, tensor<1x4x32xbf16>, tensor<1x4x32xbf16>
}

// -----

// Negative cases, left to recompute: the output is dead when the output
// gradient is computed (saving it would hold it longer: no adapter on the
// next layer), the output gradient is an argument, and a forward whose
// attributes differ from the grad op's (another sliding window).
// CHECK-LABEL: func.func @recompute
// CHECK-NOT: attention_with_lse
// CHECK-NOT: saved(
// CHECK: return
func.func @recompute(%q: tensor<1x4x32xf32>, %arg: tensor<1x4x32xf32>) -> (tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>) {
  %o = lora.attention %q, %q, %q {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64} : (tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>) -> tensor<1x4x32xf32>
  %h = lora.add %o, %q : (tensor<1x4x32xf32>, tensor<1x4x32xf32>) -> tensor<1x4x32xf32>
  %do = lora.add %h, %h : (tensor<1x4x32xf32>, tensor<1x4x32xf32>) -> tensor<1x4x32xf32>
  %a:3 = lora.attention_grad %do, %q, %q, %q {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64} : (tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>) -> (tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>)
  %b:3 = lora.attention_grad %arg, %q, %q, %q {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64} : (tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>) -> (tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>)
  %o2 = lora.attention %q, %q, %q {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, sliding_window = 2 : i64} : (tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>) -> tensor<1x4x32xf32>
  %do2 = lora.add %o2, %o2 : (tensor<1x4x32xf32>, tensor<1x4x32xf32>) -> tensor<1x4x32xf32>
  %c:3 = lora.attention_grad %do2, %q, %q, %q {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64} : (tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>) -> (tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>)
  return %a#0, %b#0, %c#0, %do2 : tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>
}
