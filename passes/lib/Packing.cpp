//===- Packing.cpp - sequence packing without cross-contamination ---------===//
#include "lora/Dialect/Lora/IR/LoraOps.h"
#include "lora/Transforms/Passes.h"
#include "lorart/plan/ports.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace mlir::lora {
#define GEN_PASS_DEF_SEQUENCEPACKING
#include "lora/Transforms/Passes.h.inc"
} // namespace mlir::lora

using namespace mlir;
using namespace mlir::lora;
using lorart::schema::InputPort;

namespace {

struct SequencePackingPass
    : public lora::impl::SequencePackingBase<SequencePackingPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    bool changed = false;
    for (auto fn : module.getOps<func::FuncOp>()) {
      if (fn.isExternal())
        continue;
      SmallVector<AttentionOp> attention;
      fn.walk([&](AttentionOp op) { attention.push_back(op); });
      if (attention.empty())
        continue;
      for (unsigned i = 0; i < fn.getNumArguments(); ++i)
        if (auto name = fn.getArgAttrOfType<StringAttr>(i, kInputAttrName))
          if (name.getValue() == lorart::PortName(InputPort::SegmentIds)) {
            fn.emitOpError() << "is already packed (has a segment_ids input)";
            return signalPassFailure();
          }
      // segment_ids has the [batch, seq] shape of the positions input.
      std::optional<unsigned> posIndex;
      for (unsigned i = 0; i < fn.getNumArguments(); ++i)
        if (auto name = fn.getArgAttrOfType<StringAttr>(i, kInputAttrName))
          if (name.getValue() == lorart::PortName(InputPort::Positions))
            posIndex = i;
      if (!posIndex) {
        fn.emitOpError() << "has no positions input (lora.input = "
                            "\"positions\") to pack";
        return signalPassFailure();
      }
      OpBuilder b(fn.getContext());
      Type segType = fn.getArgument(*posIndex).getType();
      unsigned segIndex = *posIndex + 1;
      fn.insertArgument(
          segIndex, segType,
          b.getDictionaryAttr(b.getNamedAttr(
              kInputAttrName, b.getStringAttr(lorart::PortName(InputPort::SegmentIds)))),
          fn.getLoc());
      Value seg = fn.getArgument(segIndex);

      // Attention becomes block-diagonal causal: a query sees only keys of
      // its own document. (RoPE positions restart per document: the runtime
      // fills the positions input that way.)
      for (AttentionOp op : attention)
        op.getSegmentIdsMutable().assign(seg);

      // The loss never crosses a document boundary.
      auto mask = [&](Operation *op, OpOperand &operand) {
        b.setInsertionPoint(op);
        Value m = b.create<SegmentBoundaryMaskOp>(op->getLoc(),
                                                  operand.get().getType(),
                                                  operand.get(), seg);
        operand.set(m);
      };
      fn.walk([&](CrossEntropyOp op) { mask(op, op.getMaskMutable()); });
      fn.walk(
          [&](LMHeadCrossEntropyOp op) { mask(op, op.getMaskMutable()); });
      fn.walk([&](SequenceLogProbsOp op) { mask(op, op.getMaskMutable()); });
      changed = true;
    }
    if (!changed) {
      module.emitError() << "no function with lora.attention to pack";
      return signalPassFailure();
    }
  }
};

} // namespace
