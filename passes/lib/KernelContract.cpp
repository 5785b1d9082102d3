//===- KernelContract.cpp - lora.kernel against kernel_kinds.def ----------===//
#include "lora/Transforms/KernelContract.h"

#include "lorart/plan/kernel_kinds.h"

using namespace mlir;

bool mlir::lora::isKernelLaunchField(StringRef key) {
  return key == "kind" || key.starts_with("cuda_");
}

LogicalResult mlir::lora::verifyKernelParams(Operation *op,
                                             DictionaryAttr kernel) {
  auto kind = kernel.getAs<StringAttr>("kind");
  if (!kind)
    return op->emitOpError() << "has a lora.kernel without a string 'kind'";
  const lorart::kernels::KindSpec *spec =
      lorart::kernels::FindKind(kind.getValue().str());
  if (!spec)
    return op->emitOpError() << "has an unknown kernel kind '"
                             << kind.getValue() << "'";
  std::vector<std::string> names;
  for (NamedAttribute na : kernel)
    if (!isKernelLaunchField(na.getName().getValue()))
      names.push_back(na.getName().getValue().str());
  std::string bad = lorart::kernels::CheckParams(
      *spec, names, [&](const char *name, lorart::kernels::ParamType *type) {
        Attribute v = kernel.get(name);
        if (!v)
          return false;
        if (isa<IntegerAttr>(v))
          *type = lorart::kernels::ParamType::kInt;
        else if (isa<FloatAttr>(v))
          *type = lorart::kernels::ParamType::kFloat;
        else if (isa<StringAttr>(v))
          *type = lorart::kernels::ParamType::kString;
        else
          *type = static_cast<lorart::kernels::ParamType>(-1);
        return true;
      },
      [](const std::string &name) { return "'" + name + "'"; });
  if (!bad.empty())
    return op->emitOpError() << "lora.kernel: " << bad;
  return success();
}

double mlir::lora::kernelFlops(DictionaryAttr kernel) {
  struct Params : lorart::kernels::IntParams {
    DictionaryAttr k;
    double Int(const char *name) const override {
      auto a = k.getAs<IntegerAttr>(name);
      return a ? static_cast<double>(a.getInt()) : 0.0;
    }
  } p;
  p.k = kernel;
  auto kind = kernel.getAs<StringAttr>("kind");
  return kind ? lorart::kernels::KernelFlops(kind.getValue().str(), p) : 0.0;
}
