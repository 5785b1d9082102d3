// The kernel registry and the helpers of kernel.h.
#include "lorart/cpu/kernel.h"

#include "lorart/cpu/isa.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>

namespace lorart::cpu {

namespace {
std::map<std::string, KernelFn, std::less<>>& Registry() {
  static std::map<std::string, KernelFn, std::less<>> registry;
  return registry;
}

void EnsureRegistered() {
  static std::once_flag once;
  std::call_once(once, [] {
    RegisterLinearKernels();
    RegisterLmHeadKernels();
    RegisterLossKernels();
    RegisterNormKernels();
    RegisterElementwiseKernels();
    RegisterAttentionKernels();
    RegisterOptimizerKernels();
    RegisterSelectKernels();
    RegisterCollectiveKernels();
  });
}
}  // namespace

void RegisterKernel(const char* kind, KernelFn fn) { Registry()[kind] = fn; }

Status LookupKernel(std::string_view kind, KernelFn* out) {
  EnsureRegistered();
  auto it = Registry().find(kind);
  if (it == Registry().end())
    return NotFoundError(StrFormat("the CPU backend has no kernel '%.*s'",
                                   static_cast<int>(kind.size()), kind.data()));
  *out = it->second;
  return OkStatus();
}

std::vector<std::string> RegisteredKernels() {
  EnsureRegistered();
  std::vector<std::string> kinds;
  for (const auto& [k, fn] : Registry()) kinds.push_back(k);
  return kinds;
}

bool KernelParams::Get(const char* key, int64_t* out) const {
  auto it = values_.find(std::string_view(key));
  if (it == values_.end() || !std::holds_alternative<int64_t>(it->second)) return false;
  *out = std::get<int64_t>(it->second);
  return true;
}

bool KernelParams::Get(const char* key, double* out) const {
  auto it = values_.find(std::string_view(key));
  if (it == values_.end() || !std::holds_alternative<double>(it->second)) return false;
  *out = std::get<double>(it->second);
  return true;
}

bool KernelParams::Get(const char* key, std::string* out) const {
  auto it = values_.find(std::string_view(key));
  if (it == values_.end() || !std::holds_alternative<std::string>(it->second)) return false;
  *out = std::get<std::string>(it->second);
  return true;
}

float HalfToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  uint32_t u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal
      int e = -1;
      do {
        ++e;
        man <<= 1;
      } while ((man & 0x400u) == 0);
      u = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (man << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t FloatToHalf(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000u;
  int32_t exp = static_cast<int32_t>((u >> 23) & 0xff) - 127 + 15;
  uint32_t man = u & 0x7fffffu;
  if (((u >> 23) & 0xff) == 0xff) return static_cast<uint16_t>(sign | 0x7c00u | (man ? 0x200u : 0));
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  if (exp <= 0) {
    if (exp < -10) return static_cast<uint16_t>(sign);
    man |= 0x800000u;
    uint32_t shift = static_cast<uint32_t>(14 - exp);
    uint32_t half = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = sign | (static_cast<uint32_t>(exp) << 10) | (man >> 13);
  uint32_t rem = man & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) ++half;
  return static_cast<uint16_t>(half);
}

// The conversions and the dropout mask run over every activation; they are
// multiversioned (LORART_CPU_CLONES, isa.h), so their loops use the host's
// vectors.

namespace {
// h >= ceil(p·2⁵³) ⟺ u = h·2⁻⁵³ >= p (both exact).
uint64_t KeepThreshold(double p) {
  const double scaled = std::ceil(p * 0x1.0p53);
  return scaled >= 0x1.0p53 ? (uint64_t{1} << 53) : static_cast<uint64_t>(scaled);
}
// The 53 bits KeepDropout compares, given key = DropoutKey(seed, stream).
inline uint64_t KeepBits(uint64_t key, uint64_t index) {
  return DropoutHashOfKey(key, index) >> 11;
}
}  // namespace

LORART_CPU_CLONES void DropoutKeepMask(uint64_t seed, uint64_t stream, uint64_t first, int64_t n,
                                       double p, uint8_t* keep) {
  if (p <= 0.0) {
    std::memset(keep, 1, static_cast<size_t>(std::max<int64_t>(n, 0)));
    return;
  }
  const uint64_t threshold = KeepThreshold(p), key = DropoutKey(seed, stream);
  for (int64_t i = 0; i < n; ++i)
    keep[i] = static_cast<uint8_t>(KeepBits(key, first + static_cast<uint64_t>(i)) >= threshold);
}

// KeptOrZero with the pointers declared unaliased, so that GCC vectorizes it.
LORART_CPU_CLONES void ApplyKeepMask(const uint8_t* __restrict keep, int64_t n, float inv,
                                     float* __restrict values) {
  for (int64_t i = 0; i < n; ++i) values[i] = KeptOrZero(values[i] * inv, keep[i]);
}

LORART_CPU_CLONES void ApplyKeepMaskTo(const uint8_t* __restrict keep, int64_t n, float inv,
                                       const float* __restrict src, float* __restrict dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = KeptOrZero(src[i] * inv, keep[i]);
}

LORART_CPU_CLONES void ToFloat(const TensorView& t, int64_t offset, int64_t n, float* out) {
  switch (t.dtype) {
    case DType::F32:
      std::memcpy(out, t.as<const float>() + offset, sizeof(float) * n);
      break;
    case DType::BF16: {
      const uint16_t* p = t.as<const uint16_t>() + offset;
      for (int64_t i = 0; i < n; ++i) out[i] = Bf16ToFloat(p[i]);
      break;
    }
    case DType::F16: {
      const uint16_t* p = t.as<const uint16_t>() + offset;
      for (int64_t i = 0; i < n; ++i) out[i] = HalfToFloat(p[i]);
      break;
    }
    default:
      std::fill(out, out + n, 0.0f);
  }
}

LORART_CPU_CLONES void FromFloat(const float* in, int64_t n, const TensorView& t, int64_t offset) {
  switch (t.dtype) {
    case DType::F32:
      std::memcpy(t.as<float>() + offset, in, sizeof(float) * n);
      break;
    case DType::BF16: {
      uint16_t* p = t.as<uint16_t>() + offset;
      for (int64_t i = 0; i < n; ++i) p[i] = FloatToBf16(in[i]);
      break;
    }
    case DType::F16: {
      uint16_t* p = t.as<uint16_t>() + offset;
      for (int64_t i = 0; i < n; ++i) p[i] = FloatToHalf(in[i]);
      break;
    }
    default:
      break;
  }
}

Status KernelParamsFromPlan(const schema::Kernel& kernel, KernelParams* out) {
  KernelParams& p = *out;
  p.set_kind(kernel.kind()->str());
  if (!kernel.params()) return OkStatus();
  for (const schema::KernelParam* kp : *kernel.params()) {
    std::string key = kp->key()->str();
    switch (kp->value_type()) {
      case schema::ParamValue::IntValue:
        p.Set(key, static_cast<int64_t>(kp->value_as_IntValue()->value()));
        break;
      case schema::ParamValue::FloatValue:
        p.Set(key, kp->value_as_FloatValue()->value());
        break;
      case schema::ParamValue::StringValue:
        p.Set(key, kp->value_as_StringValue()->value()->str());
        break;
      default:
        return UnimplementedError(
            StrFormat("'%s': list parameter '%s' is not supported by the "
                      "CPU backend",
                      p.kind().c_str(), key.c_str()));
    }
  }
  return OkStatus();
}

Status ExpectArity(const KernelParams& p, const std::vector<TensorView>& in, size_t n_in,
                   const std::vector<TensorView>& out, size_t n_out) {
  if (in.size() != n_in || out.size() != n_out)
    return InvalidArgumentError(
        StrFormat("kernel '%s' takes %zu inputs and %zu outputs, got %zu and %zu", p.kind().c_str(),
                  n_in, n_out, in.size(), out.size()));
  return OkStatus();
}

Status ExpectFloat(const KernelParams& p, const TensorView& t, const char* what) {
  if (t.dtype != DType::F32 && t.dtype != DType::BF16 && t.dtype != DType::F16)
    return InvalidArgumentError(
        StrFormat("kernel '%s': %s must be a float tensor", p.kind().c_str(), what));
  return OkStatus();
}

Status ExpectElements(const KernelParams& p, const TensorView& t, int64_t n, const char* what) {
  if (t.numel() != n)
    return InvalidArgumentError(
        StrFormat("kernel '%s': %s has %lld elements, the parameters imply %lld", p.kind().c_str(),
                  what, static_cast<long long>(t.numel()), static_cast<long long>(n)));
  return OkStatus();
}

}  // namespace lorart::cpu
