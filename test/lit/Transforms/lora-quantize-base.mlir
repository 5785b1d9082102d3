// RUN: lorac-opt %s -split-input-file -verify-diagnostics -lora-quantize-base | FileCheck %s
// RUN: lorac-opt %s -split-input-file -verify-diagnostics -lora-quantize-base="double-quant-block=0" | FileCheck %s --check-prefix=NODQ
// RUN: lorac-opt %s -split-input-file -verify-diagnostics -lora-quantize-base="block-size=128 double-quant-block=64" | FileCheck %s --check-prefix=B128
// Options out of range: every split reports the error, before looking at the IR.
// RUN: not lorac-opt %s -split-input-file -lora-quantize-base="format=int8" 2>&1 | FileCheck %s --check-prefix=FORMAT
// RUN: not lorac-opt %s -split-input-file -lora-quantize-base="block-size=48" 2>&1 | FileCheck %s --check-prefix=BLOCK48
// RUN: not lorac-opt %s -split-input-file -lora-quantize-base="block-size=8" 2>&1 | FileCheck %s --check-prefix=BLOCK8
// RUN: not lorac-opt %s -split-input-file -lora-quantize-base="double-quant-block=100" 2>&1 | FileCheck %s --check-prefix=DQBLOCK
// The imported tiny Llama (2 layers): its 7 projections per layer, nothing else.
// RUN: lorac import %inputs/configs/tiny-llama/config.json -o - | lorac-opt -lora-quantize-base | FileCheck %s --check-prefix=TINY
// RUN: lorac import %inputs/configs/tiny-llama/config.json -o - | lorac-opt -lora-quantize-base | grep -c "= lora.dequantize " | FileCheck %s --check-prefix=COUNT14
// RUN: lorac import %inputs/configs/tiny-llama/config.json -o - | lorac-opt -lora-quantize-base | grep -c "!lora.nf4<.*> -> tensor" | FileCheck %s --check-prefix=COUNT14

// FORMAT: error: option 'format' must be 'nf4' (the only quantized format), got 'int8'
// BLOCK48: error: option 'block-size' must be a power of two in [16, 4096], got 48
// BLOCK8: error: option 'block-size' must be a power of two in [16, 4096], got 8
// DQBLOCK: error: option 'double-quant-block' must be 0 (no double quantization) or a power of two in [1, 4096], got 100

// TINY-NOT: lora.dequantize
// TINY: lora.param "model.embed_tokens.weight" frozen : tensor<256x64xbf16>
// TINY: lora.param "model.layers.0.input_layernorm.weight" frozen : tensor<64xbf16>
// TINY: lora.param "model.layers.0.self_attn.q_proj.weight" frozen : !lora.nf4<64x64, block_size = 64, double_quant = 256>
// TINY: lora.param "model.layers.0.mlp.down_proj.weight" frozen : !lora.nf4<64x128, block_size = 64, double_quant = 256>
// TINY: lora.param "model.layers.1.mlp.down_proj.weight" frozen : !lora.nf4<64x128, block_size = 64, double_quant = 256>
// TINY: lora.param "model.norm.weight" frozen : tensor<64xbf16>
// TINY: lora.param "lm_head.weight" frozen : tensor<256x64xbf16>
// COUNT14: 14

// A one-layer Llama slice with an adapter on q_proj and a Qwen-style k_proj
// bias: only the frozen linear weights (q, k, down) become NF4, each read
// through a dequantize placed right after it; the embedding, norms, bias,
// adapter weights and LM head keep their types.
// CHECK-LABEL: func.func @llama_slice
// CHECK: lora.param "model.embed_tokens.weight" frozen : tensor<256x64xbf16>
// CHECK: lora.param "model.layers.0.input_layernorm.weight" frozen : tensor<64xbf16>
// CHECK: %[[WQ:.*]] = lora.param "model.layers.0.self_attn.q_proj.weight" frozen : !lora.nf4<64x64, block_size = 64, double_quant = 256>
// CHECK-NEXT: %[[DQ:.*]] = lora.dequantize %[[WQ]] : !lora.nf4<64x64, block_size = 64, double_quant = 256> -> tensor<64x64xbf16>
// CHECK-NEXT: %[[Q:.*]] = lora.linear %[[X:.*]], %[[DQ]] : (tensor<?x?x64xbf16>, tensor<64x64xbf16>) -> tensor<?x?x64xbf16>
// CHECK-NEXT: lora.param "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" trainable : tensor<16x64xbf16>
// CHECK-NEXT: lora.param "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight" trainable : tensor<64x16xbf16>
// CHECK-NEXT: lora.adapter %[[X]],
// CHECK: %[[WK:.*]] = lora.param "model.layers.0.self_attn.k_proj.weight" frozen : !lora.nf4<32x64, block_size = 64, double_quant = 256>
// CHECK-NEXT: %[[DK:.*]] = lora.dequantize %[[WK]]
// CHECK-NEXT: %[[BK:.*]] = lora.param "model.layers.0.self_attn.k_proj.bias" frozen : tensor<32xbf16>
// CHECK-NEXT: lora.linear %[[X]], %[[DK]], bias %[[BK]] :
// CHECK: lora.param "model.layers.0.mlp.down_proj.weight" frozen : !lora.nf4<64x128, block_size = 64, double_quant = 256>
// CHECK-NEXT: lora.dequantize {{.*}} -> tensor<64x128xbf16>
// CHECK: lora.param "model.norm.weight" frozen : tensor<64xbf16>
// CHECK-NOT: lora.dequantize
// CHECK: lora.param "lm_head.weight" frozen : tensor<256x64xbf16>
// CHECK-NOT: lora.dequantize
// CHECK: return

// Without double quantization.
// NODQ-LABEL: func.func @llama_slice
// NODQ: "model.layers.0.self_attn.q_proj.weight" frozen : !lora.nf4<64x64, block_size = 64, double_quant = none>
// NODQ: lora.dequantize {{.*}} : !lora.nf4<64x64, block_size = 64, double_quant = none> -> tensor<64x64xbf16>
// NODQ: "model.layers.0.mlp.down_proj.weight" frozen : !lora.nf4<64x128, block_size = 64, double_quant = none>

// Larger blocks, smaller second-level groups.
// B128-LABEL: func.func @llama_slice
// B128: "model.layers.0.self_attn.q_proj.weight" frozen : !lora.nf4<64x64, block_size = 128, double_quant = 64>
// B128: "model.layers.0.self_attn.k_proj.weight" frozen : !lora.nf4<32x64, block_size = 128, double_quant = 64>
// B128: "lm_head.weight" frozen : tensor<256x64xbf16>

module attributes {lora.model = {architecture = "LlamaForCausalLM", hidden_size = 64 : i64, intermediate_size = 128 : i64, num_hidden_layers = 1 : i64, num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, head_dim = 16 : i64, vocab_size = 256 : i64, rms_norm_eps = 1.0e-05 : f64, rope_theta = 10000.0 : f64, tie_word_embeddings = false, attention_bias = true}} {
  func.func @llama_slice(%ids: tensor<?x?xi32>, %act: tensor<?x?x128xbf16>) -> tensor<?x?x256xf32> {
    %emb = lora.param "model.embed_tokens.weight" frozen : tensor<256x64xbf16>
    %h = lora.embedding %emb, %ids : (tensor<256x64xbf16>, tensor<?x?xi32>) -> tensor<?x?x64xbf16>
    %n0 = lora.param "model.layers.0.input_layernorm.weight" frozen : tensor<64xbf16>
    %x = lora.rms_norm %h, %n0 {eps = 1.0e-05 : f64} : (tensor<?x?x64xbf16>, tensor<64xbf16>) -> tensor<?x?x64xbf16>
    %wq = lora.param "model.layers.0.self_attn.q_proj.weight" frozen : tensor<64x64xbf16>
    %q = lora.linear %x, %wq : (tensor<?x?x64xbf16>, tensor<64x64xbf16>) -> tensor<?x?x64xbf16>
    %a = lora.param "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" trainable : tensor<16x64xbf16>
    %b = lora.param "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight" trainable : tensor<64x16xbf16>
    %d = lora.adapter %x, %a, %b {alpha = 32.0 : f64} : (tensor<?x?x64xbf16>, tensor<16x64xbf16>, tensor<64x16xbf16>) -> tensor<?x?x64xbf16>
    %q1 = lora.add %q, %d : (tensor<?x?x64xbf16>, tensor<?x?x64xbf16>) -> tensor<?x?x64xbf16>
    %wk = lora.param "model.layers.0.self_attn.k_proj.weight" frozen : tensor<32x64xbf16>
    %bk = lora.param "model.layers.0.self_attn.k_proj.bias" frozen : tensor<32xbf16>
    %k = lora.linear %x, %wk, bias %bk : (tensor<?x?x64xbf16>, tensor<32x64xbf16>, tensor<32xbf16>) -> tensor<?x?x32xbf16>
    %wd = lora.param "model.layers.0.mlp.down_proj.weight" frozen : tensor<64x128xbf16>
    %m = lora.linear %act, %wd : (tensor<?x?x128xbf16>, tensor<64x128xbf16>) -> tensor<?x?x64xbf16>
    %h1 = lora.add %q1, %m : (tensor<?x?x64xbf16>, tensor<?x?x64xbf16>) -> tensor<?x?x64xbf16>
    %nf = lora.param "model.norm.weight" frozen : tensor<64xbf16>
    %y = lora.rms_norm %h1, %nf {eps = 1.0e-05 : f64} : (tensor<?x?x64xbf16>, tensor<64xbf16>) -> tensor<?x?x64xbf16>
    %lm = lora.param "lm_head.weight" frozen : tensor<256x64xbf16>
    %logits = lora.lm_head %y, %lm : (tensor<?x?x64xbf16>, tensor<256x64xbf16>) -> tensor<?x?x256xf32>
    return %logits : tensor<?x?x256xf32>
  }
}

// -----

// Sharing. A weight read by two linear layers gets one dequantize feeding
// both. A weight that a linear layer and the embedding both read (tied)
// stays a float tensor. A name used in two functions is quantized in both;
// one that a function reads with lora.lm_head stays float in every function.
// CHECK-LABEL: func.func @shared
// CHECK: %[[W:.*]] = lora.param "model.layers.0.mlp.up_proj.weight" frozen : !lora.nf4<128x64, block_size = 64, double_quant = 256>
// CHECK-NEXT: %[[D:.*]] = lora.dequantize %[[W]]
// CHECK-NEXT: lora.linear %{{.*}}, %[[D]] :
// CHECK-NEXT: lora.linear %{{.*}}, %[[D]] :
// CHECK-NEXT: %[[T:.*]] = lora.param "model.embed_tokens.weight" frozen : tensor<64x64xbf16>
// CHECK-NEXT: lora.embedding %[[T]],
// CHECK-NEXT: lora.linear %{{.*}}, %[[T]] :
// CHECK-NEXT: lora.param "model.layers.0.self_attn.o_proj.weight" frozen : tensor<64x64xbf16>
// CHECK-NOT: lora.dequantize
// CHECK-LABEL: func.func @other
// CHECK: lora.param "model.layers.0.mlp.up_proj.weight" frozen : !lora.nf4<128x64, block_size = 64, double_quant = 256>
// CHECK-NEXT: lora.dequantize
// CHECK: lora.param "model.layers.0.self_attn.o_proj.weight" frozen : tensor<64x64xbf16>
// CHECK-NOT: lora.dequantize
// CHECK: return
module {
  func.func @shared(%x: tensor<2x8x64xbf16>, %ids: tensor<2x8xi32>) -> (tensor<2x8x128xbf16>, tensor<2x8x128xbf16>, tensor<2x8x64xbf16>, tensor<2x8x64xbf16>, tensor<2x8x64xbf16>) {
    %w = lora.param "model.layers.0.mlp.up_proj.weight" frozen : tensor<128x64xbf16>
    %u0 = lora.linear %x, %w : (tensor<2x8x64xbf16>, tensor<128x64xbf16>) -> tensor<2x8x128xbf16>
    %u1 = lora.linear %x, %w : (tensor<2x8x64xbf16>, tensor<128x64xbf16>) -> tensor<2x8x128xbf16>
    %t = lora.param "model.embed_tokens.weight" frozen : tensor<64x64xbf16>
    %e = lora.embedding %t, %ids : (tensor<64x64xbf16>, tensor<2x8xi32>) -> tensor<2x8x64xbf16>
    %p = lora.linear %x, %t : (tensor<2x8x64xbf16>, tensor<64x64xbf16>) -> tensor<2x8x64xbf16>
    %o = lora.param "model.layers.0.self_attn.o_proj.weight" frozen : tensor<64x64xbf16>
    %y = lora.linear %x, %o : (tensor<2x8x64xbf16>, tensor<64x64xbf16>) -> tensor<2x8x64xbf16>
    return %u0, %u1, %e, %p, %y : tensor<2x8x128xbf16>, tensor<2x8x128xbf16>, tensor<2x8x64xbf16>, tensor<2x8x64xbf16>, tensor<2x8x64xbf16>
  }
  func.func @other(%x: tensor<2x8x64xbf16>) -> (tensor<2x8x128xbf16>, tensor<2x8x64xf32>) {
    %w = lora.param "model.layers.0.mlp.up_proj.weight" frozen : tensor<128x64xbf16>
    %u = lora.linear %x, %w : (tensor<2x8x64xbf16>, tensor<128x64xbf16>) -> tensor<2x8x128xbf16>
    %o = lora.param "model.layers.0.self_attn.o_proj.weight" frozen : tensor<64x64xbf16>
    %l = lora.lm_head %x, %o : (tensor<2x8x64xbf16>, tensor<64x64xbf16>) -> tensor<2x8x64xf32>
    return %u, %l : tensor<2x8x128xbf16>, tensor<2x8x64xf32>
  }
}

// -----

// Already quantized: running the pass twice is an error, and the module is
// left as it was.
// expected-error @+1 {{the module is already quantized: parameter 'model.layers.0.self_attn.q_proj.weight' has type '!lora.nf4<64x64, block_size = 64, double_quant = 256>'}}
module {
  func.func @quantized(%x: tensor<2x8x64xbf16>) -> tensor<2x8x64xbf16> {
    %q = lora.param "model.layers.0.self_attn.q_proj.weight" frozen : !lora.nf4<64x64, block_size = 64, double_quant = 256>
    %w = lora.dequantize %q : !lora.nf4<64x64, block_size = 64, double_quant = 256> -> tensor<64x64xbf16>
    %y = lora.linear %x, %w : (tensor<2x8x64xbf16>, tensor<64x64xbf16>) -> tensor<2x8x64xbf16>
    %o = lora.param "model.layers.0.self_attn.o_proj.weight" frozen : tensor<64x64xbf16>
    %z = lora.linear %y, %o : (tensor<2x8x64xbf16>, tensor<64x64xbf16>) -> tensor<2x8x64xbf16>
    return %z : tensor<2x8x64xbf16>
  }
}

// -----

// Nothing to quantize: the embedding, the LM head, a norm, and a linear
// weight that is trainable (full fine-tuning) are never quantized.
// expected-error @+1 {{no linear weight to quantize: no frozen float lora.param is used only as the weight of lora.linear ops}}
module {
  func.func @nothing(%ids: tensor<2x8xi32>) -> tensor<2x8x64xf32> {
    %t = lora.param "model.embed_tokens.weight" frozen : tensor<64x64xbf16>
    %h = lora.embedding %t, %ids : (tensor<64x64xbf16>, tensor<2x8xi32>) -> tensor<2x8x64xbf16>
    %n = lora.param "model.norm.weight" frozen : tensor<64xbf16>
    %x = lora.rms_norm %h, %n {eps = 1.0e-05 : f64} : (tensor<2x8x64xbf16>, tensor<64xbf16>) -> tensor<2x8x64xbf16>
    %w = lora.param "model.layers.0.self_attn.q_proj.weight" trainable : tensor<64x64xbf16>
    %y = lora.linear %x, %w : (tensor<2x8x64xbf16>, tensor<64x64xbf16>) -> tensor<2x8x64xbf16>
    %lm = lora.param "lm_head.weight" frozen : tensor<64x64xbf16>
    %l = lora.lm_head %y, %lm : (tensor<2x8x64xbf16>, tensor<64x64xbf16>) -> tensor<2x8x64xf32>
    return %l : tensor<2x8x64xf32>
  }
}

// -----

// A weight whose element count (10 x 10 = 100) is not a multiple of the block
// size: an error naming the parameter and its shape, even though the other
// weight could be quantized.
// expected-error @+1 {{parameter 'model.layers.0.self_attn.v_proj.weight' of shape 10x10 has 100 elements, not a multiple of block-size}}
module {
  func.func @ragged(%x: tensor<2x8x10xf32>, %z: tensor<2x8x64xf32>) -> (tensor<2x8x10xf32>, tensor<2x8x64xf32>) {
    %v = lora.param "model.layers.0.self_attn.v_proj.weight" frozen : tensor<10x10xf32>
    %y = lora.linear %x, %v : (tensor<2x8x10xf32>, tensor<10x10xf32>) -> tensor<2x8x10xf32>
    %o = lora.param "model.layers.0.self_attn.o_proj.weight" frozen : tensor<64x64xf32>
    %w = lora.linear %z, %o : (tensor<2x8x64xf32>, tensor<64x64xf32>) -> tensor<2x8x64xf32>
    return %y, %w : tensor<2x8x10xf32>, tensor<2x8x64xf32>
  }
}
