// Elementwise and row-wise kernels of the CPU backend: RMSNorm, RoPE, SwiGLU,
// residual adds, the packed-sequence loss mask, and the small data-movement
// kinds (fill, accumulate, copy, zero, cast). docs/kernels.md describes each
// kind's operands and parameters.
//
// Every float kernel loads its operands into f32 (a row, or a chunk of
// kChunk elements, in per-thread buffers), computes in f32 and stores in the
// output's dtype (round to nearest even). Chunks and rows are independent, so
// an output may be the same buffer as one of its inputs.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "lorart/cpu/kernel.h"
#include "lorart/plan/rope.h"

namespace lorart::cpu {
namespace {

// Elements per unit of work of the chunked elementwise loops (fits L1 with
// three f32 buffers).
constexpr int64_t kChunk = 1024;

int Threads(const KernelContext& ctx) { return ctx.num_threads > 0 ? ctx.num_threads : 1; }

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

size_t ElementBytes(DType d) {
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

bool IsIndex(DType d) { return d == DType::I32 || d == DType::I64; }

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
Status Elements(const KernelParams& p, int64_t* n) {
  LORA_RETURN_IF_ERROR(p.Int("elements", n));
  if (*n < 0)
    return InvalidArgumentError(StrFormat("kernel '%s': 'elements' is negative (%lld)",
                                          p.kind().c_str(), static_cast<long long>(*n)));
  return OkStatus();
}

// Checks that every listed operand is a float tensor of n elements.
Status ExpectFloatElements(const KernelParams& p,
                           std::initializer_list<std::pair<const TensorView*, const char*>> ts,
                           int64_t n) {
  for (const auto& [t, what] : ts) {
    LORA_RETURN_IF_ERROR(ExpectFloat(p, *t, what));
    LORA_RETURN_IF_ERROR(ExpectElements(p, *t, n, what));
  }
  return OkStatus();
}

Status PositiveInt(const KernelParams& p, const char* key, int64_t* v) {
  LORA_RETURN_IF_ERROR(p.Int(key, v));
  if (*v <= 0)
    return InvalidArgumentError(StrFormat("kernel '%s': '%s' must be positive, got %lld",
                                          p.kind().c_str(), key, static_cast<long long>(*v)));
  return OkStatus();
}

Status NonNegativeInt(const KernelParams& p, const char* key, int64_t* v) {
  LORA_RETURN_IF_ERROR(p.Int(key, v));
  if (*v < 0)
    return InvalidArgumentError(StrFormat("kernel '%s': '%s' must not be negative, got %lld",
                                          p.kind().c_str(), key, static_cast<long long>(*v)));
  return OkStatus();
}

//===----------------------------------------------------------------------===//
// RMSNorm
//===----------------------------------------------------------------------===//

struct NormDims {
  int64_t rows = 0, hidden = 0;
  float eps = 0;
};

Status ParseNorm(const KernelParams& p, NormDims* d) {
  LORA_RETURN_IF_ERROR(NonNegativeInt(p, "rows", &d->rows));
  LORA_RETURN_IF_ERROR(PositiveInt(p, "hidden", &d->hidden));
  double eps;
  LORA_RETURN_IF_ERROR(p.Float("eps", &eps));
  if (!(eps >= 0.0) || !std::isfinite(eps))
    return InvalidArgumentError(StrFormat(
        "kernel '%s': 'eps' must be finite and non-negative, got %g", p.kind().c_str(), eps));
  d->eps = static_cast<float>(eps);
  return OkStatus();
}

// 1 / sqrt(mean(x²) + eps) of one f32 row (as LlamaRMSNorm: f32 throughout).
inline float InvRms(const float* __restrict x, int64_t h, float eps) {
  float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
  for (int64_t i = 0; i < h; ++i) ss += x[i] * x[i];
  return 1.0f / std::sqrt(ss / static_cast<float>(h) + eps);
}

// [x [rows, hidden], w [hidden]] -> [y]: y = w · round_x(x / rms(x)).
Status RmsNormFwd(const KernelContext& ctx, const KernelParams& p,
                  const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 2, out, 1));
  NormDims d;
  LORA_RETURN_IF_ERROR(ParseNorm(p, &d));
  const int64_t H = d.hidden;
  LORA_RETURN_IF_ERROR(ExpectFloatElements(p, {{&in[0], "x"}, {&out[0], "y"}}, d.rows * H));
  LORA_RETURN_IF_ERROR(ExpectFloatElements(p, {{&in[1], "weight"}}, H));
  const TensorView &x = in[0], &y = out[0];
  std::vector<float> w(static_cast<size_t>(H));
  ToFloat(in[1], 0, H, w.data());
  const DType xt = x.dtype;
#pragma omp parallel num_threads(Threads(ctx)) if (d.rows * H > 8 * kChunk)
  {
    std::vector<float> buf(static_cast<size_t>(H));
    float* __restrict row = buf.data();
    const float* __restrict wp = w.data();
#pragma omp for schedule(static)
    for (int64_t r = 0; r < d.rows; ++r) {
      ToFloat(x, r * H, H, row);
      const float inv = InvRms(row, H, d.eps);
      if (xt == DType::F32) {
#pragma omp simd
        for (int64_t i = 0; i < H; ++i) row[i] = wp[i] * (row[i] * inv);
      } else {
        for (int64_t i = 0; i < H; ++i) row[i] = wp[i] * RoundTo(xt, row[i] * inv);
      }
      FromFloat(row, H, y, r * H);
    }
  }
  return OkStatus();
}

// [dy, x, w] -> [dx, dw]. With n = x·r, r = 1/rms(x), g = dy·w:
// dx = r·(g − n·mean(g·n)), dw = Σ_rows dy·round_x(n).
// Three passes so that dx may share a buffer with dy or x: r per row; dw over
// column strips (each strip sums all rows in order, in double: deterministic
// for any thread count); then dx per row.
Status RmsNormBwd(const KernelContext& ctx, const KernelParams& p,
                  const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 3, out, 2));
  NormDims d;
  LORA_RETURN_IF_ERROR(ParseNorm(p, &d));
  const int64_t H = d.hidden, R = d.rows;
  LORA_RETURN_IF_ERROR(
      ExpectFloatElements(p, {{&in[0], "dy"}, {&in[1], "x"}, {&out[0], "dx"}}, R * H));
  LORA_RETURN_IF_ERROR(ExpectFloatElements(p, {{&in[2], "weight"}, {&out[1], "dweight"}}, H));
  const TensorView &dy = in[0], &x = in[1], &dx = out[0], &dw = out[1];
  const DType xt = x.dtype;
  std::vector<float> w(static_cast<size_t>(H)), inv(static_cast<size_t>(R));
  ToFloat(in[2], 0, H, w.data());
  const int nt = Threads(ctx);
  const bool par = R * H > 8 * kChunk;

#pragma omp parallel num_threads(nt) if (par)
  {
    std::vector<float> buf(static_cast<size_t>(H));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < R; ++r) {
      ToFloat(x, r * H, H, buf.data());
      inv[static_cast<size_t>(r)] = InvRms(buf.data(), H, d.eps);
    }
  }

  constexpr int64_t kStrip = 256;
  const int64_t strips = (H + kStrip - 1) / kStrip;
#pragma omp parallel num_threads(nt) if (par)
  {
    double acc[kStrip];
    float xs[kStrip], gs[kStrip], res[kStrip];
#pragma omp for schedule(static)
    for (int64_t s = 0; s < strips; ++s) {
      const int64_t c0 = s * kStrip, n = std::min(kStrip, H - c0);
      std::fill(acc, acc + n, 0.0);
      for (int64_t r = 0; r < R; ++r) {
        ToFloat(x, r * H + c0, n, xs);
        ToFloat(dy, r * H + c0, n, gs);
        const float ir = inv[static_cast<size_t>(r)];
        if (xt == DType::F32) {
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) acc[i] += double(gs[i]) * double(xs[i] * ir);
        } else {
          for (int64_t i = 0; i < n; ++i) acc[i] += double(gs[i]) * double(RoundTo(xt, xs[i] * ir));
        }
      }
      for (int64_t i = 0; i < n; ++i) res[i] = static_cast<float>(acc[i]);
      FromFloat(res, n, dw, c0);
    }
  }

#pragma omp parallel num_threads(nt) if (par)
  {
    std::vector<float> xb(static_cast<size_t>(H)), gb(static_cast<size_t>(H));
    float* __restrict xr = xb.data();
    float* __restrict gr = gb.data();
    const float* __restrict wp = w.data();
#pragma omp for schedule(static)
    for (int64_t r = 0; r < R; ++r) {
      ToFloat(x, r * H, H, xr);
      ToFloat(dy, r * H, H, gr);
      const float ir = inv[static_cast<size_t>(r)];
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int64_t i = 0; i < H; ++i) {
        xr[i] *= ir;     // n
        gr[i] *= wp[i];  // g
        dot += gr[i] * xr[i];
      }
      const float c = dot / static_cast<float>(H);
#pragma omp simd
      for (int64_t i = 0; i < H; ++i) gr[i] = ir * (gr[i] - xr[i] * c);
      FromFloat(gr, H, dx, r * H);
    }
  }
  return OkStatus();
}

//===----------------------------------------------------------------------===//
// RoPE
//===----------------------------------------------------------------------===//

struct RopeDims {
  int64_t batch = 0, seq = 0, features = 0, head_dim = 0;
  std::vector<double> inv_freq;  // head_dim / 2 frequencies, scaling applied
};

// The dimensions and the inverse frequencies (lorart/plan/rope.h, the same
// doubles lora-emit-cuda bakes into the CUDA kernels).
Status ParseRope(const KernelParams& p, RopeDims* d) {
  LORA_RETURN_IF_ERROR(NonNegativeInt(p, "batch", &d->batch));
  LORA_RETURN_IF_ERROR(NonNegativeInt(p, "seq", &d->seq));
  LORA_RETURN_IF_ERROR(PositiveInt(p, "features", &d->features));
  LORA_RETURN_IF_ERROR(PositiveInt(p, "head_dim", &d->head_dim));
  if (d->head_dim % 2 != 0 || d->features % d->head_dim != 0)
    return InvalidArgumentError(
        StrFormat("kernel '%s': 'head_dim' (%lld) must be even and divide 'features' (%lld)",
                  p.kind().c_str(), static_cast<long long>(d->head_dim),
                  static_cast<long long>(d->features)));
  double theta;
  LORA_RETURN_IF_ERROR(p.Float("theta", &theta));
  rope::Scaling sc;
  sc.kind = p.StringOr("scaling", "none");
  if (sc.kind != "none" && sc.kind != "linear" && sc.kind != "llama3")
    return UnimplementedError(
        StrFormat("kernel '%s': rope scaling '%s' is not supported (none, linear, llama3)",
                  p.kind().c_str(), sc.kind.c_str()));
  if (sc.kind != "none") LORA_RETURN_IF_ERROR(p.Float("factor", &sc.factor));
  if (sc.kind == "llama3") {
    LORA_RETURN_IF_ERROR(p.Float("low_freq_factor", &sc.low_freq_factor));
    LORA_RETURN_IF_ERROR(p.Float("high_freq_factor", &sc.high_freq_factor));
    LORA_RETURN_IF_ERROR(PositiveInt(p, "original_max_position_embeddings",
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
Status Rope(const KernelContext& ctx, const KernelParams& p, const std::vector<TensorView>& in,
            const std::vector<TensorView>& out, double sign) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 2, out, 1));
  RopeDims d;
  LORA_RETURN_IF_ERROR(ParseRope(p, &d));
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
  return Rope(ctx, p, in, out, 1.0);
}
Status RopeBwd(const KernelContext& ctx, const KernelParams& p, const std::vector<TensorView>& in,
               const std::vector<TensorView>& out) {
  return Rope(ctx, p, in, out, -1.0);
}

//===----------------------------------------------------------------------===//
// SwiGLU, add
//===----------------------------------------------------------------------===//

inline float Sigmoid(float g) { return 1.0f / (1.0f + std::exp(-g)); }

// [gate, up] -> [silu(gate)·up].
Status SwigluFwd(const KernelContext& ctx, const KernelParams& p, const std::vector<TensorView>& in,
                 const std::vector<TensorView>& out) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 2, out, 1));
  int64_t n;
  LORA_RETURN_IF_ERROR(Elements(p, &n));
  LORA_RETURN_IF_ERROR(
      ExpectFloatElements(p, {{&in[0], "gate"}, {&in[1], "up"}, {&out[0], "y"}}, n));
  ParallelChunks(ctx, n, [&](int64_t off, int64_t len) {
    float g[kChunk], u[kChunk];
    ToFloat(in[0], off, len, g);
    ToFloat(in[1], off, len, u);
    for (int64_t i = 0; i < len; ++i) g[i] = g[i] * Sigmoid(g[i]) * u[i];
    FromFloat(g, len, out[0], off);
  });
  return OkStatus();
}

// [dy, gate, up] -> [dgate, dup]: with s = sigmoid(gate),
// dgate = dy·up·s·(1 + gate·(1 − s)), dup = dy·gate·s.
Status SwigluBwd(const KernelContext& ctx, const KernelParams& p, const std::vector<TensorView>& in,
                 const std::vector<TensorView>& out) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 3, out, 2));
  int64_t n;
  LORA_RETURN_IF_ERROR(Elements(p, &n));
  LORA_RETURN_IF_ERROR(ExpectFloatElements(
      p, {{&in[0], "dy"}, {&in[1], "gate"}, {&in[2], "up"}, {&out[0], "dgate"}, {&out[1], "dup"}},
      n));
  ParallelChunks(ctx, n, [&](int64_t off, int64_t len) {
    float dy[kChunk], g[kChunk], u[kChunk];
    ToFloat(in[0], off, len, dy);
    ToFloat(in[1], off, len, g);
    ToFloat(in[2], off, len, u);
    for (int64_t i = 0; i < len; ++i) {
      const float s = Sigmoid(g[i]);
      const float dgate = dy[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
      u[i] = dy[i] * g[i] * s;
      g[i] = dgate;
    }
    FromFloat(g, len, out[0], off);
    FromFloat(u, len, out[1], off);
  });
  return OkStatus();
}

// [a, b] -> [a + b].
Status Add(const KernelContext& ctx, const KernelParams& p, const std::vector<TensorView>& in,
           const std::vector<TensorView>& out) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 2, out, 1));
  int64_t n;
  LORA_RETURN_IF_ERROR(Elements(p, &n));
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
  int64_t B, T;
  LORA_RETURN_IF_ERROR(NonNegativeInt(p, "batch", &B));
  LORA_RETURN_IF_ERROR(NonNegativeInt(p, "seq", &T));
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
  int64_t n;
  LORA_RETURN_IF_ERROR(Elements(p, &n));
  double value;
  LORA_RETURN_IF_ERROR(p.Float("value", &value));
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
  int64_t n;
  LORA_RETURN_IF_ERROR(Elements(p, &n));
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
  int64_t n;
  LORA_RETURN_IF_ERROR(Elements(p, &n));
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
  int64_t n;
  LORA_RETURN_IF_ERROR(Elements(p, &n));
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
  int64_t n;
  LORA_RETURN_IF_ERROR(Elements(p, &n));
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
  RegisterKernel("rms_norm_fwd", RmsNormFwd);
  RegisterKernel("rms_norm_bwd", RmsNormBwd);
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
