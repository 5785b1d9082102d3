// The loss family of CPU kernels over materialized logits and scalars: the
// softmax cross-entropy, per-sequence log-probabilities, the DPO/IPO loss,
// DPO's replay term and the EWC penalty, each with its backward.
// docs/kernels.md describes them; the shared machinery is matmul.h.
#include "lorart/cpu/matmul.h"

namespace lorart::cpu {
namespace {

using namespace matmul;  // NOLINT: the family's shared machinery

// ----------------------------------------------------------------------------
// Cross-entropy over materialized logits.

// The sizes of a kernel over materialized logits (P: the params of
// cross_entropy_* or sequence_logprobs_*, which declare `tokens` and `vocab`)
// and the operands they share: logits [t, v], targets, mask; the
// parameters land in *prm.
template <class P>
Status LogitsOperands(const KernelParams& p, const std::vector<TensorView>& in, P* prm, int64_t* t,
                      int64_t* v) {
  LORA_RETURN_IF_ERROR(p.Typed(prm));
  LORA_RETURN_IF_ERROR(SizeParam(p, "tokens", prm->tokens, t));
  LORA_RETURN_IF_ERROR(SizeParam(p, "vocab", prm->vocab, v));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[0], *t * *v, "the logits"));
  return CheckLossOperands(p, in[1], in[2], *t);
}

Status CrossEntropyFwd(const KernelContext& ctx, const KernelParams& p,
                       const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 3, out, 2));
  kernels::params::cross_entropy_fwd prm;
  int64_t t = 0, v = 0;
  LORA_RETURN_IF_ERROR(LogitsOperands(p, in, &prm, &t, &v));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, out[0], DType::F32, 1, "the loss sum"));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, out[1], DType::I64, 1, "the count"));
  int64_t count = 0;
  LORA_RETURN_IF_ERROR(CheckTargets(p, in[1], in[2], t, v, &count));
  const uint8_t* mk = in[2].as<const uint8_t>();
  double* loss = Scratch<double>(kRows, t);
#pragma omp parallel for num_threads(Threads(ctx)) schedule(dynamic, 4) if (t * v >= (1 << 15))
  for (int64_t i = 0; i < t; ++i) {
    if (!mk[i]) {
      loss[i] = 0.0;
      continue;
    }
    const float* row = RowF32(in[0], i, v, kLogits);
    loss[i] = double(LogSumExp(row, v)) - double(row[LoadIndex(in[1], i)]);
  }
  double sum = 0.0;
  for (int64_t i = 0; i < t; ++i) sum += loss[i];
  out[0].as<float>()[0] = static_cast<float>(sum);
  out[1].as<int64_t>()[0] = count;
  return OkStatus();
}

Status CrossEntropyBwd(const KernelContext& ctx, const KernelParams& p,
                       const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 4, out, 1));
  kernels::params::cross_entropy_bwd prm;
  int64_t t = 0, v = 0;
  LORA_RETURN_IF_ERROR(LogitsOperands(p, in, &prm, &t, &v));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, in[3], DType::F32, 1, "dloss"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, out[0], t * v, "the logits gradient"));
  int64_t count = 0;
  LORA_RETURN_IF_ERROR(CheckTargets(p, in[1], in[2], t, v, &count));
  const uint8_t* mk = in[2].as<const uint8_t>();
  const float dloss = in[3].as<const float>()[0];
  const TensorView& dl = out[0];
#pragma omp parallel for num_threads(Threads(ctx)) schedule(dynamic, 4) if (t * v >= (1 << 15))
  for (int64_t i = 0; i < t; ++i) {
    float* g = dl.dtype == DType::F32 ? dl.as<float>() + i * v : Scratch<float>(kRows, v);
    if (!mk[i]) {
      std::fill(g, g + v, 0.0f);
    } else {
      const float* row = RowF32(in[0], i, v, kLogits);
      SoftmaxGrad(row, v, LogSumExp(row, v), LoadIndex(in[1], i), dloss, g);
    }
    if (dl.dtype != DType::F32) FromFloat(g, v, dl, i * v);
  }
  return OkStatus();
}

// ----------------------------------------------------------------------------
// Preference objectives: per-sequence log-probabilities and the DPO/IPO loss.
// Inputs: logits [tokens, vocab], targets, mask, sequence ids [tokens]
// (a masked-in token's id must lie in [0, sequences)).

Status CheckSequenceIds(const KernelParams& p, const TensorView& ids, const TensorView& mask,
                        int64_t tokens, int64_t sequences) {
  LORA_RETURN_IF_ERROR(ExpectIndex(p, ids, tokens, "the sequence ids"));
  const uint8_t* mk = mask.as<const uint8_t>();
  for (int64_t i = 0; i < tokens; ++i) {
    int64_t s = LoadIndex(ids, i);
    if (mk[i] && (s < 0 || s >= sequences))
      return InvalidArgumentError(StrFormat(
          "kernel '%s': token %lld is in the loss but its sequence id %lld is outside [0, %lld)",
          p.kind().c_str(), static_cast<long long>(i), static_cast<long long>(s),
          static_cast<long long>(sequences)));
  }
  return OkStatus();
}

// The sizes and the shared operands (logits, targets, mask, sequence ids) of
// both sequence_logprobs kernels, checked.
// P: params::sequence_logprobs_fwd or _bwd.
template <class P>
Status SequenceLogProbsOperands(const KernelParams& p, const std::vector<TensorView>& in,
                                int64_t* t, int64_t* v, int64_t* n) {
  P prm;
  LORA_RETURN_IF_ERROR(LogitsOperands(p, in, &prm, t, v));
  LORA_RETURN_IF_ERROR(SizeParam(p, "sequences", prm.sequences, n));
  int64_t count = 0;
  LORA_RETURN_IF_ERROR(CheckTargets(p, in[1], in[2], *t, *v, &count));
  return CheckSequenceIds(p, in[3], in[2], *t, *n);
}

Status SequenceLogProbsFwd(const KernelContext& ctx, const KernelParams& p,
                           const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  int64_t t = 0, v = 0, n = 0;
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 4, out, 1));
  LORA_RETURN_IF_ERROR(
      SequenceLogProbsOperands<kernels::params::sequence_logprobs_fwd>(p, in, &t, &v, &n));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, out[0], DType::F32, n, "the log-probabilities"));
  const uint8_t* mk = in[2].as<const uint8_t>();
  double* logp = Scratch<double>(kRows, t);
#pragma omp parallel for num_threads(Threads(ctx)) schedule(dynamic, 4) if (t * v >= (1 << 15))
  for (int64_t i = 0; i < t; ++i) {
    if (!mk[i]) {
      logp[i] = 0.0;
      continue;
    }
    const float* row = RowF32(in[0], i, v, kLogits);
    logp[i] = double(row[LoadIndex(in[1], i)]) - double(LogSumExp(row, v));
  }
  // Summed in token order: the same result on every thread count.
  std::vector<double> sums(static_cast<size_t>(n), 0.0);
  for (int64_t i = 0; i < t; ++i)
    if (mk[i]) sums[LoadIndex(in[3], i)] += logp[i];
  for (int64_t s = 0; s < n; ++s) out[0].as<float>()[s] = static_cast<float>(sums[s]);
  return OkStatus();
}

Status SequenceLogProbsBwd(const KernelContext& ctx, const KernelParams& p,
                           const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  int64_t t = 0, v = 0, n = 0;
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 5, out, 1));
  LORA_RETURN_IF_ERROR(
      SequenceLogProbsOperands<kernels::params::sequence_logprobs_bwd>(p, in, &t, &v, &n));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, in[4], DType::F32, n, "the log-probability gradients"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, out[0], t * v, "the logits gradient"));
  const uint8_t* mk = in[2].as<const uint8_t>();
  const float* dlogp = in[4].as<const float>();
  const TensorView& dl = out[0];
#pragma omp parallel for num_threads(Threads(ctx)) schedule(dynamic, 4) if (t * v >= (1 << 15))
  for (int64_t i = 0; i < t; ++i) {
    float* g = dl.dtype == DType::F32 ? dl.as<float>() + i * v : Scratch<float>(kRows, v);
    if (!mk[i]) {
      std::fill(g, g + v, 0.0f);
    } else {
      // d log p[target] / d logits = onehot - softmax: the cross-entropy
      // gradient with the opposite sign.
      const float* row = RowF32(in[0], i, v, kLogits);
      SoftmaxGrad(row, v, LogSumExp(row, v), LoadIndex(in[1], i), -dlogp[LoadIndex(in[3], i)], g);
    }
    if (dl.dtype != DType::F32) FromFloat(g, v, dl, i * v);
  }
  return OkStatus();
}

// Replay in DPO: out = weight · pairs present / max(lm_count, 1) · value,
// linear in value — the forward (value = the replay tokens' summed loss) and
// the backward (value = dloss) are the same product.
// P: params::replay_loss_fwd or _bwd.
template <class P>
Status ReplayScaled(const KernelParams& p, const TensorView& value, const TensorView& count,
                    const TensorView& pair_mask, const TensorView& out, const char* what) {
  P prm;
  LORA_RETURN_IF_ERROR(p.Typed(&prm));
  int64_t pairs = 0;
  LORA_RETURN_IF_ERROR(SizeParam(p, "pairs", prm.pairs, &pairs));
  const double weight = prm.weight;
  LORA_RETURN_IF_ERROR(ExpectTyped(p, value, DType::F32, 1, what));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, count, DType::I64, 1, "the replay token count"));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, pair_mask, DType::BOOL, pairs, "the pair mask"));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, out, DType::F32, 1, "the result"));
  int64_t present = 0;
  for (int64_t q = 0; q < pairs; ++q) present += pair_mask.as<const uint8_t>()[q] ? 1 : 0;
  double scale =
      weight * double(present) / double(std::max<int64_t>(1, count.as<const int64_t>()[0]));
  out.as<float>()[0] = static_cast<float>(scale * double(value.as<const float>()[0]));
  return OkStatus();
}

// lm_sum, lm_count, pair_mask -> the weighted replay loss.
Status ReplayLossFwd(const KernelContext&, const KernelParams& p, const std::vector<TensorView>& in,
                     const std::vector<TensorView>& out) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 3, out, 1));
  return ReplayScaled<kernels::params::replay_loss_fwd>(p, in[0], in[1], in[2], out[0],
                                                        "the replay loss sum");
}

// lm_count, pair_mask, dloss -> d lm_sum.
Status ReplayLossBwd(const KernelContext&, const KernelParams& p, const std::vector<TensorView>& in,
                     const std::vector<TensorView>& out) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 3, out, 1));
  return ReplayScaled<kernels::params::replay_loss_bwd>(p, in[2], in[0], in[1], out[0], "dloss");
}

// EWC: the penalty λ·Σ F ⊙ ΔW² on an adapter's update ΔW = s·B·A (B [n, r],
// A [r, k], F [n, k]), and its gradients with respect to A and B.

struct EwcSizes {
  int64_t n = 0, k = 0, r = 0;
  double scaling, lambda;
};

// P: params::ewc_penalty_fwd or _bwd.
template <class P>
Status EwcParams(const KernelParams& p, const std::vector<TensorView>& in, EwcSizes* z) {
  P prm;
  LORA_RETURN_IF_ERROR(p.Typed(&prm));
  LORA_RETURN_IF_ERROR(SizeParam(p, "n", prm.n, &z->n));
  LORA_RETURN_IF_ERROR(SizeParam(p, "k", prm.k, &z->k));
  LORA_RETURN_IF_ERROR(SizeParam(p, "rank", prm.rank, &z->r));
  z->scaling = prm.scaling;
  z->lambda = prm.lambda;
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[0], z->r * z->k, "lora_A"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[1], z->n * z->r, "lora_B"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, in[2], z->n * z->k, "the Fisher"));
  return ExpectTyped(p, in[3], DType::I64, 1, "the count");
}

// Row `o` of ΔW = s·B·A in double.
void EwcDeltaRow(const EwcSizes& z, const std::vector<float>& a, const std::vector<float>& b,
                 int64_t o, double* row) {
  std::fill(row, row + z.k, 0.0);
  for (int64_t q = 0; q < z.r; ++q) {
    double bq = z.scaling * b[o * z.r + q];
    const float* aq = a.data() + q * z.k;
    for (int64_t c = 0; c < z.k; ++c) row[c] += bq * aq[c];
  }
}

std::vector<float> AsFloats(const TensorView& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  ToFloat(t, 0, t.numel(), v.data());
  return v;
}

Status EwcPenaltyFwd(const KernelContext& ctx, const KernelParams& p,
                     const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 4, out, 2));
  EwcSizes z;
  LORA_RETURN_IF_ERROR(EwcParams<kernels::params::ewc_penalty_fwd>(p, in, &z));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, out[0], DType::F32, 1, "the weighted penalty"));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, out[1], DType::F32, 1, "the penalty"));
  std::vector<float> a = AsFloats(in[0]), b = AsFloats(in[1]), f = AsFloats(in[2]);
  std::vector<double> rows(static_cast<size_t>(z.n), 0.0);
#pragma omp parallel num_threads(Threads(ctx)) if (z.n * z.k * z.r >= (1 << 16))
  {
    std::vector<double> delta(static_cast<size_t>(z.k));
#pragma omp for schedule(static)
    for (int64_t o = 0; o < z.n; ++o) {
      EwcDeltaRow(z, a, b, o, delta.data());
      double sum = 0;
      for (int64_t c = 0; c < z.k; ++c) sum += double(f[o * z.k + c]) * delta[c] * delta[c];
      rows[o] = sum;
    }
  }
  double penalty = 0;
  for (double r : rows) penalty += r;  // in row order: the same on any thread count
  penalty *= z.lambda;
  out[0].as<float>()[0] = static_cast<float>(penalty * double(in[3].as<const int64_t>()[0]));
  out[1].as<float>()[0] = static_cast<float>(penalty);
  return OkStatus();
}

Status EwcPenaltyBwd(const KernelContext& ctx, const KernelParams& p,
                     const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 5, out, 2));
  EwcSizes z;
  LORA_RETURN_IF_ERROR(EwcParams<kernels::params::ewc_penalty_bwd>(p, in, &z));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, in[4], DType::F32, 1, "dloss"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, out[0], z.r * z.k, "the lora_A gradient"));
  LORA_RETURN_IF_ERROR(ExpectFloatN(p, out[1], z.n * z.r, "the lora_B gradient"));
  std::vector<float> a = AsFloats(in[0]), b = AsFloats(in[1]), f = AsFloats(in[2]);
  const double c =
      2.0 * double(in[4].as<const float>()[0]) * double(in[3].as<const int64_t>()[0]) * z.lambda;
  // G = c·F ⊙ ΔW, row by row; dB = s·G·Aᵀ per row; dA = s·Bᵀ·G summed over
  // the rows in order (per thread, then the threads' sums in order).
  std::vector<double> db(static_cast<size_t>(z.n * z.r), 0.0);
  int threads = Threads(ctx);
  if (z.n * z.k * z.r < (1 << 16)) threads = 1;
  std::vector<std::vector<double>> da(static_cast<size_t>(threads),
                                      std::vector<double>(static_cast<size_t>(z.r * z.k), 0.0));
#pragma omp parallel num_threads(threads)
  {
    std::vector<double> g(static_cast<size_t>(z.k));
    int t = 0;
#ifdef _OPENMP
    t = omp_get_thread_num();
#endif
    std::vector<double>& mine = da[static_cast<size_t>(t)];
#pragma omp for schedule(static)
    for (int64_t o = 0; o < z.n; ++o) {
      EwcDeltaRow(z, a, b, o, g.data());
      for (int64_t col = 0; col < z.k; ++col) g[col] *= c * double(f[o * z.k + col]);
      for (int64_t q = 0; q < z.r; ++q) {
        const float* aq = a.data() + q * z.k;
        double s = 0;
        for (int64_t col = 0; col < z.k; ++col) s += g[col] * aq[col];
        db[o * z.r + q] = z.scaling * s;
        double bq = z.scaling * b[o * z.r + q];
        double* dq = mine.data() + q * z.k;
        for (int64_t col = 0; col < z.k; ++col) dq[col] += bq * g[col];
      }
    }
  }
  std::vector<float> da_out(static_cast<size_t>(z.r * z.k), 0.0f), db_out(db.begin(), db.end());
  for (size_t i = 0; i < da_out.size(); ++i) {
    double s = 0;
    for (const std::vector<double>& part : da) s += part[i];
    da_out[i] = static_cast<float>(s);
  }
  FromFloat(da_out.data(), z.r * z.k, out[0], 0);
  FromFloat(db_out.data(), z.n * z.r, out[1], 0);
  return OkStatus();
}

// The DPO loss of one pair from h = (π_c − r_c) − (π_r − r_r), and its
// derivative with respect to h.
struct PairLoss {
  double loss, dloss_dh;
};
PairLoss DpoPairLoss(double h, double beta, bool ipo) {
  if (ipo) {
    double d = h - 1.0 / (2.0 * beta);
    return {d * d, 2.0 * d};
  }
  // −log σ(βh) = softplus(−βh), computed without overflow.
  double z = -beta * h;
  double softplus = z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z));
  double sig = 1.0 / (1.0 + std::exp(-z));  // σ(−βh)
  return {softplus, -beta * sig};
}

Status CheckDpoOperands(const KernelParams& p, const std::vector<TensorView>& in, int64_t pairs) {
  LORA_RETURN_IF_ERROR(
      ExpectTyped(p, in[0], DType::F32, 2 * pairs, "the policy log-probabilities"));
  LORA_RETURN_IF_ERROR(
      ExpectTyped(p, in[1], DType::F32, 2 * pairs, "the reference log-probabilities"));
  return ExpectTyped(p, in[2], DType::BOOL, pairs, "the pair mask");
}

Status DpoLossFwd(const KernelContext&, const KernelParams& p, const std::vector<TensorView>& in,
                  const std::vector<TensorView>& out) {
  kernels::params::dpo_loss_fwd prm;
  LORA_RETURN_IF_ERROR(p.Typed(&prm));
  int64_t pairs = 0;
  LORA_RETURN_IF_ERROR(SizeParam(p, "pairs", prm.pairs, &pairs));
  const double beta = prm.beta;
  const bool ipo = prm.ipo != 0;
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 3, out, 6));
  LORA_RETURN_IF_ERROR(CheckDpoOperands(p, in, pairs));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, out[0], DType::F32, 1, "the loss sum"));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, out[1], DType::I64, 1, "the pair count"));
  for (int k = 2; k < 6; ++k)
    LORA_RETURN_IF_ERROR(ExpectTyped(p, out[k], DType::F32, 1, "a metric"));
  const float* pol = in[0].as<const float>();
  const float* ref = in[1].as<const float>();
  const uint8_t* present = in[2].as<const uint8_t>();
  double loss = 0, chosen = 0, rejected = 0, correct = 0, margin = 0;
  int64_t count = 0;
  for (int64_t q = 0; q < pairs; ++q) {
    if (!present[q]) continue;
    double rc = double(pol[2 * q]) - ref[2 * q], rr = double(pol[2 * q + 1]) - ref[2 * q + 1];
    loss += DpoPairLoss(rc - rr, beta, ipo).loss;
    chosen += beta * rc;
    rejected += beta * rr;
    correct += rc > rr ? 1.0 : 0.0;
    margin += beta * (rc - rr);
    ++count;
  }
  out[0].as<float>()[0] = static_cast<float>(loss);
  out[1].as<int64_t>()[0] = count;
  out[2].as<float>()[0] = static_cast<float>(chosen);
  out[3].as<float>()[0] = static_cast<float>(rejected);
  out[4].as<float>()[0] = static_cast<float>(correct);
  out[5].as<float>()[0] = static_cast<float>(margin);
  return OkStatus();
}

Status DpoLossBwd(const KernelContext&, const KernelParams& p, const std::vector<TensorView>& in,
                  const std::vector<TensorView>& out) {
  kernels::params::dpo_loss_bwd prm;
  LORA_RETURN_IF_ERROR(p.Typed(&prm));
  int64_t pairs = 0;
  LORA_RETURN_IF_ERROR(SizeParam(p, "pairs", prm.pairs, &pairs));
  const double beta = prm.beta;
  const bool ipo = prm.ipo != 0;
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, 4, out, 1));
  LORA_RETURN_IF_ERROR(CheckDpoOperands(p, in, pairs));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, in[3], DType::F32, 1, "dloss"));
  LORA_RETURN_IF_ERROR(ExpectTyped(p, out[0], DType::F32, 2 * pairs, "the policy gradient"));
  const float* pol = in[0].as<const float>();
  const float* ref = in[1].as<const float>();
  const uint8_t* present = in[2].as<const uint8_t>();
  const double dloss = in[3].as<const float>()[0];
  float* g = out[0].as<float>();
  for (int64_t q = 0; q < pairs; ++q) {
    double d = 0;
    if (present[q]) {
      double h = (double(pol[2 * q]) - ref[2 * q]) - (double(pol[2 * q + 1]) - ref[2 * q + 1]);
      d = dloss * DpoPairLoss(h, beta, ipo).dloss_dh;
    }
    g[2 * q] = static_cast<float>(d);
    g[2 * q + 1] = static_cast<float>(-d);
  }
  return OkStatus();
}

}  // namespace

void RegisterLossKernels() {
  RegisterKernel("cross_entropy_fwd", CrossEntropyFwd);
  RegisterKernel("cross_entropy_bwd", CrossEntropyBwd);
  RegisterKernel("sequence_logprobs_fwd", SequenceLogProbsFwd);
  RegisterKernel("sequence_logprobs_bwd", SequenceLogProbsBwd);
  RegisterKernel("dpo_loss_fwd", DpoLossFwd);
  RegisterKernel("dpo_loss_bwd", DpoLossBwd);
  RegisterKernel("replay_loss_fwd", ReplayLossFwd);
  RegisterKernel("replay_loss_bwd", ReplayLossBwd);
  RegisterKernel("ewc_penalty_fwd", EwcPenaltyFwd);
  RegisterKernel("ewc_penalty_bwd", EwcPenaltyBwd);
}

}  // namespace lorart::cpu
