//===- PlanMemory.cpp - schedule, liveness and arena offsets --------------===//
//
// For every function (program) the schedule is the op order (a topological
// order: the IR is SSA in one block). Each value that is not a persistent
// parameter — inputs, activations, gradients, outputs — becomes a buffer
// live from its definition to its last use (inputs from step 0, returned
// values to the end); the planner (MemoryPlanner.h, best fit by decreasing
// size) places them in one arena. Offsets are written back as `lora.offsets`
// on ops, `lora.offset` on arguments and `lora.arena_size` on the function.
// Programs run one at a time, so they share the arena: its size is the
// largest of theirs. A kernel that asks for scratch (`cuda_workspace` bytes
// in its `lora.kernel`, set by lora-emit-cuda) gets a buffer live during its
// own step only, written back as `lora.workspace`.
//
//===----------------------------------------------------------------------===//
#include "lora/Dialect/Lora/IR/LoraOps.h"
#include "lora/Transforms/MemoryPlanner.h"
#include "lora/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace mlir::lora {
#define GEN_PASS_DEF_PLANMEMORY
#include "lora/Transforms/Passes.h.inc"
} // namespace mlir::lora

using namespace mlir;
using namespace mlir::lora;

uint64_t mlir::lora::bufferBytes(Type type) {
  auto t = dyn_cast<RankedTensorType>(type);
  if (!t || !t.hasStaticShape())
    return 0;
  uint64_t bits = t.getElementTypeBitWidth();
  uint64_t bytes = bits < 8 ? 1 : bits / 8; // i1 masks take a byte
  return static_cast<uint64_t>(t.getNumElements()) * bytes;
}

namespace {

struct PlanMemoryPass : public lora::impl::PlanMemoryBase<PlanMemoryPass> {
  using PlanMemoryBase::PlanMemoryBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (alignment <= 0 || !llvm::isPowerOf2_64(alignment)) {
      module.emitError() << "option 'alignment' must be a positive power of "
                            "two, got "
                         << static_cast<int64_t>(alignment);
      return signalPassFailure();
    }
    for (auto fn : module.getOps<func::FuncOp>())
      if (!fn.isExternal() && failed(plan(fn)))
        return signalPassFailure();
  }

  LogicalResult plan(func::FuncOp fn) {
    Block &body = fn.getBody().front();
    for (auto arg : fn.getArguments())
      if (auto t = dyn_cast<RankedTensorType>(arg.getType());
          t && !t.hasStaticShape())
        return fn.emitOpError() << "has a dynamic input " << t
                                << ": run lora-specialize-shapes first";
    llvm::DenseMap<Operation *, int64_t> step;
    int64_t n = 0;
    for (Operation &op : body)
      step[&op] = n++;
    int64_t end = n; // returned values live to the end

    std::vector<MemoryBuffer> buffers;
    SmallVector<Value> values;
    auto add = [&](Value v, int64_t first) -> LogicalResult {
      auto t = dyn_cast<RankedTensorType>(v.getType());
      if (!t)
        return success();
      if (!t.hasStaticShape())
        return emitError(v.getLoc())
               << "value of dynamic type " << t
               << " cannot be planned: run lora-specialize-shapes first";
      int64_t last = first;
      for (OpOperand &use : v.getUses()) {
        Operation *user = use.getOwner();
        last = std::max(last, isa<func::ReturnOp>(user) ? end : step[user]);
      }
      MemoryBuffer b;
      b.id = static_cast<int64_t>(buffers.size());
      b.size = bufferBytes(t);
      b.alignment = static_cast<uint64_t>(alignment);
      b.firstUse = first;
      b.lastUse = last;
      buffers.push_back(b);
      values.push_back(v);
      return success();
    };
    for (BlockArgument arg : fn.getArguments())
      if (failed(add(arg, 0)))
        return failure();
    for (Operation &op : body) {
      if (isa<ParamOp>(op)) // persistent storage, bound by name
        continue;
      for (Value r : op.getResults())
        if (failed(add(r, step[&op])))
          return failure();
    }
    // Workspaces: live during their op's step only.
    SmallVector<std::pair<Operation *, size_t>> workspaces;
    for (Operation &op : body) {
      auto k = op.getAttrOfType<DictionaryAttr>(kKernelAttrName);
      auto ws = k ? k.getAs<IntegerAttr>("cuda_workspace") : IntegerAttr();
      if (!ws || ws.getInt() <= 0)
        continue;
      MemoryBuffer b;
      b.id = static_cast<int64_t>(buffers.size());
      b.size = static_cast<uint64_t>(ws.getInt());
      b.alignment = static_cast<uint64_t>(alignment);
      b.firstUse = b.lastUse = step[&op];
      workspaces.push_back({&op, buffers.size()});
      buffers.push_back(b);
    }

    std::string error;
    std::optional<MemoryPlan> plan = planMemory(buffers, &error);
    if (!plan)
      return fn.emitOpError() << "memory planning failed: " << error;

    Builder b(fn.getContext());
    llvm::DenseMap<Value, uint64_t> offsetOf;
    for (auto [v, off] : llvm::zip(values, plan->offsets))
      offsetOf[v] = off;
    for (auto [op, index] : workspaces)
      op->setAttr(kWorkspaceAttrName,
                  b.getI64IntegerAttr(static_cast<int64_t>(plan->offsets[index])));
    for (BlockArgument arg : fn.getArguments())
      if (offsetOf.count(arg))
        fn.setArgAttr(arg.getArgNumber(), "lora.offset",
                      b.getI64IntegerAttr(offsetOf[arg]));
    for (Operation &op : body) {
      if (isa<ParamOp>(op) || op.getNumResults() == 0)
        continue;
      SmallVector<int64_t> offs;
      bool all = true;
      for (Value r : op.getResults()) {
        auto it = offsetOf.find(r);
        all &= it != offsetOf.end();
        offs.push_back(it == offsetOf.end() ? 0 : it->second);
      }
      if (all)
        op.setAttr(kOffsetsAttrName, b.getDenseI64ArrayAttr(offs));
    }
    fn->setAttr(kArenaSizeAttrName, b.getI64IntegerAttr(plan->arenaSize));
    return success();
  }
};

} // namespace
