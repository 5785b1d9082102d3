//===- HFConfig.h - Hugging Face config.json and PEFT configs ---*- C++ -*-===//
//
// The importer's view of the one model-config representation, which lives
// with the runtime (lorart/io/hf_config.h) so that the compiler and
// `lorart init-model` read config.json the same way. These wrappers turn
// its Status errors into llvm::Error with the same one-line message.
//
//===----------------------------------------------------------------------===//
#ifndef LORA_FRONTEND_HFCONFIG_H
#define LORA_FRONTEND_HFCONFIG_H

#include "lorart/io/hf_config.h"

#include "llvm/Support/Error.h"

#include <string>

namespace mlir::lora::frontend {

using lorart::hf::Architecture;
using lorart::hf::kArchitectures;
using lorart::hf::LoraOptions;
using lorart::hf::ModelConfig;
using lorart::hf::RopeScaling;

inline const char *architectureName(Architecture arch) {
  return lorart::hf::ArchitectureName(arch);
}

/// lorart::hf::ParseModelConfig (see there for the rules and messages).
llvm::Expected<ModelConfig> parseModelConfig(const std::string &path);

/// lorart::hf::ParsePeftAdapterConfig.
llvm::Expected<LoraOptions> parsePeftAdapterConfig(const std::string &path);

} // namespace mlir::lora::frontend

#endif
