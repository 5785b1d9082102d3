//===- DataParallel.cpp - gradient all-reduce for data-parallel training --===//
//
// Makes a training plan data-parallel (docs/distributed.md): every rank runs
// the same plan on its share of each optimizer step's micro-batches, and the
// plan sums what must be summed over the ranks.
//
// - @train_step: each gradient accumulation (lora.accumulate +
//   lora.assign "grad/…", which lora-optimizer places at the end) moves to
//   right after the op that produces the gradient, so the accumulators fill
//   in the order of the backward. They are grouped, in that order, into
//   buckets of about `bucket-mb` MiB; after the last accumulation of a
//   bucket, `lora.grad_all_reduce_start` starts its all-reduce while the
//   rest of the backward runs. A new input `sync_gradients` says whether to
//   (not 0 only on the last micro-batch of an optimizer step, so gradient
//   accumulation communicates once per step).
// - @optimizer_step: `lora.grad_all_reduce_wait` for every bucket before
//   anything reads the accumulators, and `lora.all_reduce_sum` of the token
//   count, so that the normalisation divides the sum over all ranks by the
//   target tokens of all ranks (not a mean of per-rank means).
//
// The plan does not depend on the number of ranks: with one rank every
// collective is the identity.
//
//===----------------------------------------------------------------------===//
#include "lora/Dialect/Lora/IR/LoraOps.h"
#include "lora/Transforms/Passes.h"
#include "lora/Transforms/Ports.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace mlir::lora {
#define GEN_PASS_DEF_DATAPARALLEL
#include "lora/Transforms/Passes.h.inc"
} // namespace mlir::lora

using namespace mlir;
using namespace mlir::lora;
using lorart::schema::InputPort;

namespace {

/// One gradient accumulation of @train_step.
struct Accumulation {
  ParamOp acc;
  AccumulateOp sum;
  AssignOp assign;
  int64_t bytes;
};

struct DataParallelPass
    : public lora::impl::DataParallelBase<DataParallelPass> {
  using DataParallelBase::DataParallelBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (!(bucketMb > 0.0)) {
      module.emitError() << "option 'bucket-mb' must be positive, got "
                         << static_cast<double>(bucketMb);
      return signalPassFailure();
    }
    auto train = module.lookupSymbol<func::FuncOp>("train_step");
    auto opt = module.lookupSymbol<func::FuncOp>("optimizer_step");
    if (!train || !opt) {
      module.emitError() << "no @train_step and @optimizer_step: run "
                            "lora-optimizer first";
      return signalPassFailure();
    }
    if (findInput(train, InputPort::SyncGradients)) {
      train.emitOpError() << "already has a sync_gradients input: the plan "
                             "is data-parallel already";
      return signalPassFailure();
    }
    BlockArgument count = findInput(opt, InputPort::TokenCount);
    if (!count) {
      opt.emitOpError() << "has no token_count input";
      return signalPassFailure();
    }

    // 1. The accumulations, each moved to right after its gradient's
    // producer.
    SmallVector<Accumulation> accs;
    Block &body = train.getBody().front();
    for (auto assign : llvm::make_early_inc_range(body.getOps<AssignOp>())) {
      auto sum = assign.getValue().getDefiningOp<AccumulateOp>();
      ParamOp acc = sum ? sum.getAcc().getDefiningOp<ParamOp>() : ParamOp();
      if (!acc || acc.getRole() != ParamRole::Gradient ||
          acc.getName() != assign.getName())
        continue;
      if (!sum->hasOneUse() || !acc->hasOneUse()) {
        sum.emitOpError() << "is read by more than the gradient's lora.assign";
        return signalPassFailure();
      }
      auto type = cast<RankedTensorType>(acc.getType());
      accs.push_back({acc, sum, assign, type.getNumElements() * 4});
    }
    if (accs.empty()) {
      train.emitOpError() << "accumulates no gradient (no lora.assign of a "
                             "gradient accumulator): run lora-optimizer first";
      return signalPassFailure();
    }
    for (Accumulation &a : accs) {
      Operation *producer = a.sum.getValue().getDefiningOp();
      if (!producer || producer->getBlock() != &body)
        continue; // an argument: it stays where it is
      a.sum->moveAfter(producer);
      a.acc->moveBefore(a.sum);
      a.assign->moveAfter(a.sum);
    }
    llvm::stable_sort(accs, [](const Accumulation &x, const Accumulation &y) {
      return x.assign->isBeforeInBlock(y.assign);
    });

    // 2. Buckets in the order the backward fills them; each starts after
    // its last accumulation.
    MLIRContext *ctx = &getContext();
    OpBuilder b(ctx);
    auto scalar = RankedTensorType::get({}, Float32Type::get(ctx));
    Location loc = train.getLoc();
    Value sync = insertInput(train, train.getNumArguments(), scalar,
                             InputPort::SyncGradients, loc);
    const int64_t cap = static_cast<int64_t>(bucketMb * 1024.0 * 1024.0);
    struct Bucket {
      SmallVector<Attribute> names;
      int64_t bytes = 0;
    };
    SmallVector<Bucket> buckets;
    Bucket open;
    for (auto [i, a] : llvm::enumerate(accs)) {
      open.names.push_back(b.getStringAttr(a.assign.getName()));
      open.bytes += a.bytes;
      if (open.bytes < cap && i + 1 < accs.size())
        continue;
      b.setInsertionPointAfter(a.assign);
      b.create<GradAllReduceStartOp>(
          a.assign.getLoc(), sync, b.getArrayAttr(open.names),
          b.getI64IntegerAttr(static_cast<int64_t>(buckets.size())),
          b.getI64IntegerAttr(open.bytes));
      buckets.push_back(std::move(open));
      open = Bucket();
    }

    // 3. @optimizer_step waits for every bucket, then sums the token count.
    Block &entry = opt.getBody().front();
    b.setInsertionPointToStart(&entry);
    Location optLoc = opt.getLoc();
    for (auto [i, bk] : llvm::enumerate(buckets))
      b.create<GradAllReduceWaitOp>(optLoc, b.getArrayAttr(bk.names),
                                    b.getI64IntegerAttr(i),
                                    b.getI64IntegerAttr(bk.bytes));
    auto all = b.create<AllReduceSumOp>(optLoc, count.getType(), count);
    count.replaceAllUsesExcept(all.getResult(), all);
  }
};

} // namespace
