//===- codegen.h - CUDA C++ for a kernel of the plan ------------*- C++ -*-===//
//
// The CUDA code generator, free of MLIR: a kernel is described by its kind's
// typed parameters (lorart/plan/kernel_params.h, from kernel_kinds.def) and
// the element types of its operands and results, and `emitKernel` finds the
// kind's emitter in the families' tables and returns the CUDA C++ source
// with its launch geometry. `lora-emit-cuda` only builds the description
// from the IR and stores the result; test/cuda_sim calls the families'
// templates directly.
//
// Families (one file each, holding the tensor-core template and its
// CUDA-core variant where both exist):
//   gemm.cpp        linear_fwd, fused_linear_fwd, lm_head_fwd
//   linear_bwd.cpp  linear_bwd_x, lora_bwd, fused_linear_bwd, linear_bwd_w
//   lm_head.cpp     lm_head_ce_fwd, lm_head_ce_bwd_x, lm_head_ce_bwd_w
//   attention.cpp   attention_fwd, attention_bwd
//   losses.cpp      cross_entropy_*, sequence_logprobs_*, dpo_loss_*,
//                   replay_loss_*, ewc_penalty_*
//   norms.cpp       rms_norm_fwd, rms_norm_bwd
//   elementwise.cpp add, swiglu_*, cast, accumulate, copy, zero, fill,
//                   embedding_*, rope_*, select_rows, segment_boundary_mask,
//                   bias_bwd
//   optimizer.cpp   global_norm, clip_scale, adamw
// Kinds without an emitter (`lora_fwd`, `dequantize`: the compiler fuses
// them away for CUDA plans) are listed by `kindsWithoutEmitter`.
//
//===----------------------------------------------------------------------===//
#ifndef LORAC_CODEGEN_CUDA_CODEGEN_H
#define LORAC_CODEGEN_CUDA_CODEGEN_H

#include "cuda/common.h"

#include "lorart/plan/kernel_params.h"

#include <optional>
#include <string>
#include <vector>

namespace lorac::cuda {

namespace kernels = lorart::kernels;

/// One operand or result of a kernel as its CUDA code sees it.
struct Operand {
  /// The element type as CUDA spells it: "float", "__nv_bfloat16",
  /// "__half", "int", "long long", "unsigned char" (masks; NF4 bytes).
  std::string type;
  /// A packed NF4 weight, with its layout.
  bool nf4 = false;
  int64_t blockSize = 0, doubleQuantBlock = 0;
  int64_t elements = 0;
};

/// A kernel: its kind's parameters and its operands and results in order
/// (the kernel's arguments: inputs, then outputs, then a workspace and a
/// dropout key where the Source asks for them).
struct KernelDesc {
  kernels::AnyParams params;
  std::vector<Operand> inputs, outputs;

  kernels::Kind kind() const;
  template <class P> const P &get() const { return std::get<P>(params); }
};

/// What an emitter made of a kernel: its source, or none with the reason —
/// `invalid` when the parameters are values no template can take (an error
/// for the compiler), else the case is only not covered (a warning).
struct Emitted {
  std::optional<Source> source;
  std::string why;
  bool invalid = false;
};

using EmitFn = Emitted (*)(const KernelDesc &);
struct Emitter {
  kernels::Kind kind;
  EmitFn emit;
};

/// The families' tables.
const std::vector<Emitter> &gemmEmitters();
const std::vector<Emitter> &linearBwdEmitters();
const std::vector<Emitter> &lmHeadEmitters();
const std::vector<Emitter> &attentionEmitters();
const std::vector<Emitter> &lossEmitters();
const std::vector<Emitter> &normEmitters();
const std::vector<Emitter> &elementwiseEmitters();
const std::vector<Emitter> &optimizerEmitters();

/// The emitter of `kind`, or null.
EmitFn findEmitter(kernels::Kind kind);
/// The kinds no family emits.
std::vector<kernels::Kind> kindsWithoutEmitter();

/// CUDA C++ for `kernel`.
Emitted emitKernel(const KernelDesc &kernel);

/// "bf16", "f16" or "f32" for a float CUDA type (names in entry points).
std::string suffixOf(const std::string &cudaType);
/// The frozen weight of a GEMM template: NF4 with its layout, or dense in
/// `dense` (the activations' type). False for any other dense type.
bool gemmWeight(const Operand &w, const std::string &dense, bool *nf4, int64_t *blockSize,
                int64_t *doubleQuantBlock);
/// Shorthands for emitters.
inline Emitted emitted(std::optional<Source> s, std::string why = "") {
  Emitted e;
  e.source = std::move(s);
  e.why = std::move(why);
  return e;
}
inline Emitted notCovered(std::string why) { return emitted(std::nullopt, std::move(why)); }

/// An elementwise kernel over `n` elements (block 256): `body` computes the
/// outputs at index `i` from the inputs (named in0.., out0..); the entry is
/// lora_<kind>_<tag>_n<n>.
Source elementwise(const std::string &kind, const std::vector<std::string> &inTypes,
                   const std::vector<std::string> &outTypes, int64_t n, const std::string &body,
                   const std::string &tag);

} // namespace lorac::cuda

#endif // LORAC_CODEGEN_CUDA_CODEGEN_H
