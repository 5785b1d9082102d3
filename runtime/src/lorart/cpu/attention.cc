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
//   pass A, one task per (batch, kv head, query block): recompute the
//     forward to get each row's logsumexp L and D = rowsum(dO ∘ O), then
//     sweep the key blocks again for dQ = scale · Σ_j dS_ij k_j, with
//     P = exp(s − L), dP = dO·vᵀ, dS = P ∘ (dP − D);
//   pass B, one task per (batch, kv head, key block): for each query block
//     (with the group's heads), recompute P and dS from L and D and sum
//     dV = Σ Pᵀ dO and dK = scale · Σ dSᵀ q in a fixed order.
// This recomputes the score tile more often than FlashAttention-2's single
// sweep with atomic dQ (9 tile products instead of 7) in exchange for
// bitwise-reproducible gradients with full parallelism over query and key
// blocks.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "lorart/cpu/kernel.h"

namespace lorart::cpu {
namespace {

int Threads(const KernelContext& ctx) { return ctx.num_threads > 0 ? ctx.num_threads : 1; }

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// C[M][N] (+)= op(A) · B, all f32 row-major with leading dimensions: op(A)
// is A [M][K] or, with TransA, the transpose of A stored [K][M]. Register
// tiles of kMr × kNr accumulators (fully unrolled and vectorized by the
// compiler at fixed sizes) load each B vector once per kMr rows.
constexpr int64_t kMr = 4, kNr = 16;

#define LORART_ALWAYS_INLINE inline __attribute__((always_inline))

template <bool TransA, int64_t MR, int64_t NR>
LORART_ALWAYS_INLINE void MicroTile(int64_t K, const float* __restrict A, int64_t lda,
                                    const float* __restrict B, int64_t ldb, float* __restrict C,
                                    int64_t ldc, bool accumulate, int64_t mr, int64_t nr) {
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < K; ++k) {
    const float* b = B + k * ldb;
    for (int64_t i = 0; i < MR; ++i) {
      const float a = TransA ? A[k * lda + i] : A[i * lda + k];
#pragma omp simd
      for (int64_t j = 0; j < NR; ++j) acc[i][j] += a * b[j];
    }
  }
  for (int64_t i = 0; i < mr; ++i)
    for (int64_t j = 0; j < nr; ++j)
      C[i * ldc + j] = (accumulate ? C[i * ldc + j] : 0.0f) + acc[i][j];
}

template <bool TransA>
LORART_ALWAYS_INLINE void MatMulImpl(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                                     const float* B, int64_t ldb, float* C, int64_t ldc,
                                     bool accumulate) {
  for (int64_t i = 0; i < M; i += kMr) {
    const int64_t mr = std::min(kMr, M - i);
    const float* a = TransA ? A + i : A + i * lda;
    for (int64_t j = 0; j < N; j += kNr) {
      const int64_t nr = std::min(kNr, N - j);
      float* c = C + i * ldc + j;
      if (mr == kMr && nr == kNr) {
        MicroTile<TransA, kMr, kNr>(K, a, lda, B + j, ldb, c, ldc, accumulate, mr, nr);
      } else {
        // Edge tiles: one row/column at a time (reads stay inside A and B).
        for (int64_t ii = 0; ii < mr; ++ii)
          for (int64_t jj = 0; jj < nr; ++jj)
            MicroTile<TransA, 1, 1>(K, TransA ? a + ii : a + ii * lda, lda, B + j + jj, ldb,
                                    c + ii * ldc + jj, ldc, accumulate, 1, 1);
      }
    }
  }
}

// exp(x) for x <= 0, vectorizable (no libm call): round x·log2(e) to n with
// the 1.5·2^23 trick, reduce with a two-part ln 2 (Cody–Waite), Cephes'
// degree-6 polynomial on [-ln2/2, ln2/2] (about 1 ulp), scale by 2^n
// through the exponent bits. Below -87 (where 2^n would be subnormal) it
// returns 0, as it does for -inf. Scores minus their row max are <= 0.
inline float ExpNonPositive(float x) {
  const float xc = std::max(x, -87.0f);
  const float t = xc * 1.44269504088896341f + 12582912.0f;
  int32_t n;
  std::memcpy(&n, &t, sizeof n);
  n -= 0x4B400000;  // the rounded integer
  const float fn = t - 12582912.0f;
  const float r = (xc - fn * 0.693359375f) - fn * -2.12194440e-4f;
  float poly = 1.9875691500e-4f;
  poly = poly * r + 1.3981999507e-3f;
  poly = poly * r + 8.3334519073e-3f;
  poly = poly * r + 4.1665795894e-2f;
  poly = poly * r + 1.6666665459e-1f;
  poly = poly * r + 5.0000001201e-1f;
  const float y = poly * r * r + r + 1.0f;
  const int32_t bits = (n + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x < -87.0f ? 0.0f : y * scale;
}

inline float Dot(int64_t n, const float* __restrict x, const float* __restrict y) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += x[i] * y[i];
  return s;
}

struct Dims {
  int64_t B = 0, T = 0, H = 0, KV = 0, D = 0, group = 1;
  int64_t bq = 1, bk = 1, window = 0;
  float scale = 1.0f;
  bool causal = true, segments = false;
};

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
  // mask[r * nk + c] for queries i0.., keys j0..; returns whether any is set.
  bool Mask(int64_t b, int64_t i0, int64_t nq, int64_t j0, int64_t nk, uint8_t* mask) const {
    bool any = false;
    const int64_t* s = seg ? seg + b * d.T : nullptr;
    for (int64_t r = 0; r < nq; ++r) {
      const int64_t i = i0 + r;
      for (int64_t c = 0; c < nk; ++c) {
        const int64_t j = j0 + c;
        const bool ok =
            (!d.causal || j <= i) && (d.window <= 0 || i - j < d.window) && (!s || s[j] == s[i]);
        mask[r * nk + c] = ok;
        any |= ok;
      }
    }
    return any;
  }
};

// The products are compiled for AVX-512 and AVX2+FMA besides the baseline,
// chosen at load time (GCC function multiversioning), so the portable build
// still uses the host's vector width where attention spends its time.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define LORART_CPU_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LORART_CPU_CLONES
#endif

template <bool TransA>
void MatMul(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
            int64_t ldb, float* C, int64_t ldc, bool accumulate);

LORART_CPU_CLONES void MatMulNN(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                                const float* B, int64_t ldb, float* C, int64_t ldc,
                                bool accumulate) {
  MatMulImpl<false>(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}
LORART_CPU_CLONES void MatMulTN(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                                const float* B, int64_t ldb, float* C, int64_t ldc,
                                bool accumulate) {
  MatMulImpl<true>(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}
template <>
void MatMul<false>(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                   int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  MatMulNN(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}
template <>
void MatMul<true>(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                  int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  MatMulTN(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}

// Per-thread tiles. A task holds the rows of every query head of one kv
// group for one query block ("group rows": row ρ is head kv·group + ρ / nq,
// query i0 + ρ % nq), so each key/value tile is loaded once per group and
// the products have group·block_q rows.
struct Tiles {
  std::vector<float> q, dout, acc, s, dp, m, l, lse, dd, k, kT, v, vT;
  std::vector<uint8_t> mask;
  explicit Tiles(const Dims& d) {
    const auto rows = static_cast<size_t>(d.group * d.bq);
    const auto D = static_cast<size_t>(d.D), bk = static_cast<size_t>(d.bk);
    q.resize(rows * D), dout.resize(rows * D), acc.resize(rows * D);
    s.resize(rows * bk), dp.resize(rows * bk);
    m.resize(rows), l.resize(rows), lse.resize(rows), dd.resize(rows);
    k.resize(bk * D), kT.resize(bk * D), v.resize(bk * D), vT.resize(bk * D);
    mask.resize(static_cast<size_t>(d.bq) * bk);
  }
};

// Loads the group rows of queries [i0, i0 + nq) of kv group `kv` from a
// q-shaped tensor, times `mul`, into dst [group·nq][D].
void LoadGroupRows(const Problem& pr, const TensorView& t, int64_t b, int64_t kv, int64_t i0,
                   int64_t nq, float mul, float* dst) {
  const int64_t D = pr.d.D;
  for (int64_t g = 0; g < pr.d.group; ++g)
    for (int64_t r = 0; r < nq; ++r) {
      float* row = dst + (g * nq + r) * D;
      ToFloat(t, pr.QOffset(b, i0 + r, kv * pr.d.group + g), D, row);
      if (mul != 1.0f)
        for (int64_t e = 0; e < D; ++e) row[e] *= mul;
    }
}

// Stores group rows [group·nq][D] (times `mul`) into a q-shaped tensor.
void StoreGroupRows(const Problem& pr, float* src, float mul, int64_t b, int64_t kv, int64_t i0,
                    int64_t nq, const TensorView& t) {
  const int64_t D = pr.d.D;
  for (int64_t g = 0; g < pr.d.group; ++g)
    for (int64_t r = 0; r < nq; ++r) {
      float* row = src + (g * nq + r) * D;
      if (mul != 1.0f)
        for (int64_t e = 0; e < D; ++e) row[e] *= mul;
      FromFloat(row, D, t, pr.QOffset(b, i0 + r, kv * pr.d.group + g));
    }
}

// Loads nk key/value rows of kv head `kv` into rows [nk][D] and, when
// `cols` is set, its transpose [D][nk].
void LoadKV(const Problem& pr, const TensorView& t, int64_t b, int64_t j0, int64_t nk, int64_t kv,
            float* rows, float* cols) {
  const int64_t D = pr.d.D;
  for (int64_t c = 0; c < nk; ++c) ToFloat(t, pr.KOffset(b, j0 + c, kv), D, rows + c * D);
  if (cols)
    for (int64_t c = 0; c < nk; ++c)
      for (int64_t e = 0; e < D; ++e) cols[e * nk + c] = rows[c * D + e];
}

// The forward of the group rows of queries [i0, i0 + nq), with the scaled
// queries already in t.q: leaves the running max in t.m, the sum in t.l and
// the unnormalized output in t.acc.
void ForwardRows(const Problem& pr, Tiles& t, int64_t b, int64_t kv, int64_t i0, int64_t nq) {
  const Dims& d = pr.d;
  const int64_t D = d.D, R = d.group * nq;
  std::fill(t.m.begin(), t.m.begin() + R, kNegInf);
  std::fill(t.l.begin(), t.l.begin() + R, 0.0f);
  std::fill(t.acc.begin(), t.acc.begin() + R * D, 0.0f);
  int64_t lo, hi;
  pr.KeyRange(i0, i0 + nq, &lo, &hi);
  for (int64_t j0 = (lo / d.bk) * d.bk; j0 < hi; j0 += d.bk) {
    const int64_t nk = std::min(d.bk, hi - j0);
    if (!pr.Mask(b, i0, nq, j0, nk, t.mask.data())) continue;
    LoadKV(pr, *pr.k, b, j0, nk, kv, t.k.data(), t.kT.data());
    LoadKV(pr, *pr.v, b, j0, nk, kv, t.v.data(), nullptr);
    MatMul<false>(R, nk, D, t.q.data(), D, t.kT.data(), nk, t.s.data(), nk, false);  // S = q·kᵀ
    for (int64_t row = 0; row < R; ++row) {
      float* s = t.s.data() + row * nk;
      const uint8_t* mk = t.mask.data() + (row % nq) * nk;
      float mx = kNegInf;
#pragma omp simd reduction(max : mx)
      for (int64_t c = 0; c < nk; ++c) mx = std::max(mx, mk[c] ? s[c] : kNegInf);
      if (mx == kNegInf) {  // no allowed key in this tile
        std::fill(s, s + nk, 0.0f);
        continue;
      }
      const float m_new = std::max(t.m[row], mx);
      const float alpha = std::exp(t.m[row] - m_new);  // 0 when m was -inf
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t c = 0; c < nk; ++c) {
        const float e = ExpNonPositive(s[c] - m_new);
        s[c] = mk[c] ? e : 0.0f;
        sum += s[c];
      }
      t.l[row] = t.l[row] * alpha + sum;
      t.m[row] = m_new;
      if (alpha != 1.0f) {
        float* acc = t.acc.data() + row * D;
        for (int64_t e = 0; e < D; ++e) acc[e] *= alpha;
      }
    }
    // acc += P · V (P in t.s).
    MatMul<false>(R, D, nk, t.s.data(), nk, t.v.data(), D, t.acc.data(), D, true);
  }
}

// [q, k, v, seg?] -> [o].
Status AttentionFwd(const KernelContext& ctx, const KernelParams& p,
                    const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  Problem pr;
  LORA_RETURN_IF_ERROR(ParseDims<kernels::params::attention_fwd>(p, &pr.d));
  const Dims& d = pr.d;
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, d.segments ? 4 : 3, out, 1));
  std::vector<int64_t> seg;
  LORA_RETURN_IF_ERROR(CheckOperands(p, d, {{&in[0], "q"}, {&out[0], "output"}},
                                     {{&in[1], "k"}, {&in[2], "v"}}, d.segments ? &in[3] : nullptr,
                                     &seg));
  pr.q = &in[0], pr.k = &in[1], pr.v = &in[2];
  pr.seg = d.segments ? seg.data() : nullptr;
  const TensorView& o = out[0];
  const int64_t qblocks = (d.T + d.bq - 1) / d.bq, tasks = d.B * d.KV * qblocks;
  if (tasks == 0) return OkStatus();
#pragma omp parallel num_threads(Threads(ctx))
  {
    Tiles t(d);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t qb = task % qblocks, kv = (task / qblocks) % d.KV, b = task / (qblocks * d.KV);
      const int64_t i0 = qb * d.bq, nq = std::min(d.bq, d.T - i0), R = d.group * nq;
      LoadGroupRows(pr, *pr.q, b, kv, i0, nq, d.scale, t.q.data());
      ForwardRows(pr, t, b, kv, i0, nq);
      for (int64_t row = 0; row < R; ++row) {
        float* acc = t.acc.data() + row * d.D;
        const float inv = t.l[row] > 0.0f ? 1.0f / t.l[row] : 0.0f;
        for (int64_t e = 0; e < d.D; ++e) acc[e] *= inv;
      }
      StoreGroupRows(pr, t.acc.data(), 1.0f, b, kv, i0, nq, o);
    }
  }
  return OkStatus();
}

// [dout, q, k, v, seg?] -> [dq, dk, dv].
Status AttentionBwd(const KernelContext& ctx, const KernelParams& p,
                    const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
  Problem pr;
  LORA_RETURN_IF_ERROR(ParseDims<kernels::params::attention_bwd>(p, &pr.d));
  const Dims& d = pr.d;
  LORA_RETURN_IF_ERROR(ExpectArity(p, in, d.segments ? 5 : 4, out, 3));
  std::vector<int64_t> seg;
  LORA_RETURN_IF_ERROR(
      CheckOperands(p, d, {{&in[0], "dout"}, {&in[1], "q"}, {&out[0], "dq"}},
                    {{&in[2], "k"}, {&in[3], "v"}, {&out[1], "dk"}, {&out[2], "dv"}},
                    d.segments ? &in[4] : nullptr, &seg));
  const TensorView& dout = in[0];
  pr.q = &in[1], pr.k = &in[2], pr.v = &in[3];
  pr.seg = d.segments ? seg.data() : nullptr;
  const TensorView &dq = out[0], &dk = out[1], &dv = out[2];
  const int64_t D = d.D, G = d.group;
  const int nt = Threads(ctx);

  // Row statistics of every (batch, head, query): logsumexp (+inf for a row
  // without allowed keys, so that its probabilities are 0) and D.
  const auto rows = static_cast<size_t>(d.B * d.H * d.T);
  std::vector<float> lse_all(rows), d_all(rows);
  auto stat = [&](int64_t b, int64_t h, int64_t i) {
    return static_cast<size_t>((b * d.H + h) * d.T + i);
  };

  // Pass A: statistics and dQ, one task per (batch, kv group, query block).
  const int64_t qblocks = (d.T + d.bq - 1) / d.bq, tasks_a = d.B * d.KV * qblocks;
#pragma omp parallel num_threads(nt)
  {
    Tiles t(d);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks_a; ++task) {
      const int64_t qb = task % qblocks, kv = (task / qblocks) % d.KV, b = task / (qblocks * d.KV);
      const int64_t i0 = qb * d.bq, nq = std::min(d.bq, d.T - i0), R = G * nq;
      LoadGroupRows(pr, *pr.q, b, kv, i0, nq, d.scale, t.q.data());
      LoadGroupRows(pr, dout, b, kv, i0, nq, 1.0f, t.dout.data());
      ForwardRows(pr, t, b, kv, i0, nq);
      for (int64_t row = 0; row < R; ++row) {
        float* acc = t.acc.data() + row * D;
        if (t.l[row] > 0.0f) {
          const float inv = 1.0f / t.l[row];
          for (int64_t e = 0; e < D; ++e) acc[e] *= inv;  // O
          t.lse[row] = t.m[row] + std::log(t.l[row]);
          t.dd[row] = Dot(D, t.dout.data() + row * D, acc);
        } else {
          t.lse[row] = std::numeric_limits<float>::infinity();
          t.dd[row] = 0.0f;
        }
        const size_t at = stat(b, kv * G + row / nq, i0 + row % nq);
        lse_all[at] = t.lse[row];
        d_all[at] = t.dd[row];
      }
      // dQ, accumulated in t.acc.
      std::fill(t.acc.begin(), t.acc.begin() + R * D, 0.0f);
      int64_t lo, hi;
      pr.KeyRange(i0, i0 + nq, &lo, &hi);
      for (int64_t j0 = (lo / d.bk) * d.bk; j0 < hi; j0 += d.bk) {
        const int64_t nk = std::min(d.bk, hi - j0);
        if (!pr.Mask(b, i0, nq, j0, nk, t.mask.data())) continue;
        LoadKV(pr, *pr.k, b, j0, nk, kv, t.k.data(), t.kT.data());
        LoadKV(pr, *pr.v, b, j0, nk, kv, t.v.data(), t.vT.data());
        MatMul<false>(R, nk, D, t.q.data(), D, t.kT.data(), nk, t.s.data(), nk, false);
        MatMul<false>(R, nk, D, t.dout.data(), D, t.vT.data(), nk, t.dp.data(), nk, false);
        for (int64_t row = 0; row < R; ++row) {  // dS, in place of S
          float* s = t.s.data() + row * nk;
          const float* dp = t.dp.data() + row * nk;
          const uint8_t* mk = t.mask.data() + (row % nq) * nk;
          const float lse = t.lse[row], dd = t.dd[row];
#pragma omp simd
          for (int64_t c = 0; c < nk; ++c) {
            const float pij = ExpNonPositive(s[c] - lse);
            s[c] = mk[c] ? pij * (dp[c] - dd) : 0.0f;
          }
        }
        // dQ += dS · K.
        MatMul<false>(R, D, nk, t.s.data(), nk, t.k.data(), D, t.acc.data(), D, true);
      }
      StoreGroupRows(pr, t.acc.data(), d.scale, b, kv, i0, nq, dq);
    }
  }

  // Pass B: dK and dV, one task per (batch, kv head, key block); the query
  // blocks (each with the group's heads) are visited in a fixed order.
  const int64_t kblocks = (d.T + d.bk - 1) / d.bk, tasks_b = d.B * d.KV * kblocks;
#pragma omp parallel num_threads(nt)
  {
    Tiles t(d);
    std::vector<float> dk_acc(static_cast<size_t>(d.bk * D)), dv_acc(dk_acc.size());
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks_b; ++task) {
      const int64_t kb = task % kblocks, kv = (task / kblocks) % d.KV, b = task / (kblocks * d.KV);
      const int64_t j0 = kb * d.bk, nk = std::min(d.bk, d.T - j0);
      std::fill(dk_acc.begin(), dk_acc.end(), 0.0f);
      std::fill(dv_acc.begin(), dv_acc.end(), 0.0f);
      LoadKV(pr, *pr.k, b, j0, nk, kv, t.k.data(), t.kT.data());
      LoadKV(pr, *pr.v, b, j0, nk, kv, t.v.data(), t.vT.data());
      int64_t lo, hi;
      pr.QueryRange(j0, j0 + nk, &lo, &hi);
      for (int64_t i0 = (lo / d.bq) * d.bq; i0 < hi; i0 += d.bq) {
        const int64_t nq = std::min(d.bq, d.T - i0), R = G * nq;
        if (!pr.Mask(b, i0, nq, j0, nk, t.mask.data())) continue;
        LoadGroupRows(pr, *pr.q, b, kv, i0, nq, d.scale, t.q.data());
        LoadGroupRows(pr, dout, b, kv, i0, nq, 1.0f, t.dout.data());
        MatMul<false>(R, nk, D, t.q.data(), D, t.kT.data(), nk, t.s.data(), nk, false);
        MatMul<false>(R, nk, D, t.dout.data(), D, t.vT.data(), nk, t.dp.data(), nk, false);
        for (int64_t row = 0; row < R; ++row) {  // P in place of S, dS in place of dP
          const size_t at = stat(b, kv * G + row / nq, i0 + row % nq);
          const float lse = lse_all[at], dd = d_all[at];
          float* s = t.s.data() + row * nk;
          float* dp = t.dp.data() + row * nk;
          const uint8_t* mk = t.mask.data() + (row % nq) * nk;
#pragma omp simd
          for (int64_t c = 0; c < nk; ++c) {
            const float e = ExpNonPositive(s[c] - lse);
            const float pij = mk[c] ? e : 0.0f;
            s[c] = pij;
            dp[c] = pij * (dp[c] - dd);
          }
        }
        // dV += Pᵀ · dO; dK += dSᵀ · q (q is pre-scaled: scale · dSᵀ · q).
        MatMul<true>(nk, D, R, t.s.data(), nk, t.dout.data(), D, dv_acc.data(), D, true);
        MatMul<true>(nk, D, R, t.dp.data(), nk, t.q.data(), D, dk_acc.data(), D, true);
      }
      for (int64_t c = 0; c < nk; ++c) {
        FromFloat(dk_acc.data() + c * D, D, dk, pr.KOffset(b, j0 + c, kv));
        FromFloat(dv_acc.data() + c * D, D, dv, pr.KOffset(b, j0 + c, kv));
      }
    }
  }
  return OkStatus();
}

}  // namespace

void RegisterAttentionKernels() {
  RegisterKernel("attention_fwd", AttentionFwd);
  RegisterKernel("attention_bwd", AttentionBwd);
}

}  // namespace lorart::cpu
