//===- lorac.cpp - the lorac driver ---------------------------------------===//
//
//   lorac import HF_MODEL_DIR|config.json -o model.mlir [LoRA options]
//   lorac summary model.mlir
//
//===----------------------------------------------------------------------===//
#include "lora/Dialect/Lora/IR/LoraDialect.h"
#include "lora/Frontend/HFImporter.h"
#include "lora/Support/SourceLimits.h"
#include "lora/Transforms/ModelSummary.h"
#include "lora/Transforms/Passes.h"
#include "lora/Transforms/Rematerialize.h"
#include "lora/Transforms/Report.h"
#include "lora/Transforms/SerializePlan.h"
#include "lorart/plan/plan.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Config/llvm-config.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/SHA256.h"
#include "llvm/Support/Signals.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"
#include <cmath>
#include <unistd.h>

using namespace llvm;
using namespace mlir;

namespace {

// Every lorac option is in one of these categories: --help shows them and
// hides the options LLVM's libraries register (backend flags and the like).
cl::OptionCategory ioCat("Input and output options");
cl::OptionCategory loraCat("LoRA adapter options");
cl::OptionCategory compileCat("Training plan options");
cl::OptionCategory hyperCat("Optimizer and schedule defaults");

cl::SubCommand importCmd(
    "import", "Lower a Hugging Face model directory (config.json + "
              "safetensors) or a bare config.json into the lora dialect");
cl::SubCommand compileCmd(
    "compile", "Build the training plan (train.bin) from a lora module, a "
               "Hugging Face model directory or a bare config.json");

//===--------------------------------------------------------------------===//
// lorac import
//===--------------------------------------------------------------------===//
cl::opt<std::string> importInput(cl::Positional, cl::Required,
                                 cl::desc("<HF model dir | config.json>"),
                                 cl::sub(importCmd), cl::cat(ioCat));
cl::opt<std::string> importOutput("o", cl::desc("Output file (default: stdout)"),
                                  cl::value_desc("model.mlir"), cl::init("-"),
                                  cl::sub(importCmd), cl::cat(ioCat));
cl::opt<std::string> importDtype("dtype",
                                 cl::desc("Compute dtype: bf16, f16 or f32"),
                                 cl::init("bf16"), cl::sub(importCmd),
                                 cl::sub(compileCmd), cl::cat(ioCat));
cl::opt<bool> importSummary("summary",
                            cl::desc("Print the model summary to stderr"),
                            cl::init(false), cl::sub(importCmd),
                            cl::cat(ioCat));
cl::opt<bool> noLora("no-lora",
                     cl::desc("Import without adapters (base model only)"),
                     cl::init(false), cl::sub(importCmd), cl::sub(compileCmd), cl::cat(loraCat));
cl::opt<int64_t> loraR("lora-r", cl::desc("LoRA rank r"), cl::init(16),
                       cl::sub(importCmd), cl::sub(compileCmd), cl::cat(loraCat));
cl::opt<double> loraAlpha("lora-alpha",
                          cl::desc("LoRA alpha (update scaled by alpha/r)"),
                          cl::init(32.0), cl::sub(importCmd), cl::sub(compileCmd), cl::cat(loraCat));
cl::opt<double> loraDropout("lora-dropout",
                            cl::desc("Dropout on the adapter input, [0, 1)"),
                            cl::init(0.05), cl::sub(importCmd),
                            cl::sub(compileCmd), cl::cat(loraCat));
cl::opt<std::string> loraTargets(
    "lora-targets",
    cl::desc("Comma-separated target modules (q_proj,k_proj,v_proj,o_proj,"
             "gate_proj,up_proj,down_proj) or all-linear"),
    cl::init("all-linear"), cl::sub(importCmd), cl::sub(compileCmd), cl::cat(loraCat));
cl::opt<std::string> loraTargetRegex(
    "lora-target-regex",
    cl::desc("Regex matched against whole module names (overrides "
             "--lora-targets)"),
    cl::init(""), cl::sub(importCmd), cl::sub(compileCmd), cl::cat(loraCat));
cl::list<int64_t> loraLayers("lora-layers",
                             cl::desc("Only adapt these decoder layers"),
                             cl::CommaSeparated, cl::sub(importCmd),
                             cl::sub(compileCmd), cl::cat(loraCat));
cl::opt<std::string> adapterConfig(
    "adapter-config",
    cl::desc("Take the LoRA options from PEFT's adapter_config.json"),
    cl::value_desc("adapter_config.json"), cl::init(""), cl::sub(importCmd),
    cl::sub(compileCmd), cl::cat(loraCat));

//===--------------------------------------------------------------------===//
// lorac compile
//===--------------------------------------------------------------------===//
cl::opt<std::string> compileInput(
    cl::Positional, cl::Required,
    cl::desc("<model.mlir | HF model dir | config.json>"), cl::sub(compileCmd),
    cl::cat(ioCat));
cl::opt<std::string> compileOutput("o", cl::desc("Output plan"),
                                   cl::value_desc("train.bin"), cl::init(""),
                                   cl::sub(compileCmd), cl::cat(ioCat));
cl::opt<std::string> objective("objective",
                               cl::desc("Training objective: sft, pretrain or dpo"),
                               cl::init("sft"), cl::sub(compileCmd),
                               cl::cat(compileCat));
cl::opt<double> dpoBeta("dpo-beta",
                        cl::desc("DPO: inverse temperature beta of the implicit reward"),
                        cl::init(0.1), cl::sub(compileCmd), cl::cat(compileCat));
cl::opt<std::string> dpoLoss("dpo-loss", cl::desc("DPO: sigmoid (DPO) or ipo"),
                             cl::init("sigmoid"), cl::sub(compileCmd), cl::cat(compileCat));
cl::opt<double> dpoReplayWeight(
    "dpo-replay-weight",
    cl::desc("DPO: weight of a language-modelling loss on replayed general text "
             "(lorart run --replay; 0: none)"),
    cl::init(0.0), cl::sub(compileCmd), cl::cat(compileCat));
cl::opt<double> ewcLambda("ewc-lambda",
                          cl::desc("EWC penalty strength (0: none); the run needs lorart fisher's "
                                   "file (lorart run --ewc-fisher)"),
                          cl::init(0.0), cl::sub(compileCmd), cl::cat(compileCat));
cl::opt<int64_t> microBatch("micro-batch", cl::desc("Sequences per micro-batch"),
                            cl::init(4), cl::sub(compileCmd),
                            cl::cat(compileCat));
cl::opt<int64_t> seqLen("seq-len", cl::desc("Tokens per sequence"),
                        cl::init(512), cl::sub(compileCmd),
                        cl::cat(compileCat));
cl::opt<int64_t> gradAccum("grad-accum",
                           cl::desc("Micro-batches per optimizer step"),
                           cl::init(1), cl::sub(compileCmd),
                           cl::cat(compileCat));
cl::opt<bool> dataParallel(
    "data-parallel",
    cl::desc("Data-parallel training: the gradient all-reduce over the ranks "
             "of `mpirun ... lorart run` (the number of ranks is chosen at "
             "run time; docs/distributed.md)"),
    cl::init(false), cl::sub(compileCmd), cl::cat(compileCat));
cl::opt<double> bucketMb("bucket-mb",
                         cl::desc("--data-parallel: gradient bucket size in "
                                  "MiB (each bucket's all-reduce starts as "
                                  "soon as the backward has filled it)"),
                         cl::init(25.0), cl::sub(compileCmd),
                         cl::cat(compileCat));
cl::opt<int64_t>
    reportRanks("ranks",
                cl::desc("--data-parallel: the number of ranks the report's "
                         "memory-per-rank figures assume (the plan itself "
                         "runs on any number)"),
                cl::init(8), cl::sub(compileCmd), cl::cat(compileCat));
cl::opt<bool> packing("packing",
                      cl::desc("Pack several documents per row (segment ids, "
                               "restarting positions)"),
                      cl::init(true), cl::sub(compileCmd),
                      cl::cat(compileCat));
cl::opt<std::string> quantizeBase("quantize-base",
                                  cl::desc("Quantize the frozen base: none or "
                                           "nf4 (QLoRA)"),
                                  cl::init("none"), cl::sub(compileCmd),
                                  cl::cat(compileCat));
cl::opt<std::string> trainWhat("train",
                               cl::desc("What to train: lora (adapters) or "
                                        "full (every weight)"),
                               cl::init("lora"), cl::sub(compileCmd),
                               cl::cat(compileCat));
cl::opt<std::string> remat("remat",
                           cl::desc("Gradient checkpointing: none, layer or "
                                    "auto (fit --memory-budget)"),
                           cl::init("none"), cl::sub(compileCmd),
                           cl::cat(compileCat));
cl::opt<std::string> memoryBudget("memory-budget",
                                  cl::desc("Memory budget for --remat auto "
                                           "(e.g. 24GiB)"),
                                  cl::init(""), cl::sub(compileCmd),
                                  cl::cat(compileCat));
cl::opt<int64_t> ceChunk("ce-chunk",
                         cl::desc("Tokens per chunk of the LM-head "
                                  "cross-entropy (0: the largest multiple "
                                  "of 64 whose f32 logits and gradient fit "
                                  "in 64 MiB; on the CPU without "
                                  "--memory-budget at least 512 within "
                                  "256 MiB)"),
                         cl::init(0), cl::sub(compileCmd), cl::cat(compileCat));
cl::opt<std::string> target("target", cl::desc("Kernel target: cpu or cuda"),
                            cl::init("cpu"), cl::sub(compileCmd),
                            cl::cat(compileCat));
cl::opt<bool> report("report",
                     cl::desc("Print parameters, memory and FLOPs"),
                     cl::init(false), cl::sub(compileCmd),
                     cl::cat(compileCat));
cl::opt<std::string> reportJson("report-json",
                                cl::desc("Write the report as JSON ('-': "
                                         "stdout)"),
                                cl::value_desc("file"), cl::init(""),
                                cl::sub(compileCmd), cl::cat(compileCat));
cl::opt<std::string> emitMlir("emit-mlir",
                              cl::desc("Also write the final lora module"),
                              cl::value_desc("file"), cl::init(""),
                              cl::sub(compileCmd), cl::cat(compileCat));
cl::opt<double> lr("lr", cl::desc("Peak learning rate"), cl::init(2e-4),
                   cl::sub(compileCmd), cl::cat(hyperCat));
cl::opt<double> minLr("min-lr", cl::desc("Final learning rate of the decay"),
                      cl::init(0.0), cl::sub(compileCmd), cl::cat(hyperCat));
cl::opt<uint64_t> warmupSteps("warmup-steps",
                              cl::desc("Linear warmup steps"), cl::init(0),
                              cl::sub(compileCmd), cl::cat(hyperCat));
cl::opt<std::string> schedule("schedule",
                              cl::desc("cosine, linear or constant"),
                              cl::init("cosine"), cl::sub(compileCmd),
                              cl::cat(hyperCat));
cl::opt<double> beta1("beta1", cl::desc("AdamW beta1"), cl::init(0.9),
                      cl::sub(compileCmd), cl::cat(hyperCat));
cl::opt<double> beta2("beta2", cl::desc("AdamW beta2"), cl::init(0.999),
                      cl::sub(compileCmd), cl::cat(hyperCat));
cl::opt<double> adamEps("adam-eps", cl::desc("AdamW epsilon"), cl::init(1e-8),
                        cl::sub(compileCmd), cl::cat(hyperCat));
cl::opt<double> weightDecay("weight-decay", cl::desc("Decoupled weight decay"),
                            cl::init(0.0), cl::sub(compileCmd),
                            cl::cat(hyperCat));
cl::opt<double> maxGradNorm("max-grad-norm",
                            cl::desc("Global gradient-norm clip (0: off)"),
                            cl::init(1.0), cl::sub(compileCmd),
                            cl::cat(hyperCat));
cl::opt<uint64_t> seed("seed", cl::desc("Seed of adapter init and dropout"),
                       cl::init(0), cl::sub(compileCmd), cl::cat(hyperCat));

//===--------------------------------------------------------------------===//
// lorac summary
//===--------------------------------------------------------------------===//
cl::SubCommand summaryCmd("summary",
                          "Print what a lora module contains: architecture, "
                          "parameters, adapters");
cl::opt<std::string> summaryInput(cl::Positional, cl::Required,
                                  cl::desc("<model.mlir>"),
                                  cl::sub(summaryCmd), cl::cat(ioCat));

int error(const Twine &msg) {
  errs() << "lorac: error: " << msg << "\n";
  return 1;
}

/// MLIR's source-manager diagnostics, except that a location in a JSON file
/// (the importer locates model-level errors at config.json:1:1) is printed
/// without its source line: a one-line config.json would be echoed whole.
class Diagnostics : public SourceMgrDiagnosticHandler {
public:
  Diagnostics(llvm::SourceMgr &mgr, MLIRContext *ctx)
      : SourceMgrDiagnosticHandler(mgr, ctx), ctx(ctx) {
    // Registered after the base handler: asked first.
    id = ctx->getDiagEngine().registerHandler([this](Diagnostic &d) {
      if (!inJson(d.getLocation()))
        return failure(); // the base handler's
      emitDiagnostic(d.getLocation(), d.str(), d.getSeverity(),
                     /*displaySourceLine=*/false);
      for (Diagnostic &note : d.getNotes())
        emitDiagnostic(note.getLocation(), note.str(), note.getSeverity(),
                       /*displaySourceLine=*/!inJson(note.getLocation()));
      return success();
    });
  }
  ~Diagnostics() { ctx->getDiagEngine().eraseHandler(id); }

private:
  static bool inJson(Location loc) {
    auto file = loc->findInstanceOf<FileLineColLoc>();
    return file && file.getFilename().getValue().ends_with(".json");
  }
  MLIRContext *ctx;
  DiagnosticEngine::HandlerID id;
};

void setupContext(MLIRContext &ctx) {
  DialectRegistry registry;
  registry.insert<lora::LoraDialect, func::FuncDialect>();
  ctx.appendDialectRegistry(registry);
  ctx.loadAllAvailableDialects();
  // Diagnostics name the op and its location; the whole module is noise.
  ctx.printOpOnDiagnostic(false);
}

/// The LoRA options of import and compile, from the flags; an error message
/// when they conflict.
std::optional<std::string> loraFromFlags(lora::frontend::ImportOptions &opts) {
  using namespace mlir::lora::frontend;
  bool anyLoraFlag = loraR.getNumOccurrences() ||
                     loraAlpha.getNumOccurrences() ||
                     loraDropout.getNumOccurrences() ||
                     loraTargets.getNumOccurrences() ||
                     loraTargetRegex.getNumOccurrences() ||
                     loraLayers.getNumOccurrences();
  if (noLora && (anyLoraFlag || !adapterConfig.empty()))
    return std::string("--no-lora cannot be combined with LoRA options");
  if (!adapterConfig.empty() && anyLoraFlag)
    return std::string(
        "--adapter-config cannot be combined with --lora-* options");
  if (!adapterConfig.empty()) {
    Expected<LoraOptions> lo = parsePeftAdapterConfig(adapterConfig);
    if (!lo)
      return toString(lo.takeError());
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
  return std::nullopt;
}

/// Prints a module with its locations: the module names of the importer's
/// ops (loc("model.layers.3.mlp.up_proj")) are what gradient checkpointing
/// and diagnostics use.
void printModule(ModuleOp module, raw_ostream &os) {
  OpPrintingFlags flags;
  flags.enableDebugInfo(/*enable=*/true, /*prettyForm=*/false);
  module->print(os, flags);
  os << "\n";
}

/// Writes through a temporary file and a rename: no partial file on failure.
int writeFile(StringRef path, llvm::function_ref<void(raw_ostream &)> write) {
  if (llvm::Error e = writeToOutput(path, [&](raw_ostream &os) {
        write(os);
        return Error::success();
      }))
    return error(path + ": " + toString(std::move(e)));
  return 0;
}

/// Writes several files all or nothing: each into a temporary file beside
/// it first (removed if a signal ends lorac), and only when every one is
/// written are they renamed into place. So an output path that cannot be
/// written (a missing directory, a directory of that name) fails the command
/// before any output is replaced. "-" is standard output, and an existing
/// path that is not a regular file (/dev/null, /dev/stdout) is written in
/// place, last: renaming over it would replace the device.
int writeFiles(ArrayRef<std::pair<std::string, std::string>> files) {
  SmallVector<std::string> temps(files.size());
  SmallVector<bool> direct(files.size(), false);
  auto cleanup = [&] {
    for (const std::string &t : temps)
      if (!t.empty()) {
        llvm::sys::fs::remove(t);
        llvm::sys::DontRemoveFileOnSignal(t);
      }
  };
  for (size_t i = 0; i < files.size(); ++i) {
    const auto &[path, content] = files[i];
    llvm::sys::fs::file_status st;
    const bool exists = !llvm::sys::fs::status(path, st);
    if (path == "-" || (exists && !llvm::sys::fs::is_directory(st) &&
                        !llvm::sys::fs::is_regular_file(st))) {
      direct[i] = true;
      continue;
    }
    if (exists && llvm::sys::fs::is_directory(st)) {
      cleanup();
      return error(path + ": is a directory");
    }
    // Named by hand: createUniqueFile would also replace a '%' of the path.
    std::string temp =
        path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(i);
    int fd = -1;
    if (std::error_code ec = llvm::sys::fs::openFileForWrite(
            temp, fd, llvm::sys::fs::CD_CreateNew)) {
      cleanup();
      return error(path + ": " + ec.message());
    }
    temps[i] = temp;
    llvm::sys::RemoveFileOnSignal(temp);
    llvm::raw_fd_ostream os(fd, /*shouldClose=*/true);
    os << content;
    os.close();
    if (os.has_error()) {
      std::string msg = os.error().message();
      os.clear_error();
      cleanup();
      return error(path + ": " + msg);
    }
  }
  for (size_t i = 0; i < files.size(); ++i) {
    if (direct[i])
      continue;
    if (std::error_code ec = llvm::sys::fs::rename(temps[i], files[i].first)) {
      cleanup();
      return error(files[i].first + ": " + ec.message());
    }
    llvm::sys::DontRemoveFileOnSignal(temps[i]);
    temps[i].clear();
  }
  for (size_t i = 0; i < files.size(); ++i) {
    if (!direct[i])
      continue;
    if (files[i].first == "-") {
      outs() << files[i].second;
      outs().flush();
      continue;
    }
    std::error_code ec;
    llvm::raw_fd_ostream os(files[i].first, ec);
    if (!ec) {
      os << files[i].second;
      os.close();
      if (os.has_error()) {
        ec = os.error();
        os.clear_error();
      }
    }
    if (ec)
      return error(files[i].first + ": " + ec.message());
  }
  return 0;
}

int runImport() {
  using namespace mlir::lora::frontend;
  ImportOptions opts;
  opts.input = importInput;
  opts.dtype = importDtype;
  if (std::optional<std::string> err = loraFromFlags(opts))
    return error(*err);

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
  return writeFile(importOutput,
                   [&](raw_ostream &os) { printModule(**module, os); });
}

/// The pass pipeline of `lorac compile` from its flags, up to and including
/// autodiff, and the part after it (remat is chosen between the two).
struct Pipeline {
  std::string prefix, suffix;
  std::string full(StringRef remat) const {
    std::string mid = remat.empty() ? "" : (remat + ",").str();
    return "builtin.module(" + prefix + "," + mid + suffix + ")";
  }
};

/// A double printed so that it parses back to the same value.
std::string num(double v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

/// Tokens per chunk of the LM-head loss: the flag, or the largest multiple
/// of 64 whose float32 logits and their gradient take at most 64 MiB; on the
/// CPU at least kCpuMinLmHeadChunk rows, from which its chunk products run at
/// their full rate, as far as kCpuLmHeadChunkBytes allows, unless a
/// --memory-budget asks for memory first (docs/compiler.md, `--ce-chunk`).
constexpr int64_t kLmHeadChunkBytes = int64_t(64) << 20;
constexpr int64_t kCpuMinLmHeadChunk = 512;
constexpr int64_t kCpuLmHeadChunkBytes = int64_t(256) << 20;

int64_t lmHeadChunk(ModuleOp module) {
  if (ceChunk > 0)
    return ceChunk;
  int64_t vocab = 32000;
  if (auto cfg = module->getAttrOfType<DictionaryAttr>(lora::kModelConfigAttrName))
    if (auto v = cfg.getAs<IntegerAttr>("vocab_size"))
      vocab = v.getInt();
  // The rows whose f32 logits and gradient fit in `bytes`, in multiples of
  // 64, at least 64.
  auto rowsIn = [&](int64_t bytes) {
    return std::max<int64_t>(64, bytes / (8 * vocab) / 64 * 64);
  };
  int64_t chunk = rowsIn(kLmHeadChunkBytes);
  if (target == "cpu" && memoryBudget.empty())
    chunk = std::max(
        chunk, std::min(kCpuMinLmHeadChunk, rowsIn(kCpuLmHeadChunkBytes)));
  return std::min<int64_t>(chunk, microBatch * seqLen);
}

Pipeline buildPipeline(ModuleOp module) {
  Pipeline p;
  p.prefix = formatv("lora-specialize-shapes{{micro-batch={0} seq-len={1}}",
                     static_cast<int64_t>(microBatch),
                     static_cast<int64_t>(seqLen))
                 .str();
  if (quantizeBase == "nf4")
    p.prefix += ",lora-quantize-base{format=nf4}";
  p.prefix += ",lora-logits-program";
  if (objective == "dpo")
    p.prefix += formatv(",lora-objective{{objective=dpo beta={0} loss-type={1} "
                        "replay-weight={2}}",
                        num(dpoBeta), dpoLoss.getValue(), num(dpoReplayWeight))
                    .str();
  else
    p.prefix += ",lora-objective{objective=" + objective + "}";
  if (ewcLambda > 0)
    p.prefix += ",lora-ewc{lambda=" + num(ewcLambda) + "}";
  if (packing)
    p.prefix += ",lora-packing";
  p.prefix += formatv(",lora-fuse{{chunk-size={0}},lora-autodiff{{train={1}}",
                      lmHeadChunk(module), trainWhat.getValue())
                  .str();
  p.suffix =
      formatv("lora-optimizer{{beta1={0} beta2={1} eps={2} "
              "weight-decay={3} max-grad-norm={4}},"
              "lora-fuse-lm-head-loss{{target={5}},"
              "lora-save-attention-stats{{target={5}},{7}"
              "lora-lower-to-kernels{{target={5}},{6}lora-plan-memory",
              num(beta1), num(beta2), num(adamEps), num(weightDecay),
              num(maxGradNorm), target.getValue(),
              target == "cuda" ? "lora-emit-cuda," : "",
              dataParallel
                  ? "lora-data-parallel{bucket-mb=" + num(bucketMb) + "},"
                  : std::string())
          .str();
  return p;
}

/// Checks the flags of `lorac compile`; an error message or nothing.
std::optional<std::string> checkCompileFlags() {
  auto bad = [](const Twine &t) { return std::optional<std::string>(t.str()); };
  if (objective != "sft" && objective != "pretrain" && objective != "dpo")
    return bad("--objective must be sft, pretrain or dpo, got '" + objective + "'");
  auto finite = [](double v) { return std::isfinite(v); };
  if (!(ewcLambda >= 0) || !finite(ewcLambda))
    return bad("--ewc-lambda must be a number >= 0, got " + num(ewcLambda));
  if (dpoReplayWeight > 0 && objective != "dpo")
    return bad("--dpo-replay-weight needs --objective dpo (SFT and pretraining plans take "
               "lorart run --replay as they are)");
  if (ewcLambda > 0 && objective == "dpo")
    return bad("--ewc-lambda is not available with --objective dpo yet");
  if (objective == "dpo") {
    if (!(dpoBeta > 0.0) || !finite(dpoBeta))
      return bad("--dpo-beta must be positive, got " + num(dpoBeta));
    if (dpoLoss != "sigmoid" && dpoLoss != "ipo")
      return bad("--dpo-loss must be sigmoid or ipo, got '" + dpoLoss + "'");
    if (!(dpoReplayWeight >= 0) || !finite(dpoReplayWeight))
      return bad("--dpo-replay-weight must be >= 0, got " + num(dpoReplayWeight));
  }
  if (!(bucketMb > 0.0) || !finite(bucketMb))
    return bad("--bucket-mb must be positive, got " + num(bucketMb));
  if (reportRanks < 1)
    return bad("--ranks must be at least 1, got " +
               Twine(static_cast<int64_t>(reportRanks)));
  if (microBatch <= 0)
    return bad("--micro-batch must be positive, got " +
               Twine(static_cast<int64_t>(microBatch)));
  if (seqLen <= 1)
    return bad("--seq-len must be at least 2, got " +
               Twine(static_cast<int64_t>(seqLen)));
  // lorart run's bound too: far above a real run, low enough that a
  // mistyped value is refused instead of training for days.
  if (gradAccum <= 0 || gradAccum > 65536)
    return bad("--grad-accum must be in [1, 65536], got " +
               Twine(static_cast<int64_t>(gradAccum)));
  if (ceChunk < 0)
    return bad("--ce-chunk must be >= 0 (0: automatic), got " +
               Twine(static_cast<int64_t>(ceChunk)));
  if (quantizeBase != "none" && quantizeBase != "nf4")
    return bad("--quantize-base must be none or nf4, got '" + quantizeBase +
               "'");
  if (trainWhat != "lora" && trainWhat != "full")
    return bad("--train must be lora or full, got '" + trainWhat + "'");
  if (trainWhat == "full" && quantizeBase == "nf4")
    return bad("--train full cannot update an NF4-quantized base: use "
               "--train lora with --quantize-base nf4 (QLoRA)");
  if (remat != "none" && remat != "layer" && remat != "auto")
    return bad("--remat must be none, layer or auto, got '" + remat + "'");
  if (remat == "auto" && memoryBudget.empty())
    return bad("--remat auto needs --memory-budget (e.g. 24GiB)");
  if (!memoryBudget.empty() && !lora::parseByteSize(memoryBudget))
    return bad("--memory-budget: '" + memoryBudget +
               "' is not a size (e.g. 24GiB, 512MiB, 1.5GB, 4096)");
  if (target != "cpu" && target != "cuda")
    return bad("--target must be cpu or cuda, got '" + target + "'");
  if (!(lr > 0.0) || !finite(lr))
    return bad("--lr must be a positive number, got " + num(lr));
  if (!(minLr >= 0.0 && minLr <= lr))
    return bad("--min-lr must be in [0, --lr], got " + num(minLr));
  if (schedule != "cosine" && schedule != "linear" && schedule != "constant")
    return bad("--schedule must be cosine, linear or constant, got '" +
               schedule + "'");
  if (!(beta1 >= 0.0 && beta1 < 1.0) || !(beta2 >= 0.0 && beta2 < 1.0))
    return bad("--beta1 and --beta2 must be in [0, 1)");
  if (!(adamEps > 0.0) || !finite(adamEps))
    return bad("--adam-eps must be a positive number, got " + num(adamEps));
  if (!(weightDecay >= 0.0) || !finite(weightDecay))
    return bad("--weight-decay must be a number >= 0, got " + num(weightDecay));
  if (!(maxGradNorm >= 0.0) || !finite(maxGradNorm))
    return bad("--max-grad-norm must be a number >= 0 (0: no clipping), got " +
               num(maxGradNorm));
  if (compileOutput.empty() && !report && reportJson.empty() && emitMlir.empty())
    return bad("nothing to do: give -o train.bin, --report, --report-json or "
               "--emit-mlir");
  return std::nullopt;
}

/// Total planned bytes of a lowered module.
FailureOr<int64_t> plannedBytes(ModuleOp module) {
  FailureOr<lora::CompileReport> r =
      lora::computeReport(module, microBatch, seqLen, gradAccum);
  if (failed(r))
    return failure();
  return r->totalBytes();
}

int runCompile() {
  if (std::optional<std::string> err = checkCompileFlags())
    return error(*err);
  MLIRContext ctx;
  setupContext(ctx);
  llvm::SourceMgr sourceMgr;
  Diagnostics handler(sourceMgr, &ctx);

  // The input: a lora module, or a model directory / config.json imported
  // on the fly with the LoRA flags.
  OwningOpRef<ModuleOp> module;
  if (StringRef(compileInput).ends_with(".mlir")) {
    std::string err;
    auto file = openInputFile(compileInput, &err);
    if (!file)
      return error(compileInput + ": " + err);
    unsigned id = sourceMgr.AddNewSourceBuffer(std::move(file), SMLoc());
    if (lora::reportExcessiveNesting(sourceMgr, id))
      return 1;
    module = parseSourceFile<ModuleOp>(sourceMgr, &ctx);
    if (!module)
      return 1;
    if (loraR.getNumOccurrences() || !adapterConfig.empty() || noLora)
      return error("LoRA options apply when compiling a model directory or "
                   "config.json; " + compileInput +
                   " already has its adapters (see lorac import)");
  } else {
    lora::frontend::ImportOptions opts;
    opts.input = compileInput;
    opts.dtype = importDtype;
    if (std::optional<std::string> err = loraFromFlags(opts))
      return error(*err);
    lora::frontend::ImportInfo info;
    Expected<OwningOpRef<ModuleOp>> imported =
        lora::frontend::importModel(ctx, opts, &info);
    if (!imported)
      return error(toString(imported.takeError()));
    for (const std::string &w : info.warnings)
      errs() << "lorac: warning: " << w << "\n";
    module = std::move(*imported);
  }
  if (!(*module)->hasAttr(lora::kModelConfigAttrName))
    return error(compileInput + ": not a lora model (no '" +
                 lora::kModelConfigAttrName.str() +
                 "'): produce it with lorac import");

  // A hash of the input module, for provenance.
  std::string printed;
  {
    llvm::raw_string_ostream os(printed);
    OpPrintingFlags flags;
    flags.printGenericOpForm();
    (*module)->print(os, flags);
  }
  std::array<uint8_t, 32> digest = llvm::SHA256::hash(
      ArrayRef<uint8_t>(reinterpret_cast<const uint8_t *>(printed.data()),
                        printed.size()));
  std::string hash = toHex(digest, /*LowerCase=*/true);

  Pipeline pipeline = buildPipeline(*module);
  std::string rematStage;
  if (remat == "layer")
    rematStage = "lora-remat{policy=layer}";
  {
    std::string prefix = "builtin.module(" + pipeline.prefix + ")";
    if (failed(lora::runModulePipeline(*module, prefix)))
      return 1;
  }
  if (remat == "auto") {
    int64_t budget = *lora::parseByteSize(memoryBudget);
    lora::RematBudgetSearch search;
    search.restPipeline = pipeline.suffix;
    search.plannedBytes = plannedBytes;
    FailureOr<std::string> chosen =
        lora::chooseRematForBudget(module, search, budget);
    if (failed(chosen))
      return 1;
    rematStage = *chosen;
  } else {
    std::string rest = "builtin.module(" +
                       (rematStage.empty() ? "" : rematStage + ",") +
                       pipeline.suffix + ")";
    if (failed(lora::runModulePipeline(*module, rest)))
      return 1;
  }
  std::string fullPipeline = pipeline.full(rematStage);

  FailureOr<lora::CompileReport> rep =
      lora::computeReport(*module, microBatch, seqLen, gradAccum);
  if (failed(rep))
    return 1;
  rep->ranks = reportRanks;
  if (!memoryBudget.empty() && remat != "auto") {
    int64_t budget = *lora::parseByteSize(memoryBudget);
    if (rep->totalBytes() > budget)
      return error(formatv("the plan needs {0}, over --memory-budget {1}: "
                           "use --remat auto (or layer), a smaller "
                           "--micro-batch/--seq-len/--ce-chunk, or "
                           "--quantize-base nf4",
                           lora::formatBytes(rep->totalBytes()),
                           lora::formatBytes(budget)));
  }

  std::vector<std::pair<std::string, std::string>>
      outputs; // written all or nothing
  if (!compileOutput.empty()) {
    lora::PlanOptions po;
    po.objective = objective;
    po.microBatch = microBatch;
    po.seqLen = seqLen;
    po.gradAccum = gradAccum;
    po.packing = packing;
    po.remat = remat;
    po.memoryBudget =
        memoryBudget.empty() ? 0 : *lora::parseByteSize(memoryBudget);
    po.lr = lr;
    po.minLr = minLr;
    po.warmupSteps = warmupSteps;
    po.schedule = schedule;
    po.beta1 = beta1;
    po.beta2 = beta2;
    po.eps = adamEps;
    po.weightDecay = weightDecay;
    po.maxGradNorm = maxGradNorm;
    po.seed = seed;
    po.compilerVersion = "lorac 0.1.0";
    po.pipeline = fullPipeline;
    po.inputHash = "sha256:" + hash;
    po.source = compileInput;
    FailureOr<std::string> bytes = lora::serializePlan(*module, po);
    if (failed(bytes))
      return 1;
    // The runtime's own loader checks what we wrote before it lands.
    lorart::Plan check;
    lorart::Status st = lorart::ParsePlan(*bytes, compileOutput, &check);
    if (!st.ok())
      return error("internal error: the plan does not load: " + st.message());
    // The run machine may differ, but a plan too big for this one is worth
    // a word (lorart run refuses it where it does not fit).
    lorart::Status fits =
        lorart::CheckPlanFitsHostMemory(check, /*arena_on_device=*/target == "cuda");
    if (!fits.ok())
      errs() << "lorac: warning: " << fits.message()
             << " (on this machine; lorart run checks the machine it runs on)\n";
    outputs.emplace_back(compileOutput, std::move(*bytes));
  }
  if (!emitMlir.empty()) {
    std::string text;
    llvm::raw_string_ostream os(text);
    printModule(*module, os);
    outputs.emplace_back(emitMlir, std::move(text));
  }
  if (!reportJson.empty()) {
    std::string text;
    llvm::raw_string_ostream os(text);
    lora::printReportJson(*rep, os);
    outputs.emplace_back(reportJson, std::move(text));
  }
  if (report) {
    outs() << "pipeline: " << fullPipeline << "\n";
    lora::printReport(*rep, outs());
  }
  return writeFiles(outputs);
}

int runSummary() {
  MLIRContext ctx;
  setupContext(ctx);
  llvm::SourceMgr sourceMgr;
  Diagnostics handler(sourceMgr, &ctx);
  std::string err;
  auto file = openInputFile(summaryInput, &err);
  if (!file)
    return error(summaryInput + ": " + err);
  unsigned id = sourceMgr.AddNewSourceBuffer(std::move(file), SMLoc());
  if (lora::reportExcessiveNesting(sourceMgr, id))
    return 1;
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
  lora::registerLoraPasses();
  cl::SetVersionPrinter(
      [](raw_ostream &os) { os << "lorac 0.1.0 (MLIR " LLVM_VERSION_STRING ")\n"; });
  // Only lorac's own options (and --help/--version) in every help listing,
  // --help-hidden and --help-list included.
  const cl::OptionCategory *own[] = {&ioCat, &loraCat, &compileCat, &hyperCat};
  for (cl::SubCommand *sub : cl::getRegisteredSubcommands())
    cl::HideUnrelatedOptions(own, *sub);
  cl::ParseCommandLineOptions(
      argc, argv,
      "lorac: the LoRA/QLoRA training compiler\n\n"
      "  lorac import HF_MODEL_DIR -o model.mlir   forward graph + adapters\n"
      "  lorac compile model.mlir -o train.bin     the training plan\n"
      "  lorac summary model.mlir                  what a module contains\n");
  if (importCmd)
    return runImport();
  if (summaryCmd)
    return runSummary();
  if (compileCmd)
    return runCompile();
  errs() << "lorac: error: no command given (try lorac --help)\n";
  return 1;
}
