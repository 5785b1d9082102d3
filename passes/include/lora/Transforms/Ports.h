//===- Ports.h - the program inputs the runtime feeds ------------*- C++
//-*-===//
//
// A program's inputs are its function arguments marked `lora.input = "<port>"`
// (lorart/plan/ports.h spells the ports). The passes that add or look up an
// input use these two helpers.
//
//===----------------------------------------------------------------------===//
#ifndef LORA_TRANSFORMS_PORTS_H
#define LORA_TRANSFORMS_PORTS_H

#include "lora/Dialect/Lora/IR/LoraOps.h"
#include "lorart/plan/ports.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace mlir::lora {

/// The argument of `fn` that the runtime feeds as `port`, or null.
inline BlockArgument findInput(func::FuncOp fn,
                               lorart::schema::InputPort port) {
  for (unsigned i = 0; i < fn.getNumArguments(); ++i)
    if (auto name = fn.getArgAttrOfType<StringAttr>(i, kInputAttrName);
        name && name.getValue() == lorart::PortName(port))
      return fn.getArgument(i);
  return {};
}

/// Inserts an argument of `type` at `index` (the end when it is the number
/// of arguments) that the runtime feeds as `port`, and returns it.
inline BlockArgument insertInput(func::FuncOp fn, unsigned index, Type type,
                                 lorart::schema::InputPort port, Location loc) {
  Builder b(fn.getContext());
  fn.insertArgument(
      index, type,
      b.getDictionaryAttr(b.getNamedAttr(
          kInputAttrName, b.getStringAttr(lorart::PortName(port)))),
      loc);
  return fn.getArgument(index);
}

} // namespace mlir::lora

#endif
