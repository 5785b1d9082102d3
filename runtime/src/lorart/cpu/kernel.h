// The CPU backend's kernel ABI: every kernel kind of the plan (the `kind` of
// schema::Kernel, chosen by the compiler's lora-lower-to-kernels) is a
// function over tensor views. The executor binds a launch's input and output
// tensor ids to views and calls the kernel; kernels never allocate arena
// memory, decide nothing about the graph, and return a Status on bad
// parameters (never abort).
//
// Operand order is the order of the MLIR op's operands; results likewise.
// Optional operands (a bias, an adapter's A and B, attention segment ids)
// are present exactly when the kernel's params say so (`bias`, `rank`,
// `segments`). docs/kernels.md lists every kind.
#ifndef LORART_CPU_KERNEL_H_
#define LORART_CPU_KERNEL_H_

#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "lorart/base/status.h"
#include "lorart/plan/kernel_params.h"
#include "lorart/schema/train_bin_generated.h"

namespace lorart::dist {
class Collective;
}  // namespace lorart::dist

namespace lorart::cpu {

using schema::DType;

// A view of one tensor. Dense tensors are row-major. NF4 tensors use the
// layout of lorart/quant/nf4.h (codes, then scales), described by `nf4`.
struct TensorView {
  void* data = nullptr;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  struct Nf4 {
    int64_t block_size = 0;
    int64_t double_quant_block = 0;  // 0: float32 absmax per block
  } nf4;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data);
  }
};

// A kernel's parameters (schema::KernelParam) by key, read by the kernels as
// their kind's typed struct through Typed().
class KernelParams {
 public:
  using Value = std::variant<int64_t, double, std::string>;
  void Set(std::string key, Value v) { values_[std::move(key)] = std::move(v); }
  bool Has(std::string_view key) const { return values_.count(std::string(key)) != 0; }
  // The parameters as the typed struct of the kernel's kind
  // (lorart/plan/kernel_params.h, generated from kernel_kinds.def): kernels
  // read fields, never keys. A missing required parameter is an error naming
  // it and the kind (the plan loader refuses such plans before they run).
  template <class P>
  Status Typed(P* out) const {
    std::string missing;
    if (!kernels::ReadParams(*this, out, &missing)) return MissingError(missing);
    return OkStatus();
  }
  // All parameters as the variant of the kind's struct (an unknown kind is
  // an error).
  Status TypedAny(kernels::AnyParams* out) const {
    std::optional<kernels::Kind> kind = kernels::KindOf(kind_);
    if (!kind) return InvalidArgumentError("kernel kind '" + kind_ + "' is unknown");
    std::string missing;
    if (!kernels::ReadAnyParams(*kind, *this, out, &missing)) return MissingError(missing);
    return OkStatus();
  }
  // kernel_params.h's source interface: whether the parameter is present
  // with a value of that type (its readers take an integer for a float).
  bool Get(const char* key, int64_t* out) const;
  bool Get(const char* key, double* out) const;
  bool Get(const char* key, std::string* out) const;
  const std::string& kind() const { return kind_; }
  void set_kind(std::string kind) { kind_ = std::move(kind); }
  // Every parameter, by key.
  const std::map<std::string, Value, std::less<>>& values() const { return values_; }

 private:
  Status MissingError(const std::string& name) const {
    return InvalidArgumentError("kernel '" + kind_ + "': required parameter '" + name +
                                "' is missing");
  }

  std::string kind_;
  std::map<std::string, Value, std::less<>> values_;
};

// The params of a plan's kernel (schema::KernelParam) with its kind.
// Unimplemented for list-valued params, which no CPU kernel takes.
Status KernelParamsFromPlan(const schema::Kernel& kernel, KernelParams* out);

// What a kernel may know about the step it runs in.
struct KernelContext {
  // Seed of this micro-step's dropout masks (0 when no dropout is drawn).
  uint64_t step_seed = 0;
  int num_threads = 1;
  // The run's ranks, for the collective kernels (collectives.cc); null: one
  // process.
  dist::Collective* collective = nullptr;
};

using KernelFn = Status (*)(const KernelContext& ctx, const KernelParams& params,
                            const std::vector<TensorView>& inputs,
                            const std::vector<TensorView>& outputs);

// The kernel registry: every kind the CPU backend implements. Each kernel
// family's file defines one Register*Kernels function that calls
// RegisterKernel for its kinds; LookupKernel registers all families once.
// (Explicit calls rather than static initializers: nothing is lost when the
// library is linked statically.)
void RegisterKernel(const char* kind, KernelFn fn);
void RegisterLinearKernels();       // linear.cc: matmuls, LoRA, embedding, dequantize
void RegisterLmHeadKernels();       // lm_head.cc: logits, chunked LM head + cross-entropy
void RegisterLossKernels();         // losses.cc: cross-entropy, log-probs, DPO, replay, EWC
void RegisterNormKernels();         // norms.cc: RMSNorm
void RegisterElementwiseKernels();  // elementwise.cc: RoPE, SwiGLU, masks, casts, copies
void RegisterAttentionKernels();    // attention.cc
void RegisterOptimizerKernels();    // optimizer.cc: AdamW, global norm, clip scale
void RegisterSelectKernels();       // select.cc: select_rows (generation)
void RegisterCollectiveKernels();   // collectives.cc: data-parallel sums over the ranks
// NotFound naming the kind when the backend has no such kernel.
Status LookupKernel(std::string_view kind, KernelFn* out);
std::vector<std::string> RegisteredKernels();

// Dropout (inverted, as PyTorch/PEFT): element `index` of the input of the
// adapter with stream `stream` is kept at step seed `seed` when
// KeepDropout(...) is true, and then scaled by 1 / (1 - p). Forward,
// backward and recomputed kernels call it with the same arguments and so
// draw the same mask. Counter-based (SplitMix64 of the three values), so any
// thread can draw any element.
//
// The seed and stream enter only through DropoutKey(seed, stream): a CUDA
// kernel that draws masks receives that key (one u64 the executor computes
// per launch and micro-step) as its last argument, so its source does not
// depend on the stream and kernels of the same shape are compiled once.
inline uint64_t DropoutKey(uint64_t seed, uint64_t stream) {
  return seed * 0x9E3779B97F4A7C15ull ^ stream * 0xC2B2AE3D27D4EB4Full;
}
// The hash of element `index` given key = DropoutKey(seed, stream) (loops
// over many elements compute the key once).
inline uint64_t DropoutHashOfKey(uint64_t key, uint64_t index) {
  uint64_t z = key ^ (index + 0x165667B19E3779F9ull);
  z ^= z >> 30;
  z *= 0xBF58476D1CE4E5B9ull;
  z ^= z >> 27;
  z *= 0x94D049BB133111EBull;
  z ^= z >> 31;
  return z;
}
inline uint64_t DropoutHash(uint64_t seed, uint64_t stream, uint64_t index) {
  return DropoutHashOfKey(DropoutKey(seed, stream), index);
}
inline bool KeepDropout(uint64_t seed, uint64_t stream, uint64_t index, double p) {
  if (p <= 0.0) return true;
  // Compare the top 53 bits as a uniform double in [0, 1).
  double u = static_cast<double>(DropoutHash(seed, stream, index) >> 11) * 0x1.0p-53;
  return u >= p;
}

// keep[i] = KeepDropout(seed, stream, first + i, p) for i in [0, n), the
// same mask drawn many elements at a time: the comparison of the uniform
// double u = (hash >> 11)·2⁻⁵³ with p is done exactly on the integer,
// (hash >> 11) >= ceil(p·2⁵³), so the loop vectorizes (64-bit multiplies
// with AVX-512 where the CPU has it; kernel.cc compiles it per level).
void DropoutKeepMask(uint64_t seed, uint64_t stream, uint64_t first, int64_t n, double p,
                     uint8_t* keep);
// values[i] = keep[i] ? values[i] · inv : 0 (a mask DropoutKeepMask drew).
void ApplyKeepMask(const uint8_t* keep, int64_t n, float inv, float* values);
// The same from src into dst (not overlapping): dropout of an f32 tensor
// without first copying it.
void ApplyKeepMaskTo(const uint8_t* keep, int64_t n, float inv, const float* src, float* dst);
// keep ? v : +0, on the bits, branch-free: GCC vectorizes loops of it (it
// left the `?:` select a branch per element).
inline float KeptOrZero(float v, uint8_t keep) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  bits &= 0u - static_cast<uint32_t>(keep != 0);
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

// bf16 <-> f32 (round to nearest even; NaN stays NaN).
inline float Bf16ToFloat(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}
// Branch-free, so that loops over it vectorize.
inline uint16_t FloatToBf16(float f) {
  uint32_t u;
  __builtin_memcpy(&u, &f, 4);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const uint32_t quiet = (u >> 16) | 0x40u;
  return static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? quiet : rounded);
}
float HalfToFloat(uint16_t h);
uint16_t FloatToHalf(float f);

// Element i of a float tensor (F32, BF16, F16) as float / stored from float.
inline float LoadFloat(const TensorView& t, int64_t i) {
  switch (t.dtype) {
    case DType::F32:
      return t.as<const float>()[i];
    case DType::BF16:
      return Bf16ToFloat(t.as<const uint16_t>()[i]);
    case DType::F16:
      return HalfToFloat(t.as<const uint16_t>()[i]);
    default:
      return 0.0f;
  }
}
inline void StoreFloat(const TensorView& t, int64_t i, float v) {
  switch (t.dtype) {
    case DType::F32:
      t.as<float>()[i] = v;
      break;
    case DType::BF16:
      t.as<uint16_t>()[i] = FloatToBf16(v);
      break;
    case DType::F16:
      t.as<uint16_t>()[i] = FloatToHalf(v);
      break;
    default:
      break;
  }
}
// Converts n elements of a float tensor starting at `offset` to f32 / back.
void ToFloat(const TensorView& t, int64_t offset, int64_t n, float* out);
void FromFloat(const float* in, int64_t n, const TensorView& t, int64_t offset);

// Checks shared by kernels; errors name the kernel kind and the operand.
Status ExpectArity(const KernelParams& p, const std::vector<TensorView>& in, size_t n_in,
                   const std::vector<TensorView>& out, size_t n_out);
Status ExpectFloat(const KernelParams& p, const TensorView& t, const char* what);
Status ExpectElements(const KernelParams& p, const TensorView& t, int64_t n, const char* what);

}  // namespace lorart::cpu

#endif  // LORART_CPU_KERNEL_H_
