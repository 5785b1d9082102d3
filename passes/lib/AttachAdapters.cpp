//===- AttachAdapters.cpp - attach LoRA adapters to linear layers ---------===//
#include "lora/Dialect/Lora/IR/LoraOps.h"
#include "lora/Transforms/ModelSummary.h"
#include "lora/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"

#include <regex>
#include <set>

namespace mlir::lora {
#define GEN_PASS_DEF_ATTACHADAPTERS
#include "lora/Transforms/Passes.h.inc"
} // namespace mlir::lora

using namespace mlir;
using namespace mlir::lora;

namespace {

/// The linear layers of the Llama decoder that `all-linear` selects.
constexpr llvm::StringLiteral kAllLinear[] = {
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
    "down_proj"};

struct AttachAdaptersPass
    : public lora::impl::AttachAdaptersBase<AttachAdaptersPass> {
  using AttachAdaptersBase::AttachAdaptersBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (failed(checkOptions(module)))
      return signalPassFailure();

    // Parse the selection rule.
    std::vector<std::string> targetList;
    std::optional<std::regex> regex;
    if (!targetRegex.empty()) {
      try {
        regex.emplace(targetRegex, std::regex::ECMAScript);
      } catch (const std::regex_error &e) {
        module.emitError() << "option 'target-regex' is not a valid regex '"
                           << targetRegex << "': " << e.what();
        return signalPassFailure();
      }
    } else {
      SmallVector<StringRef> parts;
      StringRef(targets).split(parts, ',', -1, /*KeepEmpty=*/false);
      for (StringRef p : parts) {
        p = p.trim();
        if (p == "all-linear")
          for (StringRef t : kAllLinear)
            targetList.push_back(t.str());
        else if (!p.empty())
          targetList.push_back(p.str());
      }
      if (targetList.empty()) {
        module.emitError() << "option 'targets' names no module";
        return signalPassFailure();
      }
    }
    std::set<int64_t> layerSet(layers.begin(), layers.end());

    auto selected = [&](StringRef name) {
      if (!layerSet.empty()) {
        std::optional<int64_t> layer = getLayerIndex(name);
        if (!layer || !layerSet.count(*layer))
          return false;
      }
      if (regex)
        return std::regex_match(name.str(), *regex);
      return llvm::any_of(targetList, [&](const std::string &t) {
        return name == t || name.ends_with("." + t);
      });
    };

    SmallVector<std::pair<LinearOp, std::string>> chosen;
    module.walk([&](LinearOp op) {
      if (std::optional<std::string> name = getLinearModuleName(op))
        if (selected(*name))
          chosen.emplace_back(op, *name);
    });
    if (chosen.empty()) {
      std::set<std::string> leafs;
      module.walk([&](LinearOp op) {
        if (std::optional<std::string> n = getLinearModuleName(op))
          leafs.insert(StringRef(*n).rsplit('.').second.str());
      });
      InFlightDiagnostic diag = module.emitError()
                                << "no linear layer matches ";
      if (regex)
        diag << "target-regex '" << targetRegex << "'";
      else
        diag << "targets '" << llvm::join(targetList, ",") << "'";
      if (!layerSet.empty())
        diag << " in the selected layers";
      diag << " (linear layers: "
           << (leafs.empty() ? std::string("none")
                             : llvm::join(leafs, ", "))
           << ")";
      return signalPassFailure();
    }

    std::set<std::string> matchedLeafs;
    for (auto &[op, name] : chosen) {
      attach(op, name);
      matchedLeafs.insert(StringRef(name).rsplit('.').second.str());
    }

    // Record the configuration for the PEFT adapter_config.json.
    Builder b(module.getContext());
    SmallVector<NamedAttribute> cfg;
    cfg.push_back(b.getNamedAttr("r", b.getI64IntegerAttr(rank)));
    cfg.push_back(b.getNamedAttr("lora_alpha", b.getF64FloatAttr(alpha)));
    cfg.push_back(b.getNamedAttr("lora_dropout", b.getF64FloatAttr(dropout)));
    SmallVector<Attribute> names;
    for (const std::string &leaf : matchedLeafs)
      names.push_back(b.getStringAttr(leaf));
    cfg.push_back(b.getNamedAttr("target_modules", b.getArrayAttr(names)));
    if (regex)
      cfg.push_back(
          b.getNamedAttr("target_regex", b.getStringAttr(targetRegex)));
    if (!layerSet.empty()) {
      SmallVector<int64_t> ls(layerSet.begin(), layerSet.end());
      cfg.push_back(b.getNamedAttr("layers_to_transform",
                                   b.getDenseI64ArrayAttr(ls)));
    }
    module->setAttr(kAdapterConfigAttrName, b.getDictionaryAttr(cfg));
  }

  LogicalResult checkOptions(ModuleOp module) {
    if (module->hasAttr(kAdapterConfigAttrName))
      return module.emitError()
             << "the module already has LoRA adapters ('"
             << kAdapterConfigAttrName << "' is set)";
    if (rank <= 0)
      return module.emitError()
             << "option 'rank' must be positive, got " << static_cast<int64_t>(rank);
    if (!(alpha > 0.0))
      return module.emitError()
             << "option 'alpha' must be positive, got " << static_cast<double>(alpha);
    if (!(dropout >= 0.0 && dropout < 1.0))
      return module.emitError()
             << "option 'dropout' must be in [0, 1), got " << static_cast<double>(dropout);
    for (int64_t l : layers)
      if (l < 0)
        return module.emitError()
               << "option 'layers' must hold non-negative indices, got " << l;
    return success();
  }

  void attach(LinearOp op, const std::string &name) {
    OpBuilder b(op.getContext());
    b.setInsertionPointAfter(op);
    auto wType = cast<RankedTensorType>(op.getWeight().getType());
    int64_t out = wType.getDimSize(0), in = wType.getDimSize(1);
    Type elt = wType.getElementType();
    Location loc = op.getLoc();
    std::string prefix = "base_model.model." + name;
    auto a = b.create<ParamOp>(loc, RankedTensorType::get({rank, in}, elt),
                               prefix + ".lora_A.weight", ParamRole::Trainable,
                               StringRef(), ParamInit::KaimingUniform);
    auto bp = b.create<ParamOp>(loc, RankedTensorType::get({out, rank}, elt),
                                prefix + ".lora_B.weight", ParamRole::Trainable,
                                StringRef(), ParamInit::Zeros);
    auto delta = b.create<AdapterOp>(loc, op.getType(), op.getX(), a, bp,
                                     b.getF64FloatAttr(alpha),
                                     b.getF64FloatAttr(dropout));
    auto sum = b.create<AddOp>(loc, op.getType(), op.getResult(), delta);
    op.getResult().replaceAllUsesExcept(sum, sum);
  }
};

} // namespace
