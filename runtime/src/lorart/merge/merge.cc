#include "lorart/merge/merge.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <vector>

#include "lorart/base/strings.h"
#include "lorart/cpu/kernel.h"
#include "lorart/exec/feed.h"
#include "lorart/exec/session.h"
#include "lorart/io/files.h"
#include "lorart/io/hf_config.h"
#include "lorart/io/hf_layout.h"
#include "lorart/io/json.h"
#include "lorart/io/mapped_file.h"
#include "lorart/io/peft_adapter.h"
#include "lorart/io/safetensors.h"
#include "lorart/io/safetensors_write.h"
#include "lorart/quant/nf4.h"

namespace lorart {

namespace {

constexpr char kPrefix[] = "base_model.model.";

// A boolean field of a PEFT config: false when absent or null.
bool Flag(const Json& c, const char* key) {
  return c.contains(key) && c[key].is_boolean() && c[key].get<bool>();
}

// A PEFT LoRA adapter directory: its config and its A/B pairs by module.
struct Adapter {
  std::string dir, path;
  Json config;
  int64_t r = 0;
  double alpha = 0, scaling = 0;
  SafetensorsHeader header;
  MappedFile file;
  struct Pair {
    const TensorInfo* a = nullptr;
    const TensorInfo* b = nullptr;
  };
  std::map<std::string, Pair> modules;  // "model.layers.0.self_attn.q_proj" -> A, B

  // Decoded float values of a tensor of the adapter.
  // The values of one tensor; a NaN or Inf is an error (it would go into
  // every merged weight).
  Status Floats(const TensorInfo& t, std::vector<float>* out) const {
    out->resize(static_cast<size_t>(t.NumElements()));
    const std::string what = path + ": '" + t.name + "'";
    LORA_RETURN_IF_ERROR(DecodeFloats(t.dtype, file.data() + header.DataOffset() + t.begin,
                                      t.NumElements(), out->data(), what));
    return CheckFiniteValues(out->data(), t.NumElements(), what,
                             " (was the adapter trained to NaN?)");
  }
};

// Every module of the safetensors must be one adapter_config.json targets
// (target_modules as PEFT matches them, and layers_to_transform): PEFT loads
// only those, so folding others would give a model the adapter never meant.
Status CheckTargeted(const Adapter& a, const std::string& cfg_path) {
  LORA_ASSIGN_OR_RETURN(hf::TargetRule rule, hf::ReadPeftTargets(a.config, cfg_path));
  for (const auto& [module, p] : a.modules)
    if (!rule.Matches(module))
      return InvalidArgumentError(StrFormat(
          "%s: module '%s' is not targeted by %s (%s): PEFT would not load its weights, so they "
          "are not merged either; fix the adapter's files",
          a.path.c_str(), module.c_str(), cfg_path.c_str(), rule.Describe().c_str()));
  return OkStatus();
}

Status OpenAdapter(const std::string& dir, Adapter* a) {
  a->dir = dir;
  std::string cfg_path = dir + "/adapter_config.json";
  LORA_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(cfg_path));
  LORA_RETURN_IF_ERROR(ParseJson(text, cfg_path, "adapter config", &a->config));
  const Json& c = a->config;
  if (!c.is_object()) return InvalidArgumentError(cfg_path + ": not a JSON object");
  if (c.contains("peft_type") && c["peft_type"] != "LORA")
    return InvalidArgumentError(cfg_path + ": peft_type " + c["peft_type"].dump() +
                                " is not LORA");
  if (!c.contains("r") || !c["r"].is_number_integer() || c["r"].get<int64_t>() <= 0)
    return InvalidArgumentError(cfg_path + ": field 'r' must be a positive integer");
  if (!c.contains("lora_alpha") || !c["lora_alpha"].is_number() ||
      !(c["lora_alpha"].get<double>() > 0) || !std::isfinite(c["lora_alpha"].get<double>()))
    return InvalidArgumentError(
        cfg_path + ": field 'lora_alpha' must be a positive number" +
        (c.contains("lora_alpha") ? ", got " + c["lora_alpha"].dump() : ""));
  if (Flag(c, "fan_in_fan_out"))
    return InvalidArgumentError(cfg_path + ": fan_in_fan_out adapters (GPT-2 Conv1D) are not "
                                           "supported");
  if (Flag(c, "use_dora"))
    return InvalidArgumentError(cfg_path + ": DoRA adapters are not supported");
  for (const char* k : {"rank_pattern", "alpha_pattern"})
    if (c.contains(k) && !c[k].is_null() && !c[k].empty())
      return InvalidArgumentError(cfg_path + ": field '" + k +
                                  "' (per-module ranks) is not supported");
  a->r = c["r"].get<int64_t>();
  a->alpha = c["lora_alpha"].get<double>();
  a->scaling = Flag(c, "use_rslora") ? a->alpha / std::sqrt(double(a->r))
                                            : a->alpha / double(a->r);

  a->path = dir + "/adapter_model.safetensors";
  LORA_RETURN_IF_ERROR(ReadSafetensorsHeader(a->path, &a->header));
  LORA_RETURN_IF_ERROR(a->file.Open(a->path));
  for (const TensorInfo& t : a->header.tensors) {
    const std::string& n = t.name;
    size_t at_a = n.rfind(".lora_A.weight"), at_b = n.rfind(".lora_B.weight");
    bool is_a = at_a != std::string::npos && at_a + 14 == n.size();
    bool is_b = at_b != std::string::npos && at_b + 14 == n.size();
    if (n.rfind(kPrefix, 0) != 0 || (!is_a && !is_b))
      return InvalidArgumentError(StrFormat(
          "%s: tensor '%s' is not a LoRA weight (base_model.model.<module>.lora_A/B.weight); "
          "adapters with modules_to_save or embeddings are not supported",
          a->path.c_str(), n.c_str()));
    std::string module = n.substr(sizeof kPrefix - 1, (is_a ? at_a : at_b) - (sizeof kPrefix - 1));
    Adapter::Pair& p = a->modules[module];
    (is_a ? p.a : p.b) = &t;
  }
  if (a->modules.empty()) return InvalidArgumentError(a->path + ": no LoRA tensors");
  LORA_RETURN_IF_ERROR(CheckTargeted(*a, cfg_path));
  for (const auto& [module, p] : a->modules) {
    if (!p.a || !p.b)
      return InvalidArgumentError(StrFormat("%s: module '%s' has lora_%s but not lora_%s",
                                            a->path.c_str(), module.c_str(), p.a ? "A" : "B",
                                            p.a ? "B" : "A"));
    if (p.a->shape.size() != 2 || p.b->shape.size() != 2 || p.a->shape[0] != a->r ||
        p.b->shape[1] != a->r)
      return InvalidArgumentError(StrFormat(
          "%s: module '%s' has lora_A %s and lora_B %s; with r = %lld they must be [r, in] and "
          "[out, r]",
          a->path.c_str(), module.c_str(), ShapeToString(p.a->shape).c_str(),
          ShapeToString(p.b->shape).c_str(), static_cast<long long>(a->r)));
  }
  return OkStatus();
}

StatusOr<DType> ParseOutDType(const std::string& s) {
  if (s == "bf16") return DType::kBF16;
  if (s == "f16") return DType::kF16;
  if (s == "f32") return DType::kF32;
  return InvalidArgumentError("--dtype must be bf16, f16 or f32, got '" + s + "'");
}

const char* TorchDType(DType d) {
  return d == DType::kBF16 ? "bfloat16" : d == DType::kF16 ? "float16" : "float32";
}

// Rounds float values into `dtype`'s bytes.
void EncodeFloats(const std::vector<float>& v, DType dtype, std::vector<uint8_t>* out) {
  out->resize(v.size() * DTypeSize(dtype));
  if (dtype == DType::kF32) {
    std::memcpy(out->data(), v.data(), out->size());
    return;
  }
  uint16_t* p = reinterpret_cast<uint16_t*>(out->data());
  for (size_t i = 0; i < v.size(); ++i)
    p[i] = dtype == DType::kBF16 ? cpu::FloatToBf16(v[i]) : cpu::FloatToHalf(v[i]);
}

// The files of a model directory besides its weights.
constexpr const char* kModelSideFiles[] = {
    "generation_config.json", "tokenizer.model", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "added_tokens.json", "chat_template.jinja"};

Status CheckOutput(const std::string& out) {
  if (out.empty()) return InvalidArgumentError("-o: an output directory is required");
  if (PathExists(out))
    return InvalidArgumentError(out +
                                ": already exists (lorart merge and average never overwrite "
                                "an output; remove it or choose another -o)");
  return OkStatus();
}

// Moves OUT.tmp into place.
Status Publish(const std::string& tmp, const std::string& out) {
  if (std::rename(tmp.c_str(), out.c_str()) != 0)
    return UnavailableError(StrFormat("%s: cannot rename to %s: %s", tmp.c_str(), out.c_str(),
                                      std::strerror(errno)));
  return OkStatus();
}

// Random batches through two sessions' @logits_step; the largest logit
// difference and the largest logit.
Status CompareLogits(Session& ref, Session& merged, double* max_diff, double* max_abs) {
  const Plan& plan = ref.plan();
  int64_t batch = plan.defaults().micro_batch(), seq = plan.defaults().seq_len();
  int64_t vocab = plan.model().vocab_size();
  std::mt19937_64 rng(1234);
  std::vector<int32_t> tok(batch * seq), pos(batch * seq), seg(batch * seq, 0), last(batch);
  std::vector<float> a(batch * vocab), b(batch * vocab);
  *max_diff = 0;
  *max_abs = 0;
  for (int run = 0; run < 4; ++run) {
    for (int64_t i = 0; i < batch * seq; ++i) {
      tok[i] = static_cast<int32_t>(rng() % vocab);
      pos[i] = static_cast<int32_t>(i % seq);
    }
    for (int64_t r = 0; r < batch; ++r)
      last[r] = static_cast<int32_t>(std::max<int64_t>(0, (run + 1) * seq / 4 - 1 - r % 3));
    for (Session* s : {&ref, &merged}) {
      LORA_RETURN_IF_ERROR(FeedLogitsStep(s, tok, pos, seg, last));
      LORA_RETURN_IF_ERROR(s->Run(programs::kLogitsStep, 0));
    }
    LORA_RETURN_IF_ERROR(
        ref.GetOutput(programs::kLogitsStep, OutputPort::Logits, a.data(), a.size() * 4));
    LORA_RETURN_IF_ERROR(
        merged.GetOutput(programs::kLogitsStep, OutputPort::Logits, b.data(), b.size() * 4));
    for (size_t i = 0; i < a.size(); ++i) {
      if (!std::isfinite(a[i]) || !std::isfinite(b[i]))
        return InvalidArgumentError("--verify: a logit is not finite");
      *max_diff = std::max(*max_diff, std::fabs(double(a[i]) - b[i]));
      *max_abs = std::max(*max_abs, std::fabs(double(a[i])));
    }
  }
  return OkStatus();
}

Status Verify(const MergeOptions& o, const std::string& merged_dir,
              const std::map<std::string, std::vector<float>>& dequantized, DType out_dtype,
              std::ostream& log, MergeResult* r) {
  SessionOptions so;
  so.num_threads = o.num_threads;
  std::unique_ptr<Session> ref, merged;
  LORA_RETURN_IF_ERROR(Session::Open(o.verify_plan, so, &ref));
  if (!ref->plan().FindProgram(programs::kLogitsStep))
    return InvalidArgumentError(o.verify_plan + ": --verify needs a plan with a logits_step");
  for (uint32_t id = 0; id < ref->plan().num_tensors(); ++id)
    if (ref->plan().tensor(id).dtype() == schema::DType::NF4)
      return InvalidArgumentError(o.verify_plan + ": --verify needs a plan compiled without "
                                                  "--quantize-base (the merged weights are not "
                                                  "NF4)");
  if (!ref->plan().lora())
    return InvalidArgumentError(o.verify_plan + ": --verify needs a LoRA plan (the adapter is "
                                                "loaded into it)");
  // The reference: the weights the adapter was trained against, plus the adapter.
  LORA_RETURN_IF_ERROR(ref->BindWeights(o.base_dir));
  for (const auto& [name, values] : dequantized)
    LORA_RETURN_IF_ERROR(ref->SetWeight(name, values.data(), static_cast<int64_t>(values.size())),
                         "in --verify's plan");
  LORA_RETURN_IF_ERROR(ref->InitTrainable(0));
  LORA_RETURN_IF_ERROR(LoadAdapter(ref.get(), o.adapter_dir), "in --verify's plan");
  // The merged model, adapters at zero.
  LORA_RETURN_IF_ERROR(Session::Open(o.verify_plan, so, &merged));
  LORA_RETURN_IF_ERROR(merged->BindWeights(merged_dir));
  LORA_RETURN_IF_ERROR(merged->InitTrainable(0));
  LORA_RETURN_IF_ERROR(CompareLogits(*ref, *merged, &r->max_logit_diff, &r->max_abs_logit));
  // What rounding the merged weights to their dtype may cost (measured on
  // the tiny test models: a few 1e-3 of the largest logit in bf16).
  double rel = out_dtype == DType::kBF16 ? 2e-2 : out_dtype == DType::kF16 ? 3e-3 : 1e-4;
  r->tolerance = rel * std::max(1.0, r->max_abs_logit);
  r->verified = true;
  log << StrFormat("verify: max |logit difference| %.3g over %lld batches (largest |logit| %.3g; "
                   "tolerance %.3g for %s weights)\n",
                   r->max_logit_diff, 4LL, r->max_abs_logit, r->tolerance, DTypeName(out_dtype));
  if (r->max_logit_diff > r->tolerance)
    return InvalidArgumentError(StrFormat(
        "--verify: the merged model's logits differ from base + adapter by %.3g (tolerance "
        "%.3g): the merge is wrong, or the plan does not match the adapter",
        r->max_logit_diff, r->tolerance));
  return OkStatus();
}

Status MergeInto(const MergeOptions& o, const std::string& tmp, std::ostream& log,
                 MergeResult* r) {
  Adapter adapter;
  LORA_RETURN_IF_ERROR(OpenAdapter(o.adapter_dir, &adapter));

  // Which base tensors training saw as NF4 round trips.
  const auto& meta = adapter.header.metadata;
  auto mq = meta.find("lorac.base_quantization");
  bool trained_on_nf4 = mq != meta.end() && mq->second == "nf4";
  if (o.fold_into == FoldInto::kDequantized && !trained_on_nf4)
    return InvalidArgumentError(adapter.path + ": the adapter records no NF4 base (it was not "
                                               "trained by lorart on a quantized base): use "
                                               "--fold-into original");
  bool dequantize = trained_on_nf4 && o.fold_into != FoldInto::kOriginal;
  if (trained_on_nf4 && !dequantize)
    log << "warning: the adapter was trained against NF4-dequantized base weights; folding it "
           "into the original weights gives a model that differs from the trained one by the "
           "quantization error\n";
  std::set<std::string> nf4_tensors;
  int64_t block = kNf4DefaultBlockSize, dq = kNf4DefaultDoubleQuantBlock;
  if (dequantize) {
    auto get = [&](const char* k) { auto it = meta.find(k); return it == meta.end() ? std::string() : it->second; };
    std::string names = get("lorac.nf4_tensors");
    for (size_t b = 0, e; b < names.size(); b = e + 1) {
      e = names.find(',', b);
      if (e == std::string::npos) e = names.size();
      if (e > b) nf4_tensors.insert(names.substr(b, e - b));
    }
    try {
      block = std::stoll(get("lorac.nf4_block_size"));
      dq = std::stoll(get("lorac.nf4_double_quant_block"));
    } catch (...) {
      return InvalidArgumentError(adapter.path + ": metadata lorac.nf4_block_size / "
                                                 "lorac.nf4_double_quant_block are not integers");
    }
  }

  SafetensorsModel base;
  LORA_RETURN_IF_ERROR(OpenSafetensorsModelHeaders(o.base_dir, &base));
  // The base holds every tensor its config.json implies, in its shape: the
  // merged directory is that model (a missing lm_head would give a model
  // transformers refuses or initializes at random).
  // (Only for the architectures lorac reads: merge itself folds any PEFT
  // LoRA adapter into any base whose adapted weights are found.)
  if (StatusOr<hf::ModelConfig> parsed = hf::ParseModelConfig(o.base_dir + "/config.json");
      parsed.ok()) {
    const hf::ModelConfig& cfg = *parsed;
    for (const HfTensorSpec& spec : LlamaFamilyTensors(cfg)) {
      const SafetensorsHeader* shard = nullptr;
      const TensorInfo* t = base.Find(spec.name, &shard);
      if (!t)
        return NotFoundError(
            StrFormat("%s: the base has no tensor '%s', which its config.json "
                      "implies",
                      o.base_dir.c_str(), spec.name.c_str()));
      if (t->shape != spec.shape)
        return InvalidArgumentError(
            StrFormat("%s: tensor '%s' has shape %s, but the base's config.json implies %s",
                      shard->path.c_str(), spec.name.c_str(), ShapeToString(t->shape).c_str(),
                      ShapeToString(spec.shape).c_str()));
    }
  }
  std::vector<MappedFile> files(base.shards.size());
  for (size_t i = 0; i < base.shards.size(); ++i)
    LORA_RETURN_IF_ERROR(files[i].Open(base.shards[i].path));
  for (const auto& [module, p] : adapter.modules) {
    const SafetensorsHeader* shard = nullptr;
    const TensorInfo* w = base.Find(module + ".weight", &shard);
    if (!w)
      return NotFoundError(StrFormat("%s: the adapter adapts '%s', but the base has no tensor "
                                     "'%s.weight'",
                                     o.base_dir.c_str(), module.c_str(), module.c_str()));
    std::vector<int64_t> want = {p.b->shape[0], p.a->shape[1]};
    if (w->shape != want)
      return InvalidArgumentError(StrFormat(
          "%s: tensor '%s.weight' has shape %s; the adapter's lora_B x lora_A is %s (another "
          "model?)",
          shard->path.c_str(), module.c_str(), ShapeToString(w->shape).c_str(),
          ShapeToString(want).c_str()));
  }
  for (const std::string& n : nf4_tensors)
    if (!base.Find(n))
      return NotFoundError(StrFormat("%s: the adapter was trained with '%s' in NF4, but the base "
                                     "has no such tensor",
                                     o.base_dir.c_str(), n.c_str()));

  DType forced = DType::kF32;
  bool force = !o.dtype.empty();
  if (force) {
    LORA_ASSIGN_OR_RETURN(forced, ParseOutDType(o.dtype));
  }

  // Every base tensor, in its files' order, with its output dtype; shards
  // are planned by size first so that their names carry the count.
  struct Item {
    const TensorInfo* info;
    size_t shard;
    DType out;
    uint64_t bytes;
  };
  std::vector<Item> items;
  for (size_t s = 0; s < base.shards.size(); ++s)
    for (const TensorInfo& t : base.shards[s].tensors) {
      DType out = force && IsFloatDType(t.dtype) ? forced : t.dtype;
      items.push_back({&t, s, out, static_cast<uint64_t>(t.NumElements()) * DTypeSize(out)});
    }
  std::vector<size_t> shard_of(items.size());
  int64_t nshards = 1;
  uint64_t in_shard = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    if (in_shard > 0 && in_shard + items[i].bytes > o.max_shard_bytes) {
      ++nshards;
      in_shard = 0;
    }
    in_shard += items[i].bytes;
    shard_of[i] = nshards - 1;
  }
  auto shard_name = [&](int64_t s) {
    if (nshards == 1) return std::string(kSafetensorsSingleFile);
    char buf[64];
    snprintf(buf, sizeof buf, "model-%05lld-of-%05lld.safetensors", static_cast<long long>(s + 1),
             static_cast<long long>(nshards));
    return std::string(buf);
  };

  std::map<std::string, std::vector<float>> dequantized;  // for --verify
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  DType out_dtype = force ? forced : DType::kF32;
  size_t i = 0;
  for (int64_t s = 0; s < nshards; ++s) {
    std::vector<std::vector<uint8_t>> buffers;
    std::vector<TensorToWrite> tensors;
    for (; i < items.size() && static_cast<int64_t>(shard_of[i]) == s; ++i) {
      const Item& it = items[i];
      const TensorInfo& t = *it.info;
      const uint8_t* src = files[it.shard].data() + base.shards[it.shard].DataOffset() + t.begin;
      buffers.emplace_back();
      const std::string what = base.shards[it.shard].path + ": '" + t.name + "'";
      const std::string module_of =
          t.name.size() > 7 && t.name.rfind(".weight") == t.name.size() - 7
              ? t.name.substr(0, t.name.size() - 7)
              : std::string();
      if (!IsFloatDType(t.dtype)) {
        if (adapter.modules.count(module_of))
          return InvalidArgumentError(what + " is not a float tensor, but the adapter adapts '" +
                                      module_of + "': there is no weight to fold it into");
        buffers.back().assign(src, src + t.ByteSize());
      } else {
        std::vector<float> w(static_cast<size_t>(t.NumElements()));
        LORA_RETURN_IF_ERROR(DecodeFloats(t.dtype, src, t.NumElements(), w.data(), what));
        LORA_RETURN_IF_ERROR(CheckFiniteValues(w.data(), t.NumElements(), what,
                                               " (the merged model would carry it)"));
        if (nf4_tensors.count(t.name)) {
          // The NF4 round trip the adapter was trained against, bit for bit
          // as BindWeights quantizes.
          LORA_ASSIGN_OR_RETURN(Nf4Layout layout, Nf4Layout::Make(t.NumElements(), block, dq));
          std::vector<uint8_t> packed(static_cast<size_t>(layout.total_bytes()));
          LORA_RETURN_IF_ERROR(QuantizeNf4(w.data(), t.NumElements(), layout, packed.data(),
                                           layout.total_bytes()),
                               "quantizing '%s'", t.name.c_str());
          LORA_RETURN_IF_ERROR(DequantizeNf4(packed.data(), layout.total_bytes(), layout, w.data(),
                                             t.NumElements()));
          if (!o.verify_plan.empty()) dequantized[t.name] = w;
          ++r->dequantized;
        }
        auto m = adapter.modules.find(module_of);
        if (m != adapter.modules.end()) {
          std::vector<float> a, b;
          LORA_RETURN_IF_ERROR(adapter.Floats(*m->second.a, &a));
          LORA_RETURN_IF_ERROR(adapter.Floats(*m->second.b, &b));
          int64_t out = t.shape[0], in = t.shape[1], rank = adapter.r;
          double scaling = adapter.scaling;
#pragma omp parallel for schedule(static)
          for (int64_t row = 0; row < out; ++row) {
            std::vector<double> acc(static_cast<size_t>(in), 0.0);
            for (int64_t k = 0; k < rank; ++k) {
              double bk = scaling * b[row * rank + k];
              const float* ak = a.data() + k * in;
              for (int64_t c = 0; c < in; ++c) acc[c] += bk * ak[c];
            }
            float* wr = w.data() + row * in;
            for (int64_t c = 0; c < in; ++c) wr[c] = static_cast<float>(wr[c] + acc[c]);
          }
          LORA_RETURN_IF_ERROR(CheckFiniteValues(
              w.data(), t.NumElements(), "folding the adapter into " + what,
              StrFormat(" (scaling %g: the adapter's weights or lora_alpha are too large)",
                        scaling)));
          ++r->adapted;
        }
        if (it.out == DType::kF16) {  // f16 overflows to inf above 65504
          for (int64_t e = 0; e < t.NumElements(); ++e)
            if (std::fabs(w[static_cast<size_t>(e)]) > 65504.0f)
              return InvalidArgumentError(StrFormat(
                  "%s: element %lld is %g, beyond float16's range (65504): merge with --dtype "
                  "bf16 or f32",
                  what.c_str(), static_cast<long long>(e), w[static_cast<size_t>(e)]));
        }
        EncodeFloats(w, it.out, &buffers.back());
        if (!force && (m != adapter.modules.end())) out_dtype = it.out;
      }
      tensors.push_back({t.name, it.out, t.shape, buffers.back().data()});
      weight_map[t.name] = shard_name(s);
      r->bytes += buffers.back().size();
      ++r->tensors;
    }
    LORA_RETURN_IF_ERROR(WriteSafetensors(tmp + "/" + shard_name(s), tensors, {{"format", "pt"}}));
  }
  r->shards = nshards;
  if (r->adapted != static_cast<int64_t>(adapter.modules.size()))
    return InternalError("not every adapted module was folded");
  if (nshards > 1) {
    nlohmann::ordered_json index;
    index["metadata"] = {{"total_size", r->bytes}};
    index["weight_map"] = weight_map;
    LORA_RETURN_IF_ERROR(
        WriteFileAtomically(tmp + "/" + kSafetensorsIndexFile, index.dump(2) + "\n"));
  }

  // config.json (its dtype follows --dtype: "dtype" in the transformers 5
  // layout, "torch_dtype" in 4.x, both where the base has both) and the
  // tokenizer files.
  std::string cfg_path = o.base_dir + "/config.json";
  LORA_ASSIGN_OR_RETURN(std::string cfg_text, ReadWholeFile(cfg_path));
  Json cfg;
  LORA_RETURN_IF_ERROR(ParseJson(cfg_text, cfg_path, "model config", &cfg));
  if (force) {
    bool v5 = cfg.is_object() && cfg.contains("dtype");
    if (!v5 || cfg.contains("torch_dtype")) cfg["torch_dtype"] = TorchDType(forced);
    if (v5) cfg["dtype"] = TorchDType(forced);
    cfg_text = cfg.dump(2) + "\n";
  }
  LORA_RETURN_IF_ERROR(WriteFileAtomically(tmp + "/config.json", cfg_text));
  for (const char* f : kModelSideFiles) {
    std::string src = o.base_dir + "/" + f;
    if (!PathExists(src)) continue;
    LORA_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(src));
    LORA_RETURN_IF_ERROR(WriteFileAtomically(tmp + "/" + f, text));
  }
  log << StrFormat("folded %lld adapted layers (scaling %.6g%s) into %lld tensors; %lld NF4 round "
                   "trips; %lld shard%s, %.1f MiB\n",
                   static_cast<long long>(r->adapted), adapter.scaling,
                   Flag(adapter.config, "use_rslora") ? ", rsLoRA" : "",
                   static_cast<long long>(r->tensors), static_cast<long long>(r->dequantized),
                   static_cast<long long>(r->shards), r->shards == 1 ? "" : "s",
                   r->bytes / 1048576.0);
  if (!o.verify_plan.empty())
    LORA_RETURN_IF_ERROR(Verify(o, tmp, dequantized, out_dtype, log, r));
  return OkStatus();
}

}  // namespace

Status MergeAdapter(const MergeOptions& o, std::ostream& log, MergeResult* result) {
  LORA_RETURN_IF_ERROR(CheckOutput(o.output_dir));
  std::string tmp = o.output_dir + ".tmp";
  LORA_RETURN_IF_ERROR(RemoveTree(tmp));
  LORA_RETURN_IF_ERROR(MakeDirs(tmp));
  MergeResult r;
  Status st = MergeInto(o, tmp, log, &r);
  if (st.ok()) st = Publish(tmp, o.output_dir);
  if (!st.ok()) {
    (void)RemoveTree(tmp);
    return st;
  }
  if (result) *result = r;
  return OkStatus();
}

namespace {

Status AverageInto(const AverageOptions& o, const std::string& tmp, std::ostream& log) {
  size_t n = o.inputs.size();
  if (n < 2) return InvalidArgumentError("average: give at least two adapters or checkpoints");
  std::vector<double> w = o.weights;
  if (w.empty()) w.assign(n, 1.0);
  if (w.size() != n)
    return InvalidArgumentError(StrFormat("--weights: %zu weights for %zu inputs", w.size(), n));
  double largest = 0;
  for (double x : w) {
    if (!(x >= 0) || !std::isfinite(x))
      return InvalidArgumentError("--weights must be finite and non-negative");
    largest = std::max(largest, x);
  }
  if (largest <= 0) return InvalidArgumentError("--weights sum to zero");
  // Scaled by the largest first, so that the sum of huge weights cannot
  // overflow (1e308 + 1e308 would be inf, and every weight 0).
  double sum = 0;
  for (double& x : w) sum += (x /= largest);
  for (double& x : w) x /= sum;

  std::vector<Adapter> adapters(n);
  for (size_t i = 0; i < n; ++i) LORA_RETURN_IF_ERROR(OpenAdapter(o.inputs[i], &adapters[i]));
  const Adapter& first = adapters[0];
  // One run's adapters: the same configuration and the same tensors.
  for (size_t i = 1; i < n; ++i) {
    const Adapter& a = adapters[i];
    for (const char* k : {"r", "lora_alpha", "target_modules", "use_rslora", "layers_to_transform",
                          "layers_pattern", "exclude_modules"}) {
      Json x = first.config.contains(k) ? first.config[k] : Json();
      Json y = a.config.contains(k) ? a.config[k] : Json();
      if (x != y)
        return InvalidArgumentError(StrFormat(
            "%s/adapter_config.json: %s is %s, but %s has %s: these adapters are not of one run",
            a.dir.c_str(), k, y.dump().c_str(), first.dir.c_str(), x.dump().c_str()));
    }
    if (a.header.tensors.size() != first.header.tensors.size())
      return InvalidArgumentError(StrFormat("%s: %zu tensors, %s has %zu", a.path.c_str(),
                                            a.header.tensors.size(), first.path.c_str(),
                                            first.header.tensors.size()));
    for (const TensorInfo& t : first.header.tensors) {
      const TensorInfo* u = a.header.Find(t.name);
      if (!u)
        return InvalidArgumentError(StrFormat("%s: no tensor '%s' (it is in %s)", a.path.c_str(),
                                              t.name.c_str(), first.path.c_str()));
      if (u->shape != t.shape)
        return InvalidArgumentError(StrFormat("%s: tensor '%s' has shape %s, %s has %s",
                                              a.path.c_str(), t.name.c_str(),
                                              ShapeToString(u->shape).c_str(), first.path.c_str(),
                                              ShapeToString(t.shape).c_str()));
    }
  }
  std::vector<std::vector<float>> out(first.header.tensors.size());
  std::vector<TensorToWrite> tensors;
  for (size_t k = 0; k < first.header.tensors.size(); ++k) {
    const TensorInfo& t = first.header.tensors[k];
    std::vector<double> acc(static_cast<size_t>(t.NumElements()), 0.0);
    std::vector<float> v;
    for (size_t i = 0; i < n; ++i) {
      LORA_RETURN_IF_ERROR(adapters[i].Floats(*adapters[i].header.Find(t.name), &v));
      for (size_t e = 0; e < v.size(); ++e) acc[e] += w[i] * v[e];
    }
    out[k].assign(acc.begin(), acc.end());
    tensors.push_back({t.name, DType::kF32, t.shape, out[k].data()});
  }
  // The first input's metadata (its NF4 base, for merging) stays true of the average.
  LORA_RETURN_IF_ERROR(
      WriteSafetensors(tmp + "/adapter_model.safetensors", tensors, first.header.metadata));
  LORA_ASSIGN_OR_RETURN(std::string cfg, ReadWholeFile(first.dir + "/adapter_config.json"));
  LORA_RETURN_IF_ERROR(WriteFileAtomically(tmp + "/adapter_config.json", cfg));
  log << "averaged " << n << " adapters (" << tensors.size() << " tensors) with weights";
  for (double x : w) log << " " << x;
  log << "\n";
  return OkStatus();
}

}  // namespace

Status AverageAdapters(const AverageOptions& o, std::ostream& log) {
  LORA_RETURN_IF_ERROR(CheckOutput(o.output_dir));
  std::string tmp = o.output_dir + ".tmp";
  LORA_RETURN_IF_ERROR(RemoveTree(tmp));
  LORA_RETURN_IF_ERROR(MakeDirs(tmp));
  Status st = AverageInto(o, tmp, log);
  if (st.ok()) st = Publish(tmp, o.output_dir);
  if (!st.ok()) (void)RemoveTree(tmp);
  return st;
}

}  // namespace lorart
