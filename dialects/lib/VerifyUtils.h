//===- VerifyUtils.h - shared checks of the lora verifiers ------*- C++ -*-===//
#ifndef LORA_DIALECT_LIB_VERIFYUTILS_H
#define LORA_DIALECT_LIB_VERIFYUTILS_H

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Operation.h"

#include <optional>
#include <string>

namespace mlir::lora::detail {
using namespace mlir;


inline RankedTensorType tensorOf(Value v) {
  return cast<RankedTensorType>(v.getType());
}

inline std::string dimStr(int64_t d) {
  return ShapedType::isDynamic(d) ? std::string("?") : std::to_string(d);
}

/// Two dimensions agree when equal or when either is dynamic.
inline bool compatible(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

/// `what` must have rank `rank`.
inline LogicalResult expectRank(Operation *op, StringRef what, RankedTensorType t,
                         int64_t rank) {
  if (t.getRank() != rank)
    return op->emitOpError() << what << " must have rank " << rank
                             << ", got " << t;
  return success();
}

/// Dimension `ia` of `a` must agree with dimension `ib` of `b`.
inline LogicalResult expectSameDim(Operation *op, StringRef aName,
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

/// An RMSNorm's scale: rank 1, its size the last dimension of `x` or a
/// divisor of it (each contiguous group of that many features normalized on
/// its own: Qwen3's per-head q_norm/k_norm).
inline LogicalResult expectNormWeight(Operation *op, RankedTensorType w,
                                      RankedTensorType x) {
  if (failed(expectRank(op, "weight", w, 1)))
    return failure();
  int64_t g = w.getDimSize(0), last = x.getDimSize(x.getRank() - 1);
  if (ShapedType::isDynamic(g) || ShapedType::isDynamic(last))
    return success();
  if (g <= 0 || last % g != 0)
    return op->emitOpError()
           << "weight size (" << g << ") must equal x's last dimension ("
           << last << ") or divide it (a norm per group of features)";
  return success();
}

/// The first `n` dimensions of `a` and `b` must agree.
inline LogicalResult expectSameLeading(Operation *op, StringRef aName,
                                RankedTensorType a, StringRef bName,
                                RankedTensorType b, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (failed(expectSameDim(op, aName, a, i, bName, b, i)))
      return failure();
  return success();
}

/// Static dimension `i` of `t` must equal `expected` (a dynamic one passes).
inline LogicalResult expectDimValue(Operation *op, StringRef what,
                             RankedTensorType t, int64_t i, int64_t expected,
                             StringRef why) {
  int64_t d = t.getDimSize(i);
  if (!ShapedType::isDynamic(d) && d != expected)
    return op->emitOpError() << what << " dimension " << i << " is " << d
                             << " but must be " << expected << " (" << why
                             << ")";
  return success();
}

inline LogicalResult expectSameElementType(Operation *op, StringRef aName,
                                    RankedTensorType a, StringRef bName,
                                    RankedTensorType b) {
  if (a.getElementType() != b.getElementType())
    return op->emitOpError()
           << aName << " element type " << a.getElementType()
           << " must match " << bName << " element type "
           << b.getElementType();
  return success();
}

inline LogicalResult expectSameType(Operation *op, StringRef aName, Type a,
                             StringRef bName, Type b) {
  if (a != b)
    return op->emitOpError() << aName << " type " << a << " must equal "
                             << bName << " type " << b;
  return success();
}

inline LogicalResult expectPositive(Operation *op, StringRef attr, int64_t v) {
  if (v <= 0)
    return op->emitOpError() << "attribute '" << attr
                             << "' must be positive, got " << v;
  return success();
}

/// The operand checks shared by lora.attention and lora.attention_grad.
LogicalResult verifyAttentionOperands(Operation *op, Value q, Value k, Value v,
                                      Value segmentIds, int64_t heads,
                                      int64_t kvHeads, int64_t headDim,
                                      std::optional<int64_t> window);

/// logits [..., vocab] with integer targets and an i1 mask of its leading
/// shape: shared by lora.cross_entropy and lora.cross_entropy_grad.
LogicalResult verifyLossOperands(Operation *op, Value logits, Value targets,
                                 Value mask);

/// lora.sequence_logprobs and its gradient: the loss operands, sequence ids
/// of the mask's shape, and `[numSequences]` per-sequence values.
LogicalResult verifySequenceLogProbs(Operation *op, Value logits, Value targets,
                                     Value mask, Value sequenceIds,
                                     Value perSequence, int64_t numSequences);

/// lora.ewc_penalty and its gradient: A [r, in], B [out, r], F [out, in].
LogicalResult verifyEWCOperands(Operation *op, Value a, Value b, Value fisher);

/// lora.dpo_loss and its gradient: `[2 * pairs]` policy and reference
/// log-probabilities, a `[pairs]` mask, a known loss type.
LogicalResult verifyDPOLoss(Operation *op, Value policy, Value reference,
                            Value pairMask, StringRef lossType);

} // namespace mlir::lora::detail

#endif
