//===- Report.cpp - what a compiled plan costs, before it runs ------------===//
#include "lora/Transforms/Report.h"

#include "lora/Dialect/Lora/IR/LoraOps.h"
#include "lora/Transforms/KernelContract.h"
#include "lora/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/JSON.h"

#include <algorithm>
#include <set>

using namespace mlir;
using namespace mlir::lora;

std::string mlir::lora::formatBytes(int64_t bytes) {
  const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  if (u == 0)
    snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(bytes));
  else
    snprintf(buf, sizeof buf, "%.2f %s", v, units[u]);
  return buf;
}

// The decoder layer a weight belongs to ("model.layers.12.mlp..." -> 12),
// -1 for the weights outside the layers.
static int64_t layerOf(StringRef name) {
  size_t at = name.find("layers.");
  if (at == StringRef::npos)
    return -1;
  StringRef rest = name.drop_front(at + 7);
  int64_t layer = -1;
  if (rest.consumeInteger(10, layer) || !rest.starts_with("."))
    return -1;
  return layer;
}

CompileReport::PerRank CompileReport::perRank() const {
  PerRank p;
  const int64_t w = std::max<int64_t>(1, ranks);
  auto shard = [&](int64_t bytes) { return (bytes + w - 1) / w; };
  p.replicated = totalBytes();
  p.zero2 = frozenBytes + trainableBytes + shard(gradientBytes) +
            shard(optimizerBytes) + activationBytes + workspaceBytes;
  // FSDP/ZeRO-3 on the frozen base: each rank keeps 1/W of it and gathers
  // one layer while the previous one computes (two layers resident).
  int64_t largest = 0;
  for (int64_t b : layerFrozenBytes)
    largest = std::max(largest, b);
  p.fsdp = shard(frozenBytes) + 2 * largest + shard(trainableBytes) +
           shard(gradientBytes) + shard(optimizerBytes) + activationBytes +
           workspaceBytes;
  // Pipeline: the layers in W contiguous stages (the first ones one layer
  // longer), the weights outside the layers on the first stage (the
  // embeddings; a conservative bound for the head, which sits on the last);
  // adapters, gradients and optimizer state in proportion to the layers;
  // 1F1B keeps up to W micro-batches in flight on the first stage, each
  // holding its boundary hidden state, on top of one micro-batch's arena.
  const int64_t layers = static_cast<int64_t>(layerFrozenBytes.size());
  if (layers > 0) {
    int64_t begin = 0;
    for (int64_t s = 0; s < w && begin < layers; ++s) {
      int64_t n = layers / w + (s < layers % w ? 1 : 0);
      int64_t frozen = s == 0 ? outsideLayersFrozenBytes : 0;
      for (int64_t l = begin; l < begin + n; ++l)
        frozen += layerFrozenBytes[l];
      double share = static_cast<double>(n) / static_cast<double>(layers);
      int64_t stage =
          frozen +
          static_cast<int64_t>(share * static_cast<double>(
                                           trainableBytes + gradientBytes +
                                           optimizerBytes)) +
          activationBytes + (s == 0 ? (w - 1) * boundaryBytes : 0) +
          workspaceBytes;
      p.pipeline = std::max(p.pipeline, stage);
      begin += n;
    }
  }
  return p;
}

FailureOr<CompileReport> mlir::lora::computeReport(ModuleOp module,
                                                   int64_t microBatch,
                                                   int64_t seqLen,
                                                   int64_t gradAccum) {
  CompileReport r;
  FailureOr<ModelSummary> s = summarizeModule(module);
  if (failed(s))
    return failure();
  r.summary = *s;
  r.microBatch = microBatch;
  r.seqLen = seqLen;
  r.gradAccum = gradAccum;
  r.boundaryBytes = 2 * microBatch * seqLen * s->hidden;
  for (auto fn : module.getOps<func::FuncOp>())
    if (auto obj = fn->getAttrOfType<StringAttr>(kObjectiveAttrName))
      r.objective = obj.getValue().str();

  std::set<std::string> seen;
  module.walk([&](ParamOp p) {
    if (!seen.insert(p.getName().str()).second)
      return;
    Type t = p.getType();
    int64_t bytes = 0, elems = 0;
    if (auto nf4 = dyn_cast<NF4Type>(t)) {
      bytes = nf4.getStorageBytes();
      elems = nf4.getNumElements();
      r.frozenNF4Params += elems;
    } else {
      bytes = static_cast<int64_t>(bufferBytes(t));
      elems = cast<RankedTensorType>(t).getNumElements();
    }
    switch (p.getRole()) {
    case ParamRole::Frozen: {
      r.frozenBytes += bytes;
      r.frozenBf16Bytes += 2 * elems;
      int64_t layer = layerOf(p.getName());
      if (layer < 0) {
        r.outsideLayersFrozenBytes += bytes;
      } else {
        if (static_cast<size_t>(layer) >= r.layerFrozenBytes.size())
          r.layerFrozenBytes.resize(layer + 1, 0);
        r.layerFrozenBytes[layer] += bytes;
      }
      break;
    }
    case ParamRole::Trainable:
      r.trainableBytes += bytes;
      break;
    case ParamRole::OptimizerState:
      r.optimizerBytes += bytes;
      break;
    case ParamRole::Gradient:
      r.gradientBytes += bytes;
      break;
    }
  });

  module.walk(
      [&](GradAllReduceStartOp op) { r.bucketBytes.push_back(op.getBytes()); });

  for (auto fn : module.getOps<func::FuncOp>()) {
    if (auto a = fn->getAttrOfType<IntegerAttr>(kArenaSizeAttrName))
      r.activationBytes = std::max(r.activationBytes, a.getInt());
    bool train = fn.getName() == "train_step";
    bool inBackward = false;
    fn.walk([&](Operation *op) {
      if (isa<ScalarOp>(op))
        inBackward = true; // the gradient seed starts the backward pass
      auto k = op->getAttrOfType<DictionaryAttr>(kKernelAttrName);
      if (!k)
        return;
      StringRef kind = k.getAs<StringAttr>("kind").getValue();
      if (kind == "lm_head_ce_fwd" || kind == "lm_head_ce_bwd_x" ||
          kind == "lm_head_ce_bwd_w" || kind == "lm_head_ce_fwd_bwd_x") {
        // One chunk of float32 logits and their gradient.
        int64_t chunk = std::min(k.getAs<IntegerAttr>("chunk_size").getInt(),
                                 k.getAs<IntegerAttr>("tokens").getInt());
        int64_t vocab = k.getAs<IntegerAttr>("vocab").getInt();
        r.workspaceBytes = std::max(r.workspaceBytes, 2 * 4 * chunk * vocab);
      }
      if (!train)
        return;
      double f = kernelFlops(k);
      r.trainStepFlops += f;
      if (op->hasAttr(kRecomputeAttrName)) {
        r.recomputeFlops += f;
        ++r.recomputedOps;
      } else if (kind == "lm_head_ce_fwd_bwd_x") {
        // The loss and its gradient in one op: half its products are the
        // forward's, and the backward starts after it (its seed is gone).
        r.forwardFlops += f / 2;
        inBackward = true;
      } else if (!inBackward) {
        r.forwardFlops += f;
      }
    });
  }
  return r;
}

static std::string flopsStr(double f) {
  char buf[32];
  if (f >= 1e12)
    snprintf(buf, sizeof buf, "%.2f TFLOP", f / 1e12);
  else if (f >= 1e9)
    snprintf(buf, sizeof buf, "%.2f GFLOP", f / 1e9);
  else
    snprintf(buf, sizeof buf, "%.2f MFLOP", f / 1e6);
  return buf;
}

void mlir::lora::printReport(const CompileReport &r, llvm::raw_ostream &os) {
  printSummary(r.summary, os);
  if (!r.objective.empty()) {
    os << "objective: " << r.objective;
    if (r.objective == "dpo")
      os << " (per micro-batch " << r.microBatch
         << " preference pairs; the reference pass is the forward without adapters)";
    os << "\n";
  }
  os << "token grid: micro_batch " << r.microBatch << " x seq_len "
     << r.seqLen << " = " << r.microBatch * r.seqLen
     << " tokens, gradient accumulation " << r.gradAccum << "\n";
  os << "memory:\n";
  auto line = [&](StringRef what, int64_t bytes, StringRef note = "") {
    os << "  " << llvm::left_justify(what, 22) << llvm::right_justify(
                                                      formatBytes(bytes), 12);
    if (!note.empty())
      os << "  " << note;
    os << "\n";
  };
  std::string frozenNote;
  if (r.frozenNF4Params > 0)
    frozenNote = "NF4 for " + std::to_string(r.frozenNF4Params) +
                 " params; " + formatBytes(r.frozenBf16Bytes) + " in bf16";
  line("frozen weights", r.frozenBytes, frozenNote);
  line("trainable", r.trainableBytes);
  line("gradients (f32)", r.gradientBytes);
  line("optimizer (f32)", r.optimizerBytes, "master copy + AdamW m, v");
  line("activations (peak)", r.activationBytes, "the planned arena");
  line("workspace", r.workspaceBytes, "LM-head cross-entropy chunk");
  line("total", r.totalBytes());
  os << "FLOPs per micro-step: " << flopsStr(r.trainStepFlops)
     << " (forward " << flopsStr(r.forwardFlops) << ", recompute "
     << flopsStr(r.recomputeFlops) << ", " << r.recomputedOps
     << " ops recomputed); per token: "
     << llvm::format("%.3f", r.flopsPerToken() / 1e9) << " GFLOP\n";
  os << "FLOPs per optimizer step: "
     << flopsStr(r.trainStepFlops * static_cast<double>(r.gradAccum)) << "\n";
  if (!r.bucketBytes.empty()) {
    int64_t total = 0, smallest = r.bucketBytes.front(), largest = 0;
    std::string list;
    for (int64_t b : r.bucketBytes) {
      total += b;
      smallest = std::min(smallest, b);
      largest = std::max(largest, b);
      list += (list.empty() ? "" : ", ") + formatBytes(b);
    }
    // Past a handful of buckets, their range says enough (the JSON report
    // lists every one).
    if (r.bucketBytes.size() > 8)
      list = formatBytes(smallest) + " to " + formatBytes(largest);
    // A ring all-reduce sends (and receives) 2(W-1)/W of the payload per
    // rank.
    auto ring = [&](int w) {
      return formatBytes(
          static_cast<int64_t>(2.0 * (w - 1) / w * static_cast<double>(total)));
    };
    os << "data parallel: " << r.bucketBytes.size() << " gradient buckets ("
       << list << ") = " << formatBytes(total)
       << " all-reduced per optimizer step, each started as the last "
          "micro-batch's backward fills it; a ring all-reduce sends "
          "2(W-1)/W of it per rank: "
       << ring(2) << " at 2 ranks, " << ring(8) << " at 8\n";
    CompileReport::PerRank p = r.perRank();
    os << "memory per rank at " << r.ranks
       << " ranks (docs/distributed.md; only the first is built):\n";
    line("replicated (built)", p.replicated,
         "every rank holds all of the above");
    line("ZeRO-2", p.zero2, "gradients and optimizer state sharded");
    line("FSDP (ZeRO-3)", p.fsdp,
         "frozen base sharded too, two layers gathered");
    line("pipeline", p.pipeline,
         "the largest of " + std::to_string(r.ranks) +
             " stages, 1F1B");
  }
}

void mlir::lora::printReportJson(const CompileReport &r,
                                 llvm::raw_ostream &os) {
  const ModelSummary &s = r.summary;
  llvm::json::Array adapters;
  for (const AdaptedMatrix &m : s.adapters)
    adapters.push_back(llvm::json::Object{
        {"module", m.module},
        {"out", m.out},
        {"in", m.in},
        {"r", m.rank},
        {"ratio", 2.0 * m.rank / static_cast<double>(m.in + m.out)}});
  llvm::json::Object o{
      {"model",
       llvm::json::Object{{"architecture", s.architecture},
                          {"num_hidden_layers", s.numLayers},
                          {"hidden_size", s.hidden},
                          {"num_attention_heads", s.heads},
                          {"num_key_value_heads", s.kvHeads},
                          {"vocab_size", s.vocab},
                          {"tie_word_embeddings", s.tiedEmbeddings}}},
      {"parameters",
       llvm::json::Object{
           {"total", s.totalParams},
           {"trainable", s.trainableParams},
           {"frozen", s.frozenParams},
           {"trainable_ratio",
            s.totalParams ? static_cast<double>(s.trainableParams) /
                                static_cast<double>(s.totalParams)
                          : 0.0},
           {"adapters", std::move(adapters)}}},
      {"objective", r.objective},
      {"grid", llvm::json::Object{{"micro_batch", r.microBatch},
                                  {"seq_len", r.seqLen},
                                  {"grad_accum", r.gradAccum}}},
      {"memory_bytes",
       llvm::json::Object{{"frozen_weights", r.frozenBytes},
                          {"frozen_weights_bf16", r.frozenBf16Bytes},
                          {"trainable", r.trainableBytes},
                          {"gradients", r.gradientBytes},
                          {"optimizer_states", r.optimizerBytes},
                          {"activations_peak", r.activationBytes},
                          {"workspace", r.workspaceBytes},
                          {"total", r.totalBytes()}}},
      {"flops",
       llvm::json::Object{{"train_step", r.trainStepFlops},
                          {"forward", r.forwardFlops},
                          {"recompute", r.recomputeFlops},
                          {"per_token", r.flopsPerToken()},
                          {"optimizer_step",
                           r.trainStepFlops *
                               static_cast<double>(r.gradAccum)}}}};
  if (!r.bucketBytes.empty()) {
    llvm::json::Array buckets;
    int64_t total = 0;
    for (int64_t b : r.bucketBytes) {
      buckets.push_back(b);
      total += b;
    }
    CompileReport::PerRank p = r.perRank();
    o["data_parallel"] = llvm::json::Object{
        {"bucket_bytes", std::move(buckets)},
        {"bytes_per_step", total},
        {"per_rank",
         llvm::json::Object{{"ranks", r.ranks},
                            {"replicated_bytes", p.replicated},
                            {"zero2_bytes", p.zero2},
                            {"fsdp_bytes", p.fsdp},
                            {"pipeline_bytes", p.pipeline}}}};
  }
  os << llvm::formatv("{0:2}", llvm::json::Value(std::move(o))) << "\n";
}
