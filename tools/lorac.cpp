//===- lorac.cpp - the lorac driver ---------------------------------------===//
//
//   lorac import HF_MODEL_DIR|config.json -o model.mlir [LoRA options]
//   lorac summary model.mlir
//
//===----------------------------------------------------------------------===//
#include "lora/Dialect/Lora/IR/LoraDialect.h"
#include "lora/Frontend/HFImporter.h"
#include "lora/Transforms/ModelSummary.h"
#include "lora/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Config/llvm-config.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

using namespace llvm;
using namespace mlir;

namespace {

cl::OptionCategory loraCat("LoRA adapter options");

//===--------------------------------------------------------------------===//
// lorac import
//===--------------------------------------------------------------------===//
cl::SubCommand importCmd(
    "import", "Lower a Hugging Face model directory (config.json + "
              "safetensors) or a bare config.json into the lora dialect");
cl::opt<std::string> importInput(cl::Positional, cl::Required,
                                 cl::desc("<HF model dir | config.json>"),
                                 cl::sub(importCmd));
cl::opt<std::string> importOutput("o", cl::desc("Output file (default: stdout)"),
                                  cl::value_desc("model.mlir"), cl::init("-"),
                                  cl::sub(importCmd));
cl::opt<std::string> importDtype("dtype",
                                 cl::desc("Compute dtype: bf16, f16 or f32"),
                                 cl::init("bf16"), cl::sub(importCmd));
cl::opt<bool> importSummary("summary",
                            cl::desc("Print the model summary to stderr"),
                            cl::init(false), cl::sub(importCmd));
cl::opt<bool> noLora("no-lora",
                     cl::desc("Import without adapters (base model only)"),
                     cl::init(false), cl::sub(importCmd), cl::cat(loraCat));
cl::opt<int64_t> loraR("lora-r", cl::desc("LoRA rank r"), cl::init(16),
                       cl::sub(importCmd), cl::cat(loraCat));
cl::opt<double> loraAlpha("lora-alpha",
                          cl::desc("LoRA alpha (update scaled by alpha/r)"),
                          cl::init(32.0), cl::sub(importCmd), cl::cat(loraCat));
cl::opt<double> loraDropout("lora-dropout",
                            cl::desc("Dropout on the adapter input, [0, 1)"),
                            cl::init(0.05), cl::sub(importCmd),
                            cl::cat(loraCat));
cl::opt<std::string> loraTargets(
    "lora-targets",
    cl::desc("Comma-separated target modules (q_proj,k_proj,v_proj,o_proj,"
             "gate_proj,up_proj,down_proj) or all-linear"),
    cl::init("all-linear"), cl::sub(importCmd), cl::cat(loraCat));
cl::opt<std::string> loraTargetRegex(
    "lora-target-regex",
    cl::desc("Regex matched against whole module names (overrides "
             "--lora-targets)"),
    cl::init(""), cl::sub(importCmd), cl::cat(loraCat));
cl::list<int64_t> loraLayers("lora-layers",
                             cl::desc("Only adapt these decoder layers"),
                             cl::CommaSeparated, cl::sub(importCmd),
                             cl::cat(loraCat));
cl::opt<std::string> adapterConfig(
    "adapter-config",
    cl::desc("Take the LoRA options from PEFT's adapter_config.json"),
    cl::value_desc("adapter_config.json"), cl::init(""), cl::sub(importCmd),
    cl::cat(loraCat));

//===--------------------------------------------------------------------===//
// lorac summary
//===--------------------------------------------------------------------===//
cl::SubCommand summaryCmd("summary",
                          "Print what a lora module contains: architecture, "
                          "parameters, adapters");
cl::opt<std::string> summaryInput(cl::Positional, cl::Required,
                                  cl::desc("<model.mlir>"),
                                  cl::sub(summaryCmd));

int error(const Twine &msg) {
  errs() << "lorac: error: " << msg << "\n";
  return 1;
}

void setupContext(MLIRContext &ctx) {
  DialectRegistry registry;
  registry.insert<lora::LoraDialect, func::FuncDialect>();
  ctx.appendDialectRegistry(registry);
  ctx.loadAllAvailableDialects();
}

int runImport() {
  using namespace mlir::lora::frontend;
  ImportOptions opts;
  opts.input = importInput;
  opts.dtype = importDtype;
  bool anyLoraFlag = loraR.getNumOccurrences() ||
                     loraAlpha.getNumOccurrences() ||
                     loraDropout.getNumOccurrences() ||
                     loraTargets.getNumOccurrences() ||
                     loraTargetRegex.getNumOccurrences() ||
                     loraLayers.getNumOccurrences();
  if (noLora && (anyLoraFlag || !adapterConfig.empty()))
    return error("--no-lora cannot be combined with LoRA options");
  if (!adapterConfig.empty() && anyLoraFlag)
    return error("--adapter-config cannot be combined with --lora-* options");
  if (!adapterConfig.empty()) {
    Expected<LoraOptions> lo = parsePeftAdapterConfig(adapterConfig);
    if (!lo)
      return error(toString(lo.takeError()));
    opts.lora = *lo;
  } else if (!noLora) {
    LoraOptions lo;
    lo.rank = loraR;
    lo.alpha = loraAlpha;
    lo.dropout = loraDropout;
    lo.targets = loraTargets;
    lo.targetRegex = loraTargetRegex;
    lo.layers.assign(loraLayers.begin(), loraLayers.end());
    opts.lora = lo;
  }

  MLIRContext ctx;
  setupContext(ctx);
  ImportInfo info;
  Expected<OwningOpRef<ModuleOp>> module = importModel(ctx, opts, &info);
  if (!module)
    return error(toString(module.takeError()));
  for (const std::string &w : info.warnings)
    errs() << "lorac: warning: " << w << "\n";

  if (importSummary) {
    FailureOr<lora::ModelSummary> s = lora::summarizeModule(**module);
    if (failed(s))
      return 1;
    errs() << "source: " << info.configPath
           << (info.haveWeights
                   ? " with safetensors headers (" +
                         std::to_string(info.numTensors) + " tensors in " +
                         std::to_string(info.numShards) + " file(s)) checked"
                   : std::string(" (config only, no weights checked)"))
           << "\n";
    lora::printSummary(*s, errs());
  }

  // Written to a temporary file and renamed: no partial output on failure.
  if (llvm::Error e = writeToOutput(importOutput, [&](raw_ostream &os) {
        (*module)->print(os);
        os << "\n";
        return Error::success();
      }))
    return error(importOutput + ": " + toString(std::move(e)));
  return 0;
}

int runSummary() {
  MLIRContext ctx;
  setupContext(ctx);
  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler handler(sourceMgr, &ctx);
  std::string err;
  auto file = openInputFile(summaryInput, &err);
  if (!file)
    return error(summaryInput + ": " + err);
  sourceMgr.AddNewSourceBuffer(std::move(file), SMLoc());
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, &ctx);
  if (!module)
    return 1; // the parser or verifier printed the diagnostic
  FailureOr<lora::ModelSummary> s = lora::summarizeModule(*module);
  if (failed(s))
    return 1;
  lora::printSummary(*s, outs());
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  InitLLVM y(argc, argv);
  cl::SetVersionPrinter(
      [](raw_ostream &os) { os << "lorac 0.1.0 (MLIR " LLVM_VERSION_STRING ")\n"; });
  cl::HideUnrelatedOptions({&loraCat, &cl::getGeneralCategory()});
  cl::ParseCommandLineOptions(
      argc, argv,
      "lorac: the LoRA/QLoRA training compiler\n\n"
      "  lorac import HF_MODEL_DIR -o model.mlir   forward graph + adapters\n"
      "  lorac summary model.mlir                  what a module contains\n");
  if (importCmd)
    return runImport();
  if (summaryCmd)
    return runSummary();
  errs() << "lorac: error: no command given (try lorac --help)\n";
  return 1;
}
