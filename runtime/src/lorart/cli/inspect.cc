// lorart inspect PATH: the tensors of a safetensors file or model directory,
// or the contents of a train.bin plan.
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "lorart/base/strings.h"
#include "lorart/cli/commands.h"
#include "lorart/io/safetensors.h"
#include "lorart/plan/plan.h"
#include "lorart/plan/ports.h"

namespace lorart {
namespace cli {
namespace {

struct InspectOptions {
  std::string path;
  bool json = false;
  std::string sort = "name";
  bool tensors = false;
};

struct Row {
  const TensorInfo* tensor;
  size_t shard;
};

std::string Base(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string WithCommas(uint64_t v) {
  std::string digits = std::to_string(v);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

Status Load(const std::string& path, SafetensorsModel* model) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return OpenSafetensorsModelHeaders(path, model);
  }
  *model = SafetensorsModel();
  SafetensorsHeader header;
  LORA_RETURN_IF_ERROR(ReadSafetensorsHeader(path, &header));
  for (size_t i = 0; i < header.tensors.size(); ++i) {
    model->by_name[header.tensors[i].name] = {0, i};
  }
  model->shards.push_back(std::move(header));
  return OkStatus();
}

// ---- train.bin -------------------------------------------------------------

// A regular file whose file identifier is "LORA" (at byte 8, or at byte 4 for
// a buffer written without its size prefix), or any file named *.bin: the
// plan loader then says what is wrong with it.
bool IsPlanFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  if (path.size() >= 4 && path.compare(path.size() - 4, 4, ".bin") == 0) return true;
  std::ifstream in(path, std::ios::binary);
  char head[12] = {};
  if (!in.read(head, sizeof(head))) return false;
  return std::string(head + 8, 4) == kPlanFileIdentifier ||
         std::string(head + 4, 4) == kPlanFileIdentifier;
}

std::string Str(const flatbuffers::String* s, size_t max_bytes = 200) {
  return s ? EscapeForMessage(std::string_view(s->c_str(), s->size()), max_bytes) : std::string();
}
std::string Raw(const flatbuffers::String* s) {
  return s ? std::string(s->c_str(), s->size()) : std::string();
}

std::string Num(double v) { return StrFormat("%g", v); }

// "1 launch", "3 launches".
std::string Plural(uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

template <typename T>
std::string List(const flatbuffers::Vector<T>* v, size_t max_items = 16) {
  std::string out = "[";
  const uint32_t n = v ? v->size() : 0;
  for (uint32_t i = 0; i < n; ++i) {
    if (i) out += ", ";
    if (i == max_items) {
      out += StrFormat("... %u more", n - i);
      break;
    }
    if constexpr (std::is_floating_point_v<T>) {
      out += Num(v->Get(i));
    } else {
      out += std::to_string(v->Get(i));
    }
  }
  return out + "]";
}

std::string StringList(const flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>* v) {
  std::string out = "[";
  for (uint32_t i = 0; v && i < v->size(); ++i) out += (i ? ", " : "") + Str(v->Get(i), 80);
  return out + "]";
}

std::string ParamToString(const schema::KernelParam& p) {
  std::string value;
  switch (p.value_type()) {
    case schema::ParamValue::IntValue:
      value = std::to_string(p.value_as_IntValue()->value());
      break;
    case schema::ParamValue::FloatValue:
      value = Num(p.value_as_FloatValue()->value());
      break;
    case schema::ParamValue::StringValue:
      value = Quote(Raw(p.value_as_StringValue()->value()), 80);
      break;
    case schema::ParamValue::IntListValue:
      value = List(p.value_as_IntListValue()->values());
      break;
    case schema::ParamValue::FloatListValue:
      value = List(p.value_as_FloatListValue()->values());
      break;
    default:
      value = "?";
  }
  return Str(p.key(), 80) + "=" + value;
}

nlohmann::ordered_json ParamToJson(const schema::KernelParam& p) {
  using OJson = nlohmann::ordered_json;
  switch (p.value_type()) {
    case schema::ParamValue::IntValue:
      return p.value_as_IntValue()->value();
    case schema::ParamValue::FloatValue:
      return p.value_as_FloatValue()->value();
    case schema::ParamValue::StringValue:
      return Raw(p.value_as_StringValue()->value());
    case schema::ParamValue::IntListValue: {
      OJson list = OJson::array();
      const auto* v = p.value_as_IntListValue()->values();
      for (uint32_t i = 0; v && i < v->size(); ++i) list.push_back(v->Get(i));
      return list;
    }
    case schema::ParamValue::FloatListValue: {
      OJson list = OJson::array();
      const auto* v = p.value_as_FloatListValue()->values();
      for (uint32_t i = 0; v && i < v->size(); ++i) list.push_back(v->Get(i));
      return list;
    }
    default:
      return nullptr;
  }
}

template <typename T>
nlohmann::ordered_json JsonList(const flatbuffers::Vector<T>* v) {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (uint32_t i = 0; v && i < v->size(); ++i) list.push_back(v->Get(i));
  return list;
}

const char* RopeKindName(schema::RopeScalingKind kind) {
  switch (kind) {
    case schema::RopeScalingKind::None: return "none";
    case schema::RopeScalingKind::Linear: return "linear";
    case schema::RopeScalingKind::Llama3: return "llama3";
  }
  return "?";
}

struct RoleTotals {
  uint64_t count = 0;
  uint64_t bytes = 0;
};

struct PlanTotals {
  std::array<RoleTotals, static_cast<size_t>(schema::Role::MAX) + 1> by_role{};
  RoleTotals all, persistent, arena;
};

PlanTotals Totals(const Plan& plan) {
  PlanTotals totals;
  for (uint32_t id = 0; id < plan.num_tensors(); ++id) {
    const schema::Tensor& t = plan.tensor(id);
    const uint64_t bytes = plan.tensor_bytes(id);
    RoleTotals& role = totals.by_role[static_cast<size_t>(t.role())];
    RoleTotals& storage =
        t.storage() == schema::Storage::Persistent ? totals.persistent : totals.arena;
    for (RoleTotals* r : {&role, &storage, &totals.all}) {
      r->count += 1;
      r->bytes += bytes;
    }
  }
  return totals;
}

uint32_t Recomputed(const schema::Program& program) {
  uint32_t n = 0;
  for (uint32_t l = 0; program.launches() && l < program.launches()->size(); ++l) {
    n += program.launches()->Get(l)->recompute() ? 1 : 0;
  }
  return n;
}

template <typename T>
uint32_t Count(const flatbuffers::Vector<T>* v) {
  return v ? v->size() : 0;
}

Status PrintPlanJson(const InspectOptions& options, const Plan& plan, std::ostream& out) {
  using OJson = nlohmann::ordered_json;
  OJson doc;
  doc["path"] = options.path;
  doc["kind"] = "train.bin";
  doc["format_version"] = plan.format_version();
  doc["file_size"] = plan.size();

  const schema::ModelConfig& m = plan.model();
  OJson model;
  model["architecture"] = Raw(m.architecture());
  model["hidden_size"] = m.hidden_size();
  model["intermediate_size"] = m.intermediate_size();
  model["num_hidden_layers"] = m.num_hidden_layers();
  model["num_attention_heads"] = m.num_attention_heads();
  model["num_key_value_heads"] = m.num_key_value_heads();
  model["head_dim"] = m.head_dim();
  model["vocab_size"] = m.vocab_size();
  model["rms_norm_eps"] = m.rms_norm_eps();
  model["rope_theta"] = m.rope_theta();
  if (const schema::RopeScaling* rs = m.rope_scaling()) {
    model["rope_scaling"] = {{"kind", RopeKindName(rs->kind())},
                             {"factor", rs->factor()},
                             {"low_freq_factor", rs->low_freq_factor()},
                             {"high_freq_factor", rs->high_freq_factor()},
                             {"original_max_position_embeddings",
                              rs->original_max_position_embeddings()}};
  } else {
    model["rope_scaling"] = nullptr;
  }
  model["tie_word_embeddings"] = m.tie_word_embeddings();
  model["attention_bias"] = m.attention_bias();
  model["output_bias"] = m.output_bias();
  model["mlp_bias"] = m.mlp_bias();
  model["sliding_window"] = m.sliding_window();
  model["max_position_embeddings"] = m.max_position_embeddings();
  model["bos_token_id"] = m.bos_token_id();
  model["eos_token_ids"] = JsonList(m.eos_token_ids());
  model["pad_token_id"] = m.pad_token_id();
  doc["model"] = std::move(model);

  if (const schema::LoraConfig* l = plan.lora()) {
    OJson targets = OJson::array();
    for (uint32_t i = 0; i < Count(l->target_modules()); ++i) {
      targets.push_back(Raw(l->target_modules()->Get(i)));
    }
    doc["lora"] = {{"r", l->r()},
                   {"alpha", l->alpha()},
                   {"dropout", l->dropout()},
                   {"target_modules", std::move(targets)},
                   {"target_regex", Raw(l->target_regex())},
                   {"layers_to_transform", JsonList(l->layers_to_transform())}};
  } else {
    doc["lora"] = nullptr;
  }

  const PlanTotals totals = Totals(plan);
  OJson by_role = OJson::object();
  for (size_t r = 0; r < totals.by_role.size(); ++r) {
    by_role[RoleToString(static_cast<schema::Role>(r))] = {{"count", totals.by_role[r].count},
                                                            {"bytes", totals.by_role[r].bytes}};
  }
  OJson tensors;
  tensors["count"] = totals.all.count;
  tensors["bytes"] = totals.all.bytes;
  tensors["persistent"] = {{"count", totals.persistent.count},
                           {"bytes", totals.persistent.bytes}};
  tensors["arena"] = {{"count", totals.arena.count}, {"bytes", totals.arena.bytes}};
  tensors["by_role"] = std::move(by_role);
  if (options.tensors) {
    OJson list = OJson::array();
    for (uint32_t id = 0; id < plan.num_tensors(); ++id) {
      const schema::Tensor& t = plan.tensor(id);
      OJson j;
      j["id"] = id;
      j["name"] = Raw(t.name());
      j["role"] = RoleToString(t.role());
      j["dtype"] = DTypeToString(t.dtype());
      j["shape"] = JsonList(t.shape());
      j["bytes"] = plan.tensor_bytes(id);
      j["storage"] = t.storage() == schema::Storage::Persistent ? "persistent" : "arena";
      if (t.buffer()) j["buffer"] = {{"offset", t.buffer()->offset()}, {"size", t.buffer()->size()}};
      if (t.of()) j["of"] = Raw(t.of());
      j["init"] = schema::EnumNameTensorInit(t.init());
      list.push_back(std::move(j));
    }
    tensors["list"] = std::move(list);
  }
  doc["tensors"] = std::move(tensors);
  doc["arena"] = {{"size", plan.arena().size()}, {"alignment", plan.arena().alignment()}};

  OJson kernels = OJson::array();
  for (uint32_t k = 0; k < plan.num_kernels(); ++k) {
    const schema::Kernel& kernel = plan.kernel(k);
    OJson j;
    j["index"] = k;
    j["kind"] = Raw(kernel.kind());
    j["name"] = Raw(kernel.name());
    OJson params = OJson::object();
    for (uint32_t i = 0; i < Count(kernel.params()); ++i) {
      const schema::KernelParam& p = *kernel.params()->Get(i);
      params[Raw(p.key())] = ParamToJson(p);
    }
    j["params"] = std::move(params);
    j["cuda_source_bytes"] = kernel.cuda_source() ? kernel.cuda_source()->size() : 0;
    j["entry"] = Raw(kernel.entry());
    auto dim = [](const schema::Dim3* d) -> OJson {
      if (!d) return nullptr;
      return OJson::array({d->x(), d->y(), d->z()});
    };
    j["grid"] = dim(kernel.grid());
    j["block"] = dim(kernel.block());
    j["shared_bytes"] = kernel.shared_bytes();
    kernels.push_back(std::move(j));
  }
  doc["kernels"] = std::move(kernels);

  OJson programs = OJson::array();
  for (uint32_t p = 0; p < plan.num_programs(); ++p) {
    const schema::Program& program = plan.program(p);
    OJson in_ports = OJson::array(), out_ports = OJson::array();
    if (program.input_ports())
      for (InputPort port : *program.input_ports()) in_ports.push_back(PortName(port));
    if (program.output_ports())
      for (OutputPort port : *program.output_ports()) out_ports.push_back(PortName(port));
    programs.push_back({{"name", Raw(program.name())},
                        {"inputs", JsonList(program.inputs())},
                        {"input_ports", std::move(in_ports)},
                        {"outputs", JsonList(program.outputs())},
                        {"output_ports", std::move(out_ports)},
                        {"launches", Count(program.launches())},
                        {"recompute_launches", Recomputed(program)}});
  }
  doc["programs"] = std::move(programs);

  const schema::Hyperparameters& h = plan.defaults();
  doc["defaults"] = {{"objective", Raw(h.objective())},
                     {"micro_batch", h.micro_batch()},
                     {"seq_len", h.seq_len()},
                     {"grad_accum", h.grad_accum()},
                     {"packing", h.packing()},
                     {"remat", Raw(h.remat())},
                     {"memory_budget", h.memory_budget()},
                     {"lr", h.lr()},
                     {"min_lr", h.min_lr()},
                     {"warmup_steps", h.warmup_steps()},
                     {"schedule", Raw(h.schedule())},
                     {"adam_beta1", h.adam_beta1()},
                     {"adam_beta2", h.adam_beta2()},
                     {"adam_eps", h.adam_eps()},
                     {"weight_decay", h.weight_decay()},
                     {"max_grad_norm", h.max_grad_norm()},
                     {"seed", h.seed()}};
  const schema::Provenance& pv = plan.provenance();
  doc["provenance"] = {{"compiler_version", Raw(pv.compiler_version())},
                       {"pipeline", Raw(pv.pipeline())},
                       {"input_hash", Raw(pv.input_hash())},
                       {"source", Raw(pv.source())}};
  out << doc.dump(2, ' ', false, OJson::error_handler_t::replace) << "\n";
  return OkStatus();
}

Status RunInspectPlan(const InspectOptions& options, std::ostream& out) {
  Plan plan;
  LORA_RETURN_IF_ERROR(LoadPlan(options.path, &plan));
  if (options.json) return PrintPlanJson(options, plan, out);

  auto bytes = [](uint64_t b) { return WithCommas(b) + " bytes (" + HumanBytes(b) + ")"; };
  out << options.path << ": train.bin format version " << plan.format_version() << ", "
      << WithCommas(plan.size()) << " bytes\n";

  const schema::ModelConfig& m = plan.model();
  out << "model: " << Str(m.architecture(), 80) << ", "
      << Plural(m.num_hidden_layers(), "layer", "layers") << ", hidden "
      << m.hidden_size() << ", intermediate " << m.intermediate_size() << ", "
      << m.num_attention_heads() << " heads (" << m.num_key_value_heads() << " kv, head_dim "
      << m.head_dim() << "), vocab " << m.vocab_size() << "\n";
  std::string rope = "none";
  if (const schema::RopeScaling* rs = m.rope_scaling()) {
    rope = RopeKindName(rs->kind());
    if (rs->kind() == schema::RopeScalingKind::Linear) {
      rope += " (factor " + Num(rs->factor()) + ")";
    } else if (rs->kind() == schema::RopeScalingKind::Llama3) {
      rope += " (factor " + Num(rs->factor()) + ", low_freq_factor " +
              Num(rs->low_freq_factor()) + ", high_freq_factor " + Num(rs->high_freq_factor()) +
              ", original_max_position_embeddings " +
              std::to_string(rs->original_max_position_embeddings()) + ")";
    }
  }
  auto yes = [](bool b) { return b ? "yes" : "no"; };
  out << "  rms_norm_eps " << Num(m.rms_norm_eps()) << ", rope_theta " << Num(m.rope_theta())
      << ", rope_scaling " << rope << ", max_position_embeddings " << m.max_position_embeddings()
      << ", sliding_window "
      << (m.sliding_window() ? std::to_string(m.sliding_window()) : std::string("none")) << "\n";
  out << "  tie_word_embeddings " << yes(m.tie_word_embeddings()) << ", attention_bias "
      << yes(m.attention_bias()) << ", output_bias " << yes(m.output_bias()) << ", mlp_bias "
      << yes(m.mlp_bias()) << ", bos " << m.bos_token_id() << ", eos " << List(m.eos_token_ids())
      << ", pad " << m.pad_token_id() << "\n";

  if (const schema::LoraConfig* l = plan.lora()) {
    out << "lora: r " << l->r() << ", alpha " << Num(l->alpha()) << " (scaling "
        << Num(l->alpha() / l->r()) << "), dropout " << Num(l->dropout()) << ", ";
    if (l->target_regex() && l->target_regex()->size() > 0) {
      out << "target_regex " << Quote(Raw(l->target_regex()));
    } else {
      out << "target_modules " << StringList(l->target_modules());
    }
    out << ", layers "
        << (Count(l->layers_to_transform()) ? List(l->layers_to_transform()) : std::string("all"))
        << "\n";
  } else {
    out << "lora: none (full fine-tuning)\n";
  }

  const PlanTotals totals = Totals(plan);
  out << "tensors: " << totals.all.count << ", " << bytes(totals.all.bytes) << "\n";
  out << "  persistent " << totals.persistent.count << " (" << HumanBytes(totals.persistent.bytes)
      << "), arena " << totals.arena.count << " (" << HumanBytes(totals.arena.bytes) << ")\n";
  std::vector<std::array<std::string, 3>> rows;
  for (size_t r = 0; r < totals.by_role.size(); ++r) {
    if (totals.by_role[r].count == 0) continue;
    rows.push_back({RoleToString(static_cast<schema::Role>(r)),
                    WithCommas(totals.by_role[r].count), WithCommas(totals.by_role[r].bytes)});
  }
  size_t w0 = 4, w1 = 5, w2 = 5;
  for (const auto& row : rows) {
    w0 = std::max(w0, row[0].size());
    w1 = std::max(w1, row[1].size());
    w2 = std::max(w2, row[2].size());
  }
  auto pad = [](const std::string& s, size_t w) {
    return s.size() < w ? s + std::string(w - s.size(), ' ') : s;
  };
  auto lpad = [](const std::string& s, size_t w) {
    return s.size() < w ? std::string(w - s.size(), ' ') + s : s;
  };
  if (!rows.empty()) {
    out << "  " << pad("role", w0) << "  " << lpad("count", w1) << "  " << lpad("bytes", w2)
        << "\n";
    for (const auto& row : rows) {
      out << "  " << pad(row[0], w0) << "  " << lpad(row[1], w1) << "  " << lpad(row[2], w2)
          << "\n";
    }
  }
  if (options.tensors) {
    std::vector<std::array<std::string, 8>> table = {
        {"id", "name", "role", "dtype", "shape", "storage", "bytes", "of"}};
    for (uint32_t id = 0; id < plan.num_tensors(); ++id) {
      const schema::Tensor& t = plan.tensor(id);
      std::string storage = "persistent";
      if (t.buffer()) {
        storage = StrFormat("arena [%llu, +%llu)",
                            static_cast<unsigned long long>(t.buffer()->offset()),
                            static_cast<unsigned long long>(t.buffer()->size()));
      }
      table.push_back({std::to_string(id), Str(t.name()), RoleToString(t.role()),
                       DTypeToString(t.dtype()), PlanShapeToString(t.shape()), storage,
                       WithCommas(plan.tensor_bytes(id)), Str(t.of())});
    }
    std::array<size_t, 8> widths{};
    for (const auto& row : table) {
      for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
    }
    for (const auto& row : table) {
      std::string line = "  " + lpad(row[0], widths[0]);
      for (size_t c = 1; c < row.size(); ++c) {
        line += "  " + (c == 6 ? lpad(row[c], widths[c]) : pad(row[c], widths[c]));
      }
      while (!line.empty() && line.back() == ' ') line.pop_back();
      out << line << "\n";
    }
  }
  out << "arena: " << bytes(plan.arena().size()) << ", alignment " << plan.arena().alignment()
      << "\n";

  out << "kernels: " << plan.num_kernels() << "\n";
  for (uint32_t k = 0; k < plan.num_kernels(); ++k) {
    const schema::Kernel& kernel = plan.kernel(k);
    std::string line = "  " + std::to_string(k) + "  " + Str(kernel.kind(), 80);
    if (kernel.name() && kernel.name()->size()) line += " (" + Str(kernel.name(), 80) + ")";
    if (kernel.cuda_source() && kernel.cuda_source()->size()) {
      line += StrFormat(": cuda %u bytes, entry ", kernel.cuda_source()->size()) +
              Str(kernel.entry(), 80);
      const schema::Dim3* g = kernel.grid();
      const schema::Dim3* b = kernel.block();
      if (g && b) {
        line += StrFormat(", grid (%u, %u, %u), block (%u, %u, %u), shared %u", g->x(), g->y(),
                          g->z(), b->x(), b->y(), b->z(), kernel.shared_bytes());
      }
    }
    if (Count(kernel.params())) {
      line += ": ";
      for (uint32_t i = 0; i < kernel.params()->size(); ++i) {
        line += (i ? " " : "") + ParamToString(*kernel.params()->Get(i));
      }
    }
    out << line << "\n";
  }

  out << "programs: " << plan.num_programs() << "\n";
  size_t name_w = 4;
  for (uint32_t p = 0; p < plan.num_programs(); ++p) {
    name_w = std::max(name_w, Str(plan.program(p).name(), 80).size());
  }
  for (uint32_t p = 0; p < plan.num_programs(); ++p) {
    const schema::Program& program = plan.program(p);
    const uint32_t launches = Count(program.launches());
    out << "  " << pad(Str(program.name(), 80), name_w) << "  "
        << Plural(launches, "launch", "launches");
    if (uint32_t r = Recomputed(program)) out << " (" << r << " recomputed)";
    out << ", " << Plural(Count(program.inputs()), "input", "inputs") << ", "
        << Plural(Count(program.outputs()), "output", "outputs") << "\n";
  }

  const schema::Hyperparameters& h = plan.defaults();
  out << "defaults: objective " << Str(h.objective(), 40) << ", micro_batch " << h.micro_batch()
      << ", seq_len " << h.seq_len() << ", grad_accum " << h.grad_accum() << ", packing "
      << yes(h.packing()) << ", remat " << Str(h.remat(), 40) << ", memory_budget "
      << (h.memory_budget() ? HumanBytes(h.memory_budget()) : std::string("none")) << "\n";
  out << "  lr " << Num(h.lr()) << " (min " << Num(h.min_lr()) << ", schedule "
      << Str(h.schedule(), 40) << ", warmup_steps " << h.warmup_steps() << "), adam_beta1 "
      << Num(h.adam_beta1()) << ", adam_beta2 " << Num(h.adam_beta2()) << ", adam_eps "
      << Num(h.adam_eps()) << ", weight_decay " << Num(h.weight_decay()) << ", max_grad_norm "
      << Num(h.max_grad_norm()) << ", seed " << h.seed() << "\n";
  const schema::Provenance& pv = plan.provenance();
  out << "provenance: " << Str(pv.compiler_version(), 80) << ", source " << Str(pv.source())
      << ", input_hash " << Str(pv.input_hash(), 80) << "\n";
  out << "  pipeline " << Str(pv.pipeline(), 2000) << "\n";
  return OkStatus();
}

Status RunInspect(const InspectOptions& options, std::ostream& out) {
  if (IsPlanFile(options.path)) return RunInspectPlan(options, out);
  SafetensorsModel model;
  LORA_RETURN_IF_ERROR(Load(options.path, &model));

  std::vector<Row> rows;
  uint64_t parameters = 0, bytes = 0;
  for (size_t s = 0; s < model.shards.size(); ++s) {
    for (const TensorInfo& t : model.shards[s].tensors) {
      rows.push_back({&t, s});
      parameters += static_cast<uint64_t>(t.NumElements());
      bytes += t.ByteSize();
    }
  }
  if (options.sort == "name") {
    std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
      return NaturalLess(a.tensor->name, b.tensor->name);
    });
  }  // "offset": shard order, then offset order within a shard, as stored.

  if (options.json) {
    using OJson = nlohmann::ordered_json;
    OJson doc;
    doc["path"] = options.path;
    OJson shards = OJson::array();
    for (const SafetensorsHeader& h : model.shards) {
      OJson shard;
      shard["path"] = h.path;
      shard["file_size"] = h.file_size;
      shard["header_size"] = h.header_size;
      shard["tensors"] = h.tensors.size();
      shard["metadata"] = OJson::object();
      for (const auto& [k, v] : h.metadata) shard["metadata"][k] = v;
      shards.push_back(std::move(shard));
    }
    doc["shards"] = std::move(shards);
    OJson tensors = OJson::array();
    for (const Row& row : rows) {
      const TensorInfo& t = *row.tensor;
      OJson j;
      j["name"] = t.name;
      j["dtype"] = DTypeName(t.dtype);
      j["shape"] = t.shape;
      j["parameters"] = t.NumElements();
      j["bytes"] = t.ByteSize();
      j["shard"] = row.shard;
      j["data_offsets"] = {t.begin, t.end};
      tensors.push_back(std::move(j));
    }
    doc["tensors"] = std::move(tensors);
    doc["total_tensors"] = rows.size();
    doc["total_parameters"] = parameters;
    doc["total_bytes"] = bytes;
    out << doc.dump(2, ' ', false, OJson::error_handler_t::replace) << "\n";
    return OkStatus();
  }

  const bool multi = model.shards.size() > 1;
  out << options.path << ": " << rows.size() << (rows.size() == 1 ? " tensor" : " tensors")
      << " in " << model.shards.size() << (multi ? " shards" : " file") << "\n";
  for (const SafetensorsHeader& h : model.shards) {
    if (multi) out << "  shard " << Base(h.path) << ": " << h.tensors.size() << " tensors\n";
    for (const auto& [k, v] : h.metadata) {
      out << "  metadata " << EscapeForMessage(k, 80) << " = " << EscapeForMessage(v, 200) << "\n";
    }
  }
  size_t name_w = 4, dtype_w = 5, shape_w = 5, bytes_w = 5, shard_w = 5;
  std::vector<std::string> shapes, sizes;
  for (const Row& row : rows) {
    shapes.push_back(ShapeToString(row.tensor->shape));
    sizes.push_back(WithCommas(row.tensor->ByteSize()));
    name_w = std::max(name_w, EscapeForMessage(row.tensor->name).size());
    dtype_w = std::max(dtype_w, std::string(DTypeName(row.tensor->dtype)).size());
    shape_w = std::max(shape_w, shapes.back().size());
    bytes_w = std::max(bytes_w, sizes.back().size());
    if (multi) shard_w = std::max(shard_w, Base(model.shards[row.shard].path).size());
  }
  auto pad = [](std::string s, size_t w) {
    if (s.size() < w) s.append(w - s.size(), ' ');
    return s;
  };
  auto lpad = [](std::string s, size_t w) {
    if (s.size() < w) s.insert(0, w - s.size(), ' ');
    return s;
  };
  std::string header = pad("name", name_w) + "  " + pad("dtype", dtype_w) + "  " +
                       pad("shape", shape_w) + "  " + lpad("bytes", bytes_w);
  if (multi) header += "  shard";
  out << header << "\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    const TensorInfo& t = *rows[i].tensor;
    std::string line = pad(EscapeForMessage(t.name), name_w) + "  " +
                       pad(DTypeName(t.dtype), dtype_w) + "  " + pad(shapes[i], shape_w) + "  " +
                       lpad(sizes[i], bytes_w);
    if (multi) line += "  " + Base(model.shards[rows[i].shard].path);
    out << line << "\n";
  }
  out << "total: " << rows.size() << (rows.size() == 1 ? " tensor, " : " tensors, ")
      << WithCommas(parameters) << " parameters (" << HumanCount(parameters) << "), "
      << WithCommas(bytes) << " bytes (" << HumanBytes(bytes) << ")\n";
  return OkStatus();
}

}  // namespace

Command AddInspectCommand(CLI::App& root, std::ostream& out) {
  auto options = std::make_shared<InspectOptions>();
  Command command;
  CLI::App* app = root.add_subcommand(
      "inspect",
      "List the tensors of a .safetensors file or a model directory, or summarize a train.bin");
  app->footer(
      "PATH is a .safetensors file, or a directory with model.safetensors or with "
      "model.safetensors.index.json and its shards. Only the headers are read, and they are "
      "validated first: any error is reported on one line and the exit code is 1.\n"
      "PATH may also be a train.bin (file identifier 'LORA', or any *.bin file): it is verified "
      "and validated, then its format version, model, LoRA configuration, tensors by role, "
      "arena, kernels, programs, defaults and provenance are printed.");
  app->add_option("PATH", options->path, "A .safetensors file, a model directory or a train.bin")
      ->required();
  app->add_flag("--json", options->json, "Print JSON instead of a table");
  app->add_option("--sort", options->sort,
                  "Order of the tensors: name (natural order: layers.2 before layers.10) or "
                  "offset (file order)")
      ->check(CLI::IsMember({"name", "offset"}));
  app->add_flag("--tensors", options->tensors,
                "For a train.bin: also list every tensor (id order)");
  command.app = app;
  command.run = [options, &out]() { return RunInspect(*options, out); };
  return command;
}

}  // namespace cli
}  // namespace lorart
