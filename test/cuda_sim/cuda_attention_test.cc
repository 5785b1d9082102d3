// The attention forward template (codegen/cuda/attention.cpp) on the CPU
// simulator against the CPU backend's attention_fwd, on shapes that reach
// every path: sequence lengths that are not multiples of the 64-row tiles,
// several query tiles, head_dim 16/64/128, grouped-query heads, a sliding
// window, packed sequences (segment ids, int32 and int64), non-causal; and
// each variant through NVRTC/ptxas for sm_80 and sm_90a without spills.
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
  int64_t batch, seq, heads, kv, dim, window;
  bool causal;
  int seg_bits;  // 0: no segment ids, 32 or 64
};

std::string Name(const Case& c) {
  return "b" + std::to_string(c.batch) + "_t" + std::to_string(c.seq) + "_h" +
         std::to_string(c.heads) + "_kv" + std::to_string(c.kv) + "_d" + std::to_string(c.dim) +
         (c.window ? "_w" + std::to_string(c.window) : "") + (c.causal ? "_causal" : "_full") +
         (c.seg_bits ? "_seg" + std::to_string(c.seg_bits) : "");
}

lorac::cuda::AttentionFwd Template(const Case& c) {
  lorac::cuda::AttentionFwd a;
  a.batch = c.batch;
  a.seq = c.seq;
  a.heads = c.heads;
  a.kvHeads = c.kv;
  a.headDim = c.dim;
  a.scale = 1.0 / std::sqrt(static_cast<double>(c.dim));
  a.causal = c.causal;
  a.slidingWindow = c.window;
  a.segType = c.seg_bits == 0 ? "" : c.seg_bits == 32 ? "int" : "long long";
  a.qType = a.oType = "__nv_bfloat16";
  return a;
}

class AttentionSim : public ::testing::TestWithParam<Case> {};

TEST_P(AttentionSim, MatchesTheCpuBackend) {
  if (std::string why = lora_sim_test::SimAvailable(); !why.empty())
    GTEST_SKIP() << "simulator unavailable: " << why;
  const Case c = GetParam();
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<float> u(-2.f, 2.f);
  auto a = Template(c);
  std::string why;
  auto src = lorac::cuda::emitAttentionFwd(a, &why);
  ASSERT_TRUE(src.has_value()) << why;

  const int64_t tokens = c.batch * c.seq;
  auto random = [&](int64_t n) {
    std::vector<uint16_t> v(static_cast<size_t>(n));
    for (auto& x : v) x = lorart::cpu::FloatToBf16(u(rng));
    return v;
  };
  std::vector<uint16_t> q = random(tokens * c.heads * c.dim), k = random(tokens * c.kv * c.dim),
                        v = random(tokens * c.kv * c.dim);
  // Packed documents: increasing segment ids with random lengths.
  std::vector<int64_t> seg64(static_cast<size_t>(tokens));
  std::uniform_int_distribution<int> len(1, static_cast<int>(c.seq));
  for (int64_t b = 0; b < c.batch; ++b) {
    int64_t id = 0, left = len(rng);
    for (int64_t t = 0; t < c.seq; ++t) {
      if (left-- == 0) ++id, left = len(rng) - 1;
      seg64[b * c.seq + t] = id;
    }
  }
  std::vector<int32_t> seg32(seg64.begin(), seg64.end());
  void* seg = c.seg_bits == 64 ? static_cast<void*>(seg64.data()) : seg32.data();
  std::vector<uint16_t> o_cpu(q.size(), 0), o_sim(q.size(), 0x7fc0);

  const auto view = &lora_sim_test::View;
  std::vector<TensorView> in = {view(q.data(), DType::BF16, {c.batch, c.seq, c.heads * c.dim}),
                                view(k.data(), DType::BF16, {c.batch, c.seq, c.kv * c.dim}),
                                view(v.data(), DType::BF16, {c.batch, c.seq, c.kv * c.dim})};
  if (c.seg_bits)
    in.push_back(view(seg, c.seg_bits == 64 ? DType::I64 : DType::I32, {c.batch, c.seq}));
  lorart::cpu::KernelParams p = lora_sim_test::AttentionParams(
      "attention_fwd", c.batch, c.seq, c.heads, c.kv, c.dim, a.scale, c.causal, c.seg_bits != 0, c.window);
  lorart::cpu::KernelFn fn;
  ASSERT_TRUE(lorart::cpu::LookupKernel("attention_fwd", &fn).ok());
  lorart::Status st = fn(lorart::cpu::KernelContext(), p, in,
                         {view(o_cpu.data(), DType::BF16, {c.batch, c.seq, c.heads * c.dim})});
  ASSERT_TRUE(st.ok()) << st.ToString();

  lora_sim_test::SimKernel kernel;
  const std::string dir = lora_sim_test::SimWorkDir();
  ASSERT_EQ(kernel.Compile(src->code, src->entry, dir), "");
  std::vector<void*> args = {q.data(), k.data(), v.data()};
  if (c.seg_bits) args.push_back(seg);
  args.push_back(o_sim.data());
  ASSERT_EQ(kernel.Launch({static_cast<unsigned>(src->grid), static_cast<unsigned>(src->gridY),
                           static_cast<unsigned>(src->gridZ)},
                          {static_cast<unsigned>(src->block), 1, 1},
                          static_cast<size_t>(src->shared), args),
            "");
  double scale = 1e-12, err = 0;
  size_t worst = 0;
  for (size_t i = 0; i < o_cpu.size(); ++i) {
    double w = lorart::cpu::Bf16ToFloat(o_cpu[i]), g = lorart::cpu::Bf16ToFloat(o_sim[i]);
    scale = std::max(scale, std::fabs(w));
    double e = std::isfinite(g) ? std::fabs(g - w) : 1e30;
    if (e > err) err = e, worst = i;
  }
  // P is rounded to bf16 before P·V on tensor cores (the CPU keeps f32).
  EXPECT_LE(err / scale, 2e-2) << "worst at element " << worst << ": cpu "
                               << lorart::cpu::Bf16ToFloat(o_cpu[worst]) << " sim "
                               << lorart::cpu::Bf16ToFloat(o_sim[worst]);
}

// attention_bwd: dq, dk, dv against the CPU backend (two launches sharing a
// workspace of per-row logsumexp and rowsum(dO ∘ O)).
TEST_P(AttentionSim, BackwardMatchesTheCpuBackend) {
  if (std::string why = lora_sim_test::SimAvailable(); !why.empty())
    GTEST_SKIP() << "simulator unavailable: " << why;
  const Case c = GetParam();
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<float> u(-2.f, 2.f);
  auto a = Template(c);
  std::string why;
  auto src = lorac::cuda::emitAttentionBwd(a, &why);
  ASSERT_TRUE(src.has_value()) << why;
  const int64_t tokens = c.batch * c.seq;
  auto random = [&](int64_t n) {
    std::vector<uint16_t> v(static_cast<size_t>(n));
    for (auto& x : v) x = lorart::cpu::FloatToBf16(u(rng));
    return v;
  };
  std::vector<uint16_t> dout = random(tokens * c.heads * c.dim), q = random(tokens * c.heads * c.dim),
                        k = random(tokens * c.kv * c.dim), v = random(tokens * c.kv * c.dim);
  std::vector<int64_t> seg64(static_cast<size_t>(tokens));
  std::uniform_int_distribution<int> len(1, static_cast<int>(c.seq));
  for (int64_t b = 0; b < c.batch; ++b) {
    int64_t id = 0, left = len(rng);
    for (int64_t t = 0; t < c.seq; ++t) {
      if (left-- == 0) ++id, left = len(rng) - 1;
      seg64[b * c.seq + t] = id;
    }
  }
  std::vector<int32_t> seg32(seg64.begin(), seg64.end());
  void* seg = c.seg_bits == 64 ? static_cast<void*>(seg64.data()) : seg32.data();
  std::vector<uint16_t> dq_cpu(q.size()), dk_cpu(k.size()), dv_cpu(v.size());
  std::vector<uint16_t> dq_sim(q.size(), 0x7fc0), dk_sim(k.size(), 0x7fc0), dv_sim(v.size(), 0x7fc0);
  const auto view = &lora_sim_test::View;
  const std::vector<int64_t> qs = {c.batch, c.seq, c.heads * c.dim}, ks = {c.batch, c.seq, c.kv * c.dim};
  std::vector<TensorView> in = {view(dout.data(), DType::BF16, qs), view(q.data(), DType::BF16, qs),
                                view(k.data(), DType::BF16, ks), view(v.data(), DType::BF16, ks)};
  if (c.seg_bits)
    in.push_back(view(seg, c.seg_bits == 64 ? DType::I64 : DType::I32, {c.batch, c.seq}));
  std::vector<TensorView> out = {view(dq_cpu.data(), DType::BF16, qs),
                                 view(dk_cpu.data(), DType::BF16, ks),
                                 view(dv_cpu.data(), DType::BF16, ks)};
  lorart::cpu::KernelParams p = lora_sim_test::AttentionParams(
      "attention_bwd", c.batch, c.seq, c.heads, c.kv, c.dim, a.scale, c.causal, c.seg_bits != 0, c.window);
  lorart::cpu::KernelFn fn;
  ASSERT_TRUE(lorart::cpu::LookupKernel("attention_bwd", &fn).ok());
  lorart::Status st = fn(lorart::cpu::KernelContext(), p, in, out);
  ASSERT_TRUE(st.ok()) << st.ToString();

  const std::string dir = lora_sim_test::SimWorkDir();
  std::vector<uint8_t> workspace(static_cast<size_t>(src->workspace) + 16, 0xcd);
  std::vector<void*> args = {dout.data(), q.data(), k.data(), v.data()};
  if (c.seg_bits) args.push_back(seg);
  args.push_back(dq_sim.data());
  args.push_back(dk_sim.data());
  args.push_back(dv_sim.data());
  args.push_back(workspace.data());
  lora_sim_test::RunAll(*src, args);
  // P and dS are rounded to bf16 for the tensor cores (the CPU keeps f32).
  auto check = [](const char* what, const std::vector<uint16_t>& want, const std::vector<uint16_t>& got) {
    EXPECT_LE(lora_sim_test::Bf16Error(want, got), 3e-2) << what;
  };
  check("dq", dq_cpu, dq_sim);
  check("dk", dk_cpu, dk_sim);
  check("dv", dv_cpu, dv_sim);
}

TEST_P(AttentionSim, CompilesWithoutSpills) {
  std::string why;
  auto fwd = lorac::cuda::emitAttentionFwd(Template(GetParam()), &why);
  ASSERT_TRUE(fwd.has_value()) << why;
  lora_sim_test::ExpectNoSpills(*fwd);
  auto bwd = lorac::cuda::emitAttentionBwd(Template(GetParam()), &why);
  ASSERT_TRUE(bwd.has_value()) << why;
  lora_sim_test::ExpectNoSpills(*bwd);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AttentionSim,
    ::testing::Values(
        // batch, seq, heads, kv, dim, window, causal, seg_bits
        Case{2, 16, 4, 2, 16, 0, true, 32},    // the tiny model's shape
        Case{1, 100, 2, 1, 64, 0, true, 0},    // two query tiles, a partial one
        Case{2, 130, 4, 2, 64, 0, true, 64},   // three tiles, packed documents (int64 ids)
        Case{1, 96, 2, 2, 128, 40, true, 32},  // head_dim 128, sliding window
        Case{1, 72, 3, 1, 32, 0, false, 0}     // bidirectional, 3 query heads per kv head
        ),
    [](const ::testing::TestParamInfo<Case>& info) { return Name(info.param); });

TEST(AttentionTemplate, RefusesWhatItDoesNotCover) {
  lorac::cuda::AttentionFwd a = Template(Case{1, 16, 2, 1, 16, 0, true, 0});
  std::string why;
  a.headDim = 24;
  EXPECT_FALSE(lorac::cuda::emitAttentionFwd(a, &why).has_value());
  EXPECT_EQ(why, "head_dim is not a multiple of 16 up to 128");
  a.headDim = 16;
  a.qType = "float";
  EXPECT_FALSE(lorac::cuda::emitAttentionFwd(a, &why).has_value());
  EXPECT_EQ(why, "q is not bf16");
}

}  // namespace
