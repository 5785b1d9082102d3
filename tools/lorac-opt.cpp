//===- lorac-opt.cpp - mlir-opt for the lora dialect ----------------------===//
//
// Registers only what lorac uses: the lora dialect and its passes, func, and
// the generic upstream transforms (canonicalize, cse, ...). The input is
// checked for excessive bracket nesting before MLIR parses it
// (lora/Support/SourceLimits.h).
//
//===----------------------------------------------------------------------===//
#include "lora/Dialect/Lora/IR/LoraDialect.h"
#include "lora/Support/SourceLimits.h"
#include "lora/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  registry.insert<mlir::lora::LoraDialect, mlir::func::FuncDialect>();
  mlir::lora::registerLoraPasses();
  mlir::registerTransformsPasses();
  auto [input, output] = mlir::registerAndParseCLIOptions(
      argc, argv, "lorac-opt: the lora dialect's pass driver\n", registry);
  mlir::MlirOptMainConfig config =
      mlir::MlirOptMainConfig::createFromCLOptions();

  std::string err;
  std::unique_ptr<llvm::MemoryBuffer> file = mlir::openInputFile(input, &err);
  if (!file) {
    llvm::errs() << "lorac-opt: " << err << "\n";
    return 1;
  }
  {
    // The check reports through a SourceMgr of its own; MlirOptMain takes a
    // copy of the buffer.
    llvm::SourceMgr sourceMgr;
    unsigned id = sourceMgr.AddNewSourceBuffer(
        llvm::MemoryBuffer::getMemBuffer(file->getBuffer(),
                                         file->getBufferIdentifier()),
        llvm::SMLoc());
    if (mlir::lora::reportExcessiveNesting(sourceMgr, id))
      return 1;
  }
  std::unique_ptr<llvm::ToolOutputFile> out =
      mlir::openOutputFile(output, &err);
  if (!out) {
    llvm::errs() << "lorac-opt: " << err << "\n";
    return 1;
  }
  if (mlir::failed(
          mlir::MlirOptMain(out->os(), std::move(file), registry, config)))
    return 1;
  out->keep();
  return 0;
}
