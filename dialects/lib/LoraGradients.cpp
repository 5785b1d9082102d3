//===- LoraGradients.cpp - vector-Jacobian products of lora ops -----------===//
//
// GradientOpInterface::buildVJP for every differentiable op. The caller
// (lora-autodiff) sizes `operandGrads` to the number of operands, all null;
// each VJP fills the entries whose `needGrad` is set. Gradient ops that
// produce several gradients at once (adapter, attention, RMSNorm, SwiGLU)
// are built once even when only some of their results are used.
//
//===----------------------------------------------------------------------===//
#include "lora/Dialect/Lora/IR/LoraOps.h"

#include "lora/Dialect/Lora/IR/LoraInterfaces.cpp.inc"

using namespace mlir;
using namespace mlir::lora;

namespace {
bool anyNeeded(ArrayRef<bool> flags) { return llvm::is_contained(flags, true); }

/// dX = dY·W and dW = dYᵀ·X of `y = x·Wᵀ`, where needed: shared by linear
/// layers and the (unfused) LM head.
void linearVJP(OpBuilder &b, Location loc, Value x, Value weight, Value dy,
               bool needX, bool needW, SmallVectorImpl<Value> &out) {
  if (needX)
    out[0] = b.create<LinearGradXOp>(loc, x.getType(), dy, weight);
  if (needW)
    out[1] = b.create<LinearGradWOp>(loc, weight.getType(), dy, x);
}

LogicalResult noGradThroughNF4(Operation *op, Value weight, bool need) {
  if (need && isa<NF4Type>(weight.getType()))
    return op->emitOpError()
           << "cannot build a gradient for an NF4 weight: quantized weights "
              "are frozen";
  return success();
}
} // namespace

LogicalResult EmbeddingOp::buildVJP(OpBuilder &b, ArrayRef<Value> grads,
                                    ArrayRef<bool> need,
                                    SmallVectorImpl<Value> &out) {
  if (grads[0] && need[0])
    out[0] = b.create<EmbeddingGradOp>(getLoc(), getTable().getType(),
                                       grads[0], getIds());
  return success();
}

LogicalResult RMSNormOp::buildVJP(OpBuilder &b, ArrayRef<Value> grads,
                                  ArrayRef<bool> need,
                                  SmallVectorImpl<Value> &out) {
  if (!grads[0] || !anyNeeded(need))
    return success();
  auto g = b.create<RMSNormGradOp>(getLoc(), getX().getType(),
                                   getWeight().getType(), grads[0], getX(),
                                   getWeight(), getEpsAttr());
  if (need[0])
    out[0] = g.getDx();
  if (need[1])
    out[1] = g.getDweight();
  return success();
}

LogicalResult LinearOp::buildVJP(OpBuilder &b, ArrayRef<Value> grads,
                                 ArrayRef<bool> need,
                                 SmallVectorImpl<Value> &out) {
  Value dy = grads[0];
  if (!dy)
    return success();
  linearVJP(b, getLoc(), getX(), getWeight(), dy, need[0], need[1], out);
  if (getBias() && need[2])
    out[2] = b.create<BiasGradOp>(getLoc(), getBias().getType(), dy);
  return success();
}

LogicalResult AdapterOp::buildVJP(OpBuilder &b, ArrayRef<Value> grads,
                                  ArrayRef<bool> need,
                                  SmallVectorImpl<Value> &out) {
  if (!grads[0] || !anyNeeded(need))
    return success();
  // dx only where it is needed: without it the kernel computes dA and dB
  // alone.
  auto g = b.create<AdapterGradOp>(
      getLoc(), need[0] ? getX().getType() : Type(), getA().getType(),
      getB().getType(), grads[0], getX(), getA(), getB(), getAlphaAttr(),
      getDropoutAttr());
  if (need[0])
    out[0] = g.getDx();
  if (need[1])
    out[1] = g.getDa();
  if (need[2])
    out[2] = g.getDb();
  return success();
}

LogicalResult RopeOp::buildVJP(OpBuilder &b, ArrayRef<Value> grads,
                               ArrayRef<bool> need,
                               SmallVectorImpl<Value> &out) {
  if (grads[0] && need[0])
    out[0] = b.create<RopeGradOp>(getLoc(), getX().getType(), grads[0],
                                  getPositions(), getHeadDimAttr(),
                                  getThetaAttr(), getScalingAttr());
  return success();
}

LogicalResult AttentionOp::buildVJP(OpBuilder &b, ArrayRef<Value> grads,
                                    ArrayRef<bool> need,
                                    SmallVectorImpl<Value> &out) {
  if (!grads[0] || !(need[0] || need[1] || need[2]))
    return success();
  auto g = b.create<AttentionGradOp>(
      getLoc(), getQ().getType(), getK().getType(), getV().getType(), grads[0],
      getQ(), getK(), getV(), /*out=*/Value(), /*lse=*/Value(), getSegmentIds(),
      getNumHeadsAttr(), getNumKvHeadsAttr(), getHeadDimAttr(), getScaleAttr(),
      getSlidingWindowAttr());
  for (unsigned i = 0; i < 3; ++i)
    if (need[i])
      out[i] = g->getResult(i);
  return success();
}

LogicalResult SwiGLUOp::buildVJP(OpBuilder &b, ArrayRef<Value> grads,
                                 ArrayRef<bool> need,
                                 SmallVectorImpl<Value> &out) {
  if (!grads[0] || !anyNeeded(need))
    return success();
  auto g = b.create<SwiGLUGradOp>(getLoc(), getGate().getType(),
                                  getUp().getType(), grads[0], getGate(),
                                  getUp());
  if (need[0])
    out[0] = g.getDgate();
  if (need[1])
    out[1] = g.getDup();
  return success();
}

LogicalResult AddOp::buildVJP(OpBuilder &, ArrayRef<Value> grads,
                              ArrayRef<bool> need,
                              SmallVectorImpl<Value> &out) {
  for (unsigned i = 0; i < 2; ++i)
    if (need[i])
      out[i] = grads[0];
  return success();
}

LogicalResult LMHeadOp::buildVJP(OpBuilder &b, ArrayRef<Value> grads,
                                 ArrayRef<bool> need,
                                 SmallVectorImpl<Value> &out) {
  if (grads[0])
    linearVJP(b, getLoc(), getX(), getWeight(), grads[0], need[0], need[1],
              out);
  return success();
}

LogicalResult CrossEntropyOp::buildVJP(OpBuilder &b, ArrayRef<Value> grads,
                                       ArrayRef<bool> need,
                                       SmallVectorImpl<Value> &out) {
  // Only the summed loss is differentiable; the count is an integer.
  if (grads[0] && need[0])
    out[0] = b.create<CrossEntropyGradOp>(getLoc(), getLogits().getType(),
                                          getLogits(), getTargets(),
                                          getMask(), grads[0]);
  return success();
}

LogicalResult SequenceLogProbsOp::buildVJP(OpBuilder &b, ArrayRef<Value> grads,
                                           ArrayRef<bool> need,
                                           SmallVectorImpl<Value> &out) {
  if (grads[0] && need[0])
    out[0] = b.create<SequenceLogProbsGradOp>(getLoc(), getLogits().getType(), getLogits(),
                                              getTargets(), getMask(), getSequenceIds(),
                                              grads[0]);
  return success();
}

LogicalResult ReplayLossOp::buildVJP(OpBuilder &b, ArrayRef<Value> grads,
                                     ArrayRef<bool> need, SmallVectorImpl<Value> &out) {
  if (grads[0] && need[0])
    out[0] = b.create<ReplayLossGradOp>(getLoc(), getLmSum().getType(), getLmCount(),
                                        getPairMask(), grads[0], getWeightAttr());
  return success();
}

LogicalResult EWCPenaltyOp::buildVJP(OpBuilder &b, ArrayRef<Value> grads,
                                     ArrayRef<bool> need, SmallVectorImpl<Value> &out) {
  // The weighted penalty enters the loss; the plain one is a metric.
  if (!grads[0] || (!need[0] && !need[1]))
    return success();
  if (need[2])
    return emitOpError() << "the Fisher must not depend on a trainable parameter";
  auto g = b.create<EWCPenaltyGradOp>(getLoc(), getA().getType(), getB().getType(), getA(),
                                      getB(), getFisher(), getCount(), grads[0],
                                      getScalingAttr(), getLambdaAttr());
  if (need[0])
    out[0] = g.getDa();
  if (need[1])
    out[1] = g.getDb();
  return success();
}

LogicalResult DPOLossOp::buildVJP(OpBuilder &b, ArrayRef<Value> grads,
                                  ArrayRef<bool> need, SmallVectorImpl<Value> &out) {
  // Only the summed loss is differentiated (the rest are metrics), and only
  // through the policy: the reference has no trainable parameter.
  if (grads[0] && need[0])
    out[0] = b.create<DPOLossGradOp>(getLoc(), getPolicy().getType(), getPolicy(),
                                     getReference(), getPairMask(), grads[0], getBetaAttr(),
                                     getLossTypeAttr());
  if (need[1])
    return emitOpError() << "the reference log-probabilities depend on a trainable "
                            "parameter: the reference pass must run without adapters";
  return success();
}

LogicalResult FusedLinearOp::buildVJP(OpBuilder &b, ArrayRef<Value> grads,
                                      ArrayRef<bool> need,
                                      SmallVectorImpl<Value> &out) {
  Value dy = grads[0];
  if (!dy)
    return success();
  // Operands: x, weight, [bias], [a, b].
  unsigned xi = 0, wi = 1, bi = 2;
  unsigned ai = getBias() ? 3 : 2;
  if (failed(noGradThroughNF4(*this, getWeight(), need[wi])))
    return failure();
  if (getA()) {
    if (need[xi] || need[ai] || need[ai + 1]) {
      // dx only where it is needed: without it the kernel skips dy·deq(W)
      // and the adapter's dx term.
      auto g = b.create<FusedLinearGradOp>(
          getLoc(), need[xi] ? getX().getType() : Type(), getA().getType(),
          getB().getType(), dy, getX(), getWeight(), getA(), getB(),
          getAlphaAttr(), getDropoutAttr());
      if (need[xi])
        out[xi] = g.getDx();
      if (need[ai])
        out[ai] = g.getDa();
      if (need[ai + 1])
        out[ai + 1] = g.getDb();
    }
  } else if (need[xi]) {
    out[xi] =
        b.create<LinearGradXOp>(getLoc(), getX().getType(), dy, getWeight());
  }
  if (need[wi])
    out[wi] = b.create<LinearGradWOp>(getLoc(), getWeight().getType(), dy,
                                      getX());
  if (getBias() && need[bi])
    out[bi] = b.create<BiasGradOp>(getLoc(), getBias().getType(), dy);
  return success();
}

LogicalResult LMHeadCrossEntropyOp::buildVJP(OpBuilder &b,
                                             ArrayRef<Value> grads,
                                             ArrayRef<bool> need,
                                             SmallVectorImpl<Value> &out) {
  Value dloss = grads[0];
  if (!dloss)
    return success();
  if (need[0])
    out[0] = b.create<LMHeadCrossEntropyGradOp>(
        getLoc(), getX().getType(), getX(), getWeight(), getTargets(),
        getMask(), dloss, getChunkSizeAttr());
  if (need[1])
    out[1] = b.create<LMHeadCrossEntropyGradWOp>(
        getLoc(), getWeight().getType(), getX(), getWeight(), getTargets(),
        getMask(), dloss, getChunkSizeAttr());
  return success();
}
