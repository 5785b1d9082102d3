//===- Fusion.cpp - fuse the forward graph's kernels ----------------------===//
//
// lora-fuse: dequantize → linear → adapter → add becomes one
// `lora.fused_linear`, and `lora.lm_head` → `lora.cross_entropy` becomes one
// chunked `lora.lm_head_cross_entropy`. Runs on the forward graph before
// autodiff, so the fused ops' VJPs build the fused backward ops.
//
// The rewrite is a direct walk rather than a greedy pattern driver: every
// match is decided on the original graph, in program order, and each op is
// rewritten at most once, so the output does not depend on worklist order.
//
//===----------------------------------------------------------------------===//
#include "lora/Dialect/Lora/IR/LoraOps.h"
#include "lora/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/STLExtras.h"

namespace mlir::lora {
#define GEN_PASS_DEF_FUSE
#include "lora/Transforms/Passes.h.inc"
} // namespace mlir::lora

using namespace mlir;
using namespace mlir::lora;

namespace {

/// A linear layer's adapter path: `%s = lora.add %y, %d` with
/// `%d = lora.adapter %x, ...` reading the same input as the linear.
struct AdapterMatch {
  AdapterOp adapter;
  AddOp add;
};

/// The adapter joined to `linear` by a `lora.add`, when the linear's output
/// and the adapter's output each have that add as their only user.
std::optional<AdapterMatch> matchAdapter(LinearOp linear) {
  Value y = linear.getResult();
  if (!y.hasOneUse())
    return std::nullopt;
  auto add = dyn_cast<AddOp>(*y.getUsers().begin());
  if (!add)
    return std::nullopt;
  Value other = add.getLhs() == y ? add.getRhs() : add.getLhs();
  if (other == y)
    return std::nullopt; // `lora.add %y, %y`
  auto adapter = other.getDefiningOp<AdapterOp>();
  if (!adapter || !other.hasOneUse() || adapter.getX() != linear.getX())
    return std::nullopt;
  return AdapterMatch{adapter, add};
}

struct FusePass : public lora::impl::FuseBase<FusePass> {
  using FuseBase::FuseBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (chunkSize <= 0) {
      module.emitError() << "option 'chunk-size' must be positive, got "
                         << static_cast<int64_t>(chunkSize);
      return signalPassFailure();
    }

    SmallVector<LinearOp> linears;
    SmallVector<LMHeadOp> heads;
    module.walk([&](Operation *op) {
      if (auto l = dyn_cast<LinearOp>(op))
        linears.push_back(l);
      else if (auto h = dyn_cast<LMHeadOp>(op))
        heads.push_back(h);
    });

    SmallVector<DequantizeOp> maybeDead;
    for (LinearOp linear : linears)
      fuseLinear(linear, maybeDead);
    for (LMHeadOp head : heads)
      fuseLMHead(head);

    // A dequantize whose every reader was fused is dead: the packed weight
    // now goes straight to the kernels.
    for (DequantizeOp dq : maybeDead)
      if (dq->use_empty())
        dq->erase();
  }

  void fuseLinear(LinearOp linear, SmallVectorImpl<DequantizeOp> &maybeDead) {
    auto dq = linear.getWeight().getDefiningOp<DequantizeOp>();
    std::optional<AdapterMatch> match = matchAdapter(linear);
    // A float linear without adapter is already one kernel.
    if (!match && !dq)
      return;
    Value weight = dq ? Value(dq.getInput()) : Value(linear.getWeight());
    if (dq && !llvm::is_contained(maybeDead, dq))
      maybeDead.push_back(dq);

    OpBuilder b(linear.getContext());
    if (!match) {
      b.setInsertionPoint(linear);
      auto fused = b.create<FusedLinearOp>(
          linear.getLoc(), linear.getType(), linear.getX(), weight,
          linear.getBias(), Value(), Value(), FloatAttr(), FloatAttr());
      linear.getResult().replaceAllUsesWith(fused.getResult());
      linear->erase();
      return;
    }

    // Built where the add was: every operand (the adapter's A and B
    // included) is defined before it.
    AdapterOp adapter = match->adapter;
    AddOp add = match->add;
    b.setInsertionPoint(add);
    Location loc =
        b.getFusedLoc({linear.getLoc(), adapter.getLoc(), add.getLoc()});
    auto fused = b.create<FusedLinearOp>(
        loc, add.getType(), linear.getX(), weight, linear.getBias(),
        adapter.getA(), adapter.getB(), adapter.getAlphaAttr(),
        adapter.getDropoutAttr());
    add.getResult().replaceAllUsesWith(fused.getResult());
    add->erase();
    adapter->erase();
    linear->erase();
  }

  void fuseLMHead(LMHeadOp head) {
    Value logits = head.getLogits();
    if (!logits.hasOneUse())
      return;
    auto ce = dyn_cast<CrossEntropyOp>(*logits.getUsers().begin());
    if (!ce)
      return;
    OpBuilder b(ce);
    auto fused = b.create<LMHeadCrossEntropyOp>(
        b.getFusedLoc({head.getLoc(), ce.getLoc()}),
        ce.getLossSum().getType(), ce.getCount().getType(), head.getX(),
        head.getWeight(), ce.getTargets(), ce.getMask(),
        b.getI64IntegerAttr(chunkSize));
    ce->replaceAllUsesWith(fused->getResults());
    ce->erase();
    head->erase();
  }
};

} // namespace
