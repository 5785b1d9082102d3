//===- Objective.cpp - attach the training objective to the forward graph -===//
#include "lora/Dialect/Lora/IR/LoraOps.h"
#include "lora/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace mlir::lora {
#define GEN_PASS_DEF_OBJECTIVE
#include "lora/Transforms/Passes.h.inc"
} // namespace mlir::lora

using namespace mlir;
using namespace mlir::lora;

namespace {

struct ObjectivePass : public lora::impl::ObjectiveBase<ObjectivePass> {
  using ObjectiveBase::ObjectiveBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (objective == "dpo") {
      module.emitError() << "objective 'dpo' is not implemented yet";
      return signalPassFailure();
    }
    if (objective != "sft" && objective != "pretrain") {
      module.emitError() << "option 'objective' must be sft or pretrain, got '"
                         << objective << "'";
      return signalPassFailure();
    }
    auto fn = module.lookupSymbol<func::FuncOp>(function);
    if (!fn) {
      module.emitError() << "no function @" << function
                         << " to attach the objective to";
      return signalPassFailure();
    }
    if (fn->hasAttr(kObjectiveAttrName)) {
      fn.emitOpError() << "already has an objective ("
                       << fn->getAttr(kObjectiveAttrName) << ")";
      return signalPassFailure();
    }
    auto ret = cast<func::ReturnOp>(fn.getBody().back().getTerminator());
    if (ret.getNumOperands() != 1 ||
        !ret.getOperand(0).getDefiningOp<LMHeadOp>()) {
      fn.emitOpError() << "must return the logits of a lora.lm_head";
      return signalPassFailure();
    }
    Value logits = ret.getOperand(0);
    auto lt = cast<RankedTensorType>(logits.getType());
    if (lt.getRank() != 3) {
      fn.emitOpError() << "logits must be [batch, seq, vocab], got " << lt;
      return signalPassFailure();
    }

    OpBuilder b(ret);
    Location loc = ret.getLoc();
    auto grid = [&](Type elt) {
      return RankedTensorType::get(lt.getShape().drop_back(), elt);
    };
    // The runtime fills targets (the next token) and the loss mask: for sft
    // only response tokens, for pretrain every real token.
    unsigned n = fn.getNumArguments();
    fn.insertArgument(n, grid(b.getI32Type()),
                      b.getDictionaryAttr(b.getNamedAttr(
                          kInputAttrName, b.getStringAttr("targets"))),
                      loc);
    fn.insertArgument(n + 1, grid(b.getI1Type()),
                      b.getDictionaryAttr(b.getNamedAttr(
                          kInputAttrName, b.getStringAttr("loss_mask"))),
                      loc);
    Value targets = fn.getArgument(n), mask = fn.getArgument(n + 1);
    auto ce = b.create<CrossEntropyOp>(
        NameLoc::get(b.getStringAttr("loss"), loc),
        RankedTensorType::get({}, b.getF32Type()),
        RankedTensorType::get({}, b.getI64Type()), logits, targets, mask);
    b.create<func::ReturnOp>(loc, ce.getResults());
    ret.erase();
    fn.setType(FunctionType::get(&getContext(), fn.getArgumentTypes(),
                                 ce.getResultTypes()));
    fn->setAttr(kObjectiveAttrName, b.getStringAttr(objective));
    fn.setResultAttr(0, kOutputAttrName, b.getStringAttr("loss_sum"));
    fn.setResultAttr(1, kOutputAttrName, b.getStringAttr("count"));
  }
};

} // namespace
