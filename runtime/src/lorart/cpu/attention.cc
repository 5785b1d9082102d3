// Causal grouped-query attention on the CPU, FlashAttention style: queries
// in blocks of `block_q`, keys in blocks of `block_k`, an online softmax per
// query row (running max and sum), so no [seq, seq] matrix exists — only one
// [group · block_q, block_k] tile per thread, where a task holds the query
// rows of every head of one kv group (each key/value tile is then loaded
// once per group). docs/kernels.md describes the operands.
//
// Masks: key j is allowed for query i when (not causal or j <= i), (no
// sliding window or i − j < W) and (no segments or seg[j] == seg[i]). Tiles
// outside the causal/window band are never visited; tiles that the segment
// ids mask entirely are skipped before any product. A query with no allowed
// key gets a zero output and zero gradients.
//
// Backward (deterministic for any thread count, no atomics):
//   pass A, one task per (batch, kv head, query block): each row's
//     logsumexp L and D = rowsum(dO ∘ O) — read and computed from the
//     forward's saved output and L when the plan passes them (saved_stats,
//     written by a forward with save_lse), else by recomputing the forward
//     — then a sweep of the key blocks for dQ = scale · Σ_j dS_ij k_j, with
//     P = exp(s − L), dP = dO·vᵀ, dS = P ∘ (dP − D);
//   pass B, one task per (batch, kv head, key block): for each query block
//     (with the group's heads), recompute P and dS from L and D and sum
//     dV = Σ Pᵀ dO and dK = scale · Σ dSᵀ q in a fixed order.
// With the saved statistics this is 7 tile products, as FlashAttention-2's
// single sweep with atomic dQ (9 when the forward is recomputed), for
// bitwise-reproducible gradients with full parallelism over query and key
// blocks. In f32 the saved path gives bitwise the recomputing path's
// gradients (the same O and L values); in bf16 and f16, D reads the
// rounded O.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "lorart/cpu/isa.h"
#include "lorart/cpu/kernel.h"

namespace lorart::cpu {
namespace {

int Threads(const KernelContext& ctx) { return ctx.num_threads > 0 ? ctx.num_threads : 1; }

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct Dims {
  int64_t B = 0, T = 0, H = 0, KV = 0, D = 0, group = 1;
  int64_t bq = 1, bk = 1, window = 0;
  float scale = 1.0f;
  bool causal = true, segments = false;
  // attention_fwd: also write L; attention_bwd: O and L are operands.
  bool stats = false;
};

int64_t StatsParam(const kernels::params::attention_fwd& p) { return p.save_lse.value_or(0); }
int64_t StatsParam(const kernels::params::attention_bwd& p) { return p.saved_stats.value_or(0); }

Status Positive(const KernelParams& p, const char* key, int64_t value, int64_t* v) {
  *v = value;
  if (*v <= 0)
    return InvalidArgumentError(StrFormat("kernel '%s': '%s' must be positive, got %lld",
                                          p.kind().c_str(), key, static_cast<long long>(*v)));
  return OkStatus();
}

// P: params::attention_fwd or params::attention_bwd (the same fields).
template <class P>
Status ParseDims(const KernelParams& p, Dims* d) {
  P prm;
  LORA_RETURN_IF_ERROR(p.Typed(&prm));
  d->B = prm.batch;
  d->T = prm.seq;
  if (d->B < 0 || d->T < 0)
    return InvalidArgumentError(
        StrFormat("kernel '%s': 'batch' and 'seq' must not be negative", p.kind().c_str()));
  LORA_RETURN_IF_ERROR(Positive(p, "num_heads", prm.num_heads, &d->H));
  LORA_RETURN_IF_ERROR(Positive(p, "num_kv_heads", prm.num_kv_heads, &d->KV));
  LORA_RETURN_IF_ERROR(Positive(p, "head_dim", prm.head_dim, &d->D));
  if (d->H % d->KV != 0)
    return InvalidArgumentError(
        StrFormat("kernel '%s': 'num_heads' (%lld) is not a multiple of 'num_kv_heads' (%lld)",
                  p.kind().c_str(), static_cast<long long>(d->H), static_cast<long long>(d->KV)));
  d->group = d->H / d->KV;
  const double scale = prm.scale;
  if (!(scale > 0.0) || !std::isfinite(scale))
    return InvalidArgumentError(
        StrFormat("kernel '%s': 'scale' must be positive, got %g", p.kind().c_str(), scale));
  d->scale = static_cast<float>(scale);
  d->causal = prm.causal != 0;
  d->segments = prm.segments != 0;
  d->stats = StatsParam(prm) != 0;
  d->window = prm.sliding_window;
  if (d->window < 0)
    return InvalidArgumentError(
        StrFormat("kernel '%s': 'sliding_window' must not be negative", p.kind().c_str()));
  LORA_RETURN_IF_ERROR(Positive(p, "block_q", prm.block_q, &d->bq));
  LORA_RETURN_IF_ERROR(Positive(p, "block_k", prm.block_k, &d->bk));
  // Tiles never need to be larger than the sequence.
  d->bq = std::max<int64_t>(1, std::min(d->bq, d->T));
  d->bk = std::max<int64_t>(1, std::min(d->bk, d->T));
  return OkStatus();
}

// Checks q/k/v-shaped operands (first three of `qkv`), the optional segment
// ids, and returns the segment ids widened to int64 (empty without them).
Status CheckOperands(const KernelParams& p, const Dims& d,
                     std::initializer_list<std::pair<const TensorView*, const char*>> q_like,
                     std::initializer_list<std::pair<const TensorView*, const char*>> kv_like,
                     const TensorView* seg, std::vector<int64_t>* seg_out) {
  for (const auto& [t, what] : q_like) {
    LORA_RETURN_IF_ERROR(ExpectFloat(p, *t, what));
    LORA_RETURN_IF_ERROR(ExpectElements(p, *t, d.B * d.T * d.H * d.D, what));
  }
  for (const auto& [t, what] : kv_like) {
    LORA_RETURN_IF_ERROR(ExpectFloat(p, *t, what));
    LORA_RETURN_IF_ERROR(ExpectElements(p, *t, d.B * d.T * d.KV * d.D, what));
  }
  seg_out->clear();
  if (!seg) return OkStatus();
  if (seg->dtype != DType::I32 && seg->dtype != DType::I64)
    return InvalidArgumentError(
        StrFormat("kernel '%s': segment ids must be I32 or I64", p.kind().c_str()));
  LORA_RETURN_IF_ERROR(ExpectElements(p, *seg, d.B * d.T, "segment ids"));
  seg_out->resize(static_cast<size_t>(d.B * d.T));
  for (int64_t i = 0; i < d.B * d.T; ++i)
    (*seg_out)[static_cast<size_t>(i)] =
        seg->dtype == DType::I64 ? seg->as<const int64_t>()[i] : seg->as<const int32_t>()[i];
  return OkStatus();
}

// The attention problem of one call with its operand views.
struct Problem {
  Dims d;
  const TensorView* q = nullptr;
  const TensorView* k = nullptr;
  const TensorView* v = nullptr;
  const int64_t* seg = nullptr;  // [B*T] or null
  // [B, H, T] logsumexp: written by a forward with save_lse, read by a
  // backward with saved_stats (with `out`, the forward's output); else null.
  float* lse = nullptr;
  const TensorView* out = nullptr;

  size_t StatAt(int64_t b, int64_t h, int64_t i) const {
    return static_cast<size_t>((b * d.H + h) * d.T + i);
  }
  int64_t QOffset(int64_t b, int64_t t, int64_t h) const { return ((b * d.T + t) * d.H + h) * d.D; }
  int64_t KOffset(int64_t b, int64_t t, int64_t kv) const {
    return ((b * d.T + t) * d.KV + kv) * d.D;
  }

  // Keys [lo, hi) that queries [i0, i1) can reach (the causal/window band).
  void KeyRange(int64_t i0, int64_t i1, int64_t* lo, int64_t* hi) const {
    *hi = d.causal ? i1 : d.T;
    *lo = d.window > 0 ? std::max<int64_t>(0, i0 - d.window + 1) : 0;
  }
  // Queries [lo, hi) that keys [j0, j1) can be reached from.
  void QueryRange(int64_t j0, int64_t j1, int64_t* lo, int64_t* hi) const {
    *lo = d.causal ? j0 : 0;
    *hi = d.window > 0 ? std::min<int64_t>(d.T, j1 - 1 + d.window) : d.T;
  }
};

// Stores group rows [group·nq][ld] (times `mul`) into a q-shaped tensor.
void StoreGroupRows(const Problem& pr, float* src, int64_t ld, float mul, int64_t b, int64_t kv,
                    int64_t i0, int64_t nq, const TensorView& t) {
  const int64_t D = pr.d.D;
  for (int64_t g = 0; g < pr.d.group; ++g)
    for (int64_t r = 0; r < nq; ++r) {
      float* row = src + (g * nq + r) * ld;
      if (mul != 1.0f)
        for (int64_t e = 0; e < D; ++e) row[e] *= mul;
      FromFloat(row, D, t, pr.QOffset(b, i0 + r, kv * pr.d.group + g));
    }
}

inline int64_t RoundUp(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Group rows (queries or dO of every head of one kv group for one query
// block; row ρ is head kv·group + ρ / nq, query i0 + ρ % nq) in the forms
// the products take: f32 [R][Dp]; bf16 as A [R][D2]; bf16 as B, interleaved
// by row pairs [R2/2][Dp][2].
struct Rows {
  float* f = nullptr;
  uint16_t* a = nullptr;
  uint16_t* b = nullptr;
};
// A key or value tile: f32 rows [bk][Dp] and transpose [D][nkp]; bf16 rows
// interleaved by pairs [nk2/2][Dp][2] and transpose packed [D2/2][nkp][2].
struct Kv {
  float* rows = nullptr;
  float* cols = nullptr;
  uint16_t* rows_b = nullptr;
  uint16_t* cols_b = nullptr;
};

// Per-thread tiles for one mode (f32 or bf16 products). Leading dimensions
// are padded to 16 floats (Dp, nkp) so the AVX-512 products run whole
// vectors; the pads are never read back.
struct Tiles {
  int64_t Dp, D2, nkp, nk2, R2;
  std::vector<float> qf, doutf, acc, s, dp, m, l, lse, dd, kr, kc, vr, vc, dk_acc, dv_acc, rowf;
  std::vector<uint16_t> qa, qb, da, db, raw, kbr, kbc, vbr, vbc, pb, pt;
  std::vector<uint8_t> mask;
  Rows q, dout;
  Kv key, val;

  Tiles(const Dims& d, bool bf16) {
    const int64_t R = d.group * d.bq;
    Dp = RoundUp(d.D, 16), D2 = RoundUp(d.D, 2), nkp = RoundUp(d.bk, 16);
    nk2 = RoundUp(d.bk, 2), R2 = RoundUp(R, 2);
    auto f = [](std::vector<float>& v, int64_t n) { v.assign(static_cast<size_t>(n), 0.0f); };
    auto h = [](std::vector<uint16_t>& v, int64_t n) { v.assign(static_cast<size_t>(n), 0); };
    f(acc, R * Dp), f(s, R * nkp), f(dp, R * nkp), f(m, R), f(l, R), f(lse, R), f(dd, R);
    f(dk_acc, d.bk * Dp), f(dv_acc, d.bk * Dp), f(rowf, Dp);
    mask.assign(static_cast<size_t>(d.bq * d.bk), 0);
    if (bf16) {
      h(qa, R * D2), h(da, R * D2), h(qb, R2 * Dp), h(db, R2 * Dp), h(raw, d.bk * D2);
      h(kbr, nk2 * Dp), h(vbr, nk2 * Dp), h(kbc, D2 * nkp), h(vbc, D2 * nkp);
      h(pb, R * nk2), h(pt, d.bk * R2);
      q = {nullptr, qa.data(), qb.data()}, dout = {nullptr, da.data(), db.data()};
      key = {nullptr, nullptr, kbr.data(), kbc.data()};
      val = {nullptr, nullptr, vbr.data(), vbc.data()};
    } else {
      f(qf, R * Dp), f(doutf, R * Dp), f(kr, d.bk * Dp), f(vr, d.bk * Dp);
      f(kc, d.D * nkp), f(vc, d.D * nkp);
      q = {qf.data()}, dout = {doutf.data()};
      key = {kr.data(), kc.data()}, val = {vr.data(), vc.data()};
    }
  }
  Tiles(const Tiles&) = delete;
  Tiles& operator=(const Tiles&) = delete;
};

// Row statistics of every (batch, head, query) that pass A of the backward
// writes and pass B reads (indexed by Problem::StatAt): logsumexp (+inf for
// a row without allowed keys, so that its probabilities are 0) and
// D = rowsum(dO ∘ O).
struct BwdStats {
  std::vector<float> lse, dd;
};

// One level's task functions (attention_tiles.inc).
struct AttentionTasks {
  void (*fwd)(const Problem&, Tiles&, int64_t b, int64_t kv, int64_t qb, const TensorView& o);
  void (*bwd_a)(const Problem&, Tiles&, const TensorView& dout, int64_t b, int64_t kv, int64_t qb,
                BwdStats&, const TensorView& dq);
  void (*bwd_b)(const Problem&, Tiles&, const TensorView& dout, int64_t b, int64_t kv, int64_t kb,
                const BwdStats&, const TensorView& dk, const TensorView& dv);
  bool bf16;
};

// The tile work compiled per instruction-set level (isa_levels.inc).
#define LORART_CPU_TILES "lorart/cpu/attention_tiles.inc"
#define LORART_CPU_MIN_LEVEL 0
#include "lorart/cpu/isa_levels.inc"

// The [B, H, T] f32 logsumexp operand.
Status ExpectLse(const KernelParams& p, const Dims& d, const TensorView& t) {
  if (t.dtype != DType::F32)
    return InvalidArgumentError(StrFormat("kernel '%s': lse must be F32, got %s", p.kind().c_str(),
                                          schema::EnumNameDType(t.dtype)));
  LORA_RETURN_IF_ERROR(ExpectElements(p, t, d.B * d.H * d.T, "lse"));
  if (t.data == nullptr && d.B * d.H * d.T > 0)
    return InvalidArgumentError(StrFormat("kernel '%s': lse has no data", p.kind().c_str()));
  return OkStatus();
}

// Whether the first n operands are all bf16 (then bf16 products may run).
bool AllBf16(const std::vector<TensorView>& in, size_t n) {
  return std::all_of(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(n),
                     [](const TensorView& t) { return t.dtype == DType::BF16; });
}

// The task functions: the best level, bf16 products when every operand is
// bf16 and the level has them.
const AttentionTasks& Tasks(bool all_bf16) {
  const int level = IsaLevel();
#if LORART_CPU_MULTI_ISA
  if (level >= 3) return all_bf16 ? level3::kTasksBf16 : level3::kTasksF32;
  if (level == 2) return level2::kTasksF32;
  if (level == 1) return level1::kTasksF32;
#endif
  (void)level, (void)all_bf16;
  return level0::kTasksF32;
}

// [q, k, v, seg?] -> [o].
Status AttentionFwd(const KernelContext& ctx, const KernelParams& p,
                    const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  Problem pr;
  LORA_RETURN_IF_ERROR(ParseDims<kernels::params::attention_fwd>(p, &pr.d));
  const Dims& d = pr.d;
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, d.segments ? 4 : 3, out, d.stats ? 2 : 1));
  std::vector<int64_t> seg;
  LORA_RETURN_IF_ERROR(CheckOperands(p, d, {{&in[0], "q"}, {&out[0], "output"}},
                                     {{&in[1], "k"}, {&in[2], "v"}}, d.segments ? &in[3] : nullptr,
                                     &seg));
  pr.q = &in[0], pr.k = &in[1], pr.v = &in[2];
  pr.seg = d.segments ? seg.data() : nullptr;
  if (d.stats) {
    LORA_RETURN_IF_ERROR(ExpectLse(p, d, out[1]));
    pr.lse = out[1].as<float>();
  }
  const TensorView& o = out[0];
  const AttentionTasks& run = Tasks(AllBf16(in, 3));
  const int64_t qblocks = (d.T + d.bq - 1) / d.bq, tasks = d.B * d.KV * qblocks;
  if (tasks == 0) return OkStatus();
#pragma omp parallel num_threads(Threads(ctx))
  {
    Tiles t(d, run.bf16);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task)
      run.fwd(pr, t, task / (qblocks * d.KV), (task / qblocks) % d.KV, task % qblocks, o);
  }
  return OkStatus();
}

// [dout, q, k, v, seg?] -> [dq, dk, dv].
Status AttentionBwd(const KernelContext& ctx, const KernelParams& p,
                    const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  Problem pr;
  LORA_RETURN_IF_ERROR(ParseDims<kernels::params::attention_bwd>(p, &pr.d));
  const Dims& d = pr.d;
  const size_t tensors = d.stats ? 6 : 4;  // dout, q, k, v (, out, lse)
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, tensors + (d.segments ? 1 : 0), out, 3));
  std::vector<int64_t> seg;
  const TensorView* saved_out = d.stats ? &in[4] : &in[1];  // checked as q-shaped either way
  LORA_RETURN_IF_ERROR(
      CheckOperands(p, d, {{&in[0], "dout"}, {&in[1], "q"}, {saved_out, "out"}, {&out[0], "dq"}},
                    {{&in[2], "k"}, {&in[3], "v"}, {&out[1], "dk"}, {&out[2], "dv"}},
                    d.segments ? &in[tensors] : nullptr, &seg));
  const TensorView& dout = in[0];
  pr.q = &in[1], pr.k = &in[2], pr.v = &in[3];
  pr.seg = d.segments ? seg.data() : nullptr;
  if (d.stats) {
    LORA_RETURN_IF_ERROR(ExpectLse(p, d, in[5]));
    pr.out = &in[4];
    pr.lse = in[5].as<float>();
  }
  const TensorView &dq = out[0], &dk = out[1], &dv = out[2];
  const AttentionTasks& run = Tasks(AllBf16(in, 4));
  const int nt = Threads(ctx);
  BwdStats st;
  st.lse.resize(static_cast<size_t>(d.B * d.H * d.T));
  st.dd.resize(st.lse.size());

  // Pass A: statistics and dQ, one task per (batch, kv group, query block).
  const int64_t qblocks = (d.T + d.bq - 1) / d.bq, tasks_a = d.B * d.KV * qblocks;
#pragma omp parallel num_threads(nt)
  {
    Tiles t(d, run.bf16);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks_a; ++task)
      run.bwd_a(pr, t, dout, task / (qblocks * d.KV), (task / qblocks) % d.KV, task % qblocks, st,
                dq);
  }
  // Pass B: dK and dV, one task per (batch, kv head, key block).
  const int64_t kblocks = (d.T + d.bk - 1) / d.bk, tasks_b = d.B * d.KV * kblocks;
#pragma omp parallel num_threads(nt)
  {
    Tiles t(d, run.bf16);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks_b; ++task)
      run.bwd_b(pr, t, dout, task / (kblocks * d.KV), (task / kblocks) % d.KV, task % kblocks, st,
                dk, dv);
  }
  return OkStatus();
}
}  // namespace

void RegisterAttentionKernels() {
  RegisterKernel("attention_fwd", AttentionFwd);
  RegisterKernel("attention_bwd", AttentionBwd);
}

}  // namespace lorart::cpu
