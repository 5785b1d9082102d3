//===- LoraDialect.cpp - the lora dialect ---------------------------------===//
#include "lora/Dialect/Lora/IR/LoraDialect.h"

#include "lora/Dialect/Lora/IR/LoraOps.h"
#include "mlir/IR/BuiltinOps.h"

using namespace mlir;
using namespace mlir::lora;

#include "lora/Dialect/Lora/IR/LoraDialect.cpp.inc"

void LoraDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "lora/Dialect/Lora/IR/LoraOps.cpp.inc"
      >();
  registerTypes();
  registerAttributes();
}

namespace {
/// Checks `dict[key]` against an expected kind; emits "attribute 'lora.model':
/// key 'hidden_size' ..." on failure.
LogicalResult checkKey(Operation *op, StringRef attrName, DictionaryAttr dict,
                       StringRef key, bool required,
                       function_ref<bool(Attribute)> ok, StringRef what) {
  Attribute value = dict.get(key);
  if (!value) {
    if (!required)
      return success();
    return op->emitOpError() << "attribute '" << attrName
                             << "' is missing key '" << key << "'";
  }
  if (!ok(value))
    return op->emitOpError() << "attribute '" << attrName << "': key '" << key
                             << "' must be " << what << ", got " << value;
  return success();
}

bool isPositiveInt(Attribute a) {
  auto i = dyn_cast<IntegerAttr>(a);
  return i && i.getType().isInteger(64) && i.getInt() > 0;
}
bool isNonNegativeInt(Attribute a) {
  auto i = dyn_cast<IntegerAttr>(a);
  return i && i.getType().isInteger(64) && i.getInt() >= 0;
}
bool isPositiveFloat(Attribute a) {
  auto f = dyn_cast<FloatAttr>(a);
  return f && f.getValueAsDouble() > 0.0;
}
bool isUnitIntervalOpen(Attribute a) {
  auto f = dyn_cast<FloatAttr>(a);
  return f && f.getValueAsDouble() >= 0.0 && f.getValueAsDouble() < 1.0;
}
bool isBool(Attribute a) { return isa<BoolAttr>(a); }
bool isString(Attribute a) { return isa<StringAttr>(a); }
bool isStringArray(Attribute a) {
  auto arr = dyn_cast<ArrayAttr>(a);
  return arr && llvm::all_of(arr, [](Attribute e) { return isa<StringAttr>(e); });
}
} // namespace

/// The graph computes the model the config describes: its attention ops use
/// the config's heads and head_dim, its RoPE ops the config's head_dim and
/// rope_theta. train.bin records the config, and lorart checks a base model
/// against it, so a graph that disagreed would run another model's weights
/// through the wrong attention.
LogicalResult verifyGraphMatchesConfig(Operation *module, DictionaryAttr dict) {
  auto intOf = [&](StringRef key) {
    return cast<IntegerAttr>(dict.get(key)).getInt();
  };
  const int64_t heads = intOf("num_attention_heads");
  const int64_t kvHeads = intOf("num_key_value_heads");
  const int64_t headDim = intOf("head_dim");
  const double theta =
      cast<FloatAttr>(dict.get("rope_theta")).getValueAsDouble();
  auto mismatch = [&](Operation *op, StringRef what, auto got, auto want) {
    return op->emitOpError()
           << what << " " << got << " differs from the module's lora.model ("
           << want << ")";
  };
  auto attention = [&](Operation *op, int64_t h, int64_t kv,
                       int64_t d) -> LogicalResult {
    if (h != heads)
      return mismatch(op, "num_heads", h, heads);
    if (kv != kvHeads)
      return mismatch(op, "num_kv_heads", kv, kvHeads);
    if (d != headDim)
      return mismatch(op, "head_dim", d, headDim);
    return success();
  };
  auto rope = [&](Operation *op, int64_t d, double t) -> LogicalResult {
    if (d != headDim)
      return mismatch(op, "head_dim", d, headDim);
    if (t != theta)
      return mismatch(op, "theta", t, theta);
    return success();
  };
  // The module's attribute is verified before the ops inside it: their
  // attributes are read raw, and an op missing one is left to its own
  // verifier.
  auto i64 = [](Operation *op, StringRef name) {
    return op->getAttrOfType<IntegerAttr>(name);
  };
  WalkResult r = module->walk([&](Operation *op) {
    LogicalResult ok = success();
    if (isa<AttentionOp, AttentionWithLseOp, AttentionGradOp>(op)) {
      IntegerAttr h = i64(op, "num_heads"), kv = i64(op, "num_kv_heads"),
                  d = i64(op, "head_dim");
      if (h && kv && d)
        ok = attention(op, h.getInt(), kv.getInt(), d.getInt());
    } else if (isa<RopeOp, RopeGradOp>(op)) {
      IntegerAttr d = i64(op, "head_dim");
      auto t = op->getAttrOfType<FloatAttr>("theta");
      if (d && t)
        ok = rope(op, d.getInt(), t.getValueAsDouble());
    }
    return failed(ok) ? WalkResult::interrupt() : WalkResult::advance();
  });
  return failure(r.wasInterrupted());
}

namespace {
/// In a lora model every lora.param of one name is one persistent tensor:
/// its type agrees wherever it is declared (train.bin holds it once). (The
/// role may differ: a program that only reads a trained weight, such as
/// @logits_step, declares it frozen.)
LogicalResult verifyParamsAgree(Operation *module) {
  llvm::StringMap<ParamOp> first;
  WalkResult r = module->walk([&](ParamOp p) {
    auto [it, inserted] = first.try_emplace(p.getName(), p);
    if (inserted)
      return WalkResult::advance();
    ParamOp q = it->second;
    if (q.getType() == p.getType())
      return WalkResult::advance();
    InFlightDiagnostic d =
        p.emitOpError() << "declares '" << p.getName() << "' as " << p.getType()
                        << " (" << stringifyParamRole(p.getRole())
                        << "), but it is " << q.getType() << " ("
                        << stringifyParamRole(q.getRole()) << ") elsewhere";
    d.attachNote(q.getLoc()) << "first declared here";
    return WalkResult::interrupt();
  });
  return failure(r.wasInterrupted());
}
} // namespace

LogicalResult LoraDialect::verifyOperationAttribute(Operation *op,
                                                    NamedAttribute attr) {
  StringRef name = attr.getName().getValue();
  if (name == kRecomputeAttrName) {
    if (!isa<UnitAttr>(attr.getValue()))
      return op->emitOpError() << "attribute '" << name
                               << "' must be a unit attribute";
    return success();
  }
  if (name == kKernelAttrName) {
    auto d = dyn_cast<DictionaryAttr>(attr.getValue());
    if (!d || !d.getAs<StringAttr>("kind"))
      return op->emitOpError() << "attribute '" << name
                               << "' must be a dictionary with a string "
                                  "'kind'";
    return success();
  }
  if (name == kOffsetsAttrName) {
    auto a = dyn_cast<DenseI64ArrayAttr>(attr.getValue());
    if (!a || a.size() != static_cast<int64_t>(op->getNumResults()))
      return op->emitOpError() << "attribute '" << name
                               << "' must be an i64 array with one offset "
                                  "per result";
    if (llvm::any_of(a.asArrayRef(), [](int64_t o) { return o < 0; }))
      return op->emitOpError() << "attribute '" << name
                               << "' must hold non-negative offsets";
    return success();
  }
  if (name == kWorkspaceAttrName) {
    auto k = op->getAttrOfType<DictionaryAttr>(kKernelAttrName);
    if (!isNonNegativeInt(attr.getValue()) || !k || !k.get("cuda_workspace"))
      return op->emitOpError() << "attribute '" << name
                               << "' must be a non-negative i64 on an op "
                                  "whose kernel has a 'cuda_workspace'";
    return success();
  }
  if (name == kArenaSizeAttrName) {
    if (!isNonNegativeInt(attr.getValue()))
      return op->emitOpError() << "attribute '" << name
                               << "' must be a non-negative i64";
    return success();
  }
  if (name == kObjectiveAttrName) {
    auto s = dyn_cast<StringAttr>(attr.getValue());
    if (!s || !llvm::is_contained({"sft", "pretrain", "dpo"}, s.getValue()))
      return op->emitOpError() << "attribute '" << name
                               << "' must be \"sft\", \"pretrain\" or "
                                  "\"dpo\", got "
                               << attr.getValue();
    return success();
  }
  if (name != kModelConfigAttrName && name != kAdapterConfigAttrName)
    return op->emitOpError() << "unknown lora dialect attribute '" << name
                             << "' (expected one of '" << kModelConfigAttrName
                             << "', '" << kAdapterConfigAttrName << "', '"
                             << kObjectiveAttrName << "', '"
                             << kRecomputeAttrName << "')";
  if (!isa<ModuleOp>(op))
    return op->emitOpError() << "attribute '" << name
                             << "' is only valid on a module";
  auto dict = dyn_cast<DictionaryAttr>(attr.getValue());
  if (!dict)
    return op->emitOpError() << "attribute '" << name
                             << "' must be a dictionary";

  if (name == kModelConfigAttrName) {
    for (StringRef key :
         {"hidden_size", "intermediate_size", "num_hidden_layers",
          "num_attention_heads", "num_key_value_heads", "head_dim",
          "vocab_size"})
      if (failed(checkKey(op, name, dict, key, true, isPositiveInt,
                          "a positive i64")))
        return failure();
    if (failed(checkKey(op, name, dict, "architecture", true, isString,
                        "a string")) ||
        failed(checkKey(op, name, dict, "rms_norm_eps", true, isPositiveFloat,
                        "a positive float")) ||
        failed(checkKey(op, name, dict, "rope_theta", true, isPositiveFloat,
                        "a positive float")) ||
        failed(checkKey(op, name, dict, "tie_word_embeddings", true, isBool,
                        "a bool")) ||
        failed(checkKey(op, name, dict, "attention_bias", true, isBool,
                        "a bool")) ||
        failed(checkKey(op, name, dict, "sliding_window", false,
                        isPositiveInt, "a positive i64")) ||
        failed(checkKey(op, name, dict, "max_position_embeddings", false,
                        isPositiveInt, "a positive i64")) ||
        failed(checkKey(op, name, dict, "bos_token_id", false,
                        isNonNegativeInt, "a non-negative i64")) ||
        failed(checkKey(op, name, dict, "eos_token_id", false,
                        isNonNegativeInt, "a non-negative i64")))
      return failure();
    int64_t heads = cast<IntegerAttr>(dict.get("num_attention_heads")).getInt();
    int64_t kvHeads =
        cast<IntegerAttr>(dict.get("num_key_value_heads")).getInt();
    if (heads % kvHeads != 0)
      return op->emitOpError()
             << "attribute '" << name << "': num_attention_heads (" << heads
             << ") must be a multiple of num_key_value_heads (" << kvHeads
             << ")";
    if (failed(verifyGraphMatchesConfig(op, dict)))
      return failure();
    return verifyParamsAgree(op);
  }

  // lora.adapter_config: the PEFT LoraConfig the adapters were attached with.
  if (failed(checkKey(op, name, dict, "r", true, isPositiveInt,
                      "a positive i64")) ||
      failed(checkKey(op, name, dict, "lora_alpha", true, isPositiveFloat,
                      "a positive float")) ||
      failed(checkKey(op, name, dict, "lora_dropout", true, isUnitIntervalOpen,
                      "a float in [0, 1)")) ||
      failed(checkKey(op, name, dict, "target_modules", true, isStringArray,
                      "an array of strings")))
    return failure();
  return success();
}
