//===- lorac-opt.cpp - mlir-opt for the lora dialect ----------------------===//
//
// Registers only what lorac uses: the lora dialect and its passes, func, and
// the generic upstream transforms (canonicalize, cse, ...).
//
//===----------------------------------------------------------------------===//
#include "lora/Dialect/Lora/IR/LoraDialect.h"
#include "lora/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  registry.insert<mlir::lora::LoraDialect, mlir::func::FuncDialect>();
  mlir::lora::registerLoraPasses();
  mlir::registerTransformsPasses();
  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "lorac-opt: the lora dialect's pass driver\n", registry));
}
