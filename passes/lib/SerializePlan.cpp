//===- SerializePlan.cpp - write the train.bin plan -----------------------===//
//
// Walks the lowered module and writes the FlatBuffers plan the runtime
// executes: one tensor per persistent name (parameters, optimizer state,
// gradient accumulators; bound or initialized by the runtime) and per arena
// value of each program (inputs, activations, outputs, at the offsets
// lora-plan-memory chose), the distinct kernels (kind + parameters from
// lora-lower-to-kernels) and, per program, its launches in order.
//
//===----------------------------------------------------------------------===//
#include "lora/Transforms/SerializePlan.h"

#include "lora/Dialect/Lora/IR/LoraOps.h"
#include "lora/Transforms/ModelSummary.h"
#include "lora/Transforms/Passes.h"
#include "lorart/plan/format_version.h"
#include "lorart/plan/ports.h"
#include "lorart/plan/seal.h"
#include "lorart/schema/train_bin_generated.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/MapVector.h"

#include <map>

using namespace mlir;
using namespace mlir::lora;
namespace fb = flatbuffers;
namespace sc = lorart::schema;

namespace {


std::optional<sc::DType> dtypeOf(Type t) {
  if (isa<NF4Type>(t))
    return sc::DType::NF4;
  auto rt = dyn_cast<RankedTensorType>(t);
  if (!rt)
    return std::nullopt;
  Type e = rt.getElementType();
  if (e.isF32())
    return sc::DType::F32;
  if (e.isF16())
    return sc::DType::F16;
  if (e.isBF16())
    return sc::DType::BF16;
  if (e.isInteger(32))
    return sc::DType::I32;
  if (e.isInteger(64))
    return sc::DType::I64;
  if (e.isInteger(1))
    return sc::DType::BOOL;
  return std::nullopt;
}

ArrayRef<int64_t> shapeOf(Type t) {
  if (auto nf4 = dyn_cast<NF4Type>(t))
    return nf4.getShape();
  return cast<RankedTensorType>(t).getShape();
}

/// A readable name for an arena value: its location's module name if any.
std::string debugName(Value v, StringRef program, unsigned id) {
  std::string base;
  if (std::optional<StringRef> module = getModuleName(v.getLoc()))
    base = module->str();
  else if (auto op = v.getDefiningOp())
    base = op->getName().getStringRef().str();
  return (program + "/" + base + "#" + std::to_string(id)).str();
}

class Writer {
public:
  Writer(ModuleOp module, const PlanOptions &opts)
      : module(module), opts(opts) {}

  FailureOr<std::string> run() {
    // Persistent tensors first, in order of first appearance.
    WalkResult r = module.walk([&](Operation *op) {
      if (auto p = dyn_cast<ParamOp>(op))
        if (failed(persistent(p.getName(), p.getType(), p.getRole(),
                              p.getEffectiveInit(), p.getOf(), op)))
          return WalkResult::interrupt();
      if (auto a = dyn_cast<AssignOp>(op))
        if (failed(persistentForWrite(a.getName(), a.getValue().getType(),
                                      op)))
          return WalkResult::interrupt();
      if (auto z = dyn_cast<ResetOp>(op))
        if (failed(persistentForWrite(z.getName(), z.getStorageType(), op)))
          return WalkResult::interrupt();
      return WalkResult::advance();
    });
    if (r.wasInterrupted())
      return failure();

    std::vector<fb::Offset<sc::Program>> programs;
    uint64_t arena = 0;
    for (StringRef name :
         {lorart::programs::kTrainStep, lorart::programs::kOptimizerStep,
          lorart::programs::kEvalStep, lorart::programs::kLogitsStep}) {
      auto fn = module.lookupSymbol<func::FuncOp>(name);
      if (!fn && name == lorart::programs::kLogitsStep)
        continue; // optional: only plans compiled for generation have it
      if (!fn)
        return module.emitError() << "the module has no @" << name
                                  << ": it is not a complete training plan";
      FailureOr<fb::Offset<sc::Program>> p = program(fn);
      if (failed(p))
        return failure();
      programs.push_back(*p);
      auto size = fn->getAttrOfType<IntegerAttr>(kArenaSizeAttrName);
      arena = std::max<uint64_t>(arena, size.getInt());
    }

    auto tensorsVec = b.CreateVector(tensors);
    auto kernelsVec = b.CreateVector(kernels);
    auto programsVec = b.CreateVector(programs);
    auto arenaT = sc::CreateArena(b, arena, opts.arenaAlignment);
    FailureOr<fb::Offset<sc::ModelConfig>> model = modelConfig();
    if (failed(model))
      return failure();
    fb::Offset<sc::LoraConfig> lora = loraConfig();
    auto defaults = sc::CreateHyperparametersDirect(
        b, opts.objective.c_str(), opts.microBatch, opts.seqLen,
        opts.gradAccum, opts.packing, opts.remat.c_str(), opts.memoryBudget,
        opts.lr, opts.minLr, opts.warmupSteps, opts.schedule.c_str(),
        opts.beta1, opts.beta2, opts.eps, opts.weightDecay, opts.maxGradNorm,
        opts.seed);
    auto prov = sc::CreateProvenanceDirect(
        b, opts.compilerVersion.c_str(), opts.pipeline.c_str(),
        opts.inputHash.c_str(), opts.source.c_str());
    auto plan = sc::CreatePlan(b, lorart::kPlanFormatVersion, *model, lora, tensorsVec,
                               arenaT, kernelsVec, programsVec, defaults,
                               prov);
    sc::FinishSizePrefixedPlanBuffer(b, plan);
    // The checksum trailer makes any later change of a byte a load error.
    return lorart::SealPlan(std::string_view(
        reinterpret_cast<const char *>(b.GetBufferPointer()), b.GetSize()));
  }

private:
  /// A persistent tensor named `name`; the same name must always have the
  /// same type.
  LogicalResult persistent(StringRef name, Type type, ParamRole role,
                           ParamInit pinit, std::optional<StringRef> of,
                           Operation *op) {
    auto it = byName.find(name);
    if (it != byName.end()) {
      if (types[name] != type)
        return op->emitOpError() << "'" << name << "' has type " << type
                                 << " here and " << types[name]
                                 << " elsewhere";
      return success();
    }
    std::optional<sc::DType> dt = dtypeOf(type);
    if (!dt)
      return op->emitOpError() << "type " << type
                               << " cannot be stored in train.bin";
    // The tensor's role and filling come from the op (role, init), never
    // from its name.
    sc::Role srole = sc::Role::Frozen;
    switch (role) {
    case ParamRole::Frozen:
      break;
    case ParamRole::Trainable:
      srole = sc::Role::Trainable;
      break;
    case ParamRole::OptimizerState:
      srole = sc::Role::OptimizerState;
      break;
    case ParamRole::Gradient:
      srole = sc::Role::Gradient;
      break;
    }
    sc::TensorInit init = sc::TensorInit::Checkpoint;
    switch (pinit) {
    case ParamInit::Checkpoint:
      break;
    case ParamInit::KaimingUniform:
      init = sc::TensorInit::KaimingUniform;
      break;
    case ParamInit::Zeros:
      init = sc::TensorInit::Zeros;
      break;
    case ParamInit::CopyOfOwner:
      init = sc::TensorInit::CopyOfOwner;
      break;
    case ParamInit::Fisher:
      init = sc::TensorInit::Fisher;
      break;
    }
    fb::Offset<sc::QuantInfo> quant = 0;
    if (auto nf4 = dyn_cast<NF4Type>(type))
      quant = sc::CreateQuantInfo(b, sc::QuantFormat::NF4, nf4.getBlockSize(),
                                  nf4.getDoubleQuantBlock(),
                                  nf4.getCodeBytes(), nf4.getScaleBytes());
    ArrayRef<int64_t> shape = shapeOf(type);
    std::vector<int64_t> dims(shape.begin(), shape.end());
    tensors.push_back(sc::CreateTensorDirect(
        b, name.str().c_str(), &dims, *dt, srole, quant,
        of ? of->str().c_str() : nullptr, sc::Storage::Persistent, nullptr,
        init));
    byName[name] = static_cast<uint32_t>(tensors.size() - 1);
    types[name] = type;
    return success();
  }

  /// A name written by lora.assign / lora.reset must be declared by a
  /// lora.param (which says what the tensor is), with the same type.
  LogicalResult persistentForWrite(StringRef name, Type type, Operation *op) {
    if (!byName.count(name))
      return op->emitOpError() << "writes '" << name
                               << "', which no lora.param declares (its role "
                                  "and initialization are unknown)";
    if (types[name] != type)
      return op->emitOpError() << "writes '" << name << "' as " << type
                               << " but it is " << types[name];
    return success();
  }

  uint32_t arenaTensor(Value v, StringRef program, sc::Role role,
                       uint64_t offset, StringRef name = "") {
    Type type = v.getType();
    ArrayRef<int64_t> shape = shapeOf(type);
    std::vector<int64_t> dims(shape.begin(), shape.end());
    sc::Buffer buf(offset, bufferBytes(type));
    uint32_t id = static_cast<uint32_t>(tensors.size());
    tensors.push_back(sc::CreateTensorDirect(
        b, name.empty() ? debugName(v, program, id).c_str() : name.str().c_str(),
        &dims, *dtypeOf(type), role, 0,
        nullptr, sc::Storage::Arena, &buf, sc::TensorInit::None));
    return id;
  }

  FailureOr<uint32_t> kernel(Operation *op) {
    auto dict = op->getAttrOfType<DictionaryAttr>(kKernelAttrName);
    if (!dict)
      return op->emitOpError() << "has no kernel: run lora-lower-to-kernels";
    std::string key;
    llvm::raw_string_ostream os(key);
    dict.print(os);
    auto it = kernelIndex.find(os.str());
    if (it != kernelIndex.end())
      return it->second;
    std::vector<fb::Offset<sc::KernelParam>> params;
    StringRef kind;
    // Generated CUDA (lora-emit-cuda) goes into the Kernel's own fields.
    std::string cudaSource, cudaEntry;
    sc::Dim3 grid(0, 0, 0), block(0, 0, 0);
    uint32_t shared = 0;
    uint64_t workspace = 0;
    ArrayAttr next;
    auto dim3 = [](DenseI64ArrayAttr a) {
      ArrayRef<int64_t> v = a.asArrayRef();
      return sc::Dim3(v.size() > 0 ? v[0] : 1, v.size() > 1 ? v[1] : 1,
                      v.size() > 2 ? v[2] : 1);
    };
    for (NamedAttribute na : dict) {
      StringRef k = na.getName().getValue();
      Attribute v = na.getValue();
      if (k == "kind") {
        kind = cast<StringAttr>(v).getValue();
        continue;
      }
      if (k == "cuda_source") {
        cudaSource = cast<StringAttr>(v).str();
        continue;
      }
      if (k == "cuda_entry") {
        cudaEntry = cast<StringAttr>(v).str();
        continue;
      }
      if (k == "cuda_grid" || k == "cuda_block") {
        (k == "cuda_grid" ? grid : block) = dim3(cast<DenseI64ArrayAttr>(v));
        continue;
      }
      if (k == "cuda_shared") {
        shared = static_cast<uint32_t>(cast<IntegerAttr>(v).getInt());
        continue;
      }
      if (k == "cuda_next") {
        next = cast<ArrayAttr>(v);
        continue;
      }
      if (k == "cuda_workspace") {
        workspace = static_cast<uint64_t>(cast<IntegerAttr>(v).getInt());
        continue;
      }
      fb::Offset<void> value;
      sc::ParamValue vt;
      if (auto i = dyn_cast<IntegerAttr>(v)) {
        value = sc::CreateIntValue(b, i.getInt()).Union();
        vt = sc::ParamValue::IntValue;
      } else if (auto f = dyn_cast<FloatAttr>(v)) {
        value = sc::CreateFloatValue(b, f.getValueAsDouble()).Union();
        vt = sc::ParamValue::FloatValue;
      } else if (auto s = dyn_cast<StringAttr>(v)) {
        value = sc::CreateStringValueDirect(b, s.getValue().str().c_str())
                    .Union();
        vt = sc::ParamValue::StringValue;
      } else {
        return op->emitOpError() << "kernel parameter '" << k
                                 << "' has an unsupported value " << v;
      }
      params.push_back(
          sc::CreateKernelParam(b, b.CreateString(k.str()), vt, value));
    }
    std::string debug = (kind + "_" + std::to_string(kernels.size())).str();
    bool cuda = !cudaSource.empty();
    std::vector<fb::Offset<sc::CudaStep>> steps;
    if (cuda && next)
      for (Attribute a : next) {
        auto d = cast<DictionaryAttr>(a);
        sc::Dim3 g = dim3(d.getAs<DenseI64ArrayAttr>("grid"));
        sc::Dim3 bl = dim3(d.getAs<DenseI64ArrayAttr>("block"));
        steps.push_back(sc::CreateCudaStepDirect(
            b, d.getAs<StringAttr>("entry").str().c_str(), &g, &bl,
            static_cast<uint32_t>(d.getAs<IntegerAttr>("shared").getInt())));
      }
    kernels.push_back(sc::CreateKernelDirect(
        b, kind.str().c_str(), &params, cuda ? cudaSource.c_str() : nullptr,
        cuda ? cudaEntry.c_str() : nullptr, cuda ? &grid : nullptr,
        cuda ? &block : nullptr, shared, debug.c_str(),
        steps.empty() ? nullptr : &steps, cuda ? workspace : 0));
    uint32_t idx = static_cast<uint32_t>(kernels.size() - 1);
    kernelIndex[os.str()] = idx;
    return idx;
  }

  FailureOr<fb::Offset<sc::Program>> program(func::FuncOp fn) {
    StringRef name = fn.getName();
    if (!fn->hasAttr(kArenaSizeAttrName))
      return fn.emitOpError() << "has no memory plan: run lora-plan-memory";
    llvm::DenseMap<Value, uint32_t> ids;
    std::vector<uint32_t> inputs, outputs;
    std::vector<sc::InputPort> inputPorts;
    std::vector<sc::OutputPort> outputPorts;
    for (BlockArgument arg : fn.getArguments()) {
      auto off = fn.getArgAttrOfType<IntegerAttr>(arg.getArgNumber(),
                                                  "lora.offset");
      if (!off)
        return fn.emitOpError() << "input #" << arg.getArgNumber()
                                << " has no arena offset";
      // Inputs are named by what the runtime feeds them ("tokens", ...).
      auto what = fn.getArgAttrOfType<StringAttr>(arg.getArgNumber(),
                                                  kInputAttrName);
      if (!what)
        return fn.emitOpError() << "input #" << arg.getArgNumber()
                                << " has no '" << kInputAttrName
                                << "' naming what the runtime feeds it";
      std::optional<sc::InputPort> port =
          lorart::ParseInputPort(what.getValue().str());
      if (!port)
        return fn.emitOpError()
               << "input #" << arg.getArgNumber() << " is '" << what.getValue()
               << "', which is not an input the runtime "
               << "feeds (" << lorart::PortList(/*inputs=*/true) << ")";
      if (llvm::is_contained(inputPorts, *port))
        return fn.emitOpError() << "has two inputs '" << what.getValue() << "'";
      inputPorts.push_back(*port);
      uint32_t id = arenaTensor(arg, name, sc::Role::Input, off.getInt(),
                                what.getValue());
      ids[arg] = id;
      inputs.push_back(id);
    }
    Operation *ret = fn.getBody().front().getTerminator();
    llvm::DenseMap<Value, std::string> returned;
    for (auto [i, v] : llvm::enumerate(ret->getOperands())) {
      auto what = fn.getResultAttrOfType<StringAttr>(i, kOutputAttrName);
      if (!what)
        return fn.emitOpError() << "result #" << i << " has no '"
                                << kOutputAttrName << "' naming it";
      std::optional<sc::OutputPort> port =
          lorart::ParseOutputPort(what.getValue().str());
      if (!port)
        return fn.emitOpError()
               << "result #" << i << " is '" << what.getValue()
               << "', which is not an output the runtime reads ("
               << lorart::PortList(/*inputs=*/false) << ")";
      if (llvm::is_contained(outputPorts, *port))
        return fn.emitOpError()
               << "has two results '" << what.getValue() << "'";
      outputPorts.push_back(*port);
      returned[v] = what.str();
    }
    std::vector<fb::Offset<sc::Launch>> launches;
    for (Operation &op : fn.getBody().front().without_terminator()) {
      if (auto p = dyn_cast<ParamOp>(op)) {
        ids[p.getResult()] = byName[p.getName()];
        continue;
      }
      std::vector<uint32_t> in, out;
      for (Value v : op.getOperands())
        in.push_back(ids.lookup(v));
      if (op.getNumResults() > 0) {
        auto offs = op.getAttrOfType<DenseI64ArrayAttr>(kOffsetsAttrName);
        if (!offs)
          return op.emitOpError() << "has no arena offsets: run "
                                     "lora-plan-memory";
        for (auto [r, off] : llvm::zip(op.getResults(), offs.asArrayRef())) {
          auto it = returned.find(r);
          uint32_t id = arenaTensor(
              r, name,
              it != returned.end() ? sc::Role::Output : sc::Role::Activation,
              off, it != returned.end() ? StringRef(it->second) : "");
          ids[r] = id;
          out.push_back(id);
        }
      }
      if (auto a = dyn_cast<AssignOp>(op))
        out.push_back(byName[a.getName()]);
      if (auto z = dyn_cast<ResetOp>(op))
        out.push_back(byName[z.getName()]);
      // A gradient bucket's collectives sum its accumulators in place.
      ArrayAttr bucket;
      if (auto st = dyn_cast<GradAllReduceStartOp>(op))
        bucket = st.getNames();
      else if (auto w = dyn_cast<GradAllReduceWaitOp>(op))
        bucket = w.getNames();
      for (Attribute a : bucket ? bucket.getValue() : ArrayRef<Attribute>()) {
        StringRef n = cast<StringAttr>(a).getValue();
        auto it = byName.find(n);
        if (it == byName.end())
          return op.emitOpError()
                 << "names '" << n << "', which no lora.param declares";
        out.push_back(it->second);
      }
      FailureOr<uint32_t> k = kernel(&op);
      if (failed(k))
        return failure();
      uint64_t wsOffset = 0;
      if (auto ws = op.getAttrOfType<IntegerAttr>(kWorkspaceAttrName))
        wsOffset = static_cast<uint64_t>(ws.getInt());
      else if (auto kd = op.getAttrOfType<DictionaryAttr>(kKernelAttrName);
               kd && kd.get("cuda_workspace"))
        return op.emitOpError() << "needs a CUDA workspace but has no "
                                   "lora.workspace offset: run lora-plan-memory";
      launches.push_back(sc::CreateLaunchDirect(
          b, *k, &in, &out, op.hasAttr(kRecomputeAttrName), wsOffset));
    }
    for (Value v : ret->getOperands())
      outputs.push_back(ids.lookup(v));
    return sc::CreateProgramDirect(b, name.str().c_str(), &inputs, &outputs,
                                   &launches, &inputPorts, &outputPorts);
  }

  FailureOr<fb::Offset<sc::ModelConfig>> modelConfig() {
    auto cfg = module->getAttrOfType<DictionaryAttr>(kModelConfigAttrName);
    if (!cfg)
      return module.emitError() << "module has no '" << kModelConfigAttrName
                                << "'";
    auto i = [&](StringRef k, int64_t d = 0) {
      auto a = cfg.getAs<IntegerAttr>(k);
      return a ? a.getInt() : d;
    };
    auto f = [&](StringRef k, double d) {
      auto a = cfg.getAs<FloatAttr>(k);
      return a ? a.getValueAsDouble() : d;
    };
    auto bl = [&](StringRef k) {
      auto a = cfg.getAs<BoolAttr>(k);
      return a && a.getValue();
    };
    // RoPE scaling is on the rope ops, not in the dictionary.
    fb::Offset<sc::RopeScaling> scaling = 0;
    module.walk([&](RopeOp op) {
      if (auto s = op.getScalingAttr(); s && scaling.IsNull())
        scaling = sc::CreateRopeScaling(
            b,
            s.getKind() == RopeScalingKind::Llama3
                ? sc::RopeScalingKind::Llama3
                : sc::RopeScalingKind::Linear,
            s.getFactor().convertToDouble(),
            s.getLowFreqFactor().convertToDouble(),
            s.getHighFreqFactor().convertToDouble(),
            s.getOriginalMaxPositionEmbeddings());
    });
    std::string arch;
    if (auto a = cfg.getAs<StringAttr>("architecture"))
      arch = a.str();
    std::vector<int64_t> eos;
    if (cfg.get("eos_token_id"))
      eos.push_back(i("eos_token_id"));
    bool attnBias = bl("attention_bias");
    return sc::CreateModelConfigDirect(
        b, arch.c_str(), i("hidden_size"), i("intermediate_size"),
        i("num_hidden_layers"), i("num_attention_heads"),
        i("num_key_value_heads"), i("head_dim"), i("vocab_size"),
        f("rms_norm_eps", 1e-6), f("rope_theta", 10000.0), scaling,
        bl("tie_word_embeddings"), attnBias, i("sliding_window"),
        i("max_position_embeddings"), i("bos_token_id", -1), &eos,
        attnBias && arch == "LlamaForCausalLM", false, -1);
  }

  fb::Offset<sc::LoraConfig> loraConfig() {
    auto cfg = module->getAttrOfType<DictionaryAttr>(kAdapterConfigAttrName);
    if (!cfg)
      return 0;
    std::vector<std::string> targets;
    if (auto t = cfg.getAs<ArrayAttr>("target_modules"))
      for (Attribute a : t)
        targets.push_back(cast<StringAttr>(a).str());
    std::vector<int32_t> layers;
    if (auto l = cfg.getAs<DenseI64ArrayAttr>("layers_to_transform"))
      for (int64_t x : l.asArrayRef())
        layers.push_back(static_cast<int32_t>(x));
    std::string regex;
    if (auto r = cfg.getAs<StringAttr>("target_regex"))
      regex = r.str();
    auto tm = b.CreateVectorOfStrings(targets);
    auto ls = b.CreateVector(layers);
    auto rx = regex.empty() ? 0 : b.CreateString(regex);
    return sc::CreateLoraConfig(
        b, cfg.getAs<IntegerAttr>("r").getInt(),
        cfg.getAs<FloatAttr>("lora_alpha").getValueAsDouble(),
        cfg.getAs<FloatAttr>("lora_dropout").getValueAsDouble(), tm, rx, ls);
  }

  ModuleOp module;
  const PlanOptions &opts;
  fb::FlatBufferBuilder b{1 << 20};
  std::vector<fb::Offset<sc::Tensor>> tensors;
  std::vector<fb::Offset<sc::Kernel>> kernels;
  std::map<std::string, uint32_t> kernelIndex;
  llvm::StringMap<uint32_t> byName;
  llvm::StringMap<Type> types;
};

} // namespace

FailureOr<std::string> mlir::lora::serializePlan(ModuleOp module,
                                                 const PlanOptions &opts) {
  return Writer(module, opts).run();
}
