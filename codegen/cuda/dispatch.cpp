//===- dispatch.cpp - From a kernel's kind to its family's emitter --------===//
//
// One table: every family lists the kinds it emits; emitKernel looks the
// kind up and calls the family's emitter. Adding a kernel kind means one
// entry in kernel_kinds.def and one emitter in its family's table.
//
//===----------------------------------------------------------------------===//
#include "cuda/codegen.h"

#include <map>
#include <string>

namespace lorac::cuda {

kernels::Kind KernelDesc::kind() const {
  return std::visit(
      [](const auto &p) -> kernels::Kind {
        using P = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<P, std::monostate>)
          return kernels::Kind{};
        else
          return P::kKind;
      },
      params);
}

namespace {

const std::map<kernels::Kind, EmitFn> &table() {
  static const std::map<kernels::Kind, EmitFn> t = [] {
    std::map<kernels::Kind, EmitFn> m;
    for (const std::vector<Emitter> *family :
         {&gemmEmitters(), &linearBwdEmitters(), &lmHeadEmitters(), &attentionEmitters(),
          &lossEmitters(), &normEmitters(), &elementwiseEmitters(), &optimizerEmitters()})
      for (const Emitter &e : *family)
        m[e.kind] = e.emit;
    return m;
  }();
  return t;
}

} // namespace

EmitFn findEmitter(kernels::Kind kind) {
  auto it = table().find(kind);
  return it == table().end() ? nullptr : it->second;
}

std::vector<kernels::Kind> kindsWithoutEmitter() {
  std::vector<kernels::Kind> none;
#define LORA_KERNEL(kind, operands, flops, fields)                                               \
  if (!findEmitter(kernels::Kind::kind))                                                         \
    none.push_back(kernels::Kind::kind);
#include "lorart/plan/kernel_kinds.def"
#undef LORA_KERNEL
  return none;
}

Emitted emitKernel(const KernelDesc &kernel) {
  if (std::holds_alternative<std::monostate>(kernel.params))
    return notCovered("no kernel kind");
  EmitFn fn = findEmitter(kernel.kind());
  if (!fn)
    return notCovered(std::string("no CUDA template for kernel kind '") +
                      kernels::KindName(kernel.kind()) + "'");
  return fn(kernel);
}

std::string suffixOf(const std::string &cudaType) {
  return cudaType == "__nv_bfloat16" ? "bf16" : cudaType == "__half" ? "f16" : "f32";
}

bool gemmWeight(const Operand &w, const std::string &dense, bool *nf4, int64_t *blockSize,
                int64_t *doubleQuantBlock) {
  if (w.nf4) {
    *nf4 = true;
    *blockSize = w.blockSize;
    *doubleQuantBlock = w.doubleQuantBlock;
    return true;
  }
  return w.type == dense;
}

Source elementwise(const std::string &kind, const std::vector<std::string> &inTypes,
                   const std::vector<std::string> &outTypes, int64_t n, const std::string &body,
                   const std::string &tag) {
  constexpr int64_t kBlock = 256;
  Source s;
  s.block = kBlock;
  s.entry = "lora_" + kind + "_" + tag + "_n" + std::to_string(n);
  std::string params;
  for (size_t i = 0; i < inTypes.size(); ++i)
    params += (params.empty() ? "" : ", ") + std::string("const ") + inTypes[i] +
              "* __restrict__ in" + std::to_string(i);
  for (size_t i = 0; i < outTypes.size(); ++i)
    params += (params.empty() ? "" : ", ") + outTypes[i] + "* __restrict__ out" +
              std::to_string(i);
  s.code = std::string(basePrelude()) + "extern \"C\" __global__ void __launch_bounds__(" +
           std::to_string(kBlock) + ") " + s.entry + "(" + params +
           ") {\n"
           "  const long i = (long)blockIdx.x * blockDim.x + threadIdx.x;\n"
           "  if (i >= " +
           std::to_string(n) + "L) return;\n" + body + "\n}\n";
  s.grid = (n + kBlock - 1) / kBlock;
  return s;
}

} // namespace lorac::cuda
