//===- SaveAttentionStats.cpp - the backward reads the forward's stats ---===//
//
// lora-save-attention-stats: a `lora.attention_grad` gets the output and the
// softmax logsumexp of its forward (`lora.attention` made
// `lora.attention_with_lse`), so its kernel does not recompute the forward.
// Only where the output is already live when the backward reaches the
// attention, so activation memory stays as it was.
//
//===----------------------------------------------------------------------===//
#include "lora/Dialect/Lora/IR/LoraOps.h"
#include "lora/Transforms/Passes.h"

#include "mlir/IR/Builders.h"

namespace mlir::lora {
#define GEN_PASS_DEF_SAVEATTENTIONSTATS
#include "lora/Transforms/Passes.h.inc"
} // namespace mlir::lora

using namespace mlir;
using namespace mlir::lora;

namespace {

/// Whether `fwd` (lora.attention or lora.attention_with_lse) computes the
/// attention that `grad` differentiates: the same operands and attributes.
template <class Fwd> bool sameAttention(Fwd fwd, AttentionGradOp grad) {
  return fwd.getQ() == grad.getQ() && fwd.getK() == grad.getK() &&
         fwd.getV() == grad.getV() &&
         fwd.getSegmentIds() == grad.getSegmentIds() &&
         fwd.getNumHeads() == grad.getNumHeads() &&
         fwd.getNumKvHeads() == grad.getNumKvHeads() &&
         fwd.getHeadDim() == grad.getHeadDim() &&
         fwd.getScaleAttr() == grad.getScaleAttr() &&
         fwd.getSlidingWindowAttr() == grad.getSlidingWindowAttr();
}

/// The last op before `grad` in its block that computes its attention (a
/// lora.attention, or one an earlier grad op already made
/// lora.attention_with_lse); null if none.
Operation *forwardOf(AttentionGradOp grad) {
  Operation *found = nullptr;
  for (Operation &op : *grad->getBlock()) {
    if (&op == grad.getOperation())
      break;
    if (auto fwd = dyn_cast<AttentionOp>(op); fwd && sameAttention(fwd, grad))
      found = &op;
    if (auto fwd = dyn_cast<AttentionWithLseOp>(op);
        fwd && sameAttention(fwd, grad))
      found = &op;
  }
  return found;
}

/// Whether `out` is live when `grad`'s output gradient is computed: some
/// user other than `grad` at or after that definition in the block (a
/// block-argument `dout` is defined before `out` exists).
bool liveAtDout(Value out, AttentionGradOp grad) {
  Operation *def = grad.getDout().getDefiningOp();
  if (!def || def->getBlock() != grad->getBlock())
    return false;
  for (Operation *user : out.getUsers()) {
    if (user == grad.getOperation() || user->getBlock() != def->getBlock())
      continue;
    if (user == def || def->isBeforeInBlock(user))
      return true;
  }
  return false;
}

/// `fwd` as a lora.attention_with_lse (itself if it is one already).
AttentionWithLseOp withLse(Operation *op) {
  if (auto done = dyn_cast<AttentionWithLseOp>(op))
    return done;
  auto fwd = cast<AttentionOp>(op);
  auto q = cast<RankedTensorType>(fwd.getQ().getType());
  auto lseType = RankedTensorType::get({q.getDimSize(0),
                                        static_cast<int64_t>(fwd.getNumHeads()),
                                        q.getDimSize(1)},
                                       Float32Type::get(op->getContext()));
  OpBuilder b(fwd);
  auto made = b.create<AttentionWithLseOp>(
      fwd.getLoc(), TypeRange{fwd.getResult().getType(), lseType},
      fwd->getOperands(), fwd->getAttrs());
  fwd.getResult().replaceAllUsesWith(made.getResult());
  fwd.erase();
  return made;
}

struct SaveAttentionStatsPass
    : public lora::impl::SaveAttentionStatsBase<SaveAttentionStatsPass> {
  using SaveAttentionStatsBase::SaveAttentionStatsBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (failed(checkTargetOption(module, target)))
      return signalPassFailure();
    if (target == "cuda")
      return; // the CUDA kernels recompute the statistics
    SmallVector<AttentionGradOp> grads;
    module.walk([&](AttentionGradOp g) {
      if (!g.getOut())
        grads.push_back(g);
    });
    for (AttentionGradOp grad : grads) {
      Operation *fwd = forwardOf(grad);
      if (!fwd || !liveAtDout(fwd->getResult(0), grad))
        continue;
      AttentionWithLseOp saved = withLse(fwd);
      OpBuilder b(grad);
      auto made = b.create<AttentionGradOp>(
          grad.getLoc(), grad.getDq().getType(), grad.getDk().getType(),
          grad.getDv().getType(), grad.getDout(), grad.getQ(), grad.getK(),
          grad.getV(), saved.getResult(), saved.getLse(), grad.getSegmentIds(),
          grad.getNumHeadsAttr(), grad.getNumKvHeadsAttr(),
          grad.getHeadDimAttr(), grad.getScaleAttr(),
          grad.getSlidingWindowAttr());
      for (NamedAttribute a : grad->getDiscardableAttrs())
        made->setAttr(a.getName(), a.getValue());
      grad->replaceAllUsesWith(made);
      grad.erase();
    }
  }
};

} // namespace
