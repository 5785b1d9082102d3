//===- Passes.h - lora transformation passes --------------------*- C++ -*-===//
#ifndef LORA_TRANSFORMS_PASSES_H
#define LORA_TRANSFORMS_PASSES_H

#include "lora/Dialect/Lora/IR/LoraDialect.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::lora {

/// Bytes of a static tensor value in the arena (an i1 mask takes a byte per
/// element); 0 for anything else.
uint64_t bufferBytes(Type type);

/// The `target` option of the passes that depend on the backend: success for
/// "cpu" or "cuda", else an error on `module` naming the value.
LogicalResult checkTargetOption(ModuleOp module, StringRef target);

#define GEN_PASS_DECL
#include "lora/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "lora/Transforms/Passes.h.inc"

} // namespace mlir::lora

#endif
