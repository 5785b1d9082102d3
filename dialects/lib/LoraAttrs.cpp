//===- LoraAttrs.cpp - lora enums and attributes --------------------------===//
#include "lora/Dialect/Lora/IR/LoraAttrs.h"

#include "lora/Dialect/Lora/IR/LoraDialect.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::lora;

#include "lora/Dialect/Lora/IR/LoraEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "lora/Dialect/Lora/IR/LoraAttrs.cpp.inc"

void LoraDialect::registerAttributes() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "lora/Dialect/Lora/IR/LoraAttrs.cpp.inc"
      >();
}

// #lora.rope_scaling<linear, factor = 2.0>
// #lora.rope_scaling<llama3, factor = 8.0, low_freq_factor = 1.0,
//                    high_freq_factor = 4.0,
//                    original_max_position_embeddings = 8192>
Attribute RopeScalingAttr::parse(AsmParser &parser, Type) {
  StringRef kindName;
  double factor = 1.0, low = 1.0, high = 4.0;
  int64_t original = 8192;
  SMLoc kindLoc = parser.getCurrentLocation();
  if (parser.parseLess() || parser.parseKeyword(&kindName))
    return {};
  std::optional<RopeScalingKind> kind = symbolizeRopeScalingKind(kindName);
  if (!kind) {
    parser.emitError(kindLoc) << "unknown rope_scaling kind '" << kindName
                              << "' (expected linear or llama3)";
    return {};
  }
  if (parser.parseComma() || parser.parseKeyword("factor") ||
      parser.parseEqual() || parser.parseFloat(factor))
    return {};
  if (*kind == RopeScalingKind::Llama3 &&
      (parser.parseComma() || parser.parseKeyword("low_freq_factor") ||
       parser.parseEqual() || parser.parseFloat(low) || parser.parseComma() ||
       parser.parseKeyword("high_freq_factor") || parser.parseEqual() ||
       parser.parseFloat(high) || parser.parseComma() ||
       parser.parseKeyword("original_max_position_embeddings") ||
       parser.parseEqual() || parser.parseInteger(original)))
    return {};
  if (parser.parseGreater())
    return {};
  return parser.getChecked<RopeScalingAttr>(
      parser.getContext(), *kind, llvm::APFloat(factor), llvm::APFloat(low),
      llvm::APFloat(high), original);
}

void RopeScalingAttr::print(AsmPrinter &printer) const {
  printer << "<" << stringifyRopeScalingKind(getKind())
          << ", factor = " << getFactor().convertToDouble();
  if (getKind() == RopeScalingKind::Llama3)
    printer << ", low_freq_factor = " << getLowFreqFactor().convertToDouble()
            << ", high_freq_factor = "
            << getHighFreqFactor().convertToDouble()
            << ", original_max_position_embeddings = "
            << getOriginalMaxPositionEmbeddings();
  printer << ">";
}

LogicalResult
RopeScalingAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                        RopeScalingKind kind, llvm::APFloat factorF,
                        llvm::APFloat lowF, llvm::APFloat highF,
                        int64_t originalMaxPositionEmbeddings) {
  double factor = factorF.convertToDouble();
  double lowFreqFactor = lowF.convertToDouble();
  double highFreqFactor = highF.convertToDouble();
  if (!(factor > 0.0))
    return emitError() << "rope_scaling factor must be positive, got "
                       << factor;
  if (kind == RopeScalingKind::Llama3) {
    if (!(lowFreqFactor > 0.0))
      return emitError() << "rope_scaling low_freq_factor must be positive, "
                            "got "
                         << lowFreqFactor;
    if (!(highFreqFactor > lowFreqFactor))
      return emitError() << "rope_scaling high_freq_factor ("
                         << highFreqFactor
                         << ") must be larger than low_freq_factor ("
                         << lowFreqFactor << ")";
    if (originalMaxPositionEmbeddings <= 0)
      return emitError() << "rope_scaling original_max_position_embeddings "
                            "must be positive, got "
                         << originalMaxPositionEmbeddings;
  }
  return success();
}
