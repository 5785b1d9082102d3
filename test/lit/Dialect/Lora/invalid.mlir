// Every verifier error of the lora dialect, one case per split.
// RUN: lorac-opt %s -split-input-file -verify-diagnostics

// An empty parameter name.
func.func @f() {
  // expected-error @+1 {{name must not be empty}}
  %0 = lora.param "" frozen : tensor<4xf32>
  return
}

// -----

// A parameter without a static shape.
func.func @f() {
  // expected-error @+1 {{parameter 'w' must have a static shape}}
  %0 = lora.param "w" frozen : tensor<?x4xf32>
  return
}

// -----

// An empty parameter.
func.func @f() {
  // expected-error @+1 {{parameter 'w' must not be empty}}
  %0 = lora.param "w" frozen : tensor<0x4xf32>
  return
}

// -----

// A quantized parameter cannot be trained.
func.func @f() {
  // expected-error @+1 {{must be frozen, not trainable}}
  %0 = lora.param "w" trainable : !lora.nf4<64x4, block_size = 64, double_quant = none>
  return
}

// -----

// Optimizer state must say whose it is.
func.func @f() {
  // expected-error @+1 {{needs an 'of' attribute}}
  %0 = lora.param "m" optimizer_state : tensor<4xf32>
  return
}

// -----

// Only optimizer state, gradients and Fishers have an owner.
func.func @f() {
  // expected-error @+1 {{attribute 'of' is only valid on optimizer_state and gradient parameters and on init(fisher)}}
  %0 = lora.param "w" trainable {of = "x"} : tensor<4xf32>
  return
}

// -----

// A gradient accumulator must say whose it is.
func.func @f() {
  // expected-error @+1 {{gradient parameter 'g' needs an 'of' attribute}}
  %0 = lora.param "g" gradient : tensor<4xf32>
  return
}

// -----

// A Fisher names its weight.
func.func @f() {
  // expected-error @+1 {{with init(fisher) needs an 'of' attribute}}
  %0 = lora.param "f" frozen init(fisher) : tensor<4xf32>
  return
}

// -----

// A frozen weight cannot start as PEFT's random lora_A.
func.func @f() {
  // expected-error @+1 {{init(kaiming_uniform) is not valid for a frozen parameter}}
  %0 = lora.param "w" frozen init(kaiming_uniform) : tensor<4xf32>
  return
}

// -----

// Only optimizer state copies its owner.
func.func @f() {
  // expected-error @+1 {{init(copy_of_owner) is not valid for a gradient parameter}}
  %0 = lora.param "g" gradient init(copy_of_owner) {of = "w"} : tensor<4xf32>
  return
}

// -----

// A Fisher is frozen.
func.func @f() {
  // expected-error @+1 {{init(fisher) is not valid for a trainable parameter}}
  %0 = lora.param "f" trainable init(fisher) {of = "w"} : tensor<4xf32>
  return
}

// -----

// An empty owner name.
func.func @f() {
  // expected-error @+1 {{attribute 'of' must not be empty}}
  %0 = lora.param "m" optimizer_state {of = ""} : tensor<4xf32>
  return
}

// -----

// Integer parameters are not weights.
func.func @f() {
  // expected-error @+1 {{result #0 must be}}
  %0 = lora.param "w" frozen : tensor<4xi32>
  return
}

// -----

// The embedding table must be a matrix.
func.func @f(%t: tensor<10xf32>, %i: tensor<2x3xi32>) {
  // expected-error @+1 {{table must have rank 2}}
  %0 = lora.embedding %t, %i : (tensor<10xf32>, tensor<2x3xi32>) -> tensor<2x3x4xf32>
  return
}

// -----

// The embedding result appends one axis to the ids.
func.func @f(%t: tensor<10x4xf32>, %i: tensor<2x3xi32>) {
  // expected-error @+1 {{result must have rank 3}}
  %0 = lora.embedding %t, %i : (tensor<10x4xf32>, tensor<2x3xi32>) -> tensor<6x4xf32>
  return
}

// -----

// The embedding result keeps the ids' shape.
func.func @f(%t: tensor<10x4xf32>, %i: tensor<2x3xi32>) {
  // expected-error @+1 {{result dimension 1 (5) must equal ids dimension 1 (3)}}
  %0 = lora.embedding %t, %i : (tensor<10x4xf32>, tensor<2x3xi32>) -> tensor<2x5x4xf32>
  return
}

// -----

// The embedding width comes from the table.
func.func @f(%t: tensor<10x4xf32>, %i: tensor<2x3xi32>) {
  // expected-error @+1 {{result dimension 2 (8) must equal table dimension 1 (4)}}
  %0 = lora.embedding %t, %i : (tensor<10x4xf32>, tensor<2x3xi32>) -> tensor<2x3x8xf32>
  return
}

// -----

// The embedding keeps the table's element type.
func.func @f(%t: tensor<10x4xf32>, %i: tensor<2x3xi32>) {
  // expected-error @+1 {{result element type 'bf16' must match table element type 'f32'}}
  %0 = lora.embedding %t, %i : (tensor<10x4xf32>, tensor<2x3xi32>) -> tensor<2x3x4xbf16>
  return
}

// -----

// Token ids are integers.
func.func @f(%t: tensor<10x4xf32>, %i: tensor<2x3xf32>) {
  // expected-error @+1 {{operand #1 must be ranked tensor of 32-bit signless integer or 64-bit signless integer values}}
  %0 = lora.embedding %t, %i : (tensor<10x4xf32>, tensor<2x3xf32>) -> tensor<2x3x4xf32>
  return
}

// -----

// RMSNorm of a scalar.
func.func @f(%x: tensor<f32>, %w: tensor<4xf32>) {
  // expected-error @+1 {{x must have rank >= 1}}
  %0 = lora.rms_norm %x, %w {eps = 1.0e-5 : f64} : (tensor<f32>, tensor<4xf32>) -> tensor<f32>
  return
}

// -----

// The RMSNorm weight is a vector.
func.func @f(%x: tensor<2x4xf32>, %w: tensor<4x4xf32>) {
  // expected-error @+1 {{weight must have rank 1}}
  %0 = lora.rms_norm %x, %w {eps = 1.0e-5 : f64} : (tensor<2x4xf32>, tensor<4x4xf32>) -> tensor<2x4xf32>
  return
}

// -----

// The RMSNorm weight matches the normalized axis or divides it (a norm per
// group of features).
func.func @f(%x: tensor<2x4xf32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{weight size (8) must equal x's last dimension (4) or divide it (a norm per group of features)}}
  %0 = lora.rms_norm %x, %w {eps = 1.0e-5 : f64} : (tensor<2x4xf32>, tensor<8xf32>) -> tensor<2x4xf32>
  return
}

// -----

func.func @f(%x: tensor<2x12xf32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{weight size (8) must equal x's last dimension (12) or divide it (a norm per group of features)}}
  %0 = lora.rms_norm %x, %w {eps = 1.0e-5 : f64} : (tensor<2x12xf32>, tensor<8xf32>) -> tensor<2x12xf32>
  return
}

// -----

// The gradient takes the same weights.
func.func @f(%dy: tensor<2x12xf32>, %x: tensor<2x12xf32>, %w: tensor<5xf32>) {
  // expected-error @+1 {{weight size (5) must equal x's last dimension (12) or divide it (a norm per group of features)}}
  %0:2 = lora.rms_norm_grad %dy, %x, %w {eps = 1.0e-5 : f64} : (tensor<2x12xf32>, tensor<2x12xf32>, tensor<5xf32>) -> (tensor<2x12xf32>, tensor<5xf32>)
  return
}

// -----

// The RMSNorm weight has the element type of x.
func.func @f(%x: tensor<2x4xf32>, %w: tensor<4xbf16>) {
  // expected-error @+1 {{weight element type 'bf16' must match x element type 'f32'}}
  %0 = lora.rms_norm %x, %w {eps = 1.0e-5 : f64} : (tensor<2x4xf32>, tensor<4xbf16>) -> tensor<2x4xf32>
  return
}

// -----

// RMSNorm keeps the type of x.
func.func @f(%x: tensor<2x4xf32>, %w: tensor<4xf32>) {
  // expected-error @+1 {{result type 'tensor<2x4xbf16>' must equal x type 'tensor<2x4xf32>'}}
  %0 = lora.rms_norm %x, %w {eps = 1.0e-5 : f64} : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xbf16>
  return
}

// -----

// A non-positive epsilon.
func.func @f(%x: tensor<2x4xf32>, %w: tensor<4xf32>) {
  // expected-error @+1 {{attribute 'eps' failed to satisfy constraint: 64-bit float attribute whose value is positive}}
  %0 = lora.rms_norm %x, %w {eps = 0.0 : f64} : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xf32>
  return
}

// -----

// Linear on a scalar.
func.func @f(%x: tensor<f32>, %w: tensor<4x8xf32>) {
  // expected-error @+1 {{x must have rank >= 1}}
  %0 = lora.linear %x, %w : (tensor<f32>, tensor<4x8xf32>) -> tensor<4xf32>
  return
}

// -----

// The linear weight is a matrix.
func.func @f(%x: tensor<2x8xf32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{weight must have rank 2}}
  %0 = lora.linear %x, %w : (tensor<2x8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
  return
}

// -----

// The linear weight is [out, in]: in must match x.
func.func @f(%x: tensor<2x3x8xf32>, %w: tensor<8x4xf32>) {
  // expected-error @+1 {{x dimension 2 (8) must equal weight dimension 1 (4)}}
  %0 = lora.linear %x, %w : (tensor<2x3x8xf32>, tensor<8x4xf32>) -> tensor<2x3x8xf32>
  return
}

// -----

// Linear keeps the rank of x.
func.func @f(%x: tensor<2x3x8xf32>, %w: tensor<4x8xf32>) {
  // expected-error @+1 {{result must have rank 3}}
  %0 = lora.linear %x, %w : (tensor<2x3x8xf32>, tensor<4x8xf32>) -> tensor<6x4xf32>
  return
}

// -----

// Linear keeps the leading dimensions of x.
func.func @f(%x: tensor<2x3x8xf32>, %w: tensor<4x8xf32>) {
  // expected-error @+1 {{result dimension 0 (3) must equal x dimension 0 (2)}}
  %0 = lora.linear %x, %w : (tensor<2x3x8xf32>, tensor<4x8xf32>) -> tensor<3x3x4xf32>
  return
}

// -----

// Linear output features come from the weight.
func.func @f(%x: tensor<2x3x8xf32>, %w: tensor<4x8xf32>) {
  // expected-error @+1 {{result dimension 2 (8) must equal weight dimension 0 (4)}}
  %0 = lora.linear %x, %w : (tensor<2x3x8xf32>, tensor<4x8xf32>) -> tensor<2x3x8xf32>
  return
}

// -----

// The linear weight has the element type of x.
func.func @f(%x: tensor<2x3x8xf32>, %w: tensor<4x8xbf16>) {
  // expected-error @+1 {{weight element type 'bf16' must match x element type 'f32'}}
  %0 = lora.linear %x, %w : (tensor<2x3x8xf32>, tensor<4x8xbf16>) -> tensor<2x3x4xf32>
  return
}

// -----

// The linear result has the element type of x.
func.func @f(%x: tensor<2x3x8xf32>, %w: tensor<4x8xf32>) {
  // expected-error @+1 {{result element type 'f16' must match x element type 'f32'}}
  %0 = lora.linear %x, %w : (tensor<2x3x8xf32>, tensor<4x8xf32>) -> tensor<2x3x4xf16>
  return
}

// -----

// The bias is a vector.
func.func @f(%x: tensor<2x3x8xf32>, %w: tensor<4x8xf32>, %b: tensor<4x1xf32>) {
  // expected-error @+1 {{bias must have rank 1}}
  %0 = lora.linear %x, %w, bias %b : (tensor<2x3x8xf32>, tensor<4x8xf32>, tensor<4x1xf32>) -> tensor<2x3x4xf32>
  return
}

// -----

// The bias has one value per output feature.
func.func @f(%x: tensor<2x3x8xf32>, %w: tensor<4x8xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{bias dimension 0 (8) must equal weight dimension 0 (4)}}
  %0 = lora.linear %x, %w, bias %b : (tensor<2x3x8xf32>, tensor<4x8xf32>, tensor<8xf32>) -> tensor<2x3x4xf32>
  return
}

// -----

// The bias has the element type of x.
func.func @f(%x: tensor<2x3x8xf32>, %w: tensor<4x8xf32>, %b: tensor<4xf16>) {
  // expected-error @+1 {{bias element type 'f16' must match x element type 'f32'}}
  %0 = lora.linear %x, %w, bias %b : (tensor<2x3x8xf32>, tensor<4x8xf32>, tensor<4xf16>) -> tensor<2x3x4xf32>
  return
}

// -----

// Linear does not read NF4 directly.
func.func @f(%x: tensor<2x64xf32>, %w: !lora.nf4<4x64, block_size = 64, double_quant = none>) {
  // expected-error @+1 {{operand #1 must be ranked tensor of bfloat16 type or 16-bit float or 32-bit float values}}
  %0 = lora.linear %x, %w : (tensor<2x64xf32>, !lora.nf4<4x64, block_size = 64, double_quant = none>) -> tensor<2x4xf32>
  return
}

// -----

// Adapter on a scalar.
func.func @f(%x: tensor<f32>, %a: tensor<2x8xf32>, %b: tensor<4x2xf32>) {
  // expected-error @+1 {{x must have rank >= 1}}
  %0 = lora.adapter %x, %a, %b {alpha = 1.0 : f64} : (tensor<f32>, tensor<2x8xf32>, tensor<4x2xf32>) -> tensor<4xf32>
  return
}

// -----

// lora_A is a matrix.
func.func @f(%x: tensor<2x3x8xf32>, %a: tensor<8xf32>, %b: tensor<4x2xf32>) {
  // expected-error @+1 {{A must have rank 2}}
  %0 = lora.adapter %x, %a, %b {alpha = 1.0 : f64} : (tensor<2x3x8xf32>, tensor<8xf32>, tensor<4x2xf32>) -> tensor<2x3x4xf32>
  return
}

// -----

// lora_B is a matrix.
func.func @f(%x: tensor<2x3x8xf32>, %a: tensor<2x8xf32>, %b: tensor<4x2x1xf32>) {
  // expected-error @+1 {{B must have rank 2}}
  %0 = lora.adapter %x, %a, %b {alpha = 1.0 : f64} : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<4x2x1xf32>) -> tensor<2x3x4xf32>
  return
}

// -----

// Adapter weights have static shapes.
func.func @f(%x: tensor<2x3x8xf32>, %a: tensor<?x8xf32>, %b: tensor<4x2xf32>) {
  // expected-error @+1 {{A and B must have static shapes}}
  %0 = lora.adapter %x, %a, %b {alpha = 1.0 : f64} : (tensor<2x3x8xf32>, tensor<?x8xf32>, tensor<4x2xf32>) -> tensor<2x3x4xf32>
  return
}

// -----

// A and B disagree on the rank r.
func.func @f(%x: tensor<2x3x8xf32>, %a: tensor<2x8xf32>, %b: tensor<4x3xf32>) {
  // expected-error @+1 {{A dimension 0 (2) must equal B dimension 1 (3)}}
  %0 = lora.adapter %x, %a, %b {alpha = 1.0 : f64} : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<4x3xf32>) -> tensor<2x3x4xf32>
  return
}

// -----

// lora_A reads the input features of x.
func.func @f(%x: tensor<2x3x6xf32>, %a: tensor<2x8xf32>, %b: tensor<4x2xf32>) {
  // expected-error @+1 {{A dimension 1 (8) must equal x dimension 2 (6)}}
  %0 = lora.adapter %x, %a, %b {alpha = 1.0 : f64} : (tensor<2x3x6xf32>, tensor<2x8xf32>, tensor<4x2xf32>) -> tensor<2x3x4xf32>
  return
}

// -----

// The adapter keeps the rank of x.
func.func @f(%x: tensor<2x3x8xf32>, %a: tensor<2x8xf32>, %b: tensor<4x2xf32>) {
  // expected-error @+1 {{result must have rank 3}}
  %0 = lora.adapter %x, %a, %b {alpha = 1.0 : f64} : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<4x2xf32>) -> tensor<6x4xf32>
  return
}

// -----

// The adapter keeps the leading dimensions of x.
func.func @f(%x: tensor<2x3x8xf32>, %a: tensor<2x8xf32>, %b: tensor<4x2xf32>) {
  // expected-error @+1 {{result dimension 1 (5) must equal x dimension 1 (3)}}
  %0 = lora.adapter %x, %a, %b {alpha = 1.0 : f64} : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<4x2xf32>) -> tensor<2x5x4xf32>
  return
}

// -----

// The adapter output features come from lora_B.
func.func @f(%x: tensor<2x3x8xf32>, %a: tensor<2x8xf32>, %b: tensor<4x2xf32>) {
  // expected-error @+1 {{result dimension 2 (8) must equal B dimension 0 (4)}}
  %0 = lora.adapter %x, %a, %b {alpha = 1.0 : f64} : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<4x2xf32>) -> tensor<2x3x8xf32>
  return
}

// -----

// lora_A has the element type of x.
func.func @f(%x: tensor<2x3x8xf32>, %a: tensor<2x8xbf16>, %b: tensor<4x2xf32>) {
  // expected-error @+1 {{A element type 'bf16' must match x element type 'f32'}}
  %0 = lora.adapter %x, %a, %b {alpha = 1.0 : f64} : (tensor<2x3x8xf32>, tensor<2x8xbf16>, tensor<4x2xf32>) -> tensor<2x3x4xf32>
  return
}

// -----

// lora_B has the element type of x.
func.func @f(%x: tensor<2x3x8xf32>, %a: tensor<2x8xf32>, %b: tensor<4x2xbf16>) {
  // expected-error @+1 {{B element type 'bf16' must match x element type 'f32'}}
  %0 = lora.adapter %x, %a, %b {alpha = 1.0 : f64} : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<4x2xbf16>) -> tensor<2x3x4xf32>
  return
}

// -----

// The adapter result has the element type of x.
func.func @f(%x: tensor<2x3x8xf32>, %a: tensor<2x8xf32>, %b: tensor<4x2xf32>) {
  // expected-error @+1 {{result element type 'bf16' must match x element type 'f32'}}
  %0 = lora.adapter %x, %a, %b {alpha = 1.0 : f64} : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<4x2xf32>) -> tensor<2x3x4xbf16>
  return
}

// -----

// Dropout of 1 drops everything.
func.func @f(%x: tensor<2x3x8xf32>, %a: tensor<2x8xf32>, %b: tensor<4x2xf32>) {
  // expected-error @+1 {{attribute 'dropout' must be in [0, 1), got 1}}
  %0 = lora.adapter %x, %a, %b {alpha = 1.0 : f64, dropout = 1.0 : f64} : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<4x2xf32>) -> tensor<2x3x4xf32>
  return
}

// -----

// Negative dropout.
func.func @f(%x: tensor<2x3x8xf32>, %a: tensor<2x8xf32>, %b: tensor<4x2xf32>) {
  // expected-error @+1 {{attribute 'dropout' must be in [0, 1), got -1.000000e-01}}
  %0 = lora.adapter %x, %a, %b {alpha = 1.0 : f64, dropout = -0.1 : f64} : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<4x2xf32>) -> tensor<2x3x4xf32>
  return
}

// -----

// A zero alpha.
func.func @f(%x: tensor<2x3x8xf32>, %a: tensor<2x8xf32>, %b: tensor<4x2xf32>) {
  // expected-error @+1 {{attribute 'alpha' failed to satisfy constraint: 64-bit float attribute whose value is positive}}
  %0 = lora.adapter %x, %a, %b {alpha = 0.0 : f64} : (tensor<2x3x8xf32>, tensor<2x8xf32>, tensor<4x2xf32>) -> tensor<2x3x4xf32>
  return
}

// -----

// RoPE needs [batch, seq, features].
func.func @f(%x: tensor<6x8xf32>, %p: tensor<2x3xi32>) {
  // expected-error @+1 {{x must have rank 3}}
  %0 = lora.rope %x, %p {head_dim = 4 : i64, theta = 1.0e4 : f64} : (tensor<6x8xf32>, tensor<2x3xi32>) -> tensor<6x8xf32>
  return
}

// -----

// RoPE positions are [batch, seq].
func.func @f(%x: tensor<2x3x8xf32>, %p: tensor<6xi32>) {
  // expected-error @+1 {{positions must have rank 2}}
  %0 = lora.rope %x, %p {head_dim = 4 : i64, theta = 1.0e4 : f64} : (tensor<2x3x8xf32>, tensor<6xi32>) -> tensor<2x3x8xf32>
  return
}

// -----

// One position per token.
func.func @f(%x: tensor<2x3x8xf32>, %p: tensor<2x4xi32>) {
  // expected-error @+1 {{positions dimension 1 (4) must equal x dimension 1 (3)}}
  %0 = lora.rope %x, %p {head_dim = 4 : i64, theta = 1.0e4 : f64} : (tensor<2x3x8xf32>, tensor<2x4xi32>) -> tensor<2x3x8xf32>
  return
}

// -----

// A zero head_dim.
func.func @f(%x: tensor<2x3x8xf32>, %p: tensor<2x3xi32>) {
  // expected-error @+1 {{attribute 'head_dim' must be positive, got 0}}
  %0 = lora.rope %x, %p {head_dim = 0 : i64, theta = 1.0e4 : f64} : (tensor<2x3x8xf32>, tensor<2x3xi32>) -> tensor<2x3x8xf32>
  return
}

// -----

// RoPE keeps the type of x.
func.func @f(%x: tensor<2x3x8xf32>, %p: tensor<2x3xi32>) {
  // expected-error @+1 {{result type 'tensor<2x3x8xbf16>' must equal x type 'tensor<2x3x8xf32>'}}
  %0 = lora.rope %x, %p {head_dim = 4 : i64, theta = 1.0e4 : f64} : (tensor<2x3x8xf32>, tensor<2x3xi32>) -> tensor<2x3x8xbf16>
  return
}

// -----

// Rotation pairs need an even head_dim.
func.func @f(%x: tensor<2x3x9xf32>, %p: tensor<2x3xi32>) {
  // expected-error @+1 {{attribute 'head_dim' must be even, got 3}}
  %0 = lora.rope %x, %p {head_dim = 3 : i64, theta = 1.0e4 : f64} : (tensor<2x3x9xf32>, tensor<2x3xi32>) -> tensor<2x3x9xf32>
  return
}

// -----

// Features hold whole heads.
func.func @f(%x: tensor<2x3x8xf32>, %p: tensor<2x3xi32>) {
  // expected-error @+1 {{x feature dimension (8) must be a multiple of head_dim (6)}}
  %0 = lora.rope %x, %p {head_dim = 6 : i64, theta = 1.0e4 : f64} : (tensor<2x3x8xf32>, tensor<2x3xi32>) -> tensor<2x3x8xf32>
  return
}

// -----

// A non-positive theta.
func.func @f(%x: tensor<2x3x8xf32>, %p: tensor<2x3xi32>) {
  // expected-error @+1 {{attribute 'theta' failed to satisfy constraint}}
  %0 = lora.rope %x, %p {head_dim = 4 : i64, theta = -1.0 : f64} : (tensor<2x3x8xf32>, tensor<2x3xi32>) -> tensor<2x3x8xf32>
  return
}

// -----

// A zero rope_scaling factor.
func.func @f(%x: tensor<2x3x8xf32>, %p: tensor<2x3xi32>) {
  // expected-error @+1 {{rope_scaling factor must be positive, got 0}}
  %0 = lora.rope %x, %p {head_dim = 4 : i64, theta = 1.0e4 : f64, scaling = #lora.rope_scaling<linear, factor = 0.0>} : (tensor<2x3x8xf32>, tensor<2x3xi32>) -> tensor<2x3x8xf32>
  return
}

// -----

// llama3 scaling with high_freq_factor <= low_freq_factor.
func.func @f(%x: tensor<2x3x8xf32>, %p: tensor<2x3xi32>) {
  // expected-error @+1 {{rope_scaling high_freq_factor (1.000000e+00) must be larger than low_freq_factor (4.000000e+00)}}
  %0 = lora.rope %x, %p {head_dim = 4 : i64, theta = 1.0e4 : f64, scaling = #lora.rope_scaling<llama3, factor = 8.0, low_freq_factor = 4.0, high_freq_factor = 1.0, original_max_position_embeddings = 8192>} : (tensor<2x3x8xf32>, tensor<2x3xi32>) -> tensor<2x3x8xf32>
  return
}

// -----

// llama3 scaling with a zero low_freq_factor.
func.func @f(%x: tensor<2x3x8xf32>, %p: tensor<2x3xi32>) {
  // expected-error @+1 {{rope_scaling low_freq_factor must be positive, got 0}}
  %0 = lora.rope %x, %p {head_dim = 4 : i64, theta = 1.0e4 : f64, scaling = #lora.rope_scaling<llama3, factor = 8.0, low_freq_factor = 0.0, high_freq_factor = 1.0, original_max_position_embeddings = 8192>} : (tensor<2x3x8xf32>, tensor<2x3xi32>) -> tensor<2x3x8xf32>
  return
}

// -----

// llama3 scaling with no original context.
func.func @f(%x: tensor<2x3x8xf32>, %p: tensor<2x3xi32>) {
  // expected-error @+1 {{rope_scaling original_max_position_embeddings must be positive, got 0}}
  %0 = lora.rope %x, %p {head_dim = 4 : i64, theta = 1.0e4 : f64, scaling = #lora.rope_scaling<llama3, factor = 8.0, low_freq_factor = 1.0, high_freq_factor = 4.0, original_max_position_embeddings = 0>} : (tensor<2x3x8xf32>, tensor<2x3xi32>) -> tensor<2x3x8xf32>
  return
}

// -----

// An unknown scaling kind.
func.func @f(%x: tensor<2x3x8xf32>, %p: tensor<2x3xi32>) {
  // expected-error @+1 {{unknown rope_scaling kind 'yarn' (expected linear or llama3)}}
  %0 = lora.rope %x, %p {head_dim = 4 : i64, theta = 1.0e4 : f64, scaling = #lora.rope_scaling<yarn, factor = 8.0>} : (tensor<2x3x8xf32>, tensor<2x3xi32>) -> tensor<2x3x8xf32>
  return
}

// -----

// Zero query heads.
func.func @f(%q: tensor<2x3x8xf32>, %k: tensor<2x3x4xf32>, %v: tensor<2x3x4xf32>) {
  // expected-error @+1 {{attribute 'num_heads' must be positive, got 0}}
  %0 = lora.attention %q, %k, %v {num_heads = 0 : i64, num_kv_heads = 2 : i64, head_dim = 2 : i64} : (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>) -> tensor<2x3x8xf32>
  return
}

// -----

// Zero kv heads.
func.func @f(%q: tensor<2x3x8xf32>, %k: tensor<2x3x4xf32>, %v: tensor<2x3x4xf32>) {
  // expected-error @+1 {{attribute 'num_kv_heads' must be positive, got 0}}
  %0 = lora.attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 0 : i64, head_dim = 2 : i64} : (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>) -> tensor<2x3x8xf32>
  return
}

// -----

// Zero head_dim.
func.func @f(%q: tensor<2x3x8xf32>, %k: tensor<2x3x4xf32>, %v: tensor<2x3x4xf32>) {
  // expected-error @+1 {{attribute 'head_dim' must be positive, got 0}}
  %0 = lora.attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 0 : i64} : (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>) -> tensor<2x3x8xf32>
  return
}

// -----

// GQA groups must be whole.
func.func @f(%q: tensor<2x3x8xf32>, %k: tensor<2x3x4xf32>, %v: tensor<2x3x4xf32>) {
  // expected-error @+1 {{num_heads (4) must be a multiple of num_kv_heads (3)}}
  %0 = lora.attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 3 : i64, head_dim = 2 : i64} : (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>) -> tensor<2x3x8xf32>
  return
}

// -----

// q is [batch, seq, features].
func.func @f(%q: tensor<6x8xf32>, %k: tensor<2x3x4xf32>, %v: tensor<2x3x4xf32>) {
  // expected-error @+1 {{q must have rank 3}}
  %0 = lora.attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 2 : i64} : (tensor<6x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>) -> tensor<6x8xf32>
  return
}

// -----

// k is [batch, seq, features].
func.func @f(%q: tensor<2x3x8xf32>, %k: tensor<6x4xf32>, %v: tensor<2x3x4xf32>) {
  // expected-error @+1 {{k must have rank 3}}
  %0 = lora.attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 2 : i64} : (tensor<2x3x8xf32>, tensor<6x4xf32>, tensor<2x3x4xf32>) -> tensor<2x3x8xf32>
  return
}

// -----

// v is [batch, seq, features].
func.func @f(%q: tensor<2x3x8xf32>, %k: tensor<2x3x4xf32>, %v: tensor<6x4xf32>) {
  // expected-error @+1 {{v must have rank 3}}
  %0 = lora.attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 2 : i64} : (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<6x4xf32>) -> tensor<2x3x8xf32>
  return
}

// -----

// k covers the same tokens as q.
func.func @f(%q: tensor<2x3x8xf32>, %k: tensor<2x5x4xf32>, %v: tensor<2x3x4xf32>) {
  // expected-error @+1 {{k dimension 1 (5) must equal q dimension 1 (3)}}
  %0 = lora.attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 2 : i64} : (tensor<2x3x8xf32>, tensor<2x5x4xf32>, tensor<2x3x4xf32>) -> tensor<2x3x8xf32>
  return
}

// -----

// v covers the same batch as q.
func.func @f(%q: tensor<2x3x8xf32>, %k: tensor<2x3x4xf32>, %v: tensor<1x3x4xf32>) {
  // expected-error @+1 {{v dimension 0 (1) must equal q dimension 0 (2)}}
  %0 = lora.attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 2 : i64} : (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<1x3x4xf32>) -> tensor<2x3x8xf32>
  return
}

// -----

// q features are num_heads * head_dim.
func.func @f(%q: tensor<2x3x8xf32>, %k: tensor<2x3x4xf32>, %v: tensor<2x3x4xf32>) {
  // expected-error @+1 {{q dimension 2 is 8 but must be 4 (num_heads * head_dim)}}
  %0 = lora.attention %q, %k, %v {num_heads = 2 : i64, num_kv_heads = 2 : i64, head_dim = 2 : i64} : (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>) -> tensor<2x3x8xf32>
  return
}

// -----

// k features are num_kv_heads * head_dim.
func.func @f(%q: tensor<2x3x8xf32>, %k: tensor<2x3x4xf32>, %v: tensor<2x3x4xf32>) {
  // expected-error @+1 {{k dimension 2 is 4 but must be 2 (num_kv_heads * head_dim)}}
  %0 = lora.attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 1 : i64, head_dim = 2 : i64} : (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>) -> tensor<2x3x8xf32>
  return
}

// -----

// v features are num_kv_heads * head_dim.
func.func @f(%q: tensor<2x3x8xf32>, %k: tensor<2x3x4xf32>, %v: tensor<2x3x6xf32>) {
  // expected-error @+1 {{v dimension 2 is 6 but must be 4 (num_kv_heads * head_dim)}}
  %0 = lora.attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 2 : i64} : (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x6xf32>) -> tensor<2x3x8xf32>
  return
}

// -----

// k has the element type of q.
func.func @f(%q: tensor<2x3x8xf32>, %k: tensor<2x3x4xbf16>, %v: tensor<2x3x4xf32>) {
  // expected-error @+1 {{k element type 'bf16' must match q element type 'f32'}}
  %0 = lora.attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 2 : i64} : (tensor<2x3x8xf32>, tensor<2x3x4xbf16>, tensor<2x3x4xf32>) -> tensor<2x3x8xf32>
  return
}

// -----

// v has the element type of q.
func.func @f(%q: tensor<2x3x8xf32>, %k: tensor<2x3x4xf32>, %v: tensor<2x3x4xbf16>) {
  // expected-error @+1 {{v element type 'bf16' must match q element type 'f32'}}
  %0 = lora.attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 2 : i64} : (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xbf16>) -> tensor<2x3x8xf32>
  return
}

// -----

// Attention returns the type of q.
func.func @f(%q: tensor<2x3x8xf32>, %k: tensor<2x3x4xf32>, %v: tensor<2x3x4xf32>) {
  // expected-error @+1 {{result type 'tensor<2x3x4xf32>' must equal q type 'tensor<2x3x8xf32>'}}
  %0 = lora.attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 2 : i64} : (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>) -> tensor<2x3x4xf32>
  return
}

// -----

// Segment ids are [batch, seq].
func.func @f(%q: tensor<2x3x8xf32>, %k: tensor<2x3x4xf32>, %v: tensor<2x3x4xf32>, %s: tensor<6xi32>) {
  // expected-error @+1 {{segment_ids must have rank 2}}
  %0 = lora.attention %q, %k, %v segments %s {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 2 : i64} : (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>, tensor<6xi32>) -> tensor<2x3x8xf32>
  return
}

// -----

// One segment id per token.
func.func @f(%q: tensor<2x3x8xf32>, %k: tensor<2x3x4xf32>, %v: tensor<2x3x4xf32>, %s: tensor<2x4xi32>) {
  // expected-error @+1 {{segment_ids dimension 1 (4) must equal q dimension 1 (3)}}
  %0 = lora.attention %q, %k, %v segments %s {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 2 : i64} : (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>, tensor<2x4xi32>) -> tensor<2x3x8xf32>
  return
}

// -----

// A zero sliding window.
func.func @f(%q: tensor<2x3x8xf32>, %k: tensor<2x3x4xf32>, %v: tensor<2x3x4xf32>) {
  // expected-error @+1 {{attribute 'sliding_window' must be positive, got 0}}
  %0 = lora.attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 2 : i64, sliding_window = 0 : i64} : (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>) -> tensor<2x3x8xf32>
  return
}

// -----

// A negative softmax scale.
func.func @f(%q: tensor<2x3x8xf32>, %k: tensor<2x3x4xf32>, %v: tensor<2x3x4xf32>) {
  // expected-error @+1 {{attribute 'scale' failed to satisfy constraint}}
  %0 = lora.attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 2 : i64, scale = -1.0 : f64} : (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>) -> tensor<2x3x8xf32>
  return
}

// -----

// SwiGLU halves of different types.
func.func @f(%g: tensor<2x4xf32>, %u: tensor<2x5xf32>) {
  // expected-error @+1 {{up type 'tensor<2x5xf32>' must equal gate type 'tensor<2x4xf32>'}}
  %0 = lora.swiglu %g, %u : (tensor<2x4xf32>, tensor<2x5xf32>) -> tensor<2x4xf32>
  return
}

// -----

// SwiGLU keeps the type of its inputs.
func.func @f(%g: tensor<2x4xf32>, %u: tensor<2x4xf32>) {
  // expected-error @+1 {{result type 'tensor<2x4xbf16>' must equal gate type 'tensor<2x4xf32>'}}
  %0 = lora.swiglu %g, %u : (tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<2x4xbf16>
  return
}

// -----

// Residual add of different shapes.
func.func @f(%a: tensor<2x4xf32>, %b: tensor<4x2xf32>) {
  // expected-error @+1 {{rhs type 'tensor<4x2xf32>' must equal lhs type 'tensor<2x4xf32>'}}
  %0 = lora.add %a, %b : (tensor<2x4xf32>, tensor<4x2xf32>) -> tensor<2x4xf32>
  return
}

// -----

// Add keeps the type of its inputs.
func.func @f(%a: tensor<2x4xf32>, %b: tensor<2x4xf32>) {
  // expected-error @+1 {{result type 'tensor<2x4xf16>' must equal lhs type 'tensor<2x4xf32>'}}
  %0 = lora.add %a, %b : (tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<2x4xf16>
  return
}

// -----

// LM head on a scalar.
func.func @f(%x: tensor<bf16>, %w: tensor<10x8xbf16>) {
  // expected-error @+1 {{x must have rank >= 1}}
  %0 = lora.lm_head %x, %w : (tensor<bf16>, tensor<10x8xbf16>) -> tensor<10xf32>
  return
}

// -----

// The LM head weight is a matrix.
func.func @f(%x: tensor<2x3x8xbf16>, %w: tensor<80xbf16>) {
  // expected-error @+1 {{weight must have rank 2}}
  %0 = lora.lm_head %x, %w : (tensor<2x3x8xbf16>, tensor<80xbf16>) -> tensor<2x3x10xf32>
  return
}

// -----

// The LM head reads the hidden size.
func.func @f(%x: tensor<2x3x8xbf16>, %w: tensor<10x6xbf16>) {
  // expected-error @+1 {{x dimension 2 (8) must equal weight dimension 1 (6)}}
  %0 = lora.lm_head %x, %w : (tensor<2x3x8xbf16>, tensor<10x6xbf16>) -> tensor<2x3x10xf32>
  return
}

// -----

// Logits keep the rank of x.
func.func @f(%x: tensor<2x3x8xbf16>, %w: tensor<10x8xbf16>) {
  // expected-error @+1 {{logits must have rank 3}}
  %0 = lora.lm_head %x, %w : (tensor<2x3x8xbf16>, tensor<10x8xbf16>) -> tensor<6x10xf32>
  return
}

// -----

// Logits keep the tokens of x.
func.func @f(%x: tensor<2x3x8xbf16>, %w: tensor<10x8xbf16>) {
  // expected-error @+1 {{logits dimension 1 (4) must equal x dimension 1 (3)}}
  %0 = lora.lm_head %x, %w : (tensor<2x3x8xbf16>, tensor<10x8xbf16>) -> tensor<2x4x10xf32>
  return
}

// -----

// One logit per vocabulary entry.
func.func @f(%x: tensor<2x3x8xbf16>, %w: tensor<10x8xbf16>) {
  // expected-error @+1 {{logits dimension 2 (12) must equal weight dimension 0 (10)}}
  %0 = lora.lm_head %x, %w : (tensor<2x3x8xbf16>, tensor<10x8xbf16>) -> tensor<2x3x12xf32>
  return
}

// -----

// The LM head weight has the element type of x.
func.func @f(%x: tensor<2x3x8xbf16>, %w: tensor<10x8xf32>) {
  // expected-error @+1 {{weight element type 'f32' must match x element type 'bf16'}}
  %0 = lora.lm_head %x, %w : (tensor<2x3x8xbf16>, tensor<10x8xf32>) -> tensor<2x3x10xf32>
  return
}

// -----

// Logits are float32.
func.func @f(%x: tensor<2x3x8xbf16>, %w: tensor<10x8xbf16>) {
  // expected-error @+1 {{result #0 must be ranked tensor of 32-bit float values}}
  %0 = lora.lm_head %x, %w : (tensor<2x3x8xbf16>, tensor<10x8xbf16>) -> tensor<2x3x10xbf16>
  return
}

// -----

// Cross-entropy needs a vocabulary axis.
func.func @f(%l: tensor<10xf32>, %t: tensor<i32>, %m: tensor<i1>) {
  // expected-error @+1 {{logits must have rank >= 2}}
  %0, %1 = lora.cross_entropy %l, %t, %m : (tensor<10xf32>, tensor<i32>, tensor<i1>) -> (tensor<f32>, tensor<i64>)
  return
}

// -----

// One target per token.
func.func @f(%l: tensor<2x3x10xf32>, %t: tensor<6xi32>, %m: tensor<2x3xi1>) {
  // expected-error @+1 {{targets must have rank 2}}
  %0, %1 = lora.cross_entropy %l, %t, %m : (tensor<2x3x10xf32>, tensor<6xi32>, tensor<2x3xi1>) -> (tensor<f32>, tensor<i64>)
  return
}

// -----

// One mask bit per token.
func.func @f(%l: tensor<2x3x10xf32>, %t: tensor<2x3xi32>, %m: tensor<6xi1>) {
  // expected-error @+1 {{mask must have rank 2}}
  %0, %1 = lora.cross_entropy %l, %t, %m : (tensor<2x3x10xf32>, tensor<2x3xi32>, tensor<6xi1>) -> (tensor<f32>, tensor<i64>)
  return
}

// -----

// Targets cover the logits' tokens.
func.func @f(%l: tensor<2x3x10xf32>, %t: tensor<2x4xi32>, %m: tensor<2x3xi1>) {
  // expected-error @+1 {{targets dimension 1 (4) must equal logits dimension 1 (3)}}
  %0, %1 = lora.cross_entropy %l, %t, %m : (tensor<2x3x10xf32>, tensor<2x4xi32>, tensor<2x3xi1>) -> (tensor<f32>, tensor<i64>)
  return
}

// -----

// The mask covers the logits' tokens.
func.func @f(%l: tensor<2x3x10xf32>, %t: tensor<2x3xi32>, %m: tensor<1x3xi1>) {
  // expected-error @+1 {{mask dimension 0 (1) must equal logits dimension 0 (2)}}
  %0, %1 = lora.cross_entropy %l, %t, %m : (tensor<2x3x10xf32>, tensor<2x3xi32>, tensor<1x3xi1>) -> (tensor<f32>, tensor<i64>)
  return
}

// -----

// The loss is a float32 scalar.
func.func @f(%l: tensor<2x3x10xf32>, %t: tensor<2x3xi32>, %m: tensor<2x3xi1>) {
  // expected-error @+1 {{result #0 must be 0D tensor of 32-bit float values}}
  %0, %1 = lora.cross_entropy %l, %t, %m : (tensor<2x3x10xf32>, tensor<2x3xi32>, tensor<2x3xi1>) -> (tensor<2xf32>, tensor<i64>)
  return
}

// -----

// Dequantize keeps the shape.
func.func @f(%q: !lora.nf4<4x64, block_size = 64, double_quant = 256>) {
  // expected-error @+1 {{result shape 'tensor<64x4xbf16>' must equal the quantized shape '!lora.nf4<4x64, block_size = 64, double_quant = 256>'}}
  %0 = lora.dequantize %q : !lora.nf4<4x64, block_size = 64, double_quant = 256> -> tensor<64x4xbf16>
  return
}

// -----

// NF4 dimensions are positive.
// expected-error @+1 {{nf4 dimensions must be positive, got 0}}
func.func private @f(!lora.nf4<0x64, block_size = 64, double_quant = none>)

// -----

// NF4 blocks are powers of two.
// expected-error @+1 {{nf4 block_size must be a power of two in [2, 4096], got 48}}
func.func private @f(!lora.nf4<4x96, block_size = 48, double_quant = none>)

// -----

// Double-quantization groups are powers of two.
// expected-error @+1 {{nf4 double_quant block must be none or a power of two in [1, 4096], got 100}}
func.func private @f(!lora.nf4<4x64, block_size = 64, double_quant = 100>)

// -----

// NF4 elements fill whole blocks.
// expected-error @+1 {{nf4 element count 96 is not a multiple of block_size 64}}
func.func private @f(!lora.nf4<3x32, block_size = 64, double_quant = none>)

// -----

// An unknown lora attribute.
// expected-error @+1 {{unknown lora dialect attribute 'lora.foo' (expected one of}}
module attributes {lora.foo = 1 : i64} {
}

// -----

// The model config belongs on the module.
module {
  // expected-error @+1 {{attribute 'lora.model' is only valid on a module}}
  func.func @f() attributes {lora.model = {}} {
    return
  }
}

// -----

// The model config is a dictionary.
// expected-error @+1 {{attribute 'lora.model' must be a dictionary}}
module attributes {lora.model = 1 : i64} {
}

// -----

// A missing config key.
// expected-error @+1 {{attribute 'lora.model' is missing key 'vocab_size'}}
module attributes {lora.model = {architecture = "LlamaForCausalLM", hidden_size = 64 : i64, intermediate_size = 128 : i64, num_hidden_layers = 1 : i64, num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, head_dim = 16 : i64, rms_norm_eps = 1.0e-05 : f64, rope_theta = 10000.0 : f64, tie_word_embeddings = true, attention_bias = false}} {
}

// -----

// A config key of the wrong type.
// expected-error @+1 {{attribute 'lora.model': key 'hidden_size' must be a positive i64, got -64 : i64}}
module attributes {lora.model = {architecture = "LlamaForCausalLM", hidden_size = -64 : i64, intermediate_size = 128 : i64, num_hidden_layers = 1 : i64, num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, head_dim = 16 : i64, vocab_size = 100 : i64, rms_norm_eps = 1.0e-05 : f64, rope_theta = 10000.0 : f64, tie_word_embeddings = true, attention_bias = false}} {
}

// -----

// A non-positive rms_norm_eps.
// expected-error @+1 {{attribute 'lora.model': key 'rms_norm_eps' must be a positive float}}
module attributes {lora.model = {architecture = "LlamaForCausalLM", hidden_size = 64 : i64, intermediate_size = 128 : i64, num_hidden_layers = 1 : i64, num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, head_dim = 16 : i64, vocab_size = 100 : i64, rms_norm_eps = 0.0 : f64, rope_theta = 10000.0 : f64, tie_word_embeddings = true, attention_bias = false}} {
}

// -----

// GQA groups in the config must be whole.
// expected-error @+1 {{attribute 'lora.model': num_attention_heads (4) must be a multiple of num_key_value_heads (3)}}
module attributes {lora.model = {architecture = "LlamaForCausalLM", hidden_size = 64 : i64, intermediate_size = 128 : i64, num_hidden_layers = 1 : i64, num_attention_heads = 4 : i64, num_key_value_heads = 3 : i64, head_dim = 16 : i64, vocab_size = 100 : i64, rms_norm_eps = 1.0e-05 : f64, rope_theta = 10000.0 : f64, tie_word_embeddings = true, attention_bias = false}} {
}

// -----

// The adapter config needs r.
// expected-error @+1 {{attribute 'lora.adapter_config' is missing key 'r'}}
module attributes {lora.adapter_config = {lora_alpha = 16.0 : f64, lora_dropout = 0.0 : f64, target_modules = ["q_proj"]}} {
}

// -----

// Adapter dropout out of range.
// expected-error @+1 {{attribute 'lora.adapter_config': key 'lora_dropout' must be a float in [0, 1), got 1.000000e+00 : f64}}
module attributes {lora.adapter_config = {r = 8 : i64, lora_alpha = 16.0 : f64, lora_dropout = 1.0 : f64, target_modules = ["q_proj"]}} {
}

// -----

// Target modules are names.
// expected-error @+1 {{attribute 'lora.adapter_config': key 'target_modules' must be an array of strings}}
module attributes {lora.adapter_config = {r = 8 : i64, lora_alpha = 16.0 : f64, lora_dropout = 0.0 : f64, target_modules = [1]}} {
}

// -----

// select_rows keeps one position per sequence.
func.func @f(%h: tensor<2x8x64xf32>, %i: tensor<2xi32>) {
  // expected-error @+1 {{result dimension 1 is 2 but must be 1 (one row per sequence)}}
  %0 = lora.select_rows %h, %i : (tensor<2x8x64xf32>, tensor<2xi32>) -> tensor<2x2x64xf32>
  return
}

// -----

// One index per sequence.
func.func @f(%h: tensor<2x8x64xf32>, %i: tensor<3xi32>) {
  // expected-error @+1 {{index dimension 0 (3) must equal x dimension 0 (2)}}
  %0 = lora.select_rows %h, %i : (tensor<2x8x64xf32>, tensor<3xi32>) -> tensor<2x1x64xf32>
  return
}

// -----

// The discardable attributes of the compiler's passes.
func.func @f(%x: tensor<4xf32>) {
  // expected-error @+1 {{attribute 'lora.kernel' must be a dictionary with a string 'kind'}}
  %0 = lora.add %x, %x {lora.kernel = {elements = 4 : i64}} : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @f(%x: tensor<4xf32>) {
  // expected-error @+1 {{attribute 'lora.offsets' must be an i64 array with one offset per result}}
  %0 = lora.add %x, %x {lora.offsets = array<i64: 0, 16>} : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @f(%x: tensor<4xf32>) {
  // expected-error @+1 {{attribute 'lora.offsets' must hold non-negative offsets}}
  %0 = lora.add %x, %x {lora.offsets = array<i64: -16>} : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

// A workspace offset needs a kernel that asked for a workspace.
func.func @f(%x: tensor<4xf32>) {
  // expected-error @+1 {{attribute 'lora.workspace' must be a non-negative i64 on an op whose kernel has a 'cuda_workspace'}}
  %0 = lora.add %x, %x {lora.kernel = {kind = "add", elements = 4 : i64}, lora.workspace = 0 : i64} : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @f(%x: tensor<4xf32>) {
  // expected-error @+1 {{attribute 'lora.workspace' must be a non-negative i64}}
  %0 = lora.add %x, %x {lora.kernel = {kind = "add", cuda_workspace = 64 : i64}, lora.workspace = -64 : i64} : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @f(%l: tensor<2x8x100xf32>, %t: tensor<2x8xi32>, %m: tensor<2x8xi1>, %s: tensor<2x8xi32>) {
  // expected-error @+1 {{per-sequence values must be [4] (num_sequences), got 'tensor<3xf32>'}}
  %0 = lora.sequence_logprobs %l, %t, %m, %s {num_sequences = 4 : i64} : (tensor<2x8x100xf32>, tensor<2x8xi32>, tensor<2x8xi1>, tensor<2x8xi32>) -> tensor<3xf32>
  return
}

// -----

func.func @f(%l: tensor<2x8x100xf32>, %t: tensor<2x8xi32>, %m: tensor<2x8xi1>, %s: tensor<2x7xi32>) {
  // expected-error @+1 {{sequence_ids}}
  %0 = lora.sequence_logprobs %l, %t, %m, %s {num_sequences = 4 : i64} : (tensor<2x8x100xf32>, tensor<2x8xi32>, tensor<2x8xi1>, tensor<2x7xi32>) -> tensor<4xf32>
  return
}

// -----

func.func @f(%l: tensor<2x8x100xf32>, %t: tensor<2x8xi32>, %m: tensor<2x8xi1>, %s: tensor<2x8xi32>) {
  // expected-error @+1 {{num_sequences must be positive, got 0}}
  %0 = lora.sequence_logprobs %l, %t, %m, %s {num_sequences = 0 : i64} : (tensor<2x8x100xf32>, tensor<2x8xi32>, tensor<2x8xi1>, tensor<2x8xi32>) -> tensor<0xf32>
  return
}

// -----

func.func @f(%p: tensor<4xf32>, %r: tensor<4xf32>, %pairs: tensor<3xi1>) {
  // expected-error @+1 {{pair_mask must be [pairs] with 2 * pairs = 4 log-probabilities, got 'tensor<3xi1>'}}
  %0:6 = lora.dpo_loss %p, %r, %pairs {beta = 0.1 : f64, loss_type = "sigmoid"} : (tensor<4xf32>, tensor<4xf32>, tensor<3xi1>) -> (tensor<f32>, tensor<i64>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>)
  return
}

// -----

func.func @f(%p: tensor<4xf32>, %r: tensor<6xf32>, %pairs: tensor<2xi1>) {
  // expected-error @+1 {{policy and reference must be the same [2 * pairs] tensor, got 'tensor<4xf32>' and 'tensor<6xf32>'}}
  %0:6 = lora.dpo_loss %p, %r, %pairs {beta = 0.1 : f64, loss_type = "sigmoid"} : (tensor<4xf32>, tensor<6xf32>, tensor<2xi1>) -> (tensor<f32>, tensor<i64>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>)
  return
}

// -----

func.func @f(%p: tensor<4xf32>, %r: tensor<4xf32>, %pairs: tensor<2xi1>) {
  // expected-error @+1 {{loss_type must be sigmoid or ipo, got 'hinge'}}
  %0:6 = lora.dpo_loss %p, %r, %pairs {beta = 0.1 : f64, loss_type = "hinge"} : (tensor<4xf32>, tensor<4xf32>, tensor<2xi1>) -> (tensor<f32>, tensor<i64>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>)
  return
}

// -----

func.func @f(%p: tensor<4xf32>, %r: tensor<4xf32>, %pairs: tensor<2xi1>) {
  // expected-error @+1 {{attribute 'beta' failed to satisfy constraint}}
  %0:6 = lora.dpo_loss %p, %r, %pairs {beta = 0.0 : f64, loss_type = "sigmoid"} : (tensor<4xf32>, tensor<4xf32>, tensor<2xi1>) -> (tensor<f32>, tensor<i64>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>)
  return
}

// -----

func.func @f(%p: tensor<4xf32>, %r: tensor<4xf32>, %pairs: tensor<2xi1>, %d: tensor<f32>) {
  // expected-error @+1 {{dpolicy}}
  %0 = lora.dpo_loss_grad %p, %r, %pairs, %d {beta = 0.1 : f64, loss_type = "sigmoid"} : (tensor<4xf32>, tensor<4xf32>, tensor<2xi1>, tensor<f32>) -> tensor<2xf32>
  return
}

// -----

func.func @f(%l: tensor<2x8x100xf32>, %t: tensor<2x8xi32>, %m: tensor<2x8xi1>, %s: tensor<2x8xi32>, %d: tensor<4xf32>) {
  // expected-error @+1 {{dlogits}}
  %0 = lora.sequence_logprobs_grad %l, %t, %m, %s, %d : (tensor<2x8x100xf32>, tensor<2x8xi32>, tensor<2x8xi1>, tensor<2x8xi32>, tensor<4xf32>) -> tensor<2x8x100xbf16>
  return
}

// -----

func.func @f(%a: tensor<4x64xf32>, %b: tensor<32x4xf32>, %fi: tensor<32x32xf32>, %n: tensor<i64>) {
  // expected-error @+1 {{fisher must be [out, in] = [32, 64] like b · a, got 'tensor<32x32xf32>'}}
  %0:2 = lora.ewc_penalty %a, %b, %fi, %n {lambda = 1.0 : f64, scaling = 2.0 : f64} : (tensor<4x64xf32>, tensor<32x4xf32>, tensor<32x32xf32>, tensor<i64>) -> (tensor<f32>, tensor<f32>)
  return
}

// -----

func.func @f(%a: tensor<4x64xf32>, %b: tensor<32x8xf32>, %fi: tensor<32x64xf32>, %n: tensor<i64>) {
  // expected-error @+1 {{disagree on the rank}}
  %0:2 = lora.ewc_penalty %a, %b, %fi, %n {lambda = 1.0 : f64, scaling = 2.0 : f64} : (tensor<4x64xf32>, tensor<32x8xf32>, tensor<32x64xf32>, tensor<i64>) -> (tensor<f32>, tensor<f32>)
  return
}

// -----

func.func @f(%a: tensor<4x64xf32>, %b: tensor<32x4xf32>, %fi: tensor<32x64xf32>, %n: tensor<i64>, %d: tensor<f32>) {
  // expected-error @+1 {{da}}
  %0:2 = lora.ewc_penalty_grad %a, %b, %fi, %n, %d {lambda = 1.0 : f64, scaling = 2.0 : f64} : (tensor<4x64xf32>, tensor<32x4xf32>, tensor<32x64xf32>, tensor<i64>, tensor<f32>) -> (tensor<4x64xbf16>, tensor<32x4xf32>)
  return
}

// -----

// In a lora model one name is one persistent tensor: two lora.param of the
// same name must agree on type and role (the same type twice is fine).
module attributes {lora.model = {architecture = "LlamaForCausalLM", hidden_size = 64 : i64, intermediate_size = 128 : i64, num_hidden_layers = 1 : i64, num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, head_dim = 16 : i64, vocab_size = 100 : i64, rms_norm_eps = 1.0e-05 : f64, rope_theta = 10000.0 : f64, tie_word_embeddings = true, attention_bias = false}} {
  func.func @f() {
    // expected-note @+1 {{first declared here}}
    %0 = lora.param "w" frozen : tensor<4x8xf32>
    %1 = lora.param "w" frozen : tensor<4x8xf32>
    return
  }
  func.func @g() {
    // expected-error @+1 {{declares 'w' as 'tensor<8x8xf32>' (frozen), but it is 'tensor<4x8xf32>' (frozen) elsewhere}}
    %0 = lora.param "w" frozen : tensor<8x8xf32>
    return
  }
}

// -----

// The fused LM-head loss: dx must have x's type.
func.func @f(%h: tensor<2x4x16xbf16>, %w: tensor<50x16xbf16>, %t: tensor<2x4xi32>, %m: tensor<2x4xi1>) {
  // expected-error @+1 {{'lora.lm_head_cross_entropy_with_grad' op dx}}
  %l, %n, %dx = lora.lm_head_cross_entropy_with_grad %h, %w, %t, %m {chunk_size = 8 : i64, dloss = 1.0 : f64} : (tensor<2x4x16xbf16>, tensor<50x16xbf16>, tensor<2x4xi32>, tensor<2x4xi1>) -> (tensor<f32>, tensor<i64>, tensor<2x4x8xbf16>)
  return
}

// -----

// The fused LM-head loss: a non-finite dloss.
func.func @f(%h: tensor<2x4x16xbf16>, %w: tensor<50x16xbf16>, %t: tensor<2x4xi32>, %m: tensor<2x4xi1>) {
  // expected-error @+1 {{dloss must be finite, got INF}}
  %l, %n, %dx = lora.lm_head_cross_entropy_with_grad %h, %w, %t, %m {chunk_size = 8 : i64, dloss = 0x7FF0000000000000 : f64} : (tensor<2x4x16xbf16>, tensor<50x16xbf16>, tensor<2x4xi32>, tensor<2x4xi1>) -> (tensor<f32>, tensor<i64>, tensor<2x4x16xbf16>)
  return
}

// -----

// The fused LM-head loss: the weight's features differ from x's.
func.func @f(%h: tensor<2x4x16xbf16>, %w: tensor<50x12xbf16>, %t: tensor<2x4xi32>, %m: tensor<2x4xi1>) {
  // expected-error @+1 {{'lora.lm_head_cross_entropy_with_grad' op}}
  %l, %n, %dx = lora.lm_head_cross_entropy_with_grad %h, %w, %t, %m {chunk_size = 8 : i64, dloss = 1.0 : f64} : (tensor<2x4x16xbf16>, tensor<50x12xbf16>, tensor<2x4xi32>, tensor<2x4xi1>) -> (tensor<f32>, tensor<i64>, tensor<2x4x16xbf16>)
  return
}

// -----

// A gradient bucket without names.
func.func @f(%s: tensor<f32>) {
  // expected-error @+1 {{needs at least one gradient name}}
  lora.grad_all_reduce_start [] sync(%s) {bucket = 0 : i64, bytes = 4 : i64} : tensor<f32>
  return
}

// -----

// A gradient listed twice in a bucket.
func.func @f() {
  // expected-error @+1 {{lists 'grad/a' twice}}
  lora.grad_all_reduce_wait ["grad/a", "grad/a"] {bucket = 0 : i64, bytes = 4 : i64}
  return
}

// -----

// An empty gradient name.
func.func @f() {
  // expected-error @+1 {{has an empty gradient name}}
  lora.grad_all_reduce_wait [""] {bucket = 0 : i64, bytes = 4 : i64}
  return
}

// -----

// A negative bucket index.
func.func @f(%s: tensor<f32>) {
  // expected-error @+1 {{attribute 'bucket' must be >= 0, got -1}}
  lora.grad_all_reduce_start ["grad/a"] sync(%s) {bucket = -1 : i64, bytes = 4 : i64} : tensor<f32>
  return
}

// -----

// A bucket of no bytes.
func.func @f() {
  // expected-error @+1 {{attribute 'bytes' must be positive, got 0}}
  lora.grad_all_reduce_wait ["grad/a"] {bucket = 0 : i64, bytes = 0 : i64}
  return
}

// -----

// An all-reduce whose result type differs from its input's.
func.func @f(%x: tensor<4xf32>) {
  // expected-error @+1 {{result type 'tensor<2xf32>' must equal the input type 'tensor<4xf32>'}}
  %y = lora.all_reduce_sum %x : (tensor<4xf32>) -> tensor<2xf32>
  return
}

// -----

// An lse whose head dimension is not num_heads.
func.func @f(%q: tensor<2x3x8xf32>, %k: tensor<2x3x4xf32>) {
  // expected-error @+1 {{lse dimension 1 is 3 but must be 4 (num_heads)}}
  %o, %l = lora.attention_with_lse %q, %k, %k {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 2 : i64} : (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>) -> (tensor<2x3x8xf32>, tensor<2x3x3xf32>)
  return
}

// -----

// An lse of rank 2.
func.func @f(%q: tensor<2x3x8xf32>, %k: tensor<2x3x4xf32>) {
  // expected-error @+1 {{lse must have rank 3}}
  %o, %l = lora.attention_with_lse %q, %k, %k {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 2 : i64} : (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>) -> (tensor<2x3x8xf32>, tensor<6x3xf32>)
  return
}

// -----

// An lse in bf16 (the statistics are f32).
func.func @f(%q: tensor<2x3x8xf32>, %k: tensor<2x3x4xf32>) {
  // expected-error @+1 {{result #1 must be ranked tensor of 32-bit float values}}
  %o, %l = lora.attention_with_lse %q, %k, %k {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 2 : i64} : (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>) -> (tensor<2x3x8xf32>, tensor<2x4x3xbf16>)
  return
}

// -----

// A backward with the forward's output but no lse.
func.func @f(%q: tensor<2x3x8xf32>, %k: tensor<2x3x4xf32>) {
  // expected-error @+1 {{takes the forward's 'out' and 'lse' together or neither}}
  %0:3 = "lora.attention_grad"(%q, %q, %k, %k, %q) <{head_dim = 2 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 0, 0>}> : (tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>, tensor<2x3x8xf32>) -> (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>)
  return
}

// -----

// A saved output of another type than q.
func.func @f(%q: tensor<2x3x8xf32>, %k: tensor<2x3x4xf32>, %o: tensor<2x3x8xbf16>, %l: tensor<2x4x3xf32>) {
  // expected-error @+1 {{out type 'tensor<2x3x8xbf16>' must equal q type 'tensor<2x3x8xf32>'}}
  %0:3 = lora.attention_grad %q, %q, %k, %k saved(%o, %l) {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 2 : i64} : (tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>, tensor<2x3x8xbf16>, tensor<2x4x3xf32>) -> (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>)
  return
}

// -----

// A q of the wrong rank with saved operands: q is checked before them.
func.func @f(%q: tensor<2xf32>, %l: tensor<2x4x3xf32>) {
  // expected-error @+1 {{q must have rank 3, got 'tensor<2xf32>'}}
  %0:3 = lora.attention_grad %q, %q, %q, %q saved(%q, %l) {num_heads = 4 : i64, num_kv_heads = 4 : i64, head_dim = 2 : i64} : (tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2x4x3xf32>) -> (tensor<2xf32>, tensor<2xf32>, tensor<2xf32>)
  return
}

// -----

// A saved lse over another sequence length.
func.func @f(%q: tensor<2x3x8xf32>, %k: tensor<2x3x4xf32>, %l: tensor<2x4x5xf32>) {
  // expected-error @+1 {{lse dimension 2 (5) must equal q dimension 1 (3)}}
  %0:3 = lora.attention_grad %q, %q, %k, %k saved(%q, %l) {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 2 : i64} : (tensor<2x3x8xf32>, tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>, tensor<2x3x8xf32>, tensor<2x4x5xf32>) -> (tensor<2x3x8xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>)
  return
}

// -----

// Without dx (lora-autodiff's form where the input gradient is not wanted),
// the two results are dA and dB: a dx-shaped first result is refused.
func.func @f(%dy: tensor<2x8x64xf32>, %x: tensor<2x8x32xf32>, %w: tensor<64x32xf32>, %a: tensor<4x32xf32>, %b: tensor<64x4xf32>) {
  // expected-error @+1 {{da type 'tensor<2x8x32xf32>' must equal A type 'tensor<4x32xf32>'}}
  %0:2 = lora.fused_linear_grad %dy, %x, %w, %a, %b {alpha = 8.0 : f64} : (tensor<2x8x64xf32>, tensor<2x8x32xf32>, tensor<64x32xf32>, tensor<4x32xf32>, tensor<64x4xf32>) -> (tensor<2x8x32xf32>, tensor<64x4xf32>)
  return
}

// -----

// The adapter's gradient without dx: dB must still match B.
func.func @f(%dy: tensor<2x8x64xf32>, %x: tensor<2x8x32xf32>, %a: tensor<4x32xf32>, %b: tensor<64x4xf32>) {
  // expected-error @+1 {{db type 'tensor<4x32xf32>' must equal B type 'tensor<64x4xf32>'}}
  %0:2 = lora.adapter_grad %dy, %x, %a, %b {alpha = 8.0 : f64} : (tensor<2x8x64xf32>, tensor<2x8x32xf32>, tensor<4x32xf32>, tensor<64x4xf32>) -> (tensor<4x32xf32>, tensor<4x32xf32>)
  return
}

// -----

// The graph's attention must be the config's: a module whose lora.model says
// 8 heads while its attention runs 4 is refused (its plan would record 8).
module attributes {lora.model = {architecture = "LlamaForCausalLM", hidden_size = 64 : i64, intermediate_size = 128 : i64, num_hidden_layers = 1 : i64, num_attention_heads = 8 : i64, num_key_value_heads = 2 : i64, head_dim = 8 : i64, vocab_size = 100 : i64, rms_norm_eps = 1.0e-05 : f64, rope_theta = 10000.0 : f64, tie_word_embeddings = true, attention_bias = false}} {
  func.func @f(%q: tensor<2x3x64xf32>, %k: tensor<2x3x32xf32>) -> tensor<2x3x64xf32> {
    // expected-error @+1 {{'lora.attention' op num_heads 4 differs from the module's lora.model (8)}}
    %0 = lora.attention %q, %k, %k {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64} : (tensor<2x3x64xf32>, tensor<2x3x32xf32>, tensor<2x3x32xf32>) -> tensor<2x3x64xf32>
    return %0 : tensor<2x3x64xf32>
  }
}

// -----

// RoPE's base too.
module attributes {lora.model = {architecture = "LlamaForCausalLM", hidden_size = 64 : i64, intermediate_size = 128 : i64, num_hidden_layers = 1 : i64, num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, head_dim = 16 : i64, vocab_size = 100 : i64, rms_norm_eps = 1.0e-05 : f64, rope_theta = 10000.0 : f64, tie_word_embeddings = true, attention_bias = false}} {
  func.func @f(%q: tensor<2x3x64xf32>, %pos: tensor<2x3xi32>) -> tensor<2x3x64xf32> {
    // expected-error @+1 {{'lora.rope' op theta 5.000000e+05 differs from the module's lora.model (1.000000e+04)}}
    %0 = lora.rope %q, %pos {head_dim = 16 : i64, theta = 5.0e+05 : f64} : (tensor<2x3x64xf32>, tensor<2x3xi32>) -> tensor<2x3x64xf32>
    return %0 : tensor<2x3x64xf32>
  }
}

// -----

// An attention op without its attributes under a lora.model gets its own
// verifier's error (the config check skips it rather than reading nothing).
module attributes {lora.model = {architecture = "LlamaForCausalLM", hidden_size = 64 : i64, intermediate_size = 128 : i64, num_hidden_layers = 1 : i64, num_attention_heads = 4 : i64, num_key_value_heads = 2 : i64, head_dim = 16 : i64, vocab_size = 100 : i64, rms_norm_eps = 1.0e-05 : f64, rope_theta = 10000.0 : f64, tie_word_embeddings = true, attention_bias = false}} {
  func.func @f(%q: tensor<2x3x64xf32>, %k: tensor<2x3x32xf32>) -> tensor<2x3x64xf32> {
    // expected-error @+1 {{requires attribute 'num_heads'}}
    %0 = "lora.attention"(%q, %k, %k) <{num_kv_heads = 2 : i64, head_dim = 16 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 0>}> : (tensor<2x3x64xf32>, tensor<2x3x32xf32>, tensor<2x3x32xf32>) -> tensor<2x3x64xf32>
    return %0 : tensor<2x3x64xf32>
  }
}
