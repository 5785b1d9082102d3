//===- EmitCuda.cpp - CUDA C++ source for the kernels of the graph --------===//
//
// For the cuda target, every kernel gets its CUDA C++ source, specialised by
// element type and problem size, with its launch geometry: `cuda_source`,
// `cuda_entry`, `cuda_grid`, `cuda_block`, `cuda_shared` (and
// `cuda_workspace`, `cuda_next`) join the op's `lora.kernel` dictionary and
// the serializer moves them into train.bin's Kernel.cuda_*. The runtime
// compiles them with NVRTC. Kernel arguments are the launch's input tensors
// then its output tensors, as device pointers, in op order.
//
// The pass is a dispatcher: it describes each kernel without MLIR — its
// kind's typed parameters read from `lora.kernel` (kernel_kinds.def) and the
// element types of its operands and results — and the code generator
// (codegen/cuda, one file per kernel family, tensor-core templates with
// CUDA-core variants) finds the kind's emitter in its table. A kernel whose
// case no template covers keeps no source (a warning; the runtime refuses
// it on CUDA); parameter values no template can take are an error.
//
//===----------------------------------------------------------------------===//
#include "cuda/codegen.h"

#include "lora/Dialect/Lora/IR/LoraOps.h"
#include "lora/Transforms/KernelContract.h"
#include "lora/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace mlir::lora {
#define GEN_PASS_DEF_EMITCUDA
#include "lora/Transforms/Passes.h.inc"
} // namespace mlir::lora

using namespace mlir;
using namespace mlir::lora;

namespace {

namespace cuda = lorac::cuda;
using cuda::Source;

/// A tensor's element type as CUDA spells it.
cuda::Operand operandOf(Type t) {
  cuda::Operand o;
  if (auto nf4 = dyn_cast<NF4Type>(t)) {
    o.type = "unsigned char";
    o.nf4 = true;
    o.blockSize = nf4.getBlockSize();
    o.doubleQuantBlock = nf4.getDoubleQuantBlock();
    o.elements = nf4.getNumElements();
    return o;
  }
  auto ranked = dyn_cast<RankedTensorType>(t);
  if (!ranked) {
    o.type = "float";
    return o;
  }
  o.elements = ranked.getNumElements();
  Type e = ranked.getElementType();
  if (e.isBF16())
    o.type = "__nv_bfloat16";
  else if (e.isF16())
    o.type = "__half";
  else if (e.isInteger(64))
    o.type = "long long";
  else if (e.isInteger(32))
    o.type = "int";
  else if (e.isInteger(8) || e.isInteger(1))
    o.type = "unsigned char";
  else
    o.type = "float";
  return o;
}

/// The kernel's parameters as kernel_params.h reads them.
struct DictSource {
  DictionaryAttr k;
  bool Get(const char *name, int64_t *out) const {
    auto a = k.getAs<IntegerAttr>(name);
    if (a)
      *out = a.getInt();
    return static_cast<bool>(a);
  }
  bool Get(const char *name, double *out) const {
    auto a = k.getAs<FloatAttr>(name);
    if (a)
      *out = a.getValueAsDouble();
    return static_cast<bool>(a);
  }
  bool Get(const char *name, std::string *out) const {
    auto a = k.getAs<StringAttr>(name);
    if (a)
      *out = a.getValue().str();
    return static_cast<bool>(a);
  }
};

/// `op`'s kernel without MLIR: parameters, operand and result types. An
/// assign writes its value into the named storage, a reset zeroes a
/// storage of its type: those are the kernels' outputs.
FailureOr<cuda::KernelDesc> describe(Operation *op, DictionaryAttr k) {
  cuda::KernelDesc d;
  StringRef kindName = k.getAs<StringAttr>("kind").getValue();
  std::optional<lorart::kernels::Kind> kind = lorart::kernels::KindOf(kindName.str());
  std::string missing;
  if (!kind || !lorart::kernels::ReadAnyParams(*kind, DictSource{k}, &d.params, &missing))
    return op->emitOpError() << "lora.kernel: cannot read the parameters of kernel kind '"
                             << kindName << "'" << (missing.empty() ? "" : ": missing ")
                             << missing;
  for (Value v : op->getOperands())
    d.inputs.push_back(operandOf(v.getType()));
  for (Value r : op->getResults())
    d.outputs.push_back(operandOf(r.getType()));
  if (auto a = dyn_cast<AssignOp>(op))
    d.outputs.push_back(operandOf(a.getValue().getType()));
  if (auto r = dyn_cast<ResetOp>(op))
    d.outputs.push_back(operandOf(r.getStorageType()));
  return d;
}

struct EmitCudaPass : public lora::impl::EmitCudaBase<EmitCudaPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    int64_t emitted = 0;
    WalkResult r = module.walk([&](Operation *op) {
      auto k = op->getAttrOfType<DictionaryAttr>(kKernelAttrName);
      if (!k)
        return WalkResult::advance();
      if (k.get("cuda_source")) {
        op->emitOpError() << "already has CUDA source";
        return WalkResult::interrupt();
      }
      // The templates read the parameters unchecked: a hand-written or
      // edited lora.kernel is checked against kernel_kinds.def first.
      if (failed(verifyKernelParams(op, k)))
        return WalkResult::interrupt();
      // The collectives of lora-data-parallel run on the host, through
      // NCCL (docs/distributed.md): no source.
      if (isa<GradAllReduceStartOp, GradAllReduceWaitOp, AllReduceSumOp>(op))
        return WalkResult::advance();
      FailureOr<cuda::KernelDesc> desc = describe(op, k);
      if (failed(desc))
        return WalkResult::interrupt();
      cuda::Emitted e = cuda::emitKernel(*desc);
      // Values no template can take fail the pass; a kernel no template
      // covers is only a warning.
      if (e.invalid) {
        op->emitOpError() << "lora.kernel: " << e.why;
        return WalkResult::interrupt();
      }
      std::optional<Source> &s = e.source;
      if (!s) {
        // Say so at compile time rather than when the plan is run on CUDA.
        op->emitWarning() << "no CUDA template covers kernel '"
                          << k.getAs<StringAttr>("kind").getValue()
                          << "' with these operand types and sizes; the plan cannot run with "
                             "--device cuda";
        return WalkResult::advance();
      }
      Builder b(op->getContext());
      NamedAttrList attrs(k);
      attrs.set("cuda_source", b.getStringAttr(s->code));
      attrs.set("cuda_entry", b.getStringAttr(s->entry));
      attrs.set("cuda_grid", b.getDenseI64ArrayAttr({s->grid, s->gridY, s->gridZ}));
      attrs.set("cuda_block", b.getDenseI64ArrayAttr({s->block, 1, 1}));
      attrs.set("cuda_shared", b.getI64IntegerAttr(s->shared));
      if (s->workspace > 0)
        attrs.set("cuda_workspace", b.getI64IntegerAttr(s->workspace));
      if (!s->next.empty()) {
        SmallVector<Attribute> steps;
        for (const cuda::Step &st : s->next)
          steps.push_back(b.getDictionaryAttr(
              {b.getNamedAttr("entry", b.getStringAttr(st.entry)),
               b.getNamedAttr("grid", b.getDenseI64ArrayAttr({st.grid, st.gridY, st.gridZ})),
               b.getNamedAttr("block", b.getDenseI64ArrayAttr({st.block, 1, 1})),
               b.getNamedAttr("shared", b.getI64IntegerAttr(st.shared))}));
        attrs.set("cuda_next", b.getArrayAttr(steps));
      }
      op->setAttr(kKernelAttrName, attrs.getDictionary(op->getContext()));
      ++emitted;
      return WalkResult::advance();
    });
    if (r.wasInterrupted())
      return signalPassFailure();
    if (emitted == 0) {
      module.emitError() << "no kernel to emit CUDA for: run lora-lower-to-kernels first";
      return signalPassFailure();
    }
  }
};

} // namespace
