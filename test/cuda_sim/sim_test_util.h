// Helpers shared by the template tests of test/cuda_sim: tensor views over
// host vectors, fresh random bf16 data, the normalized error of a bf16
// result, running every launch of a template's source on the simulator, and
// ptxas's no-spill check of every launch on sm_80 and sm_90a.
#ifndef LORART_TEST_CUDA_SIM_TEST_UTIL_H_
#define LORART_TEST_CUDA_SIM_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "cuda/common.h"
#include "lorart/cpu/kernel.h"
#include "lorart/cuda/nvrtc.h"
#include "sim_runner.h"

namespace lora_sim_test {

inline lorart::cpu::TensorView View(void* p, lorart::schema::DType d, std::vector<int64_t> shape) {
  lorart::cpu::TensorView t;
  t.data = p;
  t.dtype = d;
  t.shape = std::move(shape);
  return t;
}

// n bf16 values uniform in [-scale, scale).
inline std::vector<uint16_t> RandomBf16(int64_t n, std::mt19937_64& rng, float scale = 1.f) {
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<uint16_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = lorart::cpu::FloatToBf16(d(rng));
  return v;
}

// max |got − want| / max |want| over bf16 vectors (a non-finite result counts
// as 1e30).
inline double Bf16Error(const std::vector<uint16_t>& want, const std::vector<uint16_t>& got) {
  double scale = 1e-12, err = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    double w = lorart::cpu::Bf16ToFloat(want[i]), g = lorart::cpu::Bf16ToFloat(got[i]);
    scale = std::max(scale, std::fabs(w));
    err = std::max(err, std::isfinite(g) ? std::fabs(g - w) : 1e30);
  }
  return err / scale;
}

// The CPU backend's attention parameters (blocks of 32 queries and keys).
inline lorart::cpu::KernelParams AttentionParams(const char* kind, int64_t batch, int64_t seq,
                                                 int64_t heads, int64_t kv, int64_t dim,
                                                 double scale, bool causal, bool segments,
                                                 int64_t window) {
  lorart::cpu::KernelParams p;
  p.set_kind(kind);
  p.Set("batch", batch);
  p.Set("seq", seq);
  p.Set("num_heads", heads);
  p.Set("num_kv_heads", kv);
  p.Set("head_dim", dim);
  p.Set("scale", scale);
  p.Set("causal", int64_t{causal});
  p.Set("segments", int64_t{segments});
  p.Set("sliding_window", window);
  p.Set("block_q", int64_t{32});
  p.Set("block_k", int64_t{32});
  return p;
}

// $LORA_SIM_WORK (compiled kernels are cached there), or a directory of this
// process.
inline std::string SimWorkDir() {
  const char* work = std::getenv("LORA_SIM_WORK");
  return work ? work : ::testing::TempDir() + "lora_cuda_sim_" + std::to_string(getpid());
}

// The source's launches in order: its entry, then Source::next.
inline std::vector<lorac::cuda::Step> Launches(const lorac::cuda::Source& src) {
  std::vector<lorac::cuda::Step> steps;
  steps.push_back({src.entry, src.grid, src.gridY, src.gridZ, src.block, src.shared});
  for (const auto& s : src.next) steps.push_back(s);
  return steps;
}

// Runs every launch of `src` on the simulator with `args`.
inline void RunAll(const lorac::cuda::Source& src, const std::vector<void*>& args) {
  for (const auto& s : Launches(src)) {
    SimKernel k;
    ASSERT_EQ(k.Compile(src.code, s.entry, SimWorkDir()), "");
    ASSERT_EQ(k.Launch({unsigned(s.grid), unsigned(s.gridY), unsigned(s.gridZ)},
                       {unsigned(s.block), 1, 1}, size_t(s.shared), args),
              "")
        << s.entry;
  }
}

// Every launch of `src` compiles with NVRTC for sm_80 and sm_90a with no
// register spill and no stack frame (skipped without NVRTC).
inline void ExpectNoSpills(const lorac::cuda::Source& src) {
  auto nvrtc = lorart::cuda::Nvrtc::Get();
  if (!nvrtc.ok()) GTEST_SKIP() << nvrtc.status().ToString();
  std::vector<std::string> opts = lorart::cuda::DefaultNvrtcOptions();
  opts.push_back("--ptxas-options=-v");
  for (const char* arch : {"sm_80", "sm_90a"}) {
    std::string cubin, log;
    lorart::Status st = (*nvrtc)->CompileToCubin(src.code, src.entry, arch, opts, &cubin, &log);
    ASSERT_TRUE(st.ok()) << st.ToString();
    for (const auto& s : Launches(src)) {
      lorart::cuda::KernelResources r;
      st = lorart::cuda::ParsePtxasReport(log, s.entry, &r);
      ASSERT_TRUE(st.ok()) << st.ToString();
      EXPECT_EQ(r.spill_store_bytes + r.spill_load_bytes + r.stack_bytes, 0)
          << s.entry << " " << arch << ": " << r.registers << " registers, " << r.stack_bytes
          << " bytes stack, " << r.spill_store_bytes << " bytes spill stores";
    }
  }
}

}  // namespace lora_sim_test

#endif  // LORART_TEST_CUDA_SIM_TEST_UTIL_H_
