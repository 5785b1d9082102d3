//===- SerializePlan.h - the lora module as a train.bin plan ----*- C++ -*-===//
#ifndef LORA_TRANSFORMS_SERIALIZEPLAN_H
#define LORA_TRANSFORMS_SERIALIZEPLAN_H

#include "mlir/IR/BuiltinOps.h"

#include <string>

namespace mlir::lora {

/// What the plan records besides the module: the defaults of the trainer
/// and where the plan came from.
struct PlanOptions {
  std::string objective = "sft";
  int64_t microBatch = 1, seqLen = 512, gradAccum = 1;
  bool packing = true;
  std::string remat = "none";
  uint64_t memoryBudget = 0;
  double lr = 2e-4, minLr = 0.0;
  uint64_t warmupSteps = 0;
  std::string schedule = "cosine";
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0.0;
  double maxGradNorm = 1.0;
  uint64_t seed = 0;
  uint64_t arenaAlignment = 64;
  std::string compilerVersion, pipeline, inputHash, source;
};

/// Serializes a fully lowered module (programs with `lora.kernel` and
/// `lora.offsets` on every op) into train.bin bytes (size-prefixed
/// FlatBuffers, identifier "LORA"). Fails with a diagnostic on the op that
/// cannot be expressed.
FailureOr<std::string> serializePlan(ModuleOp module, const PlanOptions &opts);

} // namespace mlir::lora

#endif
