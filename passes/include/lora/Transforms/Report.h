//===- Report.h - what a compiled plan costs, before it runs ----*- C++ -*-===//
#ifndef LORA_TRANSFORMS_REPORT_H
#define LORA_TRANSFORMS_REPORT_H

#include "lora/Transforms/ModelSummary.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"
#include <string>
#include <vector>

namespace mlir::lora {

/// The compile report: parameters, memory by category and FLOPs, computed
/// from the lowered module (kernels and memory plan).
struct CompileReport {
  ModelSummary summary;
  int64_t microBatch = 0, seqLen = 0, gradAccum = 1;
  std::string objective;  // "sft", "pretrain", "dpo" (@eval_step's lora.objective)
  // Memory, bytes.
  int64_t frozenBytes = 0;        // frozen weights as stored (NF4 packed)
  int64_t frozenBf16Bytes = 0;    // the same weights in bf16, for comparison
  int64_t frozenNF4Params = 0;    // how many frozen params are NF4
  int64_t trainableBytes = 0;     // adapters (or weights) in compute dtype
  int64_t gradientBytes = 0;      // float32 gradient accumulators
  int64_t optimizerBytes = 0;     // master copies + AdamW moments (float32)
  int64_t activationBytes = 0;    // the arena: peak of the programs
  int64_t workspaceBytes = 0;     // kernel scratch outside the arena
  // Data-parallel plans (lora-data-parallel): each gradient bucket's bytes,
  // in the order the backward fills them; empty for other plans.
  std::vector<int64_t> bucketBytes;
  // Frozen bytes of each decoder layer (by the "layers.N." of a weight's
  // name) and of the weights outside the layers (embeddings, head, final
  // norm): what sharding or pipeline stages would divide.
  std::vector<int64_t> layerFrozenBytes;
  int64_t outsideLayersFrozenBytes = 0;
  // Bytes of one micro-batch's hidden state (tokens x hidden, bf16): what a
  // pipeline stage hands the next.
  int64_t boundaryBytes = 0;
  // The world size the per-rank figures assume (lorac compile --ranks).
  int64_t ranks = 8;
  int64_t totalBytes() const {
    return frozenBytes + trainableBytes + gradientBytes + optimizerBytes +
           activationBytes + workspaceBytes;
  }
  // FLOPs of one @train_step (one micro-batch), matrix products only.
  double trainStepFlops = 0;
  double forwardFlops = 0;
  double recomputeFlops = 0;
  int64_t recomputedOps = 0;
  /// Per-rank memory at `ranks` ranks: the plan as built (every rank holds
  /// everything), and the sharded layouts of docs/distributed.md that are
  /// designed but not built.
  struct PerRank {
    int64_t replicated = 0; // data parallel as built
    int64_t zero2 = 0;      // + gradients and optimizer state sharded
    int64_t fsdp = 0;       // + frozen base sharded, two layers gathered
    int64_t pipeline = 0;   // the largest of `ranks` pipeline stages
  };
  PerRank perRank() const;
  double flopsPerToken() const {
    return trainStepFlops / static_cast<double>(microBatch * seqLen);
  }
};

FailureOr<CompileReport> computeReport(ModuleOp module, int64_t microBatch,
                                       int64_t seqLen, int64_t gradAccum);
void printReport(const CompileReport &r, llvm::raw_ostream &os);
void printReportJson(const CompileReport &r, llvm::raw_ostream &os);

/// "1.50 GiB", "312.0 MiB", "12.0 KiB", "17 B".
std::string formatBytes(int64_t bytes);

} // namespace mlir::lora

#endif
