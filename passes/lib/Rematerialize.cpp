//===- Rematerialize.cpp - gradient checkpointing per decoder layer -------===//
//
// lora-remat and the functions behind it (Rematerialize.h). The training
// function is split into forward ops and backward ops (those reachable from
// the gradient seed); forward ops are grouped by decoder layer using their
// NameLoc. For a rematerialized layer, every value the layer computes and
// backward reads (except values the forward pass itself still needs outside
// the layer: the layer's outputs) is recomputed by clones of the layer's
// forward ops placed before the first backward op that reads one of them.
//
//===----------------------------------------------------------------------===//
#include "lora/Transforms/Rematerialize.h"

#include "lora/Dialect/Lora/IR/LoraOps.h"
#include "lora/Transforms/ModelSummary.h"
#include "lora/Transforms/Passes.h"
#include "lora/Transforms/Report.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace mlir::lora {
#define GEN_PASS_DEF_REMATERIALIZE
#include "lora/Transforms/Passes.h.inc"
} // namespace mlir::lora

using namespace mlir;
using namespace mlir::lora;

namespace {

constexpr llvm::StringLiteral kNoSeedMessage =
    "no gradient seed (lora.scalar) found: run lora-autodiff first";

bool isSeed(Operation *op) {
  auto s = dyn_cast<ScalarOp>(op);
  return s && s.getValue().convertToDouble() == 1.0;
}

/// Ops that are never cloned: parameters and constants are read where they
/// are, at no activation cost.
bool isReusable(Operation *op) {
  return isa<ParamOp>(op) || op->hasTrait<OpTrait::ConstantLike>();
}

/// Bytes of a static tensor; -1 when unknown.
int64_t byteSize(Type type) {
  auto t = dyn_cast<RankedTensorType>(type);
  if (!t || !t.hasStaticShape())
    return -1;
  int64_t eltBytes = (t.getElementTypeBitWidth() + 7) / 8;
  return t.getNumElements() * eltBytes;
}

/// The training function split into forward and backward ops.
struct TrainingGraph {
  Block *body = nullptr;
  /// Seeds, the ops reachable from them, and clones made by an earlier
  /// rematerialization (which run in the backward pass).
  DenseSet<Operation *> backward;
  /// Forward ops of each decoder layer, in program order.
  std::map<int64_t, SmallVector<Operation *>> layerOps;
  DenseMap<Operation *, int64_t> layerOf;

  /// The op of the function body that holds `op`.
  Operation *topLevel(Operation *op) const {
    return body->findAncestorOpInBlock(*op);
  }
  bool isBackward(Operation *op) const {
    Operation *top = topLevel(op);
    return top && backward.contains(top);
  }
  bool inLayer(Operation *op, int64_t layer) const {
    Operation *top = topLevel(op);
    auto it = top ? layerOf.find(top) : layerOf.end();
    return it != layerOf.end() && it->second == layer;
  }
};

FailureOr<TrainingGraph> buildGraph(func::FuncOp func) {
  TrainingGraph g;
  if (func.isExternal())
    return func.emitError() << kNoSeedMessage;
  g.body = &func.getBody().front();

  SmallVector<Operation *> worklist;
  for (Operation &op : *g.body)
    if (isSeed(&op) || op.hasAttr(kRecomputeAttrName))
      if (g.backward.insert(&op).second)
        worklist.push_back(&op);
  if (!llvm::any_of(*g.body, [](Operation &op) { return isSeed(&op); }))
    return func.emitError() << kNoSeedMessage;

  Operation *terminator = g.body->getTerminator();
  while (!worklist.empty()) {
    Operation *op = worklist.pop_back_val();
    for (Operation *user : op->getUsers()) {
      Operation *top = g.topLevel(user);
      if (!top || top == terminator)
        continue;
      if (g.backward.insert(top).second)
        worklist.push_back(top);
    }
  }

  for (Operation &op : *g.body) {
    if (&op == terminator || g.backward.contains(&op) || isReusable(&op))
      continue;
    std::optional<StringRef> name = getModuleName(op.getLoc());
    if (!name)
      continue;
    if (std::optional<int64_t> layer = getLayerIndex(*name)) {
      g.layerOf[&op] = *layer;
      g.layerOps[*layer].push_back(&op);
    }
  }
  return g;
}

/// What rematerializing one layer clones and redirects.
struct LayerPlan {
  int64_t layer = 0;
  /// Forward ops to clone, in program order.
  SmallVector<Operation *> clones;
  /// Values recomputed for backward (results of `clones` that backward
  /// reads).
  SmallVector<Value> needed;
  /// Results of `clones` that stay alive for the forward pass outside the
  /// layer; never redirected.
  DenseSet<Value> kept;
};

LayerPlan planLayer(const TrainingGraph &g, int64_t layer) {
  LayerPlan plan;
  plan.layer = layer;
  const SmallVector<Operation *> &ops = g.layerOps.at(layer);

  // A value of the layer that something other than this layer's forward ops
  // and backward reads (the next layer, the final norm, the return) is alive
  // until then anyway: it is kept, not recomputed.
  for (Operation *op : ops)
    for (Value v : op->getResults())
      if (llvm::any_of(v.getUsers(), [&](Operation *user) {
            return !g.isBackward(user) && !g.inLayer(user, layer);
          }))
        plan.kept.insert(v);

  DenseSet<Operation *> chosen;
  SmallVector<Operation *> worklist;
  for (Operation *op : ops)
    for (Value v : op->getResults()) {
      if (plan.kept.contains(v) ||
          !llvm::any_of(v.getUsers(),
                        [&](Operation *u) { return g.isBackward(u); }))
        continue;
      plan.needed.push_back(v);
      if (chosen.insert(op).second)
        worklist.push_back(op);
    }
  // Close over the layer's own forward operands; everything else (the
  // layer's input, parameters, function arguments) is reused.
  while (!worklist.empty()) {
    Operation *op = worklist.pop_back_val();
    for (Value operand : op->getOperands()) {
      Operation *def = operand.getDefiningOp();
      if (!def || plan.kept.contains(operand) || !g.inLayer(def, layer))
        continue;
      if (chosen.insert(def).second)
        worklist.push_back(def);
    }
  }
  for (Operation *op : ops)
    if (chosen.contains(op))
      plan.clones.push_back(op);
  return plan;
}

LogicalResult applyPlan(const TrainingGraph &g, const LayerPlan &plan) {
  if (plan.needed.empty())
    return success();

  // The first backward op that reads a recomputed value.
  Operation *insertPt = nullptr;
  for (Value v : plan.needed)
    for (Operation *user : v.getUsers()) {
      if (!g.isBackward(user))
        continue;
      Operation *top = g.topLevel(user);
      if (!insertPt || top->isBeforeInBlock(insertPt))
        insertPt = top;
    }

  // Everything the clones read from outside the layer must already exist
  // there.
  DenseSet<Operation *> cloned(plan.clones.begin(), plan.clones.end());
  for (Operation *op : plan.clones)
    for (Value operand : op->getOperands()) {
      Operation *def = operand.getDefiningOp();
      if (!def || cloned.contains(def))
        continue;
      Operation *top = g.topLevel(def);
      if (top && !top->isBeforeInBlock(insertPt))
        return op->emitOpError()
               << "cannot be recomputed for layer " << plan.layer
               << ": its operand is defined after the first backward use "
                  "of the layer's activations";
    }

  OpBuilder b(insertPt);
  IRMapping mapping;
  UnitAttr unit = b.getUnitAttr();
  for (Operation *op : plan.clones) {
    Operation *clone = b.clone(*op, mapping);
    clone->setAttr(kRecomputeAttrName, unit);
  }
  for (Operation *op : plan.clones)
    for (Value v : op->getResults()) {
      if (plan.kept.contains(v))
        continue;
      Value replacement = mapping.lookup(v);
      v.replaceUsesWithIf(replacement, [&](OpOperand &use) {
        return g.isBackward(use.getOwner());
      });
    }
  return success();
}

std::string layerList(const TrainingGraph &g) {
  if (g.layerOps.empty())
    return "none";
  SmallVector<std::string> names;
  for (const auto &entry : g.layerOps)
    names.push_back(std::to_string(entry.first));
  return llvm::join(names, ", ");
}

} // namespace

bool mlir::lora::hasGradientSeed(func::FuncOp func) {
  if (func.isExternal())
    return false;
  return llvm::any_of(func.getBody().front(),
                      [](Operation &op) { return isSeed(&op); });
}

FailureOr<SmallVector<LayerRematInfo>>
mlir::lora::analyzeRematerialization(func::FuncOp func) {
  FailureOr<TrainingGraph> g = buildGraph(func);
  if (failed(g))
    return failure();
  SmallVector<LayerRematInfo> infos;
  for (const auto &entry : g->layerOps) {
    LayerPlan plan = planLayer(*g, entry.first);
    LayerRematInfo info;
    info.layer = entry.first;
    info.recomputedOps = static_cast<int64_t>(plan.clones.size());
    for (Value v : plan.needed) {
      int64_t bytes = byteSize(v.getType());
      if (bytes < 0) {
        info.savedBytes = -1;
        break;
      }
      info.savedBytes += bytes;
    }
    infos.push_back(info);
  }
  return infos;
}

LogicalResult mlir::lora::rematerializeLayers(func::FuncOp func,
                                              ArrayRef<int64_t> layers) {
  FailureOr<TrainingGraph> g = buildGraph(func);
  if (failed(g))
    return failure();
  SmallVector<int64_t> sorted(layers.begin(), layers.end());
  llvm::sort(sorted);
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  for (int64_t layer : sorted)
    if (!g->layerOps.count(layer))
      return func.emitError()
             << "decoder layer " << layer << " has no forward ops in @"
             << func.getSymName() << " (layers: " << layerList(*g) << ")";
  // Plans are made on the unmodified graph: a layer's clones read only its
  // own clones and values kept alive outside it, so layers are independent.
  SmallVector<LayerPlan> plans;
  for (int64_t layer : sorted)
    plans.push_back(planLayer(*g, layer));
  for (const LayerPlan &plan : plans)
    if (failed(applyPlan(*g, plan)))
      return failure();
  return success();
}

std::optional<int64_t> mlir::lora::parseByteSize(StringRef text) {
  text = text.trim();
  size_t numEnd = 0;
  while (numEnd < text.size() &&
         (llvm::isDigit(text[numEnd]) || text[numEnd] == '.'))
    ++numEnd;
  StringRef number = text.take_front(numEnd);
  StringRef unit = text.drop_front(numEnd).trim();
  double value;
  if (number.empty() || number.getAsDouble(value) || !(value > 0.0))
    return std::nullopt;
  static const std::pair<StringRef, double> kUnits[] = {
      {"", 1.0},
      {"b", 1.0},
      {"k", 1e3},
      {"kb", 1e3},
      {"m", 1e6},
      {"mb", 1e6},
      {"g", 1e9},
      {"gb", 1e9},
      {"t", 1e12},
      {"tb", 1e12},
      {"kib", 1024.0},
      {"mib", 1024.0 * 1024},
      {"gib", 1024.0 * 1024 * 1024},
      {"tib", 1024.0 * 1024 * 1024 * 1024}};
  std::string lower = unit.lower();
  for (const auto &[suffix, scale] : kUnits) {
    if (lower != suffix)
      continue;
    double bytes = std::floor(value * scale);
    if (bytes < 1.0 || bytes > 9.0e18)
      return std::nullopt;
    return static_cast<int64_t>(bytes);
  }
  return std::nullopt;
}

LogicalResult mlir::lora::runModulePipeline(ModuleOp module,
                                            StringRef pipeline) {
  PassManager pm(module->getContext());
  std::string err;
  llvm::raw_string_ostream es(err);
  // The pass manager is anchored on the module: parse what is inside
  // builtin.module(...).
  StringRef inner = pipeline;
  if (inner.consume_front("builtin.module("))
    inner.consume_back(")");
  if (failed(parsePassPipeline(inner, pm, es))) {
    module.emitError() << "internal error: bad pipeline '" << pipeline
                       << "': " << es.str();
    return failure();
  }
  return pm.run(module);
}

FailureOr<std::string>
mlir::lora::chooseRematForBudget(OwningOpRef<ModuleOp> &module,
                                 const RematBudgetSearch &search,
                                 int64_t budget) {
  auto train = (*module).lookupSymbol<func::FuncOp>("train_step");
  if (!train)
    return (*module).emitError()
           << "--remat auto needs a @train_step function";
  FailureOr<SmallVector<LayerRematInfo>> info =
      analyzeRematerialization(train);
  if (failed(info))
    return failure();
  SmallVector<LayerRematInfo> layers(*info);
  llvm::stable_sort(layers, [](const auto &a, const auto &b) {
    return a.savedBytes * std::max<int64_t>(b.recomputedOps, 1) >
           b.savedBytes * std::max<int64_t>(a.recomputedOps, 1);
  });
  auto stage = [&](size_t k) -> std::string {
    if (k == 0)
      return "";
    SmallVector<int64_t> ids;
    for (size_t i = 0; i < k; ++i)
      ids.push_back(layers[i].layer);
    llvm::sort(ids);
    std::string list;
    for (int64_t id : ids)
      list += (list.empty() ? "" : ",") + std::to_string(id);
    return "lora-remat{policy=auto layers-to-remat=" + list + "}";
  };
  // Peak with the first k layers recomputed.
  auto evaluate = [&](size_t k,
                      OwningOpRef<ModuleOp> &out) -> FailureOr<int64_t> {
    out = cast<ModuleOp>((*module)->clone());
    std::string st = stage(k);
    std::string pipe = "builtin.module(" + (st.empty() ? "" : st + ",") +
                       search.restPipeline + ")";
    if (failed(runModulePipeline(*out, pipe)))
      return failure();
    return search.plannedBytes(*out);
  };
  OwningOpRef<ModuleOp> best;
  FailureOr<int64_t> none = evaluate(0, best);
  if (failed(none))
    return failure();
  if (*none <= budget) {
    module = std::move(best);
    return std::string();
  }
  OwningOpRef<ModuleOp> all;
  FailureOr<int64_t> smallest = evaluate(layers.size(), all);
  if (failed(smallest))
    return failure();
  if (*smallest > budget)
    return (*module).emitError()
           << "--memory-budget " << formatBytes(budget)
           << " cannot be met: the smallest planned peak is "
           << formatBytes(*smallest) << " (every one of the " << layers.size()
           << " decoder layers recomputed; without recomputation "
           << formatBytes(*none)
           << "); lower --micro-batch, --seq-len or --ce-chunk, or use "
              "--quantize-base nf4";
  // The smallest k that fits (the peak falls as more layers are recomputed).
  size_t lo = 1, hi = layers.size();
  best = std::move(all);
  size_t bestK = layers.size();
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    OwningOpRef<ModuleOp> candidate;
    FailureOr<int64_t> bytes = evaluate(mid, candidate);
    if (failed(bytes))
      return failure();
    if (*bytes <= budget) {
      hi = mid;
      best = std::move(candidate);
      bestK = mid;
    } else {
      lo = mid + 1;
    }
  }
  if (bestK != lo) {
    OwningOpRef<ModuleOp> candidate;
    if (failed(evaluate(lo, candidate)))
      return failure();
    best = std::move(candidate);
    bestK = lo;
  }
  module = std::move(best);
  return stage(bestK);
}

namespace {

struct RematerializePass
    : public lora::impl::RematerializeBase<RematerializePass> {
  using RematerializeBase::RematerializeBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (failed(checkOptions(module)))
      return signalPassFailure();
    if (policy == "none")
      return;

    SmallVector<func::FuncOp> training;
    for (auto func : module.getOps<func::FuncOp>())
      if (hasGradientSeed(func))
        training.push_back(func);
    if (training.empty()) {
      module.emitError() << kNoSeedMessage;
      return signalPassFailure();
    }

    for (func::FuncOp func : training) {
      SmallVector<int64_t> chosen;
      if (policy == "layer") {
        FailureOr<SmallVector<LayerRematInfo>> infos =
            analyzeRematerialization(func);
        if (failed(infos))
          return signalPassFailure();
        for (const LayerRematInfo &info : *infos)
          chosen.push_back(info.layer);
        if (chosen.empty()) {
          func.emitError()
              << "found no decoder layer in @" << func.getSymName()
              << ": forward ops need NameLoc locations 'model.layers.N...' "
                 "(lorac import sets them; -mlir-print-debuginfo keeps them "
                 "in a file)";
          return signalPassFailure();
        }
      } else {
        chosen.assign(layersToRemat.begin(), layersToRemat.end());
      }
      if (failed(rematerializeLayers(func, chosen)))
        return signalPassFailure();
    }
  }

  LogicalResult checkOptions(ModuleOp module) {
    if (policy != "none" && policy != "layer" && policy != "auto")
      return module.emitError()
             << "option 'policy' must be none, layer or auto, got '" << policy
             << "'";
    if (!memoryBudget.empty() && !parseByteSize(memoryBudget))
      return module.emitError()
             << "option 'memory-budget' must be a positive byte size such as "
                "24GiB, 512MiB or 1073741824, got '"
             << memoryBudget << "'";
    for (int64_t l : layersToRemat)
      if (l < 0)
        return module.emitError()
               << "option 'layers-to-remat' must hold non-negative indices, "
                  "got "
               << l;
    if (policy != "auto" && !layersToRemat.empty())
      return module.emitError()
             << "option 'layers-to-remat' needs policy=auto (policy=layer "
                "recomputes every layer)";
    if (policy == "auto" && layersToRemat.empty())
      return module.emitError()
             << "policy=auto needs option 'layers-to-remat' (the layers "
                "'lorac compile --remat auto' picks under the memory budget)";
    return success();
  }
};

} // namespace
