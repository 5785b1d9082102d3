// The LM-head cross-entropy forward template (passes/lib/CudaLmHead.cpp) on
// the CPU simulator against the CPU backend's lm_head_ce_fwd: token counts,
// hidden sizes and vocabularies that are not multiples of the tiles, int32
// and int64 targets, random masks; lm_head_ce_bwd_x in several chunks; and
// every launch without spills.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <unistd.h>

#include "CudaGemm.h"
#include "lorart/cpu/kernel.h"
#include "lorart/cuda/nvrtc.h"
#include "sim_runner.h"

namespace {

using lorart::cpu::TensorView;
using lorart::schema::DType;

struct Case {
  int64_t tokens, hidden, vocab;
  bool targets64;
};

class LmHeadSim : public ::testing::TestWithParam<Case> {};

mlir::lora::cuda::LmHeadCe Template(const Case& c) {
  mlir::lora::cuda::LmHeadCe l;
  l.tokens = c.tokens;
  l.hidden = c.hidden;
  l.vocab = c.vocab;
  l.xType = l.wType = "__nv_bfloat16";
  l.targetType = c.targets64 ? "long long" : "int";
  return l;
}

TEST_P(LmHeadSim, ForwardMatchesTheCpuBackend) {
  if (std::string why = lora_sim_test::SimAvailable(); !why.empty())
    GTEST_SKIP() << "simulator unavailable: " << why;
  const Case c = GetParam();
  std::mt19937_64 rng(std::random_device{}());
  std::string why;
  auto src = mlir::lora::cuda::emitLmHeadCeFwd(Template(c), &why);
  ASSERT_TRUE(src.has_value()) << why;
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<uint16_t> x(static_cast<size_t>(c.tokens * c.hidden)), w(static_cast<size_t>(c.vocab * c.hidden));
  for (auto& e : x) e = lorart::cpu::FloatToBf16(u(rng));
  for (auto& e : w) e = lorart::cpu::FloatToBf16(0.5f * u(rng));
  std::uniform_int_distribution<int64_t> tg(0, c.vocab - 1);
  std::vector<int64_t> t64(static_cast<size_t>(c.tokens));
  std::vector<uint8_t> mask(static_cast<size_t>(c.tokens));
  for (int64_t i = 0; i < c.tokens; ++i) {
    t64[i] = tg(rng);
    mask[i] = static_cast<uint8_t>(rng() % 4 != 0);
  }
  std::vector<int32_t> t32(t64.begin(), t64.end());
  void* targets = c.targets64 ? static_cast<void*>(t64.data()) : t32.data();
  float loss_cpu = NAN, loss_sim = NAN;
  int64_t count_cpu = -1, count_sim = -1;

  auto view = [](void* p, DType d, std::vector<int64_t> shape) {
    TensorView t;
    t.data = p;
    t.dtype = d;
    t.shape = std::move(shape);
    return t;
  };
  std::vector<TensorView> in = {view(x.data(), DType::BF16, {c.tokens, c.hidden}),
                                view(w.data(), DType::BF16, {c.vocab, c.hidden}),
                                view(targets, c.targets64 ? DType::I64 : DType::I32, {c.tokens}),
                                view(mask.data(), DType::BOOL, {c.tokens})};
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

  const char* work = std::getenv("LORA_SIM_WORK");
  std::string dir = work ? work : ::testing::TempDir() + "lora_cuda_sim_" + std::to_string(getpid());
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
  auto src = mlir::lora::cuda::emitLmHeadCeBwdX(l, 64, &why);
  ASSERT_TRUE(src.has_value()) << why;
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<uint16_t> x(static_cast<size_t>(c.tokens * c.hidden)), w(static_cast<size_t>(c.vocab * c.hidden));
  for (auto& e : x) e = lorart::cpu::FloatToBf16(u(rng));
  for (auto& e : w) e = lorart::cpu::FloatToBf16(0.5f * u(rng));
  std::uniform_int_distribution<int64_t> tg(0, c.vocab - 1);
  std::vector<int64_t> t64(static_cast<size_t>(c.tokens));
  std::vector<uint8_t> mask(static_cast<size_t>(c.tokens));
  for (int64_t i = 0; i < c.tokens; ++i) {
    t64[i] = tg(rng);
    mask[i] = static_cast<uint8_t>(rng() % 4 != 0);
  }
  std::vector<int32_t> t32(t64.begin(), t64.end());
  void* targets = c.targets64 ? static_cast<void*>(t64.data()) : t32.data();
  float dloss = 0.37f;
  std::vector<uint16_t> dx_cpu(x.size()), dx_sim(x.size(), 0x7fc0);
  auto view = [](void* p, DType d, std::vector<int64_t> shape) {
    TensorView t;
    t.data = p;
    t.dtype = d;
    t.shape = std::move(shape);
    return t;
  };
  std::vector<TensorView> in = {view(x.data(), DType::BF16, {c.tokens, c.hidden}),
                                view(w.data(), DType::BF16, {c.vocab, c.hidden}),
                                view(targets, c.targets64 ? DType::I64 : DType::I32, {c.tokens}),
                                view(mask.data(), DType::BOOL, {c.tokens}),
                                view(&dloss, DType::F32, {})};
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

  const char* work = std::getenv("LORA_SIM_WORK");
  std::string dir = work ? work : ::testing::TempDir() + "lora_cuda_sim_" + std::to_string(getpid());
  std::vector<uint8_t> workspace(static_cast<size_t>(src->workspace) + 16, 0xcd);
  std::vector<void*> args = {x.data(), w.data(), targets, mask.data(), &dloss, dx_sim.data(),
                             workspace.data()};
  std::vector<mlir::lora::cuda::Step> steps;
  steps.push_back({src->entry, src->grid, src->gridY, src->gridZ, src->block, src->shared});
  for (const auto& s2 : src->next) steps.push_back(s2);
  EXPECT_EQ(steps.size(), 1 + 2 * static_cast<size_t>((c.tokens + 63) / 64));
  for (const auto& s2 : steps) {
    lora_sim_test::SimKernel k;
    ASSERT_EQ(k.Compile(src->code, s2.entry, dir), "");
    ASSERT_EQ(k.Launch({unsigned(s2.grid), unsigned(s2.gridY), 1}, {unsigned(s2.block), 1, 1},
                       size_t(s2.shared), args),
              "")
        << s2.entry;
  }
  double scale = 1e-12, err = 0;
  for (size_t i = 0; i < dx_cpu.size(); ++i) {
    double want = lorart::cpu::Bf16ToFloat(dx_cpu[i]), got = lorart::cpu::Bf16ToFloat(dx_sim[i]);
    scale = std::max(scale, std::fabs(want));
    err = std::max(err, std::isfinite(got) ? std::fabs(got - want) : 1e30);
  }
  EXPECT_LE(err / scale, 1e-2);
}

TEST_P(LmHeadSim, CompilesWithoutSpills) {
  auto nvrtc = lorart::cuda::Nvrtc::Get();
  if (!nvrtc.ok()) GTEST_SKIP() << nvrtc.status().ToString();
  std::string why;
  auto l = Template(GetParam());
  l.dxType = "__nv_bfloat16";
  for (bool backward : {false, true}) {
    auto src = backward ? mlir::lora::cuda::emitLmHeadCeBwdX(l, 64, &why)
                        : mlir::lora::cuda::emitLmHeadCeFwd(l, &why);
    ASSERT_TRUE(src.has_value()) << why;
    std::vector<std::string> entries;
    entries.push_back(src->entry);
    for (const auto& s2 : src->next) entries.push_back(s2.entry);
    std::vector<std::string> opts = lorart::cuda::DefaultNvrtcOptions();
    opts.push_back("--ptxas-options=-v");
    for (const char* arch : {"sm_80", "sm_90a"}) {
      std::string cubin, log;
      lorart::Status st = (*nvrtc)->CompileToCubin(src->code, src->entry, arch, opts, &cubin, &log);
      ASSERT_TRUE(st.ok()) << st.ToString();
      for (const std::string& e : entries) {
        lorart::cuda::KernelResources r;
        st = lorart::cuda::ParsePtxasReport(log, e, &r);
        ASSERT_TRUE(st.ok()) << st.ToString();
        EXPECT_EQ(r.spill_store_bytes + r.spill_load_bytes + r.stack_bytes, 0) << e << " " << arch;
      }
    }
  }
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
