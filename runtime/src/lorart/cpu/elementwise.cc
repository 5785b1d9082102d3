// Elementwise kernels of the CPU backend: RoPE, SwiGLU, residual adds, the
// packed-sequence loss mask, and the small data-movement kinds (fill,
// accumulate, copy, zero, cast). docs/kernels.md describes each kind's
// operands and parameters; rowwise.h holds the loops they share with
// norms.cc.
#include "lorart/cpu/isa.h"
#include "lorart/cpu/rowwise.h"
#include "lorart/cpu/vecmath.h"
#include "lorart/plan/rope.h"

namespace lorart::cpu {
namespace {

using namespace rowwise;  // NOLINT: the shared loops and checks

//===----------------------------------------------------------------------===//
// RoPE
//===----------------------------------------------------------------------===//

struct RopeDims {
  int64_t batch = 0, seq = 0, features = 0, head_dim = 0;
  std::vector<double> inv_freq;  // head_dim / 2 frequencies, scaling applied
};

// The dimensions and the inverse frequencies (lorart/plan/rope.h, the same
// doubles lora-emit-cuda bakes into the CUDA kernels).
// P: params::rope_fwd or params::rope_bwd.
template <class P>
Status ParseRope(const KernelParams& p, RopeDims* d) {
  P prm;
  LORA_RETURN_IF_ERROR(p.Typed(&prm));
  LORA_RETURN_IF_ERROR(NonNegativeInt(p, "batch", prm.batch, &d->batch));
  LORA_RETURN_IF_ERROR(NonNegativeInt(p, "seq", prm.seq, &d->seq));
  LORA_RETURN_IF_ERROR(PositiveInt(p, "features", prm.features, &d->features));
  LORA_RETURN_IF_ERROR(PositiveInt(p, "head_dim", prm.head_dim, &d->head_dim));
  if (d->head_dim % 2 != 0 || d->features % d->head_dim != 0)
    return InvalidArgumentError(
        StrFormat("kernel '%s': 'head_dim' (%lld) must be even and divide 'features' (%lld)",
                  p.kind().c_str(), static_cast<long long>(d->head_dim),
                  static_cast<long long>(d->features)));
  const double theta = prm.theta;
  rope::Scaling sc;
  sc.kind = prm.scaling;
  if (sc.kind != "none" && sc.kind != "linear" && sc.kind != "llama3")
    return UnimplementedError(
        StrFormat("kernel '%s': rope scaling '%s' is not supported (none, linear, llama3)",
                  p.kind().c_str(), sc.kind.c_str()));
  // The optional parameters the scaling needs.
  auto need = [&](const char* key, const auto& field, auto* out) -> Status {
    if (!field)
      return InvalidArgumentError(StrFormat("kernel '%s': rope scaling '%s' needs parameter '%s'",
                                            p.kind().c_str(), sc.kind.c_str(), key));
    *out = *field;
    return OkStatus();
  };
  if (sc.kind != "none") LORA_RETURN_IF_ERROR(need("factor", prm.factor, &sc.factor));
  if (sc.kind == "llama3") {
    LORA_RETURN_IF_ERROR(need("low_freq_factor", prm.low_freq_factor, &sc.low_freq_factor));
    LORA_RETURN_IF_ERROR(need("high_freq_factor", prm.high_freq_factor, &sc.high_freq_factor));
    int64_t original = 0;
    LORA_RETURN_IF_ERROR(
        need("original_max_position_embeddings", prm.original_max_position_embeddings, &original));
    LORA_RETURN_IF_ERROR(PositiveInt(p, "original_max_position_embeddings", original,
                                     &sc.original_max_position_embeddings));
  }
  std::string bad = rope::InverseFrequencies(d->head_dim, theta, sc, &d->inv_freq);
  if (!bad.empty())
    return InvalidArgumentError(StrFormat("kernel '%s': %s", p.kind().c_str(), bad.c_str()));
  return OkStatus();
}

// [x [batch, seq, features], positions [batch, seq]] -> [y]. Each head's
// pair (i, i + head_dim/2) is rotated by `sign`·positions·inv_freq[i]:
// +1 for the forward (HF rotate_half), −1 for the backward (the inverse
// rotation; RoPE is orthogonal, so its VJP is its transpose).
template <class P>
Status Rope(const KernelContext& ctx, const KernelParams& p, const std::vector<TensorView>& in,
            const std::vector<TensorView>& out, double sign) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 2, out, 1));
  RopeDims d;
  LORA_RETURN_IF_ERROR(ParseRope<P>(p, &d));
  const int64_t F = d.features, tokens = d.batch * d.seq;
  LORA_RETURN_IF_ERROR(ExpectFloatElements(p, {{&in[0], "x"}, {&out[0], "y"}}, tokens * F));
  const TensorView &x = in[0], &pos = in[1], &y = out[0];
  if (!IsIndex(pos.dtype))
    return InvalidArgumentError(
        StrFormat("kernel '%s': positions must be I32 or I64", p.kind().c_str()));
  LORA_RETURN_IF_ERROR(ExpectElements(p, pos, tokens, "positions"));
  const int64_t hd = d.head_dim, half = hd / 2, heads = F / hd;
#pragma omp parallel num_threads(Threads(ctx)) if (tokens * F > 8 * kChunk)
  {
    std::vector<float> cs(static_cast<size_t>(2 * half)), buf(static_cast<size_t>(F));
    float* __restrict c = cs.data();
    float* __restrict s = cs.data() + half;
    float* __restrict row = buf.data();
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tokens; ++t) {
      const double ps = static_cast<double>(LoadIndex(pos, t)) * sign;
      for (int64_t i = 0; i < half; ++i) {
        const double a = ps * d.inv_freq[static_cast<size_t>(i)];
        c[i] = static_cast<float>(std::cos(a));
        s[i] = static_cast<float>(std::sin(a));
      }
      ToFloat(x, t * F, F, row);
      for (int64_t h = 0; h < heads; ++h) {
        float* __restrict lo = row + h * hd;
        float* __restrict hi = lo + half;
#pragma omp simd
        for (int64_t i = 0; i < half; ++i) {
          const float a = lo[i], b = hi[i];
          lo[i] = a * c[i] - b * s[i];
          hi[i] = b * c[i] + a * s[i];
        }
      }
      FromFloat(row, F, y, t * F);
    }
  }
  return OkStatus();
}

Status RopeFwd(const KernelContext& ctx, const KernelParams& p, const std::vector<TensorView>& in,
               const std::vector<TensorView>& out) {
  return Rope<kernels::params::rope_fwd>(ctx, p, in, out, 1.0);
}
Status RopeBwd(const KernelContext& ctx, const KernelParams& p, const std::vector<TensorView>& in,
               const std::vector<TensorView>& out) {
  return Rope<kernels::params::rope_bwd>(ctx, p, in, out, -1.0);
}

//===----------------------------------------------------------------------===//
// SwiGLU, add
//===----------------------------------------------------------------------===//

// The gate's loops, multiversioned (isa.h) with a vectorizable sigmoid.
// g = gate·sigmoid(gate)·up in place.
LORART_CPU_CLONES void SwigluChunk(float* g, const float* u, int64_t len) {
  for (int64_t i = 0; i < len; ++i) g[i] = g[i] * SigmoidF(g[i]) * u[i];
}
// With s = sigmoid(gate): g = dy·up·s·(1 + gate·(1 − s)), u = dy·gate·s.
LORART_CPU_CLONES void SwigluBwdChunk(const float* dy, float* g, float* u, int64_t len) {
  for (int64_t i = 0; i < len; ++i) {
    const float s = SigmoidF(g[i]);
    const float dgate = dy[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
    u[i] = dy[i] * g[i] * s;
    g[i] = dgate;
  }
}

// [gate, up] -> [silu(gate)·up].
Status SwigluFwd(const KernelContext& ctx, const KernelParams& p, const std::vector<TensorView>& in,
                 const std::vector<TensorView>& out) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 2, out, 1));
  int64_t n = 0;
  LORA_RETURN_IF_ERROR(Elements<kernels::params::swiglu_fwd>(p, &n));
  LORA_RETURN_IF_ERROR(
      ExpectFloatElements(p, {{&in[0], "gate"}, {&in[1], "up"}, {&out[0], "y"}}, n));
  ParallelChunks(ctx, n, [&](int64_t off, int64_t len) {
    float g[kChunk], u[kChunk];
    ToFloat(in[0], off, len, g);
    ToFloat(in[1], off, len, u);
    SwigluChunk(g, u, len);
    FromFloat(g, len, out[0], off);
  });
  return OkStatus();
}

// [dy, gate, up] -> [dgate, dup]: with s = sigmoid(gate),
// dgate = dy·up·s·(1 + gate·(1 − s)), dup = dy·gate·s.
Status SwigluBwd(const KernelContext& ctx, const KernelParams& p, const std::vector<TensorView>& in,
                 const std::vector<TensorView>& out) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 3, out, 2));
  int64_t n = 0;
  LORA_RETURN_IF_ERROR(Elements<kernels::params::swiglu_bwd>(p, &n));
  LORA_RETURN_IF_ERROR(ExpectFloatElements(
      p, {{&in[0], "dy"}, {&in[1], "gate"}, {&in[2], "up"}, {&out[0], "dgate"}, {&out[1], "dup"}},
      n));
  ParallelChunks(ctx, n, [&](int64_t off, int64_t len) {
    float dy[kChunk], g[kChunk], u[kChunk];
    ToFloat(in[0], off, len, dy);
    ToFloat(in[1], off, len, g);
    ToFloat(in[2], off, len, u);
    SwigluBwdChunk(dy, g, u, len);
    FromFloat(g, len, out[0], off);
    FromFloat(u, len, out[1], off);
  });
  return OkStatus();
}

// [a, b] -> [a + b].
Status Add(const KernelContext& ctx, const KernelParams& p, const std::vector<TensorView>& in,
           const std::vector<TensorView>& out) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 2, out, 1));
  int64_t n = 0;
  LORA_RETURN_IF_ERROR(Elements<kernels::params::add>(p, &n));
  LORA_RETURN_IF_ERROR(
      ExpectFloatElements(p, {{&in[0], "lhs"}, {&in[1], "rhs"}, {&out[0], "result"}}, n));
  ParallelChunks(ctx, n, [&](int64_t off, int64_t len) {
    float a[kChunk], b[kChunk];
    ToFloat(in[0], off, len, a);
    ToFloat(in[1], off, len, b);
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) a[i] += b[i];
    FromFloat(a, len, out[0], off);
  });
  return OkStatus();
}

//===----------------------------------------------------------------------===//
// Packed-sequence loss mask
//===----------------------------------------------------------------------===//

// [mask BOOL [batch, seq], segment_ids [batch, seq]] -> [mask'] with
// mask'[b, t] = mask[b, t] && t + 1 < seq && seg[b, t + 1] == seg[b, t].
Status SegmentBoundaryMask(const KernelContext& ctx, const KernelParams& p,
                           const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 2, out, 1));
  kernels::params::segment_boundary_mask prm;
  LORA_RETURN_IF_ERROR(p.Typed(&prm));
  int64_t B, T;
  LORA_RETURN_IF_ERROR(NonNegativeInt(p, "batch", prm.batch, &B));
  LORA_RETURN_IF_ERROR(NonNegativeInt(p, "seq", prm.seq, &T));
  const TensorView &mask = in[0], &seg = in[1], &res = out[0];
  if (mask.dtype != DType::BOOL || res.dtype != DType::BOOL)
    return InvalidArgumentError(
        StrFormat("kernel '%s': the mask and the result must be BOOL", p.kind().c_str()));
  if (!IsIndex(seg.dtype))
    return InvalidArgumentError(
        StrFormat("kernel '%s': segment ids must be I32 or I64", p.kind().c_str()));
  LORA_RETURN_IF_ERROR(ExpectElements(p, mask, B * T, "mask"));
  LORA_RETURN_IF_ERROR(ExpectElements(p, seg, B * T, "segment ids"));
  LORA_RETURN_IF_ERROR(ExpectElements(p, res, B * T, "result"));
  const uint8_t* m = mask.as<const uint8_t>();
  uint8_t* r = res.as<uint8_t>();
#pragma omp parallel for schedule(static) num_threads(Threads(ctx)) if (B * T > 8 * kChunk)
  for (int64_t b = 0; b < B; ++b) {
    const int64_t base = b * T;
    for (int64_t t = 0; t < T; ++t) {
      const bool keep =
          m[base + t] != 0 && t + 1 < T && LoadIndex(seg, base + t + 1) == LoadIndex(seg, base + t);
      r[base + t] = keep ? 1 : 0;  // reads only mask[b, t]: may share mask's buffer
    }
  }
  return OkStatus();
}

//===----------------------------------------------------------------------===//
// Fill, accumulate, copy, zero, cast
//===----------------------------------------------------------------------===//

// [] -> [out]: every element = `value` (rounded to out's dtype).
Status Fill(const KernelContext& ctx, const KernelParams& p, const std::vector<TensorView>& in,
            const std::vector<TensorView>& out) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 0, out, 1));
  int64_t n = 0;
  kernels::params::fill prm;
  LORA_RETURN_IF_ERROR(Elements(p, &n, &prm));
  const double value = prm.value;
  LORA_RETURN_IF_ERROR(ExpectFloatElements(p, {{&out[0], "result"}}, n));
  const float v = static_cast<float>(value);
  ParallelChunks(ctx, n, [&](int64_t off, int64_t len) {
    float b[kChunk];
    std::fill(b, b + len, v);
    FromFloat(b, len, out[0], off);
  });
  return OkStatus();
}

// [acc F32, value (float)] -> [acc + f32(value)] (F32).
Status Accumulate(const KernelContext& ctx, const KernelParams& p,
                  const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 2, out, 1));
  int64_t n = 0;
  LORA_RETURN_IF_ERROR(Elements<kernels::params::accumulate>(p, &n));
  LORA_RETURN_IF_ERROR(
      ExpectFloatElements(p, {{&in[0], "acc"}, {&in[1], "value"}, {&out[0], "result"}}, n));
  if (in[0].dtype != DType::F32 || out[0].dtype != DType::F32)
    return InvalidArgumentError(
        StrFormat("kernel '%s': the accumulator and the result must be F32", p.kind().c_str()));
  const float* acc = in[0].as<const float>();
  float* res = out[0].as<float>();
  ParallelChunks(ctx, n, [&](int64_t off, int64_t len) {
    float g[kChunk];
    ToFloat(in[1], off, len, g);
    // acc and res may be the same buffer: element i reads acc[i], then writes res[i].
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) res[off + i] = acc[off + i] + g[i];
  });
  return OkStatus();
}

// [value] -> [target]: the same bytes when the dtypes agree (any dtype but
// NF4), else a float conversion.
Status Copy(const KernelContext& ctx, const KernelParams& p, const std::vector<TensorView>& in,
            const std::vector<TensorView>& out) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 1, out, 1));
  int64_t n = 0;
  LORA_RETURN_IF_ERROR(Elements<kernels::params::copy>(p, &n));
  const TensorView &src = in[0], &dst = out[0];
  LORA_RETURN_IF_ERROR(ExpectElements(p, src, n, "value"));
  LORA_RETURN_IF_ERROR(ExpectElements(p, dst, n, "target"));
  if (src.dtype == dst.dtype) {
    const size_t eb = ElementBytes(src.dtype);
    if (eb == 0)
      return InvalidArgumentError(
          StrFormat("kernel '%s': cannot copy an NF4 tensor element-wise", p.kind().c_str()));
    if (src.data == dst.data) return OkStatus();
    const int64_t bytes = n * static_cast<int64_t>(eb);
    constexpr int64_t kBlock = int64_t{1} << 20;
    const int64_t blocks = (bytes + kBlock - 1) / kBlock;
    const auto* s = static_cast<const uint8_t*>(src.data);
    auto* t = static_cast<uint8_t*>(dst.data);
#pragma omp parallel for schedule(static) num_threads(Threads(ctx)) if (blocks > 1)
    for (int64_t b = 0; b < blocks; ++b)
      std::memmove(t + b * kBlock, s + b * kBlock,
                   static_cast<size_t>(std::min(kBlock, bytes - b * kBlock)));
    return OkStatus();
  }
  LORA_RETURN_IF_ERROR(ExpectFloat(p, src, "value"));
  LORA_RETURN_IF_ERROR(ExpectFloat(p, dst, "target"));
  ParallelChunks(ctx, n, [&](int64_t off, int64_t len) {
    float b[kChunk];
    ToFloat(src, off, len, b);
    FromFloat(b, len, dst, off);
  });
  return OkStatus();
}

// [] -> [target]: all bytes zero.
Status Zero(const KernelContext& ctx, const KernelParams& p, const std::vector<TensorView>& in,
            const std::vector<TensorView>& out) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 0, out, 1));
  int64_t n = 0;
  LORA_RETURN_IF_ERROR(Elements<kernels::params::zero>(p, &n));
  const TensorView& t = out[0];
  LORA_RETURN_IF_ERROR(ExpectElements(p, t, n, "target"));
  const size_t eb = ElementBytes(t.dtype);
  if (eb == 0)
    return InvalidArgumentError(
        StrFormat("kernel '%s': cannot zero an NF4 tensor", p.kind().c_str()));
  const int64_t bytes = n * static_cast<int64_t>(eb);
  constexpr int64_t kBlock = int64_t{1} << 20;
  const int64_t blocks = (bytes + kBlock - 1) / kBlock;
  auto* d = static_cast<uint8_t*>(t.data);
#pragma omp parallel for schedule(static) num_threads(Threads(ctx)) if (blocks > 1)
  for (int64_t b = 0; b < blocks; ++b)
    std::memset(d + b * kBlock, 0, static_cast<size_t>(std::min(kBlock, bytes - b * kBlock)));
  return OkStatus();
}

// [x] -> [y]: float dtype conversion (round to nearest even).
Status Cast(const KernelContext& ctx, const KernelParams& p, const std::vector<TensorView>& in,
            const std::vector<TensorView>& out) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 1, out, 1));
  int64_t n = 0;
  LORA_RETURN_IF_ERROR(Elements<kernels::params::cast>(p, &n));
  LORA_RETURN_IF_ERROR(ExpectFloatElements(p, {{&in[0], "input"}, {&out[0], "result"}}, n));
  ParallelChunks(ctx, n, [&](int64_t off, int64_t len) {
    float b[kChunk];
    ToFloat(in[0], off, len, b);
    FromFloat(b, len, out[0], off);
  });
  return OkStatus();
}

}  // namespace

void RegisterElementwiseKernels() {
  RegisterKernel("rope_fwd", RopeFwd);
  RegisterKernel("rope_bwd", RopeBwd);
  RegisterKernel("swiglu_fwd", SwigluFwd);
  RegisterKernel("swiglu_bwd", SwigluBwd);
  RegisterKernel("add", Add);
  RegisterKernel("segment_boundary_mask", SegmentBoundaryMask);
  RegisterKernel("fill", Fill);
  RegisterKernel("accumulate", Accumulate);
  RegisterKernel("copy", Copy);
  RegisterKernel("zero", Zero);
  RegisterKernel("cast", Cast);
}

}  // namespace lorart::cpu
