//===- Rematerialize.h - gradient checkpointing per decoder layer -*- C++ -*-===//
//
// The analysis and rewrite behind `lora-remat`, and the search that picks
// the layers to recompute under `--memory-budget` (`lorac compile --remat
// auto`, which only calls it).
//
// A training function (as lora-autodiff builds it) holds the forward ops,
// then the gradient seed `lora.scalar 1.0`, then the backward ops: the ops
// that depend, transitively, on a seed. A forward op belongs to decoder
// layer N when the first NameLoc of its location names a module
// "model.layers.N...." (see getLayerIndex).
//
//===----------------------------------------------------------------------===//
#ifndef LORA_TRANSFORMS_REMATERIALIZE_H
#define LORA_TRANSFORMS_REMATERIALIZE_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "mlir/Support/LogicalResult.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace mlir::lora {

/// What recomputing one decoder layer's activations changes.
struct LayerRematInfo {
  int64_t layer = 0;
  /// Bytes of the layer's forward values that backward reads and that
  /// recomputation frees (they die at the end of the forward pass instead of
  /// living until their backward use). -1 when a shape is dynamic.
  int64_t savedBytes = 0;
  /// Forward ops cloned into the backward pass.
  int64_t recomputedOps = 0;
};

/// True when `func` holds a gradient seed (`lora.scalar 1.0`).
bool hasGradientSeed(func::FuncOp func);

/// One entry per decoder layer of `func` with forward ops, by increasing
/// layer index. Fails with a diagnostic when `func` has no gradient seed.
FailureOr<SmallVector<LayerRematInfo>>
analyzeRematerialization(func::FuncOp func);

/// Gradient checkpointing of the given decoder layers: for each layer N, every
/// forward value of the layer that a backward op reads (other than the
/// layer's input and its outputs, which stay alive anyway) is recomputed by
/// clones of the layer's forward ops that carry the unit attribute
/// `lora.recompute`, inserted once before the first backward op that reads
/// any of them; backward ops then read the clones. Fails with a diagnostic
/// when `func` has no gradient seed, a layer index has no forward ops, or
/// the clones cannot be placed.
LogicalResult rematerializeLayers(func::FuncOp func,
                                  llvm::ArrayRef<int64_t> layers);

/// Parses a byte size: "24GiB", "512MiB", "1.5GB", "4096" (bytes). Binary
/// (KiB, MiB, GiB, TiB) and decimal (KB, MB, GB, TB) suffixes, case
/// insensitive, optional "B". nullopt on garbage, a non-positive size or
/// overflow.
std::optional<int64_t> parseByteSize(llvm::StringRef text);

/// What `--remat auto` runs after choosing the layers: `restPipeline` is
/// the pass pipeline after the remat stage (a `builtin.module(...)` body),
/// `plannedBytes` the peak the plan of a lowered module needs (the compile
/// report's total).
struct RematBudgetSearch {
  std::string restPipeline;
  std::function<FailureOr<int64_t>(ModuleOp)> plannedBytes;
};

/// `--remat auto --memory-budget`: the fewest decoder layers of
/// `@train_step` to recompute (those freeing the most activation memory per
/// recomputed op first) so that the planned peak fits `budget`. `module` has
/// been through the pipeline up to the remat stage; on success it has been
/// through the rest too (with the chosen stage) and the result is that
/// stage ("" when nothing needs recomputing,
/// "lora-remat{policy=auto layers-to-remat=...}" otherwise). Fails with a
/// diagnostic naming the smallest reachable peak when even recomputing every
/// layer does not fit.
FailureOr<std::string> chooseRematForBudget(OwningOpRef<ModuleOp> &module,
                                            const RematBudgetSearch &search,
                                            int64_t budget);

/// Runs `pipeline` ("builtin.module(...)" or its body) on `module`; a bad
/// pipeline string is an internal error on the module.
LogicalResult runModulePipeline(ModuleOp module, llvm::StringRef pipeline);

} // namespace mlir::lora

#endif
