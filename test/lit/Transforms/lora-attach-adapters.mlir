// RUN: lorac-opt %s -lora-attach-adapters | FileCheck %s --check-prefix=ALL
// RUN: lorac-opt %s -lora-attach-adapters | grep -c "= lora.adapter " | FileCheck %s --check-prefix=COUNT6
// RUN: lorac-opt %s -lora-attach-adapters="targets=q_proj,v_proj rank=8 alpha=16 dropout=0" | FileCheck %s --check-prefix=QV
// RUN: lorac-opt %s -lora-attach-adapters="targets=self_attn.q_proj layers=1" | FileCheck %s --check-prefix=LAYER
// RUN: lorac-opt %s -lora-attach-adapters="target-regex=.*\.layers\.0\.mlp\.down_proj rank=4" | FileCheck %s --check-prefix=REGEX
// A name given whole is selected whatever the layers say (PEFT's rule).
// RUN: lorac-opt %s -lora-attach-adapters="targets=model.layers.0.self_attn.q_proj,v_proj layers=1" | FileCheck %s --check-prefix=EXACT
// Negative cases: nothing selected, options out of range, adapters twice.
// RUN: not lorac-opt %s -lora-attach-adapters="targets=c_attn" 2>&1 | FileCheck %s --check-prefix=NOMATCH
// RUN: not lorac-opt %s -lora-attach-adapters="targets=q_proj layers=7" 2>&1 | FileCheck %s --check-prefix=NOLAYER
// RUN: not lorac-opt %s -lora-attach-adapters="rank=0" 2>&1 | FileCheck %s --check-prefix=RANK
// RUN: not lorac-opt %s -lora-attach-adapters="dropout=1.5" 2>&1 | FileCheck %s --check-prefix=DROPOUT
// RUN: not lorac-opt %s -lora-attach-adapters="alpha=-1" 2>&1 | FileCheck %s --check-prefix=ALPHA
// RUN: not lorac-opt %s -lora-attach-adapters="target-regex=(q_proj" 2>&1 | FileCheck %s --check-prefix=BADREGEX
// RUN: not lorac-opt %s -lora-attach-adapters -lora-attach-adapters 2>&1 | FileCheck %s --check-prefix=TWICE
// RUN: not lorac-opt %s -lora-attach-adapters="target-regex=.*q_proj layers=1" 2>&1 | FileCheck %s --check-prefix=REGEXLAYERS

// A two-layer slice of a Llama model: q/v projections and the MLP's
// down_proj in each layer, and an LM head that must never get an adapter.

// all-linear: every decoder linear layer, PEFT names, defaults r=16, alpha=32.
// ALL-LABEL: module attributes
// ALL-SAME: lora.adapter_config = {lora_alpha = 3.200000e+01 : f64, lora_dropout = 5.000000e-02 : f64, r = 16 : i64, target_modules = ["down_proj", "q_proj", "v_proj"]}
// ALL-LABEL: func.func @forward
// ALL: %[[X0:.*]] = lora.rms_norm
// ALL: %[[Q0:.*]] = lora.linear %[[X0]], %{{.*}} : (tensor<?x?x64xf32>, tensor<64x64xf32>)
// ALL: %[[A:.*]] = lora.param "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" trainable init(kaiming_uniform) : tensor<16x64xf32>
// ALL: %[[B:.*]] = lora.param "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight" trainable init(zeros) : tensor<64x16xf32>
// ALL: %[[D:.*]] = lora.adapter %[[X0]], %[[A]], %[[B]] {alpha = 3.200000e+01 : f64, dropout = 5.000000e-02 : f64}
// ALL: %[[Q1:.*]] = lora.add %[[Q0]], %[[D]]
// ALL: "base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight" trainable init(kaiming_uniform) : tensor<16x64xf32>
// ALL: "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight" trainable init(zeros) : tensor<32x16xf32>
// The adapted output replaces the old one for every user.
// ALL: lora.rope %[[Q1]],
// ALL: "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight" trainable init(kaiming_uniform) : tensor<16x128xf32>
// ALL: "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"
// ALL-NOT: lm_head.lora_A
// ALL: lora.lm_head
// Six adapters: three linear layers in each of two layers.
// COUNT6: 6

// QV-LABEL: module attributes
// QV-SAME: r = 8 : i64, target_modules = ["q_proj", "v_proj"]
// QV: "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" trainable init(kaiming_uniform) : tensor<8x64xf32>
// Dropout 0 is the default and is not printed.
// QV: lora.adapter {{.*}} {alpha = 1.600000e+01 : f64} :
// QV: "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight" trainable init(zeros) : tensor<32x8xf32>
// QV-NOT: down_proj.lora_A
// QV: "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"

// LAYER-LABEL: module attributes
// LAYER-SAME: layers_to_transform = array<i64: 1>
// LAYER-NOT: layers.0.self_attn.q_proj.lora_A
// LAYER: "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"
// LAYER-COUNT-1: lora.adapter
// LAYER-NOT: lora.adapter

// REGEX-LABEL: module attributes
// REGEX-SAME: target_modules = ["down_proj"], target_regex =
// REGEX: "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight" trainable init(kaiming_uniform) : tensor<4x128xf32>
// REGEX-NOT: lora.adapter {{.*}}layers.1

// EXACT-LABEL: module attributes
// EXACT-SAME: layers_to_transform = array<i64: 1>
// EXACT-SAME: target_modules = ["model.layers.0.self_attn.q_proj", "v_proj"]
// EXACT: "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
// EXACT-NOT: "base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight"
// EXACT: "base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight"
// EXACT-NOT: "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"

// NOMATCH: error: no linear layer matches targets 'c_attn' (linear layers: down_proj, q_proj, v_proj)
// NOLAYER: error: no linear layer matches targets 'q_proj' in the selected layers
// RANK: error: option 'rank' must be positive, got 0
// DROPOUT: error: option 'dropout' must be in [0, 1), got 1.5
// ALPHA: error: option 'alpha' must be positive, got -1
// BADREGEX: error: option: target regex '(q_proj' is not a valid regular expression (at offset 7: missing closing parenthesis)
// TWICE: error: the module already has LoRA adapters ('lora.adapter_config' is set)
// REGEXLAYERS: error: option 'layers' cannot be combined with 'target-regex': PEFT refuses an adapter_config.json with both

module attributes {lora.model = {architecture = "LlamaForCausalLM", hidden_size = 64 : i64, intermediate_size = 128 : i64, num_hidden_layers = 2 : i64, num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, head_dim = 16 : i64, vocab_size = 100 : i64, rms_norm_eps = 1.0e-05 : f64, rope_theta = 10000.0 : f64, tie_word_embeddings = false, attention_bias = false}} {
  func.func @forward(%h: tensor<?x?x64xf32>, %pos: tensor<?x?xi32>, %act: tensor<?x?x128xf32>) -> tensor<?x?x100xf32> {
    %n0 = lora.param "model.layers.0.input_layernorm.weight" frozen : tensor<64xf32>
    %x0 = lora.rms_norm %h, %n0 {eps = 1.0e-05 : f64} : (tensor<?x?x64xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
    %wq0 = lora.param "model.layers.0.self_attn.q_proj.weight" frozen : tensor<64x64xf32>
    %q0 = lora.linear %x0, %wq0 : (tensor<?x?x64xf32>, tensor<64x64xf32>) -> tensor<?x?x64xf32>
    %wv0 = lora.param "model.layers.0.self_attn.v_proj.weight" frozen : tensor<32x64xf32>
    %v0 = lora.linear %x0, %wv0 : (tensor<?x?x64xf32>, tensor<32x64xf32>) -> tensor<?x?x32xf32>
    %r0 = lora.rope %q0, %pos {head_dim = 16 : i64, theta = 10000.0 : f64} : (tensor<?x?x64xf32>, tensor<?x?xi32>) -> tensor<?x?x64xf32>
    %wd0 = lora.param "model.layers.0.mlp.down_proj.weight" frozen : tensor<64x128xf32>
    %d0 = lora.linear %act, %wd0 : (tensor<?x?x128xf32>, tensor<64x128xf32>) -> tensor<?x?x64xf32>
    %h1 = lora.add %r0, %d0 : (tensor<?x?x64xf32>, tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
    %wq1 = lora.param "model.layers.1.self_attn.q_proj.weight" frozen : tensor<64x64xf32>
    %q1 = lora.linear %h1, %wq1 : (tensor<?x?x64xf32>, tensor<64x64xf32>) -> tensor<?x?x64xf32>
    %wv1 = lora.param "model.layers.1.self_attn.v_proj.weight" frozen : tensor<32x64xf32>
    %v1 = lora.linear %h1, %wv1 : (tensor<?x?x64xf32>, tensor<32x64xf32>) -> tensor<?x?x32xf32>
    %wd1 = lora.param "model.layers.1.mlp.down_proj.weight" frozen : tensor<64x128xf32>
    %d1 = lora.linear %act, %wd1 : (tensor<?x?x128xf32>, tensor<64x128xf32>) -> tensor<?x?x64xf32>
    %h2 = lora.add %q1, %d1 : (tensor<?x?x64xf32>, tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
    %lm = lora.param "lm_head.weight" frozen : tensor<100x64xf32>
    %logits = lora.lm_head %h2, %lm : (tensor<?x?x64xf32>, tensor<100x64xf32>) -> tensor<?x?x100xf32>
    return %logits : tensor<?x?x100xf32>
  }
}
