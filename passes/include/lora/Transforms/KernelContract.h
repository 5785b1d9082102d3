//===- KernelContract.h - lora.kernel against kernel_kinds.def --*- C++ -*-===//
//
// A `lora.kernel` dictionary is a kernel kind (`kind`), its parameters, and
// after lora-emit-cuda the CUDA launch fields (`cuda_*`). The parameters are
// declared once, with the runtime, in lorart/plan/kernel_kinds.def; these
// helpers read that declaration from the compiler's side.
//
//===----------------------------------------------------------------------===//
#ifndef LORA_TRANSFORMS_KERNELCONTRACT_H
#define LORA_TRANSFORMS_KERNELCONTRACT_H

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Operation.h"
#include "mlir/Support/LogicalResult.h"

namespace mlir::lora {

/// Whether `key` of a lora.kernel dictionary is a launch field written by
/// lora-emit-cuda (`cuda_*`) or the kind, rather than a kernel parameter.
bool isKernelLaunchField(StringRef key);

/// Checks `kernel`'s kind and parameters against kernel_kinds.def: an unknown
/// kind, a missing required parameter, an undeclared one or one of the wrong
/// type is an error on `op` naming it.
LogicalResult verifyKernelParams(Operation *op, DictionaryAttr kernel);

/// The FLOPs of one launch of `kernel` (kernel_kinds.def's model, shared with
/// `lorart profile`): matrix products and attention; other kinds count 0.
double kernelFlops(DictionaryAttr kernel);

} // namespace mlir::lora

#endif // LORA_TRANSFORMS_KERNELCONTRACT_H
