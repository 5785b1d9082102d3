//===- ModelSummary.h - what a lora module contains -------------*- C++ -*-===//
//
// Helpers shared by passes and tools: the module name of a linear layer, its
// decoder layer index, and a summary of a module (architecture, parameter
// counts, adapters) as printed by `lorac summary`.
//
//===----------------------------------------------------------------------===//
#ifndef LORA_TRANSFORMS_MODELSUMMARY_H
#define LORA_TRANSFORMS_MODELSUMMARY_H

#include "lora/Dialect/Lora/IR/LoraOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

#include <map>
#include <optional>
#include <string>

namespace mlir::lora {

/// The `lora.param` a weight operand comes from, looking through
/// `lora.dequantize`; null when it is computed.
ParamOp getWeightParam(Value weight);

/// "model.layers.3.self_attn.q_proj" for a linear whose weight is the
/// parameter "model.layers.3.self_attn.q_proj.weight"; nullopt otherwise.
std::optional<std::string> getLinearModuleName(LinearOp op);

/// 3 for "model.layers.3.self_attn.q_proj"; nullopt outside the decoder
/// layers.
std::optional<int64_t> getLayerIndex(llvm::StringRef moduleName);

/// The module an op belongs to: the name of the first NameLoc inside `loc`
/// (the importer names each op's location after its Hugging Face module,
/// "model.layers.3.self_attn.q_proj"; passes keep it in fused and call-site
/// locations). The one reader of that convention: the dropout stream, the
/// rematerialization's layers and the plan's debug names all use it.
std::optional<llvm::StringRef> getModuleName(Location loc);

struct AdaptedMatrix {
  std::string module;
  int64_t in = 0, out = 0, rank = 0;
  double alpha = 0;
};

struct ModelSummary {
  std::string architecture;
  int64_t numLayers = 0, hidden = 0, intermediate = 0, heads = 0,
          kvHeads = 0, headDim = 0, vocab = 0;
  bool tiedEmbeddings = false;
  int64_t totalParams = 0;      // distinct parameters, adapters included
  int64_t trainableParams = 0;
  int64_t frozenParams = 0;
  int64_t frozenBytes = 0;      // at their stored types (NF4 packed)
  int64_t numLinear = 0, numAttention = 0;
  std::vector<AdaptedMatrix> adapters;
  std::map<std::string, int64_t> opCounts;
};

/// Collects the summary of `module`; fails (with a diagnostic) when the
/// module has no `lora.model` config or the same parameter name is used with
/// two different types.
FailureOr<ModelSummary> summarizeModule(ModuleOp module);

/// Human-readable summary (the first part of `lorac summary`).
void printSummary(const ModelSummary &summary, llvm::raw_ostream &os);

/// "6.74B", "135.0M", "4.2K".
std::string formatCount(int64_t n);

} // namespace mlir::lora

#endif
