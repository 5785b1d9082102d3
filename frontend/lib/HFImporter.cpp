//===- HFImporter.cpp - Hugging Face model -> lora dialect ----------------===//
#include "lora/Frontend/HFImporter.h"

#include "lora/Dialect/Lora/IR/LoraOps.h"
#include "lora/Transforms/Passes.h"
#include "lorart/io/hf_layout.h"
#include "lorart/io/safetensors.h"
#include "lorart/plan/ports.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"

#include <map>
#include <optional>
#include <set>

using namespace mlir;
using namespace mlir::lora;
using llvm::Expected;
using lorart::schema::InputPort;

namespace mlir::lora::frontend {

namespace {

llvm::Error fail(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg.str());
}

std::string shapeStr(llvm::ArrayRef<int64_t> shape) {
  return "[" +
         llvm::join(llvm::map_range(shape,
                                    [](int64_t d) { return std::to_string(d); }),
                    ", ") +
         "]";
}

/// Builds the IR of one model; keeps the builder state in one place.
class GraphBuilder {
public:
  GraphBuilder(MLIRContext &ctx, const ModelConfig &c, Type computeType)
      : ctx(ctx), c(c), b(&ctx), elt(computeType),
        fileLoc(FileLineColLoc::get(&ctx, c.path, 1, 1)) {}

  OwningOpRef<ModuleOp> build() {
    OwningOpRef<ModuleOp> module = ModuleOp::create(fileLoc);
    (*module)->setAttr(kModelConfigAttrName, configAttr());
    b.setInsertionPointToEnd(module->getBody());

    const int64_t dyn = ShapedType::kDynamic;
    auto ids = RankedTensorType::get({dyn, dyn}, b.getI32Type());
    auto logits = RankedTensorType::get({dyn, dyn, c.vocabSize}, b.getF32Type());
    auto fn = b.create<func::FuncOp>(fileLoc, "forward",
                                     b.getFunctionType({ids, ids}, {logits}));
    fn.setArgAttr(0, kInputAttrName, b.getStringAttr(lorart::PortName(InputPort::Tokens)));
    fn.setArgAttr(1, kInputAttrName, b.getStringAttr(lorart::PortName(InputPort::Positions)));
    Block *entry = fn.addEntryBlock();
    b.setInsertionPointToStart(entry);
    Value tokens = entry->getArgument(0), positions = entry->getArgument(1);

    const int64_t D = c.hiddenSize, I = c.intermediateSize, V = c.vocabSize;
    const int64_t qDim = c.numAttentionHeads * c.headDim;
    const int64_t kvDim = c.numKeyValueHeads * c.headDim;

    Value embed = param("model.embed_tokens.weight", {V, D});
    Value h = b.create<EmbeddingOp>(loc("model.embed_tokens"), act(D), embed,
                                    tokens);
    for (int64_t i = 0; i < c.numHiddenLayers; ++i) {
      std::string p = "model.layers." + std::to_string(i) + ".";
      Value x = norm(p + "input_layernorm", h);
      Value q = linear(p + "self_attn.q_proj", x, qDim, D, c.attentionBias);
      Value k = linear(p + "self_attn.k_proj", x, kvDim, D, c.attentionBias);
      Value v = linear(p + "self_attn.v_proj", x, kvDim, D, c.attentionBias);
      if (c.qkNorm) { // Qwen3: RMSNorm over each head, then RoPE
        q = headNorm(p + "self_attn.q_norm", q);
        k = headNorm(p + "self_attn.k_norm", k);
      }
      q = rope(p + "self_attn.q_rope", q, positions, qDim);
      k = rope(p + "self_attn.k_rope", k, positions, kvDim);
      Value a = b.create<AttentionOp>(
          loc(p + "self_attn"), act(qDim), q, k, v, /*segment_ids=*/Value(),
          b.getI64IntegerAttr(c.numAttentionHeads),
          b.getI64IntegerAttr(c.numKeyValueHeads),
          b.getI64IntegerAttr(c.headDim), /*scale=*/FloatAttr(),
          c.slidingWindow ? b.getI64IntegerAttr(*c.slidingWindow)
                          : IntegerAttr());
      Value o = linear(p + "self_attn.o_proj", a, D, qDim, c.outputBias);
      h = b.create<AddOp>(loc(p + "residual.0"), act(D), h, o);
      x = norm(p + "post_attention_layernorm", h);
      Value g = linear(p + "mlp.gate_proj", x, I, D, c.mlpBias);
      Value u = linear(p + "mlp.up_proj", x, I, D, c.mlpBias);
      Value s = b.create<SwiGLUOp>(loc(p + "mlp.act_fn"), act(I), g, u);
      Value d = linear(p + "mlp.down_proj", s, D, I, c.mlpBias);
      h = b.create<AddOp>(loc(p + "residual.1"), act(D), h, d);
    }
    h = norm("model.norm", h);
    Value head =
        c.tieWordEmbeddings ? embed : param("lm_head.weight", {V, D});
    Value out = b.create<LMHeadOp>(loc("lm_head"), logits, h, head);
    b.create<func::ReturnOp>(fileLoc, out);
    return module;
  }

private:
  Location loc(const std::string &name) {
    return NameLoc::get(b.getStringAttr(name), fileLoc);
  }
  RankedTensorType act(int64_t features) {
    return RankedTensorType::get(
        {ShapedType::kDynamic, ShapedType::kDynamic, features}, elt);
  }
  Value param(const std::string &name, llvm::ArrayRef<int64_t> shape) {
    return b.create<ParamOp>(loc(name), RankedTensorType::get(shape, elt),
                             name, ParamRole::Frozen);
  }
  Value norm(const std::string &module, Value x) {
    Value w = param(module + ".weight", {c.hiddenSize});
    return b.create<RMSNormOp>(loc(module), x.getType(), x, w,
                               b.getF64FloatAttr(c.rmsNormEps));
  }
  /// RMSNorm of each head_dim group of x's features, one [head_dim] scale.
  Value headNorm(const std::string &module, Value x) {
    Value w = param(module + ".weight", {c.headDim});
    return b.create<RMSNormOp>(loc(module), x.getType(), x, w,
                               b.getF64FloatAttr(c.rmsNormEps));
  }
  Value linear(const std::string &module, Value x, int64_t out, int64_t in,
               bool bias) {
    Value w = param(module + ".weight", {out, in});
    Value bv = bias ? param(module + ".bias", {out}) : Value();
    return b.create<LinearOp>(loc(module), act(out), x, w, bv);
  }
  Value rope(const std::string &name, Value x, Value positions,
             int64_t features) {
    RopeScalingAttr scaling;
    if (c.ropeScaling) {
      const RopeScaling &rs = *c.ropeScaling;
      scaling = RopeScalingAttr::get(
          &ctx,
          rs.type == "llama3" ? RopeScalingKind::Llama3
                              : RopeScalingKind::Linear,
          rs.factor, rs.lowFreqFactor, rs.highFreqFactor,
          rs.originalMaxPositionEmbeddings);
    }
    return b.create<RopeOp>(loc(name), act(features), x, positions,
                            b.getI64IntegerAttr(c.headDim),
                            b.getF64FloatAttr(c.ropeTheta), scaling);
  }
  DictionaryAttr configAttr() {
    SmallVector<NamedAttribute> a;
    auto i64 = [&](const char *k, int64_t v) {
      a.push_back(b.getNamedAttr(k, b.getI64IntegerAttr(v)));
    };
    a.push_back(b.getNamedAttr(
        "architecture", b.getStringAttr(architectureName(c.architecture))));
    i64("hidden_size", c.hiddenSize);
    i64("intermediate_size", c.intermediateSize);
    i64("num_hidden_layers", c.numHiddenLayers);
    i64("num_attention_heads", c.numAttentionHeads);
    i64("num_key_value_heads", c.numKeyValueHeads);
    i64("head_dim", c.headDim);
    i64("vocab_size", c.vocabSize);
    a.push_back(b.getNamedAttr("rms_norm_eps", b.getF64FloatAttr(c.rmsNormEps)));
    a.push_back(b.getNamedAttr("rope_theta", b.getF64FloatAttr(c.ropeTheta)));
    a.push_back(b.getNamedAttr("tie_word_embeddings",
                               b.getBoolAttr(c.tieWordEmbeddings)));
    a.push_back(
        b.getNamedAttr("attention_bias", b.getBoolAttr(c.attentionBias)));
    if (c.slidingWindow)
      i64("sliding_window", *c.slidingWindow);
    if (c.maxPositionEmbeddings)
      i64("max_position_embeddings", *c.maxPositionEmbeddings);
    if (c.bosTokenId)
      i64("bos_token_id", *c.bosTokenId);
    if (c.eosTokenId)
      i64("eos_token_id", *c.eosTokenId);
    if (!c.torchDtype.empty())
      a.push_back(b.getNamedAttr("torch_dtype", b.getStringAttr(c.torchDtype)));
    return b.getDictionaryAttr(a);
  }

  MLIRContext &ctx;
  const ModelConfig &c;
  OpBuilder b;
  Type elt;
  Location fileLoc;
};

/// Checks the safetensors headers of `dir` against the config.
llvm::Error checkWeights(const std::string &dir, const ModelConfig &config,
                         ImportInfo &info) {
  lorart::SafetensorsModel model;
  lorart::Status st = lorart::OpenSafetensorsModelHeaders(dir, &model);
  if (!st.ok())
    return fail(st.message());
  info.haveWeights = true;
  info.numShards = model.shards.size();
  info.numTensors = model.by_name.size();

  std::string where = model.shards.size() == 1
                          ? model.shards[0].path
                          : (llvm::Twine(dir) + "/model.safetensors.index.json")
                                .str();
  std::set<std::string> expectedNames;
  for (const ExpectedTensor &t : expectedTensors(config)) {
    expectedNames.insert(t.name);
    const lorart::SafetensorsHeader *shard = nullptr;
    const lorart::TensorInfo *ti = model.Find(t.name, &shard);
    if (!ti)
      return fail(llvm::formatv("{0}: missing tensor '{1}' (required by {2})",
                                where, t.name, config.path));
    if (ti->shape != t.shape)
      return fail(llvm::formatv(
          "{0}: tensor '{1}' has shape {2} but {3} implies {4}", shard->path,
          t.name, shapeStr(ti->shape), config.path, shapeStr(t.shape)));
    if (!lorart::IsFloatDType(ti->dtype) ||
        lorart::DTypeSize(ti->dtype) < 2)
      return fail(llvm::formatv("{0}: tensor '{1}' has dtype {2}; lorac "
                                "imports floating-point checkpoints (BF16, "
                                "F16, F32)",
                                shard->path, t.name,
                                lorart::DTypeName(ti->dtype)));
  }
  for (const auto &[name, loc] : model.by_name) {
    if (expectedNames.count(name) || llvm::StringRef(name).ends_with(
                                         "rotary_emb.inv_freq"))
      continue;
    if (name == "lm_head.weight" && config.tieWordEmbeddings)
      continue; // some tied checkpoints store the copy too
    info.warnings.push_back(llvm::formatv("{0}: tensor '{1}' is not used by "
                                          "{2} and is ignored",
                                          model.shards[loc.first].path, name,
                                          architectureName(config.architecture)));
  }
  return llvm::Error::success();
}

/// The plain files of a directory, sorted.
std::vector<std::string> listFiles(const std::string &dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(dir, ec), end; it != end && !ec;
       it.increment(ec))
    if (llvm::sys::fs::is_regular_file(it->path()))
      names.push_back(llvm::sys::path::filename(it->path()).str());
  llvm::sort(names);
  return names;
}

bool isTokenizerFile(llvm::StringRef name) {
  return llvm::is_contained({"tokenizer.json", "tokenizer.model",
                             "tokenizer_config.json", "special_tokens_map.json",
                             "added_tokens.json", "vocab.json", "merges.txt",
                             "chat_template.jinja", "chat_template.json"},
                            name);
}

bool isWeightFile(llvm::StringRef name) {
  return name.ends_with(".safetensors") || name.ends_with(".bin") ||
         name.ends_with(".pth") || name.ends_with(".pt") ||
         name.ends_with(".gguf");
}

std::string joinNames(const std::vector<std::string> &names,
                      size_t most = 4) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < most; ++i)
    s += (i ? ", " : "") + names[i];
  if (names.size() > most)
    s += llvm::formatv(", and {0} more", names.size() - most).str();
  return s;
}

/// Why a directory without config.json cannot be imported, and what would
/// work instead.
std::string missingConfigMessage(const std::string &dir) {
  std::string head = dir + ": no config.json in this directory";
  const char *want = "give a Hugging Face model directory (config.json with "
                     "model.safetensors, or sharded safetensors with "
                     "model.safetensors.index.json) or a bare config.json";
  std::vector<std::string> files = listFiles(dir);
  if (files.empty())
    return head + " (it is empty); " + want;
  if (llvm::is_contained(files, "adapter_config.json"))
    return head + ": it holds a PEFT adapter (adapter_config.json); give the "
                  "base model's directory, with --adapter-config " +
           dir + "/adapter_config.json for the adapter's LoRA options";
  std::vector<std::string> tokenizer, weights;
  for (const std::string &f : files) {
    if (isTokenizerFile(f))
      tokenizer.push_back(f);
    if (isWeightFile(f))
      weights.push_back(f);
  }
  if (!weights.empty())
    return head + " next to " + joinNames(weights) +
           ": lorac needs the config.json that came with these weights";
  if (!tokenizer.empty() && tokenizer.size() == files.size())
    return head + ": it holds only tokenizer files (" + joinNames(tokenizer) +
           "); " + want;
  return head + " (it has " + joinNames(files) + "); " + want;
}

/// Weights in a directory that lorac cannot check: an error when they look
/// like a broken safetensors checkpoint, a warning when they are in another
/// format (the import then plans the model from config.json alone).
llvm::Error checkUnusableWeights(const std::string &dir, ImportInfo &info) {
  std::vector<std::string> shards, other;
  for (const std::string &f : listFiles(dir)) {
    llvm::StringRef name(f);
    if (name.starts_with("model-") && name.ends_with(".safetensors"))
      shards.push_back(f);
    else if (isWeightFile(name))
      other.push_back(f);
  }
  if (!shards.empty())
    return fail(dir + ": found " + joinNames(shards) +
                " but no model.safetensors.index.json, which names the "
                "shard of every tensor; copy it from the model's repository");
  if (!other.empty())
    info.warnings.push_back(
        dir + ": no model.safetensors or model.safetensors.index.json (found " +
        joinNames(other) +
        "): the weights were not checked against config.json, and lorart "
        "reads Hugging Face safetensors only (convert them with "
        "save_pretrained(DIR, safe_serialization=True))");
  return llvm::Error::success();
}

/// A file given where a config.json is expected: name what it is instead.
std::optional<std::string> notAConfig(const std::string &path) {
  llvm::StringRef name = llvm::sys::path::filename(path);
  std::string parent = llvm::sys::path::parent_path(path).str();
  if (parent.empty())
    parent = ".";
  if (isWeightFile(name))
    return path + ": a weights file, not a config.json; give its directory (" +
           parent + ", which needs config.json) or the config.json";
  if (name == "adapter_config.json")
    return path + ": a PEFT adapter config, not a model config.json; give "
                  "the base model (directory or config.json) and this file "
                  "with --adapter-config";
  if (isTokenizerFile(name) || name == "generation_config.json")
    return path + ": not a model config.json; give the model directory or "
                  "its config.json";
  return std::nullopt;
}

/// Collects diagnostics into one line for an llvm::Error.
struct DiagnosticCollector {
  explicit DiagnosticCollector(MLIRContext &ctx)
      : handler(&ctx, [this](Diagnostic &d) {
          if (d.getSeverity() != DiagnosticSeverity::Error)
            return success();
          std::string s;
          llvm::raw_string_ostream os(s);
          if (auto fl = dyn_cast<FileLineColLoc>(d.getLocation()))
            os << fl.getFilename().getValue() << ": ";
          else if (auto nl = dyn_cast<NameLoc>(d.getLocation()))
            os << nl.getName().getValue() << ": ";
          os << d.str();
          if (messages.empty())
            messages = os.str();
          return success();
        }) {}
  ScopedDiagnosticHandler handler;
  std::string messages;
};

} // namespace

std::vector<ExpectedTensor> expectedTensors(const ModelConfig &c) {
  std::vector<ExpectedTensor> t;
  for (const lorart::HfTensorSpec &spec :
       lorart::LlamaFamilyTensors(c))
    t.push_back({spec.name, spec.shape});
  return t;
}

OwningOpRef<ModuleOp> buildForwardGraph(MLIRContext &context,
                                        const ModelConfig &config,
                                        Type computeType) {
  context.loadDialect<LoraDialect, func::FuncDialect>();
  return GraphBuilder(context, config, computeType).build();
}

Expected<OwningOpRef<ModuleOp>> importModel(MLIRContext &context,
                                            const ImportOptions &options,
                                            ImportInfo *infoOut) {
  ImportInfo info;
  std::string dir;
  if (llvm::sys::fs::is_directory(options.input)) {
    dir = options.input;
    info.configPath = (llvm::Twine(dir) + "/config.json").str();
    if (!llvm::sys::fs::exists(info.configPath))
      return fail(missingConfigMessage(dir));
  } else if (llvm::sys::fs::exists(options.input)) {
    if (std::optional<std::string> msg = notAConfig(options.input))
      return fail(*msg);
    info.configPath = options.input; // a bare config.json
  } else {
    return fail(options.input + ": no such file or directory");
  }

  Type elt;
  Builder tb(&context);
  if (options.dtype == "bf16")
    elt = tb.getBF16Type();
  else if (options.dtype == "f16")
    elt = tb.getF16Type();
  else if (options.dtype == "f32")
    elt = tb.getF32Type();
  else
    return fail("--dtype: '" + options.dtype +
                "' is not one of bf16, f16, f32");

  Expected<ModelConfig> config = parseModelConfig(info.configPath);
  if (!config)
    return config.takeError();

  // A directory without weights is a plan-only import, like a bare config.
  if (!dir.empty()) {
    bool single = llvm::sys::fs::exists(dir + "/model.safetensors");
    bool sharded =
        llvm::sys::fs::exists(dir + "/model.safetensors.index.json");
    if (single || sharded) {
      if (llvm::Error e = checkWeights(dir, *config, info))
        return e;
    } else if (llvm::Error e = checkUnusableWeights(dir, info)) {
      return e;
    }
  }

  OwningOpRef<ModuleOp> module = buildForwardGraph(context, *config, elt);
  DiagnosticCollector diags(context);
  if (failed(verify(*module)))
    return fail("internal error: the imported module does not verify: " +
                diags.messages);

  if (options.lora) {
    const LoraOptions &lo = *options.lora;
    AttachAdaptersOptions po;
    po.targets = lo.targets;
    po.targetRegex = lo.targetRegex;
    po.rank = lo.rank;
    po.alpha = lo.alpha;
    po.dropout = lo.dropout;
    po.layers = lo.layers;
    PassManager pm(&context);
    pm.addPass(createAttachAdapters(po));
    if (failed(pm.run(*module)))
      return fail("LoRA: " + diags.messages);
  }
  if (infoOut)
    *infoOut = std::move(info);
  return module;
}

} // namespace mlir::lora::frontend
