//===- ElasticWeightConsolidation.cpp - the EWC penalty against forgetting -===//
//
// Adds λ·Σ F ⊙ ΔW² on every adapter's effective update ΔW = (α/r)·B·A to
// the objective, with F the diagonal Fisher of the adapted base weight
// (a frozen parameter "ewc.fisher/<weight name>" the runtime binds from
// `lorart fisher`'s file). The penalty is an op like any other: autodiff
// differentiates it.
//
//===----------------------------------------------------------------------===//
#include "lora/Dialect/Lora/IR/LoraOps.h"
#include "lora/Transforms/Passes.h"
#include "lorart/plan/ports.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace mlir::lora {
#define GEN_PASS_DEF_ELASTICWEIGHTCONSOLIDATION
#include "lora/Transforms/Passes.h.inc"
#include <cmath>
} // namespace mlir::lora

using namespace mlir;
using namespace mlir::lora;
using lorart::schema::OutputPort;

namespace {

// The checkpoint name of the weight a linear layer reads (through a
// dequantization for an NF4 base).
std::optional<StringRef> weightName(Value w) {
  if (auto dq = w.getDefiningOp<DequantizeOp>())
    w = dq.getInput();
  if (auto p = w.getDefiningOp<ParamOp>())
    return p.getName();
  return std::nullopt;
}

struct ElasticWeightConsolidationPass
    : public lora::impl::ElasticWeightConsolidationBase<ElasticWeightConsolidationPass> {
  using ElasticWeightConsolidationBase::ElasticWeightConsolidationBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (!(lambda > 0.0) || !std::isfinite(static_cast<double>(lambda))) {
      module.emitError() << "option 'lambda' must be positive, got " << double(lambda);
      return signalPassFailure();
    }
    auto fn = module.lookupSymbol<func::FuncOp>(function);
    if (!fn) {
      module.emitError() << "no function @" << function << " to add the EWC penalty to";
      return signalPassFailure();
    }
    auto ret = cast<func::ReturnOp>(fn.getBody().back().getTerminator());
    auto f32 = RankedTensorType::get({}, Float32Type::get(&getContext()));
    auto i64 = RankedTensorType::get({}, IntegerType::get(&getContext(), 64));
    if (ret.getNumOperands() < 2 || ret.getOperand(0).getType() != f32 ||
        ret.getOperand(1).getType() != i64) {
      fn.emitOpError() << "must return the summed loss and its count first: run "
                          "lora-objective before lora-ewc";
      return signalPassFailure();
    }
    SmallVector<AdapterOp> adapters;
    fn.walk([&](AdapterOp a) { adapters.push_back(a); });
    if (adapters.empty()) {
      fn.emitOpError() << "has no adapters: the EWC penalty acts on LoRA updates";
      return signalPassFailure();
    }
    OpBuilder b(ret);
    Value count = ret.getOperand(1);
    Value loss = ret.getOperand(0), total;
    for (AdapterOp a : adapters) {
      // The adapter's base weight: the linear layer its output is added to.
      std::optional<StringRef> base;
      for (Operation *user : a.getResult().getUsers())
        if (auto add = dyn_cast<AddOp>(user)) {
          Value other = add.getLhs() == a.getResult() ? add.getRhs() : add.getLhs();
          if (auto linear = other.getDefiningOp<LinearOp>())
            base = weightName(linear.getWeight());
        }
      if (!base) {
        a.emitOpError() << "lora-ewc: the adapter is not added to a linear layer's output, so "
                           "its base weight (and Fisher) is unknown";
        return signalPassFailure();
      }
      auto bt = cast<RankedTensorType>(a.getB().getType());
      auto at = cast<RankedTensorType>(a.getA().getType());
      Location loc = NameLoc::get(b.getStringAttr("ewc"), a.getLoc());
      b.setInsertionPoint(ret);
      Value fisher = b.create<ParamOp>(
          loc, RankedTensorType::get({bt.getDimSize(0), at.getDimSize(1)}, at.getElementType()),
          "ewc.fisher/" + base->str(), ParamRole::Frozen, *base, ParamInit::Fisher);
      auto pen = b.create<EWCPenaltyOp>(loc, TypeRange{f32, f32}, a.getA(), a.getB(), fisher,
                                        count, b.getF64FloatAttr(a.getScaling()),
                                        b.getF64FloatAttr(lambda));
      loss = b.create<AddOp>(loc, f32, loss, pen.getWeighted());
      total = total ? b.create<AddOp>(loc, f32, total, pen.getPenalty()).getResult()
                    : pen.getPenalty();
    }
    SmallVector<Value> results(ret.getOperands());
    results[0] = loss;
    results.push_back(total);
    b.create<func::ReturnOp>(ret.getLoc(), results);
    SmallVector<DictionaryAttr> attrs;
    fn.getAllResultAttrs(attrs);
    ret.erase();
    SmallVector<Type> types;
    for (Value v : results)
      types.push_back(v.getType());
    fn.setType(FunctionType::get(&getContext(), fn.getArgumentTypes(), types));
    for (unsigned i = 0; i < attrs.size(); ++i)
      fn.setResultAttrs(i, attrs[i]);
    fn.setResultAttr(results.size() - 1, kOutputAttrName,
                     b.getStringAttr(lorart::PortName(OutputPort::EwcPenalty)));
  }
};

} // namespace
