//===- Passes.h - lora transformation passes --------------------*- C++ -*-===//
#ifndef LORA_TRANSFORMS_PASSES_H
#define LORA_TRANSFORMS_PASSES_H

#include "lora/Dialect/Lora/IR/LoraDialect.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::lora {

#define GEN_PASS_DECL
#include "lora/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "lora/Transforms/Passes.h.inc"

} // namespace mlir::lora

#endif
