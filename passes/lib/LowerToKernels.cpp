//===- LowerToKernels.cpp - choose a kernel and its parameters per op -----===//
//
// Every op of the final training graph (except parameter bindings and the
// return) gets a `lora.kernel` dictionary: `kind` names the kernel family the
// runtime implements on each backend, the other entries are its parameters
// (problem sizes, quantization layout, scaling, algorithm choices such as the
// attention and cross-entropy chunk sizes). The serializer writes them into
// train.bin as kernels and launches.
//
//===----------------------------------------------------------------------===//
#include "lora/Dialect/Lora/IR/LoraOps.h"
#include "lora/Transforms/KernelContract.h"
#include "lora/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/TypeSwitch.h"

namespace mlir::lora {
#define GEN_PASS_DEF_LOWERTOKERNELS
#include "lora/Transforms/Passes.h.inc"
} // namespace mlir::lora

using namespace mlir;
using namespace mlir::lora;

namespace {

/// Collects a kernel's kind and parameters.
class KernelBuilder {
public:
  KernelBuilder(MLIRContext *ctx, StringRef kind) : b(ctx) {
    attrs.push_back(b.getNamedAttr("kind", b.getStringAttr(kind)));
  }
  KernelBuilder &i(StringRef k, int64_t v) {
    attrs.push_back(b.getNamedAttr(k, b.getI64IntegerAttr(v)));
    return *this;
  }
  KernelBuilder &f(StringRef k, double v) {
    attrs.push_back(b.getNamedAttr(k, b.getF64FloatAttr(v)));
    return *this;
  }
  KernelBuilder &s(StringRef k, StringRef v) {
    attrs.push_back(b.getNamedAttr(k, b.getStringAttr(v)));
    return *this;
  }
  /// The weight's storage: "nf4" with its layout, or the float dtype.
  KernelBuilder &weight(Value w) {
    if (auto nf4 = dyn_cast<NF4Type>(w.getType())) {
      s("weight_format", "nf4");
      i("block_size", nf4.getBlockSize());
      i("double_quant_block", nf4.getDoubleQuantBlock());
    } else {
      s("weight_format", "dense");
    }
    return *this;
  }
  DictionaryAttr get() { return b.getDictionaryAttr(attrs); }

private:
  Builder b;
  SmallVector<NamedAttribute> attrs;
};

/// The dropout random stream of an op: a hash of its module name (its
/// NameLoc), shared by the forward op, its gradient op and any recomputed
/// clone, so that all of them draw the same mask for a given step seed.
int64_t rngStream(Operation *op) {
  Location loc = op->getLoc();
  std::string name;
  loc->walk([&](Location l) {
    if (auto nl = dyn_cast<NameLoc>(l)) {
      name = nl.getName().str();
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  if (name.empty())
    return 0;
  uint64_t h = 1469598103934665603ull; // FNV-1a
  for (char c : name) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return static_cast<int64_t>(h & 0x7fffffffffffffffull);
}

ArrayRef<int64_t> shapeOf(Value v) {
  if (auto nf4 = dyn_cast<NF4Type>(v.getType()))
    return nf4.getShape();
  return cast<RankedTensorType>(v.getType()).getShape();
}

/// Rows of a [..., features] activation.
int64_t rows(Value v) {
  int64_t n = 1;
  for (int64_t d : shapeOf(v).drop_back())
    n *= d;
  return n;
}

struct LowerToKernelsPass
    : public lora::impl::LowerToKernelsBase<LowerToKernelsPass> {
  using LowerToKernelsBase::LowerToKernelsBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (target != "cpu" && target != "cuda") {
      module.emitError() << "option 'target' must be cpu or cuda, got '"
                         << target << "'";
      return signalPassFailure();
    }
    if (attentionBlock <= 0) {
      module.emitError() << "option 'attention-block' must be positive, got "
                         << static_cast<int64_t>(attentionBlock);
      return signalPassFailure();
    }
    WalkResult r = module.walk([&](Operation *op) {
      if (isa<ModuleOp, func::FuncOp, func::ReturnOp, ParamOp>(op))
        return WalkResult::advance();
      FailureOr<DictionaryAttr> k = kernelFor(op);
      if (failed(k))
        return WalkResult::interrupt();
      // Dropout is a training-time regularizer: only @train_step draws
      // masks; every other program runs the adapters deterministically.
      auto fn = op->getParentOfType<func::FuncOp>();
      if (k->get("dropout") && (!fn || fn.getName() != "train_step")) {
        NamedAttrList attrs(*k);
        attrs.set("dropout", FloatAttr::get(Float64Type::get(op->getContext()), 0.0));
        k = attrs.getDictionary(op->getContext());
      }
      // The builders above and kernel_kinds.def must agree: a parameter
      // the runtime would refuse at load time is a compiler error here.
      if (failed(verifyKernelParams(op, *k)))
        return WalkResult::interrupt();
      op->setAttr(kKernelAttrName, *k);
      return WalkResult::advance();
    });
    if (r.wasInterrupted())
      return signalPassFailure();
  }

  FailureOr<DictionaryAttr> kernelFor(Operation *op) {
    MLIRContext *ctx = op->getContext();
    for (Value v : op->getOperands())
      if (auto t = dyn_cast<RankedTensorType>(v.getType());
          t && !t.hasStaticShape()) {
        op->emitOpError() << "has a dynamic operand " << t
                          << ": run lora-specialize-shapes first";
        return failure();
      }
    auto matmul = [&](StringRef kind, Value x, Value w) {
      KernelBuilder k(ctx, kind);
      ArrayRef<int64_t> ws = shapeOf(w);
      k.i("m", rows(x)).i("n", ws[0]).i("k", ws[1]).weight(w);
      return k;
    };
    auto attention = [&](StringRef kind, Value q, bool seg, int64_t heads,
                         int64_t kv, int64_t hd, double scale,
                         std::optional<int64_t> window) {
      ArrayRef<int64_t> s = shapeOf(q);
      KernelBuilder k(ctx, kind);
      k.i("batch", s[0]).i("seq", s[1]).i("num_heads", heads)
          .i("num_kv_heads", kv).i("head_dim", hd).f("scale", scale)
          .i("causal", 1).i("segments", seg ? 1 : 0)
          .i("sliding_window", window.value_or(0))
          .i("block_q", attentionBlock).i("block_k", attentionBlock);
      return k.get();
    };
    auto rope = [&](StringRef kind, Value x, int64_t hd, double theta,
                    RopeScalingAttr sc) {
      ArrayRef<int64_t> s = shapeOf(x);
      KernelBuilder k(ctx, kind);
      k.i("batch", s[0]).i("seq", s[1]).i("features", s[2]).i("head_dim", hd)
          .f("theta", theta);
      if (sc) {
        k.s("scaling", stringifyRopeScalingKind(sc.getKind()))
            .f("factor", sc.getFactor().convertToDouble())
            .f("low_freq_factor", sc.getLowFreqFactor().convertToDouble())
            .f("high_freq_factor", sc.getHighFreqFactor().convertToDouble())
            .i("original_max_position_embeddings",
               sc.getOriginalMaxPositionEmbeddings());
      } else {
        k.s("scaling", "none");
      }
      return k.get();
    };
    auto elementwise = [&](StringRef kind, Value v) {
      KernelBuilder k(ctx, kind);
      int64_t n = 1;
      for (int64_t d : shapeOf(v))
        n *= d;
      k.i("elements", n);
      return k.get();
    };
    auto lmLoss = [&](StringRef kind, Value x, Value w, int64_t chunk) {
      KernelBuilder k(ctx, kind);
      k.i("tokens", rows(x)).i("hidden", shapeOf(w)[1])
          .i("vocab", shapeOf(w)[0]).i("chunk_size", chunk);
      return k.get();
    };
    // The EWC penalty of an adapter (a [r, k], b [n, r]) and its gradient.
    auto ewc = [&](StringRef kind, Value a, Value b, APFloat scaling, APFloat lambda) {
      KernelBuilder k(ctx, kind);
      k.i("n", shapeOf(b)[0]).i("k", shapeOf(a)[1]).i("rank", shapeOf(a)[0])
          .f("scaling", scaling.convertToDouble()).f("lambda", lambda.convertToDouble());
      return k.get();
    };

    std::optional<DictionaryAttr> result =
        llvm::TypeSwitch<Operation *, std::optional<DictionaryAttr>>(op)
            .Case([&](EmbeddingOp o) {
              KernelBuilder k(ctx, "embedding_fwd");
              k.i("tokens", rows(o.getResult())).i("hidden", shapeOf(o.getTable())[1])
                  .i("vocab", shapeOf(o.getTable())[0]);
              return k.get();
            })
            .Case([&](EmbeddingGradOp o) {
              KernelBuilder k(ctx, "embedding_bwd");
              k.i("tokens", rows(o.getDy())).i("hidden", shapeOf(o.getDtable())[1])
                  .i("vocab", shapeOf(o.getDtable())[0]);
              return k.get();
            })
            // A norm per group of features (weight smaller than x's last
            // axis) is the same kernel over [rows·groups, group].
            .Case([&](RMSNormOp o) {
              KernelBuilder k(ctx, "rms_norm_fwd");
              int64_t g = shapeOf(o.getWeight())[0];
              k.i("rows", rows(o.getX()) * (shapeOf(o.getX()).back() / g)).i("hidden", g)
                  .f("eps", o.getEps().convertToDouble());
              return k.get();
            })
            .Case([&](RMSNormGradOp o) {
              KernelBuilder k(ctx, "rms_norm_bwd");
              int64_t g = shapeOf(o.getWeight())[0];
              k.i("rows", rows(o.getX()) * (shapeOf(o.getX()).back() / g)).i("hidden", g)
                  .f("eps", o.getEps().convertToDouble());
              return k.get();
            })
            .Case([&](LinearOp o) {
              auto k = matmul("linear_fwd", o.getX(), o.getWeight());
              k.i("bias", o.getBias() ? 1 : 0);
              return k.get();
            })
            .Case([&](FusedLinearOp o) {
              auto k = matmul("fused_linear_fwd", o.getX(), o.getWeight());
              k.i("bias", o.getBias() ? 1 : 0);
              if (o.getA()) {
                int64_t r = shapeOf(o.getA())[0];
                k.i("rank", r)
                    .f("scaling", o.getAlpha()->convertToDouble() / r)
                    .f("dropout", o.getDropout().convertToDouble())
                    .i("rng_stream", rngStream(o));
              } else {
                k.i("rank", 0);
              }
              return k.get();
            })
            .Case([&](LinearGradXOp o) {
              return matmul("linear_bwd_x", o.getDx(), o.getWeight()).get();
            })
            .Case([&](LinearGradWOp o) {
              KernelBuilder k(ctx, "linear_bwd_w");
              k.i("m", rows(o.getX())).i("n", shapeOf(o.getDweight())[0])
                  .i("k", shapeOf(o.getDweight())[1]);
              return k.get();
            })
            .Case([&](BiasGradOp o) {
              KernelBuilder k(ctx, "bias_bwd");
              k.i("rows", rows(o.getDy())).i("n", shapeOf(o.getDy()).back());
              return k.get();
            })
            .Case([&](AdapterOp o) {
              KernelBuilder k(ctx, "lora_fwd");
              int64_t r = shapeOf(o.getA())[0];
              k.i("m", rows(o.getX())).i("n", shapeOf(o.getB())[0])
                  .i("k", shapeOf(o.getA())[1]).i("rank", r)
                  .f("scaling", o.getScaling())
                  .f("dropout", o.getDropout().convertToDouble())
                  .i("rng_stream", rngStream(o));
              return k.get();
            })
            .Case([&](AdapterGradOp o) {
              KernelBuilder k(ctx, "lora_bwd");
              int64_t r = shapeOf(o.getA())[0];
              k.i("m", rows(o.getX())).i("n", shapeOf(o.getB())[0])
                  .i("k", shapeOf(o.getA())[1]).i("rank", r)
                  .f("scaling", o.getAlpha().convertToDouble() / r)
                  .f("dropout", o.getDropout().convertToDouble())
                  .i("rng_stream", rngStream(o));
              return k.get();
            })
            .Case([&](FusedLinearGradOp o) {
              auto k = matmul("fused_linear_bwd", o.getX(), o.getWeight());
              int64_t r = shapeOf(o.getA())[0];
              k.i("rank", r)
                  .f("scaling", o.getAlpha().convertToDouble() / r)
                  .f("dropout", o.getDropout().convertToDouble())
                  .i("rng_stream", rngStream(o));
              return k.get();
            })
            .Case([&](RopeOp o) {
              return rope("rope_fwd", o.getX(), o.getHeadDim(),
                          o.getTheta().convertToDouble(), o.getScalingAttr());
            })
            .Case([&](RopeGradOp o) {
              return rope("rope_bwd", o.getDy(), o.getHeadDim(),
                          o.getTheta().convertToDouble(), o.getScalingAttr());
            })
            .Case([&](AttentionOp o) {
              return attention("attention_fwd", o.getQ(),
                               static_cast<bool>(o.getSegmentIds()),
                               o.getNumHeads(), o.getNumKvHeads(),
                               o.getHeadDim(), o.getEffectiveScale(),
                               o.getSlidingWindow());
            })
            .Case([&](AttentionGradOp o) {
              double scale = o.getScale() ? o.getScale()->convertToDouble()
                                          : 1.0 / std::sqrt(static_cast<double>(
                                                      o.getHeadDim()));
              return attention("attention_bwd", o.getQ(),
                               static_cast<bool>(o.getSegmentIds()),
                               o.getNumHeads(), o.getNumKvHeads(),
                               o.getHeadDim(), scale, o.getSlidingWindow());
            })
            .Case([&](SwiGLUOp o) { return elementwise("swiglu_fwd", o.getGate()); })
            .Case([&](SwiGLUGradOp o) { return elementwise("swiglu_bwd", o.getGate()); })
            .Case([&](AddOp o) { return elementwise("add", o.getLhs()); })
            .Case([&](LMHeadOp o) {
              return matmul("lm_head_fwd", o.getX(), o.getWeight()).get();
            })
            .Case([&](CrossEntropyOp o) {
              KernelBuilder k(ctx, "cross_entropy_fwd");
              k.i("tokens", rows(o.getLogits())).i("vocab", shapeOf(o.getLogits()).back());
              return k.get();
            })
            .Case([&](CrossEntropyGradOp o) {
              KernelBuilder k(ctx, "cross_entropy_bwd");
              k.i("tokens", rows(o.getLogits())).i("vocab", shapeOf(o.getLogits()).back());
              return k.get();
            })
            .Case([&](SequenceLogProbsOp o) {
              KernelBuilder k(ctx, "sequence_logprobs_fwd");
              k.i("tokens", rows(o.getLogits())).i("vocab", shapeOf(o.getLogits()).back())
                  .i("sequences", o.getNumSequences());
              return k.get();
            })
            .Case([&](SequenceLogProbsGradOp o) {
              KernelBuilder k(ctx, "sequence_logprobs_bwd");
              k.i("tokens", rows(o.getLogits())).i("vocab", shapeOf(o.getLogits()).back())
                  .i("sequences", shapeOf(o.getDlogprobs())[0]);
              return k.get();
            })
            .Case([&](ReplayLossOp o) {
              KernelBuilder k(ctx, "replay_loss_fwd");
              k.i("pairs", shapeOf(o.getPairMask())[0]).f("weight", o.getWeight().convertToDouble());
              return k.get();
            })
            .Case([&](ReplayLossGradOp o) {
              KernelBuilder k(ctx, "replay_loss_bwd");
              k.i("pairs", shapeOf(o.getPairMask())[0]).f("weight", o.getWeight().convertToDouble());
              return k.get();
            })
            .Case([&](EWCPenaltyOp o) {
              return ewc("ewc_penalty_fwd", o.getA(), o.getB(), o.getScaling(), o.getLambda());
            })
            .Case([&](EWCPenaltyGradOp o) {
              return ewc("ewc_penalty_bwd", o.getA(), o.getB(), o.getScaling(), o.getLambda());
            })
            .Case([&](DPOLossOp o) {
              KernelBuilder k(ctx, "dpo_loss_fwd");
              k.i("pairs", shapeOf(o.getPairMask())[0]).f("beta", o.getBeta().convertToDouble())
                  .i("ipo", o.getLossType() == "ipo" ? 1 : 0);
              return k.get();
            })
            .Case([&](DPOLossGradOp o) {
              KernelBuilder k(ctx, "dpo_loss_bwd");
              k.i("pairs", shapeOf(o.getPairMask())[0]).f("beta", o.getBeta().convertToDouble())
                  .i("ipo", o.getLossType() == "ipo" ? 1 : 0);
              return k.get();
            })
            .Case([&](LMHeadCrossEntropyOp o) {
              return lmLoss("lm_head_ce_fwd", o.getX(), o.getWeight(), o.getChunkSize());
            })
            .Case([&](LMHeadCrossEntropyGradOp o) {
              return lmLoss("lm_head_ce_bwd_x", o.getX(), o.getWeight(), o.getChunkSize());
            })
            .Case([&](LMHeadCrossEntropyGradWOp o) {
              return lmLoss("lm_head_ce_bwd_w", o.getX(), o.getWeight(), o.getChunkSize());
            })
            .Case([&](SelectRowsOp o) {
              KernelBuilder k(ctx, "select_rows");
              ArrayRef<int64_t> s = shapeOf(o.getX());
              k.i("batch", s[0]).i("seq", s[1]).i("hidden", s[2]);
              return k.get();
            })
            .Case([&](SegmentBoundaryMaskOp o) {
              KernelBuilder k(ctx, "segment_boundary_mask");
              k.i("batch", shapeOf(o.getMask())[0]).i("seq", shapeOf(o.getMask())[1]);
              return k.get();
            })
            .Case([&](DequantizeOp o) {
              KernelBuilder k(ctx, "dequantize");
              k.weight(o.getInput()).i("elements", cast<NF4Type>(o.getInput().getType()).getNumElements());
              return k.get();
            })
            .Case([&](ScalarOp o) {
              KernelBuilder k(ctx, "fill");
              k.f("value", o.getValue().convertToDouble()).i("elements", 1);
              return k.get();
            })
            .Case([&](AccumulateOp o) { return elementwise("accumulate", o.getAcc()); })
            .Case([&](AssignOp o) { return elementwise("copy", o.getValue()); })
            .Case([&](ResetOp o) {
              KernelBuilder k(ctx, "zero");
              k.i("elements", cast<RankedTensorType>(o.getStorageType()).getNumElements());
              return k.get();
            })
            .Case([&](GlobalNormOp o) {
              KernelBuilder k(ctx, "global_norm");
              k.i("tensors", o.getInputs().size());
              return k.get();
            })
            .Case([&](ClipScaleOp o) {
              KernelBuilder k(ctx, "clip_scale");
              k.f("max_norm", o.getMaxNorm().convertToDouble());
              return k.get();
            })
            .Case([&](AdamWOp o) {
              KernelBuilder k(ctx, "adamw");
              int64_t n = cast<RankedTensorType>(o.getParam().getType()).getNumElements();
              k.i("elements", n).f("beta1", o.getBeta1().convertToDouble())
                  .f("beta2", o.getBeta2().convertToDouble())
                  .f("eps", o.getEps().convertToDouble())
                  .f("weight_decay", o.getWeightDecay().convertToDouble());
              return k.get();
            })
            .Case([&](CastOp o) { return elementwise("cast", o.getInput()); })
            .Default([](Operation *) { return std::nullopt; });
    if (!result) {
      op->emitOpError() << "has no kernel";
      return failure();
    }
    return *result;
  }
};

} // namespace
