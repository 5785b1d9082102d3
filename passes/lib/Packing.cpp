//===- Packing.cpp - sequence packing without cross-contamination ---------===//
#include "lora/Dialect/Lora/IR/LoraOps.h"
#include "lora/Transforms/Passes.h"
#include "lora/Transforms/Ports.h"

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
      if (findInput(fn, InputPort::SegmentIds)) {
        fn.emitOpError() << "is already packed (has a segment_ids input)";
        return signalPassFailure();
      }
      // segment_ids has the [batch, seq] shape of the positions input.
      BlockArgument positions = findInput(fn, InputPort::Positions);
      if (!positions) {
        fn.emitOpError() << "has no positions input (lora.input = "
                            "\"positions\") to pack";
        return signalPassFailure();
      }
      OpBuilder b(fn.getContext());
      Value seg =
          insertInput(fn, positions.getArgNumber() + 1, positions.getType(),
                      InputPort::SegmentIds, fn.getLoc());

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
