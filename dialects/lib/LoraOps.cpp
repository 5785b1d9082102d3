//===- LoraOps.cpp - lora operations and their verifiers ------------------===//
#include "lora/Dialect/Lora/IR/LoraOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpImplementation.h"

#include <cmath>

using namespace mlir;
using namespace mlir::lora;

#define GET_OP_CLASSES
#include "lora/Dialect/Lora/IR/LoraOps.cpp.inc"

namespace {

RankedTensorType tensorOf(Value v) {
  return cast<RankedTensorType>(v.getType());
}

std::string dimStr(int64_t d) {
  return ShapedType::isDynamic(d) ? std::string("?") : std::to_string(d);
}

/// Two dimensions agree when equal or when either is dynamic.
bool compatible(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

/// `what` must have rank `rank`.
LogicalResult expectRank(Operation *op, StringRef what, RankedTensorType t,
                         int64_t rank) {
  if (t.getRank() != rank)
    return op->emitOpError() << what << " must have rank " << rank
                             << ", got " << t;
  return success();
}

/// Dimension `ia` of `a` must agree with dimension `ib` of `b`.
LogicalResult expectSameDim(Operation *op, StringRef aName,
                            RankedTensorType a, int64_t ia, StringRef bName,
                            RankedTensorType b, int64_t ib) {
  int64_t da = a.getDimSize(ia), db = b.getDimSize(ib);
  if (!compatible(da, db))
    return op->emitOpError()
           << aName << " dimension " << ia << " (" << dimStr(da) << ") must "
           << "equal " << bName << " dimension " << ib << " (" << dimStr(db)
           << ")";
  return success();
}

/// The first `n` dimensions of `a` and `b` must agree.
LogicalResult expectSameLeading(Operation *op, StringRef aName,
                                RankedTensorType a, StringRef bName,
                                RankedTensorType b, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (failed(expectSameDim(op, aName, a, i, bName, b, i)))
      return failure();
  return success();
}

/// Static dimension `i` of `t` must equal `expected` (a dynamic one passes).
LogicalResult expectDimValue(Operation *op, StringRef what,
                             RankedTensorType t, int64_t i, int64_t expected,
                             StringRef why) {
  int64_t d = t.getDimSize(i);
  if (!ShapedType::isDynamic(d) && d != expected)
    return op->emitOpError() << what << " dimension " << i << " is " << d
                             << " but must be " << expected << " (" << why
                             << ")";
  return success();
}

LogicalResult expectSameElementType(Operation *op, StringRef aName,
                                    RankedTensorType a, StringRef bName,
                                    RankedTensorType b) {
  if (a.getElementType() != b.getElementType())
    return op->emitOpError()
           << aName << " element type " << a.getElementType()
           << " must match " << bName << " element type "
           << b.getElementType();
  return success();
}

LogicalResult expectSameType(Operation *op, StringRef aName, Type a,
                             StringRef bName, Type b) {
  if (a != b)
    return op->emitOpError() << aName << " type " << a << " must equal "
                             << bName << " type " << b;
  return success();
}

LogicalResult expectPositive(Operation *op, StringRef attr, int64_t v) {
  if (v <= 0)
    return op->emitOpError() << "attribute '" << attr
                             << "' must be positive, got " << v;
  return success();
}

} // namespace

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
  if (getRole() == ParamRole::OptimizerState && !getOf())
    return emitOpError() << "optimizer_state parameter '" << getName()
                         << "' needs an 'of' attribute naming its trainable "
                            "parameter";
  if (getRole() != ParamRole::OptimizerState && getOf())
    return emitOpError() << "attribute 'of' is only valid on "
                            "optimizer_state parameters";
  if (getOf() && getOf()->empty())
    return emitOpError() << "attribute 'of' must not be empty";
  return success();
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
  if (failed(expectRank(*this, "weight", w, 1)) ||
      failed(expectSameDim(*this, "weight", w, 0, "x", x, x.getRank() - 1)) ||
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

LogicalResult AttentionOp::verify() {
  RankedTensorType q = tensorOf(getQ()), k = tensorOf(getK()),
                   v = tensorOf(getV());
  int64_t heads = getNumHeads(), kvHeads = getNumKvHeads(),
          headDim = getHeadDim();
  if (failed(expectPositive(*this, "num_heads", heads)) ||
      failed(expectPositive(*this, "num_kv_heads", kvHeads)) ||
      failed(expectPositive(*this, "head_dim", headDim)))
    return failure();
  if (heads % kvHeads != 0)
    return emitOpError() << "num_heads (" << heads
                         << ") must be a multiple of num_kv_heads (" << kvHeads
                         << ")";
  if (failed(expectRank(*this, "q", q, 3)) ||
      failed(expectRank(*this, "k", k, 3)) ||
      failed(expectRank(*this, "v", v, 3)) ||
      failed(expectSameLeading(*this, "k", k, "q", q, 2)) ||
      failed(expectSameLeading(*this, "v", v, "q", q, 2)) ||
      failed(expectDimValue(*this, "q", q, 2, heads * headDim,
                            "num_heads * head_dim")) ||
      failed(expectDimValue(*this, "k", k, 2, kvHeads * headDim,
                            "num_kv_heads * head_dim")) ||
      failed(expectDimValue(*this, "v", v, 2, kvHeads * headDim,
                            "num_kv_heads * head_dim")) ||
      failed(expectSameElementType(*this, "k", k, "q", q)) ||
      failed(expectSameElementType(*this, "v", v, "q", q)) ||
      failed(expectSameType(*this, "result", getResult().getType(), "q", q)))
    return failure();
  if (Value seg = getSegmentIds()) {
    RankedTensorType s = tensorOf(seg);
    if (failed(expectRank(*this, "segment_ids", s, 2)) ||
        failed(expectSameLeading(*this, "segment_ids", s, "q", q, 2)))
      return failure();
  }
  if (auto window = getSlidingWindow())
    if (failed(expectPositive(*this, "sliding_window", *window)))
      return failure();
  return success();
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

LogicalResult CrossEntropyOp::verify() {
  RankedTensorType logits = tensorOf(getLogits()),
                   targets = tensorOf(getTargets()), mask = tensorOf(getMask());
  if (logits.getRank() < 2)
    return emitOpError() << "logits must have rank >= 2, got " << logits;
  int64_t lead = logits.getRank() - 1;
  if (failed(expectRank(*this, "targets", targets, lead)) ||
      failed(expectRank(*this, "mask", mask, lead)) ||
      failed(expectSameLeading(*this, "targets", targets, "logits", logits,
                               lead)) ||
      failed(expectSameLeading(*this, "mask", mask, "logits", logits, lead)))
    return failure();
  return success();
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
