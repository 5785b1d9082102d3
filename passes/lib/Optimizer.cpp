//===- Optimizer.cpp - AdamW, clipping, gradient accumulation -------------===//
//
// Turns the gradients returned by @train_step into float32 accumulators that
// persist across the micro-batches of one optimizer step, and builds
// @optimizer_step: global gradient norm, normalisation by the number of
// target tokens of the whole accumulated batch, clipping, AdamW on float32
// master copies, the cast back to the compute dtype, and the reset of the
// accumulators.
//
//===----------------------------------------------------------------------===//
#include "lora/Dialect/Lora/IR/LoraOps.h"
#include "lora/Transforms/Passes.h"
#include "lorart/plan/ports.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace mlir::lora {
#define GEN_PASS_DEF_OPTIMIZER
#include "lora/Transforms/Passes.h.inc"
#include <cmath>
} // namespace mlir::lora

using namespace mlir;
using namespace mlir::lora;
using lorart::schema::InputPort;
using lorart::schema::OutputPort;

namespace {

struct Trainable {
  std::string name;
  RankedTensorType type; // compute dtype
};

struct OptimizerPass : public lora::impl::OptimizerBase<OptimizerPass> {
  using OptimizerBase::OptimizerBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (failed(checkOptions(module)))
      return signalPassFailure();
    auto train = module.lookupSymbol<func::FuncOp>("train_step");
    if (!train) {
      module.emitError() << "no @train_step: run lora-autodiff first";
      return signalPassFailure();
    }
    if (module.lookupSymbol("optimizer_step")) {
      module.emitError() << "the module already has @optimizer_step";
      return signalPassFailure();
    }

    // 1. @train_step accumulates its gradients instead of returning them.
    auto ret = cast<func::ReturnOp>(train.getBody().back().getTerminator());
    OpBuilder b(ret);
    MLIRContext *ctx = &getContext();
    auto f32 = Float32Type::get(ctx);
    SmallVector<Value> kept;
    SmallVector<Type> keptTypes;
    SmallVector<DictionaryAttr> keptAttrs;
    SmallVector<Trainable> params;
    for (unsigned i = 0; i < ret.getNumOperands(); ++i) {
      Value v = ret.getOperand(i);
      auto of = train.getResultAttrOfType<StringAttr>(i, kGradOfAttrName);
      if (!of) {
        kept.push_back(v);
        keptTypes.push_back(v.getType());
        keptAttrs.push_back(train.getResultAttrDict(i));
        continue;
      }
      auto gt = cast<RankedTensorType>(v.getType());
      auto accType = RankedTensorType::get(gt.getShape(), f32);
      std::string accName = ("grad/" + of.getValue()).str();
      Location loc = v.getLoc();
      Value acc = b.create<ParamOp>(loc, accType, accName, ParamRole::Gradient,
                                    of.getValue());
      Value sum = b.create<AccumulateOp>(loc, accType, acc, v);
      b.create<AssignOp>(loc, b.getStringAttr(accName), sum);
      params.push_back({of.getValue().str(), gt});
    }
    if (params.empty()) {
      train.emitOpError() << "returns no gradient (no result has '"
                          << kGradOfAttrName << "')";
      return signalPassFailure();
    }
    b.create<func::ReturnOp>(ret.getLoc(), kept);
    ret.erase();
    train.setType(FunctionType::get(ctx, train.getArgumentTypes(), keptTypes));
    for (auto [i, attrs] : llvm::enumerate(keptAttrs))
      train.setResultAttrs(i, attrs);

    // 2. @optimizer_step.
    auto scalar = RankedTensorType::get({}, f32);
    OpBuilder mb(module.getBodyRegion());
    mb.setInsertionPointAfter(train);
    Location loc = NameLoc::get(mb.getStringAttr("optimizer"), train.getLoc());
    auto fn = mb.create<func::FuncOp>(
        loc, "optimizer_step",
        FunctionType::get(ctx, {scalar, scalar, scalar}, {scalar, scalar}));
    InputPort inputs[] = {InputPort::LearningRate, InputPort::Step,
                          InputPort::TokenCount};
    for (unsigned i = 0; i < 3; ++i)
      fn.setArgAttr(i, kInputAttrName,
                    mb.getStringAttr(lorart::PortName(inputs[i])));
    fn.setResultAttr(0, kOutputAttrName,
                     mb.getStringAttr(lorart::PortName(OutputPort::GradNorm)));
    fn.setResultAttr(1, kOutputAttrName,
                     mb.getStringAttr(lorart::PortName(OutputPort::GradScale)));
    Block *entry = fn.addEntryBlock();
    b.setInsertionPointToStart(entry);
    Value lr = entry->getArgument(0), step = entry->getArgument(1),
          count = entry->getArgument(2);
    // The names are only the keys the runtime saves the tensors under; what
    // each is comes from its role and init.
    auto state = [&](const std::string &prefix, const Trainable &t,
                     ParamRole role = ParamRole::OptimizerState,
                     std::optional<ParamInit> init = std::nullopt) -> Value {
      return b.create<ParamOp>(loc,
                               RankedTensorType::get(t.type.getShape(), f32),
                               prefix + t.name, role, t.name, init);
    };
    SmallVector<Value> grads;
    for (const Trainable &t : params)
      grads.push_back(state("grad/", t, ParamRole::Gradient));
    Value norm = b.create<GlobalNormOp>(loc, scalar, grads);
    Value scale = b.create<ClipScaleOp>(loc, scalar, norm, count,
                                        b.getF64FloatAttr(maxGradNorm));
    for (auto [t, g] : llvm::zip(params, grads)) {
      Value master = state("master/", t, ParamRole::OptimizerState,
                           ParamInit::CopyOfOwner),
            m = state("adam_m/", t),
            v = state("adam_v/", t);
      auto up = b.create<AdamWOp>(
          loc, master.getType(), master.getType(), master.getType(), master, g,
          m, v, lr, step, scale, b.getF64FloatAttr(beta1),
          b.getF64FloatAttr(beta2), b.getF64FloatAttr(eps),
          b.getF64FloatAttr(weightDecay));
      b.create<AssignOp>(loc, b.getStringAttr("master/" + t.name),
                         up.getNewParam());
      b.create<AssignOp>(loc, b.getStringAttr("adam_m/" + t.name),
                         up.getNewM());
      b.create<AssignOp>(loc, b.getStringAttr("adam_v/" + t.name),
                         up.getNewV());
      Value w = b.create<CastOp>(loc, t.type, up.getNewParam());
      b.create<AssignOp>(loc, b.getStringAttr(t.name), w);
      b.create<ResetOp>(loc, b.getStringAttr("grad/" + t.name),
                        TypeAttr::get(g.getType()));
    }
    b.create<func::ReturnOp>(loc, ValueRange{norm, scale});
  }

  LogicalResult checkOptions(ModuleOp module) {
    auto in01 = [](double x) { return x >= 0.0 && x < 1.0; };
    if (!in01(beta1))
      return module.emitError() << "option 'beta1' must be in [0, 1), got "
                                << static_cast<double>(beta1);
    if (!in01(beta2))
      return module.emitError() << "option 'beta2' must be in [0, 1), got "
                                << static_cast<double>(beta2);
    auto finite = [](double x) { return std::isfinite(x); };
    if (!(eps > 0.0) || !finite(eps))
      return module.emitError() << "option 'eps' must be positive, got "
                                << static_cast<double>(eps);
    if (!(weightDecay >= 0.0) || !finite(weightDecay))
      return module.emitError() << "option 'weight-decay' must be >= 0, got "
                                << static_cast<double>(weightDecay);
    if (!(maxGradNorm >= 0.0) || !finite(maxGradNorm))
      return module.emitError()
             << "option 'max-grad-norm' must be >= 0 (0: no clipping), got "
             << static_cast<double>(maxGradNorm);
    return success();
  }
};

} // namespace
