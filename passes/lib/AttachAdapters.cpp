//===- AttachAdapters.cpp - attach LoRA adapters to linear layers ---------===//
#include "lora/Dialect/Lora/IR/LoraOps.h"
#include "lora/Transforms/ModelSummary.h"
#include "lora/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"

#include "lorart/io/hf_config.h"

#include <set>

namespace mlir::lora {
#define GEN_PASS_DEF_ATTACHADAPTERS
#include "lora/Transforms/Passes.h.inc"
#include <cmath>
} // namespace mlir::lora

using namespace mlir;
using namespace mlir::lora;

namespace {

struct AttachAdaptersPass
    : public lora::impl::AttachAdaptersBase<AttachAdaptersPass> {
  using AttachAdaptersBase::AttachAdaptersBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (failed(checkOptions(module)))
      return signalPassFailure();

    // The selection rule: PEFT's, shared with import and merge.
    std::vector<std::string> targetList;
    if (targetRegex.empty()) {
      SmallVector<StringRef> parts;
      StringRef(targets).split(parts, ',', -1, /*KeepEmpty=*/false);
      for (StringRef p : parts)
        if (!p.trim().empty())
          targetList.push_back(p.trim().str());
      if (targetList.empty()) {
        module.emitError() << "option 'targets' names no module";
        return signalPassFailure();
      }
    }
    lorart::StatusOr<lorart::hf::TargetRule> ruleOr =
        lorart::hf::TargetRule::Make(
            "option", targetList, targetRegex,
            std::vector<int64_t>(layers.begin(), layers.end()));
    if (!ruleOr.ok()) {
      module.emitError() << ruleOr.status().message();
      return signalPassFailure();
    }
    const lorart::hf::TargetRule &rule = *ruleOr;
    auto selected = [&](StringRef name) { return rule.Matches(name); };

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
      if (!targetRegex.empty())
        diag << "target-regex '" << targetRegex << "'";
      else
        diag << "targets '" << llvm::join(rule.names(), ",") << "'";
      if (!layers.empty())
        diag << " in the selected layers";
      diag << " (linear layers: "
           << (leafs.empty() ? std::string("none")
                             : llvm::join(leafs, ", "))
           << ")";
      return signalPassFailure();
    }

    // target_modules as written to adapter_config.json: the entries that
    // selected a module, so that PEFT selects exactly these modules again.
    std::set<std::string> usedEntries;
    for (auto &[op, name] : chosen) {
      attach(op, name);
      if (!targetRegex.empty())
        usedEntries.insert(StringRef(name).rsplit('.').second.str());
      for (const std::string &e : rule.names())
        if (lorart::hf::TargetRule::EntryNames(e, name))
          usedEntries.insert(e);
    }

    // Record the configuration for the PEFT adapter_config.json.
    Builder b(module.getContext());
    SmallVector<NamedAttribute> cfg;
    cfg.push_back(b.getNamedAttr("r", b.getI64IntegerAttr(rank)));
    cfg.push_back(b.getNamedAttr("lora_alpha", b.getF64FloatAttr(alpha)));
    cfg.push_back(b.getNamedAttr("lora_dropout", b.getF64FloatAttr(dropout)));
    SmallVector<Attribute> names;
    for (const std::string &entry : usedEntries)
      names.push_back(b.getStringAttr(entry));
    cfg.push_back(b.getNamedAttr("target_modules", b.getArrayAttr(names)));
    if (!targetRegex.empty())
      cfg.push_back(
          b.getNamedAttr("target_regex", b.getStringAttr(targetRegex)));
    if (!layers.empty()) {
      std::set<int64_t> layerSet(layers.begin(), layers.end());
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
    if (!(alpha > 0.0) || !std::isfinite(static_cast<double>(alpha)))
      return module.emitError()
             << "option 'alpha' must be positive, got " << static_cast<double>(alpha);
    if (!(dropout >= 0.0 && dropout < 1.0))
      return module.emitError()
             << "option 'dropout' must be in [0, 1), got " << static_cast<double>(dropout);
    for (int64_t l : layers)
      if (l < 0)
        return module.emitError()
               << "option 'layers' must hold non-negative indices, got " << l;
    if (!targetRegex.empty() && !layers.empty())
      return module.emitError()
             << "option 'layers' cannot be combined with 'target-regex': "
                "PEFT refuses an adapter_config.json with both; select the "
                "layers in the regex instead";
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
