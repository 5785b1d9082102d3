//===- attention.cpp - Attention: tensor-core and CUDA-core templates ---===//
//
// Causal grouped-query attention forward, FlashAttention-2 style on tensor
// cores (mma.sync m16n8k16 bf16, f32 accumulators):
//
// One block of 4 warps handles 64 query rows of one head of one sequence;
// each warp owns 16 rows. Q is loaded once and kept as mma fragments in
// registers. For every key tile of 64 inside the causal/sliding-window band,
// K and V are staged in shared memory with cp.async, S = Q·Kᵀ is computed
// into registers, scaled and masked (causal, window, segment ids), and an
// online softmax keeps each row's running max and sum: P = exp(S − m) is
// rounded to bf16 and re-used directly as the A fragment of O += P·V (the
// m16n8 accumulator layout of two adjacent S tiles is the m16k16 A layout),
// with V's fragments loaded by ldmatrix.trans. No [T, T] matrix exists
// anywhere; shared memory holds one Q, K and V tile. A row with no allowed
// key gets a zero output (the CPU backend's convention).
//
//===----------------------------------------------------------------------===//
#include "cuda/attention.h"
#include "cuda/codegen.h"
#include "cuda/simt.h"

#include <cstdio>
#include <map>

namespace lorac::cuda {
namespace {


// Shared by the forward and the backward: the problem's constants, the mask,
// and the forward sweep (K/V tiles, scores, online softmax, O += P·V).
const char *kAttentionCommon = R"(
// Attention: B=$B$ T=$T$ H=$H$ KV=$KV$ D=$D$, scale $SCALE$, causal $CAUSAL$, window $WIN$, segments $SEG$.
namespace {
constexpr int T = $T$, H = $H$, KV = $KV$, D = $D$, GROUP = H / KV, BT = $BT$, LD = D + 8;
constexpr bool CAUSAL = $CAUSAL$, SEG = $SEG$;
constexpr int WIN = $WIN$;
constexpr float SCALE = $SCALE$;
using SegT = $SEGT$;
__device__ __forceinline__ bool lora_allowed(int q, int key, long long sq, long long sk) {
  bool ok = q < T && key < T;
  if (CAUSAL) ok = ok && key <= q;
  if (WIN > 0) ok = ok && q - key < WIN;
  if (SEG) ok = ok && sq == sk;
  return ok;
}
// Key tiles [kbeg, kend) inside the causal / sliding-window band of the 64
// query rows from q0.
__device__ __forceinline__ void lora_key_band(int q0, int* kbeg, int* kend) {
  *kend = CAUSAL ? (q0 + 64 < T ? q0 + 64 : T) : T;
  *kbeg = WIN > 0 ? (q0 - WIN + 1 > 0 ? (q0 - WIN + 1) / BT * BT : 0) : 0;
}
// Stages the BT keys from k0 of kv head hk (K, V, segment ids).
__device__ __forceinline__ void lora_load_kv(const __nv_bfloat16* k, const __nv_bfloat16* v, const SegT* seg,
                                             __nv_bfloat16 (*ks)[LD], __nv_bfloat16 (*vs)[LD], long long* kseg,
                                             long tok0, int hk, int k0) {
  for (int c = threadIdx.x; c < BT * (D / 8); c += 128) {
    const int r = c / (D / 8), d = (c % (D / 8)) * 8;
    const bool ok = k0 + r < T;
    const long off = ok ? ((tok0 + k0 + r) * KV + hk) * D + d : 0;
    lora_cp16(&ks[r][d], k + off, ok);
    lora_cp16(&vs[r][d], v + off, ok);
  }
  lora_cp_commit();
  if (SEG)
    for (int r = threadIdx.x; r < BT; r += 128) kseg[r] = k0 + r < T ? (long long)seg[tok0 + k0 + r] : -2;
  lora_cp_wait_all();
  __syncthreads();
}
// S = Q·Kᵀ for the staged key tile, scaled and masked (-inf), for this
// warp's rows row[0], row[1].
__device__ __forceinline__ void lora_scores(float (*s)[4], const unsigned (*qf)[4], __nv_bfloat16 (*ks)[LD],
                                            const long long* kseg, int k0, const int* row, const long long* qseg) {
  const int lane = threadIdx.x & 31, t = lane & 3;
#pragma unroll
  for (int j = 0; j < BT / 8; ++j)
#pragma unroll
    for (int c = 0; c < 4; ++c) s[j][c] = 0.f;
#pragma unroll
  for (int dk = 0; dk < D / 16; ++dk)
#pragma unroll
    for (int j = 0; j < BT / 8; j += 2) {
      unsigned r4[4];
      lora_ldsm_x4(r4, &ks[j * 8 + (lane % 8) + (lane / 16) * 8][dk * 16 + ((lane / 8) % 2) * 8]);
      const unsigned b0[2] = {r4[0], r4[1]}, b1[2] = {r4[2], r4[3]};
      lora_mma_bf16(s[j], qf[dk], b0);
      lora_mma_bf16(s[j + 1], qf[dk], b1);
    }
#pragma unroll
  for (int j = 0; j < BT / 8; ++j)
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const int r = c >> 1, key = k0 + j * 8 + 2 * t + (c & 1);
      const bool ok = lora_allowed(row[r], key, qseg[r], SEG && key < T ? kseg[key - k0] : 0);
      s[j][c] = ok ? s[j][c] * SCALE : -INFINITY;
    }
}
// The forward sweep over the band: running max and lane-partial sum per row,
// unnormalized O in acc (P rounded to bf16 is the A fragment of P·V).
__device__ __forceinline__ void lora_attention_sweep(const unsigned (*qf)[4], const __nv_bfloat16* k,
                                                     const __nv_bfloat16* v, const SegT* seg,
                                                     __nv_bfloat16 (*ks)[LD], __nv_bfloat16 (*vs)[LD],
                                                     long long* kseg, long tok0, int hk, int q0, const int* row,
                                                     const long long* qseg, float (*acc)[4], float* mrow,
                                                     float* lrow) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int j = 0; j < D / 8; ++j)
#pragma unroll
    for (int c = 0; c < 4; ++c) acc[j][c] = 0.f;
  mrow[0] = mrow[1] = -INFINITY;
  lrow[0] = lrow[1] = 0.f;
  int kbeg, kend;
  lora_key_band(q0, &kbeg, &kend);
  for (int k0 = kbeg; k0 < kend; k0 += BT) {
    lora_load_kv(k, v, seg, ks, vs, kseg, tok0, hk, k0);
    float s[BT / 8][4];
    lora_scores(s, qf, ks, kseg, k0, row, qseg);
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < BT / 8; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) mx[c >> 1] = fmaxf(mx[c >> 1], s[j][c]);
    float ref[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      const float mnew = fmaxf(mrow[r], mx[r]);
      ref[r] = mnew == -INFINITY ? 0.f : mnew;  // nothing allowed yet: exp(-inf) = 0
      const float alpha = __expf(mrow[r] - ref[r]);
      lrow[r] *= alpha;
#pragma unroll
      for (int j = 0; j < D / 8; ++j) {
        acc[j][2 * r] *= alpha;
        acc[j][2 * r + 1] *= alpha;
      }
      mrow[r] = mnew;
    }
#pragma unroll
    for (int kk = 0; kk < BT / 16; ++kk) {
      unsigned pa[4];
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        float* sj = s[2 * kk + half];
        const float p0 = __expf(sj[0] - ref[0]), p1 = __expf(sj[1] - ref[0]);
        const float p2 = __expf(sj[2] - ref[1]), p3 = __expf(sj[3] - ref[1]);
        lrow[0] += p0 + p1;
        lrow[1] += p2 + p3;
        pa[2 * half] = lora_pack_bf16(p0, p1);
        pa[2 * half + 1] = lora_pack_bf16(p2, p3);
      }
#pragma unroll
      for (int dn = 0; dn < D / 8; dn += 2) {
        unsigned r4[4];
        lora_ldsm_x4_trans(r4, &vs[kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8][dn * 8 + (lane / 16) * 8]);
        const unsigned b0[2] = {r4[0], r4[1]}, b1[2] = {r4[2], r4[3]};
        lora_mma_bf16(acc[dn], pa, b0);
        lora_mma_bf16(acc[dn + 1], pa, b1);
      }
    }
    __syncthreads();  // before the next tile overwrites ks / vs
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    lrow[r] += __shfl_xor_sync(0xffffffffu, lrow[r], 1);
    lrow[r] += __shfl_xor_sync(0xffffffffu, lrow[r], 2);
  }
}
}  // namespace
)";

const char *kAttentionFwd = R"(
extern "C" __global__ void __launch_bounds__(128) $ENTRY$(const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k, const __nv_bfloat16* __restrict__ v$SEG_PARAM$, $OTYPE$* __restrict__ o) {
$SEG_LOCAL$  constexpr int BQ = 64;
  LORA_DYNAMIC_SMEM(smem);
  __nv_bfloat16 (*qs)[LD] = (__nv_bfloat16 (*)[LD])smem;
  __nv_bfloat16 (*ks)[LD] = (__nv_bfloat16 (*)[LD])(smem + BQ * LD * 2);
  __nv_bfloat16 (*vs)[LD] = (__nv_bfloat16 (*)[LD])(smem + (BQ + BT) * LD * 2);
  long long* kseg = (long long*)(smem + (BQ + 2 * BT) * LD * 2);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
  const int q0 = blockIdx.x * BQ, h = blockIdx.y, b = blockIdx.z, hk = h / GROUP;
  const long tok0 = (long)b * T;  // first token of this sequence
  for (int c = tid; c < BQ * (D / 8); c += 128) {
    const int r = c / (D / 8), d = (c % (D / 8)) * 8;
    const bool ok = q0 + r < T;
    lora_cp16(&qs[r][d], q + (ok ? ((tok0 + q0 + r) * H + h) * D + d : 0), ok);
  }
  lora_cp_commit();
  lora_cp_wait_all();
  __syncthreads();
  unsigned qf[D / 16][4];
#pragma unroll
  for (int dk = 0; dk < D / 16; ++dk)
    lora_ldsm_x4(qf[dk], &qs[warp * 16 + (lane % 8) + ((lane / 8) % 2) * 8][dk * 16 + (lane / 16) * 8]);
  const int row[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
  long long qseg[2] = {0, 0};
  if (SEG)
    for (int r = 0; r < 2; ++r) qseg[r] = row[r] < T ? (long long)seg[tok0 + row[r]] : -1;
  float acc[D / 8][4], mrow[2], lrow[2];
  lora_attention_sweep(qf, k, v, seg, ks, vs, kseg, tok0, hk, q0, row, qseg, acc, mrow, lrow);
#pragma unroll
  for (int j = 0; j < D / 8; ++j)
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const int r = c >> 1;
      if (row[r] >= T) continue;
      const float val = lrow[r] > 0.f ? acc[j][c] / lrow[r] : 0.f;
      lora_st(o, ((tok0 + row[r]) * H + h) * D + j * 8 + 2 * t + (c & 1), val);
    }
}
)";


const char *kAttentionBwd = R"(

// Per query tile: the forward again for each row's logsumexp L (+inf for a
// row with no allowed key) and D = rowsum(dO ∘ O), both into the workspace,
// then a second sweep over the key tiles for dQ = scale · Σ dS·K with
// P = exp(S − L), dP = dO·Vᵀ, dS = P ∘ (dP − D).
extern "C" __global__ void __launch_bounds__(128, 1) $ENTRY$_dq($PARAMS$) {
$SEG_LOCAL$  constexpr int BQ = 64, BKV = BT;
  LORA_DYNAMIC_SMEM(smem);
  __nv_bfloat16 (*qs)[LD] = (__nv_bfloat16 (*)[LD])smem;
  __nv_bfloat16 (*dos)[LD] = (__nv_bfloat16 (*)[LD])(smem + BQ * LD * 2);
  __nv_bfloat16 (*ks)[LD] = (__nv_bfloat16 (*)[LD])(smem + 2 * BQ * LD * 2);
  __nv_bfloat16 (*vs)[LD] = (__nv_bfloat16 (*)[LD])(smem + (2 * BQ + BKV) * LD * 2);
  long long* kseg = (long long*)(smem + (2 * BQ + 2 * BKV) * LD * 2);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
  const int q0 = blockIdx.x * BQ, h = blockIdx.y, b = blockIdx.z, hk = h / GROUP;
  const long tok0 = (long)b * T;
  float* lse_ws = (float*)ws_;
  float* d_ws = lse_ws + (long)$B$ * H * T;
  for (int c = tid; c < BQ * (D / 8); c += 128) {
    const int r = c / (D / 8), d = (c % (D / 8)) * 8;
    const bool ok = q0 + r < T;
    const long off = ok ? ((tok0 + q0 + r) * H + h) * D + d : 0;
    lora_cp16(&qs[r][d], q + off, ok);
    lora_cp16(&dos[r][d], dout + off, ok);
  }
  lora_cp_commit();
  lora_cp_wait_all();
  __syncthreads();
  unsigned qf[D / 16][4];
#pragma unroll
  for (int dk = 0; dk < D / 16; ++dk)
    lora_ldsm_x4(qf[dk], &qs[warp * 16 + (lane % 8) + ((lane / 8) % 2) * 8][dk * 16 + (lane / 16) * 8]);
  const int row[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
  long long qseg[2] = {0, 0};
  if (SEG)
    for (int r = 0; r < 2; ++r) qseg[r] = row[r] < T ? (long long)seg[tok0 + row[r]] : -1;
  // 1. The forward: running max and sum, O, then L and D.
  float acc[D / 8][4], mrow[2], lrow[2];
  lora_attention_sweep(qf, k, v, seg, ks, vs, kseg, tok0, hk, q0, row, qseg, acc, mrow, lrow);
  float lse[2], dd[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float part = 0.f;
    const int rl = warp * 16 + g + 8 * r;
#pragma unroll
    for (int j = 0; j < D / 8; ++j)
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const float o = lrow[r] > 0.f ? acc[j][2 * r + c] / lrow[r] : 0.f;
        part += o * __bfloat162float(dos[rl][j * 8 + 2 * t + c]);
      }
    part += __shfl_xor_sync(0xffffffffu, part, 1);
    part += __shfl_xor_sync(0xffffffffu, part, 2);
    lse[r] = lrow[r] > 0.f ? mrow[r] + __logf(lrow[r]) : INFINITY;
    dd[r] = lrow[r] > 0.f ? part : 0.f;
    if (t == 0 && row[r] < T) {
      lse_ws[((long)b * H + h) * T + row[r]] = lse[r];
      d_ws[((long)b * H + h) * T + row[r]] = dd[r];
    }
  }

  // 2. dQ.
#pragma unroll
  for (int j = 0; j < D / 8; ++j)
#pragma unroll
    for (int c = 0; c < 4; ++c) acc[j][c] = 0.f;
  int kbeg, kend;
  lora_key_band(q0, &kbeg, &kend);
  for (int k0 = kbeg; k0 < kend; k0 += BKV) {
    lora_load_kv(k, v, seg, ks, vs, kseg, tok0, hk, k0);
    float s[BKV / 8][4], dp[BKV / 8][4];
    lora_scores(s, qf, ks, kseg, k0, row, qseg);
#pragma unroll
    for (int j = 0; j < BKV / 8; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) dp[j][c] = 0.f;
#pragma unroll
    for (int dk = 0; dk < D / 16; ++dk) {
      unsigned af[4];
      lora_ldsm_x4(af, &dos[warp * 16 + (lane % 8) + ((lane / 8) % 2) * 8][dk * 16 + (lane / 16) * 8]);
#pragma unroll
      for (int j = 0; j < BKV / 8; j += 2) {
        unsigned r4[4];
        lora_ldsm_x4(r4, &vs[j * 8 + (lane % 8) + (lane / 16) * 8][dk * 16 + ((lane / 8) % 2) * 8]);
        const unsigned b0[2] = {r4[0], r4[1]}, b1[2] = {r4[2], r4[3]};
        lora_mma_bf16(dp[j], af, b0);
        lora_mma_bf16(dp[j + 1], af, b1);
      }
    }
#pragma unroll
    for (int kk = 0; kk < BKV / 16; ++kk) {
      unsigned da[4];
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int j = 2 * kk + half;
        float ds[4];
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const int r = c >> 1;
          const float p = __expf(s[j][c] - lse[r]);
          ds[c] = p * (dp[j][c] - dd[r]);
        }
        da[2 * half] = lora_pack_bf16(ds[0], ds[1]);
        da[2 * half + 1] = lora_pack_bf16(ds[2], ds[3]);
      }
#pragma unroll
      for (int dn = 0; dn < D / 8; dn += 2) {
        unsigned r4[4];
        lora_ldsm_x4_trans(r4, &ks[kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8][dn * 8 + (lane / 16) * 8]);
        const unsigned b0[2] = {r4[0], r4[1]}, b1[2] = {r4[2], r4[3]};
        lora_mma_bf16(acc[dn], da, b0);
        lora_mma_bf16(acc[dn + 1], da, b1);
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int j = 0; j < D / 8; ++j)
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const int r = c >> 1;
      if (row[r] < T) lora_st(dq, ((tok0 + row[r]) * H + h) * D + j * 8 + 2 * t + (c & 1), SCALE * acc[j][c]);
    }
}

// Per key tile of one kv head: dV = Σ Pᵀ·dO and dK = scale · Σ dSᵀ·Q over the
// group's query heads and the query tiles in the band, in a fixed order
// (no atomics). Rows of the block are keys: Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ.
extern "C" __global__ void __launch_bounds__(128, 1) $ENTRY$_dkdv($PARAMS$) {
$SEG_LOCAL$  constexpr int BK = 64, BQ = BT;
  LORA_DYNAMIC_SMEM(smem);
  __nv_bfloat16 (*ks)[LD] = (__nv_bfloat16 (*)[LD])smem;
  __nv_bfloat16 (*vs)[LD] = (__nv_bfloat16 (*)[LD])(smem + BK * LD * 2);
  __nv_bfloat16 (*qs)[LD] = (__nv_bfloat16 (*)[LD])(smem + 2 * BK * LD * 2);
  __nv_bfloat16 (*dos)[LD] = (__nv_bfloat16 (*)[LD])(smem + (2 * BK + BQ) * LD * 2);
  float* lq = (float*)(smem + (2 * BK + 2 * BQ) * LD * 2);
  float* dq_ = lq + BQ;
  long long* qsg = (long long*)(dq_ + BQ);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
  const int k0 = blockIdx.x * BK, hk = blockIdx.y, b = blockIdx.z;
  const long tok0 = (long)b * T;
  const float* lse_ws = (const float*)ws_;
  const float* d_ws = lse_ws + (long)$B$ * H * T;
  for (int c = tid; c < BK * (D / 8); c += 128) {
    const int r = c / (D / 8), d = (c % (D / 8)) * 8;
    const bool ok = k0 + r < T;
    const long off = ok ? ((tok0 + k0 + r) * KV + hk) * D + d : 0;
    lora_cp16(&ks[r][d], k + off, ok);
    lora_cp16(&vs[r][d], v + off, ok);
  }
  lora_cp_commit();
  lora_cp_wait_all();
  __syncthreads();
  const int key[2] = {k0 + warp * 16 + g, k0 + warp * 16 + g + 8};
  long long kseg[2] = {0, 0};
  if (SEG)
    for (int r = 0; r < 2; ++r) kseg[r] = key[r] < T ? (long long)seg[tok0 + key[r]] : -2;
  float dk_acc[D / 8][4], dv_acc[D / 8][4];
#pragma unroll
  for (int j = 0; j < D / 8; ++j)
#pragma unroll
    for (int c = 0; c < 4; ++c) dk_acc[j][c] = dv_acc[j][c] = 0.f;
  // Query rows that may attend to this key tile.
  const int qbeg = CAUSAL ? k0 / BQ * BQ : 0;
  const int kmax = k0 + BK < T ? k0 + BK : T;
  const int qend = WIN > 0 ? (kmax - 1 + WIN < T ? kmax - 1 + WIN : T) : T;
  for (int hh = 0; hh < GROUP; ++hh) {
    const int h = hk * GROUP + hh;
    for (int q0 = qbeg; q0 < qend; q0 += BQ) {
      for (int c = tid; c < BQ * (D / 8); c += 128) {
        const int r = c / (D / 8), d = (c % (D / 8)) * 8;
        const bool ok = q0 + r < T;
        const long off = ok ? ((tok0 + q0 + r) * H + h) * D + d : 0;
        lora_cp16(&qs[r][d], q + off, ok);
        lora_cp16(&dos[r][d], dout + off, ok);
      }
      lora_cp_commit();
      for (int r = tid; r < BQ; r += 128) {
        const bool ok = q0 + r < T;
        lq[r] = ok ? lse_ws[((long)b * H + h) * T + q0 + r] : INFINITY;
        dq_[r] = ok ? d_ws[((long)b * H + h) * T + q0 + r] : 0.f;
        if (SEG) qsg[r] = ok ? (long long)seg[tok0 + q0 + r] : -1;
      }
      lora_cp_wait_all();
      __syncthreads();
      float st[BQ / 8][4], dpt[BQ / 8][4];
#pragma unroll
      for (int j = 0; j < BQ / 8; ++j)
#pragma unroll
        for (int c = 0; c < 4; ++c) st[j][c] = dpt[j][c] = 0.f;
#pragma unroll
      for (int dk = 0; dk < D / 16; ++dk) {
        unsigned kf[4], vf[4];
        lora_ldsm_x4(kf, &ks[warp * 16 + (lane % 8) + ((lane / 8) % 2) * 8][dk * 16 + (lane / 16) * 8]);
        lora_ldsm_x4(vf, &vs[warp * 16 + (lane % 8) + ((lane / 8) % 2) * 8][dk * 16 + (lane / 16) * 8]);
#pragma unroll
        for (int j = 0; j < BQ / 8; j += 2) {
          unsigned r4[4], o4[4];
          lora_ldsm_x4(r4, &qs[j * 8 + (lane % 8) + (lane / 16) * 8][dk * 16 + ((lane / 8) % 2) * 8]);
          lora_ldsm_x4(o4, &dos[j * 8 + (lane % 8) + (lane / 16) * 8][dk * 16 + ((lane / 8) % 2) * 8]);
          const unsigned b0[2] = {r4[0], r4[1]}, b1[2] = {r4[2], r4[3]};
          const unsigned c0[2] = {o4[0], o4[1]}, c1[2] = {o4[2], o4[3]};
          lora_mma_bf16(st[j], kf, b0);
          lora_mma_bf16(st[j + 1], kf, b1);
          lora_mma_bf16(dpt[j], vf, c0);
          lora_mma_bf16(dpt[j + 1], vf, c1);
        }
      }
#pragma unroll
      for (int kk = 0; kk < BQ / 16; ++kk) {
        unsigned pa[4], sa[4];
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int j = 2 * kk + half;
          float p[4], ds[4];
#pragma unroll
          for (int c = 0; c < 4; ++c) {
            const int r = c >> 1, ql = j * 8 + 2 * t + (c & 1);
            const bool ok = lora_allowed(q0 + ql, key[r], SEG ? qsg[ql] : 0, kseg[r]);
            p[c] = ok ? __expf(st[j][c] * SCALE - lq[ql]) : 0.f;
            ds[c] = p[c] * (dpt[j][c] - dq_[ql]);
          }
          pa[2 * half] = lora_pack_bf16(p[0], p[1]);
          pa[2 * half + 1] = lora_pack_bf16(p[2], p[3]);
          sa[2 * half] = lora_pack_bf16(ds[0], ds[1]);
          sa[2 * half + 1] = lora_pack_bf16(ds[2], ds[3]);
        }
#pragma unroll
        for (int dn = 0; dn < D / 8; dn += 2) {
          unsigned r4[4], o4[4];
          lora_ldsm_x4_trans(o4, &dos[kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8][dn * 8 + (lane / 16) * 8]);
          lora_ldsm_x4_trans(r4, &qs[kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8][dn * 8 + (lane / 16) * 8]);
          const unsigned c0[2] = {o4[0], o4[1]}, c1[2] = {o4[2], o4[3]};
          const unsigned b0[2] = {r4[0], r4[1]}, b1[2] = {r4[2], r4[3]};
          lora_mma_bf16(dv_acc[dn], pa, c0);
          lora_mma_bf16(dv_acc[dn + 1], pa, c1);
          lora_mma_bf16(dk_acc[dn], sa, b0);
          lora_mma_bf16(dk_acc[dn + 1], sa, b1);
        }
      }
      __syncthreads();
    }
  }
#pragma unroll
  for (int j = 0; j < D / 8; ++j)
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const int r = c >> 1;
      if (key[r] >= T) continue;
      const long at = ((tok0 + key[r]) * KV + hk) * D + j * 8 + 2 * t + (c & 1);
      lora_st(dk, at, SCALE * dk_acc[j][c]);
      lora_st(dv, at, dv_acc[j][c]);
    }
}
)";

} // namespace

std::optional<Source> emitAttentionFwd(const AttentionFwd &a, std::string *why) {
  if (a.qType != "__nv_bfloat16") {
    *why = "q is not bf16";
    return std::nullopt;
  }
  if (a.headDim % 16 != 0 || a.headDim > 128) {
    *why = "head_dim is not a multiple of 16 up to 128";
    return std::nullopt;
  }
  if (a.kvHeads <= 0 || a.heads % a.kvHeads != 0) {
    *why = "num_heads is not a multiple of num_kv_heads";
    return std::nullopt;
  }
  Source s;
  s.entry = "lora_attention_fwd_t" + std::to_string(a.seq) + "_h" + std::to_string(a.heads) +
            "_kv" + std::to_string(a.kvHeads) + "_d" + std::to_string(a.headDim) +
            (a.causal ? "_causal" : "") +
            (a.slidingWindow ? "_w" + std::to_string(a.slidingWindow) : "") +
            (a.segType.empty() ? "" : "_seg");
  char scale[48];
  snprintf(scale, sizeof scale, "%.9ef", static_cast<double>(static_cast<float>(a.scale)));
  std::map<std::string, std::string> v = {
      {"ENTRY", s.entry},
      {"B", std::to_string(a.batch)},
      {"T", std::to_string(a.seq)},
      {"H", std::to_string(a.heads)},
      {"KV", std::to_string(a.kvHeads)},
      {"D", std::to_string(a.headDim)},
      {"SCALE", scale},
      {"CAUSAL", a.causal ? "true" : "false"},
      {"WIN", std::to_string(a.slidingWindow)},
      {"SEG", a.segType.empty() ? "false" : "true"},
      {"SEG_PARAM", a.segType.empty() ? "" : ", const " + a.segType + "* __restrict__ seg"},
      {"SEGT", a.segType.empty() ? "int" : a.segType},
      {"BT", "64"},
      // Without segment ids the SEG = false branches never read `seg`, but
      // the name must exist.
      {"SEG_LOCAL", a.segType.empty() ? "  const int* seg = nullptr;\n" : ""},
      {"OTYPE", a.oType},
  };
  std::string code = subst(std::string(kAttentionCommon) + kAttentionFwd, v);
  s.code = std::string(mmaPrelude()) + code;
  s.grid = (a.seq + 63) / 64;
  s.gridY = a.heads;
  s.gridZ = a.batch;
  s.block = 128;
  const int64_t ld = a.headDim + 8;
  s.shared = (64 + 2 * 64) * ld * 2 + 64 * 8;
  return s;
}

} // namespace lorac::cuda

namespace lorac::cuda {

std::optional<Source> emitAttentionBwd(const AttentionFwd &a, std::string *why) {
  if (a.qType != "__nv_bfloat16" || a.oType != "__nv_bfloat16") {
    *why = "q is not bf16";
    return std::nullopt;
  }
  if (a.headDim % 16 != 0 || a.headDim > 128) {
    *why = "head_dim is not a multiple of 16 up to 128";
    return std::nullopt;
  }
  if (a.kvHeads <= 0 || a.heads % a.kvHeads != 0) {
    *why = "num_heads is not a multiple of num_kv_heads";
    return std::nullopt;
  }
  // The inner tile: 64 keys (or queries) for head_dim up to 64, 32 above,
  // so that the accumulators of dK and dV stay in registers.
  const int64_t bt = a.headDim > 64 ? 32 : 64;
  Source s;
  std::string base = "lora_attention_bwd_t" + std::to_string(a.seq) + "_h" +
                     std::to_string(a.heads) + "_kv" + std::to_string(a.kvHeads) + "_d" +
                     std::to_string(a.headDim) + (a.causal ? "_causal" : "") +
                     (a.slidingWindow ? "_w" + std::to_string(a.slidingWindow) : "") +
                     (a.segType.empty() ? "" : "_seg");
  char scale[48];
  snprintf(scale, sizeof scale, "%.9ef", static_cast<double>(static_cast<float>(a.scale)));
  std::string params =
      "const __nv_bfloat16* __restrict__ dout, const __nv_bfloat16* __restrict__ q, "
      "const __nv_bfloat16* __restrict__ k, const __nv_bfloat16* __restrict__ v";
  if (!a.segType.empty()) params += ", const " + a.segType + "* __restrict__ seg";
  params += ", __nv_bfloat16* __restrict__ dq, __nv_bfloat16* __restrict__ dk, "
            "__nv_bfloat16* __restrict__ dv, void* __restrict__ ws_";
  std::map<std::string, std::string> v = {
      {"ENTRY", base},
      {"PARAMS", params},
      {"B", std::to_string(a.batch)},
      {"T", std::to_string(a.seq)},
      {"H", std::to_string(a.heads)},
      {"KV", std::to_string(a.kvHeads)},
      {"D", std::to_string(a.headDim)},
      {"BT", std::to_string(bt)},
      {"SCALE", scale},
      {"CAUSAL", a.causal ? "true" : "false"},
      {"WIN", std::to_string(a.slidingWindow)},
      {"SEG", a.segType.empty() ? "false" : "true"},
      {"SEG_LOCAL", a.segType.empty() ? "  const int* seg = nullptr;\n" : ""},
      {"SEGT", a.segType.empty() ? "int" : a.segType},
  };
  s.code = std::string(mmaPrelude()) + subst(std::string(kAttentionCommon) + kAttentionBwd, v);
  const int64_t ld = (a.headDim + 8) * 2;
  s.entry = base + "_dq";
  s.grid = (a.seq + 63) / 64;
  s.gridY = a.heads;
  s.gridZ = a.batch;
  s.block = 128;
  s.shared = (2 * 64 + 2 * bt) * ld + bt * 8;
  Step kv;
  kv.entry = base + "_dkdv";
  kv.grid = (a.seq + 63) / 64;
  kv.gridY = a.kvHeads;
  kv.gridZ = a.batch;
  kv.block = 128;
  kv.shared = (2 * 64 + 2 * bt) * ld + bt * (4 + 4 + 8);
  s.next.push_back(kv);
  s.workspace = 2 * a.batch * a.heads * a.seq * 4;
  return s;
}

// ===========================================================================
// Attention on CUDA cores (any float type): see simt.h.

using namespace simt;

namespace {

// ---------------------------------------------------------------------------
// Attention: one warp per query row (forward, dQ) or key row (dK, dV).

const char *kAttnCommon = R"(
// Attention on CUDA cores: batch $B$, seq $T$, heads $H$ (kv $KV$), head_dim $D$, scale $SCALE$$MASKDOC$.
namespace {
constexpr long B = $B$, T = $T$, H = $H$, KV = $KV$, D = $D$, G = H / KV, WIN = $WIN$;
constexpr int DL = (D + 31) / 32;  // head dimensions per lane: lane + 32·t
constexpr bool CAUSAL = $CAUSAL$;
constexpr float SCALE = $SCALE$;
__device__ __forceinline__ long lora_qoff(long b, long t, long h) { return ((b * T + t) * H + h) * D; }
__device__ __forceinline__ long lora_koff(long b, long t, long kv) { return ((b * T + t) * KV + kv) * D; }
// Keys [lo, hi) that query i can reach (the causal / window band).
__device__ __forceinline__ void lora_key_range(long i, long* lo, long* hi) {
  *hi = CAUSAL ? i + 1 : T;
  *lo = WIN > 0 ? (i - WIN + 1 > 0 ? i - WIN + 1 : 0) : 0;
}
// Queries [lo, hi) that reach key j.
__device__ __forceinline__ void lora_query_range(long j, long* lo, long* hi) {
  *lo = CAUSAL ? j : 0;
  *hi = WIN > 0 ? (j + WIN < T ? j + WIN : T) : T;
}
__device__ __forceinline__ float lora_warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float lora_warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
// A dot product of a row in shared memory (f32) with a row of a tensor.
template <class TP>
__device__ __forceinline__ float lora_dot(const float* s, const TP* p, long off) {
  float acc = 0.f;
  for (long d = 0; d < D; ++d) acc = fmaf(s[d], lora_ld(p, off + d), acc);
  return acc;
}
$SEGFN$
// The forward of query i of head h (this warp): running max m, sum l and the
// unnormalized output o (lane's dimensions), queries pre-scaled in qs.
__device__ __forceinline__ void lora_attn_row(const $TY$* k, const $TY$* v, const $SEGT$* seg, long b, long h, long i,
                                              const float* qs, float* ps, float* m_, float* l_, float (&o)[DL]) {
  const int lane = threadIdx.x & 31;
  const long kvh = h / G;
  long lo, hi;
  lora_key_range(i, &lo, &hi);
  float m = -INFINITY, l = 0.f;
  for (int t = 0; t < DL; ++t) o[t] = 0.f;
  for (long j0 = lo; j0 < hi; j0 += 32) {
    const long j = j0 + lane;
    const bool ok = j < hi && lora_same_segment(seg, b, i, j);
    const float s = ok ? lora_dot(qs, k, lora_koff(b, j, kvh)) : -INFINITY;
    const float mx = lora_warp_max(s);
    if (mx == -INFINITY) continue;  // no allowed key in these 32
    const float mnew = fmaxf(m, mx), alpha = __expf(m - mnew);
    const float p = ok ? __expf(s - mnew) : 0.f;
    l = l * alpha + lora_warp_sum(p);
    ps[lane] = p;
    __syncwarp();
    const long n = hi - j0 < 32 ? hi - j0 : 32;
    for (int t = 0; t < DL; ++t) {
      const long d = lane + 32 * t;
      float acc = o[t] * alpha;
      if (d < D)
        for (long jj = 0; jj < n; ++jj) acc = fmaf(ps[jj], lora_ld(v, lora_koff(b, j0 + jj, kvh) + d), acc);
      o[t] = acc;
    }
    __syncwarp();
    m = mnew;
  }
  *m_ = m;
  *l_ = l;
}
}  // namespace
)";

const char *kAttnFwd = R"(
// o[b, i, h] for 8 query rows per block (one per warp): grid (T/8, H, B).
extern "C" __global__ void __launch_bounds__(256, 1) $ENTRY$(const $TY$* __restrict__ q, const $TY$* __restrict__ k, const $TY$* __restrict__ v$SEGP$, $TY$* __restrict__ out) {
  __shared__ float qs_[8][D], ps_[8][32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const long i = blockIdx.x * 8L + warp, h = blockIdx.y, b = blockIdx.z;
  if (i >= T) return;  // the whole warp
  float* qs = qs_[warp];
  for (long d = lane; d < D; d += 32) qs[d] = lora_ld(q, lora_qoff(b, i, h) + d) * SCALE;
  __syncwarp();
  float m, l, o[DL];
  lora_attn_row(k, v, $SEGA$, b, h, i, qs, ps_[warp], &m, &l, o);
  const float inv = l > 0.f ? 1.f / l : 0.f;
  for (int t = 0; t < DL; ++t) {
    const long d = lane + 32 * t;
    if (d < D) lora_st(out, lora_qoff(b, i, h) + d, o[t] * inv);
  }
}
)";

const char *kAttnBwd = R"(
// Pass A: per query row, the forward again for L = m + log l (+inf without
// an allowed key: zero gradients) and Dd = rowsum(dO∘O) into the
// workspace, then dQ = scale·Σ_j dS_ij·k_j with P = exp(s − L),
// dP = dO·v_j, dS = P·(dP − Dd). Grid (T/8, H, B).
extern "C" __global__ void __launch_bounds__(256, 1) $BASE$_dq($PARAMS$) {
  __shared__ float qs_[8][D], dos_[8][D], ps_[8][32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const long i = blockIdx.x * 8L + warp, h = blockIdx.y, b = blockIdx.z;
  if (i >= T) return;
  float* qs = qs_[warp];
  float* dos = dos_[warp];
  float* ps = ps_[warp];
  const long qo = lora_qoff(b, i, h);
  for (long d = lane; d < D; d += 32) {
    qs[d] = lora_ld(q, qo + d) * SCALE;
    dos[d] = lora_ld(dout, qo + d);
  }
  __syncwarp();
  float m, l, o[DL];
  lora_attn_row(k, v, $SEGA$, b, h, i, qs, ps, &m, &l, o);
  float dd = 0.f;
  const float inv = l > 0.f ? 1.f / l : 0.f;
  for (int t = 0; t < DL; ++t) {
    const long d = lane + 32 * t;
    if (d < D) dd = fmaf(dos[d], o[t] * inv, dd);
  }
  dd = lora_warp_sum(dd);
  const float L = l > 0.f ? m + logf(l) : INFINITY;
  float* ws = (float*)ws_;
  const long row = (b * H + h) * T + i;
  if (lane == 0) {
    ws[row] = L;
    ws[B * H * T + row] = dd;
  }
  const long kvh = h / G;
  long lo, hi;
  lora_key_range(i, &lo, &hi);
  float dq[DL];
  for (int t = 0; t < DL; ++t) dq[t] = 0.f;
  for (long j0 = lo; j0 < hi && L != INFINITY; j0 += 32) {
    const long j = j0 + lane;
    float ds = 0.f;
    if (j < hi && lora_same_segment($SEGA$, b, i, j)) {
      const float p = __expf(lora_dot(qs, k, lora_koff(b, j, kvh)) - L);
      ds = p * (lora_dot(dos, v, lora_koff(b, j, kvh)) - dd);
    }
    __syncwarp();
    ps[lane] = ds;
    __syncwarp();
    const long n = hi - j0 < 32 ? hi - j0 : 32;
    for (int t = 0; t < DL; ++t) {
      const long d = lane + 32 * t;
      if (d < D)
        for (long jj = 0; jj < n; ++jj) dq[t] = fmaf(ps[jj], lora_ld(k, lora_koff(b, j0 + jj, kvh) + d), dq[t]);
    }
  }
  for (int t = 0; t < DL; ++t) {
    const long d = lane + 32 * t;
    if (d < D) lora_st(dq_, qo + d, SCALE * dq[t]);
  }
}

// Pass B: per key row j of kv head kvh, over the group's query heads and the
// queries that reach j, in order: dV = Σ P·dO, dK = scale·Σ dS·q.
// Grid (T/8, KV, B).
extern "C" __global__ void __launch_bounds__(256, 1) $BASE$_dkdv($PARAMS$) {
  __shared__ float ks_[8][D], vs_[8][D], ps_[8][32], dss_[8][32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const long j = blockIdx.x * 8L + warp, kvh = blockIdx.y, b = blockIdx.z;
  if (j >= T) return;
  float* ks = ks_[warp];
  float* vs = vs_[warp];
  float* ps = ps_[warp];
  float* dss = dss_[warp];
  const long ko = lora_koff(b, j, kvh);
  for (long d = lane; d < D; d += 32) {
    ks[d] = lora_ld(k, ko + d);
    vs[d] = lora_ld(v, ko + d);
  }
  __syncwarp();
  const float* ws = (const float*)ws_;
  long lo, hi;
  lora_query_range(j, &lo, &hi);
  float dk[DL], dv[DL];
  for (int t = 0; t < DL; ++t) dk[t] = dv[t] = 0.f;
  for (long g = 0; g < G; ++g) {
    const long h = kvh * G + g;
    for (long i0 = lo; i0 < hi; i0 += 32) {
      const long i = i0 + lane;
      float p = 0.f, ds = 0.f;
      if (i < hi && lora_same_segment($SEGA$, b, i, j)) {
        const long row = (b * H + h) * T + i;
        const float L = ws[row];
        if (L != INFINITY) {
          const long qo = lora_qoff(b, i, h);
          float s = 0.f, dp = 0.f;
          for (long d = 0; d < D; ++d) {
            s = fmaf(lora_ld(q, qo + d) * SCALE, ks[d], s);
            dp = fmaf(lora_ld(dout, qo + d), vs[d], dp);
          }
          p = __expf(s - L);
          ds = p * (dp - ws[B * H * T + row]);
        }
      }
      __syncwarp();
      ps[lane] = p;
      dss[lane] = ds;
      __syncwarp();
      const long n = hi - i0 < 32 ? hi - i0 : 32;
      for (int t = 0; t < DL; ++t) {
        const long d = lane + 32 * t;
        if (d >= D) continue;
        for (long ii = 0; ii < n; ++ii) {
          const long qo = lora_qoff(b, i0 + ii, h) + d;
          dv[t] = fmaf(ps[ii], lora_ld(dout, qo), dv[t]);
          dk[t] = fmaf(dss[ii], lora_ld(q, qo), dk[t]);
        }
      }
    }
  }
  for (int t = 0; t < DL; ++t) {
    const long d = lane + 32 * t;
    if (d < D) {
      lora_st(dk_, ko + d, SCALE * dk[t]);
      lora_st(dv_, ko + d, dv[t]);
    }
  }
}
)";

std::map<std::string, std::string> attnVars(const AttentionFwd &a) {
  std::map<std::string, std::string> v;
  v["B"] = std::to_string(a.batch);
  v["T"] = std::to_string(a.seq);
  v["H"] = std::to_string(a.heads);
  v["KV"] = std::to_string(a.kvHeads);
  v["D"] = std::to_string(a.headDim);
  v["WIN"] = std::to_string(a.slidingWindow);
  v["CAUSAL"] = a.causal ? "true" : "false";
  v["SCALE"] = floatLiteral(static_cast<float>(a.scale));
  v["TY"] = a.qType;
  const bool seg = !a.segType.empty();
  v["SEGT"] = seg ? a.segType : "int";
  v["SEGP"] = seg ? ", const " + a.segType + "* __restrict__ seg" : "";
  v["SEGA"] = seg ? "seg" : "(const int*)nullptr";
  v["SEGFN"] = seg ? "__device__ __forceinline__ bool lora_same_segment(const " + a.segType +
                         "* seg, long b, long i, long j) { return seg[b * T + i] == seg[b * T + j]; }"
                   : "__device__ __forceinline__ bool lora_same_segment(const int*, long, long, long) { return true; }";
  v["MASKDOC"] = std::string(a.causal ? ", causal" : "") +
                 (a.slidingWindow ? ", window " + std::to_string(a.slidingWindow) : "") +
                 (seg ? ", segment ids" : "");
  return v;
}

bool attnCovered(const AttentionFwd &a, std::string *why) {
  if (!floatType(a.qType) || a.oType != a.qType) {
    *why = "q, k, v and the outputs must share one float type";
    return false;
  }
  if (a.headDim <= 0 || a.headDim > 256) {
    *why = "head_dim above 256";
    return false;
  }
  if (a.kvHeads <= 0 || a.heads % a.kvHeads != 0) {
    *why = "heads not a multiple of kv heads";
    return false;
  }
  return true;
}

std::string attnBase(const AttentionFwd &a, const char *what) {
  return std::string("lora_simt_attention_") + what + "_" + tag(a.qType) + "_b" + std::to_string(a.batch) +
         "_t" + std::to_string(a.seq) + "_h" + std::to_string(a.heads) + "_kv" +
         std::to_string(a.kvHeads) + "_d" + std::to_string(a.headDim) + (a.causal ? "" : "_bidir") +
         (a.slidingWindow ? "_w" + std::to_string(a.slidingWindow) : "") +
         (a.segType.empty() ? "" : "_seg" + std::string(a.segType == "int" ? "32" : "64"));
}

} // namespace

std::optional<Source> emitSimtAttentionFwd(const AttentionFwd &a, std::string *why) {
  if (!attnCovered(a, why))
    return std::nullopt;
  auto v = attnVars(a);
  Source s;
  s.entry = attnBase(a, "fwd");
  v["ENTRY"] = s.entry;
  s.code = std::string(mmaPrelude()) + kSimtPrelude + subst(kAttnCommon, v) + subst(kAttnFwd, v);
  s.grid = (a.seq + 7) / 8;
  s.gridY = a.heads;
  s.gridZ = a.batch;
  s.block = 256;
  return s;
}

std::optional<Source> emitSimtAttentionBwd(const AttentionFwd &a, std::string *why) {
  if (!attnCovered(a, why))
    return std::nullopt;
  auto v = attnVars(a);
  const std::string base = attnBase(a, "bwd");
  v["BASE"] = base;
  const std::string t = a.qType;
  v["PARAMS"] = "const " + t + "* __restrict__ dout, const " + t + "* __restrict__ q, const " + t +
                "* __restrict__ k, const " + t + "* __restrict__ v" + v["SEGP"] + ", " + t +
                "* __restrict__ dq_, " + t + "* __restrict__ dk_, " + t + "* __restrict__ dv_, void* __restrict__ ws_";
  Source s;
  s.code = std::string(mmaPrelude()) + kSimtPrelude + subst(kAttnCommon, v) + subst(kAttnBwd, v);
  s.entry = base + "_dq";
  s.grid = (a.seq + 7) / 8;
  s.gridY = a.heads;
  s.gridZ = a.batch;
  s.block = 256;
  s.next.push_back({base + "_dkdv", (a.seq + 7) / 8, a.kvHeads, a.batch, 256, 0});
  s.workspace = 2 * a.batch * a.heads * a.seq * 4;
  return s;
}

} // namespace lorac::cuda

// ===========================================================================
// The family's emitters (codegen.h): q, k, v (, segment ids) -> out and
// dout, q, k, v (, segment ids) -> dq, dk, dv.

namespace lorac::cuda {
namespace {

/// Whether the launch writes (forward) or reads (backward) the softmax
/// statistics of lora-save-attention-stats, which these kernels do not take
/// (the pass leaves CUDA plans without them).
bool savedStats(const kernels::params::attention_fwd &p) {
  return p.save_lse.value_or(0) != 0;
}
bool savedStats(const kernels::params::attention_bwd &p) {
  return p.saved_stats.value_or(0) != 0;
}

template <class P> Emitted attention(const KernelDesc &d, const P &p, bool bwd) {
  if (savedStats(p))
    return notCovered("saved softmax statistics (save_lse / saved_stats) are "
                      "CPU-only; lora-save-attention-stats leaves CUDA plans "
                      "without them");
  AttentionFwd a;
  a.batch = p.batch;
  a.seq = p.seq;
  a.heads = p.num_heads;
  a.kvHeads = p.num_kv_heads;
  a.headDim = p.head_dim;
  a.scale = p.scale;
  a.causal = p.causal != 0;
  a.slidingWindow = p.sliding_window;
  // The segment ids, when present, are the last operand.
  size_t tensors = bwd ? 4 : 3;
  bool seg = d.inputs.size() > tensors;
  if (seg)
    a.segType = d.inputs.back().type;
  a.qType = d.inputs[bwd ? 1 : 0].type;
  a.oType = d.outputs[0].type;
  // One float type for every tensor operand and result: bf16 on tensor
  // cores, anything else (or a head_dim they do not cover) on CUDA cores.
  for (size_t i = 0; i < tensors && i < d.inputs.size(); ++i)
    if (d.inputs[i].type != a.qType)
      return notCovered("operands of different types");
  for (const Operand &r : d.outputs)
    if (r.type != a.qType)
      return notCovered("results of different types");
  std::string why;
  std::optional<Source> s;
  if (a.qType == "__nv_bfloat16")
    s = bwd ? emitAttentionBwd(a, &why) : emitAttentionFwd(a, &why);
  if (!s)
    s = bwd ? emitSimtAttentionBwd(a, &why) : emitSimtAttentionFwd(a, &why);
  return emitted(std::move(s), why);
}

Emitted attentionFwdKernel(const KernelDesc &d) {
  return attention(d, d.get<kernels::params::attention_fwd>(), false);
}
Emitted attentionBwdKernel(const KernelDesc &d) {
  return attention(d, d.get<kernels::params::attention_bwd>(), true);
}

} // namespace

const std::vector<Emitter> &attentionEmitters() {
  static const std::vector<Emitter> t = {
      {kernels::Kind::attention_fwd, attentionFwdKernel},
      {kernels::Kind::attention_bwd, attentionBwdKernel},
  };
  return t;
}

} // namespace lorac::cuda
