//===- LoraInterfaces.h - lora op interfaces --------------------*- C++ -*-===//
#ifndef LORA_DIALECT_LORA_IR_LORAINTERFACES_H
#define LORA_DIALECT_LORA_IR_LORAINTERFACES_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpDefinition.h"

#include "lora/Dialect/Lora/IR/LoraInterfaces.h.inc"

#endif
