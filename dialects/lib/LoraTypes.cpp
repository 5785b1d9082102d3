//===- LoraTypes.cpp - lora types -----------------------------------------===//
#include "lora/Dialect/Lora/IR/LoraTypes.h"

#include "lora/Dialect/Lora/IR/LoraDialect.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::lora;

#define GET_TYPEDEF_CLASSES
#include "lora/Dialect/Lora/IR/LoraTypes.cpp.inc"

void LoraDialect::registerTypes() {
  addTypes<
#define GET_TYPEDEF_LIST
#include "lora/Dialect/Lora/IR/LoraTypes.cpp.inc"
      >();
}

// !lora.nf4<4096x4096, block_size = 64, double_quant = 256|none>
Type NF4Type::parse(AsmParser &parser) {
  SmallVector<int64_t> shape;
  int64_t blockSize = 0, dqBlock = 0;
  if (parser.parseLess() ||
      parser.parseDimensionList(shape, /*allowDynamic=*/false,
                                /*withTrailingX=*/false) ||
      parser.parseComma() || parser.parseKeyword("block_size") ||
      parser.parseEqual() || parser.parseInteger(blockSize) ||
      parser.parseComma() || parser.parseKeyword("double_quant") ||
      parser.parseEqual())
    return {};
  if (failed(parser.parseOptionalKeyword("none")) &&
      parser.parseInteger(dqBlock))
    return {};
  if (parser.parseGreater())
    return {};
  return parser.getChecked<NF4Type>(parser.getContext(), shape, blockSize,
                                    dqBlock);
}

void NF4Type::print(AsmPrinter &printer) const {
  printer << "<";
  llvm::interleave(getShape(), printer, "x");
  printer << ", block_size = " << getBlockSize() << ", double_quant = ";
  if (hasDoubleQuant())
    printer << getDoubleQuantBlock();
  else
    printer << "none";
  printer << ">";
}

LogicalResult NF4Type::verify(function_ref<InFlightDiagnostic()> emitError,
                              ArrayRef<int64_t> shape, int64_t blockSize,
                              int64_t doubleQuantBlock) {
  if (shape.empty())
    return emitError() << "nf4 shape must have at least one dimension";
  for (int64_t d : shape)
    if (d <= 0)
      return emitError() << "nf4 dimensions must be positive, got " << d;
  if (blockSize < 2 || blockSize > 4096 || !llvm::isPowerOf2_64(blockSize))
    return emitError() << "nf4 block_size must be a power of two in [2, "
                          "4096], got "
                       << blockSize;
  if (doubleQuantBlock < 0 || doubleQuantBlock > 4096 ||
      (doubleQuantBlock > 0 && !llvm::isPowerOf2_64(doubleQuantBlock)))
    return emitError() << "nf4 double_quant block must be none or a power of "
                          "two in [1, 4096], got "
                       << doubleQuantBlock;
  int64_t n = 1;
  for (int64_t d : shape)
    if (llvm::MulOverflow(n, d, n))
      return emitError() << "nf4 element count overflows int64";
  if (n % blockSize != 0)
    return emitError() << "nf4 element count " << n
                       << " is not a multiple of block_size " << blockSize;
  return success();
}

int64_t NF4Type::getNumElements() const {
  int64_t n = 1;
  for (int64_t d : getShape())
    n *= d;
  return n;
}

int64_t NF4Type::getNumBlocks() const {
  return llvm::divideCeil(getNumElements(), getBlockSize());
}

int64_t NF4Type::getCodeBytes() const { return getNumElements() / 2; }

int64_t NF4Type::getScaleBytes() const {
  int64_t blocks = getNumBlocks();
  if (!hasDoubleQuant())
    return blocks * 4;
  int64_t groups = llvm::divideCeil(blocks, getDoubleQuantBlock());
  return blocks + groups * 4 + 4;
}
