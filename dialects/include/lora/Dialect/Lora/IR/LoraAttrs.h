//===- LoraAttrs.h - lora enums and attributes ------------------*- C++ -*-===//
#ifndef LORA_DIALECT_LORA_IR_LORAATTRS_H
#define LORA_DIALECT_LORA_IR_LORAATTRS_H

#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectImplementation.h"

#include "lora/Dialect/Lora/IR/LoraEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "lora/Dialect/Lora/IR/LoraAttrs.h.inc"

#endif
