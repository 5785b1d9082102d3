//===- LoraTypes.h - lora types ---------------------------------*- C++ -*-===//
#ifndef LORA_DIALECT_LORA_IR_LORATYPES_H
#define LORA_DIALECT_LORA_IR_LORATYPES_H

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Types.h"

#define GET_TYPEDEF_CLASSES
#include "lora/Dialect/Lora/IR/LoraTypes.h.inc"

#endif
