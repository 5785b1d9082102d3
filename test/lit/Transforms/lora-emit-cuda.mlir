// RUN: lorac-opt %s -lora-lower-to-kernels=target=cuda -lora-emit-cuda | FileCheck %s
// RUN: not lorac-opt %s -lora-emit-cuda 2>&1 | FileCheck %s --check-prefix=NOKERNEL
// RUN: not lorac-opt %s -lora-lower-to-kernels=target=cuda -lora-emit-cuda -lora-emit-cuda 2>&1 | FileCheck %s --check-prefix=TWICE
// RUN: lorac-opt %s -lora-lower-to-kernels=target=cuda -lora-emit-cuda -verify-diagnostics > /dev/null
// A hand-written lora.kernel is checked against kernel_kinds.def before any
// template reads it.
// RUN: echo 'func.func @f(%%x: tensor<8xf32>) -> tensor<8xf32> { %%0 = lora.add %%x, %%x {lora.kernel = {kind = "add"}} : (tensor<8xf32>, tensor<8xf32>) -> tensor<8xf32> return %%0 : tensor<8xf32> }' > %t.missing.mlir
// RUN: not lorac-opt %t.missing.mlir -lora-emit-cuda 2>&1 | FileCheck %s --check-prefix=MISSING
// RUN: echo 'func.func @f(%%x: tensor<8xf32>) -> tensor<8xf32> { %%0 = lora.add %%x, %%x {lora.kernel = {kind = "add", elements = 8.0 : f64}} : (tensor<8xf32>, tensor<8xf32>) -> tensor<8xf32> return %%0 : tensor<8xf32> }' > %t.type.mlir
// RUN: not lorac-opt %t.type.mlir -lora-emit-cuda 2>&1 | FileCheck %s --check-prefix=TYPE
// RUN: echo 'func.func @f(%%x: tensor<8xf32>) -> tensor<8xf32> { %%0 = lora.add %%x, %%x {lora.kernel = {kind = "softmax"}} : (tensor<8xf32>, tensor<8xf32>) -> tensor<8xf32> return %%0 : tensor<8xf32> }' > %t.kind.mlir
// RUN: not lorac-opt %t.kind.mlir -lora-emit-cuda 2>&1 | FileCheck %s --check-prefix=KIND
// RoPE's frequencies come from lorart/plan/rope.h, which checks the values.
// RUN: echo 'func.func @f(%%x: tensor<1x4x8xf32>, %%p: tensor<1x4xi32>) -> tensor<1x4x8xf32> { %%0 = lora.rope %%x, %%p {head_dim = 8 : i64, theta = 10000.0 : f64, lora.kernel = {kind = "rope_fwd", batch = 1 : i64, seq = 4 : i64, features = 8 : i64, head_dim = 8 : i64, theta = -1.0 : f64, scaling = "none"}} : (tensor<1x4x8xf32>, tensor<1x4xi32>) -> tensor<1x4x8xf32> return %%0 : tensor<1x4x8xf32> }' > %t.theta.mlir
// RUN: not lorac-opt %t.theta.mlir -lora-emit-cuda 2>&1 | FileCheck %s --check-prefix=THETA

// NOKERNEL: error: no kernel to emit CUDA for: run lora-lower-to-kernels first
// TWICE: error: 'lora.add' op already has CUDA source
// MISSING: error: 'lora.add' op lora.kernel: required parameter 'elements' (int) of kernel kind 'add' is missing
// TYPE: error: 'lora.add' op lora.kernel: parameter 'elements' of kernel kind 'add' must be int, got float
// KIND: error: 'lora.add' op has an unknown kernel kind 'softmax'
// THETA: error: 'lora.rope' op lora.kernel: 'theta' must be positive

// An elementwise kernel specialised by dtype and size, with its geometry.
// CHECK-LABEL: func.func @f
// CHECK: lora.add {{.*}}cuda_block = array<i64: 256, 1, 1>, cuda_entry = "lora_add_bf16_n1024", cuda_grid = array<i64: 4, 1, 1>, cuda_shared = 0 : i64
// CHECK-SAME: cuda_source = "#include <cuda_bf16.h>
// CHECK-SAME: extern \22C\22 __global__ void __launch_bounds__(256) lora_add_bf16_n1024(const __nv_bfloat16* __restrict__ in0, const __nv_bfloat16* __restrict__ in1, __nv_bfloat16* __restrict__ out0)
// CHECK-SAME: if (i >= 1024L) return;
// One block per row for RMSNorm, a warp-shuffle reduction.
// CHECK: lora.rms_norm {{.*}}cuda_entry = "lora_rms_norm_fwd_bf16_r16_h64", cuda_grid = array<i64: 16, 1, 1>
// CHECK-SAME: __shfl_xor_sync
// RoPE: the compiler computes the frequencies (theta^(-2i/d)) and bakes them
// in at full double precision.
// CHECK: lora.rope {{.*}}cuda_entry = "lora_rope_fwd_bf16_f64_h16_n16"
// CHECK-SAME: __constant__ double lora_inv_freq[8] = {1, 0.31622776601683794, 0.10000000000000001,
// A bf16 linear gets the tensor-core GEMM (64x64 tiles of 4 warps for a
// small problem; x, W and the output in order).
// CHECK: lora.linear {{.*}}cuda_block = array<i64: 128, 1, 1>, cuda_entry = "lora_gemm_fwd_m16_n64_k64_bf16", cuda_grid = array<i64: 1, 1, 1>
// CHECK-SAME: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// CHECK-SAME: lora_gemm_fwd_m16_n64_k64_bf16(const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ w, __nv_bfloat16* __restrict__ y)
func.func @f(%x: tensor<2x8x64xbf16>, %w: tensor<64xbf16>, %m: tensor<64x64xbf16>, %pos: tensor<2x8xi32>) -> tensor<2x8x64xbf16> {
  %a = lora.add %x, %x : (tensor<2x8x64xbf16>, tensor<2x8x64xbf16>) -> tensor<2x8x64xbf16>
  %n = lora.rms_norm %a, %w {eps = 1.0e-05 : f64} : (tensor<2x8x64xbf16>, tensor<64xbf16>) -> tensor<2x8x64xbf16>
  %r = lora.rope %n, %pos {head_dim = 16 : i64, theta = 10000.0 : f64} : (tensor<2x8x64xbf16>, tensor<2x8xi32>) -> tensor<2x8x64xbf16>
  %y = lora.linear %r, %m : (tensor<2x8x64xbf16>, tensor<64x64xbf16>) -> tensor<2x8x64xbf16>
  return %y : tensor<2x8x64xbf16>
}

// The fused NF4 linear with its adapter: the codebook and bitsandbytes'
// dynamic map are baked in, the weight arrives packed (unsigned char), the
// adapter's A and B follow, and with dropout (drawn in @train_step only)
// the mask key comes last.
// CHECK-LABEL: func.func @train_step
// CHECK: lora.fused_linear {{.*}}cuda_entry = "lora_gemm_fwd_m16_n64_k64_nf4b64dq256_r8_drop"
// CHECK-SAME: __constant__ float lora_nf4[16] = {-1.000000000e+00f, -6.961928010e-01f,
// CHECK-SAME: __constant__ float lora_dynamic8[256]
// CHECK-SAME: (const __nv_bfloat16* __restrict__ x, const unsigned char* __restrict__ w, const __nv_bfloat16* __restrict__ a_, const __nv_bfloat16* __restrict__ b_, __nv_bfloat16* __restrict__ y, const unsigned long long* __restrict__ key_)
// CHECK-SAME: __fadd_rn(__fmul_rn(lora_dynamic8[wbytes[2048 + 4 * 1 + 4 + blk]],
// CHECK-SAME: lora_keep(key
func.func @train_step(%x: tensor<2x8x64xbf16>, %q: !lora.nf4<64x64, block_size = 64, double_quant = 256>, %a: tensor<8x64xbf16>, %b: tensor<64x8xbf16>) -> tensor<2x8x64xbf16> {
  %y = lora.fused_linear %x, %q adapter(%a, %b) {alpha = 1.600000e+01 : f64, dropout = 5.000000e-02 : f64} : (tensor<2x8x64xbf16>, !lora.nf4<64x64, block_size = 64, double_quant = 256>, tensor<8x64xbf16>, tensor<64x8xbf16>) -> tensor<2x8x64xbf16>
  return %y : tensor<2x8x64xbf16>
}

// Attention: FlashAttention-2 on tensor cores, one block of 4 warps per 64
// query rows of one head of one sequence; K/V fragments through ldmatrix
// (.trans for V), segment ids as the last input.
// CHECK-LABEL: func.func @attention
// CHECK: lora.attention {{.*}}cuda_block = array<i64: 128, 1, 1>, cuda_entry = "lora_attention_fwd_t8_h4_kv2_d16_causal_seg", cuda_grid = array<i64: 1, 4, 2>
// CHECK-SAME: ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16
// CHECK-SAME: constexpr float SCALE = 2.500000000e-01f;
// CHECK-SAME: (const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k, const __nv_bfloat16* __restrict__ v, const int* __restrict__ seg, __nv_bfloat16* __restrict__ o)
func.func @attention(%q: tensor<2x8x64xbf16>, %kv: tensor<2x8x32xbf16>, %seg: tensor<2x8xi32>) -> tensor<2x8x64xbf16> {
  %o = lora.attention %q, %kv, %kv segments %seg {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64} : (tensor<2x8x64xbf16>, tensor<2x8x32xbf16>, tensor<2x8x32xbf16>, tensor<2x8xi32>) -> tensor<2x8x64xbf16>
  return %o : tensor<2x8x64xbf16>
}

// The fused linear backward: four launches of one source (u and g, dB, dA,
// then dx through the NF4 weight), sharing a workspace of 2·m·rank_padded
// f32 (2·16·16·4 = 2048 bytes) for u = drop(x)·Aᵀ and g = dy·B.
// CHECK-LABEL: func.func @backward
// CHECK: lora.fused_linear_grad {{.*}}cuda_entry = "lora_linear_bwd_m16_n64_k64_nf4b64dq256_r8_ug"
// CHECK-SAME: cuda_next = [{block = array<i64: 256, 1, 1>, entry = "lora_linear_bwd_m16_n64_k64_nf4b64dq256_r8_db", grid = array<i64: 1, 1, 1>, shared = 0 : i64}, {block = array<i64: 256, 1, 1>, entry = "lora_linear_bwd_m16_n64_k64_nf4b64dq256_r8_da"
// CHECK-SAME: entry = "lora_linear_bwd_m16_n64_k64_nf4b64dq256_r8_dx"
// CHECK-SAME: void* __restrict__ ws_
// CHECK-SAME: cuda_workspace = 2048 : i64
func.func @backward(%dy: tensor<2x8x64xbf16>, %x: tensor<2x8x64xbf16>, %q: !lora.nf4<64x64, block_size = 64, double_quant = 256>, %a: tensor<8x64xbf16>, %b: tensor<64x8xbf16>) -> (tensor<2x8x64xbf16>, tensor<8x64xbf16>, tensor<64x8xbf16>) {
  %dx, %da, %db = lora.fused_linear_grad %dy, %x, %q, %a, %b {alpha = 1.600000e+01 : f64} : (tensor<2x8x64xbf16>, tensor<2x8x64xbf16>, !lora.nf4<64x64, block_size = 64, double_quant = 256>, tensor<8x64xbf16>, tensor<64x8xbf16>) -> (tensor<2x8x64xbf16>, tensor<8x64xbf16>, tensor<64x8xbf16>)
  return %dx, %da, %db : tensor<2x8x64xbf16>, tensor<8x64xbf16>, tensor<64x8xbf16>
}

// Attention backward: dQ (with each row's logsumexp and rowsum(dO∘O) into
// the workspace: 2·B·H·T f32 = 2·2·4·8·4 = 512 bytes), then dK/dV per key
// tile and kv head.
// CHECK-LABEL: func.func @attention_backward
// CHECK: lora.attention_grad {{.*}}cuda_entry = "lora_attention_bwd_t8_h4_kv2_d16_causal_seg_dq", cuda_grid = array<i64: 1, 4, 2>
// CHECK-SAME: cuda_next = [{block = array<i64: 128, 1, 1>, entry = "lora_attention_bwd_t8_h4_kv2_d16_causal_seg_dkdv", grid = array<i64: 1, 2, 2>
// CHECK-SAME: cuda_workspace = 512 : i64
func.func @attention_backward(%do: tensor<2x8x64xbf16>, %q: tensor<2x8x64xbf16>, %kv: tensor<2x8x32xbf16>, %seg: tensor<2x8xi32>) -> (tensor<2x8x64xbf16>, tensor<2x8x32xbf16>, tensor<2x8x32xbf16>) {
  %dq, %dk, %dv = lora.attention_grad %do, %q, %kv, %kv segments %seg {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64} : (tensor<2x8x64xbf16>, tensor<2x8x64xbf16>, tensor<2x8x32xbf16>, tensor<2x8x32xbf16>, tensor<2x8xi32>) -> (tensor<2x8x64xbf16>, tensor<2x8x32xbf16>, tensor<2x8x32xbf16>)
  return %dq, %dk, %dv : tensor<2x8x64xbf16>, tensor<2x8x32xbf16>, tensor<2x8x32xbf16>
}

// f32 activations: the CUDA-core templates (codegen/cuda/simt.cpp and the family files), one 64x64 tile
// per block of 256 threads; attention one warp per query row (8 per block).
// CHECK-LABEL: func.func @f32_linear
// CHECK: lora.linear {{.*}}cuda_block = array<i64: 256, 1, 1>, cuda_entry = "lora_simt_gemm_fwd_f32_m16_n64_k64_yf32", cuda_grid = array<i64: 1, 1, 1>
// CHECK-SAME: lora_simt_tile
// CHECK: lora.attention {{.*}}cuda_entry = "lora_simt_attention_fwd_f32_b2_t8_h4_kv2_d16", cuda_grid = array<i64: 1, 4, 2>
func.func @f32_linear(%x: tensor<2x8x64xf32>, %m: tensor<64x64xf32>, %kv: tensor<2x8x32xf32>) -> (tensor<2x8x64xf32>, tensor<2x8x64xf32>) {
  %y = lora.linear %x, %m : (tensor<2x8x64xf32>, tensor<64x64xf32>) -> tensor<2x8x64xf32>
  %o = lora.attention %x, %kv, %kv {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64} : (tensor<2x8x64xf32>, tensor<2x8x32xf32>, tensor<2x8x32xf32>) -> tensor<2x8x64xf32>
  return %y, %o : tensor<2x8x64xf32>, tensor<2x8x64xf32>
}

// Negative: no template covers attention with head_dim 512; the kernel is
// kept, gets no source and a warning (the runtime refuses the plan on CUDA).
// CHECK-LABEL: func.func @uncovered
// CHECK: lora.attention
// CHECK-NOT: cuda_source
// CHECK-SAME: kind = "attention_fwd"
func.func @uncovered(%q: tensor<1x4x512xf32>) -> tensor<1x4x512xf32> {
  // expected-warning@+1 {{no CUDA template covers kernel 'attention_fwd' with these operand types and sizes; the plan cannot run with --device cuda}}
  %o = lora.attention %q, %q, %q {num_heads = 1 : i64, num_kv_heads = 1 : i64, head_dim = 512 : i64} : (tensor<1x4x512xf32>, tensor<1x4x512xf32>, tensor<1x4x512xf32>) -> tensor<1x4x512xf32>
  return %o : tensor<1x4x512xf32>
}

// The optimizer step's kernels all get sources: the global norm (block
// partial sums in double into the workspace, then one block adds them in
// order), the clip factor and AdamW.
// CHECK-LABEL: func.func @opt
// CHECK: lora.global_norm {{.*}}cuda_entry = "lora_global_norm_2_part", cuda_grid = array<i64: 1, 1, 1>, cuda_next = [{block = array<i64: 256, 1, 1>, entry = "lora_global_norm_2_sum", grid = array<i64: 1, 1, 1>, shared = 0 : i64}]
// CHECK-SAME: cuda_workspace = 8 : i64
// CHECK: lora.clip_scale {{.*}}cuda_entry = "lora_clip_scale_f32_n1"
// CHECK: lora.adamw {{.*}}cuda_entry = "lora_adamw_f32_n8"
func.func @opt(%g: tensor<2x4xf32>, %h: tensor<4xf32>, %count: tensor<f32>, %lr: tensor<f32>, %step: tensor<f32>) -> (tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4xf32>) {
  %norm = lora.global_norm %g, %h : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<f32>
  %scale = lora.clip_scale %norm, %count {max_norm = 1.0 : f64} : (tensor<f32>, tensor<f32>) -> tensor<f32>
  %p, %m, %v = lora.adamw %g, %g, %g, %g, %lr, %step, %scale {beta1 = 0.9 : f64, beta2 = 0.999 : f64, eps = 1.0e-8 : f64, weight_decay = 0.0 : f64} : (tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4xf32>, tensor<f32>, tensor<f32>, tensor<f32>) -> (tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4xf32>)
  return %p, %m, %v : tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4xf32>
}

// The losses on materialized logits (one block per token row, the token sums
// in a second launch over a workspace of a double per token), DPO's pair
// loss and EWC's penalty (one warp per row of the update, 8 rows a block).
// CHECK-LABEL: func.func @losses
// CHECK: lora.cross_entropy {{.*}}cuda_entry = "lora_cross_entropy_fwd_t16_v100_f32_i32_rows", cuda_grid = array<i64: 16, 1, 1>
// CHECK-SAME: cuda_next = [{block = array<i64: 256, 1, 1>, entry = "lora_cross_entropy_fwd_t16_v100_f32_i32_sum", grid = array<i64: 1, 1, 1>, shared = 0 : i64}]
// CHECK-SAME: float* __restrict__ loss, long long* __restrict__ count, void* __restrict__ ws_
// CHECK-SAME: cuda_workspace = 128 : i64
// CHECK: lora.sequence_logprobs {{.*}}cuda_entry = "lora_sequence_logprobs_fwd_t16_v100_f32_i32_s4_rows"
// CHECK-SAME: entry = "lora_sequence_logprobs_fwd_t16_v100_f32_i32_s4_sum", grid = array<i64: 4, 1, 1>
// CHECK: lora.dpo_loss {{.*}}cuda_entry = "lora_dpo_loss_fwd_p2_ipo"
// CHECK-SAME: const double beta = 0.25;
// CHECK: lora.ewc_penalty {{.*}}cuda_entry = "lora_ewc_penalty_fwd_n20_k64_r4_rows", cuda_grid = array<i64: 3, 1, 1>
// CHECK-SAME: lora_ewc_penalty_fwd_n20_k64_r4_sum
func.func @losses(%logits: tensor<2x8x100xf32>, %t: tensor<2x8xi32>, %m: tensor<2x8xi1>, %seq: tensor<2x8xi32>, %pairs: tensor<2xi1>, %a: tensor<4x64xf32>, %b: tensor<20x4xf32>, %f: tensor<20x64xf32>, %n: tensor<i64>) -> (tensor<f32>, tensor<f32>, tensor<f32>) {
  %l, %c = lora.cross_entropy %logits, %t, %m : (tensor<2x8x100xf32>, tensor<2x8xi32>, tensor<2x8xi1>) -> (tensor<f32>, tensor<i64>)
  %lp = lora.sequence_logprobs %logits, %t, %m, %seq {num_sequences = 4 : i64} : (tensor<2x8x100xf32>, tensor<2x8xi32>, tensor<2x8xi1>, tensor<2x8xi32>) -> tensor<4xf32>
  %d:6 = lora.dpo_loss %lp, %lp, %pairs {beta = 0.25 : f64, loss_type = "ipo"} : (tensor<4xf32>, tensor<4xf32>, tensor<2xi1>) -> (tensor<f32>, tensor<i64>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>)
  %w, %p = lora.ewc_penalty %a, %b, %f, %n {lambda = 100.0 : f64, scaling = 2.0 : f64} : (tensor<4x64xf32>, tensor<20x4xf32>, tensor<20x64xf32>, tensor<i64>) -> (tensor<f32>, tensor<f32>)
  return %l, %d#0, %w : tensor<f32>, tensor<f32>, tensor<f32>
}

// Large reductions spread over blocks: a million gradient elements give 256
// blocks of partial sums (2 KiB of workspace); the RMSNorm backward's weight
// gradient sums chunks of 32 rows per block (128 rows: 4 chunks of the one
// 256-column strip), adds the chunks per column, then computes dx per row.
// CHECK-LABEL: func.func @wide
// CHECK: lora.global_norm {{.*}}cuda_entry = "lora_global_norm_1_part", cuda_grid = array<i64: 256, 1, 1>
// CHECK-SAME: cuda_workspace = 2048 : i64
// CHECK: lora.rms_norm_grad {{.*}}cuda_entry = "lora_rms_norm_bwd_bf16_r128_h64_dwp", cuda_grid = array<i64: 1, 4, 1>, cuda_next = [{block = array<i64: 256, 1, 1>, entry = "lora_rms_norm_bwd_bf16_r128_h64_dws", grid = array<i64: 1, 1, 1>, shared = 0 : i64}, {block = array<i64: 256, 1, 1>, entry = "lora_rms_norm_bwd_bf16_r128_h64_dx", grid = array<i64: 128, 1, 1>, shared = 0 : i64}]
// CHECK-SAME: cuda_workspace = 2048 : i64
func.func @wide(%g: tensor<1024x1024xf32>, %dy: tensor<2x64x64xbf16>, %x: tensor<2x64x64xbf16>, %w: tensor<64xbf16>) -> (tensor<f32>, tensor<2x64x64xbf16>, tensor<64xbf16>) {
  %norm = lora.global_norm %g : (tensor<1024x1024xf32>) -> tensor<f32>
  %dx, %dw = lora.rms_norm_grad %dy, %x, %w {eps = 1.0e-05 : f64} : (tensor<2x64x64xbf16>, tensor<2x64x64xbf16>, tensor<64xbf16>) -> (tensor<2x64x64xbf16>, tensor<64xbf16>)
  return %norm, %dx, %dw : tensor<f32>, tensor<2x64x64xbf16>, tensor<64xbf16>
}
