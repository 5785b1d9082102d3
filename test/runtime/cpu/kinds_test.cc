// The CPU backend and kernel_kinds.def agree: every declared kind has a CPU
// kernel and every CPU kernel is declared (the plan loader refuses kinds the
// table lacks, so an undeclared CPU kernel could never run); the FLOP model
// of the matrix kinds; the Markdown table docs/kernels.md copies.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>

#include "lorart/cpu/kernel.h"
#include "lorart/plan/kernel_kinds.h"

namespace lorart {
namespace {

struct MapParams : kernels::IntParams {
  std::map<std::string, double> v;
  double Int(const char* name) const override {
    auto it = v.find(name);
    return it == v.end() ? 0.0 : it->second;
  }
};

TEST(KernelKinds, EveryDeclaredKindHasACpuKernelAndBack) {
  std::set<std::string> declared;
  for (const kernels::KindSpec& k : kernels::AllKinds()) {
    EXPECT_TRUE(declared.insert(k.kind).second) << "declared twice: " << k.kind;
    cpu::KernelFn fn;
    EXPECT_TRUE(cpu::LookupKernel(k.kind, &fn).ok()) << "no CPU kernel for " << k.kind;
    std::set<std::string> names;
    for (const kernels::ParamSpec& p : k.params)
      EXPECT_TRUE(names.insert(p.name).second) << k.kind << " declares " << p.name << " twice";
  }
  for (const std::string& kind : cpu::RegisteredKernels())
    EXPECT_TRUE(declared.count(kind)) << "CPU kernel " << kind << " is not in kernel_kinds.def";
}

TEST(KernelKinds, FlopModel) {
  MapParams p;
  p.v = {{"m", 32}, {"n", 64}, {"k", 16}, {"rank", 4}};
  EXPECT_EQ(kernels::KernelFlops("linear_fwd", p), 2.0 * 32 * 64 * 16);
  EXPECT_EQ(kernels::KernelFlops("fused_linear_fwd", p), 2.0 * 32 * 64 * 16 + 2.0 * 32 * 4 * 80);
  // The adapter's backward: 2·m·r·(3k + 2n), plus dx through W when fused.
  EXPECT_EQ(kernels::KernelFlops("lora_bwd", p), 2.0 * 32 * 4 * (3 * 16 + 2 * 64));
  EXPECT_EQ(kernels::KernelFlops("fused_linear_bwd", p),
            2.0 * 32 * 64 * 16 + 2.0 * 32 * 4 * (3 * 16 + 2 * 64));
  // Causal attention: the T(T+1)/2 allowed pairs; without the mask, T².
  MapParams a;
  a.v = {{"batch", 2}, {"num_heads", 3}, {"seq", 10}, {"head_dim", 8}, {"causal", 1}};
  EXPECT_EQ(kernels::KernelFlops("attention_fwd", a), 4.0 * 2 * 3 * 55 * 8);
  EXPECT_EQ(kernels::KernelFlops("attention_bwd", a), 2.5 * 4.0 * 2 * 3 * 55 * 8);
  a.v["causal"] = 0;
  EXPECT_EQ(kernels::KernelFlops("attention_fwd", a), 4.0 * 2 * 3 * 100 * 8);
  MapParams lm;
  lm.v = {{"tokens", 5}, {"hidden", 7}, {"vocab", 11}};
  EXPECT_EQ(kernels::KernelFlops("lm_head_ce_fwd", lm), 2.0 * 5 * 7 * 11);
  EXPECT_EQ(kernels::KernelFlops("lm_head_ce_bwd_x", lm), 4.0 * 5 * 7 * 11);
  EXPECT_EQ(kernels::KernelFlops("add", p), 0.0);
  EXPECT_EQ(kernels::KernelFlops("no_such_kind", p), 0.0);
}

TEST(KernelKinds, CheckParams) {
  const kernels::KindSpec* add = kernels::FindKind("add");
  ASSERT_NE(add, nullptr);
  auto quote = [](const std::string& s) { return "'" + s + "'"; };
  auto with = [&](std::map<std::string, kernels::ParamType> have) {
    std::vector<std::string> names;
    for (auto& [n, t] : have) names.push_back(n);
    return kernels::CheckParams(
        *add, names,
        [&](const char* n, kernels::ParamType* t) {
          auto it = have.find(n);
          if (it == have.end()) return false;
          *t = it->second;
          return true;
        },
        quote);
  };
  EXPECT_EQ(with({{"elements", kernels::ParamType::kInt}}), "");
  EXPECT_EQ(with({}), "required parameter 'elements' (int) of kernel kind 'add' is missing");
  EXPECT_EQ(with({{"elements", kernels::ParamType::kFloat}}),
            "parameter 'elements' of kernel kind 'add' must be int, got float");
  EXPECT_EQ(with({{"elements", kernels::ParamType::kInt}, {"tile", kernels::ParamType::kInt}}),
            "parameter 'tile' is not a parameter of kernel kind 'add'");
  // Optional parameters may be absent (rope's llama3 factors).
  const kernels::KindSpec* rope = kernels::FindKind("rope_fwd");
  ASSERT_NE(rope, nullptr);
  ASSERT_NE(rope->Find("factor"), nullptr);
  EXPECT_EQ(rope->Find("factor")->need, kernels::Need::kOptional);
}

TEST(KernelKinds, MarkdownListsEveryKind) {
  std::string md = kernels::KindsMarkdown();
  for (const kernels::KindSpec& k : kernels::AllKinds())
    EXPECT_NE(md.find(std::string("| `") + k.kind + "` |"), std::string::npos) << k.kind;
  EXPECT_NE(md.find("`original_max_position_embeddings?` int"), std::string::npos);
}

}  // namespace
}  // namespace lorart
