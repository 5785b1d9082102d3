// Round-trip of every lora op, type and attribute: parse, print, parse again.
// RUN: lorac-opt %s -split-input-file | lorac-opt -split-input-file | FileCheck %s
// The generic form round-trips too.
// RUN: lorac-opt %s -split-input-file -mlir-print-op-generic | lorac-opt -split-input-file | FileCheck %s

// Parameters of every role, float and NF4.
// CHECK-LABEL: func.func @params
func.func @params() -> (tensor<64x32xbf16>, tensor<8x32xf32>, tensor<8x32xf32>, !lora.nf4<64x32, block_size = 64, double_quant = 256>) {
  // CHECK: lora.param "model.layers.0.self_attn.q_proj.weight" frozen : tensor<64x32xbf16>
  %w = lora.param "model.layers.0.self_attn.q_proj.weight" frozen : tensor<64x32xbf16>
  // CHECK: lora.param "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" trainable : tensor<8x32xf32>
  %a = lora.param "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" trainable : tensor<8x32xf32>
  // CHECK: lora.param "adamw.m.0" optimizer_state {of = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"} : tensor<8x32xf32>
  %m = lora.param "adamw.m.0" optimizer_state {of = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"} : tensor<8x32xf32>
  // CHECK: lora.param "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight" trainable init(zeros) : tensor<32x8xf32>
  %bz = lora.param "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight" trainable init(zeros) : tensor<32x8xf32>
  // CHECK: lora.param "grad/a" gradient {of = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"} : tensor<8x32xf32>
  %g = lora.param "grad/a" gradient {of = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"} : tensor<8x32xf32>
  // CHECK: lora.param "master/a" optimizer_state init(copy_of_owner) {of = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"} : tensor<8x32xf32>
  %ms = lora.param "master/a" optimizer_state init(copy_of_owner) {of = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"} : tensor<8x32xf32>
  // CHECK: lora.param "fisher/w" frozen init(fisher) {of = "model.layers.0.self_attn.q_proj.weight"} : tensor<64x32xf32>
  %f = lora.param "fisher/w" frozen init(fisher) {of = "model.layers.0.self_attn.q_proj.weight"} : tensor<64x32xf32>
  // CHECK: lora.param "model.layers.0.mlp.up_proj.weight" frozen : !lora.nf4<64x32, block_size = 64, double_quant = 256>
  %q = lora.param "model.layers.0.mlp.up_proj.weight" frozen : !lora.nf4<64x32, block_size = 64, double_quant = 256>
  return %w, %a, %m, %q : tensor<64x32xbf16>, tensor<8x32xf32>, tensor<8x32xf32>, !lora.nf4<64x32, block_size = 64, double_quant = 256>
}

// -----

// NF4 without double quantization, and dequantize.
// CHECK-LABEL: func.func @dequantize
func.func @dequantize(%q: !lora.nf4<128x64, block_size = 64, double_quant = none>) -> tensor<128x64xbf16> {
  // CHECK: lora.dequantize %{{.*}} : !lora.nf4<128x64, block_size = 64, double_quant = none> -> tensor<128x64xbf16>
  %w = lora.dequantize %q : !lora.nf4<128x64, block_size = 64, double_quant = none> -> tensor<128x64xbf16>
  return %w : tensor<128x64xbf16>
}

// -----

// A whole decoder layer with dynamic batch and sequence.
// CHECK-LABEL: func.func @layer
func.func @layer(%ids: tensor<?x?xi32>, %pos: tensor<?x?xi32>, %table: tensor<100x64xbf16>, %norm: tensor<64xbf16>,
                 %wq: tensor<64x64xbf16>, %bq: tensor<64xbf16>, %wk: tensor<32x64xbf16>, %wv: tensor<32x64xbf16>,
                 %a: tensor<4x64xbf16>, %b: tensor<64x4xbf16>, %wg: tensor<128x64xbf16>, %wu: tensor<128x64xbf16>) -> tensor<?x?x100xf32> {
  // CHECK: %[[H:.*]] = lora.embedding %{{.*}}, %{{.*}} : (tensor<100x64xbf16>, tensor<?x?xi32>) -> tensor<?x?x64xbf16>
  %h = lora.embedding %table, %ids : (tensor<100x64xbf16>, tensor<?x?xi32>) -> tensor<?x?x64xbf16>
  // CHECK: %[[X:.*]] = lora.rms_norm %[[H]], %{{.*}} {eps = 1.000000e-05 : f64}
  %x = lora.rms_norm %h, %norm {eps = 1.0e-05 : f64} : (tensor<?x?x64xbf16>, tensor<64xbf16>) -> tensor<?x?x64xbf16>
  // A norm per 16-feature group (Qwen3's per-head q_norm): one [16] scale.
  // CHECK: lora.rms_norm %[[X]], %{{.*}} {eps = 9.9999999999999995E-7 : f64} : (tensor<?x?x64xbf16>, tensor<16xbf16>)
  %headnorm = lora.param "q_norm.weight" frozen : tensor<16xbf16>
  %xh = lora.rms_norm %x, %headnorm {eps = 1.0e-06 : f64} : (tensor<?x?x64xbf16>, tensor<16xbf16>) -> tensor<?x?x64xbf16>
  // CHECK: lora.linear %[[X]], %{{.*}}, bias %{{.*}} : (tensor<?x?x64xbf16>, tensor<64x64xbf16>, tensor<64xbf16>) -> tensor<?x?x64xbf16>
  %q = lora.linear %x, %wq, bias %bq : (tensor<?x?x64xbf16>, tensor<64x64xbf16>, tensor<64xbf16>) -> tensor<?x?x64xbf16>
  // CHECK: lora.linear %[[X]], %{{.*}} : (tensor<?x?x64xbf16>, tensor<32x64xbf16>) -> tensor<?x?x32xbf16>
  %k = lora.linear %x, %wk : (tensor<?x?x64xbf16>, tensor<32x64xbf16>) -> tensor<?x?x32xbf16>
  %v = lora.linear %x, %wv : (tensor<?x?x64xbf16>, tensor<32x64xbf16>) -> tensor<?x?x32xbf16>
  // CHECK: lora.adapter %[[X]], %{{.*}}, %{{.*}} {alpha = 8.000000e+00 : f64, dropout = 1.000000e-01 : f64}
  %d = lora.adapter %x, %a, %b {alpha = 8.0 : f64, dropout = 0.1 : f64} : (tensor<?x?x64xbf16>, tensor<4x64xbf16>, tensor<64x4xbf16>) -> tensor<?x?x64xbf16>
  // CHECK: lora.adapter %[[X]], %{{.*}}, %{{.*}} {alpha = 4.000000e+00 : f64} :
  %d0 = lora.adapter %x, %a, %b {alpha = 4.0 : f64} : (tensor<?x?x64xbf16>, tensor<4x64xbf16>, tensor<64x4xbf16>) -> tensor<?x?x64xbf16>
  // CHECK: lora.add
  %q1 = lora.add %q, %d : (tensor<?x?x64xbf16>, tensor<?x?x64xbf16>) -> tensor<?x?x64xbf16>
  // CHECK: lora.rope %{{.*}}, %{{.*}} {head_dim = 16 : i64, theta = 1.000000e+04 : f64}
  %qr = lora.rope %q1, %pos {head_dim = 16 : i64, theta = 10000.0 : f64} : (tensor<?x?x64xbf16>, tensor<?x?xi32>) -> tensor<?x?x64xbf16>
  // CHECK: lora.rope %{{.*}}, %{{.*}} {head_dim = 16 : i64, scaling = #lora.rope_scaling<llama3, factor = 8.000000e+00, low_freq_factor = 1.000000e+00, high_freq_factor = 4.000000e+00, original_max_position_embeddings = 8192>, theta = 5.000000e+05 : f64}
  %kr = lora.rope %k, %pos {head_dim = 16 : i64, theta = 500000.0 : f64, scaling = #lora.rope_scaling<llama3, factor = 8.0, low_freq_factor = 1.0, high_freq_factor = 4.0, original_max_position_embeddings = 8192>} : (tensor<?x?x32xbf16>, tensor<?x?xi32>) -> tensor<?x?x32xbf16>
  // CHECK: lora.rope {{.*}}scaling = #lora.rope_scaling<linear, factor = 2.000000e+00>
  %kl = lora.rope %k, %pos {head_dim = 16 : i64, theta = 10000.0 : f64, scaling = #lora.rope_scaling<linear, factor = 2.0>} : (tensor<?x?x32xbf16>, tensor<?x?xi32>) -> tensor<?x?x32xbf16>
  // GQA: 4 query heads over 2 kv heads.
  // CHECK: lora.attention %{{.*}}, %{{.*}}, %{{.*}} {head_dim = 16 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64}
  %o = lora.attention %qr, %kr, %v {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64} : (tensor<?x?x64xbf16>, tensor<?x?x32xbf16>, tensor<?x?x32xbf16>) -> tensor<?x?x64xbf16>
  // Packed sequences (segment ids), a sliding window and an explicit scale.
  // CHECK: lora.attention %{{.*}}, %{{.*}}, %{{.*}} segments %{{.*}} {head_dim = 16 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64, scale = 1.250000e-01 : f64, sliding_window = 4096 : i64}
  %o2 = lora.attention %qr, %kr, %v segments %ids {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.125 : f64, sliding_window = 4096 : i64} : (tensor<?x?x64xbf16>, tensor<?x?x32xbf16>, tensor<?x?x32xbf16>, tensor<?x?xi32>) -> tensor<?x?x64xbf16>
  // CHECK: lora.add
  %h1 = lora.add %h, %o2 : (tensor<?x?x64xbf16>, tensor<?x?x64xbf16>) -> tensor<?x?x64xbf16>
  %g = lora.linear %h1, %wg : (tensor<?x?x64xbf16>, tensor<128x64xbf16>) -> tensor<?x?x128xbf16>
  %u = lora.linear %h1, %wu : (tensor<?x?x64xbf16>, tensor<128x64xbf16>) -> tensor<?x?x128xbf16>
  // CHECK: lora.swiglu %{{.*}}, %{{.*}} : (tensor<?x?x128xbf16>, tensor<?x?x128xbf16>) -> tensor<?x?x128xbf16>
  %s = lora.swiglu %g, %u : (tensor<?x?x128xbf16>, tensor<?x?x128xbf16>) -> tensor<?x?x128xbf16>
  // Tied embeddings: the LM head reads the embedding table.
  // CHECK: lora.lm_head %{{.*}}, %{{.*}} : (tensor<?x?x64xbf16>, tensor<100x64xbf16>) -> tensor<?x?x100xf32>
  %logits = lora.lm_head %h1, %table : (tensor<?x?x64xbf16>, tensor<100x64xbf16>) -> tensor<?x?x100xf32>
  return %logits : tensor<?x?x100xf32>
}

// -----

// Cross-entropy on a static grid returns the summed loss and the token count.
// CHECK-LABEL: func.func @loss
func.func @loss(%logits: tensor<2x8x100xf32>, %t: tensor<2x8xi32>, %m: tensor<2x8xi1>) -> (tensor<f32>, tensor<i64>) {
  // CHECK: %{{.*}}, %{{.*}} = lora.cross_entropy %{{.*}}, %{{.*}}, %{{.*}} : (tensor<2x8x100xf32>, tensor<2x8xi32>, tensor<2x8xi1>) -> (tensor<f32>, tensor<i64>)
  %l, %n = lora.cross_entropy %logits, %t, %m : (tensor<2x8x100xf32>, tensor<2x8xi32>, tensor<2x8xi1>) -> (tensor<f32>, tensor<i64>)
  return %l, %n : tensor<f32>, tensor<i64>
}

// -----

// DPO: per-sequence log-probabilities, the pairs' loss and their gradients.
// CHECK-LABEL: func.func @dpo
func.func @dpo(%logits: tensor<2x8x100xf32>, %t: tensor<2x8xi32>, %m: tensor<2x8xi1>, %s: tensor<2x8xi32>, %ref: tensor<4xf32>, %pairs: tensor<2xi1>, %seed: tensor<f32>) -> tensor<2x8x100xf32> {
  // CHECK: lora.sequence_logprobs %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} {num_sequences = 4 : i64} : (tensor<2x8x100xf32>, tensor<2x8xi32>, tensor<2x8xi1>, tensor<2x8xi32>) -> tensor<4xf32>
  %lp = lora.sequence_logprobs %logits, %t, %m, %s {num_sequences = 4 : i64} : (tensor<2x8x100xf32>, tensor<2x8xi32>, tensor<2x8xi1>, tensor<2x8xi32>) -> tensor<4xf32>
  // CHECK: lora.dpo_loss %{{.*}}, %{{.*}}, %{{.*}} {beta = 1.000000e-01 : f64, loss_type = "sigmoid"}
  %l, %n, %rc, %rr, %acc, %mg = lora.dpo_loss %lp, %ref, %pairs {beta = 0.1 : f64, loss_type = "sigmoid"} : (tensor<4xf32>, tensor<4xf32>, tensor<2xi1>) -> (tensor<f32>, tensor<i64>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>)
  // CHECK: lora.dpo_loss_grad %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} {beta = 1.000000e-01 : f64, loss_type = "ipo"}
  %dlp = lora.dpo_loss_grad %lp, %ref, %pairs, %seed {beta = 0.1 : f64, loss_type = "ipo"} : (tensor<4xf32>, tensor<4xf32>, tensor<2xi1>, tensor<f32>) -> tensor<4xf32>
  // CHECK: lora.sequence_logprobs_grad
  %dl = lora.sequence_logprobs_grad %logits, %t, %m, %s, %dlp : (tensor<2x8x100xf32>, tensor<2x8xi32>, tensor<2x8xi1>, tensor<2x8xi32>, tensor<4xf32>) -> tensor<2x8x100xf32>
  return %dl : tensor<2x8x100xf32>
}

// -----

// EWC: the penalty on an adapter's update and its gradients.
// CHECK-LABEL: func.func @ewc
func.func @ewc(%a: tensor<4x64xf32>, %b: tensor<32x4xf32>, %fi: tensor<32x64xf32>, %n: tensor<i64>, %d: tensor<f32>) -> (tensor<f32>, tensor<4x64xf32>) {
  // CHECK: lora.ewc_penalty %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} {lambda = 1.000000e+01 : f64, scaling = 2.000000e+00 : f64}
  %w, %p = lora.ewc_penalty %a, %b, %fi, %n {lambda = 10.0 : f64, scaling = 2.0 : f64} : (tensor<4x64xf32>, tensor<32x4xf32>, tensor<32x64xf32>, tensor<i64>) -> (tensor<f32>, tensor<f32>)
  // CHECK: lora.ewc_penalty_grad
  %da, %db = lora.ewc_penalty_grad %a, %b, %fi, %n, %d {lambda = 10.0 : f64, scaling = 2.0 : f64} : (tensor<4x64xf32>, tensor<32x4xf32>, tensor<32x64xf32>, tensor<i64>, tensor<f32>) -> (tensor<4x64xf32>, tensor<32x4xf32>)
  return %w, %da : tensor<f32>, tensor<4x64xf32>
}

// -----

// The module-level configuration attributes.
// CHECK-LABEL: module attributes
// CHECK-SAME: lora.adapter_config = {lora_alpha = 1.600000e+01 : f64, lora_dropout = 0.000000e+00 : f64, r = 8 : i64, target_modules = ["q_proj"]}
// CHECK-SAME: lora.model = {architecture = "LlamaForCausalLM"
module attributes {lora.model = {architecture = "LlamaForCausalLM", hidden_size = 64 : i64, intermediate_size = 128 : i64, num_hidden_layers = 1 : i64, num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, head_dim = 16 : i64, vocab_size = 100 : i64, rms_norm_eps = 1.0e-05 : f64, rope_theta = 10000.0 : f64, tie_word_embeddings = true, attention_bias = false},
                   lora.adapter_config = {r = 8 : i64, lora_alpha = 16.0 : f64, lora_dropout = 0.0 : f64, target_modules = ["q_proj"]}} {
}

// -----

// Generation picks one position per sequence.
// CHECK-LABEL: func.func @select
func.func @select(%h: tensor<2x8x64xbf16>, %last: tensor<2xi32>) -> tensor<2x1x64xbf16> {
  // CHECK: lora.select_rows %{{.*}}, %{{.*}} : (tensor<2x8x64xbf16>, tensor<2xi32>) -> tensor<2x1x64xbf16>
  %r = lora.select_rows %h, %last : (tensor<2x8x64xbf16>, tensor<2xi32>) -> tensor<2x1x64xbf16>
  return %r : tensor<2x1x64xbf16>
}

// -----

// The LM-head loss with its input gradient (lora-fuse-lm-head-loss).
// CHECK-LABEL: func.func @loss_with_grad
func.func @loss_with_grad(%h: tensor<2x4x16xbf16>, %w: tensor<50x16xbf16>, %t: tensor<2x4xi32>, %m: tensor<2x4xi1>) -> (tensor<f32>, tensor<i64>, tensor<2x4x16xbf16>) {
  // CHECK: lora.lm_head_cross_entropy_with_grad %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} {chunk_size = 8 : i64, dloss = 1.000000e+00 : f64} : (tensor<2x4x16xbf16>, tensor<50x16xbf16>, tensor<2x4xi32>, tensor<2x4xi1>) -> (tensor<f32>, tensor<i64>, tensor<2x4x16xbf16>)
  %l, %n, %dx = lora.lm_head_cross_entropy_with_grad %h, %w, %t, %m {chunk_size = 8 : i64, dloss = 1.0 : f64} : (tensor<2x4x16xbf16>, tensor<50x16xbf16>, tensor<2x4xi32>, tensor<2x4xi1>) -> (tensor<f32>, tensor<i64>, tensor<2x4x16xbf16>)
  return %l, %n, %dx : tensor<f32>, tensor<i64>, tensor<2x4x16xbf16>
}

// -----

// The data-parallel collectives (lora-data-parallel).
// CHECK-LABEL: func.func @collectives
func.func @collectives(%sync: tensor<f32>, %n: tensor<f32>) -> tensor<f32> {
  // CHECK: lora.grad_all_reduce_start ["grad/a", "grad/b"] sync(%{{.*}}) {bucket = 0 : i64, bytes = 64 : i64} : tensor<f32>
  lora.grad_all_reduce_start ["grad/a", "grad/b"] sync(%sync) {bucket = 0 : i64, bytes = 64 : i64} : tensor<f32>
  // CHECK: lora.grad_all_reduce_wait ["grad/a", "grad/b"] {bucket = 0 : i64, bytes = 64 : i64}
  lora.grad_all_reduce_wait ["grad/a", "grad/b"] {bucket = 0 : i64, bytes = 64 : i64}
  // CHECK: lora.all_reduce_sum %{{.*}} : (tensor<f32>) -> tensor<f32>
  %all = lora.all_reduce_sum %n : (tensor<f32>) -> tensor<f32>
  return %all : tensor<f32>
}

// -----

// Attention with its saved softmax statistics (lora-save-attention-stats),
// and a backward that reads them.
// CHECK-LABEL: func.func @attention_saved
func.func @attention_saved(%q: tensor<2x8x64xbf16>, %k: tensor<2x8x32xbf16>, %do: tensor<2x8x64xbf16>, %s: tensor<2x8xi32>) -> (tensor<2x8x64xbf16>, tensor<2x8x32xbf16>, tensor<2x8x32xbf16>) {
  // CHECK: %[[O:.*]], %[[L:.*]] = lora.attention_with_lse %{{.*}}, %{{.*}}, %{{.*}} segments %{{.*}} {head_dim = 16 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64} : (tensor<2x8x64xbf16>, tensor<2x8x32xbf16>, tensor<2x8x32xbf16>, tensor<2x8xi32>) -> (tensor<2x8x64xbf16>, tensor<2x4x8xf32>)
  %o, %lse = lora.attention_with_lse %q, %k, %k segments %s {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64} : (tensor<2x8x64xbf16>, tensor<2x8x32xbf16>, tensor<2x8x32xbf16>, tensor<2x8xi32>) -> (tensor<2x8x64xbf16>, tensor<2x4x8xf32>)
  // CHECK: lora.attention_grad %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} saved(%[[O]], %[[L]]) segments %{{.*}} {head_dim = 16 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64}
  %dq, %dk, %dv = lora.attention_grad %do, %q, %k, %k saved(%o, %lse) segments %s {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64} : (tensor<2x8x64xbf16>, tensor<2x8x64xbf16>, tensor<2x8x32xbf16>, tensor<2x8x32xbf16>, tensor<2x8x64xbf16>, tensor<2x4x8xf32>, tensor<2x8xi32>) -> (tensor<2x8x64xbf16>, tensor<2x8x32xbf16>, tensor<2x8x32xbf16>)
  // CHECK: lora.attention_grad %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} segments
  %a:3 = lora.attention_grad %do, %q, %k, %k segments %s {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64} : (tensor<2x8x64xbf16>, tensor<2x8x64xbf16>, tensor<2x8x32xbf16>, tensor<2x8x32xbf16>, tensor<2x8xi32>) -> (tensor<2x8x64xbf16>, tensor<2x8x32xbf16>, tensor<2x8x32xbf16>)
  return %dq, %dk, %a#2 : tensor<2x8x64xbf16>, tensor<2x8x32xbf16>, tensor<2x8x32xbf16>
}

// The linear family's gradient ops with and without the input gradient dx.
// CHECK-LABEL: func.func @linear_grads_without_dx
// CHECK: %{{.*}}, %{{.*}} = lora.fused_linear_grad
// CHECK: %{{.*}}, %{{.*}} = lora.adapter_grad
func.func @linear_grads_without_dx(%dy: tensor<2x8x64xf32>, %x: tensor<2x8x32xf32>, %w: tensor<64x32xf32>, %a: tensor<4x32xf32>, %b: tensor<64x4xf32>) -> (tensor<4x32xf32>, tensor<64x4xf32>, tensor<4x32xf32>, tensor<64x4xf32>) {
  %da, %db = lora.fused_linear_grad %dy, %x, %w, %a, %b {alpha = 8.0 : f64} : (tensor<2x8x64xf32>, tensor<2x8x32xf32>, tensor<64x32xf32>, tensor<4x32xf32>, tensor<64x4xf32>) -> (tensor<4x32xf32>, tensor<64x4xf32>)
  %da2, %db2 = lora.adapter_grad %dy, %x, %a, %b {alpha = 8.0 : f64} : (tensor<2x8x64xf32>, tensor<2x8x32xf32>, tensor<4x32xf32>, tensor<64x4xf32>) -> (tensor<4x32xf32>, tensor<64x4xf32>)
  return %da, %db, %da2, %db2 : tensor<4x32xf32>, tensor<64x4xf32>, tensor<4x32xf32>, tensor<64x4xf32>
}
