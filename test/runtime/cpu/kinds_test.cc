// The CPU backend and kernel_kinds.def agree: every declared kind has a CPU
// kernel and every CPU kernel is declared (the plan loader refuses kinds the
// table lacks, so an undeclared CPU kernel could never run); the FLOP model
// of the matrix kinds; the Markdown table docs/kernels.md copies; the typed
// parameter structs (kernel_params.h) against the same declaration.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <optional>
#include <string>
#include <type_traits>
#include <variant>

#include "lorart/cpu/kernel.h"
#include "lorart/plan/kernel_kinds.h"
#include "lorart/plan/kernel_params.h"

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
  // Without dx (no_dx): neither dy·W nor the adapter's dx term g·A.
  p.v["no_dx"] = 1;
  EXPECT_EQ(kernels::KernelFlops("lora_bwd", p), 2.0 * 32 * 4 * (2 * 16 + 2 * 64));
  EXPECT_EQ(kernels::KernelFlops("fused_linear_bwd", p), 2.0 * 32 * 4 * (2 * 16 + 2 * 64));
  p.v.erase("no_dx");
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


// A sink for WriteParams that records what it is given, by name.
struct RecordingSink {
  std::map<std::string, std::string> seen;
  void Set(const char* k, int64_t v) { seen[k] = "i" + std::to_string(v); }
  void Set(const char* k, double v) { seen[k] = "f" + std::to_string(v); }
  void Set(const char* k, const std::string& v) { seen[k] = "s" + v; }
};

TEST(KernelParams, EveryKindsStructHasTheDeclaredFieldsInOrder) {
  // ReadParams over an empty source names each kind's first required
  // parameter; with every declared parameter present it succeeds, and
  // WriteParams gives back exactly the declared names.
  for (const kernels::KindSpec& k : kernels::AllKinds()) {
    std::optional<kernels::Kind> kind = kernels::KindOf(k.kind);
    ASSERT_TRUE(kind.has_value()) << k.kind;
    EXPECT_STREQ(kernels::KindName(*kind), k.kind);
    cpu::KernelParams empty, full;
    empty.set_kind(k.kind);
    full.set_kind(k.kind);
    std::string first_required;
    for (const kernels::ParamSpec& p : k.params) {
      if (p.need == kernels::Need::kRequired && first_required.empty()) first_required = p.name;
      switch (p.type) {
        case kernels::ParamType::kInt: full.Set(p.name, int64_t{3}); break;
        case kernels::ParamType::kFloat: full.Set(p.name, 0.25); break;
        case kernels::ParamType::kString: full.Set(p.name, std::string("dense")); break;
      }
    }
    kernels::AnyParams any;
    std::string missing;
    EXPECT_EQ(kernels::ReadAnyParams(*kind, empty, &any, &missing), first_required.empty())
        << k.kind;
    EXPECT_EQ(missing, first_required) << k.kind;
    ASSERT_TRUE(kernels::ReadAnyParams(*kind, full, &any, &missing)) << k.kind << ": " << missing;
    RecordingSink sink;
    std::visit(
        [&](const auto& p) {
          if constexpr (!std::is_same_v<std::decay_t<decltype(p)>, std::monostate>)
            kernels::WriteParams(sink, p);
        },
        any);
    EXPECT_EQ(sink.seen.size(), k.params.size()) << k.kind;
    for (const kernels::ParamSpec& p : k.params) {
      const char* want = p.type == kernels::ParamType::kInt     ? "i3"
                         : p.type == kernels::ParamType::kFloat ? "f0.250000"
                                                                : "sdense";
      EXPECT_EQ(sink.seen[p.name], want) << k.kind << "." << p.name;
    }
  }
}

TEST(KernelParams, TypedReadsFieldsAndNamesAMissingOne) {
  cpu::KernelParams p;
  p.set_kind("fused_linear_fwd");
  p.Set("m", int64_t{4});
  p.Set("n", int64_t{5});
  p.Set("k", int64_t{6});
  p.Set("weight_format", std::string("nf4"));
  p.Set("block_size", int64_t{64});
  p.Set("bias", int64_t{0});
  kernels::params::fused_linear_fwd f;
  Status st = p.Typed(&f);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.ToString().find("kernel 'fused_linear_fwd': required parameter 'rank' is missing"),
            std::string::npos)
      << st.ToString();
  p.Set("rank", int64_t{8});
  p.Set("dropout", 0.1);
  ASSERT_TRUE(p.Typed(&f).ok());
  EXPECT_EQ(f.m, 4);
  EXPECT_EQ(f.k, 6);
  EXPECT_EQ(f.weight_format, "nf4");
  EXPECT_EQ(f.block_size, std::optional<int64_t>(64));
  EXPECT_FALSE(f.double_quant_block.has_value());
  EXPECT_FALSE(f.scaling.has_value());
  // The CUDA executor's question: does this launch draw dropout masks?
  kernels::AnyParams any;
  ASSERT_TRUE(p.TypedAny(&any).ok());
  std::optional<kernels::DropoutDraw> drop = kernels::DropoutOf(any);
  ASSERT_TRUE(drop.has_value());
  EXPECT_DOUBLE_EQ(drop->probability, 0.1);
  EXPECT_EQ(drop->stream, 0);
  p.Set("dropout", 0.0);
  ASSERT_TRUE(p.TypedAny(&any).ok());
  EXPECT_FALSE(kernels::DropoutOf(any).has_value());
  // A string where an integer is declared reads as missing (the loader
  // refuses such a plan earlier, naming the type).
  p.Set("rank", std::string("8"));
  EXPECT_FALSE(p.Typed(&f).ok());
  cpu::KernelParams unknown;
  unknown.set_kind("no_such_kind");
  EXPECT_FALSE(unknown.TypedAny(&any).ok());
}

}  // namespace
}  // namespace lorart
