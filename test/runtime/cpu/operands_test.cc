// kernel_kinds.def's operand declarations (IN, IN_IF, IN_N, OUT, OUT_IF) against the
// CPU kernels, kind by kind. Operands built exactly as declared run; one
// operand a size off, of a wrong dtype, or missing is refused by the CPU
// kernel and by kernels::CheckOperands alike. The plan loader checks every
// launch with CheckOperands and the CUDA executor passes bare pointers sized
// by the parameters, so this is what makes the declaration the CPU
// kernels' contract and not a second opinion beside it.
#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "harness.h"
#include "lorart/plan/kernel_kinds.h"
#include "lorart/quant/nf4.h"

namespace lorart::cpu::testing {
namespace {

struct Params : kernels::IntParams {
  const KernelParams* p = nullptr;
  double Int(const char* name) const override {
    int64_t v = 0;
    return p->Get(name, &v) ? static_cast<double>(v) : 0.0;
  }
};

// Small, valid values for every parameter of `spec`: flags on (bias,
// causal mask, segment ids), dense weights, no dropout; dequantize gets an
// NF4 weight of two blocks.
KernelParams ParamsFor(const kernels::KindSpec& spec) {
  const std::string kind = spec.kind;
  KernelParams p;
  p.set_kind(kind);
  for (const kernels::ParamSpec& ps : spec.params) {
    const std::string n = ps.name;
    switch (ps.type) {
      case kernels::ParamType::kInt: {
        int64_t v = 3;
        if (n == "bias" || n == "causal" || n == "segments" || n == "no_dx") v = 1;
        if (n == "ipo" || n == "sliding_window") v = 0;
        if (n == "rank" || n == "tensors" || n == "sequences" || n == "pairs" ||
            n == "chunk_size" || n == "batch" || n == "num_heads" || n == "block_q" ||
            n == "block_k")
          v = 2;
        if (n == "num_kv_heads") v = 1;
        if (n == "head_dim") v = 4;
        if (n == "features") v = 8;
        if (n == "vocab" || n == "rows") v = 5;
        if (n == "tokens" || n == "hidden") v = 4;
        if (n == "rng_stream") v = 7;
        if (n == "original_max_position_embeddings") continue;  // llama3 only
        if (kind == "dequantize") {
          if (n == "elements") v = 128;
          if (n == "block_size") v = 64;
          if (n == "double_quant_block") v = 0;
        } else if (n == "block_size" || n == "double_quant_block") {
          continue;  // NF4 only
        }
        p.Set(n, v);
        break;
      }
      case kernels::ParamType::kFloat: {
        double v = 0.5;
        if (n == "dropout" || n == "weight_decay") v = 0.0;
        if (n == "beta1") v = 0.9;
        if (n == "beta2") v = 0.99;
        if (n == "eps") v = 1e-5;
        if (n == "theta") v = 10000.0;
        if (n == "factor" || n == "low_freq_factor" || n == "high_freq_factor") continue;
        p.Set(n, v);
        break;
      }
      case kernels::ParamType::kString:
        if (n == "weight_format") p.Set(n, std::string(kind == "dequantize" ? "nf4" : "dense"));
        if (n == "scaling") p.Set(n, std::string("none"));
        break;
    }
  }
  return p;
}

// One operand slot of a launch, as the declaration expands it.
struct Slot {
  const kernels::OperandSpec* spec;
  bool output;
  int64_t elements;  // -1: any size
};

std::vector<Slot> Expand(const kernels::KindSpec& spec, const Params& params) {
  std::vector<Slot> slots;
  for (bool output : {false, true}) {
    for (const kernels::OperandSpec& o : spec.operands) {
      if (o.output != output) continue;
      const auto count = static_cast<int64_t>(o.count(params));
      for (int64_t i = 0; i < count; ++i)
        slots.push_back({&o, output, o.elements ? static_cast<int64_t>(o.elements(params)) : 5});
    }
  }
  return slots;
}

DType DeclaredDType(const kernels::OperandSpec& o, bool nf4) {
  switch (o.type) {
    case kernels::OperandType::kI64: return DType::I64;
    case kernels::OperandType::kBool: return DType::BOOL;
    case kernels::OperandType::kIndex: return DType::I32;
    case kernels::OperandType::kWeight: return nf4 ? DType::NF4 : DType::F32;
    default: return DType::F32;
  }
}

// A dtype the declaration does not allow for `o` (none for kAny).
bool WrongDType(const kernels::OperandSpec& o, bool nf4, DType* out) {
  switch (o.type) {
    case kernels::OperandType::kFloat: *out = DType::I32; return true;
    case kernels::OperandType::kF32: *out = DType::BF16; return true;
    case kernels::OperandType::kI64: *out = DType::I32; return true;
    case kernels::OperandType::kBool: *out = DType::F32; return true;
    case kernels::OperandType::kIndex: *out = DType::F32; return true;
    case kernels::OperandType::kWeight: *out = nf4 ? DType::BF16 : DType::NF4; return true;
    case kernels::OperandType::kAny: return false;
  }
  return false;
}

// A tensor of `dtype` and `elements` with valid contents: floats in
// [-1, 1), scalars 1 (token counts, the norm's count), indices 0 (inside
// every vocabulary, sequence and batch), masks on, NF4 quantized from
// random floats.
std::unique_ptr<Owned> Make(DType dtype, int64_t elements, int64_t block_size,
                            std::mt19937_64& rng) {
  auto t = std::make_unique<Owned>(dtype, std::vector<int64_t>{elements});
  if (dtype == DType::NF4) {
    t->view.nf4.block_size = block_size;
    StatusOr<Nf4Layout> layout = Nf4Layout::Make(elements, block_size, 0);
    if (!layout.ok()) return t;  // a size the test made wrong on purpose
    std::vector<float> dense(static_cast<size_t>(elements));
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    for (float& v : dense) v = d(rng);
    t->bytes.assign(static_cast<size_t>(layout->total_bytes()) + 64, 0);
    t->view.data = t->bytes.data();
    EXPECT_TRUE(
        QuantizeNf4(dense.data(), elements, *layout, t->bytes.data(), layout->total_bytes()).ok());
    return t;
  }
  if (dtype == DType::BOOL) {
    for (int64_t i = 0; i < elements; ++i) t->view.as<uint8_t>()[i] = 1;
  } else if (dtype == DType::I64) {
    for (int64_t i = 0; i < elements; ++i) t->view.as<int64_t>()[i] = 1;
  } else if (dtype != DType::I32 && elements == 1) {
    t->set(0, 1.0f);
  } else if (dtype != DType::I32) {
    FillUniform(*t, rng);
  }
  return t;
}

kernels::ElemType ElemTypeOf(DType d) {
  switch (d) {
    case DType::F32: return kernels::ElemType::kF32;
    case DType::BF16: return kernels::ElemType::kBF16;
    case DType::F16: return kernels::ElemType::kF16;
    case DType::I32: return kernels::ElemType::kI32;
    case DType::I64: return kernels::ElemType::kI64;
    case DType::BOOL: return kernels::ElemType::kBool;
    case DType::NF4: return kernels::ElemType::kNF4;
    default: return kernels::ElemType::kOther;
  }
}

// What CheckOperands says of these operands ("" when they pass).
std::string Declared(const kernels::KindSpec& spec, const KernelParams& p,
                     const std::vector<Owned*>& in, const std::vector<Owned*>& out) {
  Params params;
  params.p = &p;
  std::string format;
  p.Get("weight_format", &format);
  return kernels::CheckOperands(
      spec, params, format, in.size(), out.size(),
      [&](bool output, size_t i) {
        const TensorView& v = (output ? out : in)[i]->view;
        kernels::OperandInfo info;
        info.type = ElemTypeOf(v.dtype);
        info.elements = static_cast<double>(v.numel());
        info.block_size = v.nf4.block_size;
        info.double_quant_block = v.nf4.double_quant_block;
        return info;
      },
      [](bool output, size_t i) { return std::string(output ? "out" : "in") + std::to_string(i); });
}

// The operands of `slots` as declared, except slot `wrong` (if any) made
// `wrong_elements` long or of `wrong_dtype`.
struct Operands {
  std::vector<std::unique_ptr<Owned>> owned;
  std::vector<Owned*> in, out;
};
Operands Build(const std::vector<Slot>& slots, bool nf4, int64_t block_size, std::mt19937_64& rng,
               int wrong = -1, int64_t wrong_elements = -1, DType wrong_dtype = DType::F32,
               bool change_dtype = false) {
  Operands ops;
  for (int i = 0; i < static_cast<int>(slots.size()); ++i) {
    const Slot& s = slots[static_cast<size_t>(i)];
    DType dt = DeclaredDType(*s.spec, nf4);
    int64_t n = s.elements;
    if (i == wrong) {
      if (change_dtype) dt = wrong_dtype;
      else n = wrong_elements;
    }
    ops.owned.push_back(Make(dt, n, block_size, rng));
    (s.output ? ops.out : ops.in).push_back(ops.owned.back().get());
  }
  return ops;
}

TEST(KernelOperands, DeclaredOperandsAreTheCpuKernelsContract) {
  std::mt19937_64 rng(20261205);
  for (const kernels::KindSpec& spec : kernels::AllKinds()) {
    SCOPED_TRACE(spec.kind);
    const KernelParams p = ParamsFor(spec);
    Params params;
    params.p = &p;
    std::string format;
    p.Get("weight_format", &format);
    const bool nf4 = format == "nf4";
    int64_t block_size = 0;
    p.Get("block_size", &block_size);
    const std::vector<Slot> slots = Expand(spec, params);

    // As declared: both accept. (The collectives' `bytes` is the size of
    // the accumulators the launch holds, which the kernel checks.)
    {
      Operands ops = Build(slots, nf4, block_size, rng);
      EXPECT_EQ(Declared(spec, p, ops.in, ops.out), "");
      KernelParams fitted = p;
      int64_t bytes = 0;
      if (p.Get("bytes", &bytes)) {
        bytes = 0;
        for (const Owned* o : ops.out) bytes += o->view.numel() * 4;
        fitted.Set("bytes", bytes);
      }
      Status s = RunKernel(spec.kind, fitted, ops.in, ops.out);
      EXPECT_TRUE(s.ok()) << s.ToString();
    }
    for (int i = 0; i < static_cast<int>(slots.size()); ++i) {
      const Slot& slot = slots[static_cast<size_t>(i)];
      SCOPED_TRACE(std::string(slot.output ? "output " : "input ") + slot.spec->name);
      // One element more: both refuse (IN_N operands may have any size).
      if (slot.spec->elements) {
        Operands ops = Build(slots, nf4, block_size, rng, i, slot.elements + 1);
        EXPECT_NE(Declared(spec, p, ops.in, ops.out), "");
        EXPECT_FALSE(RunKernel(spec.kind, p, ops.in, ops.out).ok());
      }
      // A dtype the declaration does not allow: both refuse.
      DType wrong;
      if (WrongDType(*slot.spec, nf4, &wrong)) {
        Operands ops = Build(slots, nf4, block_size, rng, i, -1, wrong, true);
        EXPECT_NE(Declared(spec, p, ops.in, ops.out), "") << schema::EnumNameDType(wrong);
        EXPECT_FALSE(RunKernel(spec.kind, p, ops.in, ops.out).ok()) << schema::EnumNameDType(wrong);
      }
    }
    // One operand fewer: both refuse.
    if (!slots.empty()) {
      Operands ops = Build(slots, nf4, block_size, rng);
      (ops.out.empty() ? ops.in : ops.out).pop_back();
      if (!ops.in.empty() || !ops.out.empty()) {
        EXPECT_NE(Declared(spec, p, ops.in, ops.out), "");
        EXPECT_FALSE(RunKernel(spec.kind, p, ops.in, ops.out).ok());
      }
    }
  }
}

// The conditional operands follow their parameters: fused_linear_fwd
// without bias and adapter takes two inputs, attention without segment ids
// three, global_norm as many as `tensors` says.
TEST(KernelOperands, ConditionalAndRepeatedOperands) {
  const kernels::KindSpec* fused = kernels::FindKind("fused_linear_fwd");
  ASSERT_NE(fused, nullptr);
  KernelParams p = ParamsFor(*fused);
  p.Set("bias", int64_t{0});
  p.Set("rank", int64_t{0});
  Params params;
  params.p = &p;
  std::mt19937_64 rng(7);
  Operands ops = Build(Expand(*fused, params), false, 0, rng);
  EXPECT_EQ(ops.in.size(), 2u);
  EXPECT_EQ(Declared(*fused, p, ops.in, ops.out), "");
  EXPECT_TRUE(RunKernel("fused_linear_fwd", p, ops.in, ops.out).ok());
  EXPECT_EQ(kernels::OperandsText(*fused),
            "x [m, k], W [n, k] Weight, bias [n] if bias, A [rank, k] if rank > 0, B [n, rank] if "
            "rank > 0 -> y [m, n]");

  // OUT_IF and IN_IF: the forward's lse output and the backward's saved
  // operands follow save_lse and saved_stats.
  for (const char* kind : {"attention_fwd", "attention_bwd"}) {
    const kernels::KindSpec* att = kernels::FindKind(kind);
    ASSERT_NE(att, nullptr);
    const bool fwd = std::string(kind) == "attention_fwd";
    for (int64_t saved : {0, 1}) {
      KernelParams a = ParamsFor(*att);
      a.Set(fwd ? "save_lse" : "saved_stats", saved);
      params.p = &a;
      Operands att_ops = Build(Expand(*att, params), false, 0, rng);
      EXPECT_EQ(att_ops.in.size(), (fwd ? 4u : 5u) + (fwd ? 0 : 2 * saved)) << kind;
      EXPECT_EQ(att_ops.out.size(), fwd ? 1u + saved : 3u) << kind;
      EXPECT_EQ(Declared(*att, a, att_ops.in, att_ops.out), "") << kind;
      EXPECT_TRUE(RunKernel(kind, a, att_ops.in, att_ops.out).ok()) << kind << " " << saved;
    }
  }
  EXPECT_NE(kernels::OperandsText(*kernels::FindKind("attention_fwd"))
                .find("lse [batch, num_heads, seq] F32 if save_lse"),
            std::string::npos);

  const kernels::KindSpec* norm = kernels::FindKind("global_norm");
  ASSERT_NE(norm, nullptr);
  KernelParams q = ParamsFor(*norm);
  q.Set("tensors", int64_t{4});
  params.p = &q;
  EXPECT_EQ(Expand(*norm, params).size(), 5u);
  EXPECT_EQ(kernels::OperandsText(*norm), "g × tensors -> norm [1] F32");
  q.Set("tensors", int64_t{-2});
  Operands none;
  EXPECT_EQ(Declared(*norm, q, none.in, none.out),
            "operand 'g': its count tensors is -2, not a count of operands");
}

}  // namespace
// A gradient bucket whose `bytes` disagrees with the accumulators it names
// is refused (a plan whose buckets differ between ranks would sum unrelated
// memory).
TEST(KernelOperands, GradientBucketMustHoldItsBytes) {
  const kernels::KindSpec* start = kernels::FindKind("grad_all_reduce_start");
  ASSERT_NE(start, nullptr);
  KernelParams p = ParamsFor(*start);
  Params params;
  params.p = &p;
  std::mt19937_64 rng(11);
  Operands ops = Build(Expand(*start, params), false, 0, rng);
  int64_t bytes = 0;
  for (const Owned* o : ops.out) bytes += o->view.numel() * 4;
  p.Set("bytes", bytes);
  EXPECT_TRUE(RunKernel("grad_all_reduce_start", p, ops.in, ops.out).ok());
  p.Set("bytes", bytes + 4);
  Status s = RunKernel("grad_all_reduce_start", p, ops.in, ops.out);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.ToString().find("'bytes' is"), std::string::npos) << s.ToString();
}

}  // namespace lorart::cpu::testing
