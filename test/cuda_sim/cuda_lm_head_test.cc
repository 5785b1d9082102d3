// The LM-head cross-entropy forward template (codegen/cuda/lm_head.cpp) on
// the CPU simulator against the CPU backend's lm_head_ce_fwd: token counts,
// hidden sizes and vocabularies that are not multiples of the tiles, int32
// and int64 targets, random masks; lm_head_ce_bwd_x and lm_head_ce_bwd_w (f32
// and bf16 dw) in several chunks; and every launch without spills.
#include <gtest/gtest.h>

#include <cmath>
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
#include "sim_runner.h"
#include "sim_test_util.h"

namespace {

using lorart::cpu::TensorView;
using lorart::schema::DType;

struct Case {
  int64_t tokens, hidden, vocab;
  bool targets64;
};

class LmHeadSim : public ::testing::TestWithParam<Case> {};

lorac::cuda::LmHeadCe Template(const Case& c) {
  lorac::cuda::LmHeadCe l;
  l.tokens = c.tokens;
  l.hidden = c.hidden;
  l.vocab = c.vocab;
  l.xType = l.wType = "__nv_bfloat16";
  l.targetType = c.targets64 ? "long long" : "int";
  return l;
}

// Fresh random operands of a case: x and w in bf16, targets in both index
// widths, and a mask with about a quarter of the tokens masked out.
struct Operands {
  std::vector<uint16_t> x, w;
  std::vector<int64_t> t64;
  std::vector<int32_t> t32;
  std::vector<uint8_t> mask;
  bool targets64 = false;
  void* targets() { return targets64 ? static_cast<void*>(t64.data()) : t32.data(); }
  // The CPU kernels' first inputs: x, w, targets, mask.
  std::vector<TensorView> Views(const Case& c) {
    const auto view = &lora_sim_test::View;
    return {view(x.data(), DType::BF16, {c.tokens, c.hidden}),
            view(w.data(), DType::BF16, {c.vocab, c.hidden}),
            view(targets(), targets64 ? DType::I64 : DType::I32, {c.tokens}),
            view(mask.data(), DType::BOOL, {c.tokens})};
  }
};

Operands RandomOperands(const Case& c, std::mt19937_64& rng) {
  Operands o;
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  o.x.resize(static_cast<size_t>(c.tokens * c.hidden));
  o.w.resize(static_cast<size_t>(c.vocab * c.hidden));
  for (auto& e : o.x) e = lorart::cpu::FloatToBf16(u(rng));
  for (auto& e : o.w) e = lorart::cpu::FloatToBf16(0.5f * u(rng));
  std::uniform_int_distribution<int64_t> tg(0, c.vocab - 1);
  o.t64.resize(static_cast<size_t>(c.tokens));
  o.mask.resize(static_cast<size_t>(c.tokens));
  for (int64_t i = 0; i < c.tokens; ++i) {
    o.t64[i] = tg(rng);
    o.mask[i] = static_cast<uint8_t>(rng() % 4 != 0);
  }
  o.t32.assign(o.t64.begin(), o.t64.end());
  o.targets64 = c.targets64;
  return o;
}

TEST_P(LmHeadSim, ForwardMatchesTheCpuBackend) {
  if (std::string why = lora_sim_test::SimAvailable(); !why.empty())
    GTEST_SKIP() << "simulator unavailable: " << why;
  const Case c = GetParam();
  std::mt19937_64 rng(std::random_device{}());
  std::string why;
  auto src = lorac::cuda::emitLmHeadCeFwd(Template(c), &why);
  ASSERT_TRUE(src.has_value()) << why;
  Operands op = RandomOperands(c, rng);
  auto& x = op.x;
  auto& w = op.w;
  auto& mask = op.mask;
  void* targets = op.targets();
  float loss_cpu = NAN, loss_sim = NAN;
  int64_t count_cpu = -1, count_sim = -1;

  const auto view = &lora_sim_test::View;
  std::vector<TensorView> in = op.Views(c);
  std::vector<TensorView> out = {view(&loss_cpu, DType::F32, {}), view(&count_cpu, DType::I64, {})};
  lorart::cpu::KernelParams p;
  p.set_kind("lm_head_ce_fwd");
  p.Set("tokens", c.tokens);
  p.Set("hidden", c.hidden);
  p.Set("vocab", c.vocab);
  p.Set("chunk_size", int64_t{16});
  lorart::cpu::KernelFn fn;
  ASSERT_TRUE(lorart::cpu::LookupKernel("lm_head_ce_fwd", &fn).ok());
  lorart::Status st = fn(lorart::cpu::KernelContext(), p, in, out);
  ASSERT_TRUE(st.ok()) << st.ToString();

  const std::string dir = lora_sim_test::SimWorkDir();
  std::vector<uint8_t> workspace(static_cast<size_t>(src->workspace) + 16, 0xcd);
  std::vector<void*> args = {x.data(), w.data(), targets, mask.data(), &loss_sim, &count_sim,
                             workspace.data()};
  lora_sim_test::SimKernel rows, sum;
  ASSERT_EQ(rows.Compile(src->code, src->entry, dir), "");
  ASSERT_EQ(rows.Launch({unsigned(src->grid), 1, 1}, {unsigned(src->block), 1, 1}, size_t(src->shared), args), "");
  ASSERT_EQ(src->next.size(), 1u);
  ASSERT_EQ(sum.Compile(src->code, src->next[0].entry, dir), "");
  ASSERT_EQ(sum.Launch({1, 1, 1}, {unsigned(src->next[0].block), 1, 1}, 0, args), "");
  EXPECT_EQ(count_sim, count_cpu);
  EXPECT_NEAR(loss_sim, loss_cpu, 1e-4 * std::fabs(loss_cpu)) << "loss sum";
}

// lm_head_ce_bwd_x in chunks of 64 tokens (several chunks, a partial one).
TEST_P(LmHeadSim, InputGradientMatchesTheCpuBackend) {
  if (std::string why = lora_sim_test::SimAvailable(); !why.empty())
    GTEST_SKIP() << "simulator unavailable: " << why;
  const Case c = GetParam();
  std::mt19937_64 rng(std::random_device{}());
  auto l = Template(c);
  l.dxType = "__nv_bfloat16";
  std::string why;
  auto src = lorac::cuda::emitLmHeadCeBwdX(l, 64, &why);
  ASSERT_TRUE(src.has_value()) << why;
  Operands op = RandomOperands(c, rng);
  auto& x = op.x;
  auto& w = op.w;
  auto& mask = op.mask;
  void* targets = op.targets();
  float dloss = 0.37f;
  std::vector<uint16_t> dx_cpu(x.size()), dx_sim(x.size(), 0x7fc0);
  const auto view = &lora_sim_test::View;
  std::vector<TensorView> in = op.Views(c);
  in.push_back(view(&dloss, DType::F32, {}));
  lorart::cpu::KernelParams p;
  p.set_kind("lm_head_ce_bwd_x");
  p.Set("tokens", c.tokens);
  p.Set("hidden", c.hidden);
  p.Set("vocab", c.vocab);
  p.Set("chunk_size", int64_t{64});
  lorart::cpu::KernelFn fn;
  ASSERT_TRUE(lorart::cpu::LookupKernel("lm_head_ce_bwd_x", &fn).ok());
  lorart::Status st =
      fn(lorart::cpu::KernelContext(), p, in, {view(dx_cpu.data(), DType::BF16, {c.tokens, c.hidden})});
  ASSERT_TRUE(st.ok()) << st.ToString();

  const std::string dir = lora_sim_test::SimWorkDir();
  std::vector<uint8_t> workspace(static_cast<size_t>(src->workspace) + 16, 0xcd);
  std::vector<void*> args = {x.data(), w.data(), targets, mask.data(), &dloss, dx_sim.data(),
                             workspace.data()};
  EXPECT_EQ(lora_sim_test::Launches(*src).size(), 1 + 2 * static_cast<size_t>((c.tokens + 63) / 64));
  lora_sim_test::RunAll(*src, args);
  EXPECT_LE(lora_sim_test::Bf16Error(dx_cpu, dx_sim), 1e-2);
}

// lm_head_ce_bwd_w in chunks of 64 tokens, dw in f32 (summed in place) and
// in bf16 (summed in the workspace's f32 copy when there are several chunks).
TEST_P(LmHeadSim, WeightGradientMatchesTheCpuBackend) {
  if (std::string why = lora_sim_test::SimAvailable(); !why.empty())
    GTEST_SKIP() << "simulator unavailable: " << why;
  const Case c = GetParam();
  std::mt19937_64 rng(std::random_device{}());
  for (bool f32 : {true, false}) {
    SCOPED_TRACE(f32 ? "f32 dw" : "bf16 dw");
    std::string why;
    auto src = lorac::cuda::emitLmHeadCeBwdW(Template(c), 64, f32 ? "float" : "__nv_bfloat16", &why);
    ASSERT_TRUE(src.has_value()) << why;
    Operands op = RandomOperands(c, rng);
    auto& x = op.x;
    auto& w = op.w;
    auto& mask = op.mask;
    void* targets = op.targets();
    float dloss = 0.61f;
    const size_t n = static_cast<size_t>(c.vocab * c.hidden);
    std::vector<float> dw_cpu32(n), dw_sim32(n, NAN);
    std::vector<uint16_t> dw_cpu16(n), dw_sim16(n, 0x7fc0);
    void* dw_cpu = f32 ? static_cast<void*>(dw_cpu32.data()) : dw_cpu16.data();
    void* dw_sim = f32 ? static_cast<void*>(dw_sim32.data()) : dw_sim16.data();
    const DType dt = f32 ? DType::F32 : DType::BF16;
    const auto view = &lora_sim_test::View;
    std::vector<TensorView> in = op.Views(c);
    in.push_back(view(&dloss, DType::F32, {}));
    lorart::cpu::KernelParams p;
    p.set_kind("lm_head_ce_bwd_w");
    p.Set("tokens", c.tokens);
    p.Set("hidden", c.hidden);
    p.Set("vocab", c.vocab);
    p.Set("chunk_size", int64_t{64});
    lorart::cpu::KernelFn fn;
    ASSERT_TRUE(lorart::cpu::LookupKernel("lm_head_ce_bwd_w", &fn).ok());
    lorart::Status st = fn(lorart::cpu::KernelContext(), p, in, {view(dw_cpu, dt, {c.vocab, c.hidden})});
    ASSERT_TRUE(st.ok()) << st.ToString();
    std::vector<uint8_t> workspace(static_cast<size_t>(src->workspace) + 16, 0xcd);
    std::vector<void*> args = {x.data(), w.data(), targets, mask.data(), &dloss, dw_sim, workspace.data()};
    EXPECT_EQ(lora_sim_test::Launches(*src).size(), 1 + 2 * static_cast<size_t>((c.tokens + 63) / 64));
    lora_sim_test::RunAll(*src, args);
    // dlogits are rounded to bf16 for the tensor cores (the CPU keeps f32).
    if (f32) {
      double scale = 1e-12, e = 0;
      for (size_t i = 0; i < n; ++i) {
        scale = std::max(scale, std::fabs(double(dw_cpu32[i])));
        e = std::max(e, std::isfinite(dw_sim32[i]) ? std::fabs(double(dw_sim32[i]) - dw_cpu32[i]) : 1e30);
      }
      EXPECT_LE(e / scale, 1e-2);
    } else {
      EXPECT_LE(lora_sim_test::Bf16Error(dw_cpu16, dw_sim16), 1e-2);
    }
  }
}

TEST_P(LmHeadSim, CompilesWithoutSpills) {
  std::string why;
  auto l = Template(GetParam());
  l.dxType = "__nv_bfloat16";
  auto fwd = lorac::cuda::emitLmHeadCeFwd(l, &why);
  ASSERT_TRUE(fwd.has_value()) << why;
  lora_sim_test::ExpectNoSpills(*fwd);
  auto bwd = lorac::cuda::emitLmHeadCeBwdX(l, 64, &why);
  ASSERT_TRUE(bwd.has_value()) << why;
  lora_sim_test::ExpectNoSpills(*bwd);
  auto bwdw = lorac::cuda::emitLmHeadCeBwdW(l, 64, "__nv_bfloat16", &why);
  ASSERT_TRUE(bwdw.has_value()) << why;
  lora_sim_test::ExpectNoSpills(*bwdw);
}

INSTANTIATE_TEST_SUITE_P(Shapes, LmHeadSim,
                         ::testing::Values(Case{32, 64, 256, false},   // the tiny model
                                           Case{100, 72, 300, true},   // partial tiles everywhere
                                           Case{130, 128, 64, false}), // three token tiles
                         [](const ::testing::TestParamInfo<Case>& info) {
                           const Case& c = info.param;
                           return "t" + std::to_string(c.tokens) + "_d" + std::to_string(c.hidden) +
                                  "_v" + std::to_string(c.vocab) + (c.targets64 ? "_i64" : "_i32");
                         });

}  // namespace
