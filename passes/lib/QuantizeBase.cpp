//===- QuantizeBase.cpp - NF4-quantize the frozen linear weights ----------===//
//
// lora-quantize-base: QLoRA's storage of the base model. Every frozen float
// parameter used only as the weight of `lora.linear` ops (the decoder's
// q/k/v/o/gate/up/down projections) becomes `!lora.nf4<shape, block_size,
// double_quant>`, read through one `lora.dequantize` to its original tensor
// type. The LM head, the embedding table, norms, biases and trainable
// parameters never qualify, and a weight that is also read by anything else
// (a tied embedding) stays as it is. The types in the IR are the record of
// the quantization: the runtime quantizes the named safetensors tensors at
// load time to the layout the type describes.
//
// Everything is checked before the IR is touched, so a failure leaves the
// module unchanged.
//
//===----------------------------------------------------------------------===//
#include "lora/Dialect/Lora/IR/LoraOps.h"
#include "lora/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/MathExtras.h"

namespace mlir::lora {
#define GEN_PASS_DEF_QUANTIZEBASE
#include "lora/Transforms/Passes.h.inc"
} // namespace mlir::lora

using namespace mlir;
using namespace mlir::lora;

namespace {

/// A frozen float tensor parameter every use of which is the weight operand
/// of a `lora.linear`. (An unused one qualifies too, so that every parameter
/// of a name gets the same type; it just gets no dequantize.)
bool isLinearOnlyFrozenWeight(ParamOp param) {
  if (param.getRole() != ParamRole::Frozen)
    return false;
  auto type = dyn_cast<RankedTensorType>(param.getResult().getType());
  if (!type || !isa<FloatType>(type.getElementType()))
    return false;
  for (OpOperand &use : param.getResult().getUses()) {
    auto linear = dyn_cast<LinearOp>(use.getOwner());
    if (!linear || &use != &linear.getWeightMutable())
      return false;
  }
  return true;
}

struct QuantizeBasePass
    : public lora::impl::QuantizeBaseBase<QuantizeBasePass> {
  using QuantizeBaseBase::QuantizeBaseBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (failed(checkOptions(module)))
      return signalPassFailure();

    // Quantizing twice would stack formats: refuse.
    ParamOp already;
    module.walk([&](ParamOp param) {
      if (isa<NF4Type>(param.getResult().getType())) {
        already = param;
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (already) {
      module.emitError() << "the module is already quantized: parameter '"
                         << already.getName() << "' has type "
                         << already.getResult().getType();
      return signalPassFailure();
    }

    // A name may appear in several functions (forward, training step): it
    // is quantized everywhere or nowhere.
    llvm::MapVector<StringRef, SmallVector<ParamOp>> byName;
    module.walk([&](ParamOp param) {
      byName[param.getName()].push_back(param);
    });

    SmallVector<ParamOp> chosen;
    for (auto &[name, params] : byName) {
      bool used = llvm::any_of(
          params, [](ParamOp p) { return !p.getResult().use_empty(); });
      if (!used || !llvm::all_of(params, isLinearOnlyFrozenWeight))
        continue;
      for (ParamOp param : params) {
        auto type = cast<RankedTensorType>(param.getResult().getType());
        if (type.getNumElements() % blockSize != 0) {
          InFlightDiagnostic diag = module.emitError()
                                    << "parameter '" << name << "' of shape ";
          llvm::interleave(type.getShape(), diag, "x");
          diag << " has " << type.getNumElements()
               << " elements, not a multiple of block-size "
               << static_cast<int64_t>(blockSize);
          return signalPassFailure();
        }
        chosen.push_back(param);
      }
    }
    if (chosen.empty()) {
      module.emitError()
          << "no linear weight to quantize: no frozen float lora.param is "
             "used only as the weight of lora.linear ops";
      return signalPassFailure();
    }

    for (ParamOp param : chosen)
      quantize(param);
  }

  LogicalResult checkOptions(ModuleOp module) {
    if (format != "nf4")
      return module.emitError()
             << "option 'format' must be 'nf4' (the only quantized format), "
                "got '"
             << format << "'";
    if (blockSize < 16 || blockSize > 4096 ||
        !llvm::isPowerOf2_64(static_cast<uint64_t>(blockSize)))
      return module.emitError()
             << "option 'block-size' must be a power of two in [16, 4096], got "
             << static_cast<int64_t>(blockSize);
    if (doubleQuantBlock < 0 || doubleQuantBlock > 4096 ||
        (doubleQuantBlock > 0 &&
         !llvm::isPowerOf2_64(static_cast<uint64_t>(doubleQuantBlock))))
      return module.emitError()
             << "option 'double-quant-block' must be 0 (no double "
                "quantization) or a power of two in [1, 4096], got "
             << static_cast<int64_t>(doubleQuantBlock);
    return success();
  }

  /// Retypes the parameter and routes its users through one dequantize.
  void quantize(ParamOp param) {
    auto type = cast<RankedTensorType>(param.getResult().getType());
    param.getResult().setType(NF4Type::get(param.getContext(), type.getShape(),
                                           blockSize, doubleQuantBlock));
    if (param.getResult().use_empty())
      return;
    OpBuilder b(param.getContext());
    b.setInsertionPointAfter(param);
    auto deq = b.create<DequantizeOp>(param.getLoc(), type, param.getResult());
    param.getResult().replaceAllUsesExcept(deq.getResult(), deq);
  }
};

} // namespace
