// The tensor-core GEMM template (codegen/cuda/gemm.cpp) on the CPU
// simulator against the CPU backend's fused_linear_fwd / linear_fwd, on
// shapes chosen to reach every path: both tile shapes, partial tiles in M, N
// and K, bias, ranks that are and are not multiples of 16, dropout, a bf16
// weight and NF4 weights with and without double quantization. Fresh random
// inputs every run.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <unistd.h>

#include "cuda/attention.h"
#include "cuda/gemm.h"
#include "cuda/linear_bwd.h"
#include "cuda/lm_head.h"
#include "cuda/simt.h"
#include "lorart/cpu/kernel.h"
#include "lorart/cuda/nvrtc.h"
#include "lorart/quant/nf4.h"
#include "sim_runner.h"
#include "sim_test_util.h"

namespace {

using lorart::cpu::TensorView;
using lorart::schema::DType;

struct Case {
  int64_t m, n, k, rank, tile;
  bool bias, nf4;
  int64_t double_quant;
  double dropout;
};

std::string Name(const Case& c) {
  return "m" + std::to_string(c.m) + "_n" + std::to_string(c.n) + "_k" + std::to_string(c.k) +
         "_r" + std::to_string(c.rank) + "_t" + std::to_string(c.tile) + (c.bias ? "_bias" : "") +
         (c.nf4 ? "_nf4" + std::to_string(c.double_quant) : "") + (c.dropout > 0 ? "_drop" : "");
}

class GemmSim : public ::testing::TestWithParam<Case> {};

std::vector<uint16_t> RandomBf16(int64_t n, std::mt19937_64& rng, float scale = 1.f) {
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<uint16_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = lorart::cpu::FloatToBf16(d(rng));
  return v;
}

TEST_P(GemmSim, MatchesTheCpuBackend) {
  if (std::string why = lora_sim_test::SimAvailable(); !why.empty())
    GTEST_SKIP() << "simulator unavailable: " << why;
  const Case c = GetParam();
  std::mt19937_64 rng(std::random_device{}());

  lorac::cuda::GemmFwd g;
  g.m = c.m;
  g.n = c.n;
  g.k = c.k;
  g.rank = c.rank;
  g.tile = c.tile;
  g.bias = c.bias;
  g.xType = "__nv_bfloat16";
  g.biasType = "__nv_bfloat16";
  g.yType = "__nv_bfloat16";
  g.wNf4 = c.nf4;
  g.blockSize = 64;
  g.doubleQuantBlock = c.double_quant;
  g.scaling = 2.0 / std::max<int64_t>(c.rank, 1);
  g.dropout = c.dropout;
  std::string why;
  auto src = lorac::cuda::emitGemmFwd(g, &why);
  ASSERT_TRUE(src.has_value()) << why;

  // Inputs.
  std::vector<uint16_t> x = RandomBf16(c.m * c.k, rng);
  std::vector<uint16_t> wdense = RandomBf16(c.n * c.k, rng, 0.2f);
  std::vector<uint8_t> wq;
  if (c.nf4) {
    auto layout = lorart::Nf4Layout::Make(c.n * c.k, 64, c.double_quant);
    ASSERT_TRUE(layout.ok());
    wq.assign(layout->total_bytes() + 16, 0);
    lorart::Status q = lorart::QuantizeNf4FromBf16(wdense.data(), c.n * c.k, *layout, wq.data(),
                                                   layout->total_bytes());
    ASSERT_TRUE(q.ok()) << q.ToString();
  }
  std::vector<uint16_t> bias = RandomBf16(c.n, rng);
  std::vector<uint16_t> a = RandomBf16(std::max<int64_t>(c.rank, 1) * c.k, rng, 0.3f);
  std::vector<uint16_t> b = RandomBf16(c.n * std::max<int64_t>(c.rank, 1), rng, 0.3f);
  std::vector<uint16_t> y_cpu(static_cast<size_t>(c.m * c.n), 0), y_sim(y_cpu.size(), 0x7fc0);
  const uint64_t seed = rng() | 1, stream = 12345;

  // CPU backend.
  const auto view = &lora_sim_test::View;
  std::vector<TensorView> in = {view(x.data(), DType::BF16, {c.m, c.k})};
  if (c.nf4) {
    TensorView w = view(wq.data(), DType::NF4, {c.n, c.k});
    w.nf4.block_size = 64;
    w.nf4.double_quant_block = c.double_quant;
    in.push_back(w);
  } else {
    in.push_back(view(wdense.data(), DType::BF16, {c.n, c.k}));
  }
  if (c.bias) in.push_back(view(bias.data(), DType::BF16, {c.n}));
  if (c.rank) {
    in.push_back(view(a.data(), DType::BF16, {c.rank, c.k}));
    in.push_back(view(b.data(), DType::BF16, {c.n, c.rank}));
  }
  lorart::cpu::KernelParams p;
  p.set_kind("fused_linear_fwd");
  p.Set("m", c.m);
  p.Set("n", c.n);
  p.Set("k", c.k);
  p.Set("bias", int64_t{c.bias});
  p.Set("rank", c.rank);
  p.Set("scaling", g.scaling);
  p.Set("dropout", c.dropout);
  p.Set("rng_stream", static_cast<int64_t>(stream));
  p.Set("weight_format", std::string(c.nf4 ? "nf4" : "dense"));
  if (c.nf4) {
    p.Set("block_size", int64_t{64});
    p.Set("double_quant_block", c.double_quant);
  }
  lorart::cpu::KernelFn fn;
  ASSERT_TRUE(lorart::cpu::LookupKernel("fused_linear_fwd", &fn).ok());
  lorart::cpu::KernelContext ctx;
  ctx.step_seed = seed;
  lorart::Status st = fn(ctx, p, in, {view(y_cpu.data(), DType::BF16, {c.m, c.n})});
  ASSERT_TRUE(st.ok()) << st.ToString();

  // Simulated CUDA kernel.
  lora_sim_test::SimKernel k;
  const std::string dir = lora_sim_test::SimWorkDir();
  ASSERT_EQ(k.Compile(src->code, src->entry, dir), "");
  std::vector<void*> args = {x.data(), c.nf4 ? static_cast<void*>(wq.data()) : wdense.data()};
  if (c.bias) args.push_back(bias.data());
  if (c.rank) {
    args.push_back(a.data());
    args.push_back(b.data());
  }
  args.push_back(y_sim.data());
  uint64_t key = lorart::cpu::DropoutKey(seed, stream);
  if (c.rank && c.dropout > 0) args.push_back(&key);
  ASSERT_EQ(k.Launch({static_cast<unsigned>(src->grid), static_cast<unsigned>(src->gridY), 1},
                     {static_cast<unsigned>(src->block), 1, 1}, static_cast<size_t>(src->shared),
                     args),
            "");

  double scale = 1e-12, err = 0;
  int64_t worst = 0;
  for (size_t i = 0; i < y_cpu.size(); ++i) {
    double w = lorart::cpu::Bf16ToFloat(y_cpu[i]), v = lorart::cpu::Bf16ToFloat(y_sim[i]);
    scale = std::max(scale, std::fabs(w));
    double e = std::isfinite(v) ? std::fabs(v - w) : 1e30;
    if (e > err) err = e, worst = static_cast<int64_t>(i);
  }
  // Both round the same f32 sums to bf16; the summation orders differ.
  EXPECT_LE(err / scale, 1e-2) << "worst at row " << worst / c.n << " col " << worst % c.n
                               << ": cpu " << lorart::cpu::Bf16ToFloat(y_cpu[worst]) << " sim "
                               << lorart::cpu::Bf16ToFloat(y_sim[worst]);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, GemmSim,
    ::testing::Values(
        // m, n, k, rank, tile, bias, nf4, double_quant, dropout
        Case{64, 64, 64, 0, 64, false, false, 0, 0.0},       // one tile, no extras
        Case{80, 72, 88, 8, 64, true, false, 0, 0.0},        // partial tiles everywhere, rank 8
        Case{96, 128, 64, 16, 64, false, true, 0, 0.0},      // NF4, float absmax
        Case{64, 64, 128, 24, 64, true, true, 256, 0.1},     // NF4 double quant, rank 24, dropout
        Case{160, 256, 96, 16, 128, true, false, 0, 0.0},    // 128x128 tiles, partial M
        Case{128, 136, 64, 32, 128, false, true, 256, 0.05},  // 128 tiles, rank 32, NF4 dq, dropout
        Case{72, 64, 64, 64, 64, true, true, 256, 0.05}       // rank 64 (the largest), NF4 dq, dropout
        ),
    [](const ::testing::TestParamInfo<Case>& info) { return Name(info.param); });

// The same variants compile with NVRTC for sm_80 and sm_90a without register
// spills or a stack frame (ptxas's report).
TEST_P(GemmSim, CompilesWithoutSpills) {
  const Case c = GetParam();
  lorac::cuda::GemmFwd g;
  g.m = c.m;
  g.n = c.n;
  g.k = c.k;
  g.rank = c.rank;
  g.tile = c.tile;
  g.bias = c.bias;
  g.xType = g.biasType = g.yType = "__nv_bfloat16";
  g.wNf4 = c.nf4;
  g.blockSize = 64;
  g.doubleQuantBlock = c.double_quant;
  g.scaling = 0.5;
  g.dropout = c.dropout;
  std::string why;
  auto src = lorac::cuda::emitGemmFwd(g, &why);
  ASSERT_TRUE(src.has_value()) << why;
  lora_sim_test::ExpectNoSpills(*src);
}

TEST(GemmTemplate, RefusesWhatItDoesNotCover) {
  lorac::cuda::GemmFwd g;
  g.m = 64;
  g.n = 64;
  g.k = 64;
  g.xType = "float";
  g.yType = "float";
  std::string why;
  EXPECT_FALSE(lorac::cuda::emitGemmFwd(g, &why).has_value());
  EXPECT_EQ(why, "activations are not bf16");
  g.xType = g.yType = "__nv_bfloat16";
  g.k = 60;
  EXPECT_FALSE(lorac::cuda::emitGemmFwd(g, &why).has_value());
  EXPECT_EQ(why, "K is not a multiple of 8");
  g.k = 64;
  g.rank = 128;
  EXPECT_FALSE(lorac::cuda::emitGemmFwd(g, &why).has_value());
  EXPECT_EQ(why, "rank above 64");
  g.rank = 64;
  g.tile = 128;
  EXPECT_FALSE(lorac::cuda::emitGemmFwd(g, &why).has_value());
  EXPECT_EQ(why, "rank above 32 with 128x128 tiles");
}

}  // namespace
