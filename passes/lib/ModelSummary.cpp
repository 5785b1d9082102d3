//===- ModelSummary.cpp - what a lora module contains ---------------------===//
#include "lora/Transforms/ModelSummary.h"
#include "lorart/io/hf_config.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Format.h"

#include <map>

using namespace mlir;
using namespace mlir::lora;

ParamOp mlir::lora::getWeightParam(Value weight) {
  if (auto deq = weight.getDefiningOp<DequantizeOp>())
    weight = deq.getInput();
  return weight.getDefiningOp<ParamOp>();
}

std::optional<std::string> mlir::lora::getLinearModuleName(LinearOp op) {
  ParamOp param = getWeightParam(op.getWeight());
  if (!param)
    return std::nullopt;
  StringRef name = param.getName();
  if (!name.consume_back(".weight") || name.empty())
    return std::nullopt;
  return name.str();
}

std::optional<int64_t> mlir::lora::getLayerIndex(StringRef moduleName) {
  return lorart::hf::LayerIndexOf(std::string_view(moduleName));
}

std::optional<StringRef> mlir::lora::getModuleName(Location loc) {
  std::optional<StringRef> name;
  loc->walk([&](Location l) {
    if (auto nl = dyn_cast<NameLoc>(l)) {
      name = nl.getName().getValue();
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  return name;
}

static int64_t storedBytes(Type t) {
  if (auto nf4 = dyn_cast<NF4Type>(t))
    return nf4.getStorageBytes();
  auto tensor = cast<RankedTensorType>(t);
  return tensor.getNumElements() *
         static_cast<int64_t>(tensor.getElementTypeBitWidth() / 8);
}

static int64_t numElements(Type t) {
  if (auto nf4 = dyn_cast<NF4Type>(t))
    return nf4.getNumElements();
  return cast<RankedTensorType>(t).getNumElements();
}

FailureOr<ModelSummary> mlir::lora::summarizeModule(ModuleOp module) {
  ModelSummary s;
  auto cfg = module->getAttrOfType<DictionaryAttr>(kModelConfigAttrName);
  if (!cfg)
    return module.emitError() << "module has no '" << kModelConfigAttrName
                              << "' configuration (was it made by lorac "
                                 "import?)";
  auto intOf = [&](StringRef key) -> int64_t {
    auto a = cfg.getAs<IntegerAttr>(key);
    return a ? a.getInt() : 0;
  };
  if (auto arch = cfg.getAs<StringAttr>("architecture"))
    s.architecture = arch.str();
  s.numLayers = intOf("num_hidden_layers");
  s.hidden = intOf("hidden_size");
  s.intermediate = intOf("intermediate_size");
  s.heads = intOf("num_attention_heads");
  s.kvHeads = intOf("num_key_value_heads");
  s.headDim = intOf("head_dim");
  s.vocab = intOf("vocab_size");
  if (auto tied = cfg.getAs<BoolAttr>("tie_word_embeddings"))
    s.tiedEmbeddings = tied.getValue();

  // Ops are counted in the forward graph only (@forward, or @eval_step once
  // autodiff has run), parameters once per name across the module.
  Operation *forward = module.lookupSymbol("forward");
  if (!forward)
    forward = module.lookupSymbol("eval_step");
  if (forward)
    forward->walk([&](Operation *op) {
      if (op->getDialect() && op->getDialect()->getNamespace() == "lora")
        ++s.opCounts[op->getName().getStringRef().str()];
      if (isa<LinearOp>(op))
        ++s.numLinear;
      if (isa<AttentionOp>(op))
        ++s.numAttention;
      auto addAdapter = [&](Value a, Value b, double alpha, StringRef module) {
        auto at = cast<RankedTensorType>(a.getType());
        auto bt = cast<RankedTensorType>(b.getType());
        AdaptedMatrix m;
        m.module = module.str();
        m.rank = at.getDimSize(0);
        m.in = at.getDimSize(1);
        m.out = bt.getDimSize(0);
        m.alpha = alpha;
        s.adapters.push_back(m);
      };
      if (auto fused = dyn_cast<FusedLinearOp>(op)) {
        ++s.numLinear;
        if (fused.getA()) {
          std::string name;
          if (ParamOp p = getWeightParam(fused.getWeight())) {
            StringRef n = p.getName();
            n.consume_back(".weight");
            name = n.str();
          }
          addAdapter(fused.getA(), fused.getB(),
                     fused.getAlpha()->convertToDouble(), name);
        }
      }
      if (auto adapter = dyn_cast<AdapterOp>(op)) {
        std::string name;
        for (Operation *user : adapter->getUsers())
          if (auto add = dyn_cast<AddOp>(user))
            if (auto lin = add.getLhs().getDefiningOp<LinearOp>())
              name = getLinearModuleName(lin).value_or("");
        addAdapter(adapter.getA(), adapter.getB(),
                   adapter.getAlpha().convertToDouble(), name);
      }
    });

  std::map<std::string, Type> seen;
  WalkResult result = module.walk([&](Operation *op) -> WalkResult {
    auto param = dyn_cast<ParamOp>(op);
    if (!param)
      return WalkResult::advance();
    std::string name = param.getName().str();
    Type type = param.getType();
    auto [it, inserted] = seen.emplace(name, type);
    if (!inserted) {
      if (it->second != type) {
        param.emitOpError() << "parameter '" << name << "' is used with type "
                            << type << " and with type " << it->second;
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    }
    int64_t n = numElements(type);
    s.totalParams += n;
    switch (param.getRole()) {
    case ParamRole::Trainable:
      s.trainableParams += n;
      break;
    case ParamRole::Frozen:
      s.frozenParams += n;
      s.frozenBytes += storedBytes(type);
      break;
    case ParamRole::OptimizerState:
    case ParamRole::Gradient:
      s.totalParams -= n; // optimizer state is not a model parameter
      break;
    }
    return WalkResult::advance();
  });
  if (result.wasInterrupted())
    return failure();
  return s;
}

std::string mlir::lora::formatCount(int64_t n) {
  char buf[32];
  double v = static_cast<double>(n);
  if (n >= 1000000000)
    snprintf(buf, sizeof buf, "%.2fB", v / 1e9);
  else if (n >= 1000000)
    snprintf(buf, sizeof buf, "%.1fM", v / 1e6);
  else if (n >= 1000)
    snprintf(buf, sizeof buf, "%.1fK", v / 1e3);
  else
    snprintf(buf, sizeof buf, "%lld", static_cast<long long>(n));
  return buf;
}

void mlir::lora::printSummary(const ModelSummary &s, llvm::raw_ostream &os) {
  os << "model: " << s.architecture << ", " << s.numLayers << " layers, hidden "
     << s.hidden << ", intermediate " << s.intermediate << ", vocab "
     << s.vocab << "\n";
  os << "attention: " << s.heads << " heads, " << s.kvHeads << " kv heads";
  if (s.kvHeads > 0 && s.heads != s.kvHeads)
    os << " (GQA, " << s.heads / s.kvHeads << " queries per kv head)";
  else
    os << " (MHA)";
  os << ", head_dim " << s.headDim << "\n";
  os << "embeddings: " << (s.tiedEmbeddings ? "tied" : "untied") << "\n";
  os << "parameters: " << s.totalParams << " (" << formatCount(s.totalParams)
     << "), frozen " << s.frozenParams << ", trainable " << s.trainableParams;
  if (s.totalParams > 0)
    os << " ("
       << llvm::format("%.4f", 100.0 * static_cast<double>(s.trainableParams) /
                                   static_cast<double>(s.totalParams))
       << "%)";
  os << "\n";
  os << "frozen weights: " << s.frozenBytes << " bytes ("
     << llvm::format("%.2f", static_cast<double>(s.frozenBytes) /
                                 (1024.0 * 1024.0 * 1024.0))
     << " GiB)\n";
  os << "linear layers: " << s.numLinear << ", attention blocks: "
     << s.numAttention << ", adapters: " << s.adapters.size() << "\n";
  // One line per distinct adapted shape: 2r/(d+k) is the trainable fraction
  // of that matrix.
  std::map<std::tuple<std::string, int64_t, int64_t, int64_t>, int64_t> kinds;
  for (const AdaptedMatrix &m : s.adapters) {
    StringRef leaf = StringRef(m.module).rsplit('.').second;
    ++kinds[{leaf.str(), m.out, m.in, m.rank}];
  }
  for (const auto &[key, count] : kinds) {
    const auto &[leaf, out, in, r] = key;
    os << "  adapter " << (leaf.empty() ? "?" : leaf) << " [" << out << "x"
       << in << "] r=" << r << " x" << count << ": 2r/(d+k) = "
       << llvm::format("%.4f", 100.0 * 2.0 * static_cast<double>(r) /
                                   static_cast<double>(in + out))
       << "%\n";
  }
}
