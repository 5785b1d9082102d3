//===- HFImporter.h - Hugging Face model -> lora dialect --------*- C++ -*-===//
#ifndef LORA_FRONTEND_HFIMPORTER_H
#define LORA_FRONTEND_HFIMPORTER_H

#include "lora/Frontend/HFConfig.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/Support/Error.h"

#include <string>

namespace mlir::lora::frontend {

struct ImportOptions {
  /// A model directory (config.json + model.safetensors or sharded
  /// safetensors with model.safetensors.index.json), or a bare config.json.
  std::string input;
  /// Compute dtype of the graph: "bf16", "f16" or "f32".
  std::string dtype = "bf16";
  /// Attach LoRA adapters with these options (none when unset).
  std::optional<LoraOptions> lora;
};

/// What the importer learned about the input besides the graph.
struct ImportInfo {
  std::string configPath;
  bool haveWeights = false; // safetensors headers were read and checked
  size_t numShards = 0;
  size_t numTensors = 0;
  std::vector<std::string> warnings;
};

/// The expected checkpoint tensors of a config: name and shape, in order.
struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
};
std::vector<ExpectedTensor> expectedTensors(const ModelConfig &config);

/// Builds the forward graph `@forward(tokens, positions) -> logits` of the
/// model, checks the safetensors headers against the config when the input
/// has weights, verifies the module and attaches adapters. Errors are one
/// line naming the file and the field.
llvm::Expected<mlir::OwningOpRef<mlir::ModuleOp>>
importModel(mlir::MLIRContext &context, const ImportOptions &options,
            ImportInfo *info = nullptr);

/// Builds the graph of `config` without touching any file.
mlir::OwningOpRef<mlir::ModuleOp> buildForwardGraph(mlir::MLIRContext &context,
                                                    const ModelConfig &config,
                                                    mlir::Type computeType);

} // namespace mlir::lora::frontend

#endif
