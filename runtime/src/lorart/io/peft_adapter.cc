#include "lorart/io/peft_adapter.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "lorart/cpu/kernel.h"
#include "lorart/io/files.h"
#include "lorart/io/hf_config.h"
#include "lorart/io/json.h"
#include "lorart/io/mapped_file.h"
#include "lorart/io/safetensors.h"
#include "lorart/io/safetensors_write.h"

namespace lorart {

using cpu::TensorView;
using schema::Role;

namespace {

// The module of a PEFT tensor name "base_model.model.<module>.lora_A.weight"
// (or lora_B), or "" for any other name.
std::string ModuleOf(const std::string& name) {
  static constexpr char kPrefix[] = "base_model.model.";
  static constexpr size_t kPrefixLen = sizeof kPrefix - 1, kSuffixLen = sizeof ".lora_A.weight" - 1;
  if (name.rfind(kPrefix, 0) != 0 || name.size() <= kPrefixLen + kSuffixLen) return "";
  const std::string tail = name.substr(name.size() - kSuffixLen);
  if (tail != ".lora_A.weight" && tail != ".lora_B.weight") return "";
  return name.substr(kPrefixLen, name.size() - kPrefixLen - kSuffixLen);
}

// The directory's adapter_config.json describes the adapter the plan trains:
// the same r and lora_alpha (so the same scaling), no option lorac does not
// implement (hf::ParsePeftAdapterConfig refuses DoRA, rsLoRA, per-module
// patterns, ...), every module the plan adapts targeted (PEFT would not load
// the others), and no LoRA tensor in the file that the plan has no place for.
// Otherwise the adapter would be applied with another meaning than the one
// it was trained with.
Status CheckAdapterMatchesPlan(const Plan& plan, const std::string& dir,
                               const SafetensorsHeader& header, const std::string& path) {
  const schema::LoraConfig* lora = plan.lora();
  if (!lora)
    return InvalidArgumentError(StrFormat(
        "%s: this plan trains no adapter (full fine-tuning): it cannot load a LoRA adapter",
        dir.c_str()));
  const std::string cfg_path = dir + "/adapter_config.json";
  LORA_ASSIGN_OR_RETURN(hf::LoraOptions o, hf::ParsePeftAdapterConfig(cfg_path));
  const std::string recompile =
      " (recompile the plan for this adapter: lorac compile --adapter-config " + cfg_path + ")";
  if (o.rank != static_cast<int64_t>(lora->r()))
    return InvalidArgumentError(StrFormat("%s: r is %lld, but the plan was compiled for r = %u%s",
                                          cfg_path.c_str(), static_cast<long long>(o.rank),
                                          lora->r(), recompile.c_str()));
  if (std::fabs(o.alpha - lora->alpha()) > 1e-9 * std::fabs(lora->alpha()))
    return InvalidArgumentError(StrFormat(
        "%s: lora_alpha is %g, but the plan was compiled for lora_alpha %g: the adapter would be "
        "scaled by %g instead of %g%s",
        cfg_path.c_str(), o.alpha, lora->alpha(), lora->alpha() / lora->r(),
        o.alpha / static_cast<double>(o.rank), recompile.c_str()));
  LORA_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(cfg_path));
  Json json;
  LORA_RETURN_IF_ERROR(ParseJson(text, cfg_path, "adapter config", &json));
  LORA_ASSIGN_OR_RETURN(hf::TargetRule rule, hf::ReadPeftTargets(json, cfg_path));
  std::set<std::string> trained;
  for (uint32_t id = 0; id < plan.num_tensors(); ++id) {
    const schema::Tensor& t = plan.tensor(id);
    if (t.role() != Role::Trainable) continue;
    const std::string name = t.name()->str();
    trained.insert(name);
    const std::string module = ModuleOf(name);
    if (!module.empty() && !rule.Matches(module))
      return InvalidArgumentError(StrFormat(
          "%s: module '%s' is not targeted by it (%s), but the plan adapts it: PEFT would load "
          "this adapter without it%s",
          cfg_path.c_str(), module.c_str(), rule.Describe().c_str(), recompile.c_str()));
  }
  for (const TensorInfo& t : header.tensors)
    if (!trained.count(t.name))
      return InvalidArgumentError(StrFormat(
          "%s: tensor '%s' is not one this plan trains: loading the adapter without it would "
          "change the model%s",
          path.c_str(), t.name.c_str(), recompile.c_str()));
  return OkStatus();
}

}  // namespace

Status LoadAdapter(Session* session, const std::string& dir) {
  const Plan& plan = session->plan();
  std::string path = dir + "/adapter_model.safetensors";
  SafetensorsHeader header;
  LORA_RETURN_IF_ERROR(ReadSafetensorsHeader(path, &header));
  LORA_RETURN_IF_ERROR(CheckAdapterMatchesPlan(plan, dir, header, path));
  MappedFile file;
  LORA_RETURN_IF_ERROR(file.Open(path));
  for (uint32_t id = 0; id < plan.num_tensors(); ++id) {
    const schema::Tensor& t = plan.tensor(id);
    if (t.role() != Role::Trainable) continue;
    std::string name = t.name()->str();
    const TensorInfo* info = header.Find(name);
    if (!info)
      return NotFoundError(StrFormat("%s: no tensor '%s' (the adapter does not match this "
                                     "plan's targets)",
                                     path.c_str(), name.c_str()));
    // Trainable tensors are persistent and named (the plan loader checks).
    const TensorView* v = session->FindPersistent(name);
    if (!v) return InternalError(StrFormat("trainable tensor '%s' is not bound", name.c_str()));
    if (info->shape != v->shape)
      return InvalidArgumentError(StrFormat("%s: tensor '%s' has shape %s, the plan needs %s "
                                            "(a different rank or model?)",
                                            path.c_str(), name.c_str(),
                                            ShapeToString(info->shape).c_str(),
                                            ShapeToString(v->shape).c_str()));
    std::vector<float> tmp(static_cast<size_t>(v->numel()));
    LORA_RETURN_IF_ERROR(DecodeFloats(info->dtype,
                                      file.data() + header.DataOffset() + info->begin,
                                      v->numel(), tmp.data(), path + ": '" + name + "'"));
    LORA_RETURN_IF_ERROR(session->SetTrainable(name, tmp.data(), v->numel()));
  }
  return OkStatus();
}

Status SaveAdapter(const Session& session, const std::string& dir,
                   const std::string& base_model) {
  const Plan& plan = session.plan();
  const schema::LoraConfig* lora = plan.lora();
  if (!lora)
    return InvalidArgumentError("this plan trains no adapter (full fine-tuning): there is no "
                                "adapter to save");
  LORA_RETURN_IF_ERROR(session.SyncHost());
  LORA_RETURN_IF_ERROR(MakeDirs(dir));
  std::vector<TensorToWrite> tensors;
  for (uint32_t id = 0; id < plan.num_tensors(); ++id) {
    const schema::Tensor& t = plan.tensor(id);
    if (t.role() != Role::Trainable) continue;
    std::string name = t.name()->str();
    const TensorView* v = session.FindPersistent(name);
    if (!v) return InternalError(StrFormat("trainable tensor '%s' is not bound", name.c_str()));
    const TensorView* master = session.FindMaster(name);
    TensorToWrite w;
    w.name = name;
    w.shape = v->shape;
    if (master) {
      w.dtype = lorart::DType::kF32;
      w.data = master->data;
    } else {
      w.dtype = SafetensorsDType(v->dtype);
      w.data = v->data;
    }
    tensors.push_back(w);
  }
  LORA_RETURN_IF_ERROR(WriteSafetensors(dir + "/adapter_model.safetensors", tensors,
                                        AdapterMetadata(plan)));
  // Only keys every PEFT release since 0.4 reads: newer flags (use_rslora,
  // use_dora, rank_pattern, ...) are left out and take their defaults, so
  // older PEFT versions, which reject unknown keys, load the adapter too.
  nlohmann::ordered_json cfg;
  cfg["auto_mapping"] = nullptr;
  cfg["base_model_name_or_path"] = base_model;
  cfg["bias"] = "none";
  cfg["fan_in_fan_out"] = false;
  cfg["inference_mode"] = true;
  cfg["init_lora_weights"] = true;
  cfg["layers_pattern"] = nullptr;
  if (lora->layers_to_transform() && lora->layers_to_transform()->size() > 0) {
    std::vector<int> layers(lora->layers_to_transform()->begin(),
                            lora->layers_to_transform()->end());
    cfg["layers_to_transform"] = layers;
    cfg["layers_pattern"] = "layers";
  } else {
    cfg["layers_to_transform"] = nullptr;
  }
  cfg["lora_alpha"] = lora->alpha();
  cfg["lora_dropout"] = lora->dropout();
  cfg["modules_to_save"] = nullptr;
  cfg["peft_type"] = "LORA";
  cfg["r"] = lora->r();
  cfg["revision"] = nullptr;
  if (lora->target_regex() && lora->target_regex()->size() > 0) {
    cfg["target_modules"] = lora->target_regex()->str();
  } else {
    std::vector<std::string> targets;
    if (lora->target_modules())
      for (const flatbuffers::String* s : *lora->target_modules()) targets.push_back(s->str());
    cfg["target_modules"] = targets;
  }
  cfg["task_type"] = "CAUSAL_LM";
  return WriteFileAtomically(dir + "/adapter_config.json", cfg.dump(2) + "\n");
}

std::map<std::string, std::string> AdapterMetadata(const Plan& plan) {
  // PEFT reads only "format"; the rest says which base weights the adapter
  // was trained against, for `lorart merge`.
  std::map<std::string, std::string> meta = {{"format", "pt"}};
  std::string names;
  int64_t block = 0, dq = 0;
  for (uint32_t id = 0; id < plan.num_tensors(); ++id) {
    const schema::Tensor& t = plan.tensor(id);
    if (t.dtype() != schema::DType::NF4 || !t.name()) continue;
    names += (names.empty() ? "" : ",") + t.name()->str();
    // The tensor's NF4 layout, as Session's views hold it (0 without one).
    block = t.quant() ? t.quant()->block_size() : 0;
    dq = t.quant() ? t.quant()->double_quant_block() : 0;
  }
  if (!names.empty()) {
    meta["lorac.base_quantization"] = "nf4";
    meta["lorac.nf4_block_size"] = std::to_string(block);
    meta["lorac.nf4_double_quant_block"] = std::to_string(dq);
    meta["lorac.nf4_tensors"] = names;
  }
  return meta;
}

}  // namespace lorart
