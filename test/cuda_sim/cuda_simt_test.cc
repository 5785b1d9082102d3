// The CUDA-core templates (codegen/cuda/simt.cpp) on the CPU simulator
// against the CPU backend, on fresh random inputs: f32, f16 and bf16
// operands; partial tiles in every dimension (and K not a multiple of 16);
// NF4 weights with and without double quantization; ranks 4 and 128;
// dropout; the LM-head loss over several chunks (f32 and bf16 dw);
// attention with several 32-key sweeps, grouped heads, a sliding window,
// bidirectional, packed documents. And every launch through NVRTC/ptxas for
// sm_80 and sm_90a without spills.
#include <gtest/gtest.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "cuda/attention.h"
#include "cuda/gemm.h"
#include "cuda/linear_bwd.h"
#include "cuda/lm_head.h"
#include "cuda/simt.h"
#include "lorart/cpu/kernel.h"
#include "lorart/quant/nf4.h"
#include "sim_runner.h"
#include "sim_test_util.h"

namespace {

using lorart::cpu::TensorView;
using lorart::schema::DType;
namespace cuda = lorac::cuda;

std::string CudaType(DType d) {
  return d == DType::F32 ? "float" : d == DType::F16 ? "__half" : "__nv_bfloat16";
}
size_t Bytes(DType d) { return d == DType::F32 || d == DType::I32 ? 4 : d == DType::I64 ? 8 : d == DType::BOOL ? 1 : 2; }

// A host tensor: its bytes (with slack after them) and a view.
struct Tensor {
  std::vector<uint8_t> bytes;
  TensorView view;
};

Tensor Make(DType d, std::vector<int64_t> shape) {
  Tensor t;
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  t.bytes.assign(static_cast<size_t>(n) * Bytes(d) + 64, 0);
  t.view = lora_sim_test::View(t.bytes.data(), d, std::move(shape));
  return t;
}

Tensor Random(DType d, std::vector<int64_t> shape, std::mt19937_64& rng, float scale) {
  Tensor t = Make(d, std::move(shape));
  std::uniform_real_distribution<float> u(-scale, scale);
  for (int64_t i = 0; i < t.view.numel(); ++i) lorart::cpu::StoreFloat(t.view, i, u(rng));
  return t;
}

// An NF4 weight [n, k] quantized from random bf16 values (block 64).
Tensor Nf4(int64_t n, int64_t k, int64_t double_quant, std::mt19937_64& rng) {
  std::vector<uint16_t> w = lora_sim_test::RandomBf16(n * k, rng, 0.2f);
  auto layout = lorart::Nf4Layout::Make(n * k, 64, double_quant);
  EXPECT_TRUE(layout.ok());
  Tensor t;
  t.bytes.assign(layout->total_bytes() + 64, 0);
  EXPECT_TRUE(lorart::QuantizeNf4FromBf16(w.data(), n * k, *layout, t.bytes.data(), layout->total_bytes()).ok());
  t.view = lora_sim_test::View(t.bytes.data(), DType::NF4, {n, k});
  t.view.nf4.block_size = 64;
  t.view.nf4.double_quant_block = double_quant;
  return t;
}

double Tolerance(DType d) { return d == DType::F32 ? 2e-5 : 1e-2; }

// An f32 output reduced over `terms` products whose factors were rounded to
// the 16-bit `compute` type from f32 intermediates (the adapter gradients:
// g = dy·B is rounded before dA = s·gᵀ·drop(x)). Two correct
// implementations sum an intermediate in different orders, so an element of
// it can land one unit of rounding apart: one such term moves the output by
// u·|term|, about u/sqrt(terms) of the output's scale (u = 2^-8 for bf16,
// 2^-11 for f16). The f32 bound alone failed 2 runs in 15 (6e-5).
double RoundedIntermediateTolerance(DType compute, int64_t terms) {
  const double u = compute == DType::BF16 ? 1.0 / 256 : compute == DType::F16 ? 1.0 / 2048 : 0;
  return std::max(Tolerance(DType::F32), u / std::sqrt(static_cast<double>(terms)));
}

// Runs `kind` on the CPU backend and `src` on the simulator over copies of
// the same inputs (kernel arguments: inputs, outputs, workspace, dropout
// key) and compares every output (normalized error within the output type's
// tolerance, or `tolerances[o]` where given, `extra` times looser).
void Compare(const cuda::Source& src, lorart::cpu::KernelParams p, std::vector<Tensor> in,
             std::vector<Tensor> out, std::mt19937_64& rng, double extra = 1.0,
             const std::vector<double>& tolerances = {}) {
  for (auto& t : in) t.view.data = t.bytes.data();
  for (auto& t : out) t.view.data = t.bytes.data();
  std::vector<Tensor> out_sim = out;
  for (size_t i = 0; i < out.size(); ++i) {
    out_sim[i].view.data = out_sim[i].bytes.data();
    std::memset(out_sim[i].bytes.data(), 0x7f, out_sim[i].bytes.size());  // not a valid result
  }
  const uint64_t seed = rng() | 1, stream = 4242;
  p.Set("rng_stream", static_cast<int64_t>(stream));
  lorart::cpu::KernelFn fn;
  ASSERT_TRUE(lorart::cpu::LookupKernel(p.kind(), &fn).ok());
  lorart::cpu::KernelContext ctx;
  ctx.step_seed = seed;
  std::vector<TensorView> iv, ov;
  for (auto& t : in) iv.push_back(t.view);
  for (auto& t : out) ov.push_back(t.view);
  lorart::Status st = fn(ctx, p, iv, ov);
  ASSERT_TRUE(st.ok()) << st.ToString();

  std::vector<void*> args;
  for (auto& t : in) args.push_back(t.bytes.data());
  for (auto& t : out_sim) args.push_back(t.bytes.data());
  std::vector<uint8_t> workspace(static_cast<size_t>(src.workspace) + 16, 0xcd);
  if (src.workspace > 0) args.push_back(workspace.data());
  uint64_t key = lorart::cpu::DropoutKey(seed, stream);
  lorart::kernels::AnyParams typed;
  ASSERT_TRUE(p.TypedAny(&typed).ok());
  if (lorart::kernels::DropoutOf(typed)) args.push_back(&key);
  lora_sim_test::RunAll(src, args);

  for (size_t o = 0; o < out.size(); ++o) {
    const TensorView &want = out[o].view, &got = out_sim[o].view;
    if (want.dtype == DType::I64) {
      EXPECT_EQ(std::memcmp(want.data, got.data, 8 * want.numel()), 0) << "output " << o;
      continue;
    }
    double scale = 1e-12, err = 0;
    for (int64_t i = 0; i < want.numel(); ++i) {
      double w = lorart::cpu::LoadFloat(want, i), g = lorart::cpu::LoadFloat(got, i);
      scale = std::max(scale, std::fabs(w));
      err = std::max(err, std::isfinite(g) ? std::fabs(g - w) : 1e30);
    }
    const double tolerance = o < tolerances.size() ? tolerances[o] : Tolerance(want.dtype);
    EXPECT_LE(err / scale, tolerance * extra) << "output " << o << " of " << p.kind();
  }
}

// ---------------------------------------------------------------------------
// The linear layer: fused_linear_fwd, fused_linear_bwd, lora_bwd,
// linear_bwd_x, linear_bwd_w.

struct LinearCase {
  const char* kind;
  DType dtype;
  int64_t m, n, k, rank;
  bool nf4;
  int64_t double_quant;
  double dropout;
  bool bias;
  bool dy_f32 = false;  // an f32 dy against a bf16 W (the LM head under DPO)
  bool no_dx = false;   // the input gradient not wanted: dA and dB only
};

std::string Name(const LinearCase& c) {
  return std::string(c.kind) + "_" +
         (c.dtype == DType::F32   ? "f32"
          : c.dtype == DType::F16 ? "f16"
                                  : "bf16") +
         "_m" + std::to_string(c.m) + "_n" + std::to_string(c.n) + "_k" + std::to_string(c.k) +
         "_r" + std::to_string(c.rank) + (c.nf4 ? "_nf4_" + std::to_string(c.double_quant) : "") +
         (c.dropout > 0 ? "_drop" : "") + (c.bias ? "_bias" : "") + (c.dy_f32 ? "_dyf32" : "") +
         (c.no_dx ? "_nodx" : "");
}

std::optional<cuda::Source> LinearSource(const LinearCase& c, std::string* why) {
  const std::string t = CudaType(c.dtype), kind = c.kind;
  const double scaling = 2.0 / std::max<int64_t>(c.rank, 1);
  if (kind == "fused_linear_fwd") {
    cuda::GemmFwd g;
    g.m = c.m, g.n = c.n, g.k = c.k, g.rank = c.rank, g.bias = c.bias;
    g.xType = g.yType = g.biasType = g.aType = g.bType = t;
    g.wNf4 = c.nf4, g.blockSize = 64, g.doubleQuantBlock = c.double_quant;
    g.scaling = scaling, g.dropout = c.dropout;
    return cuda::emitSimtGemmFwd(g, why);
  }
  if (kind == "linear_bwd_w") return cuda::emitSimtLinearBwdW(c.m, c.n, c.k, t, t, t, why);
  cuda::LinearBwd g;
  g.m = c.m, g.n = c.n, g.k = c.k, g.rank = c.rank;
  g.hasW = kind != "lora_bwd";
  g.wNf4 = c.nf4, g.blockSize = 64, g.doubleQuantBlock = c.double_quant;
  g.scaling = scaling, g.dropout = c.dropout;
  g.dyType = g.xType = g.dxType = g.aType = g.bType = g.wType = t;
  if (c.dy_f32) g.dyType = g.dxType = "float";
  g.daType = g.dbType = "float";
  g.dx = !c.no_dx;
  return cuda::emitSimtLinearBwd(g, why);
}

class SimtLinearSim : public ::testing::TestWithParam<LinearCase> {};

TEST_P(SimtLinearSim, MatchesTheCpuBackend) {
  if (std::string why = lora_sim_test::SimAvailable(); !why.empty())
    GTEST_SKIP() << "simulator unavailable: " << why;
  const LinearCase c = GetParam();
  const std::string kind = c.kind;
  std::string why;
  auto src = LinearSource(c, &why);
  ASSERT_TRUE(src.has_value()) << why;
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const int64_t r = std::max<int64_t>(c.rank, 1);
  auto weight = [&] { return c.nf4 ? Nf4(c.n, c.k, c.double_quant, rng) : Random(c.dtype, {c.n, c.k}, rng, 0.2f); };
  lorart::cpu::KernelParams p;
  p.set_kind(kind);
  p.Set("m", c.m);
  p.Set("n", c.n);
  p.Set("k", c.k);
  p.Set("weight_format", std::string(c.nf4 ? "nf4" : "dense"));
  if (c.nf4) {
    p.Set("block_size", int64_t{64});
    p.Set("double_quant_block", c.double_quant);
  }
  p.Set("rank", c.rank);  // declared required: 0 is "no adapter"
  if (c.rank) {
    p.Set("scaling", 2.0 / c.rank);
    p.Set("dropout", c.dropout);
  }
  std::vector<Tensor> in, out;
  std::vector<double> tolerances;
  if (kind == "fused_linear_fwd") {
    p.Set("bias", int64_t{c.bias});
    in.push_back(Random(c.dtype, {c.m, c.k}, rng, 1.f));
    in.push_back(weight());
    if (c.bias) in.push_back(Random(c.dtype, {c.n}, rng, 1.f));
    if (c.rank) {
      in.push_back(Random(c.dtype, {r, c.k}, rng, 0.3f));
      in.push_back(Random(c.dtype, {c.n, r}, rng, 0.3f));
    }
    out.push_back(Make(c.dtype, {c.m, c.n}));
  } else if (kind == "linear_bwd_w") {
    in.push_back(Random(c.dtype, {c.m, c.n}, rng, 1.f));
    in.push_back(Random(c.dtype, {c.m, c.k}, rng, 1.f));
    out.push_back(Make(c.dtype, {c.n, c.k}));
  } else {
    in.push_back(Random(c.dy_f32 ? DType::F32 : c.dtype, {c.m, c.n}, rng, 1.f));  // dy
    if (c.rank) in.push_back(Random(c.dtype, {c.m, c.k}, rng, 1.f));
    if (kind != "lora_bwd") in.push_back(weight());
    if (c.rank) {
      in.push_back(Random(c.dtype, {r, c.k}, rng, 0.3f));
      in.push_back(Random(c.dtype, {c.n, r}, rng, 0.3f));
    }
    // With an f32 dy, an f32 dx: its tolerance shows whether dy was rounded
    // to bf16 against the bf16 W as the CPU does.
    if (c.no_dx)
      p.Set("no_dx", int64_t{1});
    else
      out.push_back(Make(c.dy_f32 ? DType::F32 : c.dtype, {c.m, c.k}));
    if (c.rank) {
      out.push_back(Make(DType::F32, {r, c.k}));
      out.push_back(Make(DType::F32, {c.n, r}));
      // dA and dB sum over the m tokens of 16-bit-rounded intermediates.
      const double t = RoundedIntermediateTolerance(c.dtype, c.m);
      tolerances = {t, t};
      if (!c.no_dx) tolerances.insert(tolerances.begin(), Tolerance(out[0].view.dtype));
    }
  }
  Compare(*src, p, std::move(in), std::move(out), rng, 1.0, tolerances);
}

TEST_P(SimtLinearSim, CompilesWithoutSpills) {
  std::string why;
  auto src = LinearSource(GetParam(), &why);
  ASSERT_TRUE(src.has_value()) << why;
  lora_sim_test::ExpectNoSpills(*src);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, SimtLinearSim,
    ::testing::Values(
        // kind, dtype, m, n, k, rank, nf4, double_quant, dropout, bias
        LinearCase{"fused_linear_fwd", DType::F32, 100, 72, 88, 4, false, 0, 0.0, true},
        LinearCase{"fused_linear_fwd", DType::F32, 70, 130, 64, 8, true, 256, 0.1, false},
        LinearCase{"fused_linear_fwd", DType::F16, 64, 96, 72, 16, true, 0, 0.05, true},
        LinearCase{"fused_linear_fwd", DType::BF16, 80, 64, 64, 128, false, 0, 0.1, false},
        LinearCase{"fused_linear_fwd", DType::F32, 33, 40, 20, 0, false, 0, 0.0, true},
        LinearCase{"fused_linear_bwd", DType::F32, 100, 72, 88, 4, false, 0, 0.0, false},
        LinearCase{"fused_linear_bwd", DType::F32, 70, 128, 64, 8, true, 256, 0.1, false},
        LinearCase{"fused_linear_bwd", DType::F16, 64, 96, 72, 16, true, 0, 0.0, false},
        LinearCase{"fused_linear_bwd", DType::BF16, 80, 64, 64, 128, true, 256, 0.1, false},
        LinearCase{"lora_bwd", DType::F32, 72, 64, 96, 8, false, 0, 0.05, false},
        LinearCase{"fused_linear_bwd", DType::F16, 70, 128, 64, 8, true, 256, 0.1, false, false,
                   true},
        LinearCase{"lora_bwd", DType::F32, 72, 64, 96, 8, false, 0, 0.0, false, false, true},
        LinearCase{"linear_bwd_x", DType::F32, 100, 136, 64, 0, true, 256, 0.0, false},
        LinearCase{"linear_bwd_x", DType::F16, 64, 200, 72, 0, false, 0, 0.0, false},
        LinearCase{"linear_bwd_x", DType::BF16, 40, 100, 36, 0, false, 0, 0.0, false, true},
        LinearCase{"linear_bwd_w", DType::F32, 100, 72, 88, 0, false, 0, 0.0, false},
        LinearCase{"linear_bwd_w", DType::BF16, 70, 130, 20, 0, false, 0, 0.0, false}),
    [](const ::testing::TestParamInfo<LinearCase>& info) { return Name(info.param); });

// ---------------------------------------------------------------------------
// The LM-head cross-entropy: forward, dx, dw over several chunks.

struct LmHeadCase {
  DType dtype, dw;
  int64_t tokens, hidden, vocab, chunk;
};

class SimtLmHeadSim : public ::testing::TestWithParam<LmHeadCase> {};

TEST_P(SimtLmHeadSim, MatchesTheCpuBackend) {
  if (std::string why = lora_sim_test::SimAvailable(); !why.empty())
    GTEST_SKIP() << "simulator unavailable: " << why;
  const LmHeadCase c = GetParam();
  std::mt19937_64 rng(std::random_device{}());
  cuda::LmHeadCe l;
  l.tokens = c.tokens, l.hidden = c.hidden, l.vocab = c.vocab;
  l.xType = l.wType = l.dxType = CudaType(c.dtype);
  l.targetType = "long long";
  for (const char* kind : {"lm_head_ce_fwd", "lm_head_ce_bwd_x", "lm_head_ce_bwd_w"}) {
    SCOPED_TRACE(kind);
    std::string why, k = kind;
    auto src = k == "lm_head_ce_fwd"    ? cuda::emitSimtLmHeadCeFwd(l, &why)
               : k == "lm_head_ce_bwd_x" ? cuda::emitSimtLmHeadCeBwdX(l, c.chunk, &why)
                                         : cuda::emitSimtLmHeadCeBwdW(l, c.chunk, CudaType(c.dw), &why);
    ASSERT_TRUE(src.has_value()) << why;
    lorart::cpu::KernelParams p;
    p.set_kind(k);
    p.Set("tokens", c.tokens);
    p.Set("hidden", c.hidden);
    p.Set("vocab", c.vocab);
    p.Set("chunk_size", c.chunk);
    std::vector<Tensor> in;
    in.push_back(Random(c.dtype, {c.tokens, c.hidden}, rng, 1.f));
    in.push_back(Random(c.dtype, {c.vocab, c.hidden}, rng, 0.3f));
    Tensor targets = Make(DType::I64, {c.tokens}), mask = Make(DType::BOOL, {c.tokens});
    std::uniform_int_distribution<int64_t> tv(0, c.vocab - 1);
    for (int64_t i = 0; i < c.tokens; ++i) {
      targets.view.as<int64_t>()[i] = tv(rng);
      mask.view.as<uint8_t>()[i] = (rng() % 4) != 0;
    }
    in.push_back(targets);
    in.push_back(mask);
    std::vector<Tensor> out;
    if (k == "lm_head_ce_fwd") {
      out.push_back(Make(DType::F32, {1}));
      out.push_back(Make(DType::I64, {1}));
    } else {
      Tensor dloss = Make(DType::F32, {1});
      dloss.view.as<float>()[0] = 0.37f;
      in.push_back(dloss);
      out.push_back(k == "lm_head_ce_bwd_x" ? Make(c.dtype, {c.tokens, c.hidden}) : Make(c.dw, {c.vocab, c.hidden}));
    }
    // The loss sum: f32 logsumexps summed in double, in the same order.
    Compare(*src, p, std::move(in), std::move(out), rng, k == "lm_head_ce_fwd" && c.dtype == DType::F32 ? 5.0 : 1.0);
  }
}

TEST_P(SimtLmHeadSim, CompilesWithoutSpills) {
  const LmHeadCase c = GetParam();
  cuda::LmHeadCe l;
  l.tokens = c.tokens, l.hidden = c.hidden, l.vocab = c.vocab;
  l.xType = l.wType = l.dxType = CudaType(c.dtype);
  l.targetType = "int";
  std::string why;
  for (auto src : {cuda::emitSimtLmHeadCeFwd(l, &why), cuda::emitSimtLmHeadCeBwdX(l, c.chunk, &why),
                   cuda::emitSimtLmHeadCeBwdW(l, c.chunk, CudaType(c.dw), &why)}) {
    ASSERT_TRUE(src.has_value()) << why;
    lora_sim_test::ExpectNoSpills(*src);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, SimtLmHeadSim,
    ::testing::Values(LmHeadCase{DType::F32, DType::F32, 100, 72, 300, 64},
                      LmHeadCase{DType::F16, DType::F16, 130, 64, 256, 64},
                      LmHeadCase{DType::F32, DType::BF16, 70, 40, 100, 32}),
    [](const ::testing::TestParamInfo<LmHeadCase>& info) {
      const auto& c = info.param;
      return std::string(c.dtype == DType::F32 ? "f32" : "f16") + "_dw" +
             (c.dw == DType::F32 ? "f32" : c.dw == DType::F16 ? "f16" : "bf16") + "_t" +
             std::to_string(c.tokens) + "_v" + std::to_string(c.vocab) + "_c" + std::to_string(c.chunk);
    });

// ---------------------------------------------------------------------------
// Attention forward and backward.

struct AttnCase {
  DType dtype;
  int64_t batch, seq, heads, kv, dim;
  bool causal;
  int64_t window, seg_bits;
};

cuda::AttentionFwd AttnTemplate(const AttnCase& c) {
  cuda::AttentionFwd a;
  a.batch = c.batch, a.seq = c.seq, a.heads = c.heads, a.kvHeads = c.kv, a.headDim = c.dim;
  a.scale = 1.0 / std::sqrt(static_cast<double>(c.dim));
  a.causal = c.causal;
  a.slidingWindow = c.window;
  a.segType = c.seg_bits == 0 ? "" : c.seg_bits == 64 ? "long long" : "int";
  a.qType = a.oType = CudaType(c.dtype);
  return a;
}

class SimtAttentionSim : public ::testing::TestWithParam<AttnCase> {};

TEST_P(SimtAttentionSim, MatchesTheCpuBackend) {
  if (std::string why = lora_sim_test::SimAvailable(); !why.empty())
    GTEST_SKIP() << "simulator unavailable: " << why;
  const AttnCase c = GetParam();
  std::mt19937_64 rng(std::random_device{}());
  const auto a = AttnTemplate(c);
  const std::vector<int64_t> qs = {c.batch, c.seq, c.heads * c.dim}, ks = {c.batch, c.seq, c.kv * c.dim};
  // Packed documents: segment ids that rise at random boundaries.
  Tensor seg = Make(c.seg_bits == 64 ? DType::I64 : DType::I32, {c.batch, c.seq});
  for (int64_t b = 0; b < c.batch; ++b) {
    int64_t id = 0;
    for (int64_t t = 0; t < c.seq; ++t) {
      if (t > 0 && rng() % 23 == 0) ++id;
      if (c.seg_bits == 64)
        seg.view.as<int64_t>()[b * c.seq + t] = id;
      else
        seg.view.as<int32_t>()[b * c.seq + t] = static_cast<int32_t>(id);
    }
  }
  for (bool bwd : {false, true}) {
    SCOPED_TRACE(bwd ? "attention_bwd" : "attention_fwd");
    std::string why;
    auto src = bwd ? cuda::emitSimtAttentionBwd(a, &why) : cuda::emitSimtAttentionFwd(a, &why);
    ASSERT_TRUE(src.has_value()) << why;
    lorart::cpu::KernelParams p =
        lora_sim_test::AttentionParams(bwd ? "attention_bwd" : "attention_fwd", c.batch, c.seq, c.heads,
                                       c.kv, c.dim, a.scale, c.causal, c.seg_bits != 0, c.window);
    std::vector<Tensor> in, out;
    if (bwd) in.push_back(Random(c.dtype, qs, rng, 1.f));
    in.push_back(Random(c.dtype, qs, rng, 1.f));
    in.push_back(Random(c.dtype, ks, rng, 1.f));
    in.push_back(Random(c.dtype, ks, rng, 1.f));
    if (c.seg_bits) in.push_back(seg);
    out.push_back(Make(c.dtype, qs));
    if (bwd) {
      out.push_back(Make(c.dtype, ks));
      out.push_back(Make(c.dtype, ks));
    }
    Compare(*src, p, std::move(in), std::move(out), rng, 5.0);
  }
}

TEST_P(SimtAttentionSim, CompilesWithoutSpills) {
  std::string why;
  for (bool bwd : {false, true}) {
    auto a = AttnTemplate(GetParam());
    auto src = bwd ? cuda::emitSimtAttentionBwd(a, &why) : cuda::emitSimtAttentionFwd(a, &why);
    ASSERT_TRUE(src.has_value()) << why;
    lora_sim_test::ExpectNoSpills(*src);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, SimtAttentionSim,
    ::testing::Values(
        // dtype, batch, seq, heads, kv, dim, causal, window, seg_bits
        AttnCase{DType::F32, 2, 100, 4, 2, 16, true, 0, 0},
        AttnCase{DType::F32, 1, 70, 6, 2, 40, true, 0, 64},
        AttnCase{DType::F16, 1, 90, 3, 3, 64, true, 24, 32},
        AttnCase{DType::F32, 1, 50, 2, 1, 32, false, 0, 32},
        AttnCase{DType::BF16, 1, 40, 2, 2, 8, true, 0, 0}),
    [](const ::testing::TestParamInfo<AttnCase>& info) {
      const auto& c = info.param;
      return std::string(c.dtype == DType::F32 ? "f32" : c.dtype == DType::F16 ? "f16" : "bf16") + "_t" +
             std::to_string(c.seq) + "_h" + std::to_string(c.heads) + "_kv" + std::to_string(c.kv) + "_d" +
             std::to_string(c.dim) + (c.causal ? "" : "_bidir") +
             (c.window ? "_w" + std::to_string(c.window) : "") +
             (c.seg_bits ? "_seg" + std::to_string(c.seg_bits) : "");
    });

TEST(SimtTemplates, RefuseWhatTheyDoNotCover) {
  auto a = AttnTemplate(AttnCase{DType::F32, 1, 16, 2, 2, 512, true, 0, 0});
  std::string why;
  EXPECT_FALSE(cuda::emitSimtAttentionFwd(a, &why).has_value());
  EXPECT_EQ(why, "head_dim above 256");
  cuda::GemmFwd g;
  g.m = g.n = g.k = 64;
  g.xType = "double";
  g.yType = "float";
  EXPECT_FALSE(cuda::emitSimtGemmFwd(g, &why).has_value());
  EXPECT_EQ(why, "an operand is not float, bf16 or f16");
  cuda::LmHeadCe l;
  l.tokens = 32, l.hidden = 64, l.vocab = 64;
  l.xType = l.wType = l.dxType = "float";
  l.targetType = "int";
  EXPECT_FALSE(cuda::emitSimtLmHeadCeBwdX(l, 0, &why).has_value());
  EXPECT_EQ(why, "chunk size and tokens must be positive");
}

}  // namespace
