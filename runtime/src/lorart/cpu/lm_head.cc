// The LM-head family of CPU kernels: the logits (lm_head_fwd) and the LM head
// fused with the cross-entropy, chunked over the masked-in tokens so that the
// [tokens, vocab] logits never exist whole (lm_head_ce_fwd and its dx/dW
// backward, which recompute each chunk's logits). docs/kernels.md describes
// them; the shared machinery is matmul.h.
#include "lorart/cpu/matmul.h"

namespace lorart::cpu {
namespace {

using namespace matmul;  // NOLINT: the family's shared machinery

Status LmHeadFwd(const KernelContext& ctx, const KernelParams& p, const std::vector<TensorView>& in,
                 const std::vector<TensorView>& out) {
  kernels::params::lm_head_fwd prm;
  int64_t m = 0, n = 0, k = 0;
  LORA_RETURN_IF_ERROR(MatmulSizes(p, &prm, &m, &n, &k));
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 2, out, 1));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[0], m * k, "x"));
  Weight w;
  LORA_RETURN_IF_ERROR(BindWeight(p, prm, in[1], n, k, &w));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, out[0], DType::F32, m * n, "the logits"));
  return LinearForward(ctx, in[0], &w, nullptr, nullptr, nullptr, Adapter(), out[0], m, n, k);
}

// ----------------------------------------------------------------------------
// LM head + cross-entropy, chunked over the masked-in tokens.

struct LmCe {
  int64_t tokens = 0, hidden = 0, vocab = 0, chunk = 0;
  const TensorView *x = nullptr, *w = nullptr, *targets = nullptr, *mask = nullptr;
  float dloss = 1.0f;
  std::vector<int64_t> active;  // masked-in token positions, in order
};

// P: params::lm_head_ce_fwd, _bwd_x, _bwd_w or _fwd_bwd_x.
template <class P>
Status BindLmCe(const KernelParams& p, const std::vector<TensorView>& in,
                const std::vector<TensorView>& out, bool has_dloss, size_t n_out, LmCe* L) {
  P prm;
  LORA_RETURN_IF_ERROR(p.Typed(&prm));
  LORA_RETURN_IF_ERROR(SizeParam(p, "tokens", prm.tokens, &L->tokens));
  LORA_RETURN_IF_ERROR(SizeParam(p, "hidden", prm.hidden, &L->hidden));
  LORA_RETURN_IF_ERROR(SizeParam(p, "vocab", prm.vocab, &L->vocab));
  LORA_RETURN_IF_ERROR(SizeParam(p, "chunk_size", prm.chunk_size, &L->chunk));
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, has_dloss ? 5 : 4, out, n_out));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[0], L->tokens * L->hidden, "x"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[1], L->vocab * L->hidden, "the weight"));
  LORA_RETURN_IF_ERROR(CheckLossOperands(p, in[2], in[3], L->tokens));
  if (has_dloss) {
    LORA_RETURN_IF_ERROR(ExpectTyped(p, in[4], DType::F32, 1, "dloss"));
    L->dloss = in[4].as<const float>()[0];
  }
  int64_t count = 0;
  LORA_RETURN_IF_ERROR(CheckTargets(p, in[2], in[3], L->tokens, L->vocab, &count));
  L->x = &in[0];
  L->w = &in[1];
  L->targets = &in[2];
  L->mask = &in[3];
  const uint8_t* mk = in[3].as<const uint8_t>();
  L->active.clear();
  L->active.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < L->tokens; ++i)
    if (mk[i]) L->active.push_back(i);
  return OkStatus();
}

// The x rows of active tokens [c0, c1) as a Gemm operand: a pointer into x
// when they are consecutive positions, else gathered into a scratch.
GemmMatrix ChunkRows(const LmCe& L, int64_t c0, int64_t c1, int threads) {
  const int64_t first = L.active[c0], rows = c1 - c0, D = L.hidden;
  if (L.active[c1 - 1] - first == rows - 1) return Mat(*L.x, first * D, D);
  const size_t es = ElemSize(L.x->dtype);
  uint8_t* buf = Scratch<uint8_t>(kGather, rows * D * static_cast<int64_t>(es));
  const uint8_t* src = static_cast<const uint8_t*>(L.x->data);
#pragma omp parallel for num_threads(threads) schedule(static) if (rows * D >= (1 << 16))
  for (int64_t i = 0; i < rows; ++i)
    std::memcpy(buf + i * D * es, src + L.active[c0 + i] * D * es, D * es);
  return Mat(buf, L.x->dtype, D);
}

// logits [rows, V] f32 of active tokens [c0, c1); returns the x rows used.
Status ChunkLogits(const KernelContext& ctx, const LmCe& L, int64_t c0, int64_t c1, float* logits,
                   GemmMatrix* xc) {
  *xc = ChunkRows(L, c0, c1, Threads(ctx));
  return Gemm(false, true, c1 - c0, L.vocab, L.hidden, 1.0f, *xc, Mat(*L.w, 0, L.hidden), 0.0f,
              logits, DType::F32, L.vocab, Threads(ctx));
}

// Turns chunk logits into dlogits = dloss·(softmax - onehot) in place; with
// `bf16`, also rounds them into it (row stride V), for a product with a bf16
// weight that would round them anyway (as autocast does); with `loss`, also
// stores each token's loss there first (as LmHeadCeFwd computes it).
void ChunkGrad(const KernelContext& ctx, const LmCe& L, int64_t c0, int64_t c1, float* logits,
               uint16_t* bf16 = nullptr, double* loss = nullptr) {
  const int64_t V = L.vocab;
  const TensorView out = View(bf16, DType::BF16);
#pragma omp parallel for num_threads(Threads(ctx)) \
    schedule(dynamic, 2) if ((c1 - c0) * V >= (1 << 15))
  for (int64_t i = c0; i < c1; ++i) {
    float* row = logits + (i - c0) * V;
    const float lse = LogSumExp(row, V);
    const int64_t target = LoadIndex(*L.targets, L.active[i]);
    if (loss) loss[i] = double(lse) - double(row[target]);
    SoftmaxGrad(row, V, lse, target, L.dloss, row);
    if (bf16) FromFloat(row, V, out, (i - c0) * V);
  }
}

// out[0] = Σ loss[i] (in token order, whatever the chunk size), out[1] = na.
void StoreLoss(const double* loss, int64_t na, const std::vector<TensorView>& out) {
  double sum = 0.0;
  for (int64_t i = 0; i < na; ++i) sum += loss[i];
  out[0].as<float>()[0] = static_cast<float>(sum);
  out[1].as<int64_t>()[0] = na;
}

Status LmHeadCeFwd(const KernelContext& ctx, const KernelParams& p,
                   const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  LmCe L;
  LORA_RETURN_IF_ERROR(BindLmCe<kernels::params::lm_head_ce_fwd>(p, in, out, false, 2, &L));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, out[0], DType::F32, 1, "the loss sum"));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, out[1], DType::I64, 1, "the count"));
  const int64_t na = static_cast<int64_t>(L.active.size()), V = L.vocab;
  const int64_t cs = std::min(L.chunk, std::max<int64_t>(na, 1));
  float* logits = Scratch<float>(kLogits, cs * V);
  double* loss = Scratch<double>(kRows, na);
  for (int64_t c0 = 0; c0 < na; c0 += cs) {
    const int64_t c1 = std::min(na, c0 + cs);
    GemmMatrix xc;
    LORA_RETURN_IF_ERROR(ChunkLogits(ctx, L, c0, c1, logits, &xc));
#pragma omp parallel for num_threads(Threads(ctx)) \
    schedule(dynamic, 2) if ((c1 - c0) * V >= (1 << 15))
    for (int64_t i = c0; i < c1; ++i) {
      const float* row = logits + (i - c0) * V;
      loss[i] = double(LogSumExp(row, V)) - double(row[LoadIndex(*L.targets, L.active[i])]);
    }
  }
  StoreLoss(loss, na, out);
  return OkStatus();
}

// dx of the bound problem, chunk by chunk; with `loss`, each token's loss
// too (from the same logits).
Status LmInputGradient(const KernelContext& ctx, const KernelParams& p, const LmCe& L,
                       const TensorView& dx, double* loss) {
  const int64_t D = L.hidden, V = L.vocab;
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, dx, L.tokens * D, "dx"));
  const int64_t na = static_cast<int64_t>(L.active.size());
  const size_t es = ElemSize(dx.dtype);
  if (na < L.tokens) std::memset(dx.data, 0, static_cast<size_t>(L.tokens * D) * es);
  const int64_t cs = std::min(L.chunk, std::max<int64_t>(na, 1));
  float* logits = Scratch<float>(kLogits, cs * V);
  // With a bf16 weight the product takes bf16 dlogits: rounded as they are
  // made instead of in a separate conversion pass.
  uint16_t* dl16 = L.w->dtype == DType::BF16 ? Scratch<uint16_t>(kGrad16, cs * V) : nullptr;
  const GemmMatrix dl = dl16 ? Mat(dl16, DType::BF16, V) : Mat(logits, DType::F32, V);
  for (int64_t c0 = 0; c0 < na; c0 += cs) {
    const int64_t c1 = std::min(na, c0 + cs), rows = c1 - c0;
    GemmMatrix xc;
    LORA_RETURN_IF_ERROR(ChunkLogits(ctx, L, c0, c1, logits, &xc));
    ChunkGrad(ctx, L, c0, c1, logits, dl16, loss);
    const bool contiguous = L.active[c1 - 1] - L.active[c0] == rows - 1;
    uint8_t* dst = contiguous ? static_cast<uint8_t*>(dx.data) + L.active[c0] * D * es
                              : Scratch<uint8_t>(kPanel, rows * D * static_cast<int64_t>(es));
    LORA_RETURN_IF_ERROR(Gemm(false, false, rows, D, V, 1.0f, dl, Mat(*L.w, 0, D), 0.0f, dst,
                              dx.dtype, D, Threads(ctx)));
    if (!contiguous)
      for (int64_t i = 0; i < rows; ++i)
        std::memcpy(static_cast<uint8_t*>(dx.data) + L.active[c0 + i] * D * es, dst + i * D * es,
                    D * es);
  }
  return OkStatus();
}

Status LmHeadCeBwdX(const KernelContext& ctx, const KernelParams& p,
                    const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  LmCe L;
  LORA_RETURN_IF_ERROR(BindLmCe<kernels::params::lm_head_ce_bwd_x>(p, in, out, true, 1, &L));
  return LmInputGradient(ctx, p, L, out[0], nullptr);
}

// [x, w, targets, mask] -> [loss_sum, count, dx]: lm_head_ce_fwd and
// lm_head_ce_bwd_x (dloss the parameter) from one computation of the logits.
// The same per-token losses, summed in the same order, and the same dx.
Status LmHeadCeFwdBwdX(const KernelContext& ctx, const KernelParams& p,
                       const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  LmCe L;
  LORA_RETURN_IF_ERROR(BindLmCe<kernels::params::lm_head_ce_fwd_bwd_x>(p, in, out, false, 3, &L));
  kernels::params::lm_head_ce_fwd_bwd_x prm;
  LORA_RETURN_IF_ERROR(p.Typed(&prm));
  if (!std::isfinite(prm.dloss))
    return InvalidArgumentError(StrFormat("kernel '%s': parameter 'dloss' must be finite, got %g",
                                          p.kind().c_str(), prm.dloss));
  L.dloss = static_cast<float>(prm.dloss);
  LORA_RETURN_IF_ERROR(ExpectTyped(p, out[0], DType::F32, 1, "the loss sum"));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, out[1], DType::I64, 1, "the count"));
  const int64_t na = static_cast<int64_t>(L.active.size());
  double* loss = Scratch<double>(kRows, na);
  LORA_RETURN_IF_ERROR(LmInputGradient(ctx, p, L, out[2], loss));
  StoreLoss(loss, na, out);
  return OkStatus();
}

Status LmHeadCeBwdW(const KernelContext& ctx, const KernelParams& p,
                    const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  LmCe L;
  LORA_RETURN_IF_ERROR(BindLmCe<kernels::params::lm_head_ce_bwd_w>(p, in, out, true, 1, &L));
  const TensorView& dw = out[0];
  const int64_t D = L.hidden, V = L.vocab;
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, dw, V * D, "dw"));
  const int T = Threads(ctx);
  const int64_t na = static_cast<int64_t>(L.active.size());
  const size_t es = ElemSize(dw.dtype);
  if (na == 0) {
    std::memset(dw.data, 0, static_cast<size_t>(V * D) * es);
    return OkStatus();
  }
  const int64_t cs = std::min(L.chunk, na);
  if (dw.dtype == DType::F32) {  // accumulate Σ dlogitsᵀ·x straight into dw
    float* logits = Scratch<float>(kLogits, cs * V);
    for (int64_t c0 = 0; c0 < na; c0 += cs) {
      const int64_t c1 = std::min(na, c0 + cs);
      GemmMatrix xc;
      LORA_RETURN_IF_ERROR(ChunkLogits(ctx, L, c0, c1, logits, &xc));
      ChunkGrad(ctx, L, c0, c1, logits);
      LORA_RETURN_IF_ERROR(Gemm(true, false, V, D, c1 - c0, 1.0f, Mat(logits, DType::F32, V), xc,
                                c0 == 0 ? 0.0f : 1.0f, dw.data, DType::F32, D, T));
    }
    return OkStatus();
  }
  // A bf16/f16 dw is accumulated in f32 a tile of vocabulary rows at a time:
  // first every token's log-sum-exp, then per tile the chunks' logits for the
  // tile's rows only.
  float* lse = Scratch<float>(kU, na);
  {
    float* logits = Scratch<float>(kLogits, cs * V);
    for (int64_t c0 = 0; c0 < na; c0 += cs) {
      const int64_t c1 = std::min(na, c0 + cs);
      GemmMatrix xc;
      LORA_RETURN_IF_ERROR(ChunkLogits(ctx, L, c0, c1, logits, &xc));
#pragma omp parallel for num_threads(T) schedule(dynamic, 2) if ((c1 - c0) * V >= (1 << 15))
      for (int64_t i = c0; i < c1; ++i) lse[i] = LogSumExp(logits + (i - c0) * V, V);
    }
  }
  const int64_t vt = Clamp(kOutPanelElems / D, 64, V);
  float* acc = Scratch<float>(kPanel, vt * D);
  float* tile = Scratch<float>(kLogits, cs * vt);
  for (int64_t v0 = 0; v0 < V; v0 += vt) {
    const int64_t vv = std::min(vt, V - v0);
    for (int64_t c0 = 0; c0 < na; c0 += cs) {
      const int64_t c1 = std::min(na, c0 + cs);
      GemmMatrix xc = ChunkRows(L, c0, c1, T);
      LORA_RETURN_IF_ERROR(Gemm(false, true, c1 - c0, vv, D, 1.0f, xc, Mat(*L.w, v0 * D, D), 0.0f,
                                tile, DType::F32, vv, T));
#pragma omp parallel for num_threads(T) schedule(static) if ((c1 - c0) * vv >= (1 << 15))
      for (int64_t i = c0; i < c1; ++i) {
        float* row = tile + (i - c0) * vv;
        const bool finite = std::isfinite(lse[i]);
        const float l = finite ? lse[i] : 0.0f;
        for (int64_t j = 0; j < vv; ++j) row[j] = L.dloss * ExpF(row[j] - l);
        if (!finite) std::fill(row, row + vv, std::numeric_limits<float>::quiet_NaN());
        const int64_t t = LoadIndex(*L.targets, L.active[i]) - v0;
        if (t >= 0 && t < vv) row[t] -= L.dloss;
      }
      LORA_RETURN_IF_ERROR(Gemm(true, false, vv, D, c1 - c0, 1.0f, Mat(tile, DType::F32, vv), xc,
                                c0 == 0 ? 0.0f : 1.0f, acc, DType::F32, D, T));
    }
    StorePanel(ctx, acc, D, vv, D, nullptr, dw, v0 * D, D);
  }
  return OkStatus();
}

}  // namespace

void RegisterLmHeadKernels() {
  RegisterKernel("lm_head_fwd", LmHeadFwd);
  RegisterKernel("lm_head_ce_fwd", LmHeadCeFwd);
  RegisterKernel("lm_head_ce_bwd_x", LmHeadCeBwdX);
  RegisterKernel("lm_head_ce_fwd_bwd_x", LmHeadCeFwdBwdX);
  RegisterKernel("lm_head_ce_bwd_w", LmHeadCeBwdW);
}

}  // namespace lorart::cpu
