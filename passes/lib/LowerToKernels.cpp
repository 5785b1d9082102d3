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
#include "lora/Transforms/ModelSummary.h"
#include "lora/Transforms/Passes.h"
#include "lorart/plan/kernel_params.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/TypeSwitch.h"

#include <cmath>

namespace mlir::lora {
#define GEN_PASS_DEF_LOWERTOKERNELS
#include "lora/Transforms/Passes.h.inc"
} // namespace mlir::lora

using namespace mlir;
using namespace mlir::lora;

namespace {

namespace params = lorart::kernels::params;

/// The `lora.kernel` dictionary of a kernel: `kind` and one entry per field
/// of its kind's typed parameter struct (lorart/plan/kernel_params.h,
/// generated from kernel_kinds.def), optional fields only when set. The
/// builders below fill structs, so a parameter's name and type come from the
/// declaration and a misspelt one does not compile.
template <class P>
DictionaryAttr kernelAttr(MLIRContext *ctx, const P &p) {
  struct Sink {
    Builder b;
    SmallVector<NamedAttribute> attrs;
    void Set(const char *k, int64_t v) {
      attrs.push_back(b.getNamedAttr(k, b.getI64IntegerAttr(v)));
    }
    void Set(const char *k, double v) {
      attrs.push_back(b.getNamedAttr(k, b.getF64FloatAttr(v)));
    }
    void Set(const char *k, const std::string &v) {
      attrs.push_back(b.getNamedAttr(k, b.getStringAttr(v)));
    }
  } sink{Builder(ctx), {}};
  sink.attrs.push_back(sink.b.getNamedAttr(
      "kind", sink.b.getStringAttr(lorart::kernels::KindName(P::kKind))));
  lorart::kernels::WriteParams(sink, p);
  return sink.b.getDictionaryAttr(sink.attrs);
}

/// The weight's storage: "nf4" with its layout, or "dense".
template <class P>
void setWeight(P &p, Value w) {
  if (auto nf4 = dyn_cast<NF4Type>(w.getType())) {
    p.weight_format = "nf4";
    p.block_size = nf4.getBlockSize();
    p.double_quant_block = nf4.getDoubleQuantBlock();
  } else {
    p.weight_format = "dense";
  }
}

/// The dropout random stream of an op: a hash of its module name (its
/// NameLoc), shared by the forward op, its gradient op and any recomputed
/// clone, so that all of them draw the same mask for a given step seed.
int64_t rngStream(Operation *op) {
  std::optional<StringRef> module = getModuleName(op->getLoc());
  if (!module || module->empty())
    return 0;
  StringRef name = *module;
  uint64_t h = 1469598103934665603ull; // FNV-1a
  for (char c : name) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return static_cast<int64_t>(h & 0x7fffffffffffffffull);
}

/// The softmax scale of an attention op: `scale` if set, else
/// 1/sqrt(head_dim).
template <class Op> double scaleOf(Op o) {
  if (auto scale = o.getScale())
    return scale->convertToDouble();
  return 1.0 / std::sqrt(static_cast<double>(o.getHeadDim()));
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

} // namespace

LogicalResult mlir::lora::checkTargetOption(ModuleOp module, StringRef target) {
  if (target == "cpu" || target == "cuda")
    return success();
  return module.emitError()
         << "option 'target' must be cpu or cuda, got '" << target << "'";
}

namespace {

struct LowerToKernelsPass
    : public lora::impl::LowerToKernelsBase<LowerToKernelsPass> {
  using LowerToKernelsBase::LowerToKernelsBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (failed(checkTargetOption(module, target)))
      return signalPassFailure();
    if (attentionBlock <= 0) {
      module.emitError() << "option 'attention-block' must be positive, got "
                         << static_cast<int64_t>(attentionBlock);
      return signalPassFailure();
    }
    WalkResult r = module.walk([&](Operation *op) {
      if (isa<ModuleOp, func::FuncOp, func::ReturnOp, ParamOp>(op))
        return WalkResult::advance();
      // Dropout is a training-time regularizer: only @train_step draws
      // masks; every other program runs the adapters deterministically.
      auto fn = op->getParentOfType<func::FuncOp>();
      bool training = fn && fn.getName() == "train_step";
      FailureOr<DictionaryAttr> k = kernelFor(op, training);
      if (failed(k))
        return WalkResult::interrupt();
      // The builders fill kernel_kinds.def's structs; this also checks what
      // the structs cannot (a required string left empty is still present).
      if (failed(verifyKernelParams(op, *k)))
        return WalkResult::interrupt();
      op->setAttr(kKernelAttrName, *k);
      return WalkResult::advance();
    });
    if (r.wasInterrupted())
      return signalPassFailure();
  }

  FailureOr<DictionaryAttr> kernelFor(Operation *op, bool training) {
    MLIRContext *ctx = op->getContext();
    for (Value v : op->getOperands())
      if (auto t = dyn_cast<RankedTensorType>(v.getType());
          t && !t.hasStaticShape()) {
        op->emitOpError() << "has a dynamic operand " << t
                          << ": run lora-specialize-shapes first";
        return failure();
      }
    // m, n, k of x [m, k] times w [n, k]ᵀ, and the weight's storage.
    auto matmul = [&](auto &p, Value x, Value w) {
      ArrayRef<int64_t> ws = shapeOf(w);
      p.m = rows(x);
      p.n = ws[0];
      p.k = ws[1];
      setWeight(p, w);
    };
    // An adapter of rank r with lora_alpha / r scaling.
    auto adapter = [&](auto &p, int64_t r, double scaling, APFloat dropout) {
      p.rank = r;
      p.scaling = scaling;
      p.dropout = training ? dropout.convertToDouble() : 0.0;
      p.rng_stream = rngStream(op);
    };
    // Any of the attention ops (forward, forward with lse, backward).
    auto attention = [&](auto p, auto o) {
      ArrayRef<int64_t> s = shapeOf(o.getQ());
      p.batch = s[0];
      p.seq = s[1];
      p.num_heads = o.getNumHeads();
      p.num_kv_heads = o.getNumKvHeads();
      p.head_dim = o.getHeadDim();
      p.scale = scaleOf(o);
      p.causal = 1;
      p.segments = o.getSegmentIds() ? 1 : 0;
      p.sliding_window = o.getSlidingWindow().value_or(0);
      p.block_q = attentionBlock;
      p.block_k = attentionBlock;
      return kernelAttr(ctx, p);
    };
    auto rope = [&](auto p, Value x, int64_t hd, double theta,
                    RopeScalingAttr sc) {
      ArrayRef<int64_t> s = shapeOf(x);
      p.batch = s[0];
      p.seq = s[1];
      p.features = s[2];
      p.head_dim = hd;
      p.theta = theta;
      p.scaling = "none";
      if (sc) {
        p.scaling = stringifyRopeScalingKind(sc.getKind()).str();
        p.factor = sc.getFactor().convertToDouble();
        p.low_freq_factor = sc.getLowFreqFactor().convertToDouble();
        p.high_freq_factor = sc.getHighFreqFactor().convertToDouble();
        p.original_max_position_embeddings =
            sc.getOriginalMaxPositionEmbeddings();
      }
      return kernelAttr(ctx, p);
    };
    auto elements = [&](auto p, int64_t n) {
      p.elements = n;
      return kernelAttr(ctx, p);
    };
    auto elementwise = [&](auto p, Value v) {
      int64_t n = 1;
      for (int64_t d : shapeOf(v))
        n *= d;
      return elements(p, n);
    };
    // A gradient bucket's start or wait (lora-data-parallel).
    auto bucket = [&](auto p, auto o) {
      p.bucket = o.getBucket();
      p.tensors = static_cast<int64_t>(o.getNames().size());
      p.bytes = o.getBytes();
      return kernelAttr(ctx, p);
    };
    auto lmLoss = [&](auto p, Value x, Value w, int64_t chunk) {
      p.tokens = rows(x);
      p.hidden = shapeOf(w)[1];
      p.vocab = shapeOf(w)[0];
      p.chunk_size = chunk;
      return kernelAttr(ctx, p);
    };
    // The EWC penalty of an adapter (a [r, k], b [n, r]) and its gradient.
    auto ewc = [&](auto p, Value a, Value b, APFloat scaling, APFloat lambda) {
      p.n = shapeOf(b)[0];
      p.k = shapeOf(a)[1];
      p.rank = shapeOf(a)[0];
      p.scaling = scaling.convertToDouble();
      p.lambda = lambda.convertToDouble();
      return kernelAttr(ctx, p);
    };
    auto embedding = [&](auto p, Value rowsOf, Value table) {
      p.tokens = rows(rowsOf);
      p.hidden = shapeOf(table)[1];
      p.vocab = shapeOf(table)[0];
      return kernelAttr(ctx, p);
    };
    // A norm per group of features (weight smaller than x's last axis) is
    // the same kernel over [rows·groups, group].
    auto norm = [&](auto p, Value x, Value weight, APFloat eps) {
      int64_t g = shapeOf(weight)[0];
      p.rows = rows(x) * (shapeOf(x).back() / g);
      p.hidden = g;
      p.eps = eps.convertToDouble();
      return kernelAttr(ctx, p);
    };
    auto logits = [&](auto p, Value l) {
      p.tokens = rows(l);
      p.vocab = shapeOf(l).back();
      return p;
    };
    auto dpo = [&](auto p, Value pairMask, APFloat beta, StringRef lossType) {
      p.pairs = shapeOf(pairMask)[0];
      p.beta = beta.convertToDouble();
      p.ipo = lossType == "ipo" ? 1 : 0;
      return kernelAttr(ctx, p);
    };
    auto replay = [&](auto p, Value pairMask, APFloat weight) {
      p.pairs = shapeOf(pairMask)[0];
      p.weight = weight.convertToDouble();
      return kernelAttr(ctx, p);
    };

    std::optional<DictionaryAttr> result =
        llvm::TypeSwitch<Operation *, std::optional<DictionaryAttr>>(op)
            .Case([&](EmbeddingOp o) {
              return embedding(params::embedding_fwd{}, o.getResult(), o.getTable());
            })
            .Case([&](EmbeddingGradOp o) {
              return embedding(params::embedding_bwd{}, o.getDy(), o.getDtable());
            })
            .Case([&](RMSNormOp o) {
              return norm(params::rms_norm_fwd{}, o.getX(), o.getWeight(), o.getEps());
            })
            .Case([&](RMSNormGradOp o) {
              return norm(params::rms_norm_bwd{}, o.getX(), o.getWeight(), o.getEps());
            })
            .Case([&](LinearOp o) {
              params::linear_fwd p;
              matmul(p, o.getX(), o.getWeight());
              p.bias = o.getBias() ? 1 : 0;
              return kernelAttr(ctx, p);
            })
            .Case([&](FusedLinearOp o) {
              params::fused_linear_fwd p;
              matmul(p, o.getX(), o.getWeight());
              p.bias = o.getBias() ? 1 : 0;
              p.rank = 0;
              if (o.getA()) {
                int64_t r = shapeOf(o.getA())[0];
                adapter(p, r, o.getAlpha()->convertToDouble() / r, o.getDropout());
              }
              return kernelAttr(ctx, p);
            })
            .Case([&](LinearGradXOp o) {
              params::linear_bwd_x p;
              matmul(p, o.getDx(), o.getWeight());
              return kernelAttr(ctx, p);
            })
            .Case([&](LinearGradWOp o) {
              params::linear_bwd_w p;
              p.m = rows(o.getX());
              p.n = shapeOf(o.getDweight())[0];
              p.k = shapeOf(o.getDweight())[1];
              return kernelAttr(ctx, p);
            })
            .Case([&](BiasGradOp o) {
              params::bias_bwd p;
              p.rows = rows(o.getDy());
              p.n = shapeOf(o.getDy()).back();
              return kernelAttr(ctx, p);
            })
            .Case([&](AdapterOp o) {
              params::lora_fwd p;
              int64_t r = shapeOf(o.getA())[0];
              p.m = rows(o.getX());
              p.n = shapeOf(o.getB())[0];
              p.k = shapeOf(o.getA())[1];
              adapter(p, r, o.getScaling(), o.getDropout());
              return kernelAttr(ctx, p);
            })
            .Case([&](AdapterGradOp o) {
              params::lora_bwd p;
              int64_t r = shapeOf(o.getA())[0];
              p.m = rows(o.getX());
              p.n = shapeOf(o.getB())[0];
              p.k = shapeOf(o.getA())[1];
              adapter(p, r, o.getAlpha().convertToDouble() / r, o.getDropout());
              if (!o.getDx())
                p.no_dx = 1;
              return kernelAttr(ctx, p);
            })
            .Case([&](FusedLinearGradOp o) {
              params::fused_linear_bwd p;
              matmul(p, o.getX(), o.getWeight());
              int64_t r = shapeOf(o.getA())[0];
              adapter(p, r, o.getAlpha().convertToDouble() / r, o.getDropout());
              if (!o.getDx())
                p.no_dx = 1;
              return kernelAttr(ctx, p);
            })
            .Case([&](RopeOp o) {
              return rope(params::rope_fwd{}, o.getX(), o.getHeadDim(),
                          o.getTheta().convertToDouble(), o.getScalingAttr());
            })
            .Case([&](RopeGradOp o) {
              return rope(params::rope_bwd{}, o.getDy(), o.getHeadDim(),
                          o.getTheta().convertToDouble(), o.getScalingAttr());
            })
            .Case([&](AttentionOp o) {
              return attention(params::attention_fwd{}, o);
            })
            .Case([&](AttentionWithLseOp o) {
              params::attention_fwd p;
              p.save_lse = 1;
              return attention(p, o);
            })
            .Case([&](AttentionGradOp o) {
              params::attention_bwd p;
              if (o.getOut())
                p.saved_stats = 1;
              return attention(p, o);
            })
            .Case([&](SwiGLUOp o) {
              return elementwise(params::swiglu_fwd{}, o.getGate());
            })
            .Case([&](SwiGLUGradOp o) {
              return elementwise(params::swiglu_bwd{}, o.getGate());
            })
            .Case(
                [&](AddOp o) { return elementwise(params::add{}, o.getLhs()); })
            .Case([&](LMHeadOp o) {
              params::lm_head_fwd p;
              matmul(p, o.getX(), o.getWeight());
              return kernelAttr(ctx, p);
            })
            .Case([&](CrossEntropyOp o) {
              return kernelAttr(ctx, logits(params::cross_entropy_fwd{}, o.getLogits()));
            })
            .Case([&](CrossEntropyGradOp o) {
              return kernelAttr(ctx, logits(params::cross_entropy_bwd{}, o.getLogits()));
            })
            .Case([&](SequenceLogProbsOp o) {
              auto p = logits(params::sequence_logprobs_fwd{}, o.getLogits());
              p.sequences = o.getNumSequences();
              return kernelAttr(ctx, p);
            })
            .Case([&](SequenceLogProbsGradOp o) {
              auto p = logits(params::sequence_logprobs_bwd{}, o.getLogits());
              p.sequences = shapeOf(o.getDlogprobs())[0];
              return kernelAttr(ctx, p);
            })
            .Case([&](ReplayLossOp o) {
              return replay(params::replay_loss_fwd{}, o.getPairMask(), o.getWeight());
            })
            .Case([&](ReplayLossGradOp o) {
              return replay(params::replay_loss_bwd{}, o.getPairMask(), o.getWeight());
            })
            .Case([&](EWCPenaltyOp o) {
              return ewc(params::ewc_penalty_fwd{}, o.getA(), o.getB(), o.getScaling(),
                         o.getLambda());
            })
            .Case([&](EWCPenaltyGradOp o) {
              return ewc(params::ewc_penalty_bwd{}, o.getA(), o.getB(), o.getScaling(),
                         o.getLambda());
            })
            .Case([&](DPOLossOp o) {
              return dpo(params::dpo_loss_fwd{}, o.getPairMask(), o.getBeta(), o.getLossType());
            })
            .Case([&](DPOLossGradOp o) {
              return dpo(params::dpo_loss_bwd{}, o.getPairMask(), o.getBeta(), o.getLossType());
            })
            .Case([&](LMHeadCrossEntropyOp o) {
              return lmLoss(params::lm_head_ce_fwd{}, o.getX(), o.getWeight(), o.getChunkSize());
            })
            .Case([&](LMHeadCrossEntropyGradOp o) {
              return lmLoss(params::lm_head_ce_bwd_x{}, o.getX(), o.getWeight(),
                            o.getChunkSize());
            })
            .Case([&](LMHeadCrossEntropyWithGradOp o) {
              params::lm_head_ce_fwd_bwd_x p;
              p.dloss = o.getDloss().convertToDouble();
              return lmLoss(p, o.getX(), o.getWeight(), o.getChunkSize());
            })
            .Case([&](LMHeadCrossEntropyGradWOp o) {
              return lmLoss(params::lm_head_ce_bwd_w{}, o.getX(), o.getWeight(),
                            o.getChunkSize());
            })
            .Case([&](SelectRowsOp o) {
              params::select_rows p;
              ArrayRef<int64_t> s = shapeOf(o.getX());
              p.batch = s[0];
              p.seq = s[1];
              p.hidden = s[2];
              return kernelAttr(ctx, p);
            })
            .Case([&](SegmentBoundaryMaskOp o) {
              params::segment_boundary_mask p;
              p.batch = shapeOf(o.getMask())[0];
              p.seq = shapeOf(o.getMask())[1];
              return kernelAttr(ctx, p);
            })
            .Case([&](DequantizeOp o) {
              params::dequantize p;
              setWeight(p, o.getInput());
              return elements(p, cast<NF4Type>(o.getInput().getType()).getNumElements());
            })
            .Case([&](ScalarOp o) {
              params::fill p;
              p.value = o.getValue().convertToDouble();
              return elements(p, 1);
            })
            .Case([&](AccumulateOp o) {
              return elementwise(params::accumulate{}, o.getAcc());
            })
            .Case([&](AssignOp o) {
              return elementwise(params::copy{}, o.getValue());
            })
            .Case([&](ResetOp o) {
              return elements(params::zero{},
                              cast<RankedTensorType>(o.getStorageType()).getNumElements());
            })
            .Case([&](AllReduceSumOp o) {
              return elementwise(params::all_reduce_sum{}, o.getInput());
            })
            .Case([&](GradAllReduceStartOp o) {
              return bucket(params::grad_all_reduce_start{}, o);
            })
            .Case([&](GradAllReduceWaitOp o) {
              return bucket(params::grad_all_reduce_wait{}, o);
            })
            .Case([&](GlobalNormOp o) {
              params::global_norm p;
              p.tensors = static_cast<int64_t>(o.getInputs().size());
              return kernelAttr(ctx, p);
            })
            .Case([&](ClipScaleOp o) {
              params::clip_scale p;
              p.max_norm = o.getMaxNorm().convertToDouble();
              return kernelAttr(ctx, p);
            })
            .Case([&](AdamWOp o) {
              params::adamw p;
              p.beta1 = o.getBeta1().convertToDouble();
              p.beta2 = o.getBeta2().convertToDouble();
              p.eps = o.getEps().convertToDouble();
              p.weight_decay = o.getWeightDecay().convertToDouble();
              return elements(
                  p, cast<RankedTensorType>(o.getParam().getType()).getNumElements());
            })
            .Case([&](CastOp o) {
              return elementwise(params::cast{}, o.getInput());
            })
            .Default([](Operation *) { return std::nullopt; });
    if (!result) {
      op->emitOpError() << "has no kernel";
      return failure();
    }
    return *result;
  }
};

} // namespace
