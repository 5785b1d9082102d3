// The optimizer's kernels on the CPU: the global gradient norm, the
// clip-and-normalize scale, and the AdamW update. docs/kernels.md describes
// the operands; the schedule (learning rate, step) arrives as F32 scalars
// computed by the plan, so these kernels hold no state.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "lorart/cpu/kernel.h"

namespace lorart::cpu {
namespace {

int Threads(const KernelContext& ctx) { return ctx.num_threads > 0 ? ctx.num_threads : 1; }

// An F32 scalar operand (one element).
Status Scalar(const KernelParams& p, const TensorView& t, const char* what, float* out) {
  if (t.dtype != DType::F32)
    return InvalidArgumentError(
        StrFormat("kernel '%s': %s must be an F32 scalar", p.kind().c_str(), what));
  LORA_RETURN_IF_ERROR(ExpectElements(p, t, 1, what));
  if (out) *out = t.as<const float>()[0];
  return OkStatus();
}

// [g1 .. gn (float)] -> [norm F32 scalar] = sqrt(Σ_i Σ g_i²). The tensors
// are cut into fixed pieces whose sums of squares (in double) are added in
// order: the result does not depend on the thread count.
Status GlobalNorm(const KernelContext& ctx, const KernelParams& p,
                  const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  kernels::params::global_norm prm;
  LORA_RETURN_IF_ERROR(p.Typed(&prm));
  const int64_t n = prm.tensors;
  if (n < 0)
    return InvalidArgumentError(StrFormat("kernel '%s': 'tensors' is negative", p.kind().c_str()));
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, static_cast<size_t>(n), out, 1));
  LORA_RETURN_IF_ERROR(Scalar(p, out[0], "the norm", nullptr));
  constexpr int64_t kPiece = 16384;
  struct Piece {
    const TensorView* t;
    int64_t off, len;
  };
  std::vector<Piece> pieces;
  for (const TensorView& t : in) {
    LORA_RETURN_IF_ERROR(ExpectFloat(p, t, "every input"));
    for (int64_t off = 0; off < t.numel(); off += kPiece)
      pieces.push_back({&t, off, std::min(kPiece, t.numel() - off)});
  }
  std::vector<double> sums(pieces.size());
  const auto np = static_cast<int64_t>(pieces.size());
#pragma omp parallel num_threads(Threads(ctx)) if (np > 1)
  {
    std::vector<float> buf(static_cast<size_t>(kPiece));
#pragma omp for schedule(static)
    for (int64_t i = 0; i < np; ++i) {
      const Piece& pc = pieces[static_cast<size_t>(i)];
      const float* x = buf.data();
      if (pc.t->dtype == DType::F32) {
        x = pc.t->as<const float>() + pc.off;
      } else {
        ToFloat(*pc.t, pc.off, pc.len, buf.data());
      }
      double s = 0.0;
#pragma omp simd reduction(+ : s)
      for (int64_t e = 0; e < pc.len; ++e) s += double(x[e]) * double(x[e]);
      sums[static_cast<size_t>(i)] = s;
    }
  }
  double total = 0.0;
  for (double s : sums) total += s;
  out[0].as<float>()[0] = static_cast<float>(std::sqrt(total));
  return OkStatus();
}

// [norm, count (F32 scalars)] -> [scale F32 scalar]:
// scale = (max_norm > 0 ? min(1, max_norm / (norm / count + 1e-6)) : 1) / count.
// Summed gradients times `scale` are the clipped gradient of the mean loss.
// A NaN norm gives a NaN scale (as torch's clip_grad_norm_ does), so a
// diverged step is visible rather than silently unclipped.
Status ClipScale(const KernelContext&, const KernelParams& p, const std::vector<TensorView>& in,
                 const std::vector<TensorView>& out) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 2, out, 1));
  float norm, count;
  LORA_RETURN_IF_ERROR(Scalar(p, in[0], "the norm", &norm));
  LORA_RETURN_IF_ERROR(Scalar(p, in[1], "the count", &count));
  LORA_RETURN_IF_ERROR(Scalar(p, out[0], "the scale", nullptr));
  kernels::params::clip_scale prm;
  LORA_RETURN_IF_ERROR(p.Typed(&prm));
  const double max_norm = prm.max_norm;
  if (!(count > 0.0f) || !std::isfinite(count))
    return InvalidArgumentError(
        StrFormat("kernel '%s': no target tokens in the accumulated batch (token count %g)",
                  p.kind().c_str(), static_cast<double>(count)));
  const double n = count, mean_norm = static_cast<double>(norm) / n;
  double clip = 1.0;
  if (!std::isfinite(mean_norm)) {
    // A NaN or infinite gradient: the scale says so, and adamw then leaves
    // every tensor as it is (the trainer counts the step as skipped).
    clip = std::nan("");
  } else if (max_norm > 0.0) {
    clip = std::min(1.0, max_norm / (mean_norm + 1e-6));
  }
  out[0].as<float>()[0] = static_cast<float>(clip / n);
  return OkStatus();
}

// [p, g, m, v (F32, `elements`), lr, step, scale (F32 scalars)] -> [p', m', v'].
// Outputs may be the same buffers as p, m, v: element i reads its inputs
// before it writes its outputs, and touches no other element.
Status AdamW(const KernelContext& ctx, const KernelParams& p, const std::vector<TensorView>& in,
             const std::vector<TensorView>& out) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 7, out, 3));
  kernels::params::adamw prm;
  LORA_RETURN_IF_ERROR(p.Typed(&prm));
  const int64_t n = prm.elements;
  if (n < 0)
    return InvalidArgumentError(StrFormat("kernel '%s': 'elements' is negative", p.kind().c_str()));
  const double beta1 = prm.beta1, beta2 = prm.beta2, eps = prm.eps, wd = prm.weight_decay;
  if (!(beta1 >= 0.0 && beta1 < 1.0) || !(beta2 >= 0.0 && beta2 < 1.0))
    return InvalidArgumentError(StrFormat("kernel '%s': betas must lie in [0, 1), got %g and %g",
                                          p.kind().c_str(), beta1, beta2));
  const char* names[] = {"param", "grad", "m", "v"};
  for (int i = 0; i < 4; ++i) {
    if (in[static_cast<size_t>(i)].dtype != DType::F32)
      return InvalidArgumentError(
          StrFormat("kernel '%s': %s must be F32", p.kind().c_str(), names[i]));
    LORA_RETURN_IF_ERROR(ExpectElements(p, in[static_cast<size_t>(i)], n, names[i]));
  }
  const char* out_names[] = {"new param", "new m", "new v"};
  for (int i = 0; i < 3; ++i) {
    if (out[static_cast<size_t>(i)].dtype != DType::F32)
      return InvalidArgumentError(
          StrFormat("kernel '%s': %s must be F32", p.kind().c_str(), out_names[i]));
    LORA_RETURN_IF_ERROR(ExpectElements(p, out[static_cast<size_t>(i)], n, out_names[i]));
  }
  float lr, step, scale;
  LORA_RETURN_IF_ERROR(Scalar(p, in[4], "the learning rate", &lr));
  LORA_RETURN_IF_ERROR(Scalar(p, in[5], "the step", &step));
  LORA_RETURN_IF_ERROR(Scalar(p, in[6], "the gradient scale", &scale));
  if (!(step >= 1.0f) || !std::isfinite(step))
    return InvalidArgumentError(StrFormat("kernel '%s': the step must be >= 1 (1-based), got %g",
                                          p.kind().c_str(), static_cast<double>(step)));

  const double t = step;
  const float bc1 = static_cast<float>(1.0 - std::pow(beta1, t));
  const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(beta2, t)));
  const float b1 = static_cast<float>(beta1), b2 = static_cast<float>(beta2);
  const float c1 = static_cast<float>(1.0 - beta1), c2 = static_cast<float>(1.0 - beta2);
  const float step_size = lr / bc1, decay = lr * static_cast<float>(wd);
  const float e = static_cast<float>(eps), gs = scale;

  // Deliberately not __restrict: outputs may alias inputs element for element.
  const float* P = in[0].as<const float>();
  const float* G = in[1].as<const float>();
  const float* M = in[2].as<const float>();
  const float* V = in[3].as<const float>();
  float* P2 = out[0].as<float>();
  float* M2 = out[1].as<float>();
  float* V2 = out[2].as<float>();
  if (!std::isfinite(gs)) {
    // clip_scale's signal of a non-finite gradient: no update at all.
    if (P2 != P) std::memmove(P2, P, sizeof(float) * static_cast<size_t>(n));
    if (M2 != M) std::memmove(M2, M, sizeof(float) * static_cast<size_t>(n));
    if (V2 != V) std::memmove(V2, V, sizeof(float) * static_cast<size_t>(n));
    return OkStatus();
  }
  constexpr int64_t kChunk = 4096;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) num_threads(Threads(ctx)) if (chunks > 4)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t end = std::min(n, (c + 1) * kChunk);
    // Iteration i reads index i of every input and then writes index i of
    // every output; with no cross-iteration dependence, SIMD is valid even
    // when an output is an input's buffer.
#pragma omp simd
    for (int64_t i = c * kChunk; i < end; ++i) {
      const float g = gs * G[i], p0 = P[i];
      const float m = b1 * M[i] + c1 * g;
      const float v = b2 * V[i] + c2 * g * g;
      const float denom = std::sqrt(v) * inv_sqrt_bc2 + e;
      P2[i] = p0 - decay * p0 - step_size * m / denom;
      M2[i] = m;
      V2[i] = v;
    }
  }
  return OkStatus();
}

}  // namespace

void RegisterOptimizerKernels() {
  RegisterKernel("global_norm", GlobalNorm);
  RegisterKernel("clip_scale", ClipScale);
  RegisterKernel("adamw", AdamW);
}

}  // namespace lorart::cpu
