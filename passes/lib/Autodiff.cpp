//===- Autodiff.cpp - reverse-mode differentiation of the loss ------------===//
//
// Builds @train_step from the forward graph with its objective: the forward
// ops, a gradient seed, then the vector-Jacobian product of every op that
// needs one (GradientOpInterface, implemented beside each op), walking the
// ops in reverse. Gradients are built only where they reach a trainable
// parameter: no weight gradient exists for a frozen weight, while the input
// gradient through it (possibly NF4) does.
//
//===----------------------------------------------------------------------===//
#include "lora/Dialect/Lora/IR/LoraOps.h"
#include "lora/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/MapVector.h"

namespace mlir::lora {
#define GEN_PASS_DEF_AUTODIFF
#include "lora/Transforms/Passes.h.inc"
} // namespace mlir::lora

using namespace mlir;
using namespace mlir::lora;

namespace {

struct AutodiffPass : public lora::impl::AutodiffBase<AutodiffPass> {
  using AutodiffBase::AutodiffBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (train != "lora" && train != "full") {
      module.emitError() << "option 'train' must be lora or full, got '"
                         << train << "'";
      return signalPassFailure();
    }
    auto fwd = module.lookupSymbol<func::FuncOp>(function);
    if (!fwd) {
      module.emitError() << "no function @" << function << " to differentiate";
      return signalPassFailure();
    }
    for (StringRef name : {"train_step", "eval_step"})
      if (module.lookupSymbol(name)) {
        module.emitError() << "the module already has @" << name;
        return signalPassFailure();
      }
    auto f32Scalar = RankedTensorType::get({}, Float32Type::get(&getContext()));
    if (fwd.getNumResults() < 1 || fwd.getResultTypes()[0] != f32Scalar) {
      fwd.emitOpError() << "must return the summed loss (tensor<f32>) first: "
                           "run lora-objective before lora-autodiff";
      return signalPassFailure();
    }
    for (Type t : fwd.getArgumentTypes())
      if (auto rt = dyn_cast<RankedTensorType>(t); rt && !rt.hasStaticShape()) {
        fwd.emitOpError() << "has a dynamic input " << rt
                          << ": run lora-specialize-shapes first";
        return signalPassFailure();
      }

    if (train == "full") {
      WalkResult r = fwd.walk([&](ParamOp p) {
        if (p.getRole() != ParamRole::Frozen)
          return WalkResult::advance();
        if (isa<NF4Type>(p.getType())) {
          p.emitOpError() << "parameter '" << p.getName()
                          << "' is NF4-quantized and cannot be fully "
                             "trained: train LoRA adapters on a quantized "
                             "base, or do not quantize";
          return WalkResult::interrupt();
        }
        p.setRole(ParamRole::Trainable);
        return WalkResult::advance();
      });
      if (r.wasInterrupted())
        return signalPassFailure();
    }

    // @eval_step is the forward graph; @train_step its clone plus backward.
    OpBuilder mb(module.getBodyRegion());
    mb.setInsertionPointAfter(fwd);
    auto trainFn = cast<func::FuncOp>(mb.clone(*fwd));
    trainFn.setName("train_step");
    fwd.setName("eval_step");
    if (failed(differentiate(trainFn)))
      return signalPassFailure();
  }

  LogicalResult differentiate(func::FuncOp fn) {
    Block &body = fn.getBody().front();
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    Value loss = ret.getOperand(0);
    SmallVector<Operation *> ops;
    for (Operation &op : body.without_terminator())
      ops.push_back(&op);

    // Values that depend on a trainable parameter...
    llvm::DenseSet<Value> active;
    for (Operation *op : ops) {
      bool a = false;
      if (auto p = dyn_cast<ParamOp>(op))
        a = p.getRole() == ParamRole::Trainable;
      else
        a = llvm::any_of(op->getOperands(),
                         [&](Value v) { return active.contains(v); });
      if (a)
        for (Value r : op->getResults())
          active.insert(r);
    }
    // ...and that the loss depends on.
    llvm::DenseSet<Value> useful{loss};
    for (Operation *op : llvm::reverse(ops))
      if (llvm::any_of(op->getResults(),
                       [&](Value r) { return useful.contains(r); }))
        for (Value v : op->getOperands())
          useful.insert(v);
    auto needsGrad = [&](Value v) {
      return active.contains(v) && useful.contains(v) &&
             isa<RankedTensorType>(v.getType()) &&
             isa<FloatType>(cast<RankedTensorType>(v.getType())
                                .getElementType());
    };
    if (!active.contains(loss))
      return fn.emitOpError()
             << "the loss does not depend on any trainable parameter";

    OpBuilder b(ret);
    Value seed = b.create<ScalarOp>(NameLoc::get(b.getStringAttr("grad_seed"),
                                                 ret.getLoc()),
                                    loss.getType(), b.getF64FloatAttr(1.0));
    llvm::DenseMap<Value, Value> grads;
    grads[loss] = seed;
    auto accumulate = [&](Value v, Value g, Location loc) {
      auto it = grads.find(v);
      if (it == grads.end()) {
        grads[v] = g;
        return;
      }
      it->second = b.create<AddOp>(loc, v.getType(), it->second, g);
    };

    for (Operation *op : llvm::reverse(ops)) {
      SmallVector<Value> resultGrads;
      bool any = false;
      for (Value r : op->getResults()) {
        resultGrads.push_back(grads.lookup(r));
        any |= static_cast<bool>(resultGrads.back());
      }
      if (!any)
        continue;
      SmallVector<bool> need;
      for (Value v : op->getOperands())
        need.push_back(needsGrad(v));
      if (!llvm::is_contained(need, true))
        continue;
      auto iface = dyn_cast<GradientOpInterface>(op);
      if (!iface)
        return op->emitOpError() << "is not differentiable, but the loss "
                                    "depends through it on a trainable "
                                    "parameter";
      SmallVector<Value> operandGrads(op->getNumOperands());
      if (failed(iface.buildVJP(b, resultGrads, need, operandGrads)))
        return failure();
      for (auto [v, g] : llvm::zip(op->getOperands(), operandGrads))
        if (g)
          accumulate(v, g, op->getLoc());
    }

    // One gradient per trainable parameter name, in program order.
    llvm::MapVector<StringRef, Value> byName;
    llvm::MapVector<StringRef, Location> where;
    for (Operation *op : ops) {
      auto p = dyn_cast<ParamOp>(op);
      if (!p || p.getRole() != ParamRole::Trainable)
        continue;
      Value g = grads.lookup(p.getResult());
      if (!g)
        return p.emitOpError() << "trainable parameter '" << p.getName()
                               << "' does not affect the loss";
      auto [it, inserted] = byName.insert({p.getName(), g});
      if (!inserted)
        it->second = b.create<AddOp>(p.getLoc(), g.getType(), it->second, g);
    }
    SmallVector<Value> results(ret.getOperands());
    for (auto &[name, g] : byName)
      results.push_back(g);
    b.create<func::ReturnOp>(ret.getLoc(), results);
    ret.erase();
    SmallVector<Type> types;
    for (Value v : results)
      types.push_back(v.getType());
    fn.setType(FunctionType::get(fn.getContext(), fn.getArgumentTypes(),
                                 types));
    unsigned i = fn.getNumResults() - byName.size();
    for (auto &[name, g] : byName)
      fn.setResultAttr(i++, kGradOfAttrName, b.getStringAttr(name));
    return success();
  }
};

} // namespace
