//===- LoraTrainingOps.cpp - verifiers of fused and gradient ops ----------===//
#include "lora/Dialect/Lora/IR/LoraOps.h"

#include "VerifyUtils.h"

#include "llvm/ADT/StringSet.h"

#include <cmath>

using namespace mlir;
using namespace mlir::lora;
using namespace mlir::lora::detail;

namespace {

/// A weight operand as a ranked tensor type: NF4 weights are seen through
/// their logical shape with no element type constraint.
RankedTensorType weightTensor(Value w) {
  if (auto nf4 = dyn_cast<NF4Type>(w.getType()))
    return RankedTensorType::get(nf4.getShape(),
                                 Float32Type::get(w.getContext()));
  return cast<RankedTensorType>(w.getType());
}

bool isNF4(Value w) { return isa<NF4Type>(w.getType()); }

/// `x [..., in]` through a `[out, in]` weight gives `y [..., out]`.
LogicalResult verifyLinearShapes(Operation *op, StringRef xName, Value xv,
                                 Value wv, StringRef yName, Value yv) {
  RankedTensorType x = tensorOf(xv), y = tensorOf(yv), w = weightTensor(wv);
  if (x.getRank() < 1)
    return op->emitOpError() << xName << " must have rank >= 1, got " << x;
  int64_t last = x.getRank() - 1;
  if (failed(expectRank(op, "weight", w, 2)) ||
      failed(expectSameDim(op, xName, x, last, "weight", w, 1)) ||
      failed(expectRank(op, yName, y, x.getRank())) ||
      failed(expectSameLeading(op, yName, y, xName, x, last)) ||
      failed(expectSameDim(op, yName, y, last, "weight", w, 0)))
    return failure();
  return success();
}

/// A `[r, in]` and B `[out, r]` of an adapter on a `[out, in]` layer.
LogicalResult verifyAdapterWeights(Operation *op, Value xv, Value av,
                                   Value bv, Value yv, double dropout) {
  RankedTensorType x = tensorOf(xv), a = tensorOf(av), b = tensorOf(bv),
                   y = tensorOf(yv);
  int64_t last = x.getRank() - 1;
  if (failed(expectRank(op, "A", a, 2)) || failed(expectRank(op, "B", b, 2)) ||
      failed(expectSameDim(op, "A", a, 0, "B", b, 1)) ||
      failed(expectSameDim(op, "A", a, 1, "x", x, last)) ||
      failed(expectSameDim(op, "B", b, 0, "y", y, y.getRank() - 1)) ||
      failed(expectSameElementType(op, "A", a, "x", x)) ||
      failed(expectSameElementType(op, "B", b, "x", x)))
    return failure();
  if (!(dropout >= 0.0 && dropout < 1.0))
    return op->emitOpError() << "attribute 'dropout' must be in [0, 1), got "
                             << dropout;
  return success();
}

/// LM head + cross-entropy operands: x [..., D], w [V, D], targets and mask
/// with the leading shape of x.
LogicalResult verifyLMHeadLoss(Operation *op, Value xv, Value wv, Value tv,
                               Value mv, int64_t chunk) {
  RankedTensorType x = tensorOf(xv), w = tensorOf(wv), t = tensorOf(tv),
                   m = tensorOf(mv);
  if (x.getRank() < 2)
    return op->emitOpError() << "x must have rank >= 2, got " << x;
  int64_t lead = x.getRank() - 1;
  if (failed(expectRank(op, "weight", w, 2)) ||
      failed(expectSameDim(op, "x", x, lead, "weight", w, 1)) ||
      failed(expectSameElementType(op, "weight", w, "x", x)) ||
      failed(expectRank(op, "targets", t, lead)) ||
      failed(expectRank(op, "mask", m, lead)) ||
      failed(expectSameLeading(op, "targets", t, "x", x, lead)) ||
      failed(expectSameLeading(op, "mask", m, "x", x, lead)) ||
      failed(expectPositive(op, "chunk_size", chunk)))
    return failure();
  return success();
}

} // namespace

//===----------------------------------------------------------------------===//
// Fused forward ops
//===----------------------------------------------------------------------===//

LogicalResult FusedLinearOp::verify() {
  if (failed(verifyLinearShapes(*this, "x", getX(), getWeight(), "result",
                                getResult())))
    return failure();
  RankedTensorType x = tensorOf(getX());
  if (!isNF4(getWeight()) &&
      failed(expectSameElementType(*this, "weight", tensorOf(getWeight()), "x",
                                   x)))
    return failure();
  if (failed(expectSameElementType(*this, "result", tensorOf(getResult()),
                                   "x", x)))
    return failure();
  if (Value bias = getBias()) {
    RankedTensorType b = tensorOf(bias);
    if (failed(expectRank(*this, "bias", b, 1)) ||
        failed(expectSameDim(*this, "bias", b, 0, "weight",
                             weightTensor(getWeight()), 0)) ||
        failed(expectSameElementType(*this, "bias", b, "x", x)))
      return failure();
  }
  if (static_cast<bool>(getA()) != static_cast<bool>(getB()))
    return emitOpError() << "adapter needs both A and B";
  if (getA()) {
    if (!getAlpha())
      return emitOpError() << "an adapter needs attribute 'alpha'";
    return verifyAdapterWeights(*this, getX(), getA(), getB(), getResult(),
                                getDropout().convertToDouble());
  }
  if (getAlpha())
    return emitOpError() << "attribute 'alpha' needs an adapter";
  return success();
}

LogicalResult LMHeadCrossEntropyOp::verify() {
  return verifyLMHeadLoss(*this, getX(), getWeight(), getTargets(), getMask(),
                          getChunkSize());
}

LogicalResult LMHeadCrossEntropyWithGradOp::verify() {
  if (failed(verifyLMHeadLoss(*this, getX(), getWeight(), getTargets(),
                              getMask(), getChunkSize())) ||
      failed(expectSameType(*this, "dx", getDx().getType(), "x",
                            getX().getType())))
    return failure();
  if (!std::isfinite(getDloss().convertToDouble()))
    return emitOpError() << "dloss must be finite, got "
                         << getDloss().convertToDouble();
  return success();
}

LogicalResult SelectRowsOp::verify() {
  RankedTensorType x = tensorOf(getX()), idx = tensorOf(getIndex()),
                   res = tensorOf(getResult());
  if (failed(expectRank(*this, "x", x, 3)) ||
      failed(expectRank(*this, "index", idx, 1)) ||
      failed(expectRank(*this, "result", res, 3)) ||
      failed(expectSameDim(*this, "index", idx, 0, "x", x, 0)) ||
      failed(expectSameDim(*this, "result", res, 0, "x", x, 0)) ||
      failed(expectDimValue(*this, "result", res, 1, 1, "one row per sequence")) ||
      failed(expectSameDim(*this, "result", res, 2, "x", x, 2)) ||
      failed(expectSameElementType(*this, "result", res, "x", x)))
    return failure();
  return success();
}

LogicalResult SegmentBoundaryMaskOp::verify() {
  RankedTensorType m = tensorOf(getMask()), s = tensorOf(getSegmentIds());
  if (failed(expectRank(*this, "mask", m, 2)) ||
      failed(expectRank(*this, "segment_ids", s, 2)) ||
      failed(expectSameLeading(*this, "segment_ids", s, "mask", m, 2)) ||
      failed(expectSameType(*this, "result", getResult().getType(), "mask",
                            m)))
    return failure();
  return success();
}

OpFoldResult ScalarOp::fold(FoldAdaptor) { return getValueAttr(); }

//===----------------------------------------------------------------------===//
// Gradient ops
//===----------------------------------------------------------------------===//

LogicalResult LinearGradXOp::verify() {
  // dy [..., out] through W [out, in] gives dx [..., in]: the transpose of
  // the forward, so check it as a linear layer from dx to dy.
  RankedTensorType dy = tensorOf(getDy()), dx = tensorOf(getDx()),
                   w = weightTensor(getWeight());
  if (dy.getRank() < 1)
    return emitOpError() << "dy must have rank >= 1, got " << dy;
  int64_t last = dy.getRank() - 1;
  if (failed(expectRank(*this, "weight", w, 2)) ||
      failed(expectSameDim(*this, "dy", dy, last, "weight", w, 0)) ||
      failed(expectRank(*this, "dx", dx, dy.getRank())) ||
      failed(expectSameLeading(*this, "dx", dx, "dy", dy, last)) ||
      failed(expectSameDim(*this, "dx", dx, last, "weight", w, 1)))
    return failure();
  if (!isNF4(getWeight()) &&
      failed(expectSameElementType(*this, "dx", dx, "weight", w)))
    return failure();
  return success();
}

LogicalResult LinearGradWOp::verify() {
  RankedTensorType dy = tensorOf(getDy()), x = tensorOf(getX()),
                   dw = tensorOf(getDweight());
  if (dy.getRank() < 1)
    return emitOpError() << "dy must have rank >= 1, got " << dy;
  int64_t last = dy.getRank() - 1;
  if (failed(expectRank(*this, "x", x, dy.getRank())) ||
      failed(expectSameLeading(*this, "x", x, "dy", dy, last)) ||
      failed(expectRank(*this, "dweight", dw, 2)) ||
      failed(expectSameDim(*this, "dweight", dw, 0, "dy", dy, last)) ||
      failed(expectSameDim(*this, "dweight", dw, 1, "x", x, last)))
    return failure();
  return success();
}

LogicalResult BiasGradOp::verify() {
  RankedTensorType dy = tensorOf(getDy()), db = tensorOf(getDbias());
  if (dy.getRank() < 1)
    return emitOpError() << "dy must have rank >= 1, got " << dy;
  if (failed(expectRank(*this, "dbias", db, 1)) ||
      failed(expectSameDim(*this, "dbias", db, 0, "dy", dy, dy.getRank() - 1)))
    return failure();
  return success();
}

LogicalResult AdapterGradOp::verify() {
  if ((getDx() && failed(expectSameType(*this, "dx", getDx().getType(), "x",
                                        getX().getType()))) ||
      failed(expectSameType(*this, "da", getDa().getType(), "A",
                            getA().getType())) ||
      failed(expectSameType(*this, "db", getDb().getType(), "B",
                            getB().getType())) ||
      failed(expectSameElementType(*this, "dy", tensorOf(getDy()), "x",
                                   tensorOf(getX()))))
    return failure();
  RankedTensorType dy = tensorOf(getDy()), x = tensorOf(getX());
  if (x.getRank() < 1 || dy.getRank() != x.getRank())
    return emitOpError() << "dy " << dy << " and x " << x
                         << " must have the same rank >= 1";
  if (failed(expectSameLeading(*this, "dy", dy, "x", x, x.getRank() - 1)))
    return failure();
  return verifyAdapterWeights(*this, getX(), getA(), getB(), getDy(),
                              getDropout().convertToDouble());
}

LogicalResult FusedLinearGradOp::verify() {
  if ((getDx() && failed(expectSameType(*this, "dx", getDx().getType(), "x",
                                        getX().getType()))) ||
      failed(expectSameType(*this, "da", getDa().getType(), "A",
                            getA().getType())) ||
      failed(expectSameType(*this, "db", getDb().getType(), "B",
                            getB().getType())) ||
      failed(
          verifyLinearShapes(*this, "x", getX(), getWeight(), "dy", getDy())))
    return failure();
  return verifyAdapterWeights(*this, getX(), getA(), getB(), getDy(),
                              getDropout().convertToDouble());
}

LogicalResult RMSNormGradOp::verify() {
  if (failed(expectSameType(*this, "dy", getDy().getType(), "x",
                            getX().getType())) ||
      failed(expectSameType(*this, "dx", getDx().getType(), "x",
                            getX().getType())) ||
      failed(expectSameType(*this, "dweight", getDweight().getType(),
                            "weight", getWeight().getType())))
    return failure();
  RankedTensorType x = tensorOf(getX()), w = tensorOf(getWeight());
  if (x.getRank() < 1)
    return emitOpError() << "x must have rank >= 1, got " << x;
  if (failed(expectNormWeight(*this, w, x)))
    return failure();
  return success();
}

LogicalResult RopeGradOp::verify() {
  RankedTensorType dy = tensorOf(getDy()), pos = tensorOf(getPositions());
  if (failed(expectRank(*this, "dy", dy, 3)) ||
      failed(expectRank(*this, "positions", pos, 2)) ||
      failed(expectSameLeading(*this, "positions", pos, "dy", dy, 2)) ||
      failed(expectPositive(*this, "head_dim", getHeadDim())) ||
      failed(expectSameType(*this, "dx", getDx().getType(), "dy", dy)))
    return failure();
  if (getHeadDim() % 2 != 0)
    return emitOpError() << "attribute 'head_dim' must be even, got "
                         << getHeadDim();
  if (!ShapedType::isDynamic(dy.getDimSize(2)) &&
      dy.getDimSize(2) % getHeadDim() != 0)
    return emitOpError() << "dy feature dimension (" << dy.getDimSize(2)
                         << ") must be a multiple of head_dim ("
                         << getHeadDim() << ")";
  return success();
}

/// The softmax statistics of `q`'s attention: `[batch, num_heads, seq]`
/// (the element type, f32, is the op's type constraint).
static LogicalResult verifyAttentionLse(Operation *op, Value qv, Value lsev,
                                        int64_t heads) {
  RankedTensorType q = tensorOf(qv), lse = tensorOf(lsev);
  if (failed(expectRank(op, "lse", lse, 3)) ||
      failed(expectSameDim(op, "lse", lse, 0, "q", q, 0)) ||
      failed(expectDimValue(op, "lse", lse, 1, heads, "num_heads")) ||
      failed(expectSameDim(op, "lse", lse, 2, "q", q, 1)))
    return failure();
  return success();
}

LogicalResult AttentionWithLseOp::verify() {
  if (failed(verifyAttentionOperands(
          *this, getQ(), getK(), getV(), getSegmentIds(), getNumHeads(),
          getNumKvHeads(), getHeadDim(), getSlidingWindow())) ||
      failed(expectSameType(*this, "result", getResult().getType(), "q",
                            getQ().getType())))
    return failure();
  return verifyAttentionLse(*this, getQ(), getLse(), getNumHeads());
}

LogicalResult AttentionGradOp::verify() {
  if (static_cast<bool>(getOut()) != static_cast<bool>(getLse()))
    return emitOpError() << "takes the forward's 'out' and 'lse' together "
                            "or neither";
  // q, k, v first: the saved operands' checks read q's dimensions.
  if (failed(verifyAttentionOperands(*this, getQ(), getK(), getV(),
                                     getSegmentIds(), getNumHeads(),
                                     getNumKvHeads(), getHeadDim(),
                                     getSlidingWindow())) ||
      failed(expectSameType(*this, "dout", getDout().getType(), "q",
                            getQ().getType())) ||
      failed(expectSameType(*this, "dq", getDq().getType(), "q",
                            getQ().getType())) ||
      failed(expectSameType(*this, "dk", getDk().getType(), "k",
                            getK().getType())) ||
      failed(expectSameType(*this, "dv", getDv().getType(), "v",
                            getV().getType())))
    return failure();
  if (getOut() &&
      (failed(expectSameType(*this, "out", getOut().getType(), "q",
                             getQ().getType())) ||
       failed(verifyAttentionLse(*this, getQ(), getLse(), getNumHeads()))))
    return failure();
  return success();
}

LogicalResult SwiGLUGradOp::verify() {
  Type t = getGate().getType();
  if (failed(expectSameType(*this, "up", getUp().getType(), "gate", t)) ||
      failed(expectSameType(*this, "dy", getDy().getType(), "gate", t)) ||
      failed(expectSameType(*this, "dgate", getDgate().getType(), "gate", t)) ||
      failed(expectSameType(*this, "dup", getDup().getType(), "gate", t)))
    return failure();
  return success();
}

LogicalResult EmbeddingGradOp::verify() {
  RankedTensorType dy = tensorOf(getDy()), ids = tensorOf(getIds()),
                   dt = tensorOf(getDtable());
  if (failed(expectRank(*this, "dtable", dt, 2)) ||
      failed(expectRank(*this, "dy", dy, ids.getRank() + 1)) ||
      failed(expectSameLeading(*this, "dy", dy, "ids", ids, ids.getRank())) ||
      failed(expectSameDim(*this, "dy", dy, ids.getRank(), "dtable", dt, 1)) ||
      failed(expectSameElementType(*this, "dtable", dt, "dy", dy)))
    return failure();
  return success();
}

LogicalResult CrossEntropyGradOp::verify() {
  if (failed(verifyLossOperands(*this, getLogits(), getTargets(), getMask())) ||
      failed(expectSameType(*this, "dlogits", getDlogits().getType(), "logits",
                            getLogits().getType())))
    return failure();
  return success();
}

LogicalResult SequenceLogProbsGradOp::verify() {
  auto d = tensorOf(getDlogprobs());
  if (failed(detail::verifySequenceLogProbs(*this, getLogits(), getTargets(), getMask(),
                                            getSequenceIds(), getDlogprobs(),
                                            d.getRank() == 1 ? d.getDimSize(0) : -1)) ||
      failed(expectSameType(*this, "dlogits", getDlogits().getType(), "logits",
                            getLogits().getType())))
    return failure();
  return success();
}

LogicalResult EWCPenaltyGradOp::verify() {
  if (failed(detail::verifyEWCOperands(*this, getA(), getB(), getFisher())) ||
      failed(expectSameType(*this, "da", getDa().getType(), "a", getA().getType())) ||
      failed(expectSameType(*this, "db", getDb().getType(), "b", getB().getType())))
    return failure();
  return success();
}

LogicalResult DPOLossGradOp::verify() {
  if (failed(detail::verifyDPOLoss(*this, getPolicy(), getReference(), getPairMask(),
                                   getLossType())) ||
      failed(expectSameType(*this, "dpolicy", getDpolicy().getType(), "policy",
                            getPolicy().getType())))
    return failure();
  return success();
}

LogicalResult LMHeadCrossEntropyGradOp::verify() {
  if (failed(verifyLMHeadLoss(*this, getX(), getWeight(), getTargets(),
                              getMask(), getChunkSize())) ||
      failed(expectSameType(*this, "dx", getDx().getType(), "x",
                            getX().getType())))
    return failure();
  return success();
}

LogicalResult LMHeadCrossEntropyGradWOp::verify() {
  if (failed(verifyLMHeadLoss(*this, getX(), getWeight(), getTargets(),
                              getMask(), getChunkSize())) ||
      failed(expectSameType(*this, "dweight", getDweight().getType(),
                            "weight", getWeight().getType())))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// Optimizer ops
//===----------------------------------------------------------------------===//

LogicalResult AccumulateOp::verify() {
  RankedTensorType acc = tensorOf(getAcc()), v = tensorOf(getValue());
  if (acc.getShape() != v.getShape())
    return emitOpError() << "value shape " << v
                         << " must equal the accumulator shape " << acc;
  return expectSameType(*this, "result", getResult().getType(), "acc", acc);
}

LogicalResult AssignOp::verify() {
  if (getName().empty())
    return emitOpError() << "name must not be empty";
  if (!tensorOf(getValue()).hasStaticShape())
    return emitOpError() << "value must have a static shape, got "
                         << getValue().getType();
  return success();
}

LogicalResult ResetOp::verify() {
  if (getName().empty())
    return emitOpError() << "name must not be empty";
  auto storage = dyn_cast<RankedTensorType>(getStorageType());
  if (!storage || !storage.hasStaticShape())
    return emitOpError() << "storage type must be a static tensor, got "
                         << getStorageType();
  return success();
}

LogicalResult GlobalNormOp::verify() {
  if (getInputs().empty())
    return emitOpError() << "needs at least one tensor";
  return success();
}

LogicalResult ClipScaleOp::verify() {
  if (getMaxNorm().convertToDouble() < 0.0)
    return emitOpError() << "attribute 'max_norm' must be >= 0 (0: no "
                            "clipping), got "
                         << getMaxNorm().convertToDouble();
  return success();
}

LogicalResult AdamWOp::verify() {
  Type p = getParam().getType();
  if (failed(expectSameType(*this, "grad", getGrad().getType(), "param", p)) ||
      failed(expectSameType(*this, "m", getM().getType(), "param", p)) ||
      failed(expectSameType(*this, "v", getV().getType(), "param", p)) ||
      failed(expectSameType(*this, "new_param", getNewParam().getType(),
                            "param", p)) ||
      failed(expectSameType(*this, "new_m", getNewM().getType(), "param", p)) ||
      failed(expectSameType(*this, "new_v", getNewV().getType(), "param", p)))
    return failure();
  auto in01 = [](double x) { return x >= 0.0 && x < 1.0; };
  if (!in01(getBeta1().convertToDouble()))
    return emitOpError() << "attribute 'beta1' must be in [0, 1), got "
                         << getBeta1().convertToDouble();
  if (!in01(getBeta2().convertToDouble()))
    return emitOpError() << "attribute 'beta2' must be in [0, 1), got "
                         << getBeta2().convertToDouble();
  if (!(getEps().convertToDouble() > 0.0))
    return emitOpError() << "attribute 'eps' must be positive, got "
                         << getEps().convertToDouble();
  if (getWeightDecay().convertToDouble() < 0.0)
    return emitOpError() << "attribute 'weight_decay' must be >= 0, got "
                         << getWeightDecay().convertToDouble();
  return success();
}

LogicalResult CastOp::verify() {
  RankedTensorType in = tensorOf(getInput()), out = tensorOf(getResult());
  if (in.getShape() != out.getShape())
    return emitOpError() << "result shape " << out
                         << " must equal the input shape " << in;
  return success();
}

LogicalResult AllReduceSumOp::verify() {
  if (getInput().getType() != getResult().getType())
    return emitOpError() << "result type " << getResult().getType()
                         << " must equal the input type "
                         << getInput().getType();
  return success();
}

/// A bucket: a non-empty list of distinct names, a bucket index >= 0 and a
/// positive size.
static LogicalResult verifyBucket(Operation *op, ArrayAttr names,
                                  int64_t bucket, int64_t bytes) {
  if (names.empty())
    return op->emitOpError() << "needs at least one gradient name";
  llvm::StringSet<> seen;
  for (Attribute a : names) {
    StringRef n = cast<StringAttr>(a).getValue();
    if (n.empty())
      return op->emitOpError() << "has an empty gradient name";
    if (!seen.insert(n).second)
      return op->emitOpError() << "lists '" << n << "' twice";
  }
  if (bucket < 0)
    return op->emitOpError()
           << "attribute 'bucket' must be >= 0, got " << bucket;
  if (bytes <= 0)
    return op->emitOpError()
           << "attribute 'bytes' must be positive, got " << bytes;
  return success();
}

LogicalResult GradAllReduceStartOp::verify() {
  return verifyBucket(*this, getNames(), getBucket(), getBytes());
}

LogicalResult GradAllReduceWaitOp::verify() {
  return verifyBucket(*this, getNames(), getBucket(), getBytes());
}
