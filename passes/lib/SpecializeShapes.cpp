//===- SpecializeShapes.cpp - fix the [micro_batch, seq_len] token grid ---===//
#include "lora/Dialect/Lora/IR/LoraOps.h"
#include "lora/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

namespace mlir::lora {
#define GEN_PASS_DEF_SPECIALIZESHAPES
#include "lora/Transforms/Passes.h.inc"
} // namespace mlir::lora

using namespace mlir;
using namespace mlir::lora;

namespace {

struct SpecializeShapesPass
    : public lora::impl::SpecializeShapesBase<SpecializeShapesPass> {
  using SpecializeShapesBase::SpecializeShapesBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    int64_t batch = microBatch, seq = seqLen;
    if (batch <= 0) {
      module.emitError() << "option 'micro-batch' must be positive, got "
                         << batch;
      return signalPassFailure();
    }
    if (seq <= 0) {
      module.emitError() << "option 'seq-len' must be positive, got " << seq;
      return signalPassFailure();
    }
    if (auto cfg = module->getAttrOfType<DictionaryAttr>(kModelConfigAttrName))
      if (auto maxPos = cfg.getAs<IntegerAttr>("max_position_embeddings"))
        if (seq > maxPos.getInt())
          module.emitWarning()
              << "seq-len " << seq << " is longer than the model's "
              << "max_position_embeddings (" << maxPos.getInt() << ")";

    // Dimension 0 of every dynamic tensor is the batch, dimension 1 the
    // sequence: the importer only makes those two dynamic.
    auto specialize = [&](Type t, Operation *where) -> FailureOr<Type> {
      auto rt = dyn_cast<RankedTensorType>(t);
      if (!rt || rt.hasStaticShape())
        return t;
      SmallVector<int64_t> shape(rt.getShape());
      for (auto [i, d] : llvm::enumerate(shape)) {
        if (!ShapedType::isDynamic(d))
          continue;
        if (i > 1) {
          where->emitOpError() << "dimension " << i << " of " << rt
                               << " is dynamic; only the batch (0) and "
                                  "sequence (1) dimensions may be";
          return failure();
        }
        d = i == 0 ? batch : seq;
      }
      return Type(RankedTensorType::get(shape, rt.getElementType(),
                                        rt.getEncoding()));
    };

    for (auto fn : module.getOps<func::FuncOp>()) {
      if (fn.isExternal())
        continue;
      for (BlockArgument arg : fn.getArguments()) {
        FailureOr<Type> t = specialize(arg.getType(), fn);
        if (failed(t))
          return signalPassFailure();
        arg.setType(*t);
      }
      WalkResult r = fn.walk([&](Operation *op) {
        for (OpResult res : op->getResults()) {
          FailureOr<Type> t = specialize(res.getType(), op);
          if (failed(t))
            return WalkResult::interrupt();
          res.setType(*t);
        }
        return WalkResult::advance();
      });
      if (r.wasInterrupted())
        return signalPassFailure();
      SmallVector<Type> results;
      for (Type t : fn.getResultTypes()) {
        FailureOr<Type> st = specialize(t, fn);
        if (failed(st))
          return signalPassFailure();
        results.push_back(*st);
      }
      fn.setType(FunctionType::get(&getContext(),
                                   fn.getBody().getArgumentTypes(), results));
    }
  }
};

} // namespace
