// The CUDA code generator's dispatcher (codegen/cuda/codegen.h), without
// MLIR: every kernel kind of kernel_kinds.def reaches a family's emitter
// (except the two the compiler fuses away), a kernel is described by its
// typed parameters and operand types, the tensor-core templates fall back
// to CUDA-core ones for what they do not cover, and values no template can
// take are reported as invalid. The emitted kernels' numerics are tested
// against the CPU backend by the *Sim suites and by SimPlan.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "cuda/codegen.h"
#include "lorart/plan/kernel_kinds.h"

namespace {

namespace cuda = lorac::cuda;
namespace kernels = lorart::kernels;

cuda::Operand Op(const std::string& type, int64_t elements = 0) {
  cuda::Operand o;
  o.type = type;
  o.elements = elements;
  return o;
}

TEST(DispatchTemplate, EveryKindHasAnEmitterButTheFusedAwayOnes) {
  std::vector<kernels::Kind> none = cuda::kindsWithoutEmitter();
  std::vector<std::string> names;
  for (kernels::Kind k : none) names.push_back(kernels::KindName(k));
  std::sort(names.begin(), names.end());
  // The collectives have no CUDA body yet: lorac refuses --data-parallel
  // --target cuda (docs/distributed.md).
  EXPECT_EQ(names,
            (std::vector<std::string>{"all_reduce_sum", "dequantize", "grad_all_reduce_start",
                                      "grad_all_reduce_wait", "lm_head_ce_fwd_bwd_x", "lora_fwd"}));
  // Every family's entry names a distinct kind.
  size_t total = 0;
  for (const auto* family :
       {&cuda::gemmEmitters(), &cuda::linearBwdEmitters(), &cuda::lmHeadEmitters(),
        &cuda::attentionEmitters(), &cuda::lossEmitters(), &cuda::normEmitters(),
        &cuda::elementwiseEmitters(), &cuda::optimizerEmitters()})
    total += family->size();
  EXPECT_EQ(total + none.size(), kernels::AllKinds().size());
}

TEST(DispatchTemplate, FormatIsTheFormatvSubsetTheTemplatesUse) {
  EXPECT_EQ(cuda::format("a {{ {0}, {1:e}f, {2}{0}", {int64_t{7}, 1e-5, "x"}),
            "a { 7, 1.000000e-05f, x7");
}

TEST(DispatchTemplate, ElementwiseKernelsAreSpecialisedByTypeAndSize) {
  cuda::KernelDesc d;
  kernels::params::add p;
  p.elements = 1000;
  d.params = p;
  d.inputs = {Op("__nv_bfloat16"), Op("__nv_bfloat16")};
  d.outputs = {Op("__nv_bfloat16")};
  cuda::Emitted e = cuda::emitKernel(d);
  ASSERT_TRUE(e.source) << e.why;
  EXPECT_EQ(e.source->entry, "lora_add_bf16_n1000");
  EXPECT_EQ(e.source->grid, 4);
  EXPECT_NE(e.source->code.find("const __nv_bfloat16* __restrict__ in1"), std::string::npos);
  EXPECT_NE(e.source->code.find("if (i >= 1000L) return;"), std::string::npos);
}

TEST(DispatchTemplate, TheGemmFallsBackToCudaCoresForF32) {
  cuda::KernelDesc d;
  kernels::params::fused_linear_fwd p;
  p.m = 64;
  p.n = 64;
  p.k = 64;
  p.weight_format = "dense";
  p.bias = 0;
  p.rank = 8;
  p.scaling = 2.0;
  p.dropout = 0.0;
  p.rng_stream = 1;
  d.params = p;
  for (const char* t : {"__nv_bfloat16", "float"}) {
    d.inputs = {Op(t), Op(t), Op("__nv_bfloat16"), Op("__nv_bfloat16")};
    d.outputs = {Op(t)};
    cuda::Emitted e = cuda::emitKernel(d);
    ASSERT_TRUE(e.source) << t << ": " << e.why;
    bool simt = e.source->entry.rfind("lora_simt_gemm_fwd_", 0) == 0;
    EXPECT_EQ(simt, std::string(t) == "float") << e.source->entry;
  }
  // A dense weight of another type than the activations: not covered.
  d.inputs = {Op("float"), Op("__nv_bfloat16"), Op("__nv_bfloat16"), Op("__nv_bfloat16")};
  cuda::Emitted e = cuda::emitKernel(d);
  EXPECT_FALSE(e.source);
  EXPECT_FALSE(e.invalid);
}

TEST(DispatchTemplate, ValuesNoTemplateTakesAreInvalid) {
  cuda::KernelDesc d;
  kernels::params::rope_fwd p;
  p.batch = 1;
  p.seq = 4;
  p.features = 8;
  p.head_dim = 8;
  p.theta = 10000;
  p.scaling = "yarn";
  p.factor = 2.0;
  d.params = p;
  d.inputs = {Op("float"), Op("int")};
  d.outputs = {Op("float")};
  cuda::Emitted e = cuda::emitKernel(d);
  EXPECT_FALSE(e.source);
  EXPECT_TRUE(e.invalid);
  EXPECT_NE(e.why.find("rope scaling 'yarn' is not supported"), std::string::npos) << e.why;
  // Valid scaling: the frequencies are in the source.
  p.scaling = "none";
  d.params = p;
  e = cuda::emitKernel(d);
  ASSERT_TRUE(e.source) << e.why;
  EXPECT_NE(e.source->code.find("__constant__ double lora_inv_freq[4] = {1, 0.1"),
            std::string::npos);
}

TEST(DispatchTemplate, KindsWithoutEmitterAreNotCoveredNotInvalid) {
  cuda::KernelDesc d;
  kernels::params::dequantize p;
  p.weight_format = "nf4";
  p.elements = 64;
  d.params = p;
  cuda::Emitted e = cuda::emitKernel(d);
  EXPECT_FALSE(e.source);
  EXPECT_FALSE(e.invalid);
  EXPECT_NE(e.why.find("'dequantize'"), std::string::npos) << e.why;
}

}  // namespace
