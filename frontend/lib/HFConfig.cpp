//===- HFConfig.cpp - config.json and PEFT configs for the importer -------===//
#include "lora/Frontend/HFConfig.h"

namespace mlir::lora::frontend {

namespace {
template <class T>
llvm::Expected<T> toExpected(lorart::StatusOr<T> v) {
  if (!v.ok())
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   v.status().message());
  return std::move(*v);
}
} // namespace

llvm::Expected<ModelConfig> parseModelConfig(const std::string &path) {
  return toExpected(lorart::hf::ParseModelConfig(path));
}

llvm::Expected<LoraOptions> parsePeftAdapterConfig(const std::string &path) {
  return toExpected(lorart::hf::ParsePeftAdapterConfig(path));
}

} // namespace mlir::lora::frontend
