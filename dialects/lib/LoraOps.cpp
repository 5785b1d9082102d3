//===- LoraOps.cpp - lora operations and their verifiers ------------------===//
#include "lora/Dialect/Lora/IR/LoraOps.h"
#include "VerifyUtils.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpImplementation.h"

#include <cmath>

using namespace mlir;
using namespace mlir::lora;

#define GET_OP_CLASSES
#include "lora/Dialect/Lora/IR/LoraOps.cpp.inc"

using namespace mlir::lora::detail;

//===----------------------------------------------------------------------===//
// ParamOp
//===----------------------------------------------------------------------===//

LogicalResult ParamOp::verify() {
  if (getName().empty())
    return emitOpError() << "name must not be empty";
  Type type = getResult().getType();
  if (auto t = dyn_cast<RankedTensorType>(type)) {
    if (!t.hasStaticShape())
      return emitOpError() << "parameter '" << getName()
                           << "' must have a static shape, got " << t;
    if (t.getNumElements() == 0)
      return emitOpError() << "parameter '" << getName()
                           << "' must not be empty, got " << t;
  } else if (getRole() != ParamRole::Frozen) {
    return emitOpError() << "parameter '" << getName()
                         << "' of quantized type " << type
                         << " must be frozen, not "
                         << stringifyParamRole(getRole());
  }
  ParamRole role = getRole();
  ParamInit init = getEffectiveInit();
  bool owned = role == ParamRole::OptimizerState || role == ParamRole::Gradient;
  if (owned && !getOf())
    return emitOpError() << stringifyParamRole(role) << " parameter '"
                         << getName()
                         << "' needs an 'of' attribute naming its trainable "
                            "parameter";
  if (init == ParamInit::Fisher && !getOf())
    return emitOpError() << "parameter '" << getName()
                         << "' with init(fisher) needs an 'of' attribute "
                            "naming the weight whose Fisher it is";
  if (!owned && init != ParamInit::Fisher && getOf())
    return emitOpError() << "attribute 'of' is only valid on optimizer_state "
                            "and gradient parameters and on init(fisher)";
  if (getOf() && getOf()->empty())
    return emitOpError() << "attribute 'of' must not be empty";
  // Which fillings fit which role.
  bool fits = false;
  switch (init) {
  case ParamInit::Checkpoint:
    fits = role == ParamRole::Frozen || role == ParamRole::Trainable;
    break;
  case ParamInit::KaimingUniform:
    fits = role == ParamRole::Trainable;
    break;
  case ParamInit::Zeros:
    fits = role != ParamRole::Frozen;
    break;
  case ParamInit::CopyOfOwner:
    fits = role == ParamRole::OptimizerState;
    break;
  case ParamInit::Fisher:
    fits = role == ParamRole::Frozen;
    break;
  }
  if (!fits)
    return emitOpError() << "init(" << stringifyParamInit(init)
                         << ") is not valid for a " << stringifyParamRole(role)
                         << " parameter";
  return success();
}

ParamInit ParamOp::getEffectiveInit() {
  if (std::optional<ParamInit> init = getInit())
    return *init;
  return getRole() == ParamRole::Frozen || getRole() == ParamRole::Trainable
             ? ParamInit::Checkpoint
             : ParamInit::Zeros;
}

//===----------------------------------------------------------------------===//
// EmbeddingOp
//===----------------------------------------------------------------------===//

LogicalResult EmbeddingOp::verify() {
  RankedTensorType table = tensorOf(getTable()), ids = tensorOf(getIds()),
                   res = tensorOf(getResult());
  if (failed(expectRank(*this, "table", table, 2)) ||
      failed(expectRank(*this, "result", res, ids.getRank() + 1)) ||
      failed(expectSameLeading(*this, "result", res, "ids", ids,
                               ids.getRank())) ||
      failed(expectSameDim(*this, "result", res, ids.getRank(), "table",
                           table, 1)) ||
      failed(expectSameElementType(*this, "result", res, "table", table)))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// RMSNormOp
//===----------------------------------------------------------------------===//

LogicalResult RMSNormOp::verify() {
  RankedTensorType x = tensorOf(getX()), w = tensorOf(getWeight());
  if (x.getRank() < 1)
    return emitOpError() << "x must have rank >= 1, got " << x;
  if (failed(expectNormWeight(*this, w, x)) ||
      failed(expectSameElementType(*this, "weight", w, "x", x)) ||
      failed(expectSameType(*this, "result", getResult().getType(), "x", x)))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// LinearOp
//===----------------------------------------------------------------------===//

LogicalResult LinearOp::verify() {
  RankedTensorType x = tensorOf(getX()), w = tensorOf(getWeight()),
                   res = tensorOf(getResult());
  if (x.getRank() < 1)
    return emitOpError() << "x must have rank >= 1, got " << x;
  int64_t last = x.getRank() - 1;
  if (failed(expectRank(*this, "weight", w, 2)) ||
      failed(expectSameDim(*this, "x", x, last, "weight", w, 1)) ||
      failed(expectRank(*this, "result", res, x.getRank())) ||
      failed(expectSameLeading(*this, "result", res, "x", x, last)) ||
      failed(expectSameDim(*this, "result", res, last, "weight", w, 0)) ||
      failed(expectSameElementType(*this, "weight", w, "x", x)) ||
      failed(expectSameElementType(*this, "result", res, "x", x)))
    return failure();
  if (Value bias = getBias()) {
    RankedTensorType b = tensorOf(bias);
    if (failed(expectRank(*this, "bias", b, 1)) ||
        failed(expectSameDim(*this, "bias", b, 0, "weight", w, 0)) ||
        failed(expectSameElementType(*this, "bias", b, "x", x)))
      return failure();
  }
  return success();
}

//===----------------------------------------------------------------------===//
// AdapterOp
//===----------------------------------------------------------------------===//

int64_t AdapterOp::getRank() { return tensorOf(getA()).getDimSize(0); }

double AdapterOp::getScaling() {
  return getAlpha().convertToDouble() / static_cast<double>(getRank());
}

LogicalResult AdapterOp::verify() {
  RankedTensorType x = tensorOf(getX()), a = tensorOf(getA()),
                   b = tensorOf(getB()), res = tensorOf(getResult());
  if (x.getRank() < 1)
    return emitOpError() << "x must have rank >= 1, got " << x;
  int64_t last = x.getRank() - 1;
  if (failed(expectRank(*this, "A", a, 2)) ||
      failed(expectRank(*this, "B", b, 2)))
    return failure();
  if (!a.hasStaticShape() || !b.hasStaticShape())
    return emitOpError() << "A and B must have static shapes, got " << a
                         << " and " << b;
  if (failed(expectSameDim(*this, "A", a, 0, "B", b, 1)) ||
      failed(expectSameDim(*this, "A", a, 1, "x", x, last)) ||
      failed(expectRank(*this, "result", res, x.getRank())) ||
      failed(expectSameLeading(*this, "result", res, "x", x, last)) ||
      failed(expectSameDim(*this, "result", res, last, "B", b, 0)) ||
      failed(expectSameElementType(*this, "A", a, "x", x)) ||
      failed(expectSameElementType(*this, "B", b, "x", x)) ||
      failed(expectSameElementType(*this, "result", res, "x", x)))
    return failure();
  double dropout = getDropout().convertToDouble();
  if (!(dropout >= 0.0 && dropout < 1.0))
    return emitOpError() << "attribute 'dropout' must be in [0, 1), got "
                         << dropout;
  return success();
}

//===----------------------------------------------------------------------===//
// RopeOp
//===----------------------------------------------------------------------===//

LogicalResult RopeOp::verify() {
  RankedTensorType x = tensorOf(getX()), pos = tensorOf(getPositions());
  int64_t headDim = getHeadDim();
  if (failed(expectRank(*this, "x", x, 3)) ||
      failed(expectRank(*this, "positions", pos, 2)) ||
      failed(expectSameLeading(*this, "positions", pos, "x", x, 2)) ||
      failed(expectPositive(*this, "head_dim", headDim)) ||
      failed(expectSameType(*this, "result", getResult().getType(), "x", x)))
    return failure();
  if (headDim % 2 != 0)
    return emitOpError() << "attribute 'head_dim' must be even, got "
                         << headDim;
  int64_t features = x.getDimSize(2);
  if (!ShapedType::isDynamic(features) && features % headDim != 0)
    return emitOpError() << "x feature dimension (" << features
                         << ") must be a multiple of head_dim (" << headDim
                         << ")";
  return success();
}

//===----------------------------------------------------------------------===//
// AttentionOp
//===----------------------------------------------------------------------===//

double AttentionOp::getEffectiveScale() {
  if (auto scale = getScale())
    return scale->convertToDouble();
  return 1.0 / std::sqrt(static_cast<double>(getHeadDim()));
}

LogicalResult mlir::lora::detail::verifyAttentionOperands(
    Operation *op, Value qv, Value kv, Value vv, Value seg, int64_t heads,
    int64_t kvHeads, int64_t headDim, std::optional<int64_t> window) {
  RankedTensorType q = tensorOf(qv), k = tensorOf(kv), v = tensorOf(vv);
  if (failed(expectPositive(op, "num_heads", heads)) ||
      failed(expectPositive(op, "num_kv_heads", kvHeads)) ||
      failed(expectPositive(op, "head_dim", headDim)))
    return failure();
  if (heads % kvHeads != 0)
    return op->emitOpError() << "num_heads (" << heads
                             << ") must be a multiple of num_kv_heads ("
                             << kvHeads << ")";
  if (failed(expectRank(op, "q", q, 3)) || failed(expectRank(op, "k", k, 3)) ||
      failed(expectRank(op, "v", v, 3)) ||
      failed(expectSameLeading(op, "k", k, "q", q, 2)) ||
      failed(expectSameLeading(op, "v", v, "q", q, 2)) ||
      failed(expectDimValue(op, "q", q, 2, heads * headDim,
                            "num_heads * head_dim")) ||
      failed(expectDimValue(op, "k", k, 2, kvHeads * headDim,
                            "num_kv_heads * head_dim")) ||
      failed(expectDimValue(op, "v", v, 2, kvHeads * headDim,
                            "num_kv_heads * head_dim")) ||
      failed(expectSameElementType(op, "k", k, "q", q)) ||
      failed(expectSameElementType(op, "v", v, "q", q)))
    return failure();
  if (seg) {
    RankedTensorType s = tensorOf(seg);
    if (failed(expectRank(op, "segment_ids", s, 2)) ||
        failed(expectSameLeading(op, "segment_ids", s, "q", q, 2)))
      return failure();
  }
  if (window)
    if (failed(expectPositive(op, "sliding_window", *window)))
      return failure();
  return success();
}

LogicalResult AttentionOp::verify() {
  if (failed(verifyAttentionOperands(*this, getQ(), getK(), getV(),
                                     getSegmentIds(), getNumHeads(),
                                     getNumKvHeads(), getHeadDim(),
                                     getSlidingWindow())))
    return failure();
  return expectSameType(*this, "result", getResult().getType(), "q",
                        getQ().getType());
}

//===----------------------------------------------------------------------===//
// Elementwise ops
//===----------------------------------------------------------------------===//

LogicalResult SwiGLUOp::verify() {
  if (failed(expectSameType(*this, "up", getUp().getType(), "gate",
                            getGate().getType())) ||
      failed(expectSameType(*this, "result", getResult().getType(), "gate",
                            getGate().getType())))
    return failure();
  return success();
}

LogicalResult AddOp::verify() {
  if (failed(expectSameType(*this, "rhs", getRhs().getType(), "lhs",
                            getLhs().getType())) ||
      failed(expectSameType(*this, "result", getResult().getType(), "lhs",
                            getLhs().getType())))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// LMHeadOp / CrossEntropyOp
//===----------------------------------------------------------------------===//

LogicalResult LMHeadOp::verify() {
  RankedTensorType x = tensorOf(getX()), w = tensorOf(getWeight()),
                   res = tensorOf(getLogits());
  if (x.getRank() < 1)
    return emitOpError() << "x must have rank >= 1, got " << x;
  int64_t last = x.getRank() - 1;
  if (failed(expectRank(*this, "weight", w, 2)) ||
      failed(expectSameDim(*this, "x", x, last, "weight", w, 1)) ||
      failed(expectRank(*this, "logits", res, x.getRank())) ||
      failed(expectSameLeading(*this, "logits", res, "x", x, last)) ||
      failed(expectSameDim(*this, "logits", res, last, "weight", w, 0)) ||
      failed(expectSameElementType(*this, "weight", w, "x", x)))
    return failure();
  return success();
}

LogicalResult mlir::lora::detail::verifyLossOperands(Operation *op,
                                                   Value logitsV,
                                                   Value targetsV,
                                                   Value maskV) {
  RankedTensorType logits = tensorOf(logitsV), targets = tensorOf(targetsV),
                   mask = tensorOf(maskV);
  if (logits.getRank() < 2)
    return op->emitOpError() << "logits must have rank >= 2, got " << logits;
  int64_t lead = logits.getRank() - 1;
  if (failed(expectRank(op, "targets", targets, lead)) ||
      failed(expectRank(op, "mask", mask, lead)) ||
      failed(expectSameLeading(op, "targets", targets, "logits", logits,
                               lead)) ||
      failed(expectSameLeading(op, "mask", mask, "logits", logits, lead)))
    return failure();
  return success();
}

LogicalResult CrossEntropyOp::verify() {
  return verifyLossOperands(*this, getLogits(), getTargets(), getMask());
}

// The operands of lora.sequence_logprobs and its gradient.
LogicalResult mlir::lora::detail::verifySequenceLogProbs(Operation *op, Value logits,
                                                        Value targets, Value mask,
                                                        Value sequenceIds, Value perSequence,
                                                        int64_t numSequences) {
  if (failed(verifyLossOperands(op, logits, targets, mask)))
    return failure();
  RankedTensorType l = tensorOf(logits), ids = tensorOf(sequenceIds),
                   out = tensorOf(perSequence);
  int64_t lead = l.getRank() - 1;
  if (failed(expectRank(op, "sequence_ids", ids, lead)) ||
      failed(expectSameLeading(op, "sequence_ids", ids, "logits", l, lead)))
    return failure();
  if (numSequences <= 0)
    return op->emitOpError() << "num_sequences must be positive, got " << numSequences;
  if (out.getRank() != 1 || out.getDimSize(0) != numSequences)
    return op->emitOpError() << "per-sequence values must be [" << numSequences
                             << "] (num_sequences), got " << out;
  return success();
}

LogicalResult SequenceLogProbsOp::verify() {
  return detail::verifySequenceLogProbs(*this, getLogits(), getTargets(), getMask(),
                                        getSequenceIds(), getLogprobs(), getNumSequences());
}

LogicalResult mlir::lora::detail::verifyEWCOperands(Operation *op, Value aV, Value bV,
                                                   Value fV) {
  RankedTensorType a = tensorOf(aV), b = tensorOf(bV), f = tensorOf(fV);
  if (a.getRank() != 2 || b.getRank() != 2 || f.getRank() != 2)
    return op->emitOpError() << "a, b and fisher must be matrices, got " << a << ", " << b
                             << " and " << f;
  if (a.getDimSize(0) != b.getDimSize(1))
    return op->emitOpError() << "a " << a << " and b " << b << " disagree on the rank";
  if (f.getDimSize(0) != b.getDimSize(0) || f.getDimSize(1) != a.getDimSize(1))
    return op->emitOpError() << "fisher must be [out, in] = [" << b.getDimSize(0) << ", "
                             << a.getDimSize(1) << "] like b · a, got " << f;
  return success();
}

LogicalResult EWCPenaltyOp::verify() {
  return detail::verifyEWCOperands(*this, getA(), getB(), getFisher());
}

// The operands of lora.dpo_loss and its gradient.
LogicalResult mlir::lora::detail::verifyDPOLoss(Operation *op, Value policy, Value reference,
                                               Value pairMask, StringRef lossType) {
  RankedTensorType p = tensorOf(policy), r = tensorOf(reference), m = tensorOf(pairMask);
  if (p.getRank() != 1 || p != r)
    return op->emitOpError() << "policy and reference must be the same [2 * pairs] tensor, got "
                             << p << " and " << r;
  if (m.getRank() != 1 || 2 * m.getDimSize(0) != p.getDimSize(0))
    return op->emitOpError() << "pair_mask must be [pairs] with 2 * pairs = "
                             << p.getDimSize(0) << " log-probabilities, got " << m;
  if (lossType != "sigmoid" && lossType != "ipo")
    return op->emitOpError() << "loss_type must be sigmoid or ipo, got '" << lossType << "'";
  return success();
}

LogicalResult DPOLossOp::verify() {
  return detail::verifyDPOLoss(*this, getPolicy(), getReference(), getPairMask(), getLossType());
}

//===----------------------------------------------------------------------===//
// DequantizeOp
//===----------------------------------------------------------------------===//

LogicalResult DequantizeOp::verify() {
  auto in = cast<NF4Type>(getInput().getType());
  RankedTensorType res = tensorOf(getResult());
  if (res.getShape() != in.getShape())
    return emitOpError() << "result shape " << res
                         << " must equal the quantized shape " << in;
  return success();
}
