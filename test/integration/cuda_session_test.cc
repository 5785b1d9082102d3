// The Session on the CUDA executor, run on the CPU simulator's driver and
// NVRTC (test/cuda_sim/sim_driver.cc, through LORART_CUDA_DRIVER and
// LORART_NVRTC, set before any test runs): a bf16 QLoRA plan compiled with --target cuda gives the CPU
// backend's loss, gradients and optimizer update; state set on the host
// reaches the device and comes back; ZeroGradients zeroes the device's
// gradients; a plan without CUDA source is refused on cuda and runs on the
// CPU under auto, which says why.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "e2e_util.h"
#include "lorart/cpu/kernel.h"
#include "lorart/exec/session.h"

namespace lorart {
namespace {

// Points the runtime at the simulator's driver and NVRTC before the first
// Session loads them.
class SimDriverEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    ::setenv("LORART_CUDA_DRIVER", LORART_SIM_DRIVER, 1);
    ::setenv("LORART_NVRTC", LORART_SIM_DRIVER, 1);
    ::setenv("LORA_SIM_WORK", LORA_SIM_WORK_DIR, 1);
  }
};
const ::testing::Environment* const kSimDriver =
    ::testing::AddGlobalTestEnvironment(new SimDriverEnvironment);

std::string PlanPath(const std::string& name) {
  return std::string(LORAC_TEST_PLAN_DIR) + "/" + name + ".bin";
}

const std::string& ModelDir() {
  static std::string dir = lorart::testing::MakeTinyModel("lorart_cuda_session_model", "bf16", 5);
  return dir;
}

std::unique_ptr<Session> Open(const std::string& plan, DeviceKind device) {
  SessionOptions so;
  so.num_threads = 2;
  so.device = device;
  so.kernel_cache = ::testing::TempDir() + "lorart_cuda_session_kernels";
  return lorart::testing::OpenBound(PlanPath(plan), so, ModelDir(), 11);
}

using lorart::testing::StateOf;

// Float32 contents of a state tensor.
std::vector<float> Floats(const Session& s, const std::string& name) {
  for (const Session::StateTensor& t : StateOf(s))
    if (t.name == name) {
      EXPECT_EQ(t.dtype, schema::DType::F32) << name;
      const float* p = reinterpret_cast<const float*>(t.data);
      return std::vector<float>(p, p + t.bytes / 4);
    }
  ADD_FAILURE() << "no state tensor " << name;
  return {};
}

// Random adapters (lora_B starts at zero, which would zero lora_A's
// gradients), identical in every session.
void RandomAdapters(Session& s) {
  for (const Session::StateTensor& t : StateOf(s)) {
    if (t.name.rfind("master/", 0) != 0 || t.name.find(".lora_") == std::string::npos) continue;
    std::mt19937_64 rng(std::hash<std::string>()(t.name));
    std::uniform_real_distribution<float> d(-0.1f, 0.1f);
    std::vector<float> v(t.bytes / 4);
    for (float& x : v) x = d(rng);
    ASSERT_TRUE(s.SetState(t.name, v.data(), t.bytes).ok());
    // The bf16 working copy of the parameter itself.
    std::string param = t.name.substr(7);
    const cpu::TensorView* p = s.FindPersistent(param);
    ASSERT_NE(p, nullptr) << param;
    std::vector<uint16_t> h(v.size());
    for (size_t i = 0; i < v.size(); ++i) h[i] = cpu::FloatToBf16(v[i]);
    ASSERT_EQ(p->dtype, schema::DType::BF16);
    ASSERT_TRUE(s.SetState(param, h.data(), h.size() * 2).ok());
  }
}

void Feed(Session& s, const std::string& program, uint64_t seed) {
  const int64_t n = 2 * 16;
  std::mt19937_64 rng(seed);
  std::vector<int32_t> tokens(n), positions(n), segments(n), targets(n);
  std::vector<uint8_t> mask(n);
  for (int64_t i = 0; i < n; ++i) {
    tokens[i] = static_cast<int32_t>(rng() % 256);
    positions[i] = static_cast<int32_t>(i % 16 % 10);  // two documents per row: 10 + 6
    segments[i] = i % 16 < 10 ? 0 : 1;
    targets[i] = static_cast<int32_t>(rng() % 256);
    mask[i] = (i % 16 != 9 && i % 16 != 15) ? 1 : 0;
  }
  ASSERT_TRUE(s.SetInput(program, InputPort::Tokens, tokens.data(), n * 4).ok());
  ASSERT_TRUE(s.SetInput(program, InputPort::Positions, positions.data(), n * 4).ok());
  ASSERT_TRUE(s.SetInput(program, InputPort::SegmentIds, segments.data(), n * 4).ok());
  ASSERT_TRUE(s.SetInput(program, InputPort::Targets, targets.data(), n * 4).ok());
  ASSERT_TRUE(s.SetInput(program, InputPort::LossMask, mask.data(), n).ok());
}

double RelativeError(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

void Step(Session& s) {
  Feed(s, programs::kTrainStep, 21);
  Status st = s.Run(programs::kTrainStep, 77);  // dropout on: the same masks on both devices
  ASSERT_TRUE(st.ok()) << st.ToString();
}

TEST(CudaSession, TrainAndOptimizerStepsMatchTheCpu) {
  std::unique_ptr<Session> cpu = Open("cuda_nf4", DeviceKind::kCpu);
  std::unique_ptr<Session> gpu = Open("cuda_nf4", DeviceKind::kCuda);
  ASSERT_TRUE(cpu && gpu);
  EXPECT_EQ(gpu->DeviceDescription().rfind("cuda: lorart CUDA simulator (sm_80", 0), 0u)
      << gpu->DeviceDescription();
  RandomAdapters(*cpu);
  RandomAdapters(*gpu);
  Step(*cpu);
  Step(*gpu);
  double lc = *cpu->GetScalar(programs::kTrainStep, OutputPort::LossSum);
  double lg = *gpu->GetScalar(programs::kTrainStep, OutputPort::LossSum);
  EXPECT_NEAR(lg, lc, 5e-3 * std::fabs(lc));
  EXPECT_EQ(*gpu->GetScalar(programs::kTrainStep, OutputPort::Count),
            *cpu->GetScalar(programs::kTrainStep, OutputPort::Count));
  int grads = 0;
  for (const Session::StateTensor& t : StateOf(*cpu)) {
    if (t.name.rfind("grad/", 0) != 0) continue;
    std::vector<float> gc = Floats(*cpu, t.name), gg = Floats(*gpu, t.name);
    double norm = 0;
    for (float g : gc) norm += double(g) * g;
    EXPECT_GT(norm, 0) << t.name << ": a zero gradient compares nothing";
    EXPECT_LT(RelativeError(gg, gc), 3e-2) << t.name;
    ++grads;
  }
  EXPECT_GT(grads, 0);
  // The optimizer on the same gradients: Adam's first step moves each
  // element by about the learning rate whatever its gradient's size, so
  // bf16 differences in near-zero gradients would flip signs; given the CPU's
  // gradients (set on the host, uploaded before the run) the update must
  // agree to float32 rounding — of the global norm, summed in another order,
  // which scales every gradient (measured: 1.3e-5 in adam_v, 6e-6 elsewhere).
  for (const Session::StateTensor& t : StateOf(*cpu)) {
    if (t.name.rfind("grad/", 0) == 0) {
      ASSERT_TRUE(gpu->SetState(t.name, t.data, t.bytes).ok());
    }
  }
  float tokens = static_cast<float>(*cpu->GetScalar(programs::kTrainStep, OutputPort::Count));
  for (Session* s : {cpu.get(), gpu.get()}) {
    ASSERT_TRUE(s->SetScalar(programs::kOptimizerStep, InputPort::LearningRate, 1e-2f).ok());
    ASSERT_TRUE(s->SetScalar(programs::kOptimizerStep, InputPort::Step, 1.0f).ok());
    ASSERT_TRUE(s->SetScalar(programs::kOptimizerStep, InputPort::TokenCount, tokens).ok());
    Status st = s->Run(programs::kOptimizerStep, 0);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  EXPECT_NEAR(*gpu->GetScalar(programs::kOptimizerStep, OutputPort::GradNorm),
              *cpu->GetScalar(programs::kOptimizerStep, OutputPort::GradNorm),
              1e-5 * *cpu->GetScalar(programs::kOptimizerStep, OutputPort::GradNorm));
  int masters = 0;
  for (const Session::StateTensor& t : StateOf(*cpu)) {
    if (t.name.rfind("master/", 0) == 0 || t.name.rfind("adam_", 0) == 0) {
      EXPECT_LT(RelativeError(Floats(*gpu, t.name), Floats(*cpu, t.name)), 1e-4) << t.name;
      ++masters;
    }
  }
  EXPECT_GT(masters, 0);
}

TEST(CudaSession, StateAndGradientsRoundTripThroughTheDevice) {
  std::unique_ptr<Session> gpu = Open("cuda_nf4", DeviceKind::kCuda);
  ASSERT_TRUE(gpu);
  RandomAdapters(*gpu);
  Step(*gpu);
  std::string grad;
  for (const Session::StateTensor& t : StateOf(*gpu))
    if (t.name.rfind("grad/", 0) == 0) grad = t.name;
  ASSERT_FALSE(grad.empty());
  std::vector<float> g = Floats(*gpu, grad);
  double norm = 0;
  for (float x : g) norm += double(x) * x;
  EXPECT_GT(norm, 0) << "the device's gradient came back as zeros";
  ASSERT_TRUE(gpu->ZeroGradients().ok());
  for (float x : Floats(*gpu, grad)) ASSERT_EQ(x, 0.0f);
  // A state tensor set on the host reaches the device (the next run
  // accumulates onto it) and comes back.
  std::vector<float> ones(g.size(), 1.0f);
  ASSERT_TRUE(gpu->SetState(grad, ones.data(), ones.size() * 4).ok());
  EXPECT_EQ(Floats(*gpu, grad), ones);
  Step(*gpu);
  std::vector<float> after = Floats(*gpu, grad);
  for (size_t i = 0; i < after.size(); ++i) after[i] -= 1.0f;
  EXPECT_LT(RelativeError(after, g), 1e-4) << "the second step did not accumulate onto 1";
}

TEST(CudaSession, APlanWithoutCudaSourceIsRefusedOnCudaAndRunsOnTheCpuUnderAuto) {
  SessionOptions so;
  so.device = DeviceKind::kCuda;
  std::unique_ptr<Session> s;
  Status st = Session::Open(PlanPath("lora_b1_t8"), so, &s);  // f32, no --target cuda
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("has no CUDA source (compile the plan with `lorac compile "
                              "--target cuda`"),
            std::string::npos)
      << st.ToString();
  so.device = DeviceKind::kAuto;
  st = Session::Open(PlanPath("lora_b1_t8"), so, &s);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(s->device(), DeviceKind::kCpu);
  EXPECT_NE(s->DeviceDescription().find("has no CUDA source"), std::string::npos)
      << s->DeviceDescription();
  st = Session::Open(PlanPath("cuda_nf4"), so, &s);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(s->device(), DeviceKind::kCuda) << s->DeviceDescription();
}

// A plan larger than the device's free memory is refused before anything is
// compiled or allocated, with the figures and the flags that shrink it.
TEST(CudaSession, APlanLargerThanTheDeviceIsRefusedBeforeAllocating) {
  ::setenv("LORA_SIM_DEVICE_MEMORY", "65536", 1);
  SessionOptions so;
  so.device = DeviceKind::kCuda;
  so.kernel_cache = ::testing::TempDir() + "lorart_cuda_session_kernels";
  std::unique_ptr<Session> s;
  Status st = Session::Open(PlanPath("cuda_nf4"), so, &s);
  ::unsetenv("LORA_SIM_DEVICE_MEMORY");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("of device memory (arena"), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("KiB free"), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("--quantize-base nf4"), std::string::npos) << st.ToString();
  // With the memory back, the same plan opens.
  st = Session::Open(PlanPath("cuda_nf4"), so, &s);
  EXPECT_TRUE(st.ok()) << st.ToString();
}

}  // namespace
}  // namespace lorart
