//===- losses.cpp - The losses on logits, DPO, replay and EWC ------------===//
//
// The objectives that take materialized logits or per-sequence values:
// `cross_entropy_fwd/bwd` (the unfused loss), `sequence_logprobs_fwd/bwd`
// (DPO's per-sequence log-probabilities), `dpo_loss_fwd/bwd`,
// `replay_loss_fwd/bwd` and `ewc_penalty_fwd/bwd`. Each follows the CPU
// backend's kernel (runtime/src/lorart/cpu/linear.cc) operation for
// operation, with sums in a fixed order (no atomics: reproducible):
//
// * rows of logits: one block of 256 threads per token; the row's max, a NaN
//   flag, then Σ exp(x − max) in f32 per thread and double across threads —
//   a NaN logit gives a NaN row as on the CPU, an infinite max is the
//   logsumexp. A masked-in target outside [0, vocab) (the CPU rejects it; the
//   device cannot report) makes that token's loss NaN, so the step's loss is
//   non-finite and the trainer stops on it.
// * token sums: each row's value as a double in the workspace, then one block
//   (per sequence for sequence_logprobs) adding contiguous runs of tokens in
//   order, then by a butterfly in each warp and the warps in order.
// * the pair losses (DPO, replay) are a handful of scalars: one thread, in
//   double, the CPU's formulas.
// * EWC: ΔW = s·B·A is never stored. The penalty: one warp per row of ΔW
//   (the row's Σ F·ΔW² into the workspace), then one block sums the rows. Its
//   gradient: `_db` one warp per row (G = c·F∘ΔW recomputed per group of 16
//   ranks, each dB element a warp sum); `_da` one thread per column
//   (A's column read per row, B's rows staged in shared memory 32 at a
//   time, the rows summed in order).
//
//===----------------------------------------------------------------------===//
#include "cuda/losses.h"
#include "cuda/codegen.h"

#include <map>

namespace lorac::cuda {
namespace {

// Block reductions for 256 threads (8 warps) and the row logsumexp.
const char *kRowHelpers = R"(
namespace {
// Deterministic sums of doubles: a butterfly over the warp's lanes, then
// the 8 warps' sums in warp order (in every thread of the block).
__device__ __forceinline__ double lora_warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ double lora_block_sum(double v, double* red) {
  v = lora_warp_sum(v);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  double r = 0.0;
  for (int w = 0; w < 8; ++w) r += red[w];
  __syncthreads();
  return r;
}
__device__ __forceinline__ float lora_block_max(float v, float* red) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  float r = red[0];
  for (int w = 1; w < 8; ++w) r = fmaxf(r, red[w]);
  __syncthreads();
  return r;
}
// log Σ exp(row) over V entries, in every thread of the block: NaN if any
// entry is NaN, the max itself if it is not finite (the CPU's LogSumExp).
template <typename L>
__device__ float lora_row_lse(const L* row, int V, double* red) {
  bool nan = false;
  float m = -INFINITY;
  for (int j = threadIdx.x; j < V; j += 256) {
    const float x = lora_ld(row, j);
    nan |= x != x;
    m = fmaxf(m, x);
  }
  if (lora_block_max(nan ? 1.f : 0.f, (float*)red) > 0.f) return NAN;
  m = lora_block_max(m, (float*)red);
  if (!isfinite(m)) return m;
  float s = 0.f;
  for (int j = threadIdx.x; j < V; j += 256) s += expf(lora_ld(row, j) - m);
  return m + (float)log(lora_block_sum((double)s, red));
}
// Σ over tokens [0, T) of f(i), a double per token: 256 contiguous runs
// added in order, then the runs by lora_block_sum — the same order on every
// launch.
template <typename F>
__device__ double lora_token_sum(int T, double* red, F f) {
  const int per = (T + 255) / 256, lo = threadIdx.x * per, hi = lo + per < T ? lo + per : T;
  double acc = 0.0;
  for (int i = lo; i < hi; ++i) acc += f(i);
  return lora_block_sum(acc, red);
}
}  // namespace
)";

// Per-token value of the logits rows: the cross-entropy LSE − x[t], or the
// log-probability x[t] − LSE, as a double in the workspace (0 when masked
// out).
const char *kRows = R"(
extern "C" __global__ void __launch_bounds__(256) $BASE$_rows($PARAMS$) {
  __shared__ double red[8];
  const long i = blockIdx.x;
  double* val = (double*)ws_;
  if (!mask[i]) {
    if (threadIdx.x == 0) val[i] = 0.0;
    return;
  }
  const float lse = lora_row_lse(logits + i * $V$L, $V$, red);
  if (threadIdx.x == 0) {
    const long t = (long)targets[i];
    const double x = t >= 0 && t < $V$ ? (double)lora_ld(logits, i * $V$L + t) : (double)NAN;
    val[i] = $VALUE$;
  }
}
)";

// The gradient rows: g = scale·(softmax − onehot(target)), zero for a
// masked-out token, NaN for a row whose logsumexp is not finite.
const char *kGradRows = R"(
extern "C" __global__ void __launch_bounds__(256) $BASE$($PARAMS$) {
  __shared__ double red[8];
  const long i = blockIdx.x;
  $DL$* g = dlogits + i * $V$L;
  if (!mask[i]) {
    for (int j = threadIdx.x; j < $V$; j += 256) lora_st(g, j, 0.f);
    return;
  }
  const $LT$* row = logits + i * $V$L;
  const float lse = lora_row_lse(row, $V$, red);
  const float scale = $SCALE$;
  const long t = (long)targets[i];
  for (int j = threadIdx.x; j < $V$; j += 256) {
    float v = isfinite(lse) ? scale * expf(lora_ld(row, j) - lse) : NAN;
    if (j == t) v -= scale;
    lora_st(g, j, v);
  }
}
)";

std::string rowParams(const LogitsLoss &l, bool seqIds) {
  std::string p = "const " + l.logitsType + "* __restrict__ logits, const " + l.targetType +
                  "* __restrict__ targets, const unsigned char* __restrict__ mask";
  if (seqIds) p += ", const " + l.seqType + "* __restrict__ seq";
  return p;
}

std::string lossBase(const char *name, const LogitsLoss &l) {
  return std::string("lora_") + name + "_t" + std::to_string(l.tokens) + "_v" +
         std::to_string(l.vocab) + (l.logitsType == "float" ? "_f32" : l.logitsType == "__half" ? "_f16" : "_bf16") +
         (l.targetType == "int" ? "_i32" : "_i64");
}

bool checkLogits(const LogitsLoss &l, std::string *why) {
  if (l.tokens <= 0 || l.vocab <= 0 || l.tokens > (1LL << 31) || l.vocab > (1LL << 31)) {
    *why = "token or vocabulary count out of range";
    return false;
  }
  return true;
}

} // namespace

std::optional<Source> emitCrossEntropyFwd(const LogitsLoss &l, std::string *why) {
  if (!checkLogits(l, why))
    return std::nullopt;
  Source s;
  std::string base = lossBase("cross_entropy_fwd", l);
  std::string params = rowParams(l, false) +
                       ", float* __restrict__ loss, long long* __restrict__ count, void* __restrict__ ws_";
  std::map<std::string, std::string> v{{"BASE", base}, {"PARAMS", params},
                                       {"V", std::to_string(l.vocab)},
                                       {"VALUE", "(double)lse - x"}};
  s.code = std::string(basePrelude()) + kRowHelpers + subst(kRows, v) +
           subst(R"(
extern "C" __global__ void __launch_bounds__(256) $BASE$_sum($PARAMS$) {
  __shared__ double red[8];
  const double* val = (const double*)ws_;
  const double sum = lora_token_sum($T$, red, [&](int i) { return val[i]; });
  const double n = lora_token_sum($T$, red, [&](int i) { return mask[i] ? 1.0 : 0.0; });
  if (threadIdx.x == 0) {
    loss[0] = (float)sum;
    count[0] = (long long)n;
  }
}
)",
                 {{"BASE", base}, {"PARAMS", params}, {"T", std::to_string(l.tokens)}});
  s.entry = base + "_rows";
  s.grid = l.tokens;
  s.block = 256;
  s.next = {Step{base + "_sum", 1, 1, 1, 256, 0}};
  s.workspace = l.tokens * 8;
  return s;
}

std::optional<Source> emitCrossEntropyBwd(const LogitsLoss &l, std::string *why) {
  if (!checkLogits(l, why))
    return std::nullopt;
  Source s;
  s.entry = lossBase("cross_entropy_bwd", l);
  std::string params = rowParams(l, false) + ", const float* __restrict__ dloss, " + l.dlogitsType +
                       "* __restrict__ dlogits";
  s.code = std::string(basePrelude()) + kRowHelpers +
           subst(kGradRows, {{"BASE", s.entry}, {"PARAMS", params}, {"V", std::to_string(l.vocab)},
                             {"DL", l.dlogitsType}, {"LT", l.logitsType}, {"SCALE", "dloss[0]"}});
  s.grid = l.tokens;
  s.block = 256;
  return s;
}

std::optional<Source> emitSequenceLogProbsFwd(const LogitsLoss &l, std::string *why) {
  if (!checkLogits(l, why))
    return std::nullopt;
  if (l.sequences <= 0) {
    *why = "no sequences";
    return std::nullopt;
  }
  Source s;
  std::string base = lossBase("sequence_logprobs_fwd", l) + "_s" + std::to_string(l.sequences);
  std::string params = rowParams(l, true) + ", float* __restrict__ logp, void* __restrict__ ws_";
  std::map<std::string, std::string> v{{"BASE", base}, {"PARAMS", params},
                                       {"V", std::to_string(l.vocab)},
                                       {"VALUE", "x - (double)lse"}};
  s.code = std::string(basePrelude()) + kRowHelpers + subst(kRows, v) +
           subst(R"(
// One block per sequence: its masked-in tokens' log-probabilities, in order.
extern "C" __global__ void __launch_bounds__(256) $BASE$_sum($PARAMS$) {
  __shared__ double red[8];
  const double* val = (const double*)ws_;
  const long q = blockIdx.x;
  const double sum = lora_token_sum($T$, red, [&](int i) {
    return mask[i] && (long)seq[i] == q ? val[i] : 0.0;
  });
  if (threadIdx.x == 0) logp[q] = (float)sum;
}
)",
                 {{"BASE", base}, {"PARAMS", params}, {"T", std::to_string(l.tokens)}});
  s.entry = base + "_rows";
  s.grid = l.tokens;
  s.block = 256;
  s.next = {Step{base + "_sum", l.sequences, 1, 1, 256, 0}};
  s.workspace = l.tokens * 8;
  return s;
}

std::optional<Source> emitSequenceLogProbsBwd(const LogitsLoss &l, std::string *why) {
  if (!checkLogits(l, why))
    return std::nullopt;
  Source s;
  s.entry = lossBase("sequence_logprobs_bwd", l) + "_s" + std::to_string(l.sequences);
  std::string params = rowParams(l, true) + ", const float* __restrict__ dlogp, " + l.dlogitsType +
                       "* __restrict__ dlogits";
  // d log p[target] / d logits = onehot − softmax: the cross-entropy
  // gradient scaled by −dlogp of the token's sequence (0 for an id outside
  // [0, sequences): the CPU rejects it).
  std::string scale = "(long)seq[i] >= 0 && (long)seq[i] < " + std::to_string(l.sequences) +
                      " ? -dlogp[seq[i]] : 0.f";
  s.code = std::string(basePrelude()) + kRowHelpers +
           subst(kGradRows, {{"BASE", s.entry}, {"PARAMS", params}, {"V", std::to_string(l.vocab)},
                             {"DL", l.dlogitsType}, {"LT", l.logitsType}, {"SCALE", scale}});
  s.grid = l.tokens;
  s.block = 256;
  return s;
}

namespace {
// −log σ(βh) or IPO's (h − 1/(2β))², and d/dh: the CPU's DpoPairLoss.
const char *kDpoPair = R"(
namespace {
struct LoraPairLoss { double loss, dloss_dh; };
__device__ __forceinline__ LoraPairLoss lora_dpo_pair(double h) {
  const double beta = $BETA$;
  if ($IPO$) {
    const double d = h - 1.0 / (2.0 * beta);
    return {d * d, 2.0 * d};
  }
  const double z = -beta * h;
  const double softplus = z > 0 ? z + log1p(exp(-z)) : log1p(exp(z));
  const double sig = 1.0 / (1.0 + exp(-z));
  return {softplus, -beta * sig};
}
}  // namespace
)";

// The base prelude and the pair loss specialised by β and the loss type.
std::string dpoPrelude(double beta, bool ipo) {
  return std::string(basePrelude()) +
         subst(kDpoPair, {{"BETA", doubleLiteral(beta)}, {"IPO", ipo ? "true" : "false"}});
}

std::string dpoTag(int64_t pairs, bool ipo) {
  // The source is specialised by β; the entry names the pair count and the
  // loss (β's digits would make an unwieldy symbol).
  return "_p" + std::to_string(pairs) + (ipo ? "_ipo" : "_sigmoid");
}
} // namespace

Source emitDpoLossFwd(int64_t pairs, double beta, bool ipo) {
  Source s;
  s.entry = "lora_dpo_loss_fwd" + dpoTag(pairs, ipo);
  s.code = dpoPrelude(beta, ipo) + subst(R"(
// The summed loss, the pair count and the reward metrics (sums over the
// pairs present, in pair order, in double): one thread.
extern "C" __global__ void __launch_bounds__(32) $ENTRY$(const float* __restrict__ pol, const float* __restrict__ ref,
    const unsigned char* __restrict__ present, float* __restrict__ loss, long long* __restrict__ count,
    float* __restrict__ chosen, float* __restrict__ rejected, float* __restrict__ correct,
    float* __restrict__ margin) {
  if (threadIdx.x != 0) return;
  const double beta = $BETA$;
  double l = 0, c = 0, r = 0, ok = 0, mg = 0;
  long long n = 0;
  for (int q = 0; q < $P$; ++q) {
    if (!present[q]) continue;
    const double rc = (double)pol[2 * q] - ref[2 * q], rr = (double)pol[2 * q + 1] - ref[2 * q + 1];
    l += lora_dpo_pair(rc - rr).loss;
    c += beta * rc;
    r += beta * rr;
    ok += rc > rr ? 1.0 : 0.0;
    mg += beta * (rc - rr);
    ++n;
  }
  loss[0] = (float)l;
  count[0] = n;
  chosen[0] = (float)c;
  rejected[0] = (float)r;
  correct[0] = (float)ok;
  margin[0] = (float)mg;
}
)",
                 {{"ENTRY", s.entry}, {"BETA", doubleLiteral(beta)}, {"P", std::to_string(pairs)}});
  s.block = 32;
  return s;
}

Source emitDpoLossBwd(int64_t pairs, double beta, bool ipo) {
  Source s;
  s.entry = "lora_dpo_loss_bwd" + dpoTag(pairs, ipo);
  s.code = dpoPrelude(beta, ipo) + subst(R"(
// d loss / d policy: +d for the chosen, −d for the rejected; one thread per pair.
extern "C" __global__ void __launch_bounds__(256) $ENTRY$(const float* __restrict__ pol, const float* __restrict__ ref,
    const unsigned char* __restrict__ present, const float* __restrict__ dloss, float* __restrict__ g) {
  const int q = blockIdx.x * blockDim.x + threadIdx.x;
  if (q >= $P$) return;
  double d = 0;
  if (present[q]) {
    const double h = ((double)pol[2 * q] - ref[2 * q]) - ((double)pol[2 * q + 1] - ref[2 * q + 1]);
    d = (double)dloss[0] * lora_dpo_pair(h).dloss_dh;
  }
  g[2 * q] = (float)d;
  g[2 * q + 1] = (float)-d;
}
)",
                 {{"ENTRY", s.entry}, {"P", std::to_string(pairs)}});
  s.grid = (pairs + 255) / 256;
  s.block = 256;
  return s;
}

Source emitReplayLoss(int64_t pairs, double weight, bool bwd) {
  // out = weight · pairs present / max(lm_count, 1) · value, linear in value:
  // the forward's value is the replay tokens' summed loss, the backward's
  // dloss. Arguments in op order: fwd (lm_sum, lm_count, pair_mask) → out,
  // bwd (lm_count, pair_mask, dloss) → out.
  Source s;
  s.entry = std::string("lora_replay_loss_") + (bwd ? "bwd" : "fwd") + "_p" + std::to_string(pairs);
  std::string params =
      bwd ? "const long long* __restrict__ lm_count, const unsigned char* __restrict__ pair_mask, "
            "const float* __restrict__ value, float* __restrict__ out"
          : "const float* __restrict__ value, const long long* __restrict__ lm_count, "
            "const unsigned char* __restrict__ pair_mask, float* __restrict__ out";
  s.code = std::string(basePrelude()) +
           subst(R"(
extern "C" __global__ void __launch_bounds__(32) $ENTRY$($PARAMS$) {
  if (threadIdx.x != 0) return;
  long long present = 0;
  for (int q = 0; q < $P$; ++q) present += pair_mask[q] ? 1 : 0;
  const long long n = lm_count[0] > 1 ? lm_count[0] : 1;
  const double scale = $W$ * (double)present / (double)n;
  out[0] = (float)(scale * (double)value[0]);
}
)",
                 {{"ENTRY", s.entry}, {"PARAMS", params}, {"P", std::to_string(pairs)},
                  {"W", doubleLiteral(weight)}});
  s.block = 32;
  return s;
}

std::optional<Source> emitEwcPenalty(const EwcPenalty &e, bool bwd, std::string *why) {
  if (e.n <= 0 || e.k <= 0 || e.rank <= 0 || e.rank > 256) {
    *why = "rank outside [1, 256]";
    return std::nullopt;
  }
  std::map<std::string, std::string> v{
      {"N", std::to_string(e.n)},         {"K", std::to_string(e.k)},
      {"R", std::to_string(e.rank)},      {"S", doubleLiteral(e.scaling)},
      {"LAMBDA", doubleLiteral(e.lambda)}, {"AT", e.aType},
      {"BT", e.bType},                     {"FT", e.fisherType}};
  std::string base = "lora_ewc_penalty_" + std::string(bwd ? "bwd" : "fwd") + "_n" +
                     std::to_string(e.n) + "_k" + std::to_string(e.k) + "_r" +
                     std::to_string(e.rank);
  v["BASE"] = base;
  std::string in = subst("const $AT$* __restrict__ a, const $BT$* __restrict__ b, const $FT$* __restrict__ f, "
                         "const long long* __restrict__ count",
                         v);
  Source s;
  s.block = 256;
  if (!bwd) {
    v["PARAMS"] = in + ", float* __restrict__ weighted, float* __restrict__ penalty, void* __restrict__ ws_";
    s.code = std::string(basePrelude()) + kRowHelpers + subst(R"(
constexpr int N = $N$, K = $K$, R = $R$;
// Row o of ΔW = s·B·A, one warp per row (8 rows a block): Σ_c F·ΔW²
// into the workspace.
extern "C" __global__ void __launch_bounds__(256) $BASE$_rows($PARAMS$) {
  __shared__ double sb[8][R];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const long o = (long)blockIdx.x * 8 + warp;
  if (o >= N) return;  // whole warps: no barrier below
  for (int q = lane; q < R; q += 32) sb[warp][q] = $S$ * (double)lora_ld(b, o * R + q);
  __syncwarp();
  double acc = 0.0;
  for (int c = lane; c < K; c += 32) {
    double d = 0.0;
    for (int q = 0; q < R; ++q) d += sb[warp][q] * (double)lora_ld(a, (long)q * K + c);
    acc += (double)lora_ld(f, o * K + c) * d * d;
  }
  const double row = lora_warp_sum(acc);
  if (lane == 0) ((double*)ws_)[o] = row;
}
// The rows' sum, in order: λ·Σ, and λ·Σ times the token count.
extern "C" __global__ void __launch_bounds__(256) $BASE$_sum($PARAMS$) {
  __shared__ double red[8];
  const double* rows = (const double*)ws_;
  const double p = $LAMBDA$ * lora_token_sum(N, red, [&](int o) { return rows[o]; });
  if (threadIdx.x == 0) {
    weighted[0] = (float)(p * (double)count[0]);
    penalty[0] = (float)p;
  }
}
)", v);
    s.entry = base + "_rows";
    s.grid = (e.n + 7) / 8;
    s.next = {Step{base + "_sum", 1, 1, 1, 256, 0}};
    s.workspace = e.n * 8;
    return s;
  }
  v["PARAMS"] = in + ", const float* __restrict__ dloss, " + e.aType + "* __restrict__ da, " +
                e.bType + "* __restrict__ db";
  s.code = std::string(basePrelude()) + kRowHelpers + subst(R"(
constexpr int N = $N$, K = $K$, R = $R$, QG = R < 16 ? R : 16;
// G = c·F∘ΔW with c = 2·dloss·count·λ; dB[o, q] = s·Σ_c G[o, c]·A[q, c]:
// one warp per row o (8 rows a block), the ranks in groups of 16 (ΔW's row
// recomputed per group), each element a warp sum.
extern "C" __global__ void __launch_bounds__(256) $BASE$_db($PARAMS$) {
  __shared__ double sb[8][R];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const long o = (long)blockIdx.x * 8 + warp;
  if (o >= N) return;  // whole warps: no barrier below
  const double c0 = 2.0 * (double)dloss[0] * (double)count[0] * $LAMBDA$;
  for (int q = lane; q < R; q += 32) sb[warp][q] = $S$ * (double)lora_ld(b, o * R + q);
  __syncwarp();
  for (int q0 = 0; q0 < R; q0 += QG) {
    double acc[QG];
#pragma unroll
    for (int j = 0; j < QG; ++j) acc[j] = 0.0;
    for (int c = lane; c < K; c += 32) {
      double d = 0.0;
      for (int q = 0; q < R; ++q) d += sb[warp][q] * (double)lora_ld(a, (long)q * K + c);
      const double g = c0 * (double)lora_ld(f, o * K + c) * d;
#pragma unroll
      for (int j = 0; j < QG; ++j)
        if (q0 + j < R) acc[j] += g * (double)lora_ld(a, (long)(q0 + j) * K + c);
    }
#pragma unroll
    for (int j = 0; j < QG; ++j) {
      const double t = lora_warp_sum(acc[j]);
      if (lane == 0 && q0 + j < R) lora_st(db, o * R + q0 + j, (float)($S$ * t));
    }
  }
}
// dA[q, c] = s·Σ_o B[o, q]·G[o, c]: one thread per column c (A's column in
// registers), B's rows staged 32 at a time, the rows summed in order.
extern "C" __global__ void __launch_bounds__(256) $BASE$_da($PARAMS$) {
  constexpr int RT = R <= 128 ? 32 : 16;  // at most 32 KiB of shared memory
  __shared__ double sb[RT][R];
  const int c = blockIdx.x * 256 + threadIdx.x;
  const double c0 = 2.0 * (double)dloss[0] * (double)count[0] * $LAMBDA$;
  for (int q0 = 0; q0 < R; q0 += QG) {
    double acc[QG];
#pragma unroll
    for (int j = 0; j < QG; ++j) acc[j] = 0.0;
    for (int o0 = 0; o0 < N; o0 += RT) {
      __syncthreads();
      for (int e = threadIdx.x; e < RT * R; e += 256) {
        const int r = e / R, q = e % R;
        sb[r][q] = o0 + r < N ? $S$ * (double)lora_ld(b, (long)(o0 + r) * R + q) : 0.0;
      }
      __syncthreads();
      if (c >= K) continue;
      for (int r = 0; r < RT && o0 + r < N; ++r) {
        double d = 0.0;
        for (int q = 0; q < R; ++q) d += sb[r][q] * (double)lora_ld(a, (long)q * K + c);
        const double g = c0 * (double)lora_ld(f, (long)(o0 + r) * K + c) * d;
#pragma unroll
        for (int j = 0; j < QG; ++j)
          if (q0 + j < R) acc[j] += sb[r][q0 + j] * g;
      }
    }
    if (c < K)
      for (int j = 0; j < QG && q0 + j < R; ++j) lora_st(da, (long)(q0 + j) * K + c, (float)acc[j]);
  }
}
)", v);
  s.entry = base + "_db";
  s.grid = (e.n + 7) / 8;
  s.next = {Step{base + "_da", (e.k + 255) / 256, 1, 1, 256, 0}};
  return s;
}

} // namespace lorac::cuda

// ===========================================================================
// The family's emitters (codegen.h).

namespace lorac::cuda {
namespace {

/// Losses over materialized logits: operands logits, targets, mask
/// (, sequence ids) (, dlogprobs).
template <class P> LogitsLoss logitsLoss(const KernelDesc &d, const P &p) {
  LogitsLoss l;
  l.tokens = p.tokens;
  l.vocab = p.vocab;
  l.logitsType = d.inputs[0].type;
  l.targetType = d.inputs[1].type;
  if constexpr (std::is_same_v<P, kernels::params::sequence_logprobs_fwd> ||
                std::is_same_v<P, kernels::params::sequence_logprobs_bwd>) {
    l.sequences = p.sequences;
    l.seqType = d.inputs[3].type;
  }
  return l;
}

Emitted crossEntropyFwdKernel(const KernelDesc &d) {
  std::string why;
  auto s = emitCrossEntropyFwd(logitsLoss(d, d.get<kernels::params::cross_entropy_fwd>()), &why);
  return emitted(std::move(s), why);
}
Emitted crossEntropyBwdKernel(const KernelDesc &d) {
  LogitsLoss l = logitsLoss(d, d.get<kernels::params::cross_entropy_bwd>());
  l.dlogitsType = d.outputs[0].type;
  std::string why;
  auto s = emitCrossEntropyBwd(l, &why);
  return emitted(std::move(s), why);
}
Emitted sequenceLogProbsFwdKernel(const KernelDesc &d) {
  std::string why;
  auto s = emitSequenceLogProbsFwd(
      logitsLoss(d, d.get<kernels::params::sequence_logprobs_fwd>()), &why);
  return emitted(std::move(s), why);
}
Emitted sequenceLogProbsBwdKernel(const KernelDesc &d) {
  LogitsLoss l = logitsLoss(d, d.get<kernels::params::sequence_logprobs_bwd>());
  l.dlogitsType = d.outputs[0].type;
  std::string why;
  auto s = emitSequenceLogProbsBwd(l, &why);
  return emitted(std::move(s), why);
}

Emitted dpoLossFwdKernel(const KernelDesc &d) {
  const auto &p = d.get<kernels::params::dpo_loss_fwd>();
  return emitted(emitDpoLossFwd(p.pairs, p.beta, p.ipo != 0));
}
Emitted dpoLossBwdKernel(const KernelDesc &d) {
  const auto &p = d.get<kernels::params::dpo_loss_bwd>();
  return emitted(emitDpoLossBwd(p.pairs, p.beta, p.ipo != 0));
}
Emitted replayLossFwdKernel(const KernelDesc &d) {
  const auto &p = d.get<kernels::params::replay_loss_fwd>();
  return emitted(emitReplayLoss(p.pairs, p.weight, false));
}
Emitted replayLossBwdKernel(const KernelDesc &d) {
  const auto &p = d.get<kernels::params::replay_loss_bwd>();
  return emitted(emitReplayLoss(p.pairs, p.weight, true));
}

/// Operands A, B, Fisher, ...
template <class P> Emitted ewc(const KernelDesc &d, const P &p, bool bwd) {
  EwcPenalty e;
  e.n = p.n;
  e.k = p.k;
  e.rank = p.rank;
  e.scaling = p.scaling;
  e.lambda = p.lambda;
  e.aType = d.inputs[0].type;
  e.bType = d.inputs[1].type;
  e.fisherType = d.inputs[2].type;
  std::string why;
  auto s = emitEwcPenalty(e, bwd, &why);
  return emitted(std::move(s), why);
}
Emitted ewcPenaltyFwdKernel(const KernelDesc &d) {
  return ewc(d, d.get<kernels::params::ewc_penalty_fwd>(), false);
}
Emitted ewcPenaltyBwdKernel(const KernelDesc &d) {
  return ewc(d, d.get<kernels::params::ewc_penalty_bwd>(), true);
}

} // namespace

const std::vector<Emitter> &lossEmitters() {
  static const std::vector<Emitter> t = {
      {kernels::Kind::cross_entropy_fwd, crossEntropyFwdKernel},
      {kernels::Kind::cross_entropy_bwd, crossEntropyBwdKernel},
      {kernels::Kind::sequence_logprobs_fwd, sequenceLogProbsFwdKernel},
      {kernels::Kind::sequence_logprobs_bwd, sequenceLogProbsBwdKernel},
      {kernels::Kind::dpo_loss_fwd, dpoLossFwdKernel},
      {kernels::Kind::dpo_loss_bwd, dpoLossBwdKernel},
      {kernels::Kind::replay_loss_fwd, replayLossFwdKernel},
      {kernels::Kind::replay_loss_bwd, replayLossBwdKernel},
      {kernels::Kind::ewc_penalty_fwd, ewcPenaltyFwdKernel},
      {kernels::Kind::ewc_penalty_bwd, ewcPenaltyBwdKernel},
  };
  return t;
}

} // namespace lorac::cuda
