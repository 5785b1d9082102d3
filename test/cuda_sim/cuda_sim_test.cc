// The generated CUDA kernels, run on the CPU simulator (lora_cuda_sim.h),
// against the CPU backend — the backend-ops harness of issue #5 for machines
// without a GPU. The same comparison runs on a GPU with the `gpu` label.
//
// SimSelf.*: the simulator's own semantics (barriers, shuffles, the mma and
// ldmatrix fragment layouts against a plain matrix product, and the errors
// for divergent barriers and shuffles of exited lanes).
// SimPlan.*: the backend-ops harness — every kernel with CUDA source in the
// plan named by $LORA_SIM_PLAN, on fresh random inputs, against the CPU kernel
// of the same kind (skipped without $LORA_SIM_PLAN; sim_plan_test.sh sets it).
// Kernels go through the runtime's own CUDA layer (lorart/cuda: NVRTC, the
// kernel cache, the driver API): on a GPU that is the real driver (ctest's
// `cuda_backend_ops_gpu`, label gpu), in CI the simulator's driver
// (sim_driver.cc, by $LORART_CUDA_DRIVER and $LORART_NVRTC).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <unistd.h>

#include "lorart/cpu/kernel.h"
#include "lorart/cuda/driver.h"
#include "lorart/cuda/executor.h"
#include "lorart/cuda/nvrtc.h"
#include "lorart/plan/plan.h"
#include "lorart/quant/nf4.h"
#include "sim_runner.h"

namespace {

// The dropout mask stream of an adapter kernel (0 when it draws none).
int64_t DropStream(const lorart::cpu::KernelParams& params) {
  lorart::kernels::AnyParams typed;
  if (!params.TypedAny(&typed).ok()) return 0;
  std::optional<lorart::kernels::DropoutDraw> drop = lorart::kernels::DropoutOf(typed);
  return drop ? drop->stream : 0;
}

using lora_sim_test::SimKernel;

// $LORA_SIM_WORK (shared by runs: compiled kernels are cached there), or a
// directory of this process.
std::string WorkDir() {
  const char* base = std::getenv("LORA_SIM_WORK");
  if (base) return base;
  return ::testing::TempDir() + "lora_cuda_sim_" + std::to_string(getpid());
}

#define REQUIRE_SIM()                                              \
  do {                                                             \
    std::string why = lora_sim_test::SimAvailable();               \
    if (!why.empty()) GTEST_SKIP() << "simulator unavailable: " << why; \
  } while (0)

uint16_t ToBf16(float f) { return lorart::cpu::FloatToBf16(f); }
float FromBf16(uint16_t h) { return lorart::cpu::Bf16ToFloat(h); }

TEST(SimSelf, BlockReductionWithBarriersAndShuffles) {
  REQUIRE_SIM();
  const char* src = R"(
extern "C" __global__ void reduce(const float* x, float* out) {
  __shared__ float part[4];
  float v = x[blockIdx.x * 128 + threadIdx.x];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;
  __syncthreads();
  if (threadIdx.x == 0) out[blockIdx.x] = part[0] + part[1] + part[2] + part[3];
}
)";
  SimKernel k;
  ASSERT_EQ(k.Compile(src, "reduce", WorkDir()), "");
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> d(-1, 1);
  std::vector<float> x(3 * 128), out(3, 0.f);
  for (float& v : x) v = d(rng);
  ASSERT_EQ(k.Launch({3, 1, 1}, {128, 1, 1}, 0, {x.data(), out.data()}), "");
  for (int b = 0; b < 3; ++b) {
    double want = 0;
    for (int i = 0; i < 128; ++i) want += x[b * 128 + i];
    EXPECT_NEAR(out[b], want, 1e-4) << "block " << b;
  }
}

TEST(SimSelf, LdmatrixAndMmaComputeTheMatrixProduct) {
  REQUIRE_SIM();
  // One warp: C[16][8] = A[16][16] (row-major) * B where B is stored as
  // Bt[8][16] (n-major, as a weight W[n][k]) and loaded without .trans, and
  // the same product with B stored k-major [16][8] and loaded with .trans.
  const char* src = R"(
extern "C" __global__ void mma(const __nv_bfloat16* a, const __nv_bfloat16* bt,
                               const __nv_bfloat16* bk, float* c, float* c2) {
  __shared__ __nv_bfloat16 sa[16][16], sb[8][16], sk[16][8];
  const int lane = threadIdx.x;
  for (int i = lane; i < 256; i += 32) sa[i / 16][i % 16] = a[i];
  for (int i = lane; i < 128; i += 32) { sb[i / 16][i % 16] = bt[i]; sk[i / 8][i % 8] = bk[i]; }
  __syncthreads();
  unsigned fa[4], fb[4], fk[2];
  // x4 over A: matrices (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15), (rows 8-15, k 8-15).
  lora_sim::Ldmatrix(fa, &sa[(lane % 8) + ((lane / 8) % 2) * 8][(lane / 16) * 8], 4, false);
  // x4 over Bt (x2 would do; lanes 16-31 repeat): (n 0-7, k 0-7), (n 0-7, k 8-15).
  lora_sim::Ldmatrix(fb, &sb[lane % 8][((lane / 8) % 2) * 8], 4, false);
  // .trans over the k-major copy: (k 0-7, n 0-7), (k 8-15, n 0-7).
  lora_sim::Ldmatrix(fk, &sk[(lane % 8) + ((lane / 8) % 2) * 8][0], 2, true);
  float d[4] = {0, 0, 0, 0}, d2[4] = {0, 0, 0, 0};
  lora_sim::Mma16816(d, fa, fb, true);
  lora_sim::Mma16816(d2, fa, fk, true);
  const int g = lane >> 2, t = lane & 3;
  for (int i = 0; i < 4; ++i) {
    c[(g + (i >= 2 ? 8 : 0)) * 8 + 2 * t + (i & 1)] = d[i];
    c2[(g + (i >= 2 ? 8 : 0)) * 8 + 2 * t + (i & 1)] = d2[i];
  }
}
)";
  SimKernel k;
  ASSERT_EQ(k.Compile(src, "mma", WorkDir()), "");
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> d(-1, 1);
  std::vector<uint16_t> a(256), bt(128), bk(128);
  for (auto& v : a) v = ToBf16(d(rng));
  for (int n = 0; n < 8; ++n)
    for (int kk = 0; kk < 16; ++kk) {
      bt[n * 16 + kk] = ToBf16(d(rng));
      bk[kk * 8 + n] = bt[n * 16 + kk];
    }
  std::vector<float> c(128, -7.f), c2(128, -7.f);
  ASSERT_EQ(k.Launch({1, 1, 1}, {32, 1, 1}, 0, {a.data(), bt.data(), bk.data(), c.data(), c2.data()}),
            "");
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 8; ++n) {
      double want = 0;
      for (int kk = 0; kk < 16; ++kk) want += double(FromBf16(a[m * 16 + kk])) * FromBf16(bt[n * 16 + kk]);
      EXPECT_NEAR(c[m * 8 + n], want, 1e-4) << m << "," << n;
      EXPECT_NEAR(c2[m * 8 + n], want, 1e-4) << m << "," << n << " (.trans)";
    }
}

TEST(SimSelf, DivergentBarrierIsADeadlock) {
  REQUIRE_SIM();
  const char* src = R"(
extern "C" __global__ void bad(float* x) {
  if (threadIdx.x < 16) __syncthreads();
  else x[threadIdx.x] = __shfl_xor_sync(0xffffffffu, x[threadIdx.x], 1);
}
)";
  SimKernel k;
  ASSERT_EQ(k.Compile(src, "bad", WorkDir()), "");
  std::vector<float> x(32, 1.f);
  std::string err = k.Launch({1, 1, 1}, {32, 1, 1}, 0, {x.data()});
  EXPECT_NE(err.find("deadlock"), std::string::npos) << err;
}

TEST(SimSelf, ShuffleOfAnExitedLaneIsAnError) {
  REQUIRE_SIM();
  const char* src = R"(
extern "C" __global__ void early(float* x) {
  if (threadIdx.x >= 20) return;
  x[threadIdx.x] = __shfl_xor_sync(0xffffffffu, x[threadIdx.x], 16);
}
)";
  SimKernel k;
  ASSERT_EQ(k.Compile(src, "early", WorkDir()), "");
  std::vector<float> x(32, 1.f);
  std::string err = k.Launch({1, 1, 1}, {32, 1, 1}, 0, {x.data()});
  EXPECT_NE(err.find("exited"), std::string::npos) << err;
}

TEST(SimSelf, WritingPastDynamicSharedMemoryIsAnError) {
  REQUIRE_SIM();
  const char* src = R"(
extern "C" __global__ void over(float* x) {
  LORA_DYNAMIC_SMEM(smem);
  ((float*)smem)[threadIdx.x] = x[threadIdx.x];
}
)";
  SimKernel k;
  ASSERT_EQ(k.Compile(std::string("#define LORA_DYNAMIC_SMEM(n) unsigned char* n = (unsigned char*)lora_sim::DynamicSmem()\n") + src,
                      "over", WorkDir()),
            "");
  std::vector<float> x(64, 1.f);
  EXPECT_EQ(k.Launch({1, 1, 1}, {64, 1, 1}, 256, {x.data()}), "");  // exactly 64 floats
  std::string err = k.Launch({1, 1, 1}, {64, 1, 1}, 128, {x.data()});
  EXPECT_NE(err.find("wrote past the 128 bytes of dynamic shared memory"), std::string::npos) << err;
}

// cp.async lands when the issuing thread waits: a tile read before
// cp.async.wait_group holds what shared memory held before (stale data, as it
// may on a GPU), and after the wait and a barrier the copy.
TEST(SimSelf, CpAsyncLandsAtTheWait) {
  REQUIRE_SIM();
  const char* src = R"(
extern "C" __global__ void stage(const float* x, float* before, float* after) {
  __shared__ __align__(16) float tile[64];
  tile[threadIdx.x] = -1.f;
  __syncthreads();
  if (threadIdx.x % 4 == 0) lora_sim::CpAsync16(&tile[threadIdx.x], &x[threadIdx.x], true);
  __syncthreads();
  before[threadIdx.x] = tile[threadIdx.x];
  __syncthreads();
  lora_sim::CpWaitAll();
  __syncthreads();
  after[threadIdx.x] = tile[threadIdx.x];
}
)";
  SimKernel k;
  ASSERT_EQ(k.Compile(src, "stage", WorkDir()), "");
  std::vector<float> x(64), before(64), after(64);
  for (int i = 0; i < 64; ++i) x[i] = static_cast<float>(i) + 0.5f;
  ASSERT_EQ(k.Launch({1, 1, 1}, {64, 1, 1}, 0, {x.data(), before.data(), after.data()}), "");
  for (int i = 0; i < 64; ++i) {
    EXPECT_EQ(before[i], -1.f) << i;
    EXPECT_EQ(after[i], x[i]) << i;
  }
}

// A cp.async or ldmatrix row off a 16-byte boundary faults on a GPU: an
// error on the simulator.
TEST(SimSelf, MisalignedCpAsyncIsAnError) {
  REQUIRE_SIM();
  const char* src = R"(
extern "C" __global__ void off(const float* x, float* y) {
  __shared__ __align__(16) float tile[8];
  lora_sim::CpAsync16(&tile[0], x + 2, true);  // 8 bytes past a boundary
  lora_sim::CpWaitAll();
  y[0] = tile[0];
}
)";
  SimKernel k;
  ASSERT_EQ(k.Compile(src, "off", WorkDir()), "");
  alignas(16) float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  float y = 0;
  std::string err = k.Launch({1, 1, 1}, {1, 1, 1}, 0, {x, &y});
  EXPECT_NE(err.find("cp.async of 16 bytes at a misaligned address"), std::string::npos) << err;
}

// Kernels are built with UBSan's alignment and bounds checks, fatal: a load
// through a misaligned typed pointer (a fault on a GPU) or an index past a
// fixed-size array stops the run with UBSan's report.
TEST(SimSelfDeathTest, MisalignedLoadAndOutOfBoundsIndexStopTheRun) {
  REQUIRE_SIM();
  const char* src = R"(
extern "C" __global__ void bad(const float* x, const int* which, float* y) {
  float a[4] = {1.f, 2.f, 3.f, 4.f};
  if (*which == 0) y[0] = *(const float*)((const char*)x + 2);
  else y[0] = a[*which];
}
)";
  SimKernel k;
  ASSERT_EQ(k.Compile(src, "bad", WorkDir()), "");
  alignas(16) float x[4] = {1, 2, 3, 4};
  float y = 0;
  int misaligned = 0, past = 4, fine = 3;
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  EXPECT_DEATH(k.Launch({1, 1, 1}, {1, 1, 1}, 0, {x, &misaligned, &y}), "misaligned address");
  EXPECT_DEATH(k.Launch({1, 1, 1}, {1, 1, 1}, 0, {x, &past, &y}), "out of bounds");
  EXPECT_EQ(k.Launch({1, 1, 1}, {1, 1, 1}, 0, {x, &fine, &y}), "");
  EXPECT_EQ(y, 4.f);
}

// Threads run in alternating orders between barriers: reading the lower
// neighbour's write with no barrier between — which ascending order alone
// would hide — sees the old value; with the barrier, no thread does.
TEST(SimSelf, ARaceWithoutABarrierIsVisible) {
  REQUIRE_SIM();
  const char* src = R"(
extern "C" __global__ void race(float* out, const int* sync) {
  __shared__ float s[64];
  s[threadIdx.x] = 0.f;
  __syncthreads();
  s[threadIdx.x] = 1.f + threadIdx.x;
  if (*sync) __syncthreads();
  out[threadIdx.x] = threadIdx.x > 0 ? s[threadIdx.x - 1] : 0.f;  // thread t - 1's value
}
)";
  SimKernel k;
  ASSERT_EQ(k.Compile(std::string(src), "race", WorkDir()), "");
  auto wrong = [&](int sync) {
    std::vector<float> out(64, -1.f);
    int s = sync;
    EXPECT_EQ(k.Launch({1, 1, 1}, {64, 1, 1}, 0, {out.data(), &s}), "");
    int n = 0;
    for (int t = 0; t < 64; ++t) n += out[t] != static_cast<float>(t);
    return n;
  };
  EXPECT_GT(wrong(0), 0);
  EXPECT_EQ(wrong(1), 0);
}

TEST(SimSelf, WrongArgumentCountIsAnError) {
  REQUIRE_SIM();
  SimKernel k;
  ASSERT_EQ(k.Compile("extern \"C\" __global__ void one(float* x) { x[0] = 1.f; }", "one",
                      WorkDir()),
            "");
  float a = 0, b = 0;
  EXPECT_NE(k.Launch({1, 1, 1}, {1, 1, 1}, 0, {&a, &b}).find("takes 1 arguments, got 2"),
            std::string::npos);
}

// ---------------------------------------------------------------------------
// Every kernel of a plan.

using lorart::Plan;
using lorart::schema::DType;

struct Buffer {
  std::vector<uint8_t> bytes;
  lorart::cpu::TensorView view;
};

Buffer MakeBuffer(const Plan& plan, uint32_t id) {
  const lorart::schema::Tensor& t = plan.tensor(id);
  Buffer b;
  b.bytes.assign(plan.tensor_bytes(id) + 64, 0);
  b.view.dtype = t.dtype();
  if (t.shape()) b.view.shape.assign(t.shape()->begin(), t.shape()->end());
  if (t.quant()) {
    b.view.nf4.block_size = t.quant()->block_size();
    b.view.nf4.double_quant_block = t.quant()->double_quant_block();
  }
  return b;
}

void Rebind(Buffer& b) { b.view.data = b.bytes.data(); }

// Fresh random contents, valid for every kernel input: floats in [-1, 1),
// integers (ids, positions, segment ids, labels) in [0, 8), booleans 0/1,
// NF4 codes any byte (scales are floats).
void Fill(Buffer& b, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> f(-1.f, 1.f);
  std::uniform_int_distribution<int> i8(0, 7), byte(0, 255), bit(0, 1);
  const lorart::cpu::TensorView& v = b.view;
  int64_t n = v.numel();
  switch (v.dtype) {
    case DType::F32: case DType::BF16: case DType::F16:
      for (int64_t i = 0; i < n; ++i) lorart::cpu::StoreFloat(v, i, f(rng));
      break;
    case DType::I32:
      for (int64_t i = 0; i < n; ++i) v.as<int32_t>()[i] = i8(rng);
      break;
    case DType::I64:
      for (int64_t i = 0; i < n; ++i) v.as<int64_t>()[i] = i8(rng);
      break;
    case DType::BOOL:
      for (int64_t i = 0; i < n; ++i) v.as<uint8_t>()[i] = static_cast<uint8_t>(bit(rng));
      break;
    case DType::NF4: {
      // Any codes; finite positive scales (absmax, or with double
      // quantization the second-level scales, the offset and 8-bit codes).
      auto layout = lorart::Nf4Layout::Make(n, v.nf4.block_size, v.nf4.double_quant_block);
      ASSERT_TRUE(layout.ok()) << layout.status().ToString();
      const lorart::Nf4Layout& l = *layout;
      uint8_t* p = b.bytes.data();
      std::uniform_real_distribution<float> pos(0.05f, 0.5f);
      for (int64_t i = 0; i < l.code_bytes; ++i) p[i] = static_cast<uint8_t>(byte(rng));
      auto put = [&](int64_t off, float f) { std::memcpy(p + off, &f, 4); };
      if (!l.double_quant()) {
        for (int64_t i = 0; i < l.num_blocks; ++i) put(l.absmax_offset() + 4 * i, pos(rng));
      } else {
        for (int64_t i = 0; i < l.num_groups; ++i) put(l.absmax2_offset() + 4 * i, pos(rng));
        put(l.mean_offset(), 1.f + pos(rng));
        for (int64_t i = 0; i < l.num_blocks; ++i)
          p[l.qabsmax_offset() + i] = static_cast<uint8_t>(byte(rng));
      }
      break;
    }
    default:
      FAIL() << "no generator for dtype " << static_cast<int>(v.dtype);
  }
}

// Kernel-specific input ranges: AdamW's second moment is non-negative and
// its step, learning rate and gradient scale are scalars of sensible size;
// the clip scale divides by a positive token count and a non-negative norm;
// a masked-in token's sequence id lies in [0, sequences) (some tokens are
// masked in with id -1 elsewhere: the CPU rejects that); EWC's Fisher is
// non-negative.
void FixInputs(const std::string& kind, const lorart::cpu::KernelParams& params,
               std::vector<Buffer*>& in) {
  auto set = [&](size_t i, float v) { lorart::cpu::StoreFloat(in[i]->view, 0, v); };
  if ((kind == "sequence_logprobs_fwd" || kind == "sequence_logprobs_bwd") && in.size() >= 4) {
    int64_t sequences = 1;
    params.Get("sequences", &sequences);
    const lorart::cpu::TensorView& mask = in[2]->view;
    lorart::cpu::TensorView& ids = in[3]->view;
    for (int64_t i = 0; i < ids.numel(); ++i) {
      int64_t v = mask.as<uint8_t>()[i] ? (i * 7 + 3) % sequences : -1;
      if (ids.dtype == DType::I64) ids.as<int64_t>()[i] = v;
      else ids.as<int32_t>()[i] = static_cast<int32_t>(v);
    }
  }
  if ((kind == "ewc_penalty_fwd" || kind == "ewc_penalty_bwd") && in.size() >= 3)
    for (int64_t i = 0; i < in[2]->view.numel(); ++i)
      lorart::cpu::StoreFloat(in[2]->view, i, std::fabs(lorart::cpu::LoadFloat(in[2]->view, i)));
  if (kind == "adamw" && in.size() == 7) {
    for (int64_t i = 0; i < in[3]->view.numel(); ++i)
      lorart::cpu::StoreFloat(in[3]->view, i, std::fabs(lorart::cpu::LoadFloat(in[3]->view, i)));
    set(4, 1e-2f);
    set(5, 3.f);
    set(6, 0.5f);
  } else if (kind == "clip_scale" && in.size() == 2) {
    set(0, std::fabs(lorart::cpu::LoadFloat(in[0]->view, 0)) * 20.f);
    set(1, 12.f);
  }
}

// Normalized error bound of an output: bf16/f16 results are rounded once
// more than the CPU's float ones may be.
double Tolerance(DType d) {
  return d == DType::F32 ? 2e-5 : 1e-2;
}

// One kernel's launches on the CUDA device through lorart/cuda, with the
// kernel ABI of docs/cuda.md: the buffers are uploaded, every entry runs in
// order, and the outputs come back.
class DeviceLauncher {
 public:
  std::string Open() {
    lorart::StatusOr<std::unique_ptr<lorart::cuda::Device>> d = lorart::cuda::Device::Open(0);
    if (!d.ok()) return d.status().ToString();
    device_ = std::move(*d);
    lorart::StatusOr<const lorart::cuda::Nvrtc*> n = lorart::cuda::Nvrtc::Get();
    if (!n.ok()) return n.status().ToString();
    nvrtc_ = *n;
    return "";
  }
  const lorart::cuda::Device& device() const { return *device_; }

  // `buffers` (input ids then output ids, in launch order) are updated with
  // the device's results.
  void Run(const lorart::schema::Kernel& kernel, const std::vector<uint32_t>& ids,
           std::map<uint32_t, Buffer>& buffers, uint64_t key) {
    using lorart::cuda::DevicePtr;
    lorart::cuda::Device& dev = *device_;
    lorart::cuda::Module module;
    ASSERT_NO_FATAL_FAILURE(ModuleFor(kernel, &module));
    std::map<uint32_t, DevicePtr> ptr;
    auto alloc = [&](const void* data, size_t bytes, DevicePtr* p) {
      ASSERT_TRUE(dev.Alloc(bytes, p).ok());
      ASSERT_TRUE(dev.Upload(*p, data, bytes).ok());
    };
    for (auto& [id, b] : buffers) ASSERT_NO_FATAL_FAILURE(alloc(b.bytes.data(), b.bytes.size(), &ptr[id]));
    std::vector<DevicePtr> args;
    for (uint32_t id : ids) args.push_back(ptr[id]);
    // The workspace (Kernel.cuda_workspace_bytes), uninitialised as in the arena.
    DevicePtr workspace = 0, key_ptr = 0;
    if (kernel.cuda_workspace_bytes() > 0) {
      std::vector<uint8_t> junk(kernel.cuda_workspace_bytes(), 0xcd);
      ASSERT_NO_FATAL_FAILURE(alloc(junk.data(), junk.size(), &workspace));
      args.push_back(workspace);
    }
    lorart::cpu::KernelParams params;
    ASSERT_TRUE(lorart::cpu::KernelParamsFromPlan(kernel, &params).ok());
    // Kernels that draw dropout masks take a pointer to their key last.
    lorart::kernels::AnyParams typed;
    ASSERT_TRUE(params.TypedAny(&typed).ok());
    if (lorart::kernels::DropoutOf(typed)) {
      ASSERT_NO_FATAL_FAILURE(alloc(&key, sizeof key, &key_ptr));
      args.push_back(key_ptr);
    }
    std::vector<void*> values;
    for (DevicePtr& a : args) values.push_back(&a);
    std::vector<std::string> entries = lorart::cuda::KernelEntries(kernel);
    std::vector<lorart::cuda::Dim3> grids, blocks;
    std::vector<unsigned> shared;
    auto dim = [](const lorart::schema::Dim3* d) {
      return lorart::cuda::Dim3{d->x(), d->y(), d->z()};
    };
    grids.push_back(dim(kernel.grid()));
    blocks.push_back(dim(kernel.block()));
    shared.push_back(kernel.shared_bytes());
    if (kernel.cuda_next())
      for (const lorart::schema::CudaStep* st : *kernel.cuda_next()) {
        grids.push_back(dim(st->grid()));
        blocks.push_back(dim(st->block()));
        shared.push_back(st->shared_bytes());
      }
    for (size_t i = 0; i < entries.size(); ++i) {
      lorart::cuda::Function fn;
      lorart::Status st = dev.GetFunction(module, entries[i], &fn);
      ASSERT_TRUE(st.ok()) << st.ToString();
      if (shared[i] > 48 * 1024) {
        ASSERT_TRUE(dev.SetMaxDynamicShared(fn, shared[i]).ok());
      }
      st = dev.Launch(fn, grids[i], blocks[i], shared[i], values.data());
      ASSERT_TRUE(st.ok()) << entries[i] << ": " << st.ToString();
      st = dev.Synchronize();
      ASSERT_TRUE(st.ok()) << entries[i] << ": " << st.ToString();
    }
    for (auto& [id, b] : buffers) ASSERT_TRUE(dev.Download(b.bytes.data(), ptr[id], b.bytes.size()).ok());
    for (auto& [id, p] : ptr) dev.Free(p);
    dev.Free(workspace);
    dev.Free(key_ptr);
  }

 private:
  void ModuleFor(const lorart::schema::Kernel& kernel, lorart::cuda::Module* out) {
    std::string src = kernel.cuda_source()->str();
    auto it = modules_.find(src);
    if (it != modules_.end()) {
      *out = it->second;
      return;
    }
    std::string cubin;
    bool hit = false;
    lorart::Status st = lorart::cuda::CompileCached(
        *nvrtc_, WorkDir() + "/kernel-cache", src, kernel.entry()->str(), device_->arch(),
        lorart::cuda::DefaultNvrtcOptions(), &cubin, &hit);
    ASSERT_TRUE(st.ok()) << st.ToString();
    st = device_->LoadModule(cubin, out);
    ASSERT_TRUE(st.ok()) << st.ToString();
    modules_[src] = *out;
  }

  std::unique_ptr<lorart::cuda::Device> device_;
  const lorart::cuda::Nvrtc* nvrtc_ = nullptr;
  std::map<std::string, lorart::cuda::Module> modules_;
};

TEST(SimPlan, EveryKernelWithCudaSourceMatchesTheCpuBackend) {
  const char* path = std::getenv("LORA_SIM_PLAN");
  if (!path) GTEST_SKIP() << "set LORA_SIM_PLAN to a train.bin compiled with --target cuda";
  DeviceLauncher device;
  if (std::string err = device.Open(); !err.empty()) GTEST_SKIP() << "no CUDA device: " << err;
  std::printf("device: %s (%s)\n", device.device().name().c_str(), device.device().arch().c_str());
  Plan plan;
  lorart::Status st = lorart::LoadPlan(path, &plan);
  ASSERT_TRUE(st.ok()) << st.ToString();
  std::mt19937_64 rng(std::random_device{}());
  std::set<uint32_t> seen;
  std::set<std::string> kinds_with_source, kinds_compared;
  // $LORA_SIM_KINDS=a,b: compare only kernels of these kinds (a plan whose
  // shapes are there for one family's multi-block paths).
  std::set<std::string> only;
  if (const char* kinds = std::getenv("LORA_SIM_KINDS"); kinds && *kinds) {
    std::string list = kinds;
    for (size_t b = 0; b <= list.size();) {
      size_t e = list.find(',', b);
      if (e == std::string::npos) e = list.size();
      if (e > b) only.insert(list.substr(b, e - b));
      b = e + 1;
    }
  }
  int compared = 0;
  for (uint32_t pi = 0; pi < plan.num_programs(); ++pi) {
    const lorart::schema::Program& prog = plan.program(pi);
    if (!prog.launches()) continue;
    for (const lorart::schema::Launch* launch : *prog.launches()) {
      const lorart::schema::Kernel& kernel = plan.kernel(launch->kernel());
      if (!kernel.cuda_source() || !seen.insert(launch->kernel()).second) continue;
      std::string kind = kernel.kind()->str();
      if (!only.empty() && !only.count(kind)) continue;
      std::string entry = kernel.entry()->str();
      kinds_with_source.insert(kind);
      SCOPED_TRACE("kernel " + std::to_string(launch->kernel()) + " (" + kind + ", " + entry + ")");

      // One buffer per tensor id: an output that is also an input is
      // updated in place on both backends.
      std::map<uint32_t, Buffer> init;
      std::vector<uint32_t> ids;
      for (uint32_t id : *launch->inputs()) ids.push_back(id);
      for (uint32_t id : *launch->outputs()) ids.push_back(id);
      for (uint32_t id : ids)
        if (!init.count(id)) {
          init[id] = MakeBuffer(plan, id);
          Rebind(init[id]);
          Fill(init[id], rng);
        }
      lorart::cpu::KernelParams params;
      ASSERT_TRUE(lorart::cpu::KernelParamsFromPlan(kernel, &params).ok());
      {
        std::vector<Buffer*> in;
        for (uint32_t id : *launch->inputs()) in.push_back(&init[id]);
        FixInputs(kind, params, in);
      }
      std::map<uint32_t, Buffer> cpu = init, gpu = init;
      for (auto& [id, b] : cpu) Rebind(b);
      for (auto& [id, b] : gpu) Rebind(b);

      lorart::cpu::KernelFn fn;
      ASSERT_TRUE(lorart::cpu::LookupKernel(kind, &fn).ok());
      std::vector<lorart::cpu::TensorView> iv, ov;
      for (uint32_t id : *launch->inputs()) iv.push_back(cpu[id].view);
      for (uint32_t id : *launch->outputs()) ov.push_back(cpu[id].view);
      lorart::cpu::KernelContext ctx;
      uint64_t seed = rng() | 1;
      ctx.step_seed = seed;
      st = fn(ctx, params, iv, ov);
      ASSERT_TRUE(st.ok()) << st.ToString();

      ASSERT_NO_FATAL_FAILURE(device.Run(
          kernel, ids, gpu,
          lorart::cpu::DropoutKey(seed, static_cast<uint64_t>(DropStream(params)))));
      for (auto& [id, b] : gpu) Rebind(b);

      for (uint32_t id : *launch->outputs()) {
        const lorart::cpu::TensorView& want = cpu[id].view;
        const lorart::cpu::TensorView& got = gpu[id].view;
        int64_t n = want.numel();
        if (want.dtype == DType::F32 || want.dtype == DType::BF16 || want.dtype == DType::F16) {
          double scale = 1e-12, e = 0;
          for (int64_t i = 0; i < n; ++i) {
            double w = lorart::cpu::LoadFloat(want, i), v = lorart::cpu::LoadFloat(got, i);
            scale = std::max(scale, std::fabs(w));
            e = std::max(e, std::isfinite(v) ? std::fabs(v - w) : 1e30);
          }
          EXPECT_LE(e / scale, Tolerance(want.dtype))
              << "output tensor " << id << " (" << plan.tensor(id).name()->str() << ")";
        } else {
          EXPECT_EQ(cpu[id].bytes, gpu[id].bytes)
              << "output tensor " << id << " (" << plan.tensor(id).name()->str() << ")";
        }
      }
      kinds_compared.insert(kind);
      ++compared;
    }
  }
  EXPECT_GT(compared, 0) << "no kernel with CUDA source in " << path;
  // $LORA_SIM_REQUIRE_ALL=1: every kernel of the plan must have CUDA source.
  if (const char* all = std::getenv("LORA_SIM_REQUIRE_ALL"); all && std::string(all) == "1") {
    for (uint32_t k = 0; k < plan.num_kernels(); ++k) {
      EXPECT_TRUE(plan.kernel(k).cuda_source() != nullptr)
          << "kernel " << k << " (" << plan.kernel(k).kind()->str() << ") has no CUDA source";
    }
  }
  EXPECT_EQ(kinds_compared, kinds_with_source);
  if (!only.empty()) {
    EXPECT_EQ(kinds_compared, only) << "$LORA_SIM_KINDS names a kind the plan lacks";
  }
  std::string list;
  for (const std::string& k : kinds_compared) list += " " + k;
  std::printf("compared %d kernels on %s:%s\n", compared, device.device().name().c_str(),
              list.c_str());
}

}  // namespace
