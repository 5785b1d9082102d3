// The norm family of CPU kernels: RMSNorm forward and backward (also per
// group of features, as Qwen3's per-head q/k norms, which lora-lower-to-kernels
// writes as rows x group). docs/kernels.md describes them.
#include "lorart/cpu/rowwise.h"

namespace lorart::cpu {
namespace {

using namespace rowwise;  // NOLINT: the shared loops and checks

//===----------------------------------------------------------------------===//
// RMSNorm
//===----------------------------------------------------------------------===//

struct NormDims {
  int64_t rows = 0, hidden = 0;
  float eps = 0;
};

// P: params::rms_norm_fwd or params::rms_norm_bwd.
template <class P>
Status ParseNorm(const KernelParams& p, NormDims* d) {
  P prm;
  LORA_RETURN_IF_ERROR(p.Typed(&prm));
  LORA_RETURN_IF_ERROR(NonNegativeInt(p, "rows", prm.rows, &d->rows));
  LORA_RETURN_IF_ERROR(PositiveInt(p, "hidden", prm.hidden, &d->hidden));
  const double eps = prm.eps;
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
  LORA_RETURN_IF_ERROR(ParseNorm<kernels::params::rms_norm_fwd>(p, &d));
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
  LORA_RETURN_IF_ERROR(ParseNorm<kernels::params::rms_norm_bwd>(p, &d));
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

}  // namespace

void RegisterNormKernels() {
  RegisterKernel("rms_norm_fwd", RmsNormFwd);
  RegisterKernel("rms_norm_bwd", RmsNormBwd);
}

}  // namespace lorart::cpu
