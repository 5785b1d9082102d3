// RUN: lorac-opt %s -lora-specialize-shapes="micro-batch=4 seq-len=16" | FileCheck %s
// RUN: not lorac-opt %s -lora-specialize-shapes="micro-batch=0" 2>&1 | FileCheck %s --check-prefix=BATCH
// RUN: not lorac-opt %s -lora-specialize-shapes="seq-len=-3" 2>&1 | FileCheck %s --check-prefix=SEQ
// RUN: lorac-opt %s -lora-specialize-shapes="seq-len=512" 2>&1 >/dev/null | FileCheck %s --check-prefix=LONG

// A dynamic dimension that is neither batch nor sequence is refused.
// RUN: echo 'func.func @f(%%x: tensor<?x?x?xf32>) -> tensor<?x?x?xf32> { return %%x : tensor<?x?x?xf32> }' > %t.feature.mlir
// RUN: not lorac-opt %t.feature.mlir -lora-specialize-shapes 2>&1 | FileCheck %s --check-prefix=FEATURE
// FEATURE: error: 'func.func' op dimension 2 of 'tensor<?x?x?xf32>' is dynamic; only the batch (0) and sequence (1) dimensions may be

// BATCH: error: option 'micro-batch' must be positive, got 0
// SEQ: error: option 'seq-len' must be positive, got -3
// LONG: warning: seq-len 512 is longer than the model's max_position_embeddings (256)

// Inputs, every intermediate value and the results get the static grid;
// static dimensions (features, vocab) and parameters are untouched.
// CHECK-LABEL: func.func @forward
// CHECK-SAME: (%[[T:.*]]: tensor<4x16xi32> {lora.input = "tokens"}, %{{.*}}: tensor<4x16xi32> {lora.input = "positions"}) -> tensor<4x16x100xf32>
// CHECK: lora.param "model.embed_tokens.weight" frozen : tensor<100x64xf32>
// CHECK: lora.embedding %{{.*}}, %[[T]] : (tensor<100x64xf32>, tensor<4x16xi32>) -> tensor<4x16x64xf32>
// CHECK: lora.rope {{.*}} : (tensor<4x16x64xf32>, tensor<4x16xi32>) -> tensor<4x16x64xf32>
// CHECK: lora.lm_head {{.*}} -> tensor<4x16x100xf32>
// CHECK: return {{.*}} : tensor<4x16x100xf32>
// CHECK-NOT: ?x
module attributes {lora.model = {architecture = "LlamaForCausalLM", hidden_size = 64 : i64, intermediate_size = 128 : i64, num_hidden_layers = 1 : i64, num_attention_heads = 4 : i64, num_key_value_heads = 4 : i64, head_dim = 16 : i64, vocab_size = 100 : i64, rms_norm_eps = 1.0e-05 : f64, rope_theta = 10000.0 : f64, tie_word_embeddings = true, attention_bias = false, max_position_embeddings = 256 : i64}} {
  func.func @forward(%tokens: tensor<?x?xi32> {lora.input = "tokens"}, %pos: tensor<?x?xi32> {lora.input = "positions"}) -> tensor<?x?x100xf32> {
    %e = lora.param "model.embed_tokens.weight" frozen : tensor<100x64xf32>
    %h = lora.embedding %e, %tokens : (tensor<100x64xf32>, tensor<?x?xi32>) -> tensor<?x?x64xf32>
    %r = lora.rope %h, %pos {head_dim = 16 : i64, theta = 10000.0 : f64} : (tensor<?x?x64xf32>, tensor<?x?xi32>) -> tensor<?x?x64xf32>
    %l = lora.lm_head %r, %e : (tensor<?x?x64xf32>, tensor<100x64xf32>) -> tensor<?x?x100xf32>
    return %l : tensor<?x?x100xf32>
  }
}

