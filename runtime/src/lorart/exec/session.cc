#include "lorart/exec/session.h"

#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <type_traits>
#include <random>

#include "lorart/cpu/executor.h"
#include "lorart/cuda/executor.h"
#include "lorart/cuda/nvrtc.h"
#include "lorart/io/hf_config.h"
#include "lorart/io/mapped_file.h"
#include "lorart/io/safetensors.h"
#include "lorart/quant/nf4.h"

namespace lorart {

using cpu::TensorView;
using schema::Role;

namespace {

std::vector<int64_t> ShapeOf(const schema::Tensor& t) {
  std::vector<int64_t> shape;
  if (t.shape())
    for (int64_t d : *t.shape()) shape.push_back(d);
  return shape;
}

int64_t NumElements(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// A stable 64-bit hash of a name (FNV-1a), to seed per-tensor initialization
// independently of the order tensors are visited in.
uint64_t HashName(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

Status DecodeFloats(lorart::DType src, const uint8_t* data, int64_t n,
                     float* out, const std::string& what) {
  switch (src) {
    case lorart::DType::kF32:
      std::memcpy(out, data, sizeof(float) * n);
      return OkStatus();
    case lorart::DType::kBF16: {
      const uint16_t* p = reinterpret_cast<const uint16_t*>(data);
      for (int64_t i = 0; i < n; ++i) out[i] = cpu::Bf16ToFloat(p[i]);
      return OkStatus();
    }
    case lorart::DType::kF16: {
      const uint16_t* p = reinterpret_cast<const uint16_t*>(data);
      for (int64_t i = 0; i < n; ++i) out[i] = cpu::HalfToFloat(p[i]);
      return OkStatus();
    }
    default:
      return InvalidArgumentError(StrFormat("%s: dtype %s is not a float type (BF16, F16, F32)",
                                            what.c_str(), DTypeName(src)));
  }
}

Session::~Session() = default;

DType SafetensorsDType(schema::DType dtype) {
  switch (dtype) {
    case schema::DType::F32: return DType::kF32;
    case schema::DType::BF16: return DType::kBF16;
    case schema::DType::F16: return DType::kF16;
    case schema::DType::I32: return DType::kI32;
    case schema::DType::I64: return DType::kI64;
    default: return DType::kU8;
  }
}

Status Session::Open(const std::string& plan_path, const SessionOptions& options,
                     std::unique_ptr<Session>* out) {
  std::unique_ptr<Session> s(new Session());
  LORA_RETURN_IF_ERROR(LoadPlan(plan_path, &s->plan_));
  LORA_RETURN_IF_ERROR(s->Prepare(options), "while preparing %s", plan_path.c_str());
  *out = std::move(s);
  return OkStatus();
}

Status Session::Prepare(const SessionOptions& options) {
  DeviceKind device = options.device;
  std::string not_cuda;  // kAuto chose the CPU: why
  if (device == DeviceKind::kAuto) {
    Status why = cuda::CudaDeviceAvailable();
    if (why.ok()) why = cuda::CheckPlanHasCudaKernels(plan_);
    if (why.ok()) {
      StatusOr<const cuda::Nvrtc*> nvrtc = cuda::Nvrtc::Get();
      if (!nvrtc.ok()) why = nvrtc.status();
    }
    device = why.ok() ? DeviceKind::kCuda : DeviceKind::kCpu;
    not_cuda = why.message();
  }
  device_ = device;
  if (device == DeviceKind::kCuda) {
    // The arena lives on the device only.
    cuda::ExecutorOptions eo;
    eo.kernel_cache = options.kernel_cache;
    eo.compile_threads = options.num_threads;
    eo.device = options.cuda_device;  // 0 unless cuda:N, or a data-parallel rank's GPU
    eo.collective = options.collective;
    std::unique_ptr<cuda::Executor> gpu;
    LORA_RETURN_IF_ERROR(cuda::Executor::Create(plan_, eo, &gpu));
    executor_ = std::move(gpu);
  }

  LORA_RETURN_IF_ERROR(CheckPlanFitsHostMemory(plan_, device == DeviceKind::kCuda));

  uint32_t n = plan_.num_tensors();
  views_.resize(n);
  persistent_.resize(n);
  for (uint32_t id = 0; id < n; ++id) {
    const schema::Tensor& t = plan_.tensor(id);
    TensorView& v = views_[id];
    v.dtype = t.dtype();
    v.shape = ShapeOf(t);
    if (t.quant()) {
      v.nf4.block_size = t.quant()->block_size();
      v.nf4.double_quant_block = t.quant()->double_quant_block();
    }
    if (t.storage() != schema::Storage::Arena) {
      persistent_[id].assign(plan_.tensor_bytes(id), 0);
      v.data = persistent_[id].data();
      if (t.name()) persistent_by_name_[t.name()->str()] = id;
    }
  }
  // Masters by the schema's `of`, not by their names.
  for (uint32_t id = 0; id < plan_.num_tensors(); ++id) {
    const schema::Tensor& t = plan_.tensor(id);
    if (t.init() != schema::TensorInit::CopyOfOwner || !t.of()) continue;
    auto owner = persistent_by_name_.find(t.of()->str());
    if (owner != persistent_by_name_.end()) master_of_[owner->second] = id;
  }

  if (executor_) return OkStatus();
  // The CPU: the kernels use the host copies of the persistent tensors in
  // place (persistent_'s buffers are never reallocated after this), and
  // views_ gets the arena tensors' host memory.
  cpu::ExecutorOptions co;
  co.num_threads = options.num_threads;
  co.note = not_cuda;
  co.collective = options.collective;
  std::unique_ptr<cpu::Executor> host;
  LORA_RETURN_IF_ERROR(cpu::Executor::Create(plan_, co, &views_, &host));
  executor_ = std::move(host);
  return OkStatus();
}

Status Session::BeginHostWrite() {
  LORA_RETURN_IF_ERROR(SyncHost());
  device_current_ = false;
  return OkStatus();
}

Status Session::SyncDevice() {
  if (executor_->host_resident() || device_current_) return OkStatus();
  for (uint32_t id = 0; id < plan_.num_tensors(); ++id) {
    const schema::Tensor& t = plan_.tensor(id);
    if (t.storage() != schema::Storage::Persistent) continue;
    if (t.role() == Role::Frozen && frozen_on_device_) continue;
    LORA_RETURN_IF_ERROR(executor_->Write(id, persistent_[id].data(), persistent_[id].size()),
                         "uploading '%s'", t.name() ? t.name()->c_str() : "?");
  }
  device_current_ = true;
  frozen_on_device_ = true;
  return OkStatus();
}

Status Session::SyncHost() const {
  if (executor_->host_resident() || host_current_) return OkStatus();
  for (uint32_t id = 0; id < plan_.num_tensors(); ++id) {
    const schema::Tensor& t = plan_.tensor(id);
    if (t.storage() != schema::Storage::Persistent || t.role() == Role::Frozen) continue;
    LORA_RETURN_IF_ERROR(executor_->Read(id, persistent_[id].data(), persistent_[id].size()),
                         "downloading '%s'", t.name() ? t.name()->c_str() : "?");
  }
  host_current_ = true;
  return OkStatus();
}

std::string Session::DeviceDescription() const {
  if (device_ == DeviceKind::kCuda) return "cuda: " + executor_->description();
  return executor_->description();
}

StatusOr<DeviceKind> ParseDevice(const std::string& name, int* cuda_ordinal) {
  if (cuda_ordinal) *cuda_ordinal = 0;
  if (name == "cpu") return DeviceKind::kCpu;
  if (name == "cuda") return DeviceKind::kCuda;
  if (name == "auto") return DeviceKind::kAuto;
  if (name.rfind("cuda:", 0) == 0 && name.size() > 5 && name.size() <= 8 &&
      name.find_first_not_of("0123456789", 5) == std::string::npos) {
    if (cuda_ordinal) *cuda_ordinal = std::stoi(name.substr(5));
    return DeviceKind::kCuda;
  }
  return InvalidArgumentError("--device must be cpu, cuda, cuda:N (a GPU's ordinal) or auto, got '" +
                              name + "'");
}

namespace {

// "none", or the scaling's kind and every parameter the kind reads (from a
// config.json, or from the plan).
std::string DescribeRopeScaling(const std::optional<hf::RopeScaling>& r) {
  if (!r) return "none";
  if (r->type == "linear") return StrFormat("linear (factor %g)", r->factor);
  return StrFormat(
      "%s (factor %g, low_freq_factor %g, high_freq_factor %g, "
      "original_max_position_embeddings %lld)",
      r->type.c_str(), r->factor, r->lowFreqFactor, r->highFreqFactor,
      static_cast<long long>(r->originalMaxPositionEmbeddings));
}
std::string DescribeRopeScaling(const schema::RopeScaling* r) {
  if (r == nullptr || r->kind() == schema::RopeScalingKind::None) return "none";
  hf::RopeScaling h;
  h.type = r->kind() == schema::RopeScalingKind::Linear ? "linear" : "llama3";
  h.factor = r->factor();
  h.lowFreqFactor = r->low_freq_factor();
  h.highFreqFactor = r->high_freq_factor();
  h.originalMaxPositionEmbeddings = static_cast<int64_t>(r->original_max_position_embeddings());
  return DescribeRopeScaling(std::optional<hf::RopeScaling>(h));
}

// The first difference between the plan's model and the base directory's
// config.json (if it has one), and any tensor of a layer the plan lacks.
Status CheckBaseMatchesPlan(const Plan& plan, const std::string& model_dir,
                            const SafetensorsModel& model) {
  const schema::ModelConfig* m = &plan.model();
  const std::string config_path = model_dir + "/config.json";
  struct stat st;
  if (::stat(config_path.c_str(), &st) == 0) {
    StatusOr<hf::ModelConfig> parsed = hf::ParseModelConfig(config_path);
    if (!parsed.ok()) {
      Status st = parsed.status();
      st.WithContext("while checking the base against the plan");
      return st;
    }
    const hf::ModelConfig& c = *parsed;
    auto differ = [&](const char* key, const std::string& base, const std::string& planned) {
      return InvalidArgumentError(StrFormat(
          "%s: %s is %s, but the plan was compiled for %s (a plan is tied to the base it was "
          "compiled for: recompile it for this base)",
          config_path.c_str(), key, base.c_str(), planned.c_str()));
    };
    const std::string arch = m->architecture() ? m->architecture()->str() : "";
    const std::string base_arch = hf::ArchitectureName(c.architecture);
    if (base_arch != arch) return differ("architecture", base_arch, arch);
    const std::pair<const char*, std::pair<int64_t, uint64_t>> sizes[] = {
        {"hidden_size", {c.hiddenSize, m->hidden_size()}},
        {"intermediate_size", {c.intermediateSize, m->intermediate_size()}},
        {"num_hidden_layers", {c.numHiddenLayers, m->num_hidden_layers()}},
        {"num_attention_heads", {c.numAttentionHeads, m->num_attention_heads()}},
        {"num_key_value_heads", {c.numKeyValueHeads, m->num_key_value_heads()}},
        {"head_dim", {c.headDim, m->head_dim()}},
        {"vocab_size", {c.vocabSize, m->vocab_size()}},
    };
    for (const auto& [key, v] : sizes)
      if (static_cast<uint64_t>(v.first) != v.second)
        return differ(key, std::to_string(v.first), std::to_string(v.second));
    auto yes = [](bool b) { return std::string(b ? "true" : "false"); };
    if (c.tieWordEmbeddings != m->tie_word_embeddings())
      return differ("tie_word_embeddings", yes(c.tieWordEmbeddings), yes(m->tie_word_embeddings()));
    if (c.attentionBias != m->attention_bias())
      return differ("attention_bias", yes(c.attentionBias), yes(m->attention_bias()));
    if (c.rmsNormEps != m->rms_norm_eps())
      return differ("rms_norm_eps", StrFormat("%g", c.rmsNormEps),
                    StrFormat("%g", m->rms_norm_eps()));
    if (c.ropeTheta != m->rope_theta())
      return differ("rope_theta", StrFormat("%g", c.ropeTheta), StrFormat("%g", m->rope_theta()));
    // RoPE scaling and the attention window change every position's
    // attention: compared in full, with the values the compiler took.
    const std::string base_scaling = DescribeRopeScaling(c.ropeScaling);
    const std::string plan_scaling = DescribeRopeScaling(m->rope_scaling());
    if (base_scaling != plan_scaling) return differ("rope_scaling", base_scaling, plan_scaling);
    const uint64_t window = static_cast<uint64_t>(c.slidingWindow.value_or(0));
    if (window != m->sliding_window()) {
      auto shown = [](uint64_t w) { return w == 0 ? std::string("none") : std::to_string(w); };
      return differ("the sliding window", shown(window), shown(m->sliding_window()));
    }
    // (The o_proj and MLP biases are not compared: the plan does not record
    // them from the config; binding finds their tensors or their absence.)
  }
  // A base with more layers than the plan (and no config.json to say so).
  const std::string prefix = "model.layers.";
  for (const SafetensorsHeader& shard : model.shards)
    for (const TensorInfo& info : shard.tensors) {
      const std::string& name = info.name;
      if (name.compare(0, prefix.size(), prefix) != 0) continue;
      const uint64_t layer = std::strtoull(name.c_str() + prefix.size(), nullptr, 10);
      if (layer >= m->num_hidden_layers())
        return InvalidArgumentError(StrFormat(
            "%s: tensor '%s' belongs to layer %llu, but the plan was compiled for %llu layers "
            "(a plan is tied to the base it was compiled for: recompile it for this base)",
            shard.path.c_str(), name.c_str(), static_cast<unsigned long long>(layer),
            static_cast<unsigned long long>(m->num_hidden_layers())));
    }
  return OkStatus();
}

}  // namespace

Status CheckFiniteValues(const float* x, int64_t n, const std::string& what,
                         const std::string& hint) {
  bool bad = false;
#pragma omp simd reduction(| : bad)
  for (int64_t i = 0; i < n; ++i) bad |= !std::isfinite(x[i]);
  if (!bad) return OkStatus();
  int64_t count = 0, first = -1;
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) {
      if (first < 0) first = i;
      ++count;
    }
  return InvalidArgumentError(StrFormat("%s has %lld non-finite values (the first at element "
                                        "%lld: %g)",
                                        what.c_str(), static_cast<long long>(count),
                                        static_cast<long long>(first),
                                        static_cast<double>(x[first])) +
                              hint);
}

Status Session::BindWeights(const std::string& model_dir, bool allow_nonfinite) {
  LORA_RETURN_IF_ERROR(BeginHostWrite());
  frozen_on_device_ = false;
  SafetensorsModel model;
  LORA_RETURN_IF_ERROR(OpenSafetensorsModelHeaders(model_dir, &model));
  LORA_RETURN_IF_ERROR(CheckBaseMatchesPlan(plan_, model_dir, model));
  std::vector<MappedFile> files(model.shards.size());
  for (size_t i = 0; i < model.shards.size(); ++i)
    LORA_RETURN_IF_ERROR(files[i].Open(model.shards[i].path));
  for (uint32_t id = 0; id < plan_.num_tensors(); ++id) {
    const schema::Tensor& t = plan_.tensor(id);
    if (t.init() != schema::TensorInit::Checkpoint) continue;
    std::string name = t.name()->str();
    const SafetensorsHeader* shard = nullptr;
    const TensorInfo* info = model.Find(name, &shard);
    if (!info)
      return NotFoundError(StrFormat("%s: no tensor '%s' in the model's safetensors",
                                     model_dir.c_str(), name.c_str()));
    TensorView& v = views_[id];
    if (info->shape != v.shape)
      return InvalidArgumentError(StrFormat("%s: tensor '%s' has shape %s, the plan needs %s",
                                            shard->path.c_str(), name.c_str(),
                                            ShapeToString(info->shape).c_str(),
                                            ShapeToString(v.shape).c_str()));
    size_t s = static_cast<size_t>(shard - model.shards.data());
    const uint8_t* src = files[s].data() + shard->DataOffset() + info->begin;
    int64_t count = NumElements(v.shape);
    std::string what = shard->path + ": tensor '" + name + "'";
    const std::string hint =
        "; a NaN or Inf weight trains to NaN (lorart run --allow-nonfinite-weights binds it "
        "anyway)";
    if (v.dtype != schema::DType::NF4) {
      // Dense: decoded and stored a chunk at a time, and each chunk's pages
      // of the mapped file released once stored, so that binding holds the
      // bound weights plus one chunk, not a second copy of the model.
      constexpr int64_t kChunk = int64_t{1} << 20;
      const int64_t esize = static_cast<int64_t>(DTypeSize(info->dtype));
      std::vector<float> tmp(static_cast<size_t>(std::min(count, kChunk)));
      for (int64_t off = 0; off < count; off += kChunk) {
        const int64_t len = std::min(kChunk, count - off);
        const uint8_t* at = src + off * esize;
        LORA_RETURN_IF_ERROR(DecodeFloats(info->dtype, at, len, tmp.data(), what));
        if (!allow_nonfinite && !CheckFiniteValues(tmp.data(), len, what).ok()) {
          // The error counts the whole tensor.
          std::vector<float> all(static_cast<size_t>(count));
          LORA_RETURN_IF_ERROR(DecodeFloats(info->dtype, src, count, all.data(), what));
          return CheckFiniteValues(all.data(), count, what, hint);
        }
        cpu::FromFloat(tmp.data(), len, v, off);
        files[s].Release(at, static_cast<size_t>(len * esize));
      }
      continue;
    }
    std::vector<float> tmp(static_cast<size_t>(count));
    LORA_RETURN_IF_ERROR(DecodeFloats(info->dtype, src, count, tmp.data(), what));
    if (!allow_nonfinite) LORA_RETURN_IF_ERROR(CheckFiniteValues(tmp.data(), count, what, hint));
    files[s].Release(src, static_cast<size_t>(count) * DTypeSize(info->dtype));
    StatusOr<Nf4Layout> layout = Nf4Layout::Make(count, v.nf4.block_size, v.nf4.double_quant_block);
    if (!layout.ok()) return layout.status();
    LORA_RETURN_IF_ERROR(QuantizeNf4(tmp.data(), count, *layout, persistent_[id].data(),
                                     static_cast<int64_t>(persistent_[id].size())),
                         "while quantizing %s to NF4", name.c_str());
  }
  return OkStatus();
}

bool Session::HasEwcPenalty() const {
  for (uint32_t id = 0; id < plan_.num_tensors(); ++id)
    if (plan_.tensor(id).init() == schema::TensorInit::Fisher) return true;
  return false;
}

Status Session::BindFisher(const std::string& path) {
  SafetensorsHeader header;
  LORA_RETURN_IF_ERROR(ReadSafetensorsHeader(path, &header));
  MappedFile file;
  LORA_RETURN_IF_ERROR(file.Open(path));
  LORA_RETURN_IF_ERROR(BeginHostWrite());
  frozen_on_device_ = false;
  for (uint32_t id = 0; id < plan_.num_tensors(); ++id) {
    const schema::Tensor& t = plan_.tensor(id);
    if (t.init() != schema::TensorInit::Fisher || !t.of()) continue;
    std::string weight = t.of()->str();
    const TensorInfo* info = header.Find(weight);
    if (!info)
      return NotFoundError(StrFormat("%s: no Fisher for '%s' (made by lorart fisher for "
                                     "another model or other layers?)",
                                     path.c_str(), weight.c_str()));
    TensorView& v = views_[id];
    if (info->shape != v.shape)
      return InvalidArgumentError(StrFormat("%s: the Fisher of '%s' has shape %s, the plan needs %s",
                                            path.c_str(), weight.c_str(),
                                            ShapeToString(info->shape).c_str(),
                                            ShapeToString(v.shape).c_str()));
    std::vector<float> tmp(static_cast<size_t>(v.numel()));
    LORA_RETURN_IF_ERROR(DecodeFloats(info->dtype, file.data() + header.DataOffset() + info->begin,
                                      v.numel(), tmp.data(), path + ": '" + weight + "'"));
    for (float x : tmp)
      if (!(x >= 0) || !std::isfinite(x))
        return InvalidArgumentError(StrFormat("%s: the Fisher of '%s' has a negative or "
                                              "non-finite value",
                                              path.c_str(), weight.c_str()));
    cpu::FromFloat(tmp.data(), v.numel(), v, 0);
  }
  return OkStatus();
}

Status Session::SetWeight(const std::string& name, const float* values, int64_t count) {
  auto it = persistent_by_name_.find(name);
  if (it == persistent_by_name_.end() ||
      plan_.tensor(it->second).init() != schema::TensorInit::Checkpoint)
    return NotFoundError(StrFormat("the plan has no checkpoint tensor '%s'", name.c_str()));
  uint32_t id = it->second;
  TensorView& v = views_[id];
  if (count != v.numel())
    return InvalidArgumentError(StrFormat("tensor '%s' has %lld elements, got %lld", name.c_str(),
                                          static_cast<long long>(v.numel()),
                                          static_cast<long long>(count)));
  LORA_RETURN_IF_ERROR(BeginHostWrite());
  frozen_on_device_ = false;
  if (v.dtype == schema::DType::NF4) {
    StatusOr<Nf4Layout> layout = Nf4Layout::Make(count, v.nf4.block_size, v.nf4.double_quant_block);
    if (!layout.ok()) return layout.status();
    return QuantizeNf4(values, count, *layout, persistent_[id].data(),
                       static_cast<int64_t>(persistent_[id].size()));
  }
  cpu::FromFloat(values, count, v, 0);
  return OkStatus();
}

Status Session::InitTrainable(uint64_t seed) {
  LORA_RETURN_IF_ERROR(BeginHostWrite());
  // Trainable tensors first, then the state copied from them.
  for (uint32_t id = 0; id < plan_.num_tensors(); ++id) {
    const schema::Tensor& t = plan_.tensor(id);
    if (t.storage() != schema::Storage::Persistent) continue;
    TensorView& v = views_[id];
    if (t.init() == schema::TensorInit::Zeros) {
      std::memset(v.data, 0, persistent_[id].size());
    } else if (t.init() == schema::TensorInit::KaimingUniform) {
      // PEFT: kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
      int64_t fan_in = v.shape.empty() ? 1 : v.shape.back();
      float bound = 1.0f / std::sqrt(static_cast<float>(fan_in));
      std::mt19937_64 rng(seed ^ HashName(t.name()->str()));
      std::uniform_real_distribution<float> dist(-bound, bound);
      for (int64_t i = 0; i < v.numel(); ++i) cpu::StoreFloat(v, i, dist(rng));
    }
  }
  for (uint32_t id = 0; id < plan_.num_tensors(); ++id) {
    const schema::Tensor& t = plan_.tensor(id);
    if (t.init() != schema::TensorInit::CopyOfOwner) continue;
    const TensorView* owner = FindPersistent(t.of()->str());
    if (!owner)
      return InternalError(StrFormat("tensor '%s' copies missing owner '%s'",
                                     t.name()->c_str(), t.of()->c_str()));
    cpu::ToFloat(*owner, 0, owner->numel(), views_[id].as<float>());
  }
  return OkStatus();
}

Status Session::SetTrainable(const std::string& name, const float* values, int64_t count) {
  auto it = persistent_by_name_.find(name);
  if (it == persistent_by_name_.end() || plan_.tensor(it->second).role() != Role::Trainable)
    return NotFoundError(StrFormat("the plan has no trainable tensor '%s'", name.c_str()));
  uint32_t id = it->second;
  TensorView& v = views_[id];
  if (count != v.numel())
    return InvalidArgumentError(StrFormat("tensor '%s' has %lld elements, got %lld", name.c_str(),
                                          static_cast<long long>(v.numel()),
                                          static_cast<long long>(count)));
  LORA_RETURN_IF_ERROR(BeginHostWrite());
  cpu::FromFloat(values, count, v, 0);
  auto master = master_of_.find(id);
  if (master != master_of_.end())
    std::memcpy(views_[master->second].data, values, sizeof(float) * count);
  return OkStatus();
}

template <typename Port>
Status Session::FindPortTensor(const std::string& program, Port port, uint32_t* id) const {
  constexpr bool kInput = std::is_same_v<Port, schema::InputPort>;
  if (!plan_.FindProgram(program))
    return NotFoundError(StrFormat("the plan has no program '%s'", program.c_str()));
  int64_t t = -1;
  if constexpr (kInput) {
    t = plan_.FindInput(program, port);
  } else {
    t = plan_.FindOutput(program, port);
  }
  if (t < 0)
    return NotFoundError(StrFormat("program '%s' has no %s '%s'", program.c_str(),
                                   kInput ? "input" : "output", PortName(port).c_str()));
  *id = static_cast<uint32_t>(t);
  return OkStatus();
}

Status Session::SetInput(const std::string& program, schema::InputPort port, const void* data,
                         size_t bytes) {
  uint32_t id = 0;
  LORA_RETURN_IF_ERROR(FindPortTensor(program, port, &id));
  if (bytes != plan_.tensor_bytes(id))
    return InvalidArgumentError(StrFormat(
        "%s input '%s' takes %llu bytes, got %zu", program.c_str(), PortName(port).c_str(),
        static_cast<unsigned long long>(plan_.tensor_bytes(id)), bytes));
  if (plan_.tensor(id).storage() == schema::Storage::Arena)
    return executor_->Write(id, data, bytes);
  // A persistent input goes to the host copy, and to the device's when the
  // executor has its own.
  std::memcpy(views_[id].data, data, bytes);
  if (executor_->host_resident()) return OkStatus();
  return executor_->Write(id, data, bytes);
}

Status Session::GetOutput(const std::string& program, schema::OutputPort port, void* data,
                          size_t bytes) const {
  uint32_t id = 0;
  LORA_RETURN_IF_ERROR(FindPortTensor(program, port, &id));
  if (bytes != plan_.tensor_bytes(id))
    return InvalidArgumentError(StrFormat(
        "%s output '%s' has %llu bytes, asked for %zu", program.c_str(), PortName(port).c_str(),
        static_cast<unsigned long long>(plan_.tensor_bytes(id)), bytes));
  if (plan_.tensor(id).storage() == schema::Storage::Arena ||
      (!executor_->host_resident() && !host_current_))
    return executor_->Read(id, data, bytes);
  std::memcpy(data, views_[id].data, bytes);
  return OkStatus();
}

Status Session::SetScalar(const std::string& program, schema::InputPort port, float value) {
  return SetInput(program, port, &value, sizeof value);
}

StatusOr<double> Session::GetScalar(const std::string& program, schema::OutputPort port) const {
  uint32_t id = 0;
  LORA_RETURN_IF_ERROR(FindPortTensor(program, port, &id));
  const TensorView& v = views_[id];
  // The loader checked each port's dtype and rank (PortRule).
  if (v.numel() != 1)
    return InvalidArgumentError(StrFormat("output '%s' is not a scalar", PortName(port).c_str()));
  union {
    float f;
    int64_t i64;
    int32_t i32;
  } value;
  switch (v.dtype) {
    case schema::DType::F32:
    case schema::DType::I64:
    case schema::DType::I32:
      LORA_RETURN_IF_ERROR(GetOutput(program, port, &value, plan_.tensor_bytes(id)));
      break;
    default:
      return InvalidArgumentError(StrFormat("output '%s' is not a scalar", PortName(port).c_str()));
  }
  switch (v.dtype) {
    case schema::DType::F32: return static_cast<double>(value.f);
    case schema::DType::I64: return static_cast<double>(value.i64);
    default: return static_cast<double>(value.i32);
  }
}

Status Session::Run(const std::string& program, uint64_t step_seed,
                    std::vector<double>* launch_ms) {
  const schema::Program* p = plan_.FindProgram(program);
  if (!p) return NotFoundError(StrFormat("the plan has no program '%s'", program.c_str()));
  LORA_RETURN_IF_ERROR(SyncDevice());
  if (!executor_->host_resident()) host_current_ = false;
  return executor_->Run(program, step_seed, launch_ms);
}

Status Session::ZeroGradients() {
  for (uint32_t id = 0; id < plan_.num_tensors(); ++id) {
    if (plan_.tensor(id).role() != Role::Gradient) continue;
    // A device executor's gradients are zeroed in place; the host copy too,
    // which leaves it as current as it was.
    if (!executor_->host_resident()) LORA_RETURN_IF_ERROR(executor_->Zero(id));
    std::memset(views_[id].data, 0, persistent_[id].size());
  }
  return OkStatus();
}

StatusOr<std::vector<Session::StateTensor>> Session::State() const {
  LORA_RETURN_IF_ERROR(SyncHost());
  std::vector<StateTensor> out;
  for (uint32_t id = 0; id < plan_.num_tensors(); ++id) {
    const schema::Tensor& t = plan_.tensor(id);
    if (t.storage() != schema::Storage::Persistent || t.role() == Role::Frozen) continue;
    out.push_back({t.name()->str(), t.role(), t.of() ? t.of()->str() : std::string(), t.dtype(),
                   views_[id].shape, persistent_[id].data(), persistent_[id].size()});
  }
  return out;
}

Status Session::SetState(const std::string& name, const void* data, uint64_t bytes) {
  LORA_RETURN_IF_ERROR(BeginHostWrite());
  auto it = persistent_by_name_.find(name);
  if (it == persistent_by_name_.end())
    return NotFoundError(StrFormat("the plan has no state tensor '%s'", name.c_str()));
  if (persistent_[it->second].size() != bytes)
    return InvalidArgumentError(StrFormat("state tensor '%s' has %zu bytes, got %llu",
                                          name.c_str(), persistent_[it->second].size(),
                                          static_cast<unsigned long long>(bytes)));
  std::memcpy(persistent_[it->second].data(), data, bytes);
  return OkStatus();
}

const TensorView* Session::FindPersistent(const std::string& name) const {
  auto it = persistent_by_name_.find(name);
  return it == persistent_by_name_.end() ? nullptr : &views_[it->second];
}

const TensorView* Session::FindMaster(const std::string& name) const {
  auto it = persistent_by_name_.find(name);
  if (it == persistent_by_name_.end()) return nullptr;
  auto master = master_of_.find(it->second);
  return master == master_of_.end() ? nullptr : &views_[master->second];
}

}  // namespace lorart
