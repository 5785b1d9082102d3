//===- FuseLmHeadLoss.cpp - the LM-head loss and its gradient in one op ---===//
//
// lora-fuse-lm-head-loss: `lora.lm_head_cross_entropy` and the
// `lora.lm_head_cross_entropy_grad` of the same operands, seeded with a
// constant loss gradient, become one `lora.lm_head_cross_entropy_with_grad`
// whose kernel computes each chunk's logits once for both.
//
//===----------------------------------------------------------------------===//
#include "lora/Dialect/Lora/IR/LoraOps.h"
#include "lora/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/STLExtras.h"

namespace mlir::lora {
#define GEN_PASS_DEF_FUSELMHEADLOSS
#include "lora/Transforms/Passes.h.inc"
} // namespace mlir::lora

using namespace mlir;
using namespace mlir::lora;

namespace {

/// The forward op of `grad`: the same operands and chunk size, earlier in
/// the same block.
LMHeadCrossEntropyOp forwardOf(LMHeadCrossEntropyGradOp grad) {
  Block *block = grad->getBlock();
  for (Operation &op : *block) {
    if (&op == grad.getOperation())
      break;
    auto fwd = dyn_cast<LMHeadCrossEntropyOp>(op);
    if (fwd && fwd.getX() == grad.getX() &&
        fwd.getWeight() == grad.getWeight() &&
        fwd.getTargets() == grad.getTargets() &&
        fwd.getMask() == grad.getMask() &&
        fwd.getChunkSize() == grad.getChunkSize())
      return fwd;
  }
  return nullptr;
}

struct FuseLmHeadLossPass
    : public lora::impl::FuseLmHeadLossBase<FuseLmHeadLossPass> {
  using FuseLmHeadLossBase::FuseLmHeadLossBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (failed(checkTargetOption(module, target)))
      return signalPassFailure();
    if (target == "cuda")
      return; // no CUDA kernel for the fused kind
    SmallVector<LMHeadCrossEntropyGradOp> grads;
    module.walk([&](LMHeadCrossEntropyGradOp g) { grads.push_back(g); });
    for (LMHeadCrossEntropyGradOp grad : grads) {
      auto seed = grad.getDloss().getDefiningOp<ScalarOp>();
      if (!seed)
        continue;
      LMHeadCrossEntropyOp fwd = forwardOf(grad);
      if (!fwd)
        continue;
      OpBuilder b(fwd);
      auto fused = b.create<LMHeadCrossEntropyWithGradOp>(
          fwd.getLoc(),
          TypeRange{fwd.getLossSum().getType(), fwd.getCount().getType(),
                    grad.getDx().getType()},
          fwd.getX(), fwd.getWeight(), fwd.getTargets(), fwd.getMask(),
          fwd.getChunkSizeAttr(), seed.getValueAttr());
      fwd.getLossSum().replaceAllUsesWith(fused.getLossSum());
      fwd.getCount().replaceAllUsesWith(fused.getCount());
      grad.getDx().replaceAllUsesWith(fused.getDx());
      grad.erase();
      fwd.erase();
      if (seed->use_empty())
        seed.erase();
    }
  }
};

} // namespace
