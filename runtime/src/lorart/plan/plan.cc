#include "lorart/plan/plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <type_traits>
#include <utility>

#include "lorart/base/strings.h"
#include "lorart/plan/kernel_kinds.h"
#include "lorart/plan/kernel_params.h"
#include "lorart/quant/nf4.h"
#include "lorart/plan/ports.h"
#include "lorart/plan/seal.h"

namespace lorart {

namespace fb = ::flatbuffers;
using schema::DType;
using schema::Role;
using schema::Storage;

namespace {

constexpr size_t kHeaderBytes = 12;  // size prefix, root offset, identifier

std::string_view View(const fb::String* s) {
  return s ? std::string_view(s->c_str(), s->size()) : std::string_view();
}
bool Empty(const fb::String* s) { return s == nullptr || s->size() == 0; }

// The FlatBuffers verifier checks a vector's length field for 4-byte
// alignment only: a corrupt plan can place a [long] or [double] at 4 mod 8,
// where reading it is undefined behaviour (found by test/fuzz/plan.cc). An
// empty vector has nothing to read (and FlatBuffers does not align one).
template <typename T>
bool Aligned(const fb::Vector<T>* v) {
  return v == nullptr || v->size() == 0 || reinterpret_cast<uintptr_t>(v->Data()) % alignof(T) == 0;
}

uint32_t ReadU32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

template <typename T>
uint32_t Size(const fb::Vector<T>* v) {
  return v ? v->size() : 0;
}

template <typename E>
bool InRange(E value) {
  using U = std::underlying_type_t<E>;
  return static_cast<U>(value) >= static_cast<U>(E::MIN) &&
         static_cast<U>(value) <= static_cast<U>(E::MAX);
}

template <typename E>
int AsInt(E value) {
  return static_cast<int>(static_cast<std::underlying_type_t<E>>(value));
}

bool SameShape(const fb::Vector<int64_t>* a, const fb::Vector<int64_t>* b) {
  if (Size(a) != Size(b)) return false;
  for (uint32_t i = 0; i < Size(a); ++i)
    if (a->Get(i) != b->Get(i)) return false;
  return true;
}

bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

// Reads only the root table's format_version, with its own Verifier: used
// when the full verification failed, so that a plan of another format
// version whose layout this runtime cannot verify still gets the version
// message rather than "corrupt".
bool ProbeFormatVersion(const uint8_t* data, size_t size, uint32_t* version) {
  fb::Verifier verifier(data, size, kPlanMaxDepth, kPlanMaxTables);
  const fb::uoffset_t root = verifier.VerifyOffset(sizeof(fb::uoffset_t));
  if (root == 0) return false;
  const auto* table = reinterpret_cast<const fb::Table*>(data + sizeof(fb::uoffset_t) + root);
  if (!table->VerifyTableStart(verifier) ||
      !table->VerifyField<uint32_t>(verifier, schema::Plan::VT_FORMAT_VERSION, sizeof(uint32_t))) {
    return false;
  }
  *version = table->GetField<uint32_t>(schema::Plan::VT_FORMAT_VERSION, 0);
  return true;
}

// The semantic checks, once the buffer verified.
class Validator {
 public:
  Validator(const std::string& path, const schema::Plan& plan) : path_(path), plan_(plan) {}

  Status Run(std::vector<uint64_t>* tensor_bytes,
             std::unordered_map<std::string_view, uint32_t>* parameters,
             std::unordered_map<std::string_view, uint32_t>* programs);

 private:
  Status Error(StatusCode code, const std::string& message) const {
    return Status(code, path_ + ": " + message);
  }
  Status Invalid(const std::string& message) const {
    return Error(StatusCode::kInvalidArgument, message);
  }
  std::string TensorLabel(uint32_t id) const {
    const schema::Tensor* t = plan_.tensors()->Get(id);
    std::string label = StrFormat("tensor %u", id);
    if (!Empty(t->name())) label += " " + Quote(View(t->name()));
    return label;
  }
  std::string ProgramLabel(uint32_t index) const {
    const schema::Program* p = plan_.programs()->Get(index);
    if (Empty(p->name())) return StrFormat("program %u", index);
    return "program " + Quote(View(p->name()));
  }
  std::string KernelLabel(uint32_t index) const {
    const schema::Kernel* k = plan_.kernels()->Get(index);
    std::string label = StrFormat("kernel %u", index);
    if (!Empty(k->kind())) label += " " + Quote(View(k->kind()));
    return label;
  }

  Status CheckModel() const;
  Status CheckLora() const;
  Status CheckDefaults() const;
  template <typename Port>
  Status CheckPorts(const std::string& where, const char* field, const char* ports_field,
                    const fb::Vector<uint32_t>* ids, const fb::Vector<Port>* ports) const;
  Status CheckTensors(std::vector<uint64_t>* tensor_bytes,
                      std::unordered_map<std::string_view, uint32_t>* parameters) const;
  Status CheckKernels() const;
  Status CheckPrograms(const std::vector<uint64_t>& tensor_bytes,
                       std::unordered_map<std::string_view, uint32_t>* programs) const;
  Status CheckBuckets(const std::vector<uint64_t>& tensor_bytes) const;
  const schema::KernelParam* FindParam(const schema::Kernel& kernel, const char* name) const;
  int64_t IntParam(const schema::Kernel& kernel, const char* name) const;
  Status CheckIds(const std::string& where, const char* field,
                  const fb::Vector<uint32_t>* ids) const;
  Status CheckOperands(const std::string& where, const schema::Launch& launch) const;

  const std::string& path_;
  const schema::Plan& plan_;
  uint32_t num_tensors_ = 0;
  uint32_t num_kernels_ = 0;
};

Status Validator::Run(std::vector<uint64_t>* tensor_bytes,
                      std::unordered_map<std::string_view, uint32_t>* parameters,
                      std::unordered_map<std::string_view, uint32_t>* programs) {
  num_tensors_ = Size(plan_.tensors());
  num_kernels_ = Size(plan_.kernels());
  if (!plan_.model()) return Invalid("field 'model' is missing");
  if (!plan_.arena()) return Invalid("field 'arena' is missing");
  if (!plan_.defaults()) return Invalid("field 'defaults' is missing");
  if (!plan_.provenance()) return Invalid("field 'provenance' is missing");
  LORA_RETURN_IF_ERROR(CheckModel());
  LORA_RETURN_IF_ERROR(CheckLora());
  LORA_RETURN_IF_ERROR(CheckDefaults());
  const schema::Arena& arena = *plan_.arena();
  if (!IsPowerOfTwo(arena.alignment())) {
    return Invalid(StrFormat("field 'arena.alignment' is %llu, not a power of two",
                             static_cast<unsigned long long>(arena.alignment())));
  }
  LORA_RETURN_IF_ERROR(CheckTensors(tensor_bytes, parameters));
  LORA_RETURN_IF_ERROR(CheckKernels());
  LORA_RETURN_IF_ERROR(CheckPrograms(*tensor_bytes, programs));
  return OkStatus();
}

Status Validator::CheckModel() const {
  const schema::ModelConfig& m = *plan_.model();
  if (!Aligned(m.eos_token_ids())) {
    return Invalid("field 'model.eos_token_ids' is not 8-byte aligned (a corrupt plan)");
  }
  if (Empty(m.architecture())) return Invalid("field 'model.architecture' is missing");
  const struct {
    const char* name;
    uint64_t value;
  } dims[] = {
      {"hidden_size", m.hidden_size()},
      {"intermediate_size", m.intermediate_size()},
      {"num_hidden_layers", m.num_hidden_layers()},
      {"num_attention_heads", m.num_attention_heads()},
      {"num_key_value_heads", m.num_key_value_heads()},
      {"head_dim", m.head_dim()},
      {"vocab_size", m.vocab_size()},
  };
  for (const auto& d : dims) {
    if (d.value == 0) return Invalid(StrFormat("field 'model.%s' is 0 (or missing)", d.name));
  }
  if (m.num_attention_heads() % m.num_key_value_heads() != 0) {
    return Invalid(StrFormat(
        "field 'model.num_attention_heads' (%llu) is not a multiple of "
        "'model.num_key_value_heads' (%llu)",
        static_cast<unsigned long long>(m.num_attention_heads()),
        static_cast<unsigned long long>(m.num_key_value_heads())));
  }
  if (!(m.rms_norm_eps() > 0) || !std::isfinite(m.rms_norm_eps())) {
    return Invalid(StrFormat("field 'model.rms_norm_eps' is %g, not a positive number",
                             m.rms_norm_eps()));
  }
  if (!(m.rope_theta() > 0) || !std::isfinite(m.rope_theta())) {
    return Invalid(StrFormat("field 'model.rope_theta' is %g, not a positive number",
                             m.rope_theta()));
  }
  if (const schema::RopeScaling* rs = m.rope_scaling()) {
    if (!InRange(rs->kind())) {
      return Invalid(StrFormat(
          "field 'model.rope_scaling.kind' has the value %d, which this lorart does not know",
          AsInt(rs->kind())));
    }
    if (rs->kind() != schema::RopeScalingKind::None &&
        (!(rs->factor() > 0) || !std::isfinite(rs->factor()))) {
      return Invalid(StrFormat("field 'model.rope_scaling.factor' is %g, not a positive number",
                               rs->factor()));
    }
  }
  return OkStatus();
}

Status Validator::CheckLora() const {
  const schema::LoraConfig* l = plan_.lora();
  if (!l) return OkStatus();
  if (l->r() == 0) return Invalid("field 'lora.r' is 0 (or missing)");
  if (!std::isfinite(l->alpha()) || !(l->alpha() > 0)) {
    return Invalid(StrFormat("field 'lora.alpha' is %g, not a positive number", l->alpha()));
  }
  if (!(l->dropout() >= 0 && l->dropout() < 1)) {
    return Invalid(StrFormat("field 'lora.dropout' is %g, not in [0, 1)", l->dropout()));
  }
  for (uint32_t i = 0; i < Size(l->target_modules()); ++i) {
    if (Empty(l->target_modules()->Get(i))) {
      return Invalid(StrFormat("field 'lora.target_modules'[%u] is empty", i));
    }
  }
  for (uint32_t i = 0; i < Size(l->layers_to_transform()); ++i) {
    if (l->layers_to_transform()->Get(i) < 0) {
      return Invalid(StrFormat("field 'lora.layers_to_transform'[%u] is %d, a negative layer", i,
                               l->layers_to_transform()->Get(i)));
    }
  }
  return OkStatus();
}

Status Validator::CheckDefaults() const {
  const schema::Hyperparameters& h = *plan_.defaults();
  if (h.micro_batch() == 0) return Invalid("field 'defaults.micro_batch' is 0 (or missing)");
  if (h.seq_len() == 0) return Invalid("field 'defaults.seq_len' is 0 (or missing)");
  if (h.grad_accum() == 0) return Invalid("field 'defaults.grad_accum' is 0");
  const struct {
    const char* name;
    double value;
    double lo, hi;  // value must be in [lo, hi)
  } ranges[] = {
      {"lr", h.lr(), 0, INFINITY},
      {"min_lr", h.min_lr(), 0, INFINITY},
      {"adam_beta1", h.adam_beta1(), 0, 1},
      {"adam_beta2", h.adam_beta2(), 0, 1},
      {"weight_decay", h.weight_decay(), 0, INFINITY},
      {"max_grad_norm", h.max_grad_norm(), 0, INFINITY},
  };
  for (const auto& r : ranges) {
    if (!(r.value >= r.lo && r.value < r.hi)) {
      return Invalid(StrFormat("field 'defaults.%s' is %g, not in [%g, %g)", r.name, r.value, r.lo,
                               r.hi));
    }
  }
  if (!(h.adam_eps() > 0) || !std::isfinite(h.adam_eps())) {
    return Invalid(StrFormat("field 'defaults.adam_eps' is %g, not a positive number",
                             h.adam_eps()));
  }
  return OkStatus();
}

Status Validator::CheckTensors(std::vector<uint64_t>* tensor_bytes,
                               std::unordered_map<std::string_view, uint32_t>* parameters) const {
  const schema::Arena& arena = *plan_.arena();
  tensor_bytes->assign(num_tensors_, 0);
  std::unordered_map<std::string_view, uint32_t> trainable;
  for (uint32_t id = 0; id < num_tensors_; ++id) {
    const schema::Tensor& t = *plan_.tensors()->Get(id);
    if (!InRange(t.role())) {
      return Invalid(TensorLabel(id) +
                     StrFormat(": field 'role' has the value %d, which this lorart does not know",
                               AsInt(t.role())));
    }
    if (!InRange(t.storage())) {
      return Invalid(TensorLabel(id) +
                     StrFormat(": field 'storage' has the value %d, which this lorart does not know",
                               AsInt(t.storage())));
    }
    if (!InRange(t.init())) {
      return Invalid(TensorLabel(id) +
                     StrFormat(": field 'init' has the value %d, which this lorart does not know",
                               AsInt(t.init())));
    }
    if (!Aligned(t.shape())) {
      return Invalid(TensorLabel(id) + ": field 'shape' is not 8-byte aligned (a corrupt plan)");
    }
    uint64_t bytes = 0;
    LORA_RETURN_IF_ERROR(TensorByteSize(t, &bytes), "%s: %s", path_.c_str(),
                         TensorLabel(id).c_str());
    (*tensor_bytes)[id] = bytes;

    const Role role = t.role();
    const bool bound = role == Role::Frozen || role == Role::Trainable ||
                       role == Role::OptimizerState;
    if (bound) {
      if (Empty(t.name())) {
        return Invalid(TensorLabel(id) + ": field 'name' is missing (a " + RoleToString(role) +
                       " tensor is bound by name)");
      }
      if (t.storage() != Storage::Persistent) {
        return Invalid(TensorLabel(id) + ": a " + RoleToString(role) +
                       " tensor must have storage Persistent, not Arena");
      }
      auto [it, inserted] = parameters->emplace(View(t.name()), id);
      if (!inserted) {
        return Invalid(StrFormat("tensors %u and %u are both named ", it->second, id) +
                       Quote(View(t.name())) + " (names of bound tensors are unique)");
      }
      if (role == Role::Trainable) trainable.emplace(View(t.name()), id);
    }
    if (t.init() == schema::TensorInit::Checkpoint && Empty(t.name())) {
      return Invalid(TensorLabel(id) +
                     ": field 'name' is missing (init Checkpoint binds the tensor by name)");
    }
    if (t.init() == schema::TensorInit::CopyOfOwner && Empty(t.of())) {
      return Invalid(TensorLabel(id) +
                     ": field 'of' is missing (init CopyOfOwner copies the tensor it names)");
    }

    if (t.storage() == Storage::Arena) {
      const schema::Buffer* b = t.buffer();
      if (!b) return Invalid(TensorLabel(id) + ": storage is Arena but field 'buffer' is missing");
      const uint64_t offset = b->offset(), size = b->size();
      if (size > arena.size() || offset > arena.size() - size) {
        return Error(StatusCode::kOutOfRange,
                     TensorLabel(id) +
                         StrFormat(": field 'buffer' (offset %llu, size %llu) ends past the "
                                   "arena (%llu bytes)",
                                   static_cast<unsigned long long>(offset),
                                   static_cast<unsigned long long>(size),
                                   static_cast<unsigned long long>(arena.size())));
      }
      if (bytes > size) {
        return Invalid(TensorLabel(id) +
                       StrFormat(": dtype %s x shape %s needs %llu bytes but field 'buffer' "
                                 "holds %llu",
                                 DTypeToString(t.dtype()).c_str(),
                                 PlanShapeToString(t.shape()).c_str(),
                                 static_cast<unsigned long long>(bytes),
                                 static_cast<unsigned long long>(size)));
      }
      const size_t align = ElementSize(t.dtype());
      if (align > 1 && offset % align != 0) {
        return Invalid(TensorLabel(id) +
                       StrFormat(": field 'buffer.offset' %llu is not a multiple of %zu (the "
                                 "size of %s)",
                                 static_cast<unsigned long long>(offset), align,
                                 DTypeToString(t.dtype()).c_str()));
      }
    } else if (t.buffer()) {
      return Invalid(TensorLabel(id) + ": field 'buffer' is set but storage is Persistent");
    }
  }
  // `of` needs every Trainable name: a second pass.
  for (uint32_t id = 0; id < num_tensors_; ++id) {
    const schema::Tensor& t = *plan_.tensors()->Get(id);
    const bool owned = t.role() == Role::OptimizerState || t.role() == Role::Gradient;
    if (t.init() == schema::TensorInit::Fisher) {
      if (t.role() != Role::Frozen)
        return Invalid(TensorLabel(id) + ": init Fisher needs role Frozen, not " +
                       RoleToString(t.role()));
      if (Empty(t.of()))
        return Invalid(TensorLabel(id) +
                       ": field 'of' is missing (init Fisher names the weight whose Fisher it is)");
      if (parameters->count(View(t.of())) == 0)
        return Invalid(TensorLabel(id) + ": field 'of' is " + Quote(View(t.of())) +
                       ", which is not the name of a tensor of the plan");
    } else if (owned) {
      if (Empty(t.of())) {
        return Invalid(TensorLabel(id) + ": field 'of' is missing (a " + RoleToString(t.role()) +
                       " tensor names the Trainable tensor it belongs to)");
      }
      if (trainable.count(View(t.of())) == 0) {
        return Invalid(TensorLabel(id) + ": field 'of' is " + Quote(View(t.of())) +
                       ", which is not the name of a Trainable tensor");
      }
    } else if (!Empty(t.of())) {
      return Invalid(TensorLabel(id) + ": field 'of' is set but role is " +
                     RoleToString(t.role()));
    }
    if (Empty(t.of())) continue;
    // A moment, gradient, master copy or Fisher is its owner's twin: the
    // runtime copies and updates them element for element.
    const uint32_t owner = parameters->at(View(t.of()));
    const schema::Tensor& o = *plan_.tensors()->Get(owner);
    if (!SameShape(t.shape(), o.shape())) {
      return Invalid(TensorLabel(id) + ": shape " + PlanShapeToString(t.shape()) +
                     " differs from the shape " + PlanShapeToString(o.shape()) + " of " +
                     TensorLabel(owner) + ", which field 'of' names");
    }
    if (t.init() == schema::TensorInit::CopyOfOwner && t.dtype() != DType::F32) {
      return Invalid(TensorLabel(id) + ": init CopyOfOwner makes an F32 copy, but the dtype is " +
                     DTypeToString(t.dtype()));
    }
  }
  return OkStatus();
}

Status Validator::CheckKernels() const {
  for (uint32_t k = 0; k < num_kernels_; ++k) {
    const schema::Kernel& kernel = *plan_.kernels()->Get(k);
    if (Empty(kernel.kind())) return Invalid(KernelLabel(k) + ": field 'kind' is missing");
    std::unordered_map<std::string_view, uint32_t> keys;
    for (uint32_t i = 0; i < Size(kernel.params()); ++i) {
      const schema::KernelParam& p = *kernel.params()->Get(i);
      if (Empty(p.key())) {
        return Invalid(KernelLabel(k) + StrFormat(": field 'params'[%u]: field 'key' is missing", i));
      }
      const std::string where = KernelLabel(k) + ": param " + Quote(View(p.key()));
      auto [it, inserted] = keys.emplace(View(p.key()), i);
      if (!inserted) {
        return Invalid(KernelLabel(k) + StrFormat(": params %u and %u both have the key ",
                                                  it->second, i) +
                       Quote(View(p.key())));
      }
      if (!InRange(p.value_type())) {
        return Invalid(where + StrFormat(": field 'value' has the type %d, which this lorart "
                                         "does not know",
                                         AsInt(p.value_type())));
      }
      if (p.value_type() == schema::ParamValue::NONE || p.value() == nullptr) {
        return Invalid(where + ": field 'value' is missing");
      }
      if ((p.value_as_IntListValue() && !Aligned(p.value_as_IntListValue()->values())) ||
          (p.value_as_FloatListValue() && !Aligned(p.value_as_FloatListValue()->values()))) {
        return Invalid(where + ": the value's list is not 8-byte aligned (a corrupt plan)");
      }
    }
    // The parameters against the kind's declaration (kernel_kinds.def): a
    // kernel the runtime would read a missing or mistyped value from is
    // refused here, naming it, instead of failing (or worse) mid-run.
    const kernels::KindSpec* spec = kernels::FindKind(View(kernel.kind()));
    if (!spec) {
      return Invalid(KernelLabel(k) + ": unknown kernel kind " + Quote(View(kernel.kind())) +
                     " (this lorart's kinds: `lorart kernels`)");
    }
    std::vector<std::string> names;
    for (uint32_t i = 0; i < Size(kernel.params()); ++i)
      names.emplace_back(View(kernel.params()->Get(i)->key()));
    std::string bad = kernels::CheckParams(
        *spec, names, [&](const char* name, kernels::ParamType* type) {
          auto it = keys.find(name);
          if (it == keys.end()) return false;
          switch (kernel.params()->Get(it->second)->value_type()) {
            case schema::ParamValue::IntValue: *type = kernels::ParamType::kInt; break;
            case schema::ParamValue::FloatValue: *type = kernels::ParamType::kFloat; break;
            case schema::ParamValue::StringValue: *type = kernels::ParamType::kString; break;
            default: *type = static_cast<kernels::ParamType>(-1); break;
          }
          return true;
        },
        [](const std::string& name) { return Quote(name); });
    if (!bad.empty()) return Invalid(KernelLabel(k) + ": " + bad);
    if (!Empty(kernel.cuda_source())) {
      if (Empty(kernel.entry())) {
        return Invalid(KernelLabel(k) + ": field 'cuda_source' is set but field 'entry' is missing");
      }
      const struct {
        const char* name;
        const schema::Dim3* dim;
      } dims[] = {{"grid", kernel.grid()}, {"block", kernel.block()}};
      if (kernel.cuda_next()) {
        for (uint32_t i = 0; i < kernel.cuda_next()->size(); ++i) {
          const schema::CudaStep* st = kernel.cuda_next()->Get(i);
          std::string where = KernelLabel(k) + StrFormat(": cuda_next[%u]", i);
          if (Empty(st->entry())) return Invalid(where + ": field 'entry' is missing");
          for (const schema::Dim3* d : {st->grid(), st->block()}) {
            if (!d) return Invalid(where + ": field 'grid' or 'block' is missing");
            if (d->x() == 0 || d->y() == 0 || d->z() == 0)
              return Invalid(where + StrFormat(": a launch dimension (%u, %u, %u) is zero",
                                               d->x(), d->y(), d->z()));
          }
        }
      }
      for (const auto& d : dims) {
        if (!d.dim) {
          return Invalid(KernelLabel(k) +
                         StrFormat(": field 'cuda_source' is set but field '%s' is missing",
                                   d.name));
        }
        if (d.dim->x() == 0 || d.dim->y() == 0 || d.dim->z() == 0) {
          return Invalid(KernelLabel(k) + StrFormat(": field '%s' (%u, %u, %u) has a zero "
                                                    "dimension",
                                                    d.name, d.dim->x(), d.dim->y(), d.dim->z()));
        }
      }
    }
  }
  return OkStatus();
}

Status Validator::CheckIds(const std::string& where, const char* field,
                           const fb::Vector<uint32_t>* ids) const {
  for (uint32_t i = 0; i < Size(ids); ++i) {
    if (ids->Get(i) >= num_tensors_) {
      return Error(StatusCode::kOutOfRange,
                   where + StrFormat(": field '%s'[%u] is %u, not a tensor id (the plan has %u "
                                     "tensors)",
                                     field, i, ids->Get(i), num_tensors_));
    }
  }
  return OkStatus();
}

const schema::KernelParam* Validator::FindParam(const schema::Kernel& kernel,
                                                const char* name) const {
  for (uint32_t i = 0; i < Size(kernel.params()); ++i) {
    const schema::KernelParam* p = kernel.params()->Get(i);
    if (View(p->key()) == name) return p;
  }
  return nullptr;
}

// An integer parameter (0 when absent: CheckKernels has checked the
// required ones).
int64_t Validator::IntParam(const schema::Kernel& kernel, const char* name) const {
  const schema::KernelParam* p = FindParam(kernel, name);
  const schema::IntValue* v = p ? p->value_as_IntValue() : nullptr;
  return v ? v->value() : 0;
}

// A launch's operands against its kind's declaration (kernel_kinds.def):
// their number, dtypes, sizes and NF4 blocks. The CUDA executor passes
// operands to the generated code as bare pointers sized by the kernel's
// parameters, so a plan that disagrees with itself is refused here, before
// any backend runs it.
Status Validator::CheckOperands(const std::string& where, const schema::Launch& launch) const {
  const schema::Kernel& kernel = *plan_.kernels()->Get(launch.kernel());
  const kernels::KindSpec* spec = kernels::FindKind(View(kernel.kind()));
  if (!spec) return OkStatus();  // CheckKernels refused it
  struct Params : kernels::IntParams {
    const Validator* validator;
    const schema::Kernel* kernel;
    double Int(const char* name) const override {
      return static_cast<double>(validator->IntParam(*kernel, name));
    }
  } params;
  params.validator = this;
  params.kernel = &kernel;
  std::string_view weight_format;
  if (const schema::KernelParam* p = FindParam(kernel, "weight_format");
      p && p->value_as_StringValue())
    weight_format = View(p->value_as_StringValue()->value());
  const auto id_of = [&](bool output, size_t i) {
    return (output ? launch.outputs() : launch.inputs())->Get(static_cast<uint32_t>(i));
  };
  std::string bad = kernels::CheckOperands(
      *spec, params, weight_format, Size(launch.inputs()), Size(launch.outputs()),
      [&](bool output, size_t i) {
        const schema::Tensor& t = *plan_.tensors()->Get(id_of(output, i));
        kernels::OperandInfo info;
        switch (t.dtype()) {
          case DType::F32: info.type = kernels::ElemType::kF32; break;
          case DType::BF16: info.type = kernels::ElemType::kBF16; break;
          case DType::F16: info.type = kernels::ElemType::kF16; break;
          case DType::I32: info.type = kernels::ElemType::kI32; break;
          case DType::I64: info.type = kernels::ElemType::kI64; break;
          case DType::BOOL: info.type = kernels::ElemType::kBool; break;
          case DType::NF4: info.type = kernels::ElemType::kNF4; break;
          default: info.type = kernels::ElemType::kOther; break;
        }
        double elements = 1;
        for (uint32_t d = 0; d < Size(t.shape()); ++d)
          elements *= static_cast<double>(t.shape()->Get(d));
        info.elements = elements;
        if (t.quant()) {
          info.block_size = t.quant()->block_size();
          info.double_quant_block = t.quant()->double_quant_block();
        }
        return info;
      },
      [&](bool output, size_t i) { return TensorLabel(id_of(output, i)); });
  if (!bad.empty()) return Invalid(where + " (" + KernelLabel(launch.kernel()) + "): " + bad);
  return OkStatus();
}

template <typename Port>
Status Validator::CheckPorts(const std::string& where, const char* field, const char* ports_field,
                             const fb::Vector<uint32_t>* ids, const fb::Vector<Port>* ports) const {
  if (Size(ports) != Size(ids)) {
    return Invalid(where + StrFormat(": field '%s' has %u entries for %u %s (one port per tensor)",
                                     ports_field, Size(ports), Size(ids), field));
  }
  std::vector<bool> seen;
  for (uint32_t i = 0; i < Size(ids); ++i) {
    const Port port = ports->Get(i);
    if (!InRange(port)) {
      return Invalid(where + StrFormat(": field '%s'[%u] has the value %d, which this lorart does "
                                       "not know",
                                       ports_field, i, AsInt(port)));
    }
    const size_t index = static_cast<size_t>(AsInt(port));
    if (seen.size() <= index) seen.resize(index + 1);
    if (seen[index]) {
      return Invalid(
          where + StrFormat(": field '%s' names '%s' twice", ports_field, PortName(port).c_str()));
    }
    seen[index] = true;
    const uint32_t id = ids->Get(i);
    const schema::Tensor& t = *plan_.tensors()->Get(id);
    const PortRule rule = RuleOf(port);
    const int rank = static_cast<int>(Size(t.shape()));
    if (t.dtype() != rule.dtype || rank != rule.rank) {
      return Invalid(where + StrFormat(": %s[%u] is ", field, i) + TensorLabel(id) + ", " +
                     DTypeToString(t.dtype()) + StrFormat(" of rank %d, but '", rank) +
                     PortName(port) + "' is " + DTypeToString(rule.dtype) +
                     StrFormat(" of rank %d", rule.rank));
    }
  }
  return OkStatus();
}

// The gradient buckets of lora-data-parallel. A bucket's sum runs in place,
// in the background (MPI, NCCL), from its grad_all_reduce_start (in
// train_step) to its grad_all_reduce_wait (in optimizer_step, which runs
// after it), so: each bucket is started by one launch and waited for by one
// launch over the same accumulators in the same order (after the start when
// both are in one program); 'bytes' is what they hold; and in the programs
// of the start and of the wait no launch uses them while the sum runs (after
// the start, before the wait), nor does a second bucket hold them then.
Status Validator::CheckBuckets(const std::vector<uint64_t>& tensor_bytes) const {
  struct End {
    bool set = false;
    uint32_t program = 0, launch = 0;
    const fb::Vector<uint32_t>* tensors = nullptr;
  };
  std::map<int64_t, std::pair<End, End>> buckets;  // bucket -> (start, wait)
  const auto at = [&](const End& e) {
    return ProgramLabel(e.program) + StrFormat(", launch %u", e.launch);
  };
  using kernels::Kind;
  const auto kind_of = [&](const schema::Launch& launch) {
    return kernels::KindOf(View(plan_.kernels()->Get(launch.kernel())->kind()));
  };
  for (uint32_t p = 0; p < Size(plan_.programs()); ++p) {
    const schema::Program& program = *plan_.programs()->Get(p);
    for (uint32_t l = 0; l < Size(program.launches()); ++l) {
      const schema::Launch& launch = *program.launches()->Get(l);
      const std::optional<Kind> kind = kind_of(launch);
      const bool start = kind == Kind::grad_all_reduce_start;
      if (!start && kind != Kind::grad_all_reduce_wait) continue;
      const schema::Kernel& kernel = *plan_.kernels()->Get(launch.kernel());
      const End here{true, p, l, launch.outputs()};
      const int64_t bytes = IntParam(kernel, "bytes");
      uint64_t held = 0;
      for (uint32_t i = 0; i < Size(launch.outputs()); ++i)
        held += tensor_bytes[launch.outputs()->Get(i)];
      if (bytes < 0 || static_cast<uint64_t>(bytes) != held) {
        return Invalid(at(here) + " (" + KernelLabel(launch.kernel()) +
                       StrFormat("): parameter 'bytes' is %lld, but its accumulators hold %llu "
                                 "bytes",
                                 static_cast<long long>(bytes),
                                 static_cast<unsigned long long>(held)));
      }
      const int64_t bucket = IntParam(kernel, "bucket");
      End& end = start ? buckets[bucket].first : buckets[bucket].second;
      if (end.set) {
        return Invalid(StrFormat("bucket %lld is %s twice (", static_cast<long long>(bucket),
                                 start ? "started" : "waited for") +
                       at(end) + "; " + at(here) + ")");
      }
      end = here;
    }
  }
  for (const auto& [bucket, ends] : buckets) {
    const auto& [start, wait] = ends;
    const std::string name = StrFormat("bucket %lld", static_cast<long long>(bucket));
    if (!start.set) return Invalid(name + " is waited for (" + at(wait) + ") but never started");
    if (!wait.set) return Invalid(name + " is started (" + at(start) + ") but never waited for");
    bool same = Size(start.tensors) == Size(wait.tensors);
    for (uint32_t i = 0; same && i < Size(start.tensors); ++i)
      same = start.tensors->Get(i) == wait.tensors->Get(i);
    if (!same) {
      return Invalid(name + "'s wait (" + at(wait) + ") lists other accumulators than its start (" +
                     at(start) + ")");
    }
    if (start.program == wait.program && wait.launch < start.launch)
      return Invalid(name + " is waited for (" + at(wait) + ") before it starts (" + at(start) +
                     ")");
  }
  // While a sum runs, its accumulators are MPI's or NCCL's.
  for (uint32_t p = 0; p < Size(plan_.programs()); ++p) {
    const schema::Program& program = *plan_.programs()->Get(p);
    std::unordered_map<uint32_t, int64_t> busy;  // tensor -> the bucket summing it
    const auto hold = [&](int64_t bucket, const End& by) -> Status {
      const End& start = buckets[bucket].first;
      for (uint32_t i = 0; i < Size(start.tensors); ++i) {
        auto [it, inserted] = busy.emplace(start.tensors->Get(i), bucket);
        if (!inserted) {
          return Invalid(
              at(by) + StrFormat(": bucket %lld holds ", static_cast<long long>(bucket)) +
              TensorLabel(it->first) +
              StrFormat(", which bucket %lld is summing", static_cast<long long>(it->second)));
        }
      }
      return OkStatus();
    };
    // Sums started in an earlier program and waited for here run from its start.
    for (const auto& [bucket, ends] : buckets)
      if (ends.second.program == p && ends.first.program != p)
        LORA_RETURN_IF_ERROR(hold(bucket, End{true, p, 0, nullptr}));
    for (uint32_t l = 0; l < Size(program.launches()); ++l) {
      const schema::Launch& launch = *program.launches()->Get(l);
      const std::optional<Kind> kind = kind_of(launch);
      const End here{true, p, l, nullptr};
      if (kind == Kind::grad_all_reduce_start) {
        LORA_RETURN_IF_ERROR(
            hold(IntParam(*plan_.kernels()->Get(launch.kernel()), "bucket"), here));
        continue;
      }
      if (kind == Kind::grad_all_reduce_wait) {
        for (uint32_t i = 0; i < Size(launch.outputs()); ++i) busy.erase(launch.outputs()->Get(i));
        continue;
      }
      for (const fb::Vector<uint32_t>* ids : {launch.inputs(), launch.outputs()}) {
        for (uint32_t i = 0; i < Size(ids); ++i) {
          auto it = busy.find(ids->Get(i));
          if (it == busy.end()) continue;
          const End& start = buckets[it->second].first;
          return Invalid(at(here) + " (" + KernelLabel(launch.kernel()) + ") uses " +
                         TensorLabel(it->first) +
                         StrFormat(" while bucket %lld sums it over the ranks (from ",
                                   static_cast<long long>(it->second)) +
                         at(start) + " to " + at(buckets[it->second].second) + ")");
        }
      }
    }
  }
  return OkStatus();
}

Status Validator::CheckPrograms(const std::vector<uint64_t>& tensor_bytes,
                                std::unordered_map<std::string_view, uint32_t>* programs) const {
  for (uint32_t p = 0; p < Size(plan_.programs()); ++p) {
    const schema::Program& program = *plan_.programs()->Get(p);
    if (Empty(program.name())) return Invalid(ProgramLabel(p) + ": field 'name' is missing");
    auto [it, inserted] = programs->emplace(View(program.name()), p);
    if (!inserted) {
      return Invalid(StrFormat("programs %u and %u are both named ", it->second, p) +
                     Quote(View(program.name())));
    }
    const std::string label = ProgramLabel(p);
    LORA_RETURN_IF_ERROR(CheckIds(label, "inputs", program.inputs()));
    LORA_RETURN_IF_ERROR(CheckIds(label, "outputs", program.outputs()));
    LORA_RETURN_IF_ERROR(
        CheckPorts(label, "inputs", "input_ports", program.inputs(), program.input_ports()));
    LORA_RETURN_IF_ERROR(
        CheckPorts(label, "outputs", "output_ports", program.outputs(), program.output_ports()));
    for (uint32_t l = 0; l < Size(program.launches()); ++l) {
      const schema::Launch& launch = *program.launches()->Get(l);
      const std::string where = label + StrFormat(": launch %u", l);
      if (launch.kernel() >= num_kernels_) {
        return Error(StatusCode::kOutOfRange,
                     where + StrFormat(": field 'kernel' is %u, not a kernel index (the plan has "
                                       "%u kernels)",
                                       launch.kernel(), num_kernels_));
      }
      LORA_RETURN_IF_ERROR(CheckIds(where, "inputs", launch.inputs()));
      LORA_RETURN_IF_ERROR(CheckIds(where, "outputs", launch.outputs()));
      LORA_RETURN_IF_ERROR(CheckOperands(where, launch));
      const uint64_t ws = plan_.kernels()->Get(launch.kernel())->cuda_workspace_bytes();
      const uint64_t arena_size = plan_.arena()->size();
      if (ws > 0 && (ws > arena_size || launch.workspace_offset() > arena_size - ws)) {
        return Error(StatusCode::kOutOfRange,
                     where + StrFormat(": the kernel's workspace (%llu bytes at offset %llu) "
                                       "does not fit the arena (%llu bytes)",
                                       static_cast<unsigned long long>(ws),
                                       static_cast<unsigned long long>(launch.workspace_offset()),
                                       static_cast<unsigned long long>(arena_size)));
      }
    }
  }
  return CheckBuckets(tensor_bytes);
}

}  // namespace

size_t ElementSize(DType dtype) {
  switch (dtype) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::I32: return 4;
    case DType::I64: return 8;
    case DType::BOOL: return 1;
    case DType::NF4: return 0;
  }
  return 0;
}

std::string DTypeToString(DType dtype) {
  if (!InRange(dtype)) return StrFormat("DType(%d)", AsInt(dtype));
  return schema::EnumNameDType(dtype);
}

std::string RoleToString(Role role) {
  switch (role) {
    case Role::Frozen: return "frozen";
    case Role::Trainable: return "trainable";
    case Role::OptimizerState: return "optimizer_state";
    case Role::Gradient: return "gradient";
    case Role::Activation: return "activation";
    case Role::Input: return "input";
    case Role::Output: return "output";
    case Role::Scalar: return "scalar";
  }
  return StrFormat("Role(%d)", AsInt(role));
}

std::string PlanShapeToString(const fb::Vector<int64_t>* shape) {
  constexpr uint32_t kMaxDims = 16;  // keeps messages about garbage short
  std::string out = "[";
  const uint32_t n = Size(shape);
  for (uint32_t i = 0; i < n; ++i) {
    if (i) out += ", ";
    if (i == kMaxDims) {
      out += StrFormat("... %u dimensions", n);
      break;
    }
    out += std::to_string(shape->Get(i));
  }
  return out + "]";
}

Status TensorByteSize(const schema::Tensor& t, uint64_t* bytes) {
  *bytes = 0;
  if (!InRange(t.dtype())) {
    return InvalidArgumentError(StrFormat(
        "field 'dtype' has the value %d, which this lorart does not know", AsInt(t.dtype())));
  }
  uint64_t elements = 1;
  for (uint32_t i = 0; i < Size(t.shape()); ++i) {
    const int64_t d = t.shape()->Get(i);
    if (d < 0) {
      return InvalidArgumentError("field 'shape' " + PlanShapeToString(t.shape()) +
                                  " has a negative dimension");
    }
    if (d != 0 && elements > static_cast<uint64_t>(INT64_MAX) / static_cast<uint64_t>(d)) {
      return InvalidArgumentError("field 'shape' " + PlanShapeToString(t.shape()) +
                                  " has more than 2^63 elements");
    }
    elements *= static_cast<uint64_t>(d);
  }
  const schema::QuantInfo* q = t.quant();
  if (t.dtype() != DType::NF4) {
    if (q) {
      return InvalidArgumentError("field 'quant' is set but dtype is " + DTypeToString(t.dtype()));
    }
    const uint64_t size = ElementSize(t.dtype());
    if (elements > UINT64_MAX / size) {
      return InvalidArgumentError("field 'shape' " + PlanShapeToString(t.shape()) +
                                  " needs more than 2^64 bytes");
    }
    *bytes = elements * size;
    return OkStatus();
  }
  if (!q) return InvalidArgumentError("dtype NF4 needs field 'quant'");
  if (!InRange(q->format())) {
    return InvalidArgumentError(StrFormat(
        "field 'quant.format' has the value %d, which this lorart does not know",
        AsInt(q->format())));
  }
  if (q->block_size() == 0 || q->block_size() % 2 != 0) {
    return InvalidArgumentError(
        StrFormat("field 'quant.block_size' is %u, not a positive even number", q->block_size()));
  }
  const uint64_t codes = elements / 2 + elements % 2;
  if (q->code_bytes() != codes) {
    return InvalidArgumentError(StrFormat(
        "field 'quant.code_bytes' is %llu, but %llu NF4 elements take %llu bytes of codes",
        static_cast<unsigned long long>(q->code_bytes()),
        static_cast<unsigned long long>(elements), static_cast<unsigned long long>(codes)));
  }
  if (elements > 0 && q->scale_bytes() == 0) {
    return InvalidArgumentError("field 'quant.scale_bytes' is 0 (or missing)");
  }
  if (elements > 0) {
    // The scales must be the layout the kernels index (quant/nf4.h): a
    // smaller region would be read past its end.
    StatusOr<Nf4Layout> layout = Nf4Layout::Make(static_cast<int64_t>(elements), q->block_size(),
                                                 q->double_quant_block());
    if (!layout.ok()) {
      Status status = layout.status();
      return status.WithContext("field 'quant'");
    }
    if (static_cast<uint64_t>(layout->absmax_bytes) != q->scale_bytes()) {
      return InvalidArgumentError(StrFormat(
          "field 'quant.scale_bytes' is %llu, but %llu NF4 elements in blocks of %u (double "
          "quantization block %u) take %llu bytes of scales",
          static_cast<unsigned long long>(q->scale_bytes()),
          static_cast<unsigned long long>(elements), q->block_size(), q->double_quant_block(),
          static_cast<unsigned long long>(layout->absmax_bytes)));
    }
  }
  if (q->scale_bytes() > UINT64_MAX - codes) {
    return InvalidArgumentError("field 'quant.scale_bytes' makes the tensor larger than 2^64 bytes");
  }
  *bytes = codes + q->scale_bytes();
  return OkStatus();
}

Plan::Plan() = default;
Plan::~Plan() = default;
Plan::Plan(Plan&& other) noexcept { *this = std::move(other); }

Plan& Plan::operator=(Plan&& other) noexcept {
  if (this != &other) {
    path_ = std::move(other.path_);
    file_ = std::move(other.file_);
    owned_ = std::move(other.owned_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    root_ = std::exchange(other.root_, nullptr);
    tensor_bytes_ = std::move(other.tensor_bytes_);
    parameters_ = std::move(other.parameters_);
    programs_ = std::move(other.programs_);
    other.path_.clear();
    other.tensor_bytes_.clear();
    other.parameters_.clear();
    other.programs_.clear();
  }
  return *this;
}

uint32_t Plan::num_tensors() const { return Size(root_->tensors()); }
const schema::Tensor& Plan::tensor(uint32_t id) const { return *root_->tensors()->Get(id); }
uint32_t Plan::num_kernels() const { return Size(root_->kernels()); }
const schema::Kernel& Plan::kernel(uint32_t index) const { return *root_->kernels()->Get(index); }
uint32_t Plan::num_programs() const { return Size(root_->programs()); }
const schema::Program& Plan::program(uint32_t index) const {
  return *root_->programs()->Get(index);
}

const schema::Program* Plan::FindProgram(std::string_view name) const {
  auto it = programs_.find(name);
  return it == programs_.end() ? nullptr : root_->programs()->Get(it->second);
}

namespace {

template <typename Port>
int64_t FindPort(const schema::Program* p, const fb::Vector<uint32_t>* ids,
                 const fb::Vector<Port>* ports, Port port) {
  if (!p) return -1;
  // The loader checked that `ports` and `ids` have the same length.
  for (uint32_t i = 0; i < Size(ports); ++i)
    if (ports->Get(i) == port) return ids->Get(i);
  return -1;
}

}  // namespace

int64_t Plan::FindInput(std::string_view program, schema::InputPort port) const {
  const schema::Program* p = FindProgram(program);
  return p ? FindPort(p, p->inputs(), p->input_ports(), port) : -1;
}

int64_t Plan::FindOutput(std::string_view program, schema::OutputPort port) const {
  const schema::Program* p = FindProgram(program);
  return p ? FindPort(p, p->outputs(), p->output_ports(), port) : -1;
}

int64_t Plan::FindParameter(std::string_view name) const {
  auto it = parameters_.find(name);
  return it == parameters_.end() ? -1 : static_cast<int64_t>(it->second);
}

Status Plan::Init(std::string path) {
  path_ = std::move(path);
  const uint8_t* data = data_;
  const size_t size = size_;
  if (size < kHeaderBytes) {
    return DataLossError(StrFormat(
        "%s: not a train.bin: %zu bytes is too short (a train.bin starts with a size prefix, a "
        "root offset and the file identifier 'LORA')",
        path_.c_str(), size));
  }
  const std::string_view ident(reinterpret_cast<const char*>(data) + 8, 4);
  if (ident != kPlanFileIdentifier) {
    if (std::string_view(reinterpret_cast<const char*>(data) + 4, 4) == kPlanFileIdentifier) {
      return InvalidArgumentError(
          path_ + ": not a train.bin: the file identifier 'LORA' is at byte 4, not 8: the "
                  "buffer was not written size-prefixed (FinishSizePrefixedPlanBuffer)");
    }
    return InvalidArgumentError(path_ + ": not a train.bin: file identifier is " + Quote(ident) +
                                ", expected 'LORA'");
  }
  if (size >= kMaxPlanBytes) {
    return InvalidArgumentError(StrFormat(
        "%s: train.bin is %zu bytes, more than the FlatBuffers limit of 2 GiB", path_.c_str(),
        size));
  }
  // The FlatBuffer, then the checksum trailer (plan/seal.h).
  const uint64_t prefix = ReadU32(data);
  const bool trailer = size >= kHeaderBytes + kPlanTrailerBytes &&
                       prefix == size - 4 - kPlanTrailerBytes &&
                       std::memcmp(data + size - kPlanTrailerBytes, kPlanTrailerMagic, 8) == 0;
  auto version_error = [&](uint32_t version) {
    return InvalidArgumentError(StrFormat(
        "%s: train.bin format version %u, but this lorart reads format version %u (recompile "
        "the plan with a lorac that writes version %u)",
        path_.c_str(), version, kPlanFormatVersion, kPlanFormatVersion));
  };
  if (!trailer) {
    if (prefix == size - 4) {
      // A complete FlatBuffer without the trailer: a plan of an older format
      // gets the version message, anything else the missing trailer's.
      uint32_t version = 0;
      if (ProbeFormatVersion(data, size, &version) && version != kPlanFormatVersion)
        return version_error(version);
      return DataLossError(path_ +
                           ": corrupt train.bin: the checksum trailer ('LORAXXH3' and the "
                           "XXH3-64 of the plan, 16 bytes after the FlatBuffer) is missing; "
                           "write plans with lorart::SealPlan (docs/train-bin.md)");
    }
    if (prefix > size - 4 - std::min<size_t>(size - 4, kPlanTrailerBytes)) {
      return DataLossError(StrFormat(
          "%s: truncated train.bin: the size prefix says %llu bytes follow it, and the "
          "16-byte checksum trailer after them; the file has %zu after the prefix (is the file "
          "truncated?)",
          path_.c_str(), static_cast<unsigned long long>(prefix), size - 4));
    }
    return DataLossError(StrFormat(
        "%s: corrupt train.bin: the size prefix says %llu bytes follow it (then the 16-byte "
        "checksum trailer), the file has %zu after the prefix",
        path_.c_str(), static_cast<unsigned long long>(prefix), size - 4));
  }
  const size_t body = size - kPlanTrailerBytes;
  uint64_t stored = 0;
  for (int i = 0; i < 8; ++i) stored |= static_cast<uint64_t>(data[body + 8 + i]) << (8 * i);
  const uint64_t computed = Checksum(data, body);
  if (stored != computed) {
    return DataLossError(
        path_ + ": corrupt train.bin: its checksum does not match its contents (stored " +
        ChecksumHex(stored) + ", computed " + ChecksumHex(computed) +
        "): the file changed after lorac wrote it (a flipped bit on disk or in transfer, an "
        "edit); compile it again");
  }
  fb::Verifier verifier(data, body, kPlanMaxDepth, kPlanMaxTables);
  if (!schema::VerifySizePrefixedPlanBuffer(verifier)) {
    uint32_t version = 0;
    if (ProbeFormatVersion(data, body, &version) && version != kPlanFormatVersion)
      return version_error(version);
    return DataLossError(path_ + ": corrupt train.bin: FlatBuffers verification failed");
  }
  const schema::Plan* root = schema::GetSizePrefixedPlan(data);
  if (root->format_version() != kPlanFormatVersion) return version_error(root->format_version());
  Validator validator(path_, *root);
  LORA_RETURN_IF_ERROR(validator.Run(&tensor_bytes_, &parameters_, &programs_));
  root_ = root;
  return OkStatus();
}

Status LoadPlan(const std::string& path, Plan* out) {
  *out = Plan();
  Plan plan;
  LORA_RETURN_IF_ERROR(plan.file_.Open(path));
  plan.data_ = plan.file_.data();
  plan.size_ = plan.file_.size();
  LORA_RETURN_IF_ERROR(plan.Init(path));
  *out = std::move(plan);
  return OkStatus();
}

Status ParsePlan(std::string_view bytes, const std::string& name, Plan* out) {
  *out = Plan();
  Plan plan;
  // FlatBuffers reads scalars in place: keep the copy 8-byte aligned.
  const size_t words = (bytes.size() + 7) / 8;
  plan.owned_.reset(new uint64_t[words > 0 ? words : 1]);
  if (!bytes.empty()) std::memcpy(plan.owned_.get(), bytes.data(), bytes.size());
  plan.data_ = reinterpret_cast<const uint8_t*>(plan.owned_.get());
  plan.size_ = bytes.size();
  LORA_RETURN_IF_ERROR(plan.Init(name));
  *out = std::move(plan);
  return OkStatus();
}

namespace {

// Bytes this process may still allocate: /proc/meminfo's MemAvailable, lowered
// to the cgroup's memory.max - memory.current where one is set. 0: unknown.
// LORART_AVAILABLE_MEMORY (bytes) overrides it (for tests).
uint64_t AvailableHostBytes() {
  if (const char* env = std::getenv("LORART_AVAILABLE_MEMORY"))
    return std::strtoull(env, nullptr, 10);
  uint64_t available = 0;
  if (std::FILE* f = std::fopen("/proc/meminfo", "r")) {
    char line[256];
    unsigned long long kib = 0;
    while (std::fgets(line, sizeof line, f))
      if (std::sscanf(line, "MemAvailable: %llu kB", &kib) == 1) available = kib * 1024;
    std::fclose(f);
  }
  auto read_u64 = [](const char* path, uint64_t* out) {
    std::FILE* f = std::fopen(path, "r");
    if (!f) return false;
    unsigned long long v = 0;
    const bool ok = std::fscanf(f, "%llu", &v) == 1;  // "max" is no limit
    std::fclose(f);
    *out = v;
    return ok;
  };
  uint64_t limit = 0, current = 0;
  if (read_u64("/sys/fs/cgroup/memory.max", &limit) &&
      read_u64("/sys/fs/cgroup/memory.current", &current)) {
    const uint64_t room = limit > current ? limit - current : 0;
    if (available == 0 || room < available) available = room;
  }
  return available;
}

}  // namespace

// The plan's persistent tensors (weights, adapters, optimizer state) and, on
// the CPU, its activation arena are allocated up front: a plan that cannot
// fit is refused here, with the figures, instead of growing into the OOM
// killer.
Status CheckPlanFitsHostMemory(const Plan& plan, bool arena_on_device) {
  uint64_t persistent = 0;
  for (uint32_t id = 0; id < plan.num_tensors(); ++id)
    if (plan.tensor(id).storage() != schema::Storage::Arena) persistent += plan.tensor_bytes(id);
  const uint64_t arena = arena_on_device ? 0 : plan.arena().size();
  const uint64_t needed = persistent + arena;
  const uint64_t available = AvailableHostBytes();
  if (available == 0 || needed <= available) return OkStatus();
  return InvalidArgumentError(StrFormat(
      "%s: the plan needs %s of memory (weights and training state %s, activations %s), but "
      "%s is available: recompile it to fit (a smaller --micro-batch or --seq-len, --remat "
      "layer or --remat auto with --memory-budget, --quantize-base nf4), or free memory",
      plan.path().c_str(), HumanBytes(needed).c_str(), HumanBytes(persistent).c_str(),
      HumanBytes(arena).c_str(), HumanBytes(available).c_str()));
}

}  // namespace lorart
