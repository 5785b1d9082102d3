//===- Objective.cpp - attach the training objective to the forward graph -===//
#include "lora/Dialect/Lora/IR/LoraOps.h"
#include "lora/Transforms/Passes.h"
#include "lora/Transforms/Ports.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"

namespace mlir::lora {
#define GEN_PASS_DEF_OBJECTIVE
#include "lora/Transforms/Passes.h.inc"
#include <cmath>
} // namespace mlir::lora

using namespace mlir;
using namespace mlir::lora;
using lorart::schema::InputPort;
using lorart::schema::OutputPort;

namespace {

struct ObjectivePass : public lora::impl::ObjectiveBase<ObjectivePass> {
  using ObjectiveBase::ObjectiveBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (objective != "sft" && objective != "pretrain" && objective != "dpo") {
      module.emitError() << "option 'objective' must be sft, pretrain or dpo, got '"
                         << objective << "'";
      return signalPassFailure();
    }
    if (objective == "dpo") {
      if (!(beta > 0.0) || !std::isfinite(static_cast<double>(beta))) {
        module.emitError() << "dpo: option 'beta' must be positive, got " << double(beta);
        return signalPassFailure();
      }
      if (lossType != "sigmoid" && lossType != "ipo") {
        module.emitError() << "dpo: option 'loss-type' must be sigmoid or ipo, got '"
                           << lossType << "'";
        return signalPassFailure();
      }
      if (!(replayWeight >= 0.0)) {
        module.emitError() << "dpo: option 'replay-weight' must be >= 0, got "
                           << double(replayWeight);
        return signalPassFailure();
      }
      if (int64_t(pairs) < 0) {
        module.emitError() << "dpo: option 'pairs' must be >= 0, got " << int64_t(pairs);
        return signalPassFailure();
      }
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
    Value targets = insertInput(fn, fn.getNumArguments(), grid(b.getI32Type()),
                                InputPort::Targets, loc);
    Value mask = insertInput(fn, fn.getNumArguments(), grid(b.getI1Type()),
                             InputPort::LossMask, loc);
    if (objective == "dpo") {
      if (failed(buildDPO(fn, ret, logits, targets, mask)))
        return signalPassFailure();
      return;
    }
    auto ce = b.create<CrossEntropyOp>(
        NameLoc::get(b.getStringAttr("loss"), loc),
        RankedTensorType::get({}, b.getF32Type()),
        RankedTensorType::get({}, b.getI64Type()), logits, targets, mask);
    b.create<func::ReturnOp>(loc, ce.getResults());
    ret.erase();
    fn.setType(FunctionType::get(&getContext(), fn.getArgumentTypes(),
                                 ce.getResultTypes()));
    fn->setAttr(kObjectiveAttrName, b.getStringAttr(objective));
    fn.setResultAttr(0, kOutputAttrName, b.getStringAttr(lorart::PortName(OutputPort::LossSum)));
    fn.setResultAttr(1, kOutputAttrName, b.getStringAttr(lorart::PortName(OutputPort::Count)));
  }

  // DPO: the policy's per-sequence log-probabilities from the forward graph
  // as it is, the reference's from a clone of it without adapters (the same
  // weights: no second model), and the loss of the pairs.
  LogicalResult buildDPO(func::FuncOp fn, func::ReturnOp ret, Value logits, Value targets,
                         Value mask) {
    OpBuilder b(ret);
    Location loc = ret.getLoc();
    auto lt = cast<RankedTensorType>(logits.getType());
    int64_t numPairs = pairs > 0 ? int64_t(pairs) : lt.getDimSize(0);
    int64_t numSeqs = 2 * numPairs;
    Value seqIds = insertInput(fn, fn.getNumArguments(), targets.getType(),
                               InputPort::SequenceIds, loc);
    Value pairMask =
        insertInput(fn, fn.getNumArguments(),
                    RankedTensorType::get({numPairs}, b.getI1Type()),
                    InputPort::PairMask, loc);
    Value replayMask;
    if (replayWeight > 0)
      replayMask = insertInput(fn, fn.getNumArguments(), mask.getType(),
                               InputPort::ReplayMask, loc);

    // The reference pass: every op of the forward graph but the parameters
    // (shared) and the adapters (their sum with the linear output becomes
    // the linear output alone).
    IRMapping map;
    SmallVector<Operation *> forward;
    for (Operation &op : fn.getBody().front().without_terminator())
      forward.push_back(&op);
    for (Operation *op : forward)
      if (isa<AdapterOp>(op))
        for (Operation *user : op->getResult(0).getUsers())
          if (!isa<AddOp>(user))
            return op->emitOpError() << "dpo: an adapter's output must only be added to its "
                                        "linear layer's (the reference pass drops it), but "
                                        "it feeds " << user->getName();
    b.setInsertionPoint(ret);
    for (Operation *op : forward) {
      if (isa<ParamOp>(op))
        continue;
      if (isa<AdapterOp>(op))
        continue;
      if (auto add = dyn_cast<AddOp>(op)) {
        bool lhsAdapter = add.getLhs().getDefiningOp<AdapterOp>() != nullptr;
        bool rhsAdapter = add.getRhs().getDefiningOp<AdapterOp>() != nullptr;
        if (lhsAdapter || rhsAdapter) {
          Value other = lhsAdapter ? add.getRhs() : add.getLhs();
          map.map(add.getResult(), map.lookupOrDefault(other));
          continue;
        }
      }
      Operation *clone = b.clone(*op, map);
      clone->setLoc(NameLoc::get(b.getStringAttr("reference"), op->getLoc()));
    }
    Value refLogits = map.lookupOrDefault(logits);
    if (refLogits == logits)
      return fn.emitOpError() << "dpo: the logits do not depend on the forward graph";

    auto perSeq = RankedTensorType::get({numSeqs}, b.getF32Type());
    auto numSeqAttr = b.getI64IntegerAttr(numSeqs);
    Value pol = b.create<SequenceLogProbsOp>(NameLoc::get(b.getStringAttr("policy_logprobs"), loc),
                                             perSeq, logits, targets, mask, seqIds, numSeqAttr);
    Value ref = b.create<SequenceLogProbsOp>(
        NameLoc::get(b.getStringAttr("reference_logprobs"), loc), perSeq, refLogits, targets,
        mask, seqIds, numSeqAttr);
    auto f32 = RankedTensorType::get({}, b.getF32Type());
    auto i64 = RankedTensorType::get({}, b.getI64Type());
    auto dpo = b.create<DPOLossOp>(NameLoc::get(b.getStringAttr("loss"), loc),
                                   TypeRange{f32, i64, f32, f32, f32, f32}, pol, ref, pairMask,
                                   b.getF64FloatAttr(beta), b.getStringAttr(lossType));
    SmallVector<Value> results(dpo.getResults());
    SmallVector<OutputPort> names = {OutputPort::LossSum,       OutputPort::Count,
                                     OutputPort::ChosenRewards, OutputPort::RejectedRewards,
                                     OutputPort::Accuracy,      OutputPort::Margin};
    if (replayMask) {
      // Replayed general text: the policy's cross-entropy on its tokens,
      // weighted into the per-pair loss.
      auto ce = b.create<CrossEntropyOp>(NameLoc::get(b.getStringAttr("replay"), loc), f32, i64,
                                         logits, targets, replayMask);
      Value term = b.create<ReplayLossOp>(NameLoc::get(b.getStringAttr("replay"), loc), f32,
                                          ce.getLossSum(), ce.getCount(), pairMask,
                                          b.getF64FloatAttr(replayWeight));
      results[0] = b.create<AddOp>(loc, f32, results[0], term);
      results.push_back(ce.getLossSum());
      results.push_back(ce.getCount());
      names.push_back(OutputPort::ReplayLossSum);
      names.push_back(OutputPort::ReplayCount);
    }
    b.create<func::ReturnOp>(loc, results);
    ret.erase();
    SmallVector<Type> types;
    for (Value v : results)
      types.push_back(v.getType());
    fn.setType(FunctionType::get(&getContext(), fn.getArgumentTypes(), types));
    fn->setAttr(kObjectiveAttrName, b.getStringAttr(objective));
    for (unsigned i = 0; i < names.size(); ++i)
      fn.setResultAttr(i, kOutputAttrName, b.getStringAttr(lorart::PortName(names[i])));
    return success();
  }
};

} // namespace
