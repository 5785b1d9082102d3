// NVRTC loaded with dlopen: compiling to CUBIN, compile errors that name the
// kernel and carry the log, the on-disk cache, the cache location. Skipped
// where NVRTC is not installed (no GPU is needed).
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "lorart/cuda/nvrtc.h"
#include "test_util.h"

namespace lorart::cuda {
namespace {

const char* kKernel = R"(extern "C" __global__ void scale(float* x, float s, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] *= s;
}
)";

TEST(NvrtcTest, CompilesToCubinForAmpereAndHopper) {
  StatusOr<const Nvrtc*> nvrtc = Nvrtc::Get();
  if (!nvrtc.ok()) GTEST_SKIP() << nvrtc.status().message();
  for (const char* arch : {"sm_80", "sm_90a"}) {
    std::string cubin;
    Status st = (*nvrtc)->CompileToCubin(kKernel, "scale", arch, DefaultNvrtcOptions(), &cubin);
    ASSERT_TRUE(st.ok()) << st.ToString();
    ASSERT_GT(cubin.size(), 16u);
    EXPECT_EQ(cubin.compare(1, 3, "ELF"), 0) << "a CUBIN is an ELF file";
  }
}

TEST(NvrtcTest, CompileErrorNamesTheKernelAndCarriesTheLog) {
  StatusOr<const Nvrtc*> nvrtc = Nvrtc::Get();
  if (!nvrtc.ok()) GTEST_SKIP() << nvrtc.status().message();
  std::string cubin;
  Status st = (*nvrtc)->CompileToCubin("extern \"C\" __global__ void broken() { undefined_thing(); }",
                                       "lora_broken_kernel", "sm_80", {}, &cubin);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("lora_broken_kernel"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("undefined_thing"), std::string::npos) << st.message();
}

TEST(NvrtcTest, SecondCompileComesFromTheCache) {
  StatusOr<const Nvrtc*> nvrtc = Nvrtc::Get();
  if (!nvrtc.ok()) GTEST_SKIP() << nvrtc.status().message();
  std::string dir = ::testing::TempDir() + "lorart_kernel_cache_test";
  std::system(("rm -rf '" + dir + "'").c_str());
  std::string a, b, c;
  bool hit = true;
  ASSERT_TRUE(CompileCached(**nvrtc, dir, kKernel, "scale", "sm_80", {}, &a, &hit).ok());
  EXPECT_FALSE(hit);
  ASSERT_TRUE(CompileCached(**nvrtc, dir, kKernel, "scale", "sm_80", {}, &b, &hit).ok());
  EXPECT_TRUE(hit);
  EXPECT_EQ(a, b);
  // Another architecture is another key.
  ASSERT_TRUE(CompileCached(**nvrtc, dir, kKernel, "scale", "sm_90a", {}, &c, &hit).ok());
  EXPECT_FALSE(hit);
}

TEST(NvrtcTest, CacheDirectory) {
  EXPECT_EQ(KernelCacheDir("/given"), "/given");
  const char* old = std::getenv("XDG_CACHE_HOME");
  std::string saved = old ? old : "";
  ::setenv("XDG_CACHE_HOME", "/xdg", 1);
  EXPECT_EQ(KernelCacheDir(""), "/xdg/lorac");
  if (old) ::setenv("XDG_CACHE_HOME", saved.c_str(), 1); else ::unsetenv("XDG_CACHE_HOME");
}

}  // namespace
}  // namespace lorart::cuda
