//===- LogitsProgram.cpp - the next-token logits program for generation ---===//
#include "lora/Dialect/Lora/IR/LoraOps.h"
#include "lora/Transforms/Passes.h"
#include "lora/Transforms/Ports.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace mlir::lora {
#define GEN_PASS_DEF_LOGITSPROGRAM
#include "lora/Transforms/Passes.h.inc"
} // namespace mlir::lora

using namespace mlir;
using namespace mlir::lora;
using lorart::schema::InputPort;
using lorart::schema::OutputPort;

namespace {

struct LogitsProgramPass
    : public lora::impl::LogitsProgramBase<LogitsProgramPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto fwd = module.lookupSymbol<func::FuncOp>("forward");
    if (!fwd) {
      module.emitError() << "no @forward to derive @logits_step from";
      return signalPassFailure();
    }
    if (module.lookupSymbol("logits_step")) {
      module.emitError() << "the module already has @logits_step";
      return signalPassFailure();
    }
    auto ret = cast<func::ReturnOp>(fwd.getBody().back().getTerminator());
    auto head = ret.getNumOperands() == 1
                    ? ret.getOperand(0).getDefiningOp<LMHeadOp>()
                    : LMHeadOp();
    if (!head) {
      fwd.emitOpError() << "must return the logits of a lora.lm_head (run "
                           "lora-logits-program before lora-objective)";
      return signalPassFailure();
    }
    auto hType = cast<RankedTensorType>(head.getX().getType());
    if (!hType.hasStaticShape()) {
      fwd.emitOpError() << "has dynamic shapes: run lora-specialize-shapes "
                           "first";
      return signalPassFailure();
    }
    OpBuilder mb(module.getBodyRegion());
    mb.setInsertionPointAfter(fwd);
    auto fn = cast<func::FuncOp>(mb.clone(*fwd));
    fn.setName("logits_step");
    int64_t batch = hType.getDimSize(0);
    OpBuilder b(&getContext());
    Value last = insertInput(fn, fn.getNumArguments(),
                             RankedTensorType::get({batch}, b.getI32Type()),
                             InputPort::LastIndex, fn.getLoc());
    auto fret = cast<func::ReturnOp>(fn.getBody().back().getTerminator());
    auto fhead = fret.getOperand(0).getDefiningOp<LMHeadOp>();
    b.setInsertionPoint(fhead);
    auto rowType = RankedTensorType::get({batch, 1, hType.getDimSize(2)},
                                         hType.getElementType());
    Value row = b.create<SelectRowsOp>(fhead.getLoc(), rowType, fhead.getX(),
                                       last);
    auto lt = cast<RankedTensorType>(fhead.getType());
    auto logitsType = RankedTensorType::get({batch, 1, lt.getDimSize(2)},
                                            lt.getElementType());
    Value logits = b.create<LMHeadOp>(fhead.getLoc(), logitsType, row,
                                      fhead.getWeight());
    b.setInsertionPoint(fret);
    b.create<func::ReturnOp>(fret.getLoc(), logits);
    fret.erase();
    fhead.erase();
    fn.setType(FunctionType::get(&getContext(), fn.getArgumentTypes(),
                                 {logitsType}));
    fn.setResultAttr(0, kOutputAttrName, b.getStringAttr(lorart::PortName(OutputPort::Logits)));
  }
};

} // namespace
