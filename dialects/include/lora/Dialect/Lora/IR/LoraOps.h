//===- LoraOps.h - lora operations ------------------------------*- C++ -*-===//
#ifndef LORA_DIALECT_LORA_IR_LORAOPS_H
#define LORA_DIALECT_LORA_IR_LORAOPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "lora/Dialect/Lora/IR/LoraAttrs.h"
#include "lora/Dialect/Lora/IR/LoraDialect.h"
#include "lora/Dialect/Lora/IR/LoraInterfaces.h"
#include "lora/Dialect/Lora/IR/LoraTypes.h"

#define GET_OP_CLASSES
#include "lora/Dialect/Lora/IR/LoraOps.h.inc"

namespace mlir::lora {
/// Names of the attributes the dialect attaches to the module.
inline constexpr llvm::StringLiteral kModelConfigAttrName = "lora.model";
inline constexpr llvm::StringLiteral kAdapterConfigAttrName = "lora.adapter_config";
/// On a training function: the objective it computes.
inline constexpr llvm::StringLiteral kObjectiveAttrName = "lora.objective";
/// On an op: a clone made by rematerialization (gradient checkpointing).
inline constexpr llvm::StringLiteral kRecomputeAttrName = "lora.recompute";
/// On an op: the kernel that runs it (lora-lower-to-kernels).
inline constexpr llvm::StringLiteral kKernelAttrName = "lora.kernel";
/// On an op: the arena offset of each result (lora-plan-memory).
inline constexpr llvm::StringLiteral kOffsetsAttrName = "lora.offsets";
/// Arena offset of a kernel's workspace (`cuda_workspace` bytes in its
/// `lora.kernel`), set by lora-plan-memory: scratch live only during the op.
inline constexpr llvm::StringLiteral kWorkspaceAttrName = "lora.workspace";
/// On a function: the arena size its values need (lora-plan-memory).
inline constexpr llvm::StringLiteral kArenaSizeAttrName = "lora.arena_size";
/// On a function argument: what the runtime feeds it ("tokens", ...).
inline constexpr llvm::StringLiteral kInputAttrName = "lora.input";
/// On a function result: what the runtime reads from it ("loss_sum", ...).
inline constexpr llvm::StringLiteral kOutputAttrName = "lora.output";
/// On a function result: the trainable parameter it is the gradient of.
inline constexpr llvm::StringLiteral kGradOfAttrName = "lora.grad_of";
} // namespace mlir::lora

#endif
