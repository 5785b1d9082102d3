//===- LoraDialect.h - the lora dialect -------------------------*- C++ -*-===//
#ifndef LORA_DIALECT_LORA_IR_LORADIALECT_H
#define LORA_DIALECT_LORA_IR_LORADIALECT_H

#include "mlir/IR/Dialect.h"

#include "lora/Dialect/Lora/IR/LoraDialect.h.inc"

#endif
