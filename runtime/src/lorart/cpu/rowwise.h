// Shared pieces of the CPU backend's elementwise and row-wise kernels
// (elementwise.cc, norms.cc): chunked parallel loops, f32 rounding, the
// `elements` parameter and operand checks. Internal to the CPU backend.
//
// Every float kernel loads its operands into f32 (a row, or a chunk of
// kChunk elements, in per-thread buffers), computes in f32 and stores in the
// output's dtype (round to nearest even). Chunks and rows are independent, so
// an output may be the same buffer as one of its inputs.
#ifndef LORART_CPU_ROWWISE_H_
#define LORART_CPU_ROWWISE_H_

#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "lorart/cpu/kernel.h"

namespace lorart::cpu::rowwise {

// Elements per unit of work of the chunked elementwise loops (fits L1 with
// three f32 buffers).
constexpr int64_t kChunk = 1024;

inline int Threads(const KernelContext& ctx) { return ctx.num_threads > 0 ? ctx.num_threads : 1; }

// Rounds an f32 value to `dtype` and back (what storing it as x's dtype and
// reading it again gives).
inline float RoundTo(DType dtype, float v) {
  switch (dtype) {
    case DType::BF16:
      return Bf16ToFloat(FloatToBf16(v));
    case DType::F16:
      return HalfToFloat(FloatToHalf(v));
    default:
      return v;
  }
}

inline size_t ElementBytes(DType d) {
  switch (d) {
    case DType::F32:
    case DType::I32:
      return 4;
    case DType::F16:
    case DType::BF16:
      return 2;
    case DType::I64:
      return 8;
    case DType::BOOL:
      return 1;
    default:
      return 0;  // NF4: not an element-addressable dtype
  }
}

inline bool IsIndex(DType d) { return d == DType::I32 || d == DType::I64; }

inline int64_t LoadIndex(const TensorView& t, int64_t i) {
  return t.dtype == DType::I64 ? t.as<const int64_t>()[i] : t.as<const int32_t>()[i];
}

// f(offset, length) over [0, n) in chunks of kChunk, in parallel.
template <typename F>
void ParallelChunks(const KernelContext& ctx, int64_t n, F&& f) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) num_threads(Threads(ctx)) if (chunks > 8)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t off = c * kChunk;
    f(off, std::min(kChunk, n - off));
  }
}

// The `elements` parameter, checked to be non-negative.
// P is the kernel's parameter struct (every kind with `elements`); its
// other fields land in *prm when asked for.
template <class P>
Status Elements(const KernelParams& p, int64_t* n, P* prm = nullptr) {
  P own;
  if (!prm) prm = &own;
  LORA_RETURN_IF_ERROR(p.Typed(prm));
  *n = prm->elements;
  if (*n < 0)
    return InvalidArgumentError(StrFormat("kernel '%s': 'elements' is negative (%lld)",
                                          p.kind().c_str(), static_cast<long long>(*n)));
  return OkStatus();
}

// Checks that every listed operand is a float tensor of n elements.
inline Status ExpectFloatElements(
    const KernelParams& p, std::initializer_list<std::pair<const TensorView*, const char*>> ts,
    int64_t n) {
  for (const auto& [t, what] : ts) {
    LORA_RETURN_IF_ERROR(ExpectFloat(p, *t, what));
    LORA_RETURN_IF_ERROR(ExpectElements(p, *t, n, what));
  }
  return OkStatus();
}

inline Status PositiveInt(const KernelParams& p, const char* key, int64_t value, int64_t* v) {
  *v = value;
  if (*v <= 0)
    return InvalidArgumentError(StrFormat("kernel '%s': '%s' must be positive, got %lld",
                                          p.kind().c_str(), key, static_cast<long long>(*v)));
  return OkStatus();
}

inline Status NonNegativeInt(const KernelParams& p, const char* key, int64_t value, int64_t* v) {
  *v = value;
  if (*v < 0)
    return InvalidArgumentError(StrFormat("kernel '%s': '%s' must not be negative, got %lld",
                                          p.kind().c_str(), key, static_cast<long long>(*v)));
  return OkStatus();
}

}  // namespace lorart::cpu::rowwise

#endif  // LORART_CPU_ROWWISE_H_
